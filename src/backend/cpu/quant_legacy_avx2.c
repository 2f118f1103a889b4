/* quant_legacy_avx2.c - AVX2 dots and matrix products of the 32-element
 * block types q4_0, q4_1, q5_0, q5_1, q8_0 (activations q8_0 / q8_1).
 *
 * As ggml's arch/x86/quants.c: a block is unpacked to 32 bytes, one integer
 * dot step (maddubs + madd) leaves 8 int32 lanes, then per block
 *     acc   = fma(d_x * d_y, float(isum), acc)      8 lanes
 *     summs = fma(m_x, s_y, summs)                  types with a min (q8_1 s)
 * and a dot is hsum(acc) (+ summs). mul_mat unpacks each weight block once
 * for up to 4 tokens and runs exactly these steps for each, so it gives the
 * dots' floats bit for bit. */
#include <math.h>

#include "backend/cpu/quant_blocks.h"
#include "backend/cpu/quant_impl.h"
#include "backend/cpu/quant_x86.h"

/* What tells the types apart; every field is a constant after inlining. */
typedef struct {
    int x_bytes; /* weight block size */
    int qs_at;   /* byte offset of the quants */
    int qh_at;   /* q5: offset of the fifth bits; -1: none */
    int has_min; /* x = d * q + m: unsigned quants, q8_1 activations */
    int bias;    /* zero point subtracted from 4/5-bit quants; 0: none */
    int nibbles; /* 4-bit quants (else q8_0's signed bytes) */
} legacy_type;

static const legacy_type Q4_0 = {sizeof(block_q4_0), 2, -1, 0, 8, 1};
static const legacy_type Q4_1 = {sizeof(block_q4_1), 4, -1, 1, 0, 1};
static const legacy_type Q5_0 = {sizeof(block_q5_0), 6, 2, 0, 16, 1};
static const legacy_type Q5_1 = {sizeof(block_q5_1), 8, 4, 1, 0, 1};
static const legacy_type Q8_0 = {sizeof(block_q8_0), 2, -1, 0, 0, 0};

static inline int y_bytes(const legacy_type *t) { return t->has_min ? (int)sizeof(block_q8_1) : (int)sizeof(block_q8_0); }

/* the fp16 at p as a float (one 16-bit load: reading both of a block's
 * halves at once and splitting them costs more shuffles) */
static inline float load_h2f(const uint8_t *p) {
    lm_fp16 h;
    memcpy(&h, p, sizeof(h));
    return q_h2f(h);
}

/* one weight block, unpacked: maddubs wants unsigned bytes, so signed quants
 * become |q| with their signs moved onto the activations */
typedef struct {
    __m256i u;    /* unsigned quants, or |q| */
    __m256i sign; /* signed types: q */
    float d, m;
} weight_block;

static inline __attribute__((always_inline)) weight_block unpack_block(const legacy_type *t, const uint8_t *b) {
    weight_block w;
    w.d = load_h2f(b);
    w.m = t->has_min ? load_h2f(b + 2) : 0.0f;
    __m256i q;
    if (t->nibbles) {
        q = t->qh_at >= 0 ? q_q5_32(b + t->qs_at, b + t->qh_at) : q_nibbles_32(b + t->qs_at);
        if (t->bias) q = _mm256_sub_epi8(q, _mm256_set1_epi8((char)t->bias));
    } else {
        q = _mm256_loadu_si256((const __m256i *)(b + t->qs_at));
    }
    w.sign = q;
    w.u = t->has_min ? q : _mm256_sign_epi8(q, q);
    return w;
}

/* the block's dot steps for one token: y is its activation block */
static inline __attribute__((always_inline)) void block_fma(const legacy_type *t, const weight_block *w,
                                                            const uint8_t *y, __m256 *acc, float *summs) {
    __m256i qy = _mm256_loadu_si256((const __m256i *)(y + y_bytes(t) - 32));
    if (!t->has_min) qy = _mm256_sign_epi8(qy, w->sign);
    *acc = _mm256_fmadd_ps(_mm256_set1_ps(w->d * load_h2f(y)), _mm256_cvtepi32_ps(q_dot_u8s8(w->u, qy)), *acc);
    if (t->has_min) *summs = fmaf(w->m, load_h2f(y + 2), *summs);
}

#define TILE_TOKENS 4

/* one weight row x (nb blocks) against n_tok (<= TILE_TOKENS) activation
 * rows at y, y + y_stride, ...; results to out[0], out[ld], ... */
static inline __attribute__((always_inline)) void row_tile(const legacy_type *t, const uint8_t *x, int64_t nb,
                                                           const uint8_t *y, size_t y_stride, int n_tok, float *out,
                                                           int64_t ld) {
    __m256 acc[TILE_TOKENS];
    float summs[TILE_TOKENS];
    Q_UNROLL
    for (int i = 0; i < n_tok; i++) acc[i] = _mm256_setzero_ps(), summs[i] = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        if (n_tok == 1 && b % 4 == 0) q_prefetch(x + b * t->x_bytes + Q_DECODE_AHEAD, 4 * t->x_bytes);
        const weight_block w = unpack_block(t, x + b * t->x_bytes);
        Q_UNROLL
        for (int i = 0; i < n_tok; i++) block_fma(t, &w, y + i * y_stride + b * y_bytes(t), &acc[i], &summs[i]);
    }
    Q_UNROLL
    for (int i = 0; i < n_tok; i++) out[i * ld] = t->has_min ? q_hsum_f32x8(acc[i]) + summs[i] : q_hsum_f32x8(acc[i]);
}

static inline __attribute__((always_inline)) void legacy_mul_mat(const legacy_type *t, int64_t n, const uint8_t *w,
                                                                 size_t w_stride, int n_rows, const uint8_t *act,
                                                                 size_t act_stride, int n_tok, float *out,
                                                                 int64_t ld_out) {
    const int64_t nb = n / 32;
    for (int r = 0; r < n_rows; r++) {
        const uint8_t *x = w + (size_t)r * w_stride;
        if (n_tok != 1) q_prefetch(x + Q_PREFETCH_BYTES, nb * t->x_bytes); /* else row_tile asks */
        /* token tiles of 4, then 2, 1: each width is its own unrolled copy */
        int i = 0;
        for (; i + 4 <= n_tok; i += 4) row_tile(t, x, nb, act + i * act_stride, act_stride, 4, out + i * ld_out + r, ld_out);
        if (i + 2 <= n_tok) row_tile(t, x, nb, act + i * act_stride, act_stride, 2, out + i * ld_out + r, ld_out), i += 2;
        if (i < n_tok) row_tile(t, x, nb, act + i * act_stride, act_stride, 1, out + i * ld_out + r, ld_out);
    }
}

#define LEGACY_KERNELS(type, T)                                                                                      \
    float type##_dot_avx2(int64_t n, const void *w, const void *act) {                                               \
        float out;                                                                                                   \
        row_tile(&T, w, n / 32, act, 0, 1, &out, 0);                                                                 \
        return out;                                                                                                  \
    }                                                                                                                \
    void type##_mul_mat_avx2(int64_t n, const void *w, size_t w_stride, int n_rows, const void *act,                  \
                             size_t act_stride, int n_tok, float *out, int64_t ld_out) {                             \
        legacy_mul_mat(&T, n, w, w_stride, n_rows, act, act_stride, n_tok, out, ld_out);                             \
    }

LEGACY_KERNELS(q4_0, Q4_0)
LEGACY_KERNELS(q4_1, Q4_1)
LEGACY_KERNELS(q5_0, Q5_0)
LEGACY_KERNELS(q5_1, Q5_1)
LEGACY_KERNELS(q8_0, Q8_0)
