/* test_kv_cache.c - block accounting, LRU eviction and prefix hits of the
 * paged K/V pool (src/engine/kv_cache.c). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "engine/kv_cache.h"

static lm_hparams tiny_hparams(void) {
    lm_hparams hp;
    memset(&hp, 0, sizeof(hp));
    hp.n_layer = 2;
    hp.n_head_kv = 2;
    hp.head_dim = 8;
    hp.head_dim_v = 8;
    return hp;
}

static void test_alloc_free(void) {
    lm_hparams hp = tiny_hparams();
    kv_cache *kv = kv_cache_create(&hp, 4, 8, true);
    CHECK(kv && kv_n_free(kv) == 8, "fresh pool: all free");
    int got[9];
    for (int i = 0; i < 8; i++) got[i] = kv_alloc(kv);
    got[8] = kv_alloc(kv);
    CHECK(got[8] == -1, "a full pool refuses");
    CHECK(kv_n_free(kv) == 0 && kv_cache_check(kv) == 0, "accounting when full");
    for (int i = 0; i < 8; i++)
        for (int j = i + 1; j < 8; j++) CHECK(got[i] != got[j], "blocks %d and %d distinct", i, j);
    /* K and V regions of different blocks and layers never overlap */
    CHECK(kv_k(kv, got[0], 1) != kv_k(kv, got[0], 0) && kv_v(kv, got[0], 0) != kv_k(kv, got[0], 0),
          "distinct regions");
    memset(kv_v(kv, got[7], 1), 0xab, sizeof(lm_fp16) * 4 * 2 * 8); /* last region writable (ASan) */
    for (int i = 0; i < 8; i++) kv_unref(kv, got[i]);
    CHECK(kv_n_free(kv) == 8 && kv_cache_check(kv) == 0, "all back");
    kv_cache_free(kv);
}

/* a cache without host data (the GPU's pool) manages the same indices */
static void test_index_only(void) {
    lm_hparams hp = tiny_hparams();
    kv_cache *kv = kv_cache_create(&hp, 4, 3, false);
    CHECK(kv && kv_n_free(kv) == 3, "index-only pool: all free");
    const int a = kv_alloc(kv), b = kv_alloc(kv), c = kv_alloc(kv);
    CHECK(a >= 0 && b >= 0 && c >= 0 && a != b && b != c && a != c && kv_alloc(kv) == -1, "three distinct, then none");
    CHECK(kv_k(kv, a, 0) == NULL && kv_v(kv, a, 1) == NULL, "no host data to point at");
    const int32_t toks[4] = {1, 2, 3, 4};
    kv_hash h = kv_hash_block(kv_hash_seed(0), toks, 4);
    kv_register(kv, a, h, toks);
    kv_unref(kv, a);
    CHECK(kv_lookup(kv, h, toks) == a, "prefix hits work without data");
    kv_unref(kv, a);
    kv_unref(kv, b);
    kv_unref(kv, c);
    CHECK(kv_n_free(kv) == 3 && kv_cache_check(kv) == 0, "all back");
    kv_cache_free(kv);
}

static void test_prefix_hits_and_lru(void) {
    lm_hparams hp = tiny_hparams();
    kv_cache *kv = kv_cache_create(&hp, 4, 4, true);
    int32_t a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8}, c[4] = {9, 9, 9, 9};
    kv_hash seed = kv_hash_seed(0);
    kv_hash ha = kv_hash_block(seed, a, 4), hb = kv_hash_block(ha, b, 4);
    int ba = kv_alloc(kv), bb = kv_alloc(kv);
    kv_register(kv, ba, ha, a);
    kv_register(kv, bb, hb, b);
    CHECK(kv_lookup(kv, ha, a) == ba, "hit while in use");
    kv_unref(kv, ba); /* the lookup's reference */
    kv_unref(kv, ba);
    kv_unref(kv, bb);
    CHECK(kv_n_free(kv) == 4 && kv_n_cached(kv) == 2 && kv_cache_check(kv) == 0, "freed blocks stay cached");
    /* the same block content under another parent is another hash */
    CHECK(kv_lookup(kv, kv_hash_block(seed, b, 4), b) == -1, "hash includes the parent");
    CHECK(kv_hash_block(kv_hash_seed(1), a, 4).lo != ha.lo, "salt changes the hash");
    /* collision guard: right hash, other tokens */
    CHECK(kv_lookup(kv, ha, c) == -1, "token mismatch is a miss");
    /* uncached blocks are used before cached ones are evicted */
    int x = kv_alloc(kv), y = kv_alloc(kv);
    CHECK(x != ba && x != bb && y != ba && y != bb, "uncached first");
    CHECK(kv_n_cached(kv) == 2, "cache intact");
    /* then the least recently freed cached block goes first (ba was freed before bb) */
    int z = kv_alloc(kv);
    CHECK(z == ba, "LRU eviction takes the oldest");
    CHECK(kv_lookup(kv, ha, a) == -1, "evicted content is gone");
    int w = kv_lookup(kv, hb, b);
    CHECK(w == bb && kv_n_free(kv) == 0, "revive a cached free block");
    kv_unref(kv, x);
    kv_unref(kv, y);
    kv_unref(kv, z);
    kv_unref(kv, w);
    CHECK(kv_cache_check(kv) == 0 && kv_n_free(kv) == 4, "accounting at the end");
    kv_cache_free(kv);
}

static void test_random_ops(void) {
    lm_hparams hp = tiny_hparams();
    kv_cache *kv = kv_cache_create(&hp, 2, 32, true);
    int held[64], n_held = 0;
    srand(7);
    for (int it = 0; it < 20000; it++) {
        int op = rand() % 3;
        if (op == 0 && n_held < 64) {
            int b = kv_alloc(kv);
            if (b >= 0) {
                int32_t toks[2] = {rand() % 4, rand() % 4};
                kv_register(kv, b, kv_hash_block(kv_hash_seed(0), toks, 2), toks);
                held[n_held++] = b;
            }
        } else if (op == 1 && n_held > 0) {
            int i = rand() % n_held;
            kv_unref(kv, held[i]);
            held[i] = held[--n_held];
        } else {
            int32_t toks[2] = {rand() % 4, rand() % 4};
            int b = kv_lookup(kv, kv_hash_block(kv_hash_seed(0), toks, 2), toks);
            if (b >= 0 && n_held < 64) held[n_held++] = b;
            else if (b >= 0) kv_unref(kv, b);
        }
        if (kv_cache_check(kv) != 0) {
            CHECK(0, "accounting broken at op %d", it);
            break;
        }
    }
    while (n_held > 0) kv_unref(kv, held[--n_held]);
    CHECK(kv_n_free(kv) == 32 && kv_cache_check(kv) == 0, "no block lost in 20000 random ops");
    kv_cache_free(kv);
}

int main(void) {
    test_alloc_free();
    test_index_only();
    test_prefix_hits_and_lru();
    test_random_ops();
    return check_done("kv cache");
}
