/* quant_float_gemm.h - the dot and the matrix product of the float weight
 * types (f32, f16, bf16) for one SIMD level, written once. quant_float_avx2.c,
 * quant_float_avx512.c and quant_float_neon.c define these and include this
 * file:
 *
 *   FG_LEVEL      suffix of the functions it defines (avx2, avx512, neon)
 *   FG_V, FG_W    the float vector type and its lanes
 *   FG_R, FG_T    rows and tokens of a register tile (FG_T <= 8)
 *   FG_ZERO() FG_FMA(a, b, c) FG_LOADU(p) FG_STOREU(p, v) FG_HSUM(v)
 *   FG_F16(p) FG_BF16(p)   FG_W halves / bfloat16s at p -> floats
 *   FG_PREFETCH(p)         asks for the cache line at p
 *
 * One output (row, token) is always computed the same way: a single vector
 * accumulator, acc = fma(w[i..i+W), x[i..i+W), acc) for i = 0, W, 2W ...
 * over the largest multiple of W; then FG_HSUM(acc); then
 * sum = fmaf(w[i], x[i], sum) over the rest, in order. A tile runs FG_R x
 * FG_T of these accumulators side by side: a converted weight vector serves
 * FG_T tokens, an activation vector FG_R rows, and the FMA chains are
 * independent, so the tile is bound by FMA throughput, not by latency or by
 * conversions. The activations of a tile's tokens are converted to floats
 * once (exactly: every f16 and bf16 is a float) into a stack buffer; a row too
 * long for it runs in chunks and its accumulators wait in memory between
 * chunks, which keeps their bits. So every split of a product (rows, tokens,
 * threads) gives the same floats, and dot is the product of one row and one
 * token. */

#include <math.h>
#include <stdbool.h>

#include "base/dtype.h"

#define FG_CAT3_(a, b, c) a##_##b##_##c
#define FG_CAT3(a, b, c) FG_CAT3_(a, b, c)
#define FG_FN(type, what) FG_CAT3(type, what, FG_LEVEL)
#define FG_INLINE static inline __attribute__((always_inline))
#define FG_UNROLL _Pragma("GCC unroll 16")
/* How far ahead a decode tile asks for each of its rows: four rows stream at
 * once (Qwen3-0.6B f16 decode on the AVX-512 machine, 1 thread, t/s: 3072
 * bytes 10.7, 6144 11.5, 12288 12.0, 24576 11.8). */
#define FG_PREFETCH_BYTES 12288

/* floats of converted activations on the stack: a chunk of a row for each
 * token of a tile (48 KiB; 2048 elements for a full AVX-512 tile) */
#define FG_XS_FLOATS 12288
/* accumulators parked between chunks: a panel of rows is done chunk by chunk */
#define FG_PARK (8 * FG_R * FG_T)

FG_INLINE FG_V fg_load(uint32_t type, const void *p, int64_t i) {
    switch (type) {
    case LM_F16: return FG_F16((const lm_fp16 *)p + i);
    case LM_BF16: return FG_BF16((const lm_bf16 *)p + i);
    default: return FG_LOADU((const float *)p + i);
    }
}

FG_INLINE int64_t fg_bytes(uint32_t type, int64_t i) { return type == LM_F32 ? 4 * i : 2 * i; }

FG_INLINE float fg_scalar(uint32_t type, const void *p, int64_t i) {
    switch (type) {
    case LM_F16: return lm_fp16_to_fp32(((const lm_fp16 *)p)[i]);
    case LM_BF16: return lm_bf16_to_fp32(((const lm_bf16 *)p)[i]);
    default: return ((const float *)p)[i];
    }
}

typedef struct fg_chunk {
    const float *xs;   /* NT rows of len floats */
    int64_t i0, len;   /* elements [i0, i0 + len) of the rows, multiples of FG_W */
    bool first, last;  /* the row's first / last chunk */
    int64_t nv, n;     /* the vector part, the whole row */
    const float *tail; /* FG_T rows of FG_W floats: elements [nv, n) */
} fg_chunk;

/* NR rows x NT tokens over one chunk; on the last chunk the outputs */
FG_INLINE void fg_tile(uint32_t type, int NR, int NT, const char *w, size_t w_stride, const fg_chunk *c, FG_V *park,
                       float *out, int64_t ld_out) {
    FG_V acc[FG_R][FG_T];
    FG_UNROLL
    for (int r = 0; r < NR; r++)
        FG_UNROLL
        for (int t = 0; t < NT; t++) acc[r][t] = c->first ? FG_ZERO() : park[r * NT + t];
    for (int64_t i = 0; i < c->len; i += FG_W) {
        FG_V wv[FG_R];
        FG_UNROLL
        for (int r = 0; r < NR; r++) {
            /* a decode streams its rows from DRAM: ask for them ahead */
            if (NT == 1) FG_PREFETCH(w + (size_t)r * w_stride + fg_bytes(type, c->i0 + i) + FG_PREFETCH_BYTES);
            wv[r] = fg_load(type, w + (size_t)r * w_stride, c->i0 + i);
        }
        FG_UNROLL
        for (int t = 0; t < NT; t++) {
            const FG_V xv = FG_LOADU(c->xs + t * c->len + i);
            FG_UNROLL
            for (int r = 0; r < NR; r++) acc[r][t] = FG_FMA(wv[r], xv, acc[r][t]);
        }
    }
    if (!c->last) {
        FG_UNROLL
        for (int r = 0; r < NR; r++)
            FG_UNROLL
            for (int t = 0; t < NT; t++) park[r * NT + t] = acc[r][t];
        return;
    }
    FG_UNROLL
    for (int r = 0; r < NR; r++)
        FG_UNROLL
        for (int t = 0; t < NT; t++) {
            float sum = FG_HSUM(acc[r][t]);
            for (int64_t i = c->nv; i < c->n; i++)
                sum = fmaf(fg_scalar(type, w + (size_t)r * w_stride, i), c->tail[t * FG_W + i - c->nv], sum);
            out[(int64_t)t * ld_out + r] = sum;
        }
}

/* NR rows with NT fixed at compile time, for NT = nt */
#define FG_TILE_NT(NR, NT) fg_tile(type, NR, NT, w, w_stride, c, park, out, ld_out)
FG_INLINE void fg_tile_rows(uint32_t type, int NR, int nt, const char *w, size_t w_stride, const fg_chunk *c,
                            FG_V *park, float *out, int64_t ld_out) {
    switch (nt) {
    case 1: FG_TILE_NT(NR, 1); break;
    case 2: FG_TILE_NT(NR, 2); break;
    case 3: FG_TILE_NT(NR, 3); break;
#if FG_T >= 4
    case 4: FG_TILE_NT(NR, 4); break;
#endif
#if FG_T >= 5
    case 5: FG_TILE_NT(NR, 5); break;
#endif
#if FG_T >= 6
    case 6: FG_TILE_NT(NR, 6); break;
#endif
#if FG_T >= 7
    case 7: FG_TILE_NT(NR, 7); break;
#endif
#if FG_T >= 8
    case 8: FG_TILE_NT(NR, 8); break;
#endif
    default: break;
    }
}
#undef FG_TILE_NT

FG_INLINE void fg_mul_mat(uint32_t type, int64_t n, const void *w, size_t w_stride, int n_rows, const void *act,
                          size_t act_stride, int n_tok, float *out, int64_t ld_out) {
    float xs[FG_XS_FLOATS] __attribute__((aligned(64)));
    float tail[FG_T * FG_W];
    FG_V park[FG_PARK];
    const int64_t nv = n / FG_W * FG_W;
    for (int t0 = 0; t0 < n_tok; t0 += FG_T) {
        const int nt = n_tok - t0 < FG_T ? n_tok - t0 : FG_T;
        const char *x = (const char *)act + (size_t)t0 * act_stride;
        const int64_t kmax = FG_XS_FLOATS / nt / FG_W * FG_W;
        const int64_t n_chunks = nv > kmax ? (nv + kmax - 1) / kmax : 1;
        const int64_t kc = ((nv + n_chunks - 1) / n_chunks + FG_W - 1) / FG_W * FG_W;
        for (int t = 0; t < nt; t++)
            for (int64_t i = nv; i < n; i++) tail[t * FG_W + i - nv] = fg_scalar(type, x + (size_t)t * act_stride, i);
        /* rows whose accumulators the park holds, when the rows run in chunks */
        const int panel = n_chunks == 1 ? n_rows : FG_PARK / nt / FG_R * FG_R;
        for (int p0 = 0; p0 < n_rows; p0 += panel) {
            const int np = n_rows - p0 < panel ? n_rows - p0 : panel;
            for (int64_t ch = 0; ch < n_chunks; ch++) {
                fg_chunk c = {.xs = xs, .i0 = ch * kc, .first = ch == 0, .last = ch == n_chunks - 1, .nv = nv, .n = n,
                              .tail = tail};
                c.len = nv - c.i0 < kc ? nv - c.i0 : kc;
                if (n_chunks > 1 || p0 == 0)
                    for (int t = 0; t < nt; t++)
                        for (int64_t i = 0; i < c.len; i += FG_W)
                            FG_STOREU(xs + t * c.len + i, fg_load(type, x + (size_t)t * act_stride, c.i0 + i));
                int r = 0;
                for (; r + FG_R <= np; r += FG_R)
                    fg_tile_rows(type, FG_R, nt, (const char *)w + (size_t)(p0 + r) * w_stride, w_stride, &c,
                                 park + r * nt, out + (int64_t)t0 * ld_out + p0 + r, ld_out);
                for (; r < np; r++)
                    fg_tile_rows(type, 1, nt, (const char *)w + (size_t)(p0 + r) * w_stride, w_stride, &c,
                                 park + r * nt, out + (int64_t)t0 * ld_out + p0 + r, ld_out);
            }
        }
    }
}

#define FG_DEFINE(type, TYPE)                                                                                    \
    void FG_FN(type, mul_mat)(int64_t n, const void *w, size_t w_stride, int n_rows, const void *act,            \
                              size_t act_stride, int n_tok, float *out, int64_t ld_out) {                        \
        fg_mul_mat(TYPE, n, w, w_stride, n_rows, act, act_stride, n_tok, out, ld_out);                           \
    }                                                                                                            \
    float FG_FN(type, dot)(int64_t n, const void *w, const void *act) {                                          \
        float out = 0.0f;                                                                                             \
        fg_mul_mat(TYPE, n, w, 0, 1, act, 0, 1, &out, 1);                                                        \
        return out;                                                                                              \
    }

FG_DEFINE(f32, LM_F32)
FG_DEFINE(f16, LM_F16)
FG_DEFINE(bf16, LM_BF16)
