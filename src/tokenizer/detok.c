/* detok.c - token ids back to bytes: tok_piece (llama.cpp's token_to_piece)
 * and the streaming detokenizer that only lets whole UTF-8 characters out. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

/* copies SRC (N bytes) to BUF if it fits; returns N either way */
static int copy_out(char *buf, int cap, const char *src, size_t n) {
    if (n > INT32_MAX) return -1;
    if ((int)n <= cap) memcpy(buf, src, n);
    return (int)n;
}

/* an output that counts every byte and stores those that fit */
typedef struct sink {
    char *buf;
    size_t cap, n; /* bytes */
} sink;

static void put(sink *o, const void *data, size_t len) {
    if (o->n < o->cap) memcpy(o->buf + o->n, data, len < o->cap - o->n ? len : o->cap - o->n);
    o->n += len;
}

static int sink_length(const sink *o) { return o->n > INT32_MAX ? -1 : (int)o->n; }

/* byte-level BPE: each code point of the token text is one byte (GPT-2 map);
 * an unmapped one renders as llama.cpp's "[UNK_BYTE_0x<hex><text>]" */
static int bpe_piece(const tok_vocab *v, int32_t id, char *buf, int cap) {
    static const char digits[] = "0123456789abcdef";
    const uint8_t *text = (const uint8_t *)tok_text_of(v, id);
    const size_t len = v->text_len[id];
    sink o = {buf, (size_t)cap, 0};
    for (size_t pos = 0; pos < len;) {
        uint32_t cp = tok_utf8_decode_lenient(text, len, &pos);
        int byte = tok_cp_to_byte(cp);
        if (byte >= 0) {
            char c = (char)byte;
            put(&o, &c, 1);
            continue;
        }
        char utf8[4];
        int n = tok_utf8_encode(cp, utf8);
        put(&o, "[UNK_BYTE_0x", 12);
        for (int k = 0; k < n; k++) {
            const char hex[2] = {digits[(uint8_t)utf8[k] >> 4], digits[(uint8_t)utf8[k] & 15]};
            put(&o, hex, 2);
        }
        put(&o, text, len);
        put(&o, "]", 1);
    }
    return sink_length(&o);
}

/* SentencePiece: U+2581 -> space */
static int spm_piece(const tok_vocab *v, int32_t id, char *buf, int cap) {
    const char *text = tok_text_of(v, id);
    const size_t len = v->text_len[id];
    sink o = {buf, (size_t)cap, 0};
    for (size_t i = 0; i < len;) {
        bool escaped = i + 3 <= len && memcmp(text + i, "\xe2\x96\x81", 3) == 0;
        put(&o, escaped ? " " : text + i, 1);
        i += escaped ? 3 : 1;
    }
    return sink_length(&o);
}

int tok_piece(const tok_vocab *v, int32_t id, bool render_special, char *buf, int cap) {
    if (id < 0 || id >= v->n_tokens) return -1;
    if (cap < 0) cap = 0;
    const uint32_t attr = v->attr[id];
    const uint32_t special = TOK_ATTR_UNKNOWN | TOK_ATTR_CONTROL;
    if (attr & special && !render_special) return 0;
    if (attr & (special | TOK_ATTR_USER_DEFINED)) return copy_out(buf, cap, tok_text_of(v, id), v->text_len[id]);
    if (attr & TOK_ATTR_NORMAL)
        return v->kind == TOK_MODEL_BPE ? bpe_piece(v, id, buf, cap) : spm_piece(v, id, buf, cap);
    if (attr & TOK_ATTR_BYTE) {
        /* "<0xNN>": llama.cpp reads the two characters after "<0x" with strtol */
        char hex[3] = {0};
        if (v->text_len[id] >= 5) memcpy(hex, tok_text_of(v, id) + 3, 2);
        char byte = (char)strtol(hex, NULL, 16);
        return copy_out(buf, cap, &byte, 1);
    }
    return 0; /* unused and undefined tokens render as nothing */
}

/* ---- streaming ---- */

void tok_stream_init(tok_stream *s) { memset(s, 0, sizeof(*s)); }

/* How much of BYTES (N) is ready to emit, in emitted bytes (invalid
 * sequences count 3 each: they come out as U+FFFD); *HELD receives the
 * length of the incomplete tail kept back. */
static size_t ready_length(const uint8_t *bytes, size_t n, size_t *held) {
    size_t out = 0;
    *held = 0;
    for (size_t i = 0; i < n;) {
        int k = tok_utf8_check(bytes + i, n - i);
        if (k < 0) {
            *held = n - i;
            break;
        }
        out += k > 0 ? (size_t)k : 3;
        i += k > 0 ? (size_t)k : 1;
    }
    return out;
}

/* writes the ready part of BYTES (all N of them, as ready_length saw them:
 * whether a byte is invalid can depend on the held tail after it) to OUT,
 * invalid bytes as U+FFFD */
static void write_ready(const uint8_t *bytes, size_t n, char *out) {
    size_t at = 0;
    for (size_t i = 0; i < n;) {
        int k = tok_utf8_check(bytes + i, n - i);
        if (k < 0) break;
        if (k > 0) {
            memcpy(out + at, bytes + i, (size_t)k);
            at += (size_t)k;
            i += (size_t)k;
        } else {
            memcpy(out + at, "\xef\xbf\xbd", 3);
            at += 3;
            i++;
        }
    }
}

int tok_stream_push(const tok_vocab *v, tok_stream *s, int32_t id, char *out, int cap) {
    /* the pending bytes, then the piece: on the stack unless the piece is long */
    uint8_t local[256], *bytes = local;
    const size_t pending = (size_t)s->n_pending;
    memcpy(local, s->pending, pending);
    int n = tok_piece(v, id, false, (char *)local + pending, (int)(sizeof(local) - pending));
    if (n < 0) return -1;
    if ((size_t)n > sizeof(local) - pending) {
        bytes = malloc(pending + (size_t)n);
        if (!bytes) return -1;
        memcpy(bytes, s->pending, pending);
        tok_piece(v, id, false, (char *)bytes + pending, n);
    }
    size_t skip = s->strip_leading_space && n > 0 && bytes[pending] == ' ';
    if (skip) memmove(bytes + pending, bytes + pending + 1, (size_t)n - 1);
    const size_t total = pending + (size_t)n - skip;
    size_t held;
    const size_t ready = ready_length(bytes, total, &held);
    int rc;
    if (ready > INT32_MAX) {
        rc = -1;
    } else if (ready > (size_t)(cap < 0 ? 0 : cap)) {
        rc = (int)ready; /* too small: nothing consumed */
    } else {
        write_ready(bytes, total, out);
        memcpy(s->pending, bytes + total - held, held);
        s->n_pending = (int)held;
        if (n > 0) s->strip_leading_space = false;
        rc = (int)ready;
    }
    if (bytes != local) free(bytes);
    return rc;
}

int tok_stream_flush(tok_stream *s, char *out, int cap) {
    if (s->n_pending == 0) return 0;
    if (cap < 3) return 3;
    memcpy(out, "\xef\xbf\xbd", 3); /* a sequence cut short for good */
    s->n_pending = 0;
    return 3;
}
