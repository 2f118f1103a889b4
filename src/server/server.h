/* server.h - `lamina serve`: OpenAI- and Anthropic-compatible HTTP API over
 * the engine (libmicrohttpd, one thread per connection).
 *
 * The caller loads the model, the vocabulary and the chat template, creates
 * the engine, and hands them to server_run(), which serves until SIGINT or
 * SIGTERM, drains in-flight requests within the grace period and returns. */
#ifndef LAMINA_SERVER_H
#define LAMINA_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/engine.h"

typedef struct srv_template srv_template;

typedef struct srv_config {
    const char *host;        /* address to listen on: "127.0.0.1", "::1", "0.0.0.0" */
    int port;                /* 0 = any free port (the start line says which) */
    const char *api_key;     /* NULL = no authentication */
    const char *served_name; /* the model id of /v1/models */
    const char *model_path;
    const char *cors_origin; /* NULL = no CORS headers */
    bool log_json;           /* request log lines as JSON objects (else text) */
    bool strict_model;       /* 404 for a "model" other than served_name */
    size_t max_body_bytes;   /* larger request bodies get 413 */
    size_t max_header_bytes; /* larger request headers (with the URL) get 431 */
    int max_connections;     /* open connections beyond it get 503 and are closed */
    int max_messages;        /* chat messages per request (400 beyond) */
    int read_timeout_s;      /* a whole request must arrive within this (408 / closed) */
    int idle_timeout_s;      /* a connection silent this long is closed */
    int request_timeout_s;   /* generation time per request; 0 = unbounded (504 / error event) */
    int max_tokens_default;  /* when a request gives none; 0 = the rest of the context */
    int shutdown_grace_s;    /* seconds in-flight requests may finish after SIGINT/SIGTERM */
    int n_ctx;               /* tokens of one sequence (the engine's) */
} srv_config;

/* Blocks SIGINT, SIGTERM (and ignores SIGPIPE) in the calling thread, so that
 * every thread created afterwards inherits the mask and server_run() alone
 * receives them. Call it before engine_create(). */
void server_block_signals(void);

/* Serves until SIGINT/SIGTERM. The engine, vocab and template are borrowed.
 * Returns the process exit code (0 after a clean shutdown, 1 if it could not
 * listen; the reason goes to stderr). */
int server_run(const srv_config *cfg, lm_engine *engine, const tok_vocab *vocab, const srv_template *tmpl);

#endif
