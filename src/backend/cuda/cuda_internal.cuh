/* cuda_internal.cuh - what the .cu files of backend/cuda share: the context
 * and matrix structs, the checked-call macros, the type table, the repack.
 * Internal: only backend/cuda and its tests include it. */
#ifndef LAMINA_BACKEND_CUDA_INTERNAL_CUH
#define LAMINA_BACKEND_CUDA_INTERNAL_CUH

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_layout.cuh"

/* Every CUDA / cuBLAS call goes through these: on failure they fill ERR
 * (which must be in scope) and return -1 from the calling function. */
#define CU_TRY(call)                                                                                                 \
    do {                                                                                                             \
        const cudaError_t cu_e_ = (call);                                                                            \
        if (cu_e_ != cudaSuccess) return cu_fail(err, #call, cu_e_, __FILE__, __LINE__);                             \
    } while (0)
/* after every kernel launch */
#define CU_LAUNCHED(kernel_name)                                                                                     \
    do {                                                                                                             \
        const cudaError_t cu_e_ = cudaGetLastError();                                                                \
        if (cu_e_ != cudaSuccess) return cu_fail(err, "launch of " kernel_name, cu_e_, __FILE__, __LINE__);          \
    } while (0)
#define CUBLAS_TRY(call)                                                                                             \
    do {                                                                                                             \
        const cublasStatus_t cu_s_ = (call);                                                                         \
        if (cu_s_ != CUBLAS_STATUS_SUCCESS) return cublas_fail(err, #call, cu_s_, __FILE__, __LINE__);               \
    } while (0)

/* Launches KERNEL on CTX's stream (grid, block, dynamic shared memory,
 * its arguments) and, where CTX allows it (ctx->pdl: Hopper and later),
 * as a programmatic dependent of the kernel before it: its blocks may be
 * scheduled while that kernel drains, and each of our kernels' first
 * statement, cu_pdl_wait, holds them until that kernel has completed and
 * its writes are visible. On failure it fills ERR with the kernel's name
 * and returns -1 from the calling function. */
#define CU_LAUNCH(kernel_name, ...)                                                                                  \
    do {                                                                                                             \
        const cudaError_t cu_e_ = cu_launch(ctx, __VA_ARGS__);                                                       \
        if (cu_e_ != cudaSuccess) return cu_fail(err, "launch of " kernel_name, cu_e_, __FILE__, __LINE__);          \
    } while (0)

/* the first statement of every kernel (a no-op before Hopper and when the
 * kernel was not launched as a programmatic dependent) */
__device__ __forceinline__ void cu_pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

/* fill ERR with "CALL failed: <CUDA's text> (<its name>) [file:line]"; return -1 */
int cu_fail(lm_error *err, const char *call, cudaError_t e, const char *file, int line);
int cublas_fail(lm_error *err, const char *call, cublasStatus_t s, const char *file, int line);

/* A device buffer that only grows (per-call scratch). */
typedef struct cu_scratch {
    void *ptr;
    size_t cap; /* bytes */
} cu_scratch;

struct lm_cuda_ctx {
    int device;
    int sm_count;
    cudaStream_t stream;
    cublasHandle_t blas;
    void *blas_workspace; /* set on the handle, so cuBLAS allocates nothing while a graph is captured */
    int vec_threads;      /* threads per row group of the VEC kernels; 0: the built-in choice */
    int vec_rows;         /* rows per thread of the VEC kernels; 0: the built-in choice */
    int mmq_shape;        /* 1 + the MMQ kernels' row tiling; 0: the built-in choice */
    bool batch_invariant; /* AUTO takes the VEC path for every batch (lm_cuda_set_batch_invariant) */
    bool pdl;             /* kernels launch as programmatic dependents (compute capability 9.0+, LAMINA_CUDA_PDL) */
    cu_scratch act_q, act_ds, act_h, w_h;
    cu_scratch argmax;     /* the split argmax's partials and per-row counters (zero between launches) */
    cu_scratch attn_count; /* the split attention's counters per (token, head group), zero between launches */
    /* what act_q / act_ds / act_h hold: the last VEC product's activations */
    int act_kind; /* cu_act_kind, -1: nothing */
    int64_t act_cols;
    int act_tokens;
    bool act_h_ready; /* act_h holds the same x as the GEMM path takes it (f16(d * q) for the q8 kinds) */
};

template <typename... KArgs, typename... Args>
static inline cudaError_t cu_launch(const lm_cuda_ctx *ctx, void (*kernel)(KArgs...), dim3 grid, dim3 block,
                                    size_t smem, Args... args) {
    cudaLaunchAttribute attr;
    attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr.val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = ctx->stream;
    cfg.attrs = &attr;
    cfg.numAttrs = ctx->pdl ? 1 : 0;
    return cudaLaunchKernelEx(&cfg, kernel, static_cast<KArgs>(args)...);
}

struct lm_cuda_matrix {
    lm_cuda_ctx *ctx;
    const cu_layout *layout;
    int type_index; /* cu_type */
    uint8_t *dev;   /* one allocation: the body plane, then the hdr plane */
    size_t bytes;
    __half *f16;    /* the dequantized copy the GEMM path reads, when kept (lm_cuda_matrix_keep_f16) */
    cu_mat view;
};

/* the layout of lm_dtype TYPE, NULL if the GPU does not take it; *index gets its cu_type */
const cu_layout *cu_layout_of(uint32_t type, int *index);

/* bytes of the two planes of a ROWS x COLS matrix */
size_t cu_body_bytes(const cu_layout *l, int64_t rows, int64_t cols);
size_t cu_hdr_bytes(const cu_layout *l, int64_t rows, int64_t cols);

/* GGUF rows at SRC -> the body and hdr planes (host memory) */
void cu_repack(const cu_layout *l, const void *src, int64_t rows, int64_t cols, uint8_t *body, uint8_t *hdr);

/* grows S to at least BYTES (its old content is lost) */
int cu_scratch_reserve(cu_scratch *s, size_t bytes, lm_error *err);
/* cu_scratch_reserve for a buffer of counters that kernels leave at zero:
 * a new (or grown) buffer is zeroed on the context's stream */
int cu_scratch_reserve_zeroed(lm_cuda_ctx *ctx, cu_scratch *s, size_t bytes, lm_error *err);


/* ---- the activation quantizers, shared by the matmul's own kernels and the
 * ops that produce an input and quantize it on the way (cuda_ops.cu) ---- */

__device__ __forceinline__ float warp_max(float v) {
    for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
    return v;
}

__device__ __forceinline__ int warp_sum_int(int v, int width) {
    for (int off = width / 2; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

/* one q8_0 / q8_1 block of 32 by one warp, bit for bit the CPU's
 * (q8_1_quantize_ref: d = amax / 127, q = round-half-even(x * 127 / amax),
 * ds = (fp16(d), fp16(d * sum of q))); H, when not NULL, gets f16(d * q), what
 * the GEMM path takes (act_q8_to_half_kernel's bits) */
__device__ __forceinline__ void cu_quantize_q8_32_warp(const float *x, int8_t *q, float2 *ds, __half *h) {
    const int lane = threadIdx.x & 31;
    const float v = x[lane];
    const float amax = warp_max(fabsf(v));
    const float dd = amax / 127;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    const int qi = __float2int_rn(v * id);
    q[lane] = (int8_t)qi;
    const float d = __half2float(__float2half_rn(dd));
    if (h) h[lane] = __float2half_rn(d * (float)qi); /* the GEMM's f16(d * q) */
    const int total = warp_sum_int(qi, 32);
    if (lane == 0) *ds = make_float2(d, __half2float(__float2half_rn((float)total * dd)));
}

/* one q8_K super-block of 256 by one warp, lane l holding elements
 * 8l..8l+7; bit for bit q8_K_quantize_ref: the scale comes from the first
 * element of largest magnitude, with its sign. ds: 8 (d, sum of a block of
 * 32) pairs; H as for q8_32. */
__device__ __forceinline__ void cu_quantize_q8_K_warp(const float *x, int8_t *q, float2 *ds, __half *h) {
    const int lane = threadIdx.x & 31;
    const float4 *x4 = reinterpret_cast<const float4 *>(x + 8 * lane);
    const float4 v0 = x4[0], v1 = x4[1];
    const float v[8] = {v0.x, v0.y, v0.z, v0.w, v1.x, v1.y, v1.z, v1.w};
    float lane_amax = 0.0f;
    for (int i = 0; i < 8; i++) lane_amax = fmaxf(lane_amax, fabsf(v[i]));
    const float amax = warp_max(lane_amax);
    int qi[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    float scale = 0.0f;
    if (amax != 0.0f) { /* warp-uniform */
        float mine = 0.0f;
        bool has = false;
        for (int i = 0; i < 8; i++) {
            if (!has && fabsf(v[i]) == amax) {
                mine = v[i];
                has = true;
            }
        }
        const unsigned owners = __ballot_sync(0xffffffffu, has);
        const float max = __shfl_sync(0xffffffffu, mine, __ffs(owners) - 1);
        const float iscale = -127.f / max;
        for (int i = 0; i < 8; i++) qi[i] = min(__float2int_rn(iscale * v[i]), 127);
        scale = 1 / iscale;
    }
    uint32_t packed[2] = {0, 0};
    int lane_sum = 0;
    for (int i = 0; i < 8; i++) {
        packed[i / 4] |= (uint32_t)(qi[i] & 0xFF) << (8 * (i % 4));
        lane_sum += qi[i];
    }
    *reinterpret_cast<uint2 *>(q + 8 * lane) = make_uint2(packed[0], packed[1]);
    if (h) { /* the GEMM's f16(d * q) */
        __half2 hv[4];
#pragma unroll
        for (int k = 0; k < 4; k++) hv[k] = __floats2half2_rn(scale * (float)qi[2 * k], scale * (float)qi[2 * k + 1]);
        *reinterpret_cast<int4 *>(h + 8 * lane) = *reinterpret_cast<const int4 *>(hv);
    }
    const int group_sum = warp_sum_int(lane_sum, 4); /* 4 lanes per block of 32 */
    if ((lane & 3) == 0) ds[lane / 4] = make_float2(scale, (float)group_sum);
}

/* the MMQ kernel (cuda_mmq.cu) for W over the q8 activations the context
 * holds (act_q, act_ds, N_TOK tokens) into y */
int cu_mmq_launch(lm_cuda_ctx *ctx, const lm_cuda_matrix *w, int n_tok, float *y, lm_error *err);
/* 0 when W has an MMQ kernel; otherwise -1 and ERR says why */
int cu_mmq_check(const lm_cuda_matrix *w, lm_error *err);

/* Where the activations of a product with W over N_TOK tokens go, for an op
 * that computes that input and quantizes it itself (q8 kinds only: *q, *ds,
 * and *h, the f16(d * q) halves, when the product takes the GEMM path, NULL
 * when VEC; -1 for other kinds, -2 on error). After the op is queued,
 * cu_act_filled records that they hold it. */
int cu_act_buffers(lm_cuda_ctx *ctx, const lm_cuda_matrix *w, int n_tok, int8_t **q, float2 **ds, __half **h,
                   int *kind, lm_error *err);
void cu_act_filled(lm_cuda_ctx *ctx, const lm_cuda_matrix *w, int n_tok, bool with_h);

#endif
