/* logit_edit.h - a sampler's changes to a logits row, as data.
 *
 * Logit bias and the repetition/presence/frequency penalties change a few
 * entries of a row before the draw. The sampler (engine/sampler.h) writes
 * them as a list of edits, so the same list can be applied on the CPU
 * (lm_logit_edits_apply) or by the GPU to its own logits rows before its
 * argmax / top-k (backend/cuda): the edited row is then the same bits on
 * either side. A row's list holds its bias edits first, in the request's
 * order (one token may appear twice: applied in turn), then at most one
 * penalty edit per token. Each step is one IEEE operation, rounded on its
 * own (no fused multiply-add), in this order:
 *   LM_EDIT_BIAS      l = l + a
 *   LM_EDIT_PENALTY   l = (l <= 0 ? l * a : l / a) - b
 *                     (a: the repetition penalty; b: count * frequency
 *                     penalty + presence penalty, computed by the sampler) */
#ifndef LAMINA_BASE_LOGIT_EDIT_H
#define LAMINA_BASE_LOGIT_EDIT_H

#include <stdint.h>

enum { LM_EDIT_BIAS = 0, LM_EDIT_PENALTY = 1 };

typedef struct lm_logit_edit {
    int32_t token; /* 0 <= token < n_vocab */
    int32_t kind;  /* LM_EDIT_BIAS or LM_EDIT_PENALTY */
    float a, b;
} lm_logit_edit;

#endif
