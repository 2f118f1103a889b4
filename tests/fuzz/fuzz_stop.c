/* fuzz_stop.c - the stop-string matcher of the engine's sequences
 * (seq_push_text / seq_flush_text, engine/sequence.h) against a naive
 * reference, with the real vocabularies' token pieces as the chunks.
 *
 * Input: byte 0 = flags (bit 0: Gemma 3 SentencePiece instead of SmolLM2
 * BPE; bit 1: raw token ids instead of tokenized text; bits 2-4: number of
 * stop strings), then the stop strings, each ended by a NUL byte, then the
 * text (tokenized with the vocab) or the ids (3 bytes each, modulo the
 * vocab size).
 *
 * The reference sees the text each token makes visible (the streaming
 * detokenizer's output, itself checked by fuzz_tokenizer): with T the
 * visible text after k tokens,
 *   - the first k where T contains a stop string ends the sequence: all
 *     that was sent is T up to the earliest occurrence, and the stop string
 *     returned occurs there;
 *   - before that, all that was sent is T less its longest tail that is a
 *     proper prefix of a stop string (nothing is held back that cannot
 *     become one);
 *   - without a stop, the flush sends the rest: everything sent is T plus
 *     the detokenizer's own flush. */
#include <stdlib.h>
#include <string.h>

#include "engine/sequence.h"
#include "support.h"

#define MAX_STOPS 7
#define MAX_IDS 4096

static const tok_vocab *vocabs[2];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    vocabs[0] = fz_vocab(FZ_SMOLLM2, NULL);
    vocabs[1] = fz_vocab(FZ_GEMMA3, NULL);
    return 0;
}

typedef struct text {
    char *data;
    size_t len, cap;
} text;

static void text_add(text *t, const char *s, size_t n) {
    if (t->len + n + 1 > t->cap) {
        t->cap = 2 * (t->len + n + 1);
        t->data = realloc(t->data, t->cap);
    }
    if (n) memcpy(t->data + t->len, s, n);
    t->len += n;
}

/* the first position of NEEDLE (n > 0 bytes) in HAY, or -1: a plain scan */
static long find(const char *hay, size_t len, const char *needle, size_t n) {
    for (size_t i = 0; i + n <= len; i++) {
        size_t j = 0;
        while (j < n && hay[i + j] == needle[j]) j++;
        if (j == n) return (long)i;
    }
    return -1;
}

/* the longest tail of T that is a proper prefix of a stop string */
static size_t prefix_tail(const text *t, char **stops, int n_stops) {
    size_t best = 0;
    for (int i = 0; i < n_stops; i++) {
        size_t n = strlen(stops[i]);
        for (size_t k = 1; k < n && k <= t->len; k++)
            if (k > best && !memcmp(t->data + t->len - k, stops[i], k)) best = k;
    }
    return best;
}

/* reads the token ids of the rest of the input into IDS */
static int read_ids(fz_reader *r, const tok_vocab *v, bool raw, int32_t *ids) {
    if (!raw) {
        lm_error err = {{0}};
        int64_t n = tok_encode(v, (const char *)r->data, r->size, false, false, ids, MAX_IDS, &err);
        FZ_CHECK(n >= 0, "tok_encode: %s", err.msg);
        return (int)(n < MAX_IDS ? n : MAX_IDS);
    }
    int n = 0;
    while (r->size >= 3 && n < MAX_IDS) {
        uint32_t x = fz_byte(r);
        x |= (uint32_t)fz_byte(r) << 8;
        x |= (uint32_t)fz_byte(r) << 16;
        ids[n++] = (int32_t)(x % (uint32_t)tok_n_vocab(v));
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_reader r = {data, size};
    uint8_t flags = fz_byte(&r);
    const tok_vocab *v = vocabs[flags & 1];
    char *stops[MAX_STOPS];
    int n_stops = (flags >> 2) & 7;
    for (int i = 0; i < n_stops; i++) {
        const uint8_t *s;
        size_t n = fz_until(&r, 0, &s);
        stops[i] = strndup((const char *)s, n);
    }
    static int32_t ids[MAX_IDS];
    int n_ids = read_ids(&r, v, flags & 2, ids);

    int32_t prompt = 0;
    lm_request_params p = {.prompt = &prompt, .n_prompt = 1, .max_tokens = 1, .sampling = lm_sampling_default(),
                           .stop = (const char *const *)stops, .n_stop = n_stops, .top_logprobs = -1};
    lm_seq *seq = seq_create(&p, 16, 16, tok_n_vocab(v));
    FZ_CHECK(seq, "seq_create");
    tok_stream ref;
    tok_stream_init(&ref);
    text visible = {0}, sent = {0};
    const char *stopped = NULL;
    for (int k = 0; k < n_ids && !stopped; k++) {
        char chunk[1024];
        int c = tok_stream_push(v, &ref, ids[k], chunk, (int)sizeof(chunk));
        FZ_CHECK(c >= 0 && c <= (int)sizeof(chunk), "tok_stream_push(%d) = %d", ids[k], c);
        text_add(&visible, chunk, (size_t)c);
        char *out = NULL;
        size_t out_len = 0;
        stopped = seq_push_text(seq, v, ids[k], &out, &out_len);
        FZ_CHECK(out && out[out_len] == 0, "seq_push_text: no NUL-terminated text");
        text_add(&sent, out, out_len);
        free(out);

        long first = -1;
        for (int i = 0; i < n_stops; i++) {
            long at = stops[i][0] ? find(visible.data, visible.len, stops[i], strlen(stops[i])) : -1;
            if (at >= 0 && (first < 0 || at < first)) first = at;
        }
        size_t want = first >= 0 ? (size_t)first : visible.len - prefix_tail(&visible, stops, n_stops);
        FZ_CHECK(!stopped == (first < 0), "token %d: %s", k,
                 stopped ? "stopped without a stop string in the text" : "a stop string in the text did not stop it");
        FZ_CHECK(sent.len == want && !memcmp(sent.data, visible.data, want),
                 "token %d: %zu bytes sent, %zu expected (%zu visible)", k, sent.len, want, visible.len);
        if (stopped) {
            size_t n = strlen(stopped);
            FZ_CHECK(n && (size_t)first + n <= visible.len && !memcmp(visible.data + first, stopped, n),
                     "token %d: the stop string returned is not the one at %ld", k, first);
        }
    }
    if (!stopped) {
        char tail[16];
        int c = tok_stream_flush(&ref, tail, (int)sizeof(tail));
        text_add(&visible, tail, (size_t)c);
        char *out = NULL;
        size_t out_len = 0;
        seq_flush_text(seq, &out, &out_len);
        FZ_CHECK(out && out[out_len] == 0, "seq_flush_text: no NUL-terminated text");
        text_add(&sent, out, out_len);
        free(out);
        FZ_CHECK(sent.len == visible.len && !memcmp(sent.data, visible.data, sent.len),
                 "after the flush: %zu bytes sent of %zu", sent.len, visible.len);
    }
    free(visible.data);
    free(sent.data);
    seq_free(seq);
    for (int i = 0; i < n_stops; i++) free(stops[i]);
    return 0;
}
