/* perf.c - `lamina perf`: model speed in the manner of llama-bench.
 *
 * pp N: one forward pass over N prompt tokens (chunks of 512), tokens/s.
 * tg N: N single-token forward passes after an empty context, tokens/s.
 * Each test runs --reps times after one warm-up; the median is reported,
 * and one JSON line per test goes to stdout for scripts (bench/). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/cpu.h"
#include "cli/cli.h"
#include "model/kv_contig.h"
#include "model/model.h"

#define PERF_CHUNK 512

static double perf_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    lm_model *model;
    tp_pool *pool;
    lm_forward *fw;
    kv_contig *kv_store;
    lm_kv kv;
    float *logits;
    int32_t *tokens;
} perf_ctx;

/* seconds for n tokens: batched (pp) or one at a time (tg) */
static double time_tokens(perf_ctx *c, int n, bool batched, lm_error *err) {
    int32_t pos[PERF_CHUNK], seq[PERF_CHUNK];
    bool want[PERF_CHUNK];
    memset(seq, 0, sizeof(seq));
    const int chunk = batched ? PERF_CHUNK : 1;
    double t0 = perf_now();
    for (int i = 0; i < n; i += chunk) {
        int m = n - i < chunk ? n - i : chunk;
        for (int j = 0; j < m; j++) {
            pos[j] = i + j;
            want[j] = j == m - 1;
        }
        lm_batch b = {m, c->tokens + i, pos, seq, want};
        if (lm_forward_run(c->fw, c->pool, &c->kv, &b, c->logits, err)) return -1.0;
    }
    return perf_now() - t0;
}

static int run_test(perf_ctx *c, const char *model_path, const char *name, int n, bool batched, int reps,
                    int n_threads, lm_error *err) {
    double secs[64];
    if (time_tokens(c, n, batched, err) < 0) return -1; /* warm-up */
    for (int r = 0; r < reps; r++)
        if ((secs[r] = time_tokens(c, n, batched, err)) < 0) return -1;
    qsort(secs, (size_t)reps, sizeof(double), cmp_double);
    double med = reps % 2 ? secs[reps / 2] : (secs[reps / 2 - 1] + secs[reps / 2]) / 2;
    fprintf(stderr, "%-6s %s%d  threads %d  %8.1f t/s (median of %d)\n", name, batched ? "pp" : "tg", n, n_threads,
            n / med, reps);
    printf("{\"model\": \"%s\", \"test\": \"%s%d\", \"threads\": %d, \"reps\": %d, \"tokens_per_s\": %.3f, "
           "\"cpu_level\": \"%s\"}\n",
           model_path, batched ? "pp" : "tg", n, n_threads, reps, n / med, cpu_level_name(cpu_level_active()));
    return 0;
}

int cmd_perf(int argc, char **argv) {
    const char *model_path = NULL;
    int pp = 128, tg = 64, reps = 5, n_threads = cpu_physical_cores();
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] != '-' && !model_path) model_path = argv[i];
        else if (i + 1 < argc && !strcmp(argv[i], "-p")) pp = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "-n")) tg = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "-r")) reps = atoi(argv[++i]);
        else if (i + 1 < argc && (!strcmp(argv[i], "-t") || !strcmp(argv[i], "--threads"))) n_threads = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: lamina perf [MODEL] [-p PROMPT_TOKENS] [-n GEN_TOKENS] [-r REPS] [-t THREADS]\n");
            return 2;
        }
    }
    if (pp < 0 || tg < 0 || pp > 1 << 16 || tg > 1 << 16 || reps < 1 || reps > 64 || n_threads < 1 ||
        n_threads > 256) {
        fprintf(stderr, "lamina perf: -p/-n in [0, 65536], -r in [1, 64], -t in [1, 256]\n");
        return 2;
    }
    if (!model_path) model_path = cli_default_model();
    lm_error err = {{0}};
    perf_ctx c;
    memset(&c, 0, sizeof(c));
    int rc = 1;
    c.model = lm_model_load(model_path, &err);
    if (!c.model) goto done;
    const int n_ctx = (pp > tg ? pp : tg) + 1;
    c.pool = tp_create(n_threads);
    c.fw = lm_forward_create(c.model, PERF_CHUNK, n_ctx);
    c.kv_store = kv_contig_create(&c.model->hp, 1, n_ctx, &c.kv);
    c.logits = malloc(sizeof(float) * (size_t)c.model->hp.n_vocab);
    c.tokens = malloc(sizeof(int32_t) * (size_t)n_ctx);
    if (!c.pool || !c.fw || !c.kv_store || !c.logits || !c.tokens) {
        lm_error_set(&err, "out of memory");
        goto done;
    }
    uint32_t state = 12345; /* fixed pseudo-random tokens: the same work every run */
    for (int i = 0; i < n_ctx; i++) {
        state = state * 1664525u + 1013904223u;
        c.tokens[i] = (int32_t)(state % (uint32_t)c.model->hp.n_vocab);
    }
    if ((pp && run_test(&c, model_path, "lamina", pp, true, reps, n_threads, &err)) ||
        (tg && run_test(&c, model_path, "lamina", tg, false, reps, n_threads, &err)))
        goto done;
    rc = 0;
done:
    if (rc) fprintf(stderr, "lamina: %s\n", err.msg);
    free(c.tokens);
    free(c.logits);
    kv_contig_free(c.kv_store);
    lm_forward_free(c.fw);
    tp_free(c.pool);
    lm_model_free(c.model);
    return rc;
}
