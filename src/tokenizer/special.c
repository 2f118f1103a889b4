/* special.c - special tokens in raw text: llama.cpp's tokenizer_st_partition.
 *
 * Control, user-defined and unknown tokens are cut out of the text before the
 * tokenizer proper runs, longest first: each one in turn splits every raw
 * fragment at its (non-overlapping, leftmost-first) occurrences. That order
 * is what llama.cpp does and it is not the same as a leftmost-longest scan.
 *
 * llama.cpp tries every special token on every fragment; Gemma has 6414 of
 * them. A byte trie over their texts finds, in one pass, the few that occur
 * in this text; only those run the splitting passes, in the same order. */
#define _GNU_SOURCE /* memmem */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

static int compare_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int32_t trie_new_node(tok_vocab *v, int32_t *cap, uint8_t byte) {
    if (v->n_trie == *cap) {
        int32_t cap2 = *cap ? 2 * *cap : 1024;
        tok_trie_node *p = realloc(v->trie, (size_t)cap2 * sizeof(tok_trie_node));
        if (!p) return -1;
        v->trie = p;
        *cap = cap2;
    }
    v->trie[v->n_trie] = (tok_trie_node){.first_child = -1, .next_sibling = -1, .special_rank = -1, .byte = byte};
    return v->n_trie++;
}

static int32_t trie_child(const tok_vocab *v, int32_t node, uint8_t byte) {
    for (int32_t c = v->trie[node].first_child; c >= 0; c = v->trie[c].next_sibling) {
        if (v->trie[c].byte == byte) return c;
    }
    return -1;
}

static int trie_insert(tok_vocab *v, int32_t *cap, const uint8_t *text, size_t len, int32_t rank) {
    int32_t node = v->trie_root[text[0]];
    if (node < 0) {
        node = trie_new_node(v, cap, text[0]);
        if (node < 0) return -1;
        v->trie_root[text[0]] = node;
    }
    for (size_t i = 1; i < len; i++) {
        int32_t child = trie_child(v, node, text[i]);
        if (child < 0) {
            child = trie_new_node(v, cap, text[i]);
            if (child < 0) return -1;
            v->trie[child].next_sibling = v->trie[node].first_child;
            v->trie[node].first_child = child;
        }
        node = child;
    }
    if (v->trie[node].special_rank < 0) v->trie[node].special_rank = rank;
    return 0;
}

int tok_special_build(tok_vocab *v) {
    const uint32_t special = TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN;
    v->n_special = 0;
    v->special_ids = malloc((size_t)v->n_tokens * sizeof(int32_t));
    if (!v->special_ids) return -1;
    for (int32_t id = 0; id < v->n_tokens; id++) {
        if (v->attr[id] & special) v->special_ids[v->n_special++] = id;
    }
    /* longest first, then by id: sort (~length, id) keys */
    uint64_t *keys = malloc((size_t)v->n_special * sizeof(uint64_t) + 1);
    if (!keys) return -1;
    for (int32_t r = 0; r < v->n_special; r++) {
        int32_t id = v->special_ids[r];
        keys[r] = ((uint64_t)(UINT32_MAX - v->text_len[id]) << 32) | (uint32_t)id;
    }
    qsort(keys, (size_t)v->n_special, sizeof(uint64_t), compare_u64);
    for (int32_t r = 0; r < v->n_special; r++) v->special_ids[r] = (int32_t)(keys[r] & UINT32_MAX);
    free(keys);
    for (int i = 0; i < 256; i++) v->trie_root[i] = -1;
    int32_t cap = 0;
    for (int32_t r = 0; r < v->n_special; r++) {
        int32_t id = v->special_ids[r];
        if (trie_insert(v, &cap, (const uint8_t *)tok_text_of(v, id), v->text_len[id], r)) return -1;
    }
    return 0;
}

/* marks in OCCURS (n_special) every special token found anywhere in TEXT */
static void find_occurring(const tok_vocab *v, const uint8_t *text, size_t len, uint8_t *occurs) {
    for (size_t i = 0; i < len; i++) {
        int32_t node = v->trie_root[text[i]];
        for (size_t j = i + 1; node >= 0; j++) {
            if (v->trie[node].special_rank >= 0) occurs[v->trie[node].special_rank] = 1;
            if (j == len) break;
            node = trie_child(v, node, text[j]);
        }
    }
}

static int push_fragment(tok_fragments *f, tok_fragment x) {
    if (f->n == f->cap) {
        size_t cap = f->cap ? 2 * f->cap : 16;
        tok_fragment *p = realloc(f->data, cap * sizeof(tok_fragment));
        if (!p) return -1;
        f->data = p;
        f->cap = cap;
    }
    f->data[f->n++] = x;
    return 0;
}

/* splits raw fragment FRAG at every occurrence of special token ID, into OUT */
static int split_fragment(const tok_vocab *v, const char *text, tok_fragment frag, int32_t id, tok_fragments *out) {
    const char *tok = tok_text_of(v, id);
    const size_t tok_len = v->text_len[id];
    const uint32_t attr = v->attr[id];
    size_t off = frag.off, len = frag.len;
    for (;;) {
        const char *hit = len >= tok_len ? memmem(text + off, len, tok, tok_len) : NULL;
        if (!hit) break;
        size_t match = (size_t)(hit - text);
        size_t left_len = match - off;
        if (attr & TOK_ATTR_LSTRIP) {
            while (left_len > 0 && isspace((unsigned char)text[off + left_len - 1])) left_len--;
        }
        if (left_len > 0 && push_fragment(out, (tok_fragment){.token = -1, .off = off, .len = left_len})) return -1;
        if (push_fragment(out, (tok_fragment){.token = id})) return -1;
        size_t right_off = match + tok_len, right_len = off + len - right_off;
        if (attr & TOK_ATTR_RSTRIP) {
            while (right_len > 0 && isspace((unsigned char)text[right_off])) {
                right_off++;
                right_len--;
            }
        }
        off = right_off;
        len = right_len;
        if (len == 0) return 0;
    }
    return push_fragment(out, (tok_fragment){.token = -1, .off = off, .len = len});
}

int tok_partition(const tok_vocab *v, const char *text, size_t len, bool parse_special, tok_fragments *out) {
    out->n = 0;
    if (len == 0) return 0;
    if (push_fragment(out, (tok_fragment){.token = -1, .off = 0, .len = len})) return -1;
    if (v->n_special == 0) return 0;
    uint8_t *occurs = calloc((size_t)v->n_special, 1);
    if (!occurs) return -1;
    find_occurring(v, (const uint8_t *)text, len, occurs);
    tok_fragments next = {0};
    int rc = 0;
    for (int32_t r = 0; r < v->n_special && rc == 0; r++) {
        int32_t id = v->special_ids[r];
        if (!occurs[r]) continue;
        if (!parse_special && (v->attr[id] & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN))) continue;
        next.n = 0;
        for (size_t i = 0; i < out->n && rc == 0; i++) {
            tok_fragment f = out->data[i];
            rc = f.token >= 0 ? push_fragment(&next, f) : split_fragment(v, text, f, id, &next);
        }
        tok_fragments tmp = *out;
        *out = next;
        next = tmp;
    }
    free(next.data);
    free(occurs);
    return rc;
}
