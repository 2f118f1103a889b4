/* bench.h - `lamina bench`, the built-in load generator: the pieces shared
 * by its files.
 *
 *   bench.c          flags, the run (one thread per concurrent stream), progress
 *   bench_http.c     libcurl: plain JSON calls and one streamed generation
 *   bench_prompts.c  synthetic prompts of a given token length (via /tokenize)
 *   bench_report.c   percentiles, the summary table, --json
 *
 * A run sends, for every concurrency level C, N streamed requests with at
 * most C in flight; each request records when its content chunks arrived.
 * Times are seconds on CLOCK_MONOTONIC; reported latencies are ms. */
#ifndef LAMINA_CLI_BENCH_H
#define LAMINA_CLI_BENCH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_MAX_LEVELS 16

typedef enum { BENCH_API_OPENAI, BENCH_API_ANTHROPIC } bench_api;

typedef struct bench_opts {
    const char *url;           /* base URL, no trailing '/' (owned by bench.c) */
    int concurrency[BENCH_MAX_LEVELS];
    int n_levels;
    int num_prompts;           /* requests per level */
    int input_len;             /* tokens per prompt, shared prefix included */
    int output_len;            /* max_tokens */
    int shared_prefix;         /* tokens every prompt of a level starts with */
    bench_api api;
    const char *model;         /* NULL: the first of GET /v1/models */
    const char *api_key;       /* NULL: none */
    const char *json_path;     /* NULL: no --json */
    uint64_t seed;
    double temperature;
    int timeout_s;             /* per request */
} bench_opts;

/* one request: what was sent and what came back */
typedef struct bench_request {
    int32_t *prompt;           /* (n_prompt) token ids (openai) */
    int n_prompt;
    char *prompt_text;         /* the ids as text (anthropic) */
    bool ok;
    bool failed;               /* set while the stream is read; ok = !failed at the end */
    char *error;               /* malloc'd message when !ok (NULL if even that failed) */
    double t_start, t_end;     /* request sent / stream ended */
    double *chunk_t;           /* (n_chunks) arrival of each chunk with content */
    int n_chunks, cap_chunks;
    int prompt_tokens;         /* from the server's usage; -1 when it gave none */
    int completion_tokens;     /* from usage; the chunk count when it gave none */
    int cached_tokens;         /* prompt tokens served from the prefix cache */
} bench_request;

/* one concurrency level */
typedef struct bench_level {
    int concurrency;
    int n_requests;
    bench_request *requests;   /* (n_requests) */
    double t_start, t_end;     /* first request sent / last finished */
} bench_level;

double bench_now(void);

/* ---- bench_http.c ---- */

/* per-thread connection (keeps the connection alive between requests) */
typedef struct bench_conn bench_conn;
bench_conn *bench_conn_create(const bench_opts *o);
void bench_conn_free(bench_conn *c);

/* GET (BODY == NULL) or POST of JSON BODY to PATH; the reply's JSON in *out
 * (new reference). -1 with a message in err (size n_err) when the server
 * cannot be reached, answers other than 200, or not with JSON. */
int bench_call(bench_conn *c, const char *path, json_t *body, json_t **out, char *err, size_t n_err);

/* Sends request R as a streamed generation and fills its results. Never
 * fails as a whole: a failure is r->ok = false with r->error set. */
void bench_stream(bench_conn *c, const char *model, bench_request *r);

/* ---- bench_prompts.c ---- */

/* Fills the prompts of level LEVEL (index into o->concurrency): token ids
 * from seeded random words through the server's /tokenize, cut to length;
 * for the anthropic API also their text (via /detokenize). -1 with err. */
int bench_prompts_make(bench_conn *c, const bench_opts *o, int level, bench_request *reqs, int n, char *err,
                       size_t n_err);

/* ---- bench_report.c ---- */

/* value at percentile P (0..100) of N sorted values, interpolated linearly
 * between closest ranks (numpy's default); 0 when N == 0 */
double bench_percentile(const double *sorted, int n, double p);

void bench_print_summary(const bench_opts *o, const char *model, const bench_level *levels, int n_levels);
/* writes the configuration, each level's summary and every request to PATH */
int bench_write_json(const char *path, const bench_opts *o, const char *model, const bench_level *levels,
                     int n_levels, char *err, size_t n_err);

#endif
