/* quant_k.c - scalar reference kernels of the k-quants (super-blocks of 256):
 * q2_K, q3_K, q4_K, q5_K, q6_K (weights) and q8_K (their activation type).
 *
 * Every type is first unpacked to one form: 256 signed quants q, an integer
 * scale and min per sub-block of 16, and the float super-block scales, with
 *     x[i] = (d * sc[i / 16]) * q[i] - dmin * mn[i / 16].
 * Dequantization evaluates exactly that (bit-exact with ggml's
 * dequantize_row_*); the dots take the exact integer sums
 * sum_s sc[s] * (q . q8 over s) and sum_s mn[s] * bsums[s], then apply d and
 * dmin, as ggml_vec_dot_*_q8_K_generic. q8_K quantization is bit-exact with
 * quantize_row_q8_K_ref. The loops are plain so compilers vectorize them. */
/* GCC's -O2 vectorizes only "very cheap" loops; the unpack and dot loops
 * here gain 2-9x from its cheap model (no effect on results: no float
 * reassociation, no contraction). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("vect-cost-model=cheap")
#endif

#include <math.h>

#include "backend/cpu/quant_blocks.h"
#include "backend/cpu/quant_impl.h"

typedef struct {
    int8_t q[QK_K];
    int16_t sc[QK_K / 16];
    int16_t mn[QK_K / 16]; /* zero for the types without mins */
    float d, dmin;
} k_unpacked;

/* round half to even for |x| < 2^22 (ggml's nearest_int) */
static inline int nearest_int(float x) {
    float v = x + 12582912.f;
    int32_t i;
    memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
}

/* the 2-bit fields of q2_K / q3_K: each 32 bytes hold 4 groups of 32 */
static void unpack_2bit(const uint8_t *qs, int8_t *q) {
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++) q[128 * h + 32 * k + l] = (int8_t)((qs[32 * h + l] >> (2 * k)) & 3);
}

/* the 4-bit fields of q4_K / q5_K: each 32 bytes hold 2 groups of 32 */
static void unpack_4bit(const uint8_t *qs, int8_t *q) {
    for (int j = 0; j < 4; j++)
        for (int l = 0; l < 32; l++) {
            q[64 * j + l] = (int8_t)(qs[32 * j + l] & 0x0F);
            q[64 * j + 32 + l] = (int8_t)(qs[32 * j + l] >> 4);
        }
}

static void unpack_q2_K(const block_q2_K *b, k_unpacked *u) {
    unpack_2bit(b->qs, u->q);
    for (int s = 0; s < 16; s++) {
        u->sc[s] = b->scales[s] & 0xF;
        u->mn[s] = b->scales[s] >> 4;
    }
    u->d = lm_fp16_to_fp32(b->d);
    u->dmin = lm_fp16_to_fp32(b->dmin);
}

static void unpack_q3_K(const block_q3_K *b, k_unpacked *u) {
    unpack_2bit(b->qs, u->q);
    /* bit g of hmask[l] is the high bit of element 32 g + l; clear means - 4 */
    for (int g = 0; g < 8; g++)
        for (int l = 0; l < 32; l++) u->q[32 * g + l] -= (int8_t)(((b->hmask[l] >> g) & 1) ? 0 : 4);
    uint8_t sc[16];
    q_unpack_q3k_scales(b->scales, sc);
    for (int s = 0; s < 16; s++) {
        u->sc[s] = (int16_t)(sc[s] - 32);
        u->mn[s] = 0;
    }
    u->d = lm_fp16_to_fp32(b->d);
    u->dmin = 0.0f;
}

/* the scales and mins of q4_K / q5_K: one 6-bit pair per group of 32 */
static void k4_scales(const uint8_t *packed, k_unpacked *u) {
    uint8_t sm[16];
    q_unpack_k4_scales(packed, sm);
    for (int s = 0; s < 16; s++) {
        u->sc[s] = sm[s / 2];
        u->mn[s] = sm[8 + s / 2];
    }
}

static void unpack_q4_K(const block_q4_K *b, k_unpacked *u) {
    unpack_4bit(b->qs, u->q);
    k4_scales(b->scales, u);
    u->d = lm_fp16_to_fp32(b->d);
    u->dmin = lm_fp16_to_fp32(b->dmin);
}

static void unpack_q5_K(const block_q5_K *b, k_unpacked *u) {
    unpack_4bit(b->qs, u->q);
    /* bit g of qh[l] is bit 4 of element 32 g + l */
    for (int g = 0; g < 8; g++)
        for (int l = 0; l < 32; l++) u->q[32 * g + l] += (int8_t)(((b->qh[l] >> g) & 1) << 4);
    k4_scales(b->scales, u);
    u->d = lm_fp16_to_fp32(b->d);
    u->dmin = lm_fp16_to_fp32(b->dmin);
}

static void unpack_q6_K(const block_q6_K *b, k_unpacked *u) {
    /* per 128: groups 0,1 are the low nibbles of ql[0..63], 2,3 the high;
     * group k takes bits 2k, 2k+1 of qh[l] as bits 4, 5 */
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
        int8_t *q = u->q + 128 * h;
        for (int l = 0; l < 32; l++) {
            q[l] = (int8_t)(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
            q[l + 32] = (int8_t)(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
            q[l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
            q[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
    }
    for (int s = 0; s < 16; s++) {
        u->sc[s] = b->scales[s];
        u->mn[s] = 0;
    }
    u->d = lm_fp16_to_fp32(b->d);
    u->dmin = 0.0f;
}

/* ---- the generic bodies ---- */

static void dequant_unpacked(const k_unpacked *u, float *dst) {
    for (int s = 0; s < QK_K / 16; s++) {
        const float dl = u->d * u->sc[s], ml = u->dmin * u->mn[s];
        for (int l = 0; l < 16; l++) dst[16 * s + l] = dl * u->q[16 * s + l] - ml;
    }
}

static float dot_unpacked(const k_unpacked *u, const block_q8_K *y) {
    int isum = 0, summs = 0;
    for (int s = 0; s < QK_K / 16; s++) {
        int sub = 0;
        for (int l = 0; l < 16; l++) sub += u->q[16 * s + l] * y->qs[16 * s + l];
        isum += u->sc[s] * sub;
        summs += u->mn[s] * y->bsums[s];
    }
    return u->d * y->d * isum - u->dmin * y->d * summs;
}

#define K_KERNELS(type)                                                                            \
    void type##_dequant_ref(const void *src, float *dst, int64_t n) {                              \
        const block_##type *x = src;                                                               \
        k_unpacked u;                                                                              \
        for (int64_t i = 0; i < n / QK_K; i++) {                                                   \
            unpack_##type(&x[i], &u);                                                              \
            dequant_unpacked(&u, dst + i * QK_K);                                                  \
        }                                                                                          \
    }                                                                                              \
    float type##_dot_ref(int64_t n, const void *w, const void *act) {                              \
        const block_##type *x = w;                                                                 \
        const block_q8_K *y = act;                                                                 \
        k_unpacked u;                                                                              \
        float sum = 0.0f;                                                                          \
        for (int64_t i = 0; i < n / QK_K; i++) {                                                   \
            unpack_##type(&x[i], &u);                                                              \
            sum += dot_unpacked(&u, &y[i]);                                                        \
        }                                                                                          \
        return sum;                                                                                \
    }

K_KERNELS(q2_K)
K_KERNELS(q3_K)
K_KERNELS(q4_K)
K_KERNELS(q5_K)
K_KERNELS(q6_K)

/* ---- q8_K activations ---- */

void q8_K_quantize_ref(const float *src, void *dst, int64_t n) {
    block_q8_K *y = dst;
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK_K; j++) {
            if (fabsf(src[j]) > amax) {
                amax = fabsf(src[j]);
                max = src[j];
            }
        }
        if (!amax) {
            memset(&y[i], 0, sizeof(y[i]));
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < QK_K; j++) {
            const int v = nearest_int(iscale * src[j]);
            y[i].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < QK_K / 16; j++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) sum += y[i].qs[16 * j + l];
            y[i].bsums[j] = (int16_t)sum;
        }
        y[i].d = 1 / iscale;
    }
}
