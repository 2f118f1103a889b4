/* quant_pack_avx512.c - the product of q4_K weights packed in 16-row blocks
 * (quant_pack.h) with q8_K activations, AVX-512 + VNNI.
 *
 * A zmm lane is a row. For a super-block, per token and per sub-block g:
 *     sumi_g = sum over p of vpdpbusd(low nibbles of qs[g][p], x[4p..4p+3])
 *            + vpdpbusd(high nibbles, x[16+4p..16+4p+3])   (exact int32)
 *     s  = fma(float(sumi_g), d * sc_g, s)       g = 0..7, s from 0
 *     mm = fma(dmin * m_g, float(bsum_g), mm)    g = 0..7, mm from 0
 * (d * sc_g and dmin * m_g are exact in float: 11 bits times 6), then
 *     acc = fma(s, d_x, acc);  acc = acc - mm * d_x (one rounding)
 * over the super-blocks in order. These are the only steps a (row, token)
 * result sees, in every tile shape and for any number of tokens, so a
 * token's result does not depend on its batch. Per 16 rows x 32 quants x 1
 * token that is 8 vpdpbusd and one conversion; the quants are unpacked once
 * per tile of 4 tokens and each activation word is broadcast from memory. */
#include <stdbool.h>
#include <stddef.h>

#include "backend/cpu/quant_blocks.h"
#include "backend/cpu/quant_x86.h"

#define PACK_TILE 4   /* tokens whose sums stay in registers */
#define PACK_CHUNK 64 /* tokens whose accumulators wait on the stack */

#define PK_INLINE static inline __attribute__((always_inline))

/* the super-block's per-row float scales, shared by every token */
typedef struct {
    __m512 dsc[8], dmm[8];
} pack_scales;

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
PK_INLINE void tile(int NT, const block_q4_Kx16 *b, const pack_scales *ps, const block_q8_K *const *y, __m512 *acc,
                    bool stream) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    __m512 s[PACK_TILE], mm[PACK_TILE];
    Q_UNROLL
    for (int t = 0; t < NT; t++) s[t] = _mm512_setzero_ps(), mm[t] = _mm512_setzero_ps();
    Q_UNROLL
    for (int g = 0; g < 8; g++) {
        __m512i lo_sum[PACK_TILE], hi_sum[PACK_TILE];
        Q_UNROLL
        for (int t = 0; t < NT; t++) lo_sum[t] = _mm512_setzero_si512(), hi_sum[t] = _mm512_setzero_si512();
        Q_UNROLL
        for (int p = 0; p < 4; p++) {
            /* a decode streams the weights from DRAM: one line asked for ahead
             * per line read (a burst of requests would fill the line buffers
             * and stall) */
            if (stream) q_prefetch(b->qs[g][p] + Q_DECODE_AHEAD, 64);
            const __m512i wv = _mm512_loadu_si512(b->qs[g][p]);
            const __m512i lo = _mm512_and_si512(wv, m4), hi = _mm512_and_si512(_mm512_srli_epi16(wv, 4), m4);
            Q_UNROLL
            for (int t = 0; t < NT; t++) {
                lo_sum[t] = _mm512_dpbusd_epi32(lo_sum[t], lo, _mm512_set1_epi32(act_word(y[t], 32 * g + 4 * p)));
                hi_sum[t] = _mm512_dpbusd_epi32(hi_sum[t], hi, _mm512_set1_epi32(act_word(y[t], 32 * g + 16 + 4 * p)));
            }
        }
        Q_UNROLL
        for (int t = 0; t < NT; t++) {
            const float bsum = (float)(y[t]->bsums[2 * g] + y[t]->bsums[2 * g + 1]);
            s[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(lo_sum[t], hi_sum[t])), ps->dsc[g], s[t]);
            mm[t] = _mm512_fmadd_ps(ps->dmm[g], _mm512_set1_ps(bsum), mm[t]);
        }
    }
    Q_UNROLL
    for (int t = 0; t < NT; t++) {
        const __m512 dy = _mm512_set1_ps(y[t]->d);
        acc[t] = _mm512_fnmadd_ps(mm[t], dy, _mm512_fmadd_ps(s[t], dy, acc[t]));
    }
}

/* one block of 16 rows (nsb super-blocks at b) against n_tok tokens */
static void rows16(const block_q4_Kx16 *b, int64_t nsb, const uint8_t *act, size_t act_stride, int n_tok, float *out,
                   int64_t ld_out) {
    __m512 acc[PACK_CHUNK];
    for (int t0 = 0; t0 < n_tok; t0 += PACK_CHUNK) {
        const int nc = n_tok - t0 < PACK_CHUNK ? n_tok - t0 : PACK_CHUNK;
        for (int t = 0; t < nc; t++) acc[t] = _mm512_setzero_ps();
        for (int64_t s = 0; s < nsb; s++) {
            const bool stream = n_tok == 1;
            if (stream) q_prefetch((const char *)(b + s) + Q_DECODE_AHEAD, offsetof(block_q4_Kx16, qs));
            pack_scales ps;
            load_scales(b + s, &ps);
            for (int t = 0; t < nc; t += PACK_TILE) {
                const int nt = nc - t < PACK_TILE ? nc - t : PACK_TILE;
                const block_q8_K *y[PACK_TILE];
                for (int i = 0; i < nt; i++) y[i] = (const block_q8_K *)(act + (size_t)(t0 + t + i) * act_stride) + s;
                switch (nt) { /* each width its own unrolled copy */
                case 4: tile(4, b + s, &ps, y, acc + t, false); break;
                case 3: tile(3, b + s, &ps, y, acc + t, false); break;
                case 2: tile(2, b + s, &ps, y, acc + t, false); break;
                default: tile(1, b + s, &ps, y, acc + t, stream); break;
                }
            }
        }
        for (int t = 0; t < nc; t++) _mm512_storeu_ps(out + (int64_t)(t0 + t) * ld_out, acc[t]);
    }
}

void q4_K_x16_mul_mat_avx512(int64_t n, const void *packed, int n_blocks, const void *act, size_t act_stride, int n_tok,
                             float *out, int64_t ld_out) {
    const int64_t nsb = n / QK_K;
    const block_q4_Kx16 *b = packed;
    for (int rb = 0; rb < n_blocks; rb++)
        rows16(b + (int64_t)rb * nsb, nsb, act, act_stride, n_tok, out + rb * 16, ld_out);
}
