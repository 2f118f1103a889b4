/* quant_blocks.h - the block layouts of the quantized types, bit for bit
 * those of GGUF files (ggml's block_q4_0 ... block_q8_K), and the small
 * scale-unpacking helpers every level shares.
 *
 * A row of n elements is n / QK consecutive blocks. fp16 fields are IEEE half
 * (base/fp16.h). Within a legacy block (32 elements) byte j of qs holds
 * element j in its low nibble and element j + 16 in its high nibble. */
#ifndef LAMINA_BACKEND_CPU_QUANT_BLOCKS_H
#define LAMINA_BACKEND_CPU_QUANT_BLOCKS_H

#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "base/fp16.h"

#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
#define QK8_1 32
#define QK_K 256         /* elements per k-quant super-block */
#define K_SCALE_SIZE 12  /* bytes of packed 6-bit scales and mins (q4_K, q5_K) */

/* x = d * (q - 8), q in [0, 15] */
typedef struct {
    lm_fp16 d;
    uint8_t qs[QK4_0 / 2];
} block_q4_0;
static_assert(sizeof(block_q4_0) == 2 + QK4_0 / 2, "block_q4_0 size");

/* x = d * q + m, q in [0, 15] */
typedef struct {
    lm_fp16 d;
    lm_fp16 m;
    uint8_t qs[QK4_1 / 2];
} block_q4_1;
static_assert(sizeof(block_q4_1) == 4 + QK4_1 / 2, "block_q4_1 size");

/* x = d * (q - 16), q in [0, 31]; bit j of qh is bit 4 of element j */
typedef struct {
    lm_fp16 d;
    uint8_t qh[4];
    uint8_t qs[QK5_0 / 2];
} block_q5_0;
static_assert(sizeof(block_q5_0) == 2 + 4 + QK5_0 / 2, "block_q5_0 size");

/* x = d * q + m, q in [0, 31] */
typedef struct {
    lm_fp16 d;
    lm_fp16 m;
    uint8_t qh[4];
    uint8_t qs[QK5_1 / 2];
} block_q5_1;
static_assert(sizeof(block_q5_1) == 4 + 4 + QK5_1 / 2, "block_q5_1 size");

/* x = d * q */
typedef struct {
    lm_fp16 d;
    int8_t qs[QK8_0];
} block_q8_0;
static_assert(sizeof(block_q8_0) == 2 + QK8_0, "block_q8_0 size");

/* x = d * q; s = d * sum(q) (activation type of q4_1 / q5_1) */
typedef struct {
    lm_fp16 d;
    lm_fp16 s;
    int8_t qs[QK8_1];
} block_q8_1;
static_assert(sizeof(block_q8_1) == 4 + QK8_1, "block_q8_1 size");

/* 16 sub-blocks of 16: x = d * (scales[j] & 15) * q - dmin * (scales[j] >> 4),
 * q in [0, 3]; qs byte l of each 32-byte group holds 4 sub-blocks' elements */
typedef struct {
    uint8_t scales[QK_K / 16];
    uint8_t qs[QK_K / 4];
    lm_fp16 d;
    lm_fp16 dmin;
} block_q2_K;
static_assert(sizeof(block_q2_K) == 4 + QK_K / 16 + QK_K / 4, "block_q2_K size");

/* 16 sub-blocks of 16: x = d * (scale6 - 32) * (q - 4 * !hbit), q in [0, 3] */
typedef struct {
    uint8_t hmask[QK_K / 8];
    uint8_t qs[QK_K / 4];
    uint8_t scales[12];
    lm_fp16 d;
} block_q3_K;
static_assert(sizeof(block_q3_K) == 2 + QK_K / 4 + QK_K / 8 + 12, "block_q3_K size");

/* 8 sub-blocks of 32: x = d * sc[j] * q - dmin * m[j], q in [0, 15] */
typedef struct {
    lm_fp16 d;
    lm_fp16 dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qs[QK_K / 2];
} block_q4_K;
static_assert(sizeof(block_q4_K) == 4 + K_SCALE_SIZE + QK_K / 2, "block_q4_K size");

/* 16 rows of q4_K, one super-block each, interleaved (quant_pack.h) */
typedef struct {
    lm_fp16 d[16], dmin[16];
    uint8_t sc[8][16], m[8][16];
    uint8_t qs[8][4][64];
} block_q4_Kx16;
static_assert(sizeof(block_q4_Kx16) == 16 * sizeof(block_q4_K) + 64, "block_q4_Kx16 size");

/* as q4_K with a fifth bit per element in qh, q in [0, 31] */
typedef struct {
    lm_fp16 d;
    lm_fp16 dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
} block_q5_K;
static_assert(sizeof(block_q5_K) == 4 + K_SCALE_SIZE + QK_K / 2 + QK_K / 8, "block_q5_K size");

/* 16 sub-blocks of 16: x = d * scales[j] * (q - 32), q in [0, 63] */
typedef struct {
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    int8_t scales[QK_K / 16];
    lm_fp16 d;
} block_q6_K;
static_assert(sizeof(block_q6_K) == 2 + QK_K / 16 + 3 * QK_K / 4, "block_q6_K size");

/* 16 rows of q6_K, one super-block each, interleaved (quant_pack.h) */
typedef struct {
    lm_fp16 d[16];
    int8_t sc[16][16];
    uint8_t qs[8][4][64];
    uint8_t qh[8][2][64];
} block_q6_Kx16;
static_assert(sizeof(block_q6_Kx16) == 16 * sizeof(block_q6_K), "block_q6_Kx16 size");

/* activation type of the k-quants: x = d * q; bsums[j] = sum of q[16j..16j+15] */
typedef struct {
    float d;
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16];
} block_q8_K;
static_assert(sizeof(block_q8_K) == 4 + QK_K + QK_K / 16 * 2, "block_q8_K size");

/* The 12 packed bytes of q4_K / q5_K -> 8 scales (out[0..7]) and 8 mins
 * (out[8..15]), each 6 bits; the word shuffle of ggml's dot kernels. */
static inline void q_unpack_k4_scales(const uint8_t packed[K_SCALE_SIZE], uint8_t out[16]) {
    const uint32_t kmask1 = 0x3f3f3f3f, kmask2 = 0x0f0f0f0f, kmask3 = 0x03030303;
    uint32_t u[4];
    memcpy(u, packed, 12);
    u[3] = ((u[2] >> 4) & kmask2) | (((u[1] >> 6) & kmask3) << 4);
    const uint32_t mins_lo = u[1] & kmask1;
    u[1] = (u[2] & kmask2) | (((u[0] >> 6) & kmask3) << 4);
    u[2] = mins_lo;
    u[0] &= kmask1;
    memcpy(out, u, 16);
}

/* The 12 packed bytes of q3_K -> 16 scales biased by 32 (6 bits each). */
static inline void q_unpack_q3k_scales(const uint8_t packed[12], uint8_t out[16]) {
    const uint32_t kmask1 = 0x03030303, kmask2 = 0x0f0f0f0f;
    uint32_t a[4];
    memcpy(a, packed, 12);
    const uint32_t tmp = a[2];
    a[2] = ((a[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4);
    a[3] = ((a[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4);
    a[0] = (a[0] & kmask2) | (((tmp >> 0) & kmask1) << 4);
    a[1] = (a[1] & kmask2) | (((tmp >> 2) & kmask1) << 4);
    memcpy(out, a, 16);
}

#endif
