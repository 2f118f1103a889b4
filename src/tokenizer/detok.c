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

/* byte-level BPE: each code point of the token text is one byte (GPT-2 map);
 * an unmapped one renders as llama.cpp's "[UNK_BYTE_0x..<text>]" */
static int bpe_piece(const tok_vocab *v, int32_t id, char *buf, int cap) {
    const uint8_t *text = (const uint8_t *)tok_text_of(v, id);
    const size_t len = v->text_len[id];
    tok_bytes out = {0};
    int failed = 0;
    for (size_t pos = 0; pos < len && !failed;) {
        uint32_t cp = tok_utf8_decode_lenient(text, len, &pos);
        int byte = tok_cp_to_byte(cp);
        if (byte >= 0) {
            char c = (char)byte;
            failed |= tok_bytes_append(&out, &c, 1);
            continue;
        }
        char utf8[4], hex[16];
        int n = tok_utf8_encode(cp, utf8);
        failed |= tok_bytes_append(&out, "[UNK_BYTE_0x", 12);
        for (int k = 0; k < n; k++) {
            static const char digits[] = "0123456789abcdef";
            hex[2 * k] = digits[(uint8_t)utf8[k] >> 4];
            hex[2 * k + 1] = digits[(uint8_t)utf8[k] & 15];
        }
        failed |= tok_bytes_append(&out, hex, (size_t)(2 * n));
        failed |= tok_bytes_append(&out, text, len);
        failed |= tok_bytes_append(&out, "]", 1);
    }
    int rc = failed ? -1 : copy_out(buf, cap, out.data, out.n);
    free(out.data);
    return rc;
}

/* SentencePiece: U+2581 -> space */
static int spm_piece(const tok_vocab *v, int32_t id, char *buf, int cap) {
    const char *text = tok_text_of(v, id);
    const size_t len = v->text_len[id];
    size_t n = 0;
    for (size_t i = 0; i < len; n++) {
        bool escaped = i + 3 <= len && memcmp(text + i, "\xe2\x96\x81", 3) == 0;
        if ((int)n < cap) buf[n] = escaped ? ' ' : text[i];
        i += escaped ? 3 : 1;
    }
    return n > INT32_MAX ? -1 : (int)n;
}

int tok_piece(const tok_vocab *v, int32_t id, bool render_special, char *buf, int cap) {
    if (id < 0 || id >= v->n_tokens) return -1;
    if (cap < 0) cap = 0;
    const uint32_t attr = v->attr[id];
    const uint32_t special = TOK_ATTR_UNKNOWN | TOK_ATTR_CONTROL;
    if (attr & special && !render_special) return 0;
    if (attr & (special | TOK_ATTR_USER_DEFINED)) return copy_out(buf, cap, tok_text_of(v, id), v->text_len[id]);
    if (attr & TOK_ATTR_NORMAL) return v->kind == TOK_MODEL_BPE ? bpe_piece(v, id, buf, cap) : spm_piece(v, id, buf, cap);
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

/* writes the ready part of BYTES to OUT, invalid bytes as U+FFFD */
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
    char small[64];
    int n = tok_piece(v, id, false, small, sizeof(small));
    if (n < 0) return -1;
    char *piece = small;
    if (n > (int)sizeof(small)) {
        piece = malloc((size_t)n);
        if (!piece) return -1;
        tok_piece(v, id, false, piece, n);
    }
    int skip = s->strip_leading_space && n > 0 && piece[0] == ' ';
    size_t total = (size_t)s->n_pending + (size_t)(n - skip);
    uint8_t *bytes = malloc(total + 1);
    if (!bytes) {
        if (piece != small) free(piece);
        return -1;
    }
    memcpy(bytes, s->pending, (size_t)s->n_pending);
    memcpy(bytes + s->n_pending, piece + skip, (size_t)(n - skip));
    if (piece != small) free(piece);
    size_t held;
    size_t ready = ready_length(bytes, total, &held);
    int rc;
    if (ready > (size_t)(cap < 0 ? 0 : cap) || ready > INT32_MAX) {
        rc = ready > INT32_MAX ? -1 : (int)ready; /* too small: nothing consumed */
    } else {
        write_ready(bytes, total - held, out);
        memcpy(s->pending, bytes + total - held, held);
        s->n_pending = (int)held;
        if (n > 0) s->strip_leading_space = false;
        rc = (int)ready;
    }
    free(bytes);
    return rc;
}

int tok_stream_flush(tok_stream *s, char *out, int cap) {
    if (s->n_pending == 0) return 0;
    if (cap < 3) return 3;
    memcpy(out, "\xef\xbf\xbd", 3); /* a sequence cut short for good */
    s->n_pending = 0;
    return 3;
}
