/* session.h - a model ready to run in this process, for the local commands
 * (generate, chat): weights, vocabulary, thread pool, forward scratch and a
 * one-sequence K/V store. */
#ifndef LAMINA_CLI_SESSION_H
#define LAMINA_CLI_SESSION_H

#include "base/error.h"
#include "model/forward_cuda.h"
#include "model/kv_contig.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

typedef struct cli_session {
    const char *path;
    lm_model *model;
    tok_vocab *vocab;
    tp_pool *pool;
    lm_forward *fw;
    kv_contig *kv_store;
    lm_kv kv;
    lm_forward_cuda *gpu;   /* instead of fw and kv_store with a device (cli_session_open_on) */
    int *gpu_table;         /* the sequence's blocks: 0, 1, 2, ... */
    int gpu_blocks;
    int n_ctx;      /* tokens */
    int n_threads;
    float *logits;  /* (n_vocab) of the last evaluated token */
} cli_session;

/* Loads PATH (weights touched once, with a progress bar on a terminal) for a
 * context of n_ctx tokens (0: min(train context, 4096)). 0, or -1 + err;
 * cli_session_close() is safe after either. */
int cli_session_open(cli_session *s, const char *path, int n_ctx, int n_threads, lm_error *err);
/* the same with the forward pass on CUDA device GPU (-1: the CPU), with its
 * batch-invariant kernels if BATCH_INVARIANT */
int cli_session_open_on(cli_session *s, const char *path, int n_ctx, int n_threads, int gpu, bool batch_invariant,
                        lm_error *err);
/* "--device cpu|cuda|cuda:N" -> -1 or the device index; -2 (message printed) if bad or not compiled in */
int cli_parse_device(const char *cmd, const char *value);
void cli_session_close(cli_session *s);

/* Evaluates tokens[start..n) at positions start.. (the cache must hold
 * 0..start); s->logits gets the logits of tokens[n-1]. */
int cli_session_eval(cli_session *s, const int32_t *tokens, int start, int n, lm_error *err);

/* The chat template: the file at override_path if given, else the model's
 * tokenizer.chat_template. malloc'd; NULL + err if there is none. */
char *cli_template_source(const cli_session *s, const char *override_path, lm_error *err);

/* Renders MESSAGES (JSON array) with the template SRC and the generation
 * prompt. malloc'd; NULL + err. */
char *cli_render_chat(const cli_session *s, const char *src, const void *messages_json, lm_error *err);

#endif
