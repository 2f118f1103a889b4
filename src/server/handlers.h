/* handlers.h - the front half of each generation endpoint: the request body
 * parsed and validated into generation fields, the model name to echo and
 * the prompt tokens, checked against the context. This is everything a
 * handler does before the engine sees the request; the handlers call these
 * functions and then submit, and the fuzzers (tests/fuzz/) call them with
 * arbitrary bodies, so both run exactly the same code.
 *
 * On success every prompt is 1 .. n_ctx - 1 tokens of ids in the vocab and
 * its max_tokens is settled (1 .. n_ctx - prompt tokens); count_tokens only
 * tokenizes. On failure the
 * error names the field at fault and the output is left empty (nothing to
 * free, though freeing it is harmless). */
#ifndef LAMINA_SERVER_HANDLERS_H
#define LAMINA_SERVER_HANDLERS_H

#include <stdlib.h>

#include "server/request.h"
#include "server/srv.h"

/* one prompt, ready to submit: chat and Anthropic Messages requests */
typedef struct prep_request {
    json_t *body;      /* the parsed request body */
    const char *model; /* the name to echo: into body or the server's config */
    req_gen g;         /* generation fields, max_tokens settled */
    int32_t *ids;      /* (n_ids) prompt tokens, malloc'd */
    int n_ids;
} prep_request;

static inline void prep_request_free(prep_request *p) {
    free(p->ids);
    req_gen_free(&p->g);
    json_decref(p->body);
    *p = (prep_request){0};
}

/* POST /v1/chat/completions */
int prep_chat(const srv_request *req, prep_request *out, srv_error *err);

/* POST /v1/messages; COUNT_ONLY (/v1/messages/count_tokens) reads only the
 * model and the prompt: no generation fields, no context check */
int prep_messages(const srv_request *req, bool count_only, prep_request *out, srv_error *err);

#define PREP_MAX_PROMPTS 64        /* prompts of one legacy completions request */
#define PREP_MAX_CHOICES_TOTAL 128 /* prompts x n */

/* one prompt of a legacy completions request */
typedef struct prep_prompt {
    int32_t *ids;   /* (n_ids) malloc'd: tokenized text or the ids as given */
    int n_ids;
    int max_tokens; /* settled for this prompt */
    char *echo;     /* (echo_len) the text that starts each choice (echo: true), malloc'd; else NULL */
    size_t echo_len;
} prep_prompt;

/* POST /v1/completions: n choices for each of n_prompts prompts */
typedef struct prep_legacy_request {
    json_t *body;
    const char *model;
    req_gen g;      /* g.max_tokens: as given (0 = none); each prompt has its own */
    bool echo;
    int n_prompts;
    prep_prompt prompts[PREP_MAX_PROMPTS];
} prep_legacy_request;

int prep_completions(const srv_request *req, prep_legacy_request *out, srv_error *err);
void prep_legacy_request_free(prep_legacy_request *p);

#endif
