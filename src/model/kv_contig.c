#include "model/kv_contig.h"

#include <stdlib.h>

struct kv_contig {
    int n_layer, n_seq, max_ctx;
    size_t k_stride, v_stride; /* f16 elements per (layer, seq) region */
    lm_fp16 *k;                /* (n_layer, n_seq, max_ctx, n_head_kv * head_dim) */
    lm_fp16 *v;                /* (n_layer, n_seq, max_ctx, n_head_kv * head_dim_v) */
};

static lm_fp16 *k_block(void *ctx, int layer, int seq, int block) {
    kv_contig *kv = ctx;
    (void)block; /* one block per sequence */
    return kv->k + ((size_t)layer * kv->n_seq + seq) * kv->k_stride;
}

static lm_fp16 *v_block(void *ctx, int layer, int seq, int block) {
    kv_contig *kv = ctx;
    (void)block;
    return kv->v + ((size_t)layer * kv->n_seq + seq) * kv->v_stride;
}

kv_contig *kv_contig_create(const lm_hparams *hp, int n_seq, int max_ctx, lm_kv *view) {
    kv_contig *kv = calloc(1, sizeof(*kv));
    if (!kv) return NULL;
    kv->n_layer = hp->n_layer;
    kv->n_seq = n_seq;
    kv->max_ctx = max_ctx;
    kv->k_stride = (size_t)max_ctx * hp->n_head_kv * hp->head_dim;
    kv->v_stride = (size_t)max_ctx * hp->n_head_kv * hp->head_dim_v;
    kv->k = malloc((size_t)hp->n_layer * n_seq * kv->k_stride * sizeof(lm_fp16));
    kv->v = malloc((size_t)hp->n_layer * n_seq * kv->v_stride * sizeof(lm_fp16));
    if (!kv->k || !kv->v) {
        kv_contig_free(kv);
        return NULL;
    }
    view->block_size = max_ctx;
    view->k_block = k_block;
    view->v_block = v_block;
    view->ctx = kv;
    return kv;
}

void kv_contig_free(kv_contig *kv) {
    if (!kv) return;
    free(kv->k);
    free(kv->v);
    free(kv);
}
