/* check.h - the tiny assertion kit of the C unit tests.
 *
 * CHECK(cond, fmt, ...) records a failure with file:line and a message but
 * keeps going, so one run reports every fault; check_done() prints the
 * summary line and returns the exit code. */
#ifndef LAMINA_TEST_CHECK_H
#define LAMINA_TEST_CHECK_H

#include <stdio.h>

static int check_n_pass, check_n_fail;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond) {                                                                                \
            check_n_pass++;                                                                        \
        } else {                                                                                   \
            check_n_fail++;                                                                        \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

static inline int check_done(const char *suite) {
    printf("%s: %d checks passed, %d failed\n", suite, check_n_pass, check_n_fail);
    return check_n_fail ? 1 : 0;
}

#endif
