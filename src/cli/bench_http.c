/* bench_http.c - the HTTP side of `lamina bench` over libcurl: one easy
 * handle per thread (so its connection stays alive between requests), plain
 * JSON calls, and a streamed generation read as server-sent events.
 *
 * Streams are parsed as they arrive: bytes -> lines -> events (a blank line
 * ends one). Each event whose JSON carries generated text stamps the time it
 * arrived; the usage the server sends at the end gives the token counts. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/bench.h"

#define RAW_KEEP 4096          /* bytes of a body kept for error messages */
#define MAX_EVENT (1 << 20)    /* bytes of one event's data */
#define MAX_BODY (64 << 20)    /* bytes of a plain JSON reply */

struct bench_conn {
    CURL *curl;
    const bench_opts *o;
    struct curl_slist *headers;
    char errbuf[CURL_ERROR_SIZE];
};

double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* a growable byte buffer, always NUL-terminated */
typedef struct buf {
    char *data;
    size_t len, cap;
    bool failed;
} buf;

static void buf_append(buf *b, const char *s, size_t n, size_t limit) {
    if (b->failed) return;
    if (b->len + n > limit) {
        b->failed = true;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) {
            b->failed = true;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

bench_conn *bench_conn_create(const bench_opts *o) {
    bench_conn *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->o = o;
    c->curl = curl_easy_init();
    /* "Expect:" off: no round trip waiting for 100-continue before a body */
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (h) h = curl_slist_append(h, "Expect:");
    if (h && o->api == BENCH_API_ANTHROPIC) h = curl_slist_append(h, "anthropic-version: 2023-06-01");
    if (h && o->api_key) {
        char line[1024];
        snprintf(line, sizeof(line), "Authorization: Bearer %s", o->api_key);
        h = curl_slist_append(h, line);
        snprintf(line, sizeof(line), "x-api-key: %s", o->api_key);
        if (h) h = curl_slist_append(h, line);
    }
    c->headers = h;
    if (!c->curl || !c->headers) {
        bench_conn_free(c);
        return NULL;
    }
    return c;
}

void bench_conn_free(bench_conn *c) {
    if (!c) return;
    if (c->curl) curl_easy_cleanup(c->curl);
    curl_slist_free_all(c->headers);
    free(c);
}

/* resets the handle for a call to PATH (POST of BODY when not NULL) */
static void conn_setup(bench_conn *c, const char *path, const char *body, curl_write_callback write, void *ctx) {
    char url[2048];
    snprintf(url, sizeof(url), "%s%s", c->o->url, path);
    curl_easy_reset(c->curl);
    curl_easy_setopt(c->curl, CURLOPT_URL, url);
    curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->curl, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, (long)c->o->timeout_s);
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, write);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, ctx);
    if (body) curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
    c->errbuf[0] = '\0';
}

/* "what curl said (its detail)" for a transfer that failed */
static void curl_message(const bench_conn *c, CURLcode rc, char *out, size_t n) {
    if (c->errbuf[0]) snprintf(out, n, "%s (%s)", curl_easy_strerror(rc), c->errbuf);
    else snprintf(out, n, "%s", curl_easy_strerror(rc));
}

/* the message of an error reply: error.message of its JSON, else the text */
static void reply_message(long status, const char *body, char *out, size_t n) {
    json_t *j = body ? json_loads(body, JSON_ALLOW_NUL, NULL) : NULL;
    json_t *e = json_object_get(j, "error");
    const char *msg = json_string_value(json_is_object(e) ? json_object_get(e, "message") : e);
    if (msg) snprintf(out, n, "HTTP %ld: %s", status, msg);
    else snprintf(out, n, "HTTP %ld: %.300s", status, body && body[0] ? body : "(empty body)");
    json_decref(j);
}

static size_t write_buf(char *p, size_t size, size_t n, void *ctx) {
    buf *b = ctx;
    buf_append(b, p, size * n, MAX_BODY);
    return b->failed ? 0 : size * n;
}

int bench_call(bench_conn *c, const char *path, json_t *body, json_t **out, char *err, size_t n_err) {
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    buf reply = {0};
    int rc = -1;
    *out = NULL;
    conn_setup(c, path, text, write_buf, &reply);
    CURLcode cr = curl_easy_perform(c->curl);
    long status = 0;
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
    if (cr != CURLE_OK) {
        char m[CURL_ERROR_SIZE + 128];
        curl_message(c, cr, m, sizeof(m));
        snprintf(err, n_err, "%s%s: %s", c->o->url, path, m);
    } else if (status != 200) {
        char m[512];
        reply_message(status, reply.data, m, sizeof(m));
        snprintf(err, n_err, "%s%s: %s", c->o->url, path, m);
    } else if (!(*out = json_loads(reply.data ? reply.data : "", JSON_ALLOW_NUL, NULL))) {
        snprintf(err, n_err, "%s%s: the reply is not JSON", c->o->url, path);
    } else {
        rc = 0;
    }
    free(reply.data);
    free(text);
    return rc;
}

/* ---- a streamed generation ---- */

typedef struct stream_state {
    bench_request *r;
    bench_api api;
    buf line;              /* the line being read */
    buf data;              /* data: lines of the current event, joined by '\n' */
    char event[64];        /* event: name of the current event */
    buf raw;               /* the first RAW_KEEP bytes (an error reply) */
    bool done;             /* [DONE] or message_stop seen */
} stream_state;

/* the first error of R wins; OVERRIDE replaces it (the transfer's own
 * failure says more than what the stream showed before it) */
static void set_error(bench_request *r, const char *msg) {
    if (!r->error) r->error = strdup(msg);
    r->failed = true;
}

static void override_error(bench_request *r, const char *msg) {
    free(r->error);
    r->error = NULL;
    set_error(r, msg);
}

static void add_chunk(bench_request *r, double t) {
    if (r->n_chunks == r->cap_chunks) {
        int cap = r->cap_chunks ? r->cap_chunks * 2 : 64;
        double *d = realloc(r->chunk_t, sizeof(double) * (size_t)cap);
        if (!d) return;
        r->chunk_t = d;
        r->cap_chunks = cap;
    }
    r->chunk_t[r->n_chunks++] = t;
}

static int int_field(json_t *obj, const char *key, int fallback) {
    json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (int)json_integer_value(v) : fallback;
}

static bool has_text(json_t *v) { return json_is_string(v) && json_string_length(v) > 0; }

/* an OpenAI chunk: text of choices[0] ("text" or "delta.content"), usage,
 * or an error object */
static void openai_event(stream_state *s, json_t *j, double t) {
    bench_request *r = s->r;
    json_t *e = json_object_get(j, "error");
    if (e) {
        const char *msg = json_string_value(json_is_object(e) ? json_object_get(e, "message") : e);
        set_error(r, msg ? msg : "the server sent an error event");
        return;
    }
    json_t *choice = json_array_get(json_object_get(j, "choices"), 0);
    if (choice && (has_text(json_object_get(choice, "text")) ||
                   has_text(json_object_get(json_object_get(choice, "delta"), "content"))))
        add_chunk(r, t);
    json_t *u = json_object_get(j, "usage");
    if (json_is_object(u)) {
        r->prompt_tokens = int_field(u, "prompt_tokens", r->prompt_tokens);
        r->completion_tokens = int_field(u, "completion_tokens", r->completion_tokens);
        json_t *details = json_object_get(u, "prompt_tokens_details");
        r->cached_tokens = int_field(details, "cached_tokens", r->cached_tokens);
    }
    /* llama-server's own timings, for servers without cached_tokens */
    json_t *timings = json_object_get(j, "timings");
    if (r->cached_tokens < 0 && json_is_object(timings)) r->cached_tokens = int_field(timings, "cache_n", -1);
}

/* an Anthropic event: message_start, content_block_delta, message_delta,
 * message_stop or error */
static void anthropic_event(stream_state *s, json_t *j, double t) {
    bench_request *r = s->r;
    const char *type = json_string_value(json_object_get(j, "type"));
    if (!type) type = s->event;
    if (!strcmp(type, "error")) {
        const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
        set_error(r, msg ? msg : "the server sent an error event");
    } else if (!strcmp(type, "message_start")) {
        json_t *u = json_object_get(json_object_get(j, "message"), "usage");
        r->prompt_tokens = int_field(u, "input_tokens", r->prompt_tokens);
    } else if (!strcmp(type, "content_block_delta")) {
        if (has_text(json_object_get(json_object_get(j, "delta"), "text"))) add_chunk(r, t);
    } else if (!strcmp(type, "message_delta")) {
        json_t *u = json_object_get(j, "usage");
        r->completion_tokens = int_field(u, "output_tokens", r->completion_tokens);
        int fresh = int_field(u, "input_tokens", -1), cached = int_field(u, "cache_read_input_tokens", -1);
        if (cached >= 0) r->cached_tokens = cached;
        if (fresh >= 0 && cached >= 0) r->prompt_tokens = fresh + cached;
    } else if (!strcmp(type, "message_stop")) {
        s->done = true;
    }
}

static void dispatch(stream_state *s) {
    if (s->data.len == 0 || s->data.failed) {
        if (s->data.failed) set_error(s->r, "an event larger than 1 MiB");
        goto reset;
    }
    double t = bench_now();
    if (s->api == BENCH_API_OPENAI && !strcmp(s->data.data, "[DONE]")) {
        s->done = true;
        goto reset;
    }
    json_t *j = json_loads(s->data.data, JSON_ALLOW_NUL, NULL); /* a token may be a NUL byte: "\u0000" */
    if (!json_is_object(j)) {
        set_error(s->r, "an event whose data is not a JSON object");
    } else if (s->api == BENCH_API_OPENAI) {
        openai_event(s, j, t);
    } else {
        anthropic_event(s, j, t);
    }
    json_decref(j);
reset:
    s->data.len = 0;
    s->data.failed = false;
    s->event[0] = '\0';
}

static void take_line(stream_state *s) {
    char *l = s->line.data ? s->line.data : "";
    size_t n = s->line.len;
    if (n && l[n - 1] == '\r') l[--n] = '\0';
    if (n == 0) {
        dispatch(s);
    } else if (!strncmp(l, "data:", 5)) {
        const char *v = l + 5 + (l[5] == ' ');
        if (s->data.len) buf_append(&s->data, "\n", 1, MAX_EVENT);
        buf_append(&s->data, v, strlen(v), MAX_EVENT);
    } else if (!strncmp(l, "event:", 6)) {
        snprintf(s->event, sizeof(s->event), "%s", l + 6 + (l[6] == ' '));
    }
    s->line.len = 0;
    s->line.failed = false;
}

static size_t write_stream(char *p, size_t size, size_t n, void *ctx) {
    stream_state *s = ctx;
    size_t len = size * n;
    size_t keep = RAW_KEEP - s->raw.len;
    if (keep) buf_append(&s->raw, p, len < keep ? len : keep, RAW_KEEP);
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(p + i, '\n', len - i);
        size_t k = nl ? (size_t)(nl - (p + i)) : len - i;
        buf_append(&s->line, p + i, k, MAX_EVENT);
        i += k;
        if (nl) {
            take_line(s);
            i++;
        }
    }
    return len;
}

static json_t *request_body(const bench_opts *o, const char *model, const bench_request *r) {
    json_t *b = json_pack("{s:s, s:i, s:b, s:f}", "model", model, "max_tokens", o->output_len, "stream", 1,
                          "temperature", o->temperature);
    if (!b) return NULL;
    if (o->api == BENCH_API_ANTHROPIC) {
        json_object_set_new(b, "messages", json_pack("[{s:s, s:s}]", "role", "user", "content", r->prompt_text));
        return b;
    }
    json_t *ids = json_array();
    for (int i = 0; i < r->n_prompt; i++) json_array_append_new(ids, json_integer(r->prompt[i]));
    json_object_set_new(b, "prompt", ids);
    json_object_set_new(b, "ignore_eos", json_true());
    json_object_set_new(b, "stream_options", json_pack("{s:b}", "include_usage", 1));
    return b;
}

void bench_stream(bench_conn *c, const char *model, bench_request *r) {
    const bench_opts *o = c->o;
    stream_state s = {.r = r, .api = o->api};
    json_t *body = request_body(o, model, r);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    r->prompt_tokens = r->cached_tokens = r->completion_tokens = -1;
    if (!text) {
        set_error(r, "out of memory");
        return;
    }
    conn_setup(c, o->api == BENCH_API_ANTHROPIC ? "/v1/messages" : "/v1/completions", text, write_stream, &s);
    r->t_start = bench_now();
    CURLcode cr = curl_easy_perform(c->curl);
    r->t_end = bench_now();
    if (s.line.len) take_line(&s);
    dispatch(&s);
    long status = 0;
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
    char m[CURL_ERROR_SIZE + 512];
    if (cr != CURLE_OK) {
        curl_message(c, cr, m, sizeof(m));
        override_error(r, m);
    } else if (status != 200) {
        reply_message(status, s.raw.data, m, sizeof(m));
        override_error(r, m);
    } else if (!s.done && !r->failed) {
        set_error(r, "the stream ended before its end event");
    }
    r->ok = !r->failed;
    if (r->completion_tokens < 0) r->completion_tokens = r->n_chunks;
    free(text);
    free(s.line.data);
    free(s.data.data);
    free(s.raw.data);
}
