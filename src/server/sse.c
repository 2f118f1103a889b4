/* sse.c - SSE framing and the pull-driven event stream (see sse.h).
 *
 * The HTTP layer calls sse_stream_read() whenever the socket can take more;
 * while the output buffer is empty the stream pulls the next engine event
 * (blocking in gen_job_next) and lets the sink format it. */
#include "server/sse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sse_stream {
    srv_server *srv;
    gen_job *job;
    sse_sink sink;
    strbuf out;      /* formatted, not yet handed out */
    bool begun;
    bool ended;      /* sink.end() written */
    bool client_gone;
    char method[8];
    char path[64];
    double t_start;
};

static void append_json(strbuf *out, json_t *obj) {
    char *s = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!s) {
        out->failed = true;
        return;
    }
    strbuf_puts(out, s);
    free(s);
}

void sse_data(strbuf *out, json_t *obj) {
    strbuf_puts(out, "data: ");
    append_json(out, obj);
    strbuf_puts(out, "\n\n");
}

void sse_event(strbuf *out, const char *name, json_t *obj) {
    strbuf_printf(out, "event: %s\ndata: ", name);
    append_json(out, obj);
    strbuf_puts(out, "\n\n");
}

sse_stream *sse_stream_create(srv_server *srv, gen_job *job, sse_sink sink) {
    sse_stream *s = calloc(1, sizeof(*s));
    if (!s) {
        gen_job_free(job);
        sink.free(sink.ctx);
        return NULL;
    }
    s->srv = srv;
    s->job = job;
    s->sink = sink;
    strbuf_init(&s->out);
    return s;
}

void sse_stream_set_log(sse_stream *s, const char *method, const char *path, double t_start) {
    snprintf(s->method, sizeof(s->method), "%s", method);
    snprintf(s->path, sizeof(s->path), "%s", path);
    s->t_start = t_start;
}

/* seconds without an event after which a stream sends a keep-alive comment:
 * well within --idle-timeout, which would otherwise close a stream whose
 * request waits in the queue (and within common proxies' 60 s) */
static double keepalive_s(const srv_server *srv) {
    double t = srv->cfg.idle_timeout_s / 2.0;
    return t > 15 ? 15 : t > 0 ? t : 15;
}

/* formats more output; false at the end (or when the client is gone) */
static bool produce(sse_stream *s) {
    if (!s->begun) {
        s->begun = true;
        s->sink.begin(s->sink.ctx, &s->out);
        return true;
    }
    if (s->ended) return false;
    int choice;
    lm_event ev;
    memset(&ev, 0, sizeof(ev));
    gen_status st = gen_job_next(s->job, &choice, &ev, keepalive_s(s->srv));
    if (st == GEN_IDLE) {
        strbuf_puts(&s->out, ": keep-alive\n\n"); /* an SSE comment: clients ignore it */
        return true;
    }
    if (st == GEN_EVENT) {
        s->sink.event(s->sink.ctx, choice, &ev, &s->out);
        lm_event_clear(&ev);
        return true;
    }
    s->ended = true;
    if (st == GEN_CANCELLED && gen_job_client_gone(s->job)) {
        s->client_gone = true;
        return false;
    }
    srv_error cancel;
    if (st == GEN_CANCELLED) gen_job_cancel_error(s->job, &cancel);
    s->sink.end(s->sink.ctx, st == GEN_CANCELLED ? &cancel : NULL, &s->out);
    return true;
}

ssize_t sse_stream_read(sse_stream *s, char *buf, size_t max) {
    while (s->out.len == 0) {
        if (!produce(s)) return s->client_gone ? -1 : 0;
        if (s->out.failed) return -1;
    }
    size_t n = s->out.len < max ? s->out.len : max;
    memcpy(buf, s->out.data, n);
    strbuf_consume(&s->out, n);
    return (ssize_t)n;
}

void sse_stream_free(sse_stream *s) {
    if (!s) return;
    const char *note = s->client_gone || !s->ended ? "client disconnected" : NULL;
    srv_log_request(s->srv, s->method, s->path, 200, s->t_start, gen_job_prompt_tokens(s->job),
                    gen_job_completion_tokens(s->job), note);
    gen_job_free(s->job);
    s->sink.free(s->sink.ctx);
    strbuf_free(&s->out);
    free(s);
}
