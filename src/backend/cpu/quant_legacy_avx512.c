/* quant_legacy_avx512.c - AVX-512 (BW + VNNI) dots and matrix products of
 * the 32-element block types q4_0, q4_1, q5_0, q5_1, q8_0 (activations
 * q8_0 / q8_1). Only called where the CPU has VNNI (quant_dispatch.c).
 *
 * Quants are multiplied by vpdpbusd: unsigned weight bytes times signed
 * activation bytes, four products summed per int32 lane. A row is cut into
 * groups of 16 blocks, then quads of 4 blocks for what remains.
 *
 * Group: the weights of 16 blocks are transposed so that int32 lane l holds
 * block b(l) = 4 (l % 4) + l / 4 only; eight vpdpbusd against activations
 * laid out the same way ("prepared" once per token) leave in lane l the
 * exact integer sum S of block b(l), and then on every lane
 *     acc = fma(float(S - bias * sum(y)), d_x * d_y, acc)
 *     acc = fma(m_x, s_y, acc)                  types with a min (q8_1 s)
 * Quad: 128-bit lane p holds block p, so lane 4p + j gets the exact sum of
 * 8 of its products (elements 4j..4j+3 and 16+4j..16+4j+3), and the same
 * two steps run with block p's scales on its four lanes, the min term on
 * lane 4p only.
 * A dot is the sum of acc's 16 lanes in a fixed tree (q_hsum_f32x16). S is
 * exact however it is computed, and every kernel here runs these float
 * steps in this order for every (row, token), so a dot, a single-token
 * product and any tile of a batched product give the same bits. A partial
 * last quad reads its missing blocks as zero (masked loads never touch a
 * byte past a row's end).
 *
 * The AVX-512 units of common Xeons do one 512-bit multiply-type op per
 * cycle (vpdpbusd, vcvtdq2ps, fma all compete for it): a group costs each
 * (row, token) 8 + 4 of them per 16 blocks, a quad 2 + 4 per 4 blocks. */
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

/* one group of activations, prepared (640 bytes) */
typedef struct {
    __m512i q[8]; /* quants: q[j] / q[4 + j] lane l = bytes 4j..4j+3 / 16+4j.. of block b(l) */
    __m512 d;     /* lane l: d of block b(l) */
    union {
        __m512 s;      /* q8_1: s of block b(l) */
        __m512i ncorr; /* q8_0: -bias * the block's sum of quants (types with a bias) */
    };
} prep_group;

/* one group of weights, unpacked */
typedef struct {
    __m512i lo[4], hi[4]; /* unsigned quants, as prep_group q[0..3] and q[4..7] */
    __m512 d, m;          /* lane l: d and m of block b(l) */
} weight_group;

/* ---- loading one quad ---- */

/* A quad of weights or activations as its window gives it: h holds in words
 * l (0-15) the first fp16 of block l / 4 (d) and in words 16 + l its second
 * (m or s); q the packed nibbles of q4_0 / q4_1 (128-bit lane p = block p),
 * or lo, hi the unsigned quants of the other types. */
typedef struct {
    __m512i h, q, lo, hi;
} quad_raw;

static inline int packed_nibbles(const legacy_type *t) { return t->nibbles && t->qh_at < 0; }

static inline void split_nibbles(__m512i q, __m512i *lo, __m512i *hi) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    *lo = _mm512_and_si512(q, m4);
    *hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
}

/* avail: bytes of the weight row from x on */
static inline __attribute__((always_inline)) quad_raw load_weight_quad(const legacy_type *t, const quad_index *ix,
                                                                       const uint8_t *x, int64_t avail) {
    quad_raw r;
    __m512i a, b;
    load128(x, avail, &a, &b);
    r.h = _mm512_permutex2var_epi16(a, ix->x_scales, b);
    if (t->nibbles) {
        r.q = _mm512_permutex2var_epi16(a, ix->x_quants, b);
        if (t->qh_at >= 0) { /* bit k of qh is bit 4 of element k: one mask bit per byte */
            split_nibbles(r.q, &r.lo, &r.hi);
            const __m128i qh = _mm512_castsi512_si128(_mm512_permutex2var_epi16(a, ix->x_qh, b));
            const __m512i sixteen = _mm512_set1_epi8(16);
            r.lo = _mm512_mask_add_epi8(r.lo, _cvtu64_mask64((uint64_t)_mm_cvtsi128_si64(qh)), r.lo, sixteen);
            r.hi = _mm512_mask_add_epi8(r.hi, _cvtu64_mask64((uint64_t)_mm_extract_epi64(qh, 1)), r.hi, sixteen);
        }
    } else { /* q8_0: the second halves from a window 16 bytes on */
        const __m512i flip = _mm512_set1_epi8((char)0x80);
        r.lo = _mm512_xor_si512(_mm512_permutex2var_epi16(a, ix->x_quants, b), flip);
        load128(x + 16, avail - 16, &a, &b);
        r.hi = _mm512_xor_si512(_mm512_permutex2var_epi16(a, ix->x_quants, b), flip);
    }
    return r;
}

/* avail: bytes of the activation row from y on */
static inline __attribute__((always_inline)) quad_raw load_act_quad(const legacy_type *t, const quad_index *ix,
                                                                    const uint8_t *y, int64_t avail) {
    const int qs = y_bytes(t) - 32;
    quad_raw r;
    __m512i a, b;
    load128(y + qs, avail - qs, &a, &b);
    r.lo = _mm512_permutex2var_epi16(a, ix->y_quants, b);
    load128(y + qs + 16, avail - qs - 16, &a, &b);
    r.hi = _mm512_permutex2var_epi16(a, ix->y_quants, b);
    load128(y, avail, &a, &b);
    r.h = _mm512_permutex2var_epi16(a, ix->y_scales, b);
    return r;
}

/* -bias * the lane sums of activations spread over lo[0..k) and hi[0..k) */
static inline __m512i bias_correction(const legacy_type *t, const __m512i *lo, const __m512i *hi, int k) {
    const __m512i ones = _mm512_set1_epi8(1);
    __m512i sum = _mm512_setzero_si512();
    Q_UNROLL
    for (int j = 0; j < k; j++) sum = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(sum, ones, lo[j]), ones, hi[j]);
    return _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(sum, t->bias_shift));
}

/* ---- quads ---- */

static inline __attribute__((always_inline)) void prep_quad_at(const legacy_type *t, const quad_index *ix,
                                                               const uint8_t *y, int64_t avail, prep_quad *p) {
    const quad_raw r = load_act_quad(t, ix, y, avail);
    p->lo = r.lo;
    p->hi = r.hi;
    p->d = _mm512_cvtph_ps(_mm512_castsi512_si256(r.h));
    if (t->has_min) p->s = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(r.h, 1));
    else p->ncorr = bias_correction(t, &p->lo, &p->hi, 1);
}

static inline __attribute__((always_inline)) weight_quad unpack_quad(const legacy_type *t, const quad_index *ix,
                                                                     const uint8_t *x, int64_t avail) {
    const quad_raw r = load_weight_quad(t, ix, x, avail);
    weight_quad w;
    if (packed_nibbles(t)) split_nibbles(r.q, &w.lo, &w.hi);
    else w.lo = r.lo, w.hi = r.hi;
    w.d = _mm512_cvtph_ps(_mm512_castsi512_si256(r.h));
    w.m = t->has_min ? _mm512_cvtph_ps(_mm512_extracti64x4_epi64(r.h, 1)) : _mm512_setzero_ps();
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

/* ---- groups ---- */

/* v[i] 128-bit lane p dword j -> t[j] dword 4p + i: block 4i + p of a group
 * lands in lane 4p + i, i.e. lane l holds block b(l) */
static inline void transpose4(const __m512i v[4], __m512i t[4]) {
    const __m512i a0 = _mm512_unpacklo_epi32(v[0], v[1]), a1 = _mm512_unpackhi_epi32(v[0], v[1]);
    const __m512i b0 = _mm512_unpacklo_epi32(v[2], v[3]), b1 = _mm512_unpackhi_epi32(v[2], v[3]);
    t[0] = _mm512_unpacklo_epi64(a0, b0);
    t[1] = _mm512_unpackhi_epi64(a0, b0);
    t[2] = _mm512_unpacklo_epi64(a1, b1);
    t[3] = _mm512_unpackhi_epi64(a1, b1);
}

/* the scale words of quad i (h[i] words 4p.. hold block p's) -> words 4p + i */
static inline __m512i merge_scales(const quad_raw r[4]) {
    __m512i h = r[0].h;
    Q_UNROLL
    for (int i = 1; i < 4; i++) h = _mm512_mask_mov_epi16(h, (__mmask32)(0x11111111u << i), r[i].h);
    return h;
}

/* y: the group's first block; avail: bytes of the row from there */
static inline __attribute__((always_inline)) void prep_group_at(const legacy_type *t, const quad_index *ix,
                                                                const uint8_t *y, int64_t avail, prep_group *p) {
    const int64_t quad_bytes = 4 * y_bytes(t);
    quad_raw r[4];
    __m512i lo[4], hi[4];
    Q_UNROLL
    for (int i = 0; i < 4; i++) {
        r[i] = load_act_quad(t, ix, y + i * quad_bytes, avail - i * quad_bytes);
        lo[i] = r[i].lo, hi[i] = r[i].hi;
    }
    transpose4(lo, p->q);
    transpose4(hi, p->q + 4);
    const __m512i h = merge_scales(r);
    p->d = _mm512_cvtph_ps(_mm512_castsi512_si256(h));
    if (t->has_min) p->s = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1));
    else p->ncorr = bias_correction(t, p->q, p->q + 4, 4);
}

static inline __attribute__((always_inline)) weight_group unpack_group(const legacy_type *t, const quad_index *ix,
                                                                       const uint8_t *x, int64_t avail) {
    const int64_t quad_bytes = 4 * t->x_bytes;
    quad_raw r[4];
    Q_UNROLL
    for (int i = 0; i < 4; i++) r[i] = load_weight_quad(t, ix, x + i * quad_bytes, avail - i * quad_bytes);
    weight_group w;
    if (packed_nibbles(t)) { /* transpose the packed nibbles, then split: half the shuffles */
        __m512i q[4], tq[4];
        Q_UNROLL
        for (int i = 0; i < 4; i++) q[i] = r[i].q;
        transpose4(q, tq);
        Q_UNROLL
        for (int j = 0; j < 4; j++) split_nibbles(tq[j], &w.lo[j], &w.hi[j]);
    } else {
        __m512i lo[4], hi[4];
        Q_UNROLL
        for (int i = 0; i < 4; i++) lo[i] = r[i].lo, hi[i] = r[i].hi;
        transpose4(lo, w.lo);
        transpose4(hi, w.hi);
    }
    const __m512i h = merge_scales(r);
    w.d = _mm512_cvtph_ps(_mm512_castsi512_si256(h));
    w.m = t->has_min ? _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1)) : _mm512_setzero_ps();
    return w;
}

/* the float steps of one group for one (row, token): see the top comment */
static inline __attribute__((always_inline)) __m512 group_fma(const legacy_type *t, const weight_group *w,
                                                              const prep_group *y, __m512 acc) {
    /* two chains of four: half the latency of one */
    __m512i s0 = t->bias_shift >= 0 ? y->ncorr : _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
    Q_UNROLL
    for (int j = 0; j < 4; j++) {
        s0 = _mm512_dpbusd_epi32(s0, w->lo[j], y->q[j]);
        s1 = _mm512_dpbusd_epi32(s1, w->hi[j], y->q[4 + j]);
    }
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)), _mm512_mul_ps(w->d, y->d), acc);
    if (t->has_min) acc = _mm512_fmadd_ps(w->m, y->s, acc);
    return acc;
}

/* ---- rows ---- */

/* A row of nb blocks: ng groups, then nq quads (the last may be partial). */
typedef struct {
    int64_t ng, nq, x_row, y_row;
} row_shape;

static inline row_shape shape_of(const legacy_type *t, int64_t n) {
    const int64_t nb = n / 32;
    row_shape rs = {nb / 16, (nb % 16 + 3) / 4, nb * t->x_bytes, nb * y_bytes(t)};
    return rs;
}

static inline __attribute__((always_inline)) void prep_row(const legacy_type *t, const quad_index *ix,
                                                           const row_shape *rs, const uint8_t *y, prep_group *pg,
                                                           prep_quad *pq) {
    const int64_t group_bytes = 16 * y_bytes(t), quad_bytes = 4 * y_bytes(t);
    for (int64_t g = 0; g < rs->ng; g++) prep_group_at(t, ix, y + g * group_bytes, rs->y_row - g * group_bytes, &pg[g]);
    const int64_t tail = rs->ng * group_bytes;
    for (int64_t q = 0; q < rs->nq; q++)
        prep_quad_at(t, ix, y + tail + q * quad_bytes, rs->y_row - tail - q * quad_bytes, &pq[q]);
}

static inline __attribute__((always_inline)) float legacy_dot(const legacy_type *t, int64_t n, const uint8_t *x,
                                                              const uint8_t *y) {
    const quad_index ix = make_index(t);
    const row_shape rs = shape_of(t, n);
    const int64_t gx = 16 * t->x_bytes, gy = 16 * y_bytes(t), qx = 4 * t->x_bytes, qy = 4 * y_bytes(t);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t g = 0; g < rs.ng; g++) {
        prep_group p;
        prep_group_at(t, &ix, y + g * gy, rs.y_row - g * gy, &p);
        const weight_group w = unpack_group(t, &ix, x + g * gx, rs.x_row - g * gx);
        acc = group_fma(t, &w, &p, acc);
    }
    x += rs.ng * gx, y += rs.ng * gy;
    for (int64_t q = 0; q < rs.nq; q++) {
        prep_quad p;
        prep_quad_at(t, &ix, y + q * qy, rs.y_row - rs.ng * gy - q * qy, &p);
        const weight_quad w = unpack_quad(t, &ix, x + q * qx, rs.x_row - rs.ng * gx - q * qx);
        acc = quad_fma(t, &w, &p, acc);
    }
    return q_hsum_f32x16(acc);
}

#define TILE_TOKENS 16

/* one weight row x against n_tok (<= TILE_TOKENS) prepared token rows:
 * groups at pg, pg + ng, ..., quads at pq, pq + nq, ...; results to out[0],
 * out[ld], ... */
static inline __attribute__((always_inline)) void row_tile(const legacy_type *t, const quad_index *ix,
                                                           const row_shape *rs, const uint8_t *x,
                                                           const prep_group *pg, const prep_quad *pq, int n_tok,
                                                           float *out, int64_t ld) {
    const int64_t gx = 16 * t->x_bytes, qx = 4 * t->x_bytes;
    __m512 acc[TILE_TOKENS];
    Q_UNROLL
    for (int i = 0; i < n_tok; i++) acc[i] = _mm512_setzero_ps();
    for (int64_t g = 0; g < rs->ng; g++) {
        if (n_tok == 1) q_prefetch(x + g * gx + Q_DECODE_AHEAD, gx);
        const weight_group w = unpack_group(t, ix, x + g * gx, rs->x_row - g * gx);
        Q_UNROLL
        for (int i = 0; i < n_tok; i++) acc[i] = group_fma(t, &w, &pg[i * rs->ng + g], acc[i]);
    }
    const int64_t tail = rs->ng * gx;
    for (int64_t q = 0; q < rs->nq; q++) {
        if (n_tok == 1) q_prefetch(x + tail + q * qx + Q_DECODE_AHEAD, qx);
        const weight_quad w = unpack_quad(t, ix, x + tail + q * qx, rs->x_row - tail - q * qx);
        Q_UNROLL
        for (int i = 0; i < n_tok; i++) acc[i] = quad_fma(t, &w, &pq[i * rs->nq + q], acc[i]);
    }
    Q_UNROLL
    for (int i = 0; i < n_tok; i++) out[i * ld] = q_hsum_f32x16(acc[i]);
}

/* every row against n_tok prepared tokens: one loop per tile width, with the
 * index vectors and shape in locals, keeps the tile in registers */
static inline __attribute__((always_inline)) void rows_tiled(const legacy_type *t, const quad_index *ix,
                                                             const row_shape *rs, const uint8_t *w, size_t w_stride,
                                                             int n_rows, const prep_group *pg, const prep_quad *pq,
                                                             int n_tok, float *out, int64_t ld) {
    const quad_index lix = *ix;
    const row_shape lrs = *rs;
    for (int r = 0; r < n_rows; r++) {
        const uint8_t *x = w + (size_t)r * w_stride;
        if (n_tok != 1) q_prefetch(x + Q_PREFETCH_BYTES, lrs.x_row); /* n_tok == 1: row_tile asks */
        row_tile(t, &lix, &lrs, x, pg, pq, n_tok, out + r, ld);
    }
}

/* prepared activations on the stack: groups (56 KiB) and tail quads (8 KiB) */
#define PREP_GROUPS 89
#define PREP_QUADS 32

static inline __attribute__((always_inline)) void legacy_mul_mat(const legacy_type *t, int64_t n, const uint8_t *w,
                                                                 size_t w_stride, int n_rows, const uint8_t *act,
                                                                 size_t act_stride, int n_tok, float *out,
                                                                 int64_t ld_out) {
    const row_shape rs = shape_of(t, n);
    if (rs.ng > PREP_GROUPS) { /* rows too long to prepare: one dot each, the same steps */
        for (int tk = 0; tk < n_tok; tk++)
            for (int r = 0; r < n_rows; r++)
                out[tk * ld_out + r] = legacy_dot(t, n, w + r * w_stride, act + tk * act_stride);
        return;
    }
    const quad_index ix = make_index(t);
    prep_group pg[PREP_GROUPS];
    prep_quad pq[PREP_QUADS];
    int chunk = rs.ng ? (int)(PREP_GROUPS / rs.ng) : n_tok;
    if (rs.nq && chunk > PREP_QUADS / rs.nq) chunk = (int)(PREP_QUADS / rs.nq);
    if (chunk > TILE_TOKENS) chunk -= chunk % TILE_TOKENS; /* whole tiles */
    for (int t0 = 0; t0 < n_tok; t0 += chunk) {
        const int tn = n_tok - t0 < chunk ? n_tok - t0 : chunk;
        for (int i = 0; i < tn; i++)
            prep_row(t, &ix, &rs, act + (size_t)(t0 + i) * act_stride, pg + i * rs.ng, pq + i * rs.nq);
        /* token tiles of 16, then 8, 4, 2, 1: each width is its own unrolled copy */
        float *o = out + (int64_t)t0 * ld_out;
        int i = 0;
        for (; i + 16 <= tn; i += 16) rows_tiled(t, &ix, &rs, w, w_stride, n_rows, pg + i * rs.ng, pq + i * rs.nq, 16, o + i * ld_out, ld_out);
        if (i + 8 <= tn) rows_tiled(t, &ix, &rs, w, w_stride, n_rows, pg + i * rs.ng, pq + i * rs.nq, 8, o + i * ld_out, ld_out), i += 8;
        if (i + 4 <= tn) rows_tiled(t, &ix, &rs, w, w_stride, n_rows, pg + i * rs.ng, pq + i * rs.nq, 4, o + i * ld_out, ld_out), i += 4;
        if (i + 2 <= tn) rows_tiled(t, &ix, &rs, w, w_stride, n_rows, pg + i * rs.ng, pq + i * rs.nq, 2, o + i * ld_out, ld_out), i += 2;
        if (i < tn) rows_tiled(t, &ix, &rs, w, w_stride, n_rows, pg + i * rs.ng, pq + i * rs.nq, 1, o + i * ld_out, ld_out);
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
