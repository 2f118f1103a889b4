/* fuzz_tokenizer.c - arbitrary bytes through both real vocabularies
 * (SmolLM2: byte-level BPE; Gemma 3: SentencePiece). The first byte picks
 * the vocab (bit 0), add_bos (bit 1) and parse_special (bit 2); the rest is
 * the text.
 *
 * Checked on every input:
 *   - tok_encode: ids in range, the same result through a too-small buffer
 *     (the count, then the prefix that fits), BOS first when asked for;
 *   - tok_piece: the same bytes through a too-small buffer;
 *   - round trip: without special-token parsing, valid UTF-8 comes back
 *     byte for byte from the concatenated pieces (after the BOS asked
 *     for), except texts the vocab cannot represent: SentencePiece reads
 *     U+2581 as a space, and byte-level BPE drops bytes whose GPT-2
 *     character has no token (llama.cpp does the same);
 *   - the streaming detokenizer gives, chunk by chunk, valid UTF-8 whose
 *     concatenation is the whole decode (render_special off) with each
 *     invalid byte as U+FFFD and a cut sequence at the end as one U+FFFD;
 *     a too-small buffer consumes nothing. */
#include <stdlib.h>
#include <string.h>

#include "support.h"

#define MAX_IDS 65536

static const tok_vocab *vocabs[2];
static bool bpe_byte_ok[256]; /* SmolLM2 has a token for the GPT-2 character of this byte */
static int32_t ids[MAX_IDS], ids_small[8];

/* GPT-2's bytes_to_unicode: the code point standing for byte B */
static uint32_t gpt2_char(int b) {
    if ((b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff)) return (uint32_t)b;
    int n = 0;
    for (int k = 0; k < b; k++)
        if (!((k >= '!' && k <= '~') || (k >= 0xa1 && k <= 0xac) || (k >= 0xae && k <= 0xff))) n++;
    return 256u + (uint32_t)n;
}

static void init_bpe_bytes(const tok_vocab *v) {
    for (int b = 0; b < 256; b++) {
        uint32_t cp = gpt2_char(b);
        char want[3] = {(char)cp, 0, 0};
        if (cp >= 0x80) {
            want[0] = (char)(0xc0 | cp >> 6);
            want[1] = (char)(0x80 | (cp & 63));
        }
        for (int32_t id = 0; id < tok_n_vocab(v) && !bpe_byte_ok[b]; id++)
            bpe_byte_ok[b] = !strcmp(tok_text(v, id), want);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    vocabs[0] = fz_vocab(FZ_SMOLLM2, NULL);
    vocabs[1] = fz_vocab(FZ_GEMMA3, NULL);
    init_bpe_bytes(vocabs[0]);
    return 0;
}

/* length of the well-formed UTF-8 sequence at S (N bytes left): >0 if
 * complete, -1 if a proper prefix of one cut by the end, 0 if invalid */
static int utf8_seq(const uint8_t *s, size_t n) {
    uint8_t c = s[0];
    int k = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (!k) return 0;
    for (int j = 1; j < k; j++) {
        if ((size_t)j >= n) return -1;
        uint8_t lo = 0x80, hi = 0xbf;
        if (j == 1) {
            if (c == 0xe0) lo = 0xa0;
            if (c == 0xed) hi = 0x9f;
            if (c == 0xf0) lo = 0x90;
            if (c == 0xf4) hi = 0x8f;
        }
        if (s[j] < lo || s[j] > hi) return 0;
    }
    return k;
}

static bool utf8_valid(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n;) {
        int k = utf8_seq(s + i, n - i);
        if (k <= 0) return false;
        i += (size_t)k;
    }
    return true;
}

/* S with each invalid byte as U+FFFD and a cut sequence at the end as one
 * U+FFFD; malloc'd (*out_len bytes) */
static char *lossy(const uint8_t *s, size_t n, size_t *out_len) {
    char *out = malloc(3 * n + 3);
    size_t at = 0;
    for (size_t i = 0; i < n;) {
        int k = utf8_seq(s + i, n - i);
        if (k > 0) {
            memcpy(out + at, s + i, (size_t)k);
            at += (size_t)k;
            i += (size_t)k;
            continue;
        }
        memcpy(out + at, "\xef\xbf\xbd", 3);
        at += 3;
        i = k < 0 ? n : i + 1;
    }
    *out_len = at;
    return out;
}

/* the concatenated pieces of ids[from, n) (malloc'd, *len bytes) */
static char *decode(const tok_vocab *v, int64_t from, int64_t n, bool render_special, size_t *len) {
    size_t cap = 1024, at = 0;
    char *out = malloc(cap);
    for (int64_t i = from; i < n; i++) {
        char small[4];
        int k = tok_piece(v, ids[i], render_special, small, (int)sizeof(small));
        FZ_CHECK(k >= 0, "tok_piece(%d) = %d", ids[i], k);
        if (at + (size_t)k > cap) {
            while (at + (size_t)k > cap) cap *= 2;
            out = realloc(out, cap);
        }
        int again = tok_piece(v, ids[i], render_special, out + at, (int)(cap - at));
        FZ_CHECK(again == k, "tok_piece(%d): %d bytes, then %d", ids[i], k, again);
        FZ_CHECK(k > (int)sizeof(small) || !memcmp(small, out + at, (size_t)k), "tok_piece(%d): other bytes", ids[i]);
        at += (size_t)k;
    }
    *len = at;
    return out;
}

static bool representable(bool bpe, const uint8_t *text, size_t len) {
    if (!utf8_valid(text, len)) return false;
    for (size_t i = 0; i < len; i++) {
        if (bpe && !bpe_byte_ok[text[i]]) return false;
        if (!bpe && i + 3 <= len && !memcmp(text + i, "\xe2\x96\x81", 3)) return false;
    }
    return true;
}

/* streams ids[0, n) and compares with the whole decode */
static void check_stream(const tok_vocab *v, int64_t n) {
    size_t whole_len, want_len;
    char *whole = decode(v, 0, n, false, &whole_len);
    char *want = lossy((const uint8_t *)whole, whole_len, &want_len);
    char *got = malloc(want_len + 16);
    size_t at = 0;
    tok_stream s;
    tok_stream_init(&s);
    for (int64_t i = 0; i < n; i++) {
        char none[1];
        int need = tok_stream_push(v, &s, ids[i], none, 0);
        FZ_CHECK(need >= 0, "tok_stream_push(%d) = %d", ids[i], need);
        if (need > 0) {
            FZ_CHECK(at + (size_t)need <= want_len, "the stream gives more than the whole decode");
            int k = tok_stream_push(v, &s, ids[i], got + at, need);
            FZ_CHECK(k == need, "tok_stream_push(%d): %d bytes after asking for %d", ids[i], k, need);
        }
        FZ_CHECK(utf8_valid((const uint8_t *)got + at, (size_t)need), "token %lld streams invalid UTF-8", (long long)i);
        at += (size_t)need;
    }
    at += (size_t)tok_stream_flush(&s, got + at, 16);
    FZ_CHECK(s.n_pending == 0, "pending after flush");
    FZ_CHECK(at == want_len && !memcmp(got, want, at), "the stream (%zu bytes) differs from the decode (%zu bytes)", at,
             want_len);
    free(got);
    free(want);
    free(whole);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const uint8_t flags = data[0];
    const uint8_t *text = data + 1;
    const size_t len = size - 1;
    const bool bpe = !(flags & 1), add_bos = flags & 2, parse_special = flags & 4;
    const tok_vocab *v = vocabs[bpe ? 0 : 1];
    lm_error err = {{0}};

    int64_t n = tok_encode(v, (const char *)text, len, add_bos, parse_special, ids, MAX_IDS, &err);
    FZ_CHECK(n >= 0, "tok_encode failed: %s", err.msg);
    FZ_CHECK(n <= MAX_IDS, "%lld ids from %zu bytes", (long long)n, len);
    for (int64_t i = 0; i < n; i++) FZ_CHECK(ids[i] >= 0 && ids[i] < tok_n_vocab(v), "id %d", ids[i]);
    int64_t n_small = tok_encode(v, (const char *)text, len, add_bos, parse_special, ids_small, 8, &err);
    FZ_CHECK(n_small == n, "tok_encode gives %lld ids, then %lld into a small buffer", (long long)n,
             (long long)n_small);
    FZ_CHECK(!memcmp(ids, ids_small, sizeof(int32_t) * (size_t)(n < 8 ? n : 8)), "a small buffer gets other ids");
    const bool bos = add_bos && tok_add_bos(v) && tok_bos(v) >= 0;
    if (bos) FZ_CHECK(n >= 1 && ids[0] == tok_bos(v), "no BOS first");

    if (!parse_special && representable(bpe, text, len)) {
        size_t back_len;
        char *back = decode(v, bos ? 1 : 0, n, true, &back_len);
        FZ_CHECK(back_len == len && !memcmp(back, text, len), "decode(encode(x)) != x (%s, %zu bytes back of %zu)",
                 bpe ? "BPE" : "SPM", back_len, len);
        free(back);
    }
    check_stream(v, n);
    return 0;
}
