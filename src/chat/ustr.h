/* ustr.h - UTF-8 text with Python's str semantics.
 *
 * Template strings are UTF-8 (a template and a JSON context are validated
 * before use), while Jinja2 counts, indexes and slices by code point and
 * strips by str.isspace(). These helpers give those answers on UTF-8 bytes
 * without allocating. Case mapping is ASCII-only: non-ASCII letters pass
 * through upper()/lower() unchanged. */
#ifndef LAMINA_CHAT_USTR_H
#define LAMINA_CHAT_USTR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat/value.h"

/* Decodes the code point at P (N bytes left, valid UTF-8); returns its length. */
size_t utf8_decode(const char *p, size_t n, uint32_t *cp);
/* Encodes CP into OUT; returns 1..4. */
size_t utf8_encode(uint32_t cp, char out[4]);
/* True when all N bytes are well-formed UTF-8 (no surrogates, <= U+10FFFF);
 * else *BAD is the offset of the first bad byte. */
bool utf8_valid(const char *p, size_t n, size_t *bad);

/* Python str.isspace() for one code point. */
bool py_isspace(uint32_t cp);
/* Bytes of whitespace (py_isspace) at the start / before the end of S. */
size_t ustr_lead_space(const char *p, size_t n);
size_t ustr_trail_space(const char *p, size_t n);

/* Number of code points. */
size_t ustr_len(jv_str s);
/* Byte offset of code point INDEX (0 <= INDEX <= ustr_len(s)). */
size_t ustr_offset(jv_str s, size_t index);

/* str.strip / lstrip / rstrip: CHARS NULL strips whitespace, else any of the
 * code points in *CHARS. */
jv_str ustr_strip(jv_str s, const jv_str *chars, bool left, bool right);
/* Byte offset of the first NEEDLE in S at or after byte FROM, or -1. */
ptrdiff_t ustr_find(jv_str s, jv_str needle, size_t from);
/* Byte offset of the last NEEDLE in S, or -1. */
ptrdiff_t ustr_rfind(jv_str s, jv_str needle);
bool ustr_starts_with(jv_str s, jv_str prefix);
bool ustr_ends_with(jv_str s, jv_str suffix);

static inline char ascii_upper(char c) { return c >= 'a' && c <= 'z' ? (char)(c - 32) : c; }
static inline char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c; }
static inline bool ascii_alpha(char c) { return (c | 32) >= 'a' && (c | 32) <= 'z'; }
static inline bool ascii_digit(char c) { return c >= '0' && c <= '9'; }

#endif
