/* request.h - reading the generation fields of an API request (sampling,
 * limits, stop strings, choices, logprobs, streaming) into a neutral
 * req_gen, with a 400 that names the field for every wrong type or range. */
#ifndef LAMINA_SERVER_REQUEST_H
#define LAMINA_SERVER_REQUEST_H

#include "server/srv.h"

typedef struct req_gen {
    lm_sampling sampling;     /* llama.cpp's defaults for fields not given */
    int max_tokens;           /* 0 = not given (req_fit_context fills it) */
    const char *max_tokens_field;
    char **stop;              /* (n_stop) malloc'd copies */
    int n_stop;
    int n;                    /* choices per prompt */
    int top_logprobs;         /* -1: no logprobs; 0..20 alternatives per token */
    bool stream;
    bool include_usage;       /* stream_options.include_usage */
    bool ignore_eos;
    lm_logit_bias *bias;      /* malloc'd entries behind sampling.logit_bias */
} req_gen;

/* Typed optional fields of OBJ. Each returns 1 when KEY is present and valid
 * (*out set), 0 when absent or null (*out untouched), -1 with a 400 naming
 * the field otherwise. Ranges are inclusive. */
int req_number(json_t *obj, const char *key, double lo, double hi, double *out, srv_error *err);
int req_int(json_t *obj, const char *key, long long lo, long long hi, long long *out, srv_error *err);
int req_bool(json_t *obj, const char *key, bool *out, srv_error *err);
int req_string(json_t *obj, const char *key, const char **out, srv_error *err);

/* OpenAI chat (legacy = false) or legacy completions fields. The seed of a
 * request without one is drawn from the server's generator. */
int req_parse_openai(srv_server *srv, json_t *body, bool legacy, req_gen *g, srv_error *err);
/* Anthropic Messages fields (max_tokens required, stop_sequences, ...) */
int req_parse_anthropic(srv_server *srv, json_t *body, req_gen *g, srv_error *err);
void req_gen_free(req_gen *g);

/* Checks a prompt of N_PROMPT tokens against the context and settles
 * max_tokens: 400 naming PROMPT_FIELD when the prompt is empty or fills the
 * context, or naming the max_tokens field when prompt + max_tokens exceed
 * it; without max_tokens, the rest of the context (or --max-tokens-default). */
int req_fit_context(const srv_server *srv, int n_prompt, const char *prompt_field, req_gen *g, srv_error *err);

/* The engine parameters of choice CHOICE (its seed is the request's + CHOICE,
 * so the n choices differ but each repeats with the same seed). */
void req_params(const req_gen *g, const int32_t *prompt, int n_prompt, int choice, lm_request_params *p);

#endif
