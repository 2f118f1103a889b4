/* ustr.c - UTF-8 text with Python's str semantics (see ustr.h). */
#define _GNU_SOURCE /* memmem */
#include "chat/ustr.h"

#include <string.h>

size_t utf8_decode(const char *p, size_t n, uint32_t *cp) {
    const unsigned char *s = (const unsigned char *)p;
    if (n == 0) {
        *cp = 0;
        return 0;
    }
    if (s[0] < 0x80 || n < 2) {
        *cp = s[0];
        return 1;
    }
    if (s[0] < 0xE0) {
        *cp = ((uint32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
        return 2;
    }
    if (s[0] < 0xF0 || n < 4) {
        if (n < 3) {
            *cp = s[0];
            return 1;
        }
        *cp = ((uint32_t)(s[0] & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        return 3;
    }
    *cp = ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
          ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    return 4;
}

size_t utf8_encode(uint32_t cp, char out[4]) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

bool utf8_valid(const char *p, size_t n, size_t *bad) {
    const unsigned char *s = (const unsigned char *)p;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        uint32_t min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, min = 0x10000;
        } else {
            break;
        }
        if (n - i < len) break;
        size_t k = 1;
        while (k < len && (s[i + k] & 0xC0) == 0x80) k++;
        if (k < len) break;
        uint32_t cp;
        utf8_decode(p + i, len, &cp);
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) break;
        i += len;
    }
    if (i < n && bad) *bad = i;
    return i == n;
}

bool py_isspace(uint32_t cp) {
    if (cp < 0x80) return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20);
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

size_t ustr_lead_space(const char *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t k = utf8_decode(p + i, n - i, &cp);
        if (!py_isspace(cp)) break;
        i += k;
    }
    return i;
}

/* Start of the code point that ends at byte END of P. */
static size_t prev_start(const char *p, size_t end) {
    size_t i = end - 1;
    while (i > 0 && ((unsigned char)p[i] & 0xC0) == 0x80) i--;
    return i;
}

size_t ustr_trail_space(const char *p, size_t n) {
    size_t end = n;
    while (end > 0) {
        size_t start = prev_start(p, end);
        uint32_t cp;
        utf8_decode(p + start, end - start, &cp);
        if (!py_isspace(cp)) break;
        end = start;
    }
    return n - end;
}

size_t ustr_len(jv_str s) {
    size_t count = 0;
    for (size_t i = 0; i < s.n; i++) count += ((unsigned char)s.p[i] & 0xC0) != 0x80;
    return count;
}

size_t ustr_offset(jv_str s, size_t index) {
    size_t i = 0;
    while (i < s.n && index > 0) {
        i++;
        while (i < s.n && ((unsigned char)s.p[i] & 0xC0) == 0x80) i++;
        index--;
    }
    return i;
}

static bool in_chars(uint32_t cp, const jv_str *chars) {
    for (size_t i = 0; i < chars->n;) {
        uint32_t c;
        i += utf8_decode(chars->p + i, chars->n - i, &c);
        if (c == cp) return true;
    }
    return false;
}

static bool strip_this(uint32_t cp, const jv_str *chars) {
    return chars ? in_chars(cp, chars) : py_isspace(cp);
}

jv_str ustr_strip(jv_str s, const jv_str *chars, bool left, bool right) {
    size_t start = 0, end = s.n;
    while (left && start < end) {
        uint32_t cp;
        size_t k = utf8_decode(s.p + start, end - start, &cp);
        if (!strip_this(cp, chars)) break;
        start += k;
    }
    while (right && end > start) {
        size_t at = prev_start(s.p, end);
        uint32_t cp;
        utf8_decode(s.p + at, end - at, &cp);
        if (!strip_this(cp, chars)) break;
        end = at;
    }
    return (jv_str){s.p + start, end - start};
}

ptrdiff_t ustr_find(jv_str s, jv_str needle, size_t from) {
    if (from > s.n) return -1;
    if (needle.n == 0) return (ptrdiff_t)from;
    if (needle.n > s.n - from) return -1;
    const char *hit = memmem(s.p + from, s.n - from, needle.p, needle.n);
    return hit ? hit - s.p : -1;
}

ptrdiff_t ustr_rfind(jv_str s, jv_str needle) {
    if (needle.n > s.n) return -1;
    if (needle.n == 0) return (ptrdiff_t)s.n;
    for (size_t i = s.n - needle.n + 1; i-- > 0;)
        if (memcmp(s.p + i, needle.p, needle.n) == 0) return (ptrdiff_t)i;
    return -1;
}

bool ustr_starts_with(jv_str s, jv_str prefix) {
    return prefix.n == 0 || (prefix.n <= s.n && memcmp(s.p, prefix.p, prefix.n) == 0);
}

bool ustr_ends_with(jv_str s, jv_str suffix) {
    return suffix.n == 0 ||
           (suffix.n <= s.n && memcmp(s.p + s.n - suffix.n, suffix.p, suffix.n) == 0);
}
