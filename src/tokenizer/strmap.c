/* strmap.c - string -> int32 hash map for token texts and BPE merges.
 *
 * Open addressing with linear probing over a power-of-two slot table sized
 * once for the expected number of keys (load <= 1/2); the keys are copied
 * into one growing arena and hashed with XXH3. Lookups never allocate. */
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "tokenizer/tok_internal.h"

int tok_strmap_init(tok_strmap *m, uint32_t expected_n) {
    memset(m, 0, sizeof(*m));
    uint32_t n_slots = 16;
    while (n_slots < 2u * expected_n + 2u && n_slots < (1u << 31)) n_slots <<= 1;
    m->slots = calloc(n_slots, sizeof(uint32_t));
    m->cap = expected_n ? expected_n : 1;
    m->key_off = malloc(m->cap * sizeof(uint32_t));
    m->key_len = malloc(m->cap * sizeof(uint32_t));
    m->value = malloc(m->cap * sizeof(int32_t));
    if (!m->slots || !m->key_off || !m->key_len || !m->value) {
        tok_strmap_free(m);
        return -1;
    }
    m->mask = n_slots - 1;
    return 0;
}

void tok_strmap_free(tok_strmap *m) {
    free(m->slots);
    free(m->key_off);
    free(m->key_len);
    free(m->value);
    free(m->arena);
    memset(m, 0, sizeof(*m));
}

/* the slot holding KEY, or the empty slot where it would go */
static uint32_t find_slot(const tok_strmap *m, const char *key, size_t len) {
    uint32_t i = (uint32_t)XXH3_64bits(key, len) & m->mask;
    for (;;) {
        uint32_t e = m->slots[i];
        if (e == 0) return i;
        e--;
        if (m->key_len[e] == len && memcmp(m->arena + m->key_off[e], key, len) == 0) return i;
        i = (i + 1) & m->mask;
    }
}

int tok_strmap_put(tok_strmap *m, const char *key, size_t len, int32_t value, bool overwrite) {
    uint32_t slot = find_slot(m, key, len);
    if (m->slots[slot]) {
        if (overwrite) m->value[m->slots[slot] - 1] = value;
        return 0;
    }
    /* the table was sized for expected_n keys; refuse to pass half load */
    if (m->n >= m->cap || (uint64_t)(m->n + 1) * 2 > (uint64_t)m->mask + 1) return -1;
    if (len > UINT32_MAX || m->arena_len + len > UINT32_MAX) return -1;
    if (m->arena_len + len > m->arena_cap) {
        size_t cap = m->arena_cap ? m->arena_cap : 4096;
        while (cap < m->arena_len + len) cap *= 2;
        char *arena = realloc(m->arena, cap);
        if (!arena) return -1;
        m->arena = arena;
        m->arena_cap = cap;
    }
    memcpy(m->arena + m->arena_len, key, len);
    m->key_off[m->n] = (uint32_t)m->arena_len;
    m->key_len[m->n] = (uint32_t)len;
    m->value[m->n] = value;
    m->arena_len += len;
    m->n++;
    m->slots[slot] = m->n;
    return 0;
}

int32_t tok_strmap_get(const tok_strmap *m, const char *key, size_t len) {
    if (!m->slots) return -1;
    uint32_t e = m->slots[find_slot(m, key, len)];
    return e ? m->value[e - 1] : -1;
}
