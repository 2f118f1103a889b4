/* ops_f16.c - f16 vector helpers of attention and the KV cache: scalar
 * reference here, AVX2 versions in ops_f16_avx2.c, chosen once. */
#include "backend/cpu/ops.h"
#include "backend/cpu/softmax_exp.h"
#include "base/cpu.h"

float op_dot_f32_f16_avx2(const float *x, const lm_fp16 *y, int n);
void op_axpy_f16_avx2(float *y, float a, const lm_fp16 *x, int n);
void op_f32_to_f16_avx2(lm_fp16 *dst, const float *src, int n);
void op_exp_shifted_avx2(float *w, int n, float shift);

static float dot_scalar(const float *x, const lm_fp16 *y, int n) {
    float sum = 0.0f;
    for (int i = 0; i < n; i++) sum += x[i] * lm_fp16_to_fp32(y[i]);
    return sum;
}

static void axpy_scalar(float *y, float a, const lm_fp16 *x, int n) {
    for (int i = 0; i < n; i++) y[i] += a * lm_fp16_to_fp32(x[i]);
}

static void to_f16_scalar(lm_fp16 *dst, const float *src, int n) {
    for (int i = 0; i < n; i++) dst[i] = lm_fp32_to_fp16(src[i]);
}

#ifdef LAMINA_NO_X86
#define HAVE_AVX2() 0
#else
#define HAVE_AVX2() (cpu_level_active() >= CPU_AVX2)
#endif

float op_dot_f32_f16(const float *x, const lm_fp16 *y, int n) {
#ifndef LAMINA_NO_X86
    if (HAVE_AVX2()) return op_dot_f32_f16_avx2(x, y, n);
#endif
    return dot_scalar(x, y, n);
}

void op_axpy_f16(float *y, float a, const lm_fp16 *x, int n) {
#ifndef LAMINA_NO_X86
    if (HAVE_AVX2()) {
        op_axpy_f16_avx2(y, a, x, n);
        return;
    }
#endif
    axpy_scalar(y, a, x, n);
}

void op_f32_to_f16(lm_fp16 *dst, const float *src, int n) {
#ifndef LAMINA_NO_X86
    if (HAVE_AVX2()) {
        op_f32_to_f16_avx2(dst, src, n);
        return;
    }
#endif
    to_f16_scalar(dst, src, n);
}

void op_exp_shifted(float *w, int n, float shift) {
#ifndef LAMINA_NO_X86
    if (HAVE_AVX2()) {
        op_exp_shifted_avx2(w, n, shift);
        return;
    }
#endif
    for (int j = 0; j < n; j++) w[j] = softmax_exp(w[j] - shift);
}
