/* quant_neon.c - the dots of the commonest decode types on 64-bit Arm: NEON
 * with the dot-product instructions (sdot, vdotq_s32; armv8.2-a+dotprod,
 * this file alone is compiled for it, quant_dispatch.c calls it only when
 * the CPU reports ASIMDDP).
 *
 * Each block's integer sum is exact, as in the scalar reference; the float
 * accumulation runs block by block in the same order with the same
 * expression, so the results equal the reference's bit for bit. */
#if defined(__aarch64__)

#include <arm_neon.h>

#include "backend/cpu/quant_blocks.h"
#include "backend/cpu/quant_impl.h"
#include "base/fp16.h"

float q4_0_dot_neon(int64_t n, const void *w, const void *act) {
    const block_q4_0 *x = w;
    const block_q8_0 *y = act;
    const uint8x16_t low = vdupq_n_u8(0x0F);
    const int8x16_t eight = vdupq_n_s8(8);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        const uint8x16_t q = vld1q_u8(x[i].qs);
        /* element j in the low nibble of byte j, element j + 16 in its high one */
        const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, low)), eight);
        const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), eight);
        int32x4_t acc = vdotq_s32(vdupq_n_s32(0), lo, vld1q_s8(y[i].qs));
        acc = vdotq_s32(acc, hi, vld1q_s8(y[i].qs + 16));
        const int isum = vaddvq_s32(acc);
        sum += isum * lm_fp16_to_fp32(x[i].d) * lm_fp16_to_fp32(y[i].d);
    }
    return sum;
}

float q8_0_dot_neon(int64_t n, const void *w, const void *act) {
    const block_q8_0 *x = w;
    const block_q8_0 *y = act;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int32x4_t acc = vdotq_s32(vdupq_n_s32(0), vld1q_s8(x[i].qs), vld1q_s8(y[i].qs));
        acc = vdotq_s32(acc, vld1q_s8(x[i].qs + 16), vld1q_s8(y[i].qs + 16));
        const int isum = vaddvq_s32(acc);
        sum += isum * (lm_fp16_to_fp32(x[i].d) * lm_fp16_to_fp32(y[i].d));
    }
    return sum;
}

#endif
