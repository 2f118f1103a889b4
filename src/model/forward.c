/* forward.c - the batched forward pass of the transformer families.
 *
 * Every thread of the pool runs forward_thread(): it walks the layers and
 * does its share of each op (ops.h); a barrier separates dependent ops. A
 * step's tokens may come from many sequences: every linear layer is one
 * matmul over all the tokens (weights read once per step), attention reads
 * each token's own sequence from the K/V blocks.
 *
 * Per layer (pre-norm transformer, as the paper):
 *   xb = rmsnorm(x)                          attention rmsnorm
 *   q, k, v = xb Wq, xb Wk, xb Wv (+ biases)  qwen2 biases
 *   q, k = rmsnorm per head                  qwen3, gemma3 QK norm
 *   q, k = rope(q, k)                        NORM (llama) or NEOX style
 *   store k, v (f16) at the token's position
 *   att = softmax(q K^T * scale) V           causal, sliding window on SWA layers
 *   h = att Wo; (gemma: h = rmsnorm(h))      post-attention norm
 *   x = x + h                                residual connection
 *   xb = rmsnorm(x)                          FFN rmsnorm
 *   h = (act(xb Wgate) * xb Wup) Wdown       act = SiLU (GELU for gemma)
 *   (gemma: h = rmsnorm(h));  x = x + h
 * then logits = rmsnorm(x) Wout for the tokens that want them. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backend/cpu/ops.h"
#include "backend/cpu/quant.h"
#include "backend/cpu/quant_pack.h"
#include "model/model.h"

#define MAX_ACT_TYPES 3 /* distinct activation types of the weights reading one input */

struct lm_forward {
    const lm_model *m;
    int max_tokens, max_ctx;
    float *x;       /* (T, n_embd) residual stream */
    float *xb;      /* (T, n_embd) normed input of a sublayer */
    float *q;       /* (T, n_head * head_dim) */
    float *k;       /* (T, n_head_kv * head_dim) */
    float *v;       /* (T, n_head_kv * head_dim_v) */
    float *att;     /* (T, n_head * head_dim_v) */
    float *gate;    /* (T, n_ff) */
    float *up;      /* (T, n_ff) */
    float *proj;    /* (T, n_embd) sublayer output */
    void *xq[MAX_ACT_TYPES]; /* (T, row bytes) quantized activations */
    float *scores;  /* (n_threads, scores_stride) attention scratch (op_attend_scratch_floats) */
    size_t scores_stride;
    /* flash-decoding: the chunk partials of the attention items split over
     * threads, (4 n_threads, ATT_TOKENS, GQA group, chunks of max_ctx,
     * head_dim + OP_ATT_PART_EXTRA); NULL when max_ctx is one chunk */
    float *att_parts;
    bool att_split; /* LAMINA_CPU_ATT_SPLIT=0: never split (the same results) */
    /* first tokens of the attention's token runs in this batch, then n_tokens:
     * [0] for full-context layers, [1] for sliding-window ones */
    int *att_runs[2];
    int n_att_runs[2];
    const lm_fp16 **kv_ptrs; /* (n_threads, 2 * max_ctx) K and V row pointers */
    int max_threads; /* threads the attention scratch is sized for */
    /* the run in progress */
    tp_pool *pool;
    const lm_kv *kv;
    const lm_batch *batch;
    float *logits;
    int *logit_rows; /* (T) batch index of each logits row */
    int n_logits;
    /* weights repacked for the batched kernels (quant_pack.h): an open-
     * addressing table from the model's lm_weight to its packed copy */
    const lm_weight **pack_keys;
    void **pack_vals;
    int pack_bits;
};

static size_t pack_slot(const lm_forward *fw, const lm_weight *w) {
    return (size_t)(((uintptr_t)w >> 3) * 0x9E3779B97F4A7C15ull >> (64 - fw->pack_bits));
}

static const void *packed_of(const lm_forward *fw, const lm_weight *w) {
    if (!fw->pack_keys) return NULL;
    const size_t mask = ((size_t)1 << fw->pack_bits) - 1;
    for (size_t i = pack_slot(fw, w);; i = (i + 1) & mask) {
        if (fw->pack_keys[i] == w) return fw->pack_vals[i];
        if (!fw->pack_keys[i]) return NULL;
    }
}

static cpu_matrix as_matrix(const lm_forward *fw, const lm_weight *w) {
    cpu_matrix mat = {w->data, w->type, w->ne0, w->ne1, w->row_bytes, packed_of(fw, w)};
    return mat;
}

/* The file's pages wholly inside [p, p + n) leave this process's memory:
 * the weights were copied, and a read-only file mapping gives them back
 * from the page cache if something reads them again (the embedding
 * lookup of a tied output matrix does). */
static void release_pages(const void *p, size_t n) {
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t a = ((uintptr_t)p + page - 1) / page * page, b = ((uintptr_t)p + n) / page * page;
    if (b > a) (void)madvise((void *)a, b - a, MADV_DONTNEED);
}

/* Packs w if it has a packed kernel at this level and is not packed yet (an
 * output tied to a layer's weight comes twice); false if out of memory. */
static bool pack_weight(lm_forward *fw, const lm_weight *w) {
    if (!w->data || !q_pack_supported(w->type, w->ne1, w->ne0)) return true;
    const size_t mask = ((size_t)1 << fw->pack_bits) - 1;
    size_t i = pack_slot(fw, w);
    while (fw->pack_keys[i] && fw->pack_keys[i] != w) i = (i + 1) & mask;
    if (fw->pack_keys[i]) return true;
    const size_t bytes = q_pack_bytes(w->type, w->ne1, w->ne0);
    void *dst = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!dst) return false;
    q_pack(w->type, w->data, w->row_bytes, w->ne1, w->ne0, dst);
    release_pages(w->data, (size_t)w->ne1 * w->row_bytes);
    fw->pack_keys[i] = w;
    fw->pack_vals[i] = dst;
    return true;
}

/* Packs every matrix product weight that has a packed kernel at this level.
 * The copies replace the file's pages in memory; false if out of memory. */
static bool pack_weights(lm_forward *fw) {
    const lm_model *m = fw->m;
    const int n_slots = 7 * m->hp.n_layer + 1; /* the table holds every product weight at most half full */
    fw->pack_bits = 1;
    while ((1 << fw->pack_bits) < 2 * n_slots) fw->pack_bits++;
    fw->pack_keys = calloc((size_t)1 << fw->pack_bits, sizeof(*fw->pack_keys));
    fw->pack_vals = calloc((size_t)1 << fw->pack_bits, sizeof(*fw->pack_vals));
    bool ok = fw->pack_keys && fw->pack_vals;
    for (int il = 0; ok && il < m->hp.n_layer; il++) {
        const lm_layer *L = &m->layers[il];
        const lm_weight *ws[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->ffn_gate, &L->ffn_up, &L->ffn_down};
        for (int k = 0; ok && k < 7; k++) ok = pack_weight(fw, ws[k]);
    }
    return ok && pack_weight(fw, &m->output);
}

lm_forward *lm_forward_create(const lm_model *m, int max_tokens, int max_ctx) {
    const lm_hparams *hp = &m->hp;
    lm_forward *fw = calloc(1, sizeof(*fw));
    if (!fw) return NULL;
    fw->m = m;
    fw->max_tokens = max_tokens;
    fw->max_ctx = max_ctx;
    const char *split = getenv("LAMINA_CPU_ATT_SPLIT");
    fw->att_split = !(split && !strcmp(split, "0"));
    const size_t T = (size_t)max_tokens;
    const size_t q_dim = (size_t)hp->n_head * hp->head_dim, kv_dim = (size_t)hp->n_head_kv * hp->head_dim;
    const size_t att_dim = (size_t)hp->n_head * hp->head_dim_v;
    size_t widest = (size_t)hp->n_embd;
    if ((size_t)hp->n_ff > widest) widest = (size_t)hp->n_ff;
    if (att_dim > widest) widest = att_dim;
    fw->x = malloc(T * hp->n_embd * sizeof(float));
    fw->xb = malloc(T * hp->n_embd * sizeof(float));
    fw->q = malloc(T * q_dim * sizeof(float));
    fw->k = malloc(T * kv_dim * sizeof(float));
    fw->v = malloc(T * kv_dim * sizeof(float));
    fw->att = malloc(T * att_dim * sizeof(float));
    fw->gate = malloc(T * hp->n_ff * sizeof(float));
    fw->up = malloc(T * hp->n_ff * sizeof(float));
    fw->proj = malloc(T * hp->n_embd * sizeof(float));
    fw->logit_rows = malloc(T * sizeof(int));
    fw->att_runs[0] = malloc((T + 1) * sizeof(int));
    fw->att_runs[1] = malloc((T + 1) * sizeof(int));
    bool ok = fw->x && fw->xb && fw->q && fw->k && fw->v && fw->att && fw->gate && fw->up && fw->proj &&
              fw->logit_rows && fw->att_runs[0] && fw->att_runs[1];
    for (int i = 0; i < MAX_ACT_TYPES; i++) {
        fw->xq[i] = malloc(T * widest * sizeof(float)); /* f32 is the widest activation row */
        ok = ok && fw->xq[i];
    }
    ok = ok && pack_weights(fw);
    if (!ok) {
        lm_forward_free(fw);
        return NULL;
    }
    return fw;
}

void lm_forward_free(lm_forward *fw) {
    if (!fw) return;
    free(fw->x);
    free(fw->xb);
    free(fw->q);
    free(fw->k);
    free(fw->v);
    free(fw->att);
    free(fw->gate);
    free(fw->up);
    free(fw->proj);
    free(fw->logit_rows);
    for (int i = 0; i < MAX_ACT_TYPES; i++) free(fw->xq[i]);
    free(fw->scores);
    free(fw->att_parts);
    free(fw->kv_ptrs);
    free(fw->att_runs[0]);
    free(fw->att_runs[1]);
    if (fw->pack_vals)
        for (size_t i = 0; i < (size_t)1 << fw->pack_bits; i++) free(fw->pack_vals[i]);
    free(fw->pack_keys);
    free(fw->pack_vals);
    free(fw);
}

/* The quantized-activation buffer of each of n_w weights reading the same
 * input: one slot per distinct activation type, in the order of first use
 * (slot_of[i]); first_of[i]: whether ws[i] is its slot's first user. */
static void act_slots(const lm_weight *const *ws, int n_w, int *slot_of, bool *first_of) {
    uint32_t types[MAX_ACT_TYPES];
    int n_types = 0;
    for (int i = 0; i < n_w; i++) {
        const uint32_t act = q_get_kernels(ws[i]->type)->act_type;
        int slot = 0;
        while (slot < n_types && types[slot] != act) slot++;
        first_of[i] = slot == n_types;
        if (slot == n_types) types[n_types++] = act;
        slot_of[i] = slot;
    }
}

/* This thread's share of the rows of x (n_rows, the weights' ne0) quantized
 * once per distinct activation type of the n_w weights, into their slots.
 * The share is tp_split(n_rows)'s, the one every per-token op here takes:
 * an op that produced its rows can quantize them with no barrier between
 * (fused norm or activation and quantization); linear_prepared follows the
 * op's barrier. */
static void quantize_input(lm_forward *fw, const float *x, int n_rows, const lm_weight *const *ws, int n_w, int ith,
                           int nth) {
    int slot_of[MAX_ACT_TYPES];
    bool first_of[MAX_ACT_TYPES];
    act_slots(ws, n_w, slot_of, first_of);
    for (int i = 0; i < n_w; i++)
        if (first_of[i]) op_quantize_rows(ws[i]->type, x, n_rows, ws[i]->ne0, fw->xq[slot_of[i]], ith, nth);
}

/* out_i = x ws[i] for n_w weights whose input rows are already quantized
 * (quantize_input, then a barrier); ends with a barrier */
static void linear_prepared(lm_forward *fw, int n_rows, const lm_weight *const *ws, float *const *outs, int n_w,
                            int ith, int nth) {
    int slot_of[MAX_ACT_TYPES];
    bool first_of[MAX_ACT_TYPES];
    act_slots(ws, n_w, slot_of, first_of);
    for (int i = 0; i < n_w; i++) {
        cpu_matrix mat = as_matrix(fw, ws[i]);
        op_matmul(&mat, fw->xq[slot_of[i]], n_rows, outs[i], ws[i]->ne1, ith, nth);
    }
    tp_barrier(fw->pool);
}

/* out_i = x ws[i] for n_w weights reading the same input: x quantized once
 * per distinct activation type, a barrier, the products; ends with a barrier */
static void linear(lm_forward *fw, const float *x, int n_rows, const lm_weight *const *ws, float *const *outs,
                   int n_w, int ith, int nth) {
    quantize_input(fw, x, n_rows, ws, n_w, ith, nth);
    tp_barrier(fw->pool);
    linear_prepared(fw, n_rows, ws, outs, n_w, ith, nth);
}

static void embed_tokens(lm_forward *fw, int ith, int nth) {
    const lm_model *m = fw->m;
    const int E = m->hp.n_embd;
    cpu_matrix emb = as_matrix(fw, &m->tok_embd);
    long t0, t1;
    tp_split(fw->batch->n_tokens, ith, nth, &t0, &t1);
    for (long t = t0; t < t1; t++) {
        float *xt = fw->x + t * E;
        op_get_row(&emb, fw->batch->tokens[t], xt);
        if (m->hp.embd_scale != 1.0f)
            for (int i = 0; i < E; i++) xt[i] *= m->hp.embd_scale;
    }
    tp_barrier(fw->pool);
}

static void add_bias(float *x, const lm_weight *b, int n) {
    if (!b->data) return;
    const float *bv = b->data;
    for (int i = 0; i < n; i++) x[i] += bv[i];
}

/* biases, QK norm, RoPE, and the K/V store of this thread's tokens */
static void prepare_qkv(lm_forward *fw, const lm_layer *L, int il, int ith, int nth) {
    const lm_hparams *hp = &fw->m->hp;
    const int hd = hp->head_dim, q_dim = hp->n_head * hd, kv_dim = hp->n_head_kv * hd;
    const int v_dim = hp->n_head_kv * hp->head_dim_v;
    const float base = L->is_swa ? hp->rope_base_swa : hp->rope_base;
    const float pos_scale = L->is_swa ? hp->rope_scale_swa : hp->rope_scale;
    const bool neox = hp->rope_style == LM_ROPE_NEOX;
    const float *freq_factors = fw->m->rope_freqs.data;
    const int bs = fw->kv->block_size;
    long t0, t1;
    tp_split(fw->batch->n_tokens, ith, nth, &t0, &t1);
    for (long t = t0; t < t1; t++) {
        float *q = fw->q + t * q_dim, *k = fw->k + t * kv_dim, *v = fw->v + t * v_dim;
        const int pos = fw->batch->pos[t], seq = fw->batch->seq[t];
        add_bias(q, &L->bq, q_dim);
        add_bias(k, &L->bk, kv_dim);
        add_bias(v, &L->bv, v_dim);
        if (L->q_norm.data) {
            op_rmsnorm(q, q, L->q_norm.data, hp->n_head, hd, hp->rms_eps, 0, 1);
            op_rmsnorm(k, k, L->k_norm.data, hp->n_head_kv, hd, hp->rms_eps, 0, 1);
        }
        for (int h = 0; h < hp->n_head; h++)
            op_rope(q + h * hd, hp->n_rot, pos, base, pos_scale, neox, freq_factors);
        for (int h = 0; h < hp->n_head_kv; h++)
            op_rope(k + h * hd, hp->n_rot, pos, base, pos_scale, neox, freq_factors);
        lm_fp16 *kb = fw->kv->k_block(fw->kv->ctx, il, seq, pos / bs);
        lm_fp16 *vb = fw->kv->v_block(fw->kv->ctx, il, seq, pos / bs);
        op_f32_to_f16(kb + (size_t)(pos % bs) * kv_dim, k, kv_dim);
        op_f32_to_f16(vb + (size_t)(pos % bs) * v_dim, v, v_dim);
    }
    tp_barrier(fw->pool);
}

/* Consecutive tokens of one sequence attend together (their K/V rows are
 * converted once for all): up to this many per work item. */
#define ATT_TOKENS 4

/* the first token of the attention work item after token t: the run of
 * tokens from t of one sequence at consecutive positions, at most
 * ATT_TOKENS, all seeing their keys from position 0 (a sliding window that
 * has started cuts each token's keys elsewhere: those go one by one) */
static int att_run_end(const lm_forward *fw, bool swa, int t) {
    const lm_hparams *hp = &fw->m->hp;
    const lm_batch *b = fw->batch;
    int e = t + 1;
    while (e < b->n_tokens && e - t < ATT_TOKENS && b->seq[e] == b->seq[t] && b->pos[e] == b->pos[t] + (e - t) &&
           !(swa && b->pos[e] - hp->sliding_window + 1 > 0))
        e++;
    return e;
}

/* the batch's token runs for both kinds of layer, once per run */
static void find_att_runs(lm_forward *fw) {
    for (int swa = 0; swa < 2; swa++) {
        int n = 0;
        for (int t = 0; t < fw->batch->n_tokens; t = att_run_end(fw, swa, t)) fw->att_runs[swa][n++] = t;
        fw->att_runs[swa][n] = fw->batch->n_tokens;
        fw->n_att_runs[swa] = n;
    }
}

static int att_chunks(int n_kv) { return (n_kv + OP_ATT_CHUNK - 1) / OP_ATT_CHUNK; }

/* one attention item: a token run (its first token t, n_tok tokens, the
 * first's position and sequence, the first key lo they see) and a KV head */
typedef struct {
    int t, n_tok, pos, seq, lo, kvh;
} att_item;

static att_item att_item_of(const lm_forward *fw, const lm_layer *L, long p) {
    const lm_hparams *hp = &fw->m->hp;
    const int *run_start = fw->att_runs[L->is_swa];
    att_item it;
    const int r = (int)(p / hp->n_head_kv);
    it.kvh = (int)(p % hp->n_head_kv);
    it.t = run_start[r];
    it.n_tok = run_start[r + 1] - it.t;
    it.pos = fw->batch->pos[it.t];
    it.seq = fw->batch->seq[it.t];
    it.lo = L->is_swa && it.pos - hp->sliding_window + 1 > 0 ? it.pos - hp->sliding_window + 1 : 0;
    return it;
}

/* the item's K/V row pointers of positions [from, to], at kp / vp [j - lo] */
static void gather_kv(const lm_forward *fw, int il, const att_item *it, int from, int to, const lm_fp16 **kp,
                      const lm_fp16 **vp) {
    const lm_hparams *hp = &fw->m->hp;
    const int hd = hp->head_dim, hdv = hp->head_dim_v, kv_dim = hp->n_head_kv * hd, v_dim = hp->n_head_kv * hdv;
    const int bs = fw->kv->block_size;
    for (int j = from; j <= to;) {
        const lm_fp16 *kb = fw->kv->k_block(fw->kv->ctx, il, it->seq, j / bs);
        const lm_fp16 *vb = fw->kv->v_block(fw->kv->ctx, il, it->seq, j / bs);
        for (int end = (j / bs + 1) * bs; j <= to && j < end; j++) {
            kp[j - it->lo] = kb + (size_t)(j % bs) * kv_dim + (size_t)it->kvh * hd;
            vp[j - it->lo] = vb + (size_t)(j % bs) * v_dim + (size_t)it->kvh * hdv;
        }
    }
}

/* Too few items to share out evenly, and some with more than one chunk of
 * keys: flash-decoding. The (item, chunk) units are shared out, each writing its
 * partials; after a barrier the (token, head) folds are. The arithmetic is
 * op_attend_tokens' (op_attend_chunk, op_attend_fold), so the bits do not
 * depend on the split. */
static void attention_split(lm_forward *fw, int il, const lm_layer *L, long n_items, int ith, int nth) {
    const lm_hparams *hp = &fw->m->hp;
    const int hd = hp->head_dim, hdv = hp->head_dim_v, group = hp->n_head / hp->n_head_kv;
    const int max_chunks = att_chunks(fw->max_ctx);
    const size_t pw = (size_t)(hdv + OP_ATT_PART_EXTRA), item_floats = (size_t)ATT_TOKENS * group * max_chunks * pw;
    float *scores = fw->scores + (size_t)ith * fw->scores_stride;
    const lm_fp16 **kp = fw->kv_ptrs + (size_t)ith * 2 * fw->max_ctx, **vp = kp + fw->max_ctx;
    long n_units = 0;
    for (long p = 0; p < n_items; p++) {
        const att_item it = att_item_of(fw, L, p);
        n_units += att_chunks(it.pos + it.n_tok - it.lo);
    }
    long u0, u1;
    tp_split(n_units, ith, nth, &u0, &u1);
    long u = 0;
    for (long p = 0; p < n_items && u < u1; p++) {
        const att_item it = att_item_of(fw, L, p);
        const int last = it.pos + it.n_tok - 1, n_c = att_chunks(last - it.lo + 1);
        for (int c = 0; c < n_c; c++, u++) {
            if (u < u0 || u >= u1) continue;
            const int from = it.lo + c * OP_ATT_CHUNK;
            const int to = from + OP_ATT_CHUNK - 1 < last ? from + OP_ATT_CHUNK - 1 : last;
            gather_kv(fw, il, &it, from, to, kp, vp);
            const int h = it.kvh * group;
            op_attend_chunk(fw->att_parts + (size_t)p * item_floats + (size_t)c * pw, (size_t)group * max_chunks * pw,
                            (size_t)max_chunks * pw, fw->q + (size_t)it.t * hp->n_head * hd + (size_t)h * hd,
                            (size_t)hp->n_head * hd, it.n_tok, group, kp, vp, it.pos - it.lo + 1, c, hd,
                            hp->attn_scale, hp->attn_softcap, scores);
        }
    }
    tp_barrier(fw->pool);
    const long n_folds = n_items * ATT_TOKENS * group;
    long f0, f1;
    tp_split(n_folds, ith, nth, &f0, &f1);
    for (long f = f0; f < f1; f++) {
        const long p = f / ((long)ATT_TOKENS * group);
        const int tau = (int)(f / group % ATT_TOKENS), g = (int)(f % group);
        const att_item it = att_item_of(fw, L, p);
        if (tau >= it.n_tok) continue;
        const int h = it.kvh * group + g;
        op_attend_fold(fw->att + (size_t)(it.t + tau) * hp->n_head * hdv + (size_t)h * hdv,
                       fw->att_parts + (size_t)p * item_floats + ((size_t)tau * group + g) * max_chunks * pw, pw,
                       att_chunks(it.pos + tau - it.lo + 1), hdv);
    }
}

/* causal attention of every (token run, KV head) pair of this thread's share */
static void attention(lm_forward *fw, const lm_layer *L, int il, int ith, int nth) {
    const lm_hparams *hp = &fw->m->hp;
    const int hd = hp->head_dim, hdv = hp->head_dim_v, group = hp->n_head / hp->n_head_kv;
    const long n_items = (long)fw->n_att_runs[L->is_swa] * hp->n_head_kv;
    /* split when the items are too few to share out evenly (fewer than 4 a
     * thread) and some item has more than one chunk of keys */
    if (fw->att_parts && n_items < 4L * nth && nth > 1 && fw->att_split) {
        bool long_keys = false;
        for (long p = 0; p < n_items && !long_keys; p++) {
            const att_item it = att_item_of(fw, L, p);
            long_keys = it.pos + it.n_tok - it.lo > OP_ATT_CHUNK;
        }
        if (long_keys) {
            attention_split(fw, il, L, n_items, ith, nth);
            tp_barrier(fw->pool);
            return;
        }
    }
    float *scores = fw->scores + (size_t)ith * fw->scores_stride;
    const lm_fp16 **kp = fw->kv_ptrs + (size_t)ith * 2 * fw->max_ctx, **vp = kp + fw->max_ctx;
    long p0, p1;
    tp_split(n_items, ith, nth, &p0, &p1);
    for (long p = p0; p < p1; p++) {
        const att_item it = att_item_of(fw, L, p);
        gather_kv(fw, il, &it, it.lo, it.pos + it.n_tok - 1, kp, vp);
        /* the query heads of a GQA group share the K/V rows gathered above */
        const int h = it.kvh * group;
        op_attend_tokens(fw->att + (size_t)it.t * hp->n_head * hdv + (size_t)h * hdv, (size_t)hp->n_head * hdv,
                         fw->q + (size_t)it.t * hp->n_head * hd + (size_t)h * hd, (size_t)hp->n_head * hd, it.n_tok,
                         group, kp, vp, it.pos - it.lo + 1, hd, hp->attn_scale, hp->attn_softcap, scores);
    }
    tp_barrier(fw->pool);
}

/* if ADD, x += (post-norm of) h; then xb = rmsnorm(x) with next_norm (if
 * any), quantized for the n_next weights that read it (fused:
 * linear_prepared follows) */
static void residual(lm_forward *fw, bool add, const float *post_norm, const float *next_norm,
                     const lm_weight *const *next, int n_next, int ith, int nth) {
    const lm_hparams *hp = &fw->m->hp;
    const int E = hp->n_embd;
    long t0, t1;
    tp_split(fw->batch->n_tokens, ith, nth, &t0, &t1);
    for (long t = t0; t < t1; t++) {
        float *h = fw->proj + t * E, *x = fw->x + t * E;
        if (add) {
            if (post_norm) op_rmsnorm(h, h, post_norm, 1, E, hp->rms_eps, 0, 1);
            for (int i = 0; i < E; i++) x[i] += h[i];
        }
        if (next_norm) op_rmsnorm(fw->xb + t * E, x, next_norm, 1, E, hp->rms_eps, 0, 1);
    }
    if (next_norm && n_next) quantize_input(fw, fw->xb, fw->batch->n_tokens, next, n_next, ith, nth);
    tp_barrier(fw->pool);
}

/* the gate/up products (their input quantized by the residual before), the
 * gating with the down projection's input quantized as each row is done,
 * the down product */
static void feed_forward(lm_forward *fw, const lm_layer *L, int ith, int nth) {
    const lm_hparams *hp = &fw->m->hp;
    const int T = fw->batch->n_tokens;
    const lm_weight *gate_up[2] = {&L->ffn_gate, &L->ffn_up};
    float *outs[2] = {fw->gate, fw->up};
    linear_prepared(fw, T, gate_up, outs, 2, ith, nth);
    const lm_weight *down[1] = {&L->ffn_down};
    long t0, t1;
    tp_split(T, ith, nth, &t0, &t1);
    for (long t = t0; t < t1; t++) {
        float *g = fw->gate + t * hp->n_ff;
        if (hp->gelu_ffn) op_gelu_mul(g, g, fw->up + t * hp->n_ff, hp->n_ff);
        else op_silu_mul(g, g, fw->up + t * hp->n_ff, hp->n_ff);
    }
    quantize_input(fw, fw->gate, T, down, 1, ith, nth); /* the rows this thread just made */
    tp_barrier(fw->pool);
    float *down_out[1] = {fw->proj};
    linear_prepared(fw, T, down, down_out, 1, ith, nth);
}

static void output_logits(lm_forward *fw, int ith, int nth) {
    const lm_model *m = fw->m;
    const int E = m->hp.n_embd, n = fw->n_logits;
    long r0, r1;
    tp_split(n, ith, nth, &r0, &r1);
    for (long r = r0; r < r1; r++)
        op_rmsnorm(fw->xb + r * E, fw->x + (size_t)fw->logit_rows[r] * E, m->output_norm.data, 1, E,
                   m->hp.rms_eps, 0, 1);
    tp_barrier(fw->pool);
    const lm_weight *out[1] = {&m->output};
    float *outs[1] = {fw->logits};
    linear(fw, fw->xb, n, out, outs, 1, ith, nth);
    const float cap = m->hp.final_softcap;
    if (cap > 0.0f) {
        long i0, i1;
        tp_split((long)n * m->hp.n_vocab, ith, nth, &i0, &i1);
        for (long i = i0; i < i1; i++) fw->logits[i] = cap * tanhf(fw->logits[i] / cap);
        tp_barrier(fw->pool);
    }
}

static void forward_thread(void *ctx, int ith, int nth) {
    lm_forward *fw = ctx;
    const lm_model *m = fw->m;
    const lm_hparams *hp = &m->hp;
    const int T = fw->batch->n_tokens;
    embed_tokens(fw, ith, nth);
    /* the first layer's norm and its quantization for Q/K/V; every later one
     * comes with the residual that ends the layer before (as on the GPU) */
    const lm_layer *L0 = &m->layers[0];
    const lm_weight *qkv0[3] = {&L0->wq, &L0->wk, &L0->wv};
    residual(fw, false, NULL, L0->attn_norm.data, qkv0, 3, ith, nth);
    for (int il = 0; il < hp->n_layer; il++) {
        const lm_layer *L = &m->layers[il];
        const lm_weight *qkv[3] = {&L->wq, &L->wk, &L->wv};
        float *qkv_out[3] = {fw->q, fw->k, fw->v};
        linear_prepared(fw, T, qkv, qkv_out, 3, ith, nth);
        prepare_qkv(fw, L, il, ith, nth);
        attention(fw, L, il, ith, nth);
        const lm_weight *wo[1] = {&L->wo};
        float *wo_out[1] = {fw->proj};
        linear(fw, fw->att, T, wo, wo_out, 1, ith, nth);
        const lm_weight *gate_up[2] = {&L->ffn_gate, &L->ffn_up};
        residual(fw, true, L->attn_post_norm.data, L->ffn_norm.data, gate_up, 2, ith, nth);
        feed_forward(fw, L, ith, nth);
        const lm_layer *next = il + 1 < hp->n_layer ? &m->layers[il + 1] : NULL;
        const lm_weight *next_qkv[3] = {next ? &next->wq : NULL, next ? &next->wk : NULL, next ? &next->wv : NULL};
        residual(fw, true, L->ffn_post_norm.data, next ? next->attn_norm.data : NULL, next_qkv, next ? 3 : 0, ith,
                 nth);
    }
    if (fw->n_logits > 0) output_logits(fw, ith, nth);
}

int lm_forward_run(lm_forward *fw, tp_pool *pool, const lm_kv *kv, const lm_batch *batch, float *logits,
                   lm_error *err) {
    const lm_hparams *hp = &fw->m->hp;
    if (batch->n_tokens < 1 || batch->n_tokens > fw->max_tokens) {
        lm_error_set(err, "batch of %d tokens (1..%d allowed)", batch->n_tokens, fw->max_tokens);
        return -1;
    }
    const int nth = tp_n_threads(pool);
    if (nth > fw->max_threads) { /* attention scratch is per thread: grow it to this pool */
        free(fw->scores);
        free(fw->att_parts);
        free(fw->kv_ptrs);
        const int group = hp->n_head / hp->n_head_kv, max_chunks = att_chunks(fw->max_ctx);
        fw->scores_stride = op_attend_scratch_floats(ATT_TOKENS, group, fw->max_ctx, hp->head_dim);
        fw->scores = malloc((size_t)nth * fw->scores_stride * sizeof(float));
        /* for flash-decoding: fewer than 4 items a thread, each (ATT_TOKENS,
         * group, chunks) partials; without them (one chunk, or no memory)
         * nothing is split, which changes no result */
        fw->att_parts = max_chunks > 1 ? malloc((size_t)4 * nth * ATT_TOKENS * group * max_chunks *
                                                (hp->head_dim_v + OP_ATT_PART_EXTRA) * sizeof(float))
                                       : NULL;
        fw->kv_ptrs = malloc((size_t)nth * 2 * fw->max_ctx * sizeof(lm_fp16 *));
        fw->max_threads = fw->scores && fw->kv_ptrs ? nth : 0;
        if (!fw->max_threads) {
            lm_error_set(err, "out of memory for attention scratch");
            return -1;
        }
    }
    fw->n_logits = 0;
    for (int t = 0; t < batch->n_tokens; t++) {
        if (batch->tokens[t] < 0 || batch->tokens[t] >= hp->n_vocab) {
            lm_error_set(err, "token id %d out of range [0, %d)", batch->tokens[t], hp->n_vocab);
            return -1;
        }
        if (batch->pos[t] < 0 || batch->pos[t] >= fw->max_ctx) {
            lm_error_set(err, "position %d out of range [0, %d)", batch->pos[t], fw->max_ctx);
            return -1;
        }
        if (batch->want_logits[t]) fw->logit_rows[fw->n_logits++] = t;
    }
    fw->pool = pool;
    fw->kv = kv;
    fw->batch = batch;
    fw->logits = logits;
    find_att_runs(fw);
    tp_run(pool, forward_thread, fw);
    return 0;
}
