/* softmax_exp.h - e^x for the shifted scores of a softmax (x <= max score,
 * so x <= 0), as a scalar function and an 8-lane AVX2 one that give the same
 * bits: the same float operations, FMAs where written, in the same order.
 *
 * The method is ggml's ggml_v_expf (from Arm's optimized-routines), which
 * llama.cpp's own softmax uses: n = round(x / ln 2), b = x - n ln 2 with
 * ln 2 split in two parts, e^b by a degree-5 polynomial, 2^n put into the
 * exponent bits; about 1.5 ulp from e^x. Inputs below -87 (and -inf) count
 * as -87: e^-87 = 1.6e-38, a weight that does not survive the normalization
 * and the rounding to f16 that follow. NaN stays NaN. */
#ifndef LAMINA_BACKEND_CPU_SOFTMAX_EXP_H
#define LAMINA_BACKEND_CPU_SOFTMAX_EXP_H

#include <math.h>
#include <stdint.h>

#include "base/fp16.h"

#define SOFTMAX_EXP_LO (-87.0f)

static inline float softmax_exp(float x) {
    if (x < SOFTMAX_EXP_LO) x = SOFTMAX_EXP_LO;
    const float r = 0x1.8p23f;
    const float z = fmaf(x, 0x1.715476p+0f, r);
    const float n = z - r;
    const float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    const float k = lm_bits_to_f32((lm_f32_to_bits(z) << 23) + lm_f32_to_bits(1.0f));
    const float u = b * b;
    const float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)), u,
                         0x1.ffffecp-1f * b);
    return fmaf(j, k, k);
}

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

static inline __m256 softmax_exp8(__m256 x) {
    x = _mm256_max_ps(_mm256_set1_ps(SOFTMAX_EXP_LO), x); /* a NaN lane keeps x, as the scalar test */
    const __m256 r = _mm256_set1_ps(0x1.8p23f);
    const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
    const __m256 n = _mm256_sub_ps(z, r);
    const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f),
                                      _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
    const __m256i e = _mm256_slli_epi32(_mm256_castps_si256(z), 23);
    const __m256 k = _mm256_castsi256_ps(_mm256_add_epi32(e, _mm256_castps_si256(_mm256_set1_ps(1.0f))));
    const __m256 u = _mm256_mul_ps(b, b);
    const __m256 j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)), u,
                        _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f))),
        u, _mm256_mul_ps(_mm256_set1_ps(0x1.ffffecp-1f), b));
    return _mm256_fmadd_ps(j, k, k);
}
#endif

#endif
