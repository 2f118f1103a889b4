/* cuda_ops.cu - the forward pass's ops other than the matrix products
 * (cuda_ops.h): norms, the residual connection, activations, RoPE and the
 * K/V store, paged attention; and the host memory and copies that feed them.
 *
 * Attention (flash-decoding style): a block of ATT_WARPS warps takes one
 * token, one K/V head and up to ATT_GROUP of the query heads that share it
 * (GQA), and one split of the token's key positions. Each warp takes the
 * split's keys ATT_UNROLL at a time (every ATT_WARPS-th group): the lanes
 * hold head_dim / 32 elements of q, k and v each; the loads of a group's
 * keys are all issued before any is used (decode attention is bound by
 * their latency, not by bandwidth), a score is a warp sum, and an online
 * softmax keeps the running max, sum and weighted V sum per query head in
 * registers. A token's keys are taken in chunks of ATT_CHUNK: the warps
 * merge each chunk through shared memory, and the chunks are folded in key
 * order. When a step has too few (token, head) pairs to fill the GPU
 * (decode), runs of chunks go to parallel splits and a second kernel folds
 * their chunks, in the same order with the same arithmetic: the output is
 * the same bits either way (batch invariance). */
#include <math.h>
#include <stdio.h>

#include "backend/cuda/cuda_internal.cuh"
#include "backend/cuda/cuda_ops.h"

#define ROW_BLOCK 256            /* threads per row of the norm kernels */
#define ATT_WARPS 4              /* warps per attention block */
#define ATT_GROUP 4              /* query heads per attention block */
#define ATT_MAX_PARTIALS 65536   /* (token, head, chunk) partial results the scratch holds */
#define ATT_MAX_SPLITS 64
#define ATT_CHUNK 32             /* keys a token's keys are cut into, summed chunk after chunk */

/* ---- host memory and copies ---- */

extern "C" void *lm_cuda_host_alloc(lm_cuda_ctx *ctx, size_t bytes, lm_error *err) {
    void *p = NULL;
    cudaError_t e = cudaSetDevice(ctx->device);
    if (e == cudaSuccess) e = cudaMallocHost(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        char what[96];
        snprintf(what, sizeof(what), "cudaMallocHost(%zu bytes)", bytes);
        cu_fail(err, what, e, __FILE__, __LINE__);
        return NULL;
    }
    return p;
}

extern "C" void lm_cuda_host_free(lm_cuda_ctx *ctx, void *host) {
    (void)ctx;
    if (host) cudaFreeHost(host);
}

extern "C" int lm_cuda_upload_async(lm_cuda_ctx *ctx, void *dst_dev, const void *src, size_t bytes, lm_error *err) {
    CU_TRY(cudaSetDevice(ctx->device));
    CU_TRY(cudaMemcpyAsync(dst_dev, src, bytes, cudaMemcpyHostToDevice, ctx->stream));
    return 0;
}

extern "C" int lm_cuda_download_async(lm_cuda_ctx *ctx, void *dst, const void *src_dev, size_t bytes,
                                      lm_error *err) {
    CU_TRY(cudaSetDevice(ctx->device));
    CU_TRY(cudaMemcpyAsync(dst, src_dev, bytes, cudaMemcpyDeviceToHost, ctx->stream));
    return 0;
}

/* ---- profiling marks ---- */

#define MAX_MARKS 4096
#define MAX_LABELS 32

typedef struct cu_marks {
    cudaEvent_t ev[MAX_MARKS];
    const char *label[MAX_MARKS];
    int n, n_created;
    const char *names[MAX_LABELS];
    double ms[MAX_LABELS];
    long count[MAX_LABELS];
    int n_names;
} cu_marks;

/* one set per process: profiling is a single-context tool */
static cu_marks g_marks;

extern "C" void lm_cuda_mark(lm_cuda_ctx *ctx, const char *label) {
    cu_marks *m = &g_marks;
    if (m->n == MAX_MARKS) return;
    if (m->n == m->n_created && cudaEventCreate(&m->ev[m->n_created]) == cudaSuccess) m->n_created++;
    if (m->n >= m->n_created) return;
    cudaEventRecord(m->ev[m->n], ctx->stream);
    m->label[m->n++] = label;
}

extern "C" void lm_cuda_marks_collect(lm_cuda_ctx *ctx) {
    cu_marks *m = &g_marks;
    cudaStreamSynchronize(ctx->stream);
    for (int i = 1; i < m->n; i++) {
        float ms = 0.0f;
        if (cudaEventElapsedTime(&ms, m->ev[i - 1], m->ev[i]) != cudaSuccess) continue;
        int k = 0;
        while (k < m->n_names && strcmp(m->names[k], m->label[i])) k++;
        if (k == m->n_names) {
            if (k == MAX_LABELS) continue;
            m->names[m->n_names++] = m->label[i];
        }
        m->ms[k] += ms;
        m->count[k]++;
    }
    m->n = 0;
}

extern "C" void lm_cuda_marks_print(lm_cuda_ctx *ctx) {
    cu_marks *m = &g_marks;
    double total = 0.0;
    for (int k = 0; k < m->n_names; k++) total += m->ms[k];
    fprintf(stderr, "cuda profile (stream time between marks, graphs off):\n");
    for (int k = 0; k < m->n_names; k++)
        fprintf(stderr, "  %-10s %10.3f ms  %5.1f%%  %8ld x  %8.2f us each\n", m->names[k], m->ms[k],
                100.0 * m->ms[k] / (total > 0 ? total : 1), m->count[k], 1000.0 * m->ms[k] / (m->count[k] ? m->count[k] : 1));
}

struct lm_cuda_graph {
    cudaGraphExec_t exec;
};

extern "C" int lm_cuda_capture_begin(lm_cuda_ctx *ctx, lm_error *err) {
    CU_TRY(cudaSetDevice(ctx->device));
    CU_TRY(cudaStreamBeginCapture(ctx->stream, cudaStreamCaptureModeThreadLocal));
    return 0;
}

extern "C" lm_cuda_graph *lm_cuda_capture_end(lm_cuda_ctx *ctx, lm_error *err) {
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamEndCapture(ctx->stream, &graph);
    if (e != cudaSuccess) {
        cu_fail(err, "cudaStreamEndCapture", e, __FILE__, __LINE__);
        return NULL;
    }
    lm_cuda_graph *g = (lm_cuda_graph *)calloc(1, sizeof(*g));
    e = g ? cudaGraphInstantiate(&g->exec, graph, 0) : cudaErrorMemoryAllocation;
    cudaGraphDestroy(graph);
    if (e != cudaSuccess) {
        cu_fail(err, "cudaGraphInstantiate", e, __FILE__, __LINE__);
        free(g);
        return NULL;
    }
    return g;
}

extern "C" int lm_cuda_graph_launch(lm_cuda_ctx *ctx, lm_cuda_graph *g, lm_error *err) {
    CU_TRY(cudaGraphLaunch(g->exec, ctx->stream));
    return 0;
}

extern "C" void lm_cuda_graph_free(lm_cuda_graph *g) {
    if (!g) return;
    cudaGraphExecDestroy(g->exec);
    free(g);
}

extern "C" int lm_cuda_mem_info(lm_cuda_ctx *ctx, size_t *free_bytes, size_t *total_bytes, lm_error *err) {
    CU_TRY(cudaSetDevice(ctx->device));
    CU_TRY(cudaMemGetInfo(free_bytes, total_bytes));
    return 0;
}

/* ---- reductions ---- */

__device__ __forceinline__ float warp_sum_f(float v) {
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

__device__ __forceinline__ double warp_sum_d(double v) {
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

/* sum over the block (blockDim.x a multiple of 32); every thread gets it */
__device__ double block_sum_d(double v) {
    __shared__ double part[32];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, n_warps = blockDim.x / 32;
    v = warp_sum_d(v);
    if (lane == 0) part[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < n_warps ? part[lane] : 0.0;
        v = warp_sum_d(v);
        if (lane == 0) part[0] = v;
    }
    __syncthreads();
    const double total = part[0];
    __syncthreads(); /* part is reused by the next call */
    return total;
}

/* 1 / rms of a row, as the CPU's op_rmsnorm: squares summed in double */
__device__ float row_inv_rms(const float *x, int dim, float eps) {
    double s = 0.0;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) s += (double)(x[i] * x[i]);
    s = block_sum_d(s);
    return 1.0f / sqrtf((float)(s / dim) + eps);
}

/* ---- norms and the residual connection ---- */

__global__ void rmsnorm_kernel(float *y, const float *x, const int32_t *rows, const float *w, int dim, float eps) {
    cu_pdl_wait();
    const int r = blockIdx.x;
    const float *xr = x + (size_t)(rows ? rows[r] : r) * dim;
    float *yr = y + (size_t)r * dim;
    const float scale = row_inv_rms(xr, dim, eps);
    for (int i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = xr[i] * scale * w[i];
}

extern "C" int lm_cuda_rmsnorm(lm_cuda_ctx *ctx, float *y, const float *x, const int32_t *rows, const float *w,
                               int n_rows, int dim, float eps, lm_error *err) {
    if (n_rows <= 0) return 0;
    CU_LAUNCH("rmsnorm_kernel", rmsnorm_kernel, n_rows, ROW_BLOCK, 0, y, x, rows, w, dim, eps);
    return 0;
}

/* q_kind: -1, or the q8 kind (cu_act_kind) to quantize xb into q / ds (and
 * XH, when not NULL, the GEMM path's f16(d * q)) */
__global__ void residual_kernel(float *x, float *h, const float *post_w, float *xb, const float *next_w, int dim,
                                float eps, int q_kind, int8_t *q, float2 *ds, __half *xh) {
    cu_pdl_wait();
    const size_t r = blockIdx.x;
    float *xr = x + r * dim, *hr = h + r * dim;
    const float h_scale = post_w ? row_inv_rms(hr, dim, eps) : 1.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        const float hv = post_w ? hr[i] * h_scale * post_w[i] : hr[i];
        xr[i] += hv;
    }
    if (!next_w) return;
    __syncthreads();
    const float scale = row_inv_rms(xr, dim, eps);
    float *xbr = xb + r * dim;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) xbr[i] = xr[i] * scale * next_w[i];
    if (q_kind < 0) return;
    __syncthreads(); /* the block's xb writes are visible to it from here */
    const int warp = threadIdx.x / 32, n_warps = blockDim.x / 32;
    if (q_kind == CU_ACT_Q8_K)
        for (int sb = warp; sb < dim / 256; sb += n_warps)
            cu_quantize_q8_K_warp(xbr + sb * 256, q + r * dim + sb * 256, ds + (r * dim + sb * 256) / 32,
                                  xh ? xh + r * dim + sb * 256 : NULL);
    else
        for (int b = warp; b < dim / 32; b += n_warps)
            cu_quantize_q8_32_warp(xbr + b * 32, q + r * dim + b * 32, ds + (r * dim) / 32 + b,
                                   xh ? xh + r * dim + b * 32 : NULL);
}

extern "C" int lm_cuda_residual(lm_cuda_ctx *ctx, float *x, float *h, const float *post_w, float *xb,
                                const float *next_w, int n_rows, int dim, float eps, lm_error *err) {
    if (n_rows <= 0) return 0;
    CU_LAUNCH("residual_kernel", residual_kernel, n_rows, ROW_BLOCK, 0, x, h, post_w, xb, next_w, dim, eps, -1,
              (int8_t *)NULL, (float2 *)NULL, (__half *)NULL);
    return 0;
}

/* the buffers an op that quantizes its output for NEXT writes (COLS: its
 * row length; *kind -1 when it cannot: another row length or activation
 * kind); -1 on error */
static int fused_act_buffers(lm_cuda_ctx *ctx, const lm_cuda_matrix *next, int n_rows, int64_t cols, int8_t **q,
                             float2 **ds, __half **xh, int *kind, lm_error *err) {
    *q = NULL;
    *ds = NULL;
    *xh = NULL;
    *kind = -1;
    if (!next || next->view.cols != cols) return 0;
    const int rc = cu_act_buffers(ctx, next, n_rows, q, ds, xh, kind, err);
    if (rc == -2) return -1;
    if (rc < 0) *kind = -1;
    return 0;
}

extern "C" int lm_cuda_residual_for(lm_cuda_ctx *ctx, float *x, float *h, const float *post_w, float *xb,
                                    const float *next_w, int n_rows, int dim, float eps, const lm_cuda_matrix *next,
                                    bool *fused, lm_error *err) {
    *fused = false;
    int8_t *q;
    float2 *ds;
    __half *xh;
    int kind;
    if (n_rows <= 0) return 0;
    if (fused_act_buffers(ctx, next_w ? next : NULL, n_rows, dim, &q, &ds, &xh, &kind, err)) return -1;
    CU_LAUNCH("residual_kernel", residual_kernel, n_rows, ROW_BLOCK, 0, x, h, post_w, xb, next_w, dim, eps, kind, q,
        ds, xh);
    if (kind >= 0) {
        cu_act_filled(ctx, next, n_rows, xh != NULL);
        *fused = true;
    }
    return 0;
}

/* ---- activations ---- */

/* the CPU's GELU: the gate rounded to f16, GELU (tanh form) of it rounded to
 * f16 (its table), saturated outside [-10, 10] */
__device__ __forceinline__ float gelu_mul(float x, float u) {
    if (x <= -10.0f) return 0.0f;
    if (x >= 10.0f) return x * u;
    const float xf = __half2float(__float2half_rn(x));
    const float sqrt_2_over_pi = 0.79788456080286535587989211986876f;
    const float g = 0.5f * xf * (1.0f + tanhf(sqrt_2_over_pi * xf * (1.0f + 0.044715f * xf * xf)));
    return __half2float(__float2half_rn(g)) * u;
}

__global__ void act_mul_kernel(float *out, const float *g, const float *u, size_t total, int n, int ld, bool gelu) {
    cu_pdl_wait();
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        const size_t in = (i / n) * ld + i % n;
        const float x = g[in];
        out[i] = gelu ? gelu_mul(x, u[in]) : x / (1.0f + expf(-x)) * u[in];
    }
}

static int grid_for(const lm_cuda_ctx *ctx, size_t n, int threads) {
    size_t blocks = (n + threads - 1) / threads, cap = (size_t)ctx->sm_count * 16;
    return (int)(blocks < cap ? (blocks ? blocks : 1) : cap);
}

extern "C" int lm_cuda_act_mul(lm_cuda_ctx *ctx, float *out, const float *g, const float *u, int n_rows, int n, int ld,
                               bool gelu, lm_error *err) {
    const size_t total = (size_t)n_rows * n;
    if (!total) return 0;
    CU_LAUNCH("act_mul_kernel", act_mul_kernel, grid_for(ctx, total, 256), 256, 0, out, g, u, total, n, ld, gelu);
    return 0;
}

/* act_mul_kernel with the quantization of its output for the next product:
 * a block of 256 threads takes 256 consecutive outputs (one q8_K unit, or
 * eight q8_32 ones; TOTAL is a whole number of units), a thread each, then
 * quantizes them, a warp per unit (XH: NULL, or the GEMM's halves too) */
#define ACT_Q_BLOCK 256
__global__ void __launch_bounds__(ACT_Q_BLOCK) act_mul_q_kernel(float *out, const float *g, const float *u,
                                                                int64_t total, int n, int ld, bool gelu, int q_kind,
                                                                int8_t *q, float2 *ds, __half *xh) {
    cu_pdl_wait();
    const int64_t first = (int64_t)blockIdx.x * ACT_Q_BLOCK, i = first + threadIdx.x;
    if (i < total) {
        const int64_t in = (i / n) * ld + i % n;
        const float x = g[in];
        out[i] = gelu ? gelu_mul(x, u[in]) : x / (1.0f + expf(-x)) * u[in];
    }
    __syncthreads(); /* the block's outputs are visible to it from here */
    const int warp = threadIdx.x / 32;
    if (q_kind == CU_ACT_Q8_K) {
        if (warp == 0) cu_quantize_q8_K_warp(out + first, q + first, ds + first / 32, xh ? xh + first : NULL);
    } else {
        const int64_t w0 = first + warp * 32;
        if (w0 < total) cu_quantize_q8_32_warp(out + w0, q + w0, ds + w0 / 32, xh ? xh + w0 : NULL);
    }
}

extern "C" int lm_cuda_act_mul_for(lm_cuda_ctx *ctx, float *out, const float *g, const float *u, int n_rows, int n,
                                   int ld, bool gelu, const lm_cuda_matrix *next, bool *fused, lm_error *err) {
    *fused = false;
    int8_t *q;
    float2 *ds;
    __half *xh;
    int kind; /* when not -1, n (the next product's row length) is a whole number of the kind's units */
    if (fused_act_buffers(ctx, next, n_rows, n, &q, &ds, &xh, &kind, err)) return -1;
    if (kind < 0 || n_rows <= 0) return lm_cuda_act_mul(ctx, out, g, u, n_rows, n, ld, gelu, err);
    const int64_t total = (int64_t)n_rows * n;
    CU_LAUNCH("act_mul_q_kernel", act_mul_q_kernel, (unsigned)((total + ACT_Q_BLOCK - 1) / ACT_Q_BLOCK), ACT_Q_BLOCK,
        0, out, g, u, total, n, ld, gelu, kind, q, ds, xh);
    cu_act_filled(ctx, next, n_rows, xh != NULL);
    *fused = true;
    return 0;
}

/* the (value, index) maximum over the warp, ties to the lower index */
__device__ __forceinline__ void warp_argmax(float *v, int *idx) {
    for (int off = 16; off > 0; off >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, *v, off);
        const int oi = __shfl_xor_sync(0xffffffffu, *idx, off);
        if (ov > *v || (ov == *v && oi < *idx)) {
            *v = ov;
            *idx = oi;
        }
    }
}

#define ARGMAX_MAX_SPLIT 32 /* blocks per row at most: the last one folds their partials with one warp */

/* a row's place in the argmax scratch: the same for any number of rows, so
 * a counter left at zero by one launch is zero for the next */
typedef struct argmax_slot {
    float v[ARGMAX_MAX_SPLIT];
    int i[ARGMAX_MAX_SPLIT];
    unsigned count;
} argmax_slot;

/* The block's (value, index) maximum of its threads' (V, IDX), ties to the
 * lower index; valid in thread 0. */
__device__ void block_argmax(float *v, int *idx) {
    __shared__ float best_v[32];
    __shared__ int best_i[32];
    warp_argmax(v, idx);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) {
        best_v[warp] = *v;
        best_i[warp] = *idx;
    }
    __syncthreads();
    if (warp == 0) {
        *v = lane < blockDim.x / 32 ? best_v[lane] : -INFINITY;
        *idx = lane < blockDim.x / 32 ? best_i[lane] : 0x7fffffff;
        warp_argmax(v, idx);
    }
}

/* gridDim.x blocks per row (blockIdx.y), each over a segment of SEG
 * elements; each thread keeps its first maximum (NaN never wins), then the
 * block's. With one block per row it writes out; otherwise each block leaves
 * its partial and the last block of the row to finish (a counter, reset to
 * zero for the next launch) folds them. The order of the fold does not
 * matter: (value desc, index asc) picks one winner, the lowest index among
 * equal maxima, as one block would. */
__global__ void argmax_kernel(const float *x, int n, int seg, argmax_slot *slots, int32_t *out) {
    cu_pdl_wait();
    const int row = blockIdx.y, split = gridDim.x;
    const float *xr = x + (size_t)row * n;
    const int lo = blockIdx.x * seg, hi = min(n, lo + seg);
    float v = -INFINITY;
    int idx = 0x7fffffff;
    for (int i = lo + threadIdx.x; i < hi; i += blockDim.x) {
        const float y = xr[i];
        if (y > v) {
            v = y;
            idx = i;
        }
    }
    block_argmax(&v, &idx);
    if (split == 1) {
        if (threadIdx.x == 0) out[row] = idx == 0x7fffffff ? 0 : idx;
        return;
    }
    __shared__ bool last;
    argmax_slot *slot = slots + row;
    if (threadIdx.x == 0) {
        slot->v[blockIdx.x] = v;
        slot->i[blockIdx.x] = idx;
        __threadfence(); /* the partial is visible before the count says so */
        last = atomicAdd(&slot->count, 1u) == (unsigned)split - 1;
    }
    __syncthreads();
    if (!last || threadIdx.x >= 32) return;
    __threadfence();
    const int lane = threadIdx.x;
    v = lane < split ? ((volatile float *)slot->v)[lane] : -INFINITY;
    idx = lane < split ? ((volatile int *)slot->i)[lane] : 0x7fffffff;
    warp_argmax(&v, &idx);
    if (lane == 0) {
        out[row] = idx == 0x7fffffff ? 0 : idx;
        slot->count = 0;
    }
}

extern "C" int lm_cuda_argmax(lm_cuda_ctx *ctx, const float *x, int n_rows, int n, int32_t *out, lm_error *err) {
    if (n_rows <= 0) return 0;
    /* about two blocks per SM over all rows, whole segments of 4096 or more */
    int split = (2 * ctx->sm_count + n_rows - 1) / n_rows;
    split = split < ARGMAX_MAX_SPLIT ? split : ARGMAX_MAX_SPLIT;
    const int min_seg = 4096, by_len = (n + min_seg - 1) / min_seg;
    split = split < by_len ? split : by_len;
    split = split > 1 ? split : 1;
    const int seg = (n + split - 1) / split;
    argmax_slot *slots = NULL;
    if (split > 1) {
        if (cu_scratch_reserve_zeroed(ctx, &ctx->argmax, (size_t)n_rows * sizeof(argmax_slot), err)) return -1;
        slots = (argmax_slot *)ctx->argmax.ptr;
    }
    CU_LAUNCH("argmax_kernel", argmax_kernel, dim3((unsigned)split, (unsigned)n_rows), 1024, 0, x, n, seg, slots,
        out);
    return 0;
}

/* order-preserving float -> uint (ascending); NaN maps to the bottom */
__device__ __forceinline__ uint32_t float_key(float f) {
    if (f != f) return 0;
    const uint32_t u = __float_as_uint(f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/* One block (1024 threads) per row: a radix select of the K-th largest key
 * (four 8-bit passes; per-warp aggregated shared-memory histograms), then
 * every key above it, then the lowest-index ones equal to it (an ordered
 * block scan), then the K ranked by (value desc, index asc). */
__global__ void __launch_bounds__(1024) top_k_kernel(const float *x, int n, int k, int32_t *ids, float *vals) {
    cu_pdl_wait();
    __shared__ unsigned hist[256];
    __shared__ uint32_t s_prefix, s_mask;
    __shared__ int s_rank, s_n, s_taken;
    __shared__ int warp_cnt[32];
    __shared__ int32_t c_id[LM_CUDA_TOP_K_MAX];
    __shared__ float c_val[LM_CUDA_TOP_K_MAX];
    const float *row = x + (size_t)blockIdx.x * n;
    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32, n_warps = blockDim.x / 32;
    if (tid == 0) {
        s_prefix = 0;
        s_mask = 0;
        s_rank = k;
        s_n = 0;
        s_taken = 0;
    }
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int i = tid; i < 256; i += blockDim.x) hist[i] = 0;
        __syncthreads();
        const uint32_t prefix = s_prefix, mask = s_mask;
        for (int i0 = 0; i0 < n; i0 += blockDim.x) { /* whole warps in each round: the match below */
            const int i = i0 + tid;
            const uint32_t key = i < n ? float_key(row[i]) : 0;
            const bool in = i < n && (key & mask) == prefix;
            const unsigned bin = (key >> shift) & 255u;
            const unsigned active = __ballot_sync(0xffffffffu, in);
            if (in) {
                const unsigned peers = __match_any_sync(active, bin);
                if (lane == __ffs(peers) - 1) atomicAdd(&hist[bin], __popc(peers));
            }
        }
        __syncthreads();
        if (tid == 0) {
            int rem = s_rank, b = 255;
            for (; b > 0; b--) {
                if ((int)hist[b] >= rem) break;
                rem -= (int)hist[b];
            }
            s_prefix = prefix | ((uint32_t)b << shift);
            s_mask = mask | (255u << shift);
            s_rank = rem;
        }
        __syncthreads();
    }
    const uint32_t thr = s_prefix;
    const int need_eq = s_rank; /* keys above thr: k - need_eq of them */
    for (int i = tid; i < n; i += blockDim.x) {
        const float v = row[i];
        if (float_key(v) > thr) {
            const int p = atomicAdd(&s_n, 1);
            if (p < LM_CUDA_TOP_K_MAX) {
                c_id[p] = i;
                c_val[p] = v;
            }
        }
    }
    __syncthreads();
    const int base = s_n;
    for (int i0 = 0; i0 < n; i0 += blockDim.x) {
        if (s_taken >= need_eq) break; /* uniform: read after a barrier */
        const int i = i0 + tid;
        const bool eq = i < n && float_key(row[i]) == thr;
        const unsigned b = __ballot_sync(0xffffffffu, eq);
        if (lane == 0) warp_cnt[warp] = __popc(b);
        __syncthreads();
        int before = 0;
        for (int w = 0; w < warp; w++) before += warp_cnt[w];
        const int r = s_taken + before + __popc(b & ((1u << lane) - 1u));
        if (eq && r < need_eq && base + r < LM_CUDA_TOP_K_MAX) {
            c_id[base + r] = i;
            c_val[base + r] = row[i];
        }
        __syncthreads();
        if (tid == 0) {
            int total = 0;
            for (int w = 0; w < n_warps; w++) total += warp_cnt[w];
            s_taken += total;
        }
        __syncthreads();
    }
    if (tid < k) {
        const float v = c_val[tid];
        const int32_t id = c_id[tid];
        int rank = 0;
        for (int m = 0; m < k; m++)
            if (c_val[m] > v || (c_val[m] == v && c_id[m] < id)) rank++;
        ids[(size_t)blockIdx.x * k + rank] = id;
        vals[(size_t)blockIdx.x * k + rank] = v;
    }
}

extern "C" int lm_cuda_top_k(lm_cuda_ctx *ctx, const float *x, int n_rows, int n, int k, int32_t *ids, float *vals,
                             lm_error *err) {
    if (k < 1 || k > LM_CUDA_TOP_K_MAX || k > n) {
        lm_error_set(err, "CUDA: top-k of %d from %d (1..%d)", k, n, LM_CUDA_TOP_K_MAX);
        return -1;
    }
    if (n_rows <= 0) return 0;
    CU_LAUNCH("top_k_kernel", top_k_kernel, n_rows, 1024, 0, x, n, k, ids, vals);
    return 0;
}

/* one block per row: the maximum, then the exponentials' sum in double (as
 * the engine's log-softmax on the CPU: e^(x - max) of the float difference) */
__global__ void log_z_kernel(const float *x, int n, float *out) {
    cu_pdl_wait();
    __shared__ float part[32];
    const float *row = x + (size_t)blockIdx.x * n;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, n_warps = blockDim.x / 32;
    float m = -INFINITY;
    for (int i = threadIdx.x; i < n; i += blockDim.x) m = fmaxf(m, row[i]);
    for (int off = 16; off > 0; off >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
    if (lane == 0) part[warp] = m;
    __syncthreads();
    m = part[0];
    for (int w = 1; w < n_warps; w++) m = fmaxf(m, part[w]);
    double sum = 0.0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) sum += exp((double)(row[i] - m));
    sum = block_sum_d(sum);
    if (threadIdx.x == 0) out[blockIdx.x] = m + (float)log(sum);
}

extern "C" int lm_cuda_log_z(lm_cuda_ctx *ctx, const float *x, int n_rows, int n, float *out, lm_error *err) {
    if (n_rows <= 0) return 0;
    CU_LAUNCH("log_z_kernel", log_z_kernel, n_rows, 1024, 0, x, n, out);
    return 0;
}

/* one block per row: its bias edits in order by one thread (a token may
 * appear twice), then its penalty edits (distinct tokens) by all; each
 * step one IEEE operation rounded on its own, as lm_logit_edits_apply */
__global__ void logit_edits_kernel(float *x, int n, const int32_t *offsets, const lm_logit_edit *edits) {
    cu_pdl_wait();
    float *row = x + (size_t)blockIdx.x * n;
    const int begin = offsets[blockIdx.x], end = offsets[blockIdx.x + 1];
    if (threadIdx.x == 0)
        for (int i = begin; i < end; i++)
            if (edits[i].kind == LM_EDIT_BIAS) row[edits[i].token] = __fadd_rn(row[edits[i].token], edits[i].a);
    __syncthreads();
    for (int i = begin + threadIdx.x; i < end; i += blockDim.x) {
        const lm_logit_edit e = edits[i];
        if (e.kind != LM_EDIT_PENALTY) continue;
        const float l = row[e.token];
        row[e.token] = __fsub_rn(l <= 0.0f ? __fmul_rn(l, e.a) : __fdiv_rn(l, e.a), e.b);
    }
}

extern "C" int lm_cuda_logit_edits(lm_cuda_ctx *ctx, float *x, int n_rows, int n, const int32_t *offsets,
                                   const lm_logit_edit *edits, lm_error *err) {
    if (n_rows <= 0) return 0;
    CU_LAUNCH("logit_edits_kernel", logit_edits_kernel, n_rows, 128, 0, x, n, offsets, edits);
    return 0;
}

__global__ void softcap_kernel(float *x, size_t n, float cap) {
    cu_pdl_wait();
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] = cap * tanhf(x[i] / cap);
}

extern "C" int lm_cuda_softcap(lm_cuda_ctx *ctx, float *x, size_t n, float cap, lm_error *err) {
    if (!n) return 0;
    CU_LAUNCH("softcap_kernel", softcap_kernel, grid_for(ctx, n, 256), 256, 0, x, n, cap);
    return 0;
}

/* ---- biases, QK norm, RoPE, K/V store ---- */

/* where position POS of slot SLOT sits in a layer's pool: its row (in units
 * of one position's K or V) */
__device__ __forceinline__ size_t kv_row(const lm_cuda_kv_layer &kv, int slot, int pos) {
    const int block = kv.tables[(size_t)slot * kv.max_blocks + pos / kv.block_size];
    return (size_t)block * kv.block_size + pos % kv.block_size;
}

/* one warp per (token, head): q heads, then k heads, then v heads */
__global__ void qkv_store_kernel(lm_cuda_qkv a, lm_cuda_kv_layer kv, float theta_scale) {
    cu_pdl_wait();
    __shared__ float buf[LM_CUDA_MAX_HEAD_DIM];
    const int t = blockIdx.x, h = blockIdx.y, lane = threadIdx.x;
    const int kind = h < a.n_head ? 0 : h < a.n_head + a.n_head_kv ? 1 : 2; /* q, k, v */
    const int hh = kind == 0 ? h : kind == 1 ? h - a.n_head : h - a.n_head - a.n_head_kv;
    const int hd = kind == 2 ? a.head_dim_v : a.head_dim;
    const int ld = kind == 0 ? a.ld_q : kind == 1 ? a.ld_k : a.ld_v;
    const float *src = (kind == 0 ? a.q : kind == 1 ? a.k : a.v) + (size_t)t * ld + (size_t)hh * hd;
    const float *bias = kind == 0 ? a.bq : kind == 1 ? a.bk : a.bv;
    const float *norm = kind == 0 ? a.q_norm : kind == 1 ? a.k_norm : NULL;
    double ss = 0.0;
    for (int i = lane; i < hd; i += 32) {
        float v = src[i];
        if (bias) v += bias[(size_t)hh * hd + i];
        buf[i] = v;
        ss += (double)(v * v);
    }
    if (norm) {
        ss = warp_sum_d(ss);
        const float scale = 1.0f / sqrtf((float)(ss / hd) + a.eps);
        for (int i = lane; i < hd; i += 32) buf[i] = buf[i] * scale * norm[i];
    }
    __syncwarp();
    const int pos = a.pos[t];
    if (kind != 2) {
        const int half = a.n_rot / 2;
        for (int i = lane; i < half; i += 32) {
            /* theta_i = pos * scale * theta_scale^i by the CPU's float recurrence */
            float theta = (float)pos * a.rope_scale;
            for (int j = 0; j < i; j++) theta *= theta_scale;
            const float th = a.freq_factors ? theta / a.freq_factors[i] : theta;
            const float c = cosf(th), s = sinf(th);
            const int ia = a.neox ? i : 2 * i, ib = a.neox ? i + half : 2 * i + 1;
            const float x0 = buf[ia], x1 = buf[ib];
            buf[ia] = x0 * c - x1 * s;
            buf[ib] = x0 * s + x1 * c;
        }
        __syncwarp();
    }
    if (kind == 0) {
        float *dst = a.q_out + ((size_t)t * a.n_head + hh) * hd;
        for (int i = lane; i < hd; i += 32) dst[i] = buf[i];
        return;
    }
    const size_t row = kv_row(kv, a.slot[t], pos);
    __half *dst = (__half *)(kind == 1 ? kv.k : kv.v) + row * ((size_t)a.n_head_kv * hd) + (size_t)hh * hd;
    for (int i = lane; i < hd; i += 32) dst[i] = __float2half_rn(buf[i]);
}

extern "C" int lm_cuda_qkv_store(lm_cuda_ctx *ctx, const lm_cuda_qkv *a, const lm_cuda_kv_layer *kv,
                                 lm_error *err) {
    if (a->head_dim > LM_CUDA_MAX_HEAD_DIM || a->head_dim_v > LM_CUDA_MAX_HEAD_DIM || a->n_rot > a->head_dim) {
        lm_error_set(err, "CUDA: head size %d / %d (rotated %d) beyond the kernels' %d", a->head_dim, a->head_dim_v,
                     a->n_rot, LM_CUDA_MAX_HEAD_DIM);
        return -1;
    }
    if (a->n_tokens <= 0) return 0;
    /* the CPU's op_rope computes this once per head with the host's powf */
    const float theta_scale = powf(a->rope_base, -2.0f / (float)a->n_rot);
    const dim3 grid(a->n_tokens, a->n_head + 2 * a->n_head_kv);
    CU_LAUNCH("qkv_store_kernel", qkv_store_kernel, grid, 32, 0, *a, *kv, theta_scale);
    return 0;
}

/* ---- attention ---- */

extern "C" size_t lm_cuda_attn_scratch_bytes(int head_dim) {
    return (size_t)ATT_MAX_PARTIALS * (head_dim + 2) * sizeof(float);
}

/* the first key position a token attends to */
__host__ __device__ __forceinline__ int attn_lo(int pos, int window) {
    return window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0;
}

/* the chunks of ATT_CHUNK keys a token's keys fall into */
__host__ __device__ __forceinline__ int attn_chunks(int pos, int window) {
    return (pos - attn_lo(pos, window) + ATT_CHUNK) / ATT_CHUNK;
}

/* Folds one chunk's (max, sum, weighted V element) into the running ones,
 * chunk after chunk in key order. Every step is rounded on its own, and
 * the attention kernel and the merge kernel both use this one function:
 * a token's result is the same bits whether its chunks were summed in one
 * block or in parallel splits merged after. */
__device__ __forceinline__ void attn_fold(float &M, float &L, float &O, float Mc, float Lc, float Oc) {
    if (Mc == -INFINITY) return; /* no key (cannot happen for a real chunk; kept for safety) */
    const float Mn = fmaxf(M, Mc);
    const float a = expf(M - Mn), b = expf(Mc - Mn); /* a = 0 while M is -inf */
    L = __fadd_rn(__fmul_rn(L, a), __fmul_rn(Lc, b));
    O = __fadd_rn(__fmul_rn(O, a), __fmul_rn(Oc, b));
    M = Mn;
}

/* Blocks (token, K/V head and query-head chunk, split). A token's keys are
 * cut into chunks of ATT_CHUNK from its first key; split z of n_split
 * takes a run of the chunks. Each chunk: the warps share its keys, then
 * merge in shared memory into the chunk's (max, sum, weighted V). With one
 * split the block folds its chunks in order (attn_fold) and writes the
 * output; with more, each chunk's partial goes to the scratch, at its
 * chunk index among MAX_CHUNKS, and the last split of the (token, head
 * group) to finish (COUNT, one counter per group, left at zero) folds them
 * all in the same order. Either way the arithmetic of a token's output
 * depends on its position and its keys alone, not on the batch or the
 * split count. */
template <int EPL> /* elements per lane: head_dim / 32 */
__global__ void __launch_bounds__(ATT_WARPS * 32) attn_kernel(lm_cuda_attn a, lm_cuda_kv_layer kv, int n_split,
                                                              int max_chunks, unsigned *count) {
    cu_pdl_wait();
    constexpr int D = EPL * 32;
    __shared__ float sm_m[ATT_WARPS][ATT_GROUP], sm_l[ATT_WARPS][ATT_GROUP];
    __shared__ float sm_acc[ATT_WARPS][ATT_GROUP][D];
    const int t = blockIdx.x, split = blockIdx.z;
    const int group = a.n_head / a.n_head_kv, n_qchunks = (group + ATT_GROUP - 1) / ATT_GROUP;
    const int kvh = blockIdx.y / n_qchunks, qchunk = blockIdx.y % n_qchunks;
    const int h0 = kvh * group + qchunk * ATT_GROUP;
    const int ng = min(ATT_GROUP, group - qchunk * ATT_GROUP);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int pos = a.pos[t], slot = a.slot[t];
    const int lo = attn_lo(pos, a.window), n_chunks = attn_chunks(pos, a.window);
    const int per_split = (n_chunks + n_split - 1) / n_split;
    const int c_begin = split * per_split, c_end = min(n_chunks, c_begin + per_split);

    float q[ATT_GROUP][EPL];
#pragma unroll
    for (int g = 0; g < ATT_GROUP; g++) {
        const float *qh = a.q + ((size_t)t * a.n_head + h0 + (g < ng ? g : 0)) * D;
#pragma unroll
        for (int e = 0; e < EPL; e++)
            /* Q rounded to f16 before it meets the f16 keys, as the CPU (and llama.cpp) do */
            q[g][e] = __half2float(__float2half_rn(qh[lane + 32 * e]));
    }
    /* the running fold of the elements this thread merges: idx = threadIdx.x + k * blockDim.x */
    float rM[EPL], rL[EPL], rO[EPL];
#pragma unroll
    for (int k = 0; k < EPL; k++) {
        rM[k] = -INFINITY;
        rL[k] = 0.0f;
        rO[k] = 0.0f;
    }
    const size_t kv_dim = (size_t)a.n_head_kv * D;
    const __half *kbase = (const __half *)kv.k + (size_t)kvh * D, *vbase = (const __half *)kv.v + (size_t)kvh * D;
    constexpr int U = EPL <= 4 ? 4 : 2; /* keys in flight per warp */
    for (int c = c_begin; c < c_end; c++) {
        const int start = lo + c * ATT_CHUNK, end = min(pos + 1, start + ATT_CHUNK);
        float acc[ATT_GROUP][EPL], m[ATT_GROUP], l[ATT_GROUP];
#pragma unroll
        for (int g = 0; g < ATT_GROUP; g++) {
#pragma unroll
            for (int e = 0; e < EPL; e++) acc[g][e] = 0.0f;
            m[g] = -INFINITY;
            l[g] = 0.0f;
        }
        for (int j0 = start + warp * U; j0 < end; j0 += ATT_WARPS * U) {
            float kf[U][EPL], vf[U][EPL];
#pragma unroll
            for (int u = 0; u < U; u++) {
                const bool in = j0 + u < end;
                const size_t off = in ? kv_row(kv, slot, j0 + u) * kv_dim : 0;
#pragma unroll
                for (int e = 0; e < EPL; e++) {
                    kf[u][e] = in ? __half2float(kbase[off + lane + 32 * e]) : 0.0f;
                    vf[u][e] = in ? __half2float(vbase[off + lane + 32 * e]) : 0.0f;
                }
            }
#pragma unroll
            for (int g = 0; g < ATT_GROUP; g++) {
                if (g >= ng) break;
                float s[U];
#pragma unroll
                for (int u = 0; u < U; u++) {
                    s[u] = 0.0f;
#pragma unroll
                    for (int e = 0; e < EPL; e++) s[u] += q[g][e] * kf[u][e];
                }
#pragma unroll
                for (int u = 0; u < U; u++) s[u] = warp_sum_f(s[u]) * a.scale;
#pragma unroll
                for (int u = 0; u < U; u++) {
                    if (j0 + u >= end) break;
                    float su = s[u];
                    if (a.softcap > 0.0f) su = a.softcap * tanhf(su / a.softcap);
                    const float mn = fmaxf(m[g], su), cr = expf(m[g] - mn), p = expf(su - mn);
                    l[g] = l[g] * cr + p;
#pragma unroll
                    for (int e = 0; e < EPL; e++) acc[g][e] = acc[g][e] * cr + p * vf[u][e];
                    m[g] = mn;
                }
            }
        }
#pragma unroll
        for (int g = 0; g < ATT_GROUP; g++) {
            if (lane == 0) {
                sm_m[warp][g] = m[g];
                sm_l[warp][g] = l[g];
            }
#pragma unroll
            for (int e = 0; e < EPL; e++) sm_acc[warp][g][lane + 32 * e] = acc[g][e];
        }
        __syncthreads();
#pragma unroll
        for (int k = 0; k < EPL; k++) {
            const int idx = threadIdx.x + k * ATT_WARPS * 32, g = idx / D, d = idx % D;
            if (g < ng) {
                float M = -INFINITY;
                for (int w = 0; w < ATT_WARPS; w++) M = fmaxf(M, sm_m[w][g]);
                float L = 0.0f, O = 0.0f;
                if (M != -INFINITY) {
                    for (int w = 0; w < ATT_WARPS; w++) {
                        const float f = expf(sm_m[w][g] - M); /* 0 for a warp that saw no key */
                        L = fmaf(sm_l[w][g], f, L);
                        O = fmaf(sm_acc[w][g][d], f, O);
                    }
                }
                if (n_split == 1) {
                    attn_fold(rM[k], rL[k], rO[k], M, L, O);
                } else {
                    const size_t th = (size_t)t * a.n_head + h0 + g;
                    float *part = a.scratch + (th * max_chunks + c) * (D + 2);
                    part[d] = O;
                    if (d == 0) {
                        part[D] = M;
                        part[D + 1] = L;
                    }
                }
            }
        }
        __syncthreads(); /* before the next chunk writes the shared arrays */
    }
    if (n_split > 1) { /* the last split to finish folds every chunk's partial */
        __shared__ bool last;
        __threadfence(); /* this block's partials are visible before the count says so */
        __syncthreads();
        if (threadIdx.x == 0) {
            unsigned *cnt = count + (size_t)t * gridDim.y + blockIdx.y;
            last = atomicAdd(cnt, 1u) == (unsigned)n_split - 1;
            if (last) *cnt = 0; /* for the next launch */
        }
        __syncthreads();
        if (!last) return;
        __threadfence();
#pragma unroll
        for (int k = 0; k < EPL; k++) {
            const int idx = threadIdx.x + k * ATT_WARPS * 32, g = idx / D, d = idx % D;
            if (g < ng) {
                const size_t th = (size_t)t * a.n_head + h0 + g;
                const float *part = a.scratch + th * max_chunks * (D + 2);
                for (int c = 0; c < n_chunks; c++) {
                    const float *p = part + (size_t)c * (D + 2);
                    attn_fold(rM[k], rL[k], rO[k], __ldcg(p + D), __ldcg(p + D + 1), __ldcg(p + d));
                }
            }
        }
    }
#pragma unroll
    for (int k = 0; k < EPL; k++) {
        const int idx = threadIdx.x + k * ATT_WARPS * 32, g = idx / D, d = idx % D;
        if (g < ng) a.out[((size_t)t * a.n_head + h0 + g) * D + d] = rO[k] / rL[k];
    }
}

template <int EPL>
static cudaError_t launch_attn(lm_cuda_ctx *ctx, const lm_cuda_attn *a, const lm_cuda_kv_layer *kv, dim3 grid,
                               int n_split, int max_chunks, unsigned *count) {
    return cu_launch(ctx, attn_kernel<EPL>, grid, ATT_WARPS * 32, 0, *a, *kv, n_split, max_chunks, count);
}

extern "C" int lm_cuda_attention(lm_cuda_ctx *ctx, const lm_cuda_attn *a, const lm_cuda_kv_layer *kv,
                                 lm_error *err) {
    const int D = a->head_dim;
    if (D % 32 != 0 || D > LM_CUDA_MAX_HEAD_DIM || a->n_head_kv < 1 || a->n_head % a->n_head_kv != 0) {
        lm_error_set(err, "CUDA: attention over heads of %d (%d query heads, %d K/V heads) is not supported (head "
                          "size a multiple of 32 up to %d)",
                     D, a->n_head, a->n_head_kv, LM_CUDA_MAX_HEAD_DIM);
        return -1;
    }
    if (a->n_tokens <= 0) return 0;
    /* splits: enough blocks for two waves of the GPU, at most one per chunk
     * of the longest possible run of keys, and only when the scratch holds
     * a partial for every chunk of every (token, head). The split count
     * changes only where the work runs, not what it computes. */
    const int max_keys = a->max_keys > 0 ? a->max_keys : 1;
    const long max_chunks = (max_keys + ATT_CHUNK - 1) / ATT_CHUNK;
    const int group = a->n_head / a->n_head_kv, n_qchunks = (group + ATT_GROUP - 1) / ATT_GROUP;
    const long blocks = (long)a->n_tokens * a->n_head_kv * n_qchunks;
    long n_split = (2L * ctx->sm_count + blocks - 1) / blocks;
    if (n_split > max_chunks) n_split = max_chunks;
    if (n_split > ATT_MAX_SPLITS) n_split = ATT_MAX_SPLITS;
    if (!a->scratch || (long)a->n_tokens * a->n_head * max_chunks > ATT_MAX_PARTIALS) n_split = 1;
    if (n_split < 1) n_split = 1;
    const dim3 grid(a->n_tokens, a->n_head_kv * n_qchunks, (unsigned)n_split);
    unsigned *count = NULL;
    if (n_split > 1) { /* a counter per (token, head group); every launch leaves them at zero */
        if (cu_scratch_reserve_zeroed(ctx, &ctx->attn_count, (size_t)grid.x * grid.y * sizeof(unsigned), err))
            return -1;
        count = (unsigned *)ctx->attn_count.ptr;
    }
    cudaError_t e;
    switch (D / 32) {
    case 1: e = launch_attn<1>(ctx, a, kv, grid, (int)n_split, (int)max_chunks, count); break;
    case 2: e = launch_attn<2>(ctx, a, kv, grid, (int)n_split, (int)max_chunks, count); break;
    case 3: e = launch_attn<3>(ctx, a, kv, grid, (int)n_split, (int)max_chunks, count); break;
    case 4: e = launch_attn<4>(ctx, a, kv, grid, (int)n_split, (int)max_chunks, count); break;
    case 5: e = launch_attn<5>(ctx, a, kv, grid, (int)n_split, (int)max_chunks, count); break;
    case 6: e = launch_attn<6>(ctx, a, kv, grid, (int)n_split, (int)max_chunks, count); break;
    case 7: e = launch_attn<7>(ctx, a, kv, grid, (int)n_split, (int)max_chunks, count); break;
    default: e = launch_attn<8>(ctx, a, kv, grid, (int)n_split, (int)max_chunks, count); break;
    }
    if (e != cudaSuccess) return cu_fail(err, "launch of attn_kernel", e, __FILE__, __LINE__);
    return 0;
}
