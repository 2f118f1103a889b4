/* test_cuda_quant.c - the CUDA matmul kernels against the CPU kernels, and
 * (--bench) their speed.
 *
 * Test: for every GPU weight type, on random matrices quantized with the
 * project's reference quantizers (odd row counts included) and random
 * activations (gaussian, outliers, an all-zero block), for n_tokens in
 * {1, 2, 3, 7, 16, 64, 512} (the largest shapes with fewer; one of 8.4M
 * elements, where the built-in choices differ), y = W x on the
 * GPU by each path against the CPU:
 *   VEC   vs the CPU's own mul_mat (activations quantized the same way on
 *         both sides, so the integer sums agree): |gpu - cpu| <= 1e-5 of the
 *         sum of |terms|, sum_j |w_j x_j| (the bound the CPU levels are held
 *         to against each other in tests/unit/test_quant.c);
 *   GEMM  vs a double-precision product of the CPU's dequantized weights
 *         rounded to f16 and x as the GPU takes it: for quantized weights
 *         the CPU's int8 activations taken back as f16(d * q), for f16 x
 *         rounded to f16, for bf16 the weights as they are and x rounded to
 *         bf16: within 1e-4 of the sum of |terms| (f32 accumulation on the
 *         tensor cores); and vs the CPU's mul_mat (the same int8 rounding
 *         of x for quantized weights): ||gpu - cpu|| <= 3e-2 ||sum |terms|||;
 *   MMQ   (q4_0, q8_0, q4_K, q5_K, q6_K with a multiple of 256 columns)
 *         vs the CPU's mul_mat, with VEC's bound (the same integer sums,
 *         scaled per block or super-block); other matrices are refused;
 *   AUTO  bit for bit the path it picks; every path twice gives the same
 *         bits (no atomics).
 * The output buffer and a guard after it are poisoned (NaN bytes) before
 * every run: each output must be written (finite) and the guard untouched.
 * The VEC path is also run with every threads-per-row choice. A device
 * count of 0 exits 77 (ctest: skipped).
 *
 * Bench (--bench): the device-to-device copy bandwidth, then for each shape
 * and type the median time of one call over many (a CUDA graph of calls,
 * rotating over copies of the weights that together exceed 3x the L2 so
 * that DRAM is measured, timed with events), as GB/s of GGUF weight bytes
 * and % of the copy bandwidth (decode), and TFLOP/s (batches). */
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/quant.h"
#include "backend/cpu/quant_blocks.h"
#include "backend/cuda/cuda_backend.h"
#include "base/dtype.h"
#include "base/fp16.h"

#define VEC_TOL 1e-5
#define GEMM_TOL 1e-4
#define GEMM_VS_Q8_TOL 3e-2


/* one row of q8_0 / q8_1 / q8_K activations (N values) -> f16(d * q), as floats */
static void act_to_f16(uint32_t act_type, const uint8_t *row, int64_t n, float *out) {
    for (int64_t b = 0; b < n / 32; b++) {
        float d;
        const int8_t *q;
        if (act_type == LM_Q8_0) {
            const block_q8_0 *blk = (const block_q8_0 *)row + b;
            d = lm_fp16_to_fp32(blk->d);
            q = blk->qs;
        } else if (act_type == LM_Q8_1) {
            const block_q8_1 *blk = (const block_q8_1 *)row + b;
            d = lm_fp16_to_fp32(blk->d);
            q = blk->qs;
        } else {
            const block_q8_K *blk = (const block_q8_K *)row + b / 8;
            d = blk->d;
            q = blk->qs + 32 * (b % 8);
        }
        for (int i = 0; i < 32; i++) out[32 * b + i] = lm_fp16_to_fp32(lm_fp32_to_fp16(d * (float)q[i]));
    }
}

static const uint32_t TYPES[] = {LM_Q4_0, LM_Q4_1, LM_Q5_0, LM_Q5_1, LM_Q8_0,
                                 LM_Q4_K, LM_Q5_K, LM_Q6_K, LM_F16,  LM_BF16};
#define N_TYPES (sizeof(TYPES) / sizeof(TYPES[0]))

static int n_pass, n_fail;

#define CHECK(cond, ...)                                                                                             \
    do {                                                                                                             \
        if (cond) {                                                                                                  \
            n_pass++;                                                                                                \
        } else {                                                                                                     \
            n_fail++;                                                                                                \
            fprintf(stderr, "%s:%d: FAIL: %s: ", __FILE__, __LINE__, #cond);                                         \
            fprintf(stderr, __VA_ARGS__);                                                                            \
            fputc('\n', stderr);                                                                                     \
        }                                                                                                            \
    } while (0)

/* CUDA runtime calls of the test itself: a failure ends the program */
#define CK(call)                                                                                                     \
    do {                                                                                                             \
        const cudaError_t e_ = (call);                                                                               \
        if (e_ != cudaSuccess) {                                                                                     \
            fprintf(stderr, "%s:%d: %s failed: %s (%s)\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_),        \
                    cudaGetErrorName(e_));                                                                           \
            exit(1);                                                                                                 \
        }                                                                                                            \
    } while (0)
/* lamina calls: a failure ends the program with the library's message */
#define LM(call)                                                                                                     \
    do {                                                                                                             \
        if ((call) != 0) {                                                                                           \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call, err.msg);                           \
            exit(1);                                                                                                 \
        }                                                                                                            \
    } while (0)

static lm_error err;

/* ---- random data ---- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint32_t rng_u32(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}

static float rng_uniform(void) { return (rng_u32() >> 8) * (1.0f / 16777216.0f); }

static float rng_gauss(void) {
    const float u1 = rng_uniform() + 1e-7f, u2 = rng_uniform();
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}

/* gaussian * SCALE with outliers (every 61st element x8) and, in rows of
 * 512 or more, the block [256, 512) all zero */
static void fill(float *x, int64_t rows, int64_t cols, float scale) {
    for (int64_t r = 0; r < rows; r++) {
        float *row = x + r * cols;
        for (int64_t i = 0; i < cols; i++) row[i] = scale * ((i % 61 == 7) ? 8.0f * rng_gauss() : rng_gauss());
        if (cols >= 512 && r % 3 == 1)
            for (int64_t i = 256; i < 512; i++) row[i] = 0.0f;
    }
}

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", bytes);
        exit(1);
    }
    return p;
}

static int64_t block_of(uint32_t type) { return type == LM_F16 || type == LM_BF16 ? 32 : lm_dtype_block_size(type); }

/* ---- one GPU run, poisoned ---- */

/* runs W x by PATH into a poisoned buffer; HOST gets n_tok * rows floats;
 * returns the number of outputs left unwritten (or not finite) and checks
 * the guard after them */
static int64_t gpu_run(lm_cuda_ctx *ctx, const lm_cuda_matrix *m, const float *x_dev, float *y_dev, int64_t rows,
                       int n_tok, lm_cuda_path path, float *host, const char *what) {
    const size_t n = (size_t)rows * (size_t)n_tok, guard = 64;
    CK(cudaMemset(y_dev, 0xFF, (n + guard) * sizeof(float)));
    CK(cudaDeviceSynchronize());
    LM(lm_cuda_matmul(ctx, m, x_dev, n_tok, y_dev, path, &err));
    LM(lm_cuda_sync(ctx, &err));
    float *all = xmalloc((n + guard) * sizeof(float));
    LM(lm_cuda_download(ctx, all, y_dev, (n + guard) * sizeof(float), &err));
    int64_t unwritten = 0, guard_hit = 0;
    for (size_t i = 0; i < n; i++) unwritten += !isfinite(all[i]);
    for (size_t i = n; i < n + guard; i++) {
        uint32_t bits;
        memcpy(&bits, &all[i], 4);
        guard_hit += bits != 0xFFFFFFFFu;
    }
    CHECK(guard_hit == 0, "%s: %lld floats written past the output", what, (long long)guard_hit);
    memcpy(host, all, n * sizeof(float));
    free(all);
    return unwritten;
}

/* ---- correctness ---- */

typedef struct {
    double worst_vec, worst_gemm, worst_gemm_q8, worst_mmq;
    int cases, mmq_cases;
} type_stats;

/* max over outputs of |got - want| / mag, and the index where it is */
static double worst_ratio(const float *got, const float *want, const double *want_d, const double *mag, size_t n,
                          size_t *at) {
    double worst = 0.0;
    *at = 0;
    for (size_t i = 0; i < n; i++) {
        const double ref = want ? (double)want[i] : want_d[i];
        const double e = fabs((double)got[i] - ref) / (mag[i] + 1e-30);
        if (!(e <= worst)) {
            worst = e;
            *at = i;
        }
    }
    return worst;
}

/* ||got - want|| / ||mag|| */
static double norm_rel(const float *got, const float *want, const double *mag, size_t n) {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        num += ((double)got[i] - want[i]) * ((double)got[i] - want[i]);
        den += mag[i] * mag[i];
    }
    return sqrt(num / (den + 1e-300));
}

/* Runs W x by PATH into OUT (N tokens of ROWS) and checks it: every output written, within TOL of
 * sum |terms| (MAG) of the reference (REF, floats, or REF_D, doubles), and a second run into AGAIN
 * the same bits. Returns the worst ratio; WHAT names the case. */
static double run_checked(lm_cuda_ctx *ctx, const lm_cuda_matrix *m, const float *x_dev, float *y_dev, int64_t rows,
                          int n, lm_cuda_path path, float *out, float *again, const float *ref, const double *ref_d,
                          const double *mag, double tol, const char *what) {
    const size_t n_out = (size_t)n * (size_t)rows;
    size_t at;
    const int64_t bad = gpu_run(ctx, m, x_dev, y_dev, rows, n, path, out, what);
    CHECK(bad == 0, "%s: %lld of %zu outputs not written", what, (long long)bad, n_out);
    const double e = worst_ratio(out, ref, ref_d, mag, n_out, &at);
    CHECK(e <= tol, "%s: |gpu - reference| = %.3g of sum |terms| at token %zu row %zu (gpu %.9g, reference %.9g)",
          what, e, at / rows, at % rows, out[at], ref ? (double)ref[at] : ref_d[at]);
    gpu_run(ctx, m, x_dev, y_dev, rows, n, path, again, what);
    CHECK(memcmp(out, again, n_out * sizeof(float)) == 0, "%s: two runs differ", what);
    return e;
}

static void check_case(lm_cuda_ctx *ctx, uint32_t type, int64_t rows, int64_t cols, const int *n_list, int n_count,
                       bool sweep, type_stats *st) {
    const q_kernels *k = q_get_kernels(type);
    const size_t row_bytes = q_row_size(type, cols);
    const int n_max = n_list[n_count - 1];
    float *w = xmalloc((size_t)(rows * cols) * sizeof(float));
    uint8_t *gguf = xmalloc(row_bytes * (size_t)rows);
    fill(w, rows, cols, 0.05f);
    for (int64_t r = 0; r < rows; r++) q_quantize_ref(type, w + r * cols, gguf + r * row_bytes, cols);
    /* the CPU's dequantized weights, and as the GPU's GEMM path rounds them
     * (f16; bf16 weights multiply as they are) */
    const bool bf16 = type == LM_BF16;
    float *deq = w, *deq16 = xmalloc((size_t)(rows * cols) * sizeof(float));
    for (int64_t r = 0; r < rows; r++) k->dequantize(gguf + r * row_bytes, deq + r * cols, cols);
    for (int64_t i = 0; i < rows * cols; i++) deq16[i] = bf16 ? deq[i] : lm_fp16_to_fp32(lm_fp32_to_fp16(deq[i]));

    /* x, and as the GEMM path rounds it (f16; bf16 for bf16 weights) */
    float *x = xmalloc((size_t)n_max * (size_t)cols * sizeof(float));
    float *x16 = xmalloc((size_t)n_max * (size_t)cols * sizeof(float));
    fill(x, n_max, cols, 1.0f);
    for (int64_t i = 0; i < n_max * cols; i++)
        x16[i] = bf16 ? lm_bf16_to_fp32(lm_fp32_to_bf16(x[i])) : lm_fp16_to_fp32(lm_fp32_to_fp16(x[i]));
    const size_t act_bytes = q_row_size(k->act_type, cols);
    uint8_t *act = xmalloc(act_bytes * (size_t)n_max);
    for (int t = 0; t < n_max; t++) k->quantize_act(x + (int64_t)t * cols, act + (size_t)t * act_bytes, cols);
    /* the GEMM path of quantized weights takes the CPU's int8 activations back
     * to f16 as d * q (d: the block's scale) */
    if (k->act_type == LM_Q8_0 || k->act_type == LM_Q8_1 || k->act_type == LM_Q8_K)
        for (int t = 0; t < n_max; t++) act_to_f16(k->act_type, act + (size_t)t * act_bytes, cols, x16 + (int64_t)t * cols);

    lm_cuda_matrix *m = lm_cuda_matrix_upload(ctx, type, rows, cols, gguf, &err);
    LM(m ? 0 : -1);
    float *x_dev = lm_cuda_alloc(ctx, (size_t)n_max * (size_t)cols * sizeof(float), &err);
    float *y_dev = lm_cuda_alloc(ctx, ((size_t)n_max * (size_t)rows + 64) * sizeof(float), &err);
    LM(x_dev && y_dev ? 0 : -1);
    LM(lm_cuda_upload(ctx, x_dev, x, (size_t)n_max * (size_t)cols * sizeof(float), &err));

    const size_t out_max = (size_t)n_max * (size_t)rows;
    float *ref_q = xmalloc(out_max * sizeof(float)), *vec = xmalloc(out_max * sizeof(float));
    float *gemm = xmalloc(out_max * sizeof(float)), *again = xmalloc(out_max * sizeof(float));
    float *mmq = xmalloc(out_max * sizeof(float));
    double *ref16 = xmalloc(out_max * sizeof(double)), *mag = xmalloc(out_max * sizeof(double));
    const char *name = lm_dtype_name(type);

    /* the CPU's outputs for all n_max tokens: a token's result does not
     * depend on the others in its batch (bit for bit, quant.h), so the first
     * n of them are the reference of every batch of n */
    k->mul_mat(cols, gguf, row_bytes, (int)rows, act, act_bytes, n_max, ref_q, rows);
    for (int t = 0; t < n_max; t++) {
        const float *xt = x + (int64_t)t * cols, *x16t = x16 + (int64_t)t * cols;
        for (int64_t r = 0; r < rows; r++) {
            const float *wr = deq + r * cols, *w16r = deq16 + r * cols;
            double s16 = 0.0, sm = 0.0;
            for (int64_t i = 0; i < cols; i++) {
                s16 += (double)w16r[i] * x16t[i];
                sm += fabs((double)wr[i] * xt[i]);
            }
            ref16[(size_t)t * rows + r] = s16;
            mag[(size_t)t * rows + r] = sm;
        }
    }
    for (int c = 0; c < n_count; c++) {
        const int n = n_list[c];
        const size_t n_out = (size_t)n * (size_t)rows;
        char what[128];
        size_t at;
        /* VEC: the CPU's integer sums */
        snprintf(what, sizeof(what), "%s %lldx%lld n=%d vec", name, (long long)rows, (long long)cols, n);
        double e = run_checked(ctx, m, x_dev, y_dev, rows, n, LM_CUDA_PATH_VEC, vec, again, ref_q, NULL, mag, VEC_TOL,
                               what);
        if (e > st->worst_vec) st->worst_vec = e;
        /* batch invariance: token t of the batch is the same bits as token t alone
         * (the first ones, and the last, which sits last in its group of 8) */
        for (int t = 0; t < n; t++) {
            if (t >= 12 && t != n - 1) continue;
            gpu_run(ctx, m, x_dev + (int64_t)t * cols, y_dev, rows, 1, LM_CUDA_PATH_VEC, again, what);
            CHECK(memcmp(vec + (size_t)t * (size_t)rows, again, (size_t)rows * sizeof(float)) == 0,
                  "%s: token %d differs from the same token alone", what, t);
        }
        /* GEMM: the f16 product, and normwise the CPU's */
        snprintf(what, sizeof(what), "%s %lldx%lld n=%d gemm", name, (long long)rows, (long long)cols, n);
        e = run_checked(ctx, m, x_dev, y_dev, rows, n, LM_CUDA_PATH_GEMM, gemm, again, NULL, ref16, mag, GEMM_TOL, what);
        if (e > st->worst_gemm) st->worst_gemm = e;
        const double nr = norm_rel(gemm, ref_q, mag, n_out);
        CHECK(nr <= GEMM_VS_Q8_TOL, "%s: ||gpu - cpu q8|| / ||sum |terms||| = %.3g", what, nr);
        if (nr > st->worst_gemm_q8) st->worst_gemm_q8 = nr;
        /* MMQ: the CPU's integer sums, scaled per block or super-block */
        const bool has_mmq = lm_cuda_mmq_supported(m);
        if (has_mmq) {
            snprintf(what, sizeof(what), "%s %lldx%lld n=%d mmq", name, (long long)rows, (long long)cols, n);
            e = run_checked(ctx, m, x_dev, y_dev, rows, n, LM_CUDA_PATH_MMQ, mmq, again, ref_q, NULL, mag, VEC_TOL,
                            what);
            if (e > st->worst_mmq) st->worst_mmq = e;
            st->mmq_cases++;
        } else {
            CHECK(lm_cuda_matmul(ctx, m, x_dev, n, y_dev, LM_CUDA_PATH_MMQ, &err) != 0,
                  "%s %lldx%lld: the MMQ path accepted a matrix it has no kernel for", name, (long long)rows,
                  (long long)cols);
        }
        /* AUTO */
        snprintf(what, sizeof(what), "%s %lldx%lld n=%d auto", name, (long long)rows, (long long)cols, n);
        gpu_run(ctx, m, x_dev, y_dev, rows, n, LM_CUDA_PATH_AUTO, again, what);
        const lm_cuda_path auto_path = lm_cuda_path_for(m, n);
        const float *picked = auto_path == LM_CUDA_PATH_VEC ? vec : auto_path == LM_CUDA_PATH_MMQ ? mmq : gemm;
        CHECK(auto_path != LM_CUDA_PATH_MMQ || has_mmq, "%s: AUTO picks MMQ without a kernel", what);
        CHECK(memcmp(picked, again, n_out * sizeof(float)) == 0, "%s: differs from the path it picks", what);
        /* the activations prepared by the last VEC run serve another product; a GEMM run or
         * another batch size does not leave them */
        snprintf(what, sizeof(what), "%s %lldx%lld n=%d reuse", name, (long long)rows, (long long)cols, n);
        gpu_run(ctx, m, x_dev, y_dev, rows, n, LM_CUDA_PATH_VEC, again, what);
        CK(cudaMemset(y_dev, 0xFF, n_out * sizeof(float)));
        CK(cudaDeviceSynchronize());
        LM(lm_cuda_matmul_reuse_act(ctx, m, n, y_dev, &err));
        LM(lm_cuda_sync(ctx, &err));
        LM(lm_cuda_download(ctx, again, y_dev, n_out * sizeof(float), &err));
        CHECK(memcmp(vec, again, n_out * sizeof(float)) == 0, "%s: differs from the VEC run", what);
        CHECK(lm_cuda_matmul_reuse_act(ctx, m, n + 1, y_dev, &err) != 0, "%s: reuse with n + 1 tokens accepted", what);
        /* a GEMM run prepares the same activations (the q8 blocks, or the
         * halves of f16 / bf16): the VEC reuse after it is the VEC result,
         * and lm_cuda_matmul_again is the product its AUTO path picks */
        gpu_run(ctx, m, x_dev, y_dev, rows, n, LM_CUDA_PATH_GEMM, again, what);
        LM(lm_cuda_matmul_reuse_act(ctx, m, n, y_dev, &err));
        LM(lm_cuda_sync(ctx, &err));
        LM(lm_cuda_download(ctx, again, y_dev, n_out * sizeof(float), &err));
        CHECK(memcmp(vec, again, n_out * sizeof(float)) == 0, "%s: VEC reuse after a GEMM run differs", what);
        LM(lm_cuda_matmul_again(ctx, m, n, y_dev, &err));
        LM(lm_cuda_sync(ctx, &err));
        LM(lm_cuda_download(ctx, again, y_dev, n_out * sizeof(float), &err));
        CHECK(memcmp(picked, again, n_out * sizeof(float)) == 0,
              "%s: lm_cuda_matmul_again differs from the path AUTO picks", what);
        /* Rows per thread 1, 2 and 4 with the built-in threads per row group: the
         * same bits (they change where a row is summed, not how); on some
         * matrices every threads-per-row choice too, which sums in another
         * order: within the CPU bound. */
        static const int TPRS[] = {0, 16, 32, 128}; /* 0: the built-in choice */
        for (int rpt = 1; rpt <= 4; rpt *= 2) {
            for (int i = 0; i < (sweep ? 4 : 1); i++) {
                const int tpr = TPRS[i];
                LM(lm_cuda_set_vec_shape(ctx, tpr, rpt, &err));
                snprintf(what, sizeof(what), "%s %lldx%lld n=%d vec tpr=%d rows=%d", name, (long long)rows,
                         (long long)cols, n, tpr, rpt);
                const int64_t bad = gpu_run(ctx, m, x_dev, y_dev, rows, n, LM_CUDA_PATH_VEC, again, what);
                CHECK(bad == 0, "%s: %lld of %zu outputs not written", what, (long long)bad, n_out);
                e = worst_ratio(again, ref_q, NULL, mag, n_out, &at);
                CHECK(e <= VEC_TOL, "%s: |gpu - cpu| = %.3g of sum |terms| at token %zu row %zu", what, e, at / rows,
                      at % rows);
                if (e > st->worst_vec) st->worst_vec = e;
                CHECK(tpr != 0 || memcmp(vec, again, n_out * sizeof(float)) == 0,
                      "%s: not the same bits as the built-in shape", what);
            }
        }
        LM(lm_cuda_set_vec_shape(ctx, 0, 0, &err));
        st->cases++;
    }
    lm_cuda_free(ctx, x_dev);
    lm_cuda_free(ctx, y_dev);
    lm_cuda_matrix_free(m);
    free(w);
    free(deq16);
    free(gguf);
    free(x);
    free(x16);
    free(act);
    free(ref_q);
    free(vec);
    free(gemm);
    free(mmq);
    free(again);
    free(ref16);
    free(mag);
}

static int run_tests(lm_cuda_ctx *ctx) {
    /* 9, 33, 40 and 100 cut the MMQ kernel's token tiles of 16, 32 and 64 */
    static const int N_ALL[] = {1, 2, 3, 7, 9, 16, 33, 64, 100, 512};
    static const int N_BIG[] = {1, 2, 3, 7, 16, 40, 64};
    static const int N_HUGE[] = {1, 2, 16, 24};
    static const struct {
        int64_t rows, cols;
        const int *n;
        int n_count;
        bool sweep;
    } SHAPES[] = {
        {1, 256, N_ALL, 10, false},   {5, 96, N_ALL, 10, true},     {7, 512, N_ALL, 10, false},
        {33, 1280, N_ALL, 10, true},  {257, 768, N_ALL, 10, false}, {1031, 2048, N_BIG, 7, true},
        {4099, 256, N_BIG, 7, false}, {2051, 4096, N_HUGE, 4, false}, /* 8.4M elements: a "large" matrix */
    };
    printf("correctness: GPU paths against the CPU kernels (bounds: vec %.0e, gemm %.0e of sum |terms|; gemm vs cpu "
           "q8 %.0e, normwise over sum |terms|)\n",
           VEC_TOL, GEMM_TOL, GEMM_VS_Q8_TOL);
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        const uint32_t type = TYPES[ti];
        type_stats st = {0, 0, 0, 0, 0, 0};
        for (size_t s = 0; s < sizeof(SHAPES) / sizeof(SHAPES[0]); s++) {
            if (SHAPES[s].cols % block_of(type)) continue;
            check_case(ctx, type, SHAPES[s].rows, SHAPES[s].cols, SHAPES[s].n, SHAPES[s].n_count, SHAPES[s].sweep,
                       &st);
        }
        printf("  %-5s %3d cases: worst vec %.2e, gemm %.2e (of sum |terms|), gemm vs cpu q8 %.2e (normwise); mmq %d "
               "cases, worst %.2e\n",
               lm_dtype_name(type), st.cases, st.worst_vec, st.worst_gemm, st.worst_gemm_q8, st.mmq_cases,
               st.worst_mmq);
        fflush(stdout);
    }
    return n_fail;
}

/* ---- bench ---- */

static double median(double *v, int n) {
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            const double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* device-to-device copy, bytes read + written per second */
static double copy_bandwidth(void) {
    const size_t bytes = (size_t)1 << 30;
    void *a, *b;
    CK(cudaMalloc(&a, bytes));
    CK(cudaMalloc(&b, bytes));
    CK(cudaMemset(a, 0x5A, bytes));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    double ms[20];
    for (int i = 0; i < 23; i++) {
        CK(cudaEventRecord(e0, 0));
        CK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, 0));
        CK(cudaEventRecord(e1, 0));
        CK(cudaEventSynchronize(e1));
        float t;
        CK(cudaEventElapsedTime(&t, e0, e1));
        if (i >= 3) ms[i - 3] = t;
    }
    CK(cudaEventDestroy(e0));
    CK(cudaEventDestroy(e1));
    CK(cudaFree(a));
    CK(cudaFree(b));
    return 2.0 * (double)bytes / (median(ms, 20) * 1e-3);
}

/* random valid blocks: random quant bytes, scales in a realistic range */
static void random_blocks(uint32_t type, uint8_t *data, int64_t rows, int64_t cols) {
    const size_t bytes = q_row_size(type, cols) * (size_t)rows;
    for (size_t i = 0; i + 4 <= bytes; i += 4) {
        const uint32_t r = rng_u32();
        memcpy(data + i, &r, 4);
    }
    if (type == LM_F16 || type == LM_BF16) {
        for (size_t i = 0; i < bytes / 2; i++) {
            const float v = 0.05f * (rng_uniform() * 2.0f - 1.0f);
            const uint16_t h = type == LM_BF16 ? lm_fp32_to_bf16(v) : lm_fp32_to_fp16(v);
            memcpy(data + 2 * i, &h, 2);
        }
        return;
    }
    const size_t block_bytes = lm_dtype_type_size(type), n_blocks = bytes / block_bytes;
    for (size_t b = 0; b < n_blocks; b++) {
        uint8_t *blk = data + b * block_bytes;
        const lm_fp16 d = lm_fp32_to_fp16(0.001f + 0.01f * rng_uniform());
        const lm_fp16 m = lm_fp32_to_fp16(-0.01f * rng_uniform());
        switch (type) {
        case LM_Q4_1:
        case LM_Q5_1:
            memcpy(blk, &d, 2);
            memcpy(blk + 2, &m, 2);
            break;
        case LM_Q4_0:
        case LM_Q5_0:
        case LM_Q8_0: memcpy(blk, &d, 2); break;
        case LM_Q4_K:
        case LM_Q5_K:
            memcpy(blk, &d, 2);
            memcpy(blk + 2, &d, 2);
            break;
        case LM_Q6_K: memcpy(blk + block_bytes - 2, &d, 2); break;
        default: break;
        }
    }
}

typedef struct {
    lm_cuda_ctx *ctx;
    lm_cuda_matrix **mats;
    int copies;
    const float *x_dev;
    float *y_dev;
} bench_setup;

/* graphs unless capturing one failed once (then plain launches, timed the same way) */
static bool use_graphs = true;

/* what one timed call does */
typedef enum { CALL_VEC, CALL_GEMM, CALL_KERNEL, CALL_MMQ } call_kind;

static int one_call(bench_setup *b, int i, int n_tok, call_kind kind) {
    const lm_cuda_matrix *m = b->mats[i % b->copies];
    if (kind == CALL_KERNEL) return lm_cuda_matmul_reuse_act(b->ctx, m, n_tok, b->y_dev, &err);
    const lm_cuda_path path = kind == CALL_VEC ? LM_CUDA_PATH_VEC : kind == CALL_MMQ ? LM_CUDA_PATH_MMQ : LM_CUDA_PATH_GEMM;
    return lm_cuda_matmul(b->ctx, m, b->x_dev, n_tok, b->y_dev, path, &err);
}

/* CALLS calls rotating over the copies into a graph; false (and graphs off) if capture fails */
static bool capture_calls(bench_setup *b, int n_tok, call_kind kind, int calls, cudaGraphExec_t *exec) {
    cudaStream_t stream = (cudaStream_t)lm_cuda_stream(b->ctx);
    cudaGraph_t graph = NULL;
    bool ok = cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed) == cudaSuccess;
    for (int i = 0; ok && i < calls; i++) ok = one_call(b, i, n_tok, kind) == 0;
    if (cudaStreamEndCapture(stream, &graph) != cudaSuccess) ok = false;
    if (ok && cudaGraphInstantiate(exec, graph, 0) != cudaSuccess) ok = false;
    if (graph) cudaGraphDestroy(graph);
    if (!ok) {
        printf("note: capturing a CUDA graph failed (%s; %s): timing plain launches from here on\n", err.msg,
               cudaGetErrorString(cudaGetLastError()));
        use_graphs = false;
    }
    return ok;
}

/* median time of one call (seconds): a graph of many calls rotating over the
 * copies. CALL_KERNEL times the VEC kernel alone, on activations prepared
 * once before. */
static double time_calls(bench_setup *b, int n_tok, call_kind kind) {
    cudaStream_t stream = (cudaStream_t)lm_cuda_stream(b->ctx);
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    if (kind == CALL_KERNEL) LM(lm_cuda_matmul(b->ctx, b->mats[0], b->x_dev, n_tok, b->y_dev, LM_CUDA_PATH_VEC, &err));
    for (int i = 0; i < b->copies; i++) LM(one_call(b, i, n_tok, kind));
    CK(cudaEventRecord(e0, stream));
    LM(one_call(b, 0, n_tok, kind));
    CK(cudaEventRecord(e1, stream));
    CK(cudaEventSynchronize(e1));
    float one_ms;
    CK(cudaEventElapsedTime(&one_ms, e0, e1));
    int calls = (int)(2.0 / (one_ms > 1e-3 ? one_ms : 1e-3)); /* about 2 ms a replay */
    if (calls < 2 * b->copies) calls = 2 * b->copies;
    if (calls > 400) calls = 400;
    calls = (calls + b->copies - 1) / b->copies * b->copies;
    cudaGraphExec_t exec = NULL;
    const bool graph = use_graphs && capture_calls(b, n_tok, kind, calls, &exec);
    double ms[16];
    for (int r = 0; r < 16; r++) { /* the first is a warm-up */
        CK(cudaEventRecord(e0, stream));
        if (graph) {
            CK(cudaGraphLaunch(exec, stream));
        } else {
            for (int i = 0; i < calls; i++) LM(one_call(b, i, n_tok, kind));
        }
        CK(cudaEventRecord(e1, stream));
        CK(cudaEventSynchronize(e1));
        float t;
        CK(cudaEventElapsedTime(&t, e0, e1));
        ms[r] = t;
    }
    if (graph) CK(cudaGraphExecDestroy(exec));
    CK(cudaEventDestroy(e0));
    CK(cudaEventDestroy(e1));
    return median(ms + 1, 15) * 1e-3 / calls;
}

/* batch sizes of the bench: VEC runs the first N_VEC of them, GEMM all but the first */
static const int NS[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
#define N_NS 10
#define N_VEC 5
static const int TPRS[3] = {16, 32, 128};

typedef struct {
    int64_t rows, cols;
    uint32_t type;
    size_t bytes;          /* GGUF weight bytes */
    double vec[2][N_NS];   /* call time (s) by rows per thread - 1 and batch */
    double gemm[N_NS];     /* call time by batch */
    double mmq[N_NS];      /* call time by batch (0: no MMQ kernel) */
    double kernel[2];      /* decode kernel alone by rows per thread - 1 */
    double sweep[2][3];    /* decode kernel alone by rows per thread - 1 and TPRS */
} bench_row;

static void print_row(const bench_row *r, const char *what, int n, double t, double copy_bw) {
    const double gbs = (double)r->bytes / t;
    printf("| %lld x %lld | %s | %d | %s | %.2f | %.2f | %.0f | %.0f %% | %.2f |\n", (long long)r->rows,
           (long long)r->cols, lm_dtype_name(r->type), n, what, t * 1e6, (double)r->bytes / copy_bw * 1e6, gbs / 1e9,
           100.0 * gbs / copy_bw, 2.0 * (double)r->rows * (double)r->cols * n / t / 1e12);
    fflush(stdout);
}

static void bench_one(bench_setup *b, bench_row *r, bool decode_only, double copy_bw) {
    for (int rpt = 1; rpt <= 2; rpt++) {
        char what[64];
        LM(lm_cuda_set_vec_shape(b->ctx, 0, rpt, &err));
        r->kernel[rpt - 1] = time_calls(b, 1, CALL_KERNEL);
        snprintf(what, sizeof(what), "vec kernel, rows %d", rpt);
        print_row(r, what, 1, r->kernel[rpt - 1], copy_bw);
        for (int i = 0; i < (decode_only ? 1 : N_VEC); i++) {
            r->vec[rpt - 1][i] = time_calls(b, NS[i], CALL_VEC);
            snprintf(what, sizeof(what), "vec call, rows %d", rpt);
            print_row(r, what, NS[i], r->vec[rpt - 1][i], copy_bw);
        }
        for (int i = 0; i < 3; i++) {
            LM(lm_cuda_set_vec_shape(b->ctx, TPRS[i], rpt, &err));
            r->sweep[rpt - 1][i] = time_calls(b, 1, CALL_KERNEL);
        }
    }
    LM(lm_cuda_set_vec_shape(b->ctx, 0, 0, &err));
    for (int i = 1; i < (decode_only ? 1 : N_NS); i++) {
        r->gemm[i] = time_calls(b, NS[i], CALL_GEMM);
        print_row(r, "gemm call", NS[i], r->gemm[i], copy_bw);
        if (!lm_cuda_mmq_supported(b->mats[0]) || NS[i] < 8) continue;
        r->mmq[i] = time_calls(b, NS[i], CALL_MMQ);
        print_row(r, "mmq call", NS[i], r->mmq[i], copy_bw);
    }
}

static void print_summary(const bench_row *rows, int n_rows, const lm_cuda_device_info *info, double copy_bw) {
    printf("\ndecode kernel alone by threads per row and rows per thread (n_tokens = 1, us):\n\n"
           "| shape | type | 16x1 | 32x1 | 128x1 | 16x2 | 32x2 | 128x2 | built-in x1 | x2 |\n"
           "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (int i = 0; i < n_rows; i++) {
        const bench_row *r = &rows[i];
        printf("| %lld x %lld | %s |", (long long)r->rows, (long long)r->cols, lm_dtype_name(r->type));
        for (int k = 0; k < 6; k++) printf(" %.2f |", r->sweep[k / 3][k % 3] * 1e6);
        printf(" %.2f | %.2f |\n", r->kernel[0] * 1e6, r->kernel[1] * 1e6);
    }
    printf("\nbatches (us per call; vec rows 1 / rows 2 / gemm):\n\n| shape | type |");
    for (int i = 1; i < N_NS; i++) printf(" n=%d |", NS[i]);
    printf("\n| --- | --- |");
    for (int i = 1; i < N_NS; i++) printf(" ---: |");
    printf("\n");
    for (int i = 0; i < n_rows; i++) {
        const bench_row *r = &rows[i];
        printf("| %lldx%lld | %s |", (long long)r->rows, (long long)r->cols, lm_dtype_name(r->type));
        for (int k = 1; k < N_NS; k++) {
            if (k < N_VEC) printf(" %.1f/%.1f/%.1f |", r->vec[0][k] * 1e6, r->vec[1][k] * 1e6, r->gemm[k] * 1e6);
            else printf(" %.1f |", r->gemm[k] * 1e6);
        }
        printf("\n");
    }
    printf("\nMMQ against GEMM (us per call, mmq / gemm):\n\n| shape | type |");
    for (int i = 3; i < N_NS; i++) printf(" n=%d |", NS[i]);
    printf("\n| --- | --- |");
    for (int i = 3; i < N_NS; i++) printf(" ---: |");
    printf("\n");
    for (int i = 0; i < n_rows; i++) {
        const bench_row *r = &rows[i];
        if (r->mmq[N_NS - 1] <= 0) continue;
        printf("| %lldx%lld | %s |", (long long)r->rows, (long long)r->cols, lm_dtype_name(r->type));
        for (int k = 3; k < N_NS; k++) printf(" %.1f / %.1f (%.2f) |", r->mmq[k] * 1e6, r->gemm[k] * 1e6, r->gemm[k] / r->mmq[k]);
        printf("\n");
    }
    printf("\nsummary (%s, copy %.0f GB/s): decode n_tokens = 1 (call = activation prep + kernel; kernel = matmul "
           "kernel alone), rows per thread 1 / 2; batch 512 by gemm\n\n"
           "| shape | type | MB | floor us | call us | kernel us | kernel GB/s | %% copy | n=512 us | TFLOP/s |\n"
           "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
           info->name, copy_bw / 1e9);
    for (int i = 0; i < n_rows; i++) {
        const bench_row *r = &rows[i];
        const double best = r->kernel[0] < r->kernel[1] ? r->kernel[0] : r->kernel[1];
        const double gbs = (double)r->bytes / best;
        printf("| %lldx%lld | %s | %.2f | %.2f | %.2f/%.2f | %.2f/%.2f | %.0f | %.0f | %.1f | %.1f |\n", (long long)r->rows,
               (long long)r->cols, lm_dtype_name(r->type), r->bytes / 1e6, (double)r->bytes / copy_bw * 1e6,
               r->vec[0][0] * 1e6, r->vec[1][0] * 1e6, r->kernel[0] * 1e6, r->kernel[1] * 1e6, gbs / 1e9,
               100.0 * gbs / copy_bw, r->gemm[N_NS - 1] * 1e6,
               r->gemm[N_NS - 1] > 0 ? 2.0 * (double)r->rows * (double)r->cols * 512 / r->gemm[N_NS - 1] / 1e12 : 0.0);
    }
}

/* B's buffers for one shape: N_MAX tokens of x (COLS, filled) on the device and a y of N_MAX x ROWS */
static void bench_shape_open(bench_setup *b, lm_cuda_ctx *ctx, int64_t rows, int64_t cols, int n_max) {
    float *x = xmalloc((size_t)n_max * (size_t)cols * sizeof(float));
    fill(x, n_max, cols, 1.0f);
    memset(b, 0, sizeof(*b));
    b->ctx = ctx;
    float *x_dev = lm_cuda_alloc(ctx, (size_t)n_max * (size_t)cols * sizeof(float), &err);
    b->y_dev = lm_cuda_alloc(ctx, (size_t)n_max * (size_t)rows * sizeof(float), &err);
    LM(x_dev && b->y_dev ? 0 : -1);
    LM(lm_cuda_upload(ctx, x_dev, x, (size_t)n_max * (size_t)cols * sizeof(float), &err));
    b->x_dev = x_dev;
    free(x);
}

static void bench_shape_close(bench_setup *b) {
    lm_cuda_free(b->ctx, (void *)b->x_dev);
    lm_cuda_free(b->ctx, b->y_dev);
}

/* a random ROWS x COLS matrix of TYPE (BYTES of GGUF data) and device copies of it that together
 * exceed 3x the L2 (at most MAX_COPIES), so that a rotation over them times DRAM */
static void bench_mats_open(bench_setup *b, const lm_cuda_device_info *info, uint32_t type, int64_t rows,
                            int64_t cols, size_t bytes, int max_copies) {
    uint8_t *data = xmalloc(bytes);
    random_blocks(type, data, rows, cols);
    int copies = (int)((3.0 * info->l2_bytes) / (double)bytes) + 1;
    if (copies > max_copies) copies = max_copies;
    b->copies = copies;
    b->mats = xmalloc((size_t)copies * sizeof(*b->mats));
    b->mats[0] = lm_cuda_matrix_upload(b->ctx, type, rows, cols, data, &err);
    LM(b->mats[0] ? 0 : -1);
    for (int i = 1; i < copies; i++) {
        b->mats[i] = lm_cuda_matrix_clone(b->ctx, b->mats[0], &err);
        LM(b->mats[i] ? 0 : -1);
    }
    free(data);
}

static void bench_mats_close(bench_setup *b) {
    for (int i = 0; i < b->copies; i++) lm_cuda_matrix_free(b->mats[i]);
    free(b->mats);
    b->mats = NULL;
    b->copies = 0;
}

/* DECODE_ONLY: n_tokens = 1 only */
static int run_bench(lm_cuda_ctx *ctx, const lm_cuda_device_info *info, bool decode_only) {
    static const int64_t SHAPES[][2] = {{576, 1536},  {1536, 576},  {49152, 576}, {1024, 3072},
                                        {3072, 1024}, {2048, 8192}, {8192, 2048}};
    enum { N_SHAPES = sizeof(SHAPES) / sizeof(SHAPES[0]) };
    static bench_row rows_out[N_SHAPES * N_TYPES];
    int n_rows = 0;
    const double copy_bw = copy_bandwidth();
    printf("\nbench: %s, %d SMs, L2 %d MiB; device-to-device copy %.0f GB/s (read + write, 1 GiB, median of 20)\n",
           info->name, info->sm_count, info->l2_bytes >> 20, copy_bw / 1e9);
    printf("time: per call, median over 15 replays of a CUDA graph of many calls rotating over weight copies (> 3x "
           "L2); a vec call = activation prep + kernel(s), a vec kernel = the matmul kernel alone on prepared "
           "activations, a gemm call = f16 conversion of x + dequantization + cuBLAS\nGB/s = GGUF weight bytes / "
           "time; floor = weight bytes / copy bandwidth; TFLOP/s = 2 rows cols n_tokens / time\n\n");
    printf("| shape (rows x cols) | type | n_tokens | what | time (us) | floor (us) | GB/s | %% of copy | TFLOP/s |\n");
    printf("| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |\n");
    for (int s = 0; s < N_SHAPES; s++) {
        const int64_t rows = SHAPES[s][0], cols = SHAPES[s][1];
        bench_setup b;
        bench_shape_open(&b, ctx, rows, cols, 512);
        for (size_t ti = 0; ti < N_TYPES; ti++) {
            const uint32_t type = TYPES[ti];
            if (cols % block_of(type)) continue;
            bench_row *r = &rows_out[n_rows++];
            memset(r, 0, sizeof(*r));
            r->rows = rows;
            r->cols = cols;
            r->type = type;
            r->bytes = q_row_size(type, cols) * (size_t)rows;
            bench_mats_open(&b, info, type, rows, cols, r->bytes, 512);
            bench_one(&b, r, decode_only, copy_bw);
            bench_mats_close(&b);
        }
        bench_shape_close(&b);
    }
    print_summary(rows_out, n_rows, info, copy_bw);
    return 0;
}

/* --bench-mmq: the batched products of the benchmark models' shapes (Qwen3-0.6B,
 * Llama-3.2-1B: QKV, O, gate+up, down, output) by MMQ in each row tiling
 * and by the GEMM on a kept f16 copy (what those models take: their copies
 * fit), us per call */
static int run_bench_mmq(lm_cuda_ctx *ctx, const lm_cuda_device_info *info) {
    static const int64_t SHAPES[][2] = {{4096, 1024}, {1024, 2048}, {6144, 1024}, {1024, 3072}, {151936, 1024},
                                        {3072, 2048}, {2048, 2048}, {16384, 2048}, {2048, 8192}, {128256, 2048}};
    static const uint32_t MTYPES[] = {LM_Q4_K, LM_Q6_K, LM_Q8_0, LM_Q4_0, LM_Q5_K};
    static const int MN[] = {9, 16, 32, 64, 128, 256};
    enum { N_SHAPES = sizeof(SHAPES) / sizeof(SHAPES[0]), N_MT = 5, N_MN = 6 };
    const double copy_bw = copy_bandwidth();
    printf("\nbench-mmq: %s, %d SMs; copy %.0f GB/s; us per call (median of graph replays over > 3x L2 of copies)\n\n"
           "| shape | type | MB | floor us | n | mmq (built-in) | mmq 64 rows | mmq 32x2 | mmq 16x4 | gemm (f16 copy) | "
           "gemm / best mmq |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
           info->name, info->sm_count, copy_bw / 1e9);
    for (int s = 0; s < N_SHAPES; s++) {
        const int64_t rows = SHAPES[s][0], cols = SHAPES[s][1];
        bench_setup b;
        bench_shape_open(&b, ctx, rows, cols, 256);
        for (int ti = 0; ti < N_MT; ti++) {
            const uint32_t type = MTYPES[ti];
            const size_t bytes = q_row_size(type, cols) * (size_t)rows;
            bench_mats_open(&b, info, type, rows, cols, bytes, 64);
            const int copies = b.copies;
            for (int ni = 0; ni < N_MN; ni++) {
                const int n = MN[ni];
                double t[4], best = 1e30;
                for (int shape = 0; shape <= 3; shape++) {
                    LM(lm_cuda_set_mmq_shape(ctx, shape, &err));
                    t[shape] = time_calls(&b, n, CALL_MMQ);
                    if (shape && t[shape] < best) best = t[shape];
                }
                LM(lm_cuda_set_mmq_shape(ctx, 0, &err));
                for (int i = 0; i < copies; i++) LM(lm_cuda_matrix_keep_f16(ctx, b.mats[i], &err));
                const double g = time_calls(&b, n, CALL_GEMM);
                printf("| %lldx%lld | %s | %.1f | %.1f | %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.2f |\n", (long long)rows,
                       (long long)cols, lm_dtype_name(type), bytes / 1e6, bytes / copy_bw * 1e6, n, t[0] * 1e6,
                       t[1] * 1e6, t[2] * 1e6, t[3] * 1e6, g * 1e6, g / t[0]);
                fflush(stdout);
            }
            bench_mats_close(&b);
        }
        bench_shape_close(&b);
    }
    return 0;
}

int main(int argc, char **argv) {
    bool bench = false, decode_only = false, bench_mmq = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--bench")) bench = true;
        else if (!strcmp(argv[i], "--decode")) decode_only = true;
        else if (!strcmp(argv[i], "--bench-mmq")) bench_mmq = true;
        else {
            fprintf(stderr, "usage: test_cuda_quant [--bench [--decode] | --bench-mmq]\n");
            return 2;
        }
    }
    int count = 0;
    if (lm_cuda_device_count(&count, &err)) {
        printf("test_cuda_quant: no usable CUDA driver: skipped (%s)\n", err.msg);
        return 77;
    }
    if (count == 0) {
        printf("test_cuda_quant: no CUDA device: skipped\n");
        return 77;
    }
    lm_cuda_device_info info;
    LM(lm_cuda_device_query(0, &info, &err));
    printf("device 0: %s, compute %d.%d, %d SMs, %.1f GiB (%.1f free), L2 %d MiB, %d-bit bus; cpu level %s\n", info.name,
           info.major, info.minor, info.sm_count, info.total_mem / 1073741824.0, info.free_mem / 1073741824.0,
           info.l2_bytes >> 20, info.mem_bus_bits, cpu_level_name(cpu_level_active()));
    lm_cuda_ctx *ctx = lm_cuda_ctx_create(0, &err);
    LM(ctx ? 0 : -1);
    int rc = 0;
    if (bench_mmq) {
        rc = run_bench_mmq(ctx, &info);
    } else if (bench) {
        rc = run_bench(ctx, &info, decode_only);
    } else {
        run_tests(ctx);
        printf("test_cuda_quant: %d checks passed, %d failed\n", n_pass, n_fail);
        rc = n_fail ? 1 : 0;
    }
    lm_cuda_ctx_free(ctx);
    return rc;
}
