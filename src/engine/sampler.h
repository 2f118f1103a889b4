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
/* true when sampling is the plain argmax of the logits (temperature 0, no
 * penalties, no logit bias): the GPU can then pick the token itself */
bool lm_sampler_argmax_only(const lm_sampler *s);
/* true when the sampler needs no more than the K_MAX best logits: no
 * penalties, no logit bias, and greedy or 0 < top_k <= K_MAX */
bool lm_sampler_top_k_only(const lm_sampler *s, int k_max);
/* samples from the N best candidates (ids, logits), sorted by logit
 * descending and ties by the lower id: the same token lm_sampler_sample
 * draws from the whole row when lm_sampler_top_k_only(s, N) */
int32_t lm_sampler_sample_top(lm_sampler *s, const int32_t *ids, const float *logits, int n);
/* samples from logits (n_vocab, modified in place); returns the token id */
int32_t lm_sampler_sample(lm_sampler *s, float *logits);

/* index of the largest value; ties go to the lowest index */
int32_t lm_argmax(const float *x, int n);

#endif
