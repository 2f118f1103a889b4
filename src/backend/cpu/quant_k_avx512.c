/* quant_k_avx512.c - AVX-512 (BW/DQ/VL + VNNI) dots and matrix products of
 * the k-quants q4_K, q5_K, q6_K (activations q8_K). Only called where the
 * CPU has VNNI (quant_dispatch.c checks).
 *
 * A super-block (256 elements) is unpacked once into four vectors of 64
 * unsigned quants and the matching 16-bit sub-block scales; per token,
 * vpdpbusd gives sums of four quants times activations, two such vectors
 * are packed into one of int16 and vpdpwssd multiplies them by their
 * scales into 16 int32 lanes. Then
 *     acc   = fma(d_x * d_y, float(sumi), acc)                 16 lanes
 *     acc_m = acc_m - (dmin_x * d_y) * float(mins . bsums)     8 lanes (q4_K, q5_K)
 * and the dot is the sum of acc + acc_m in a fixed tree. mul_mat unpacks a
 * super-block once for up to 8 tokens and runs exactly these steps for each,
 * so it gives the dots' floats bit for bit. */
#include "backend/cpu/quant_blocks.h"
#include "backend/cpu/quant_impl.h"
#include "backend/cpu/quant_x86.h"

typedef enum { K4, K5, K6 } k_kind;

/* one super-block of weights, unpacked */
typedef struct {
    __m512i q[4];  /* unsigned quants: q[j] pairs with activations 64j..64j+63 */
    __m512i sc2[2]; /* the scales of quant vectors 2P and 2P + 1, laid out as k_fma packs their sums */
    __m256i mins;  /* q4_K/q5_K: each group's min twice (against its two bsums); q6_K: the 16 scales */
    __m128 dd;     /* q4_K/q5_K: d, dmin */
    float d;       /* q6_K: d */
} k_weights;

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

/* int16 scales for the sums of quant vectors 2P and 2P + 1 as k_fma packs
 * them: 128-bit lane L holds in words 0-3 four sums of group 4P + (L >= 2)
 * and in words 4-7 four of group 4P + 2 + (L >= 2) (sm: the scale bytes of
 * q_k4_scales in every 128-bit lane) */
static inline __m512i k4_scale_quad(__m512i sm, int P) {
    const short a0 = (short)(0x8000 + 4 * P), b0 = (short)(a0 + 2), a1 = (short)(a0 + 1), b1 = (short)(a0 + 3);
    const __m256i lo = _mm256_setr_epi16(a0, a0, a0, a0, b0, b0, b0, b0, a0, a0, a0, a0, b0, b0, b0, b0);
    const __m256i hi = _mm256_setr_epi16(a1, a1, a1, a1, b1, b1, b1, b1, a1, a1, a1, a1, b1, b1, b1, b1);
    return _mm512_shuffle_epi8(sm, _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1));
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

/* ---- unpacking one super-block ---- */

/* q4_K and q5_K: 8 groups of 32 with a 6-bit scale and min each */
static inline __attribute__((always_inline)) void unpack_k45(k_kind kind, const void *blk, k_weights *w) {
    const block_q4_K *b4 = blk;
    const block_q5_K *b5 = blk;
    const lm_fp16 *d_dmin = kind == K4 ? &b4->d : &b5->d;
    const uint8_t *scales = kind == K4 ? b4->scales : b5->scales, *qs = kind == K4 ? b4->qs : b5->qs;
    uint32_t bits;
    memcpy(&bits, d_dmin, 4);
    w->dd = _mm_cvtph_ps(_mm_cvtsi32_si128((int)bits));
    const __m128i sm = q_k4_scales(scales);
    const __m128i mins2 = _mm_shuffle_epi8(sm, _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15));
    w->mins = _mm256_cvtepu8_epi16(mins2);
    const __m512i smb = _mm512_broadcast_i32x4(sm), m4 = _mm512_set1_epi8(0x0F);
    const __m512i hbits = kind == K5 ? _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)b5->qh)) : m4;
    Q_UNROLL
    for (int j = 0; j < 4; j++) {
        /* low nibbles of 32 bytes: group 2j; high nibbles: group 2j + 1 */
        const __m512i v = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(qs + 32 * j)));
        w->q[j] = _mm512_and_si512(_mm512_mask_srli_epi16(v, 0xFFFF0000u, v, 4), m4);
        if (kind == K5) { /* bit g of qh[l] is bit 4 of element l of group g */
            const __mmask64 high = _mm512_test_epi8_mask(hbits, bit_pair(2 * j, 2 * j + 1));
            w->q[j] = _mm512_mask_add_epi8(w->q[j], high, w->q[j], _mm512_set1_epi8(16));
        }
    }
    w->sc2[0] = k4_scale_quad(smb, 0);
    w->sc2[1] = k4_scale_quad(smb, 1);
    w->d = 0.0f;
}

/* q6_K: 16 groups of 16 with a signed 8-bit scale, quants stored + 32 */
static inline __attribute__((always_inline)) void unpack_k6(const block_q6_K *b, k_weights *w) {
    const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
    const __m512i shl_a = count_pair(4, 2), shr_b = count_pair(0, 2);
    w->d = q_h2f(b->d);
    w->mins = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
    w->dd = _mm_setzero_ps();
    const __m512i sc512 = _mm512_castsi256_si512(w->mins);
    Q_UNROLL
    for (int h = 0; h < 2; h++) {
        /* 128 elements: A = groups 4h, 4h+1 (low nibbles), B = 4h+2, 4h+3 (high) */
        const __m512i ql = _mm512_loadu_si512(b->ql + 64 * h);
        const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(b->qh + 32 * h)));
        w->q[2 * h] = _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_and_si512(_mm512_sllv_epi16(qh, shl_a), m30));
        w->q[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                                          _mm512_and_si512(_mm512_srlv_epi16(qh, shr_b), m30));
        /* one scale per 128-bit lane of q[2h] (groups 8h..8h+3) and of
         * q[2h + 1] (8h+4..8h+7); packed as k_fma packs the sums: lane L
         * words 0-3 from q[2h], words 4-7 from q[2h + 1] */
        w->sc2[h] = _mm512_mask_blend_epi16(0xF0F0F0F0u, _mm512_permutexvar_epi16(lane_words(8 * h), sc512),
                                            _mm512_permutexvar_epi16(lane_words(8 * h + 4), sc512));
    }
}

static inline __attribute__((always_inline)) void unpack_k(k_kind kind, const uint8_t *blk, k_weights *w) {
    if (kind == K6) unpack_k6((const block_q6_K *)blk, w);
    else unpack_k45(kind, blk, w);
}

/* ---- one super-block for one (row, token): see the top comment ---- */

static inline __attribute__((always_inline)) void k_fma(k_kind kind, const k_weights *w, const block_q8_K *y,
                                                        __m512 *acc, __m256 *acc_m) {
    const __m256i bsums = _mm256_loadu_si256((const __m256i *)y->bsums);
    __m512i sumi;
    __m512 d;
    if (kind == K6) {
        d = _mm512_set1_ps(y->d * w->d);
        /* quants are stored + 32: subtract 32 * scale * bsum per sub-block */
        const __m256i offset = _mm256_slli_epi32(_mm256_madd_epi16(bsums, w->mins), 5);
        sumi = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_zextsi256_si512(offset));
    } else {
        const __m128 dm = _mm_mul_ps(w->dd, _mm_set1_ps(y->d));
        const __m256i prod = _mm256_madd_epi16(w->mins, bsums);
        *acc_m = _mm256_fnmadd_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(dm)), _mm256_cvtepi32_ps(prod), *acc_m);
        d = _mm512_broadcastss_ps(dm);
        sumi = _mm512_setzero_si512();
    }
    /* four products a lane by vpdpbusd (|sum| <= 4 * 63 * 128: an int16), two
     * vectors packed into one of int16, times their scales by vpdpwssd: 6
     * multiply-unit ops for 256 quants instead of 8 */
    __m512i t[4];
    Q_UNROLL
    for (int j = 0; j < 4; j++)
        t[j] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w->q[j], _mm512_loadu_si512(y->qs + 64 * j));
    sumi = _mm512_dpwssd_epi32(sumi, _mm512_packs_epi32(t[0], t[1]), w->sc2[0]);
    sumi = _mm512_dpwssd_epi32(sumi, _mm512_packs_epi32(t[2], t[3]), w->sc2[1]);
    *acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(sumi), *acc);
}

/* ---- rows ---- */

static inline size_t k_block_bytes(k_kind kind) {
    return kind == K4 ? sizeof(block_q4_K) : kind == K5 ? sizeof(block_q5_K) : sizeof(block_q6_K);
}

#define K_TILE 8

/* one weight row x (nsb super-blocks) against n_tok (<= K_TILE) activation
 * rows at act, act + act_stride, ...; results to out[0], out[ld], ... */
static inline __attribute__((always_inline)) void k_row_tile(k_kind kind, const uint8_t *x, int64_t nsb,
                                                             const uint8_t *act, size_t act_stride, int n_tok,
                                                             float *out, int64_t ld) {
    __m512 acc[K_TILE];
    __m256 acc_m[K_TILE];
    Q_UNROLL
    for (int i = 0; i < n_tok; i++) acc[i] = _mm512_setzero_ps(), acc_m[i] = _mm256_setzero_ps();
    for (int64_t s = 0; s < nsb; s++) {
        k_weights w;
        if (n_tok == 1) q_prefetch(x + s * k_block_bytes(kind) + Q_DECODE_AHEAD, (int64_t)k_block_bytes(kind));
        unpack_k(kind, x + s * k_block_bytes(kind), &w);
        Q_UNROLL
        for (int i = 0; i < n_tok; i++)
            k_fma(kind, &w, (const block_q8_K *)(act + i * act_stride) + s, &acc[i], &acc_m[i]);
    }
    Q_UNROLL
    for (int i = 0; i < n_tok; i++) out[i * ld] = hsum512(acc[i], acc_m[i]);
}

/* every row against one tile of n_tok tokens */
static inline __attribute__((always_inline)) void k_rows(k_kind kind, const uint8_t *w, size_t w_stride, int n_rows,
                                                         int64_t x_row, int64_t nsb, const uint8_t *act,
                                                         size_t act_stride, int n_tok, float *out, int64_t ld_out) {
    for (int r = 0; r < n_rows; r++) {
        const uint8_t *x = w + (size_t)r * w_stride;
        if (n_tok != 1) q_prefetch(x + Q_PREFETCH_BYTES, x_row); /* n_tok == 1: k_row_tile asks */
        k_row_tile(kind, x, nsb, act, act_stride, n_tok, out + r, ld_out);
    }
}

static inline __attribute__((always_inline)) void k_mul_mat(k_kind kind, int64_t n, const uint8_t *w, size_t w_stride,
                                                            int n_rows, const uint8_t *act, size_t act_stride,
                                                            int n_tok, float *out, int64_t ld_out) {
    const int64_t nsb = n / QK_K, x_row = nsb * (int64_t)k_block_bytes(kind);
    /* Token tiles outside, rows inside: a tile's activations (8 x 292 bytes
     * a super-block) stay in L1 while the rows stream past, instead of every
     * row reading all the tokens' activations again from L2. Token tiles of
     * 8, then 4, 2, 1: each width is its own unrolled copy. */
    int i = 0;
    for (; i + K_TILE <= n_tok; i += K_TILE) k_rows(kind, w, w_stride, n_rows, x_row, nsb, act + i * act_stride, act_stride, K_TILE, out + i * ld_out, ld_out);
    if (i + 4 <= n_tok) k_rows(kind, w, w_stride, n_rows, x_row, nsb, act + i * act_stride, act_stride, 4, out + i * ld_out, ld_out), i += 4;
    if (i + 2 <= n_tok) k_rows(kind, w, w_stride, n_rows, x_row, nsb, act + i * act_stride, act_stride, 2, out + i * ld_out, ld_out), i += 2;
    if (i < n_tok) k_rows(kind, w, w_stride, n_rows, x_row, nsb, act + i * act_stride, act_stride, 1, out + i * ld_out, ld_out);
}

#define K_KERNELS_AVX512(type, kind)                                                                                  \
    float type##_dot_avx512(int64_t n, const void *w, const void *act) {                                              \
        float out;                                                                                                    \
        k_row_tile(kind, w, n / QK_K, act, 0, 1, &out, 0);                                                            \
        return out;                                                                                                   \
    }                                                                                                                 \
    void type##_mul_mat_avx512(int64_t n, const void *w, size_t w_stride, int n_rows, const void *act,                \
                               size_t act_stride, int n_tok, float *out, int64_t ld_out) {                            \
        k_mul_mat(kind, n, w, w_stride, n_rows, act, act_stride, n_tok, out, ld_out);                                 \
    }

K_KERNELS_AVX512(q4_K, K4)
K_KERNELS_AVX512(q5_K, K5)
K_KERNELS_AVX512(q6_K, K6)
