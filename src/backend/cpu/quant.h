/* quant.h - quantized tensor formats: dequantization, dots, matrix products.
 *
 * The block layouts are those of GGUF files (ggml's block_q4_0, block_q4_K,
 * ...), bit for bit. A matrix-vector product W x is computed as in ggml: the
 * activation row x is first quantized once to the weight type's "activation
 * type" (Q8_0 for q4_0/q5_0/q8_0, Q8_1 for q4_1/q5_1, Q8_K for the k-quants,
 * F16 for f16, BF16 for bf16, F32 for f32), then each weight row is dotted
 * with it using integer arithmetic where possible.
 *
 * Every kernel has a scalar reference and AVX2 / AVX-512 versions; the level
 * is chosen once (base/cpu.h). Dequantization and quantize_act give the same
 * bytes at every level (and as ggml's reference code); dots differ between
 * levels only in the order of float additions. Within a level, mul_mat (many
 * rows times many tokens: weights unpacked once for several tokens,
 * activations prepared once for many rows) computes every (row, token) with
 * exactly the float steps of dot. The AVX-512 level needs VNNI
 * (an AVX-512 CPU without it gets the AVX2 kernels); types without 512-bit
 * kernels use the AVX2 ones there.
 *
 * Row lengths n must be multiples of the type's block size (f32/f16/bf16: any
 * n). Rows may sit anywhere a GGUF file puts them (2-byte alignment, 4 for
 * f32); q8_K activation rows need 4-byte alignment. Kernels are pure
 * functions and the tables immutable: safe from any thread. mul_mat keeps
 * its scratch (prepared activations) on the stack, at most 64 KiB. q4_K and
 * q6_K matrices may also be repacked at load for their own kernels
 * (quant_pack.h); a packed matrix is then read by those alone. */
#ifndef LAMINA_BACKEND_CPU_QUANT_H
#define LAMINA_BACKEND_CPU_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "base/cpu.h"
#include "base/dtype.h"

typedef struct q_kernels {
    uint32_t act_type; /* lm_dtype the activations are converted to */
    /* n elements of this type at src -> n floats at dst */
    void (*dequantize)(const void *src, float *dst, int64_t n);
    /* n floats -> one row of act_type at dst (q_row_size(act_type, n) bytes) */
    void (*quantize_act)(const float *src, void *dst, int64_t n);
    /* dot of one weight row (this type) with one activation row (act_type) */
    float (*dot)(int64_t n, const void *w_row, const void *act_row);
    /* out[t * ld_out + r] = dot(n, w + r * w_stride, act + t * act_stride)
     * for r < n_rows, t < n_tok, bit for bit: any split of a product into
     * calls (rows, tokens, threads) gives the same floats as the dots, so a
     * token's logits do not depend on what else is in its batch. */
    void (*mul_mat)(int64_t n, const void *w, size_t w_stride, int n_rows, const void *act, size_t act_stride,
                    int n_tok, float *out, int64_t ld_out);
} q_kernels;

/* kernels of TYPE at the active level; NULL if TYPE is unsupported */
const q_kernels *q_get_kernels(uint32_t type);
/* kernels of TYPE at a given level (tests compare levels); a level the CPU
 * lacks falls back to the best one below it */
const q_kernels *q_get_kernels_level(uint32_t type, cpu_level level);

/* bytes of a row of n elements of TYPE */
size_t q_row_size(uint32_t type, int64_t n);

/* Reference quantizers (scalar, as ggml's quantize_row_*_ref: round to
 * nearest for the 32-element types, ggml's scale searches for the k-quants)
 * for every type including q8_1 / q8_K, used by tests to build realistic
 * blocks: n floats -> q_row_size(type, n) bytes at dst. Unknown types: no-op. */
void q_quantize_ref(uint32_t type, const float *src, void *dst, int64_t n);

#endif
