/* test_engine.c - the continuous-batching engine on the real default model.
 *
 * Batch invariance: a request's greedy output is token-for-token the same
 * whether it runs alone, beside 15 others, with the prefix cache on or off,
 * and whatever chunk size its prefill is split into. Stress: 200 requests
 * of random lengths, a quarter abandoned before their first token and a
 * quarter in mid-stream, over a pool small enough to force preemption; every
 * request's tokens equal its solo run's and no block leaks (the free list
 * agrees with the reference counts, and every block is free at the end). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "engine/engine.h"

#define MODEL_PATH "models/SmolLM2-135M-Instruct.Q4_1.gguf"
#define N_PROMPTS 16
#define GEN_TOKENS 24

static const char *SHARED =
    "You are a helpful assistant. Answer briefly and precisely, in plain English, without lists. "
    "The user is curious about science, history and cooking, and likes short answers. ";

static const char *QUESTIONS[N_PROMPTS] = {
    "What is the boiling point of water?", "Who was Napoleon?", "How do I bake bread?", "Why is the sky blue?",
    "What is a prime number?", "Name a famous painter.", "What is photosynthesis?", "How far is the Moon?",
    "What is the capital of France?", "Tell me about volcanoes.", "How do magnets work?", "What is DNA?",
    "Once upon a time", "def fibonacci(n):", "The quick brown fox", "1, 2, 3, 5, 8,"};

typedef struct {
    int32_t tokens[64];
    int n_tokens;
    char text[1024];
    lm_finish_reason finish;
    int cached_tokens;
    bool done;
} result;

typedef struct {
    lm_model *model;
    tok_vocab *vocab;
    int32_t prompts[N_PROMPTS][256];
    int n_prompt[N_PROMPTS];
} fixture;

static lm_engine *start(fixture *f, bool prefix_cache, int batched_tokens, size_t pool_bytes) {
    lm_engine_config c = lm_engine_config_default(f->model);
    c.n_threads = 2;
    c.n_ctx = 256;
    c.prefix_cache = prefix_cache;
    c.max_num_batched_tokens = batched_tokens;
    c.kv_cache_bytes = pool_bytes;
    lm_error err = {{0}};
    lm_engine *e = engine_create(f->model, f->vocab, &c, &err);
    CHECK(e != NULL, "engine_create: %s", err.msg);
    return e;
}

static lm_request_params greedy_params(const int32_t *prompt, int n, int max_tokens) {
    lm_request_params p;
    memset(&p, 0, sizeof(p));
    p.prompt = prompt;
    p.n_prompt = n;
    p.max_tokens = max_tokens;
    p.sampling = lm_sampling_default();
    p.sampling.temperature = 0.0f;
    p.ignore_eos = true;
    p.top_logprobs = -1;
    return p;
}

/* reads H's events until it finishes, or until it gave MAX_EVENTS tokens
 * (a client that leaves mid-stream); then releases it */
static void collect_some(lm_handle *h, result *r, int max_events) {
    memset(r, 0, sizeof(*r));
    lm_event ev;
    while (r->n_tokens < max_events && engine_next_event(h, &ev, 60000) == 1) {
        if (ev.kind == LM_EVENT_TOKEN) {
            if (r->n_tokens < 64) r->tokens[r->n_tokens++] = ev.token;
            strncat(r->text, ev.text ? ev.text : "", sizeof(r->text) - strlen(r->text) - 1);
            lm_event_clear(&ev);
            continue;
        }
        r->finish = ev.finish;
        r->cached_tokens = ev.cached_tokens;
        r->done = ev.kind == LM_EVENT_DONE;
        lm_event_clear(&ev);
        break;
    }
    engine_release(h);
}

static void collect(lm_handle *h, result *r) { collect_some(h, r, 1 << 30); }

/* a request cut short (max_tokens M, or abandoned after M tokens) saw the
 * first M tokens of its solo run */
static void expect_prefix(const result *solo, const result *r, int m, const char *what, int i) {
    CHECK(r->n_tokens == m && !memcmp(solo->tokens, r->tokens, sizeof(int32_t) * m),
          "%s %d: %d tokens, not the first %d of the solo run", what, i, r->n_tokens, m);
    CHECK(!strncmp(solo->text, r->text, strlen(r->text)), "%s %d: text '%s' is not a prefix of '%s'", what, i,
          r->text, solo->text);
}
static void run_all(lm_engine *e, fixture *f, result *out, int n, const int *which) {
    lm_handle *h[N_PROMPTS * 4];
    for (int i = 0; i < n; i++) {
        lm_request_params p = greedy_params(f->prompts[which[i]], f->n_prompt[which[i]], GEN_TOKENS);
        lm_error err = {{0}};
        CHECK(engine_submit(e, &p, &h[i], &err) == LM_SUBMIT_OK, "submit: %s", err.msg);
    }
    for (int i = 0; i < n; i++) collect(h[i], &out[i]);
}

static void expect_same(const result *a, const result *b, const char *what, int i) {
    CHECK(a->done && b->done, "%s %d: both finished", what, i);
    CHECK(a->n_tokens == b->n_tokens && !memcmp(a->tokens, b->tokens, sizeof(int32_t) * a->n_tokens),
          "%s prompt %d: tokens differ from the solo run", what, i);
    CHECK(!strcmp(a->text, b->text), "%s prompt %d: text differs: '%s' vs '%s'", what, i, a->text, b->text);
}

static void wait_idle_and_check_blocks(lm_engine *e, const char *what) {
    lm_engine_stats st;
    for (int i = 0; i < 200; i++) {
        engine_stats(e, &st);
        if (st.running == 0 && st.waiting == 0 && st.kv_blocks_used == 0) break;
        usleep(10000);
    }
    CHECK(!st.kv_audit_failed, "%s: the K/V free list disagrees with the reference counts", what);
    CHECK(st.kv_blocks_used == 0 && st.running == 0 && st.waiting == 0,
          "%s: leaked state: %d blocks used, %d running, %d waiting", what, st.kv_blocks_used, st.running,
          st.waiting);
}

/* 5. stress: a pool of ~2 contexts, 200 requests of random lengths; a
 * quarter abandoned at once, a quarter after a few tokens; 6. stop strings
 * end the text before them. MODE names the engine's step order. */
static void stress_and_stop(fixture *f, const result *solo, const char *mode) {
    lm_error err = {{0}};
    enum { N_STRESS = 200 };
    const size_t per_token = (size_t)30 * 3 * 64 * 2 * sizeof(lm_fp16); /* layers x kv heads x dims x (K, V) */
    lm_engine *e = start(f, true, 64, 2 * 256 * per_token + 16 * 1024);
    static lm_handle *h[N_STRESS];
    int which[N_STRESS], max_tokens[N_STRESS], leave_after[N_STRESS];
    srand(11);
    for (int i = 0; i < N_STRESS; i++) {
        which[i] = rand() % N_PROMPTS;
        max_tokens[i] = 1 + rand() % GEN_TOKENS;
        int fate = rand() % 4;
        leave_after[i] = fate == 0 ? 0 : fate == 1 ? rand() % max_tokens[i] : max_tokens[i];
        lm_request_params p = greedy_params(f->prompts[which[i]], f->n_prompt[which[i]], max_tokens[i]);
        CHECK(engine_submit(e, &p, &h[i], &err) == LM_SUBMIT_OK, "stress submit: %s", err.msg);
    }
    int n_completed = 0, n_left = 0;
    for (int i = 0; i < N_STRESS; i++) {
        if (leave_after[i] == 0) {
            engine_release(h[i]); /* a client that went away before its first token */
            continue;
        }
        result r;
        if (leave_after[i] == max_tokens[i]) collect(h[i], &r);
        else collect_some(h[i], &r, leave_after[i]);
        expect_prefix(&solo[which[i]], &r, leave_after[i], mode, i);
        if (leave_after[i] == max_tokens[i]) {
            CHECK(r.done && r.finish == LM_FINISH_LENGTH, "%s %d: did not finish by length", mode, i);
            n_completed++;
        } else {
            n_left++;
        }
    }
    printf("%s: %d requests, %d completed, %d left mid-stream\n", mode, N_STRESS, n_completed, n_left);
    lm_engine_stats st;
    engine_stats(e, &st);
    printf("%s: %llu preemptions, %llu steps\n", mode, (unsigned long long)st.preemptions, (unsigned long long)st.steps);
    CHECK(st.preemptions > 0, "the small pool should have forced preemption");
    wait_idle_and_check_blocks(e, mode);

    /* 6. stop strings end the text before them */
    const char *stop_word = NULL;
    char word[32];
    const char *sp = strchr(solo[0].text + 1, ' ');
    if (sp && strlen(sp) > 4) {
        snprintf(word, sizeof(word), "%.3s", sp + 1);
        stop_word = word;
    }
    if (stop_word) {
        lm_request_params p = greedy_params(f->prompts[0], f->n_prompt[0], GEN_TOKENS);
        p.stop = &stop_word;
        p.n_stop = 1;
        lm_handle *hs;
        CHECK(engine_submit(e, &p, &hs, &err) == LM_SUBMIT_OK, "submit: %s", err.msg);
        result r;
        collect(hs, &r);
        const char *cut = strstr(solo[0].text, stop_word);
        CHECK(r.finish == LM_FINISH_STOP && cut && strlen(r.text) == (size_t)(cut - solo[0].text) &&
                  !strncmp(r.text, solo[0].text, strlen(r.text)),
              "%s: stop '%s': got '%s' from '%s'", mode, stop_word, r.text, solo[0].text);
    }
    engine_free(e);
}

int main(void) {
    fixture f;
    lm_error err = {{0}};
    f.model = lm_model_load(MODEL_PATH, &err);
    CHECK(f.model != NULL, "%s", err.msg);
    if (!f.model) return check_done("engine");
    f.vocab = tok_vocab_load(f.model->file, &err);
    CHECK(f.vocab != NULL, "%s", err.msg);
    for (int i = 0; i < N_PROMPTS; i++) {
        char text[1024];
        snprintf(text, sizeof(text), "%s%s", i % 2 ? SHARED : "", QUESTIONS[i]);
        f.n_prompt[i] = (int)tok_encode(f.vocab, text, strlen(text), true, true, f.prompts[i], 256, &err);
        CHECK(f.n_prompt[i] > 0, "tokenize prompt %d", i);
    }
    int all[N_PROMPTS];
    for (int i = 0; i < N_PROMPTS; i++) all[i] = i;

    /* 1. each prompt alone, prefix cache off */
    result solo[N_PROMPTS], got[N_PROMPTS * 3];
    lm_engine *e = start(&f, false, 2048, 0);
    for (int i = 0; i < N_PROMPTS; i++) run_all(e, &f, &solo[i], 1, &all[i]);
    for (int i = 0; i < N_PROMPTS; i++) CHECK(solo[i].n_tokens == GEN_TOKENS, "solo %d: %d tokens", i, solo[i].n_tokens);
    /* 2. all 16 at once, cache off */
    run_all(e, &f, got, N_PROMPTS, all);
    for (int i = 0; i < N_PROMPTS; i++) expect_same(&solo[i], &got[i], "16 concurrent", i);
    wait_idle_and_check_blocks(e, "cache off");
    engine_free(e);

    /* 3. cache on, all at once, twice: the second round hits the cache */
    e = start(&f, true, 2048, 0);
    run_all(e, &f, got, N_PROMPTS, all);
    for (int i = 0; i < N_PROMPTS; i++) expect_same(&solo[i], &got[i], "prefix cache, first round", i);
    run_all(e, &f, got, N_PROMPTS, all);
    int hits = 0;
    for (int i = 0; i < N_PROMPTS; i++) {
        expect_same(&solo[i], &got[i], "prefix cache, second round", i);
        hits += got[i].cached_tokens > 0;
    }
    CHECK(hits >= N_PROMPTS / 2, "second round: only %d of %d requests reused cached blocks", hits, N_PROMPTS);
    wait_idle_and_check_blocks(e, "cache on");
    engine_free(e);

    /* 4. chunked prefill in odd chunks (7 tokens per step) */
    e = start(&f, true, 7, 0);
    run_all(e, &f, got, N_PROMPTS, all);
    for (int i = 0; i < N_PROMPTS; i++) expect_same(&solo[i], &got[i], "chunk 7", i);
    engine_free(e);

    stress_and_stop(&f, solo, "stress");
    /* the GPU's step order (the next step planned and started before the
     * drawn one's tokens are emitted), on the CPU: the same tokens, the same
     * blocks back, aborted requests and stop strings included */
    setenv("LAMINA_ENGINE_OVERLAP", "1", 1);
    e = start(&f, true, 2048, 0);
    run_all(e, &f, got, N_PROMPTS, all);
    for (int i = 0; i < N_PROMPTS; i++) expect_same(&solo[i], &got[i], "overlapped steps, 16 concurrent", i);
    wait_idle_and_check_blocks(e, "overlapped steps");
    engine_free(e);
    stress_and_stop(&f, solo, "stress, overlapped steps");
    unsetenv("LAMINA_ENGINE_OVERLAP");
    tok_vocab_free(f.vocab);
    lm_model_free(f.model);
    return check_done("engine");
}
