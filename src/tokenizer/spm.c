/* spm.c - SentencePiece-style BPE (tokenizer.ggml.model "llama"), as
 * llama.cpp's llm_tokenizer_spm_session: start from UTF-8 characters,
 * repeatedly merge the adjacent pair whose concatenation is the token of
 * highest score (ties: leftmost), then emit each piece as its token or, when
 * it is none (a character outside the vocab), as byte tokens <0xNN>.
 *
 * The caller has already escaped spaces to U+2581 and added the leading space. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

typedef struct spm_scratch {
    tok_symbol *symbols;
    size_t n, cap;
    tok_heap heap;
} spm_scratch;

static int add_bigram(const tok_vocab *v, spm_scratch *s, const char *text, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return 0;
    const tok_symbol *a = &s->symbols[left], *b = &s->symbols[right];
    /* adjacent symbols: their concatenation is one byte range */
    int32_t id = tok_strmap_get(&v->token_ids, text + a->off, a->len + b->len);
    if (id < 0) return 0;
    tok_bigram bg = {.key = v->scores[id], .left = left, .right = right, .size = a->len + b->len};
    return tok_heap_push(&s->heap, bg);
}

static int split_symbols(spm_scratch *s, const char *text, size_t len) {
    s->n = 0;
    for (size_t off = 0; off < len; s->n++) {
        if (s->n == s->cap) {
            size_t cap = s->cap ? 2 * s->cap : 64;
            tok_symbol *p = realloc(s->symbols, cap * sizeof(tok_symbol));
            if (!p) return -1;
            s->symbols = p;
            s->cap = cap;
        }
        size_t char_len = tok_utf8_len((uint8_t)text[off]);
        if (char_len > len - off) char_len = len - off;
        size_t i = s->n;
        s->symbols[i] =
            (tok_symbol){.prev = (int32_t)i - 1, .next = -1, .off = (uint32_t)off, .len = (uint32_t)char_len};
        if (i > 0) s->symbols[i - 1].next = (int32_t)i;
        off += char_len;
    }
    return 0;
}

/* the byte fallback of llama.cpp's byte_to_token: <0xNN>, else the byte itself */
static int32_t byte_token(const tok_vocab *v, uint8_t byte) {
    static const char hex[] = "0123456789ABCDEF";
    const char name[6] = {'<', '0', 'x', hex[byte >> 4], hex[byte & 15], '>'};
    int32_t id = tok_strmap_get(&v->token_ids, name, sizeof(name));
    if (id < 0) id = tok_strmap_get(&v->token_ids, (const char *)&byte, 1);
    return id < 0 ? v->unk : id;
}

static int emit_piece(const tok_vocab *v, const char *piece, size_t len, tok_ivec *out) {
    int32_t id = tok_strmap_get(&v->token_ids, piece, len);
    if (id >= 0) return tok_ivec_push(out, id);
    for (size_t i = 0; i < len; i++) {
        int32_t byte_id = byte_token(v, (uint8_t)piece[i]);
        if (byte_id >= 0 && tok_ivec_push(out, byte_id)) return -1;
    }
    return 0;
}

static int merge_and_emit(const tok_vocab *v, spm_scratch *s, const char *text, size_t len, tok_ivec *out) {
    if (split_symbols(s, text, len)) return -1;
    for (size_t i = 1; i < s->n; i++) {
        if (add_bigram(v, s, text, (int32_t)i - 1, (int32_t)i)) return -1;
    }
    while (s->heap.n > 0) {
        tok_bigram b = tok_heap_pop(&s->heap);
        tok_symbol *left = &s->symbols[b.left], *right = &s->symbols[b.right];
        if (left->len == 0 || right->len == 0 || left->len + right->len != b.size) continue;
        left->len += right->len;
        right->len = 0;
        left->next = right->next;
        if (right->next >= 0) s->symbols[right->next].prev = b.left;
        if (add_bigram(v, s, text, left->prev, b.left) || add_bigram(v, s, text, b.left, left->next)) return -1;
    }
    for (int32_t i = s->n ? 0 : -1; i >= 0; i = s->symbols[i].next) {
        if (emit_piece(v, text + s->symbols[i].off, s->symbols[i].len, out)) return -1;
    }
    return 0;
}

int tok_spm_encode(const tok_vocab *v, const char *text, size_t len, tok_ivec *out, lm_error *err) {
    spm_scratch s = {0};
    int rc = merge_and_emit(v, &s, text, len, out);
    if (rc) lm_error_set(err, "SentencePiece: out of memory");
    free(s.symbols);
    free(s.heap.data);
    return rc;
}
