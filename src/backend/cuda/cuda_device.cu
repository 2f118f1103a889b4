/* cuda_device.cu - devices, contexts, device memory, and weight matrices
 * (upload with the repack of cuda_layout.cuh). Host code only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_internal.cuh"
#include "backend/cuda/cuda_ops.h"

extern "C" {
#include "backend/cpu/quant_blocks.h"
#include "base/dtype.h"
}

#define MIN_MAJOR 8                    /* compute capability 8.0: Ampere and later */
#define BLAS_WORKSPACE (32u << 20)     /* bytes */

/* ---- errors ---- */

int cu_fail(lm_error *err, const char *call, cudaError_t e, const char *file, int line) {
    lm_error_set(err, "CUDA: %s failed: %s (%s) [%s:%d]", call, cudaGetErrorString(e), cudaGetErrorName(e), file,
                 line);
    return -1;
}

int cublas_fail(lm_error *err, const char *call, cublasStatus_t s, const char *file, int line) {
    lm_error_set(err, "cuBLAS: %s failed: %s (%s) [%s:%d]", call, cublasGetStatusString(s), cublasGetStatusName(s),
                 file, line);
    return -1;
}

/* ---- the types ---- */

#define LAYOUT(T, lm, nm)                                                                                            \
    {lm, cu_traits<T>::qk, cu_traits<T>::units, cu_traits<T>::body, cu_traits<T>::hdr, cu_traits<T>::act, nm}

static const cu_layout LAYOUTS[CU_TYPE_COUNT] = {
    LAYOUT(CU_Q4_0, LM_Q4_0, "q4_0"), LAYOUT(CU_Q4_1, LM_Q4_1, "q4_1"), LAYOUT(CU_Q5_0, LM_Q5_0, "q5_0"),
    LAYOUT(CU_Q5_1, LM_Q5_1, "q5_1"), LAYOUT(CU_Q8_0, LM_Q8_0, "q8_0"), LAYOUT(CU_Q4_K, LM_Q4_K, "q4_K"),
    LAYOUT(CU_Q5_K, LM_Q5_K, "q5_K"), LAYOUT(CU_Q6_K, LM_Q6_K, "q6_K"), LAYOUT(CU_F16, LM_F16, "f16"),
    LAYOUT(CU_BF16, LM_BF16, "bf16"),
};

const cu_layout *cu_layout_of(uint32_t type, int *index) {
    for (int i = 0; i < CU_TYPE_COUNT; i++) {
        if (LAYOUTS[i].lm_type == type) {
            if (index) *index = i;
            return &LAYOUTS[i];
        }
    }
    return NULL;
}

size_t cu_body_bytes(const cu_layout *l, int64_t rows, int64_t cols) {
    return (size_t)rows * (size_t)(cols / l->qk) * (size_t)l->body;
}

size_t cu_hdr_bytes(const cu_layout *l, int64_t rows, int64_t cols) {
    return (size_t)rows * (size_t)(cols / l->qk) * (size_t)l->hdr;
}

/* ---- repack: GGUF blocks -> body + hdr planes ---- */

/* q5_0 / q5_1 (qh bit j: bit 4 of element j; runs 0 and 1 are elements
 * 0..15 and 16..31): bit 4 of element i of run 0 at 8 (i & 3) + (i >> 2), of
 * run 1 four bits higher, as one unit of q5_K */
static void repack_q5_qh(const uint8_t qh_bytes[4], uint8_t out[4]) {
    uint32_t qh, w = 0;
    memcpy(&qh, qh_bytes, 4);
    for (int i = 0; i < 16; i++) {
        const int pos = 8 * (i & 3) + (i >> 2);
        w |= ((qh >> i) & 1) << pos;
        w |= ((qh >> (16 + i)) & 1) << (pos + 4);
    }
    memcpy(out, &w, 4);
}

/* q5_K: for unit s, bit 4 of element i of run 0 at 8 (i & 3) + (i >> 2), of run 1 four bits higher */
static void repack_q5_K_qh(const uint8_t qh[QK_K / 8], uint8_t out[32]) {
    for (int s = 0; s < 8; s++) {
        const int j = s >> 1, l0 = 16 * (s & 1);
        uint32_t w = 0;
        for (int i = 0; i < 16; i++) {
            const int pos = 8 * (i & 3) + (i >> 2);
            w |= (uint32_t)((qh[l0 + i] >> (2 * j)) & 1) << pos;
            w |= (uint32_t)((qh[l0 + i] >> (2 * j + 1)) & 1) << (pos + 4);
        }
        memcpy(out + 4 * s, &w, 4);
    }
}

/* q6_K: for unit s (half h, column c), bits 4-5 of element i of each run at 8 (i & 3) + 2 (i >> 2).
 * ql byte p (0..63 in a half) holds element p (low nibble) and 64 + p (high);
 * their top bits sit in qh[p & 31] at bits 0-1 / 4-5 (p < 32) or 2-3 / 6-7. */
static void repack_q6_K_qh(const uint8_t qh[QK_K / 4], uint8_t out[64]) {
    for (int s = 0; s < 8; s++) {
        const int half = s >> 2, c = s & 3;
        uint32_t lo = 0, hi = 0;
        for (int i = 0; i < 16; i++) {
            const int p = 16 * c + i, shift = p < 32 ? 0 : 2;
            const uint8_t h = qh[32 * half + (p & 31)];
            const int pos = 8 * (i & 3) + 2 * (i >> 2);
            lo |= (uint32_t)((h >> shift) & 3) << pos;
            hi |= (uint32_t)((h >> (shift + 4)) & 3) << pos;
        }
        memcpy(out + 8 * s, &lo, 4);
        memcpy(out + 8 * s + 4, &hi, 4);
    }
}

static void repack_block(uint32_t type, const uint8_t *src, uint8_t *body, uint8_t *hdr) {
    switch (type) {
    case LM_Q4_0: {
        const block_q4_0 *b = (const block_q4_0 *)src;
        memcpy(body, b->qs, 16);
        memcpy(hdr, &b->d, 2);
        break;
    }
    case LM_Q4_1: {
        const block_q4_1 *b = (const block_q4_1 *)src;
        memcpy(body, b->qs, 16);
        memcpy(hdr, &b->d, 2);
        memcpy(hdr + 2, &b->m, 2);
        break;
    }
    case LM_Q5_0: {
        const block_q5_0 *b = (const block_q5_0 *)src;
        memcpy(body, b->qs, 16);
        memcpy(hdr, &b->d, 2);
        memset(hdr + 2, 0, 2);
        repack_q5_qh(b->qh, hdr + 4);
        break;
    }
    case LM_Q5_1: {
        const block_q5_1 *b = (const block_q5_1 *)src;
        memcpy(body, b->qs, 16);
        memcpy(hdr, &b->d, 2);
        memcpy(hdr + 2, &b->m, 2);
        repack_q5_qh(b->qh, hdr + 4);
        break;
    }
    case LM_Q8_0: {
        const block_q8_0 *b = (const block_q8_0 *)src;
        memcpy(body, b->qs, 32);
        memcpy(hdr, &b->d, 2);
        break;
    }
    case LM_Q4_K: {
        const block_q4_K *b = (const block_q4_K *)src;
        memcpy(body, b->qs, 128);
        memcpy(hdr, &b->d, 2);
        memcpy(hdr + 2, &b->dmin, 2);
        memcpy(hdr + 4, b->scales, K_SCALE_SIZE);
        break;
    }
    case LM_Q5_K: {
        const block_q5_K *b = (const block_q5_K *)src;
        memcpy(body, b->qs, 128);
        memcpy(hdr, &b->d, 2);
        memcpy(hdr + 2, &b->dmin, 2);
        memcpy(hdr + 4, b->scales, K_SCALE_SIZE);
        repack_q5_K_qh(b->qh, hdr + 16);
        break;
    }
    case LM_Q6_K: {
        const block_q6_K *b = (const block_q6_K *)src;
        memcpy(body, b->ql, 128);
        memcpy(hdr, &b->d, 2);
        memset(hdr + 2, 0, 2);
        memcpy(hdr + 4, b->scales, 16);
        repack_q6_K_qh(b->qh, hdr + 20);
        break;
    }
    default: break;
    }
}

void cu_repack(const cu_layout *l, const void *src, int64_t rows, int64_t cols, uint8_t *body, uint8_t *hdr) {
    const uint8_t *s = (const uint8_t *)src;
    if (l->lm_type == LM_F16 || l->lm_type == LM_BF16) { /* 2 bytes an element, stored as they are */
        memcpy(body, s, (size_t)rows * (size_t)cols * 2);
        return;
    }
    const int64_t n = rows * (cols / l->qk);
    const size_t block_bytes = lm_dtype_type_size(l->lm_type);
    for (int64_t i = 0; i < n; i++)
        repack_block(l->lm_type, s + (size_t)i * block_bytes, body + (size_t)i * l->body, hdr + (size_t)i * l->hdr);
}

/* ---- devices ---- */

extern "C" bool lm_cuda_compiled(void) { return true; }

extern "C" int lm_cuda_device_count(int *count, lm_error *err) {
    *count = 0;
    const cudaError_t e = cudaGetDeviceCount(count);
    if (e == cudaErrorNoDevice) { /* a driver without devices: zero, not an error */
        cudaGetLastError();
        *count = 0;
        return 0;
    }
    if (e != cudaSuccess) return cu_fail(err, "cudaGetDeviceCount(count)", e, __FILE__, __LINE__);
    return 0;
}

extern "C" int lm_cuda_device_query(int device, lm_cuda_device_info *info, lm_error *err) {
    cudaDeviceProp prop;
    memset(info, 0, sizeof(*info));
    CU_TRY(cudaGetDeviceProperties(&prop, device));
    snprintf(info->name, sizeof(info->name), "%s", prop.name);
    info->major = prop.major;
    info->minor = prop.minor;
    info->sm_count = prop.multiProcessorCount;
    info->total_mem = prop.totalGlobalMem;
    info->l2_bytes = prop.l2CacheSize;
    CU_TRY(cudaDeviceGetAttribute(&info->mem_bus_bits, cudaDevAttrGlobalMemoryBusWidth, device));
    size_t free_bytes = 0, total_bytes = 0;
    CU_TRY(cudaSetDevice(device));
    CU_TRY(cudaMemGetInfo(&free_bytes, &total_bytes));
    info->free_mem = free_bytes;
    return 0;
}

/* ---- contexts ---- */

static int ctx_init(lm_cuda_ctx *ctx, int device, lm_error *err) {
    int count = 0;
    if (lm_cuda_device_count(&count, err)) return -1;
    if (device < 0 || device >= count) {
        lm_error_set(err, "CUDA: no device %d (%d device%s visible)", device, count, count == 1 ? "" : "s");
        return -1;
    }
    cudaDeviceProp prop;
    CU_TRY(cudaGetDeviceProperties(&prop, device));
    if (prop.major < MIN_MAJOR) {
        lm_error_set(err, "CUDA: device %d (%s) has compute capability %d.%d; lamina needs %d.0 or later", device,
                     prop.name, prop.major, prop.minor, MIN_MAJOR);
        return -1;
    }
    ctx->device = device;
    ctx->sm_count = prop.multiProcessorCount;
    /* programmatic dependent launches (cu_launch): Hopper on; LAMINA_CUDA_PDL=0 turns them off */
    const char *pdl = getenv("LAMINA_CUDA_PDL");
    ctx->pdl = prop.major >= 9 && !(pdl && strcmp(pdl, "0") == 0);
    CU_TRY(cudaSetDevice(device));
    CU_TRY(cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking));
    CUBLAS_TRY(cublasCreate(&ctx->blas));
    CUBLAS_TRY(cublasSetStream(ctx->blas, ctx->stream)); /* before the workspace: setting a stream resets it */
    CU_TRY(cudaMalloc(&ctx->blas_workspace, BLAS_WORKSPACE));
    CUBLAS_TRY(cublasSetWorkspace(ctx->blas, ctx->blas_workspace, BLAS_WORKSPACE));
    return 0;
}

extern "C" lm_cuda_ctx *lm_cuda_ctx_create(int device, lm_error *err) {
    lm_cuda_ctx *ctx = (lm_cuda_ctx *)calloc(1, sizeof(*ctx));
    if (!ctx) {
        lm_error_set(err, "CUDA: out of host memory for a context");
        return NULL;
    }
    ctx->device = device;
    ctx->act_kind = -1;
    if (ctx_init(ctx, device, err)) {
        lm_cuda_ctx_free(ctx);
        return NULL;
    }
    return ctx;
}

extern "C" void lm_cuda_ctx_free(lm_cuda_ctx *ctx) {
    if (!ctx) return;
    cudaSetDevice(ctx->device);
    if (ctx->stream) cudaStreamSynchronize(ctx->stream);
    cu_scratch *scratch[] = {&ctx->act_q, &ctx->act_ds, &ctx->act_h, &ctx->w_h, &ctx->argmax, &ctx->attn_count};
    for (size_t i = 0; i < sizeof(scratch) / sizeof(scratch[0]); i++) cudaFree(scratch[i]->ptr);
    if (ctx->blas) cublasDestroy(ctx->blas);
    cudaFree(ctx->blas_workspace);
    if (ctx->stream) cudaStreamDestroy(ctx->stream);
    free(ctx);
}

extern "C" int lm_cuda_sync(lm_cuda_ctx *ctx, lm_error *err) {
    CU_TRY(cudaSetDevice(ctx->device));
    CU_TRY(cudaStreamSynchronize(ctx->stream));
    return 0;
}

extern "C" void *lm_cuda_stream(lm_cuda_ctx *ctx) { return (void *)ctx->stream; }

extern "C" bool lm_cuda_batch_invariant(const lm_cuda_ctx *ctx) { return ctx->batch_invariant; }

extern "C" void lm_cuda_set_batch_invariant(lm_cuda_ctx *ctx, bool on) { ctx->batch_invariant = on; }

extern "C" int lm_cuda_set_vec_shape(lm_cuda_ctx *ctx, int threads_per_row, int rows_per_thread, lm_error *err) {
    if (threads_per_row != 0 && threads_per_row != 16 && threads_per_row != 32 && threads_per_row != 128) {
        lm_error_set(err, "CUDA: threads per row must be 0, 16, 32 or 128 (got %d)", threads_per_row);
        return -1;
    }
    if (rows_per_thread < 0 || rows_per_thread > 4 || rows_per_thread == 3) {
        lm_error_set(err, "CUDA: rows per thread must be 0, 1, 2 or 4 (got %d)", rows_per_thread);
        return -1;
    }
    ctx->vec_threads = threads_per_row;
    ctx->vec_rows = rows_per_thread;
    return 0;
}

/* bumped whenever a scratch buffer moves: captured graphs that read the old
 * one are stale (lm_cuda_scratch_epoch) */
static unsigned long long scratch_epoch;

extern "C" uint64_t lm_cuda_scratch_epoch(void) { return __atomic_load_n(&scratch_epoch, __ATOMIC_RELAXED); }

int cu_scratch_reserve(cu_scratch *s, size_t bytes, lm_error *err) {
    if (s->cap >= bytes) return 0;
    __atomic_add_fetch(&scratch_epoch, 1, __ATOMIC_RELAXED);
    CU_TRY(cudaFree(s->ptr));
    s->ptr = NULL;
    s->cap = 0;
    const size_t cap = bytes + bytes / 4 + 256; /* room to grow a little without another round trip */
    CU_TRY(cudaMalloc(&s->ptr, cap));
    s->cap = cap;
    return 0;
}

int cu_scratch_reserve_zeroed(lm_cuda_ctx *ctx, cu_scratch *s, size_t bytes, lm_error *err) {
    void *old = s->ptr;
    if (cu_scratch_reserve(s, bytes, err)) return -1;
    if (s->ptr != old) CU_TRY(cudaMemsetAsync(s->ptr, 0, s->cap, ctx->stream));
    return 0;
}

/* ---- device memory ---- */

extern "C" void *lm_cuda_alloc(lm_cuda_ctx *ctx, size_t bytes, lm_error *err) {
    void *p = NULL;
    cudaError_t e = cudaSetDevice(ctx->device);
    if (e == cudaSuccess) e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        char what[96];
        snprintf(what, sizeof(what), "cudaMalloc(%zu bytes)", bytes);
        cu_fail(err, what, e, __FILE__, __LINE__);
        return NULL;
    }
    return p;
}

extern "C" void lm_cuda_free(lm_cuda_ctx *ctx, void *dev) {
    if (!dev) return;
    cudaSetDevice(ctx->device);
    cudaFree(dev);
}

/* the queued copies of cuda_ops.cu, waited for */
extern "C" int lm_cuda_upload(lm_cuda_ctx *ctx, void *dst_dev, const void *src, size_t bytes, lm_error *err) {
    return lm_cuda_upload_async(ctx, dst_dev, src, bytes, err) || lm_cuda_sync(ctx, err) ? -1 : 0;
}

extern "C" int lm_cuda_download(lm_cuda_ctx *ctx, void *dst, const void *src_dev, size_t bytes, lm_error *err) {
    return lm_cuda_download_async(ctx, dst, src_dev, bytes, err) || lm_cuda_sync(ctx, err) ? -1 : 0;
}

/* ---- matrices ---- */

extern "C" bool lm_cuda_type_supported(uint32_t type) { return cu_layout_of(type, NULL) != NULL; }

/* a matrix with its device planes allocated, contents unset */
static lm_cuda_matrix *matrix_new(lm_cuda_ctx *ctx, const cu_layout *l, int index, int64_t rows, int64_t cols,
                                  lm_error *err) {
    lm_cuda_matrix *m = (lm_cuda_matrix *)calloc(1, sizeof(*m));
    if (!m) {
        lm_error_set(err, "CUDA: out of host memory for a matrix");
        return NULL;
    }
    const size_t body = cu_body_bytes(l, rows, cols), body_padded = (body + 255) & ~(size_t)255;
    m->ctx = ctx;
    m->layout = l;
    m->type_index = index;
    m->bytes = body_padded + cu_hdr_bytes(l, rows, cols);
    m->dev = (uint8_t *)lm_cuda_alloc(ctx, m->bytes, err);
    if (!m->dev) {
        free(m);
        return NULL;
    }
    m->view.body = m->dev;
    m->view.hdr = m->dev + body_padded;
    m->view.rows = rows;
    m->view.cols = cols;
    m->view.blocks = cols / l->qk;
    m->view.units = (int)(m->view.blocks * l->units);
    return m;
}

extern "C" lm_cuda_matrix *lm_cuda_matrix_upload(lm_cuda_ctx *ctx, uint32_t type, int64_t rows, int64_t cols,
                                                 const void *data, lm_error *err) {
    int index = 0;
    const cu_layout *l = cu_layout_of(type, &index);
    if (!l) {
        lm_error_set(err, "CUDA: weight type %s is not supported on the GPU", lm_dtype_name(type));
        return NULL;
    }
    const int64_t align = l->qk < 32 ? 32 : l->qk; /* the activations are prepared in blocks of 32 */
    if (rows < 1 || cols < 1 || cols % align || cols / l->qk * l->units > (1 << 30)) {
        lm_error_set(err, "CUDA: a %s matrix of %lld x %lld: rows must be >= 1 and columns a multiple of %lld",
                     l->name, (long long)rows, (long long)cols, (long long)align);
        return NULL;
    }
    lm_cuda_matrix *m = matrix_new(ctx, l, index, rows, cols, err);
    if (!m) return NULL;
    uint8_t *host = (uint8_t *)malloc(m->bytes);
    if (!host) {
        lm_error_set(err, "CUDA: out of host memory repacking a %lld x %lld %s matrix", (long long)rows,
                     (long long)cols, l->name);
        lm_cuda_matrix_free(m);
        return NULL;
    }
    memset(host, 0, m->bytes);
    cu_repack(l, data, rows, cols, host, host + (m->view.hdr - m->view.body));
    const int rc = lm_cuda_upload(ctx, m->dev, host, m->bytes, err);
    free(host);
    if (rc) {
        lm_cuda_matrix_free(m);
        return NULL;
    }
    return m;
}

static int copy_device(lm_cuda_ctx *ctx, void *dst, const void *src, size_t bytes, lm_error *err) {
    CU_TRY(cudaSetDevice(ctx->device));
    CU_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, ctx->stream));
    CU_TRY(cudaStreamSynchronize(ctx->stream));
    return 0;
}

extern "C" lm_cuda_matrix *lm_cuda_matrix_clone(lm_cuda_ctx *ctx, const lm_cuda_matrix *src, lm_error *err) {
    lm_cuda_matrix *m = matrix_new(ctx, src->layout, src->type_index, src->view.rows, src->view.cols, err);
    if (!m) return NULL;
    if (copy_device(ctx, m->dev, src->dev, m->bytes, err)) {
        lm_cuda_matrix_free(m);
        return NULL;
    }
    return m;
}

extern "C" void lm_cuda_matrix_free(lm_cuda_matrix *m) {
    if (!m) return;
    lm_cuda_free(m->ctx, m->f16);
    lm_cuda_free(m->ctx, m->dev);
    free(m);
}

extern "C" size_t lm_cuda_matrix_bytes(const lm_cuda_matrix *m) { return m->bytes; }
