/* cuda_matmul.cu - y = W x on the GPU: activation preparation, the VEC
 * kernels (integer dots, the decode path), the GEMM path (dequantize to f16,
 * cuBLAS), and lm_cuda_matmul which picks one.
 *
 * VEC kernel: a block of 128 threads; TPR threads share a group of R rows
 * (TPR = 16, 32 or 128; R = 1 or 2). Each thread walks the group's 16-byte
 * units with stride TPR: it decodes unit u of each of the R rows, loads the
 * activations at u once per token and dots them with the R units, for up to
 * NT tokens (NT = 1, 2, 4, 8), keeping R x NT partial sums; the group's
 * threads then add their sums (shuffles, and shared memory across the 4
 * warps when TPR = 128). A batch of more than 8 tokens runs 8 tokens and 4
 * rows a thread, its token groups side by side in one launch. TPR is chosen
 * from the matrix's row length and row count (measured on an H100:
 * docs/cuda.md), never from the batch. No atomics, and every step rounded
 * on its own: an output's bits depend on the matrix and its token alone,
 * which makes the VEC path batch-invariant (lm_cuda_set_batch_invariant). */
#include <stdio.h>

#include "backend/cuda/cuda_internal.cuh"

extern "C" {
#include "base/dtype.h"
}

#define VEC_BLOCK 128   /* threads per block of the VEC kernels */
#define VEC_TOKENS 8    /* most tokens per VEC launch */
#define ACT_BLOCK 256   /* threads per block of the activation kernels */
/* units of a row a VEC thread has in flight at once (the loop's unroll; 1
 * for 8 tokens, where 2 would spill) */
#ifndef LAMINA_CUDA_VEC_UNROLL
#define LAMINA_CUDA_VEC_UNROLL 2
#endif

/* ---- activations ---- */

/* q8_0 / q8_1 blocks of 32, one warp per block (cu_quantize_q8_32_warp);
 * H: NULL, or the GEMM's halves too */
__global__ void __launch_bounds__(ACT_BLOCK) act_q8_32_kernel(const float *__restrict__ x, int64_t n_blocks,
                                                              int8_t *__restrict__ q, float2 *__restrict__ ds,
                                                              __half *__restrict__ h) {
    cu_pdl_wait();
    const int64_t blk = (int64_t)blockIdx.x * (ACT_BLOCK / 32) + threadIdx.x / 32;
    if (blk >= n_blocks) return; /* whole warps */
    cu_quantize_q8_32_warp(x + blk * 32, q + blk * 32, ds + blk, h ? h + blk * 32 : NULL);
}

/* q8_K super-blocks of 256, one warp each (cu_quantize_q8_K_warp) */
__global__ void __launch_bounds__(ACT_BLOCK) act_q8_K_kernel(const float *__restrict__ x, int64_t n_super,
                                                             int8_t *__restrict__ q, float2 *__restrict__ ds,
                                                             __half *__restrict__ h) {
    cu_pdl_wait();
    const int64_t sb = (int64_t)blockIdx.x * (ACT_BLOCK / 32) + threadIdx.x / 32;
    if (sb >= n_super) return; /* whole warps */
    cu_quantize_q8_K_warp(x + sb * 256, q + sb * 256, ds + sb * 8, h ? h + sb * 256 : NULL);
}

/* two floats -> two halves (H: __half or __nv_bfloat16), round to nearest even */
template <typename H> struct half_pair;
template <> struct half_pair<__half> {
    static __device__ __forceinline__ __half2 rn(float a, float b) { return __floats2half2_rn(a, b); }
};
template <> struct half_pair<__nv_bfloat16> {
    static __device__ __forceinline__ __nv_bfloat162 rn(float a, float b) { return __floats2bfloat162_rn(a, b); }
};

/* f32 -> f16 or bf16 (as the CPU's f16 / bf16 activations), 8 per thread */
template <typename H>
__global__ void __launch_bounds__(ACT_BLOCK) act_half_kernel(const float *__restrict__ x, int64_t n8,
                                                             H *__restrict__ h) {
    cu_pdl_wait();
    const int64_t i = (int64_t)blockIdx.x * ACT_BLOCK + threadIdx.x;
    if (i >= n8) return;
    const float4 *x4 = reinterpret_cast<const float4 *>(x) + 2 * i;
    const float4 a = x4[0], b = x4[1];
    const auto out0 = half_pair<H>::rn(a.x, a.y), out1 = half_pair<H>::rn(a.z, a.w);
    const auto out2 = half_pair<H>::rn(b.x, b.y), out3 = half_pair<H>::rn(b.z, b.w);
    int4 v;
    memcpy(&v.x, &out0, 4);
    memcpy(&v.y, &out1, 4);
    memcpy(&v.z, &out2, 4);
    memcpy(&v.w, &out3, 4);
    *reinterpret_cast<int4 *>(h + 8 * i) = v;
}

static unsigned grid_for(int64_t items, int per_block) { return (unsigned)((items + per_block - 1) / per_block); }

/* the int8 activations back to values for the GEMM path: h = f16(d * q),
 * 8 per thread (d: the block's scale, ds[i / 32].x for both q8 kinds) */
__global__ void __launch_bounds__(ACT_BLOCK) act_q8_to_half_kernel(const int8_t *__restrict__ q,
                                                                   const float2 *__restrict__ ds, int64_t n8,
                                                                   __half *__restrict__ h) {
    cu_pdl_wait();
    const int64_t i = (int64_t)blockIdx.x * ACT_BLOCK + threadIdx.x;
    if (i >= n8) return;
    const float d = ds[(8 * i) / 32].x;
    const uint2 raw = *reinterpret_cast<const uint2 *>(q + 8 * i);
    const int8_t *qi = reinterpret_cast<const int8_t *>(&raw);
    __half2 v[4];
#pragma unroll
    for (int k = 0; k < 4; k++) v[k] = __floats2half2_rn(d * (float)qi[2 * k], d * (float)qi[2 * k + 1]);
    *reinterpret_cast<int4 *>(h + 8 * i) = *reinterpret_cast<const int4 *>(v);
}

/* x (N floats, a multiple of 8) -> H, f16 or (BF16) bf16 */
static int convert_act(lm_cuda_ctx *ctx, const float *x, int64_t n, bool bf16, void *h, lm_error *err) {
    if (bf16) {
        CU_LAUNCH("act_half_kernel", act_half_kernel<__nv_bfloat16>, grid_for(n / 8, ACT_BLOCK), ACT_BLOCK, 0, x,
            n / 8, (__nv_bfloat16 *)h);
    } else {
        CU_LAUNCH("act_half_kernel", act_half_kernel<__half>, grid_for(n / 8, ACT_BLOCK), ACT_BLOCK, 0, x, n / 8,
            (__half *)h);
    }
    return 0;
}

/* prepares x (n_tok, cols) for the VEC kernels of a layout into the
 * context's scratch, and remembers what it holds (lm_cuda_matmul_reuse_act);
 * WANT_H: the GEMM path follows, so the q8 kinds write its halves in the
 * same kernel */
static int prepare_act(lm_cuda_ctx *ctx, const cu_layout *l, const float *x, int n_tok, int64_t cols, bool want_h,
                       lm_error *err) {
    const int64_t n = (int64_t)n_tok * cols, n32 = n / 32;
    ctx->act_kind = -1;
    ctx->act_h_ready = false;
    if (l->act == CU_ACT_F16 || l->act == CU_ACT_BF16) { /* bf16: the same scratch */
        if (cu_scratch_reserve(&ctx->act_h, (size_t)n * sizeof(__half), err) ||
            convert_act(ctx, x, n, l->act == CU_ACT_BF16, ctx->act_h.ptr, err))
            return -1;
    } else {
        if (cu_scratch_reserve(&ctx->act_q, (size_t)n, err) ||
            cu_scratch_reserve(&ctx->act_ds, (size_t)n32 * sizeof(float2), err) ||
            (want_h && cu_scratch_reserve(&ctx->act_h, (size_t)n * sizeof(__half), err)))
            return -1;
        __half *h = want_h ? (__half *)ctx->act_h.ptr : NULL;
        if (l->act == CU_ACT_Q8_32) {
            CU_LAUNCH("act_q8_32_kernel", act_q8_32_kernel, grid_for(n32, ACT_BLOCK / 32), ACT_BLOCK, 0, x, n32,
                (int8_t *)ctx->act_q.ptr, (float2 *)ctx->act_ds.ptr, h);
        } else {
            CU_LAUNCH("act_q8_K_kernel", act_q8_K_kernel, grid_for(n / 256, ACT_BLOCK / 32), ACT_BLOCK, 0, x, n / 256,
                (int8_t *)ctx->act_q.ptr, (float2 *)ctx->act_ds.ptr, h);
        }
    }
    ctx->act_kind = l->act;
    ctx->act_cols = cols;
    ctx->act_tokens = n_tok;
    /* the GEMM takes the same halves (f16 / bf16), or got them here */
    ctx->act_h_ready = l->act == CU_ACT_F16 || l->act == CU_ACT_BF16 || want_h;
    return 0;
}

int cu_act_buffers(lm_cuda_ctx *ctx, const lm_cuda_matrix *w, int n_tok, int8_t **q, float2 **ds, __half **h,
                   int *kind, lm_error *err) {
    const cu_layout *l = w->layout;
    if (l->act != CU_ACT_Q8_32 && l->act != CU_ACT_Q8_K) return -1;
    const bool gemm = lm_cuda_path_for(w, n_tok) == LM_CUDA_PATH_GEMM;
    const int64_t n = (int64_t)n_tok * w->view.cols;
    if (cu_scratch_reserve(&ctx->act_q, (size_t)n, err) ||
        cu_scratch_reserve(&ctx->act_ds, (size_t)(n / 32) * sizeof(float2), err) ||
        (gemm && cu_scratch_reserve(&ctx->act_h, (size_t)n * sizeof(__half), err)))
        return -2;
    *h = gemm ? (__half *)ctx->act_h.ptr : NULL;
    ctx->act_kind = -1; /* until filled */
    ctx->act_h_ready = false;
    *q = (int8_t *)ctx->act_q.ptr;
    *ds = (float2 *)ctx->act_ds.ptr;
    *kind = l->act;
    return 0;
}

void cu_act_filled(lm_cuda_ctx *ctx, const lm_cuda_matrix *w, int n_tok, bool with_h) {
    ctx->act_kind = w->layout->act;
    ctx->act_cols = w->view.cols;
    ctx->act_tokens = n_tok;
    ctx->act_h_ready = with_h;
}

/* the context's prepared activations */
static cu_act act_view(const lm_cuda_ctx *ctx) {
    cu_act a;
    memset(&a, 0, sizeof(a));
    a.cols = ctx->act_cols;
    if (ctx->act_kind == CU_ACT_F16) {
        a.h = (const __half *)ctx->act_h.ptr;
    } else if (ctx->act_kind == CU_ACT_BF16) {
        a.bh = (const __nv_bfloat16 *)ctx->act_h.ptr;
    } else {
        a.q = (const int8_t *)ctx->act_q.ptr;
        a.ds = (const float2 *)ctx->act_ds.ptr;
    }
    return a;
}

/* ---- VEC kernels ---- */

/* f16 weights: a unit is 8 halves; the dot of 8 products in f32 */
template <int NT>
__device__ __forceinline__ void f16_unit(const uint8_t *wb, int u, const cu_act &a, int n_tok, float *acc) {
    const int4 wv = cu_ld16(wb + 16 * (int64_t)u);
    const __half2 *w2 = reinterpret_cast<const __half2 *>(&wv);
    float2 w[4];
    for (int k = 0; k < 4; k++) w[k] = __half22float2(w2[k]);
#pragma unroll
    for (int t = 0; t < NT; t++) {
        if (t < n_tok) {
            const int4 xv = cu_ld16(a.h + (int64_t)t * a.cols + 8 * (int64_t)u);
            const __half2 *x2 = reinterpret_cast<const __half2 *>(&xv);
            float r = acc[t];
            for (int k = 0; k < 4; k++) {
                const float2 xf = __half22float2(x2[k]);
                r = fmaf(w[k].x, xf.x, r);
                r = fmaf(w[k].y, xf.y, r);
            }
            acc[t] = r;
        }
    }
}

/* bf16 weights: a unit is 8 bf16; the dot of 8 products in f32 (exact:
 * 8-bit significands), as f16_unit */
template <int NT>
__device__ __forceinline__ void bf16_unit(const uint8_t *wb, int u, const cu_act &a, int n_tok, float *acc) {
    const int4 wv = cu_ld16(wb + 16 * (int64_t)u);
    const uint32_t ww[4] = {(uint32_t)wv.x, (uint32_t)wv.y, (uint32_t)wv.z, (uint32_t)wv.w};
#pragma unroll
    for (int t = 0; t < NT; t++) {
        if (t < n_tok) {
            const int4 xv = cu_ld16(a.bh + (int64_t)t * a.cols + 8 * (int64_t)u);
            const uint32_t xw[4] = {(uint32_t)xv.x, (uint32_t)xv.y, (uint32_t)xv.z, (uint32_t)xv.w};
            float r = acc[t];
            for (int k = 0; k < 4; k++) { /* element 2k in the low half, 2k + 1 in the high */
                r = fmaf(__uint_as_float(ww[k] << 16), __uint_as_float(xw[k] << 16), r);
                r = fmaf(__uint_as_float(ww[k] & 0xFFFF0000u), __uint_as_float(xw[k] & 0xFFFF0000u), r);
            }
            acc[t] = r;
        }
    }
}

/* Block b takes row block b / n_groups and token group b % n_groups (NT
 * tokens from (b % n_groups) * NT): the token groups of one row block run
 * side by side, so the weights they share come from L2. */
template <int T, int TPR, int NT, int R>
__global__ void __launch_bounds__(VEC_BLOCK) vec_kernel(const cu_mat w, cu_act a, int n_tok_all, int n_groups,
                                                        float *__restrict__ y) {
    cu_pdl_wait();
    constexpr int GROUPS = VEC_BLOCK / TPR;
    const int64_t row_block = blockIdx.x / n_groups;
    const int t0 = (int)(blockIdx.x % n_groups) * NT;
    const int n_tok = min(NT, n_tok_all - t0);
    {
        const int64_t off = (int64_t)t0 * w.cols;
        if (a.q) {
            a.q += off;
            a.ds += off / 32;
        }
        if (a.h) a.h += off;
        if (a.bh) a.bh += off;
        y += (int64_t)t0 * w.rows;
    }
    const int64_t row0 = (row_block * GROUPS + threadIdx.x / TPR) * R;
    const int sub = threadIdx.x % TPR;
    float acc[R][NT];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int t = 0; t < NT; t++) acc[r][t] = 0.0f;
    if (row0 < w.rows) {
        const uint8_t *wb[R], *wh[R];
#pragma unroll
        for (int r = 0; r < R; r++) { /* a row past the end reads the last row again and is not written */
            const int64_t row = row0 + r < w.rows ? row0 + r : w.rows - 1;
            wb[r] = w.body + row * w.blocks * cu_traits<T>::body;
            wh[r] = w.hdr + row * w.blocks * cu_traits<T>::hdr;
        }
        constexpr int UNROLL = NT * R < 8 ? LAMINA_CUDA_VEC_UNROLL : 1;
#pragma unroll UNROLL
        for (int u = sub; u < w.units; u += TPR) {
            if constexpr (T == CU_F16) {
#pragma unroll
                for (int r = 0; r < R; r++) f16_unit<NT>(wb[r], u, a, n_tok, acc[r]);
            } else if constexpr (T == CU_BF16) {
#pragma unroll
                for (int r = 0; r < R; r++) bf16_unit<NT>(wb[r], u, a, n_tok, acc[r]);
            } else {
                cu_unit x[R];
#pragma unroll
                for (int r = 0; r < R; r++) cu_decode<T>(wb[r], wh[r], u, &x[r]);
#pragma unroll
                for (int t = 0; t < NT; t++) {
                    if (t < n_tok) {
                        cu_act_unit au;
                        cu_act_load<T>(&x[0], &a, t, &au);
#pragma unroll
                        for (int r = 0; r < R; r++) acc[r][t] = cu_add_rn(acc[r][t], cu_unit_dot_loaded<T>(&x[r], &au));
                    }
                }
            }
        }
    }
    /* every thread reaches the shuffles, rows past the end with zeros */
    constexpr int WIDTH = TPR < 32 ? TPR : 32;
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int t = 0; t < NT; t++)
            for (int off = WIDTH / 2; off > 0; off >>= 1) acc[r][t] += __shfl_xor_sync(0xffffffffu, acc[r][t], off);
    if constexpr (TPR <= 32) {
        if (sub == 0) {
#pragma unroll
            for (int r = 0; r < R; r++)
#pragma unroll
                for (int t = 0; t < NT; t++)
                    if (t < n_tok && row0 + r < w.rows) y[(int64_t)t * w.rows + row0 + r] = acc[r][t];
        }
    } else {
        __shared__ float part[VEC_BLOCK / 32][R * NT];
        const int warp = threadIdx.x / 32;
        if ((threadIdx.x & 31) == 0) {
#pragma unroll
            for (int r = 0; r < R; r++)
#pragma unroll
                for (int t = 0; t < NT; t++) part[warp][r * NT + t] = acc[r][t];
        }
        __syncthreads();
        const int i = (int)threadIdx.x, r = i / NT, t = i % NT;
        if (i < R * NT && t < n_tok && row0 + r < w.rows) {
            float sum = 0.0f;
            for (int k = 0; k < VEC_BLOCK / 32; k++) sum += part[k][i];
            y[(int64_t)t * w.rows + row0 + r] = sum;
        }
    }
}

typedef void (*vec_fn)(const cu_mat, cu_act, int, int, float *);

template <int T, int TPR, int R> static vec_fn vec_pick_nt(int nt) {
    if (nt <= 1) return vec_kernel<T, TPR, 1, R>;
    if (nt <= 2) return vec_kernel<T, TPR, 2, R>;
    if (nt <= 4) return vec_kernel<T, TPR, 4, R>;
    return vec_kernel<T, TPR, 8, R>;
}

/* four rows per thread: batches of more than 8 tokens, 8 at a time */
template <int T> static vec_fn vec_pick(int tpr, int nt, int rows_per_thread) {
    if (rows_per_thread == 4) {
        if (tpr == 16) return vec_kernel<T, 16, VEC_TOKENS, 4>;
        if (tpr == 32) return vec_kernel<T, 32, VEC_TOKENS, 4>;
        return vec_kernel<T, 128, VEC_TOKENS, 4>;
    }
    if (rows_per_thread == 2) {
        if (tpr == 16) return vec_pick_nt<T, 16, 2>(nt);
        if (tpr == 32) return vec_pick_nt<T, 32, 2>(nt);
        return vec_pick_nt<T, 128, 2>(nt);
    }
    if (tpr == 16) return vec_pick_nt<T, 16, 1>(nt);
    if (tpr == 32) return vec_pick_nt<T, 32, 1>(nt);
    return vec_pick_nt<T, 128, 1>(nt);
}

static vec_fn vec_kernel_for(int type_index, int tpr, int nt, int rows_per_thread) {
    switch (type_index) {
    case CU_Q4_0: return vec_pick<CU_Q4_0>(tpr, nt, rows_per_thread);
    case CU_Q4_1: return vec_pick<CU_Q4_1>(tpr, nt, rows_per_thread);
    case CU_Q5_0: return vec_pick<CU_Q5_0>(tpr, nt, rows_per_thread);
    case CU_Q5_1: return vec_pick<CU_Q5_1>(tpr, nt, rows_per_thread);
    case CU_Q8_0: return vec_pick<CU_Q8_0>(tpr, nt, rows_per_thread);
    case CU_Q4_K: return vec_pick<CU_Q4_K>(tpr, nt, rows_per_thread);
    case CU_Q5_K: return vec_pick<CU_Q5_K>(tpr, nt, rows_per_thread);
    case CU_Q6_K: return vec_pick<CU_Q6_K>(tpr, nt, rows_per_thread);
    case CU_BF16: return vec_pick<CU_BF16>(tpr, nt, rows_per_thread);
    default: return vec_pick<CU_F16>(tpr, nt, rows_per_thread);
    }
}

/* Threads per row group, measured on an H100 over the shapes of docs/cuda.md:
 * long rows (96+ units) want a whole block per row; otherwise 16 or 32,
 * whichever leaves fewer lanes idle in a row's last round (ties: 32, one
 * round fewer), unless that leaves too few threads to fill the GPU. */
static int vec_threads_for(const lm_cuda_ctx *ctx, int64_t groups, int units) {
    if (units >= 96) return 128;
    /* a row's lanes are busy units / (tpr * rounds) of the time */
    const int rounds16 = (units + 15) / 16, rounds32 = (units + 31) / 32;
    const int tpr = 2 * rounds32 > rounds16 ? 16 : 32;
    return groups * tpr < (int64_t)ctx->sm_count * 256 ? 128 : tpr;
}

/* matrices of at least this many elements count as large (8M: a 2048 x 4096) */
#define LARGE_MATRIX ((int64_t)1 << 23)

/* Rows per thread, measured on an H100: two rows share the activation loads,
 * which pays on large matrices for the k-quants always and for the other
 * quantized types from two tokens on; f16 (two loads per unit already) and
 * small matrices (too few threads) keep one. q5_0 / q5_1 follow q4_0 / q4_1
 * and bf16 follows f16 (not measured apart). */
static int vec_rows_for(const lm_cuda_matrix *w, int n_tok) {
    const int t = w->type_index;
    if (n_tok > VEC_TOKENS) { /* batches (batch-invariant contexts): 8 tokens x 4 rows a thread */
        static int batch_rows = -1; /* LAMINA_CUDA_BATCH_ROWS=1|2|4: a tuning knob */
        if (batch_rows < 0) {
            const char *e = getenv("LAMINA_CUDA_BATCH_ROWS");
            batch_rows = e && (atoi(e) == 1 || atoi(e) == 2 || atoi(e) == 4) ? atoi(e) : 0;
        }
        if (batch_rows) return batch_rows;
        return t == CU_F16 || t == CU_BF16 ? 2 : 4;
    }
    if (t == CU_F16 || t == CU_BF16 || w->view.rows * w->view.cols < LARGE_MATRIX) return 1;
    if (n_tok == 1 && (t == CU_Q4_0 || t == CU_Q4_1 || t == CU_Q5_0 || t == CU_Q5_1 || t == CU_Q8_0)) return 1;
    return 2;
}

/* the NT of the kernel that takes N tokens */
static int kernel_tokens(int n) { return n <= 1 ? 1 : n <= 2 ? 2 : n <= 4 ? 4 : VEC_TOKENS; }

/* One launch for the whole batch. The threads per row group come from the
 * matrix alone (its batch-1 shape, whatever the rows per thread): they fix
 * the order in which a row's units are summed (each thread's units in
 * order, then the threads' sums by a fixed tree), so a token's result does
 * not depend on the batch it came in, nor on its place in it. */
static int launch_vec(lm_cuda_ctx *ctx, const lm_cuda_matrix *w, int n_tok, float *y, lm_error *err) {
    const int rpt = ctx->vec_rows ? ctx->vec_rows : vec_rows_for(w, n_tok);
    const int rpt1 = vec_rows_for(w, 1);
    const int tpr = ctx->vec_threads ? ctx->vec_threads
                                     : vec_threads_for(ctx, (w->view.rows + rpt1 - 1) / rpt1, w->view.units);
    const int nt = rpt == 4 ? VEC_TOKENS : kernel_tokens(n_tok);
    const int n_groups = (n_tok + nt - 1) / nt;
    const int64_t row_blocks = grid_for((w->view.rows + rpt - 1) / rpt, VEC_BLOCK / tpr);
    if (row_blocks * n_groups > INT32_MAX) {
        lm_error_set(err, "CUDA: a product of %d tokens with %lld rows is too large for one launch", n_tok,
                     (long long)w->view.rows);
        return -1;
    }
    CU_LAUNCH("vec_kernel", vec_kernel_for(w->type_index, tpr, nt, rpt), (unsigned)(row_blocks * n_groups), VEC_BLOCK,
        0, w->view, act_view(ctx), n_tok, n_groups, y);
    return 0;
}

static int matmul_vec(lm_cuda_ctx *ctx, const lm_cuda_matrix *w, const float *x, int n_tok, float *y,
                      lm_error *err) {
    if (prepare_act(ctx, w->layout, x, n_tok, w->view.cols, false, err)) return -1;
    return launch_vec(ctx, w, n_tok, y, err);
}

/* ---- GEMM path: dequantize to f16, then cuBLAS ---- */

/* one thread per unit: its runs of 16 elements, each element exactly the
 * CPU's dequantized float, rounded to f16 */
template <int T>
__global__ void __launch_bounds__(256) dequant_kernel(const cu_mat w, __half *__restrict__ out) {
    cu_pdl_wait();
    const int64_t n = w.rows * w.units;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t row = i / w.units;
        const int u = (int)(i % w.units);
        cu_unit x;
        cu_decode<T>(w.body + row * w.blocks * cu_traits<T>::body, w.hdr + row * w.blocks * cu_traits<T>::hdr, u, &x);
#pragma unroll
        for (int r = 0; r < cu_traits<T>::runs; r++) {
            float scale, offset;
            cu_run_scale<T>(&x, r, &scale, &offset);
            __half2 v[8];
#pragma unroll
            for (int k = 0; k < 8; k++)
                v[k] = __floats2half2_rn(cu_unit_value(&x, r, 2 * k, scale, offset),
                                         cu_unit_value(&x, r, 2 * k + 1, scale, offset));
            int4 *dst = reinterpret_cast<int4 *>(out + row * w.cols + (r ? x.e1 : x.e0));
            dst[0] = *reinterpret_cast<const int4 *>(&v[0]);
            dst[1] = *reinterpret_cast<const int4 *>(&v[4]);
        }
    }
}

static int dequant_f16(lm_cuda_ctx *ctx, const lm_cuda_matrix *w, __half *out, lm_error *err) {
    const int64_t n = w->view.rows * w->view.units;
    const int64_t max_grid = (int64_t)ctx->sm_count * 16;
    const unsigned grid = (unsigned)(grid_for(n, 256) < max_grid ? grid_for(n, 256) : max_grid);
    switch (w->type_index) {
    case CU_Q4_0: CU_LAUNCH("dequant_kernel", dequant_kernel<CU_Q4_0>, grid, 256, 0, w->view, out); break;
    case CU_Q4_1: CU_LAUNCH("dequant_kernel", dequant_kernel<CU_Q4_1>, grid, 256, 0, w->view, out); break;
    case CU_Q5_0: CU_LAUNCH("dequant_kernel", dequant_kernel<CU_Q5_0>, grid, 256, 0, w->view, out); break;
    case CU_Q5_1: CU_LAUNCH("dequant_kernel", dequant_kernel<CU_Q5_1>, grid, 256, 0, w->view, out); break;
    case CU_Q8_0: CU_LAUNCH("dequant_kernel", dequant_kernel<CU_Q8_0>, grid, 256, 0, w->view, out); break;
    case CU_Q4_K: CU_LAUNCH("dequant_kernel", dequant_kernel<CU_Q4_K>, grid, 256, 0, w->view, out); break;
    case CU_Q5_K: CU_LAUNCH("dequant_kernel", dequant_kernel<CU_Q5_K>, grid, 256, 0, w->view, out); break;
    case CU_Q6_K: CU_LAUNCH("dequant_kernel", dequant_kernel<CU_Q6_K>, grid, 256, 0, w->view, out); break;
    default: lm_error_set(err, "CUDA: no dequantization kernel for %s", w->layout->name); return -1;
    }
    return 0;
}

/* bf16 weights multiply as they are, with x rounded to bf16 (the CPU's bf16
 * dot: exact products); f16 ones with x in f16. The others are dequantized
 * to f16 first, and x is quantized as the CPU quantizes it (q8 blocks, the
 * VEC path's activations, which stay available for reuse) and taken back
 * to f16 as d * q: the GEMM then sees the CPU's int8 rounding of x, which
 * is what moves logits most between implementations (docs/cuda.md). */
/* the GEMM on the activations the context holds (act_h, ready) */
static int gemm_prepared(lm_cuda_ctx *ctx, const lm_cuda_matrix *w, int n_tok, float *y, lm_error *err) {
    const int64_t rows = w->view.rows, cols = w->view.cols;
    const bool bf16 = w->type_index == CU_BF16, quantized = w->type_index != CU_F16 && !bf16;
    const void *wh = w->f16 ? (const void *)w->f16 : w->view.body;
    if (quantized && !w->f16) {
        if (cu_scratch_reserve(&ctx->w_h, (size_t)(rows * cols) * sizeof(__half), err)) return -1;
        if (dequant_f16(ctx, w, (__half *)ctx->w_h.ptr, err)) return -1;
        wh = ctx->w_h.ptr;
    }
    /* column-major view: W is (cols x rows) with ld cols, so op(W) = W^T is
     * (rows x cols); x is (cols x n_tok); y is (rows x n_tok) with ld rows */
    const float alpha = 1.0f, beta = 0.0f;
    const cudaDataType half_type = bf16 ? CUDA_R_16BF : CUDA_R_16F;
    CUBLAS_TRY(cublasGemmEx(ctx->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)rows, n_tok, (int)cols, &alpha, wh, half_type,
                            (int)cols, ctx->act_h.ptr, half_type, (int)cols, &beta, y, CUDA_R_32F, (int)rows,
                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return 0;
}

/* the q8 activations in act_q / act_ds -> act_h as f16(d * q) */
static int q8_to_half(lm_cuda_ctx *ctx, int64_t n, lm_error *err) {
    if (cu_scratch_reserve(&ctx->act_h, (size_t)n * sizeof(__half), err)) return -1;
    CU_LAUNCH("act_q8_to_half_kernel", act_q8_to_half_kernel, grid_for(n / 8, ACT_BLOCK), ACT_BLOCK, 0,
        (const int8_t *)ctx->act_q.ptr, (const float2 *)ctx->act_ds.ptr, n / 8, (__half *)ctx->act_h.ptr);
    ctx->act_h_ready = true;
    return 0;
}

/* bf16 weights multiply as they are, with x rounded to bf16 (the CPU's bf16
 * dot: exact products); f16 ones with x in f16. The others are dequantized
 * to f16 first (or read from their kept f16 copy), and x is quantized as the
 * CPU quantizes it (q8 blocks, the VEC path's activations) and taken back to
 * f16 as d * q: the GEMM then sees the CPU's int8 rounding of x, which is
 * what moves logits most between implementations (docs/cuda.md). Either
 * way the activations stay prepared for lm_cuda_matmul_again. */
static int matmul_gemm(lm_cuda_ctx *ctx, const lm_cuda_matrix *w, const float *x, int n_tok, float *y,
                       lm_error *err) {
    /* the activations and their halves in one kernel (act_h_ready after it) */
    if (prepare_act(ctx, w->layout, x, n_tok, w->view.cols, true, err)) return -1;
    return gemm_prepared(ctx, w, n_tok, y, err);
}

extern "C" size_t lm_cuda_matrix_f16_bytes(const lm_cuda_matrix *m) {
    if (m->type_index == CU_F16 || m->type_index == CU_BF16) return 0;
    return (size_t)(m->view.rows * m->view.cols) * sizeof(__half);
}

extern "C" int lm_cuda_matrix_keep_f16(lm_cuda_ctx *ctx, lm_cuda_matrix *m, lm_error *err) {
    const size_t bytes = lm_cuda_matrix_f16_bytes(m);
    if (!bytes || m->f16) return 0;
    __half *h = (__half *)lm_cuda_alloc(ctx, bytes, err);
    if (!h) return -1;
    if (dequant_f16(ctx, m, h, err)) {
        lm_cuda_free(ctx, h);
        return -1;
    }
    m->f16 = h;
    m->bytes += bytes;
    return 0;
}

extern "C" bool lm_cuda_same_activations(const lm_cuda_matrix *a, const lm_cuda_matrix *b) {
    return a->layout->act == b->layout->act && a->view.cols == b->view.cols;
}

/* ---- the entry point ---- */

/* Measured on an H100 (docs/cuda.md): the VEC path costs about a weight
 * pass per 8 tokens, the GEMM path a dequantization pass plus cuBLAS; VEC
 * wins up to 8 tokens on quantized matrices, up to 16 on large ones, and up
 * to 2 on f16 (bf16, whose GEMM has no dequantization pass either, follows
 * f16; not measured apart). */
/* The most tokens AUTO sends to the MMQ path (0: none). Measured on an H100
 * against the GEMM on a kept f16 copy (test_cuda_quant --bench-mmq,
 * BENCHMARKS.md): MMQ is ahead up to 16 tokens (even on small matrices),
 * to 32 on matrices of 32M elements and more (a 16384 x 2048 gate+up, an
 * output matrix), behind from 64 on. Without a kept copy the GEMM first
 * dequantizes the matrix (a pass that reads it and writes 2 bytes a
 * weight), so MMQ takes up to 64 tokens there (chosen from those byte
 * counts, not measured apart). LAMINA_CUDA_MMQ_MAX overrides. */
static int mmq_max_tokens(const lm_cuda_matrix *w) {
    static int max = -2; /* LAMINA_CUDA_MMQ_MAX, -1: the built-in bounds */
    if (max == -2) {
        const char *e = getenv("LAMINA_CUDA_MMQ_MAX");
        max = e && atoi(e) >= 0 ? atoi(e) : -1;
    }
    if (w->ctx->batch_invariant || !lm_cuda_mmq_supported(w)) return 0;
    if (max >= 0) return max;
    const int64_t elems = w->view.rows * w->view.cols;
    if (!w->f16) return 64;
    return elems >= ((int64_t)1 << 25) ? 32 : 16;
}

extern "C" int lm_cuda_vec_max_tokens(const lm_cuda_matrix *w) {
    if (w->ctx->batch_invariant) return INT32_MAX;
    if (w->type_index == CU_F16 || w->type_index == CU_BF16) return 2;
    if (mmq_max_tokens(w) > VEC_TOKENS) return VEC_TOKENS; /* one VEC pass, then MMQ */
    /* with a kept f16 copy the GEMM has no dequantization pass: from 9 tokens
     * on it reads 2 bytes a weight once where VEC would pass over the
     * quantized weights twice or more (chosen from the byte counts; the
     * measured crossovers above were without the copy) */
    if (w->f16) return 8;
    return w->view.rows * w->view.cols >= LARGE_MATRIX ? 16 : 8;
}

extern "C" lm_cuda_path lm_cuda_path_for(const lm_cuda_matrix *w, int n_tokens) {
    if (n_tokens <= lm_cuda_vec_max_tokens(w)) return LM_CUDA_PATH_VEC;
    if (n_tokens <= mmq_max_tokens(w)) return LM_CUDA_PATH_MMQ;
    return LM_CUDA_PATH_GEMM;
}

/* the checks every product starts with */
static int check_args(lm_cuda_ctx *ctx, const lm_cuda_matrix *w, int n_tokens, const float *y_dev, lm_error *err) {
    if (!ctx || !w || !y_dev || n_tokens < 1) {
        lm_error_set(err, "CUDA: matmul needs a context, a matrix, x, y and n_tokens >= 1 (got %d)", n_tokens);
        return -1;
    }
    if (w->ctx != ctx) {
        lm_error_set(err, "CUDA: matmul with a matrix of another context");
        return -1;
    }
    if (w->view.rows > INT32_MAX || w->view.cols > INT32_MAX) {
        lm_error_set(err, "CUDA: a %lld x %lld matrix is beyond cuBLAS's int sizes", (long long)w->view.rows,
                     (long long)w->view.cols);
        return -1;
    }
    CU_TRY(cudaSetDevice(ctx->device));
    return 0;
}

extern "C" int lm_cuda_matmul(lm_cuda_ctx *ctx, const lm_cuda_matrix *w, const float *x_dev, int n_tokens,
                              float *y_dev, lm_cuda_path path, lm_error *err) {
    if (!x_dev) {
        lm_error_set(err, "CUDA: matmul without x");
        return -1;
    }
    if (check_args(ctx, w, n_tokens, y_dev, err)) return -1;
    if (path == LM_CUDA_PATH_AUTO) path = lm_cuda_path_for(w, n_tokens);
    if (path == LM_CUDA_PATH_VEC) return matmul_vec(ctx, w, x_dev, n_tokens, y_dev, err);
    if (path == LM_CUDA_PATH_MMQ) { /* checked before the activations are prepared for it */
        if (cu_mmq_check(w, err) || prepare_act(ctx, w->layout, x_dev, n_tokens, w->view.cols, false, err)) return -1;
        return cu_mmq_launch(ctx, w, n_tokens, y_dev, err);
    }
    if (path == LM_CUDA_PATH_GEMM) return matmul_gemm(ctx, w, x_dev, n_tokens, y_dev, err);
    lm_error_set(err, "CUDA: unknown matmul path %d", (int)path);
    return -1;
}

extern "C" int lm_cuda_matmul_again(lm_cuda_ctx *ctx, const lm_cuda_matrix *w, int n_tokens, float *y_dev,
                                    lm_error *err) {
    if (check_args(ctx, w, n_tokens, y_dev, err)) return -1;
    if (ctx->act_kind != w->layout->act || ctx->act_cols != w->view.cols || ctx->act_tokens != n_tokens) {
        lm_error_set(err, "CUDA: no activations of %d tokens x %lld prepared for %s", n_tokens,
                     (long long)w->view.cols, w->layout->name);
        return -1;
    }
    const lm_cuda_path path = lm_cuda_path_for(w, n_tokens);
    if (path == LM_CUDA_PATH_VEC) return launch_vec(ctx, w, n_tokens, y_dev, err);
    if (path == LM_CUDA_PATH_MMQ) return cu_mmq_launch(ctx, w, n_tokens, y_dev, err);
    if (!ctx->act_h_ready && q8_to_half(ctx, (int64_t)n_tokens * w->view.cols, err)) return -1;
    return gemm_prepared(ctx, w, n_tokens, y_dev, err);
}

extern "C" int lm_cuda_matmul_reuse_act(lm_cuda_ctx *ctx, const lm_cuda_matrix *w, int n_tokens, float *y_dev,
                                        lm_error *err) {
    if (check_args(ctx, w, n_tokens, y_dev, err)) return -1;
    if (ctx->act_kind != w->layout->act || ctx->act_cols != w->view.cols || ctx->act_tokens != n_tokens) {
        lm_error_set(err, "CUDA: no activations of %d tokens x %lld prepared for %s (the last VEC product's are "
                          "%d x %lld, of another kind or none)",
                     n_tokens, (long long)w->view.cols, w->layout->name, ctx->act_tokens, (long long)ctx->act_cols);
        return -1;
    }
    return launch_vec(ctx, w, n_tokens, y_dev, err);
}

/* ---- rows as floats: the token embeddings' lookup ---- */

/* one block per id: row ids[i] of w, each element the CPU's dequantized
 * float (cu_unit_value, as dequant_kernel but not rounded to f16), times scale
 * when it is not 1, into out + i * cols */
template <int T>
__global__ void __launch_bounds__(128) get_rows_kernel(const cu_mat w, const int32_t *__restrict__ ids, float scale,
                                                       float *__restrict__ out) {
    cu_pdl_wait();
    const int64_t row = ids[blockIdx.x];
    float *o = out + (int64_t)blockIdx.x * w.cols;
    for (int u = threadIdx.x; u < w.units; u += blockDim.x) {
        if constexpr (T == CU_F16 || T == CU_BF16) {
            const uint8_t *b = w.body + (row * w.units + u) * 16;
            for (int k = 0; k < 8; k++) {
                float v;
                if constexpr (T == CU_F16) v = __half2float(reinterpret_cast<const __half *>(b)[k]);
                else v = __bfloat162float(reinterpret_cast<const __nv_bfloat16 *>(b)[k]);
                o[u * 8 + k] = scale != 1.0f ? cu_mul_rn(v, scale) : v;
            }
        } else {
            cu_unit x;
            cu_decode<T>(w.body + row * w.blocks * cu_traits<T>::body, w.hdr + row * w.blocks * cu_traits<T>::hdr, u,
                         &x);
#pragma unroll
            for (int run = 0; run < cu_traits<T>::runs; run++) {
                float sc, offset;
                cu_run_scale<T>(&x, run, &sc, &offset);
                float *dst = o + (run ? x.e1 : x.e0);
#pragma unroll
                for (int k = 0; k < 16; k++) {
                    const float v = cu_unit_value(&x, run, k, sc, offset);
                    dst[k] = scale != 1.0f ? cu_mul_rn(v, scale) : v;
                }
            }
        }
    }
}

extern "C" int lm_cuda_get_rows(lm_cuda_ctx *ctx, const lm_cuda_matrix *w, const int32_t *ids_dev, int n, float scale,
                                float *out_dev, lm_error *err) {
    if (n <= 0) return 0;
    switch (w->type_index) {
#define GET_ROWS(t) \
    case t: CU_LAUNCH("get_rows_kernel", get_rows_kernel<t>, n, 128, 0, w->view, ids_dev, scale, out_dev); break;
        GET_ROWS(CU_Q4_0) GET_ROWS(CU_Q4_1) GET_ROWS(CU_Q5_0) GET_ROWS(CU_Q5_1) GET_ROWS(CU_Q8_0)
        GET_ROWS(CU_Q4_K) GET_ROWS(CU_Q5_K) GET_ROWS(CU_Q6_K) GET_ROWS(CU_F16) GET_ROWS(CU_BF16)
#undef GET_ROWS
    default: lm_error_set(err, "CUDA: no row lookup for %s", w->layout->name); return -1;
    }
    return 0;
}
