/* openai.h - what the two OpenAI generation endpoints share: a run of n
 * choices per prompt, the response and chunk shapes, usage, logprobs. The
 * endpoints (chat.c, completions.c) parse their own input and differ in
 * shapes by the `legacy` flag (text_completion vs chat.completion). */
#ifndef LAMINA_SERVER_OPENAI_H
#define LAMINA_SERVER_OPENAI_H

#include "server/request.h"
#include "server/srv.h"

typedef struct oai_run oai_run;

/* A run of N_PROMPTS x G->n choices for REQ's client; choice c belongs to
 * prompt c / G->n. MODEL is copied. NULL + 500 on allocation failure. */
oai_run *oai_run_create(srv_request *req, bool legacy, const char *model, int n_prompts, const req_gen *g,
                        srv_error *err);
void oai_run_free(oai_run *r);
/* legacy echo: TEXT (copied) starts every choice of prompt P */
int oai_run_set_echo(oai_run *r, int p, const char *text, size_t len, srv_error *err);
/* submits the G->n choices of prompt P (tokens are copied by the engine) */
int oai_run_submit(oai_run *r, int p, const int32_t *ids, int n_ids, const req_gen *g, srv_error *err);
/* Finishes the request: a stream (taking R) or, after every choice is done,
 * the response body (R is freed either way). */
int oai_run_finish(oai_run *r, bool stream, srv_reply *out, srv_error *err);

#endif
