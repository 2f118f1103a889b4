/* tok_internal.h - what the tokenizer's files share: the vocab layout, the
 * string->id hash map, growable buffers, the bigram heap, and the entry
 * points of each stage (partition, pre-tokenizer, BPE, SentencePiece).
 *
 * Nothing here is public; the rest of lamina uses tokenizer.h only. */
#ifndef LAMINA_TOK_INTERNAL_H
#define LAMINA_TOK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "tokenizer/tokenizer.h"

/* ---- token attributes (llama.cpp's llama_token_attr bits) ---- */
enum {
    TOK_ATTR_UNDEFINED = 0,
    TOK_ATTR_UNKNOWN = 1 << 0,
    TOK_ATTR_UNUSED = 1 << 1,
    TOK_ATTR_NORMAL = 1 << 2,
    TOK_ATTR_CONTROL = 1 << 3,
    TOK_ATTR_USER_DEFINED = 1 << 4,
    TOK_ATTR_BYTE = 1 << 5,
    TOK_ATTR_LSTRIP = 1 << 7,
    TOK_ATTR_RSTRIP = 1 << 8,
};

/* ---- growable buffers ---- */
typedef struct tok_ivec {
    int32_t *data;
    size_t n, cap;
} tok_ivec;

typedef struct tok_bytes {
    char *data;
    size_t n, cap;
} tok_bytes;

int tok_ivec_push(tok_ivec *v, int32_t x);                   /* 0 or -1 (out of memory) */
int tok_bytes_append(tok_bytes *b, const void *p, size_t n); /* 0 or -1 */

/* ---- string -> int32 hash map (open addressing; keys copied into an arena) ---- */
typedef struct tok_strmap {
    uint32_t *slots; /* (mask + 1) entry index + 1; 0 = empty */
    uint32_t mask;
    uint32_t *key_off; /* (n) byte offset of each key in arena */
    uint32_t *key_len; /* (n) bytes */
    int32_t *value;    /* (n) */
    uint32_t n, cap;   /* entries */
    char *arena;
    size_t arena_len, arena_cap; /* bytes */
} tok_strmap;

/* expected_n sizes the table once (put fails past that many keys); 0 or -1 (out of memory) */
int tok_strmap_init(tok_strmap *m, uint32_t expected_n);
void tok_strmap_free(tok_strmap *m);
/* overwrite: replace the value of an existing key (else the first one stays) */
int tok_strmap_put(tok_strmap *m, const char *key, size_t len, int32_t value, bool overwrite);
/* the value, or -1 when absent */
int32_t tok_strmap_get(const tok_strmap *m, const char *key, size_t len);

/* ---- pre-tokenizer (byte-level BPE) ---- */
typedef struct tok_pretok tok_pretok;

/* what llama.cpp sets along with some pre-tokenizers */
typedef struct tok_pre_flags {
    bool ignore_merges; /* a word that is a whole token skips the merges */
    bool force_add_bos; /* add_bos defaults to true (llama3, tekken, ...) */
    bool no_bos;        /* the BOS id defaults to none (chatglm) */
} tok_pre_flags;

/* Compiles the split patterns for tokenizer.ggml.pre NAME (empty or unknown:
 * llama.cpp's default patterns, with a warning on stderr naming PATH) and
 * fills FLAGS. Returns NULL with err on a compile failure. Free with
 * tok_pretok_free(); read-only afterwards (safe to share between threads). */
tok_pretok *tok_pretok_create(const char *name, const char *path, tok_pre_flags *flags, lm_error *err);
void tok_pretok_free(tok_pretok *p);

/* Splits TEXT into words as llama.cpp's unicode_regex_split does: invalid
 * UTF-8 bytes become U+FFFD, each word is appended to WORDS already mapped
 * through the GPT-2 byte-to-unicode table, and WORD_ENDS receives the end
 * offset (bytes, in WORDS) of each word. Returns 0 or -1 with err. */
int tok_pretok_split(const tok_pretok *p, const char *text, size_t len, tok_bytes *words, tok_ivec *word_ends,
                     lm_error *err);

/* ---- UTF-8 ---- */
/* length of the sequence a lead byte announces (llama.cpp's unicode_len_utf8) */
static inline size_t tok_utf8_len(uint8_t lead) {
    static const uint8_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lookup[lead >> 4];
}
/* Decodes one code point at *pos as llama.cpp does (overlong forms and
 * surrogates accepted); an invalid byte gives U+FFFD and advances by one. */
uint32_t tok_utf8_decode_lenient(const uint8_t *s, size_t len, size_t *pos);
/* Encodes CP (up to 0x1FFFFF, the 4-byte form) into out; returns bytes. */
int tok_utf8_encode(uint32_t cp, char out[4]);
/* Length of the well-formed UTF-8 sequence at s (Unicode Table 3-7), 0 if the
 * bytes are malformed, or -(needed) if they are a valid but truncated prefix. */
int tok_utf8_check(const uint8_t *s, size_t len);

/* GPT-2 byte-level mapping: byte -> code point and back (-1: not a mapped code point) */
uint32_t tok_byte_to_cp(uint8_t byte);
int tok_cp_to_byte(uint32_t cp);

/* ---- the vocabulary ---- */
typedef enum tok_model_kind { TOK_MODEL_SPM, TOK_MODEL_BPE } tok_model_kind;

struct tok_vocab {
    tok_model_kind kind;
    int32_t n_tokens;
    char *text_arena;       /* all token texts, each NUL-terminated */
    uint32_t *text_off;     /* (n_tokens) offset into text_arena */
    uint32_t *text_len;     /* (n_tokens) bytes, without the NUL */
    float *scores;          /* (n_tokens) */
    uint32_t *attr;         /* (n_tokens) TOK_ATTR_* */
    uint8_t *is_eog;        /* (n_tokens) 1 = end of generation */
    tok_strmap token_ids;   /* text -> id (a later duplicate wins, as in llama.cpp) */
    tok_strmap merge_ranks; /* "left right" -> rank (BPE; the first duplicate wins) */

    int32_t bos, eos, eot, eom, unk, sep, pad, mask;
    int32_t fim_pre, fim_suf, fim_mid, fim_pad, fim_rep, fim_sep;
    bool add_bos, add_eos, add_space_prefix;
    bool ignore_merges;

    tok_pretok *pretok; /* BPE only */

    /* special tokens (control, user-defined, unknown), longest first */
    int32_t *special_ids; /* (n_special) */
    int32_t n_special;
    /* byte trie over the special texts: finds which of them occur in a text */
    struct tok_trie_node *trie;
    int32_t n_trie;
    int32_t trie_root[256]; /* first-byte -> node, -1 if none */
};

typedef struct tok_trie_node {
    int32_t first_child;  /* node index or -1 */
    int32_t next_sibling; /* node index or -1 */
    int32_t special_rank; /* index into special_ids of the token ending here, or -1 */
    uint8_t byte;
} tok_trie_node;

static inline const char *tok_text_of(const tok_vocab *v, int32_t id) { return v->text_arena + v->text_off[id]; }

/* builds special_ids and the trie from attr; 0 or -1 (out of memory) */
int tok_special_build(tok_vocab *v);

/* ---- partition of a text by special tokens ---- */
typedef struct tok_fragment {
    int32_t token; /* >= 0: a special token; -1: raw text */
    size_t off;    /* raw text: bytes into the input */
    size_t len;    /* raw text: bytes */
} tok_fragment;

typedef struct tok_fragments {
    tok_fragment *data;
    size_t n, cap;
} tok_fragments;

/* llama.cpp's tokenizer_st_partition: returns 0 or -1 (out of memory) */
int tok_partition(const tok_vocab *v, const char *text, size_t len, bool parse_special, tok_fragments *out);

/* ---- the two algorithms: append ids for one raw fragment ---- */
int tok_bpe_encode(const tok_vocab *v, const char *text, size_t len, tok_ivec *out, lm_error *err);
int tok_spm_encode(const tok_vocab *v, const char *text, size_t len, tok_ivec *out, lm_error *err);

/* ---- merge queue shared by BPE and SentencePiece ----
 * A max-heap on (key, then smaller left first): BPE uses key = -rank,
 * SentencePiece key = score, which is exactly the order of llama.cpp's
 * llm_bigram_bpe / llm_bigram_spm comparators. */
typedef struct tok_bigram {
    double key;
    int32_t left, right; /* symbol indices */
    uint32_t size;       /* bytes of the merged text */
} tok_bigram;

typedef struct tok_heap {
    tok_bigram *data;
    size_t n, cap;
} tok_heap;

int tok_heap_push(tok_heap *h, tok_bigram b); /* 0 or -1 (out of memory) */
tok_bigram tok_heap_pop(tok_heap *h);         /* h->n must be > 0 */

/* a symbol of the merge loops: a byte range of the word, in a linked list */
typedef struct tok_symbol {
    int32_t prev, next;
    uint32_t off, len; /* bytes */
} tok_symbol;

#endif
