/* engine.h - the serving engine: many requests share every forward pass.
 *
 * One engine thread owns all engine state (scheduler, paged K/V cache,
 * sequences). Other threads (HTTP handlers) only call the functions below:
 * engine_submit() queues a request and returns a handle; the handle's events
 * (tokens with their text, then one final DONE or ERROR) are read with
 * engine_next_event(); engine_abort() cancels it (its K/V blocks are freed
 * by the engine thread at once). Every handle is released exactly once with
 * engine_release(), after its final event or after engine_abort(). */
#ifndef LAMINA_ENGINE_H
#define LAMINA_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "engine/sampler.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

typedef enum lm_device { LM_DEVICE_CPU = 0, LM_DEVICE_CUDA = 1 } lm_device;

typedef struct lm_engine_config {
    lm_device device;           /* where the forward pass and the K/V pool live */
    int gpu_index;              /* CUDA device (device == LM_DEVICE_CUDA) */
    float gpu_memory_utilization; /* share of the GPU's memory for weights + K/V + scratch (0 = 0.9) */
    int n_threads;              /* kernel threads */
    int n_ctx;                  /* max tokens of one sequence (prompt + generated) */
    int max_num_seqs;           /* running sequences per step */
    int max_num_batched_tokens; /* tokens per step (decodes + prefill chunks) */
    int max_queue;              /* waiting requests beyond which submit fails (queue full) */
    int block_size;             /* tokens per K/V block */
    size_t kv_cache_bytes;      /* K/V pool size; 0 = default (CUDA: what gpu_memory_utilization leaves) */
    bool prefix_cache;          /* reuse cached blocks of equal prefixes */
    bool gpu_batch_invariant;   /* CUDA: a request's tokens the same bits in any batch (slower batches);
                                 * the CPU's kernels always are */
} lm_engine_config;

/* defaults: threads = physical cores, ctx = min(train ctx, 4096), 64 seqs,
 * 2048 tokens/step, queue 256, block 16, pool for 4 full contexts, prefix cache on */
lm_engine_config lm_engine_config_default(const lm_model *model);

typedef struct lm_engine lm_engine;
typedef struct lm_handle lm_handle;

/* The engine borrows MODEL and VOCAB (they must outlive it) and starts its
 * thread. NULL + err on failure. */
lm_engine *engine_create(const lm_model *model, const tok_vocab *vocab, const lm_engine_config *cfg,
                         lm_error *err);
/* aborts everything still running, joins the thread, frees the engine (all
 * handles must have been released) */
void engine_free(lm_engine *e);

typedef struct lm_request_params {
    const int32_t *prompt;      /* (n_prompt) token ids, copied by submit */
    int n_prompt;
    int max_tokens;             /* tokens to generate at most (>= 1) */
    lm_sampling sampling;
    const char *const *stop;    /* stop strings, copied by submit; the text stops before them */
    int n_stop;
    bool ignore_eos;            /* keep going past end-of-generation tokens */
    int top_logprobs;           /* 0..20: alternatives reported per token; -1: no logprobs at all */
    uint64_t cache_salt;        /* mixed into the prefix-cache hash (0 = none) */
} lm_request_params;

typedef enum lm_submit_status {
    LM_SUBMIT_OK = 0,
    LM_SUBMIT_INVALID = 1,      /* bad parameters (message in err): a 400 */
    LM_SUBMIT_TOO_LONG = 2,     /* prompt + max_tokens exceed the context: a 400 */
    LM_SUBMIT_QUEUE_FULL = 3,   /* a 503 / 529 */
    LM_SUBMIT_SHUTTING_DOWN = 4,
} lm_submit_status;

/* Queues a request; *out receives the handle on LM_SUBMIT_OK. */
lm_submit_status engine_submit(lm_engine *e, const lm_request_params *params, lm_handle **out, lm_error *err);

typedef enum lm_event_kind { LM_EVENT_TOKEN, LM_EVENT_DONE, LM_EVENT_ERROR } lm_event_kind;
typedef enum lm_finish_reason { LM_FINISH_STOP, LM_FINISH_LENGTH, LM_FINISH_ABORT } lm_finish_reason;

#define LM_MAX_TOP_LOGPROBS 20

typedef struct lm_event {
    lm_event_kind kind;
    /* TOKEN: one generated token and the text it completes (may be empty
     * while a UTF-8 character or a possible stop string is held back) */
    int32_t token;
    char *text;                 /* NUL-terminated, owned by the event: lm_event_clear() frees it */
    size_t text_len;
    float logprob;              /* of the chosen token (if logprobs were asked) */
    int n_top;
    int32_t top_ids[LM_MAX_TOP_LOGPROBS];
    float top_logprobs[LM_MAX_TOP_LOGPROBS];
    /* DONE */
    lm_finish_reason finish;
    int stop_index;             /* index in params.stop of the stop string that ended it, -1 if none */
    bool stopped_by_eos;
    int prompt_tokens;
    int completion_tokens;
    int cached_tokens;          /* prompt tokens served from the prefix cache */
    /* ERROR: message */
    char error[256];
} lm_event;

/* Waits for the handle's next event (timeout_ms < 0: forever).
 * Returns 1 with *ev filled, 0 on timeout. After DONE/ERROR no more events come. */
int engine_next_event(lm_handle *h, lm_event *ev, int timeout_ms);
void lm_event_clear(lm_event *ev);

/* Cancels the request (idempotent); its blocks are freed by the engine at
 * the next step. Events already queued are dropped. */
void engine_abort(lm_handle *h);
/* gives the handle back; aborts it first if it has not finished */
void engine_release(lm_handle *h);

typedef struct lm_engine_stats {
    int waiting;                /* requests queued */
    int running;                /* sequences in the running set */
    int kv_blocks_total;
    int kv_blocks_used;         /* referenced by a sequence */
    int kv_blocks_cached;       /* free but holding a reusable prefix */
    bool kv_audit_failed;       /* once idle, the free list disagreed with the reference counts */
    uint64_t prefix_hit_tokens; /* prompt tokens served from the cache, total */
    uint64_t prompt_tokens;     /* prompt tokens submitted, total */
    uint64_t generated_tokens;  /* tokens generated, total */
    uint64_t preemptions;
    uint64_t steps;
} lm_engine_stats;

void engine_stats(lm_engine *e, lm_engine_stats *out);
/* the configuration in force (defaults filled in: kv_cache_bytes is the pool's size) */
const lm_engine_config *engine_config(const lm_engine *e);
/* the GPU's name when the engine runs on CUDA, else NULL */
const char *engine_gpu_name(const lm_engine *e);

#endif
