/* pretok.c - the pre-tokenizer of byte-level BPE vocabularies: split a text
 * into words with the regexes llama.cpp uses for tokenizer.ggml.pre, then map
 * each word's bytes through the GPT-2 byte-to-unicode table.
 *
 * llama.cpp runs these patterns through std::regex (after "collapsing" each
 * non-ASCII code point to a byte that stands for its category) or through
 * hand-written splitters for the gpt2/llama3/qwen2 patterns. Both behave as
 * the regex does under these semantics, which we reproduce with PCRE2:
 *  - \p{L} \p{N} \p{P} \p{S} \p{M} are llama.cpp's Unicode 15.1 categories:
 *    PCRE2 10.42 knows Unicode 14, so the code points assigned since are
 *    added to each class explicitly (UNICODE15_*); \p{Lu} \p{Ll} \p{Lt} \p{Lm}
 *    \p{Lo} all mean \p{L}, as in llama.cpp's collapsed regexes.
 *  - \s \S \d \w are ASCII (no PCRE2_UCP), like std::regex in the C locale;
 *    instead every non-ASCII White_Space code point of the text is replaced by
 *    U+000B before matching, which is what llama.cpp does too.
 *  - $ is the end of the text only (ECMAScript): PCRE2_DOLLAR_ENDONLY.
 *  - the text between two matches is a word of its own; each pattern splits
 *    the words of the one before, never looking across their boundaries.
 * Invalid UTF-8 bytes decode to U+FFFD (and are re-encoded as such); the
 * surrogates and code points past U+10FFFF that llama.cpp's lenient decoder
 * lets through are matched as U+E000 (the same category: "other"). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/pretok_patterns.h"
#include "tokenizer/tok_internal.h"

#define MAX_PATTERNS 8

/* ---- which patterns each tokenizer.ggml.pre uses ---- */
typedef struct pre_entry {
    const char *names; /* '|'-separated values of tokenizer.ggml.pre */
    const char *const *patterns;
    tok_pre_flags flags;
} pre_entry;

static const pre_entry PRE_TABLE[] = {
    {"default", RE_DEFAULT, {0}},
    {"llama3|llama-v3|llama-bpe|falcon3|falcon-h1|pixtral|midm-2.0|lfm2|jina-v5-nano",
     RE_LLAMA3,
     {.ignore_merges = true, .force_add_bos = true}},
    {"dbrx|smaug-bpe", RE_LLAMA3, {0}},
    {"jais-2", RE_JAIS2, {0}},
    {"deepseek-llm", RE_DEEPSEEK_LLM, {0}},
    {"deepseek-v3|hunyuan-dense|joyai-llm|hy_v4", RE_DEEPSEEK3, {0}},
    {"spark2_5", RE_SPARK2_5, {0}},
    {"youtu", RE_YOUTU, {.ignore_merges = true}},
    {"deepseek-coder", RE_DEEPSEEK_CODER, {0}},
    {"falcon", RE_FALCON, {0}},
    {"starcoder|refact|command-r|smollm|codeshell|exaone|minerva-7b|mellum2", RE_STARCODER, {0}},
    {"gpt-2|phi-2|jina-es|jina-de|gigachat|jina-v2-es|jina-v2-de|a.x-4.0|mellum|modern-bert|jina-v1-en|"
     "jina-v2-code|roberta-bpe|exaone4|mpt|olmo|jais|trillion|granite-docling",
     RE_GPT2,
     {0}},
    {"qwen2|deepseek-r1-qwen|kormo|f2llmv2|megrez|stablelm2|hunyuan|solar-open|grok-2", RE_QWEN2, {0}},
    {"qwen35", RE_QWEN35, {0}},
    {"poro-chat|bloom|gpt3-finnish", RE_PORO, {0}},
    {"chatglm-bpe", RE_LLAMA3, {.no_bos = true}},
    {"glm4|glm5", RE_LLAMA3, {.ignore_merges = true, .no_bos = true}},
    {"viking", RE_VIKING, {0}},
    {"tekken", RE_TEKKEN, {.ignore_merges = true, .force_add_bos = true}},
    {"chameleon", RE_CHAMELEON, {.force_add_bos = true}},
    {"gpt-4o|llama4|kanana2|talkie|minimax-m2", RE_GPT4O, {0}},
    {"granite-embed-multi-97m", RE_GRANITE_EMB_MULTI, {.ignore_merges = true}},
    {"bailingmoe|bailingmoe2|llada-moe", RE_BAILINGMOE, {0}},
    {"seed-coder", RE_SEED_CODER, {0}},
    {"ufakzeka", RE_UFAKZEKA, {0}},
    {"laguna", RE_LAGUNA, {0}},
    {"exaone-moe", RE_EXAONE_MOE, {0}},
    {"minicpm5", RE_MINICPM5, {.ignore_merges = true}},
};

static bool name_in_list(const char *name, const char *list) {
    size_t n = strlen(name);
    for (const char *p = list;;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && memcmp(p, name, n) == 0) return true;
        if (!bar) return false;
        p = bar + 1;
    }
}

/* ---- Unicode 15.0/15.1 additions to each category (absent from PCRE2 10.42) ---- */
static const char UNICODE15_L[] = "\\x{1123F}-\\x{11240}\\x{11F02}\\x{11F04}-\\x{11F10}\\x{11F12}-\\x{11F33}"
                                  "\\x{1342F}\\x{13441}-\\x{13446}\\x{1B132}\\x{1B155}\\x{1DF25}-\\x{1DF2A}"
                                  "\\x{1E030}-\\x{1E06D}\\x{1E4D0}-\\x{1E4EB}\\x{2B739}\\x{2EBF0}-\\x{2EE5D}"
                                  "\\x{31350}-\\x{323AF}";
static const char UNICODE15_N[] = "\\x{11F50}-\\x{11F59}\\x{1D2C0}-\\x{1D2D3}\\x{1E4F0}-\\x{1E4F9}";
static const char UNICODE15_P[] = "\\x{11B00}-\\x{11B09}\\x{11F43}-\\x{11F4F}";
static const char UNICODE15_S[] = "\\x{2FFC}-\\x{2FFF}\\x{31EF}\\x{1F6DC}\\x{1F774}-\\x{1F776}\\x{1F77B}-\\x{1F77F}"
                                  "\\x{1F7D9}\\x{1FA75}-\\x{1FA77}\\x{1FA87}-\\x{1FA88}\\x{1FAAD}-\\x{1FAAF}"
                                  "\\x{1FABB}-\\x{1FABD}\\x{1FABF}\\x{1FACE}-\\x{1FACF}\\x{1FADA}-\\x{1FADB}"
                                  "\\x{1FAE8}\\x{1FAF7}-\\x{1FAF8}";
static const char UNICODE15_M[] = "\\x{0CF3}\\x{0ECE}\\x{10EFD}-\\x{10EFF}\\x{11241}\\x{11F00}-\\x{11F01}\\x{11F03}"
                                  "\\x{11F34}-\\x{11F3A}\\x{11F3E}-\\x{11F42}\\x{13440}\\x{13447}-\\x{13455}"
                                  "\\x{1E08F}\\x{1E4EC}-\\x{1E4EF}";

/* the category a \p{NAME} stands for in llama.cpp, or 0 to keep it as is */
static char category_of(const char *name, size_t len) {
    if (len == 1 && strchr("LNPSM", name[0])) return name[0];
    if (len == 2 && name[0] == 'L' && strchr("ultmo", name[1])) return 'L';
    return 0;
}

static const char *unicode15_additions(char category) {
    switch (category) {
    case 'L': return UNICODE15_L;
    case 'N': return UNICODE15_N;
    case 'P': return UNICODE15_P;
    case 'S': return UNICODE15_S;
    default: return UNICODE15_M;
    }
}

/* Rewrites llama.cpp's pattern for PCRE2 (see the top of the file): each
 * \p{X} of the five categories becomes \p{X} plus its Unicode 15 additions,
 * wrapped in a class when outside one. Returns a malloc'd string or NULL. */
static char *rewrite_pattern(const char *pattern) {
    tok_bytes out = {0};
    bool in_class = false;
    int failed = 0;
    for (const char *p = pattern; *p && !failed;) {
        const char *close = p[0] == '\\' && p[1] == 'p' && p[2] == '{' ? strchr(p + 3, '}') : NULL;
        char category = close ? category_of(p + 3, (size_t)(close - p - 3)) : 0;
        if (category) {
            const char base[5] = {'\\', 'p', '{', category, '}'};
            const char *extra = unicode15_additions(category);
            if (!in_class) failed |= tok_bytes_append(&out, "[", 1);
            failed |= tok_bytes_append(&out, base, sizeof(base));
            failed |= tok_bytes_append(&out, extra, strlen(extra));
            if (!in_class) failed |= tok_bytes_append(&out, "]", 1);
            p = close + 1;
        } else if (p[0] == '\\' && p[1]) {
            failed |= tok_bytes_append(&out, p, 2);
            p += 2;
        } else {
            if (p[0] == '[') in_class = true;
            if (p[0] == ']') in_class = false;
            failed |= tok_bytes_append(&out, p, 1);
            p++;
        }
    }
    failed |= tok_bytes_append(&out, "", 1);
    if (failed) {
        free(out.data);
        return NULL;
    }
    return out.data;
}

struct tok_pretok {
    pcre2_code *codes[MAX_PATTERNS];
    int n_codes;
};

void tok_pretok_free(tok_pretok *p) {
    if (!p) return;
    for (int i = 0; i < p->n_codes; i++) pcre2_code_free(p->codes[i]);
    free(p);
}

static const pre_entry *find_entry(const char *name, const char *path) {
    if (!name || !*name) {
        fprintf(stderr,
                "lamina: warning: %s: no tokenizer.ggml.pre, using the default pre-tokenizer "
                "(generation quality may suffer)\n",
                path);
        return &PRE_TABLE[0];
    }
    for (size_t i = 0; i < sizeof(PRE_TABLE) / sizeof(PRE_TABLE[0]); i++) {
        if (name_in_list(name, PRE_TABLE[i].names)) return &PRE_TABLE[i];
    }
    fprintf(stderr, "lamina: warning: %s: unsupported tokenizer.ggml.pre '%s', using the default pre-tokenizer\n", path,
            name);
    return &PRE_TABLE[0];
}

tok_pretok *tok_pretok_create(const char *name, const char *path, tok_pre_flags *flags, lm_error *err) {
    const pre_entry *entry = find_entry(name, path);
    *flags = entry->flags;
    tok_pretok *p = calloc(1, sizeof(*p));
    if (!p) {
        lm_error_set(err, "%s: out of memory", path);
        return NULL;
    }
    for (const char *const *pat = entry->patterns; *pat; pat++) {
        char *rewritten = rewrite_pattern(*pat);
        if (!rewritten || p->n_codes == MAX_PATTERNS) {
            free(rewritten);
            lm_error_set(err, "%s: out of memory", path);
            tok_pretok_free(p);
            return NULL;
        }
        int code;
        PCRE2_SIZE at;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)rewritten, PCRE2_ZERO_TERMINATED,
                                       PCRE2_UTF | PCRE2_DOLLAR_ENDONLY | PCRE2_NO_UTF_CHECK, &code, &at, NULL);
        free(rewritten);
        if (!re) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(code, msg, sizeof(msg));
            lm_error_set(err, "%s: pre-tokenizer '%s': regex %d does not compile at %zu: %s", path,
                         name ? name : "default", p->n_codes, (size_t)at, (const char *)msg);
            tok_pretok_free(p);
            return NULL;
        }
        pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* without JIT it still matches, slower */
        p->codes[p->n_codes++] = re;
    }
    return p;
}

/* ---- splitting ---- */

/* llama.cpp's whitespace set (Unicode White_Space) */
static bool is_whitespace(uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0d) || cp == 0x20 || cp == 0x85 || cp == 0xa0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f ||
           cp == 0x3000;
}

/* what the regexes see in place of CP (see the top of the file) */
static uint32_t matched_as(uint32_t cp) {
    if (cp >= 0x80 && is_whitespace(cp)) return 0x0b;
    if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return 0xe000;
    return cp;
}

typedef struct split_state {
    uint32_t *cps; /* (n_cps) the decoded text */
    size_t n_cps;
    char *subject;      /* what the regexes run on: valid UTF-8 */
    uint32_t *byte_of;  /* (n_cps + 1) offset of each code point in subject */
    uint32_t *cp_at;    /* (subject bytes + 1) code point index at each byte offset */
    tok_ivec ranges[2]; /* (start, end) code point pairs, before and after a pattern */
    pcre2_match_data *md;
} split_state;

static int decode_text(split_state *s, const char *text, size_t len) {
    s->cps = malloc((len + 1) * sizeof(uint32_t));
    s->byte_of = malloc((len + 1) * sizeof(uint32_t));
    s->subject = malloc(4 * len + 1);
    s->cp_at = malloc((4 * len + 1) * sizeof(uint32_t));
    if (!s->cps || !s->byte_of || !s->subject || !s->cp_at) return -1;
    size_t pos = 0, at = 0;
    while (pos < len) {
        uint32_t cp = tok_utf8_decode_lenient((const uint8_t *)text, len, &pos);
        s->byte_of[s->n_cps] = (uint32_t)at;
        int n = tok_utf8_encode(matched_as(cp), s->subject + at);
        for (int k = 0; k < n; k++) s->cp_at[at + k] = (uint32_t)s->n_cps;
        at += (size_t)n;
        s->cps[s->n_cps++] = cp;
    }
    s->byte_of[s->n_cps] = (uint32_t)at;
    s->cp_at[at] = (uint32_t)s->n_cps;
    return 0;
}

static int push_range(tok_ivec *v, uint32_t start, uint32_t end) {
    return tok_ivec_push(v, (int32_t)start) || tok_ivec_push(v, (int32_t)end);
}

/* splits code points [start, end) by RE into OUT: matches and the gaps between */
static int split_range(split_state *s, const pcre2_code *re, uint32_t start, uint32_t end, tok_ivec *out,
                       lm_error *err) {
    const PCRE2_SPTR subject = (PCRE2_SPTR)(s->subject + s->byte_of[start]);
    const PCRE2_SIZE length = s->byte_of[end] - s->byte_of[start];
    const uint32_t base = s->byte_of[start];
    PCRE2_SIZE from = 0, word_start = 0;
    while (from < length) {
        uint32_t options = PCRE2_NO_UTF_CHECK;
        int rc = pcre2_match(re, subject, length, from, options, s->md, NULL);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
            rc = pcre2_match(re, subject, length, from, options | PCRE2_NO_JIT, s->md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(rc, msg, sizeof(msg));
            lm_error_set(err, "pre-tokenizer: regex match failed: %s", (const char *)msg);
            return -1;
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s->md);
        PCRE2_SIZE m0 = ov[0], m1 = ov[1];
        if (m1 == m0) {
            /* an empty match splits nothing: step over one character */
            from = m0 + tok_utf8_len(subject[m0]);
            continue;
        }
        if (m0 > word_start && push_range(out, s->cp_at[base + word_start], s->cp_at[base + m0])) goto oom;
        if (push_range(out, s->cp_at[base + m0], s->cp_at[base + m1])) goto oom;
        word_start = from = m1;
    }
    if (word_start < length && push_range(out, s->cp_at[base + word_start], end)) goto oom;
    return 0;
oom:
    lm_error_set(err, "pre-tokenizer: out of memory");
    return -1;
}

/* appends code points [start, end) to WORDS, each byte GPT-2 mapped */
static int emit_word(const split_state *s, uint32_t start, uint32_t end, tok_bytes *words) {
    for (uint32_t i = start; i < end; i++) {
        char raw[4];
        int n = tok_utf8_encode(s->cps[i], raw);
        for (int k = 0; k < n; k++) {
            char mapped[4];
            int m = tok_utf8_encode(tok_byte_to_cp((uint8_t)raw[k]), mapped);
            if (tok_bytes_append(words, mapped, (size_t)m)) return -1;
        }
    }
    return 0;
}

int tok_pretok_split(const tok_pretok *p, const char *text, size_t len, tok_bytes *words, tok_ivec *word_ends,
                     lm_error *err) {
    split_state s = {0};
    int rc = -1;
    if (len >= UINT32_MAX / 4 || decode_text(&s, text, len)) {
        lm_error_set(err, "pre-tokenizer: out of memory (%zu bytes of text)", len);
        goto done;
    }
    if (push_range(&s.ranges[0], 0, (uint32_t)s.n_cps)) {
        lm_error_set(err, "pre-tokenizer: out of memory");
        goto done;
    }
    int cur = 0;
    for (int r = 0; r < p->n_codes; r++) {
        pcre2_match_data_free(s.md);
        s.md = pcre2_match_data_create_from_pattern(p->codes[r], NULL);
        if (!s.md) {
            lm_error_set(err, "pre-tokenizer: out of memory");
            goto done;
        }
        tok_ivec *in = &s.ranges[cur], *out = &s.ranges[1 - cur];
        out->n = 0;
        for (size_t i = 0; i < in->n; i += 2) {
            if (split_range(&s, p->codes[r], (uint32_t)in->data[i], (uint32_t)in->data[i + 1], out, err)) goto done;
        }
        cur = 1 - cur;
    }
    const tok_ivec *final = &s.ranges[cur];
    for (size_t i = 0; i < final->n; i += 2) {
        if (final->data[i + 1] == final->data[i]) continue;
        if (emit_word(&s, (uint32_t) final->data[i], (uint32_t) final->data[i + 1], words) ||
            tok_ivec_push(word_ends, (int32_t)words->n)) {
            lm_error_set(err, "pre-tokenizer: out of memory");
            goto done;
        }
    }
    rc = 0;
done:
    pcre2_match_data_free(s.md);
    free(s.cps);
    free(s.byte_of);
    free(s.subject);
    free(s.cp_at);
    free(s.ranges[0].data);
    free(s.ranges[1].data);
    return rc;
}
