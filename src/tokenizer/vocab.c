/* vocab.c - the vocabulary from a GGUF file's tokenizer.* metadata, set up
 * as llama.cpp's llama_vocab::impl::load does: token texts, scores and types,
 * BPE merge ranks, special ids with llama.cpp's defaults, add_bos/add_eos, the
 * tokens llama.cpp recognizes by their text (end of turn, fill-in-the-middle,
 * end of generation) and the special-token matcher.
 *
 * Memory: token texts are copied into one arena (the vocab outlives the
 * gguf_file); the text->id and merge maps own copies of their keys. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

/* llama.cpp's token types (tokenizer.ggml.token_type) */
enum { TYPE_NORMAL = 1, TYPE_UNKNOWN = 2, TYPE_CONTROL = 3, TYPE_USER_DEFINED = 4, TYPE_UNUSED = 5, TYPE_BYTE = 6 };

static uint32_t attr_of_type(int32_t type) {
    switch (type) {
    case TYPE_NORMAL: return TOK_ATTR_NORMAL;
    case TYPE_UNKNOWN: return TOK_ATTR_UNKNOWN;
    case TYPE_CONTROL: return TOK_ATTR_CONTROL;
    case TYPE_USER_DEFINED: return TOK_ATTR_USER_DEFINED;
    case TYPE_UNUSED: return TOK_ATTR_UNUSED;
    case TYPE_BYTE: return TOK_ATTR_BYTE;
    default: return TOK_ATTR_UNDEFINED;
    }
}

static bool str_is(gguf_str s, const char *lit) { return s.len == strlen(lit) && memcmp(s.data, lit, s.len) == 0; }

static int32_t id_of(const tok_vocab *v, const char *text) { return tok_strmap_get(&v->token_ids, text, strlen(text)); }

/* the array at KEY, checked to hold at least MIN_LEN elements of one of the types */
static int64_t find_array(const gguf_file *f, const char *key, gguf_type t1, gguf_type t2, uint64_t min_len,
                          lm_error *err) {
    int64_t idx = gguf_find_key(f, key);
    if (idx < 0) return -1;
    if (gguf_kv_type(f, idx) != GGUF_TYPE_ARRAY || (gguf_arr_type(f, idx) != t1 && gguf_arr_type(f, idx) != t2)) {
        lm_error_set(err, "%s: %s has the wrong type", gguf_path(f), key);
        return -2;
    }
    if (gguf_arr_len(f, idx) < min_len) {
        lm_error_set(err, "%s: %s has %llu entries, fewer than the %llu tokens", gguf_path(f), key,
                     (unsigned long long)gguf_arr_len(f, idx), (unsigned long long)min_len);
        return -2;
    }
    return idx;
}

static int load_tokens(tok_vocab *v, const gguf_file *f, lm_error *err) {
    const char *path = gguf_path(f);
    int64_t idx = find_array(f, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, GGUF_TYPE_STRING, 0, err);
    if (idx == -1) lm_error_set(err, "%s: no tokenizer.ggml.tokens", path);
    if (idx < 0) return -1;
    uint64_t n = gguf_arr_len(f, idx);
    if (n == 0 || n > INT32_MAX / 2) {
        lm_error_set(err, "%s: tokenizer.ggml.tokens has %llu entries", path, (unsigned long long)n);
        return -1;
    }
    v->n_tokens = (int32_t)n;
    uint64_t arena_len = 0;
    for (uint64_t i = 0; i < n; i++) arena_len += (gguf_arr_str(f, idx, i).len ? gguf_arr_str(f, idx, i).len : 24) + 1;
    if (arena_len > UINT32_MAX) {
        lm_error_set(err, "%s: tokenizer.ggml.tokens is too large", path);
        return -1;
    }
    v->text_arena = malloc(arena_len);
    v->text_off = malloc(n * sizeof(uint32_t));
    v->text_len = malloc(n * sizeof(uint32_t));
    v->scores = calloc(n, sizeof(float));
    v->attr = malloc(n * sizeof(uint32_t));
    v->is_eog = calloc(n, 1);
    if (!v->text_arena || !v->text_off || !v->text_len || !v->scores || !v->attr || !v->is_eog ||
        tok_strmap_init(&v->token_ids, (uint32_t)n))
        goto oom;
    uint32_t at = 0;
    for (uint64_t i = 0; i < n; i++) {
        gguf_str s = gguf_arr_str(f, idx, i);
        char *dst = v->text_arena + at;
        uint32_t len = (uint32_t)s.len;
        if (len == 0) { /* llama.cpp renames an empty token so that it stays unique */
            fprintf(stderr, "lamina: warning: %s: empty token at index %llu\n", path, (unsigned long long)i);
            len = (uint32_t)snprintf(dst, 24, "[EMPTY_%llu]", (unsigned long long)i);
        } else {
            memcpy(dst, s.data, len);
        }
        dst[len] = '\0';
        v->text_off[i] = at;
        v->text_len[i] = len;
        v->attr[i] = TOK_ATTR_NORMAL;
        at += len + 1;
        if (tok_strmap_put(&v->token_ids, dst, len, (int32_t)i, true)) goto oom;
    }
    return 0;
oom:
    lm_error_set(err, "%s: out of memory for %llu tokens", path, (unsigned long long)n);
    return -1;
}

static int load_scores_and_types(tok_vocab *v, const gguf_file *f, lm_error *err) {
    const uint64_t n = (uint64_t)v->n_tokens;
    int64_t idx = find_array(f, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, GGUF_TYPE_INT32, n, err);
    if (idx == -2) return -1;
    if (idx >= 0) {
        const uint8_t *data = gguf_arr_data(f, idx);
        for (uint64_t i = 0; i < n; i++) {
            if (gguf_arr_type(f, idx) == GGUF_TYPE_FLOAT32) {
                memcpy(&v->scores[i], data + 4 * i, 4);
            } else {
                int32_t s;
                memcpy(&s, data + 4 * i, 4);
                v->scores[i] = (float)s;
            }
        }
    }
    idx = find_array(f, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, GGUF_TYPE_INT32, n, err);
    if (idx == -2) return -1;
    if (idx >= 0) {
        const uint8_t *data = gguf_arr_data(f, idx);
        for (uint64_t i = 0; i < n; i++) {
            int32_t type;
            memcpy(&type, data + 4 * i, 4);
            v->attr[i] = attr_of_type(type);
        }
    }
    return 0;
}

/* "left right" -> rank; llama.cpp splits each line at its first space after
 * the first byte and keeps the first rank of a repeated pair */
static int load_merges(tok_vocab *v, const gguf_file *f, lm_error *err) {
    const char *path = gguf_path(f);
    int64_t idx = find_array(f, "tokenizer.ggml.merges", GGUF_TYPE_STRING, GGUF_TYPE_STRING, 0, err);
    if (idx == -1) lm_error_set(err, "%s: no tokenizer.ggml.merges (a gpt2 tokenizer needs them)", path);
    if (idx < 0) return -1;
    uint64_t n = gguf_arr_len(f, idx);
    if (n > INT32_MAX / 2 || tok_strmap_init(&v->merge_ranks, (uint32_t)n)) {
        lm_error_set(err, "%s: out of memory for %llu merges", path, (unsigned long long)n);
        return -1;
    }
    for (uint64_t i = 0; i < n; i++) {
        gguf_str line = gguf_arr_str(f, idx, i);
        const char *space = line.len > 1 ? memchr(line.data + 1, ' ', line.len - 1) : NULL;
        /* no separator: llama.cpp records the pair ("", "") */
        const char *key = space ? line.data : " ";
        size_t key_len = space ? line.len : 1;
        if (tok_strmap_put(&v->merge_ranks, key, key_len, (int32_t)i, false)) {
            lm_error_set(err, "%s: out of memory for %llu merges", path, (unsigned long long)n);
            return -1;
        }
    }
    return 0;
}

/* overrides *ID from KEY when present and in range (llama.cpp's rules) */
static void read_special_id(const tok_vocab *v, const gguf_file *f, const char *key, int32_t *id) {
    if (*id >= v->n_tokens) {
        fprintf(stderr, "lamina: warning: %s: default %s = %d is out of the vocab, disabling it\n", gguf_path(f), key,
                *id);
        *id = -1;
    }
    uint32_t new_id;
    if (gguf_get_u32(f, key, &new_id)) return;
    if (new_id >= (uint32_t)v->n_tokens) {
        fprintf(stderr, "lamina: warning: %s: bad %s = %u, keeping %d\n", gguf_path(f), key, new_id, *id);
        return;
    }
    *id = (int32_t)new_id;
}

static void read_special_ids(tok_vocab *v, const gguf_file *f) {
    struct {
        const char *key;
        int32_t *id;
    } keys[] = {
        {"tokenizer.ggml.bos_token_id", &v->bos},         {"tokenizer.ggml.eos_token_id", &v->eos},
        {"tokenizer.ggml.eot_token_id", &v->eot},         {"tokenizer.ggml.eom_token_id", &v->eom},
        {"tokenizer.ggml.unknown_token_id", &v->unk},     {"tokenizer.ggml.seperator_token_id", &v->sep},
        {"tokenizer.ggml.padding_token_id", &v->pad},     {"tokenizer.ggml.mask_token_id", &v->mask},
        {"tokenizer.ggml.fim_pre_token_id", &v->fim_pre}, {"tokenizer.ggml.fim_suf_token_id", &v->fim_suf},
        {"tokenizer.ggml.fim_mid_token_id", &v->fim_mid}, {"tokenizer.ggml.fim_pad_token_id", &v->fim_pad},
        {"tokenizer.ggml.fim_rep_token_id", &v->fim_rep}, {"tokenizer.ggml.fim_sep_token_id", &v->fim_sep},
        {"tokenizer.ggml.prefix_token_id", &v->fim_pre},  {"tokenizer.ggml.suffix_token_id", &v->fim_suf},
        {"tokenizer.ggml.middle_token_id", &v->fim_mid},
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) read_special_id(v, f, keys[i].key, keys[i].id);
}

/* If *ID is unset, the lowest id among the tokens with one of TEXTS (llama.cpp
 * takes the first it meets in a hash map's order); marked control. */
static void detect_by_text(tok_vocab *v, int32_t *id, const char *const *texts) {
    if (*id >= 0) return;
    for (const char *const *t = texts; *t; t++) {
        int32_t found = id_of(v, *t);
        if (found >= 0 && (*id < 0 || found < *id)) *id = found;
    }
    if (*id >= 0) v->attr[*id] |= TOK_ATTR_CONTROL;
}

static void detect_special_tokens(tok_vocab *v) {
    static const char *const eot[] = {
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",         "<|endoftext|>",      "<|end_of_text|>",
        "<EOT>",      "_<EOT>",     "[EOT]",   "<｜end▁of▁sentence｜>", "<end_of_utterance>", NULL};
    static const char *const eom[] = {"<|eom_id|>", NULL};
    static const char *const fim_pre[] = {"<|fim_prefix|>",  "<fim-prefix>", "<fim_prefix>",
                                          "<｜fim▁begin｜>", "<PRE>",        "▁<PRE>",
                                          "<|code_prefix|>", "<|prefix|>",   NULL};
    static const char *const fim_suf[] = {"<|fim_suffix|>",  "<fim-suffix>", "<fim_suffix>",
                                          "<｜fim▁hole｜>",  "<SUF>",        "▁<SUF>",
                                          "<|code_suffix|>", "<|suffix|>",   NULL};
    static const char *const fim_mid[] = {"<|fim_middle|>",  "<fim-middle>", "<fim_middle>",
                                          "<｜fim▁end｜>",   "<MID>",        "▁<MID>",
                                          "<|code_middle|>", "<|middle|>",   NULL};
    static const char *const fim_pad[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", NULL};
    static const char *const fim_rep[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", NULL};
    static const char *const fim_sep[] = {"<|file_sep|>", NULL};
    detect_by_text(v, &v->eot, eot);
    detect_by_text(v, &v->eom, eom);
    detect_by_text(v, &v->fim_pre, fim_pre);
    detect_by_text(v, &v->fim_suf, fim_suf);
    detect_by_text(v, &v->fim_mid, fim_mid);
    detect_by_text(v, &v->fim_pad, fim_pad);
    detect_by_text(v, &v->fim_rep, fim_rep);
    detect_by_text(v, &v->fim_sep, fim_sep);
}

static bool text_is(const tok_vocab *v, int32_t id, const char *text) { return strcmp(tok_text_of(v, id), text) == 0; }

/* llama.cpp's special_eog_ids */
static void build_eog_set(tok_vocab *v) {
    /* clang-format off */
    static const char *const eog_texts[] = {
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>", "<end_of_turn>",
        "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>",
        "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>", "<｜end▁of▁sentence｜>", "[e~[", NULL};
    /* clang-format on */
    const int32_t by_id[] = {v->fim_pad, v->fim_rep, v->fim_sep};
    for (size_t i = 0; i < 3; i++) {
        if (by_id[i] >= 0) v->is_eog[by_id[i]] = 1;
    }
    for (const char *const *t = eog_texts; *t; t++) {
        int32_t id = id_of(v, *t);
        if (id < 0) continue;
        v->is_eog[id] = 1;
        v->attr[id] |= TOK_ATTR_CONTROL;
    }
    /* gpt-oss: these are always rendered */
    static const char *const user_defined[] = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>", NULL};
    for (const char *const *t = user_defined; *t; t++) {
        int32_t id = id_of(v, *t);
        if (id >= 0) v->attr[id] = TOK_ATTR_USER_DEFINED;
    }
    const int32_t always[] = {v->eos, v->eot, v->eom};
    for (size_t i = 0; i < 3; i++) {
        if (always[i] >= 0) v->is_eog[always[i]] = 1;
    }
    /* o200k_harmony / solar-open: <|end|> ends a message, not the generation */
    bool has_return = false, has_call = false, has_flush = false, has_normal_s_marker = false;
    int32_t end_id = -1, s_id = -1;
    for (int32_t id = 0; id < v->n_tokens; id++) {
        if (!v->is_eog[id]) continue;
        has_return |= text_is(v, id, "<|return|>");
        has_call |= text_is(v, id, "<|call|>") || text_is(v, id, "<|calls|>");
        has_flush |= text_is(v, id, "<|flush|>");
        has_normal_s_marker |= text_is(v, id, "<|tool_response>") || text_is(v, id, "<|plamo:eos|>");
        if (text_is(v, id, "<|end|>")) end_id = id;
        if (text_is(v, id, "</s>")) s_id = id;
    }
    if (end_id >= 0 && has_call && (has_return || has_flush)) {
        v->is_eog[end_id] = 0;
        v->attr[end_id] = TOK_ATTR_USER_DEFINED;
    }
    /* gemma4 and plamo have a normal </s> */
    if (s_id >= 0 && has_normal_s_marker) {
        v->is_eog[s_id] = 0;
        v->attr[s_id] = TOK_ATTR_NORMAL;
    }
}

static bool contains_ci(gguf_str s, const char *needle) {
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= s.len; i++) {
        size_t k = 0;
        while (k < n && (s.data[i + k] | 0x20) == needle[k]) k++;
        if (k == n) return true;
    }
    return false;
}

/* llama.cpp's per-model strip attributes (not stored in GGUF) */
static void set_strip_attrs(tok_vocab *v, const gguf_file *f) {
    gguf_str name = {0}, pre = {0};
    gguf_get_str(f, "general.name", &name);
    gguf_get_str(f, "tokenizer.ggml.pre", &pre);
    if (str_is(pre, "jina-v2-de") || str_is(pre, "jina-v2-es") || str_is(pre, "jina-v2-code")) {
        int32_t id = id_of(v, "<mask>");
        if (id >= 0) v->attr[id] |= TOK_ATTR_LSTRIP;
    } else if (contains_ci(name, "phi-3") || contains_ci(name, "phi3")) {
        for (int32_t r = 0; r < v->n_special; r++) v->attr[v->special_ids[r]] |= TOK_ATTR_RSTRIP;
        int32_t id = id_of(v, "</s>");
        if (id >= 0) v->attr[id] |= TOK_ATTR_RSTRIP;
        static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>"};
        for (size_t i = 0; i < 3; i++) {
            id = id_of(v, keep[i]);
            if (id >= 0) v->attr[id] &= ~(uint32_t)TOK_ATTR_RSTRIP;
        }
    } else if (contains_ci(name, "modern-bert")) {
        int32_t id = id_of(v, "[MASK]");
        if (id >= 0) v->attr[id] |= TOK_ATTR_LSTRIP;
    }
}

/* the tokenizer kind and the defaults llama.cpp gives it */
static int init_kind(tok_vocab *v, const gguf_file *f, lm_error *err) {
    gguf_str model;
    if (gguf_get_str(f, "tokenizer.ggml.model", &model)) {
        lm_error_set(err, "%s: no tokenizer.ggml.model", gguf_path(f));
        return -1;
    }
    v->bos = v->eos = v->eot = v->eom = v->unk = v->sep = v->pad = v->mask = -1;
    v->fim_pre = v->fim_suf = v->fim_mid = v->fim_pad = v->fim_rep = v->fim_sep = -1;
    if (str_is(model, "llama")) {
        v->kind = TOK_MODEL_SPM;
        v->bos = 1;
        v->eos = 2;
        v->unk = 0;
        v->add_space_prefix = true;
        v->add_bos = true;
        return 0;
    }
    if (str_is(model, "gpt2")) {
        v->kind = TOK_MODEL_BPE;
        v->bos = 11;
        v->eos = 11;
        return 0;
    }
    lm_error_set(err, "%s: tokenizer.ggml.model '%.*s' is not supported (only 'llama' and 'gpt2')", gguf_path(f),
                 (int)(model.len > 64 ? 64 : model.len), model.data);
    return -1;
}

static int init_pretokenizer(tok_vocab *v, const gguf_file *f, lm_error *err) {
    gguf_str pre = {0};
    char name[128] = "";
    if (!gguf_get_str(f, "tokenizer.ggml.pre", &pre)) {
        snprintf(name, sizeof(name), "%.*s", (int)(pre.len < sizeof(name) ? pre.len : sizeof(name) - 1), pre.data);
    }
    tok_pre_flags flags;
    v->pretok = tok_pretok_create(name, gguf_path(f), &flags, err);
    if (!v->pretok) return -1;
    v->ignore_merges = flags.ignore_merges;
    if (flags.force_add_bos) v->add_bos = true;
    if (flags.no_bos) v->bos = -1;
    return 0;
}

tok_vocab *tok_vocab_load(const gguf_file *f, lm_error *err) {
    tok_vocab *v = calloc(1, sizeof(*v));
    if (!v) {
        lm_error_set(err, "%s: out of memory", gguf_path(f));
        return NULL;
    }
    if (init_kind(v, f, err) || load_tokens(v, f, err) || load_scores_and_types(v, f, err)) goto fail;
    if (v->kind == TOK_MODEL_BPE && (load_merges(v, f, err) || init_pretokenizer(v, f, err))) goto fail;
    gguf_get_bool(f, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix);
    read_special_ids(v, f);
    gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &v->add_bos);
    gguf_get_bool(f, "tokenizer.ggml.add_eos_token", &v->add_eos);
    detect_special_tokens(v);
    build_eog_set(v);
    if (tok_special_build(v)) {
        lm_error_set(err, "%s: out of memory for the special tokens", gguf_path(f));
        goto fail;
    }
    set_strip_attrs(v, f);
    return v;
fail:
    tok_vocab_free(v);
    return NULL;
}

void tok_vocab_free(tok_vocab *v) {
    if (!v) return;
    free(v->text_arena);
    free(v->text_off);
    free(v->text_len);
    free(v->scores);
    free(v->attr);
    free(v->is_eog);
    tok_strmap_free(&v->token_ids);
    tok_strmap_free(&v->merge_ranks);
    tok_pretok_free(v->pretok);
    free(v->special_ids);
    free(v->trie);
    free(v);
}

int32_t tok_n_vocab(const tok_vocab *v) { return v->n_tokens; }
int32_t tok_bos(const tok_vocab *v) { return v->bos; }
int32_t tok_eos(const tok_vocab *v) { return v->eos; }
int32_t tok_eot(const tok_vocab *v) { return v->eot; }
bool tok_add_bos(const tok_vocab *v) { return v->add_bos; }

bool tok_is_eog(const tok_vocab *v, int32_t id) { return id >= 0 && id < v->n_tokens && v->is_eog[id]; }

bool tok_is_control(const tok_vocab *v, int32_t id) {
    return id >= 0 && id < v->n_tokens && (v->attr[id] & TOK_ATTR_CONTROL);
}

const char *tok_text(const tok_vocab *v, int32_t id) { return id >= 0 && id < v->n_tokens ? tok_text_of(v, id) : NULL; }
