/* ranked.h - (id, value) pairs in the order the sampler ranks candidates:
 * value descending, ties by the lower id (engine/sampler.c), for the tests
 * that build or check such rankings. */
#ifndef LAMINA_TEST_RANKED_H
#define LAMINA_TEST_RANKED_H

#include <stdint.h>

typedef struct {
    int32_t id;
    float v;
} ranked;

/* qsort comparator: value descending, ties by the lower id */
static inline int cmp_ranked(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    if (x->v != y->v) return x->v < y->v ? 1 : -1;
    return x->id < y->id ? -1 : (x->id > y->id);
}

#endif
