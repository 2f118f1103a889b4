/* generate.c - `lamina generate`: complete a prompt from the command line.
 *
 * The completion alone goes to stdout (streamed, UTF-8 safe); load details
 * and a tokens/s summary go to stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "base/cpu.h"
#include "chat/template.h"
#include "cli/cli.h"
#include "engine/sampler.h"
#include "model/kv_contig.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

#define PREFILL_CHUNK 256 /* tokens per forward pass while reading the prompt */

typedef struct {
    const char *model_path;
    const char *prompt;
    int n_predict;
    int n_threads;
    int n_ctx;
    bool ignore_eos;
    bool seed_given;
    bool chat;                 /* wrap the prompt as a user turn with the chat template */
    const char *chat_template; /* file overriding the model's template */
    lm_sampling sampling;
} generate_args;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void generate_usage(void) {
    fprintf(stderr,
            "usage: lamina generate [MODEL] -p PROMPT [-n N] [--temp T] [--top-k K] [--top-p P] [--min-p P]\n"
            "                       [--repeat-penalty R] [--presence-penalty P] [--frequency-penalty F]\n"
            "                       [--seed S] [--threads N] [--ctx-size N] [--ignore-eos]\n"
            "                       [--chat] [--chat-template FILE]\n");
}

static int parse_number(const char *flag, const char *s, double lo, double hi, double *out) {
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || v < lo || v > hi) {
        fprintf(stderr, "lamina generate: %s expects a number in [%g, %g], got '%s'\n", flag, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, generate_args *a) {
    memset(a, 0, sizeof(*a));
    a->n_predict = 128;
    a->n_threads = cpu_physical_cores();
    a->sampling = lm_sampling_default();
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (f[0] != '-' && !a->model_path) {
            a->model_path = f;
            continue;
        }
        if (!strcmp(f, "--ignore-eos") || !strcmp(f, "--chat")) {
            if (f[2] == 'i') a->ignore_eos = true;
            else a->chat = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "lamina generate: unknown flag or missing value: %s\n", f);
            return -1;
        }
        const char *val = argv[++i];
        double v;
        lm_sampling *s = &a->sampling;
        if (!strcmp(f, "-p") || !strcmp(f, "--prompt")) a->prompt = val;
        else if (!strcmp(f, "--chat-template")) {
            a->chat_template = val;
            a->chat = true;
        }
        else if (!strcmp(f, "-n") || !strcmp(f, "--n-predict")) {
            if (parse_number(f, val, 0, 1 << 20, &v)) return -1;
            a->n_predict = (int)v;
        } else if (!strcmp(f, "-t") || !strcmp(f, "--threads")) {
            if (parse_number(f, val, 1, 256, &v)) return -1;
            a->n_threads = (int)v;
        } else if (!strcmp(f, "-c") || !strcmp(f, "--ctx-size")) {
            if (parse_number(f, val, 16, 1 << 20, &v)) return -1;
            a->n_ctx = (int)v;
        } else if (!strcmp(f, "--temp")) {
            if (parse_number(f, val, 0, 100, &v)) return -1;
            s->temperature = (float)v;
        } else if (!strcmp(f, "--top-k")) {
            if (parse_number(f, val, 0, 1e9, &v)) return -1;
            s->top_k = (int)v;
        } else if (!strcmp(f, "--top-p")) {
            if (parse_number(f, val, 0, 1, &v)) return -1;
            s->top_p = (float)v;
        } else if (!strcmp(f, "--min-p")) {
            if (parse_number(f, val, 0, 1, &v)) return -1;
            s->min_p = (float)v;
        } else if (!strcmp(f, "--repeat-penalty")) {
            if (parse_number(f, val, 0.01, 100, &v)) return -1;
            s->repetition_penalty = (float)v;
        } else if (!strcmp(f, "--presence-penalty")) {
            if (parse_number(f, val, -2, 2, &v)) return -1;
            s->presence_penalty = (float)v;
        } else if (!strcmp(f, "--frequency-penalty")) {
            if (parse_number(f, val, -2, 2, &v)) return -1;
            s->frequency_penalty = (float)v;
        } else if (!strcmp(f, "--seed")) {
            if (parse_number(f, val, 0, 18446744073709551615.0, &v)) return -1;
            s->seed = (uint64_t)v;
            a->seed_given = true;
        } else {
            fprintf(stderr, "lamina generate: unknown flag %s\n", f);
            return -1;
        }
    }
    if (!a->prompt) {
        generate_usage();
        return -1;
    }
    if (!a->model_path) a->model_path = cli_default_model();
    if (!a->seed_given) a->sampling.seed = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);
    return 0;
}

/* Touches every page of the weights once, so the first token does not pay
 * for page faults; draws a progress bar when stderr is a terminal. Returns a
 * checksum only to keep the reads from being optimized away. */
static unsigned prefault_weights(const gguf_file *f) {
    const bool bar = isatty(STDERR_FILENO);
    uint64_t total = 0, done = 0;
    for (int64_t i = 0; i < gguf_n_tensors(f); i++) total += gguf_tensor_at(f, i)->nbytes;
    unsigned sum = 0;
    int shown = -1;
    for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        const volatile unsigned char *p = t->data;
        for (uint64_t off = 0; off < t->nbytes; off += 4096) sum += p[off];
        done += t->nbytes;
        int pct = total ? (int)(done * 100 / total) : 100;
        if (bar && pct != shown) {
            shown = pct;
            fprintf(stderr, "\rloading [%-40.*s] %3d%%", pct * 40 / 100, "########################################", pct);
        }
    }
    if (bar) fprintf(stderr, "\n");
    return sum;
}

static char *read_file(const char *path, lm_error *err) {
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long len = -1;
    if (f && fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)len + 1)) && fread(buf, 1, (size_t)len, f) == (size_t)len) {
        buf[len] = '\0';
        fclose(f);
        return buf;
    }
    lm_error_set(err, "%s: cannot read the chat template", path);
    free(buf);
    if (f) fclose(f);
    return NULL;
}

/* The prompt as one user turn rendered with the chat template (the model's
 * tokenizer.chat_template, or the --chat-template file). malloc'd. */
static char *chat_prompt(const generate_args *a, const gguf_file *f, const tok_vocab *v, lm_error *err) {
    char *src = NULL;
    if (a->chat_template) {
        if (!(src = read_file(a->chat_template, err))) return NULL;
    } else {
        gguf_str t;
        if (gguf_get_str(f, "tokenizer.chat_template", &t) != 0) {
            lm_error_set(err, "%s: the model has no chat template (tokenizer.chat_template); pass --chat-template FILE",
                         gguf_path(f));
            return NULL;
        }
        if (!(src = strndup(t.data, t.len))) return NULL;
    }
    json_t *messages = json_pack("[{s:s, s:s}]", "role", "user", "content", a->prompt);
    const char *bos = tok_bos(v) >= 0 ? tok_text(v, tok_bos(v)) : "";
    const char *eos = tok_eos(v) >= 0 ? tok_text(v, tok_eos(v)) : "";
    char *out = messages ? chat_apply(src, messages, true, bos, eos, NULL, err) : NULL;
    json_decref(messages);
    free(src);
    return out;
}

/* everything a generation run holds; freed by session_free */
typedef struct {
    lm_model *model;
    tok_vocab *vocab;
    tp_pool *pool;
    lm_forward *fw;
    kv_contig *kv_store;
    lm_kv kv;
    lm_sampler *sampler;
    int32_t *tokens;
    float *logits;
    char *chat_text; /* the rendered chat prompt, with --chat */
} session;

static void session_free(session *s) {
    lm_sampler_free(s->sampler);
    kv_contig_free(s->kv_store);
    lm_forward_free(s->fw);
    tp_free(s->pool);
    tok_vocab_free(s->vocab);
    lm_model_free(s->model);
    free(s->tokens);
    free(s->logits);
    free(s->chat_text);
}

static int run(const generate_args *a, session *s) {
    lm_error err = {{0}};
    s->model = lm_model_load(a->model_path, &err);
    if (!s->model) goto fail;
    s->vocab = tok_vocab_load(s->model->file, &err);
    if (!s->vocab) goto fail;
    (void)prefault_weights(s->model->file);
    const lm_hparams *hp = &s->model->hp;
    if (tok_n_vocab(s->vocab) > hp->n_vocab) {
        lm_error_set(&err, "%s: the tokenizer has %d tokens but token_embd.weight only %d rows", a->model_path,
                     tok_n_vocab(s->vocab), hp->n_vocab);
        goto fail;
    }
    int n_ctx = a->n_ctx ? a->n_ctx : (hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096);
    const char *prompt = a->prompt;
    if (a->chat) {
        if (!(s->chat_text = chat_prompt(a, s->model->file, s->vocab, &err))) goto fail;
        prompt = s->chat_text;
    }
    size_t len = strlen(prompt);
    s->tokens = malloc(sizeof(int32_t) * (len + 8 + (size_t)a->n_predict));
    s->logits = malloc(sizeof(float) * (size_t)hp->n_vocab);
    if (!s->tokens || !s->logits) {
        lm_error_set(&err, "out of memory");
        goto fail;
    }
    /* a rendered template carries its own BOS where the model wants one */
    int64_t n_prompt = tok_encode(s->vocab, prompt, len, !a->chat, true, s->tokens, (int64_t)len + 8, &err);
    if (n_prompt < 0) goto fail;
    if (n_prompt == 0) {
        lm_error_set(&err, "the prompt is empty and the model adds no BOS token");
        goto fail;
    }
    if (n_prompt + a->n_predict > n_ctx) {
        lm_error_set(&err, "prompt (%lld tokens) + %d to generate exceeds the context of %d tokens (--ctx-size)",
                     (long long)n_prompt, a->n_predict, n_ctx);
        goto fail;
    }
    s->pool = tp_create(a->n_threads);
    s->fw = lm_forward_create(s->model, PREFILL_CHUNK, n_ctx);
    s->kv_store = kv_contig_create(hp, 1, n_ctx, &s->kv);
    s->sampler = lm_sampler_create(&a->sampling, hp->n_vocab);
    if (!s->pool || !s->fw || !s->kv_store || !s->sampler) {
        lm_error_set(&err, "out of memory for a context of %d tokens", n_ctx);
        goto fail;
    }
    fprintf(stderr, "lamina: %s (%s, %d layers, %d-dim), %d threads, %s kernels, ctx %d, seed %llu\n",
            a->model_path, lm_arch_name(hp->arch), hp->n_layer, hp->n_embd, a->n_threads,
            cpu_level_name(cpu_level_active()), n_ctx, (unsigned long long)a->sampling.seed);

    int32_t pos[PREFILL_CHUNK], seq[PREFILL_CHUNK];
    bool want[PREFILL_CHUNK];
    memset(seq, 0, sizeof(seq));
    double t0 = now_ms();
    for (int64_t i = 0; i < n_prompt; i += PREFILL_CHUNK) {
        int n = (int)(n_prompt - i < PREFILL_CHUNK ? n_prompt - i : PREFILL_CHUNK);
        for (int j = 0; j < n; j++) {
            pos[j] = (int32_t)(i + j);
            want[j] = i + j == n_prompt - 1;
            lm_sampler_accept(s->sampler, s->tokens[i + j]);
        }
        lm_batch b = {n, s->tokens + i, pos, seq, want};
        if (lm_forward_run(s->fw, s->pool, &s->kv, &b, s->logits, &err)) goto fail;
    }
    double t1 = now_ms();
    tok_stream stream;
    tok_stream_init(&stream);
    char piece[512];
    int n_gen = 0;
    for (int64_t cur = n_prompt; n_gen < a->n_predict; n_gen++, cur++) {
        int32_t tok = lm_sampler_sample(s->sampler, s->logits);
        if (!a->ignore_eos && tok_is_eog(s->vocab, tok)) break;
        lm_sampler_accept(s->sampler, tok);
        s->tokens[cur] = tok;
        int n = tok_stream_push(s->vocab, &stream, tok, piece, (int)sizeof(piece));
        fwrite(piece, 1, (size_t)n, stdout);
        fflush(stdout);
        if (n_gen + 1 == a->n_predict) {
            n_gen++;
            break;
        }
        int32_t p = (int32_t)cur;
        bool w = true;
        lm_batch b = {1, &s->tokens[cur], &p, seq, &w};
        if (lm_forward_run(s->fw, s->pool, &s->kv, &b, s->logits, &err)) goto fail;
    }
    int n = tok_stream_flush(&stream, piece, (int)sizeof(piece));
    fwrite(piece, 1, (size_t)n, stdout);
    printf("\n");
    double t2 = now_ms();
    fprintf(stderr, "lamina: prompt %lld tokens in %.1f ms (%.1f t/s), generated %d tokens in %.1f ms (%.1f t/s)\n",
            (long long)n_prompt, t1 - t0, n_prompt * 1e3 / (t1 - t0 + 1e-9), n_gen, t2 - t1,
            n_gen * 1e3 / (t2 - t1 + 1e-9));
    return 0;
fail:
    fprintf(stderr, "lamina: %s\n", err.msg);
    return 1;
}

int cmd_generate(int argc, char **argv) {
    generate_args a;
    if (parse_args(argc, argv, &a)) return 2;
    session s;
    memset(&s, 0, sizeof(s));
    int rc = run(&a, &s);
    session_free(&s);
    return rc;
}
