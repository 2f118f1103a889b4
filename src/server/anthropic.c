/* anthropic.c - POST /v1/messages and /v1/messages/count_tokens in the
 * shapes of Anthropic's Messages API.
 *
 * Usage follows Anthropic's accounting: input_tokens counts the prompt
 * tokens that were computed, cache_read_input_tokens those served from the
 * prefix cache (their sum is the prompt). A stream announces the whole
 * prompt as input_tokens in message_start (the cache split is known only at
 * the end) and gives the final split in message_delta.
 *
 * Stream events, in order: message_start, content_block_start, ping,
 * content_block_delta (text_delta)..., content_block_stop, message_delta
 * (stop_reason, stop_sequence, usage), message_stop; an error mid-stream is
 * an `error` event instead of the closing ones.
 *
 * Both endpoints read their request with prep_messages (handlers.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/gen.h"
#include "server/handlers.h"
#include "server/prompt.h"
#include "server/request.h"
#include "server/sse.h"
#include "server/strbuf.h"

typedef struct msg_run {
    srv_server *srv;
    char id[48];
    char *model;
    int n_prompt;         /* tokens */
    char **stops;         /* (n_stops) the request's stop_sequences, taken from its req_gen */
    int n_stops;
    strbuf text;          /* non-streaming */
    bool done;
    const char *stop_reason;
    char *stop_sequence;
    int prompt_tokens, completion_tokens, cached_tokens;
    char *error;
    gen_job *job;
} msg_run;

static void msg_run_free(msg_run *r) {
    if (!r) return;
    gen_job_free(r->job);
    strbuf_free(&r->text);
    free(r->stop_sequence);
    for (int i = 0; i < r->n_stops; i++) free(r->stops[i]);
    free(r->stops);
    free(r->error);
    free(r->model);
    free(r);
}

static void apply_event(msg_run *r, const lm_event *ev, bool keep) {
    if (ev->kind == LM_EVENT_TOKEN) {
        if (keep) strbuf_append(&r->text, ev->text ? ev->text : "", ev->text_len);
        return;
    }
    r->done = true;
    if (ev->kind == LM_EVENT_ERROR) {
        r->error = strdup(ev->error);
        return;
    }
    bool by_string = ev->stop_index >= 0 && ev->stop_index < r->n_stops;
    r->stop_reason = ev->finish == LM_FINISH_LENGTH ? "max_tokens" : by_string ? "stop_sequence" : "end_turn";
    if (by_string) r->stop_sequence = strdup(r->stops[ev->stop_index]);
    r->prompt_tokens = ev->prompt_tokens;
    r->completion_tokens = ev->completion_tokens;
    r->cached_tokens = ev->cached_tokens;
}

static json_t *usage_json(const msg_run *r, int input_tokens, int cached) {
    return json_pack("{s:i, s:i, s:i, s:i}", "input_tokens", input_tokens, "cache_creation_input_tokens", 0,
                     "cache_read_input_tokens", cached, "output_tokens", r->completion_tokens);
}

static json_t *stop_sequence_json(const msg_run *r) {
    return r->stop_sequence ? srv_json_text(r->stop_sequence, strlen(r->stop_sequence)) : json_null();
}

/* ---- non-streaming ---- */

static int collect(msg_run *r, srv_reply *out, srv_error *err) {
    for (;;) {
        int i;
        lm_event ev;
        memset(&ev, 0, sizeof(ev));
        gen_status st = gen_job_next(r->job, &i, &ev, 0);
        if (st == GEN_FINISHED) break;
        if (st == GEN_CANCELLED) return gen_job_cancel_error(r->job, err);
        apply_event(r, &ev, true);
        lm_event_clear(&ev);
    }
    if (r->error) return srv_fail(err, SRV_ERR_INTERNAL, NULL, "generation failed: %s", r->error);
    if (r->text.failed) return srv_fail(err, SRV_ERR_INTERNAL, NULL, "out of memory");
    out->prompt_tokens = r->prompt_tokens;
    out->completion_tokens = r->completion_tokens;
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:[{s:s, s:o}], s:s, s:o, s:o}", "id", r->id, "type", "message",
                          "role", "assistant", "model", r->model, "content", "type", "text", "text",
                          srv_json_text(r->text.data ? r->text.data : "", r->text.len), "stop_reason", r->stop_reason,
                          "stop_sequence", stop_sequence_json(r), "usage",
                          usage_json(r, r->prompt_tokens - r->cached_tokens, r->cached_tokens));
    return srv_reply_json(out, o, err);
}

/* ---- streaming ---- */

static void stream_begin(void *ctx, strbuf *out) {
    msg_run *r = ctx;
    sse_event(out, "message_start",
              json_pack("{s:s, s:{s:s, s:s, s:s, s:s, s:[], s:n, s:n, s:{s:i, s:i, s:i, s:i}}}", "type",
                        "message_start", "message", "id", r->id, "type", "message", "role", "assistant", "model",
                        r->model, "content", "stop_reason", "stop_sequence", "usage", "input_tokens", r->n_prompt,
                        "cache_creation_input_tokens", 0, "cache_read_input_tokens", 0, "output_tokens", 0));
    sse_event(out, "content_block_start",
              json_pack("{s:s, s:i, s:{s:s, s:s}}", "type", "content_block_start", "index", 0, "content_block", "type",
                        "text", "text", ""));
    sse_event(out, "ping", json_pack("{s:s}", "type", "ping"));
}

static void stream_event(void *ctx, int choice, const lm_event *ev, strbuf *out) {
    msg_run *r = ctx;
    apply_event(r, ev, false);
    if (ev->kind == LM_EVENT_TOKEN && ev->text_len)
        sse_event(out, "content_block_delta",
                  json_pack("{s:s, s:i, s:{s:s, s:o}}", "type", "content_block_delta", "index", 0, "delta", "type",
                            "text_delta", "text", srv_json_text(ev->text, ev->text_len)));
}

static void stream_error(strbuf *out, srv_err_kind kind, const char *message) {
    srv_error e;
    srv_fail(&e, kind, NULL, "%s", message);
    char *s = srv_error_json(&e, SRV_API_ANTHROPIC);
    if (s) strbuf_printf(out, "event: error\ndata: %s\n\n", s);
    free(s);
}

static void stream_end(void *ctx, const srv_error *cancel, strbuf *out) {
    msg_run *r = ctx;
    if (cancel) {
        /* shutdown as overloaded_error: Anthropic's clients retry those */
        stream_error(out, cancel->kind == SRV_ERR_UNAVAILABLE ? SRV_ERR_OVERLOADED : cancel->kind, cancel->message);
        return;
    }
    if (r->error) {
        char msg[320];
        snprintf(msg, sizeof(msg), "generation failed: %s", r->error);
        stream_error(out, SRV_ERR_INTERNAL, msg);
        return;
    }
    sse_event(out, "content_block_stop", json_pack("{s:s, s:i}", "type", "content_block_stop", "index", 0));
    sse_event(out, "message_delta",
              json_pack("{s:s, s:{s:s, s:o}, s:o}", "type", "message_delta", "delta", "stop_reason", r->stop_reason,
                        "stop_sequence", stop_sequence_json(r), "usage",
                        usage_json(r, r->prompt_tokens - r->cached_tokens, r->cached_tokens)));
    sse_event(out, "message_stop", json_pack("{s:s}", "type", "message_stop"));
}

static void stream_free(void *ctx) {
    msg_run *r = ctx;
    r->job = NULL; /* freed by the stream */
    msg_run_free(r);
}

/* ---- handlers ---- */

/* the prompt tokens of a Messages request body */
static int messages_tokens(const srv_server *srv, json_t *body, int32_t **ids, int *n_ids, srv_error *err) {
    json_t *messages = NULL;
    bool prefill = false;
    if (prompt_anthropic_messages(body, &messages, &prefill, err)) return -1;
    int rc = prompt_chat_tokens(srv, messages, prefill, NULL, ids, n_ids, err);
    json_decref(messages);
    return rc;
}

int prep_messages(const srv_request *req, bool count_only, prep_request *out, srv_error *err) {
    srv_server *srv = req->srv;
    *out = (prep_request){0};
    if (srv_parse_body(req, &out->body, err) || srv_resolve_model(srv, out->body, &out->model, err) ||
        (!count_only && req_parse_anthropic(srv, out->body, &out->g, err)) ||
        messages_tokens(srv, out->body, &out->ids, &out->n_ids, err) ||
        (!count_only && req_fit_context(srv, out->n_ids, "messages", &out->g, err))) {
        prep_request_free(out);
        return -1;
    }
    return 0;
}

int h_messages(srv_request *req, srv_reply *out, srv_error *err) {
    srv_server *srv = req->srv;
    prep_request in;
    if (prep_messages(req, false, &in, err)) return -1;
    int rc = -1;
    msg_run *r = calloc(1, sizeof(*r));
    if (r) {
        r->model = strdup(in.model);
        r->job = gen_job_create(srv, req->fd, 1);
    }
    if (!r || !r->model || !r->job) {
        srv_fail(err, SRV_ERR_INTERNAL, NULL, "out of memory");
        goto done;
    }
    r->srv = srv;
    r->n_prompt = in.n_ids;
    strbuf_init(&r->text);
    srv_new_id(srv, "msg_", r->id, sizeof(r->id));
    lm_request_params params;
    req_params(&in.g, in.ids, in.n_ids, 0, &params);
    if (gen_job_submit(r->job, 0, &params, err)) goto done;
    r->stops = in.g.stop;
    r->n_stops = in.g.n_stop;
    in.g.stop = NULL;
    in.g.n_stop = 0;
    if (in.g.stream) {
        sse_sink sink = {r, stream_begin, stream_event, stream_end, stream_free};
        out->stream = sse_stream_create(srv, r->job, sink);
        r = NULL;
        rc = out->stream ? 0 : srv_fail(err, SRV_ERR_INTERNAL, NULL, "out of memory");
    } else {
        rc = collect(r, out, err);
    }
done:
    msg_run_free(r);
    prep_request_free(&in);
    return rc;
}

int h_count_tokens(srv_request *req, srv_reply *out, srv_error *err) {
    prep_request in;
    if (prep_messages(req, true, &in, err)) return -1;
    int rc = srv_reply_json(out, json_pack("{s:i}", "input_tokens", in.n_ids), err);
    prep_request_free(&in);
    return rc;
}
