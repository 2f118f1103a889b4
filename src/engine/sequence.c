#define _GNU_SOURCE /* memmem */
#include "engine/sequence.h"

#include <stdlib.h>
#include <string.h>

lm_seq *seq_create(const lm_request_params *p, int n_ctx, int block_size, int n_vocab) {
    lm_seq *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    s->cap = n_ctx;
    s->tokens = malloc(sizeof(int32_t) * (size_t)n_ctx);
    s->max_blocks = (n_ctx + block_size - 1) / block_size;
    s->blocks = malloc(sizeof(int) * (size_t)s->max_blocks);
    s->sampler = lm_sampler_create(&p->sampling, n_vocab);
    s->held_cap = 256;
    s->held = malloc(s->held_cap);
    s->stops = calloc((size_t)(p->n_stop > 0 ? p->n_stop : 1), sizeof(char *));
    if (!s->tokens || !s->blocks || !s->sampler || !s->held || !s->stops) {
        seq_free(s);
        return NULL;
    }
    for (int i = 0; i < p->n_stop; i++) {
        s->stops[i] = strdup(p->stop[i]);
        if (!s->stops[i]) {
            seq_free(s);
            return NULL;
        }
        s->n_stops++;
        size_t len = strlen(p->stop[i]);
        if (len > s->max_stop_len) s->max_stop_len = len;
    }
    memcpy(s->tokens, p->prompt, sizeof(int32_t) * (size_t)p->n_prompt);
    s->n_tokens = s->n_prompt = p->n_prompt;
    s->max_tokens = p->max_tokens;
    s->ignore_eos = p->ignore_eos;
    s->top_logprobs = p->top_logprobs;
    s->cache_salt = p->cache_salt;
    s->chain = kv_hash_seed(p->cache_salt);
    for (int i = 0; i < p->n_prompt; i++) lm_sampler_accept(s->sampler, p->prompt[i]);
    tok_stream_init(&s->stream);
    return s;
}

void seq_free(lm_seq *s) {
    if (!s) return;
    for (int i = 0; i < s->n_stops; i++) free(s->stops[i]);
    free(s->stops);
    lm_sampler_free(s->sampler);
    free(s->held);
    free(s->blocks);
    free(s->tokens);
    free(s);
}

void seq_release_blocks(lm_seq *s, kv_cache *kv) {
    for (int i = 0; i < s->n_blocks; i++) kv_unref(kv, s->blocks[i]);
    s->n_blocks = 0;
    s->n_computed = 0;
    s->n_registered = 0;
    s->chain = kv_hash_seed(s->cache_salt);
}

static int held_append(lm_seq *s, const char *text, size_t n) {
    if (s->n_held + n + 1 > s->held_cap) {
        size_t cap = (s->n_held + n + 1) * 2;
        char *p = realloc(s->held, cap);
        if (!p) return -1;
        s->held = p;
        s->held_cap = cap;
    }
    memcpy(s->held + s->n_held, text, n);
    s->n_held += n;
    s->held[s->n_held] = '\0';
    return 0;
}

/* moves the first n held bytes to a new string */
static void take_held(lm_seq *s, size_t n, char **out, size_t *out_len) {
    *out = malloc(n + 1);
    if (*out) {
        memcpy(*out, s->held, n);
        (*out)[n] = '\0';
        *out_len = n;
    } else {
        *out_len = 0;
    }
    memmove(s->held, s->held + n, s->n_held - n);
    s->n_held -= n;
    s->held[s->n_held] = '\0';
}

/* the longest tail of the held text that is a proper prefix of a stop string */
static size_t stop_prefix_tail(const lm_seq *s) {
    size_t best = 0;
    for (int i = 0; i < s->n_stops; i++) {
        size_t len = strlen(s->stops[i]);
        if (len == 0) continue;
        for (size_t k = len - 1 < s->n_held ? len - 1 : s->n_held; k > best; k--)
            if (!memcmp(s->held + s->n_held - k, s->stops[i], k)) {
                best = k;
                break;
            }
    }
    return best;
}

const char *seq_push_text(lm_seq *s, const tok_vocab *vocab, int32_t token, char **out, size_t *out_len) {
    char piece[256];
    int n = tok_stream_push(vocab, &s->stream, token, piece, (int)sizeof(piece));
    if (n > (int)sizeof(piece)) { /* a long token: nothing was written or consumed, push it again */
        char *big = malloc((size_t)n);
        int m = big ? tok_stream_push(vocab, &s->stream, token, big, n) : -1;
        if (m > 0 && m <= n) held_append(s, big, (size_t)m);
        free(big);
        n = 0;
    }
    if (n > 0) held_append(s, piece, (size_t)n);
    /* the earliest stop string occurrence ends the text */
    const char *hit = NULL;
    size_t hit_at = s->n_held;
    for (int i = 0; i < s->n_stops; i++) {
        if (!s->stops[i][0]) continue;
        const char *p = memmem(s->held, s->n_held, s->stops[i], strlen(s->stops[i]));
        if (p && (size_t)(p - s->held) < hit_at) {
            hit_at = (size_t)(p - s->held);
            hit = s->stops[i];
        }
    }
    if (hit) {
        take_held(s, hit_at, out, out_len);
        s->n_held = 0;
        return hit;
    }
    take_held(s, s->n_held - stop_prefix_tail(s), out, out_len);
    return NULL;
}

void seq_flush_text(lm_seq *s, char **out, size_t *out_len) {
    char tail[16];
    int n = tok_stream_flush(&s->stream, tail, (int)sizeof(tail));
    if (n > 0) held_append(s, tail, (size_t)n);
    take_held(s, s->n_held, out, out_len);
}
