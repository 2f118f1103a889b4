/* buffers.c - the growable arrays of the tokenizer (ids, bytes) and the
 * bigram max-heap shared by the BPE and SentencePiece merge loops. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

static int grow(void **data, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t cap2 = *cap ? *cap : 16;
    while (cap2 < need) cap2 *= 2;
    void *p = realloc(*data, cap2 * elem);
    if (!p) return -1;
    *data = p;
    *cap = cap2;
    return 0;
}

int tok_ivec_push(tok_ivec *v, int32_t x) {
    if (grow((void **)&v->data, &v->cap, v->n + 1, sizeof(int32_t))) return -1;
    v->data[v->n++] = x;
    return 0;
}

int tok_bytes_append(tok_bytes *b, const void *p, size_t n) {
    if (n == 0) return 0;
    if (grow((void **)&b->data, &b->cap, b->n + n, 1)) return -1;
    memcpy(b->data + b->n, p, n);
    b->n += n;
    return 0;
}

/* true when a comes out of the queue before b */
static bool before(const tok_bigram *a, const tok_bigram *b) {
    return a->key > b->key || (a->key == b->key && a->left < b->left);
}

int tok_heap_push(tok_heap *h, tok_bigram b) {
    if (grow((void **)&h->data, &h->cap, h->n + 1, sizeof(tok_bigram))) return -1;
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(&b, &h->data[parent])) break;
        h->data[i] = h->data[parent];
        i = parent;
    }
    h->data[i] = b;
    return 0;
}

tok_bigram tok_heap_pop(tok_heap *h) {
    tok_bigram top = h->data[0];
    tok_bigram last = h->data[--h->n];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->n) break;
        if (child + 1 < h->n && before(&h->data[child + 1], &h->data[child])) child++;
        if (!before(&h->data[child], &last)) break;
        h->data[i] = h->data[child];
        i = child;
    }
    if (h->n > 0) h->data[i] = last;
    return top;
}
