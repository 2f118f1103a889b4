/* forward_cuda.c - the forward pass on the GPU (forward_cuda.h).
 *
 * The layer recipe is forward.c's, op for op, on device buffers:
 *   xb = rmsnorm(x)                       (fused into the previous residual)
 *   q, k, v = xb Wq, xb Wk, xb Wv         lm_cuda_matmul (VEC or GEMM path)
 *   biases, QK norm, RoPE; k, v -> cache  lm_cuda_qkv_store
 *   att = softmax(q K^T) V                lm_cuda_attention, paged
 *   x += (post-norm of) att Wo; xb = rmsnorm(x)
 *   x += (post-norm of) (act(xb Wgate) * xb Wup) Wdown; xb = next layer's norm
 * then logits = rmsnorm(x) Wout for the tokens that want them.
 *
 * A step costs one host-to-device copy (token ids, positions, slots and
 * block tables from one page-locked staging buffer), the kernels, and one
 * copy of what the samplers need back. With tied embeddings (the output
 * matrix is the embedding matrix, already on the device) the rows are
 * looked up there (lm_cuda_get_rows: the CPU's op_get_row bits); otherwise
 * on the host with op_get_row and uploaded, n_tokens rows of n_embd floats.
 *
 * CUDA graphs: a decode step (every token wants logits, at most
 * GRAPH_MAX_TOKENS of them) is the same sequence of launches for every step
 * of its token count: kernel arguments are device pointers whose contents
 * change, and the attention splits depend on the batch shape alone. So the
 * second step of a token count is captured (the first one, run directly,
 * sizes the matmul scratch) and later ones replay it with a single launch,
 * copies included. Graphs are dropped when a scratch buffer moves
 * (lm_cuda_scratch_epoch). LAMINA_CUDA_GRAPHS=0 turns them off. */
#include "model/forward_cuda.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/ops.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_ops.h"
#include "base/dtype.h"

#define RESERVE_BYTES ((size_t)256 << 20) /* CUDA context, cuBLAS, allocator slack */
#define GRAPH_MAX_TOKENS 256

#define STAGE_ALIGN 256

typedef struct cuda_layer {
    lm_cuda_matrix *wq, *wk, *wv, *wo, *gate, *up, *down;
    /* Q, K and V (gate and up) stacked into one matrix when they share a
     * type: one product instead of three (two); the parts are then NULL */
    lm_cuda_matrix *qkv, *gate_up;
    float *attn_norm, *bq, *bk, *bv, *q_norm, *k_norm, *attn_post_norm, *ffn_norm, *ffn_post_norm;
} cuda_layer;

struct lm_forward_cuda {
    const lm_model *m;
    lm_cuda_forward_config cfg;
    lm_cuda_ctx *ctx;
    char device_name[256];
    cuda_layer *layers;
    lm_cuda_matrix *output; /* may be the embedding matrix's upload when tied: uploaded once */
    float *output_norm, *rope_freqs;
    size_t weight_bytes;
    bool f16_kept; /* every quantized matrix has its f16 copy (keep_f16_copies) */
    /* activations (device) */
    float *x, *xb, *q, *k, *v, *att, *gate, *up, *proj, *logits, *attn_scratch;
    float *qkv_out, *gu_out; /* (T, q + k + v dims), (T, 2 n_ff): the stacked products */
    /* K/V pool (device): per layer (n_blocks, block_size, n_head_kv * head_dim) f16 */
    uint16_t *k_pool, *v_pool;
    int n_blocks, max_blocks;
    size_t k_layer, v_layer; /* f16 elements of one layer's pool */
    /* staging: the same layout on the host (page-locked) and on the device */
    void *stage_host, *stage_dev;
    size_t stage_bytes, off_tok, off_pos, off_slot, off_rows, off_edit_rows, off_tables;
    bool embd_on_device; /* tied embeddings: looked up on the GPU from the staged ids (LAMINA_CUDA_EMBD=0: on the host) */
    float *embd_host;   /* page-locked (max_tokens, n_embd): the step's embeddings, uploaded into x (host lookup only) */
    float *logits_host; /* page-locked (max_logits, n_vocab) */
    int32_t *ids, *ids_host; /* (max_logits, TOP_K) greedy tokens or top-k ids, device and page-locked host */
    float *top_vals, *top_vals_host; /* (max_logits, TOP_K) their logits */
    float *log_z, *log_z_host;       /* (max_logits) each row's log of the sum of e^logit */
    lm_logit_edit *edits_dev, *edits_host; /* (LM_FORWARD_CUDA_MAX_EDITS) the step's logit edits */
    /* decode graphs by output kind, with or without logit edits, and token
     * count (see the top of the file) */
    bool use_graphs;
    bool profile; /* LAMINA_CUDA_PROFILE=1: marks between ops, graphs off */
    bool fuse_act; /* residuals quantize the next product's input (LAMINA_CUDA_FUSE=0: off) */
    bool stack;    /* stacked QKV and gate/up matrices (LAMINA_CUDA_STACK=0: off) */
    bool xb_prepared; /* the step in progress: xb's activations are prepared for the layer's wq */
    int last_logits;  /* logits rows of the last run, on the device until the next one */
    int launched;     /* logits rows of the step in flight (lm_forward_cuda_launch), -1: none */
    lm_cuda_graph *graphs[LM_CUDA_OUT_KINDS][2][GRAPH_MAX_TOKENS + 1];
    bool seen[LM_CUDA_OUT_KINDS][2][GRAPH_MAX_TOKENS + 1];
    uint64_t graph_epoch;
};

static size_t align_up(size_t n) { return (n + STAGE_ALIGN - 1) / STAGE_ALIGN * STAGE_ALIGN; }

static void free_graphs(lm_forward_cuda *fw) {
    for (int k = 0; k < LM_CUDA_OUT_KINDS; k++)
        for (int e = 0; e < 2; e++)
            for (int i = 0; i <= GRAPH_MAX_TOKENS; i++) {
                lm_cuda_graph_free(fw->graphs[k][e][i]);
                fw->graphs[k][e][i] = NULL;
            }
}

/* a vector of f32 (norm, bias) on the device; NULL when the model has none */
static int upload_vec(lm_forward_cuda *fw, const lm_weight *w, float **out, lm_error *err) {
    *out = NULL;
    if (!w->data) return 0;
    const size_t bytes = (size_t)w->ne0 * (w->ne1 > 0 ? w->ne1 : 1) * sizeof(float);
    *out = lm_cuda_alloc(fw->ctx, bytes, err);
    if (!*out || lm_cuda_upload(fw->ctx, *out, w->data, bytes, err)) return -1;
    fw->weight_bytes += bytes;
    return 0;
}

static int upload_matrix(lm_forward_cuda *fw, const lm_weight *w, const char *name, int layer,
                         lm_cuda_matrix **out, lm_error *err) {
    char full[64];
    if (layer >= 0) snprintf(full, sizeof(full), "blk.%d.%s", layer, name);
    else snprintf(full, sizeof(full), "%s", name);
    *out = NULL;
    if (!lm_cuda_type_supported(w->type)) {
        lm_error_set(err, "CUDA: %s is %s, a type the GPU kernels do not take yet", full, lm_dtype_name(w->type));
        return -1;
    }
    lm_error inner = {{0}};
    *out = lm_cuda_matrix_upload(fw->ctx, w->type, w->ne1, w->ne0, w->data, &inner);
    if (!*out) {
        lm_error_set(err, "uploading %s: %s", full, inner.msg);
        return -1;
    }
    fw->weight_bytes += lm_cuda_matrix_bytes(*out);
    return 0;
}

/* the N weights stacked row-wise into one matrix, when they share a type
 * and a row length; 1 when they do not (upload them apart) */
static int upload_stacked(lm_forward_cuda *fw, const lm_weight *const *ws, int n, const char *name, int layer,
                          lm_cuda_matrix **out, lm_error *err) {
    *out = NULL;
    size_t bytes = 0;
    int64_t rows = 0;
    for (int i = 0; i < n; i++) {
        if (ws[i]->type != ws[0]->type || ws[i]->ne0 != ws[0]->ne0) return 1;
        bytes += ws[i]->row_bytes * (size_t)ws[i]->ne1;
        rows += ws[i]->ne1;
    }
    if (!lm_cuda_type_supported(ws[0]->type)) return 1; /* upload_matrix names the tensor */
    uint8_t *host = malloc(bytes);
    if (!host) {
        lm_error_set(err, "out of memory stacking blk.%d.%s", layer, name);
        return -1;
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        memcpy(host + off, ws[i]->data, ws[i]->row_bytes * (size_t)ws[i]->ne1);
        off += ws[i]->row_bytes * (size_t)ws[i]->ne1;
    }
    lm_error inner = {{0}};
    *out = lm_cuda_matrix_upload(fw->ctx, ws[0]->type, rows, ws[0]->ne0, host, &inner);
    free(host);
    if (!*out) {
        lm_error_set(err, "uploading blk.%d.%s: %s", layer, name, inner.msg);
        return -1;
    }
    fw->weight_bytes += lm_cuda_matrix_bytes(*out);
    return 0;
}

static int upload_weights(lm_forward_cuda *fw, lm_error *err) {
    const lm_model *m = fw->m;
    const int n_layer = m->hp.n_layer;
    fw->layers = calloc((size_t)n_layer, sizeof(cuda_layer));
    if (!fw->layers) {
        lm_error_set(err, "out of memory");
        return -1;
    }
    for (int il = 0; il < n_layer; il++) {
        const lm_layer *L = &m->layers[il];
        cuda_layer *C = &fw->layers[il];
        const lm_weight *qkv[3] = {&L->wq, &L->wk, &L->wv}, *gu[2] = {&L->ffn_gate, &L->ffn_up};
        int rc_qkv = fw->stack ? upload_stacked(fw, qkv, 3, "attn_qkv", il, &C->qkv, err) : 1;
        int rc_gu = fw->stack ? upload_stacked(fw, gu, 2, "ffn_gate_up", il, &C->gate_up, err) : 1;
        if (rc_qkv < 0 || rc_gu < 0) return -1;
        const struct {
            const lm_weight *w;
            const char *name;
            lm_cuda_matrix **dst;
            bool needed;
        } mats[] = {{&L->wq, "attn_q", &C->wq, rc_qkv},         {&L->wk, "attn_k", &C->wk, rc_qkv},
                    {&L->wv, "attn_v", &C->wv, rc_qkv},         {&L->wo, "attn_output", &C->wo, true},
                    {&L->ffn_gate, "ffn_gate", &C->gate, rc_gu}, {&L->ffn_up, "ffn_up", &C->up, rc_gu},
                    {&L->ffn_down, "ffn_down", &C->down, true}};
        for (size_t i = 0; i < sizeof(mats) / sizeof(mats[0]); i++)
            if (mats[i].needed && upload_matrix(fw, mats[i].w, mats[i].name, il, mats[i].dst, err)) return -1;
        const struct {
            const lm_weight *w;
            float **dst;
        } vecs[] = {{&L->attn_norm, &C->attn_norm}, {&L->bq, &C->bq},
                    {&L->bk, &C->bk},               {&L->bv, &C->bv},
                    {&L->q_norm, &C->q_norm},       {&L->k_norm, &C->k_norm},
                    {&L->attn_post_norm, &C->attn_post_norm}, {&L->ffn_norm, &C->ffn_norm},
                    {&L->ffn_post_norm, &C->ffn_post_norm}};
        for (size_t i = 0; i < sizeof(vecs) / sizeof(vecs[0]); i++)
            if (upload_vec(fw, vecs[i].w, vecs[i].dst, err)) return -1;
    }
    if (upload_matrix(fw, &m->output, m->output.data == m->tok_embd.data ? "token_embd.weight" : "output.weight", -1,
                      &fw->output, err))
        return -1;
    if (upload_vec(fw, &m->output_norm, &fw->output_norm, err)) return -1;
    if (upload_vec(fw, &m->rope_freqs, &fw->rope_freqs, err)) return -1;
    return 0;
}

/* Batches (prefill, many streams) run on the GEMM path, which dequantizes
 * each matrix to f16 on every call. Keeping those f16 copies resident
 * (2 bytes a weight) saves that pass; it is done when they take at most
 * F16_SHARE of the free memory (small models, big GPUs: the common case
 * here), so the K/V pool keeps the rest. LAMINA_CUDA_F16_WEIGHTS=0 turns
 * it off. */
#define F16_SHARE 0.3

static void each_matrix(lm_forward_cuda *fw, lm_cuda_matrix ***out, int *n) {
    int k = 0;
    for (int il = 0; il < fw->m->hp.n_layer; il++) {
        cuda_layer *C = &fw->layers[il];
        lm_cuda_matrix **ms[] = {&C->wq, &C->wk, &C->wv, &C->wo, &C->gate, &C->up, &C->down, &C->qkv, &C->gate_up};
        for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++)
            if (*ms[i]) out[k++] = ms[i];
    }
    out[k++] = &fw->output;
    *n = k;
}

/* f16 copies serve only the GEMM path, which a batch-invariant context
 * never takes */
static int keep_f16_copies(lm_forward_cuda *fw, lm_error *err) {
    const char *env = getenv("LAMINA_CUDA_F16_WEIGHTS");
    if ((env && !strcmp(env, "0")) || lm_cuda_batch_invariant(fw->ctx)) return 0;
    lm_cuda_matrix ***ms = malloc(sizeof(*ms) * (size_t)(fw->m->hp.n_layer * 9 + 1));
    if (!ms) {
        lm_error_set(err, "out of memory");
        return -1;
    }
    int n = 0;
    each_matrix(fw, ms, &n);
    size_t need = 0, free_b = 0, total_b = 0;
    for (int i = 0; i < n; i++) need += lm_cuda_matrix_f16_bytes(*ms[i]);
    int rc = lm_cuda_mem_info(fw->ctx, &free_b, &total_b, err);
    if (rc == 0 && need <= (size_t)(F16_SHARE * (double)free_b)) {
        for (int i = 0; i < n && rc == 0; i++) {
            rc = lm_cuda_matrix_keep_f16(fw->ctx, *ms[i], err);
            if (rc == 0) fw->weight_bytes += lm_cuda_matrix_f16_bytes(*ms[i]);
        }
        fw->f16_kept = rc == 0;
    }
    free(ms);
    return rc;
}

/* largest f16 copy of a matrix the GEMM path dequantizes into scratch */
static size_t gemm_scratch_bytes(const lm_model *m) {
    size_t most = (size_t)m->output.ne0 * m->output.ne1;
    for (int il = 0; il < m->hp.n_layer; il++) {
        const lm_layer *L = &m->layers[il];
        const lm_weight *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->ffn_gate, &L->ffn_up, &L->ffn_down};
        for (size_t i = 0; i < sizeof(ws) / sizeof(ws[0]); i++) {
            const size_t n = (size_t)ws[i]->ne0 * ws[i]->ne1;
            if (n > most) most = n;
        }
    }
    return most * 2;
}

static int alloc_activations(lm_forward_cuda *fw, lm_error *err) {
    const lm_hparams *hp = &fw->m->hp;
    const size_t T = (size_t)fw->cfg.max_tokens, E = (size_t)hp->n_embd;
    const size_t q_dim = (size_t)hp->n_head * hp->head_dim, kv_dim = (size_t)hp->n_head_kv * hp->head_dim;
    const size_t v_dim = (size_t)hp->n_head_kv * hp->head_dim_v, att_dim = (size_t)hp->n_head * hp->head_dim_v;
    struct {
        float **dst;
        size_t floats;
    } bufs[] = {{&fw->x, T * E},
                {&fw->xb, T * E},
                {&fw->q, T * q_dim},
                {&fw->k, T * kv_dim},
                {&fw->v, T * v_dim},
                {&fw->att, T * att_dim},
                {&fw->gate, T * hp->n_ff},
                {&fw->up, T * hp->n_ff},
                {&fw->proj, T * E},
                {&fw->qkv_out, T * (q_dim + kv_dim + v_dim)},
                {&fw->gu_out, T * 2 * (size_t)hp->n_ff},
                {&fw->logits, (size_t)fw->cfg.max_logits * hp->n_vocab},
                {&fw->attn_scratch, lm_cuda_attn_scratch_bytes(hp->head_dim) / sizeof(float)}};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
        if (!(*bufs[i].dst = lm_cuda_alloc(fw->ctx, bufs[i].floats * sizeof(float), err))) return -1;
    fw->max_blocks = (fw->cfg.max_ctx + fw->cfg.block_size - 1) / fw->cfg.block_size;
    fw->off_tok = 0;
    fw->off_pos = fw->off_tok + align_up(T * sizeof(int32_t));
    fw->off_slot = fw->off_pos + align_up(T * sizeof(int32_t));
    fw->off_rows = fw->off_slot + align_up(T * sizeof(int32_t));
    fw->off_edit_rows = fw->off_rows + align_up((size_t)fw->cfg.max_logits * sizeof(int32_t));
    fw->off_tables = fw->off_edit_rows + align_up(((size_t)fw->cfg.max_logits + 1) * sizeof(int32_t));
    fw->stage_bytes = fw->off_tables + align_up((size_t)fw->cfg.max_slots * fw->max_blocks * sizeof(int32_t));
    fw->stage_host = lm_cuda_host_alloc(fw->ctx, fw->stage_bytes, err);
    fw->stage_dev = fw->stage_host ? lm_cuda_alloc(fw->ctx, fw->stage_bytes, err) : NULL;
    fw->logits_host =
        fw->stage_dev ? lm_cuda_host_alloc(fw->ctx, (size_t)fw->cfg.max_logits * hp->n_vocab * sizeof(float), err)
                      : NULL;
    /* the host lookup's page-locked rows, when the GPU does not look them up */
    fw->embd_host = fw->logits_host && !fw->embd_on_device ? lm_cuda_host_alloc(fw->ctx, T * E * sizeof(float), err)
                                                           : NULL;
    const size_t n_top = (size_t)fw->cfg.max_logits * LM_FORWARD_CUDA_TOP_K;
    fw->ids = fw->logits_host && (fw->embd_on_device || fw->embd_host)
                  ? lm_cuda_alloc(fw->ctx, n_top * sizeof(int32_t), err)
                  : NULL;
    fw->ids_host = fw->ids ? lm_cuda_host_alloc(fw->ctx, n_top * sizeof(int32_t), err) : NULL;
    fw->top_vals = fw->ids_host ? lm_cuda_alloc(fw->ctx, n_top * sizeof(float), err) : NULL;
    fw->top_vals_host = fw->top_vals ? lm_cuda_host_alloc(fw->ctx, n_top * sizeof(float), err) : NULL;
    const size_t n_z = (size_t)fw->cfg.max_logits * sizeof(float);
    fw->log_z = fw->top_vals_host ? lm_cuda_alloc(fw->ctx, n_z, err) : NULL;
    fw->log_z_host = fw->log_z ? lm_cuda_host_alloc(fw->ctx, n_z, err) : NULL;
    const size_t n_edit = LM_FORWARD_CUDA_MAX_EDITS * sizeof(lm_logit_edit);
    fw->edits_dev = fw->log_z_host ? lm_cuda_alloc(fw->ctx, n_edit, err) : NULL;
    fw->edits_host = fw->edits_dev ? lm_cuda_host_alloc(fw->ctx, n_edit, err) : NULL;
    return fw->edits_host ? 0 : -1;
}

/* the K/V pool: cfg.kv_bytes, or what memory_utilization leaves after the
 * weights, the activations and the GEMM path's scratch */
static int alloc_kv_pool(lm_forward_cuda *fw, lm_error *err) {
    const lm_hparams *hp = &fw->m->hp;
    fw->k_layer = (size_t)fw->cfg.block_size * hp->n_head_kv * hp->head_dim;
    fw->v_layer = (size_t)fw->cfg.block_size * hp->n_head_kv * hp->head_dim_v;
    const size_t block_bytes = (size_t)hp->n_layer * (fw->k_layer + fw->v_layer) * sizeof(uint16_t);
    size_t pool = fw->cfg.kv_bytes;
    if (!pool) {
        size_t free_b = 0, total_b = 0;
        if (lm_cuda_mem_info(fw->ctx, &free_b, &total_b, err)) return -1;
        const double util = fw->cfg.memory_utilization > 0 && fw->cfg.memory_utilization <= 1
                                ? fw->cfg.memory_utilization
                                : 0.9;
        const size_t allowed = (size_t)(util * (double)total_b), used = total_b - free_b;
        const bool gemm_scratch = !fw->f16_kept && !lm_cuda_batch_invariant(fw->ctx);
        const size_t keep = (gemm_scratch ? gemm_scratch_bytes(fw->m) : 0) + RESERVE_BYTES;
        pool = allowed > used + keep ? allowed - used - keep : 0;
        if (pool > free_b) pool = free_b > keep ? free_b - keep : 0;
        /* no more than every sequence at full context (and one more context
         * for the prefix cache): a small model would otherwise take 90 % of
         * the GPU and leave no room for a second server beside it */
        const size_t enough = ((size_t)fw->cfg.max_slots + 1) * (size_t)fw->max_blocks * block_bytes;
        if (pool > enough) pool = enough;
    }
    size_t n_blocks = pool / block_bytes;
    if (n_blocks > (1u << 30)) n_blocks = 1u << 30;
    if (n_blocks < (size_t)fw->max_blocks + 1) {
        lm_error_set(err,
                     "CUDA: room for %zu K/V blocks of %d positions on %s after %zu MiB of weights; one context of "
                     "%d positions needs %d (lower --ctx-size, or raise --gpu-memory-utilization)",
                     n_blocks, fw->cfg.block_size, fw->device_name, fw->weight_bytes >> 20, fw->cfg.max_ctx,
                     fw->max_blocks + 1);
        return -1;
    }
    fw->n_blocks = (int)n_blocks;
    fw->k_pool = lm_cuda_alloc(fw->ctx, n_blocks * hp->n_layer * fw->k_layer * sizeof(uint16_t), err);
    fw->v_pool = fw->k_pool ? lm_cuda_alloc(fw->ctx, n_blocks * hp->n_layer * fw->v_layer * sizeof(uint16_t), err)
                            : NULL;
    return fw->v_pool ? 0 : -1;
}

lm_forward_cuda *lm_forward_cuda_create(const lm_model *m, const lm_cuda_forward_config *cfg, lm_error *err) {
    const lm_hparams *hp = &m->hp;
    if (cfg->max_tokens < 1 || cfg->max_logits < 1 || cfg->max_slots < 1 || cfg->max_ctx < 1 ||
        cfg->block_size < 1) {
        lm_error_set(err, "CUDA: invalid forward configuration");
        return NULL;
    }
    if (hp->head_dim != hp->head_dim_v || hp->head_dim % 32 || hp->head_dim > LM_CUDA_MAX_HEAD_DIM) {
        lm_error_set(err, "CUDA: heads of %d (keys) and %d (values) are not supported yet (equal, a multiple of 32, "
                          "at most %d)",
                     hp->head_dim, hp->head_dim_v, LM_CUDA_MAX_HEAD_DIM);
        return NULL;
    }
    lm_forward_cuda *fw = calloc(1, sizeof(*fw));
    if (!fw) {
        lm_error_set(err, "out of memory");
        return NULL;
    }
    fw->m = m;
    fw->cfg = *cfg;
    fw->launched = -1;
    const char *graphs = getenv("LAMINA_CUDA_GRAPHS");
    const char *stack = getenv("LAMINA_CUDA_STACK");
    fw->stack = !(stack && !strcmp(stack, "0"));
    const char *fuse = getenv("LAMINA_CUDA_FUSE");
    fw->fuse_act = !(fuse && !strcmp(fuse, "0"));
    const char *embd = getenv("LAMINA_CUDA_EMBD");
    fw->embd_on_device = m->output.data == m->tok_embd.data && !(embd && !strcmp(embd, "0"));
    const char *profile = getenv("LAMINA_CUDA_PROFILE");
    fw->profile = profile && !strcmp(profile, "1");
    fw->use_graphs = !(graphs && !strcmp(graphs, "0")) && !fw->profile;
    lm_cuda_device_info info;
    if (!(fw->ctx = lm_cuda_ctx_create(cfg->device, err)) || lm_cuda_device_query(cfg->device, &info, err)) {
        lm_forward_cuda_free(fw);
        return NULL;
    }
    snprintf(fw->device_name, sizeof(fw->device_name), "%s", info.name);
    lm_cuda_set_batch_invariant(fw->ctx, cfg->batch_invariant);
    if (upload_weights(fw, err) || keep_f16_copies(fw, err) || alloc_activations(fw, err) || alloc_kv_pool(fw, err)) {
        lm_forward_cuda_free(fw);
        return NULL;
    }
    return fw;
}

void lm_forward_cuda_free(lm_forward_cuda *fw) {
    if (!fw) return;
    lm_cuda_ctx *ctx = fw->ctx;
    if (ctx) {
        lm_error ignored = {{0}};
        lm_cuda_sync(ctx, &ignored);
        for (int il = 0; fw->layers && il < fw->m->hp.n_layer; il++) {
            cuda_layer *C = &fw->layers[il];
            lm_cuda_matrix *mats[] = {C->wq, C->wk, C->wv, C->wo, C->gate, C->up, C->down, C->qkv, C->gate_up};
            for (size_t i = 0; i < sizeof(mats) / sizeof(mats[0]); i++)
                if (mats[i]) lm_cuda_matrix_free(mats[i]);
            float *vecs[] = {C->attn_norm, C->bq,     C->bk,       C->bv,          C->q_norm,
                             C->k_norm,    C->attn_post_norm, C->ffn_norm, C->ffn_post_norm};
            for (size_t i = 0; i < sizeof(vecs) / sizeof(vecs[0]); i++) lm_cuda_free(ctx, vecs[i]);
        }
        if (fw->output) lm_cuda_matrix_free(fw->output);
        float *bufs[] = {fw->output_norm, fw->rope_freqs, fw->x,    fw->xb,     fw->q,      fw->k,
                         fw->v,           fw->att,        fw->gate, fw->up,     fw->proj,   fw->logits,
                         fw->attn_scratch, fw->qkv_out,   fw->gu_out};
        for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) lm_cuda_free(ctx, bufs[i]);
        lm_cuda_free(ctx, fw->k_pool);
        lm_cuda_free(ctx, fw->v_pool);
        lm_cuda_free(ctx, fw->stage_dev);
        lm_cuda_host_free(ctx, fw->stage_host);
        lm_cuda_host_free(ctx, fw->logits_host);
        lm_cuda_host_free(ctx, fw->embd_host);
        lm_cuda_free(ctx, fw->ids);
        lm_cuda_host_free(ctx, fw->ids_host);
        lm_cuda_free(ctx, fw->top_vals);
        lm_cuda_host_free(ctx, fw->top_vals_host);
        lm_cuda_free(ctx, fw->log_z);
        lm_cuda_host_free(ctx, fw->log_z_host);
        lm_cuda_free(ctx, fw->edits_dev);
        lm_cuda_host_free(ctx, fw->edits_host);
        free_graphs(fw);
        if (fw->profile) lm_cuda_marks_print(ctx);
        lm_cuda_ctx_free(ctx);
    }
    free(fw->layers);
    free(fw);
}

int lm_forward_cuda_n_blocks(const lm_forward_cuda *fw) { return fw->n_blocks; }
size_t lm_forward_cuda_weight_bytes(const lm_forward_cuda *fw) { return fw->weight_bytes; }
const char *lm_forward_cuda_device_name(const lm_forward_cuda *fw) { return fw->device_name; }

/* checks the batch and fills the staging buffer; returns the number of logits rows or -1 */
static int stage_batch(lm_forward_cuda *fw, const lm_batch *b, const int *const *tables, const int *n_table,
                       int n_slots, lm_error *err) {
    const lm_model *m = fw->m;
    const lm_hparams *hp = &m->hp;
    if (b->n_tokens < 1 || b->n_tokens > fw->cfg.max_tokens) {
        lm_error_set(err, "batch of %d tokens (1..%d allowed)", b->n_tokens, fw->cfg.max_tokens);
        return -1;
    }
    if (n_slots < 1 || n_slots > fw->cfg.max_slots) {
        lm_error_set(err, "batch of %d sequences (1..%d allowed)", n_slots, fw->cfg.max_slots);
        return -1;
    }
    char *stage = fw->stage_host;
    float *embd = fw->embd_host;
    int32_t *tok_ids = (int32_t *)(stage + fw->off_tok);
    int32_t *pos = (int32_t *)(stage + fw->off_pos), *slot = (int32_t *)(stage + fw->off_slot);
    int32_t *rows = (int32_t *)(stage + fw->off_rows), *tab = (int32_t *)(stage + fw->off_tables);
    const cpu_matrix emb = {m->tok_embd.data, m->tok_embd.type, m->tok_embd.ne0, m->tok_embd.ne1,
                            m->tok_embd.row_bytes, NULL};
    int n_logits = 0;
    for (int t = 0; t < b->n_tokens; t++) {
        const int tok = b->tokens[t], p = b->pos[t], s = b->seq[t];
        if (tok < 0 || tok >= hp->n_vocab) {
            lm_error_set(err, "token id %d out of range [0, %d)", tok, hp->n_vocab);
            return -1;
        }
        if (p < 0 || p >= fw->cfg.max_ctx) {
            lm_error_set(err, "position %d out of range [0, %d)", p, fw->cfg.max_ctx);
            return -1;
        }
        if (s < 0 || s >= n_slots || p / fw->cfg.block_size >= n_table[s]) {
            lm_error_set(err, "token %d: slot %d has no K/V block for position %d", t, s, p);
            return -1;
        }
        if (b->want_logits[t]) {
            if (n_logits == fw->cfg.max_logits) {
                lm_error_set(err, "more than %d tokens want logits", fw->cfg.max_logits);
                return -1;
            }
            rows[n_logits++] = t;
        }
        tok_ids[t] = tok;
        if (!fw->embd_on_device) {
            float *xt = embd + (size_t)t * hp->n_embd;
            op_get_row(&emb, tok, xt);
            if (hp->embd_scale != 1.0f)
                for (int i = 0; i < hp->n_embd; i++) xt[i] *= hp->embd_scale;
        }
        pos[t] = p;
        slot[t] = s;
    }
    for (int s = 0; s < n_slots; s++) {
        if (n_table[s] > fw->max_blocks) {
            lm_error_set(err, "slot %d: %d K/V blocks (at most %d)", s, n_table[s], fw->max_blocks);
            return -1;
        }
        for (int i = 0; i < n_table[s]; i++) {
            if (tables[s][i] < 0 || tables[s][i] >= fw->n_blocks) {
                lm_error_set(err, "slot %d: K/V block %d out of range [0, %d)", s, tables[s][i], fw->n_blocks);
                return -1;
            }
            tab[(size_t)s * fw->max_blocks + i] = tables[s][i];
        }
    }
    return n_logits;
}

/* ys[i] = x ws[i] for matrices that read one input: the activations
 * prepared for one product serve the next ones of the same kind */
static int linear_shared(lm_forward_cuda *fw, const float *x, int T, lm_cuda_matrix *const *ws, float *const *ys,
                         int n, bool first_prepared, lm_error *err) {
    /* the matrix whose product (or whose fused producer) last prepared x */
    const lm_cuda_matrix *prepared = first_prepared ? ws[0] : NULL;
    for (int i = 0; i < n; i++) {
        if (prepared && lm_cuda_same_activations(prepared, ws[i])) {
            if (lm_cuda_matmul_again(fw->ctx, ws[i], T, ys[i], err)) return -1;
            continue;
        }
        if (lm_cuda_matmul(fw->ctx, ws[i], x, T, ys[i], LM_CUDA_PATH_AUTO, err)) return -1;
        prepared = ws[i];
    }
    return 0;
}

#define MARK(fw, label)                                                                                              \
    do {                                                                                                             \
        if ((fw)->profile) lm_cuda_mark((fw)->ctx, label);                                                           \
    } while (0)

/* one layer; on return x holds its output and xb the next layer's normed input */
static int run_layer(lm_forward_cuda *fw, int il, int T, const lm_cuda_kv_layer *kv, const int32_t *pos_dev,
                     const int32_t *slot_dev, lm_error *err) {
    const lm_hparams *hp = &fw->m->hp;
    const lm_layer *L = &fw->m->layers[il];
    const cuda_layer *C = &fw->layers[il];
    lm_cuda_ctx *ctx = fw->ctx;
    const lm_cuda_path AUTO = LM_CUDA_PATH_AUTO;
    const int q_dim = hp->n_head * hp->head_dim, kv_dim = hp->n_head_kv * hp->head_dim;
    const int v_dim = hp->n_head_kv * hp->head_dim_v, qkv_dim = q_dim + kv_dim + v_dim;
    const float *qs = fw->q, *ks = fw->k, *vs = fw->v;
    int ld_q = q_dim, ld_k = kv_dim, ld_v = v_dim;
    if (C->qkv) {
        if (fw->xb_prepared ? lm_cuda_matmul_again(ctx, C->qkv, T, fw->qkv_out, err)
                            : lm_cuda_matmul(ctx, C->qkv, fw->xb, T, fw->qkv_out, AUTO, err))
            return -1;
        qs = fw->qkv_out;
        ks = fw->qkv_out + q_dim;
        vs = fw->qkv_out + q_dim + kv_dim;
        ld_q = ld_k = ld_v = qkv_dim;
    } else {
        lm_cuda_matrix *const qkv_w[3] = {C->wq, C->wk, C->wv};
        float *const qkv_y[3] = {fw->q, fw->k, fw->v};
        if (linear_shared(fw, fw->xb, T, qkv_w, qkv_y, 3, fw->xb_prepared, err)) return -1;
    }
    MARK(fw, "qkv");
    const lm_cuda_qkv qkv = {
        .q = qs, .k = ks, .v = vs, .ld_q = ld_q, .ld_k = ld_k, .ld_v = ld_v, .q_out = fw->q,
        .bq = C->bq, .bk = C->bk, .bv = C->bv,
        .q_norm = C->q_norm, .k_norm = C->k_norm, .pos = pos_dev, .slot = slot_dev,
        .n_tokens = T, .n_head = hp->n_head, .n_head_kv = hp->n_head_kv, .head_dim = hp->head_dim,
        .head_dim_v = hp->head_dim_v, .n_rot = hp->n_rot, .eps = hp->rms_eps,
        .rope_base = L->is_swa ? hp->rope_base_swa : hp->rope_base,
        .rope_scale = L->is_swa ? hp->rope_scale_swa : hp->rope_scale,
        .neox = hp->rope_style == LM_ROPE_NEOX, .freq_factors = fw->rope_freqs,
    };
    if (lm_cuda_qkv_store(ctx, &qkv, kv, err)) return -1;
    MARK(fw, "qkv_store");
    const int window = L->is_swa ? hp->sliding_window : 0;
    const lm_cuda_attn attn = {
        .out = fw->att, .q = fw->q, .pos = pos_dev, .slot = slot_dev, .n_tokens = T,
        .max_keys = window > 0 && window < fw->cfg.max_ctx ? window : fw->cfg.max_ctx,
        .n_head = hp->n_head, .n_head_kv = hp->n_head_kv, .head_dim = hp->head_dim,
        .window = window, .scale = hp->attn_scale, .softcap = hp->attn_softcap,
        .scratch = fw->attn_scratch,
    };
    if (lm_cuda_attention(ctx, &attn, kv, err)) return -1;
    MARK(fw, "attention");
    if (lm_cuda_matmul(ctx, C->wo, fw->att, T, fw->proj, AUTO, err)) return -1;
    MARK(fw, "wo");
    bool fused = false;
    lm_cuda_matrix *ffn_in = C->gate_up ? C->gate_up : C->gate; /* the first product reading xb */
    if (lm_cuda_residual_for(ctx, fw->x, fw->proj, C->attn_post_norm, fw->xb, C->ffn_norm, T, hp->n_embd, hp->rms_eps,
                             fw->fuse_act ? ffn_in : NULL, &fused, err))
        return -1;
    MARK(fw, "residual");
    const int F = hp->n_ff;
    lm_cuda_matrix *down_in = fw->fuse_act ? C->down : NULL; /* the act kernel quantizes for it */
    if (C->gate_up) {
        if (fused ? lm_cuda_matmul_again(ctx, C->gate_up, T, fw->gu_out, err)
                  : lm_cuda_matmul(ctx, C->gate_up, fw->xb, T, fw->gu_out, AUTO, err))
            return -1;
        MARK(fw, "gate_up");
        if (lm_cuda_act_mul_for(ctx, fw->gate, fw->gu_out, fw->gu_out + F, T, F, 2 * F, hp->gelu_ffn, down_in,
                                &fused, err))
            return -1;
    } else {
        if (linear_shared(fw, fw->xb, T, (lm_cuda_matrix *const[2]){C->gate, C->up},
                          (float *const[2]){fw->gate, fw->up}, 2, fused, err))
            return -1;
        MARK(fw, "gate_up");
        if (lm_cuda_act_mul_for(ctx, fw->gate, fw->gate, fw->up, T, F, F, hp->gelu_ffn, down_in, &fused, err))
            return -1;
    }
    MARK(fw, "act");
    if (fused ? lm_cuda_matmul_again(ctx, C->down, T, fw->proj, err)
              : lm_cuda_matmul(ctx, C->down, fw->gate, T, fw->proj, AUTO, err))
        return -1;
    MARK(fw, "down");
    const float *next_norm = il + 1 < hp->n_layer ? fw->layers[il + 1].attn_norm : NULL;
    const cuda_layer *next = il + 1 < hp->n_layer ? &fw->layers[il + 1] : NULL;
    const lm_cuda_matrix *next_wq = next && fw->fuse_act ? (next->qkv ? next->qkv : next->wq) : NULL;
    if (lm_cuda_residual_for(ctx, fw->x, fw->proj, C->ffn_post_norm, fw->xb, next_norm, T, hp->n_embd, hp->rms_eps,
                             next_wq, &fw->xb_prepared, err))
        return -1;
    MARK(fw, "residual");
    return 0;
}

/* queues the whole step: uploads, layers, logits and their copy back.
 * STAGE_BYTES: how much of the staging buffer to upload (a graph copies all
 * of it, so that one graph serves any number of sequences) */
static int enqueue_step(lm_forward_cuda *fw, int T, int n_logits, lm_cuda_out out, bool edits, size_t stage_bytes,
                        lm_error *err) {
    const lm_hparams *hp = &fw->m->hp;
    lm_cuda_ctx *ctx = fw->ctx;
    char *dev = fw->stage_dev;
    MARK(fw, "start");
    if (lm_cuda_upload_async(ctx, dev, fw->stage_host, stage_bytes, err) ||
        (fw->embd_on_device
             ? lm_cuda_get_rows(ctx, fw->output, (const int32_t *)(dev + fw->off_tok), T, hp->embd_scale, fw->x, err)
             : lm_cuda_upload_async(ctx, fw->x, fw->embd_host, (size_t)T * hp->n_embd * sizeof(float), err)))
        return -1;
    const int32_t *pos_dev = (const int32_t *)(dev + fw->off_pos), *slot_dev = (const int32_t *)(dev + fw->off_slot);
    const int32_t *rows_dev = (const int32_t *)(dev + fw->off_rows);
    if (lm_cuda_rmsnorm(ctx, fw->xb, fw->x, NULL, fw->layers[0].attn_norm, T, hp->n_embd, hp->rms_eps, err))
        return -1;
    fw->xb_prepared = false;
    MARK(fw, "upload");
    for (int il = 0; il < hp->n_layer; il++) {
        const lm_cuda_kv_layer kv = {
            .k = fw->k_pool + (size_t)il * fw->n_blocks * fw->k_layer,
            .v = fw->v_pool + (size_t)il * fw->n_blocks * fw->v_layer,
            .tables = (const int32_t *)(dev + fw->off_tables),
            .max_blocks = fw->max_blocks,
            .block_size = fw->cfg.block_size,
        };
        if (run_layer(fw, il, T, &kv, pos_dev, slot_dev, err)) return -1;
    }
    if (n_logits == 0) return 0;
    const size_t n_out = (size_t)n_logits * hp->n_vocab;
    if (lm_cuda_rmsnorm(ctx, fw->xb, fw->x, rows_dev, fw->output_norm, n_logits, hp->n_embd, hp->rms_eps, err) ||
        lm_cuda_matmul(ctx, fw->output, fw->xb, n_logits, fw->logits, LM_CUDA_PATH_AUTO, err) ||
        (hp->final_softcap > 0.0f && lm_cuda_softcap(ctx, fw->logits, n_out, hp->final_softcap, err)) ||
        (edits && lm_cuda_logit_edits(ctx, fw->logits, n_logits, hp->n_vocab,
                                      (const int32_t *)(dev + fw->off_edit_rows), fw->edits_dev, err)))
        return -1;
    MARK(fw, "output");
    const size_t n_top = (size_t)n_logits * LM_FORWARD_CUDA_TOP_K;
    switch (out) {
    case LM_CUDA_OUT_ARGMAX:
        return lm_cuda_argmax(ctx, fw->logits, n_logits, hp->n_vocab, fw->ids, err) ||
                       lm_cuda_download_async(ctx, fw->ids_host, fw->ids, (size_t)n_logits * sizeof(int32_t), err)
                   ? -1
                   : 0;
    case LM_CUDA_OUT_TOP_K:
    case LM_CUDA_OUT_TOP_K_LOGZ:
        if (out == LM_CUDA_OUT_TOP_K_LOGZ &&
            (lm_cuda_log_z(ctx, fw->logits, n_logits, hp->n_vocab, fw->log_z, err) ||
             lm_cuda_download_async(ctx, fw->log_z_host, fw->log_z, (size_t)n_logits * sizeof(float), err)))
            return -1;
        return lm_cuda_top_k(ctx, fw->logits, n_logits, hp->n_vocab, LM_FORWARD_CUDA_TOP_K, fw->ids, fw->top_vals,
                             err) ||
                       lm_cuda_download_async(ctx, fw->ids_host, fw->ids, n_top * sizeof(int32_t), err) ||
                       lm_cuda_download_async(ctx, fw->top_vals_host, fw->top_vals, n_top * sizeof(float), err)
                   ? -1
                   : 0;
    default: return lm_cuda_download_async(ctx, fw->logits_host, fw->logits, n_out * sizeof(float), err);
    }
}

/* a decode step through its graph: captured on the second step of this
 * token count, replayed after. 1: not a graph step (run it directly). */
static int run_graph(lm_forward_cuda *fw, int T, int n_logits, lm_cuda_out out, bool edits, lm_error *err) {
    if (!fw->use_graphs || T > GRAPH_MAX_TOKENS || n_logits != T) return 1;
    if (fw->graph_epoch != lm_cuda_scratch_epoch()) { /* a scratch buffer moved: every graph is stale */
        free_graphs(fw);
        fw->graph_epoch = lm_cuda_scratch_epoch();
    }
    lm_cuda_graph **slot = &fw->graphs[out][edits][T];
    if (!*slot) {
        if (!fw->seen[out][edits][T]) { /* first step of this kind: direct, sizing the scratch */
            fw->seen[out][edits][T] = true;
            return 1;
        }
        if (lm_cuda_capture_begin(fw->ctx, err)) return -1;
        lm_error inner = {{0}};
        const int rc = enqueue_step(fw, T, n_logits, out, edits, fw->stage_bytes, &inner);
        lm_cuda_graph *g = lm_cuda_capture_end(fw->ctx, err); /* ends the capture even after a failure */
        if (rc) {
            lm_cuda_graph_free(g);
            *err = inner;
            return -1;
        }
        if (!g) return -1;
        if (fw->graph_epoch != lm_cuda_scratch_epoch()) { /* scratch grew while capturing: not replayable */
            lm_cuda_graph_free(g);
            return 1;
        }
        *slot = g;
    }
    return lm_cuda_graph_launch(fw->ctx, *slot, err);
}

/* the step's edits: their row offsets into the staging buffer, the list
 * into edits_host and up to the device now (a graph copies only the staging
 * buffer); *any: there are some */
static int stage_edits(lm_forward_cuda *fw, const lm_step_edits *edits, int n_logits, bool *any, lm_error *err) {
    *any = false;
    if (!edits || n_logits == 0) return 0;
    const int n = edits->row_start[n_logits] - edits->row_start[0];
    if (n == 0) return 0;
    if (n < 0 || n > LM_FORWARD_CUDA_MAX_EDITS) {
        lm_error_set(err, "%d logit edits in a step (at most %d)", n, LM_FORWARD_CUDA_MAX_EDITS);
        return -1;
    }
    int32_t *row_start = (int32_t *)((char *)fw->stage_host + fw->off_edit_rows);
    for (int r = 0; r <= n_logits; r++) row_start[r] = edits->row_start[r] - edits->row_start[0];
    for (int i = 0; i < n; i++) {
        const lm_logit_edit *e = &edits->list[edits->row_start[0] + i];
        if (e->token < 0 || e->token >= fw->m->hp.n_vocab || (e->kind != LM_EDIT_BIAS && e->kind != LM_EDIT_PENALTY)) {
            lm_error_set(err, "logit edit of token %d (kind %d) out of range", e->token, e->kind);
            return -1;
        }
        fw->edits_host[i] = *e;
    }
    *any = true;
    return lm_cuda_upload_async(fw->ctx, fw->edits_dev, fw->edits_host, (size_t)n * sizeof(lm_logit_edit), err);
}

int lm_forward_cuda_launch(lm_forward_cuda *fw, const lm_batch *batch, const int *const *tables, const int *n_table,
                           int n_slots, const lm_step_edits *edits, lm_cuda_out out, lm_error *err) {
    fw->launched = -1;
    if (out < 0 || out >= LM_CUDA_OUT_KINDS) {
        lm_error_set(err, "CUDA: unknown step output %d", (int)out);
        return -1;
    }
    const int n_logits = stage_batch(fw, batch, tables, n_table, n_slots, err);
    if (n_logits < 0) return -1;
    bool any = false;
    if (stage_edits(fw, out == LM_CUDA_OUT_LOGITS ? NULL : edits, n_logits, &any, err)) return -1;
    const int T = batch->n_tokens;
    int rc = run_graph(fw, T, n_logits, out, any, err);
    if (rc > 0)
        rc = enqueue_step(fw, T, n_logits, out, any,
                          fw->off_tables + (size_t)n_slots * fw->max_blocks * sizeof(int32_t), err);
    if (rc) return -1;
    fw->launched = n_logits;
    return 0;
}

int lm_forward_cuda_wait(lm_forward_cuda *fw, lm_cuda_results *res, lm_error *err) {
    const int n_logits = fw->launched;
    fw->launched = -1;
    if (n_logits < 0) {
        lm_error_set(err, "CUDA: no step in flight");
        return -1;
    }
    if (lm_cuda_sync(fw->ctx, err)) return -1;
    if (fw->profile) {
        MARK(fw, "download");
        lm_cuda_marks_collect(fw->ctx);
    }
    fw->last_logits = n_logits;
    if (res) *res = (lm_cuda_results){fw->ids_host, fw->top_vals_host, fw->log_z_host, fw->logits_host};
    return n_logits;
}

/* stages, runs (through a graph where it can) and waits for one step */
static int run_step(lm_forward_cuda *fw, const lm_batch *batch, const int *const *tables, const int *n_table,
                    int n_slots, const lm_step_edits *edits, lm_cuda_out out, lm_error *err) {
    if (lm_forward_cuda_launch(fw, batch, tables, n_table, n_slots, edits, out, err)) return -1;
    return lm_forward_cuda_wait(fw, NULL, err);
}

int lm_forward_cuda_run(lm_forward_cuda *fw, const lm_batch *batch, const int *const *tables, const int *n_table,
                        int n_slots, const lm_step_edits *edits, float *logits, int32_t *argmax, lm_error *err) {
    const int n_logits =
        run_step(fw, batch, tables, n_table, n_slots, edits, argmax ? LM_CUDA_OUT_ARGMAX : LM_CUDA_OUT_LOGITS, err);
    if (n_logits < 0) return -1;
    if (n_logits > 0 && argmax) memcpy(argmax, fw->ids_host, (size_t)n_logits * sizeof(int32_t));
    else if (n_logits > 0 && logits)
        memcpy(logits, fw->logits_host, (size_t)n_logits * fw->m->hp.n_vocab * sizeof(float));
    return 0;
}

int lm_forward_cuda_run_top_k(lm_forward_cuda *fw, const lm_batch *batch, const int *const *tables,
                              const int *n_table, int n_slots, const lm_step_edits *edits, int32_t *ids, float *vals,
                              float *log_z, lm_error *err) {
    const int n_logits =
        run_step(fw, batch, tables, n_table, n_slots, edits, log_z ? LM_CUDA_OUT_TOP_K_LOGZ : LM_CUDA_OUT_TOP_K, err);
    if (n_logits < 0) return -1;
    const size_t n_top = (size_t)n_logits * LM_FORWARD_CUDA_TOP_K;
    memcpy(ids, fw->ids_host, n_top * sizeof(int32_t));
    memcpy(vals, fw->top_vals_host, n_top * sizeof(float));
    if (log_z) memcpy(log_z, fw->log_z_host, (size_t)n_logits * sizeof(float));
    return 0;
}

float *lm_forward_cuda_fetch_row(lm_forward_cuda *fw, int row, lm_error *err) {
    if (row < 0 || row >= fw->last_logits) {
        lm_error_set(err, "logits row %d of %d", row, fw->last_logits);
        return NULL;
    }
    const size_t n_vocab = (size_t)fw->m->hp.n_vocab;
    float *dst = fw->logits_host + (size_t)row * n_vocab;
    return lm_cuda_download(fw->ctx, dst, fw->logits + (size_t)row * n_vocab, n_vocab * sizeof(float), err) ? NULL
                                                                                                              : dst;
}

float *lm_forward_cuda_logits(lm_forward_cuda *fw) { return fw->logits_host; }
