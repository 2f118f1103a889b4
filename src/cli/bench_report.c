/* bench_report.c - what `lamina bench` makes of its measurements: per level
 * the throughput, latency percentiles and prefix-cache hit rate, printed as
 * a table and written as JSON with every request.
 *
 * Definitions (those of vLLM's serving benchmark):
 *   TTFT  first chunk with generated text - request sent
 *   ITL   gap between consecutive chunks with text (pooled over requests)
 *   TPOT  (end - first chunk) / (output tokens - 1), per request
 *   output tok/s  output tokens of all completed requests / level wall time
 *   hit rate      cached prompt tokens / prompt tokens, as the server reports */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/bench.h"

typedef struct dist {
    int n;
    double mean, p50, p90, p99; /* ms */
} dist;

typedef struct level_stats {
    int completed, failed;
    double duration_s;
    long prompt_tokens, output_tokens, cached_tokens; /* completed requests */
    double output_tps, request_tps;
    double hit_rate;                                  /* -1: the server reported no cached tokens */
    dist ttft, itl, tpot, e2e;
} level_stats;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_percentile(const double *sorted, int n, double p) {
    if (n <= 0) return 0.0;
    double rank = p / 100.0 * (n - 1);
    int lo = (int)floor(rank), hi = lo + 1 < n ? lo + 1 : lo;
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
}

/* summary of N values in seconds (sorted in place) as ms */
static dist summarize(double *v, int n) {
    dist d = {.n = n};
    if (!n) return d;
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    double sum = 0;
    for (int i = 0; i < n; i++) sum += v[i];
    d.mean = sum / n * 1e3;
    d.p50 = bench_percentile(v, n, 50) * 1e3;
    d.p90 = bench_percentile(v, n, 90) * 1e3;
    d.p99 = bench_percentile(v, n, 99) * 1e3;
    return d;
}

static int level_compute(const bench_level *l, level_stats *s) {
    memset(s, 0, sizeof(*s));
    int n_gaps = 0;
    for (int i = 0; i < l->n_requests; i++)
        if (l->requests[i].n_chunks > 1) n_gaps += l->requests[i].n_chunks - 1;
    double *ttft = malloc(sizeof(double) * (size_t)(l->n_requests + 1));
    double *tpot = malloc(sizeof(double) * (size_t)(l->n_requests + 1));
    double *e2e = malloc(sizeof(double) * (size_t)(l->n_requests + 1));
    double *itl = malloc(sizeof(double) * (size_t)(n_gaps + 1));
    if (!ttft || !tpot || !e2e || !itl) {
        free(ttft), free(tpot), free(e2e), free(itl);
        return -1;
    }
    int n_ttft = 0, n_tpot = 0, n_e2e = 0, n_itl = 0;
    long hit_prompt = 0, hit_cached = 0;
    bool any_hit = false;
    for (int i = 0; i < l->n_requests; i++) {
        const bench_request *r = &l->requests[i];
        if (!r->ok) {
            s->failed++;
            continue;
        }
        s->completed++;
        s->output_tokens += r->completion_tokens;
        s->prompt_tokens += r->prompt_tokens > 0 ? r->prompt_tokens : r->n_prompt;
        e2e[n_e2e++] = r->t_end - r->t_start;
        if (r->prompt_tokens > 0 && r->cached_tokens >= 0) {
            any_hit = true;
            hit_prompt += r->prompt_tokens;
            hit_cached += r->cached_tokens;
        }
        if (!r->n_chunks) continue;
        ttft[n_ttft++] = r->chunk_t[0] - r->t_start;
        for (int k = 1; k < r->n_chunks; k++) itl[n_itl++] = r->chunk_t[k] - r->chunk_t[k - 1];
        if (r->completion_tokens > 1) tpot[n_tpot++] = (r->t_end - r->chunk_t[0]) / (r->completion_tokens - 1);
    }
    s->cached_tokens = hit_cached;
    s->hit_rate = any_hit && hit_prompt ? (double)hit_cached / (double)hit_prompt : -1.0;
    s->duration_s = l->t_end - l->t_start;
    if (s->duration_s > 0) {
        s->output_tps = (double)s->output_tokens / s->duration_s;
        s->request_tps = s->completed / s->duration_s;
    }
    s->ttft = summarize(ttft, n_ttft);
    s->itl = summarize(itl, n_itl);
    s->tpot = summarize(tpot, n_tpot);
    s->e2e = summarize(e2e, n_e2e);
    free(ttft), free(tpot), free(e2e), free(itl);
    return 0;
}

void bench_print_summary(const bench_opts *o, const char *model, const bench_level *levels, int n_levels) {
    printf("lamina bench: %s, model %s, %s API, %d prompts per level of %d tokens (shared prefix %d), %d output "
           "tokens, seed %llu\n\n",
           o->url, model, o->api == BENCH_API_ANTHROPIC ? "Anthropic" : "OpenAI", o->num_prompts, o->input_len,
           o->shared_prefix, o->output_len, (unsigned long long)o->seed);
    printf("%5s %8s %7s %6s %6s %9s %7s %9s %8s %8s %7s %7s %6s\n", "conc", "ok/fail", "time s", "in", "out",
           "out tok/s", "req/s", "TTFT p50", "p90", "p99", "ITL p50", "p99", "cache");
    for (int i = 0; i < n_levels; i++) {
        level_stats s;
        if (level_compute(&levels[i], &s)) continue;
        char okfail[32], hit[16];
        snprintf(okfail, sizeof(okfail), "%d/%d", s.completed, s.failed);
        if (s.hit_rate < 0) snprintf(hit, sizeof(hit), "n/a");
        else snprintf(hit, sizeof(hit), "%.1f%%", s.hit_rate * 100);
        double in = s.completed ? (double)s.prompt_tokens / s.completed : 0;
        double out = s.completed ? (double)s.output_tokens / s.completed : 0;
        printf("%5d %8s %7.2f %6.0f %6.1f %9.1f %7.2f %9.1f %8.1f %8.1f %7.1f %7.1f %6s\n", levels[i].concurrency,
               okfail, s.duration_s, in, out, s.output_tps, s.request_tps, s.ttft.p50, s.ttft.p90, s.ttft.p99,
               s.itl.p50, s.itl.p99, hit);
    }
    printf("\n(in/out: mean tokens per request as the server counted them; TTFT and ITL in ms; cache: prompt tokens "
           "served from the prefix cache)\n");
}

static json_t *dist_json(const dist *d) {
    return json_pack("{s:i, s:f, s:f, s:f, s:f}", "n", d->n, "mean", d->mean, "p50", d->p50, "p90", d->p90, "p99",
                     d->p99);
}

static json_t *request_json(int index, const bench_request *r) {
    json_t *itl = json_array();
    for (int k = 1; k < r->n_chunks; k++)
        json_array_append_new(itl, json_real((r->chunk_t[k] - r->chunk_t[k - 1]) * 1e3));
    json_t *o = json_pack("{s:i, s:b, s:i, s:i, s:i, s:i, s:i, s:f, s:o}", "index", index, "ok", r->ok, "sent_tokens",
                          r->n_prompt, "prompt_tokens", r->prompt_tokens, "completion_tokens", r->completion_tokens,
                          "cached_tokens", r->cached_tokens, "chunks", r->n_chunks, "e2e_ms",
                          (r->t_end - r->t_start) * 1e3, "itl_ms", itl);
    if (!o) return NULL;
    json_object_set_new(o, "ttft_ms", r->n_chunks ? json_real((r->chunk_t[0] - r->t_start) * 1e3) : json_null());
    json_object_set_new(o, "error", r->error ? json_string(r->error) : json_null());
    return o;
}

static json_t *level_json(const bench_level *l) {
    level_stats s;
    if (level_compute(l, &s)) return NULL;
    json_t *reqs = json_array();
    for (int i = 0; i < l->n_requests; i++) json_array_append_new(reqs, request_json(i, &l->requests[i]));
    json_t *o = json_pack("{s:i, s:i, s:i, s:i, s:f, s:I, s:I, s:I, s:f, s:f, s:o, s:o, s:o, s:o, s:o}", "concurrency",
                          l->concurrency, "num_requests", l->n_requests, "completed", s.completed, "failed", s.failed,
                          "duration_s", s.duration_s, "prompt_tokens", (json_int_t)s.prompt_tokens, "output_tokens",
                          (json_int_t)s.output_tokens, "cached_tokens", (json_int_t)s.cached_tokens,
                          "output_throughput", s.output_tps, "request_throughput", s.request_tps, "ttft_ms",
                          dist_json(&s.ttft), "itl_ms", dist_json(&s.itl), "tpot_ms", dist_json(&s.tpot), "e2e_ms",
                          dist_json(&s.e2e), "requests", reqs);
    if (o) json_object_set_new(o, "prefix_cache_hit_rate", s.hit_rate < 0 ? json_null() : json_real(s.hit_rate));
    return o;
}

int bench_write_json(const char *path, const bench_opts *o, const char *model, const bench_level *levels,
                     int n_levels, char *err, size_t n_err) {
    json_t *lv = json_array();
    for (int i = 0; i < n_levels; i++) json_array_append_new(lv, level_json(&levels[i]));
    json_t *root = json_pack("{s:{s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:I, s:f}, s:o}", "config", "url", o->url,
                             "api", o->api == BENCH_API_ANTHROPIC ? "anthropic" : "openai", "endpoint",
                             o->api == BENCH_API_ANTHROPIC ? "/v1/messages" : "/v1/completions", "model", model,
                             "num_prompts", o->num_prompts, "input_len", o->input_len, "output_len", o->output_len,
                             "shared_prefix", o->shared_prefix, "seed", (json_int_t)o->seed, "temperature",
                             o->temperature, "levels", lv);
    if (!root || json_array_size(lv) != (size_t)n_levels) {
        json_decref(root);
        snprintf(err, n_err, "%s: out of memory while building the results", path);
        return -1;
    }
    int rc = json_dump_file(root, path, JSON_INDENT(1));
    json_decref(root);
    if (rc) snprintf(err, n_err, "%s: cannot write the results", path);
    return rc ? -1 : 0;
}
