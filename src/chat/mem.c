/* mem.c - bump arena and growable byte buffer (see mem.h). */
#include "chat/mem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_CHUNK_SIZE (64 * 1024) /* bytes; larger requests get their own chunk */
#define ARENA_ALIGN      16

struct arena_chunk {
    arena_chunk *next;
    size_t size; /* bytes of data[] */
    size_t used; /* bytes */
    _Alignas(ARENA_ALIGN) unsigned char data[];
};

void *arena_alloc(chat_arena *a, size_t n) {
    n = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (n == 0) n = ARENA_ALIGN;
    if (a->limit && (n > a->limit || a->used > a->limit - n)) return NULL;
    arena_chunk *c = a->head;
    if (!c || c->size - c->used < n) {
        size_t size = n > ARENA_CHUNK_SIZE / 4 ? n : ARENA_CHUNK_SIZE;
        if (size > SIZE_MAX - sizeof(arena_chunk)) return NULL;
        c = malloc(sizeof(arena_chunk) + size);
        if (!c) return NULL;
        c->size = size;
        c->used = 0;
        if (a->head && size == n) {
            /* a big one-off block: keep the current chunk for small requests */
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
    }
    void *p = c->data + c->used;
    c->used += n;
    a->used += n;
    return p;
}

char *arena_strndup(chat_arena *a, const char *s, size_t n) {
    if (n == SIZE_MAX) return NULL;
    char *p = arena_alloc(a, n + 1);
    if (!p) return NULL;
    if (n) memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void arena_release(chat_arena *a) {
    arena_chunk *c = a->head;
    while (c) {
        arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->used = 0;
}

int sb_append(sbuf *b, const char *s, size_t n) {
    if (n == 0) return 0;
    if (n > SIZE_MAX / 2 - b->len) return -1;
    size_t need = b->len + n;
    if (b->limit && need > b->limit) return -1;
    if (need + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < need + 1) cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p) return -1;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len = need;
    b->data[b->len] = '\0';
    return 0;
}

int sb_append_str(sbuf *b, const char *s) { return sb_append(b, s, strlen(s)); }

int sb_append_char(sbuf *b, char c) { return sb_append(b, &c, 1); }

char *sb_take(sbuf *b) {
    char *p = b->data;
    if (!p) p = calloc(1, 1);
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void sb_free(sbuf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
