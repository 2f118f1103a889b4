/* quant_pack_avx512.c - the products of q4_K and q6_K weights packed in
 * 16-row blocks (quant_pack.h) with q8_K activations, AVX-512 + VNNI.
 *
 * A zmm lane is a row. For a super-block, per token and per sub-block g
 * (32 quants), the integer sums are exact:
 *     lo_g = sum over p of vpdpbusd(quants 4p..4p+3, x[4p..4p+3])
 *     hi_g = sum over p of vpdpbusd(quants 16+4p.., x[16+4p..])
 * q4_K (scale and min per sub-block):
 *     s  = fma(float(lo_g + hi_g), d * sc_g, s)     g = 0..7, s from 0
 *     mm = fma(dmin * m_g, float(bsum_g), mm)       mm from 0
 *     acc = fma(s, d_x, acc);  acc = acc - mm * d_x (one rounding)
 * q6_K (quants stored + 32, a scale per 16):
 *     s = fma(float(lo_g - 32 bsum_2g), d * sc_2g, s)
 *     s = fma(float(hi_g - 32 bsum_2g+1), d * sc_2g+1, s)    g = 0..7
 *     acc = fma(s, d_x, acc)
 * over the super-blocks in order (the products of scales are exact in
 * float: 11 bits times 6 or 8). These are the only steps a (row, token)
 * result sees, in every tile shape and for any number of tokens, so a
 * token's result does not depend on its batch. Per 16 rows x 32 quants x 1
 * token that is 8 vpdpbusd and one or two conversions; the quants are
 * unpacked once per tile of 4 tokens and each activation word is broadcast
 * from memory. */
#include <stdbool.h>
#include <stddef.h>

#include "backend/cpu/quant_blocks.h"
#include "backend/cpu/quant_x86.h"
#include "base/dtype.h"

#define PACK_TILE 4   /* tokens whose sums stay in registers */
#define PACK_CHUNK 64 /* tokens whose accumulators wait on the stack */

#define PK_INLINE static inline __attribute__((always_inline))

typedef enum { P4, P6 } pack_kind;

/* the super-block's per-row float scales, shared by every token */
typedef struct {
    __m512 dsc[16], dmm[8]; /* q4_K: dsc[0..7], dmm; q6_K: dsc[0..15] */
} pack_scales;

PK_INLINE void load_scales6(const block_q6_Kx16 *b, pack_scales *ps) {
    const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)b->d));
    Q_UNROLL
    for (int k = 0; k < 16; k++)
        ps->dsc[k] = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)b->sc[k]))));
}

PK_INLINE void load_scales(const block_q4_Kx16 *b, pack_scales *ps) {
    const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)b->d));
    const __m512 dmin = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)b->dmin));
    Q_UNROLL
    for (int g = 0; g < 8; g++) {
        const __m512 sc = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)b->sc[g])));
        const __m512 m = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)b->m[g])));
        ps->dsc[g] = _mm512_mul_ps(d, sc);
        ps->dmm[g] = _mm512_mul_ps(dmin, m);
    }
}

static inline int32_t act_word(const block_q8_K *y, int at) {
    int32_t v;
    memcpy(&v, y->qs + at, 4);
    return v;
}

/* one super-block for NT tokens: acc[t] += the steps of the top comment */
PK_INLINE void tile(pack_kind kind, int NT, const void *blk, const pack_scales *ps, const block_q8_K *const *y,
                    __m512 *acc, bool stream) {
    const __m512i m4 = _mm512_set1_epi8(0x0F), m3 = _mm512_set1_epi8(0x03);
    const block_q4_Kx16 *b4 = blk;
    const block_q6_Kx16 *b6 = blk;
    __m512 s[PACK_TILE], mm[PACK_TILE];
    Q_UNROLL
    for (int t = 0; t < NT; t++) s[t] = _mm512_setzero_ps(), mm[t] = _mm512_setzero_ps();
    Q_UNROLL
    for (int g = 0; g < 8; g++) {
        __m512i lo_sum[PACK_TILE], hi_sum[PACK_TILE];
        Q_UNROLL
        for (int t = 0; t < NT; t++) lo_sum[t] = _mm512_setzero_si512(), hi_sum[t] = _mm512_setzero_si512();
        const uint8_t(*qs)[64] = kind == P6 ? b6->qs[g] : b4->qs[g];
        __m512i qh_lo = m3, qh_hi = m3;
        if (kind == P6) {
            if (stream) q_prefetch(b6->qh[g][0] + Q_DECODE_AHEAD, 128);
            qh_lo = _mm512_loadu_si512(b6->qh[g][0]);
            qh_hi = _mm512_loadu_si512(b6->qh[g][1]);
        }
        Q_UNROLL
        for (int p = 0; p < 4; p++) {
            /* a decode streams the weights from DRAM: one line asked for ahead
             * per line read (a burst of requests would fill the line buffers
             * and stall) */
            if (stream) q_prefetch(qs[p] + Q_DECODE_AHEAD, 64);
            const __m512i wv = _mm512_loadu_si512(qs[p]);
            __m512i lo = _mm512_and_si512(wv, m4), hi = _mm512_and_si512(_mm512_srli_epi16(wv, 4), m4);
            if (kind == P6) { /* bits 2p, 2p + 1 of the qh bytes become bits 4, 5 */
                lo = _mm512_or_si512(lo, _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(qh_lo, 2 * p), m3), 4));
                hi = _mm512_or_si512(hi, _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(qh_hi, 2 * p), m3), 4));
            }
            Q_UNROLL
            for (int t = 0; t < NT; t++) {
                lo_sum[t] = _mm512_dpbusd_epi32(lo_sum[t], lo, _mm512_set1_epi32(act_word(y[t], 32 * g + 4 * p)));
                hi_sum[t] = _mm512_dpbusd_epi32(hi_sum[t], hi, _mm512_set1_epi32(act_word(y[t], 32 * g + 16 + 4 * p)));
            }
        }
        Q_UNROLL
        for (int t = 0; t < NT; t++) {
            if (kind == P6) {
                const __m512i lo_c = _mm512_sub_epi32(lo_sum[t], _mm512_set1_epi32(32 * y[t]->bsums[2 * g]));
                const __m512i hi_c = _mm512_sub_epi32(hi_sum[t], _mm512_set1_epi32(32 * y[t]->bsums[2 * g + 1]));
                s[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lo_c), ps->dsc[2 * g], s[t]);
                s[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(hi_c), ps->dsc[2 * g + 1], s[t]);
            } else {
                const float bsum = (float)(y[t]->bsums[2 * g] + y[t]->bsums[2 * g + 1]);
                s[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(lo_sum[t], hi_sum[t])), ps->dsc[g], s[t]);
                mm[t] = _mm512_fmadd_ps(ps->dmm[g], _mm512_set1_ps(bsum), mm[t]);
            }
        }
    }
    Q_UNROLL
    for (int t = 0; t < NT; t++) {
        const __m512 dy = _mm512_set1_ps(y[t]->d);
        acc[t] = _mm512_fmadd_ps(s[t], dy, acc[t]);
        if (kind == P4) acc[t] = _mm512_fnmadd_ps(mm[t], dy, acc[t]);
    }
}

static inline size_t pack_block_bytes(pack_kind kind) {
    return kind == P6 ? sizeof(block_q6_Kx16) : sizeof(block_q4_Kx16);
}

/* one block of 16 rows (nsb super-blocks at b) against n_tok tokens */
PK_INLINE void rows16(pack_kind kind, const uint8_t *b, int64_t nsb, const uint8_t *act, size_t act_stride, int n_tok,
                      float *out, int64_t ld_out) {
    __m512 acc[PACK_CHUNK];
    const size_t bb = pack_block_bytes(kind);
    for (int t0 = 0; t0 < n_tok; t0 += PACK_CHUNK) {
        const int nc = n_tok - t0 < PACK_CHUNK ? n_tok - t0 : PACK_CHUNK;
        for (int t = 0; t < nc; t++) acc[t] = _mm512_setzero_ps();
        for (int64_t s = 0; s < nsb; s++) {
            const uint8_t *blk = b + (size_t)s * bb;
            const bool stream = n_tok == 1;
            pack_scales ps;
            if (kind == P6) {
                if (stream) q_prefetch(blk + Q_DECODE_AHEAD, offsetof(block_q6_Kx16, qs));
                load_scales6((const block_q6_Kx16 *)blk, &ps);
            } else {
                if (stream) q_prefetch(blk + Q_DECODE_AHEAD, offsetof(block_q4_Kx16, qs));
                load_scales((const block_q4_Kx16 *)blk, &ps);
            }
            for (int t = 0; t < nc; t += PACK_TILE) {
                const int nt = nc - t < PACK_TILE ? nc - t : PACK_TILE;
                const block_q8_K *y[PACK_TILE];
                for (int i = 0; i < nt; i++) y[i] = (const block_q8_K *)(act + (size_t)(t0 + t + i) * act_stride) + s;
                switch (nt) { /* each width its own unrolled copy */
                case 4: tile(kind, 4, blk, &ps, y, acc + t, false); break;
                case 3: tile(kind, 3, blk, &ps, y, acc + t, false); break;
                case 2: tile(kind, 2, blk, &ps, y, acc + t, false); break;
                default: tile(kind, 1, blk, &ps, y, acc + t, stream); break;
                }
            }
        }
        for (int t = 0; t < nc; t++) _mm512_storeu_ps(out + (int64_t)(t0 + t) * ld_out, acc[t]);
    }
}

static void rows16_q4(const uint8_t *b, int64_t nsb, const uint8_t *act, size_t act_stride, int n_tok, float *out,
                      int64_t ld_out) {
    rows16(P4, b, nsb, act, act_stride, n_tok, out, ld_out);
}

static void rows16_q6(const uint8_t *b, int64_t nsb, const uint8_t *act, size_t act_stride, int n_tok, float *out,
                      int64_t ld_out) {
    rows16(P6, b, nsb, act, act_stride, n_tok, out, ld_out);
}

/* n_blocks blocks of 16 rows of a packed q4_K or q6_K matrix */
void q_x16_mul_mat_avx512(uint32_t type, int64_t n, const void *packed, int n_blocks, const void *act,
                          size_t act_stride, int n_tok, float *out, int64_t ld_out) {
    const int64_t nsb = n / QK_K;
    const pack_kind kind = type == LM_Q6_K ? P6 : P4;
    const size_t row_block = (size_t)nsb * pack_block_bytes(kind);
    for (int rb = 0; rb < n_blocks; rb++) {
        const uint8_t *b = (const uint8_t *)packed + rb * row_block;
        if (kind == P6) rows16_q6(b, nsb, act, act_stride, n_tok, out + rb * 16, ld_out);
        else rows16_q4(b, nsb, act, act_stride, n_tok, out + rb * 16, ld_out);
    }
}
