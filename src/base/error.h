/* error.h - errors as values.
 *
 * Every fallible function returns a status (0 ok, -1 failure) and fills an
 * lm_error with one human-readable line naming the file/key/tensor and the
 * fault. Nothing that comes from a file or a socket may abort the process. */
#ifndef LAMINA_BASE_ERROR_H
#define LAMINA_BASE_ERROR_H

#include <stdarg.h>

typedef struct lm_error {
    char msg[512];
} lm_error;

/* printf-style; safe to call with err == NULL (the message is dropped). */
void lm_error_set(lm_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
