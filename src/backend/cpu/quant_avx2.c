/* quant_avx2.c - AVX2 dequantization of the 32-element block types (q4_0,
 * q4_1, q5_0, q5_1, q8_0) and the float types, and the activation
 * quantizers (q8_0, q8_1, q8_K, f16, bf16); the 32-element dots are in
 * quant_legacy_avx2.c, the float dots and products in quant_float_avx2.c.
 * Dequantization and the quantizers are bit-exact with the scalar references (quant_legacy.c, quant_k.c,
 * quant_float.c). */
#include "backend/cpu/quant_blocks.h"
#include "backend/cpu/quant_impl.h"
#include "backend/cpu/quant_x86.h"

/* ---- dequantization ---- */

void q4_0_dequant_avx2(const void *src, float *dst, int64_t n) {
    const block_q4_0 *x = src;
    for (int64_t i = 0; i < n / QK4_0; i++, dst += QK4_0) {
        const __m256i q = _mm256_sub_epi8(q_nibbles_32(x[i].qs), _mm256_set1_epi8(8));
        q_store_scaled32(dst, q, q_h2f(x[i].d));
    }
}

void q4_1_dequant_avx2(const void *src, float *dst, int64_t n) {
    const block_q4_1 *x = src;
    for (int64_t i = 0; i < n / QK4_1; i++, dst += QK4_1)
        q_store_scaled32_add(dst, q_nibbles_32(x[i].qs), q_h2f(x[i].d), q_h2f(x[i].m));
}

void q5_0_dequant_avx2(const void *src, float *dst, int64_t n) {
    const block_q5_0 *x = src;
    for (int64_t i = 0; i < n / QK5_0; i++, dst += QK5_0) {
        const __m256i q = _mm256_sub_epi8(q_q5_32(x[i].qs, x[i].qh), _mm256_set1_epi8(16));
        q_store_scaled32(dst, q, q_h2f(x[i].d));
    }
}

void q5_1_dequant_avx2(const void *src, float *dst, int64_t n) {
    const block_q5_1 *x = src;
    for (int64_t i = 0; i < n / QK5_1; i++, dst += QK5_1)
        q_store_scaled32_add(dst, q_q5_32(x[i].qs, x[i].qh), q_h2f(x[i].d), q_h2f(x[i].m));
}

void q8_0_dequant_avx2(const void *src, float *dst, int64_t n) {
    const block_q8_0 *x = src;
    for (int64_t i = 0; i < n / QK8_0; i++, dst += QK8_0)
        q_store_scaled32(dst, _mm256_loadu_si256((const __m256i *)x[i].qs), q_h2f(x[i].d));
}

/* ---- activation quantizers ---- */

static inline float amax32(const float *x) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_andnot_ps(sign, _mm256_loadu_ps(x));
    for (int k = 8; k < 32; k += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)));
    __m128 r = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
    r = _mm_max_ps(r, _mm_movehl_ps(r, r));
    r = _mm_max_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

/* nearbyintf(x[k] * id), half to even, for the 32 values of a block -> 4 x 8 int32 */
static inline void round_block(const float *x, float id, __m256i out[4]) {
    const __m256 mul = _mm256_set1_ps(id);
    for (int k = 0; k < 4; k++)
        out[k] = _mm256_cvtps_epi32(
            _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), mul), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

void q8_0_quantize_avx2(const float *src, void *dst, int64_t n) {
    block_q8_0 *y = dst;
    for (int64_t i = 0; i < n / QK8_0; i++, src += QK8_0) {
        const float amax = amax32(src);
        const float d = amax / 127;
        const float id = amax ? 127.0f / amax : 0.0f;
        y[i].d = lm_fp32_to_fp16(d);
        __m256i q[4];
        round_block(src, id, q);
        _mm256_storeu_si256((__m256i *)y[i].qs, q_pack_i32_to_i8(q[0], q[1], q[2], q[3]));
    }
}

void q8_1_quantize_avx2(const float *src, void *dst, int64_t n) {
    block_q8_1 *y = dst;
    for (int64_t i = 0; i < n / QK8_1; i++, src += QK8_1) {
        const float amax = amax32(src);
        const float d = amax / 127;
        const float id = amax ? 127.0f / amax : 0.0f;
        y[i].d = lm_fp32_to_fp16(d);
        __m256i q[4];
        round_block(src, id, q);
        const int sum = q_hsum_i32x8(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
        y[i].s = lm_fp32_to_fp16(sum * d);
        _mm256_storeu_si256((__m256i *)y[i].qs, q_pack_i32_to_i8(q[0], q[1], q[2], q[3]));
    }
}

/* the first element of largest magnitude, with its sign */
static float signed_amax256(const float *x) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    for (int k = 0; k < QK_K; k += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)));
    __m128 r = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
    r = _mm_max_ps(r, _mm_movehl_ps(r, r));
    r = _mm_max_ss(r, _mm_movehdup_ps(r));
    const __m256 amax = _mm256_set1_ps(_mm_cvtss_f32(r));
    for (int k = 0; k < QK_K; k += 8) {
        const __m256 ax = _mm256_andnot_ps(sign, _mm256_loadu_ps(x + k));
        const int mask = _mm256_movemask_ps(_mm256_cmp_ps(ax, amax, _CMP_EQ_OQ));
        if (mask) return x[k + __builtin_ctz((unsigned)mask)];
    }
    return 0.0f;
}

void q8_K_quantize_avx2(const float *src, void *dst, int64_t n) {
    block_q8_K *y = dst;
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        const float max = signed_amax256(src);
        if (!max) {
            memset(&y[i], 0, sizeof(y[i]));
            continue;
        }
        const float iscale = -127.f / max;
        const __m256 mul = _mm256_set1_ps(iscale);
        for (int g = 0; g < QK_K / 32; g++) {
            __m256i q[4];
            for (int k = 0; k < 4; k++) /* cvtps rounds half to even, as nearest_int */
                q[k] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(src + 32 * g + 8 * k), mul));
            _mm256_storeu_si256((__m256i *)(y[i].qs + 32 * g), q_pack_i32_to_i8(q[0], q[1], q[2], q[3]));
            y[i].bsums[2 * g] = (int16_t)q_hsum_i32x8(_mm256_add_epi32(q[0], q[1]));
            y[i].bsums[2 * g + 1] = (int16_t)q_hsum_i32x8(_mm256_add_epi32(q[2], q[3]));
        }
        y[i].d = 1 / iscale;
    }
}

/* ---- float types ---- */

void f32_dequant_avx2(const void *src, float *dst, int64_t n) { memcpy(dst, src, (size_t)n * sizeof(float)); }

void f16_dequant_avx2(const void *src, float *dst, int64_t n) {
    const lm_fp16 *x = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
    for (; i < n; i++) dst[i] = lm_fp16_to_fp32(x[i]);
}

void f16_quantize_avx2(const float *src, void *dst, int64_t n) {
    lm_fp16 *y = dst;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = lm_fp32_to_fp16(src[i]);
}

static inline __m256 bf16x8_to_f32(const lm_bf16 *p) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}

void bf16_dequant_avx2(const void *src, float *dst, int64_t n) {
    const lm_bf16 *x = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, bf16x8_to_f32(x + i));
    for (; i < n; i++) dst[i] = lm_bf16_to_fp32(x[i]);
}

/* 8 floats -> 8 bf16 (in the low 16 bits of each int32), as lm_fp32_to_bf16 */
static inline __m256i f32x8_to_bf16(__m256 v) {
    const __m256i u = _mm256_castps_si256(v);
    const __m256i abs = _mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff));
    const __m256i is_nan = _mm256_cmpgt_epi32(abs, _mm256_set1_epi32(0x7f800000));
    const __m256i nan = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(64));
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), 16);
    return _mm256_blendv_epi8(rounded, nan, is_nan);
}

void bf16_quantize_avx2(const float *src, void *dst, int64_t n) {
    lm_bf16 *y = dst;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256i a = f32x8_to_bf16(_mm256_loadu_ps(src + i));
        const __m256i b = f32x8_to_bf16(_mm256_loadu_ps(src + i + 8));
        const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), _MM_SHUFFLE(3, 1, 2, 0));
        _mm256_storeu_si256((__m256i *)(y + i), packed);
    }
    for (; i < n; i++) y[i] = lm_fp32_to_bf16(src[i]);
}

