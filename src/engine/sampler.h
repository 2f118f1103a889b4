/* sampler.h - turning one row of logits into the next token.
 *
 * The chain, in llama.cpp's default order: logit bias (token ids outside
 * the vocabulary are ignored), repetition/presence/
 * frequency penalties over the last penalty_last_n tokens, top-k, top-p,
 * min-p, temperature, then a draw from the distribution with a per-sequence
 * RNG (same seed, same output). temperature <= 0 is greedy (argmax, ties to
 * the lowest id). */
#ifndef LAMINA_ENGINE_SAMPLER_H
#define LAMINA_ENGINE_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

#include "base/logit_edit.h"

typedef struct lm_logit_bias {
    int32_t token;
    float bias;               /* added to the token's logit; -100 bans it in practice */
} lm_logit_bias;

typedef struct lm_sampling {
    float temperature;        /* <= 0: greedy */
    int top_k;                /* <= 0: off */
    float top_p;              /* >= 1: off */
    float min_p;              /* <= 0: off */
    float repetition_penalty; /* 1: off (divides positive logits, multiplies negative ones) */
    float presence_penalty;   /* 0: off */
    float frequency_penalty;  /* 0: off */
    int penalty_last_n;       /* tokens of history the penalties see; -1: all */
    uint64_t seed;
    const lm_logit_bias *logit_bias; /* (n_logit_bias), borrowed: lm_sampler_create copies it */
    int n_logit_bias;
} lm_sampling;

/* llama.cpp's defaults: temp 0.8, top-k 40, top-p 0.95, min-p 0.05, no penalties */
lm_sampling lm_sampling_default(void);

typedef struct lm_sampler lm_sampler;

/* NULL on allocation failure */
lm_sampler *lm_sampler_create(const lm_sampling *params, int n_vocab);
void lm_sampler_free(lm_sampler *s);
/* records a token (prompt or generated) in the penalty history */
void lm_sampler_accept(lm_sampler *s, int32_t token);
/* The sampler's logit bias and penalties for its next draw, as edits of the
 * row (base/logit_edit.h: bias edits in the request's order, then one
 * penalty edit per distinct token of the window) into out; their count, or
 * -1 when there are more than CAP. */
int lm_sampler_edits(lm_sampler *s, lm_logit_edit *out, int cap);
/* true when the sampler edits rows (a logit bias, or penalties and a
 * history to apply them to) */
bool lm_sampler_has_edits(const lm_sampler *s);
/* applies N edits to a logits row */
void lm_logit_edits_apply(float *logits, const lm_logit_edit *e, int n);

/* What a draw needs to see of its (edited) row, given a source of the K
 * best candidates:
 *   ARGMAX  greedy: the row's argmax
 *   TOP     0 < top_k <= K: the K best decide it
 *   TOP_Z   top-p / min-p without a top-k: the K best and the row's
 *           log-normalizer decide it almost always (lm_sampler_sample_top
 *           says -1 when they do not)
 *   ROW     the whole row */
typedef enum { LM_SAMPLE_ARGMAX, LM_SAMPLE_TOP, LM_SAMPLE_TOP_Z, LM_SAMPLE_ROW } lm_sample_need;
lm_sample_need lm_sampler_need(const lm_sampler *s, int k);
/* Samples from the N best candidates (ids, logits) of a row whose edits
 * are applied, sorted by logit descending and ties by the lower id, and
 * LOG_Z, the row's log of the sum of e^logit (NAN when not known): the
 * same token lm_sampler_sample draws from the whole row. -1, with the RNG
 * untouched, when these cannot decide (a top-p or min-p cut past the N, a
 * top-p cut too near to call from LOG_Z: draw from the row with
 * lm_sampler_sample_edited then). */
int32_t lm_sampler_sample_top(lm_sampler *s, const int32_t *ids, const float *logits, int n, float log_z);
/* samples from logits (n_vocab, modified in place): edits, then the draw;
 * returns the token id */
int32_t lm_sampler_sample(lm_sampler *s, float *logits);
/* the same, for a row whose edits were already applied (by the GPU) */
int32_t lm_sampler_sample_edited(lm_sampler *s, float *logits);

/* index of the largest value; ties go to the lowest index */
int32_t lm_argmax(const float *x, int n);

#endif
