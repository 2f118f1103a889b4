/* quant_impl.h - the per-level kernels behind quant.h's tables (internal to
 * backend/cpu: only the quant*.c files include it).
 *
 * Naming: <type>_<op>_<level>. _ref is the scalar reference (ggml's
 * dequantize_row_* / quantize_row_*_ref / ggml_vec_dot_*_generic semantics),
 * _avx2, _avx512 and _neon the SIMD versions (defined in files compiled with
 * those ISA flags; call them only at a level the CPU has). Signatures are those of
 * q_kernels: dequant(src, dst, n), quantize(src, dst, n), dot(n, w, act),
 * mul_mat(n, w, w_stride, n_rows, act, act_stride, n_tok, out, ld_out).
 * Kernels without a mul_mat of their own get one that loops over dot
 * (quant_dispatch.c). */
#ifndef LAMINA_BACKEND_CPU_QUANT_IMPL_H
#define LAMINA_BACKEND_CPU_QUANT_IMPL_H

#include <stddef.h>
#include <stdint.h>

#define Q_DECLARE_DEQUANT(type, level) void type##_dequant_##level(const void *src, float *dst, int64_t n);
#define Q_DECLARE_QUANTIZE(type, level) void type##_quantize_##level(const float *src, void *dst, int64_t n);
#define Q_DECLARE_DOT(type, level) float type##_dot_##level(int64_t n, const void *w, const void *act);
#define Q_DECLARE_WEIGHT(type, level) Q_DECLARE_DEQUANT(type, level) Q_DECLARE_DOT(type, level)
#define Q_DECLARE_MUL_MAT(type, level)                                                                           \
    void type##_mul_mat_##level(int64_t n, const void *w, size_t w_stride, int n_rows, const void *act,          \
                                size_t act_stride, int n_tok, float *out, int64_t ld_out);

/* scalar references: every type */
Q_DECLARE_WEIGHT(f32, ref)
Q_DECLARE_WEIGHT(f16, ref)
Q_DECLARE_WEIGHT(bf16, ref)
Q_DECLARE_WEIGHT(q4_0, ref)
Q_DECLARE_WEIGHT(q4_1, ref)
Q_DECLARE_WEIGHT(q5_0, ref)
Q_DECLARE_WEIGHT(q5_1, ref)
Q_DECLARE_WEIGHT(q8_0, ref)
Q_DECLARE_WEIGHT(q2_K, ref)
Q_DECLARE_WEIGHT(q3_K, ref)
Q_DECLARE_WEIGHT(q4_K, ref)
Q_DECLARE_WEIGHT(q5_K, ref)
Q_DECLARE_WEIGHT(q6_K, ref)
/* activation quantizers (also the weight quantizer of q8_0) */
Q_DECLARE_QUANTIZE(f32, ref)
Q_DECLARE_QUANTIZE(f16, ref)
Q_DECLARE_QUANTIZE(bf16, ref)
Q_DECLARE_QUANTIZE(q8_0, ref)
Q_DECLARE_QUANTIZE(q8_1, ref)
Q_DECLARE_QUANTIZE(q8_K, ref)
/* weight quantizers for tests (round to nearest; k-quants as ggml's *_ref) */
Q_DECLARE_QUANTIZE(q4_0, ref)
Q_DECLARE_QUANTIZE(q4_1, ref)
Q_DECLARE_QUANTIZE(q5_0, ref)
Q_DECLARE_QUANTIZE(q5_1, ref)
Q_DECLARE_QUANTIZE(q2_K, ref)
Q_DECLARE_QUANTIZE(q3_K, ref)
Q_DECLARE_QUANTIZE(q4_K, ref)
Q_DECLARE_QUANTIZE(q5_K, ref)
Q_DECLARE_QUANTIZE(q6_K, ref)

/* AVX2 (+FMA, F16C): every type */
Q_DECLARE_WEIGHT(f32, avx2)
Q_DECLARE_WEIGHT(f16, avx2)
Q_DECLARE_WEIGHT(bf16, avx2)
Q_DECLARE_WEIGHT(q4_0, avx2)
Q_DECLARE_WEIGHT(q4_1, avx2)
Q_DECLARE_WEIGHT(q5_0, avx2)
Q_DECLARE_WEIGHT(q5_1, avx2)
Q_DECLARE_WEIGHT(q8_0, avx2)
Q_DECLARE_WEIGHT(q2_K, avx2)
Q_DECLARE_WEIGHT(q3_K, avx2)
Q_DECLARE_WEIGHT(q4_K, avx2)
Q_DECLARE_WEIGHT(q5_K, avx2)
Q_DECLARE_WEIGHT(q6_K, avx2)
Q_DECLARE_MUL_MAT(f32, avx2)
Q_DECLARE_MUL_MAT(f16, avx2)
Q_DECLARE_MUL_MAT(bf16, avx2)
Q_DECLARE_MUL_MAT(q4_0, avx2)
Q_DECLARE_MUL_MAT(q4_1, avx2)
Q_DECLARE_MUL_MAT(q5_0, avx2)
Q_DECLARE_MUL_MAT(q5_1, avx2)
Q_DECLARE_MUL_MAT(q8_0, avx2)
Q_DECLARE_MUL_MAT(q4_K, avx2)
Q_DECLARE_MUL_MAT(q5_K, avx2)
Q_DECLARE_MUL_MAT(q6_K, avx2)
Q_DECLARE_QUANTIZE(f16, avx2)
Q_DECLARE_QUANTIZE(bf16, avx2)
Q_DECLARE_QUANTIZE(q8_0, avx2)
Q_DECLARE_QUANTIZE(q8_1, avx2)
Q_DECLARE_QUANTIZE(q8_K, avx2)

/* AVX-512 (F/BW/DQ/VL + VNNI): the float types and the hot decode types; the rest reuse AVX2 */
Q_DECLARE_DOT(f32, avx512)
Q_DECLARE_DOT(f16, avx512)
Q_DECLARE_DOT(bf16, avx512)
Q_DECLARE_MUL_MAT(f32, avx512)
Q_DECLARE_MUL_MAT(f16, avx512)
Q_DECLARE_MUL_MAT(bf16, avx512)
Q_DECLARE_DOT(q4_0, avx512)
Q_DECLARE_DOT(q4_1, avx512)
Q_DECLARE_DOT(q5_0, avx512)
Q_DECLARE_DOT(q5_1, avx512)
Q_DECLARE_DOT(q8_0, avx512)
Q_DECLARE_MUL_MAT(q4_0, avx512)
Q_DECLARE_MUL_MAT(q4_1, avx512)
Q_DECLARE_MUL_MAT(q5_0, avx512)
Q_DECLARE_MUL_MAT(q5_1, avx512)
Q_DECLARE_MUL_MAT(q8_0, avx512)
Q_DECLARE_DOT(q4_K, avx512)
Q_DECLARE_DOT(q5_K, avx512)
Q_DECLARE_DOT(q6_K, avx512)
Q_DECLARE_MUL_MAT(q4_K, avx512)
Q_DECLARE_MUL_MAT(q5_K, avx512)
Q_DECLARE_MUL_MAT(q6_K, avx512)

/* quant_neon.c (aarch64, NEON + dotprod) */
Q_DECLARE_DOT(f32, neon)
Q_DECLARE_DOT(f16, neon)
Q_DECLARE_DOT(bf16, neon)
Q_DECLARE_MUL_MAT(f32, neon)
Q_DECLARE_MUL_MAT(f16, neon)
Q_DECLARE_MUL_MAT(bf16, neon)
Q_DECLARE_DOT(q4_0, neon)
Q_DECLARE_DOT(q4_1, neon)
Q_DECLARE_DOT(q5_0, neon)
Q_DECLARE_DOT(q5_1, neon)
Q_DECLARE_DOT(q8_0, neon)
Q_DECLARE_MUL_MAT(q4_0, neon)
Q_DECLARE_MUL_MAT(q4_1, neon)
Q_DECLARE_MUL_MAT(q5_0, neon)
Q_DECLARE_MUL_MAT(q5_1, neon)
Q_DECLARE_MUL_MAT(q8_0, neon)
Q_DECLARE_DOT(q4_K, neon)
Q_DECLARE_DOT(q5_K, neon)
Q_DECLARE_DOT(q6_K, neon)
Q_DECLARE_MUL_MAT(q4_K, neon)
Q_DECLARE_MUL_MAT(q5_K, neon)
Q_DECLARE_MUL_MAT(q6_K, neon)
Q_DECLARE_DOT(q2_K, neon)
Q_DECLARE_DOT(q3_K, neon)

#endif
