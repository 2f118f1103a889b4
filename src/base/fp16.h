/* fp16.h - IEEE half and bfloat16 conversions (scalar; exact as ggml's). */
#ifndef LAMINA_BASE_FP16_H
#define LAMINA_BASE_FP16_H

#include <stdint.h>
#include <string.h>

typedef uint16_t lm_fp16;
typedef uint16_t lm_bf16;

static inline float lm_bits_to_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t lm_f32_to_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static inline float lm_fp16_to_fp32(lm_fp16 h) {
    const uint32_t w = (uint32_t)h << 16;
    const uint32_t sign = w & 0x80000000u;
    const uint32_t two_w = w + w;
    const uint32_t exp_offset = 0xE0u << 23;
    const float exp_scale = lm_bits_to_f32(0x7800000u); /* 2^-112 */
    const float normalized = lm_bits_to_f32((two_w >> 4) + exp_offset) * exp_scale;
    const uint32_t magic_mask = 126u << 23;
    const float magic_bias = 0.5f;
    const float denormalized = lm_bits_to_f32((two_w >> 17) | magic_mask) - magic_bias;
    const uint32_t denormalized_cutoff = 1u << 27;
    const uint32_t result =
        sign | (two_w < denormalized_cutoff ? lm_f32_to_bits(denormalized) : lm_f32_to_bits(normalized));
    return lm_bits_to_f32(result);
}

/* round to nearest even, as F16C's vcvtps2ph with imm 0 */
static inline lm_fp16 lm_fp32_to_fp16(float f) {
    const float scale_to_inf = lm_bits_to_f32(0x77800000u);  /* 2^112 */
    const float scale_to_zero = lm_bits_to_f32(0x08800000u); /* 2^-110 */
    float base = ((f < 0 ? -f : f) * scale_to_inf) * scale_to_zero;
    const uint32_t w = lm_f32_to_bits(f);
    const uint32_t shl1_w = w + w;
    const uint32_t sign = w & 0x80000000u;
    uint32_t bias = shl1_w & 0xFF000000u;
    if (bias < 0x71000000u) bias = 0x71000000u;
    base = lm_bits_to_f32((bias >> 1) + 0x07800000u) + base;
    const uint32_t bits = lm_f32_to_bits(base);
    const uint32_t exp_bits = (bits >> 13) & 0x00007C00u;
    const uint32_t mantissa_bits = bits & 0x00000FFFu;
    const uint32_t nonsign = exp_bits + mantissa_bits;
    return (lm_fp16)((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

static inline float lm_bf16_to_fp32(lm_bf16 h) { return lm_bits_to_f32((uint32_t)h << 16); }

/* round to nearest even; NaN stays NaN (as ggml's ggml_compute_fp32_to_bf16) */
static inline lm_bf16 lm_fp32_to_bf16(float f) {
    uint32_t u = lm_f32_to_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (lm_bf16)((u >> 16) | 64);
    return (lm_bf16)((u + (0x7fffu + ((u >> 16) & 1))) >> 16);
}

#endif
