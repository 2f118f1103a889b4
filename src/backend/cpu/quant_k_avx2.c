/* quant_k_avx2.c - AVX2 kernels of the k-quants (q2_K ... q6_K).
 *
 * Dots follow ggml's arch/x86/quants.c: per super-block, the quants of 32
 * elements are unpacked to unsigned bytes, multiplied with the q8_K bytes by
 * maddubs (16-bit pair sums), then by the 16-bit sub-block scales with madd
 * into 8 int32 lanes; the min terms use the precomputed q8_K bsums. One FMA
 * per super-block applies the float scale. Dequantization is bit-exact with
 * quant_k.c. */
#include "backend/cpu/quant_blocks.h"
#include "backend/cpu/quant_impl.h"
#include "backend/cpu/quant_x86.h"

/* ---- dequantization: unpack 32 bytes of quants, store with float scales ---- */

void q2_K_dequant_avx2(const void *src, float *dst, int64_t n) {
    const block_q2_K *x = src;
    const __m256i m3 = _mm256_set1_epi8(3);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = q_h2f(x[i].d), min = q_h2f(x[i].dmin);
        for (int g = 0; g < 8; g++, dst += 32) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * (g / 4)));
            const __m256i q = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * (g % 4)), m3);
            const uint8_t s0 = x[i].scales[2 * g], s1 = x[i].scales[2 * g + 1];
            q_store_scaled16_add(dst, _mm256_castsi256_si128(q), d * (s0 & 0xF), -(min * (s0 >> 4)));
            q_store_scaled16_add(dst + 16, _mm256_extracti128_si256(q, 1), d * (s1 & 0xF), -(min * (s1 >> 4)));
        }
    }
}

/* the 32 signed 3-bit quants of group g (0..7) of a q3_K block, in [-4, 3] */
static inline __m256i q3_group(const block_q3_K *b, __m256i hbits, int g) {
    const __m256i bits = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * (g / 4)));
    const __m256i low = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * (g % 4)), _mm256_set1_epi8(3));
    const __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hbits, g), _mm256_set1_epi8(1));
    const __m256i sub4 = _mm256_slli_epi16(_mm256_xor_si256(hb, _mm256_set1_epi8(1)), 2);
    return _mm256_sub_epi8(low, sub4);
}

void q3_K_dequant_avx2(const void *src, float *dst, int64_t n) {
    const block_q3_K *x = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = q_h2f(x[i].d);
        uint8_t sc[16];
        q_unpack_q3k_scales(x[i].scales, sc);
        const __m256i hbits = _mm256_loadu_si256((const __m256i *)x[i].hmask);
        for (int g = 0; g < 8; g++, dst += 32) {
            const __m256i q = q3_group(&x[i], hbits, g);
            q_store_scaled16(dst, _mm256_castsi256_si128(q), d * (sc[2 * g] - 32));
            q_store_scaled16(dst + 16, _mm256_extracti128_si256(q, 1), d * (sc[2 * g + 1] - 32));
        }
    }
}

void q4_K_dequant_avx2(const void *src, float *dst, int64_t n) {
    const block_q4_K *x = src;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = q_h2f(x[i].d), min = q_h2f(x[i].dmin);
        uint8_t sm[16];
        q_unpack_k4_scales(x[i].scales, sm);
        for (int g = 0; g < 8; g++, dst += 32) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * (g / 2)));
            const __m256i q = _mm256_and_si256(_mm256_srli_epi16(bits, 4 * (g % 2)), m4);
            q_store_scaled32_add(dst, q, d * sm[g], -(min * sm[8 + g]));
        }
    }
}

void q5_K_dequant_avx2(const void *src, float *dst, int64_t n) {
    const block_q5_K *x = src;
    const __m256i m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = q_h2f(x[i].d), min = q_h2f(x[i].dmin);
        uint8_t sm[16];
        q_unpack_k4_scales(x[i].scales, sm);
        const __m256i hbits = _mm256_loadu_si256((const __m256i *)x[i].qh);
        for (int g = 0; g < 8; g++, dst += 32) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * (g / 2)));
            const __m256i lo = _mm256_and_si256(_mm256_srli_epi16(bits, 4 * (g % 2)), m4);
            const __m256i hi = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, g), one), 4);
            q_store_scaled32_add(dst, _mm256_or_si256(lo, hi), d * sm[g], -(min * sm[8 + g]));
        }
    }
}

/* the 32 unsigned 6-bit quants (0..63) of group g of a q6_K block */
static inline __m256i q6_group(const block_q6_K *b, int g) {
    const int half = g / 4, k = g % 4;
    const __m256i ql = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * half + 32 * (k % 2)));
    const __m256i qh = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * half));
    const __m256i lo = _mm256_and_si256(_mm256_srli_epi16(ql, 4 * (k / 2)), _mm256_set1_epi8(0x0F));
    const __m256i hi = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * k), _mm256_set1_epi8(3)), 4);
    return _mm256_or_si256(lo, hi);
}

void q6_K_dequant_avx2(const void *src, float *dst, int64_t n) {
    const block_q6_K *x = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = q_h2f(x[i].d);
        for (int g = 0; g < 8; g++, dst += 32) {
            const __m256i q = _mm256_sub_epi8(q6_group(&x[i], g), _mm256_set1_epi8(32));
            q_store_scaled16(dst, _mm256_castsi256_si128(q), d * x[i].scales[2 * g]);
            q_store_scaled16(dst + 16, _mm256_extracti128_si256(q, 1), d * x[i].scales[2 * g + 1]);
        }
    }
}

/* ---- dots ---- */

/* 16-bit scale s[2k] in the low 128-bit lane and s[2k+1] in the high one,
 * from a vector holding 8 int16 scales in both lanes */
static inline __m256i scale_pair(__m256i scales, int k) {
    const __m256i lo = _mm256_set1_epi16((short)(0x0100 + 0x0202 * (2 * k)));
    const __m256i hi = _mm256_set1_epi16((short)(0x0100 + 0x0202 * (2 * k + 1)));
    return _mm256_shuffle_epi8(scales, _mm256_permute2x128_si256(lo, hi, 0x20));
}

/* 8 int16 scales (one 128-bit half) duplicated into both lanes */
static inline __m256i dup128(__m128i v) { return _mm256_inserti128_si256(_mm256_castsi128_si256(v), v, 1); }

float q2_K_dot_avx2(int64_t n, const void *w, const void *act) {
    const block_q2_K *x = w;
    const block_q8_K *y = act;
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = y[i].d * q_h2f(x[i].d);
        const float dmin = -y[i].d * q_h2f(x[i].dmin);
        const __m128i packed = _mm_loadu_si128((const __m128i *)x[i].scales);
        const __m128i scales8 = _mm_and_si128(packed, _mm_set1_epi8(0x0F));
        const __m128i mins8 = _mm_and_si128(_mm_srli_epi16(packed, 4), _mm_set1_epi8(0x0F));
        const __m256i prod = _mm256_madd_epi16(_mm256_cvtepi8_epi16(mins8), _mm256_loadu_si256((const __m256i *)y[i].bsums));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(prod), acc);

        const __m256i all = _mm256_cvtepi8_epi16(scales8);
        const __m256i scales[2] = {dup128(_mm256_castsi256_si128(all)), dup128(_mm256_extracti128_si256(all, 1))};
        __m256i sumi = _mm256_setzero_si256();
        Q_UNROLL
        for (int h = 0; h < 2; h++) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * h));
            Q_UNROLL
            for (int k = 0; k < 4; k++) {
                const __m256i q2 = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * k), m3);
                const __m256i q8 = _mm256_loadu_si256((const __m256i *)(y[i].qs + 128 * h + 32 * k));
                const __m256i p = _mm256_madd_epi16(scale_pair(scales[h], k), _mm256_maddubs_epi16(q2, q8));
                sumi = _mm256_add_epi32(sumi, p);
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return q_hsum_f32x8(acc);
}

float q3_K_dot_avx2(int64_t n, const void *w, const void *act) {
    const block_q3_K *x = w;
    const block_q8_K *y = act;
    const __m256i m3 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = y[i].d * q_h2f(x[i].d);
        uint8_t sc[16];
        q_unpack_q3k_scales(x[i].scales, sc);
        const __m128i sc128 = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)sc), _mm_set1_epi8(32));
        const __m256i all = _mm256_cvtepi8_epi16(sc128);
        const __m256i scales[2] = {dup128(_mm256_castsi256_si128(all)), dup128(_mm256_extracti128_si256(all, 1))};
        const __m256i hbits = _mm256_loadu_si256((const __m256i *)x[i].hmask);
        __m256i sumi = _mm256_setzero_si256();
        Q_UNROLL
        for (int h = 0; h < 2; h++) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * h));
            Q_UNROLL
            for (int k = 0; k < 4; k++) {
                const int g = 4 * h + k;
                /* q = low - 4 * !hbit: maddubs both unsigned parts, then subtract */
                const __m256i low = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * k), m3);
                const __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hbits, g), one);
                const __m256i sub4 = _mm256_slli_epi16(_mm256_xor_si256(hb, one), 2);
                const __m256i q8 = _mm256_loadu_si256((const __m256i *)(y[i].qs + 32 * g));
                const __m256i p16 = _mm256_sub_epi16(_mm256_maddubs_epi16(low, q8), _mm256_maddubs_epi16(sub4, q8));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(scale_pair(scales[h], k), p16));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return q_hsum_f32x8(acc);
}

/* scale of group g as int16 over the vector, from the scale bytes of
 * q_k4_prepare in both lanes */
static inline __m256i k4_scale_at(__m256i sm, int g) { return _mm256_shuffle_epi8(sm, q_byte_to_words(g)); }

float q4_K_dot_avx2(int64_t n, const void *w, const void *act) {
    const block_q4_K *x = w;
    const block_q8_K *y = act;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps();
    __m256 acc_m = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        __m128 dm;
        const __m256i sm = dup128(q_k4_prepare(&x[i].d, x[i].scales, y[i].d, y[i].bsums, &dm, &acc_m));
        __m256i sumi = _mm256_setzero_si256();
        Q_UNROLL
        for (int j = 0; j < QK_K / 64; j++) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * j));
            const __m256i q8l = _mm256_loadu_si256((const __m256i *)(y[i].qs + 64 * j));
            const __m256i q8h = _mm256_loadu_si256((const __m256i *)(y[i].qs + 64 * j + 32));
            const __m256i pl = _mm256_maddubs_epi16(_mm256_and_si256(bits, m4), q8l);
            const __m256i ph = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4), q8h);
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(k4_scale_at(sm, 2 * j), pl));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(k4_scale_at(sm, 2 * j + 1), ph));
        }
        acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(dm), _mm256_cvtepi32_ps(sumi), acc);
    }
    return q_hsum_f32x8(_mm256_add_ps(acc, acc_m));
}

float q5_K_dot_avx2(int64_t n, const void *w, const void *act) {
    const block_q5_K *x = w;
    const block_q8_K *y = act;
    const __m256i m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps();
    __m256 acc_m = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        __m128 dm;
        const __m256i sm = dup128(q_k4_prepare(&x[i].d, x[i].scales, y[i].d, y[i].bsums, &dm, &acc_m));
        const __m256i hbits = _mm256_loadu_si256((const __m256i *)x[i].qh);
        __m256i sumi = _mm256_setzero_si256();
        Q_UNROLL
        for (int j = 0; j < QK_K / 64; j++) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * j));
            const __m256i hl = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 2 * j), one), 4);
            const __m256i hh = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 2 * j + 1), one), 4);
            const __m256i ql = _mm256_or_si256(_mm256_and_si256(bits, m4), hl);
            const __m256i qh = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4), hh);
            const __m256i q8l = _mm256_loadu_si256((const __m256i *)(y[i].qs + 64 * j));
            const __m256i q8h = _mm256_loadu_si256((const __m256i *)(y[i].qs + 64 * j + 32));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(k4_scale_at(sm, 2 * j), _mm256_maddubs_epi16(ql, q8l)));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(k4_scale_at(sm, 2 * j + 1), _mm256_maddubs_epi16(qh, q8h)));
        }
        acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(dm), _mm256_cvtepi32_ps(sumi), acc);
    }
    return q_hsum_f32x8(_mm256_add_ps(acc, acc_m));
}

float q6_K_dot_avx2(int64_t n, const void *w, const void *act) {
    const block_q6_K *x = w;
    const block_q8_K *y = act;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = y[i].d * q_h2f(x[i].d);
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)x[i].scales);
        const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
        /* the quants are stored + 32: subtract 32 * scale * bsum per sub-block */
        const __m256i offset = _mm256_slli_epi32(_mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y[i].bsums), sc16), 5);
        const __m256i scales[2] = {dup128(_mm256_castsi256_si128(sc16)), dup128(_mm256_extracti128_si256(sc16, 1))};
        __m256i sumi = _mm256_setzero_si256();
        Q_UNROLL
        for (int g = 0; g < 8; g++) {
            const __m256i q8 = _mm256_loadu_si256((const __m256i *)(y[i].qs + 32 * g));
            const __m256i p16 = _mm256_maddubs_epi16(q6_group(&x[i], g), q8);
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(scale_pair(scales[g / 4], g % 4), p16));
        }
        sumi = _mm256_sub_epi32(sumi, offset);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return q_hsum_f32x8(acc);
}
