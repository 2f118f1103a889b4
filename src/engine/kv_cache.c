#include "engine/kv_cache.h"

#include <stdlib.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

typedef struct kv_block {
    int ref_count;
    bool registered;     /* holds content findable by hash */
    kv_hash hash;
    int prev, next;      /* free list links (-1 = none); valid while ref_count == 0 */
    int hash_next;       /* bucket chain (-1 = end); valid while registered */
} kv_block;

struct kv_cache {
    int block_size, n_blocks, n_layer;
    size_t k_layer, v_layer;   /* f16 elements of one layer's K (V) in a block */
    size_t block_elems;        /* f16 elements of one block (all layers, K and V) */
    lm_fp16 *data;             /* (n_blocks, block_elems) */
    kv_block *blocks;          /* (n_blocks) */
    int32_t *tokens;           /* (n_blocks, block_size) token ids of registered blocks */
    int free_head, free_tail, n_free, n_cached;
    int *buckets;              /* (n_buckets) hash chains */
    uint32_t bucket_mask;
};

size_t kv_block_bytes(const lm_hparams *hp, int block_size) {
    size_t per_pos = (size_t)hp->n_head_kv * (hp->head_dim + hp->head_dim_v);
    return (size_t)hp->n_layer * block_size * per_pos * sizeof(lm_fp16);
}

static void list_remove(kv_cache *kv, int b) {
    kv_block *k = &kv->blocks[b];
    if (k->prev >= 0) kv->blocks[k->prev].next = k->next;
    else kv->free_head = k->next;
    if (k->next >= 0) kv->blocks[k->next].prev = k->prev;
    else kv->free_tail = k->prev;
    k->prev = k->next = -1;
    kv->n_free--;
    if (k->registered) kv->n_cached--;
}

static void list_push(kv_cache *kv, int b, bool front) {
    kv_block *k = &kv->blocks[b];
    if (front) {
        k->prev = -1;
        k->next = kv->free_head;
        if (kv->free_head >= 0) kv->blocks[kv->free_head].prev = b;
        else kv->free_tail = b;
        kv->free_head = b;
    } else {
        k->next = -1;
        k->prev = kv->free_tail;
        if (kv->free_tail >= 0) kv->blocks[kv->free_tail].next = b;
        else kv->free_head = b;
        kv->free_tail = b;
    }
    kv->n_free++;
    if (k->registered) kv->n_cached++;
}

kv_cache *kv_cache_create(const lm_hparams *hp, int block_size, int n_blocks, bool host_data) {
    kv_cache *kv = calloc(1, sizeof(*kv));
    if (!kv || block_size < 1 || n_blocks < 1) {
        free(kv);
        return NULL;
    }
    kv->block_size = block_size;
    kv->n_blocks = n_blocks;
    kv->n_layer = hp->n_layer;
    kv->k_layer = (size_t)block_size * hp->n_head_kv * hp->head_dim;
    kv->v_layer = (size_t)block_size * hp->n_head_kv * hp->head_dim_v;
    kv->block_elems = (size_t)hp->n_layer * (kv->k_layer + kv->v_layer);
    kv->data = host_data ? malloc((size_t)n_blocks * kv->block_elems * sizeof(lm_fp16)) : NULL;
    kv->blocks = calloc((size_t)n_blocks, sizeof(kv_block));
    kv->tokens = malloc((size_t)n_blocks * block_size * sizeof(int32_t));
    uint32_t n_buckets = 1;
    while (n_buckets < (uint32_t)n_blocks * 2) n_buckets <<= 1;
    kv->buckets = malloc(n_buckets * sizeof(int));
    kv->bucket_mask = n_buckets - 1;
    if ((host_data && !kv->data) || !kv->blocks || !kv->tokens || !kv->buckets) {
        kv_cache_free(kv);
        return NULL;
    }
    for (uint32_t i = 0; i < n_buckets; i++) kv->buckets[i] = -1;
    kv->free_head = kv->free_tail = -1;
    for (int b = 0; b < n_blocks; b++) list_push(kv, b, false);
    return kv;
}

void kv_cache_free(kv_cache *kv) {
    if (!kv) return;
    free(kv->data);
    free(kv->blocks);
    free(kv->tokens);
    free(kv->buckets);
    free(kv);
}

int kv_block_size(const kv_cache *kv) { return kv->block_size; }
int kv_n_blocks(const kv_cache *kv) { return kv->n_blocks; }
int kv_n_free(const kv_cache *kv) { return kv->n_free; }
int kv_n_cached(const kv_cache *kv) { return kv->n_cached; }

static uint32_t bucket_of(const kv_cache *kv, kv_hash h) { return (uint32_t)h.lo & kv->bucket_mask; }

static void unregister(kv_cache *kv, int b) {
    kv_block *k = &kv->blocks[b];
    int *link = &kv->buckets[bucket_of(kv, k->hash)];
    while (*link != b) link = &kv->blocks[*link].hash_next;
    *link = k->hash_next;
    k->registered = false;
}

int kv_alloc(kv_cache *kv) {
    int b = kv->free_head;
    if (b < 0) return -1;
    list_remove(kv, b);
    if (kv->blocks[b].registered) unregister(kv, b); /* evict the cached content */
    kv->blocks[b].ref_count = 1;
    return b;
}

void kv_ref(kv_cache *kv, int block) {
    kv_block *k = &kv->blocks[block];
    if (k->ref_count++ == 0) list_remove(kv, block);
}

void kv_unref(kv_cache *kv, int block) {
    kv_block *k = &kv->blocks[block];
    if (--k->ref_count == 0) list_push(kv, block, !k->registered);
}

kv_hash kv_hash_seed(uint64_t salt) {
    XXH128_hash_t h = XXH3_128bits_withSeed("lamina-kv", 9, salt);
    return (kv_hash){h.low64, h.high64};
}

kv_hash kv_hash_block(kv_hash parent, const int32_t *tokens, int n) {
    XXH3_state_t state;
    XXH3_128bits_reset(&state);
    XXH3_128bits_update(&state, &parent, sizeof(parent));
    XXH3_128bits_update(&state, tokens, (size_t)n * sizeof(int32_t));
    XXH128_hash_t h = XXH3_128bits_digest(&state);
    return (kv_hash){h.low64, h.high64};
}

static int find(const kv_cache *kv, kv_hash h) {
    for (int b = kv->buckets[bucket_of(kv, h)]; b >= 0; b = kv->blocks[b].hash_next)
        if (kv->blocks[b].hash.lo == h.lo && kv->blocks[b].hash.hi == h.hi) return b;
    return -1;
}

int kv_lookup(kv_cache *kv, kv_hash h, const int32_t *tokens) {
    int b = find(kv, h);
    if (b < 0) return -1;
    if (memcmp(kv->tokens + (size_t)b * kv->block_size, tokens, sizeof(int32_t) * kv->block_size) != 0)
        return -1; /* a hash collision: not the same content */
    kv_ref(kv, b);
    return b;
}

void kv_register(kv_cache *kv, int block, kv_hash h, const int32_t *tokens) {
    kv_block *k = &kv->blocks[block];
    if (k->registered || find(kv, h) >= 0) return;
    k->registered = true;
    k->hash = h;
    memcpy(kv->tokens + (size_t)block * kv->block_size, tokens, sizeof(int32_t) * kv->block_size);
    uint32_t bucket = bucket_of(kv, h);
    k->hash_next = kv->buckets[bucket];
    kv->buckets[bucket] = block;
}

lm_fp16 *kv_k(kv_cache *kv, int block, int layer) {
    if (!kv->data) return NULL;
    return kv->data + (size_t)block * kv->block_elems + (size_t)layer * kv->k_layer;
}

lm_fp16 *kv_v(kv_cache *kv, int block, int layer) {
    if (!kv->data) return NULL;
    return kv->data + (size_t)block * kv->block_elems + (size_t)kv->n_layer * kv->k_layer +
           (size_t)layer * kv->v_layer;
}

int kv_cache_check(const kv_cache *kv) {
    int n_list = 0, n_zero = 0, n_cached = 0;
    for (int b = kv->free_head; b >= 0 && n_list <= kv->n_blocks; b = kv->blocks[b].next) {
        if (kv->blocks[b].ref_count != 0) return -1;
        n_cached += kv->blocks[b].registered;
        n_list++;
    }
    for (int b = 0; b < kv->n_blocks; b++) {
        if (kv->blocks[b].ref_count < 0) return -1;
        n_zero += kv->blocks[b].ref_count == 0;
    }
    return n_list == n_zero && n_list == kv->n_free && n_cached == kv->n_cached ? 0 : -1;
}
