/* bench.c - `lamina bench`: a load generator for OpenAI- and
 * Anthropic-compatible servers (lamina serve, llama-server, ...).
 *
 * For every concurrency level C it sends --num-prompts streamed requests
 * with C of them in flight at any time: C threads, each with its own
 * keep-alive connection, take the next prompt until none is left. The main
 * thread draws a progress bar on stderr (when it is a terminal) and, after
 * the last level, prints the summary (bench_report.c). Exit codes: 0 all
 * requests completed, 1 the server could not be used or a request failed,
 * 2 bad flags. */
#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/bench.h"
#include "cli/cli.h"

#define BAR_WIDTH 30
#define MAX_CONCURRENCY 1024

static void bench_usage(FILE *out) {
    fprintf(out,
            "usage: lamina bench [--url URL] [--concurrency 1,4,16] [--num-prompts N] [--input-len L]\n"
            "                    [--output-len L] [--shared-prefix L] [--api openai|anthropic] [--model NAME]\n"
            "                    [--api-key KEY] [--json FILE] [--seed S] [--temperature T] [--timeout S]\n"
            "  Sends N streamed requests per concurrency level (at most C in flight) and reports output\n"
            "  tok/s, requests/s, TTFT and inter-token latency percentiles and the prefix-cache hit rate.\n"
            "  Prompts are L tokens of random words (the first --shared-prefix tokens the same for every\n"
            "  prompt of a level), made with the server's /tokenize; openai sends them as token ids to\n"
            "  /v1/completions with ignore_eos, anthropic as text to /v1/messages.\n"
            "  defaults: http://127.0.0.1:8000, 1,4,16, 32 prompts, 128 in, 64 out, no shared prefix,\n"
            "  openai, the server's first model, key from LAMINA_API_KEY if set, seed 1, temperature 0,\n"
            "  600 s per request\n");
}

static int parse_long(const char *flag, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "lamina bench: %s expects an integer in [%ld, %ld], got '%s'\n", flag, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_int(const char *flag, const char *s, long lo, long hi, int *out) {
    long v;
    if (parse_long(flag, s, lo, hi, &v)) return -1;
    *out = (int)v;
    return 0;
}

static int parse_levels(const char *s, bench_opts *o) {
    char copy[256];
    if (strlen(s) >= sizeof(copy)) {
        fprintf(stderr, "lamina bench: --concurrency list is too long\n");
        return -1;
    }
    snprintf(copy, sizeof(copy), "%s", s);
    o->n_levels = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (o->n_levels == BENCH_MAX_LEVELS) {
            fprintf(stderr, "lamina bench: --concurrency takes at most %d levels\n", BENCH_MAX_LEVELS);
            return -1;
        }
        if (parse_int("--concurrency", tok, 1, MAX_CONCURRENCY, &o->concurrency[o->n_levels++])) return -1;
    }
    if (!o->n_levels) {
        fprintf(stderr, "lamina bench: --concurrency expects a list like 1,4,16, got '%s'\n", s);
        return -1;
    }
    return 0;
}

/* one flag with a value; -1 (message printed) when bad */
static int parse_flag(const char *f, const char *val, bench_opts *o) {
    long seed;
    if (!strcmp(f, "--url")) o->url = val;
    else if (!strcmp(f, "--concurrency")) return parse_levels(val, o);
    else if (!strcmp(f, "--num-prompts")) return parse_int(f, val, 1, 1000000, &o->num_prompts);
    else if (!strcmp(f, "--input-len")) return parse_int(f, val, 1, 1 << 20, &o->input_len);
    else if (!strcmp(f, "--output-len")) return parse_int(f, val, 1, 1 << 20, &o->output_len);
    else if (!strcmp(f, "--shared-prefix")) return parse_int(f, val, 0, 1 << 20, &o->shared_prefix);
    else if (!strcmp(f, "--model")) o->model = val;
    else if (!strcmp(f, "--api-key")) o->api_key = val;
    else if (!strcmp(f, "--json")) o->json_path = val;
    else if (!strcmp(f, "--timeout")) return parse_int(f, val, 1, 86400, &o->timeout_s);
    else if (!strcmp(f, "--seed")) {
        if (parse_long(f, val, 0, LONG_MAX, &seed)) return -1;
        o->seed = (uint64_t)seed;
    } else if (!strcmp(f, "--temperature")) {
        char *end;
        o->temperature = strtod(val, &end);
        if (end == val || *end || !(o->temperature >= 0 && o->temperature <= 2)) {
            fprintf(stderr, "lamina bench: --temperature expects a number in [0, 2], got '%s'\n", val);
            return -1;
        }
    } else if (!strcmp(f, "--api")) {
        if (!strcmp(val, "openai")) o->api = BENCH_API_OPENAI;
        else if (!strcmp(val, "anthropic")) o->api = BENCH_API_ANTHROPIC;
        else {
            fprintf(stderr, "lamina bench: --api is 'openai' or 'anthropic', got '%s'\n", val);
            return -1;
        }
    } else {
        fprintf(stderr, "lamina bench: unknown flag %s\n", f);
        return -1;
    }
    return 0;
}

/* 0 to run, 1 for --help, -1 for bad flags */
static int parse_args(int argc, char **argv, bench_opts *o) {
    memset(o, 0, sizeof(*o));
    o->url = "http://127.0.0.1:8000";
    o->concurrency[0] = 1, o->concurrency[1] = 4, o->concurrency[2] = 16;
    o->n_levels = 3;
    o->num_prompts = 32;
    o->input_len = 128;
    o->output_len = 64;
    o->seed = 1;
    o->timeout_s = 600;
    o->api_key = getenv("LAMINA_API_KEY");
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "-h") || !strcmp(f, "--help")) return 1;
        if (i + 1 >= argc || strncmp(f, "--", 2)) {
            fprintf(stderr, "lamina bench: unknown argument or missing value: %s\n", f);
            return -1;
        }
        if (parse_flag(f, argv[++i], o)) return -1;
    }
    if (o->shared_prefix >= o->input_len) {
        fprintf(stderr, "lamina bench: --shared-prefix (%d) must be less than --input-len (%d)\n", o->shared_prefix,
                o->input_len);
        return -1;
    }
    if (strncmp(o->url, "http://", 7) && strncmp(o->url, "https://", 8)) {
        fprintf(stderr, "lamina bench: --url must start with http:// or https://, got '%s'\n", o->url);
        return -1;
    }
    if (o->api_key && !o->api_key[0]) o->api_key = NULL;
    return 0;
}

/* ---- one level ---- */

typedef struct worker {
    pthread_t thread;
    bench_conn *conn;
    bench_level *level;
    const char *model;
    atomic_int *next, *done;
} worker;

static void *worker_main(void *arg) {
    worker *w = arg;
    for (;;) {
        int i = atomic_fetch_add(w->next, 1);
        if (i >= w->level->n_requests) break;
        bench_stream(w->conn, w->model, &w->level->requests[i]);
        atomic_fetch_add(w->done, 1);
    }
    return NULL;
}

static void draw_bar(int concurrency, int done, int total, double secs) {
    int filled = total ? done * BAR_WIDTH / total : BAR_WIDTH;
    fprintf(stderr, "\r  concurrency %-4d [%-*.*s] %d/%d  %.1f s ", concurrency, BAR_WIDTH, filled,
            "##############################", done, total, secs);
    fflush(stderr);
}

static int run_level(const bench_opts *o, const char *model, bench_level *l, char *err, size_t n_err) {
    int n_workers = l->concurrency < l->n_requests ? l->concurrency : l->n_requests;
    worker *ws = calloc((size_t)n_workers, sizeof(worker));
    atomic_int next = 0, done = 0;
    int started = 0, rc = -1;
    if (!ws) {
        snprintf(err, n_err, "out of memory");
        return -1;
    }
    for (int i = 0; i < n_workers; i++) {
        ws[i] = (worker){.level = l, .model = model, .next = &next, .done = &done};
        if (!(ws[i].conn = bench_conn_create(o))) {
            snprintf(err, n_err, "cannot create an HTTP client");
            goto out;
        }
    }
    const bool bar = isatty(STDERR_FILENO);
    l->t_start = bench_now();
    for (; started < n_workers; started++) {
        if (pthread_create(&ws[started].thread, NULL, worker_main, &ws[started])) {
            atomic_store(&next, l->n_requests); /* the started ones stop after their request */
            snprintf(err, n_err, "cannot start thread %d of %d", started + 1, n_workers);
            break;
        }
    }
    while (bar && started == n_workers && atomic_load(&done) < l->n_requests) {
        draw_bar(l->concurrency, atomic_load(&done), l->n_requests, bench_now() - l->t_start);
        nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
    }
    for (int i = 0; i < started; i++) pthread_join(ws[i].thread, NULL);
    if (bar) {
        draw_bar(l->concurrency, atomic_load(&done), l->n_requests, bench_now() - l->t_start);
        fprintf(stderr, "\n");
    }
    l->t_end = l->t_start;
    for (int i = 0; i < l->n_requests; i++)
        if (l->requests[i].t_end > l->t_end) l->t_end = l->requests[i].t_end;
    if (started == n_workers) rc = 0;
out:
    for (int i = 0; i < n_workers; i++) bench_conn_free(ws[i].conn);
    free(ws);
    return rc;
}

static void level_free(bench_level *l) {
    for (int i = 0; l->requests && i < l->n_requests; i++) {
        bench_request *r = &l->requests[i];
        free(r->prompt);
        free(r->prompt_text);
        free(r->error);
        free(r->chunk_t);
    }
    free(l->requests);
}

/* the model to ask for: --model, or the first of GET /v1/models (which also
 * shows that the server answers) */
static int resolve_model(bench_conn *c, const bench_opts *o, char *model, size_t n_model, char *err, size_t n_err) {
    json_t *reply = NULL;
    char why[1024];
    if (bench_call(c, "/v1/models", NULL, &reply, why, sizeof(why))) {
        snprintf(err, n_err, "cannot use the server at %s: %s", o->url, why);
        return -1;
    }
    const char *id = json_string_value(json_object_get(json_array_get(json_object_get(reply, "data"), 0), "id"));
    if (o->model) snprintf(model, n_model, "%s", o->model);
    else if (id) snprintf(model, n_model, "%s", id);
    json_decref(reply);
    if (!o->model && !id) {
        snprintf(err, n_err, "%s/v1/models lists no model; name one with --model", o->url);
        return -1;
    }
    return 0;
}

/* prepares and runs every level; the number of failed requests, or -1 */
static int run_all(const bench_opts *o, bench_level *levels, char *model, size_t n_model, char *err, size_t n_err) {
    bench_conn *c = bench_conn_create(o);
    int failed = 0;
    if (!c) {
        snprintf(err, n_err, "cannot create an HTTP client");
        return -1;
    }
    if (resolve_model(c, o, model, n_model, err, n_err)) goto fail;
    for (int li = 0; li < o->n_levels; li++) {
        bench_level *l = &levels[li];
        l->concurrency = o->concurrency[li];
        l->n_requests = o->num_prompts;
        if (!(l->requests = calloc((size_t)o->num_prompts, sizeof(bench_request)))) {
            snprintf(err, n_err, "out of memory");
            goto fail;
        }
        if (bench_prompts_make(c, o, li, l->requests, l->n_requests, err, n_err)) goto fail;
        if (run_level(o, model, l, err, n_err)) goto fail;
        int level_failed = 0;
        const char *first = NULL;
        for (int i = 0; i < l->n_requests; i++) {
            if (l->requests[i].ok) continue;
            if (!level_failed++) first = l->requests[i].error;
        }
        if (level_failed)
            fprintf(stderr, "lamina bench: concurrency %d: %d of %d requests failed; the first: %s\n", l->concurrency,
                    level_failed, l->n_requests, first ? first : "(no message)");
        failed += level_failed;
    }
    bench_conn_free(c);
    return failed;
fail:
    bench_conn_free(c);
    return -1;
}

int cmd_bench(int argc, char **argv) {
    bench_opts o;
    int pr = parse_args(argc, argv, &o);
    if (pr) {
        bench_usage(pr > 0 ? stdout : stderr);
        return pr > 0 ? 0 : 2;
    }
    char url[1024];
    snprintf(url, sizeof(url), "%s", o.url);
    for (size_t n = strlen(url); n > 0 && url[n - 1] == '/'; n--) url[n - 1] = '\0';
    o.url = url;
    if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
        fprintf(stderr, "lamina bench: libcurl failed to initialize\n");
        return 1;
    }
    bench_level levels[BENCH_MAX_LEVELS];
    memset(levels, 0, sizeof(levels));
    char model[512] = "", err[2048] = "";
    int failed = run_all(&o, levels, model, sizeof(model), err, sizeof(err));
    int rc = 0;
    if (failed < 0) {
        fprintf(stderr, "lamina bench: %s\n", err);
        rc = 1;
    } else {
        bench_print_summary(&o, model, levels, o.n_levels);
        if (o.json_path && bench_write_json(o.json_path, &o, model, levels, o.n_levels, err, sizeof(err))) {
            fprintf(stderr, "lamina bench: %s\n", err);
            rc = 1;
        }
        if (failed) rc = 1;
    }
    for (int i = 0; i < o.n_levels; i++) level_free(&levels[i]);
    curl_global_cleanup();
    return rc;
}
