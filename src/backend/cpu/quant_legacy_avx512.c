/* quant_legacy_avx512.c - AVX-512 (BW + VNNI) dots and matrix products of
 * the 32-element block types q4_0, q4_1, q5_0, q5_1, q8_0 (activations
 * q8_0 / q8_1). Only called where the CPU has VNNI (quant_dispatch.c).
 *
 * The unit of work is a quad: four consecutive blocks, 128 elements. A
 * quad's weights become two vectors of unsigned bytes, lo and hi, whose
 * 128-bit lane p holds elements 0-15 (lo) and 16-31 (hi) of block p; the
 * activations are brought to the same layout once per token ("prepared",
 * with their scales spread over the lanes). Per quad, on lane 4p + j:
 *     S   = vpdpbusd(lo, y_lo) + vpdpbusd(hi, y_hi) - bias * sum(y of the lane)
 *     acc = fma(float(S), d_x[p] * d_y[p], acc)
 *     acc = fma(m_x[p], s_y[p], acc)          lanes 4p only, types with a min
 * and a dot is the sum of acc's 16 lanes in a fixed tree (q_hsum_f32x16).
 * S is an exact integer and every kernel here runs these float steps in this
 * order for every (row, token), so a dot, a single-token product and any
 * tile of a batched product give the same bits. A row whose block count is
 * not a multiple of four ends with a partial quad: missing blocks read as
 * zero (masked loads never touch bytes past a row's end). */
#include "backend/cpu/quant_blocks.h"
#include "backend/cpu/quant_impl.h"
#include "backend/cpu/quant_x86.h"

/* What tells the types apart; every field is a constant after inlining. */
typedef struct {
    int x_bytes;    /* weight block size */
    int qs_at;      /* byte offset of the quants */
    int qh_at;      /* q5: offset of the fifth bits; -1: none */
    int has_min;    /* x = d * q + m (activations q8_1, whose s pairs with m) */
    int bias_shift; /* log2 of the zero point subtracted from the unsigned quants; -1: none */
    int nibbles;    /* 4-bit quants (else q8_0's signed bytes) */
} legacy_type;

static const legacy_type Q4_0 = {sizeof(block_q4_0), 2, -1, 0, 3, 1};
static const legacy_type Q4_1 = {sizeof(block_q4_1), 4, -1, 1, -1, 1};
static const legacy_type Q5_0 = {sizeof(block_q5_0), 6, 2, 0, 4, 1};
static const legacy_type Q5_1 = {sizeof(block_q5_1), 8, 4, 1, -1, 1};
/* q8_0 weights are signed: + 128 (xor 0x80) makes them unsigned for vpdpbusd */
static const legacy_type Q8_0 = {sizeof(block_q8_0), 2, -1, 0, 7, 0};

static inline int y_bytes(const legacy_type *t) { return t->has_min ? (int)sizeof(block_q8_1) : (int)sizeof(block_q8_0); }

/* one quad of activations, prepared (256 bytes) */
typedef struct {
    __m512i lo, hi; /* quants: 128-bit lane p = block p's bytes 0-15 / 16-31 */
    __m512 d;       /* lanes 4p..4p+3: d of block p */
    union {
        __m512 s;      /* q8_1: s of block p */
        __m512i ncorr; /* q8_0: -bias * the lane's sum of quants (types with a bias) */
    };
} prep_quad;

/* one quad of weights, unpacked */
typedef struct {
    __m512i lo, hi; /* unsigned quants, as prep_quad */
    __m512 d, m;    /* lanes 4p..4p+3: d and m of block p */
} weight_quad;

/* word permutes that gather a quad's fields from a 128-byte window */
typedef struct {
    __m512i x_quants, x_scales, x_qh, y_quants, y_scales;
} quad_index;

/* ---- loads and index vectors ---- */

static inline __mmask64 first_bytes(int64_t n) {
    return n <= 0 ? 0 : n >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << n) - 1);
}

/* the 128 bytes at p, of which only avail can be read: the rest are zero */
static inline void load128(const uint8_t *p, int64_t avail, __m512i *a, __m512i *b) {
    if (avail >= 128) {
        *a = _mm512_loadu_si512(p);
        *b = _mm512_loadu_si512(p + 64);
    } else {
        *a = _mm512_maskz_loadu_epi8(first_bytes(avail), p);
        *b = _mm512_maskz_loadu_epi8(first_bytes(avail - 64), p + 64);
    }
}

static __m512i load_words(const uint16_t w[32]) { return _mm512_loadu_si512(w); }

/* 128-bit lane p <- the 16 bytes at p * stride + at */
static __m512i halves_index(int stride, int at) {
    uint16_t w[32];
    for (int i = 0; i < 32; i++) w[i] = (uint16_t)(((i / 8) * stride + at) / 2 + i % 8);
    return load_words(w);
}

/* words 4p..4p+3 <- the fp16 at p * stride; words 16 + 4p.. <- the one at p * stride + second */
static __m512i scales_index(int stride, int second) {
    uint16_t w[32];
    for (int i = 0; i < 16; i++) {
        w[i] = (uint16_t)((i / 4) * stride / 2);
        w[16 + i] = (uint16_t)(((i / 4) * stride + second) / 2);
    }
    return load_words(w);
}

/* word p <- low half of block p's 32 fifth bits, word 4 + p <- high half */
static __m512i qh_index(int stride, int at) {
    uint16_t w[32] = {0};
    for (int p = 0; p < 4; p++) {
        w[p] = (uint16_t)((p * stride + at) / 2);
        w[4 + p] = (uint16_t)(w[p] + 1);
    }
    return load_words(w);
}

static quad_index make_index(const legacy_type *t) {
    const int yb = y_bytes(t);
    quad_index ix;
    ix.x_quants = halves_index(t->x_bytes, t->nibbles ? t->qs_at : 2);
    ix.x_scales = scales_index(t->x_bytes, t->has_min ? 2 : 0);
    ix.x_qh = qh_index(t->x_bytes, t->qh_at > 0 ? t->qh_at : 0);
    ix.y_quants = halves_index(yb, 0);
    ix.y_scales = scales_index(yb, 2);
    return ix;
}

/* ---- one quad ---- */

/* avail: bytes of the activation row from y on */
static inline __attribute__((always_inline)) void prep_quad_at(const legacy_type *t, const quad_index *ix,
                                                               const uint8_t *y, int64_t avail, prep_quad *p) {
    const int qs = y_bytes(t) - 32;
    __m512i a, b;
    load128(y + qs, avail - qs, &a, &b);
    p->lo = _mm512_permutex2var_epi16(a, ix->y_quants, b);
    load128(y + qs + 16, avail - qs - 16, &a, &b);
    p->hi = _mm512_permutex2var_epi16(a, ix->y_quants, b);
    load128(y, avail, &a, &b);
    const __m512i h = _mm512_permutex2var_epi16(a, ix->y_scales, b);
    p->d = _mm512_cvtph_ps(_mm512_castsi512_si256(h));
    if (t->has_min) {
        p->s = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1));
    } else {
        const __m512i ones = _mm512_set1_epi8(1);
        const __m512i sum = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, p->lo), ones, p->hi);
        p->ncorr = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(sum, t->bias_shift));
    }
}

/* avail: bytes of the weight row from x on */
static inline __attribute__((always_inline)) weight_quad unpack_quad(const legacy_type *t, const quad_index *ix,
                                                                     const uint8_t *x, int64_t avail) {
    weight_quad w;
    __m512i a, b;
    load128(x, avail, &a, &b);
    const __m512i h = _mm512_permutex2var_epi16(a, ix->x_scales, b);
    w.d = _mm512_cvtph_ps(_mm512_castsi512_si256(h));
    w.m = t->has_min ? _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1)) : _mm512_setzero_ps();
    if (t->nibbles) {
        const __m512i q = _mm512_permutex2var_epi16(a, ix->x_quants, b), m4 = _mm512_set1_epi8(0x0F);
        w.lo = _mm512_and_si512(q, m4);
        w.hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
        if (t->qh_at >= 0) { /* bit k of qh is bit 4 of element k: one mask bit per byte */
            const __m128i qh = _mm512_castsi512_si128(_mm512_permutex2var_epi16(a, ix->x_qh, b));
            const __m512i sixteen = _mm512_set1_epi8(16);
            w.lo = _mm512_mask_add_epi8(w.lo, _cvtu64_mask64((uint64_t)_mm_cvtsi128_si64(qh)), w.lo, sixteen);
            w.hi = _mm512_mask_add_epi8(w.hi, _cvtu64_mask64((uint64_t)_mm_extract_epi64(qh, 1)), w.hi, sixteen);
        }
    } else { /* q8_0: the second halves from a window 16 bytes on */
        const __m512i flip = _mm512_set1_epi8((char)0x80);
        w.lo = _mm512_xor_si512(_mm512_permutex2var_epi16(a, ix->x_quants, b), flip);
        load128(x + 16, avail - 16, &a, &b);
        w.hi = _mm512_xor_si512(_mm512_permutex2var_epi16(a, ix->x_quants, b), flip);
    }
    return w;
}

/* the float steps of one quad for one (row, token): see the top comment */
static inline __attribute__((always_inline)) __m512 quad_fma(const legacy_type *t, const weight_quad *w,
                                                             const prep_quad *y, __m512 acc) {
    __m512i s = t->bias_shift >= 0 ? y->ncorr : _mm512_setzero_si512();
    s = _mm512_dpbusd_epi32(s, w->lo, y->lo);
    s = _mm512_dpbusd_epi32(s, w->hi, y->hi);
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(w->d, y->d), acc);
    if (t->has_min) acc = _mm512_mask3_fmadd_ps(w->m, y->s, acc, 0x1111);
    return acc;
}

/* ---- rows ---- */

static inline __attribute__((always_inline)) float legacy_dot(const legacy_type *t, int64_t n, const uint8_t *x,
                                                              const uint8_t *y) {
    const quad_index ix = make_index(t);
    const int64_t nb = n / 32, x_row = nb * t->x_bytes, y_row = nb * y_bytes(t);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t q = 0; q < (nb + 3) / 4; q++) {
        prep_quad p;
        prep_quad_at(t, &ix, y + 4 * q * y_bytes(t), y_row - 4 * q * y_bytes(t), &p);
        const weight_quad w = unpack_quad(t, &ix, x + 4 * q * t->x_bytes, x_row - 4 * q * t->x_bytes);
        acc = quad_fma(t, &w, &p, acc);
    }
    return q_hsum_f32x16(acc);
}

#define TILE_TOKENS 8

/* one weight row x against n_tok (<= TILE_TOKENS) prepared token rows of nq
 * quads each, at y, y + nq, ...; results to out[0], out[ld], ... */
static inline __attribute__((always_inline)) void row_tile(const legacy_type *t, const quad_index *ix,
                                                           const uint8_t *x, int64_t x_row, int64_t nq,
                                                           const prep_quad *y, int n_tok, float *out, int64_t ld) {
    __m512 acc[TILE_TOKENS];
    Q_UNROLL
    for (int i = 0; i < n_tok; i++) acc[i] = _mm512_setzero_ps();
    for (int64_t q = 0; q < nq; q++) {
        const weight_quad w = unpack_quad(t, ix, x + 4 * q * t->x_bytes, x_row - 4 * q * t->x_bytes);
        Q_UNROLL
        for (int i = 0; i < n_tok; i++) acc[i] = quad_fma(t, &w, &y[i * nq + q], acc[i]);
    }
    Q_UNROLL
    for (int i = 0; i < n_tok; i++) out[i * ld] = q_hsum_f32x16(acc[i]);
}

/* prepared activations of this many quads (64 KiB) on the stack */
#define PREP_QUADS 256

static inline __attribute__((always_inline)) void legacy_mul_mat(const legacy_type *t, int64_t n, const uint8_t *w,
                                                                 size_t w_stride, int n_rows, const uint8_t *act,
                                                                 size_t act_stride, int n_tok, float *out,
                                                                 int64_t ld_out) {
    const int64_t nb = n / 32, nq = (nb + 3) / 4, x_row = nb * t->x_bytes, y_row = nb * y_bytes(t);
    if (nq > PREP_QUADS) { /* rows too long to prepare: one dot each, the same steps */
        for (int tk = 0; tk < n_tok; tk++)
            for (int r = 0; r < n_rows; r++)
                out[tk * ld_out + r] = legacy_dot(t, n, w + r * w_stride, act + tk * act_stride);
        return;
    }
    const quad_index ix = make_index(t);
    prep_quad prep[PREP_QUADS];
    const int chunk = (int)(PREP_QUADS / nq);
    for (int t0 = 0; t0 < n_tok; t0 += chunk) {
        const int tn = n_tok - t0 < chunk ? n_tok - t0 : chunk;
        for (int i = 0; i < tn; i++) {
            const uint8_t *y = act + (size_t)(t0 + i) * act_stride;
            for (int64_t q = 0; q < nq; q++)
                prep_quad_at(t, &ix, y + 4 * q * y_bytes(t), y_row - 4 * q * y_bytes(t), &prep[i * nq + q]);
        }
        for (int r = 0; r < n_rows; r++) {
            const uint8_t *x = w + (size_t)r * w_stride;
            q_prefetch(x + Q_PREFETCH_BYTES, x_row);
            float *o = out + (int64_t)t0 * ld_out + r;
            /* token tiles of 8, then 4, 2, 1: each width is its own unrolled copy */
            int i = 0;
            for (; i + 8 <= tn; i += 8) row_tile(t, &ix, x, x_row, nq, prep + i * nq, 8, o + i * ld_out, ld_out);
            if (i + 4 <= tn) row_tile(t, &ix, x, x_row, nq, prep + i * nq, 4, o + i * ld_out, ld_out), i += 4;
            if (i + 2 <= tn) row_tile(t, &ix, x, x_row, nq, prep + i * nq, 2, o + i * ld_out, ld_out), i += 2;
            if (i < tn) row_tile(t, &ix, x, x_row, nq, prep + i * nq, 1, o + i * ld_out, ld_out);
        }
    }
}

#define LEGACY_KERNELS(type, T)                                                                                      \
    float type##_dot_avx512(int64_t n, const void *w, const void *act) { return legacy_dot(&T, n, w, act); }         \
    void type##_mul_mat_avx512(int64_t n, const void *w, size_t w_stride, int n_rows, const void *act,                \
                               size_t act_stride, int n_tok, float *out, int64_t ld_out) {                           \
        legacy_mul_mat(&T, n, w, w_stride, n_rows, act, act_stride, n_tok, out, ld_out);                             \
    }

LEGACY_KERNELS(q4_0, Q4_0)
LEGACY_KERNELS(q4_1, Q4_1)
LEGACY_KERNELS(q5_0, Q5_0)
LEGACY_KERNELS(q5_1, Q5_1)
LEGACY_KERNELS(q8_0, Q8_0)
