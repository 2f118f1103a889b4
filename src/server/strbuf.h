/* strbuf.h - a growable byte buffer for response bodies and SSE chunks, and
 * the UTF-8 helpers the JSON writers need.
 *
 * A strbuf is always NUL-terminated when len > 0. An allocation failure
 * sets the sticky `failed` flag and leaves the contents as they were; the
 * caller checks it once at the end instead of after every append. */
#ifndef LAMINA_SERVER_STRBUF_H
#define LAMINA_SERVER_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct strbuf {
    char *data; /* (cap) bytes, malloc'd; NULL while empty */
    size_t len; /* bytes used, not counting the NUL */
    size_t cap; /* bytes allocated */
    bool failed;
} strbuf;

void strbuf_init(strbuf *b);
void strbuf_free(strbuf *b);
void strbuf_clear(strbuf *b); /* len = 0, keeps the allocation */
void strbuf_append(strbuf *b, const char *s, size_t n);
void strbuf_puts(strbuf *b, const char *s);
void strbuf_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* drops the first n bytes */
void strbuf_consume(strbuf *b, size_t n);
/* hands the buffer to the caller (free() it; "" when empty) and resets b;
 * NULL if an append failed */
char *strbuf_take(strbuf *b);

/* appends S (n bytes) with every invalid UTF-8 sequence replaced by U+FFFD,
 * so the result can go into a JSON string */
void strbuf_append_utf8_lossy(strbuf *b, const char *s, size_t n);
/* true when S (n bytes) is well-formed UTF-8 */
bool srv_utf8_valid(const char *s, size_t n);
/* Unicode code points in well-formed UTF-8 S (n bytes) */
size_t srv_utf8_count(const char *s, size_t n);

#endif
