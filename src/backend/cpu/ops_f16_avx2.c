/* ops_f16_avx2.c - AVX2/F16C versions of the f16 helpers in ops_f16.c. */
#include <immintrin.h>
#include <math.h>

#include "backend/cpu/ops.h"

float op_dot_f32_f16_avx2(const float *x, const lm_fp16 *y, int n) {
    __m256 acc = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 yv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + i)));
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), yv, acc);
    }
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    float sum = _mm_cvtss_f32(s);
    for (; i < n; i++) sum += x[i] * lm_fp16_to_fp32(y[i]);
    return sum;
}

void op_axpy_f16_avx2(float *y, float a, const lm_fp16 *x, int n) {
    const __m256 av = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 xv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i)));
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, xv, _mm256_loadu_ps(y + i)));
    }
    for (; i < n; i++) y[i] += a * lm_fp16_to_fp32(x[i]);
}

void op_f32_to_f16_avx2(lm_fp16 *dst, const float *src, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), 0));
    for (; i < n; i++) dst[i] = lm_fp32_to_fp16(src[i]);
}

/* Heads of one GQA group per pass, this many at a time (their accumulators
 * stay in registers while a K or V row chunk is converted once for all). */
#define GROUP_TILE 4

/* the same horizontal sum as op_dot_f32_f16_avx2 */
static inline float hsum(__m256 acc) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float round_f16(float x) { return lm_fp16_to_fp32(lm_fp32_to_fp16(x)); }

/* op_attend for NG <= GROUP_TILE heads, HEAD_DIM a multiple of 8. Each
 * head's K dots, softmax and V sums run the operations of op_attend's
 * one-head path in the same order (dot: FMAs over 8-wide chunks, then the
 * same horizontal sum; V: out += w_j * V_j for j ascending per element), so
 * the results are bit-identical; only the conversions and loads of K/V rows
 * are shared, and there is no call per position. */
static void attend_tile(float *out, const float *q, int ng, const lm_fp16 *const *keys,
                        const lm_fp16 *const *values, int n_kv, int head_dim, float scale, float softcap,
                        float *scratch) {
    float q16[GROUP_TILE][1024];
    for (int g = 0; g < ng; g++)
        for (int i = 0; i < head_dim; i++) q16[g][i] = round_f16(q[(size_t)g * head_dim + i]);
    float max[GROUP_TILE];
    for (int g = 0; g < ng; g++) max[g] = -INFINITY;
    for (int j = 0; j < n_kv; j++) {
        const lm_fp16 *k = keys[j];
        __m256 acc[GROUP_TILE];
        for (int g = 0; g < GROUP_TILE; g++) acc[g] = _mm256_setzero_ps();
        for (int i = 0; i < head_dim; i += 8) {
            const __m256 kv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + i)));
            for (int g = 0; g < ng; g++) acc[g] = _mm256_fmadd_ps(_mm256_loadu_ps(q16[g] + i), kv, acc[g]);
        }
        for (int g = 0; g < ng; g++) {
            float s = hsum(acc[g]) * scale;
            if (softcap > 0.0f) s = softcap * tanhf(s / softcap);
            scratch[(size_t)g * n_kv + j] = s;
            if (s > max[g]) max[g] = s;
        }
    }
    for (int g = 0; g < ng; g++) {
        float *w = scratch + (size_t)g * n_kv;
        double sum = 0.0;
        for (int j = 0; j < n_kv; j++) {
            w[j] = expf(w[j] - max[g]);
            sum += w[j];
        }
        const float inv = (float)(1.0 / sum);
        for (int j = 0; j < n_kv; j++) w[j] = round_f16(w[j] * inv);
    }
    for (int i = 0; i < head_dim; i += 8) {
        __m256 acc[GROUP_TILE];
        for (int g = 0; g < GROUP_TILE; g++) acc[g] = _mm256_setzero_ps();
        for (int j = 0; j < n_kv; j++) {
            const __m256 vv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(values[j] + i)));
            for (int g = 0; g < ng; g++)
                acc[g] = _mm256_fmadd_ps(_mm256_set1_ps(scratch[(size_t)g * n_kv + j]), vv, acc[g]);
        }
        for (int g = 0; g < ng; g++) _mm256_storeu_ps(out + (size_t)g * head_dim + i, acc[g]);
    }
}

void op_attend_group_avx2(float *out, const float *q, int n_heads, const lm_fp16 *const *keys,
                          const lm_fp16 *const *values, int n_kv, int head_dim, float scale, float softcap,
                          float *scratch) {
    for (int g0 = 0; g0 < n_heads; g0 += GROUP_TILE) {
        const int ng = n_heads - g0 < GROUP_TILE ? n_heads - g0 : GROUP_TILE;
        attend_tile(out + (size_t)g0 * head_dim, q + (size_t)g0 * head_dim, ng, keys, values, n_kv, head_dim, scale,
                    softcap, scratch + (size_t)g0 * n_kv);
    }
}
