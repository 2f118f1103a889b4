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
    cu_scratch act_q, act_ds, act_h, w_h;
    /* what act_q / act_ds / act_h hold: the last VEC product's activations */
    int act_kind; /* cu_act_kind, -1: nothing */
    int64_t act_cols;
    int act_tokens;
    bool act_h_ready; /* act_h holds the same x as the GEMM path takes it (f16(d * q) for the q8 kinds) */
};

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

#endif
