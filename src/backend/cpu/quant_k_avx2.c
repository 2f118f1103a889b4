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

/* ---- q4_K, q5_K, q6_K: dots and matrix products ----
 * A super-block is unpacked once (eight vectors of 32 unsigned quants and
 * their int16 scale vectors) and then dotted with up to 4 tokens, each by
 * exactly the steps of its single dot:
 *     q4_K, q5_K: acc_m -= (dmin_x d_y) float(mins . bsums)
 *                 acc   += (d_x d_y) float(sum_g scale_g (q_g . y_g))
 *     q6_K:       acc   += (d_y d_x) float(sum_g scale_g (q_g . y_g) - 32 scales . bsums)
 * and the dot is hsum(acc + acc_m). */

typedef enum { K4, K5, K6 } k_kind;

typedef struct {
    __m256i q[8];  /* unsigned quants of group g (32 elements) */
    __m256i sc[8]; /* the int16 scale of each of their pairs */
    __m256i mins;  /* q4_K/q5_K: each group's min twice (against its two bsums); q6_K: the 16 scales */
    __m128 dd;     /* q4_K/q5_K: d, dmin */
    float d;       /* q6_K: d */
} k_weights;

/* scale of group g as int16 over the vector, from the scale bytes of
 * q_k4_scales in both lanes */
static inline __m256i k4_scale_at(__m256i sm, int g) { return _mm256_shuffle_epi8(sm, q_byte_to_words(g)); }

static inline __attribute__((always_inline)) void unpack_k45(k_kind kind, const void *blk, k_weights *w) {
    const block_q4_K *b4 = blk;
    const block_q5_K *b5 = blk;
    const lm_fp16 *d_dmin = kind == K4 ? &b4->d : &b5->d;
    const uint8_t *qs = kind == K4 ? b4->qs : b5->qs;
    uint32_t bits;
    memcpy(&bits, d_dmin, 4);
    w->dd = _mm_cvtph_ps(_mm_cvtsi32_si128((int)bits));
    const __m128i sm128 = q_k4_scales(kind == K4 ? b4->scales : b5->scales);
    /* each min twice, against the two bsums of its group */
    w->mins = _mm256_cvtepu8_epi16(
        _mm_shuffle_epi8(sm128, _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15)));
    const __m256i sm = dup128(sm128), m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    const __m256i hbits = kind == K5 ? _mm256_loadu_si256((const __m256i *)b5->qh) : m4;
    Q_UNROLL
    for (int j = 0; j < QK_K / 64; j++) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * j));
        w->q[2 * j] = _mm256_and_si256(v, m4);
        w->q[2 * j + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
        if (kind == K5) { /* bit g of qh[l] is bit 4 of element l of group g */
            w->q[2 * j] = _mm256_or_si256(
                w->q[2 * j], _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 2 * j), one), 4));
            w->q[2 * j + 1] = _mm256_or_si256(
                w->q[2 * j + 1], _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 2 * j + 1), one), 4));
        }
        w->sc[2 * j] = k4_scale_at(sm, 2 * j);
        w->sc[2 * j + 1] = k4_scale_at(sm, 2 * j + 1);
    }
    w->d = 0.0f;
}

static inline __attribute__((always_inline)) void unpack_k6(const block_q6_K *b, k_weights *w) {
    w->d = q_h2f(b->d);
    w->dd = _mm_setzero_ps();
    w->mins = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
    const __m256i scales[2] = {dup128(_mm256_castsi256_si128(w->mins)), dup128(_mm256_extracti128_si256(w->mins, 1))};
    Q_UNROLL
    for (int g = 0; g < 8; g++) {
        w->q[g] = q6_group(b, g);
        w->sc[g] = scale_pair(scales[g / 4], g % 4);
    }
}

static inline __attribute__((always_inline)) void k_fma(k_kind kind, const k_weights *w, const block_q8_K *y,
                                                        __m256 *acc, __m256 *acc_m) {
    const __m256i bsums = _mm256_loadu_si256((const __m256i *)y->bsums);
    __m256i sumi = _mm256_setzero_si256();
    Q_UNROLL
    for (int g = 0; g < 8; g++) {
        const __m256i q8 = _mm256_loadu_si256((const __m256i *)(y->qs + 32 * g));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(w->sc[g], _mm256_maddubs_epi16(w->q[g], q8)));
    }
    if (kind == K6) {
        /* the quants are stored + 32: subtract 32 * scale * bsum per sub-block */
        sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32(_mm256_madd_epi16(bsums, w->mins), 5));
        *acc = _mm256_fmadd_ps(_mm256_set1_ps(y->d * w->d), _mm256_cvtepi32_ps(sumi), *acc);
    } else {
        const __m128 dm = _mm_mul_ps(w->dd, _mm_set1_ps(y->d));
        const __m256i prod = _mm256_madd_epi16(w->mins, bsums);
        *acc_m = _mm256_fnmadd_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(dm)), _mm256_cvtepi32_ps(prod), *acc_m);
        *acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(dm), _mm256_cvtepi32_ps(sumi), *acc);
    }
}

static inline size_t k_block_bytes(k_kind kind) {
    return kind == K4 ? sizeof(block_q4_K) : kind == K5 ? sizeof(block_q5_K) : sizeof(block_q6_K);
}

#define K_TILE 4

/* one weight row x (nsb super-blocks) against n_tok (<= K_TILE) activation
 * rows at act, act + act_stride, ...; results to out[0], out[ld], ... */
static inline __attribute__((always_inline)) void k_row_tile(k_kind kind, const uint8_t *x, int64_t nsb,
                                                             const uint8_t *act, size_t act_stride, int n_tok,
                                                             float *out, int64_t ld) {
    __m256 acc[K_TILE], acc_m[K_TILE];
    Q_UNROLL
    for (int i = 0; i < n_tok; i++) acc[i] = _mm256_setzero_ps(), acc_m[i] = _mm256_setzero_ps();
    for (int64_t s = 0; s < nsb; s++) {
        k_weights w;
        if (n_tok == 1) q_prefetch(x + s * k_block_bytes(kind) + Q_DECODE_AHEAD, (int64_t)k_block_bytes(kind));
        if (kind == K6) unpack_k6((const block_q6_K *)(x + s * k_block_bytes(kind)), &w);
        else unpack_k45(kind, x + s * k_block_bytes(kind), &w);
        Q_UNROLL
        for (int i = 0; i < n_tok; i++)
            k_fma(kind, &w, (const block_q8_K *)(act + i * act_stride) + s, &acc[i], &acc_m[i]);
    }
    Q_UNROLL
    for (int i = 0; i < n_tok; i++) out[i * ld] = q_hsum_f32x8(_mm256_add_ps(acc[i], acc_m[i]));
}

/* every row against one tile of n_tok tokens */
static inline __attribute__((always_inline)) void k_rows(k_kind kind, const uint8_t *w, size_t w_stride, int n_rows,
                                                         int64_t nsb, const uint8_t *act, size_t act_stride, int n_tok,
                                                         float *out, int64_t ld_out) {
    for (int r = 0; r < n_rows; r++) {
        const uint8_t *x = w + (size_t)r * w_stride;
        if (n_tok != 1) q_prefetch(x + Q_PREFETCH_BYTES, nsb * (int64_t)k_block_bytes(kind)); /* else k_row_tile */
        k_row_tile(kind, x, nsb, act, act_stride, n_tok, out + r, ld_out);
    }
}

static inline __attribute__((always_inline)) void k_mul_mat(k_kind kind, int64_t n, const uint8_t *w, size_t w_stride,
                                                            int n_rows, const uint8_t *act, size_t act_stride,
                                                            int n_tok, float *out, int64_t ld_out) {
    const int64_t nsb = n / QK_K;
    /* Token tiles outside, rows inside: a tile's activations stay in L1 while
     * the rows stream past. Tiles of 4, then 2, 1: each width is its own
     * unrolled copy. */
    int i = 0;
    for (; i + 4 <= n_tok; i += 4) k_rows(kind, w, w_stride, n_rows, nsb, act + i * act_stride, act_stride, 4, out + i * ld_out, ld_out);
    if (i + 2 <= n_tok) k_rows(kind, w, w_stride, n_rows, nsb, act + i * act_stride, act_stride, 2, out + i * ld_out, ld_out), i += 2;
    if (i < n_tok) k_rows(kind, w, w_stride, n_rows, nsb, act + i * act_stride, act_stride, 1, out + i * ld_out, ld_out);
}

#define K_KERNELS_AVX2(type, kind)                                                                                    \
    float type##_dot_avx2(int64_t n, const void *w, const void *act) {                                                \
        float out;                                                                                                    \
        k_row_tile(kind, w, n / QK_K, act, 0, 1, &out, 0);                                                            \
        return out;                                                                                                   \
    }                                                                                                                 \
    void type##_mul_mat_avx2(int64_t n, const void *w, size_t w_stride, int n_rows, const void *act,                  \
                             size_t act_stride, int n_tok, float *out, int64_t ld_out) {                              \
        k_mul_mat(kind, n, w, w_stride, n_rows, act, act_stride, n_tok, out, ld_out);                                 \
    }

K_KERNELS_AVX2(q4_K, K4)
K_KERNELS_AVX2(q5_K, K5)
K_KERNELS_AVX2(q6_K, K6)
