/* quant_neon.c - the dots of the decode types on 64-bit Arm, and the
 * matrix products (token tiles) of all but q2_K and q3_K: NEON with the
 * dot-product instructions (sdot, vdotq_s32; armv8.2-a+dotprod, this file
 * alone is compiled for it, quant_dispatch.c calls it only when the CPU
 * reports ASIMDDP).
 *
 * Each block's integer sum is exact, as in the scalar reference; the float
 * accumulation runs block by block in the same order with the same
 * expression, so the results equal the reference's bit for bit. */
#if defined(__aarch64__)

#include <arm_neon.h>

#include "backend/cpu/quant_blocks.h"
#include "backend/cpu/quant_impl.h"
#include "base/fp16.h"

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

/* The legacy types, 32 weights a block: one block's weights unpacked to
 * int8 once (W0: elements 0-15, W1: 16-31) serve the NT tokens of a tile,
 * each token's sum growing by the dot's own expression, block by block in
 * order; the dot is the tile of one row and one token, so every product of a
 * mul_mat has the dot's bits. Tokens a tile: their activation rows stay in
 * L1 while the tile's row is read. */
#define LEGACY_TOKENS 4

/* one row x NT tokens (y[t]: token t's activation blocks) into sum[t]:
 * type##_unpack gives a block's int8 weights, type##_acc a token's new sum
 * (the dot's expression) */
#define LEGACY_TILE(type, WBLOCK, ABLOCK)                                                                          \
    static inline void type##_tile(int64_t nb, const WBLOCK *x, const ABLOCK *const *y, int nt, float *sum) {   \
        for (int t = 0; t < nt; t++) sum[t] = 0.0f;                                                             \
        for (int64_t i = 0; i < nb; i++) {                                                                      \
            int8x16_t w0, w1;                                                                                   \
            type##_unpack(&x[i], &w0, &w1);                                                                     \
            for (int t = 0; t < nt; t++) sum[t] = type##_acc(sum[t], &x[i], &y[t][i], dot32(w0, w1, y[t][i].qs)); \
        }                                                                                                       \
    }                                                                                                           \
    float type##_dot_neon(int64_t n, const void *w, const void *act) {                                           \
        const ABLOCK *y[1] = {act};                                                                             \
        float sum;                                                                                              \
        type##_tile(n / 32, w, y, 1, &sum);                                                                     \
        return sum;                                                                                             \
    }                                                                                                           \
    void type##_mul_mat_neon(int64_t n, const void *w, size_t w_stride, int n_rows, const void *act,             \
                             size_t act_stride, int n_tok, float *out, int64_t ld_out) {                        \
        for (int t0 = 0; t0 < n_tok; t0 += LEGACY_TOKENS) {                                                     \
            const int nt = n_tok - t0 < LEGACY_TOKENS ? n_tok - t0 : LEGACY_TOKENS;                             \
            const ABLOCK *y[LEGACY_TOKENS];                                                                     \
            for (int t = 0; t < nt; t++) y[t] = (const ABLOCK *)((const char *)act + (size_t)(t0 + t) * act_stride); \
            for (int r = 0; r < n_rows; r++) {                                                                  \
                float sum[LEGACY_TOKENS];                                                                       \
                type##_tile(n / 32, (const WBLOCK *)((const char *)w + (size_t)r * w_stride), y, nt, sum);      \
                for (int t = 0; t < nt; t++) out[(int64_t)(t0 + t) * ld_out + r] = sum[t];                      \
            }                                                                                                   \
        }                                                                                                       \
    }

/* q4_0: element j in the low nibble of byte j, element j + 16 in its high one, minus 8 */
static inline void q4_0_unpack(const block_q4_0 *x, int8x16_t *w0, int8x16_t *w1) {
    uint8x16_t lo, hi;
    nibbles(x->qs, &lo, &hi);
    *w0 = vsubq_s8(vreinterpretq_s8_u8(lo), vdupq_n_s8(8));
    *w1 = vsubq_s8(vreinterpretq_s8_u8(hi), vdupq_n_s8(8));
}
static inline float q4_0_acc(float sum, const block_q4_0 *x, const block_q8_0 *y, int isum) {
    return sum + isum * lm_fp16_to_fp32(x->d) * lm_fp16_to_fp32(y->d);
}
LEGACY_TILE(q4_0, block_q4_0, block_q8_0)

static inline void q4_1_unpack(const block_q4_1 *x, int8x16_t *w0, int8x16_t *w1) {
    uint8x16_t lo, hi;
    nibbles(x->qs, &lo, &hi);
    *w0 = vreinterpretq_s8_u8(lo);
    *w1 = vreinterpretq_s8_u8(hi);
}
static inline float q4_1_acc(float sum, const block_q4_1 *x, const block_q8_1 *y, int isum) {
    return sum + (lm_fp16_to_fp32(x->d) * lm_fp16_to_fp32(y->d) * isum + lm_fp16_to_fp32(x->m) * lm_fp16_to_fp32(y->s));
}
LEGACY_TILE(q4_1, block_q4_1, block_q8_1)

/* the 32 unsigned 5-bit values of a q5 block (nibbles and high bits) */
static inline void five_bits(const uint8_t *qs, const uint8_t qh[4], int8x16_t *w0, int8x16_t *w1) {
    uint8x16_t lo, hi, hlo, hhi;
    nibbles(qs, &lo, &hi);
    high_bits(qh, &hlo, &hhi);
    *w0 = vreinterpretq_s8_u8(vorrq_u8(lo, hlo));
    *w1 = vreinterpretq_s8_u8(vorrq_u8(hi, hhi));
}

static inline void q5_0_unpack(const block_q5_0 *x, int8x16_t *w0, int8x16_t *w1) {
    five_bits(x->qs, x->qh, w0, w1);
    *w0 = vsubq_s8(*w0, vdupq_n_s8(16));
    *w1 = vsubq_s8(*w1, vdupq_n_s8(16));
}
static inline float q5_0_acc(float sum, const block_q5_0 *x, const block_q8_0 *y, int isum) {
    return sum + lm_fp16_to_fp32(x->d) * lm_fp16_to_fp32(y->d) * isum;
}
LEGACY_TILE(q5_0, block_q5_0, block_q8_0)

static inline void q5_1_unpack(const block_q5_1 *x, int8x16_t *w0, int8x16_t *w1) { five_bits(x->qs, x->qh, w0, w1); }
static inline float q5_1_acc(float sum, const block_q5_1 *x, const block_q8_1 *y, int isum) {
    return sum + (lm_fp16_to_fp32(x->d) * lm_fp16_to_fp32(y->d) * isum + lm_fp16_to_fp32(x->m) * lm_fp16_to_fp32(y->s));
}
LEGACY_TILE(q5_1, block_q5_1, block_q8_1)

static inline void q8_0_unpack(const block_q8_0 *x, int8x16_t *w0, int8x16_t *w1) {
    *w0 = vld1q_s8(x->qs);
    *w1 = vld1q_s8(x->qs + 16);
}
static inline float q8_0_acc(float sum, const block_q8_0 *x, const block_q8_0 *y, int isum) {
    return sum + isum * (lm_fp16_to_fp32(x->d) * lm_fp16_to_fp32(y->d));
}
LEGACY_TILE(q8_0, block_q8_0, block_q8_0)

/* ---- k-quants (super-blocks of 256 with q8_K activations) ----
 * The integer sums are those of quant_k.c's dot_unpacked, grouped
 * differently (exact in integers); the float expression is its own. */

static inline int dot16(int8x16_t w, const int8_t *y) { return vaddvq_s32(vdotq_s32(vdupq_n_s32(0), w, vld1q_s8(y))); }

/* d * yd * isum - dmin * yd * summs, as dot_unpacked evaluates it */
static inline float k_block(float d, float dmin, float yd, int isum, int summs) {
    return d * yd * isum - dmin * yd * summs;
}

/* The k-quants' super-blocks for NT tokens at once (Y[t]: token t's
 * activation super-block): the weights unpacked once, every token's integer
 * sums, then its contribution by k_block, into C[t]. A dot adds the
 * contributions of one token block by block; a mul_mat the same for a tile
 * of tokens (KQ_TILE): the dot is the tile of one row and one token. */
#define KQ_TOKENS 4

/* q4_K / q5_K: groups 2j and 2j + 1 (32 elements each) are the low and
 * high nibbles of qs[32 j .. 32 j + 31]; QH (q5_K) gives bit 4: bit g of
 * qh[l] belongs to element 32 g + l */
static void k4_tile(const uint8_t *qs, const uint8_t *qh, const uint8_t *scales, float d, float dmin,
                    const block_q8_K *const *y, int nt, float *c) {
    uint8_t sm[16];
    q_unpack_k4_scales(scales, sm);
    int isum[KQ_TOKENS] = {0, 0, 0, 0};
    uint8x16_t qh0 = vdupq_n_u8(0), qh1 = vdupq_n_u8(0);
    if (qh) {
        qh0 = vld1q_u8(qh);
        qh1 = vld1q_u8(qh + 16);
    }
    const uint8x16_t low = vdupq_n_u8(0x0F), h10 = vdupq_n_u8(0x10);
    for (int j = 0; j < 4; j++) {
        const uint8x16_t q0 = vld1q_u8(qs + 32 * j), q1 = vld1q_u8(qs + 32 * j + 16);
        uint8x16_t a0 = vandq_u8(q0, low), a1 = vandq_u8(q1, low); /* group 2j */
        uint8x16_t b0 = vshrq_n_u8(q0, 4), b1 = vshrq_n_u8(q1, 4); /* group 2j + 1 */
        if (qh) {
            const uint8x16_t ma = vdupq_n_u8((uint8_t)(1u << (2 * j))), mb = vdupq_n_u8((uint8_t)(1u << (2 * j + 1)));
            a0 = vorrq_u8(a0, vandq_u8(vtstq_u8(qh0, ma), h10));
            a1 = vorrq_u8(a1, vandq_u8(vtstq_u8(qh1, ma), h10));
            b0 = vorrq_u8(b0, vandq_u8(vtstq_u8(qh0, mb), h10));
            b1 = vorrq_u8(b1, vandq_u8(vtstq_u8(qh1, mb), h10));
        }
        for (int t = 0; t < nt; t++) {
            const int8_t *yq = y[t]->qs + 64 * j;
            const int ga = dot16(vreinterpretq_s8_u8(a0), yq) + dot16(vreinterpretq_s8_u8(a1), yq + 16);
            const int gb = dot16(vreinterpretq_s8_u8(b0), yq + 32) + dot16(vreinterpretq_s8_u8(b1), yq + 48);
            isum[t] += sm[2 * j] * ga + sm[2 * j + 1] * gb;
        }
    }
    for (int t = 0; t < nt; t++) {
        int summs = 0;
        for (int g = 0; g < 8; g++) summs += sm[8 + g] * (y[t]->bsums[2 * g] + y[t]->bsums[2 * g + 1]);
        c[t] = k_block(d, dmin, y[t]->d, isum[t], summs);
    }
}

static inline void q4_K_sb(const block_q4_K *x, const block_q8_K *const *y, int nt, float *c) {
    k4_tile(x->qs, NULL, x->scales, lm_fp16_to_fp32(x->d), lm_fp16_to_fp32(x->dmin), y, nt, c);
}

static inline void q5_K_sb(const block_q5_K *x, const block_q8_K *const *y, int nt, float *c) {
    k4_tile(x->qs, x->qh, x->scales, lm_fp16_to_fp32(x->d), lm_fp16_to_fp32(x->dmin), y, nt, c);
}

/* q6_K: per half of 128, element l (of 32) of groups 0..3 is the low nibble
 * of ql[l], of ql[l + 32], the high nibble of ql[l], of ql[l + 32], with
 * bits 2k, 2k + 1 of qh[l] as bits 4, 5; minus 32. 16 scales of 16. */
static inline void q6_K_sb(const block_q6_K *x, const block_q8_K *const *y, int nt, float *c) {
    const uint8x16_t low = vdupq_n_u8(0x0F), three = vdupq_n_u8(3);
    const int8x16_t m32 = vdupq_n_s8(32);
    int isum[KQ_TOKENS] = {0, 0, 0, 0};
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = x->ql + 64 * h, *qh = x->qh + 32 * h;
        const int8_t *sc = x->scales + 8 * h;
        for (int l = 0; l < 32; l += 16) {
            const uint8x16_t a = vld1q_u8(ql + l), b = vld1q_u8(ql + 32 + l), hb = vld1q_u8(qh + l);
            const uint8x16_t g0 = vorrq_u8(vandq_u8(a, low), vshlq_n_u8(vandq_u8(hb, three), 4));
            const uint8x16_t g1 = vorrq_u8(vandq_u8(b, low), vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 2), three), 4));
            const uint8x16_t g2 = vorrq_u8(vshrq_n_u8(a, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 4), three), 4));
            const uint8x16_t g3 = vorrq_u8(vshrq_n_u8(b, 4), vshlq_n_u8(vshrq_n_u8(hb, 6), 4));
            const int8x16_t w0 = vsubq_s8(vreinterpretq_s8_u8(g0), m32), w1 = vsubq_s8(vreinterpretq_s8_u8(g1), m32);
            const int8x16_t w2 = vsubq_s8(vreinterpretq_s8_u8(g2), m32), w3 = vsubq_s8(vreinterpretq_s8_u8(g3), m32);
            const int s = l / 16;
            for (int t = 0; t < nt; t++) {
                const int8_t *yq = y[t]->qs + 128 * h;
                isum[t] += sc[s] * dot16(w0, yq + l) + sc[2 + s] * dot16(w1, yq + 32 + l) +
                           sc[4 + s] * dot16(w2, yq + 64 + l) + sc[6 + s] * dot16(w3, yq + 96 + l);
            }
        }
    }
    for (int t = 0; t < nt; t++) c[t] = k_block(lm_fp16_to_fp32(x->d), 0.0f, y[t]->d, isum[t], 0);
}

/* the dot and the mul_mat of a k-quant from its super-block kernel */
#define KQ_TILE(type, WBLOCK)                                                                                      \
    float type##_dot_neon(int64_t n, const void *w, const void *act) {                                           \
        const WBLOCK *x = w;                                                                                    \
        const block_q8_K *y = act;                                                                              \
        float sum = 0.0f;                                                                                       \
        for (int64_t i = 0; i < n / QK_K; i++) {                                                                \
            const block_q8_K *yi[1] = {&y[i]};                                                                  \
            float c;                                                                                            \
            type##_sb(&x[i], yi, 1, &c);                                                                        \
            sum += c;                                                                                           \
        }                                                                                                       \
        return sum;                                                                                             \
    }                                                                                                           \
    void type##_mul_mat_neon(int64_t n, const void *w, size_t w_stride, int n_rows, const void *act,             \
                             size_t act_stride, int n_tok, float *out, int64_t ld_out) {                        \
        for (int t0 = 0; t0 < n_tok; t0 += KQ_TOKENS) {                                                         \
            const int nt = n_tok - t0 < KQ_TOKENS ? n_tok - t0 : KQ_TOKENS;                                     \
            const block_q8_K *y[KQ_TOKENS];                                                                     \
            for (int t = 0; t < nt; t++) y[t] = (const block_q8_K *)((const char *)act + (size_t)(t0 + t) * act_stride); \
            for (int r = 0; r < n_rows; r++) {                                                                  \
                const WBLOCK *x = (const WBLOCK *)((const char *)w + (size_t)r * w_stride);                     \
                float sum[KQ_TOKENS] = {0.0f, 0.0f, 0.0f, 0.0f};                                                \
                for (int64_t i = 0; i < n / QK_K; i++) {                                                        \
                    const block_q8_K *yi[KQ_TOKENS];                                                            \
                    float c[KQ_TOKENS];                                                                         \
                    for (int t = 0; t < nt; t++) yi[t] = &y[t][i];                                              \
                    type##_sb(&x[i], yi, nt, c);                                                                \
                    for (int t = 0; t < nt; t++) sum[t] += c[t];                                                \
                }                                                                                               \
                for (int t = 0; t < nt; t++) out[(int64_t)(t0 + t) * ld_out + r] = sum[t];                      \
            }                                                                                                   \
        }                                                                                                       \
    }

KQ_TILE(q4_K, block_q4_K)
KQ_TILE(q5_K, block_q5_K)
KQ_TILE(q6_K, block_q6_K)

/* q2_K / q3_K: per half of 128, group k (0..3) of 32 elements is bits 2k,
 * 2k + 1 of qs[32 h + l]; q3_K subtracts 4 where bit g = 4 h + k of
 * hmask[l] is clear. 16 sub-blocks of 16. SC: the 16 scales (q3_K: minus
 * 32 already), MN: the 16 mins (q2_K) or NULL. */
static int k2_isum(const uint8_t *qs, const uint8_t *hmask, const int *sc, const int8_t *yq) {
    const uint8x16_t three = vdupq_n_u8(3), four = vdupq_n_u8(4);
    int isum = 0;
    for (int h = 0; h < 2; h++)
        for (int half = 0; half < 2; half++) {
            const uint8x16_t q = vld1q_u8(qs + 32 * h + 16 * half);
            const uint8x16_t hm = hmask ? vld1q_u8(hmask + 16 * half) : vdupq_n_u8(0xFF);
            for (int k = 0; k < 4; k++) {
                const int g = 4 * h + k;
                uint8x16_t v = vandq_u8(vshlq_u8(q, vdupq_n_s8((int8_t)(-2 * k))), three);
                int8x16_t w = vreinterpretq_s8_u8(v);
                if (hmask) { /* minus 4 where the high bit is clear */
                    const uint8x16_t clear = vceqq_u8(vtstq_u8(hm, vdupq_n_u8((uint8_t)(1u << g))), vdupq_n_u8(0));
                    w = vsubq_s8(w, vreinterpretq_s8_u8(vandq_u8(clear, four)));
                }
                const int s = 2 * g + half;
                isum += sc[s] * dot16(w, yq + 32 * g + 16 * half);
            }
        }
    return isum;
}

float q2_K_dot_neon(int64_t n, const void *w, const void *act) {
    const block_q2_K *x = w;
    const block_q8_K *y = act;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int sc[16], summs = 0;
        for (int s = 0; s < 16; s++) {
            sc[s] = x[i].scales[s] & 0xF;
            summs += (x[i].scales[s] >> 4) * y[i].bsums[s];
        }
        const int isum = k2_isum(x[i].qs, NULL, sc, y[i].qs);
        sum += k_block(lm_fp16_to_fp32(x[i].d), lm_fp16_to_fp32(x[i].dmin), y[i].d, isum, summs);
    }
    return sum;
}

float q3_K_dot_neon(int64_t n, const void *w, const void *act) {
    const block_q3_K *x = w;
    const block_q8_K *y = act;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint8_t raw[16];
        int sc[16];
        q_unpack_q3k_scales(x[i].scales, raw);
        for (int s = 0; s < 16; s++) sc[s] = raw[s] - 32;
        const int isum = k2_isum(x[i].qs, x[i].hmask, sc, y[i].qs);
        sum += k_block(lm_fp16_to_fp32(x[i].d), 0.0f, y[i].d, isum, 0);
    }
    return sum;
}

#endif
