/* test_cuda_layout.cu - the GPU weight layout and the per-unit arithmetic of
 * the CUDA kernels, checked on the CPU (no GPU needed).
 *
 * For every GPU weight type, on random matrices made with the project's
 * reference quantizers: the repacked planes are decoded unit by unit with
 * the very functions the kernels run (cuda_layout.cuh, compiled for the
 * host here), and
 *   - every element comes out exactly once, bit for bit the CPU's
 *     dequantized float (the GEMM path's dequantization);
 *   - summing cu_unit_dot over a row's units, with the activations the CPU
 *     kernels quantize (moved into the GPU's activation layout), gives the
 *     CPU's dot within 1e-5 of the sum of |terms| (the VEC path);
 * and f16 / bf16 rows are stored as they are. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>

#include "backend/cuda/cuda_internal.cuh"

extern "C" {
#include "backend/cpu/quant.h"
#include "backend/cpu/quant_blocks.h"
#include "base/dtype.h"
#include "base/fp16.h"
}

static int n_pass, n_fail;

#define CHECK(cond, ...)                                                                                             \
    do {                                                                                                             \
        if (cond) {                                                                                                  \
            n_pass++;                                                                                                \
        } else {                                                                                                     \
            if (n_fail++ < 20) {                                                                                     \
                fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);                             \
                fprintf(stderr, __VA_ARGS__);                                                                        \
                fputc('\n', stderr);                                                                                 \
            }                                                                                                        \
        }                                                                                                            \
    } while (0)

static uint64_t rng_state = 0x243F6A8885A308D3ull;

static uint32_t rng_u32(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}

static float rng_gauss(void) {
    const float u1 = ((rng_u32() >> 8) + 1) * (1.0f / 16777217.0f), u2 = (rng_u32() >> 8) * (1.0f / 16777216.0f);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}

/* gaussian with a few outliers and one all-zero block of 256 */
static void fill(float *x, int64_t n, float scale) {
    for (int64_t i = 0; i < n; i++) x[i] = scale * ((i % 61 == 7) ? 8.0f * rng_gauss() : rng_gauss());
    if (n >= 512)
        for (int64_t i = 256; i < 512; i++) x[i] = 0.0f;
}

/* the CPU's activation row (act_type) -> the GPU's activation layout */
static void act_to_gpu(uint32_t act_type, const void *row, int64_t cols, int8_t *q, float2 *ds) {
    if (act_type == LM_Q8_0 || act_type == LM_Q8_1) {
        for (int64_t b = 0; b < cols / 32; b++) {
            if (act_type == LM_Q8_0) {
                const block_q8_0 *blk = (const block_q8_0 *)row + b;
                memcpy(q + 32 * b, blk->qs, 32);
                ds[b] = make_float2(lm_fp16_to_fp32(blk->d), 0.0f); /* s: unused by q4_0 / q8_0 */
            } else {
                const block_q8_1 *blk = (const block_q8_1 *)row + b;
                memcpy(q + 32 * b, blk->qs, 32);
                ds[b] = make_float2(lm_fp16_to_fp32(blk->d), lm_fp16_to_fp32(blk->s));
            }
        }
    } else {
        for (int64_t sb = 0; sb < cols / 256; sb++) {
            const block_q8_K *blk = (const block_q8_K *)row + sb;
            memcpy(q + 256 * sb, blk->qs, 256);
            for (int g = 0; g < 8; g++)
                ds[8 * sb + g] = make_float2(blk->d, (float)(blk->bsums[2 * g] + blk->bsums[2 * g + 1]));
        }
    }
}

/* the sum over a row's units of cu_unit_dot (any order of units is one the kernels may use) */
template <int T> static float row_dot(const cu_mat *m, int64_t row, const cu_act *a) {
    const uint8_t *wb = m->body + row * m->blocks * cu_traits<T>::body;
    const uint8_t *wh = m->hdr + row * m->blocks * cu_traits<T>::hdr;
    float acc = 0.0f;
    for (int u = 0; u < m->units; u++) {
        cu_unit x;
        cu_decode<T>(wb, wh, u, &x);
        acc += cu_unit_dot<T>(&x, a, 0);
    }
    return acc;
}

/* every element of a row from its units; COUNT counts how often each appears */
template <int T> static void row_dequant(const cu_mat *m, int64_t row, float *out, int *count) {
    const uint8_t *wb = m->body + row * m->blocks * cu_traits<T>::body;
    const uint8_t *wh = m->hdr + row * m->blocks * cu_traits<T>::hdr;
    for (int u = 0; u < m->units; u++) {
        cu_unit x;
        cu_decode<T>(wb, wh, u, &x);
        for (int r = 0; r < cu_traits<T>::runs; r++) {
            float scale, offset;
            cu_run_scale<T>(&x, r, &scale, &offset);
            const int e = r ? x.e1 : x.e0;
            for (int i = 0; i < 16; i++) {
                out[e + i] = cu_unit_value(&x, r, i, scale, offset);
                count[e + i]++;
            }
        }
    }
}

typedef float (*row_dot_fn)(const cu_mat *, int64_t, const cu_act *);
typedef void (*row_dequant_fn)(const cu_mat *, int64_t, float *, int *);

static void check_type(uint32_t type, int index, int64_t rows, int64_t cols, row_dot_fn dot_fn,
                       row_dequant_fn dequant_fn) {
    int got_index = -1;
    const cu_layout *l = cu_layout_of(type, &got_index);
    CHECK(l && got_index == index, "%s: layout index %d, expected %d", lm_dtype_name(type), got_index, index);
    if (!l) return;
    const q_kernels *k = q_get_kernels_level(type, CPU_SCALAR);
    const size_t row_bytes = q_row_size(type, cols);
    std::vector<float> w((size_t)(rows * cols)), x((size_t)cols), deq((size_t)cols), got((size_t)cols);
    std::vector<uint8_t> gguf(row_bytes * (size_t)rows);
    fill(w.data(), rows * cols, 0.05f);
    for (int64_t r = 0; r < rows; r++) q_quantize_ref(type, w.data() + r * cols, gguf.data() + r * row_bytes, cols);
    const size_t body_bytes = cu_body_bytes(l, rows, cols), hdr_bytes = cu_hdr_bytes(l, rows, cols);
    std::vector<uint8_t> body(body_bytes), hdr(hdr_bytes + 16);
    cu_repack(l, gguf.data(), rows, cols, body.data(), hdr.data());
    const cu_mat m = {body.data(), hdr.data(), rows, cols, cols / l->qk, (int)(cols / l->qk * l->units)};

    fill(x.data(), cols, 1.0f);
    std::vector<uint8_t> act(q_row_size(k->act_type, cols));
    k->quantize_act(x.data(), act.data(), cols);
    std::vector<int8_t> aq((size_t)cols);
    std::vector<float2> ads((size_t)cols / 32);
    act_to_gpu(k->act_type, act.data(), cols, aq.data(), ads.data());
    const cu_act a = {aq.data(), ads.data(), NULL, cols, NULL};
    std::vector<float> xq((size_t)cols);
    const q_kernels *ka = q_get_kernels_level(k->act_type, CPU_SCALAR);
    if (ka) ka->dequantize(act.data(), xq.data(), cols);

    int bad_values = 0, bad_cover = 0;
    double worst = 0.0;
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *wrow = gguf.data() + r * row_bytes;
        k->dequantize(wrow, deq.data(), cols);
        std::vector<int> count((size_t)cols, 0);
        dequant_fn(&m, r, got.data(), count.data());
        for (int64_t i = 0; i < cols; i++) {
            bad_cover += count[i] != 1;
            bad_values += memcmp(&got[i], &deq[i], 4) != 0;
        }
        const float want = k->dot(cols, wrow, act.data());
        const float have = dot_fn(&m, r, &a);
        double mag = 0.0;
        for (int64_t i = 0; i < cols; i++) mag += fabs((double)deq[i] * (ka ? xq[i] : x[i]));
        const double e = fabs((double)have - want) / (mag + 1e-30);
        if (e > worst) worst = e;
        CHECK(fabs((double)have - want) <= 1e-5 * mag + 1e-30, "%s %lldx%lld row %lld: unit dots %.9g, CPU dot %.9g (mag %g)",
              l->name, (long long)rows, (long long)cols, (long long)r, have, want, mag);
    }
    CHECK(bad_cover == 0, "%s %lldx%lld: %d elements not produced exactly once", l->name, (long long)rows,
          (long long)cols, bad_cover);
    CHECK(bad_values == 0, "%s %lldx%lld: %d dequantized elements differ from the CPU's", l->name, (long long)rows,
          (long long)cols, bad_values);
    printf("  %-5s %5lld x %-5lld dequant exact, dot error <= %.2e of sum |terms|\n", l->name, (long long)rows,
           (long long)cols, worst);
}

/* f16 / bf16: 8 elements a unit, no hdr, rows stored as they are */
static void check_half(uint32_t type, int expect_index) {
    const int64_t rows = 3, cols = 96;
    int index = -1;
    const cu_layout *l = cu_layout_of(type, &index);
    CHECK(l && index == expect_index && l->units == 1 && l->qk == 8 && l->hdr == 0, "%s layout",
          lm_dtype_name(type));
    if (!l) return;
    std::vector<uint16_t> w((size_t)(rows * cols));
    for (auto &v : w) v = type == LM_BF16 ? lm_fp32_to_bf16(rng_gauss()) : lm_fp32_to_fp16(rng_gauss());
    std::vector<uint8_t> body(cu_body_bytes(l, rows, cols));
    CHECK(body.size() == w.size() * 2, "%s body of %zu bytes", l->name, body.size());
    cu_repack(l, w.data(), rows, cols, body.data(), NULL);
    CHECK(memcmp(body.data(), w.data(), body.size()) == 0, "%s rows are stored as they are", l->name);
}

/* lm_cuda_type_supported: the types of the layout table, and no others */
static void check_supported(void) {
    static const uint32_t yes[] = {LM_Q4_0, LM_Q4_1, LM_Q5_0, LM_Q5_1, LM_Q8_0,
                                   LM_Q4_K, LM_Q5_K, LM_Q6_K, LM_F16,  LM_BF16};
    static const uint32_t no[] = {LM_F32, LM_Q2_K, LM_Q3_K, LM_Q8_K, LM_Q8_1};
    for (uint32_t t : yes) CHECK(lm_cuda_type_supported(t), "%s not reported supported", lm_dtype_name(t));
    for (uint32_t t : no) CHECK(!lm_cuda_type_supported(t), "%s reported supported", lm_dtype_name(t));
    CHECK(sizeof(yes) / sizeof(yes[0]) == CU_TYPE_COUNT, "the layout table has %d types", (int)CU_TYPE_COUNT);
}

int main(void) {
    const int64_t shapes[][2] = {{1, 256}, {3, 512}, {7, 1280}, {2, 2048}};
    printf("test_cuda_layout: repacked planes and unit arithmetic against the CPU kernels\n");
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        const int64_t rows = shapes[s][0], cols = shapes[s][1];
        check_type(LM_Q4_0, CU_Q4_0, rows, cols, row_dot<CU_Q4_0>, row_dequant<CU_Q4_0>);
        check_type(LM_Q4_1, CU_Q4_1, rows, cols, row_dot<CU_Q4_1>, row_dequant<CU_Q4_1>);
        check_type(LM_Q5_0, CU_Q5_0, rows, cols, row_dot<CU_Q5_0>, row_dequant<CU_Q5_0>);
        check_type(LM_Q5_1, CU_Q5_1, rows, cols, row_dot<CU_Q5_1>, row_dequant<CU_Q5_1>);
        check_type(LM_Q8_0, CU_Q8_0, rows, cols, row_dot<CU_Q8_0>, row_dequant<CU_Q8_0>);
        check_type(LM_Q4_K, CU_Q4_K, rows, cols, row_dot<CU_Q4_K>, row_dequant<CU_Q4_K>);
        check_type(LM_Q5_K, CU_Q5_K, rows, cols, row_dot<CU_Q5_K>, row_dequant<CU_Q5_K>);
        check_type(LM_Q6_K, CU_Q6_K, rows, cols, row_dot<CU_Q6_K>, row_dequant<CU_Q6_K>);
    }
    check_half(LM_F16, CU_F16);
    check_half(LM_BF16, CU_BF16);
    check_supported();
    printf("test_cuda_layout: %d checks passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
