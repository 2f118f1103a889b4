/* quant_float_neon.c - f32 / f16 / bf16 dot and matrix product, NEON:
 * 4-float vectors, tiles of 4 rows x 4 tokens (16 accumulators and 4 weight
 * vectors of the 32 registers). The kernel is the template in
 * quant_float_gemm.h. */
#if defined(__aarch64__)
#include <arm_neon.h>

#include "backend/cpu/quant_impl.h"
#include "base/fp16.h"

/* the sum of 4 lanes in one fixed tree: (l0 + l1) + (l2 + l3) */
static inline float hsum_f32x4(float32x4_t v) {
    const float32x2_t p = vpadd_f32(vget_low_f32(v), vget_high_f32(v));
    return vget_lane_f32(vpadd_f32(p, p), 0);
}

#define FG_LEVEL neon
#define FG_V float32x4_t
#define FG_W 4
#define FG_R 4
#define FG_T 4
#define FG_ZERO() vdupq_n_f32(0.0f)
#define FG_FMA(a, b, c) vfmaq_f32(c, a, b)
#define FG_LOADU(p) vld1q_f32(p)
#define FG_STOREU(p, v) vst1q_f32(p, v)
#define FG_HSUM(v) hsum_f32x4(v)
#define FG_F16(p) vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)(p))))
#define FG_BF16(p) vreinterpretq_f32_u32(vshll_n_u16(vld1_u16((const uint16_t *)(p)), 16))
#define FG_PREFETCH(p) __builtin_prefetch(p)

#include "backend/cpu/quant_float_gemm.h"
#endif
