/* quant_k_avx512.c - AVX-512 (BW/DQ/VL + VNNI) kernels of the k-quants
 * q4_K, q5_K, q6_K (activations q8_K). Only called where the CPU has VNNI
 * (quant_dispatch.c checks).
 *
 * Each processes 64 elements per step: maddubs gives 16-bit pair sums,
 * vpdpwssd multiplies them by the sub-block scales and accumulates in 32
 * bits. */
#include "backend/cpu/quant_blocks.h"
#include "backend/cpu/quant_impl.h"
#include "backend/cpu/quant_x86.h"

static inline float hsum512(__m512 a, __m256 b) {
    const __m256 s = _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
    return q_hsum_f32x8(_mm256_add_ps(s, b));
}

/* 16-bit shift counts: a for the low 256 bits, b for the high */
static inline __m512i count_pair(int a, int b) {
    return _mm512_inserti64x4(_mm512_set1_epi16((short)a), _mm256_set1_epi16((short)b), 1);
}

/* bytes with bit a set in the low 256 bits, bit b in the high */
static inline __m512i bit_pair(int a, int b) {
    return _mm512_inserti64x4(_mm512_set1_epi8((char)(1 << a)), _mm256_set1_epi8((char)(1 << b)), 1);
}

/* int16 scales of groups a (low 256 bits) and b (high 256) from the scale
 * bytes of q_k4_prepare in every 128-bit lane */
static inline __m512i k4_scale_pair(__m512i sm, int a, int b) {
    const __m512i idx = _mm512_inserti64x4(_mm512_set1_epi16((short)(0x8000 + a)), _mm256_set1_epi16((short)(0x8000 + b)), 1);
    return _mm512_shuffle_epi8(sm, idx);
}

float q4_K_dot_avx512(int64_t n, const void *w, const void *act) {
    const block_q4_K *x = w;
    const block_q8_K *y = act;
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    __m512 acc = _mm512_setzero_ps();
    __m256 acc_m = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        __m128 dm;
        const __m512i sm = _mm512_broadcast_i32x4(q_k4_prepare(&x[i].d, x[i].scales, y[i].d, y[i].bsums, &dm, &acc_m));
        const __m512 d = _mm512_broadcastss_ps(dm);
        __m512i sumi = _mm512_setzero_si512();
        Q_UNROLL
        for (int j = 0; j < QK_K / 64; j++) {
            /* low nibbles of 32 bytes: group 2j; high nibbles: group 2j + 1 */
            const __m512i bits = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * j)));
            const __m512i q4 = _mm512_and_si512(_mm512_mask_srli_epi16(bits, 0xFFFF0000u, bits, 4), m4);
            const __m512i q8 = _mm512_loadu_si512(y[i].qs + 64 * j);
            sumi = _mm512_dpwssd_epi32(sumi, k4_scale_pair(sm, 2 * j, 2 * j + 1), _mm512_maddubs_epi16(q4, q8));
        }
        acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(sumi), acc);
    }
    return hsum512(acc, acc_m);
}

float q5_K_dot_avx512(int64_t n, const void *w, const void *act) {
    const block_q5_K *x = w;
    const block_q8_K *y = act;
    const __m512i m4 = _mm512_set1_epi8(0x0F), sixteen = _mm512_set1_epi8(16);
    __m512 acc = _mm512_setzero_ps();
    __m256 acc_m = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        __m128 dm;
        const __m512i sm = _mm512_broadcast_i32x4(q_k4_prepare(&x[i].d, x[i].scales, y[i].d, y[i].bsums, &dm, &acc_m));
        const __m512 d = _mm512_broadcastss_ps(dm);
        const __m512i hbits = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)x[i].qh));
        __m512i sumi = _mm512_setzero_si512();
        Q_UNROLL
        for (int j = 0; j < QK_K / 64; j++) {
            const __m512i bits = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * j)));
            const __m512i lo = _mm512_and_si512(_mm512_mask_srli_epi16(bits, 0xFFFF0000u, bits, 4), m4);
            /* bit g of qh[l] is bit 4 of element l of group g */
            const __mmask64 high = _mm512_test_epi8_mask(hbits, bit_pair(2 * j, 2 * j + 1));
            const __m512i q5 = _mm512_mask_add_epi8(lo, high, lo, sixteen);
            const __m512i q8 = _mm512_loadu_si512(y[i].qs + 64 * j);
            sumi = _mm512_dpwssd_epi32(sumi, k4_scale_pair(sm, 2 * j, 2 * j + 1), _mm512_maddubs_epi16(q5, q8));
        }
        acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(sumi), acc);
    }
    return hsum512(acc, acc_m);
}

/* word index vector: lane l (0..3, 8 words each) -> word first + l */
static inline __m512i lane_words(int first) {
    return _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16((short)first)),
                                                       _mm_set1_epi16((short)(first + 1)), 1)),
        _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16((short)(first + 2))),
                                _mm_set1_epi16((short)(first + 3)), 1),
        1);
}

float q6_K_dot_avx512(int64_t n, const void *w, const void *act) {
    const block_q6_K *x = w;
    const block_q8_K *y = act;
    const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
    const __m512i shl_a = count_pair(4, 2), shr_b = count_pair(0, 2);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = y[i].d * q_h2f(x[i].d);
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[i].scales));
        const __m512i sc512 = _mm512_castsi256_si512(sc16);
        /* quants are stored + 32: subtract 32 * scale * bsum per sub-block */
        const __m256i offset = _mm256_slli_epi32(_mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y[i].bsums), sc16), 5);
        __m512i sumi = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_zextsi256_si512(offset));
        Q_UNROLL
        for (int h = 0; h < 2; h++) {
            /* 128 elements: A = groups 4h, 4h+1 (low nibbles), B = 4h+2, 4h+3 (high) */
            const __m512i ql = _mm512_loadu_si512(x[i].ql + 64 * h);
            const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x[i].qh + 32 * h)));
            const __m512i a = _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_and_si512(_mm512_sllv_epi16(qh, shl_a), m30));
            const __m512i b = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                                              _mm512_and_si512(_mm512_srlv_epi16(qh, shr_b), m30));
            const __m512i pa = _mm512_maddubs_epi16(a, _mm512_loadu_si512(y[i].qs + 128 * h));
            const __m512i pb = _mm512_maddubs_epi16(b, _mm512_loadu_si512(y[i].qs + 128 * h + 64));
            sumi = _mm512_dpwssd_epi32(sumi, _mm512_permutexvar_epi16(lane_words(8 * h), sc512), pa);
            sumi = _mm512_dpwssd_epi32(sumi, _mm512_permutexvar_epi16(lane_words(8 * h + 4), sc512), pb);
        }
        acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
    }
    return hsum512(acc, _mm256_setzero_ps());
}
