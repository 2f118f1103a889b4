/* request.c - generation fields of API requests (see request.h). */
#include "server/request.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STOP 16      /* stop strings per request */
#define MAX_STOP_BYTES 1024 /* bytes per stop string */
#define MAX_CHOICES 64   /* n */
#define MAX_TOP_LOGPROBS LM_MAX_TOP_LOGPROBS

static const char *json_type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

int req_number(json_t *obj, const char *key, double lo, double hi, double *out, srv_error *err) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v))
        return srv_fail(err, SRV_ERR_INVALID, key, "'%s' must be a number, got %s", key, json_type_name(v));
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi))
        return srv_fail(err, SRV_ERR_INVALID, key, "'%s' must be between %g and %g, got %g", key, lo, hi, x);
    *out = x;
    return 1;
}

int req_int(json_t *obj, const char *key, long long lo, long long hi, long long *out, srv_error *err) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_integer(v))
        return srv_fail(err, SRV_ERR_INVALID, key, "'%s' must be an integer, got %s", key,
                        json_is_real(v) ? "a fractional number" : json_type_name(v));
    long long x = json_integer_value(v);
    if (x < lo || x > hi)
        return srv_fail(err, SRV_ERR_INVALID, key, "'%s' must be between %lld and %lld, got %lld", key, lo, hi, x);
    *out = x;
    return 1;
}

int req_bool(json_t *obj, const char *key, bool *out, srv_error *err) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v))
        return srv_fail(err, SRV_ERR_INVALID, key, "'%s' must be a boolean, got %s", key, json_type_name(v));
    *out = json_is_true(v);
    return 1;
}

int req_string(json_t *obj, const char *key, const char **out, srv_error *err) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v))
        return srv_fail(err, SRV_ERR_INVALID, key, "'%s' must be a string, got %s", key, json_type_name(v));
    *out = json_string_value(v);
    return 1;
}

void req_gen_free(req_gen *g) {
    free(g->bias);
    g->bias = NULL;
    g->sampling.logit_bias = NULL;
    g->sampling.n_logit_bias = 0;
    for (int i = 0; i < g->n_stop; i++) free(g->stop[i]);
    free(g->stop);
    g->stop = NULL;
    g->n_stop = 0;
}

static void gen_init(srv_server *srv, req_gen *g) {
    memset(g, 0, sizeof(*g));
    g->sampling = lm_sampling_default();
    g->sampling.seed = srv_random(srv);
    g->n = 1;
    g->top_logprobs = -1;
    g->max_tokens_field = "max_tokens";
}

static int add_stop(req_gen *g, const char *field, json_t *s, srv_error *err) {
    if (!json_is_string(s))
        return srv_fail(err, SRV_ERR_INVALID, field, "'%s' must be a string or a list of strings, got %s", field,
                        json_type_name(s));
    if (json_string_length(s) == 0)
        return srv_fail(err, SRV_ERR_INVALID, field, "'%s' must not contain an empty string", field);
    if (json_string_length(s) > MAX_STOP_BYTES)
        return srv_fail(err, SRV_ERR_INVALID, field, "'%s' has a string longer than %d bytes", field, MAX_STOP_BYTES);
    if (g->n_stop == MAX_STOP)
        return srv_fail(err, SRV_ERR_INVALID, field, "'%s' has more than %d strings", field, MAX_STOP);
    if (!g->stop) g->stop = calloc(MAX_STOP, sizeof(char *));
    char *copy = g->stop ? strdup(json_string_value(s)) : NULL;
    if (!copy) return srv_fail(err, SRV_ERR_INTERNAL, NULL, "out of memory");
    g->stop[g->n_stop++] = copy;
    return 0;
}

/* "stop" / "stop_sequences": a string (if allowed) or a list of strings */
static int parse_stop(json_t *body, const char *field, bool single_ok, req_gen *g, srv_error *err) {
    json_t *v = json_object_get(body, field);
    if (!v || json_is_null(v)) return 0;
    if (json_is_string(v) && single_ok) return add_stop(g, field, v, err);
    if (!json_is_array(v))
        return srv_fail(err, SRV_ERR_INVALID, field, "'%s' must be %s, got %s", field,
                        single_ok ? "a string or a list of strings" : "a list of strings", json_type_name(v));
    size_t i;
    json_t *s;
    json_array_foreach(v, i, s) if (add_stop(g, field, s, err)) return -1;
    return 0;
}

/* sampling fields both APIs share, with per-API bounds for temperature */
static int parse_sampling(json_t *body, double max_temp, req_gen *g, srv_error *err) {
    lm_sampling *s = &g->sampling;
    double x;
    long long k;
    int r;
    if ((r = req_number(body, "temperature", 0, max_temp, &x, err)) < 0) return -1;
    if (r) s->temperature = (float)x;
    if ((r = req_number(body, "top_p", 0, 1, &x, err)) < 0) return -1;
    if (r) s->top_p = (float)x;
    if ((r = req_int(body, "top_k", -1, INT_MAX, &k, err)) < 0) return -1;
    if (r) s->top_k = k <= 0 ? 0 : (int)k;
    if ((r = req_number(body, "min_p", 0, 1, &x, err)) < 0) return -1;
    if (r) s->min_p = (float)x;
    return 0;
}

static int parse_penalties(json_t *body, req_gen *g, srv_error *err) {
    lm_sampling *s = &g->sampling;
    double x;
    long long k;
    int r;
    if ((r = req_number(body, "presence_penalty", -2, 2, &x, err)) < 0) return -1;
    if (r) s->presence_penalty = (float)x;
    if ((r = req_number(body, "frequency_penalty", -2, 2, &x, err)) < 0) return -1;
    if (r) s->frequency_penalty = (float)x;
    if ((r = req_number(body, "repetition_penalty", 0, 10, &x, err)) < 0) return -1;
    if (r && x <= 0)
        return srv_fail(err, SRV_ERR_INVALID, "repetition_penalty", "'repetition_penalty' must be greater than 0");
    if (r) s->repetition_penalty = (float)x;
    if ((r = req_int(body, "seed", LLONG_MIN, LLONG_MAX, &k, err)) < 0) return -1;
    if (r) s->seed = (uint64_t)k;
    return 0;
}

#define MAX_LOGIT_BIAS 1024 /* entries; OpenAI documents no limit, llama-server none either */

/* "logit_bias": {"token id": bias in [-100, 100]} (OpenAI), into g->bias */
static int parse_logit_bias(json_t *body, int n_vocab, req_gen *g, srv_error *err) {
    json_t *bias = json_object_get(body, "logit_bias");
    if (!bias || json_is_null(bias)) return 0;
    if (!json_is_object(bias))
        return srv_fail(err, SRV_ERR_INVALID, "logit_bias", "'logit_bias' must be an object of token id -> bias");
    size_t n = json_object_size(bias);
    if (n == 0) return 0;
    if (n > MAX_LOGIT_BIAS)
        return srv_fail(err, SRV_ERR_INVALID, "logit_bias", "'logit_bias' has %zu entries; at most %d", n,
                        MAX_LOGIT_BIAS);
    if (!(g->bias = malloc(sizeof(lm_logit_bias) * n))) return srv_fail(err, SRV_ERR_INTERNAL, NULL, "out of memory");
    const char *key;
    json_t *v;
    json_object_foreach(bias, key, v) {
        char *end;
        long id = strtol(key, &end, 10);
        if (!*key || *end || id < 0 || id >= n_vocab)
            return srv_fail(err, SRV_ERR_INVALID, "logit_bias",
                            "'logit_bias' key '%.40s' is not a token id in [0, %d)", key, n_vocab);
        if (!json_is_number(v) || json_number_value(v) < -100 || json_number_value(v) > 100)
            return srv_fail(err, SRV_ERR_INVALID, "logit_bias", "'logit_bias' values must be numbers in [-100, 100]");
        g->bias[g->sampling.n_logit_bias++] = (lm_logit_bias){(int32_t)id, (float)json_number_value(v)};
    }
    g->sampling.logit_bias = g->bias;
    return 0;
}

/* fields of OpenAI features this server does not have: a clear 400, never a
 * silently different answer */
static int reject_unsupported_openai(json_t *body, srv_error *err) {
    static const char *const LISTS[] = {"tools", "functions"};
    for (size_t i = 0; i < 2; i++) {
        json_t *v = json_object_get(body, LISTS[i]);
        if (v && !json_is_null(v) && (!json_is_array(v) || json_array_size(v)))
            return srv_fail(err, SRV_ERR_INVALID, LISTS[i], "'%s' is not supported: this server has no tool calling yet",
                            LISTS[i]);
    }
    json_t *rf = json_object_get(body, "response_format");
    if (rf && !json_is_null(rf)) {
        json_t *type = json_is_object(rf) ? json_object_get(rf, "type") : NULL;
        if (!json_is_string(type) || strcmp(json_string_value(type), "text"))
            return srv_fail(err, SRV_ERR_INVALID, "response_format",
                            "'response_format' other than {\"type\": \"text\"} is not supported yet");
    }
    return 0;
}

/* --max-messages: a chat request's "messages" list may not be longer */
static int check_message_count(const srv_server *srv, json_t *body, srv_error *err) {
    json_t *m = json_object_get(body, "messages");
    size_t n = json_is_array(m) ? json_array_size(m) : 0;
    if (srv->cfg.max_messages > 0 && n > (size_t)srv->cfg.max_messages)
        return srv_fail(err, SRV_ERR_INVALID, "messages", "'messages' has %zu messages, more than %d (--max-messages)",
                        n, srv->cfg.max_messages);
    return 0;
}

int req_parse_openai(srv_server *srv, json_t *body, bool legacy, req_gen *g, srv_error *err) {
    gen_init(srv, g);
    long long k;
    int r;
    if (!legacy && check_message_count(srv, body, err)) return -1;
    if (parse_sampling(body, 2, g, err) || parse_penalties(body, g, err) ||
        parse_logit_bias(body, tok_n_vocab(srv->vocab), g, err))
        return -1;
    if (parse_stop(body, "stop", true, g, err)) return -1;
    if ((r = req_int(body, "max_tokens", 1, INT_MAX, &k, err)) < 0) return -1;
    if (r) g->max_tokens = (int)k;
    if (!legacy) {
        if ((r = req_int(body, "max_completion_tokens", 1, INT_MAX, &k, err)) < 0) return -1;
        if (r) {
            g->max_tokens = (int)k;
            g->max_tokens_field = "max_completion_tokens";
        }
    }
    if ((r = req_int(body, "n", 1, MAX_CHOICES, &k, err)) < 0) return -1;
    if (r) g->n = (int)k;
    if (legacy) {
        if ((r = req_int(body, "logprobs", 0, MAX_TOP_LOGPROBS, &k, err)) < 0) return -1;
        if (r) g->top_logprobs = (int)k;
    } else {
        bool want = false;
        if (req_bool(body, "logprobs", &want, err) < 0) return -1;
        if ((r = req_int(body, "top_logprobs", 0, MAX_TOP_LOGPROBS, &k, err)) < 0) return -1;
        if (r && !want)
            return srv_fail(err, SRV_ERR_INVALID, "top_logprobs", "'top_logprobs' needs 'logprobs': true");
        if (want) g->top_logprobs = r ? (int)k : 0;
    }
    if (req_bool(body, "stream", &g->stream, err) < 0 || req_bool(body, "ignore_eos", &g->ignore_eos, err) < 0)
        return -1;
    json_t *so = json_object_get(body, "stream_options");
    if (so && !json_is_null(so)) {
        if (!json_is_object(so))
            return srv_fail(err, SRV_ERR_INVALID, "stream_options", "'stream_options' must be an object");
        if (req_bool(so, "include_usage", &g->include_usage, err) < 0) {
            snprintf(err->param, sizeof(err->param), "stream_options.include_usage");
            return -1;
        }
    }
    return reject_unsupported_openai(body, err);
}

int req_parse_anthropic(srv_server *srv, json_t *body, req_gen *g, srv_error *err) {
    gen_init(srv, g);
    long long k;
    int r;
    if (check_message_count(srv, body, err)) return -1;
    if (parse_sampling(body, 1, g, err)) return -1;
    if (parse_stop(body, "stop_sequences", false, g, err)) return -1;
    if ((r = req_int(body, "max_tokens", 1, INT_MAX, &k, err)) < 0) return -1;
    if (!r) return srv_fail(err, SRV_ERR_INVALID, "max_tokens", "max_tokens: Field required");
    g->max_tokens = (int)k;
    if (req_bool(body, "stream", &g->stream, err) < 0 || req_bool(body, "ignore_eos", &g->ignore_eos, err) < 0)
        return -1;
    json_t *tools = json_object_get(body, "tools");
    if (tools && json_is_array(tools) && json_array_size(tools))
        return srv_fail(err, SRV_ERR_INVALID, "tools", "tools: not supported, this server has no tool use yet");
    return 0;
}

int req_fit_context(const srv_server *srv, int n_prompt, const char *prompt_field, req_gen *g, srv_error *err) {
    int n_ctx = srv->cfg.n_ctx;
    if (n_prompt <= 0)
        return srv_fail(err, SRV_ERR_INVALID, prompt_field, "'%s' is empty: there is nothing to continue", prompt_field);
    if (n_prompt >= n_ctx)
        return srv_fail(err, SRV_ERR_INVALID, prompt_field,
                        "'%s' is %d tokens, which leaves no room in this server's context of %d tokens", prompt_field,
                        n_prompt, n_ctx);
    int room = n_ctx - n_prompt;
    if (g->max_tokens > room)
        return srv_fail(err, SRV_ERR_INVALID, g->max_tokens_field,
                        "'%s' is %d, but the prompt is %d tokens and the context holds %d: at most %d tokens can be "
                        "generated",
                        g->max_tokens_field, g->max_tokens, n_prompt, n_ctx, room);
    if (g->max_tokens == 0) {
        g->max_tokens = room;
        if (srv->cfg.max_tokens_default > 0 && srv->cfg.max_tokens_default < room)
            g->max_tokens = srv->cfg.max_tokens_default;
    }
    return 0;
}

void req_params(const req_gen *g, const int32_t *prompt, int n_prompt, int choice, lm_request_params *p) {
    memset(p, 0, sizeof(*p));
    p->prompt = prompt;
    p->n_prompt = n_prompt;
    p->max_tokens = g->max_tokens;
    p->sampling = g->sampling;
    p->sampling.seed = g->sampling.seed + (uint64_t)choice;
    p->stop = (const char *const *)g->stop;
    p->n_stop = g->n_stop;
    p->ignore_eos = g->ignore_eos;
    p->top_logprobs = g->top_logprobs;
}
