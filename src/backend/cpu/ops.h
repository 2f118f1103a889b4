/* ops.h - the CPU operations of a forward pass.
 *
 * Every op takes (ith, nth): it is called by each of the nth threads of a
 * team (base/threadpool.h) and does share ith of the work. Shapes are given
 * in comments as (rows, cols), row-major, f32 unless said otherwise. */
#ifndef LAMINA_BACKEND_CPU_OPS_H
#define LAMINA_BACKEND_CPU_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/fp16.h"

/* a 2-D weight in its file layout: rows of ne0 elements of `type` */
typedef struct cpu_matrix {
    const void *data;
    uint32_t type;
    int64_t ne0, ne1;   /* elements per row, rows */
    size_t row_bytes;
    const void *packed; /* NULL, or the rows repacked for the batched kernels (quant_pack.h) */
} cpu_matrix;

/* y = x * w / rms(x) for each of n rows: x, y (n, dim); w (dim); in place ok */
void op_rmsnorm(float *y, const float *x, const float *w, int n, int dim, float eps, int ith, int nth);

/* Quantizes n_tokens rows of x (n_tokens, ne0) to the activation type of
 * weight_type into xq, each row q_row_size(act_type, ne0) bytes. */
void op_quantize_rows(uint32_t weight_type, const float *x, int n_tokens, int64_t ne0, void *xq, int ith, int nth);

/* y[t][r] = dot(w row r, xq row t) for this thread's share of rows r.
 * xq: activations already quantized to w's act type; y: (n_tokens, ld_y). */
void op_matmul(const cpu_matrix *w, const void *xq, int n_tokens, float *y, int64_t ld_y, int ith, int nth);

/* dequantized row r of w into dst (ne0) */
void op_get_row(const cpu_matrix *w, int64_t r, float *dst);

/* RoPE in place on one head vector x (head_dim), rotating the first n_rot
 * dims; neox: rotate halves, else adjacent pairs. freq_factors: optional
 * (n_rot/2) divisors of the frequencies. */
void op_rope(float *x, int n_rot, int pos, float base, float pos_scale, bool neox, const float *freq_factors);

/* y = silu(g) * u, or gelu_tanh(g) * u; (n) */
void op_silu_mul(float *y, const float *g, const float *u, int n);
void op_gelu_mul(float *y, const float *g, const float *u, int n);

#define OP_MAX_HEAD_DIM 1024 /* the model loader rejects larger heads */

/* Attention of one query head over its keys is defined in chunks of
 * OP_ATT_CHUNK keys from its first: each chunk is a two-pass softmax of its
 * own (scores, their maximum, exponentials, their sum in double in key
 * order, weights rounded to f16, V summed in key order: the chunk's
 * partial, o with its maximum and sum), and a query with more than one
 * chunk folds the partials in chunk order (op_attend_fold). The chunks of
 * one query may run on different threads (flash-decoding: op_attend_chunk,
 * then op_attend_fold) or all in one call (op_attend_tokens): the same
 * arithmetic, so the same bits. Up to OP_ATT_CHUNK keys it is one two-pass
 * softmax, as llama.cpp's attention without flash attention computes it. */
#define OP_ATT_CHUNK 1024
/* a partial takes head_dim + OP_ATT_PART_EXTRA floats: o, then the chunk's
 * score maximum, then (two floats) the double sum of its exponentials */
#define OP_ATT_PART_EXTRA 4

/* Attention of N_HEADS adjacent query heads of one GQA group (they share
 * one K/V head) over n_kv cached positions. q (n_heads, head_dim) and out
 * (n_heads, head_dim), heads contiguous; keys[j] / values[j]: pointers to
 * the f16 K and V vectors of position j, (n_kv); scratch
 * op_attend_scratch_floats(1, n_heads, n_kv, head_dim). softcap 0 = none.
 * Each K and V row is converted once for the whole group; every head's
 * result is bit-identical to attending it alone. */
void op_attend(float *out, const float *q, int n_heads, const lm_fp16 *const *keys, const lm_fp16 *const *values,
               int n_kv, int head_dim, float scale, float softcap, float *scratch);

/* op_attend for n_tok consecutive tokens of one sequence: token t has its
 * queries at q + t * q_stride and its output at out + t * out_stride (both
 * (n_heads, head_dim)) and sees keys [0, n_kv0 + t); scratch
 * op_attend_scratch_floats(n_tok, n_heads, n_kv0 + n_tok - 1, head_dim).
 * Each K/V row is converted once for all of them; every (token, head)
 * result is bit-identical to op_attend of that token alone. */
void op_attend_tokens(float *out, size_t out_stride, const float *q, size_t q_stride, int n_tok, int n_heads,
                      const lm_fp16 *const *keys, const lm_fp16 *const *values, int n_kv0, int head_dim, float scale,
                      float softcap, float *scratch);

/* floats of scratch op_attend_tokens / op_attend_chunk need */
size_t op_attend_scratch_floats(int n_tok, int n_heads, int n_kv_max, int head_dim);

/* The partials of chunk CHUNK (keys [CHUNK * OP_ATT_CHUNK, ...)) for the
 * queries of op_attend_tokens that have keys there: (token t, head h)'s
 * goes to part + t * part_stride + h * head_stride, head_dim +
 * OP_ATT_PART_EXTRA floats. keys / values as for op_attend_tokens (all of
 * the token's, from its first; only the chunk's are read). */
void op_attend_chunk(float *part, size_t part_stride, size_t head_stride, const float *q, size_t q_stride, int n_tok,
                     int n_heads, const lm_fp16 *const *keys, const lm_fp16 *const *values, int n_kv0, int chunk,
                     int head_dim, float scale, float softcap, float *scratch);

/* out (head_dim) = the fold of N_CHUNKS partials in chunk order, partial c
 * at parts + c * chunk_stride; out may be the first partial */
void op_attend_fold(float *out, const float *parts, size_t chunk_stride, int n_chunks, int head_dim);

/* a partial's maximum and double sum, after its head_dim floats */
static inline void op_attend_stats_put(float *stats, float max, double sum) {
    stats[0] = max;
    memcpy(stats + 1, &sum, sizeof(sum));
}
static inline void op_attend_stats_get(const float *stats, float *max, double *sum) {
    *max = stats[0];
    memcpy(sum, stats + 1, sizeof(*sum));
}

/* dot of f32 x with f16 y, n elements */
float op_dot_f32_f16(const float *x, const lm_fp16 *y, int n);
/* y += a * x (f16 x) */
void op_axpy_f16(float *y, float a, const lm_fp16 *x, int n);
void op_f32_to_f16(lm_fp16 *dst, const float *src, int n);
/* w[j] = softmax_exp(w[j] - shift) (softmax_exp.h), the same bits at every level */
void op_exp_shifted(float *w, int n, float shift);

#endif
