/* generate.c - `lamina generate`: complete a prompt from the command line.
 *
 * The completion alone goes to stdout (streamed, UTF-8 safe); load details
 * and a tokens/s summary go to stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "base/cpu.h"
#include "cli/cli.h"
#include "cli/session.h"
#include "engine/sampler.h"

typedef struct {
    const char *model_path;
    const char *prompt;
    int n_predict;
    int n_threads;
    int n_ctx;
    int gpu;                   /* --device: -1 the CPU, else the CUDA device */
    bool ignore_eos;
    bool batch_invariant;      /* --batch-invariant (CUDA) */
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
            "                       [--seed S] [--threads N] [--ctx-size N] [--ignore-eos] [--device cpu|cuda[:N]]\n"
            "                       [--batch-invariant]\n"
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
    a->gpu = -1;
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
        if (!strcmp(f, "--batch-invariant")) { /* the GPU's batch-invariant kernels, as serve --batch-invariant */
            a->batch_invariant = true;
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
        } else if (!strcmp(f, "--device")) {
            if ((a->gpu = cli_parse_device("generate", val)) == -2) return -1;
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

/* The prompt as one user turn rendered with the chat template. malloc'd. */
static char *chat_prompt(const generate_args *a, const cli_session *s, lm_error *err) {
    char *src = cli_template_source(s, a->chat_template, err);
    if (!src) return NULL;
    json_t *messages = json_pack("[{s:s, s:s}]", "role", "user", "content", a->prompt);
    char *out = messages ? cli_render_chat(s, src, messages, err) : NULL;
    json_decref(messages);
    free(src);
    return out;
}

static int run(const generate_args *a, cli_session *s) {
    lm_error err = {{0}};
    char *chat_text = NULL;
    int32_t *tokens = NULL;
    lm_sampler *sampler = NULL;
    if (cli_session_open_on(s, a->model_path, a->n_ctx, a->n_threads, a->gpu, a->batch_invariant, &err)) goto fail;
    const lm_hparams *hp = &s->model->hp;
    const char *prompt = a->prompt;
    if (a->chat) {
        if (!(chat_text = chat_prompt(a, s, &err))) goto fail;
        prompt = chat_text;
    }
    size_t len = strlen(prompt);
    tokens = malloc(sizeof(int32_t) * (len + 8 + (size_t)a->n_predict));
    sampler = lm_sampler_create(&a->sampling, hp->n_vocab);
    if (!tokens || !sampler) {
        lm_error_set(&err, "out of memory");
        goto fail;
    }
    /* a rendered template carries its own BOS where the model wants one */
    int64_t n_prompt = tok_encode(s->vocab, prompt, len, !a->chat, true, tokens, (int64_t)len + 8, &err);
    if (n_prompt < 0) goto fail;
    if (n_prompt == 0) {
        lm_error_set(&err, "the prompt is empty and the model adds no BOS token");
        goto fail;
    }
    if (n_prompt + a->n_predict > s->n_ctx) {
        lm_error_set(&err, "prompt (%lld tokens) + %d to generate exceeds the context of %d tokens (--ctx-size)",
                     (long long)n_prompt, a->n_predict, s->n_ctx);
        goto fail;
    }
    char device[320];
    if (s->gpu) snprintf(device, sizeof(device), "cuda:%d (%s)", a->gpu, lm_forward_cuda_device_name(s->gpu));
    else snprintf(device, sizeof(device), "%d threads, %s kernels", a->n_threads, cpu_level_name(cpu_level_active()));
    fprintf(stderr, "lamina: %s (%s, %d layers, %d-dim), %s, ctx %d, seed %llu\n", a->model_path,
            lm_arch_name(hp->arch), hp->n_layer, hp->n_embd, device, s->n_ctx, (unsigned long long)a->sampling.seed);
    for (int64_t i = 0; i < n_prompt; i++) lm_sampler_accept(sampler, tokens[i]);
    double t0 = now_ms();
    if (cli_session_eval(s, tokens, 0, (int)n_prompt, &err)) goto fail;
    double t1 = now_ms();
    tok_stream stream;
    tok_stream_init(&stream);
    char piece[512];
    int n_gen = 0;
    for (int64_t cur = n_prompt; n_gen < a->n_predict; cur++) {
        int32_t tok = lm_sampler_sample(sampler, s->logits);
        if (!a->ignore_eos && tok_is_eog(s->vocab, tok)) break;
        lm_sampler_accept(sampler, tok);
        tokens[cur] = tok;
        n_gen++;
        int n = tok_stream_push(s->vocab, &stream, tok, piece, (int)sizeof(piece));
        fwrite(piece, 1, (size_t)n, stdout);
        fflush(stdout);
        if (n_gen < a->n_predict && cli_session_eval(s, tokens, (int)cur, (int)cur + 1, &err)) goto fail;
    }
    int n = tok_stream_flush(&stream, piece, (int)sizeof(piece));
    fwrite(piece, 1, (size_t)n, stdout);
    printf("\n");
    double t2 = now_ms();
    fprintf(stderr, "lamina: prompt %lld tokens in %.1f ms (%.1f t/s), generated %d tokens in %.1f ms (%.1f t/s)\n",
            (long long)n_prompt, t1 - t0, n_prompt * 1e3 / (t1 - t0 + 1e-9), n_gen, t2 - t1,
            n_gen * 1e3 / (t2 - t1 + 1e-9));
    free(chat_text);
    free(tokens);
    lm_sampler_free(sampler);
    return 0;
fail:
    fprintf(stderr, "lamina: %s\n", err.msg);
    free(chat_text);
    free(tokens);
    lm_sampler_free(sampler);
    return 1;
}

int cmd_generate(int argc, char **argv) {
    generate_args a;
    if (parse_args(argc, argv, &a)) return 2;
    cli_session s;
    memset(&s, 0, sizeof(s));
    int rc = run(&a, &s);
    cli_session_close(&s);
    return rc;
}
