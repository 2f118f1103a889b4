/* mem.h - memory of the template interpreter.
 *
 * chat_arena: a bump allocator. Everything a parse or a render creates (AST
 * nodes, tokens, values, strings) lives in one arena and is released at once
 * with arena_release(), so no evaluator path has anything to free on error.
 * An arena may carry a byte limit: an allocation past it fails (returns NULL)
 * and the caller turns that into an error, which bounds what a hostile
 * template can make a render allocate.
 *
 * sbuf: a growable byte buffer (malloc'd) for output text, with its own byte
 * limit. The render result is an sbuf handed to the caller. */
#ifndef LAMINA_CHAT_MEM_H
#define LAMINA_CHAT_MEM_H

#include <stdbool.h>
#include <stddef.h>

typedef struct arena_chunk arena_chunk;

typedef struct chat_arena {
    arena_chunk *head; /* newest chunk first */
    size_t used;       /* bytes handed out, all chunks */
    size_t limit;      /* bytes; 0 = no limit */
} chat_arena;

/* N bytes aligned for any value; NULL when the limit or malloc fails. */
void *arena_alloc(chat_arena *a, size_t n);
/* NUL-terminated copy of N bytes; NULL on failure. */
char *arena_strndup(chat_arena *a, const char *s, size_t n);
void arena_release(chat_arena *a);

typedef struct sbuf {
    char *data;   /* malloc'd, NUL-terminated when non-NULL */
    size_t len;   /* bytes */
    size_t cap;   /* bytes */
    size_t limit; /* bytes; 0 = no limit */
} sbuf;

/* 0, or -1 when the limit would be passed or malloc fails (the buffer is
 * unchanged then). */
int sb_append(sbuf *b, const char *s, size_t n);
int sb_append_str(sbuf *b, const char *s);
int sb_append_char(sbuf *b, char c);
/* Gives up the buffer: returns data (never NULL on success; "" when empty)
 * and resets B. NULL if malloc fails. */
char *sb_take(sbuf *b);
void sb_free(sbuf *b);

#endif
