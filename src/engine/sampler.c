#include "engine/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int32_t id;
    float logit;
} candidate;

struct lm_sampler {
    lm_sampling p;
    int n_vocab;
    uint64_t rng;       /* splitmix64 state */
    int32_t *history;   /* ring of the last penalty_last_n tokens (or all) */
    int history_cap, history_len, history_head;
    int32_t *counts;    /* (n_vocab) occurrences in the window; only with penalties */
    candidate *cand;    /* (n_vocab) sort space; allocated at the first non-greedy draw */
};

lm_sampling lm_sampling_default(void) {
    lm_sampling p = {0.8f, 40, 0.95f, 0.05f, 1.0f, 0.0f, 0.0f, 64, 0, NULL, 0};
    return p;
}

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* uniform in [0, 1) with 53 random bits */
static double next_uniform(lm_sampler *s) { return (double)(splitmix64(&s->rng) >> 11) * (1.0 / 9007199254740992.0); }

lm_sampler *lm_sampler_create(const lm_sampling *params, int n_vocab) {
    lm_sampler *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    s->p = *params;
    s->n_vocab = n_vocab;
    if (params->n_logit_bias > 0) {
        lm_logit_bias *copy = malloc(sizeof(lm_logit_bias) * (size_t)params->n_logit_bias);
        if (!copy) {
            free(s);
            return NULL;
        }
        memcpy(copy, params->logit_bias, sizeof(lm_logit_bias) * (size_t)params->n_logit_bias);
        s->p.logit_bias = copy;
    } else {
        s->p.logit_bias = NULL;
        s->p.n_logit_bias = 0;
    }
    s->rng = params->seed;
    s->history_cap = params->penalty_last_n < 0 ? 1 << 20 : params->penalty_last_n;
    /* a server holds many samplers over large vocabularies: greedy requests
     * without penalties need none of the per-vocabulary arrays */
    const bool penalties = params->repetition_penalty != 1.0f || params->presence_penalty != 0.0f ||
                           params->frequency_penalty != 0.0f;
    if (!penalties) s->history_cap = 0;
    s->history = malloc(sizeof(int32_t) * (size_t)(s->history_cap > 0 ? s->history_cap : 1));
    s->counts = penalties ? calloc((size_t)n_vocab, sizeof(int32_t)) : NULL;
    if (!s->history || (penalties && !s->counts)) {
        lm_sampler_free(s);
        return NULL;
    }
    return s;
}

void lm_sampler_free(lm_sampler *s) {
    if (!s) return;
    free(s->history);
    free(s->counts);
    free(s->cand);
    free((void *)s->p.logit_bias);
    free(s);
}

void lm_sampler_accept(lm_sampler *s, int32_t token) {
    if (s->history_cap == 0 || token < 0 || token >= s->n_vocab) return;
    if (s->history_len == s->history_cap) { /* drop the oldest */
        s->counts[s->history[s->history_head]]--;
        s->history[s->history_head] = token;
        s->history_head = (s->history_head + 1) % s->history_cap;
    } else {
        s->history[(s->history_head + s->history_len) % s->history_cap] = token;
        s->history_len++;
    }
    s->counts[token]++;
}

int32_t lm_argmax(const float *x, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static void apply_penalties(lm_sampler *s, float *logits) {
    const lm_sampling *p = &s->p;
    if (p->repetition_penalty == 1.0f && p->presence_penalty == 0.0f && p->frequency_penalty == 0.0f) return;
    for (int i = 0; i < s->history_len; i++) {
        const int32_t id = s->history[(s->history_head + i) % s->history_cap];
        const int count = s->counts[id];
        if (count <= 0) continue; /* already penalized: counts are zeroed below, restored after */
        float *l = &logits[id];
        if (*l <= 0.0f) *l *= p->repetition_penalty;
        else *l /= p->repetition_penalty;
        *l -= (float)count * p->frequency_penalty + p->presence_penalty;
        s->counts[id] = -count; /* mark as done for repeated ids in the window */
    }
    for (int i = 0; i < s->history_len; i++) {
        const int32_t id = s->history[(s->history_head + i) % s->history_cap];
        if (s->counts[id] < 0) s->counts[id] = -s->counts[id];
    }
}

static int cmp_desc(const void *a, const void *b) {
    const candidate *x = a, *y = b;
    if (x->logit != y->logit) return x->logit < y->logit ? 1 : -1;
    return x->id < y->id ? -1 : (x->id > y->id);
}

/* Candidates sorted by logit, descending. Tokens more than 40 nats below the
 * best cannot change top-p/min-p/the draw in float precision, so they are
 * dropped before sorting (the vocabulary can be 256k). */
static int sorted_candidates(lm_sampler *s, const float *logits) {
    float max = logits[0];
    for (int i = 1; i < s->n_vocab; i++)
        if (logits[i] > max) max = logits[i];
    int n = 0;
    for (int i = 0; i < s->n_vocab; i++)
        if (logits[i] >= max - 40.0f) s->cand[n++] = (candidate){i, logits[i]};
    qsort(s->cand, (size_t)n, sizeof(candidate), cmp_desc);
    return n;
}

/* top-k, top-p, min-p, temperature and the draw over the first N sorted
 * candidates in s->cand */
static int32_t draw(lm_sampler *s, int n) {
    const lm_sampling *p = &s->p;
    if (p->top_k > 0 && p->top_k < n) n = p->top_k;
    /* probabilities at temperature 1, as llama.cpp's top-p and min-p see them */
    const float max = s->cand[0].logit;
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += exp((double)(s->cand[i].logit - max));
    if (p->top_p < 1.0f) {
        double cum = 0.0;
        for (int i = 0; i < n; i++) {
            cum += exp((double)(s->cand[i].logit - max)) / sum;
            if (cum >= p->top_p) {
                n = i + 1;
                break;
            }
        }
    }
    if (p->min_p > 0.0f) {
        const float floor_logit = max + logf(p->min_p);
        int keep = 1;
        while (keep < n && s->cand[keep].logit >= floor_logit) keep++;
        n = keep;
    }
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        s->cand[i].logit = (float)exp((double)(s->cand[i].logit - max) / p->temperature);
        total += s->cand[i].logit;
    }
    const double r = next_uniform(s) * total;
    double acc = 0.0;
    for (int i = 0; i < n; i++) {
        acc += s->cand[i].logit;
        if (r < acc) return s->cand[i].id;
    }
    return s->cand[n - 1].id;
}

bool lm_sampler_argmax_only(const lm_sampler *s) {
    const lm_sampling *p = &s->p;
    return p->temperature <= 0.0f && p->n_logit_bias == 0 && p->repetition_penalty == 1.0f &&
           p->presence_penalty == 0.0f && p->frequency_penalty == 0.0f;
}

int32_t lm_sampler_sample(lm_sampler *s, float *logits) {
    const lm_sampling *p = &s->p;
    for (int i = 0; i < p->n_logit_bias; i++) {
        const int32_t t = p->logit_bias[i].token;
        if (t >= 0 && t < s->n_vocab) logits[t] += p->logit_bias[i].bias;
    }
    apply_penalties(s, logits);
    if (p->temperature <= 0.0f) return lm_argmax(logits, s->n_vocab);
    if (!s->cand && !(s->cand = malloc(sizeof(candidate) * (size_t)s->n_vocab)))
        return lm_argmax(logits, s->n_vocab); /* out of memory: the most likely token */
    return draw(s, sorted_candidates(s, logits));
}

bool lm_sampler_top_k_only(const lm_sampler *s, int k_max) {
    const lm_sampling *p = &s->p;
    return p->n_logit_bias == 0 && p->repetition_penalty == 1.0f && p->presence_penalty == 0.0f &&
           p->frequency_penalty == 0.0f && (p->temperature <= 0.0f || (p->top_k > 0 && p->top_k <= k_max));
}

int32_t lm_sampler_sample_top(lm_sampler *s, const int32_t *ids, const float *logits, int n) {
    const lm_sampling *p = &s->p;
    if (p->temperature <= 0.0f || n == 1) return ids[0];
    if (!s->cand && !(s->cand = malloc(sizeof(candidate) * (size_t)s->n_vocab))) return ids[0];
    int m = 0; /* sorted_candidates' window: within 40 nats of the best */
    for (int i = 0; i < n && i < s->n_vocab && logits[i] >= logits[0] - 40.0f; i++) s->cand[m++] = (candidate){ids[i], logits[i]};
    return draw(s, m);
}
