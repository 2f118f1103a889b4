/* cuda_stub.c - the CUDA backend's functions in a build without CUDA: each
 * fails with one message, so callers need no #ifdefs. With LAMINA_CUDA the
 * .cu files of this directory define them instead and this file is empty.
 * (The build has -Wno-unused-parameter.) */
#ifndef LAMINA_CUDA

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_ops.h"

#define NOT_COMPILED "CUDA not compiled in (configure with -DLAMINA_CUDA=ON)"

bool lm_cuda_compiled(void) { return false; }

int lm_cuda_device_count(int *count, lm_error *err) {
    if (count) *count = 0;
    lm_error_set(err, NOT_COMPILED);
    return -1;
}

int lm_cuda_device_query(int device, lm_cuda_device_info *info, lm_error *err) {
    lm_error_set(err, NOT_COMPILED);
    return -1;
}

lm_cuda_ctx *lm_cuda_ctx_create(int device, lm_error *err) {
    lm_error_set(err, NOT_COMPILED);
    return NULL;
}

void lm_cuda_ctx_free(lm_cuda_ctx *ctx) {}

int lm_cuda_sync(lm_cuda_ctx *ctx, lm_error *err) {
    lm_error_set(err, NOT_COMPILED);
    return -1;
}

void *lm_cuda_stream(lm_cuda_ctx *ctx) {
    return NULL;
}

void *lm_cuda_alloc(lm_cuda_ctx *ctx, size_t bytes, lm_error *err) {
    lm_error_set(err, NOT_COMPILED);
    return NULL;
}

void lm_cuda_free(lm_cuda_ctx *ctx, void *dev) {
}

int lm_cuda_upload(lm_cuda_ctx *ctx, void *dst_dev, const void *src, size_t bytes, lm_error *err) {
    lm_error_set(err, NOT_COMPILED);
    return -1;
}

int lm_cuda_download(lm_cuda_ctx *ctx, void *dst, const void *src_dev, size_t bytes, lm_error *err) {
    lm_error_set(err, NOT_COMPILED);
    return -1;
}

bool lm_cuda_type_supported(uint32_t type) {
    return false;
}

lm_cuda_matrix *lm_cuda_matrix_upload(lm_cuda_ctx *ctx, uint32_t type, int64_t rows, int64_t cols, const void *data,
                                      lm_error *err) {
    lm_error_set(err, NOT_COMPILED);
    return NULL;
}

lm_cuda_matrix *lm_cuda_matrix_clone(lm_cuda_ctx *ctx, const lm_cuda_matrix *m, lm_error *err) {
    lm_error_set(err, NOT_COMPILED);
    return NULL;
}

void lm_cuda_matrix_free(lm_cuda_matrix *m) {}

size_t lm_cuda_matrix_bytes(const lm_cuda_matrix *m) {
    return 0;
}

int lm_cuda_matrix_keep_f16(lm_cuda_ctx *ctx, lm_cuda_matrix *m, lm_error *err) {
    lm_error_set(err, NOT_COMPILED);
    return -1;
}

size_t lm_cuda_matrix_f16_bytes(const lm_cuda_matrix *m) {
    return 0;
}

bool lm_cuda_same_activations(const lm_cuda_matrix *a, const lm_cuda_matrix *b) {
    return false;
}

int lm_cuda_vec_max_tokens(const lm_cuda_matrix *w) {
    return 0;
}

bool lm_cuda_mmq_supported(const lm_cuda_matrix *w) {
    return false;
}

lm_cuda_path lm_cuda_path_for(const lm_cuda_matrix *w, int n_tokens) {
    return LM_CUDA_PATH_GEMM;
}

int lm_cuda_matmul(lm_cuda_ctx *ctx, const lm_cuda_matrix *w, const float *x_dev, int n_tokens, float *y_dev,
                   lm_cuda_path path, lm_error *err) {
    lm_error_set(err, NOT_COMPILED);
    return -1;
}

int lm_cuda_matmul_again(lm_cuda_ctx *ctx, const lm_cuda_matrix *w, int n_tokens, float *y_dev, lm_error *err) {
    lm_error_set(err, NOT_COMPILED);
    return -1;
}

int lm_cuda_matmul_reuse_act(lm_cuda_ctx *ctx, const lm_cuda_matrix *w, int n_tokens, float *y_dev, lm_error *err) {
    lm_error_set(err, NOT_COMPILED);
    return -1;
}

bool lm_cuda_batch_invariant(const lm_cuda_ctx *ctx) {
    (void)ctx;
    return true;
}

void lm_cuda_set_batch_invariant(lm_cuda_ctx *ctx, bool on) {
    (void)ctx;
    (void)on;
}

int lm_cuda_get_rows(lm_cuda_ctx *ctx, const lm_cuda_matrix *w, const int32_t *ids_dev, int n, float scale,
                     float *out_dev, lm_error *err) {
    lm_error_set(err, NOT_COMPILED);
    return -1;
}

int lm_cuda_set_vec_shape(lm_cuda_ctx *ctx, int threads_per_row, int rows_per_thread, lm_error *err) {
    lm_error_set(err, NOT_COMPILED);
    return -1;
}

int lm_cuda_set_mmq_shape(lm_cuda_ctx *ctx, int shape, lm_error *err) {
    lm_error_set(err, NOT_COMPILED);
    return -1;
}

/* ---- cuda_ops.h ---- */

void *lm_cuda_host_alloc(lm_cuda_ctx *ctx, size_t bytes, lm_error *err) {
    lm_error_set(err, NOT_COMPILED);
    return NULL;
}

void lm_cuda_host_free(lm_cuda_ctx *ctx, void *host) {}

int lm_cuda_upload_async(lm_cuda_ctx *ctx, void *dst_dev, const void *src, size_t bytes, lm_error *err) {
    lm_error_set(err, NOT_COMPILED);
    return -1;
}

int lm_cuda_download_async(lm_cuda_ctx *ctx, void *dst, const void *src_dev, size_t bytes, lm_error *err) {
    lm_error_set(err, NOT_COMPILED);
    return -1;
}

int lm_cuda_capture_begin(lm_cuda_ctx *ctx, lm_error *err) {
    lm_error_set(err, NOT_COMPILED);
    return -1;
}

lm_cuda_graph *lm_cuda_capture_end(lm_cuda_ctx *ctx, lm_error *err) {
    lm_error_set(err, NOT_COMPILED);
    return NULL;
}

int lm_cuda_graph_launch(lm_cuda_ctx *ctx, lm_cuda_graph *g, lm_error *err) {
    lm_error_set(err, NOT_COMPILED);
    return -1;
}

void lm_cuda_graph_free(lm_cuda_graph *g) {}

uint64_t lm_cuda_scratch_epoch(void) {
    return 0;
}

void lm_cuda_mark(lm_cuda_ctx *ctx, const char *label) {}

void lm_cuda_marks_collect(lm_cuda_ctx *ctx) {}

void lm_cuda_marks_print(lm_cuda_ctx *ctx) {}

int lm_cuda_mem_info(lm_cuda_ctx *ctx, size_t *free_bytes, size_t *total_bytes, lm_error *err) {
    lm_error_set(err, NOT_COMPILED);
    return -1;
}

int lm_cuda_rmsnorm(lm_cuda_ctx *ctx, float *y, const float *x, const int32_t *rows, const float *w, int n_rows,
                    int dim, float eps, lm_error *err) {
    lm_error_set(err, NOT_COMPILED);
    return -1;
}

int lm_cuda_residual(lm_cuda_ctx *ctx, float *x, float *h, const float *post_w, float *xb, const float *next_w,
                     int n_rows, int dim, float eps, lm_error *err) {
    lm_error_set(err, NOT_COMPILED);
    return -1;
}

int lm_cuda_residual_for(lm_cuda_ctx *ctx, float *x, float *h, const float *post_w, float *xb, const float *next_w,
                         int n_rows, int dim, float eps, const lm_cuda_matrix *next, bool *fused, lm_error *err) {
    lm_error_set(err, NOT_COMPILED);
    return -1;
}

int lm_cuda_act_mul(lm_cuda_ctx *ctx, float *out, const float *g, const float *u, int n_rows, int n, int ld, bool gelu,
                    lm_error *err) {
    lm_error_set(err, NOT_COMPILED);
    return -1;
}

int lm_cuda_act_mul_for(lm_cuda_ctx *ctx, float *out, const float *g, const float *u, int n_rows, int n, int ld,
                        bool gelu, const lm_cuda_matrix *next, bool *fused, lm_error *err) {
    lm_error_set(err, NOT_COMPILED);
    return -1;
}

int lm_cuda_argmax(lm_cuda_ctx *ctx, const float *x, int n_rows, int n, int32_t *out, lm_error *err) {
    lm_error_set(err, NOT_COMPILED);
    return -1;
}

int lm_cuda_log_z(lm_cuda_ctx *ctx, const float *x, int n_rows, int n, float *out, lm_error *err) {
    lm_error_set(err, NOT_COMPILED);
    return -1;
}

int lm_cuda_top_k(lm_cuda_ctx *ctx, const float *x, int n_rows, int n, int k, int32_t *ids, float *vals, lm_error *err) {
    lm_error_set(err, NOT_COMPILED);
    return -1;
}

int lm_cuda_logit_edits(lm_cuda_ctx *ctx, float *x, int n_rows, int n, const int32_t *offsets,
                        const lm_logit_edit *edits, lm_error *err) {
    lm_error_set(err, NOT_COMPILED);
    return -1;
}

int lm_cuda_softcap(lm_cuda_ctx *ctx, float *x, size_t n, float cap, lm_error *err) {
    lm_error_set(err, NOT_COMPILED);
    return -1;
}

int lm_cuda_qkv_store(lm_cuda_ctx *ctx, const lm_cuda_qkv *a, const lm_cuda_kv_layer *kv, lm_error *err) {
    lm_error_set(err, NOT_COMPILED);
    return -1;
}

size_t lm_cuda_attn_scratch_bytes(int head_dim) {
    return 0;
}

int lm_cuda_attention(lm_cuda_ctx *ctx, const lm_cuda_attn *a, const lm_cuda_kv_layer *kv, lm_error *err) {
    lm_error_set(err, NOT_COMPILED);
    return -1;
}

#endif
