/* completions.c - POST /v1/completions (legacy): "prompt" as a string, a
 * list of strings, a list of token ids or a list of such lists; echo;
 * logprobs in the legacy shape; n choices per prompt. "suffix" (fill in the
 * middle) and "best_of" > n are refused with a 400 rather than ignored.
 * Every prompt is tokenized and checked (prep_completions, see handlers.h)
 * before any is submitted. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/handlers.h"
#include "server/openai.h"
#include "server/prompt.h"
#include "server/strbuf.h"

/* one prompt of the request: text to tokenize, or token ids as given */
typedef struct prompt_in {
    json_t *value; /* a string or an array of integers (borrowed) */
    char field[32];
} prompt_in;

static int is_token_list(json_t *v) {
    if (!json_is_array(v) || !json_array_size(v)) return 0;
    for (size_t i = 0; i < json_array_size(v); i++)
        if (!json_is_integer(json_array_get(v, i))) return 0;
    return 1;
}

/* splits "prompt" into its prompts */
static int split_prompts(json_t *body, prompt_in *ps, int *n, srv_error *err) {
    json_t *p = json_object_get(body, "prompt");
    *n = 0;
    if (!p || json_is_null(p)) return srv_fail(err, SRV_ERR_INVALID, "prompt", "'prompt' is required");
    if (json_is_string(p) || is_token_list(p)) {
        ps[0].value = p;
        snprintf(ps[0].field, sizeof(ps[0].field), "prompt");
        *n = 1;
        return 0;
    }
    if (!json_is_array(p) || !json_array_size(p))
        return srv_fail(err, SRV_ERR_INVALID, "prompt",
                        "'prompt' must be a string, a list of strings, a list of token ids or a list of lists of "
                        "token ids");
    if (json_array_size(p) > PREP_MAX_PROMPTS)
        return srv_fail(err, SRV_ERR_INVALID, "prompt", "'prompt' has more than %d prompts", PREP_MAX_PROMPTS);
    for (size_t i = 0; i < json_array_size(p); i++) {
        json_t *e = json_array_get(p, i);
        if (!json_is_string(e) && !is_token_list(e))
            return srv_fail(err, SRV_ERR_INVALID, "prompt", "prompt[%zu] must be a string or a non-empty list of token ids",
                            i);
        ps[i].value = e;
        snprintf(ps[i].field, sizeof(ps[i].field), "prompt[%zu]", i);
    }
    *n = (int)json_array_size(p);
    return 0;
}

/* the ids of one prompt (malloc'd): tokenized text (with BOS as the vocab
 * says), or the ids as given after a range check */
static int prompt_ids(const srv_server *srv, const prompt_in *p, int32_t **ids, int *n_ids, srv_error *err) {
    if (json_is_string(p->value))
        return prompt_tokenize(srv->vocab, json_string_value(p->value), json_string_length(p->value), true, true, ids,
                               n_ids, err);
    size_t n = json_array_size(p->value);
    int n_vocab = tok_n_vocab(srv->vocab);
    *ids = malloc(sizeof(int32_t) * n);
    if (!*ids) return srv_fail(err, SRV_ERR_INTERNAL, NULL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_int_t t = json_integer_value(json_array_get(p->value, i));
        if (t < 0 || t >= n_vocab)
            return srv_fail(err, SRV_ERR_INVALID, p->field, "%s[%zu] = %lld is not a token id of this model (0..%d)",
                            p->field, i, (long long)t, n_vocab - 1);
        (*ids)[i] = (int32_t)t;
    }
    *n_ids = (int)n;
    return 0;
}

static int reject_unsupported(json_t *body, const req_gen *g, bool echo, srv_error *err) {
    json_t *suffix = json_object_get(body, "suffix");
    if (suffix && !json_is_null(suffix) && (!json_is_string(suffix) || json_string_length(suffix)))
        return srv_fail(err, SRV_ERR_INVALID, "suffix",
                        "'suffix' is not supported: this server has no fill-in-the-middle completion");
    long long best_of = 0;
    if (req_int(body, "best_of", 1, 128, &best_of, err) < 0) return -1;
    if (best_of > 0 && best_of != g->n)
        return srv_fail(err, SRV_ERR_INVALID, "best_of", "'best_of' other than n is not supported");
    if (echo && g->top_logprobs >= 0)
        return srv_fail(err, SRV_ERR_INVALID, "echo",
                        "'echo' together with 'logprobs' needs prompt logprobs, which this server does not compute");
    return 0;
}

/* the ids of prompt IN, checked against the context, with its echo text */
static int prep_prompt_one(const srv_server *srv, const prompt_in *in, bool echo, req_gen *g, int max_tokens_given,
                           prep_prompt *out, srv_error *err) {
    if (prompt_ids(srv, in, &out->ids, &out->n_ids, err)) return -1;
    g->max_tokens = max_tokens_given;
    if (req_fit_context(srv, out->n_ids, in->field, g, err)) return -1;
    out->max_tokens = g->max_tokens;
    if (!echo) return 0;
    strbuf text;
    strbuf_init(&text);
    if (json_is_string(in->value)) strbuf_append(&text, json_string_value(in->value), json_string_length(in->value));
    else prompt_detokenize(srv->vocab, out->ids, out->n_ids, &text);
    out->echo_len = text.len;
    out->echo = strbuf_take(&text);
    if (!out->echo) return srv_fail(err, SRV_ERR_INTERNAL, NULL, "out of memory");
    return 0;
}

void prep_legacy_request_free(prep_legacy_request *p) {
    for (int i = 0; i < PREP_MAX_PROMPTS; i++) {
        free(p->prompts[i].ids);
        free(p->prompts[i].echo);
    }
    req_gen_free(&p->g);
    json_decref(p->body);
    memset(p, 0, sizeof(*p));
}

static int prep_all(const srv_request *req, prep_legacy_request *out, srv_error *err) {
    srv_server *srv = req->srv;
    prompt_in prompts[PREP_MAX_PROMPTS];
    if (srv_parse_body(req, &out->body, err) || srv_resolve_model(srv, out->body, &out->model, err)) return -1;
    if (req_parse_openai(srv, out->body, true, &out->g, err) || req_bool(out->body, "echo", &out->echo, err) < 0)
        return -1;
    if (reject_unsupported(out->body, &out->g, out->echo, err) ||
        split_prompts(out->body, prompts, &out->n_prompts, err))
        return -1;
    if (out->n_prompts * out->g.n > PREP_MAX_CHOICES_TOTAL)
        return srv_fail(err, SRV_ERR_INVALID, "n", "prompts x n = %d exceeds %d choices per request",
                        out->n_prompts * out->g.n, PREP_MAX_CHOICES_TOTAL);
    int max_tokens_given = out->g.max_tokens;
    for (int p = 0; p < out->n_prompts; p++)
        if (prep_prompt_one(srv, &prompts[p], out->echo, &out->g, max_tokens_given, &out->prompts[p], err)) return -1;
    out->g.max_tokens = max_tokens_given;
    return 0;
}

int prep_completions(const srv_request *req, prep_legacy_request *out, srv_error *err) {
    memset(out, 0, sizeof(*out));
    if (prep_all(req, out, err)) {
        prep_legacy_request_free(out);
        return -1;
    }
    return 0;
}

int h_completions(srv_request *req, srv_reply *out, srv_error *err) {
    prep_legacy_request in;
    if (prep_completions(req, &in, err)) return -1;
    int rc = -1;
    oai_run *run = oai_run_create(req, true, in.model, in.n_prompts, &in.g, err);
    if (!run) goto done;
    for (int p = 0; p < in.n_prompts; p++) {
        const prep_prompt *pp = &in.prompts[p];
        in.g.max_tokens = pp->max_tokens;
        if ((pp->echo && oai_run_set_echo(run, p, pp->echo, pp->echo_len, err)) ||
            oai_run_submit(run, p, pp->ids, pp->n_ids, &in.g, err)) {
            oai_run_free(run);
            goto done;
        }
    }
    rc = oai_run_finish(run, in.g.stream, out, err);
done:
    prep_legacy_request_free(&in);
    return rc;
}
