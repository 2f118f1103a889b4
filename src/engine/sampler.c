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

/* the penalty's subtrahend for a token seen COUNT times in the window */
static float penalty_sub(const lm_sampling *p, int count) {
    return (float)count * p->frequency_penalty + p->presence_penalty;
}

int lm_sampler_edits(lm_sampler *s, lm_logit_edit *out, int cap) {
    const lm_sampling *p = &s->p;
    int n = 0;
    for (int i = 0; i < p->n_logit_bias; i++) {
        const int32_t t = p->logit_bias[i].token;
        if (t < 0 || t >= s->n_vocab) continue;
        if (n == cap) return -1;
        out[n++] = (lm_logit_edit){t, LM_EDIT_BIAS, p->logit_bias[i].bias, 0.0f};
    }
    if (s->history_cap == 0) return n;
    for (int i = 0; i < s->history_len; i++) { /* one edit per distinct token of the window */
        const int32_t id = s->history[(s->history_head + i) % s->history_cap];
        const int count = s->counts[id];
        if (count <= 0) continue; /* already listed: counts are negated until the loop below */
        if (n < cap) out[n] = (lm_logit_edit){id, LM_EDIT_PENALTY, p->repetition_penalty, penalty_sub(p, count)};
        n++;
        s->counts[id] = -count;
    }
    for (int i = 0; i < s->history_len; i++) {
        const int32_t id = s->history[(s->history_head + i) % s->history_cap];
        if (s->counts[id] < 0) s->counts[id] = -s->counts[id];
    }
    return n <= cap ? n : -1;
}

void lm_logit_edits_apply(float *logits, const lm_logit_edit *e, int n) {
    for (int i = 0; i < n; i++) {
        float *l = &logits[e[i].token];
        if (e[i].kind == LM_EDIT_BIAS) {
            *l += e[i].a;
        } else {
            if (*l <= 0.0f) *l *= e[i].a;
            else *l /= e[i].a;
            *l -= e[i].b;
        }
    }
}

bool lm_sampler_has_edits(const lm_sampler *s) { return s->p.n_logit_bias > 0 || s->history_len > 0; }

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

/* min-p, temperature and the draw over the first N sorted candidates in
 * s->cand (top-k and top-p already cut) */
static int32_t draw_cut(lm_sampler *s, int n) {
    const lm_sampling *p = &s->p;
    const float max = s->cand[0].logit;
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
    return draw_cut(s, n);
}

/* the edits of a row, applied on the CPU: a small list on the stack, or
 * (a long penalty window) one allocated for the call */
static void apply_edits(lm_sampler *s, float *logits) {
    lm_logit_edit local[256];
    int n = lm_sampler_edits(s, local, 256);
    if (n >= 0) {
        lm_logit_edits_apply(logits, local, n);
        return;
    }
    const int cap = s->p.n_logit_bias + s->history_len;
    lm_logit_edit *heap = malloc(sizeof(lm_logit_edit) * (size_t)cap);
    if (heap && (n = lm_sampler_edits(s, heap, cap)) >= 0) lm_logit_edits_apply(logits, heap, n);
    free(heap);
}

int32_t lm_sampler_sample(lm_sampler *s, float *logits) {
    if (lm_sampler_has_edits(s)) apply_edits(s, logits);
    return lm_sampler_sample_edited(s, logits);
}

int32_t lm_sampler_sample_edited(lm_sampler *s, float *logits) {
    if (s->p.temperature <= 0.0f) return lm_argmax(logits, s->n_vocab);
    if (!s->cand && !(s->cand = malloc(sizeof(candidate) * (size_t)s->n_vocab)))
        return lm_argmax(logits, s->n_vocab); /* out of memory: the most likely token */
    return draw(s, sorted_candidates(s, logits));
}

lm_sample_need lm_sampler_need(const lm_sampler *s, int k) {
    const lm_sampling *p = &s->p;
    if (p->temperature <= 0.0f) return LM_SAMPLE_ARGMAX;
    if (p->top_k > 0 && p->top_k <= k) return LM_SAMPLE_TOP;
    if (p->top_k > 0 && p->top_k < s->n_vocab) return LM_SAMPLE_ROW; /* a cut past the K: its mass needs them all */
    return p->top_p < 1.0f || p->min_p > 0.0f ? LM_SAMPLE_TOP_Z : LM_SAMPLE_ROW;
}

/* Where top-p cuts the M candidates (within 40 nats of the best), from the
 * first N of them and an estimate of their total mass: row_sum (the sum of
 * e^(logit - best) over the row) within a relative SLACK. The cut is the
 * first i whose cumulative mass reaches top_p whatever the true sum within
 * the slack; -1 when some i could go either way, or when the cut lies past
 * the N. */
#define SUM_SLACK 1e-3
static int top_p_cut(const candidate *c, int n, double row_sum, float top_p) {
    const double lo = row_sum * (1.0 - SUM_SLACK), hi = row_sum * (1.0 + SUM_SLACK);
    double part = 0.0;
    for (int i = 0; i < n; i++) {
        part += exp((double)(c[i].logit - c[0].logit));
        if (part / hi >= top_p) return i + 1;
        if (part / lo >= top_p) return -1; /* too near the cut to call */
    }
    return -1;
}

int32_t lm_sampler_sample_top(lm_sampler *s, const int32_t *ids, const float *logits, int n, float log_z) {
    const lm_sampling *p = &s->p;
    if (p->temperature <= 0.0f) return ids[0];
    if (!s->cand && !(s->cand = malloc(sizeof(candidate) * (size_t)s->n_vocab))) return -1;
    int m = 0; /* sorted_candidates' window: within 40 nats of the best */
    for (int i = 0; i < n && i < s->n_vocab && logits[i] >= logits[0] - 40.0f; i++) s->cand[m++] = (candidate){ids[i], logits[i]};
    /* top-p and min-p without a top-k: exact as on the whole row when the
     * window ends inside the N, or when their cut does */
    if (lm_sampler_need(s, n) == LM_SAMPLE_TOP || m < n) return draw(s, m);
    int cut = m;
    if (p->top_p < 1.0f) {
        if (!isfinite(log_z) || fabsf(log_z) > 1e4f) return -1;
        cut = top_p_cut(s->cand, m, exp((double)log_z - (double)s->cand[0].logit), p->top_p);
        if (cut < 0) return -1;
    } else if (s->cand[m - 1].logit >= s->cand[0].logit + logf(p->min_p)) {
        return -1; /* the min-p cut lies past the N */
    }
    return draw_cut(s, cut);
}
