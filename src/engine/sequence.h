/* sequence.h - one request as the engine thread sees it.
 *
 * A sequence owns its tokens (prompt, then generated), its block table in
 * the paged cache, its sampler and its output state (streaming detokenizer,
 * text held back while it may still become a stop string). Only the engine
 * thread touches a sequence. */
#ifndef LAMINA_ENGINE_SEQUENCE_H
#define LAMINA_ENGINE_SEQUENCE_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/engine.h"
#include "engine/kv_cache.h"

typedef struct lm_seq {
    struct lm_handle *handle;
    int32_t *tokens;        /* (cap) prompt then generated */
    int n_tokens, cap;
    int n_prompt;
    int n_computed;         /* tokens whose K/V are in the cache */
    int *blocks;            /* block table: logical block -> pool block, (max_blocks) */
    int n_blocks, max_blocks;
    int n_registered;       /* leading full blocks registered in the prefix cache */
    kv_hash chain;          /* hash of the last registered block (or the seed) */
    int cached_tokens;      /* prompt tokens found in the prefix cache at admission */
    bool admitted;          /* prefix lookup done */
    int n_generated;
    int max_tokens;
    bool ignore_eos;
    int top_logprobs;       /* -1: none */
    uint64_t cache_salt;
    char **stops;
    int n_stops;
    size_t max_stop_len;
    lm_sampler *sampler;
    tok_stream stream;
    char *held;             /* decoded text not yet sent: might begin a stop string */
    size_t n_held, held_cap;
    uint64_t order;         /* submission order: FCFS and "newest" for preemption */
} lm_seq;

/* copies everything from params; NULL on allocation failure */
lm_seq *seq_create(const lm_request_params *params, int n_ctx, int block_size, int n_vocab);
void seq_free(lm_seq *s);
/* returns every block to the cache and forgets what was computed (preemption, finish) */
void seq_release_blocks(lm_seq *s, kv_cache *kv);

/* Appends the text of TOKEN and decides what can be sent now. Writes the
 * sendable text to *out (malloc'd, NUL-terminated, *out_len bytes) and
 * returns the stop string that ended the text (the text before it is sent,
 * it and anything after is dropped), or NULL. */
const char *seq_push_text(lm_seq *s, const tok_vocab *vocab, int32_t token, char **out, size_t *out_len);
/* the held-back text at the end of a sequence (not stopped by a string) */
void seq_flush_text(lm_seq *s, char **out, size_t *out_len);

#endif
