/* cuda_ops.h - the CUDA backend's ops of the forward pass (everything but
 * the matrix products of cuda_backend.h), and the host memory and copies
 * that feed them.
 *
 * All ops work on device buffers and are queued on the context's stream
 * (asynchronous). Activations are f32, (rows, width) row-major; the K/V
 * cache is f16 in blocks of block_size positions, each layer's keys
 * (n_blocks, block_size, n_head_kv * head_dim) and values likewise. A
 * sequence's blocks are listed in its row of a block table (n_slots,
 * max_blocks) of block indices; a token names its row (its slot) and its
 * position. The numerics follow the CPU ops (backend/cpu/ops.h): norms sum
 * squares in double, RoPE builds its angles by the same float recurrence,
 * GELU rounds through f16 as the CPU's table does, attention rounds Q to
 * f16 before it meets the f16 keys. Without LAMINA_CUDA each function fails
 * with "CUDA not compiled in" (cuda_stub.c). */
#ifndef LAMINA_BACKEND_CUDA_OPS_H
#define LAMINA_BACKEND_CUDA_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/cuda/cuda_backend.h"
#include "base/logit_edit.h"

#ifdef __cplusplus
extern "C" {
#endif

/* page-locked host memory (fast, asynchronous copies); NULL on failure */
void *lm_cuda_host_alloc(lm_cuda_ctx *ctx, size_t bytes, lm_error *err);
void lm_cuda_host_free(lm_cuda_ctx *ctx, void *host);
/* queued copies on the context's stream (host memory from lm_cuda_host_alloc) */
int lm_cuda_upload_async(lm_cuda_ctx *ctx, void *dst_dev, const void *src, size_t bytes, lm_error *err);
int lm_cuda_download_async(lm_cuda_ctx *ctx, void *dst, const void *src_dev, size_t bytes, lm_error *err);
/* A captured sequence of the context's stream work (a CUDA graph), replayed
 * with one launch. Capture: lm_cuda_capture_begin, the ops, then
 * lm_cuda_capture_end. Nothing may allocate device memory in between (the
 * ops' scratch must already be large enough: run the same work once
 * uncaptured first), and a graph reads the buffers it was captured with:
 * when lm_cuda_scratch_epoch() changes (a scratch buffer moved), graphs
 * captured before are stale and must be freed. */
typedef struct lm_cuda_graph lm_cuda_graph;
int lm_cuda_capture_begin(lm_cuda_ctx *ctx, lm_error *err);
lm_cuda_graph *lm_cuda_capture_end(lm_cuda_ctx *ctx, lm_error *err);
int lm_cuda_graph_launch(lm_cuda_ctx *ctx, lm_cuda_graph *g, lm_error *err);
void lm_cuda_graph_free(lm_cuda_graph *g);
uint64_t lm_cuda_scratch_epoch(void);

/* Profiling (LAMINA_CUDA_PROFILE=1 in the forward pass): lm_cuda_mark
 * records an event on the stream under LABEL (a string literal); at each
 * lm_cuda_marks_collect (after a sync) the time between consecutive marks
 * is added to the later mark's label; lm_cuda_marks_print writes the totals
 * to stderr. Without marks it costs nothing. */
void lm_cuda_mark(lm_cuda_ctx *ctx, const char *label);
void lm_cuda_marks_collect(lm_cuda_ctx *ctx);
void lm_cuda_marks_print(lm_cuda_ctx *ctx);

/* free and total memory of the context's device, bytes */
int lm_cuda_mem_info(lm_cuda_ctx *ctx, size_t *free_bytes, size_t *total_bytes, lm_error *err);

/* y[r] = x[rows ? rows[r] : r] / rms * w for r < n_rows, rows of dim floats */
int lm_cuda_rmsnorm(lm_cuda_ctx *ctx, float *y, const float *x, const int32_t *rows, const float *w, int n_rows,
                    int dim, float eps, lm_error *err);

/* Per row: h = rmsnorm(h) * post_w if post_w; x += h; then, if next_w,
 * xb = rmsnorm(x) * next_w (the residual connection and the next norm). */
int lm_cuda_residual(lm_cuda_ctx *ctx, float *x, float *h, const float *post_w, float *xb, const float *next_w,
                     int n_rows, int dim, float eps, lm_error *err);

/* lm_cuda_residual, and when NEXT (the first matrix to read xb) takes q8
 * activations, xb is quantized for it in the same kernel (bit for bit what
 * its product would do; with the f16(d * q) halves too when n_rows tokens
 * take the GEMM path): *fused is then true and lm_cuda_matmul_again(NEXT
 * ...) follows without a pass of its own. */
int lm_cuda_residual_for(lm_cuda_ctx *ctx, float *x, float *h, const float *post_w, float *xb, const float *next_w,
                         int n_rows, int dim, float eps, const lm_cuda_matrix *next, bool *fused, lm_error *err);

/* out = act(g) * u over (n_rows, n): SiLU, or GELU (tanh form, through f16).
 * Row r of g (u) starts at g + r * ld (u + r * ld); out is (n_rows, n).
 * out may be g when ld == n. */
int lm_cuda_act_mul(lm_cuda_ctx *ctx, float *out, const float *g, const float *u, int n_rows, int n, int ld, bool gelu,
                    lm_error *err);

/* lm_cuda_act_mul, and when NEXT (the product that reads out) takes q8
 * activations, out quantized for it in the same kernel, as
 * lm_cuda_residual_for does: *fused is then true and
 * lm_cuda_matmul_again(NEXT ...) follows. */
int lm_cuda_act_mul_for(lm_cuda_ctx *ctx, float *out, const float *g, const float *u, int n_rows, int n, int ld,
                        bool gelu, const lm_cuda_matrix *next, bool *fused, lm_error *err);

/* out[r] = the index of the largest of row r of x (n_rows, n), the first
 * one on ties (as lm_argmax) */
int lm_cuda_argmax(lm_cuda_ctx *ctx, const float *x, int n_rows, int n, int32_t *out, lm_error *err);

/* The K largest of each row of x (n_rows, n), K <= LM_CUDA_TOP_K_MAX, in the
 * CPU sampler's order: by value descending, ties by the lower index; NaN
 * never taken. ids and vals: (n_rows, K). */
#define LM_CUDA_TOP_K_MAX 64
int lm_cuda_top_k(lm_cuda_ctx *ctx, const float *x, int n_rows, int n, int k, int32_t *ids, float *vals, lm_error *err);

/* out[r] = log of the sum of e^x over row r of x (n_rows, n): max +
 * log(sum of e^(x - max)), the sum in double; the log-softmax of an entry
 * is then x - out[r] */
int lm_cuda_log_z(lm_cuda_ctx *ctx, const float *x, int n_rows, int n, float *out, lm_error *err);

/* Applies row r's edits, edits[offsets[r] .. offsets[r + 1]), to row r of
 * x (n_rows, n), with the bits of lm_logit_edits_apply (base/logit_edit.h);
 * offsets (n_rows + 1) and edits on the device, every token < n. */
int lm_cuda_logit_edits(lm_cuda_ctx *ctx, float *x, int n_rows, int n, const int32_t *offsets,
                        const lm_logit_edit *edits, lm_error *err);

/* x = cap * tanh(x / cap) over n floats */
int lm_cuda_softcap(lm_cuda_ctx *ctx, float *x, size_t n, float cap, lm_error *err);

/* where one layer's keys and values live, and how tokens find them */
typedef struct lm_cuda_kv_layer {
    uint16_t *k, *v;        /* the layer's pools of f16, (n_blocks, block_size, n_head_kv * head_dim) */
    const int32_t *tables;  /* (n_slots, max_blocks) block indices */
    int max_blocks;
    int block_size;
} lm_cuda_kv_layer;

typedef struct lm_cuda_qkv {
    const float *q, *k, *v;           /* token t's heads at q + t * ld (ld = the row stride below) */
    int ld_q, ld_k, ld_v;             /* floats from one token's q (k, v) to the next's */
    float *q_out;                     /* (T, n_head * hd): q after norm and RoPE */
    const float *bq, *bk, *bv;        /* biases or NULL */
    const float *q_norm, *k_norm;     /* per-head RMSNorm weights (hd) or NULL */
    const int32_t *pos, *slot;        /* (T) */
    int n_tokens, n_head, n_head_kv, head_dim, head_dim_v, n_rot;
    float eps, rope_base, rope_scale;
    bool neox;
    const float *freq_factors;        /* (n_rot / 2) or NULL */
} lm_cuda_qkv;

/* Biases, QK norm and RoPE of q (into q_out) and k, then k and v stored as
 * f16 at each token's (slot, position) in the layer's cache. q, k and v may
 * be column ranges of one fused QKV product (strides ld_*). */
int lm_cuda_qkv_store(lm_cuda_ctx *ctx, const lm_cuda_qkv *a, const lm_cuda_kv_layer *kv, lm_error *err);

typedef struct lm_cuda_attn {
    float *out;                       /* (T, n_head * hd) */
    const float *q;                   /* (T, n_head * hd) */
    const int32_t *pos, *slot;        /* (T), device */
    int max_keys;                     /* most positions a token may attend to (the context, or the window) */
    int n_tokens, n_head, n_head_kv, head_dim;
    int window;                       /* sliding window (tokens), 0 = none */
    float scale, softcap;
    float *scratch;                   /* lm_cuda_attn_scratch_bytes(head_dim) on the device */
} lm_cuda_attn;

/* device scratch the attention needs for its split passes over long contexts */
size_t lm_cuda_attn_scratch_bytes(int head_dim);

/* largest head size the attention kernel takes (head_dim == head_dim_v, a
 * multiple of 32) */
#define LM_CUDA_MAX_HEAD_DIM 256

/* causal attention of every token over its sequence's positions 0..pos
 * (the last WINDOW of them on sliding-window layers), paged K/V */
int lm_cuda_attention(lm_cuda_ctx *ctx, const lm_cuda_attn *a, const lm_cuda_kv_layer *kv, lm_error *err);

#ifdef __cplusplus
}
#endif

#endif
