/* membw.c - the machine's memory read bandwidth, the ceiling of decode
 * speed (bytes of weights per token / bandwidth), for `lamina perf
 * --mem-bandwidth` and bench/run_bench.sh's roofline column.
 *
 * A STREAM-like read: 1 GiB (far beyond any cache) split into one
 * contiguous slice per thread; each thread sums its slice's 64-bit words
 * in 64-byte vectors. A
 * pass is timed from the threads' start to the last one's end (starting
 * threads costs microseconds; a pass, tens of milliseconds). */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"

#define MEMBW_BYTES ((size_t)1 << 30)

typedef struct {
    const uint64_t *words;
    size_t n;
    uint64_t sum;
} membw_slice;

/* 64-byte vectors (GCC / Clang vector extension: AVX-512, two AVX2 or four
 * NEON registers), four in flight, and a prefetch 2 KiB ahead, as a
 * well-made kernel streams its weights: the probe must not be slower than
 * the code it bounds (measured here: prefetch changes nothing, the vector
 * width everything: 11.4 GB/s a core with 16-byte loads, 17.3 with 64) */
typedef uint64_t membw_vec __attribute__((vector_size(64)));

/* on x86 the loop is built for AVX-512, AVX2 and the baseline, picked at
 * load time (the rest of lamina's non-kernel code is baseline x86-64, whose
 * 16-byte loads would make this probe, not memory, the limit) */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
static void *membw_read(void *arg) {
    membw_slice *s = arg;
    const membw_vec *v = (const membw_vec *)s->words;
    const size_t n_vec = s->n / 8;
    membw_vec a = {0}, b = {0}, c = {0}, d = {0};
    size_t i = 0;
    for (; i + 4 <= n_vec; i += 4) {
        __builtin_prefetch(v + i + 32);
        __builtin_prefetch(v + i + 34);
        a += v[i];
        b += v[i + 1];
        c += v[i + 2];
        d += v[i + 3];
    }
    for (; i < n_vec; i++) a += v[i];
    a += b + c + d;
    uint64_t sum = 0;
    for (int k = 0; k < 8; k++) sum += a[k];
    for (size_t w = n_vec * 8; w < s->n; w++) sum += s->words[w];
    s->sum = sum; /* kept, so the reads are not optimized away */
    return NULL;
}

static double membw_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

double cli_read_bandwidth(int n_threads, int reps) {
    if (n_threads < 1 || n_threads > 256 || reps < 1) return -1.0;
    uint64_t *words = aligned_alloc(64, MEMBW_BYTES); /* whole 64-byte vectors, aligned */
    membw_slice *slices = calloc((size_t)n_threads, sizeof(*slices));
    pthread_t *tids = calloc((size_t)n_threads, sizeof(*tids));
    if (!words || !slices || !tids) {
        free(words);
        free(slices);
        free(tids);
        return -1.0;
    }
    const size_t n_words = MEMBW_BYTES / sizeof(uint64_t);
    for (size_t i = 0; i < n_words; i++) words[i] = i * 0x9E3779B97F4A7C15ull; /* every page touched */
    double best = -1.0;
    for (int r = 0; r <= reps && best != -2.0; r++) { /* r = 0: the warm-up */
        const size_t per = n_words / (size_t)n_threads / 8 * 8; /* slices of whole vectors */
        const double t0 = membw_now();
        int started = 0;
        for (int t = 0; t < n_threads; t++) {
            slices[t] = (membw_slice){words + (size_t)t * per, t == n_threads - 1 ? n_words - (size_t)t * per : per, 0};
            if (pthread_create(&tids[t], NULL, membw_read, &slices[t]) != 0) break;
            started++;
        }
        for (int t = 0; t < started; t++) pthread_join(tids[t], NULL);
        const double secs = membw_now() - t0;
        if (started < n_threads) best = -2.0; /* no thread to be had: no figure */
        else if (r > 0 && secs > 0 && (double)MEMBW_BYTES / secs > best) best = (double)MEMBW_BYTES / secs;
    }
    if (best == -2.0) best = -1.0;
    free(words);
    free(slices);
    free(tids);
    return best;
}
