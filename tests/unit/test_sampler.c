/* test_sampler.c - the sampling chain (src/engine/sampler.c): greedy, the
 * distribution of draws against the analytic softmax, top-k / top-p / min-p
 * truncation, penalties, and seeds (same seed, same draws). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ranked.h"
#include "engine/sampler.h"

#define V 8

static const float BASE[V] = {2.0f, 1.0f, 0.5f, 0.0f, -0.5f, -1.0f, -3.0f, -6.0f};

static int32_t draw(lm_sampler *s) {
    float logits[V];
    memcpy(logits, BASE, sizeof(logits));
    return lm_sampler_sample(s, logits);
}

static lm_sampling plain(float temp) {
    lm_sampling p = lm_sampling_default();
    p.temperature = temp;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = 42;
    return p;
}

static void test_greedy(void) {
    lm_sampling p = plain(0.0f);
    lm_sampler *s = lm_sampler_create(&p, V);
    CHECK(draw(s) == 0, "greedy takes the argmax");
    float tie[V] = {1, 3, 3, 0, 0, 0, 0, 0};
    CHECK(lm_argmax(tie, V) == 1, "ties go to the lowest id");
    lm_sampler_free(s);
}

static void test_distribution(float temp) {
    lm_sampling p = plain(temp);
    lm_sampler *s = lm_sampler_create(&p, V);
    int counts[V] = {0};
    const int n = 40000;
    for (int i = 0; i < n; i++) counts[draw(s)]++;
    double z = 0.0;
    for (int i = 0; i < V; i++) z += exp(BASE[i] / temp);
    for (int i = 0; i < V; i++) {
        double expect = exp(BASE[i] / temp) / z;
        double sigma = sqrt(expect * (1 - expect) / n);
        CHECK(fabs((double)counts[i] / n - expect) <= 5 * sigma + 1e-4,
              "temp %.1f token %d: frequency %.4f, softmax %.4f", temp, i, (double)counts[i] / n, expect);
    }
    lm_sampler_free(s);
}

static void test_truncation(void) {
    lm_sampling p = plain(1.0f);
    p.top_k = 2;
    lm_sampler *s = lm_sampler_create(&p, V);
    for (int i = 0; i < 2000; i++) {
        int32_t t = draw(s);
        CHECK(t == 0 || t == 1, "top-k 2 drew %d", t);
    }
    lm_sampler_free(s);
    /* softmax(BASE): p0 ~ 0.53, p1 ~ 0.19, p2 ~ 0.12: top-p 0.6 keeps {0, 1} */
    p = plain(1.0f);
    p.top_p = 0.6f;
    s = lm_sampler_create(&p, V);
    int seen1 = 0;
    for (int i = 0; i < 2000; i++) {
        int32_t t = draw(s);
        seen1 += t == 1;
        CHECK(t == 0 || t == 1, "top-p 0.6 drew %d", t);
    }
    CHECK(seen1 > 0, "top-p keeps the token that crosses the threshold");
    lm_sampler_free(s);
    /* min-p 0.3: keep tokens with p >= 0.3 * p_max, i.e. logit >= 2 + ln 0.3 = 0.80 */
    p = plain(1.0f);
    p.min_p = 0.3f;
    s = lm_sampler_create(&p, V);
    for (int i = 0; i < 2000; i++) {
        int32_t t = draw(s);
        CHECK(t == 0 || t == 1, "min-p 0.3 drew %d", t);
    }
    lm_sampler_free(s);
}

static void test_penalties(void) {
    lm_sampling p = plain(0.0f);
    p.repetition_penalty = 4.0f; /* 2.0 / 4 = 0.5 < 1.0: token 1 wins once token 0 was seen */
    lm_sampler *s = lm_sampler_create(&p, V);
    lm_sampler_accept(s, 0);
    CHECK(draw(s) == 1, "repetition penalty demotes a seen token");
    lm_sampler_free(s);
    p = plain(0.0f);
    p.frequency_penalty = 0.6f;
    s = lm_sampler_create(&p, V);
    lm_sampler_accept(s, 0);
    CHECK(draw(s) == 0, "one occurrence: 2.0 - 0.6 still wins");
    lm_sampler_accept(s, 0);
    CHECK(draw(s) == 1, "two occurrences: 2.0 - 1.2 < 1.0");
    lm_sampler_free(s);
    p = plain(0.0f);
    p.presence_penalty = 1.5f;
    p.penalty_last_n = 2;
    s = lm_sampler_create(&p, V);
    lm_sampler_accept(s, 0);
    CHECK(draw(s) == 1, "presence penalty");
    lm_sampler_accept(s, 5);
    lm_sampler_accept(s, 6);
    CHECK(draw(s) == 0, "a token outside the last-n window is not penalized");
    lm_sampler_free(s);
}

static void test_logit_bias(void) {
    lm_logit_bias bias[3] = {{0, -100.0f}, {3, 2.5f}, {99, 50.0f}}; /* id 99 is outside: ignored */
    lm_sampling p = plain(0.0f);
    p.logit_bias = bias;
    p.n_logit_bias = 3;
    lm_sampler *s = lm_sampler_create(&p, V);
    bias[1].bias = -100.0f; /* the sampler keeps its own copy */
    CHECK(draw(s) == 3, "bias 0 -> -100, 3 -> +2.5: token 3 (2.5) beats token 1 (1.0)");
    lm_sampler_free(s);
}

static void test_seeds(void) {
    lm_sampling p = plain(1.0f);
    lm_sampler *a = lm_sampler_create(&p, V), *b = lm_sampler_create(&p, V);
    p.seed = 43;
    lm_sampler *c = lm_sampler_create(&p, V);
    int same_ab = 1, same_ac = 1;
    for (int i = 0; i < 200; i++) {
        int32_t x = draw(a), y = draw(b), z = draw(c);
        same_ab &= x == y;
        same_ac &= x == z;
    }
    CHECK(same_ab, "same seed, same draws");
    CHECK(!same_ac, "another seed, other draws");
    lm_sampler_free(a);
    lm_sampler_free(b);
    lm_sampler_free(c);
}

/* drawing from the 64 best candidates (what the GPU sends back) picks the
 * token a draw from the whole row picks, for every sampler whose need is
 * ARGMAX or TOP, step after step (the RNG advances alike) */
#define TOP_V 5000
#define TOP_K 64

/* the K best of row, as the GPU sends them */
static void top_of(const float *row, int n, ranked *r, int32_t *ids, float *vals) {
    for (int i = 0; i < n; i++) r[i] = (ranked){i, row[i]};
    qsort(r, (size_t)n, sizeof(ranked), cmp_ranked);
    for (int i = 0; i < TOP_K; i++) {
        ids[i] = r[i].id;
        vals[i] = r[i].v;
    }
}

static void test_sample_top(void) {
    static float row[TOP_V], work[TOP_V];
    static ranked r[TOP_V];
    int32_t ids[TOP_K];
    float vals[TOP_K];
    uint32_t state = 99;
    const lm_sampling cases[] = {
        {0.0f, 0, 1.0f, 0.0f, 1.0f, 0.0f, 0.0f, 64, 1, NULL, 0},
        {0.8f, 40, 0.95f, 0.05f, 1.0f, 0.0f, 0.0f, 64, 7, NULL, 0},
        {1.0f, 64, 1.0f, 0.0f, 1.0f, 0.0f, 0.0f, 64, 8, NULL, 0},
        {1.5f, 5, 0.5f, 0.0f, 1.0f, 0.0f, 0.0f, 64, 9, NULL, 0},
        {0.3f, 1, 1.0f, 0.2f, 1.0f, 0.0f, 0.0f, 64, 10, NULL, 0},
    };
    int agree = 0, total = 0;
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        lm_sampler *full = lm_sampler_create(&cases[c], TOP_V), *top = lm_sampler_create(&cases[c], TOP_V);
        CHECK(lm_sampler_need(top, TOP_K) <= LM_SAMPLE_TOP, "case %zu needs no more than the top %d", c, TOP_K);
        for (int step = 0; step < 200; step++) {
            for (int i = 0; i < TOP_V; i++) {
                state = state * 1664525u + 1013904223u;
                /* coarse values: ties at the cut happen */
                row[i] = (float)((int)(state >> 20) % 64) * 0.25f - 8.0f;
            }
            top_of(row, TOP_V, r, ids, vals);
            memcpy(work, row, sizeof(row));
            const int32_t a = lm_sampler_sample(full, work), b = lm_sampler_sample_top(top, ids, vals, TOP_K, NAN);
            agree += a == b;
            total++;
        }
        lm_sampler_free(full);
        lm_sampler_free(top);
    }
    CHECK(agree == total, "top-64 draws equal full-row draws: %d of %d", agree, total);
    const lm_sampling wide = {1.0f, 0, 1.0f, 0.0f, 1.0f, 0.0f, 0.0f, 64, 1, NULL, 0};
    const lm_sampling k100 = {1.0f, 100, 0.9f, 0.0f, 1.0f, 0.0f, 0.0f, 64, 1, NULL, 0};
    const lm_sampling nucleus = {1.0f, 0, 0.9f, 0.0f, 1.0f, 0.0f, 0.0f, 64, 1, NULL, 0};
    lm_sampler *sw = lm_sampler_create(&wide, TOP_V), *sk = lm_sampler_create(&k100, TOP_V),
               *sn = lm_sampler_create(&nucleus, TOP_V);
    CHECK(lm_sampler_need(sw, TOP_K) == LM_SAMPLE_ROW && lm_sampler_need(sk, TOP_K) == LM_SAMPLE_ROW,
          "no cut, or a top-k past the candidates: the whole row");
    CHECK(lm_sampler_need(sn, TOP_K) == LM_SAMPLE_TOP_Z, "top-p alone: the candidates and the log-normalizer");
    lm_sampler_free(sw);
    lm_sampler_free(sk);
    lm_sampler_free(sn);
}

/* the row's log-normalizer as the GPU computes it (lm_cuda_log_z): the max
 * plus the log of the double sum of e^(x - max), rounded to float */
static float log_z_of(const float *row, int n) {
    float max = row[0];
    for (int i = 1; i < n; i++)
        if (row[i] > max) max = row[i];
    double sum = 0.0;
    for (int i = n - 1; i >= 0; i--) sum += exp((double)(row[i] - max)); /* another order than the sampler's */
    return max + (float)log(sum);
}

/* Top-p and min-p without a top-k, from the 64 best and the row's
 * log-normalizer: the same token as the whole row's draw whenever
 * lm_sampler_sample_top answers, and -1 (the RNG untouched: the draw from
 * the row that follows stays in step) when the cut lies past the 64 or too
 * near to call. Rows from peaked (the cut inside the 64) to flat (past it),
 * with penalties and a logit bias applied as edits first, as on the GPU. */
static void test_sample_top_z(void) {
    static float row[TOP_V], full_row[TOP_V];
    static ranked r[TOP_V];
    int32_t ids[TOP_K];
    float vals[TOP_K];
    lm_logit_edit edits[512];
    lm_logit_bias bias[3] = {{7, 3.0f}, {11, -2.0f}, {7, 0.5f}}; /* token 7 twice: applied in turn */
    const lm_sampling cases[] = {
        {1.0f, 0, 0.9f, 0.0f, 1.0f, 0.0f, 0.0f, 64, 3, NULL, 0},
        {0.7f, 0, 0.5f, 0.05f, 1.0f, 0.0f, 0.0f, 64, 4, NULL, 0},
        {1.2f, 0, 1.0f, 0.1f, 1.0f, 0.0f, 0.0f, 64, 5, NULL, 0},
        {1.0f, -1, 0.95f, 0.0f, 1.3f, 0.2f, 0.1f, 32, 6, bias, 3},
        {0.9f, 0, 0.8f, 0.02f, 1.1f, 0.0f, 0.3f, -1, 7, bias, 2},
    };
    uint32_t state = 7;
    int decided = 0, fetched = 0, agree = 0, total = 0;
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        lm_sampler *full = lm_sampler_create(&cases[c], TOP_V), *top = lm_sampler_create(&cases[c], TOP_V);
        CHECK(lm_sampler_need(top, TOP_K) == LM_SAMPLE_TOP_Z, "case %zu: top-p / min-p alone", c);
        for (int step = 0; step < 300; step++) {
            const float spread = 0.05f + 0.25f * (float)(step % 12); /* flat .. peaked */
            for (int i = 0; i < TOP_V; i++) {
                state = state * 1664525u + 1013904223u;
                row[i] = (float)((int)(state >> 16) % 4096) / 4096.0f * spread * 8.0f;
            }
            for (int j = 0; j < step % 40; j++) { /* a peak of up to 39 tokens: the cut then falls inside the 64 */
                state = state * 1664525u + 1013904223u;
                row[(state >> 8) % TOP_V] += 6.0f + (float)(j % 5);
            }
            memcpy(full_row, row, sizeof(row));
            const int n_edits = lm_sampler_edits(top, edits, 512);
            CHECK(n_edits >= 0, "case %zu: %d edits", c, n_edits);
            lm_logit_edits_apply(row, edits, n_edits); /* what the GPU does to its row */
            top_of(row, TOP_V, r, ids, vals);
            const int32_t a = lm_sampler_sample(full, full_row);
            int32_t b = lm_sampler_sample_top(top, ids, vals, TOP_K, log_z_of(row, TOP_V));
            if (b >= 0) decided++;
            else {
                fetched++;
                b = lm_sampler_sample_edited(top, row);
            }
            agree += a == b;
            total++;
            lm_sampler_accept(full, a);
            lm_sampler_accept(top, b);
        }
        lm_sampler_free(full);
        lm_sampler_free(top);
    }
    CHECK(agree == total, "top-p / min-p from the 64 best (or the row): %d of %d equal to the whole row's", agree,
          total);
    CHECK(decided > total / 4 && fetched > total / 10, "both ways taken: %d decided, %d from the row", decided, fetched);
    printf("top-p / min-p from the 64 best: %d of %d decided there, %d from the row\n", decided, total, fetched);
}

/* the edits against a plain reading of the chain (bias in order, then per
 * distinct token of the window: repetition, then count * frequency +
 * presence), and a list that does not fit */
static void test_edits(void) {
    lm_logit_bias bias[3] = {{2, 1.5f}, {9, 4.0f}, {2, -0.25f}};
    const lm_sampling p = {1.0f, 0, 1.0f, 0.0f, 1.5f, 0.3f, 0.2f, 6, 1, bias, 3};
    lm_sampler *s = lm_sampler_create(&p, V);
    const int32_t seen[] = {1, 2, 1, 3, 1, 4, 5, 1};
    for (int i = 0; i < 8; i++) lm_sampler_accept(s, seen[i]); /* window of 6: 1 3 1 4 5 1 */
    lm_logit_edit e[16];
    const int n = lm_sampler_edits(s, e, 16);
    CHECK(n == 2 + 4, "2 bias edits (id 9 is outside), 4 distinct tokens: %d", n);
    float got[V], want[V];
    memcpy(got, BASE, sizeof(got));
    memcpy(want, BASE, sizeof(want));
    lm_logit_edits_apply(got, e, n);
    want[2] += 1.5f;
    want[2] += -0.25f;
    const int counts[V] = {0, 3, 0, 1, 1, 1, 0, 0};
    for (int t = 0; t < V; t++) {
        if (!counts[t]) continue;
        want[t] = want[t] <= 0.0f ? want[t] * 1.5f : want[t] / 1.5f;
        want[t] -= (float)counts[t] * 0.2f + 0.3f;
    }
    CHECK(!memcmp(got, want, sizeof(got)), "edited row equal to the chain's");
    CHECK(lm_sampler_edits(s, e, 5) == -1, "6 edits do not fit in 5");
    CHECK(lm_sampler_edits(s, e, 16) == n, "the counts are intact after a list that did not fit");
    lm_sampler_free(s);
}

int main(void) {
    test_greedy();
    test_distribution(1.0f);
    test_distribution(0.5f);
    test_truncation();
    test_penalties();
    test_logit_bias();
    test_seeds();
    test_sample_top();
    test_sample_top_z();
    test_edits();
    return check_done("sampler");
}
