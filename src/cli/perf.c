/* perf.c - `lamina perf`: model speed in the manner of llama-bench.
 *
 * pp N: one forward pass over N prompt tokens (chunks of 512), tokens/s.
 * tg N: N single-token forward passes after an empty context, tokens/s.
 * --parallel P (as llama-batched-bench): P sequences, each first given the
 *   pp prompt tokens (one pass per sequence, untimed), then tg steps of P
 *   tokens, one per sequence: aggregate generated tokens/s. The GPU picks
 *   each greedy token (as the engine does for temperature 0); --sample
 *   brings back the 64 best candidates of each row instead (as for sampled
 *   requests with top_k <= 64); --penalties adds to each row 64 penalty
 *   edits applied on the GPU and its log-normalizer (as for requests with
 *   penalties over a 64-token window, or top-p without top-k); --full-logits
 *   copies every logits row to the host, as llama.cpp does.
 * --device cuda runs the GPU forward pass (model/forward_cuda.h).
 * Each test runs --reps times after one warm-up; the median is reported,
 * and one JSON line per test goes to stdout for scripts (bench/), with the
 * bytes of weights one decode token reads (every matrix and norm, one
 * embedding row): over the memory bandwidth, decode's ceiling.
 * --mem-bandwidth [-t T] [-r R]: that bandwidth instead (membw.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/cpu.h"
#include "cli/cli.h"
#include "cli/session.h"
#include "model/forward_cuda.h"
#include "model/kv_contig.h"
#include "model/model.h"

#define PERF_CHUNK 512
#define PERF_BLOCK 16
#define PERF_EDITS 64 /* --penalties: edits per row, a 64-token penalty window */

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
    lm_forward_cuda *gpu;
    int n_seq, max_blocks;
    int **tables; /* (n_seq) the GPU's block table of each sequence */
    float *logits;
    int32_t *tokens;
    int depth;           /* -d: the pp and tg tests start after this many tokens in the cache */
    int32_t *argmax_ids; /* NULL: full logits back (--full-logits) */
    int32_t *top_ids;    /* --sample: the 64 best candidates per row come back, as for sampled requests */
    float *top_vals;
    float *log_z;        /* --penalties: and each row's log-normalizer, after */
    lm_logit_edit *edits; /* (n_seq * PERF_EDITS) penalty edits of distinct tokens per row */
    int32_t *edit_start;  /* (n_seq + 1) */
} perf_ctx;

static int perf_forward(perf_ctx *c, const lm_batch *b, lm_error *err) {
    if (!c->gpu) return lm_forward_run(c->fw, c->pool, &c->kv, b, c->logits, err);
    int n_table[256];
    for (int s = 0; s < c->n_seq; s++) n_table[s] = c->max_blocks;
    /* greedy decode steps let the GPU pick the tokens, as the engine does for
     * temperature-0 requests; --full-logits copies every logits row instead */
    if (c->top_ids) {
        int n_want = 0;
        for (int t = 0; t < b->n_tokens; t++) n_want += b->want_logits[t];
        for (int r = 0; c->edits && r <= n_want; r++) c->edit_start[r] = r * PERF_EDITS;
        const lm_step_edits edits = {c->edit_start, c->edits};
        return lm_forward_cuda_run_top_k(c->gpu, b, (const int *const *)c->tables, n_table, c->n_seq,
                                         c->edits ? &edits : NULL, c->top_ids, c->top_vals, c->log_z, err);
    }
    const bool ids = c->argmax_ids != NULL;
    return lm_forward_cuda_run(c->gpu, b, (const int *const *)c->tables, n_table, c->n_seq, NULL,
                               ids ? NULL : c->logits, ids ? c->argmax_ids : NULL, err);
}

/* n tokens from position start, batched (pp) or one at a time (tg) */
static int run_tokens(perf_ctx *c, int start, int n, bool batched, lm_error *err) {
    int32_t pos[PERF_CHUNK], seq[PERF_CHUNK];
    bool want[PERF_CHUNK];
    memset(seq, 0, sizeof(seq));
    const int chunk = batched ? PERF_CHUNK : 1;
    for (int i = 0; i < n; i += chunk) {
        int m = n - i < chunk ? n - i : chunk;
        for (int j = 0; j < m; j++) {
            pos[j] = start + i + j;
            want[j] = j == m - 1;
        }
        lm_batch b = {m, c->tokens + start + i, pos, seq, want};
        if (perf_forward(c, &b, err)) return -1;
    }
    return 0;
}

/* seconds for n tokens after the depth's: batched (pp) or one at a time (tg);
 * each run writes the same cache positions, so the depth's stay in place */
static double time_tokens(perf_ctx *c, int n, bool batched, lm_error *err) {
    double t0 = perf_now();
    if (run_tokens(c, c->depth, n, batched, err)) return -1.0;
    return perf_now() - t0;
}

/* seconds for n steps of n_seq tokens, one per sequence, after each
 * sequence got a prompt of pp tokens (untimed) */
static double time_parallel(perf_ctx *c, int pp, int n, lm_error *err) {
    int32_t pos[PERF_CHUNK], seq[PERF_CHUNK], tok[PERF_CHUNK];
    bool want[PERF_CHUNK];
    for (int s = 0; s < c->n_seq; s++)
        for (int i = 0; i < pp; i += PERF_CHUNK) {
            const int m = pp - i < PERF_CHUNK ? pp - i : PERF_CHUNK;
            for (int j = 0; j < m; j++) {
                pos[j] = i + j;
                seq[j] = s;
                want[j] = j == m - 1;
            }
            lm_batch b = {m, c->tokens + i, pos, seq, want};
            if (perf_forward(c, &b, err)) return -1.0;
        }
    double t0 = perf_now();
    for (int step = 0; step < n; step++) {
        for (int s = 0; s < c->n_seq; s++) {
            tok[s] = c->tokens[(pp + step + s) % (pp + n)];
            pos[s] = pp + step;
            seq[s] = s;
            want[s] = true;
        }
        lm_batch b = {c->n_seq, tok, pos, seq, want};
        if (perf_forward(c, &b, err)) return -1.0;
    }
    return perf_now() - t0;
}

static double weight_bytes(const lm_weight *w) {
    return w->data ? (double)w->row_bytes * (double)(w->ne1 > 0 ? w->ne1 : 1) : 0.0;
}

/* bytes of weights a decode token reads: every layer's tensors, the output
 * norm and matrix (the embeddings when tied), one embedding row */
static double weight_bytes_per_token(const lm_model *m) {
    double b = weight_bytes(&m->output_norm) + weight_bytes(&m->output) + (double)m->tok_embd.row_bytes;
    for (int il = 0; il < m->hp.n_layer; il++) {
        const lm_layer *L = &m->layers[il];
        const lm_weight *ws[] = {&L->attn_norm, &L->wq, &L->wk, &L->wv, &L->wo, &L->bq, &L->bk, &L->bv,
                                 &L->q_norm, &L->k_norm, &L->attn_post_norm, &L->ffn_norm, &L->ffn_gate,
                                 &L->ffn_up, &L->ffn_down, &L->ffn_post_norm};
        for (size_t i = 0; i < sizeof(ws) / sizeof(ws[0]); i++) b += weight_bytes(ws[i]);
    }
    return b;
}

typedef enum { TEST_PP, TEST_TG, TEST_PARALLEL } perf_test;

static int run_test(perf_ctx *c, const char *model_path, const char *device, perf_test kind, int pp, int n, int reps,
                    int n_threads, lm_error *err) {
    double secs[64];
    for (int r = -1; r < reps; r++) { /* r = -1: the warm-up */
        const double t = kind == TEST_PARALLEL ? time_parallel(c, pp, n, err) : time_tokens(c, n, kind == TEST_PP, err);
        if (t < 0) return -1;
        if (r >= 0) secs[r] = t;
    }
    qsort(secs, (size_t)reps, sizeof(double), cmp_double);
    double med = reps % 2 ? secs[reps / 2] : (secs[reps / 2 - 1] + secs[reps / 2]) / 2;
    const double tokens = kind == TEST_PARALLEL ? (double)n * c->n_seq : n;
    char test[64];
    if (kind == TEST_PARALLEL)
        snprintf(test, sizeof(test), "pp%d+tg%dx%d%s", pp, n, c->n_seq,
                 c->argmax_ids ? "" : c->edits ? "-top64-edits" : c->top_ids ? "-top64" : "-logits");
    else if (c->depth) snprintf(test, sizeof(test), "%s%d@d%d", kind == TEST_PP ? "pp" : "tg", n, c->depth);
    else snprintf(test, sizeof(test), "%s%d", kind == TEST_PP ? "pp" : "tg", n);
    fprintf(stderr, "lamina %-14s %s  %10.1f t/s (median of %d)\n", test, device, tokens / med, reps);
    printf("{\"model\": \"%s\", \"test\": \"%s\", \"device\": \"%s\", \"threads\": %d, \"reps\": %d, "
           "\"tokens_per_s\": %.3f, \"cpu_level\": \"%s\", \"weight_bytes_per_token\": %.0f}\n",
           model_path, test, device, n_threads, reps, tokens / med, cpu_level_name(cpu_level_active()),
           weight_bytes_per_token(c->model));
    return 0;
}

int cmd_perf(int argc, char **argv) {
    const char *model_path = NULL;
    int pp = 128, tg = 64, reps = 5, n_threads = cpu_physical_cores(), parallel = 0, depth = 0;
    int gpu = -1; /* --device: -1 the CPU, else the CUDA device */
    bool full_logits = false, sample = false, penalties = false, invariant = false, membw = false;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] != '-' && !model_path) model_path = argv[i];
        else if (i + 1 < argc && !strcmp(argv[i], "-p")) pp = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "-n")) tg = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "-d")) depth = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "-r")) reps = atoi(argv[++i]);
        else if (i + 1 < argc && (!strcmp(argv[i], "-t") || !strcmp(argv[i], "--threads"))) n_threads = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--parallel")) parallel = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--full-logits")) full_logits = true;
        else if (!strcmp(argv[i], "--sample")) sample = true;
        else if (!strcmp(argv[i], "--penalties")) sample = penalties = true;
        else if (!strcmp(argv[i], "--batch-invariant")) invariant = true;
        else if (!strcmp(argv[i], "--mem-bandwidth")) membw = true;
        else if (i + 1 < argc && !strcmp(argv[i], "--device")) {
            if ((gpu = cli_parse_device("perf", argv[++i])) == -2) return 2;
        } else {
            fprintf(stderr, "usage: lamina perf [MODEL] [-p PROMPT_TOKENS] [-n GEN_TOKENS] [-d DEPTH] [-r REPS] [-t THREADS]\n"
                            "                   [--parallel SEQS [--full-logits|--sample|--penalties]] [--device cpu|cuda[:N]]\n"
                            "                   [--batch-invariant]\n"
                            "       lamina perf --mem-bandwidth [-t THREADS] [-r REPS]\n");
            return 2;
        }
    }
    if (pp < 0 || tg < 0 || pp > 1 << 16 || tg > 1 << 16 || depth < 0 || depth > 1 << 16 || reps < 1 || reps > 64 ||
        n_threads < 1 || n_threads > 256 || parallel < 0 || parallel > 256 || (parallel && gpu < 0) ||
        (parallel && depth)) {
        fprintf(stderr, "lamina perf: -p/-n/-d in [0, 65536], -r in [1, 64], -t in [1, 256], --parallel in [0, 256] "
                        "(--device cuda only, without -d)\n");
        return 2;
    }
    if (membw) {
        const double bw = cli_read_bandwidth(n_threads, reps);
        if (bw < 0) {
            fprintf(stderr, "lamina perf: no memory or threads for the bandwidth probe\n");
            return 1;
        }
        fprintf(stderr, "lamina read bandwidth  %d threads  %.2f GB/s (best of %d passes over 1 GiB)\n", n_threads,
                bw / 1e9, reps);
        printf("{\"test\": \"read_bandwidth\", \"threads\": %d, \"reps\": %d, \"bytes_per_s\": %.0f}\n", n_threads,
               reps, bw);
        return 0;
    }
    if (!model_path) model_path = cli_default_model();
    lm_error err = {{0}};
    perf_ctx c;
    memset(&c, 0, sizeof(c));
    int rc = 1;
    c.model = lm_model_load(model_path, &err);
    if (!c.model) goto done;
    const int n_ctx = (parallel ? pp + tg : depth + (pp > tg ? pp : tg)) + 1;
    const int max_seq = parallel > 1 ? parallel : 1;
    c.logits = malloc(sizeof(float) * (size_t)c.model->hp.n_vocab * (size_t)max_seq);
    c.tokens = malloc(sizeof(int32_t) * (size_t)n_ctx);
    if (gpu >= 0) {
        const lm_hparams *hp = &c.model->hp;
        c.n_seq = max_seq;
        c.max_blocks = (n_ctx + PERF_BLOCK - 1) / PERF_BLOCK;
        const size_t block_bytes = (size_t)hp->n_layer * PERF_BLOCK * hp->n_head_kv * (hp->head_dim + hp->head_dim_v) * 2;
        const lm_cuda_forward_config cfg = {.device = gpu, .max_tokens = PERF_CHUNK > max_seq ? PERF_CHUNK : max_seq,
                                            .max_logits = max_seq, .max_slots = max_seq, .max_ctx = n_ctx,
                                            .block_size = PERF_BLOCK,
                                            .kv_bytes = ((size_t)max_seq * c.max_blocks + 1) * block_bytes,
                                            .batch_invariant = invariant};
        if (!(c.gpu = lm_forward_cuda_create(c.model, &cfg, &err))) goto done;
        c.tables = calloc((size_t)max_seq, sizeof(int *));
        for (int s = 0; c.tables && s < max_seq; s++) {
            if (!(c.tables[s] = malloc(sizeof(int) * (size_t)c.max_blocks))) break;
            for (int i = 0; i < c.max_blocks; i++) c.tables[s][i] = s * c.max_blocks + i;
        }
        if (parallel && sample) {
            c.top_ids = malloc(sizeof(int32_t) * (size_t)max_seq * LM_FORWARD_CUDA_TOP_K);
            c.top_vals = malloc(sizeof(float) * (size_t)max_seq * LM_FORWARD_CUDA_TOP_K);
            if (penalties) {
                c.log_z = malloc(sizeof(float) * (size_t)max_seq);
                c.edits = malloc(sizeof(lm_logit_edit) * (size_t)max_seq * PERF_EDITS);
                c.edit_start = malloc(sizeof(int32_t) * ((size_t)max_seq + 1));
                for (int i = 0; c.edits && i < max_seq * PERF_EDITS; i++) /* distinct tokens within a row */
                    c.edits[i] = (lm_logit_edit){(int32_t)((i % PERF_EDITS) * 997 + i / PERF_EDITS) % hp->n_vocab,
                                                 LM_EDIT_PENALTY, 1.1f, 0.2f};
            }
            if (!c.top_ids || !c.top_vals || (penalties && (!c.log_z || !c.edits || !c.edit_start))) {
                lm_error_set(&err, "out of memory");
                goto done;
            }
        } else if (parallel && !full_logits) {
            c.argmax_ids = malloc(sizeof(int32_t) * (size_t)max_seq);
        }
        if (!c.tables || !c.tables[max_seq - 1] || (parallel && !full_logits && !sample && !c.argmax_ids)) {
            lm_error_set(&err, "out of memory");
            goto done;
        }
    } else {
        c.pool = tp_create(n_threads);
        c.fw = lm_forward_create(c.model, PERF_CHUNK, n_ctx);
        c.kv_store = kv_contig_create(&c.model->hp, 1, n_ctx, &c.kv);
        if (!c.pool || !c.fw || !c.kv_store) {
            lm_error_set(&err, "out of memory");
            goto done;
        }
    }
    if (!c.logits || !c.tokens) {
        lm_error_set(&err, "out of memory");
        goto done;
    }
    uint32_t state = 12345; /* fixed pseudo-random tokens: the same work every run */
    for (int i = 0; i < n_ctx; i++) {
        state = state * 1664525u + 1013904223u;
        c.tokens[i] = (int32_t)(state % (uint32_t)c.model->hp.n_vocab);
    }
    const char *device = c.gpu ? lm_forward_cuda_device_name(c.gpu) : "cpu";
    c.depth = depth;
    if (depth && run_tokens(&c, 0, depth, true, &err)) goto done; /* the context the tests start after, untimed */
    if (parallel) {
        if (run_test(&c, model_path, device, TEST_PARALLEL, pp, tg, reps, n_threads, &err)) goto done;
    } else if ((pp && run_test(&c, model_path, device, TEST_PP, 0, pp, reps, n_threads, &err)) ||
               (tg && run_test(&c, model_path, device, TEST_TG, 0, tg, reps, n_threads, &err))) {
        goto done;
    }
    rc = 0;
done:
    if (rc) fprintf(stderr, "lamina: %s\n", err.msg);
    free(c.tokens);
    free(c.logits);
    for (int s = 0; c.tables && s < c.n_seq; s++) free(c.tables[s]);
    free(c.tables);
    free(c.argmax_ids);
    free(c.top_ids);
    free(c.top_vals);
    free(c.log_z);
    free(c.edits);
    free(c.edit_start);
    lm_forward_cuda_free(c.gpu);
    kv_contig_free(c.kv_store);
    lm_forward_free(c.fw);
    tp_free(c.pool);
    lm_model_free(c.model);
    return rc;
}
