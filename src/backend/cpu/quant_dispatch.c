/* quant_dispatch.c - one static kernel table per (type, level), chosen by
 * q_get_kernels(); row sizes; the test quantizers.
 *
 * Levels the CPU lacks fall back to the best one below. The AVX-512 level
 * runs its kernels only with VNNI (vpdpbusd/vpdpwssd); an AVX-512 CPU
 * without it gets the AVX2 tables. */
#include "backend/cpu/quant.h"
#include "backend/cpu/quant_impl.h"

/* A mul_mat that loops over a dot, for the kernels without one of their own:
 * bit-identical with the dot by construction. */
#define MUL_MAT_FROM_DOT(type, level)                                                                           \
    static void type##_mul_mat_##level(int64_t n, const void *w, size_t w_stride, int n_rows, const void *act,   \
                                       size_t act_stride, int n_tok, float *out, int64_t ld_out) {               \
        for (int t = 0; t < n_tok; t++)                                                                         \
            for (int r = 0; r < n_rows; r++)                                                                    \
                out[(int64_t)t * ld_out + r] = type##_dot_##level(n, (const char *)w + (size_t)r * w_stride,    \
                                                                  (const char *)act + (size_t)t * act_stride); \
    }
#define MUL_MATS_FROM_DOTS_FLOAT(level)                                                                          \
    MUL_MAT_FROM_DOT(f32, level)                                                                                \
    MUL_MAT_FROM_DOT(f16, level)                                                                                \
    MUL_MAT_FROM_DOT(bf16, level)

#define KERNELS(act, type, dq, qa, dt, mm) \
    [type] = {.act_type = act, .dequantize = dq, .quantize_act = qa, .dot = dt, .mul_mat = mm}

/* The table of one level: LVL names the dequantize/dot/mul_mat kernels, HOT
 * the dots and mul_mats of the hot decode types (q4_0, q4_1, q5_0, q5_1,
 * q8_0, q4_K, q5_K, q6_K), ACT the activation quantizers. */
#define LEVEL_TABLE(LVL, HOT, ACT)                                                                                 \
    {                                                                                                              \
        KERNELS(LM_F32, LM_F32, f32_dequant_##LVL, f32_quantize_ref, f32_dot_##HOT, f32_mul_mat_##HOT),             \
        KERNELS(LM_F16, LM_F16, f16_dequant_##LVL, f16_quantize_##ACT, f16_dot_##HOT, f16_mul_mat_##HOT),           \
        KERNELS(LM_BF16, LM_BF16, bf16_dequant_##LVL, bf16_quantize_##ACT, bf16_dot_##HOT, bf16_mul_mat_##HOT),     \
        KERNELS(LM_Q8_0, LM_Q4_0, q4_0_dequant_##LVL, q8_0_quantize_##ACT, q4_0_dot_##HOT, q4_0_mul_mat_##HOT),     \
        KERNELS(LM_Q8_1, LM_Q4_1, q4_1_dequant_##LVL, q8_1_quantize_##ACT, q4_1_dot_##HOT, q4_1_mul_mat_##HOT),     \
        KERNELS(LM_Q8_0, LM_Q5_0, q5_0_dequant_##LVL, q8_0_quantize_##ACT, q5_0_dot_##HOT, q5_0_mul_mat_##HOT),     \
        KERNELS(LM_Q8_1, LM_Q5_1, q5_1_dequant_##LVL, q8_1_quantize_##ACT, q5_1_dot_##HOT, q5_1_mul_mat_##HOT),     \
        KERNELS(LM_Q8_0, LM_Q8_0, q8_0_dequant_##LVL, q8_0_quantize_##ACT, q8_0_dot_##HOT, q8_0_mul_mat_##HOT),     \
        KERNELS(LM_Q8_K, LM_Q2_K, q2_K_dequant_##LVL, q8_K_quantize_##ACT, q2_K_dot_##LVL, q2_K_mul_mat_##LVL),     \
        KERNELS(LM_Q8_K, LM_Q3_K, q3_K_dequant_##LVL, q8_K_quantize_##ACT, q3_K_dot_##LVL, q3_K_mul_mat_##LVL),     \
        KERNELS(LM_Q8_K, LM_Q4_K, q4_K_dequant_##LVL, q8_K_quantize_##ACT, q4_K_dot_##HOT, q4_K_mul_mat_##HOT),     \
        KERNELS(LM_Q8_K, LM_Q5_K, q5_K_dequant_##LVL, q8_K_quantize_##ACT, q5_K_dot_##HOT, q5_K_mul_mat_##HOT),     \
        KERNELS(LM_Q8_K, LM_Q6_K, q6_K_dequant_##LVL, q8_K_quantize_##ACT, q6_K_dot_##HOT, q6_K_mul_mat_##HOT),     \
    }

MUL_MATS_FROM_DOTS_FLOAT(ref)
MUL_MAT_FROM_DOT(q4_0, ref)
MUL_MAT_FROM_DOT(q4_1, ref)
MUL_MAT_FROM_DOT(q5_0, ref)
MUL_MAT_FROM_DOT(q5_1, ref)
MUL_MAT_FROM_DOT(q8_0, ref)
MUL_MAT_FROM_DOT(q2_K, ref)
MUL_MAT_FROM_DOT(q3_K, ref)
MUL_MAT_FROM_DOT(q4_K, ref)
MUL_MAT_FROM_DOT(q5_K, ref)
MUL_MAT_FROM_DOT(q6_K, ref)
static const q_kernels TABLE_SCALAR[LM_DTYPE_COUNT] = LEVEL_TABLE(ref, ref, ref);

#ifndef LAMINA_NO_X86
MUL_MAT_FROM_DOT(q2_K, avx2)
MUL_MAT_FROM_DOT(q3_K, avx2)

static const q_kernels TABLE_AVX2[LM_DTYPE_COUNT] = LEVEL_TABLE(avx2, avx2, avx2);
/* AVX-512: the AVX2 kernels with the 512-bit dots and mul_mats of the float and hot decode types */
static const q_kernels TABLE_AVX512[LM_DTYPE_COUNT] = LEVEL_TABLE(avx2, avx512, avx2);

static const q_kernels *level_table(cpu_level level) {
    if (level > cpu_level_best()) level = cpu_level_best();
    if (level >= CPU_AVX512 && cpu_has_avx512_vnni()) return TABLE_AVX512;
    if (level >= CPU_AVX2) return TABLE_AVX2;
    return TABLE_SCALAR;
}
#elif defined(__aarch64__)
/* NEON: its own dots for every quantized type; token tiles for the legacy
 * types and q4_K / q5_K / q6_K (quant_neon.c); q2_K's and q3_K's mul_mats
 * loop over their dots */
MUL_MAT_FROM_DOT(q2_K, neon)
MUL_MAT_FROM_DOT(q3_K, neon)
/* the scalar level with the NEON dots (and the mul_mats over them) of every quantized type and
 * the NEON tiles of the float types (quant_float_neon.c) */
static const q_kernels TABLE_NEON[LM_DTYPE_COUNT] = {
    KERNELS(LM_F32, LM_F32, f32_dequant_ref, f32_quantize_ref, f32_dot_neon, f32_mul_mat_neon),
    KERNELS(LM_F16, LM_F16, f16_dequant_ref, f16_quantize_ref, f16_dot_neon, f16_mul_mat_neon),
    KERNELS(LM_BF16, LM_BF16, bf16_dequant_ref, bf16_quantize_ref, bf16_dot_neon, bf16_mul_mat_neon),
    KERNELS(LM_Q8_0, LM_Q4_0, q4_0_dequant_ref, q8_0_quantize_ref, q4_0_dot_neon, q4_0_mul_mat_neon),
    KERNELS(LM_Q8_1, LM_Q4_1, q4_1_dequant_ref, q8_1_quantize_ref, q4_1_dot_neon, q4_1_mul_mat_neon),
    KERNELS(LM_Q8_0, LM_Q5_0, q5_0_dequant_ref, q8_0_quantize_ref, q5_0_dot_neon, q5_0_mul_mat_neon),
    KERNELS(LM_Q8_1, LM_Q5_1, q5_1_dequant_ref, q8_1_quantize_ref, q5_1_dot_neon, q5_1_mul_mat_neon),
    KERNELS(LM_Q8_0, LM_Q8_0, q8_0_dequant_ref, q8_0_quantize_ref, q8_0_dot_neon, q8_0_mul_mat_neon),
    KERNELS(LM_Q8_K, LM_Q2_K, q2_K_dequant_ref, q8_K_quantize_ref, q2_K_dot_neon, q2_K_mul_mat_neon),
    KERNELS(LM_Q8_K, LM_Q3_K, q3_K_dequant_ref, q8_K_quantize_ref, q3_K_dot_neon, q3_K_mul_mat_neon),
    KERNELS(LM_Q8_K, LM_Q4_K, q4_K_dequant_ref, q8_K_quantize_ref, q4_K_dot_neon, q4_K_mul_mat_neon),
    KERNELS(LM_Q8_K, LM_Q5_K, q5_K_dequant_ref, q8_K_quantize_ref, q5_K_dot_neon, q5_K_mul_mat_neon),
    KERNELS(LM_Q8_K, LM_Q6_K, q6_K_dequant_ref, q8_K_quantize_ref, q6_K_dot_neon, q6_K_mul_mat_neon),
};

/* every level above scalar is the NEON one where the CPU has it */
static const q_kernels *level_table(cpu_level level) {
    return level > CPU_SCALAR && cpu_level_best() == CPU_NEON ? TABLE_NEON : TABLE_SCALAR;
}
#else
static const q_kernels *level_table(cpu_level level) {
    (void)level;
    return TABLE_SCALAR;
}
#endif

const q_kernels *q_get_kernels_level(uint32_t type, cpu_level level) {
    if (type >= LM_DTYPE_COUNT) return NULL;
    const q_kernels *k = &level_table(level)[type];
    return k->dot ? k : NULL;
}

const q_kernels *q_get_kernels(uint32_t type) { return q_get_kernels_level(type, cpu_level_active()); }

size_t q_row_size(uint32_t type, int64_t n) {
    const int64_t bs = lm_dtype_block_size(type);
    return bs ? (size_t)(n / bs) * lm_dtype_type_size(type) : 0;
}

void q_quantize_ref(uint32_t type, const float *src, void *dst, int64_t n) {
    switch (type) {
    case LM_F32: f32_quantize_ref(src, dst, n); break;
    case LM_F16: f16_quantize_ref(src, dst, n); break;
    case LM_BF16: bf16_quantize_ref(src, dst, n); break;
    case LM_Q4_0: q4_0_quantize_ref(src, dst, n); break;
    case LM_Q4_1: q4_1_quantize_ref(src, dst, n); break;
    case LM_Q5_0: q5_0_quantize_ref(src, dst, n); break;
    case LM_Q5_1: q5_1_quantize_ref(src, dst, n); break;
    case LM_Q8_0: q8_0_quantize_ref(src, dst, n); break;
    case LM_Q8_1: q8_1_quantize_ref(src, dst, n); break;
    case LM_Q2_K: q2_K_quantize_ref(src, dst, n); break;
    case LM_Q3_K: q3_K_quantize_ref(src, dst, n); break;
    case LM_Q4_K: q4_K_quantize_ref(src, dst, n); break;
    case LM_Q5_K: q5_K_quantize_ref(src, dst, n); break;
    case LM_Q6_K: q6_K_quantize_ref(src, dst, n); break;
    case LM_Q8_K: q8_K_quantize_ref(src, dst, n); break;
    default: break;
    }
}
