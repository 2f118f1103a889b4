/* bench_prompts.c - synthetic prompts of an exact token length for
 * `lamina bench`.
 *
 * Text is made of common English words drawn by a seeded generator and cut
 * into sentences; the server's own /tokenize (lamina's and llama-server's
 * have the same shape) turns it into ids, which are cut to the length
 * wanted. A prompt of level L is its level's shared prefix (the same ids for
 * every prompt of the level) followed by ids of its own, so levels never
 * share cached blocks with each other and a repeated run with another seed
 * starts cold. The OpenAI API gets the ids as the /v1/completions prompt;
 * the Anthropic API gets their text (from /detokenize) as the user message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/bench.h"

static const char *const WORDS[] = {
    "time", "year", "people", "way", "day", "man", "thing", "woman", "life", "child", "world", "school",
    "state", "family", "student", "group", "country", "problem", "hand", "part", "place", "case", "week",
    "company", "system", "program", "question", "work", "government", "number", "night", "point", "home",
    "water", "room", "mother", "area", "money", "story", "fact", "month", "lot", "right", "study", "book",
    "eye", "job", "word", "business", "issue", "side", "kind", "head", "house", "service", "friend", "father",
    "power", "hour", "game", "line", "end", "member", "law", "car", "city", "community", "name", "president",
    "team", "minute", "idea", "kid", "body", "information", "back", "parent", "face", "others", "level",
    "office", "door", "health", "person", "art", "war", "history", "party", "result", "change", "morning",
    "reason", "research", "girl", "guy", "moment", "air", "teacher", "force", "education", "river", "garden",
    "window", "paper", "light", "music", "market", "letter", "table", "stone", "horse", "bridge", "forest",
    "island", "mountain", "winter", "summer", "rain", "wind", "cloud", "field", "road", "train", "ship",
    "engine", "bread", "apple", "orange", "coffee", "tea", "sugar", "salt", "chair", "clock", "color", "voice",
    "picture", "doctor", "nurse", "farmer", "artist", "writer", "singer", "dancer", "king", "queen", "castle",
    "village", "valley", "ocean", "desert", "planet", "star", "moon", "sun", "earth", "fire", "metal", "glass",
    "wood", "silver", "gold", "iron", "copper", "animal", "bird", "fish", "dog", "cat", "mouse", "tiger",
    "lion", "bear", "wolf", "fox", "rabbit", "deer", "cow", "sheep", "goat", "chicken", "duck", "small",
    "large", "early", "young", "important", "public", "bad", "same", "able", "little", "long", "great", "good",
    "new", "old", "high", "different", "next", "last", "big", "free", "strong", "clear", "simple", "quick",
    "quiet", "bright", "dark", "warm", "cold", "heavy", "green", "blue", "red", "yellow", "white", "black",
    "brown", "open", "close", "read", "write", "speak", "listen", "walk", "run", "carry", "build", "follow",
    "begin", "finish"};
#define N_WORDS (sizeof(WORDS) / sizeof(WORDS[0]))
#define WORDS_PER_SENTENCE 12
#define MAX_TRIES 6 /* doublings of the word count before giving up */

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* N_WORDS words as sentences (malloc'd); LEADING_SPACE for text that
 * continues other text */
static char *random_text(uint64_t seed, int n_words, bool leading_space) {
    size_t cap = (size_t)n_words * 16 + 8, len = 0;
    char *s = malloc(cap);
    if (!s) return NULL;
    uint64_t state = seed;
    for (int i = 0; i < n_words; i++) {
        const char *w = WORDS[splitmix64(&state) % N_WORDS];
        bool first = i % WORDS_PER_SENTENCE == 0, last = i % WORDS_PER_SENTENCE == WORDS_PER_SENTENCE - 1;
        if (i > 0 || leading_space) s[len++] = ' ';
        size_t n = strlen(w);
        memcpy(s + len, w, n);
        if (first) s[len] = (char)(s[len] - 'a' + 'A');
        len += n;
        if (last || i == n_words - 1) s[len++] = '.';
    }
    s[len] = '\0';
    return s;
}

/* exactly N token ids (malloc'd in *out) of seeded random text */
static int random_ids(bench_conn *c, uint64_t seed, int n, bool leading_space, int32_t **out, char *err,
                      size_t n_err) {
    int n_words = n;
    for (int attempt = 0; attempt < MAX_TRIES; attempt++, n_words *= 2) {
        char *text = random_text(seed, n_words, leading_space);
        json_t *body = text ? json_pack("{s:s, s:b}", "content", text, "add_special", 0) : NULL;
        free(text);
        if (!body) {
            snprintf(err, n_err, "out of memory");
            return -1;
        }
        json_t *reply = NULL;
        int rc = bench_call(c, "/tokenize", body, &reply, err, n_err);
        json_decref(body);
        if (rc) return -1;
        json_t *tokens = json_object_get(reply, "tokens");
        if (!json_is_array(tokens)) {
            json_decref(reply);
            snprintf(err, n_err, "/tokenize: the reply has no 'tokens' list");
            return -1;
        }
        if ((int)json_array_size(tokens) >= n) {
            int32_t *ids = malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
            for (int i = 0; ids && i < n; i++) ids[i] = (int32_t)json_integer_value(json_array_get(tokens, (size_t)i));
            json_decref(reply);
            if (!ids) {
                snprintf(err, n_err, "out of memory");
                return -1;
            }
            *out = ids;
            return 0;
        }
        json_decref(reply);
    }
    snprintf(err, n_err, "/tokenize: %d words gave fewer than %d tokens", n_words / 2, n);
    return -1;
}

/* the text of N ids via /detokenize (malloc'd) */
static char *ids_text(bench_conn *c, const int32_t *ids, int n, char *err, size_t n_err) {
    json_t *list = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(list, json_integer(ids[i]));
    json_t *body = json_pack("{s:o}", "tokens", list), *reply = NULL;
    if (!body) {
        snprintf(err, n_err, "out of memory");
        return NULL;
    }
    int rc = bench_call(c, "/detokenize", body, &reply, err, n_err);
    json_decref(body);
    if (rc) return NULL;
    const char *content = json_string_value(json_object_get(reply, "content"));
    char *text = content ? strdup(content) : NULL;
    if (!content) snprintf(err, n_err, "/detokenize: the reply has no 'content' string");
    json_decref(reply);
    return text;
}

/* the seed of the text of prompt INDEX of level LEVEL (-1: the prefix) */
static uint64_t text_seed(uint64_t seed, int level, int index) {
    uint64_t state = seed ^ ((uint64_t)(level + 1) << 40) ^ (uint64_t)(index + 2);
    return splitmix64(&state);
}

int bench_prompts_make(bench_conn *c, const bench_opts *o, int level, bench_request *reqs, int n, char *err,
                       size_t n_err) {
    int32_t *prefix = NULL;
    int n_own = o->input_len - o->shared_prefix, rc = -1;
    if (o->shared_prefix > 0 &&
        random_ids(c, text_seed(o->seed, level, -1), o->shared_prefix, false, &prefix, err, n_err))
        return -1;
    for (int i = 0; i < n; i++) {
        bench_request *r = &reqs[i];
        int32_t *own = NULL;
        if (random_ids(c, text_seed(o->seed, level, i), n_own, o->shared_prefix > 0, &own, err, n_err)) goto done;
        r->prompt = malloc(sizeof(int32_t) * (size_t)o->input_len);
        if (!r->prompt) {
            free(own);
            snprintf(err, n_err, "out of memory");
            goto done;
        }
        if (o->shared_prefix) memcpy(r->prompt, prefix, sizeof(int32_t) * (size_t)o->shared_prefix);
        memcpy(r->prompt + o->shared_prefix, own, sizeof(int32_t) * (size_t)n_own);
        r->n_prompt = o->input_len;
        free(own);
        if (o->api == BENCH_API_ANTHROPIC && !(r->prompt_text = ids_text(c, r->prompt, r->n_prompt, err, n_err)))
            goto done;
    }
    rc = 0;
done:
    free(prefix);
    return rc;
}
