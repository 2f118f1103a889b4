/* kv_cache.h - the paged K/V pool and its content-hashed prefix cache.
 *
 * The pool is n_blocks fixed blocks of block_size positions; a block holds,
 * for every layer, block_size rows of keys and of values (f16):
 *   K(block, layer): (block_size, n_head_kv * head_dim)
 *   V(block, layer): (block_size, n_head_kv * head_dim_v)
 * Sequences own block tables (engine/sequence.h); the cache only counts
 * references. A full block may be registered under its content hash
 * H(parent hash, its token ids, extra keys): a later sequence with the same
 * prefix finds it (tokens are compared on every hit, as a guard against
 * collisions) and shares it. Blocks whose count drops to 0 go to the free
 * list: unregistered ones at the front (reused first), registered ones at the
 * back in LRU order, so cached prefixes are evicted only when needed.
 *
 * Invariant (checked by kv_cache_check): free + in use = n_blocks, where the
 * free list holds exactly the blocks with ref_count 0. Not thread-safe: the
 * engine thread alone uses it. */
#ifndef LAMINA_ENGINE_KV_CACHE_H
#define LAMINA_ENGINE_KV_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/fp16.h"
#include "model/model.h"

typedef struct kv_hash {
    uint64_t lo, hi; /* XXH3-128 */
} kv_hash;

typedef struct kv_cache kv_cache;

/* NULL on allocation failure. HOST_DATA: the blocks' K/V live in host
 * memory (kv_k / kv_v); without it the cache only manages block indices
 * whose data lives elsewhere (the GPU's pool), and kv_k / kv_v return NULL. */
kv_cache *kv_cache_create(const lm_hparams *hp, int block_size, int n_blocks, bool host_data);
void kv_cache_free(kv_cache *kv);
/* bytes one block takes (all layers, K and V) */
size_t kv_block_bytes(const lm_hparams *hp, int block_size);

int kv_block_size(const kv_cache *kv);
int kv_n_blocks(const kv_cache *kv);
int kv_n_free(const kv_cache *kv);    /* ref_count 0, cached or not */
int kv_n_cached(const kv_cache *kv);  /* free blocks still registered */

/* Takes a free block (ref_count 1), evicting the least recently freed cached
 * block if no uncached one is left. -1 when every block is in use. */
int kv_alloc(kv_cache *kv);
void kv_ref(kv_cache *kv, int block);
/* drops a reference; at 0 the block joins the free list */
void kv_unref(kv_cache *kv, int block);

/* hash of a full block of tokens after PARENT (parent of the first block:
 * kv_hash_seed(salt)) */
kv_hash kv_hash_seed(uint64_t salt);
kv_hash kv_hash_block(kv_hash parent, const int32_t *tokens, int n);

/* The registered block with this hash and these tokens (block_size of
 * them), or -1. A hit takes a reference (reviving a free block). */
int kv_lookup(kv_cache *kv, kv_hash h, const int32_t *tokens);
/* Registers a full block under h (no-op if some block already holds h). */
void kv_register(kv_cache *kv, int block, kv_hash h, const int32_t *tokens);

lm_fp16 *kv_k(kv_cache *kv, int block, int layer);
lm_fp16 *kv_v(kv_cache *kv, int block, int layer);

/* 0 if the free list and the reference counts agree, else -1 */
int kv_cache_check(const kv_cache *kv);

#endif
