/* lexer.c - chat template tokenizer (see lexer.h).
 *
 * Mirrors the rules of jinja2/lexer.py for the default delimiters: text runs
 * to the next "{{", "{%" or "{#"; a tag's first character may be "-" (strip
 * the whitespace before it) or "+" (keep it); "-%}" strips the whitespace
 * after; with trim_blocks one newline after "%}" or "#}" is dropped, and with
 * lstrip_blocks the spaces between a line start and "{%"/"{#" are dropped.
 * Inside a tag an end marker only counts when brackets are balanced. */
#include "chat/lexer.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/ustr.h"

#define LEX_MAX_SOURCE ((size_t)64 << 20) /* bytes */

typedef struct lexer {
    chat_arena *a;
    lm_error *err;
    const char *src;
    size_t len;
    size_t pos;
    size_t at_pos; /* line/col cursor: at_line:at_col is the position of at_pos */
    uint32_t at_line, at_col;
    token *toks; /* malloc'd while lexing, moved to the arena at the end */
    size_t n, cap;
    bool line_starting;         /* the last match ended with a newline (lstrip_blocks) */
    char nest[LEX_MAX_NESTING]; /* expected closing brackets */
    int depth;
} lexer;

static const char *const op_texts[] = {
    "+", "-",  "/",  "//", "*",  "%", "**", "~", "[", "]", "(", ")", "{",
    "}", "==", "!=", ">",  ">=", "<", "<=", "=", ".", ":", "|", ",", ";",
};

const char *tok_op_text(tok_op op) { return op_texts[op]; }

static void locate(lexer *lx, size_t pos, uint32_t *line, uint32_t *col) {
    if (pos < lx->at_pos) {
        lx->at_pos = 0;
        lx->at_line = lx->at_col = 1;
    }
    for (size_t i = lx->at_pos; i < pos; i++) {
        unsigned char c = (unsigned char)lx->src[i];
        if (c == '\n') {
            lx->at_line++;
            lx->at_col = 1;
        } else if ((c & 0xC0) != 0x80) {
            lx->at_col++;
        }
    }
    lx->at_pos = pos;
    *line = lx->at_line;
    *col = lx->at_col;
}

__attribute__((format(printf, 3, 4))) static int lex_fail(lexer *lx, size_t pos, const char *fmt,
                                                          ...) {
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    uint32_t line, col;
    locate(lx, pos, &line, &col);
    lm_error_set(lx->err, "chat template %u:%u: %s", line, col, what);
    return -1;
}

static token *push(lexer *lx, tok_kind kind, size_t pos, size_t len) {
    if (lx->n == lx->cap) {
        size_t cap = lx->cap ? lx->cap * 2 : 256;
        token *t = realloc(lx->toks, cap * sizeof(token));
        if (!t) {
            lex_fail(lx, pos, "out of memory");
            return NULL;
        }
        lx->toks = t;
        lx->cap = cap;
    }
    token *t = &lx->toks[lx->n++];
    memset(t, 0, sizeof(*t));
    t->kind = kind;
    t->pos = (uint32_t)pos;
    t->len = (uint32_t)len;
    locate(lx, pos, &t->line, &t->col);
    return t;
}

static bool starts(const lexer *lx, size_t p, const char *lit) {
    size_t n = strlen(lit);
    return p <= lx->len && lx->len - p >= n && memcmp(lx->src + p, lit, n) == 0;
}

static size_t skip_space(const lexer *lx, size_t p) {
    return p + ustr_lead_space(lx->src + p, lx->len - p);
}

static int push_data(lexer *lx, size_t start, size_t end) {
    if (end <= start) return 0;
    token *t = push(lx, TK_DATA, start, end - start);
    if (!t) return -1;
    t->s = (jv_str){lx->src + start, end - start};
    return 0;
}

/* Whitespace control of the text [start, *end) that precedes a tag whose
 * first character after the delimiter is SIGN; LSTRIP_OK for block, comment
 * and raw tags (never for {{). */
static void strip_before_tag(const lexer *lx, size_t start, size_t *end, char sign,
                             bool lstrip_ok) {
    if (sign == '-') {
        *end -= ustr_trail_space(lx->src + start, *end - start);
        return;
    }
    if (sign == '+' || !lstrip_ok) return;
    size_t line_start = *end;
    while (line_start > start && lx->src[line_start - 1] != '\n') line_start--;
    if (line_start > start || lx->line_starting) {
        size_t n = *end - line_start;
        if (n > 0 && ustr_lead_space(lx->src + line_start, n) == n) *end = line_start;
    }
}

/* The end of a match that ends at P: does it end a line? */
static void mark_line_start(lexer *lx, size_t p) {
    lx->line_starting = p > 0 && lx->src[p - 1] == '\n';
}

/* After "%}" or "#}" (already consumed up to P): trim_blocks drops one newline. */
static size_t trim_block_newline(const lexer *lx, size_t p) {
    return p < lx->len && lx->src[p] == '\n' ? p + 1 : p;
}

static int lex_comment(lexer *lx, size_t begin, size_t p) {
    for (; p < lx->len; p++) {
        if (starts(lx, p, "+#}")) {
            p += 3;
        } else if (starts(lx, p, "-#}")) {
            p = skip_space(lx, p + 3);
        } else if (starts(lx, p, "#}")) {
            p = trim_block_newline(lx, p + 2);
        } else {
            continue;
        }
        mark_line_start(lx, p);
        lx->pos = p;
        return 0;
    }
    return lex_fail(lx, begin, "missing end of comment tag");
}

/* "{%[-+]? raw [-]?%}" at P: returns the end of the tag, or 0. */
static size_t match_raw_begin(const lexer *lx, size_t p) {
    p += 2;
    if (p < lx->len && (lx->src[p] == '-' || lx->src[p] == '+')) p++;
    p = skip_space(lx, p);
    if (!starts(lx, p, "raw")) return 0;
    p = skip_space(lx, p + 3);
    if (starts(lx, p, "-%}")) return skip_space(lx, p + 3);
    if (starts(lx, p, "%}")) return p + 2;
    return 0;
}

/* "{%[-+]? endraw (+%}|-%}\s*|%}\n?)" at P: returns the end, or 0; *SIGN. */
static size_t match_raw_end(const lexer *lx, size_t p, char *sign) {
    if (!starts(lx, p, "{%")) return 0;
    p += 2;
    *sign = 0;
    if (p < lx->len && (lx->src[p] == '-' || lx->src[p] == '+')) *sign = lx->src[p++];
    p = skip_space(lx, p);
    if (!starts(lx, p, "endraw")) return 0;
    p = skip_space(lx, p + 6);
    if (starts(lx, p, "+%}")) return p + 3;
    if (starts(lx, p, "-%}")) return skip_space(lx, p + 3);
    if (starts(lx, p, "%}")) return trim_block_newline(lx, p + 2);
    return 0;
}

static int lex_raw(lexer *lx, size_t begin, size_t body) {
    mark_line_start(lx, body);
    for (size_t p = body; p < lx->len; p++) {
        char sign;
        size_t end = match_raw_end(lx, p, &sign);
        if (!end) continue;
        size_t text_end = p;
        strip_before_tag(lx, body, &text_end, sign, true);
        if (push_data(lx, body, text_end)) return -1;
        mark_line_start(lx, end);
        lx->pos = end;
        return 0;
    }
    return lex_fail(lx, begin, "missing end of raw directive");
}

/* (\d+_)*\d+ at P: the end, or P when there is no digit. */
static size_t scan_digits(const lexer *lx, size_t p) {
    if (p >= lx->len || !ascii_digit(lx->src[p])) return p;
    while (p < lx->len) {
        while (p < lx->len && ascii_digit(lx->src[p])) p++;
        if (p + 1 < lx->len && lx->src[p] == '_' && ascii_digit(lx->src[p + 1])) {
            p++;
            continue;
        }
        break;
    }
    return p;
}

/* Copy of [start, end) without '_' (bounded: numbers are short). */
static int digits_copy(lexer *lx, size_t start, size_t end, char *buf, size_t cap) {
    size_t k = 0;
    for (size_t i = start; i < end; i++) {
        if (lx->src[i] == '_') continue;
        if (k + 1 >= cap) return lex_fail(lx, start, "number literal too long");
        buf[k++] = lx->src[i];
    }
    buf[k] = '\0';
    return 0;
}

static int lex_number(lexer *lx, size_t p, size_t *end) {
    char buf[512];
    size_t int_end = scan_digits(lx, p);
    bool after_dot = p > 0 && lx->src[p - 1] == '.';
    if (!after_dot) {
        size_t q = int_end;
        bool frac = false, exp = false;
        if (q < lx->len && lx->src[q] == '.') {
            size_t f = scan_digits(lx, q + 1);
            if (f > q + 1) frac = true, q = f;
        }
        if (q < lx->len && (lx->src[q] | 32) == 'e') {
            size_t e = q + 1;
            if (e < lx->len && (lx->src[e] == '+' || lx->src[e] == '-')) e++;
            size_t d = scan_digits(lx, e);
            if (d > e) exp = true, q = d;
        }
        if (frac || exp) {
            if (digits_copy(lx, p, q, buf, sizeof(buf))) return -1;
            token *t = push(lx, TK_FLOAT, p, q - p);
            if (!t) return -1;
            t->f = strtod(buf, NULL);
            *end = q;
            return 0;
        }
    }
    int base = 10;
    size_t q = p, digits_start = p;
    char c1 = p + 1 < lx->len ? (char)(lx->src[p + 1] | 32) : 0;
    if (lx->src[p] == '0' && (c1 == 'b' || c1 == 'o' || c1 == 'x')) {
        base = c1 == 'b' ? 2 : c1 == 'o' ? 8 : 16;
        q = digits_start = p + 2;
        for (;;) {
            size_t r = q < lx->len && lx->src[q] == '_' ? q + 1 : q;
            if (r >= lx->len) break;
            char c = (char)(lx->src[r] | 32);
            int v = ascii_digit(c) ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : 99;
            if (v >= base) break;
            q = r + 1;
        }
        if (q == digits_start) return lex_fail(lx, p, "invalid number literal");
    } else if (lx->src[p] == '0') {
        q = p + 1;
        while (q < lx->len && (lx->src[q] == '0' ||
                               (lx->src[q] == '_' && q + 1 < lx->len && lx->src[q + 1] == '0')))
            q++;
    } else {
        q = int_end;
    }
    if (digits_copy(lx, digits_start, q, buf, sizeof(buf))) return -1;
    errno = 0;
    char *stop;
    long long v = strtoll(buf, &stop, base);
    if (errno == ERANGE) return lex_fail(lx, p, "integer literal too large");
    token *t = push(lx, TK_INT, p, q - p);
    if (!t) return -1;
    t->i = v;
    *end = q;
    return 0;
}

static int hex_value(char c) {
    c = (char)(c | 32);
    return ascii_digit(c) ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

/* Python's unicode-escape decoding of the body [start, end) into OUT
 * (at most end-start bytes: no escape grows). Returns the decoded length, or
 * -1 with the error set. */
static ptrdiff_t unescape(lexer *lx, size_t start, size_t end, char *out) {
    static const char simple_from[] = "\\'\"abfnrtv", simple_to[] = "\\'\"\a\b\f\n\r\t\v";
    size_t k = 0;
    for (size_t p = start; p < end;) {
        char c = lx->src[p];
        if (c != '\\' || p + 1 >= end) {
            out[k++] = c;
            p++;
            continue;
        }
        char e = lx->src[p + 1];
        const char *hit = memchr(simple_from, e, sizeof(simple_from) - 1);
        if (hit) {
            out[k++] = simple_to[hit - simple_from];
            p += 2;
        } else if (e == '\n') {
            p += 2;
        } else if (e >= '0' && e <= '7') {
            unsigned v = 0;
            size_t q = p + 1;
            while (q < end && q < p + 4 && lx->src[q] >= '0' && lx->src[q] <= '7')
                v = v * 8 + (unsigned)(lx->src[q++] - '0');
            k += utf8_encode(v, out + k);
            p = q;
        } else if (e == 'x' || e == 'u' || e == 'U') {
            size_t digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            uint32_t v = 0;
            for (size_t d = 0; d < digits; d++) {
                int h = p + 2 + d < end ? hex_value(lx->src[p + 2 + d]) : -1;
                if (h < 0) {
                    lex_fail(lx, p, "truncated \\%c escape in string", e);
                    return -1;
                }
                v = v * 16 + (uint32_t)h;
            }
            if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
                lex_fail(lx, p, "invalid code point U+%X in string", v);
                return -1;
            }
            k += utf8_encode(v, out + k);
            p += 2 + digits;
        } else if (e == 'N') {
            lex_fail(lx, p, "\\N{...} escapes are not supported");
            return -1;
        } else {
            out[k++] = '\\'; /* unknown escapes stay as written */
            p++;
        }
    }
    return (ptrdiff_t)k;
}

static int lex_string(lexer *lx, size_t p, size_t *end) {
    char quote = lx->src[p];
    size_t q = p + 1;
    while (q < lx->len && lx->src[q] != quote) q += lx->src[q] == '\\' ? 2 : 1;
    if (q >= lx->len) return lex_fail(lx, p, "unterminated string");
    char *buf = arena_alloc(lx->a, q - p);
    if (!buf) return lex_fail(lx, p, "out of memory");
    ptrdiff_t n = unescape(lx, p + 1, q, buf);
    if (n < 0) return -1;
    token *t = push(lx, TK_STRING, p, q + 1 - p);
    if (!t) return -1;
    t->s = (jv_str){buf, (size_t)n};
    *end = q + 1;
    return 0;
}

static int lex_operator(lexer *lx, size_t p, size_t *end) {
    static const char *const two[] = {"//", "**", "==", "!=", ">=", "<="};
    static const tok_op two_ops[] = {OPT_FLOORDIV, OPT_POW, OPT_EQ, OPT_NE, OPT_GTEQ, OPT_LTEQ};
    static const char one[] = "+-/*%~[](){}><=.:|,;";
    static const tok_op one_ops[] = {
        OPT_ADD,      OPT_SUB,    OPT_DIV,    OPT_MUL,    OPT_MOD,    OPT_TILDE,    OPT_LBRACKET,
        OPT_RBRACKET, OPT_LPAREN, OPT_RPAREN, OPT_LBRACE, OPT_RBRACE, OPT_GT,       OPT_LT,
        OPT_ASSIGN,   OPT_DOT,    OPT_COLON,  OPT_PIPE,   OPT_COMMA,  OPT_SEMICOLON};
    tok_op op;
    size_t n = 2;
    size_t i = 0;
    while (i < 6 && !starts(lx, p, two[i])) i++;
    if (i < 6) {
        op = two_ops[i];
    } else {
        const char *hit = memchr(one, lx->src[p], sizeof(one) - 1);
        if (!hit || lx->src[p] == '\0') {
            unsigned char c = (unsigned char)lx->src[p];
            if (c >= 0x20 && c < 0x7F) return lex_fail(lx, p, "unexpected character '%c'", c);
            return lex_fail(lx, p, "unexpected character (byte 0x%02x)", c);
        }
        op = one_ops[hit - one];
        n = 1;
    }
    if (op == OPT_LPAREN || op == OPT_LBRACKET || op == OPT_LBRACE) {
        if (lx->depth == LEX_MAX_NESTING) return lex_fail(lx, p, "brackets nested too deeply");
        lx->nest[lx->depth++] = op == OPT_LPAREN ? ')' : op == OPT_LBRACKET ? ']' : '}';
    } else if (op == OPT_RPAREN || op == OPT_RBRACKET || op == OPT_RBRACE) {
        char c = lx->src[p];
        if (lx->depth == 0) return lex_fail(lx, p, "unexpected '%c'", c);
        char want = lx->nest[--lx->depth];
        if (want != c) return lex_fail(lx, p, "unexpected '%c', expected '%c'", c, want);
    }
    token *t = push(lx, TK_OP, p, n);
    if (!t) return -1;
    t->op = op;
    *end = p + n;
    return 0;
}

/* The end marker of a {% or {{ tag at P, when brackets are balanced:
 * returns the end of the match (0 if none) and its token span in *MARK_N. */
static size_t match_tag_end(const lexer *lx, size_t p, bool block, size_t *mark_n) {
    if (block) {
        if (starts(lx, p, "+%}")) return *mark_n = 3, p + 3;
        if (starts(lx, p, "-%}")) return *mark_n = 3, skip_space(lx, p + 3);
        if (starts(lx, p, "%}")) return *mark_n = 2, trim_block_newline(lx, p + 2);
    } else {
        if (starts(lx, p, "-}}")) return *mark_n = 3, skip_space(lx, p + 3);
        if (starts(lx, p, "}}")) return *mark_n = 2, p + 2;
    }
    return 0;
}

static int lex_tag(lexer *lx, size_t begin, bool block) {
    size_t p = lx->pos;
    lx->depth = 0;
    for (;;) {
        if (p >= lx->len)
            return lex_fail(lx, begin, "unexpected end of template, expected '%s'",
                            block ? "%}" : "}}");
        size_t mark_n, end;
        if (lx->depth == 0 && (end = match_tag_end(lx, p, block, &mark_n))) {
            if (!push(lx, block ? TK_BLOCK_END : TK_VAR_END, p, mark_n)) return -1;
            mark_line_start(lx, end);
            lx->pos = end;
            return 0;
        }
        char c = lx->src[p];
        size_t space = ustr_lead_space(lx->src + p, lx->len - p);
        if (space) {
            p += space;
        } else if (ascii_digit(c)) {
            if (lex_number(lx, p, &p)) return -1;
        } else if (ascii_alpha(c) || c == '_') {
            size_t q = p + 1;
            while (q < lx->len &&
                   (ascii_alpha(lx->src[q]) || ascii_digit(lx->src[q]) || lx->src[q] == '_'))
                q++;
            token *t = push(lx, TK_NAME, p, q - p);
            if (!t) return -1;
            t->s = (jv_str){lx->src + p, q - p};
            p = q;
        } else if (c == '\'' || c == '"') {
            if (lex_string(lx, p, &p)) return -1;
        } else {
            if (lex_operator(lx, p, &p)) return -1;
        }
    }
}

/* The next "{{", "{%" or "{#" at or after P, or LEN. */
static size_t find_tag(const lexer *lx, size_t p) {
    while (p + 1 < lx->len) {
        const char *brace = memchr(lx->src + p, '{', lx->len - p - 1);
        if (!brace) break;
        p = (size_t)(brace - lx->src);
        char c = lx->src[p + 1];
        if (c == '{' || c == '%' || c == '#') return p;
        p++;
    }
    return lx->len;
}

/* \r\n and \r to \n, one trailing newline dropped (keep_trailing_newline=False). */
static int normalize(lexer *lx, const char *src, size_t len) {
    char *out = arena_alloc(lx->a, len + 1);
    if (!out) return lex_fail(lx, 0, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            out[k++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n') i++;
        } else {
            out[k++] = src[i];
        }
    }
    if (k > 0 && out[k - 1] == '\n') k--;
    out[k] = '\0';
    lx->src = out;
    lx->len = k;
    return 0;
}

static int lex_all(lexer *lx) {
    while (lx->pos < lx->len) {
        size_t q = find_tag(lx, lx->pos);
        if (q == lx->len) return push_data(lx, lx->pos, lx->len);
        char kind = lx->src[q + 1];
        char sign = q + 2 < lx->len && (lx->src[q + 2] == '-' || lx->src[q + 2] == '+')
                        ? lx->src[q + 2]
                        : 0;
        size_t raw_body = kind == '%' ? match_raw_begin(lx, q) : 0;
        size_t text_end = q;
        strip_before_tag(lx, lx->pos, &text_end, sign, kind != '{');
        if (push_data(lx, lx->pos, text_end)) return -1;
        size_t inner = q + 2 + (sign ? 1 : 0);
        if (kind == '#') {
            if (lex_comment(lx, q, inner)) return -1;
        } else if (raw_body) {
            if (lex_raw(lx, q, raw_body)) return -1;
        } else {
            if (!push(lx, kind == '%' ? TK_BLOCK_BEGIN : TK_VAR_BEGIN, q, inner - q)) return -1;
            lx->pos = inner;
            if (lex_tag(lx, q, kind == '%')) return -1;
        }
    }
    return 0;
}

int lex_template(chat_arena *a, const char *src, size_t len, lexed *out, lm_error *err) {
    lexer lx = {.a = a, .err = err, .at_line = 1, .at_col = 1, .line_starting = true};
    memset(out, 0, sizeof(*out));
    if (len > LEX_MAX_SOURCE) {
        lm_error_set(err, "chat template: %zu bytes is more than the %zu allowed", len,
                     LEX_MAX_SOURCE);
        return -1;
    }
    if (normalize(&lx, src, len)) return -1;
    size_t bad;
    if (!utf8_valid(lx.src, lx.len, &bad)) return lex_fail(&lx, bad, "invalid UTF-8");
    if (memchr(lx.src, '\0', lx.len)) {
        return lex_fail(&lx, (size_t)((const char *)memchr(lx.src, '\0', lx.len) - lx.src),
                        "NUL byte in template");
    }
    int rc = lex_all(&lx);
    if (rc == 0 && !push(&lx, TK_EOF, lx.len, 0)) rc = -1;
    if (rc == 0) {
        out->toks = arena_alloc(a, lx.n * sizeof(token));
        if (!out->toks)
            rc = lex_fail(&lx, 0, "out of memory");
        else
            memcpy(out->toks, lx.toks, lx.n * sizeof(token));
    }
    free(lx.toks);
    if (rc) return -1;
    out->src = lx.src;
    out->len = lx.len;
    out->n = lx.n;
    return 0;
}
