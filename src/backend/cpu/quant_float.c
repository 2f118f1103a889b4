/* quant_float.c - scalar reference kernels of the float types f32, f16, bf16.
 *
 * The activation type of each is itself (ggml: vec_dot_type), so
 * quantize_act is a copy (f32) or a round-to-nearest-even conversion (f16,
 * bf16). Dots accumulate in double, as ggml's scalar ggml_vec_dot_f16. */
#include <string.h>

#include "backend/cpu/quant_impl.h"
#include "base/fp16.h"

void f32_dequant_ref(const void *src, float *dst, int64_t n) { memcpy(dst, src, (size_t)n * sizeof(float)); }

void f32_quantize_ref(const float *src, void *dst, int64_t n) { memcpy(dst, src, (size_t)n * sizeof(float)); }

float f32_dot_ref(int64_t n, const void *w, const void *act) {
    const float *x = w, *y = act;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (double)(x[i] * y[i]);
    return (float)sum;
}

void f16_dequant_ref(const void *src, float *dst, int64_t n) {
    const lm_fp16 *x = src;
    for (int64_t i = 0; i < n; i++) dst[i] = lm_fp16_to_fp32(x[i]);
}

void f16_quantize_ref(const float *src, void *dst, int64_t n) {
    lm_fp16 *y = dst;
    for (int64_t i = 0; i < n; i++) y[i] = lm_fp32_to_fp16(src[i]);
}

float f16_dot_ref(int64_t n, const void *w, const void *act) {
    const lm_fp16 *x = w, *y = act;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (double)(lm_fp16_to_fp32(x[i]) * lm_fp16_to_fp32(y[i]));
    return (float)sum;
}

void bf16_dequant_ref(const void *src, float *dst, int64_t n) {
    const lm_bf16 *x = src;
    for (int64_t i = 0; i < n; i++) dst[i] = lm_bf16_to_fp32(x[i]);
}

void bf16_quantize_ref(const float *src, void *dst, int64_t n) {
    lm_bf16 *y = dst;
    for (int64_t i = 0; i < n; i++) y[i] = lm_fp32_to_bf16(src[i]);
}

float bf16_dot_ref(int64_t n, const void *w, const void *act) {
    const lm_bf16 *x = w, *y = act;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (double)(lm_bf16_to_fp32(x[i]) * lm_bf16_to_fp32(y[i]));
    return (float)sum;
}
