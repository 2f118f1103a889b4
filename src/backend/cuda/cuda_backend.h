/* cuda_backend.h - the CUDA backend's C interface: devices, device memory,
 * quantized weight matrices on the GPU and y = W x over a batch of tokens.
 *
 * Plain C, callable whether or not CUDA is compiled in: without LAMINA_CUDA
 * every function exists (cuda_stub.c) and fails with "CUDA not compiled in",
 * so callers need no #ifdefs. With it, every CUDA call is checked and a
 * failure fills the lm_error with the call, the file:line and CUDA's own
 * name and text for the error; every kernel launch is followed by
 * cudaGetLastError.
 *
 * Weights: lm_cuda_matrix_upload takes a matrix in GGUF layout (rows rows
 * of q_row_size(type, cols) bytes, ggml's blocks) and keeps it on the
 * device repacked into two planes per matrix (docs/cuda.md): the quant bits
 * of every block, 16-byte aligned so each thread streams them with 16-byte
 * loads, and the block scales. Nothing on the host refers to it afterwards.
 *
 * Products: lm_cuda_matmul computes y (n_tokens, rows) = x (n_tokens, cols)
 * times W^T, f32 in and out, on the context's stream (asynchronous: call
 * lm_cuda_sync before reading y on the host). Two methods:
 *   LM_CUDA_PATH_VEC   the activations are quantized once per call exactly
 *                      as the CPU kernels quantize them (q8_0 / q8_1 blocks
 *                      of 32, q8_K blocks of 256, f16, bf16), then each
 *                      weight row is dotted with them in integer arithmetic
 *                      (dp4a; f16 / bf16: f32 products, exact): the same
 *                      integer sums as the CPU's dot, so results agree with
 *                      it up to the order of float additions. Reads the
 *                      weights once per 8 tokens: the decode path.
 *   LM_CUDA_PATH_GEMM  W is dequantized to f16 into scratch and x rounded to
 *                      f16 (bf16 weights: W as it is, x rounded to bf16),
 *                      then cuBLAS multiplies them on the tensor cores with
 *                      f32 accumulation: the path for larger batches.
 *   LM_CUDA_PATH_MMQ   the activations quantized as for VEC, then the int8
 *                      tensor cores multiply them with the quantized weights
 *                      as they are stored (q4_0, q8_0, q4_K, q5_K, q6_K with
 *                      a multiple of 256 columns: lm_cuda_mmq_supported): the
 *                      VEC path's integer sums, scaled per block or super-block;
 *                      one pass over the weights per 16 or 32 tokens: batches.
 *   LM_CUDA_PATH_AUTO  lm_cuda_path_for(w, n_tokens).
 *
 * Threads: a context belongs to one thread at a time. Matrices and device
 * buffers belong to the context they were made with and must be freed
 * before it. */
#ifndef LAMINA_BACKEND_CUDA_BACKEND_H
#define LAMINA_BACKEND_CUDA_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "base/error.h"

/* true when this build has the CUDA backend (LAMINA_CUDA=ON) */
bool lm_cuda_compiled(void);

typedef struct lm_cuda_device_info {
    char name[256];
    int major, minor;   /* compute capability */
    int sm_count;       /* streaming multiprocessors */
    size_t total_mem;   /* bytes */
    size_t free_mem;    /* bytes, at the time of the query */
    int l2_bytes;       /* L2 cache, bytes */
    int mem_bus_bits;   /* memory bus width, bits */
} lm_cuda_device_info;

/* number of CUDA devices (0 when the driver sees none; that is no error) */
int lm_cuda_device_count(int *count, lm_error *err);
int lm_cuda_device_query(int device, lm_cuda_device_info *info, lm_error *err);

/* A device, a stream, a cuBLAS handle and the per-call scratch (grown on
 * demand, kept until the context is freed). */
typedef struct lm_cuda_ctx lm_cuda_ctx;

/* NULL on failure (no device, compute capability below 8.0, ...) */
lm_cuda_ctx *lm_cuda_ctx_create(int device, lm_error *err);
void lm_cuda_ctx_free(lm_cuda_ctx *ctx);
/* waits for everything queued on the context's stream */
int lm_cuda_sync(lm_cuda_ctx *ctx, lm_error *err);
/* the context's cudaStream_t, as a pointer (for callers that time or
 * capture it with the CUDA runtime themselves) */
void *lm_cuda_stream(lm_cuda_ctx *ctx);

/* Device memory of the context's device. alloc: NULL on failure; free(NULL)
 * is a no-op. upload / download are synchronous. */
void *lm_cuda_alloc(lm_cuda_ctx *ctx, size_t bytes, lm_error *err);
void lm_cuda_free(lm_cuda_ctx *ctx, void *dev);
int lm_cuda_upload(lm_cuda_ctx *ctx, void *dst_dev, const void *src, size_t bytes, lm_error *err);
int lm_cuda_download(lm_cuda_ctx *ctx, void *dst, const void *src_dev, size_t bytes, lm_error *err);

/* A weight matrix on the device. */
typedef struct lm_cuda_matrix lm_cuda_matrix;

/* the weight types lm_cuda_matrix_upload takes: q4_0, q4_1, q5_0, q5_1,
 * q8_0, q4_K, q5_K, q6_K, f16, bf16 */
bool lm_cuda_type_supported(uint32_t type);

/* DATA: ROWS rows of q_row_size(TYPE, COLS) bytes, GGUF layout. COLS must
 * be a multiple of the type's block (32 or 256; 32 for f16 and bf16).
 * Returns NULL on failure. Freed with lm_cuda_matrix_free. */
lm_cuda_matrix *lm_cuda_matrix_upload(lm_cuda_ctx *ctx, uint32_t type, int64_t rows, int64_t cols, const void *data,
                                      lm_error *err);
/* a device-side copy of M (for benchmarks that must not time the L2) */
lm_cuda_matrix *lm_cuda_matrix_clone(lm_cuda_ctx *ctx, const lm_cuda_matrix *m, lm_error *err);
void lm_cuda_matrix_free(lm_cuda_matrix *m);
/* bytes M takes on the device (its kept f16 copy included) */
size_t lm_cuda_matrix_bytes(const lm_cuda_matrix *m);

/* Keeps a dequantized f16 copy of M on the device (rows x cols x 2 bytes)
 * that the GEMM path reads instead of dequantizing M on every call: the
 * same numbers, one pass over f16 weights per batch. No-op for f16 and
 * bf16 matrices, which the GEMM reads as they are. */
int lm_cuda_matrix_keep_f16(lm_cuda_ctx *ctx, lm_cuda_matrix *m, lm_error *err);
/* bytes that copy would take (0 for f16 / bf16 matrices) */
size_t lm_cuda_matrix_f16_bytes(const lm_cuda_matrix *m);

/* true when a VEC product with B can reuse the activations a VEC product
 * with A prepared from the same x (lm_cuda_matmul_reuse_act) */
bool lm_cuda_same_activations(const lm_cuda_matrix *a, const lm_cuda_matrix *b);

typedef enum lm_cuda_path {
    LM_CUDA_PATH_AUTO = 0,
    LM_CUDA_PATH_VEC = 1,
    LM_CUDA_PATH_GEMM = 2,
    LM_CUDA_PATH_MMQ = 3,
} lm_cuda_path;

/* the largest batch LM_CUDA_PATH_AUTO sends to the VEC path for W (all of
 * them on a batch-invariant context) */
int lm_cuda_vec_max_tokens(const lm_cuda_matrix *w);
/* true when W has an MMQ kernel */
bool lm_cuda_mmq_supported(const lm_cuda_matrix *w);
/* the path LM_CUDA_PATH_AUTO takes for W and N_TOKENS: VEC up to
 * lm_cuda_vec_max_tokens, then MMQ where W has it, up to 16, 32 or 64
 * tokens by W's size and whether it keeps an f16 copy (LAMINA_CUDA_MMQ_MAX:
 * another bound, 0 turns MMQ off; never on a batch-invariant context),
 * then GEMM */
lm_cuda_path lm_cuda_path_for(const lm_cuda_matrix *w, int n_tokens);

/* Batch invariance (off on a new context): every product takes the VEC
 * path, whose kernels sum each output in an order set by the matrix alone
 * (threads per row group from its shape; a unit's dot rounded step by
 * step), so a token's result is the same bits alone, in any batch, at any
 * place in it. Off, batches of more than lm_cuda_vec_max_tokens tokens go
 * to the tensor-core GEMM: faster prefill and large batches, results that
 * follow the batch's size. */
bool lm_cuda_batch_invariant(const lm_cuda_ctx *ctx);
void lm_cuda_set_batch_invariant(lm_cuda_ctx *ctx, bool on);

/* out_dev[i] = row ids_dev[i] of W as floats (n rows of cols), each element
 * the CPU's dequantized value (op_get_row's bits), times SCALE when it is
 * not 1: the token embeddings looked up on the device */
int lm_cuda_get_rows(lm_cuda_ctx *ctx, const lm_cuda_matrix *w, const int32_t *ids_dev, int n, float scale,
                     float *out_dev, lm_error *err);

/* y_dev (n_tokens, rows) f32 = x_dev (n_tokens, cols) f32 times W^T, both
 * contiguous device buffers; asynchronous on the context's stream. */
int lm_cuda_matmul(lm_cuda_ctx *ctx, const lm_cuda_matrix *w, const float *x_dev, int n_tokens, float *y_dev,
                   lm_cuda_path path, lm_error *err);

/* As lm_cuda_matmul by the VEC path, with the activations the last VEC
 * product on this context prepared (same x: it must have had n_tokens
 * tokens of w's column count and activation kind, else this fails): for
 * matrices that multiply one input (Q, K, V; gate, up), and to time the
 * kernel alone. */
int lm_cuda_matmul_reuse_act(lm_cuda_ctx *ctx, const lm_cuda_matrix *w, int n_tokens, float *y_dev, lm_error *err);

/* As lm_cuda_matmul (AUTO path) with the activations the last product on
 * this context prepared from the same x, by either path (same column count
 * and activation kind: lm_cuda_same_activations): Q, K and V, or gate and
 * up, quantize (and for the GEMM path convert) their input once. */
int lm_cuda_matmul_again(lm_cuda_ctx *ctx, const lm_cuda_matrix *w, int n_tokens, float *y_dev, lm_error *err);

/* Benchmark knobs of the VEC kernels: threads that share a row group (16,
 * 32 or 128) and rows per thread (1, 2 or 4); 0 for the built-in choice.
 * The rows per thread change no bit of a result; the threads per row
 * group set the order of its sums. */
int lm_cuda_set_vec_shape(lm_cuda_ctx *ctx, int threads_per_row, int rows_per_thread, lm_error *err);

/* Benchmark knob of the MMQ kernels: 0 for the built-in row tiling, 1, 2, 3
 * for blocks of 64 rows, 32 rows x 2 slices of the row, 16 rows x 4 slices.
 * The slices change the order of a row's float sums. */
int lm_cuda_set_mmq_shape(lm_cuda_ctx *ctx, int shape, lm_error *err);

#ifdef __cplusplus
}
#endif

#endif
