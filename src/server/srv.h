/* srv.h - what the server's modules share: the server object, one HTTP
 * request as a handler sees it, the handler's reply, and errors as values.
 *
 * Handlers never see libmicrohttpd: http.c reads the request (headers, body,
 * auth, size limit), calls the route's handler, and turns its srv_reply (a
 * JSON body or an SSE stream) or its srv_error (rendered in the route's API
 * shape, OpenAI or Anthropic) into the HTTP response. */
#ifndef LAMINA_SERVER_SRV_H
#define LAMINA_SERVER_SRV_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "engine/engine.h"
#include "server/server.h"

typedef struct conns conns;
typedef struct srv_metrics srv_metrics;
typedef struct srv_template srv_template;
typedef struct sse_stream sse_stream;

/* the running server; created by server_run, shared read-only by every
 * connection thread except for the atomics */
typedef struct srv_server {
    srv_config cfg;
    lm_engine *engine;
    const tok_vocab *vocab;
    const srv_template *tmpl;  /* the chat template */
    srv_metrics *metrics;
    conns *conns;              /* open connections: limit and read deadlines */
    char fingerprint[32];      /* system_fingerprint: "fp_" + hash of version and model */
    time_t started;            /* seconds since the epoch */
    uint64_t id_seed;          /* random, mixed into response ids */
    atomic_uint_fast64_t id_counter;
    atomic_int in_flight;      /* generation jobs alive */
    atomic_bool draining;      /* shutting down: refuse new work */
    atomic_bool cancel_all;    /* grace period over: abort what still runs */
} srv_server;

/* The API whose error shape a route answers in. */
typedef enum srv_api { SRV_API_OPENAI, SRV_API_ANTHROPIC } srv_api;

typedef enum srv_err_kind {
    SRV_ERR_INVALID,     /* 400 */
    SRV_ERR_AUTH,        /* 401 */
    SRV_ERR_NOT_FOUND,   /* 404 */
    SRV_ERR_METHOD,      /* 405 */
    SRV_ERR_TOO_LARGE,   /* 413 */
    SRV_ERR_HEADERS,     /* 431: request headers too large */
    SRV_ERR_SLOW_CLIENT, /* 408: the request did not arrive within --read-timeout */
    SRV_ERR_DEADLINE,    /* 504: generation ran past --request-timeout */
    SRV_ERR_OVERLOADED,  /* 503 (OpenAI) / 529 (Anthropic): queue full */
    SRV_ERR_UNAVAILABLE, /* 503: shutting down */
    SRV_ERR_CLIENT_GONE, /* 499 (nginx's "client closed request"): logged and counted, never received */
    SRV_ERR_INTERNAL,    /* 500 */
} srv_err_kind;

typedef struct srv_error {
    srv_err_kind kind;
    char param[96];    /* the request field at fault ("" = none) */
    char code[48];     /* OpenAI's machine-readable code ("" = null) */
    char message[512];
} srv_error;

/* fills e (param may be NULL) and returns -1, so handlers `return srv_fail(...)` */
int srv_fail(srv_error *e, srv_err_kind kind, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* HTTP status of an error kind in an API */
int srv_error_status(srv_err_kind kind, srv_api api);
/* the error body in the API's shape; malloc'd (NULL on allocation failure) */
char *srv_error_json(const srv_error *e, srv_api api);

typedef struct srv_request {
    srv_server *srv;
    const char *method;
    const char *path;     /* without the query string */
    const char *path_arg; /* the {id} of /v1/models/{id}, else NULL */
    const char *body;     /* (body_len) bytes, NUL-terminated; "" for none */
    size_t body_len;
    int fd;               /* the client socket, polled for hang-up while generating */
    srv_api api;
} srv_request;

typedef struct srv_reply {
    int status;               /* 0 = 200 */
    char *body;               /* malloc'd, owned by the reply (JSON unless content_type says) */
    const char *content_type; /* NULL = application/json */
    sse_stream *stream;       /* instead of body: an event stream */
    int prompt_tokens;        /* for the request log */
    int completion_tokens;
} srv_reply;

typedef int (*srv_handler)(srv_request *req, srv_reply *out, srv_error *err);

/* ---- helpers shared by the handlers (http.c) ---- */

/* parses the body as one JSON object; 400 naming the line/column otherwise.
 * The caller json_decref()s *out. */
int srv_parse_body(const srv_request *req, json_t **out, srv_error *err);
/* serializes OBJ (stolen) as the reply body; -1 + 500 on allocation failure */
int srv_reply_json(srv_reply *out, json_t *obj, srv_error *err);
/* the model name to echo: the request's "model" (any name unless
 * --strict-model, then it must equal the served name: 404) or the served name */
int srv_resolve_model(const srv_server *srv, json_t *body, const char **name, srv_error *err);
/* a fresh response id: PREFIX + 24 hex digits, into buf (cap >= strlen(prefix) + 25) */
void srv_new_id(srv_server *srv, const char *prefix, char *buf, size_t cap);
/* 64 random bits (seeds of requests that give none); thread-safe */
uint64_t srv_random(srv_server *srv);
/* a JSON string of LEN bytes of S with invalid UTF-8 replaced by U+FFFD (new reference) */
json_t *srv_json_text(const char *s, size_t len);

/* seconds on the monotonic clock */
double srv_now(void);
/* one line per finished request on stderr (text or JSON per --log-format);
 * NOTE may be NULL ("client disconnected", ...) */
void srv_log_request(const srv_server *srv, const char *method, const char *path, int status, double t_start,
                     int prompt_tokens, int completion_tokens, const char *note);

/* ---- handlers (one per route) ---- */
int h_health(srv_request *req, srv_reply *out, srv_error *err);
int h_metrics(srv_request *req, srv_reply *out, srv_error *err);
int h_models(srv_request *req, srv_reply *out, srv_error *err);
int h_model(srv_request *req, srv_reply *out, srv_error *err);
int h_chat_completions(srv_request *req, srv_reply *out, srv_error *err);
int h_completions(srv_request *req, srv_reply *out, srv_error *err);
int h_messages(srv_request *req, srv_reply *out, srv_error *err);
int h_count_tokens(srv_request *req, srv_reply *out, srv_error *err);
int h_tokenize(srv_request *req, srv_reply *out, srv_error *err);
int h_detokenize(srv_request *req, srv_reply *out, srv_error *err);

#endif
