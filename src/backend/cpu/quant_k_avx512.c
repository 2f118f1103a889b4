/* quant_avx512.c - AVX-512 (BW/DQ/VL + VNNI) dots of the hot decode types:
 * the 32-element types q4_0, q4_1, q5_0, q5_1, q8_0 (activations q8_0 /
 * q8_1) and the k-quants q4_K, q5_K, q6_K (q8_K). Only called where the CPU
 * has VNNI (quant_dispatch.c checks).
 *
 * The 32-element types share one body: four blocks per step, their fp16
 * scales gathered with one word permute each for weights and activations,
 * two blocks per 512-bit integer dot (vpdpbusd). The k-quants process 64
 * elements per step: maddubs gives 16-bit pair sums, vpdpwssd multiplies
 * them by the sub-block scales and accumulates in 32 bits. */
#include "backend/cpu/quant_blocks.h"
#include "backend/cpu/quant_impl.h"
#include "backend/cpu/quant_x86.h"

/* ---- primitives ---- */

/* 16-bit words at word offsets idx (< 64) of the bytes at p, of which
 * nbytes (<= 128) may be read */
static inline __m512i gather_words(const void *p, int nbytes, __m512i idx) {
    const __m512i lo = _mm512_loadu_si512(p);
    if (nbytes <= 64) return _mm512_permutexvar_epi16(idx, lo);
    const __mmask64 tail = nbytes >= 128 ? ~(__mmask64)0 : (((__mmask64)1 << (nbytes - 64)) - 1);
    const __m512i hi = _mm512_maskz_loadu_epi8(tail, (const uint8_t *)p + 64);
    return _mm512_permutex2var_epi16(lo, idx, hi);
}

/* word offsets k * stride_words for k = 0..3, then those + 1 */
static inline __m512i word_index(int stride_words) {
    return _mm512_setr_epi32(0 | (stride_words << 16), (2 * stride_words) | ((3 * stride_words) << 16),
                             1 | ((stride_words + 1) << 16), (2 * stride_words + 1) | ((3 * stride_words + 1) << 16),
                             0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
}

/* the low 8 fp16 words of v -> 8 floats */
static inline __m256 halves8(__m512i v) { return _mm256_cvtph_ps(_mm512_castsi512_si128(v)); }

/* scale s[2p] over the low 8 lanes and s[2p+1] over the high 8 */
static inline __m512 spread_pair(const float *s, int p) {
    return _mm512_mask_mov_ps(_mm512_set1_ps(s[2 * p]), 0xFF00, _mm512_set1_ps(s[2 * p + 1]));
}

/* the 32-byte quants of two blocks as one vector: a in the low half */
static inline __m512i join2(const void *a, const void *b) {
    return _mm512_mask_broadcast_i64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)a)), 0xF0,
                                       _mm256_loadu_si256((const __m256i *)b));
}

/* nibbles of two blocks -> [a low, a high, b low, b high] bytes */
static inline __m512i nibbles_2blocks(const uint8_t *a, const uint8_t *b) {
    const __m512i v = _mm512_mask_broadcast_i32x4(_mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)a)), 0xFF00,
                                                  _mm_loadu_si128((const __m128i *)b));
    return _mm512_and_si512(_mm512_mask_srli_epi16(v, 0xFF00FF00u, v, 4), _mm512_set1_epi8(0x0F));
}

static inline uint32_t load_u32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline float hsum512(__m512 a, __m256 b) {
    const __m256 s = _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
    return q_hsum_f32x8(_mm256_add_ps(s, b));
}

/* ---- the 32-element types ---- */

/* What tells the types apart; every field is a constant after inlining. */
typedef struct {
    int x_bytes, y_bytes; /* block sizes of weights and activations */
    int qs_at, qh_at;     /* byte offsets of the quants and (q5) the fifth bits; qh_at < 0: none */
    int nibbles;          /* 4-bit quants (else q8_0's bytes) */
    int bias;             /* the weights' zero point (q - bias); 0: offset by the min m instead */
} legacy_type;

static const legacy_type Q4_0 = {sizeof(block_q4_0), sizeof(block_q8_0), 2, -1, 1, 8};
static const legacy_type Q4_1 = {sizeof(block_q4_1), sizeof(block_q8_1), 4, -1, 1, 0};
static const legacy_type Q5_0 = {sizeof(block_q5_0), sizeof(block_q8_0), 6, 2, 1, 16};
static const legacy_type Q5_1 = {sizeof(block_q5_1), sizeof(block_q8_1), 8, 4, 1, 0};
/* q8_0 weights are signed: + 128 makes them unsigned for vpdpbusd */
static const legacy_type Q8_0 = {sizeof(block_q8_0), sizeof(block_q8_0), 2, -1, 0, 128};

/* the unsigned quants of blocks a and b (low / high 256 bits) */
static inline __m512i unpack2(const legacy_type *t, const uint8_t *a, const uint8_t *b) {
    if (!t->nibbles) return _mm512_xor_si512(join2(a + t->qs_at, b + t->qs_at), _mm512_set1_epi8((char)0x80));
    __m512i q = nibbles_2blocks(a + t->qs_at, b + t->qs_at);
    if (t->qh_at >= 0) { /* bit j of qh is bit 4 of element j: one mask bit per byte */
        const __mmask64 hi = (__mmask64)load_u32(a + t->qh_at) | (__mmask64)load_u32(b + t->qh_at) << 32;
        q = _mm512_mask_add_epi8(q, hi, q, _mm512_set1_epi8(16));
    }
    return q;
}

static inline __m256i unpack1(const legacy_type *t, const uint8_t *a) {
    if (!t->nibbles) return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(a + t->qs_at)), _mm256_set1_epi8((char)0x80));
    __m256i q = q_nibbles_32(a + t->qs_at);
    if (t->qh_at >= 0) q = _mm256_mask_add_epi8(q, load_u32(a + t->qh_at), q, _mm256_set1_epi8(16));
    return q;
}

/* (q - bias) . y per block, 8 int32 lanes per block */
static inline __m512i dot2(const legacy_type *t, __m512i q, __m512i y) {
    const __m512i zero = _mm512_setzero_si512();
    const __m512i p = _mm512_dpbusd_epi32(zero, q, y);
    if (!t->bias) return p;
    return _mm512_sub_epi32(p, _mm512_dpbusd_epi32(zero, _mm512_set1_epi8((char)t->bias), y));
}

static inline __m256i dot1(const legacy_type *t, __m256i q, __m256i y) {
    const __m256i zero = _mm256_setzero_si256();
    const __m256i p = _mm256_dpbusd_epi32(zero, q, y);
    if (!t->bias) return p;
    return _mm256_sub_epi32(p, _mm256_dpbusd_epi32(zero, _mm256_set1_epi8((char)t->bias), y));
}

/* Each block: (d_x * d_y) * sum((q - bias) * y), plus m_x * s_y where the
 * weights carry a min (q4_1, q5_1 with q8_1 activations). */
static inline __attribute__((always_inline)) float legacy_dot(const legacy_type *t, int64_t n, const uint8_t *x,
                                                              const uint8_t *y) {
    const int64_t nb = n / 32;
    const __m512i xi = word_index(t->x_bytes / 2), yi = word_index(t->y_bytes / 2);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    __m128 acc_m = _mm_setzero_ps();
    int64_t i = 0;
    for (; i + 4 <= nb; i += 4) {
        const uint8_t *xb = x + i * t->x_bytes, *yb = y + i * t->y_bytes;
        /* lanes 0-3: d_x * d_y of the four blocks; 4-7: m_x * s_y */
        /* the scales of the fourth block end 3 blocks + 4 bytes in */
        const __m256 s = _mm256_mul_ps(halves8(gather_words(xb, 3 * t->x_bytes + 4, xi)),
                                       halves8(gather_words(yb, 3 * t->y_bytes + 4, yi)));
        float d[4];
        _mm_storeu_ps(d, _mm256_castps256_ps128(s));
        if (!t->bias) acc_m = _mm_add_ps(acc_m, _mm256_extractf128_ps(s, 1));
        /* an activation block ends with its 32 quants */
        const __m512i y01 = join2(yb + t->y_bytes - 32, yb + 2 * t->y_bytes - 32);
        const __m512i y23 = join2(yb + 3 * t->y_bytes - 32, yb + 4 * t->y_bytes - 32);
        const __m512i p01 = dot2(t, unpack2(t, xb, xb + t->x_bytes), y01);
        const __m512i p23 = dot2(t, unpack2(t, xb + 2 * t->x_bytes, xb + 3 * t->x_bytes), y23);
        acc0 = _mm512_fmadd_ps(spread_pair(d, 0), _mm512_cvtepi32_ps(p01), acc0);
        acc1 = _mm512_fmadd_ps(spread_pair(d, 1), _mm512_cvtepi32_ps(p23), acc1);
    }
    __m256 tail = _mm256_setzero_ps();
    float summs = 0.0f;
    for (; i < nb; i++) {
        const uint8_t *xb = x + i * t->x_bytes, *yb = y + i * t->y_bytes;
        lm_fp16 hx[2], hy[2];
        memcpy(hx, xb, 4);
        memcpy(hy, yb, 4);
        if (!t->bias) summs += q_h2f(hx[1]) * q_h2f(hy[1]);
        const __m256i p = dot1(t, unpack1(t, xb), _mm256_loadu_si256((const __m256i *)(yb + t->y_bytes - 32)));
        tail = _mm256_fmadd_ps(_mm256_set1_ps(q_h2f(hx[0]) * q_h2f(hy[0])), _mm256_cvtepi32_ps(p), tail);
    }
    acc_m = _mm_add_ps(acc_m, _mm_movehl_ps(acc_m, acc_m));
    acc_m = _mm_add_ss(acc_m, _mm_movehdup_ps(acc_m));
    return hsum512(_mm512_add_ps(acc0, acc1), tail) + _mm_cvtss_f32(acc_m) + summs;
}

float q4_0_dot_avx512(int64_t n, const void *w, const void *act) { return legacy_dot(&Q4_0, n, w, act); }
float q4_1_dot_avx512(int64_t n, const void *w, const void *act) { return legacy_dot(&Q4_1, n, w, act); }
float q5_0_dot_avx512(int64_t n, const void *w, const void *act) { return legacy_dot(&Q5_0, n, w, act); }
float q5_1_dot_avx512(int64_t n, const void *w, const void *act) { return legacy_dot(&Q5_1, n, w, act); }
float q8_0_dot_avx512(int64_t n, const void *w, const void *act) { return legacy_dot(&Q8_0, n, w, act); }

/* ---- k-quants ---- */

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
