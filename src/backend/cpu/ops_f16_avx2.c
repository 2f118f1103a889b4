/* ops_f16_avx2.c - AVX2/F16C versions of the f16 helpers in ops_f16.c. */
#include <immintrin.h>
#include <math.h>

#include "backend/cpu/ops.h"
#include "backend/cpu/softmax_exp.h"

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

void op_exp_shifted_avx2(float *w, int n, float shift) {
    const __m256 sv = _mm256_set1_ps(shift);
    int j = 0;
    for (; j + 8 <= n; j += 8) _mm256_storeu_ps(w + j, softmax_exp8(_mm256_sub_ps(_mm256_loadu_ps(w + j), sv)));
    for (; j < n; j++) w[j] = softmax_exp(w[j] - shift);
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

/* x rounded to f16 and back by F16C: for every non-NaN float the value of
 * lm_fp16_to_fp32(lm_fp32_to_fp16(x)), round to nearest even, in 2 µops */
static inline float round_f16(float x) { return _cvtsh_ss(_cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT)); }

#define ATT_INLINE static inline __attribute__((always_inline))
#define ATT_UNROLL _Pragma("GCC unroll 8")

/* keys whose dots run side by side, and 8-float column chunks of V summed
 * side by side: independent FMA chains, so neither waits on FMA latency */
#define KEY_TILE 2
#define V_CHUNKS (8 / GROUP_TILE)

/* the dots of NG heads with KT keys from key j */
ATT_INLINE void k_dots(int NG, int KT, const float (*q16)[OP_MAX_HEAD_DIM], const lm_fp16 *const *keys, int j,
                       int head_dim, __m256 (*acc)[KEY_TILE]) {
    ATT_UNROLL
    for (int g = 0; g < NG; g++)
        ATT_UNROLL
        for (int k = 0; k < KT; k++) acc[g][k] = _mm256_setzero_ps();
    for (int i = 0; i < head_dim; i += 8) {
        ATT_UNROLL
        for (int k = 0; k < KT; k++) {
            const __m256 kv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(keys[j + k] + i)));
            ATT_UNROLL
            for (int g = 0; g < NG; g++) acc[g][k] = _mm256_fmadd_ps(_mm256_loadu_ps(q16[g] + i), kv, acc[g][k]);
        }
    }
}

/* out[g][i0 .. i0 + 8 NC) = sum over j ascending of w_g[j] * V_j, per element */
ATT_INLINE void v_sums(int NG, int NC, float *out, int i0, const lm_fp16 *const *values, int n_kv, int head_dim,
                       const float *scratch) {
    __m256 acc[GROUP_TILE][V_CHUNKS * 2];
    ATT_UNROLL
    for (int g = 0; g < NG; g++)
        ATT_UNROLL
        for (int c = 0; c < NC; c++) acc[g][c] = _mm256_setzero_ps();
    for (int j = 0; j < n_kv; j++) {
        __m256 vv[V_CHUNKS * 2];
        ATT_UNROLL
        for (int c = 0; c < NC; c++) vv[c] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(values[j] + i0 + 8 * c)));
        ATT_UNROLL
        for (int g = 0; g < NG; g++) {
            const __m256 wv = _mm256_set1_ps(scratch[(size_t)g * n_kv + j]);
            ATT_UNROLL
            for (int c = 0; c < NC; c++) acc[g][c] = _mm256_fmadd_ps(wv, vv[c], acc[g][c]);
        }
    }
    ATT_UNROLL
    for (int g = 0; g < NG; g++)
        ATT_UNROLL
        for (int c = 0; c < NC; c++) _mm256_storeu_ps(out + (size_t)g * head_dim + i0 + 8 * c, acc[g][c]);
}

/* op_attend for NG <= GROUP_TILE heads (a compile-time constant), HEAD_DIM a
 * multiple of 8. Each head's K dots, softmax and V sums run the operations
 * of op_attend's one-head path in the same order (dot: FMAs over 8-wide
 * chunks, then the same horizontal sum; V: out += w_j * V_j for j ascending
 * per element), so the results are bit-identical; only the conversions and
 * loads of K/V rows are shared, several keys and column chunks run side by
 * side, and there is no call per position. */
ATT_INLINE void attend_tile(int NG, float *out, const float *q, const lm_fp16 *const *keys,
                            const lm_fp16 *const *values, int n_kv, int head_dim, float scale, float softcap,
                            float *scratch) {
    float q16[GROUP_TILE][OP_MAX_HEAD_DIM];
    for (int g = 0; g < NG; g++)
        for (int i = 0; i < head_dim; i++) q16[g][i] = round_f16(q[(size_t)g * head_dim + i]);
    float max[GROUP_TILE];
    for (int g = 0; g < NG; g++) max[g] = -INFINITY;
    for (int j = 0; j < n_kv;) {
        __m256 acc[GROUP_TILE][KEY_TILE];
        const int kt = n_kv - j >= KEY_TILE ? KEY_TILE : 1;
        if (kt == KEY_TILE) k_dots(NG, KEY_TILE, (const float(*)[OP_MAX_HEAD_DIM])q16, keys, j, head_dim, acc);
        else k_dots(NG, 1, (const float(*)[OP_MAX_HEAD_DIM])q16, keys, j, head_dim, acc);
        for (int k = 0; k < kt; k++, j++)
            for (int g = 0; g < NG; g++) {
                float s = hsum(acc[g][k]) * scale;
                if (softcap > 0.0f) s = softcap * tanhf(s / softcap);
                scratch[(size_t)g * n_kv + j] = s;
                if (s > max[g]) max[g] = s;
            }
    }
    for (int g = 0; g < NG; g++) {
        float *w = scratch + (size_t)g * n_kv;
        /* the exponentials first, 8 at a time, then their sum in order */
        op_exp_shifted_avx2(w, n_kv, max[g]);
        double sum = 0.0;
        for (int j = 0; j < n_kv; j++) sum += w[j];
        const float inv = (float)(1.0 / sum);
        const __m256 invv = _mm256_set1_ps(inv);
        int j = 0;
        for (; j + 8 <= n_kv; j += 8) {
            const __m256 p = _mm256_mul_ps(_mm256_loadu_ps(w + j), invv);
            _mm256_storeu_ps(w + j, _mm256_cvtph_ps(_mm256_cvtps_ph(p, _MM_FROUND_TO_NEAREST_INT)));
        }
        for (; j < n_kv; j++) w[j] = round_f16(w[j] * inv);
    }
    /* column chunks: 2 x V_CHUNKS at a time for one or two heads, V_CHUNKS for more */
    const int nc = NG <= 2 ? 2 * V_CHUNKS : V_CHUNKS;
    int i = 0;
    if (nc == 2 * V_CHUNKS)
        for (; i + 16 * V_CHUNKS <= head_dim; i += 16 * V_CHUNKS)
            v_sums(NG, 2 * V_CHUNKS, out, i, values, n_kv, head_dim, scratch);
    for (; i + 8 * V_CHUNKS <= head_dim; i += 8 * V_CHUNKS) v_sums(NG, V_CHUNKS, out, i, values, n_kv, head_dim, scratch);
    for (; i < head_dim; i += 8) v_sums(NG, 1, out, i, values, n_kv, head_dim, scratch);
}

void op_attend_group_avx2(float *out, const float *q, int n_heads, const lm_fp16 *const *keys,
                          const lm_fp16 *const *values, int n_kv, int head_dim, float scale, float softcap,
                          float *scratch) {
    for (int g0 = 0; g0 < n_heads; g0 += GROUP_TILE) {
        const int ng = n_heads - g0 < GROUP_TILE ? n_heads - g0 : GROUP_TILE;
        float *o = out + (size_t)g0 * head_dim, *sc = scratch + (size_t)g0 * n_kv;
        const float *qg = q + (size_t)g0 * head_dim;
        switch (ng) { /* each group size its own unrolled copy */
        case 1: attend_tile(1, o, qg, keys, values, n_kv, head_dim, scale, softcap, sc); break;
        case 2: attend_tile(2, o, qg, keys, values, n_kv, head_dim, scale, softcap, sc); break;
        case 3: attend_tile(3, o, qg, keys, values, n_kv, head_dim, scale, softcap, sc); break;
        default: attend_tile(4, o, qg, keys, values, n_kv, head_dim, scale, softcap, sc); break;
        }
    }
}
