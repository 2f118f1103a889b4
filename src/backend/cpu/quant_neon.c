/* quant_neon.c - the dots of the legacy decode types on 64-bit Arm: NEON
 * with the dot-product instructions (sdot, vdotq_s32; armv8.2-a+dotprod,
 * this file alone is compiled for it, quant_dispatch.c calls it only when
 * the CPU reports ASIMDDP).
 *
 * Each block's integer sum is exact, as in the scalar reference; the float
 * accumulation runs block by block in the same order with the same
 * expression, so the results equal the reference's bit for bit. */
#if defined(__aarch64__)

#include <arm_neon.h>

#include "backend/cpu/quant_blocks.h"
#include "backend/cpu/quant_impl.h"
#include "base/fp16.h"

float q4_0_dot_neon(int64_t n, const void *w, const void *act) {
    const block_q4_0 *x = w;
    const block_q8_0 *y = act;
    const uint8x16_t low = vdupq_n_u8(0x0F);
    const int8x16_t eight = vdupq_n_s8(8);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        const uint8x16_t q = vld1q_u8(x[i].qs);
        /* element j in the low nibble of byte j, element j + 16 in its high one */
        const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, low)), eight);
        const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), eight);
        int32x4_t acc = vdotq_s32(vdupq_n_s32(0), lo, vld1q_s8(y[i].qs));
        acc = vdotq_s32(acc, hi, vld1q_s8(y[i].qs + 16));
        const int isum = vaddvq_s32(acc);
        sum += isum * lm_fp16_to_fp32(x[i].d) * lm_fp16_to_fp32(y[i].d);
    }
    return sum;
}

/* the 32 unsigned 4-bit values of a block: element j in the low nibble of
 * byte j, element j + 16 in its high nibble */
static inline void nibbles(const uint8_t *qs, uint8x16_t *lo, uint8x16_t *hi) {
    const uint8x16_t q = vld1q_u8(qs);
    *lo = vandq_u8(q, vdupq_n_u8(0x0F));
    *hi = vshrq_n_u8(q, 4);
}

/* bit 4 of each of the 32 elements of a q5 block: bit j of qh (little
 * endian) is element j's, as 0x10 or 0 */
static inline void high_bits(const uint8_t qh_bytes[4], uint8x16_t *lo, uint8x16_t *hi) {
    static const uint8_t bit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t mask = vld1q_u8(bit), h10 = vdupq_n_u8(0x10);
    const uint8x16_t b01 = vcombine_u8(vdup_n_u8(qh_bytes[0]), vdup_n_u8(qh_bytes[1]));
    const uint8x16_t b23 = vcombine_u8(vdup_n_u8(qh_bytes[2]), vdup_n_u8(qh_bytes[3]));
    *lo = vandq_u8(vtstq_u8(b01, mask), h10);
    *hi = vandq_u8(vtstq_u8(b23, mask), h10);
}

/* the exact integer dot of 32 int8 weights (two halves) with a block of 32 int8 activations */
static inline int dot32(int8x16_t w0, int8x16_t w1, const int8_t *y) {
    const int32x4_t acc = vdotq_s32(vdotq_s32(vdupq_n_s32(0), w0, vld1q_s8(y)), w1, vld1q_s8(y + 16));
    return vaddvq_s32(acc);
}

float q4_1_dot_neon(int64_t n, const void *w, const void *act) {
    const block_q4_1 *x = w;
    const block_q8_1 *y = act;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        uint8x16_t lo, hi;
        nibbles(x[i].qs, &lo, &hi);
        const int isum = dot32(vreinterpretq_s8_u8(lo), vreinterpretq_s8_u8(hi), y[i].qs);
        sum += lm_fp16_to_fp32(x[i].d) * lm_fp16_to_fp32(y[i].d) * isum +
               lm_fp16_to_fp32(x[i].m) * lm_fp16_to_fp32(y[i].s);
    }
    return sum;
}

float q5_0_dot_neon(int64_t n, const void *w, const void *act) {
    const block_q5_0 *x = w;
    const block_q8_0 *y = act;
    const int8x16_t sixteen = vdupq_n_s8(16);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        uint8x16_t lo, hi, hlo, hhi;
        nibbles(x[i].qs, &lo, &hi);
        high_bits(x[i].qh, &hlo, &hhi);
        const int8x16_t w0 = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(lo, hlo)), sixteen);
        const int8x16_t w1 = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(hi, hhi)), sixteen);
        sum += lm_fp16_to_fp32(x[i].d) * lm_fp16_to_fp32(y[i].d) * dot32(w0, w1, y[i].qs);
    }
    return sum;
}

float q5_1_dot_neon(int64_t n, const void *w, const void *act) {
    const block_q5_1 *x = w;
    const block_q8_1 *y = act;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        uint8x16_t lo, hi, hlo, hhi;
        nibbles(x[i].qs, &lo, &hi);
        high_bits(x[i].qh, &hlo, &hhi);
        const int isum = dot32(vreinterpretq_s8_u8(vorrq_u8(lo, hlo)), vreinterpretq_s8_u8(vorrq_u8(hi, hhi)), y[i].qs);
        sum += lm_fp16_to_fp32(x[i].d) * lm_fp16_to_fp32(y[i].d) * isum +
               lm_fp16_to_fp32(x[i].m) * lm_fp16_to_fp32(y[i].s);
    }
    return sum;
}

float q8_0_dot_neon(int64_t n, const void *w, const void *act) {
    const block_q8_0 *x = w;
    const block_q8_0 *y = act;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int32x4_t acc = vdotq_s32(vdupq_n_s32(0), vld1q_s8(x[i].qs), vld1q_s8(y[i].qs));
        acc = vdotq_s32(acc, vld1q_s8(x[i].qs + 16), vld1q_s8(y[i].qs + 16));
        const int isum = vaddvq_s32(acc);
        sum += isum * (lm_fp16_to_fp32(x[i].d) * lm_fp16_to_fp32(y[i].d));
    }
    return sum;
}

#endif
