/* ops.c - reference-quality CPU ops of the forward pass (norms, RoPE,
 * activations, attention, matmul over quantized weights). The heavy lifting
 * of matmul is in the quant kernels (quant.h); the f16 helpers have AVX2
 * versions in ops_avx2.c picked at run time. */
#include "backend/cpu/ops.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

#include "backend/cpu/quant.h"
#include "backend/cpu/quant_pack.h"
#include "backend/cpu/softmax_exp.h"
#include "base/cpu.h"
#include "base/threadpool.h"

void op_rmsnorm(float *y, const float *x, const float *w, int n, int dim, float eps, int ith, int nth) {
    long r0, r1;
    tp_split(n, ith, nth, &r0, &r1);
    for (long r = r0; r < r1; r++) {
        const float *xr = x + r * dim;
        float *yr = y + r * dim;
        /* ggml sums in double (ggml_float) */
        double sum = 0.0;
        for (int i = 0; i < dim; i++) sum += (double)(xr[i] * xr[i]);
        const float scale = 1.0f / sqrtf((float)(sum / dim) + eps);
        for (int i = 0; i < dim; i++) yr[i] = xr[i] * scale * w[i];
    }
}

void op_quantize_rows(uint32_t weight_type, const float *x, int n_tokens, int64_t ne0, void *xq, int ith, int nth) {
    const q_kernels *k = q_get_kernels(weight_type);
    const size_t row = q_row_size(k->act_type, ne0);
    long t0, t1;
    tp_split(n_tokens, ith, nth, &t0, &t1);
    for (long t = t0; t < t1; t++) k->quantize_act(x + t * ne0, (char *)xq + t * row, ne0);
}

/* Weight bytes per mul_mat call: the kernel prepares the activations once
 * per call and passes over its rows once per chunk of tokens, so the rows
 * should stay in L2 meanwhile. */
#define MATMUL_CHUNK_BYTES (256 * 1024)

void op_matmul(const cpu_matrix *w, const void *xq, int n_tokens, float *y, int64_t ld_y, int ith, int nth) {
    const q_kernels *k = q_get_kernels(w->type);
    const size_t xq_row = q_row_size(k->act_type, w->ne0);
    /* threads and chunks split units of rows: one row, or a packed block */
    const long unit = w->packed ? Q_PACK_ROWS : 1;
    long u0, u1;
    tp_split(w->ne1 / unit, ith, nth, &u0, &u1);
    long chunk = (long)(MATMUL_CHUNK_BYTES / (w->row_bytes ? w->row_bytes * unit : 1));
    if (chunk < 1) chunk = 1;
    for (long uc = u0; uc < u1; uc += chunk) {
        const long rc = uc * unit;
        const int n_rows = (int)((u1 - uc < chunk ? u1 - uc : chunk) * unit);
        if (w->packed)
            q_packed_mul_mat(w->type, w->ne0, w->packed, rc, n_rows, xq, xq_row, n_tokens, y + rc, ld_y);
        else
            k->mul_mat(w->ne0, (const char *)w->data + (size_t)rc * w->row_bytes, w->row_bytes, n_rows, xq, xq_row,
                       n_tokens, y + rc, ld_y);
    }
}

void op_get_row(const cpu_matrix *w, int64_t r, float *dst) {
    q_get_kernels(w->type)->dequantize((const char *)w->data + (size_t)r * w->row_bytes, dst, w->ne0);
}

void op_rope(float *x, int n_rot, int pos, float base, float pos_scale, bool neox, const float *freq_factors) {
    /* theta_i = pos * scale * base^(-2i/n_rot), as ggml's rope with ext_factor 0 */
    const float theta_scale = powf(base, -2.0f / (float)n_rot);
    float theta = (float)pos * pos_scale;
    const int half = n_rot / 2;
    for (int i = 0; i < half; i++) {
        float t = freq_factors ? theta / freq_factors[i] : theta;
        const float c = cosf(t), s = sinf(t);
        const int a = neox ? i : 2 * i;
        const int b = neox ? i + half : 2 * i + 1;
        const float x0 = x[a], x1 = x[b];
        x[a] = x0 * c - x1 * s;
        x[b] = x0 * s + x1 * c;
        theta *= theta_scale;
    }
}

void op_silu_mul(float *y, const float *g, const float *u, int n) {
    for (int i = 0; i < n; i++) y[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* GELU (tanh form) of every f16 value, rounded to f16: 128 KiB. As in
 * llama.cpp (GGML_GELU_FP16), the gate is rounded to f16 and looked up, so
 * the activation costs a load instead of a tanhf and matches its numbers. */
static lm_fp16 gelu_table[1 << 16];
static pthread_once_t gelu_once = PTHREAD_ONCE_INIT;

static float gelu_f32(float x) {
    const float sqrt_2_over_pi = 0.79788456080286535587989211986876f;
    return 0.5f * x * (1.0f + tanhf(sqrt_2_over_pi * x * (1.0f + 0.044715f * x * x)));
}

static void gelu_table_init(void) {
    for (uint32_t i = 0; i < (1u << 16); i++) gelu_table[i] = lm_fp32_to_fp16(gelu_f32(lm_fp16_to_fp32((lm_fp16)i)));
}

void op_gelu_mul(float *y, const float *g, const float *u, int n) {
    pthread_once(&gelu_once, gelu_table_init);
    for (int i = 0; i < n; i++) {
        const float x = g[i];
        if (x <= -10.0f) y[i] = 0.0f;
        else if (x >= 10.0f) y[i] = x * u[i];
        else y[i] = lm_fp16_to_fp32(gelu_table[lm_fp32_to_fp16(x)]) * u[i];
    }
}

#ifndef LAMINA_NO_X86
void op_attend_chunk_avx2(float *out, size_t out_stride, size_t head_stride, bool stats, const float *q,
                          size_t q_stride, int n_tok, int n_heads, const lm_fp16 *const *keys,
                          const lm_fp16 *const *values, int n_kv0, int chunk, int head_dim, float scale, float softcap,
                          float *scratch);
#endif

/* one head over n_kv keys (at most a chunk), the reference (and the path
 * without AVX2); STATS: NULL, or where the maximum and sum go */
static void attend_one(float *out, float *stats, const float *q, const lm_fp16 *const *keys,
                       const lm_fp16 *const *values, int n_kv, int head_dim, float scale, float softcap,
                       float *scratch) {
    /* Q and the attention weights are rounded to f16 before they meet the f16
     * cache, as llama.cpp's K*Q and V*softmax products do (f16 x f16 dots
     * with f32 sums); it costs nothing and keeps us within its tolerance. */
    float q16[OP_MAX_HEAD_DIM];
    for (int i = 0; i < head_dim; i++) q16[i] = lm_fp16_to_fp32(lm_fp32_to_fp16(q[i]));
    float max = -INFINITY;
    for (int j = 0; j < n_kv; j++) {
        float s = op_dot_f32_f16(q16, keys[j], head_dim) * scale;
        if (softcap > 0.0f) s = softcap * tanhf(s / softcap);
        scratch[j] = s;
        if (s > max) max = s;
    }
    op_exp_shifted(scratch, n_kv, max);
    double sum = 0.0;
    for (int j = 0; j < n_kv; j++) sum += scratch[j];
    if (stats) op_attend_stats_put(stats, max, sum);
    const float inv = (float)(1.0 / sum);
    memset(out, 0, sizeof(float) * (size_t)head_dim);
    for (int j = 0; j < n_kv; j++)
        op_axpy_f16(out, lm_fp16_to_fp32(lm_fp32_to_fp16(scratch[j] * inv)), values[j], head_dim);
}

/* chunk CHUNK of every query that has keys there: (t, h) to out + t *
 * out_stride + h * head_stride, with its maximum and sum after it if STATS */
static void attend_chunk(float *out, size_t out_stride, size_t head_stride, bool stats, const float *q,
                         size_t q_stride, int n_tok, int n_heads, const lm_fp16 *const *keys,
                         const lm_fp16 *const *values, int n_kv0, int chunk, int head_dim, float scale, float softcap,
                         float *scratch) {
#ifndef LAMINA_NO_X86
    if (cpu_level_active() >= CPU_AVX2 && head_dim % 8 == 0) {
        op_attend_chunk_avx2(out, out_stride, head_stride, stats, q, q_stride, n_tok, n_heads, keys, values, n_kv0,
                             chunk, head_dim, scale, softcap, scratch);
        return;
    }
#endif
    const int first = chunk * OP_ATT_CHUNK;
    for (int t = 0; t < n_tok; t++) {
        const int n_kv = n_kv0 + t - first;
        if (n_kv <= 0) continue;
        for (int g = 0; g < n_heads; g++) {
            float *o = out + t * out_stride + (size_t)g * head_stride;
            attend_one(o, stats ? o + head_dim : NULL, q + t * q_stride + (size_t)g * head_dim, keys + first,
                       values + first, n_kv < OP_ATT_CHUNK ? n_kv : OP_ATT_CHUNK, head_dim, scale, softcap, scratch);
        }
    }
}

static int att_chunks(int n_kv) { return (n_kv + OP_ATT_CHUNK - 1) / OP_ATT_CHUNK; }

size_t op_attend_scratch_floats(int n_tok, int n_heads, int n_kv_max, int head_dim) {
    const size_t n_vec = (size_t)n_tok * (size_t)n_heads;
    const size_t scores = n_vec * (size_t)(n_kv_max < OP_ATT_CHUNK ? n_kv_max : OP_ATT_CHUNK);
    const int n_chunks = att_chunks(n_kv_max);
    return scores + (n_chunks > 1 ? n_vec * (size_t)n_chunks * (size_t)(head_dim + OP_ATT_PART_EXTRA) : 0);
}

void op_attend_chunk(float *part, size_t part_stride, size_t head_stride, const float *q, size_t q_stride, int n_tok,
                     int n_heads, const lm_fp16 *const *keys, const lm_fp16 *const *values, int n_kv0, int chunk,
                     int head_dim, float scale, float softcap, float *scratch) {
    attend_chunk(part, part_stride, head_stride, true, q, q_stride, n_tok, n_heads, keys, values, n_kv0, chunk,
                 head_dim, scale, softcap, scratch);
}

void op_attend_fold(float *out, const float *parts, size_t chunk_stride, int n_chunks, int head_dim) {
    float m;
    double l;
    op_attend_stats_get(parts + head_dim, &m, &l);
    if (out != parts) memcpy(out, parts, sizeof(float) * (size_t)head_dim);
    for (int c = 1; c < n_chunks; c++) {
        const float *p = parts + (size_t)c * chunk_stride;
        float mc;
        double lc;
        op_attend_stats_get(p + head_dim, &mc, &lc);
        /* the running (max, sum) and the chunk's rescaled to the larger
         * maximum; o stays normalized: out = out * (its share) + o_c * (the
         * chunk's share), each product rounded on its own */
        const float mn = m > mc ? m : mc;
        const double la = l * (double)softmax_exp(m - mn), lb = lc * (double)softmax_exp(mc - mn), ln = la + lb;
        const float fa = (float)(la / ln), fb = (float)(lb / ln);
        for (int i = 0; i < head_dim; i++) {
            const float a = out[i] * fa, b = p[i] * fb;
            out[i] = a + b;
        }
        m = mn;
        l = ln;
    }
}

void op_attend_tokens(float *out, size_t out_stride, const float *q, size_t q_stride, int n_tok, int n_heads,
                      const lm_fp16 *const *keys, const lm_fp16 *const *values, int n_kv0, int head_dim, float scale,
                      float softcap, float *scratch) {
    const int n_kv_max = n_kv0 + n_tok - 1, n_chunks = att_chunks(n_kv_max);
    if (n_chunks <= 1) { /* one two-pass softmax, straight into out */
        attend_chunk(out, out_stride, (size_t)head_dim, false, q, q_stride, n_tok, n_heads, keys, values, n_kv0, 0,
                     head_dim, scale, softcap, scratch);
        return;
    }
    /* every chunk's partials after the scores, then each query's fold */
    const size_t n_vec = (size_t)n_tok * (size_t)n_heads, pw = (size_t)(head_dim + OP_ATT_PART_EXTRA);
    float *parts = scratch + n_vec * OP_ATT_CHUNK;
    for (int c = 0; c < n_chunks; c++)
        attend_chunk(parts + c * pw, (size_t)n_heads * n_chunks * pw, n_chunks * pw, true, q, q_stride, n_tok,
                     n_heads, keys, values, n_kv0, c, head_dim, scale, softcap, scratch);
    for (int t = 0; t < n_tok; t++)
        for (int g = 0; g < n_heads; g++)
            op_attend_fold(out + t * out_stride + (size_t)g * head_dim, parts + ((size_t)t * n_heads + g) * n_chunks * pw,
                           pw, att_chunks(n_kv0 + t), head_dim);
}

void op_attend(float *out, const float *q, int n_heads, const lm_fp16 *const *keys, const lm_fp16 *const *values,
               int n_kv, int head_dim, float scale, float softcap, float *scratch) {
    op_attend_tokens(out, 0, q, 0, 1, n_heads, keys, values, n_kv, head_dim, scale, softcap, scratch);
}
