/* openai.c - OpenAI response shapes for /v1/chat/completions and
 * /v1/completions: the non-streaming body and the SSE chunks, usage, and
 * logprobs (chat: {"content": [{token, logprob, bytes, top_logprobs}]};
 * legacy: {tokens, token_logprobs, top_logprobs, text_offset}).
 *
 * A run holds one oai_choice per choice; engine events update it the same
 * way whether the reply streams (then each event also becomes a chunk) or
 * not (then the body is built once every choice is done). */
#include "server/openai.h"

#include <stdlib.h>
#include <string.h>

#include "server/gen.h"
#include "server/prompt.h"
#include "server/sse.h"
#include "server/strbuf.h"

typedef struct oai_choice {
    strbuf text;          /* generated text (non-streaming) */
    size_t n_chars;       /* code points written so far, echo included (legacy text_offset) */
    json_t *logprobs;     /* non-streaming: chat array of entries / legacy object of arrays */
    bool finished;
    const char *finish;   /* "stop" / "length" */
    char *error;          /* the engine's message of an ERROR event */
    int prompt_tokens, completion_tokens, cached_tokens;
} oai_choice;

struct oai_run {
    srv_server *srv;
    bool legacy;
    bool include_usage;
    bool ignore_eos;
    int top_logprobs;     /* -1: none */
    char id[48];
    char *model;
    time_t created;
    int n_prompts, n_per_prompt, n_choices;
    char **echo;          /* (n_prompts) legacy echo text or NULL */
    int *n_prompt_tokens; /* (n_prompts) */
    oai_choice *choices;  /* (n_choices) */
    gen_job *job;
};

oai_run *oai_run_create(srv_request *req, bool legacy, const char *model, int n_prompts, const req_gen *g,
                        srv_error *err) {
    oai_run *r = calloc(1, sizeof(*r));
    int n_choices = n_prompts * g->n;
    if (r) {
        r->model = strdup(model);
        r->echo = calloc((size_t)n_prompts, sizeof(char *));
        r->n_prompt_tokens = calloc((size_t)n_prompts, sizeof(int));
        r->choices = calloc((size_t)n_choices, sizeof(oai_choice));
        r->job = gen_job_create(req->srv, req->fd, n_choices);
    }
    if (!r || !r->model || !r->echo || !r->n_prompt_tokens || !r->choices || !r->job) {
        oai_run_free(r);
        srv_fail(err, SRV_ERR_INTERNAL, NULL, "out of memory");
        return NULL;
    }
    r->srv = req->srv;
    r->legacy = legacy;
    r->include_usage = g->include_usage;
    r->ignore_eos = g->ignore_eos;
    r->top_logprobs = g->top_logprobs;
    srv_new_id(req->srv, legacy ? "cmpl-" : "chatcmpl-", r->id, sizeof(r->id));
    r->created = time(NULL);
    r->n_prompts = n_prompts;
    r->n_per_prompt = g->n;
    r->n_choices = n_choices;
    for (int i = 0; i < n_choices; i++) strbuf_init(&r->choices[i].text);
    return r;
}

void oai_run_free(oai_run *r) {
    if (!r) return;
    gen_job_free(r->job);
    for (int i = 0; r->choices && i < r->n_choices; i++) {
        strbuf_free(&r->choices[i].text);
        json_decref(r->choices[i].logprobs);
        free(r->choices[i].error);
    }
    for (int p = 0; r->echo && p < r->n_prompts; p++) free(r->echo[p]);
    free(r->echo);
    free(r->n_prompt_tokens);
    free(r->choices);
    free(r->model);
    free(r);
}

int oai_run_set_echo(oai_run *r, int p, const char *text, size_t len, srv_error *err) {
    r->echo[p] = strndup(text, len);
    if (!r->echo[p]) return srv_fail(err, SRV_ERR_INTERNAL, NULL, "out of memory");
    for (int k = 0; k < r->n_per_prompt; k++) r->choices[p * r->n_per_prompt + k].n_chars = srv_utf8_count(text, len);
    return 0;
}

int oai_run_submit(oai_run *r, int p, const int32_t *ids, int n_ids, const req_gen *g, srv_error *err) {
    r->n_prompt_tokens[p] = n_ids;
    for (int k = 0; k < r->n_per_prompt; k++) {
        lm_request_params params;
        req_params(g, ids, n_ids, k, &params);
        if (gen_job_submit(r->job, p * r->n_per_prompt + k, &params, err)) return -1;
    }
    return 0;
}

/* ---- logprobs ---- */

/* {"token", "logprob", "bytes"} of one token */
static json_t *token_logprob(const tok_vocab *v, int32_t id, float logprob) {
    strbuf piece;
    strbuf_init(&piece);
    prompt_piece(v, id, &piece);
    json_t *bytes = json_array();
    for (size_t i = 0; i < piece.len; i++) json_array_append_new(bytes, json_integer((unsigned char)piece.data[i]));
    json_t *o = json_pack("{s:o, s:f, s:o}", "token", srv_json_text(piece.data ? piece.data : "", piece.len),
                          "logprob", (double)logprob, "bytes", bytes);
    strbuf_free(&piece);
    return o;
}

static json_t *chat_logprob_entry(const tok_vocab *v, const lm_event *ev) {
    json_t *e = token_logprob(v, ev->token, ev->logprob);
    json_t *top = json_array();
    for (int k = 0; k < ev->n_top; k++) json_array_append_new(top, token_logprob(v, ev->top_ids[k], ev->top_logprobs[k]));
    json_object_set_new(e, "top_logprobs", top);
    return e;
}

static json_t *legacy_logprobs_new(void) {
    return json_pack("{s:[], s:[], s:[], s:[]}", "tokens", "token_logprobs", "top_logprobs", "text_offset");
}

static json_t *piece_json(const tok_vocab *v, int32_t id) {
    strbuf piece;
    strbuf_init(&piece);
    prompt_piece(v, id, &piece);
    json_t *s = srv_json_text(piece.data ? piece.data : "", piece.len);
    strbuf_free(&piece);
    return s;
}

/* appends one token to a legacy logprobs object; OFFSET: code points of
 * the text before it */
static void legacy_logprobs_add(json_t *lp, const tok_vocab *v, const lm_event *ev, size_t offset) {
    json_array_append_new(json_object_get(lp, "tokens"), piece_json(v, ev->token));
    json_array_append_new(json_object_get(lp, "token_logprobs"), json_real(ev->logprob));
    json_t *top = json_object();
    for (int k = 0; k < ev->n_top; k++) {
        json_t *key = piece_json(v, ev->top_ids[k]);
        if (key) json_object_set_new(top, json_string_value(key), json_real(ev->top_logprobs[k]));
        json_decref(key);
    }
    json_t *key = piece_json(v, ev->token);
    if (key) json_object_set_new(top, json_string_value(key), json_real(ev->logprob));
    json_decref(key);
    json_array_append_new(json_object_get(lp, "top_logprobs"), top);
    json_array_append_new(json_object_get(lp, "text_offset"), json_integer((json_int_t)offset));
}

/* the logprobs of one token event in the run's shape */
static json_t *event_logprobs(oai_run *r, oai_choice *c, const lm_event *ev) {
    if (r->legacy) {
        json_t *lp = legacy_logprobs_new();
        legacy_logprobs_add(lp, r->srv->vocab, ev, c->n_chars);
        return lp;
    }
    return json_pack("{s:[o], s:n}", "content", chat_logprob_entry(r->srv->vocab, ev), "refusal");
}

/* ---- events ---- */

static const char *finish_name(lm_finish_reason f) { return f == LM_FINISH_LENGTH ? "length" : "stop"; }

/* the logprobs of a token are reported unless it is the end-of-generation
 * token that ended the text (counted in usage, but not part of the text) */
static bool reports_logprobs(const oai_run *r, const lm_event *ev) {
    return r->top_logprobs >= 0 && (r->ignore_eos || !tok_is_eog(r->srv->vocab, ev->token));
}

/* updates choice I with EV; non-streaming keeps text and logprobs */
static void apply_event(oai_run *r, int i, const lm_event *ev, bool keep) {
    oai_choice *c = &r->choices[i];
    if (ev->kind == LM_EVENT_TOKEN) {
        if (keep && reports_logprobs(r, ev)) {
            if (r->legacy) {
                if (!c->logprobs) c->logprobs = legacy_logprobs_new();
                legacy_logprobs_add(c->logprobs, r->srv->vocab, ev, c->n_chars);
            } else {
                if (!c->logprobs) c->logprobs = json_array();
                json_array_append_new(c->logprobs, chat_logprob_entry(r->srv->vocab, ev));
            }
        }
        if (keep) strbuf_append(&c->text, ev->text ? ev->text : "", ev->text_len);
        c->n_chars += srv_utf8_count(ev->text ? ev->text : "", ev->text_len);
        return;
    }
    c->finished = true;
    if (ev->kind == LM_EVENT_ERROR) {
        c->error = strdup(ev->error);
        return;
    }
    c->finish = finish_name(ev->finish);
    c->prompt_tokens = ev->prompt_tokens;
    c->completion_tokens = ev->completion_tokens;
    c->cached_tokens = ev->cached_tokens;
}

/* OpenAI counts each prompt once however many choices it has; the cached
 * tokens are those of each prompt's first choice */
static json_t *usage_json(const oai_run *r) {
    long prompt = 0, completion = 0, cached = 0;
    for (int p = 0; p < r->n_prompts; p++) {
        const oai_choice *first = &r->choices[p * r->n_per_prompt];
        prompt += first->prompt_tokens ? first->prompt_tokens : r->n_prompt_tokens[p];
        cached += first->cached_tokens;
    }
    for (int i = 0; i < r->n_choices; i++) completion += r->choices[i].completion_tokens;
    return json_pack("{s:i, s:i, s:i, s:{s:i}}", "prompt_tokens", (int)prompt, "completion_tokens", (int)completion,
                     "total_tokens", (int)(prompt + completion), "prompt_tokens_details", "cached_tokens", (int)cached);
}

static json_t *envelope(const oai_run *r, const char *object, json_t *choices) {
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:o}", "id", r->id, "object", object, "created",
                     (json_int_t)r->created, "model", r->model, "system_fingerprint", r->srv->fingerprint, "choices",
                     choices);
}

/* ---- non-streaming ---- */

static json_t *response_json(oai_run *r) {
    json_t *choices = json_array();
    for (int i = 0; i < r->n_choices; i++) {
        oai_choice *c = &r->choices[i];
        const char *echo = r->echo[i / r->n_per_prompt];
        json_t *logprobs = c->logprobs ? json_incref(c->logprobs) : json_null();
        if (!r->legacy && c->logprobs) logprobs = json_pack("{s:o, s:n}", "content", logprobs, "refusal");
        json_t *ch;
        if (r->legacy) {
            strbuf full;
            strbuf_init(&full);
            if (echo) strbuf_puts(&full, echo);
            strbuf_append(&full, c->text.data ? c->text.data : "", c->text.len);
            ch = json_pack("{s:o, s:i, s:o, s:s}", "text", srv_json_text(full.data ? full.data : "", full.len),
                           "index", i, "logprobs", logprobs, "finish_reason", c->finish);
            strbuf_free(&full);
        } else {
            ch = json_pack("{s:i, s:{s:s, s:o, s:n}, s:o, s:s}", "index", i, "message", "role", "assistant",
                           "content", srv_json_text(c->text.data ? c->text.data : "", c->text.len), "refusal",
                           "logprobs", logprobs, "finish_reason", c->finish);
        }
        json_array_append_new(choices, ch);
    }
    json_t *o = envelope(r, r->legacy ? "text_completion" : "chat.completion", choices);
    if (o) json_object_set_new(o, "usage", usage_json(r));
    return o;
}

static int collect(oai_run *r, srv_reply *out, srv_error *err) {
    for (;;) {
        int i;
        lm_event ev;
        memset(&ev, 0, sizeof(ev));
        gen_status st = gen_job_next(r->job, &i, &ev, 0);
        if (st == GEN_FINISHED) break;
        if (st == GEN_CANCELLED) return gen_job_cancel_error(r->job, err);
        apply_event(r, i, &ev, true);
        lm_event_clear(&ev);
    }
    for (int i = 0; i < r->n_choices; i++) {
        if (r->choices[i].error) return srv_fail(err, SRV_ERR_INTERNAL, NULL, "generation failed: %s", r->choices[i].error);
        if (r->choices[i].text.failed) return srv_fail(err, SRV_ERR_INTERNAL, NULL, "out of memory");
    }
    out->prompt_tokens = gen_job_prompt_tokens(r->job);
    out->completion_tokens = gen_job_completion_tokens(r->job);
    return srv_reply_json(out, response_json(r), err);
}

/* ---- streaming ---- */

static json_t *chunk(const oai_run *r, json_t *choice) {
    json_t *o = envelope(r, r->legacy ? "text_completion" : "chat.completion.chunk", json_pack("[o]", choice));
    if (o && r->include_usage) json_object_set_new(o, "usage", json_null());
    return o;
}

/* one chunk of choice I: DELTA text (NULL: none) with LOGPROBS (stolen, may be NULL) and FINISH (may be NULL) */
static json_t *choice_chunk(const oai_run *r, int i, const char *text, size_t len, bool role, json_t *logprobs,
                            const char *finish) {
    json_t *lp = logprobs ? logprobs : json_null();
    json_t *fin = finish ? json_string(finish) : json_null();
    if (r->legacy)
        return chunk(r, json_pack("{s:o, s:i, s:o, s:o}", "text", srv_json_text(text ? text : "", text ? len : 0),
                                  "index", i, "logprobs", lp, "finish_reason", fin));
    json_t *delta = json_object();
    if (role) json_object_set_new(delta, "role", json_string("assistant"));
    if (text) json_object_set_new(delta, "content", srv_json_text(text, len));
    return chunk(r, json_pack("{s:i, s:o, s:o, s:o}", "index", i, "delta", delta, "logprobs", lp, "finish_reason", fin));
}

static void stream_begin(void *ctx, strbuf *out) {
    oai_run *r = ctx;
    for (int i = 0; i < r->n_choices; i++) {
        const char *echo = r->echo[i / r->n_per_prompt];
        if (!r->legacy) sse_data(out, choice_chunk(r, i, "", 0, true, NULL, NULL));
        else if (echo) sse_data(out, choice_chunk(r, i, echo, strlen(echo), false, NULL, NULL));
    }
}

static void stream_event(void *ctx, int i, const lm_event *ev, strbuf *out) {
    oai_run *r = ctx;
    oai_choice *c = &r->choices[i];
    if (ev->kind == LM_EVENT_TOKEN) {
        json_t *lp = reports_logprobs(r, ev) ? event_logprobs(r, c, ev) : NULL;
        if (ev->text_len || lp) sse_data(out, choice_chunk(r, i, ev->text ? ev->text : "", ev->text_len, false, lp, NULL));
        apply_event(r, i, ev, false);
        return;
    }
    apply_event(r, i, ev, false);
    if (ev->kind == LM_EVENT_DONE) {
        sse_data(out, choice_chunk(r, i, r->legacy ? "" : NULL, 0, false, NULL, c->finish));
        return;
    }
    srv_error e;
    srv_fail(&e, SRV_ERR_INTERNAL, NULL, "generation failed: %s", ev->error);
    char *s = srv_error_json(&e, SRV_API_OPENAI);
    if (s) strbuf_printf(out, "data: %s\n\n", s);
    free(s);
}

static void stream_end(void *ctx, const srv_error *cancel, strbuf *out) {
    oai_run *r = ctx;
    if (cancel) {
        char *s = srv_error_json(cancel, SRV_API_OPENAI);
        if (s) strbuf_printf(out, "data: %s\n\n", s);
        free(s);
    } else if (r->include_usage) {
        json_t *o = envelope(r, r->legacy ? "text_completion" : "chat.completion.chunk", json_array());
        if (o) json_object_set_new(o, "usage", usage_json(r));
        sse_data(out, o);
    }
    strbuf_puts(out, "data: [DONE]\n\n");
}

static void stream_free(void *ctx) {
    oai_run *r = ctx;
    r->job = NULL; /* the stream owns and frees the job */
    oai_run_free(r);
}

int oai_run_finish(oai_run *r, bool stream, srv_reply *out, srv_error *err) {
    if (!stream) {
        int rc = collect(r, out, err);
        oai_run_free(r);
        return rc;
    }
    sse_sink sink = {r, stream_begin, stream_event, stream_end, stream_free};
    out->stream = sse_stream_create(r->srv, r->job, sink);
    if (!out->stream) return srv_fail(err, SRV_ERR_INTERNAL, NULL, "out of memory");
    return 0;
}
