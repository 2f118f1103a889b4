#include "base/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* spins at a barrier before yielding the core: when there are more runnable
 * threads than cores, the thread we wait for may need our core to arrive */
#define SPIN_BEFORE_YIELD 2000

static void wait_spin(int *spins) {
    if (++*spins < SPIN_BEFORE_YIELD) {
        cpu_relax();
    } else {
        *spins = 0;
        sched_yield();
    }
}

/* spins before a worker goes to sleep on the condition variable: long enough
 * to cover the gap between two decode steps, short enough not to burn a core
 * while the server is idle */
#define SPIN_BEFORE_SLEEP 200000

struct tp_pool {
    int n_threads;
    pthread_t *threads;
    tp_fn fn;
    void *ctx;
    atomic_int run_gen;      /* bumped once per tp_run */
    atomic_int n_finished;   /* workers done with the current run */
    atomic_int barrier_count;
    atomic_int barrier_gen;
    atomic_int stop;
    pthread_mutex_t mutex;
    pthread_cond_t wake;
};

typedef struct {
    tp_pool *pool;
    int ith;
} worker_arg;

static void *worker_main(void *p) {
    worker_arg arg = *(worker_arg *)p;
    free(p);
    tp_pool *pool = arg.pool;
    int seen = 0;
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&pool->run_gen, memory_order_acquire) == seen &&
               !atomic_load(&pool->stop)) {
            if (++spins < SPIN_BEFORE_SLEEP) {
                cpu_relax();
                continue;
            }
            pthread_mutex_lock(&pool->mutex);
            while (atomic_load(&pool->run_gen) == seen && !atomic_load(&pool->stop))
                pthread_cond_wait(&pool->wake, &pool->mutex);
            pthread_mutex_unlock(&pool->mutex);
        }
        if (atomic_load(&pool->stop)) return NULL;
        seen = atomic_load(&pool->run_gen);
        pool->fn(pool->ctx, arg.ith, pool->n_threads);
        atomic_fetch_add_explicit(&pool->n_finished, 1, memory_order_acq_rel);
    }
}

tp_pool *tp_create(int n_threads) {
    if (n_threads < 1) n_threads = 1;
    tp_pool *pool = calloc(1, sizeof(*pool));
    if (!pool) return NULL;
    pool->n_threads = n_threads;
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pool->threads = calloc((size_t)n_threads, sizeof(pthread_t));
    if (!pool->threads) {
        free(pool);
        return NULL;
    }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *arg = malloc(sizeof(*arg));
        if (!arg) {
            pool->n_threads = i;
            tp_free(pool);
            return NULL;
        }
        arg->pool = pool;
        arg->ith = i;
        if (pthread_create(&pool->threads[i], NULL, worker_main, arg) != 0) {
            free(arg);
            pool->n_threads = i;
            tp_free(pool);
            return NULL;
        }
    }
    return pool;
}

void tp_free(tp_pool *pool) {
    if (!pool) return;
    pthread_mutex_lock(&pool->mutex);
    atomic_store(&pool->stop, 1);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
    for (int i = 1; i < pool->n_threads; i++) pthread_join(pool->threads[i], NULL);
    pthread_mutex_destroy(&pool->mutex);
    pthread_cond_destroy(&pool->wake);
    free(pool->threads);
    free(pool);
}

int tp_n_threads(const tp_pool *pool) { return pool->n_threads; }

void tp_run(tp_pool *pool, tp_fn fn, void *ctx) {
    if (pool->n_threads == 1) {
        fn(ctx, 0, 1);
        return;
    }
    pool->fn = fn;
    pool->ctx = ctx;
    atomic_store(&pool->n_finished, 0);
    pthread_mutex_lock(&pool->mutex);
    atomic_fetch_add_explicit(&pool->run_gen, 1, memory_order_release);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
    fn(ctx, 0, pool->n_threads);
    int spins = 0;
    while (atomic_load_explicit(&pool->n_finished, memory_order_acquire) < pool->n_threads - 1) wait_spin(&spins);
}

void tp_barrier(tp_pool *pool) {
    int n = pool->n_threads;
    if (n == 1) return;
    int gen = atomic_load_explicit(&pool->barrier_gen, memory_order_acquire);
    if (atomic_fetch_add_explicit(&pool->barrier_count, 1, memory_order_acq_rel) == n - 1) {
        atomic_store_explicit(&pool->barrier_count, 0, memory_order_relaxed);
        atomic_fetch_add_explicit(&pool->barrier_gen, 1, memory_order_release);
        return;
    }
    int spins = 0;
    while (atomic_load_explicit(&pool->barrier_gen, memory_order_acquire) == gen) wait_spin(&spins);
}
