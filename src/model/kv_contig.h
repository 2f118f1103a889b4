/* kv_contig.h - the simplest K/V store behind lm_kv: one contiguous f16
 * region per (layer, sequence), max_ctx positions long (one block per
 * sequence). Used by `lamina generate` and the tests; the serving engine uses
 * the paged cache. */
#ifndef LAMINA_MODEL_KV_CONTIG_H
#define LAMINA_MODEL_KV_CONTIG_H

#include "model/model.h"

typedef struct kv_contig kv_contig;

/* NULL on allocation failure; *view is filled for lm_forward_run */
kv_contig *kv_contig_create(const lm_hparams *hp, int n_seq, int max_ctx, lm_kv *view);
void kv_contig_free(kv_contig *kv);

#endif
