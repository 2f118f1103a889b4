/* threadpool.h - a fixed team of threads that run one function together.
 *
 * tp_run(pool, fn, ctx) calls fn(ctx, ith, nth) on every thread of the team
 * (the caller is thread 0) and returns when all are done. Inside fn, the
 * team synchronizes with tp_barrier(). This is the shape of a forward pass:
 * every thread walks the same op list, each takes its share of every op, and
 * a barrier separates ops. Workers spin briefly between runs, then sleep. */
#ifndef LAMINA_BASE_THREADPOOL_H
#define LAMINA_BASE_THREADPOOL_H

typedef struct tp_pool tp_pool;
typedef void (*tp_fn)(void *ctx, int ith, int nth);

/* n_threads >= 1 (the caller counts as one). NULL on failure. */
tp_pool *tp_create(int n_threads);
void tp_free(tp_pool *pool);
int tp_n_threads(const tp_pool *pool);

/* not reentrant: one run at a time per pool */
void tp_run(tp_pool *pool, tp_fn fn, void *ctx);
/* all nth threads of the current run must call it the same number of times */
void tp_barrier(tp_pool *pool);

/* [*start, *end) = share ith of n items split into nth near-equal parts */
static inline void tp_split(long n, int ith, int nth, long *start, long *end) {
    long per = n / nth, rem = n % nth;
    *start = ith * per + (ith < rem ? ith : rem);
    *end = *start + per + (ith < rem ? 1 : 0);
}

#endif
