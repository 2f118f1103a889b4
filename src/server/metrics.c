/* metrics.c - Prometheus counters and histograms (see metrics.h), and the
 * GET /metrics and GET /health handlers.
 *
 * Requests are counted per (endpoint, status) in a dense table: endpoints
 * come from the router, statuses 100..599; only non-zero cells are written.
 * A histogram keeps one atomic count per bucket (not cumulative) and the
 * sum in microseconds; rendering accumulates them into Prometheus buckets. */
#include "server/metrics.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "server/router.h"
#include "server/srv.h"

#define STATUS_MIN 100
#define STATUS_MAX 599
#define N_STATUS (STATUS_MAX - STATUS_MIN + 1)
#define MAX_BUCKETS 24

/* vLLM's bucket bounds (seconds) */
static const double TTFT_BOUNDS[] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5,
                                     0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0};
static const double ITL_BOUNDS[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15,
                                    0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5};

typedef struct histogram {
    const double *bounds; /* (n_bounds) upper bounds, seconds; +Inf implied */
    int n_bounds;
    atomic_uint_fast64_t counts[MAX_BUCKETS + 1]; /* (n_bounds + 1) per bucket, last = +Inf */
    atomic_uint_fast64_t sum_us;                  /* microseconds */
} histogram;

static const char *FINISH_REASONS[] = {"stop", "length", "abort", "error"};
#define N_FINISH 4

struct srv_metrics {
    int n_endpoints;
    atomic_uint_fast64_t *requests; /* (n_endpoints, N_STATUS) */
    histogram ttft, itl;
    atomic_uint_fast64_t finished[N_FINISH];
};

static void histogram_init(histogram *h, const double *bounds, int n) {
    h->bounds = bounds;
    h->n_bounds = n;
    for (int i = 0; i <= MAX_BUCKETS; i++) atomic_init(&h->counts[i], 0);
    atomic_init(&h->sum_us, 0);
}

srv_metrics *metrics_create(void) {
    srv_metrics *m = calloc(1, sizeof(*m));
    if (!m) return NULL;
    m->n_endpoints = router_n_endpoints();
    m->requests = calloc((size_t)m->n_endpoints * N_STATUS, sizeof(*m->requests));
    if (!m->requests) {
        free(m);
        return NULL;
    }
    histogram_init(&m->ttft, TTFT_BOUNDS, (int)(sizeof(TTFT_BOUNDS) / sizeof(double)));
    histogram_init(&m->itl, ITL_BOUNDS, (int)(sizeof(ITL_BOUNDS) / sizeof(double)));
    for (int i = 0; i < N_FINISH; i++) atomic_init(&m->finished[i], 0);
    return m;
}

void metrics_free(srv_metrics *m) {
    if (!m) return;
    free(m->requests);
    free(m);
}

void metrics_count_request(srv_metrics *m, int endpoint, int status) {
    if (endpoint < 0 || endpoint >= m->n_endpoints || status < STATUS_MIN || status > STATUS_MAX) return;
    atomic_fetch_add(&m->requests[(size_t)endpoint * N_STATUS + (size_t)(status - STATUS_MIN)], 1);
}

static void histogram_observe(histogram *h, double seconds) {
    if (seconds < 0) seconds = 0;
    int b = 0;
    while (b < h->n_bounds && seconds > h->bounds[b]) b++;
    atomic_fetch_add(&h->counts[b], 1);
    atomic_fetch_add(&h->sum_us, (uint64_t)(seconds * 1e6 + 0.5));
}

void metrics_observe_ttft(srv_metrics *m, double seconds) { histogram_observe(&m->ttft, seconds); }
void metrics_observe_itl(srv_metrics *m, double seconds) { histogram_observe(&m->itl, seconds); }

void metrics_count_finish(srv_metrics *m, const char *reason) {
    for (int i = 0; i < N_FINISH; i++)
        if (!strcmp(FINISH_REASONS[i], reason)) atomic_fetch_add(&m->finished[i], 1);
}

static void render_histogram(strbuf *out, const char *name, const char *help, histogram *h) {
    strbuf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cumulative = 0;
    for (int b = 0; b <= h->n_bounds; b++) {
        cumulative += atomic_load(&h->counts[b]);
        if (b < h->n_bounds) strbuf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[b],
                                       (unsigned long long)cumulative);
        else strbuf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cumulative);
    }
    strbuf_printf(out, "%s_sum %.6f\n%s_count %llu\n", name, (double)atomic_load(&h->sum_us) / 1e6, name,
              (unsigned long long)cumulative);
}

static void render_scalar(strbuf *out, const char *type, const char *name, const char *help,
                          unsigned long long value) {
    strbuf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name, value);
}

void metrics_render(srv_metrics *m, const lm_engine_stats *st, int in_flight, strbuf *out) {
    strbuf_puts(out, "# HELP lamina_requests_total HTTP responses by endpoint and status.\n"
                 "# TYPE lamina_requests_total counter\n");
    for (int e = 0; e < m->n_endpoints; e++)
        for (int s = 0; s < N_STATUS; s++) {
            uint64_t n = atomic_load(&m->requests[(size_t)e * N_STATUS + (size_t)s]);
            if (n) strbuf_printf(out, "lamina_requests_total{endpoint=\"%s\",status=\"%d\"} %llu\n",
                             router_endpoint_name(e), s + STATUS_MIN, (unsigned long long)n);
        }
    strbuf_puts(out, "# HELP lamina_sequences_finished_total Generated sequences by how they ended.\n"
                 "# TYPE lamina_sequences_finished_total counter\n");
    for (int i = 0; i < N_FINISH; i++)
        strbuf_printf(out, "lamina_sequences_finished_total{reason=\"%s\"} %llu\n", FINISH_REASONS[i],
                  (unsigned long long)atomic_load(&m->finished[i]));
    render_scalar(out, "counter", "lamina_prompt_tokens_total", "Prompt tokens submitted.", st->prompt_tokens);
    render_scalar(out, "counter", "lamina_generation_tokens_total", "Tokens generated.", st->generated_tokens);
    render_scalar(out, "counter", "lamina_prefix_cache_hit_tokens_total",
                  "Prompt tokens served from the prefix cache.", st->prefix_hit_tokens);
    render_scalar(out, "counter", "lamina_preemptions_total", "Sequences preempted for lack of KV blocks.",
                  st->preemptions);
    render_scalar(out, "counter", "lamina_engine_steps_total", "Engine steps (batched forward passes).",
                  st->steps);
    render_scalar(out, "gauge", "lamina_requests_waiting", "Requests queued in the engine.",
                  (unsigned long long)st->waiting);
    render_scalar(out, "gauge", "lamina_requests_running", "Sequences in the engine's running set.",
                  (unsigned long long)st->running);
    render_scalar(out, "gauge", "lamina_requests_in_flight", "Generation requests the HTTP side holds.",
                  (unsigned long long)(in_flight > 0 ? in_flight : 0));
    int free_blocks = st->kv_blocks_total - st->kv_blocks_used;
    render_scalar(out, "gauge", "lamina_kv_blocks_total", "KV cache blocks in the pool.",
                  (unsigned long long)st->kv_blocks_total);
    render_scalar(out, "gauge", "lamina_kv_blocks_used", "KV cache blocks referenced by a sequence.",
                  (unsigned long long)st->kv_blocks_used);
    render_scalar(out, "gauge", "lamina_kv_blocks_free", "KV cache blocks not referenced by a sequence.",
                  (unsigned long long)(free_blocks > 0 ? free_blocks : 0));
    render_scalar(out, "gauge", "lamina_kv_blocks_cached", "Free KV cache blocks that hold a reusable prefix.",
                  (unsigned long long)st->kv_blocks_cached);
    render_histogram(out, "lamina_time_to_first_token_seconds", "Seconds from submit to the first token.",
                     &m->ttft);
    render_histogram(out, "lamina_inter_token_latency_seconds", "Seconds between two tokens of a sequence.",
                     &m->itl);
}

int h_metrics(srv_request *req, srv_reply *out, srv_error *err) {
    lm_engine_stats st;
    engine_stats(req->srv->engine, &st);
    strbuf b;
    strbuf_init(&b);
    metrics_render(req->srv->metrics, &st, atomic_load(&req->srv->in_flight), &b);
    out->body = strbuf_take(&b);
    if (!out->body) return srv_fail(err, SRV_ERR_INTERNAL, NULL, "out of memory rendering the metrics");
    out->content_type = "text/plain; version=0.0.4; charset=utf-8";
    return 0;
}

int h_health(srv_request *req, srv_reply *out, srv_error *err) {
    bool draining = atomic_load(&req->srv->draining);
    out->status = draining ? 503 : 200;
    return srv_reply_json(out, json_pack("{s:s}", "status", draining ? "shutting_down" : "ok"), err);
}
