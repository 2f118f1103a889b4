/* ops_f16_avx2.c - AVX2/F16C versions of the f16 helpers in ops_f16.c. */
#include <immintrin.h>
#include <math.h>

#include "backend/cpu/ops.h"
#include "backend/cpu/softmax_exp.h"

/* the horizontal sum of the dots, one fixed tree (lanes l + 4, l + 2, l + 1):
 * the attention tiles below sum in it too */
static inline float hsum(__m256 acc) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

float op_dot_f32_f16_avx2(const float *x, const lm_fp16 *y, int n) {
    __m256 acc = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 yv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + i)));
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), yv, acc);
    }
    float sum = hsum(acc);
    for (; i < n; i++) sum += x[i] * lm_fp16_to_fp32(y[i]);
    return sum;
}

void op_axpy_f16_avx2(float *y, float a, const lm_fp16 *x, int n) {
    const __m256 av = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 xv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i)));
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, xv, _mm256_loadu_ps(y + i)));
    }
    for (; i < n; i++) y[i] += a * lm_fp16_to_fp32(x[i]);
}

void op_f32_to_f16_avx2(lm_fp16 *dst, const float *src, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), 0));
    for (; i < n; i++) dst[i] = lm_fp32_to_fp16(src[i]);
}

void op_exp_shifted_avx2(float *w, int n, float shift) {
    const __m256 sv = _mm256_set1_ps(shift);
    int j = 0;
    for (; j + 8 <= n; j += 8) _mm256_storeu_ps(w + j, softmax_exp8(_mm256_sub_ps(_mm256_loadu_ps(w + j), sv)));
    for (; j < n; j++) w[j] = softmax_exp(w[j] - shift);
}

/* Query vectors attended together: the heads of a GQA group and
 * consecutive tokens of one sequence, which share one K/V head and their
 * keys. Their accumulators stay in registers while a K or V row chunk is
 * converted once for all of them. */
#define Q_TILE 8
#define KEY_TILE 2
/* keys side by side for NQ queries: at most 8 dot accumulators */
#define NQ_KEYS(NQ) ((NQ) <= 4 ? 2 : 1)

/* x rounded to f16 and back by F16C: for every non-NaN float the value of
 * lm_fp16_to_fp32(lm_fp32_to_fp16(x)), round to nearest even, in 2 µops */
static inline float round_f16(float x) { return _cvtsh_ss(_cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT)); }

#define ATT_INLINE static inline __attribute__((always_inline))
#define ATT_UNROLL _Pragma("GCC unroll 8")

/* one query vector of a tile */
typedef struct {
    const float *q; /* (head_dim) */
    float *out;     /* (head_dim) */
    float *w;       /* (n_kv): scores, then weights */
    int n_kv;       /* it sees keys [0, n_kv) */
    float *stats;   /* NULL, or where its score maximum and (a double, after it) exponential sum go */
} att_query;

/* the dots of NQ queries (rounded, at q16[v]) with KT keys from key j */
ATT_INLINE void k_dots(int NQ, int KT, const float *const *q16, const lm_fp16 *const *keys, int j, int head_dim,
                       __m256 (*acc)[KEY_TILE]) {
    ATT_UNROLL
    for (int v = 0; v < NQ; v++)
        ATT_UNROLL
        for (int k = 0; k < KT; k++) acc[v][k] = _mm256_setzero_ps();
    for (int i = 0; i < head_dim; i += 8) {
        ATT_UNROLL
        for (int k = 0; k < KT; k++) {
            const __m256 kv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(keys[j + k] + i)));
            ATT_UNROLL
            for (int v = 0; v < NQ; v++) acc[v][k] = _mm256_fmadd_ps(_mm256_loadu_ps(q16[v] + i), kv, acc[v][k]);
        }
    }
}

/* The horizontal sums of 8 vectors at once, each the bits of hsum(): lane
 * halves added (l + 4), then l + 2, then l + 1, as hsum does, on a
 * transposed layout. Result lanes: vectors 0, 2, 4, 6, 1, 3, 5, 7. */
static inline __m256 hsum8(const __m256 a[8]) {
    __m256 p[4];
    for (int i = 0; i < 4; i++) /* [u(a_2i) | u(a_2i+1)], u(x) = lo(x) + hi(x) */
        p[i] = _mm256_add_ps(_mm256_permute2f128_ps(a[2 * i], a[2 * i + 1], 0x20),
                             _mm256_permute2f128_ps(a[2 * i], a[2 * i + 1], 0x31));
    const __m256 q0 = _mm256_add_ps(_mm256_shuffle_ps(p[0], p[1], 0x44), _mm256_shuffle_ps(p[0], p[1], 0xEE));
    const __m256 q1 = _mm256_add_ps(_mm256_shuffle_ps(p[2], p[3], 0x44), _mm256_shuffle_ps(p[2], p[3], 0xEE));
    return _mm256_add_ps(_mm256_shuffle_ps(q0, q1, 0x88), _mm256_shuffle_ps(q0, q1, 0xDD));
}

/* where hsum8 puts vector i */
static const int HSUM8_LANE[8] = {0, 4, 1, 5, 2, 6, 3, 7};

static inline void score(const att_query *a, int j, __m256 acc, float scale, float softcap, float *max) {
    float s = hsum(acc) * scale;
    if (softcap > 0.0f) s = softcap * tanhf(s / softcap);
    a->w[j] = s;
    if (s > *max) *max = s;
}

/* the scores of NQ queries with KT keys from key j (acc from k_dots): 8 of
 * them at once in hsum8 where there are exactly 8 and no softcap */
ATT_INLINE void scores(int NQ, int KT, const att_query *aq, int j, __m256 (*acc)[KEY_TILE], float scale,
                       float softcap, float *max) {
    if (NQ * KT == 8 && softcap <= 0.0f) {
        __m256 all[8];
        ATT_UNROLL
        for (int v = 0; v < NQ; v++)
            ATT_UNROLL
            for (int k = 0; k < KT; k++) all[v * KT + k] = acc[v][k];
        float sc[8];
        _mm256_storeu_ps(sc, _mm256_mul_ps(hsum8(all), _mm256_set1_ps(scale)));
        ATT_UNROLL
        for (int v = 0; v < NQ; v++)
            ATT_UNROLL
            for (int k = 0; k < KT; k++) {
                const float x = sc[HSUM8_LANE[v * KT + k]];
                aq[v].w[j + k] = x;
                if (x > max[v]) max[v] = x;
            }
        return;
    }
    for (int k = 0; k < KT; k++)
        for (int v = 0; v < NQ; v++) score(&aq[v], j + k, acc[v][k], scale, softcap, &max[v]);
}

/* out_v[i0 .. i0 + 8 NC) = sum over j ascending of w_v[j] * V_j, per element:
 * keys below n_min for all queries at once, then each query's last ones */
ATT_INLINE void v_sums(int NQ, int NC, const att_query *aq, int n_min, int i0, const lm_fp16 *const *values) {
    __m256 acc[Q_TILE][4];
    ATT_UNROLL
    for (int v = 0; v < NQ; v++)
        ATT_UNROLL
        for (int c = 0; c < NC; c++) acc[v][c] = _mm256_setzero_ps();
    for (int j = 0; j < n_min; j++) {
        __m256 vv[4];
        ATT_UNROLL
        for (int c = 0; c < NC; c++) vv[c] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(values[j] + i0 + 8 * c)));
        ATT_UNROLL
        for (int v = 0; v < NQ; v++) {
            const __m256 wv = _mm256_set1_ps(aq[v].w[j]);
            ATT_UNROLL
            for (int c = 0; c < NC; c++) acc[v][c] = _mm256_fmadd_ps(wv, vv[c], acc[v][c]);
        }
    }
    ATT_UNROLL
    for (int v = 0; v < NQ; v++) {
        for (int j = n_min; j < aq[v].n_kv; j++) {
            const __m256 wv = _mm256_set1_ps(aq[v].w[j]);
            ATT_UNROLL
            for (int c = 0; c < NC; c++)
                acc[v][c] = _mm256_fmadd_ps(wv, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(values[j] + i0 + 8 * c))),
                                            acc[v][c]);
        }
        ATT_UNROLL
        for (int c = 0; c < NC; c++) _mm256_storeu_ps(aq[v].out + i0 + 8 * c, acc[v][c]);
    }
}

/* NQ <= Q_TILE query vectors (a compile-time constant), HEAD_DIM a multiple
 * of 8. Each query's K dots, softmax and V sums run the operations of
 * op_attend's one-head path in the same order (dot: FMAs over 8-wide
 * chunks, then the same horizontal sum; V: out += w_j * V_j for j ascending
 * per element), so the results are bit-identical to attending it alone; only
 * the conversions and loads of K/V rows are shared, several keys and column
 * chunks run side by side, and there is no call per position. */
ATT_INLINE void attend_tile(int NQ, const att_query *aq, const lm_fp16 *const *keys, const lm_fp16 *const *values,
                            int head_dim, float scale, float softcap) {
    float q16[Q_TILE][OP_MAX_HEAD_DIM];
    const float *qp[Q_TILE];
    int n_min = aq[0].n_kv;
    for (int v = 0; v < NQ; v++) {
        for (int i = 0; i < head_dim; i++) q16[v][i] = round_f16(aq[v].q[i]);
        qp[v] = q16[v];
        if (aq[v].n_kv < n_min) n_min = aq[v].n_kv;
    }
    float max[Q_TILE];
    for (int v = 0; v < NQ; v++) max[v] = -INFINITY;
    const int KT = NQ_KEYS(NQ);
    for (int j = 0; j < n_min;) {
        __m256 acc[Q_TILE][KEY_TILE];
        if (KT > 1 && n_min - j >= KT) {
            k_dots(NQ, KT, qp, keys, j, head_dim, acc);
            scores(NQ, KT, aq, j, acc, scale, softcap, max);
            j += KT;
        } else {
            k_dots(NQ, 1, qp, keys, j, head_dim, acc);
            scores(NQ, 1, aq, j, acc, scale, softcap, max);
            j++;
        }
    }
    for (int v = 0; v < NQ; v++)
        for (int j = n_min; j < aq[v].n_kv; j++) { /* a later token's last keys */
            __m256 acc[1][KEY_TILE];
            k_dots(1, 1, &qp[v], keys, j, head_dim, acc);
            score(&aq[v], j, acc[0][0], scale, softcap, &max[v]);
        }
    /* the exponentials, 8 at a time; then each query's sum in key order, the
     * queries' sums side by side (independent chains of double additions) */
    for (int v = 0; v < NQ; v++) op_exp_shifted_avx2(aq[v].w, aq[v].n_kv, max[v]);
    double sum[Q_TILE];
    ATT_UNROLL
    for (int v = 0; v < NQ; v++) sum[v] = 0.0;
    for (int j = 0; j < n_min; j++)
        ATT_UNROLL
        for (int v = 0; v < NQ; v++) sum[v] += aq[v].w[j];
    for (int v = 0; v < NQ; v++)
        for (int j = n_min; j < aq[v].n_kv; j++) sum[v] += aq[v].w[j];
    for (int v = 0; v < NQ; v++) {
        float *w = aq[v].w;
        const int n_kv = aq[v].n_kv;
        if (aq[v].stats) op_attend_stats_put(aq[v].stats, max[v], sum[v]);
        const float inv = (float)(1.0 / sum[v]);
        const __m256 invv = _mm256_set1_ps(inv);
        int j = 0;
        for (; j + 8 <= n_kv; j += 8) {
            const __m256 p = _mm256_mul_ps(_mm256_loadu_ps(w + j), invv);
            _mm256_storeu_ps(w + j, _mm256_cvtph_ps(_mm256_cvtps_ph(p, _MM_FROUND_TO_NEAREST_INT)));
        }
        for (; j < n_kv; j++) w[j] = round_f16(w[j] * inv);
    }
    /* column chunks side by side: NQ x NC accumulators, at most 8 */
    const int NC = NQ <= 2 ? 4 : NQ <= 4 ? 2 : 1;
    int i = 0;
    for (; i + 8 * NC <= head_dim; i += 8 * NC) v_sums(NQ, NC, aq, n_min, i, values);
    for (; i < head_dim; i += 8) v_sums(NQ, 1, aq, n_min, i, values);
}

void op_attend_chunk_avx2(float *out, size_t out_stride, size_t head_stride, bool stats, const float *q,
                          size_t q_stride, int n_tok, int n_heads, const lm_fp16 *const *keys,
                          const lm_fp16 *const *values, int n_kv0, int chunk, int head_dim, float scale, float softcap,
                          float *scratch) {
    const int first = chunk * OP_ATT_CHUNK, n_vec = n_tok * n_heads, n_kv_max = n_kv0 + n_tok - 1;
    const int w_stride = n_kv_max < OP_ATT_CHUNK ? n_kv_max : OP_ATT_CHUNK; /* op_attend_scratch_floats */
    const lm_fp16 *const *ck = keys + first, *const *cv = values + first;
    int v0 = 0;
    while (v0 < n_vec) { /* tiles of the query vectors that have keys in this chunk */
        att_query aq[Q_TILE];
        int nq = 0;
        for (; v0 < n_vec && nq < Q_TILE; v0++) {
            const int t = v0 / n_heads, h = v0 % n_heads, n_kv = n_kv0 + t - first;
            if (n_kv <= 0) continue;
            aq[nq].q = q + t * q_stride + (size_t)h * head_dim;
            aq[nq].out = out + t * out_stride + (size_t)h * head_stride;
            aq[nq].w = scratch + (size_t)v0 * w_stride;
            aq[nq].n_kv = n_kv < OP_ATT_CHUNK ? n_kv : OP_ATT_CHUNK;
            aq[nq].stats = stats ? aq[nq].out + head_dim : NULL;
            nq++;
        }
        switch (nq) { /* each tile size its own unrolled copy */
        case 0: break;
        case 1: attend_tile(1, aq, ck, cv, head_dim, scale, softcap); break;
        case 2: attend_tile(2, aq, ck, cv, head_dim, scale, softcap); break;
        case 3: attend_tile(3, aq, ck, cv, head_dim, scale, softcap); break;
        case 4: attend_tile(4, aq, ck, cv, head_dim, scale, softcap); break;
        case 5: attend_tile(5, aq, ck, cv, head_dim, scale, softcap); break;
        case 6: attend_tile(6, aq, ck, cv, head_dim, scale, softcap); break;
        case 7: attend_tile(7, aq, ck, cv, head_dim, scale, softcap); break;
        default: attend_tile(8, aq, ck, cv, head_dim, scale, softcap); break;
        }
    }
}
