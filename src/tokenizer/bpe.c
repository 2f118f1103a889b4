/* bpe.c - byte-level BPE (tokenizer.ggml.model "gpt2"), as llama.cpp's
 * llm_tokenizer_bpe_session: pre-tokenize into words, then in each word
 * merge the adjacent pair of lowest merge rank (ties: leftmost) until no pair
 * has a rank; each resulting piece is a token, or else its single bytes are.
 *
 * Words are GPT-2 byte-mapped UTF-8, so a symbol starts as one mapped byte
 * (one code point) and pieces never contain a raw space: "left right" is an
 * unambiguous key into the merge table. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

typedef struct bpe_scratch {
    tok_symbol *symbols;
    size_t cap;
    tok_heap heap;
    tok_bytes key; /* "left right" */
} bpe_scratch;

/* the merge rank of symbols a and b of WORD, or -1 */
static int32_t pair_rank(const tok_vocab *v, bpe_scratch *s, const char *word, const tok_symbol *a,
                         const tok_symbol *b) {
    s->key.n = 0;
    if (tok_bytes_append(&s->key, word + a->off, a->len) || tok_bytes_append(&s->key, " ", 1) ||
        tok_bytes_append(&s->key, word + b->off, b->len))
        return -2;
    return tok_strmap_get(&v->merge_ranks, s->key.data, s->key.n);
}

static int add_bigram(const tok_vocab *v, bpe_scratch *s, const char *word, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return 0;
    int32_t rank = pair_rank(v, s, word, &s->symbols[left], &s->symbols[right]);
    if (rank == -2) return -1;
    if (rank < 0) return 0;
    tok_bigram b = {
        .key = -(double)rank, .left = left, .right = right, .size = s->symbols[left].len + s->symbols[right].len};
    return tok_heap_push(&s->heap, b);
}

/* one symbol per UTF-8 character (llama.cpp's unicode_len_utf8 split) */
static int split_symbols(bpe_scratch *s, const char *word, size_t len, size_t *n_symbols) {
    size_t n = 0;
    for (size_t off = 0; off < len; n++) {
        if (n == s->cap) {
            size_t cap = s->cap ? 2 * s->cap : 64;
            tok_symbol *p = realloc(s->symbols, cap * sizeof(tok_symbol));
            if (!p) return -1;
            s->symbols = p;
            s->cap = cap;
        }
        size_t char_len = tok_utf8_len((uint8_t)word[off]);
        if (char_len > len - off) char_len = len - off;
        s->symbols[n] =
            (tok_symbol){.prev = (int32_t)n - 1, .next = -1, .off = (uint32_t)off, .len = (uint32_t)char_len};
        if (n > 0) s->symbols[n - 1].next = (int32_t)n;
        off += char_len;
    }
    *n_symbols = n;
    return 0;
}

static int merge_word(const tok_vocab *v, bpe_scratch *s, const char *word, size_t len, size_t *n_symbols) {
    if (split_symbols(s, word, len, n_symbols)) return -1;
    s->heap.n = 0;
    for (size_t i = 1; i < *n_symbols; i++) {
        if (add_bigram(v, s, word, (int32_t)i - 1, (int32_t)i)) return -1;
    }
    while (s->heap.n > 0) {
        tok_bigram b = tok_heap_pop(&s->heap);
        tok_symbol *left = &s->symbols[b.left], *right = &s->symbols[b.right];
        /* a stale pair: one side was merged away or has grown since */
        if (left->len == 0 || right->len == 0 || left->len + right->len != b.size) continue;
        left->len += right->len;
        right->len = 0;
        left->next = right->next;
        if (right->next >= 0) s->symbols[right->next].prev = b.left;
        if (add_bigram(v, s, word, left->prev, b.left) || add_bigram(v, s, word, b.left, left->next)) return -1;
    }
    return 0;
}

/* the tokens of one piece: itself, or else each of its bytes that is a token */
static int emit_piece(const tok_vocab *v, const char *piece, size_t len, tok_ivec *out) {
    int32_t id = tok_strmap_get(&v->token_ids, piece, len);
    if (id >= 0) return tok_ivec_push(out, id);
    for (size_t i = 0; i < len; i++) {
        int32_t byte_id = tok_strmap_get(&v->token_ids, piece + i, 1);
        if (byte_id >= 0 && tok_ivec_push(out, byte_id)) return -1;
    }
    return 0;
}

static int encode_word(const tok_vocab *v, bpe_scratch *s, const char *word, size_t len, tok_ivec *out) {
    if (v->ignore_merges) {
        int32_t id = tok_strmap_get(&v->token_ids, word, len);
        if (id >= 0) return tok_ivec_push(out, id);
    }
    size_t n_symbols;
    if (merge_word(v, s, word, len, &n_symbols)) return -1;
    for (size_t i = 0; i < n_symbols; i++) {
        const tok_symbol *sym = &s->symbols[i];
        if (sym->len > 0 && emit_piece(v, word + sym->off, sym->len, out)) return -1;
    }
    return 0;
}

int tok_bpe_encode(const tok_vocab *v, const char *text, size_t len, tok_ivec *out, lm_error *err) {
    tok_bytes words = {0};
    tok_ivec ends = {0};
    bpe_scratch s = {0};
    int rc = tok_pretok_split(v->pretok, text, len, &words, &ends, err);
    size_t start = 0;
    for (size_t w = 0; rc == 0 && w < ends.n; w++) {
        size_t end = (size_t)ends.data[w];
        if (encode_word(v, &s, words.data + start, end - start, out)) {
            lm_error_set(err, "BPE: out of memory");
            rc = -1;
        }
        start = end;
    }
    free(words.data);
    free(ends.data);
    free(s.symbols);
    free(s.heap.data);
    free(s.key.data);
    return rc;
}
