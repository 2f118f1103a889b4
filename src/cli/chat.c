/* chat.c - `lamina chat`: an interactive conversation in the terminal, on a
 * local model (no server).
 *
 * Each turn renders the whole conversation with the chat template, and only
 * the tokens after the longest prefix shared with what the K/V store already
 * holds are evaluated, so a turn costs its own length. When the conversation
 * no longer fits the context, the oldest exchanges are dropped (the system
 * message stays). /reset forgets everything, /exit (or end of input) quits. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/cpu.h"
#include "cli/cli.h"
#include "cli/session.h"
#include "engine/sampler.h"

typedef struct {
    const char *model_path;
    const char *system;
    const char *chat_template;
    int n_threads, n_ctx, max_reply;
    lm_sampling sampling;
} chat_args;

static int parse_chat_args(int argc, char **argv, chat_args *a) {
    memset(a, 0, sizeof(*a));
    a->n_threads = cpu_physical_cores();
    a->max_reply = 512;
    a->sampling = lm_sampling_default();
    a->sampling.seed = (uint64_t)time(NULL);
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (f[0] != '-' && !a->model_path) {
            a->model_path = f;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "usage: lamina chat [MODEL] [--system TEXT] [--temp T] [--seed S] [-n MAX_REPLY]\n"
                            "                   [--threads N] [--ctx-size N] [--chat-template FILE]\n");
            return -1;
        }
        const char *v = argv[++i];
        char *end = NULL;
        double num = strtod(v, &end);
        bool numeric = *v && !*end;
        if (!strcmp(f, "--system")) a->system = v;
        else if (!strcmp(f, "--chat-template")) a->chat_template = v;
        else if (!strcmp(f, "--temp") && numeric && num >= 0) a->sampling.temperature = (float)num;
        else if (!strcmp(f, "--seed") && numeric && num >= 0) a->sampling.seed = (uint64_t)num;
        else if (!strcmp(f, "-n") && numeric && num >= 1) a->max_reply = (int)num;
        else if ((!strcmp(f, "-t") || !strcmp(f, "--threads")) && numeric && num >= 1 && num <= 256)
            a->n_threads = (int)num;
        else if ((!strcmp(f, "-c") || !strcmp(f, "--ctx-size")) && numeric && num >= 64) a->n_ctx = (int)num;
        else {
            fprintf(stderr, "lamina chat: bad flag or value: %s %s\n", f, v);
            return -1;
        }
    }
    if (!a->model_path) a->model_path = cli_default_model();
    return 0;
}

typedef struct {
    cli_session s;
    char *template_src;
    json_t *messages;   /* the conversation, JSON array of {role, content} */
    int32_t *cached;    /* tokens whose K/V the store holds, (n_ctx) */
    int n_cached;
    int32_t *tokens;    /* this turn's rendered conversation, (n_ctx) */
} chat_state;

static void reset(chat_state *c, const chat_args *a) {
    json_array_clear(c->messages);
    if (a->system) json_array_append_new(c->messages, json_pack("{s:s, s:s}", "role", "system", "content", a->system));
    c->n_cached = 0;
}

/* drops the oldest non-system message; false if nothing can go */
static bool drop_oldest(chat_state *c) {
    size_t first = 0;
    json_t *m0 = json_array_get(c->messages, 0);
    if (m0 && !strcmp(json_string_value(json_object_get(m0, "role")), "system")) first = 1;
    if (json_array_size(c->messages) <= first + 1) return false;
    json_array_remove(c->messages, first);
    return true;
}

/* renders and tokenizes the conversation; -1 if even the last turn alone does not fit */
static int render(chat_state *c, const chat_args *a, int *n_tokens, lm_error *err) {
    for (;;) {
        char *text = cli_render_chat(&c->s, c->template_src, c->messages, err);
        if (!text) return -1;
        int64_t n = tok_encode(c->s.vocab, text, strlen(text), false, true, c->tokens, c->s.n_ctx, err);
        free(text);
        if (n >= 0 && n + a->max_reply <= c->s.n_ctx) {
            *n_tokens = (int)n;
            return 0;
        }
        if (n < -1 || !drop_oldest(c)) {
            lm_error_set(err, "this message does not fit the context of %d tokens with room for a reply of %d",
                         c->s.n_ctx, a->max_reply);
            return -1;
        }
    }
}

/* one reply, streamed to stdout; returns the reply text (malloc'd) or NULL */
static char *reply(chat_state *c, const chat_args *a, lm_sampler *sampler, int n_prompt, lm_error *err) {
    int common = 0;
    while (common < c->n_cached && common < n_prompt - 1 && c->cached[common] == c->tokens[common]) common++;
    if (cli_session_eval(&c->s, c->tokens, common, n_prompt, err)) return NULL;
    memcpy(c->cached, c->tokens, sizeof(int32_t) * (size_t)n_prompt);
    c->n_cached = n_prompt;
    size_t cap = 1024, len = 0;
    char *text = malloc(cap);
    tok_stream stream;
    tok_stream_init(&stream);
    char piece[512];
    for (int i = 0; text && i < a->max_reply; i++) {
        int32_t tok = lm_sampler_sample(sampler, c->s.logits);
        if (tok_is_eog(c->s.vocab, tok)) break;
        int n = tok_stream_push(c->s.vocab, &stream, tok, piece, (int)sizeof(piece));
        if (n > (int)sizeof(piece)) n = (int)sizeof(piece);
        fwrite(piece, 1, (size_t)n, stdout);
        fflush(stdout);
        if (len + (size_t)n + 1 > cap) {
            char *grown = realloc(text, cap = (len + (size_t)n + 1) * 2);
            if (!grown) break;
            text = grown;
        }
        memcpy(text + len, piece, (size_t)n);
        len += (size_t)n;
        c->cached[c->n_cached] = tok;
        if (cli_session_eval(&c->s, c->cached, c->n_cached, c->n_cached + 1, err)) {
            free(text);
            return NULL;
        }
        c->n_cached++;
    }
    if (text) text[len] = '\0';
    printf("\n");
    return text;
}

int cmd_chat(int argc, char **argv) {
    chat_args a;
    if (parse_chat_args(argc, argv, &a)) return 2;
    chat_state c;
    memset(&c, 0, sizeof(c));
    lm_error err = {{0}};
    lm_sampler *sampler = NULL;
    int rc = 1;
    if (cli_session_open(&c.s, a.model_path, a.n_ctx, a.n_threads, &err)) goto done;
    if (a.max_reply >= c.s.n_ctx / 2) a.max_reply = c.s.n_ctx / 2;
    if (!(c.template_src = cli_template_source(&c.s, a.chat_template, &err))) goto done;
    c.messages = json_array();
    c.cached = malloc(sizeof(int32_t) * (size_t)c.s.n_ctx);
    c.tokens = malloc(sizeof(int32_t) * (size_t)c.s.n_ctx);
    sampler = lm_sampler_create(&a.sampling, c.s.model->hp.n_vocab);
    if (!c.messages || !c.cached || !c.tokens || !sampler) {
        lm_error_set(&err, "out of memory");
        goto done;
    }
    reset(&c, &a);
    fprintf(stderr, "lamina chat: %s, ctx %d. /reset starts over, /exit quits.\n", a.model_path, c.s.n_ctx);
    char *line = NULL;
    size_t line_cap = 0;
    for (;;) {
        fprintf(stderr, "> ");
        ssize_t n = getline(&line, &line_cap, stdin);
        if (n < 0) break;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
        if (n == 0) continue;
        if (!strcmp(line, "/exit") || !strcmp(line, "/quit")) break;
        if (!strcmp(line, "/reset")) {
            reset(&c, &a);
            fprintf(stderr, "(conversation cleared)\n");
            continue;
        }
        json_array_append_new(c.messages, json_pack("{s:s, s:s}", "role", "user", "content", line));
        int n_prompt = 0;
        char *answer = NULL;
        if (render(&c, &a, &n_prompt, &err) || !(answer = reply(&c, &a, sampler, n_prompt, &err))) {
            fprintf(stderr, "lamina: %s\n", err.msg);
            json_array_remove(c.messages, json_array_size(c.messages) - 1);
            continue;
        }
        json_array_append_new(c.messages, json_pack("{s:s, s:s}", "role", "assistant", "content", answer));
        free(answer);
    }
    free(line);
    rc = 0;
done:
    if (rc) fprintf(stderr, "lamina: %s\n", err.msg);
    lm_sampler_free(sampler);
    json_decref(c.messages);
    free(c.cached);
    free(c.tokens);
    free(c.template_src);
    cli_session_close(&c.s);
    return rc;
}
