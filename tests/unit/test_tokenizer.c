/* test_tokenizer.c - the tokenizer against llama.cpp, token for token.
 *
 * Expectations come from llama.cpp itself (tests/fixtures/tokenizer_unit/,
 * written by scripts/gen_tokenizer_unit_fixtures.py with llama-cpp-python)
 * for the two real models: encodings of hand-picked tricky strings (with and
 * without BOS and special-token parsing), the vocab's special ids and
 * end-of-generation set, token pieces, and for the BPE vocab the same
 * strings under two dozen other tokenizer.ggml.pre values. Then properties
 * that need no reference: decode(encode(x)) == x, the streaming
 * detokenizer's UTF-8 safety, 10k random byte strings without a crash,
 * speed, concurrent encoding, and the error paths of a broken vocabulary. */
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "gguf/gguf.h"
#include "gguf_writer.h"
#include "tokenizer/tokenizer.h"

#define MAX_IDS (1 << 16)

static int32_t ids_buf[MAX_IDS];

static size_t unhex(const char *hex, char *out) {
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned b;
        sscanf(hex + 2 * i, "%2x", &b);
        out[i] = (char)b;
    }
    return n;
}

static bool ids_equal(const int32_t *a, int64_t n, const json_t *expected) {
    if (n != (int64_t)json_array_size(expected)) return false;
    for (int64_t i = 0; i < n; i++) {
        if (a[i] != json_integer_value(json_array_get(expected, (size_t)i))) return false;
    }
    return true;
}

static void print_ids(const char *label, const int32_t *ids, int64_t n) {
    fprintf(stderr, "  %s:", label);
    for (int64_t i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, n > 40 ? " ...\n" : "\n");
}

/* encodes each case of CASES and compares with its "ids" */
static void check_encodings(const tok_vocab *v, const json_t *cases, bool default_add_bos, const char *what) {
    static char text[1 << 16];
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c) {
        size_t len = unhex(json_string_value(json_object_get(c, "hex")), text);
        json_t *add_bos = json_object_get(c, "add_bos"), *special = json_object_get(c, "parse_special");
        bool bos = add_bos ? json_is_true(add_bos) : default_add_bos;
        bool parse = special ? json_is_true(special) : true;
        lm_error err = {{0}};
        int64_t n = tok_encode(v, text, len, bos, parse, ids_buf, MAX_IDS, &err);
        const json_t *want = json_object_get(c, "ids");
        bool ok = n >= 0 && ids_equal(ids_buf, n, want);
        CHECK(ok, "%s: encode(\"%s\", bos=%d, special=%d) differs from llama.cpp", what,
              json_string_value(json_object_get(c, "text")), bos, parse);
        if (!ok) {
            print_ids("lamina", ids_buf, n);
            int32_t ref[64];
            int64_t nref = (int64_t)json_array_size(want);
            for (int64_t k = 0; k < nref && k < 64; k++) ref[k] = (int32_t)json_integer_value(json_array_get(want, k));
            print_ids("llama.cpp", ref, nref);
        }
    }
}

static void check_vocab_facts(const tok_vocab *v, const json_t *facts, const char *what) {
    CHECK(tok_n_vocab(v) == json_integer_value(json_object_get(facts, "n_tokens")), "%s: n_vocab", what);
    CHECK(tok_bos(v) == json_integer_value(json_object_get(facts, "bos")), "%s: bos %d", what, tok_bos(v));
    CHECK(tok_eos(v) == json_integer_value(json_object_get(facts, "eos")), "%s: eos %d", what, tok_eos(v));
    CHECK(tok_eot(v) == json_integer_value(json_object_get(facts, "eot")), "%s: eot %d", what, tok_eot(v));
    CHECK(tok_add_bos(v) == json_is_true(json_object_get(facts, "add_bos")), "%s: add_bos", what);
    const json_t *eog = json_object_get(facts, "eog");
    size_t k = 0;
    int n_wrong = 0;
    for (int32_t id = 0; id < tok_n_vocab(v); id++) {
        bool want = k < json_array_size(eog) && json_integer_value(json_array_get(eog, k)) == id;
        k += want;
        if (tok_is_eog(v, id) != want && n_wrong++ < 5) fprintf(stderr, "  tok_is_eog(%d) = %d\n", id, !want);
    }
    CHECK(n_wrong == 0, "%s: %d ids disagree with llama.cpp's end-of-generation set", what, n_wrong);
    CHECK(!tok_is_eog(v, -1) && !tok_is_eog(v, tok_n_vocab(v)), "%s: eog out of range", what);
}

static void check_pieces(const tok_vocab *v, const json_t *pieces, const char *what) {
    static char want[4096], got[4096];
    size_t i;
    json_t *p;
    json_array_foreach(pieces, i, p) {
        int32_t id = (int32_t)json_integer_value(json_object_get(p, "id"));
        for (int special = 0; special < 2; special++) {
            size_t n = unhex(json_string_value(json_object_get(p, special ? "special" : "plain")), want);
            int got_n = tok_piece(v, id, special, got, sizeof(got));
            CHECK(got_n == (int)n && memcmp(got, want, n) == 0, "%s: piece of %d (special=%d): %d bytes, want %zu",
                  what, id, special, got_n, n);
        }
    }
    char small[2];
    CHECK(tok_piece(v, -1, true, small, 2) == -1 && tok_piece(v, tok_n_vocab(v), true, small, 2) == -1,
          "%s: a bad id gives -1", what);
}

/* the concatenated pieces of IDS (special tokens rendered), skipping a leading BOS */
static size_t decode(const tok_vocab *v, const int32_t *ids, int64_t n, bool skip_bos, char *out, size_t cap) {
    size_t len = 0;
    for (int64_t i = skip_bos ? 1 : 0; i < n; i++) {
        int k = tok_piece(v, ids[i], true, out + len, (int)(cap - len));
        if (k < 0 || (size_t)k > cap - len) return (size_t)-1;
        len += (size_t)k;
    }
    return len;
}

/* well-formed UTF-8 (Unicode Table 3-7: no overlongs, surrogates or > U+10FFFF) */
static bool valid_utf8(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t k = c < 0x80                 ? 1
                   : c >= 0xc2 && c <= 0xdf ? 2
                   : c >= 0xe0 && c <= 0xef ? 3
                   : c >= 0xf0 && c <= 0xf4 ? 4
                                            : 0;
        if (k == 0 || i + k > n) return false;
        unsigned char c1 = k > 1 ? (unsigned char)s[i + 1] : 0x80;
        if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 > 0x9f) || (c == 0xf0 && c1 < 0x90) ||
            (c == 0xf4 && c1 > 0x8f))
            return false;
        for (size_t j = 1; j < k; j++) {
            if (((unsigned char)s[i + j] & 0xc0) != 0x80) return false;
        }
        i += k;
    }
    return true;
}

/* SentencePiece reads U+2581 as a space: such texts cannot round-trip */
static bool has_escaped_space(const char *s, size_t n) {
    for (size_t i = 0; i + 3 <= n; i++) {
        if (!memcmp(s + i, "\xe2\x96\x81", 3)) return true;
    }
    return false;
}

/* streams IDS; every chunk must be whole UTF-8; returns the text */
static size_t stream_all(const tok_vocab *v, const int32_t *ids, int64_t n, char *out, size_t cap, bool *chunks_ok) {
    tok_stream s;
    tok_stream_init(&s);
    size_t len = 0;
    *chunks_ok = true;
    for (int64_t i = 0; i < n; i++) {
        int k = tok_stream_push(v, &s, ids[i], out + len, (int)(cap - len));
        if (k < 0 || (size_t)k > cap - len) return (size_t)-1;
        *chunks_ok &= valid_utf8(out + len, (size_t)k);
        len += (size_t)k;
    }
    len += (size_t)tok_stream_flush(&s, out + len, (int)(cap - len));
    return len;
}

/* decode(encode(x)) == x and the stream gives x, for the valid UTF-8 cases */
static void check_roundtrips(const tok_vocab *v, const json_t *cases, const char *what) {
    static char text[1 << 16], back[1 << 17];
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c) {
        if (json_is_true(json_object_get(c, "parse_special"))) continue; /* control tokens stream as nothing */
        size_t len = unhex(json_string_value(json_object_get(c, "hex")), text);
        if (!valid_utf8(text, len) || has_escaped_space(text, len)) continue;
        lm_error err;
        int64_t n = tok_encode(v, text, len, false, false, ids_buf, MAX_IDS, &err);
        size_t got = decode(v, ids_buf, n, false, back, sizeof(back));
        CHECK(got == len && memcmp(back, text, len) == 0, "%s: decode(encode(\"%s\")) differs", what,
              json_string_value(json_object_get(c, "text")));
        bool chunks_ok;
        got = stream_all(v, ids_buf, n, back, sizeof(back), &chunks_ok);
        CHECK(got == len && memcmp(back, text, len) == 0 && chunks_ok, "%s: streaming \"%s\" differs", what,
              json_string_value(json_object_get(c, "text")));
    }
}

static int32_t find_token(const tok_vocab *v, const char *text) {
    for (int32_t id = 0; id < tok_n_vocab(v); id++) {
        if (!strcmp(tok_text(v, id), text)) return id;
    }
    return -1;
}

/* byte-fallback tokens split a character; broken sequences become U+FFFD */
static void check_stream_bytes(const tok_vocab *v) {
    int32_t f0 = find_token(v, "<0xF0>"), x9f = find_token(v, "<0x9F>"), x99 = find_token(v, "<0x99>");
    int32_t x82 = find_token(v, "<0x82>"), xff = find_token(v, "<0xFF>"), e2 = find_token(v, "<0xE2>");
    int32_t a = find_token(v, "a");
    CHECK(f0 >= 0 && x9f >= 0 && x99 >= 0 && x82 >= 0 && xff >= 0 && e2 >= 0 && a >= 0, "byte tokens present");
    if (f0 < 0 || x9f < 0 || x99 < 0 || x82 < 0 || xff < 0 || e2 < 0 || a < 0) return;
    tok_stream s;
    tok_stream_init(&s);
    char out[64];
    CHECK(tok_stream_push(v, &s, f0, out, sizeof(out)) == 0, "F0 held back");
    CHECK(tok_stream_push(v, &s, x9f, out, sizeof(out)) == 0, "F0 9F held back");
    CHECK(tok_stream_push(v, &s, x99, out, sizeof(out)) == 0, "F0 9F 99 held back");
    CHECK(tok_stream_push(v, &s, x82, out, 3) == 4 && s.n_pending == 3, "too small: nothing consumed");
    int n = tok_stream_push(v, &s, x82, out, sizeof(out));
    CHECK(n == 4 && !memcmp(out, "\xf0\x9f\x99\x82", 4), "U+1F642 complete: %d", n);
    n = tok_stream_push(v, &s, xff, out, sizeof(out));
    CHECK(n == 3 && !memcmp(out, "\xef\xbf\xbd", 3), "0xFF -> U+FFFD: %d", n);
    tok_stream_push(v, &s, f0, out, sizeof(out));
    n = tok_stream_push(v, &s, a, out, sizeof(out));
    CHECK(n == 4 && !memcmp(out,
                            "\xef\xbf\xbd"
                            "a",
                            4),
          "F0 then 'a' -> U+FFFD a: %d", n);
    tok_stream_push(v, &s, e2, out, sizeof(out));
    CHECK(tok_stream_flush(&s, out, 2) == 3 && s.n_pending == 1, "flush needs 3 bytes");
    n = tok_stream_flush(&s, out, sizeof(out));
    CHECK(n == 3 && !memcmp(out, "\xef\xbf\xbd", 3) && s.n_pending == 0, "flush of a cut sequence: %d", n);
    CHECK(tok_stream_flush(&s, out, sizeof(out)) == 0, "nothing left to flush");
    CHECK(tok_stream_push(v, &s, -5, out, sizeof(out)) == -1, "bad id");
    /* D7 is invalid only because of the byte after it, which starts a
     * sequence that is held back: the U+FFFD for D7 must be written (the
     * fuzzers found its length returned over unwritten bytes) */
    int32_t d7 = find_token(v, "<0xD7>"), ec = find_token(v, "<0xEC>");
    CHECK(d7 >= 0 && ec >= 0, "byte tokens D7, EC present");
    if (d7 < 0 || ec < 0) return;
    tok_stream_init(&s);
    CHECK(tok_stream_push(v, &s, d7, out, sizeof(out)) == 0, "D7 held back");
    memset(out, 0x55, sizeof(out));
    n = tok_stream_push(v, &s, ec, out, sizeof(out));
    CHECK(n == 3 && !memcmp(out, "\xef\xbf\xbd", 3), "D7 before EC -> U+FFFD, EC held: %d", n);
}

/* multi-byte characters split across byte-level BPE tokens, and space stripping */
static void check_stream_split_chars(const tok_vocab *v, const char *what) {
    /* emoji, ZWJ, CJK, Arabic, and U+31350 (CJK Ext. H: byte fallback in SentencePiece) */
    const char *text = "\xf0\x9f\x99\x82\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9 \xe6\x97\xa5\xe6\x9c\xac \xd8\xb9"
                       "\xf0\xb1\x8d\x90";
    lm_error err;
    int64_t n = tok_encode(v, text, strlen(text), false, false, ids_buf, MAX_IDS, &err);
    int n_partial = 0;
    char piece[64];
    for (int64_t i = 0; i < n; i++) {
        int k = tok_piece(v, ids_buf[i], false, piece, sizeof(piece));
        n_partial += !valid_utf8(piece, (size_t)k);
    }
    CHECK(n_partial > 0, "%s: some token holds part of a character (%d)", what, n_partial);
    char out[256];
    bool chunks_ok;
    size_t len = stream_all(v, ids_buf, n, out, sizeof(out), &chunks_ok);
    CHECK(len == strlen(text) && !memcmp(out, text, len) && chunks_ok, "%s: streamed emoji/CJK", what);

    n = tok_encode(v, " hello", 6, false, false, ids_buf, MAX_IDS, &err);
    tok_stream s;
    tok_stream_init(&s);
    s.strip_leading_space = true;
    len = 0;
    for (int64_t i = 0; i < n; i++)
        len += (size_t)tok_stream_push(v, &s, ids_buf[i], out + len, (int)(sizeof(out) - len));
    CHECK(len == 5 && !memcmp(out, "hello", 5), "%s: strip_leading_space", what);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

/* 10k random byte strings (mostly invalid UTF-8): no crash, ids in range;
 * 2k random valid UTF-8 strings: decode(encode(x)) == x. (Below U+40000 and
 * without control bytes: SmolLM2's byte-level vocab has no token for the
 * bytes F1 and F2 nor for some C0 controls, and llama.cpp drops such bytes.) */
static void check_random(const tok_vocab *v, const char *what) {
    char text[256], back[4096];
    int bad_ids = 0, failures = 0, bad_roundtrips = 0;
    for (int it = 0; it < 10000; it++) {
        size_t len = rnd() % 96;
        for (size_t i = 0; i < len; i++) text[i] = (char)rnd();
        lm_error err;
        int64_t n = tok_encode(v, text, len, it & 1, it & 2, ids_buf, MAX_IDS, &err);
        failures += n < 0;
        for (int64_t i = 0; i < n; i++) bad_ids += ids_buf[i] < 0 || ids_buf[i] >= tok_n_vocab(v);
    }
    for (int it = 0; it < 2000; it++) {
        size_t len = 0;
        for (int k = rnd() % 24; k > 0; k--) {
            uint32_t r = rnd() % 10, cp;
            if (r < 4)
                cp = 0x20 + rnd() % 0x5f;
            else if (r < 5)
                cp = (uint32_t) " \t\n\r"[rnd() % 4];
            else if (r < 8)
                cp = 0x80 + rnd() % 0x2f80;
            else
                cp = 0x3000 + rnd() % 0x3d000;
            if ((cp >= 0xd800 && cp < 0xe000) || cp == 0x2581) cp = 'x';
            if (cp < 0x80)
                text[len++] = (char)cp;
            else if (cp < 0x800)
                len += (size_t)sprintf(text + len, "%c%c", 0xc0 | (cp >> 6), 0x80 | (cp & 63));
            else if (cp < 0x10000)
                len +=
                    (size_t)sprintf(text + len, "%c%c%c", 0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63));
            else
                len += (size_t)sprintf(text + len, "%c%c%c%c", 0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 63),
                                       0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63));
        }
        lm_error err;
        int64_t n = tok_encode(v, text, len, false, false, ids_buf, MAX_IDS, &err);
        size_t got = decode(v, ids_buf, n, false, back, sizeof(back));
        bad_roundtrips += got != len || memcmp(back, text, len) != 0;
    }
    CHECK(failures == 0 && bad_ids == 0, "%s: random bytes: %d failures, %d ids out of range", what, failures, bad_ids);
    CHECK(bad_roundtrips == 0, "%s: %d of 2000 random UTF-8 strings do not round-trip", what, bad_roundtrips);
}

/* about LEN bytes of English-like prose (malloc'd, NUL-terminated) */
static char *english(size_t len) {
    static const char *const words[] = {"the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "while",
                                        "engineers", "write", "tokenizers", "that", "match", "exactly,", "it's",
                                        "2024", "and", "we've", "got", "(many)", "reasons!"};
    char *text = malloc(len + 32);
    size_t at = 0;
    while (at < len) at += (size_t)sprintf(text + at, "%s%s", words[rnd() % 22], rnd() % 12 ? " " : ".\n");
    text[len] = '\0';
    return text;
}

/* 100 KB of English prose must encode well under a second */
static void check_speed(const tok_vocab *v, const char *what) {
    char *text = english(100 * 1024);
    lm_error err;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int64_t n = tok_encode(v, text, strlen(text), true, true, ids_buf, MAX_IDS, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("%s: 100 KB of English -> %lld tokens in %.1f ms\n", what, (long long)n, 1e3 * secs);
    CHECK(n > 10000 && secs < 0.5, "%s: 100 KB took %.3f s", what, secs);
    free(text);
}

/* the vocab is shared read-only: threads encoding at once get the same ids */
typedef struct worker {
    const tok_vocab *v;
    const char *text;
    const int32_t *want;
    int64_t n_want;
    int mismatches;
} worker;

static void *encode_worker(void *arg) {
    worker *w = arg;
    int32_t *ids = malloc(MAX_IDS * sizeof(int32_t));
    for (int round = 0; round < 4; round++) {
        lm_error err;
        int64_t n = tok_encode(w->v, w->text, strlen(w->text), true, true, ids, MAX_IDS, &err);
        w->mismatches += n != w->n_want || memcmp(ids, w->want, (size_t)n * sizeof(int32_t)) != 0;
    }
    free(ids);
    return NULL;
}

static void check_threads(const tok_vocab *v, const char *what) {
    char *text = english(16 * 1024);
    lm_error err;
    int64_t n = tok_encode(v, text, strlen(text), true, true, ids_buf, MAX_IDS, &err);
    worker workers[4];
    pthread_t threads[4];
    for (int i = 0; i < 4; i++) {
        workers[i] = (worker){.v = v, .text = text, .want = ids_buf, .n_want = n};
        pthread_create(&threads[i], NULL, encode_worker, &workers[i]);
    }
    int mismatches = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        mismatches += workers[i].mismatches;
    }
    CHECK(mismatches == 0, "%s: %d concurrent encodings differ", what, mismatches);
    free(text);
}

/* ---- the BPE vocab under other tokenizer.ggml.pre values ---- */

static void put_str(gw *w, gguf_str s) {
    gw_u64(w, s.len);
    gw_bytes(w, s.data, s.len);
}

/* a GGUF image with SRC's tokenizer.ggml.* keys, tokenizer.ggml.pre = PRE (or none) */
static void build_vocab_gguf(gw *w, const gguf_file *src, const char *pre) {
    int64_t n_kv = 0;
    for (int64_t i = 0; i < gguf_n_kv(src); i++) {
        gguf_str key = gguf_key_at(src, i);
        n_kv += key.len > 15 && !memcmp(key.data, "tokenizer.ggml.", 15) &&
                !(key.len == 18 && !memcmp(key.data + 15, "pre", 3));
    }
    gw_header(w, 3, 0, (uint64_t)n_kv + (pre != NULL));
    if (pre) gw_kv_str(w, "tokenizer.ggml.pre", pre);
    for (int64_t i = 0; i < gguf_n_kv(src); i++) {
        gguf_str key = gguf_key_at(src, i);
        if (!(key.len > 15 && !memcmp(key.data, "tokenizer.ggml.", 15)) ||
            (key.len == 18 && !memcmp(key.data + 15, "pre", 3)))
            continue;
        put_str(w, key);
        gguf_type t = gguf_kv_type(src, i);
        gw_u32(w, t);
        char name[128];
        snprintf(name, sizeof(name), "%.*s", (int)key.len, key.data);
        uint32_t u;
        bool b;
        if (t == GGUF_TYPE_STRING) {
            gguf_str s;
            gguf_get_str(src, name, &s);
            put_str(w, s);
        } else if (t == GGUF_TYPE_BOOL) {
            gguf_get_bool(src, name, &b);
            gw_u8(w, b);
        } else if (t == GGUF_TYPE_UINT32 || t == GGUF_TYPE_INT32) {
            gguf_get_u32(src, name, &u);
            gw_u32(w, u);
        } else { /* arrays of strings or of 4-byte numbers */
            gguf_type et = gguf_arr_type(src, i);
            uint64_t n = gguf_arr_len(src, i);
            gw_u32(w, et);
            gw_u64(w, n);
            for (uint64_t k = 0; k < n; k++) {
                if (et == GGUF_TYPE_STRING)
                    put_str(w, gguf_arr_str(src, i, k));
                else
                    gw_bytes(w, (const char *)gguf_arr_data(src, i) + 4 * k, 4);
            }
        }
    }
    gw_pad(w, 32);
}

static void check_pre_variants(const gguf_file *src, const json_t *variants) {
    const json_t *fallback = NULL;
    size_t i;
    json_t *var;
    json_array_foreach(variants, i, var) {
        const char *pre = json_string_value(json_object_get(var, "pre")); /* NULL: no key */
        if (!pre) fallback = json_object_get(var, "cases");
        gw w = {0};
        build_vocab_gguf(&w, src, pre);
        lm_error err = {{0}};
        gguf_file *f = gguf_open_memory(w.buf, w.len, "vocab", &err);
        tok_vocab *v = f ? tok_vocab_load(f, &err) : NULL;
        gguf_close(f);
        char what[96];
        snprintf(what, sizeof(what), "pre=%s", pre ? pre : "(none)");
        CHECK(v != NULL, "%s: load: %s", what, err.msg);
        if (v && json_is_true(json_object_get(var, "llama_cpp_rejects"))) {
            /* llama.cpp refuses an unknown pre; lamina warns and uses the default */
            if (fallback) check_encodings(v, fallback, true, what);
        } else if (v) {
            CHECK(tok_bos(v) == json_integer_value(json_object_get(var, "bos")), "%s: bos", what);
            CHECK(tok_add_bos(v) == json_is_true(json_object_get(var, "add_bos")), "%s: add_bos", what);
            check_encodings(v, json_object_get(var, "cases"), true, what);
        }
        tok_vocab_free(v);
        gw_free(&w);
    }
}

/* ---- a synthetic SentencePiece vocab: ties, overlapping user-defined tokens ---- */

static void check_synthetic(const char *fixture_path) {
    json_error_t jerr;
    json_t *fx = json_load_file(fixture_path, 0, &jerr);
    CHECK(fx != NULL, "%s: %s", fixture_path, jerr.text);
    if (!fx) return;
    const json_t *tokens = json_object_get(fx, "tokens"), *scores = json_object_get(fx, "scores");
    const json_t *types = json_object_get(fx, "token_types");
    const size_t n = json_array_size(tokens);
    gw w = {0};
    gw_header(&w, 3, 0, 4);
    gw_kv_str(&w, "tokenizer.ggml.model", "llama");
    gw_key(&w, "tokenizer.ggml.tokens", GGUF_TYPE_ARRAY);
    gw_u32(&w, GGUF_TYPE_STRING);
    gw_u64(&w, n);
    for (size_t i = 0; i < n; i++) gw_str(&w, json_string_value(json_array_get(tokens, i)));
    gw_key(&w, "tokenizer.ggml.scores", GGUF_TYPE_ARRAY);
    gw_u32(&w, GGUF_TYPE_FLOAT32);
    gw_u64(&w, n);
    for (size_t i = 0; i < n; i++) gw_f32(&w, (float)json_real_value(json_array_get(scores, i)));
    gw_key(&w, "tokenizer.ggml.token_type", GGUF_TYPE_ARRAY);
    gw_u32(&w, GGUF_TYPE_INT32);
    gw_u64(&w, n);
    for (size_t i = 0; i < n; i++) gw_u32(&w, (uint32_t)json_integer_value(json_array_get(types, i)));
    gw_pad(&w, 32);
    lm_error err = {{0}};
    gguf_file *f = gguf_open_memory(w.buf, w.len, "synthetic-spm", &err);
    tok_vocab *v = f ? tok_vocab_load(f, &err) : NULL;
    gguf_close(f);
    CHECK(v != NULL, "synthetic vocab: %s", err.msg);
    if (v) {
        check_encodings(v, json_object_get(fx, "encode"), true, "synthetic-spm");
        /* a 300-byte piece: longer than the stream's stack buffer */
        int32_t long_id = -1;
        for (int32_t id = 0; id < tok_n_vocab(v); id++) {
            if (strlen(tok_text(v, id)) == 300) long_id = id;
        }
        char out[400];
        tok_stream s;
        tok_stream_init(&s);
        CHECK(tok_piece(v, long_id, false, out, 10) == 300, "long piece length past cap");
        CHECK(tok_stream_push(v, &s, long_id, out, 100) == 300, "long piece: too small, nothing consumed");
        CHECK(tok_stream_push(v, &s, long_id, out, sizeof(out)) == 300 && out[0] == 'x' && out[299] == 'x',
              "long piece streamed");
    }
    tok_vocab_free(v);
    gw_free(&w);
    json_decref(fx);
}

/* ---- broken vocabularies give an error naming the key ---- */

static void expect_load_error(gw *w, const char *needle, const char *what) {
    gw_pad(w, 32);
    lm_error err = {{0}};
    gguf_file *f = gguf_open_memory(w->buf, w->len, "broken.gguf", &err);
    CHECK(f != NULL, "%s: gguf_open_memory: %s", what, err.msg);
    tok_vocab *v = f ? tok_vocab_load(f, &err) : NULL;
    CHECK(f && v == NULL && strstr(err.msg, needle) && strstr(err.msg, "broken.gguf"), "%s: error '%s'", what, err.msg);
    tok_vocab_free(v);
    gguf_close(f);
    gw_free(w);
}

static void check_errors(void) {
    static const char *const toks[] = {"a", "b", "ab"};
    gw w = {0};
    gw_header(&w, 3, 0, 1);
    gw_kv_arr_str(&w, "tokenizer.ggml.tokens", toks, 3);
    expect_load_error(&w, "tokenizer.ggml.model", "no model");

    gw_header(&w, 3, 0, 2);
    gw_kv_str(&w, "tokenizer.ggml.model", "bert");
    gw_kv_arr_str(&w, "tokenizer.ggml.tokens", toks, 3);
    expect_load_error(&w, "not supported", "bert");

    gw_header(&w, 3, 0, 1);
    gw_kv_str(&w, "tokenizer.ggml.model", "llama");
    expect_load_error(&w, "tokenizer.ggml.tokens", "no tokens");

    gw_header(&w, 3, 0, 2);
    gw_kv_str(&w, "tokenizer.ggml.model", "gpt2");
    gw_kv_arr_str(&w, "tokenizer.ggml.tokens", toks, 3);
    expect_load_error(&w, "tokenizer.ggml.merges", "gpt2 without merges");

    gw_header(&w, 3, 0, 3);
    gw_kv_str(&w, "tokenizer.ggml.model", "llama");
    gw_kv_arr_str(&w, "tokenizer.ggml.tokens", toks, 3);
    gw_kv_arr_str(&w, "tokenizer.ggml.token_type", toks, 3);
    expect_load_error(&w, "tokenizer.ggml.token_type", "token types of the wrong type");

    gw_header(&w, 3, 0, 3);
    gw_kv_str(&w, "tokenizer.ggml.model", "llama");
    gw_kv_arr_str(&w, "tokenizer.ggml.tokens", toks, 3);
    gw_key(&w, "tokenizer.ggml.scores", GGUF_TYPE_ARRAY);
    gw_u32(&w, GGUF_TYPE_FLOAT32);
    gw_u64(&w, 2);
    gw_f32(&w, 1.0f);
    gw_f32(&w, 2.0f);
    expect_load_error(&w, "tokenizer.ggml.scores", "too few scores");
}

static void check_model(const char *fixture_path) {
    json_error_t jerr;
    json_t *fx = json_load_file(fixture_path, JSON_ALLOW_NUL, &jerr);
    CHECK(fx != NULL, "%s: %s", fixture_path, jerr.text);
    if (!fx) return;
    const char *model = json_string_value(json_object_get(fx, "model"));
    lm_error err = {{0}};
    gguf_file *f = gguf_open(model, &err);
    CHECK(f != NULL, "%s (run scripts/setup): %s", model, err.msg);
    tok_vocab *v = f ? tok_vocab_load(f, &err) : NULL;
    CHECK(!f || v != NULL, "%s: %s", model, err.msg);
    if (v) {
        const json_t *cases = json_object_get(fx, "encode");
        check_encodings(v, cases, true, model);
        check_vocab_facts(v, json_object_get(fx, "vocab"), model);
        check_pieces(v, json_object_get(fx, "pieces"), model);
        check_roundtrips(v, cases, model);
        check_stream_split_chars(v, model);
        if (find_token(v, "<0xF0>") >= 0) check_stream_bytes(v);
        check_random(v, model);
        check_speed(v, model);
        check_threads(v, model);
        int32_t two[2];
        int64_t n = tok_encode(v, "Hello world, once more", 22, false, false, two, 2, &err);
        CHECK(n > 2, "%s: encode reports the full count past cap (%lld)", model, (long long)n);
        if (json_object_get(fx, "pre_variants")) check_pre_variants(f, json_object_get(fx, "pre_variants"));
    }
    tok_vocab_free(v);
    gguf_close(f);
    json_decref(fx);
}

int main(void) {
    check_model("tests/fixtures/tokenizer_unit/smollm2-135m.json");
    check_model("tests/fixtures/tokenizer_unit/gemma3-270m.json");
    check_synthetic("tests/fixtures/tokenizer_unit/synthetic-spm.json");
    check_errors();
    return check_done("tokenizer");
}
