/* serve.c - `lamina serve`: flags, model + vocab + chat template + engine,
 * then the HTTP server until SIGINT/SIGTERM. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "cli/cli.h"
#include "cli/session.h"
#include "engine/engine.h"
#include "model/model.h"
#include "server/prompt.h"
#include "server/server.h"
#include "tokenizer/tokenizer.h"

/* used when the model file has no tokenizer.chat_template (as llama.cpp does) */
static const char CHATML_TEMPLATE[] =
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

typedef struct serve_args {
    srv_config srv;
    const char *chat_template_path;
    int n_threads;           /* 0 = engine default */
    int n_ctx;
    int max_num_seqs;
    int max_num_batched_tokens;
    int max_queue;
    double kv_cache_mib;
    bool no_prefix_cache;
    lm_device device;
    int gpu_index;
    double gpu_memory_utilization; /* 0 = engine default */
    bool batch_invariant;          /* --batch-invariant (CUDA) */
    char served_name[256];
} serve_args;

static void serve_usage(FILE *out) {
    fprintf(out,
            "usage: lamina serve [MODEL] [--host ADDR] [--port N] [--api-key KEY] [--served-model-name NAME]\n"
            "                    [--ctx-size N] [--threads N] [--max-num-seqs N] [--max-num-batched-tokens N]\n"
            "                    [--max-queue N] [--kv-cache-mib N] [--no-prefix-cache] [--cors-origin ORIGIN]\n"
            "                    [--log-format text|json] [--chat-template FILE] [--strict-model]\n"
            "                    [--max-tokens-default N] [--max-body-size BYTES[K|M]] [--shutdown-timeout S]\n"
            "                    [--max-header-size BYTES[K]] [--max-connections N] [--max-messages N]\n"
            "                    [--read-timeout S] [--idle-timeout S] [--request-timeout S]\n"
            "                    [--device cpu|cuda[:N]] [--gpu-memory-utilization F] [--batch-invariant]\n"
            "  defaults: 127.0.0.1:8000, the default model, key from LAMINA_API_KEY if set,\n"
            "  name = the model file's stem, 8M body, 16K headers, 256 connections, 4096 messages,\n"
            "  30 s to send a request, 120 s idle, no request time limit, 10 s shutdown grace,\n"
            "  device cpu (cuda: GPU 0, 0.9 of its memory for weights + K/V unless --kv-cache-mib;\n"
            "  --batch-invariant: each request's output independent of the batch it ran in, as on\n"
            "  the CPU, at the cost of slower prefill and large batches)\n");
}

static int parse_int(const char *flag, const char *s, long lo, long hi, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) {
        fprintf(stderr, "lamina serve: %s expects an integer in [%ld, %ld], got '%s'\n", flag, lo, hi, s);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* "8388608", "512K", "8M", "1G" -> bytes */
static int parse_size(const char *flag, const char *s, size_t *out) {
    char *end;
    double v = strtod(s, &end);
    double unit = 1;
    if (*end && !end[1]) {
        switch (toupper((unsigned char)*end)) {
        case 'K': unit = 1024; break;
        case 'M': unit = 1024.0 * 1024; break;
        case 'G': unit = 1024.0 * 1024 * 1024; break;
        default: unit = 0;
        }
        end++;
    }
    if (!*s || *end || unit == 0 || v < 1 || v * unit > 64.0 * 1024 * 1024 * 1024) {
        fprintf(stderr, "lamina serve: %s expects a size like 8388608, 512K or 8M, got '%s'\n", flag, s);
        return -1;
    }
    *out = (size_t)(v * unit);
    return 0;
}

static void model_stem(const char *path, char *out, size_t cap) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(out, cap, "%s", base);
    size_t n = strlen(out);
    if (n > 5 && !strcmp(out + n - 5, ".gguf")) out[n - 5] = 0;
}

static int parse_value_flag(serve_args *a, const char *f, const char *val) {
    srv_config *c = &a->srv;
    if (!strcmp(f, "--host")) c->host = val;
    else if (!strcmp(f, "--port")) return parse_int(f, val, 0, 65535, &c->port);
    else if (!strcmp(f, "--api-key")) c->api_key = val;
    else if (!strcmp(f, "--served-model-name")) c->served_name = val;
    else if (!strcmp(f, "--cors-origin")) c->cors_origin = val;
    else if (!strcmp(f, "--chat-template")) a->chat_template_path = val;
    else if (!strcmp(f, "-c") || !strcmp(f, "--ctx-size")) return parse_int(f, val, 16, 1 << 20, &a->n_ctx);
    else if (!strcmp(f, "-t") || !strcmp(f, "--threads")) return parse_int(f, val, 1, 1024, &a->n_threads);
    else if (!strcmp(f, "--max-num-seqs")) return parse_int(f, val, 1, 4096, &a->max_num_seqs);
    else if (!strcmp(f, "--max-num-batched-tokens")) return parse_int(f, val, 16, 1 << 20, &a->max_num_batched_tokens);
    else if (!strcmp(f, "--max-queue")) return parse_int(f, val, 0, 1 << 20, &a->max_queue);
    else if (!strcmp(f, "--max-tokens-default")) return parse_int(f, val, 1, 1 << 20, &c->max_tokens_default);
    else if (!strcmp(f, "--shutdown-timeout")) return parse_int(f, val, 0, 3600, &c->shutdown_grace_s);
    else if (!strcmp(f, "--max-body-size")) return parse_size(f, val, &c->max_body_bytes);
    else if (!strcmp(f, "--max-header-size")) {
        if (parse_size(f, val, &c->max_header_bytes)) return -1;
        if (c->max_header_bytes < 1024 || c->max_header_bytes > (1u << 20)) {
            fprintf(stderr, "lamina serve: --max-header-size must be between 1K and 1M, got '%s'\n", val);
            return -1;
        }
    } else if (!strcmp(f, "--max-connections")) return parse_int(f, val, 1, 65536, &c->max_connections);
    else if (!strcmp(f, "--max-messages")) return parse_int(f, val, 1, 1 << 20, &c->max_messages);
    else if (!strcmp(f, "--read-timeout")) return parse_int(f, val, 1, 86400, &c->read_timeout_s);
    else if (!strcmp(f, "--idle-timeout")) return parse_int(f, val, 1, 86400, &c->idle_timeout_s);
    else if (!strcmp(f, "--request-timeout")) return parse_int(f, val, 0, 86400 * 7, &c->request_timeout_s);
    else if (!strcmp(f, "--device")) {
        const int gpu = cli_parse_device("serve", val);
        if (gpu == -2) return -1;
        a->device = gpu >= 0 ? LM_DEVICE_CUDA : LM_DEVICE_CPU;
        a->gpu_index = gpu >= 0 ? gpu : 0;
    } else if (!strcmp(f, "--gpu-memory-utilization")) {
        char *end;
        double v = strtod(val, &end);
        if (!*val || *end || !(v > 0.0 && v <= 1.0)) {
            fprintf(stderr, "lamina serve: --gpu-memory-utilization expects a share in (0, 1], got '%s'\n", val);
            return -1;
        }
        a->gpu_memory_utilization = v;
    } else if (!strcmp(f, "--kv-cache-mib")) {
        int mib;
        if (parse_int(f, val, 1, 1 << 20, &mib)) return -1;
        a->kv_cache_mib = mib;
    } else if (!strcmp(f, "--log-format")) {
        if (strcmp(val, "text") && strcmp(val, "json")) {
            fprintf(stderr, "lamina serve: --log-format is 'text' or 'json', got '%s'\n", val);
            return -1;
        }
        c->log_json = !strcmp(val, "json");
    } else {
        fprintf(stderr, "lamina serve: unknown flag %s\n", f);
        return -1;
    }
    return 0;
}

static int parse_args(int argc, char **argv, serve_args *a) {
    memset(a, 0, sizeof(*a));
    a->max_queue = -1;
    srv_config *c = &a->srv;
    c->host = "127.0.0.1";
    c->port = 8000;
    c->api_key = getenv("LAMINA_API_KEY");
    if (c->api_key && !*c->api_key) c->api_key = NULL;
    c->max_body_bytes = 8u << 20;
    c->max_header_bytes = 16u << 10;
    c->max_connections = 256;
    c->max_messages = 4096;
    c->read_timeout_s = 30;
    c->idle_timeout_s = 120;
    c->shutdown_grace_s = 10;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (f[0] != '-' && !c->model_path) c->model_path = f;
        else if (!strcmp(f, "-h") || !strcmp(f, "--help")) {
            serve_usage(stdout);
            return 1;
        } else if (!strcmp(f, "--strict-model")) c->strict_model = true;
        else if (!strcmp(f, "--no-prefix-cache")) a->no_prefix_cache = true;
        else if (!strcmp(f, "--batch-invariant")) a->batch_invariant = true;
        else if (i + 1 >= argc) {
            fprintf(stderr, "lamina serve: unknown flag or missing value: %s\n", f);
            return -1;
        } else if (parse_value_flag(a, f, argv[++i])) return -1;
    }
    if (!c->model_path) c->model_path = cli_default_model();
    if (!c->served_name) {
        model_stem(c->model_path, a->served_name, sizeof(a->served_name));
        c->served_name = a->served_name;
    }
    if (c->api_key && !*c->api_key) {
        fprintf(stderr, "lamina serve: --api-key is empty\n");
        return -1;
    }
    return 0;
}

static char *read_file(const char *path, lm_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        lm_error_set(err, "%s: cannot open the chat template", path);
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (len + 1 == cap) {
            char *grown = realloc(buf, cap * 2);
            if (!grown) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = grown;
            cap *= 2;
        }
    }
    bool failed = ferror(f) != 0;
    fclose(f);
    if (!buf || failed) {
        free(buf);
        lm_error_set(err, "%s: cannot read the chat template", path);
        return NULL;
    }
    buf[len] = 0;
    return buf;
}

/* the template source: --chat-template FILE, else tokenizer.chat_template,
 * else ChatML; *origin says which */
static char *template_source(const serve_args *a, const lm_model *model, const char **origin, lm_error *err) {
    if (a->chat_template_path) {
        *origin = a->chat_template_path;
        return read_file(a->chat_template_path, err);
    }
    gguf_str s;
    if (!gguf_get_str(model->file, "tokenizer.chat_template", &s)) {
        *origin = "tokenizer.chat_template";
        char *src = strndup(s.data, s.len);
        if (!src) lm_error_set(err, "out of memory");
        return src;
    }
    *origin = "built-in ChatML template (the model has no tokenizer.chat_template)";
    return strdup(CHATML_TEMPLATE);
}

static lm_engine_config build_engine_config(const serve_args *a, const lm_model *model) {
    lm_engine_config ec = lm_engine_config_default(model);
    if (a->n_threads) ec.n_threads = a->n_threads;
    if (a->n_ctx) ec.n_ctx = a->n_ctx;
    if (a->max_num_seqs) ec.max_num_seqs = a->max_num_seqs;
    if (a->max_num_batched_tokens) ec.max_num_batched_tokens = a->max_num_batched_tokens;
    if (a->max_queue >= 0) ec.max_queue = a->max_queue;
    if (a->kv_cache_mib > 0) ec.kv_cache_bytes = (size_t)(a->kv_cache_mib * 1024 * 1024);
    if (a->no_prefix_cache) ec.prefix_cache = false;
    ec.device = a->device;
    ec.gpu_index = a->gpu_index;
    ec.gpu_memory_utilization = (float)a->gpu_memory_utilization;
    ec.gpu_batch_invariant = a->batch_invariant;
    return ec;
}

int cmd_serve(int argc, char **argv) {
    serve_args a;
    int parsed = parse_args(argc, argv, &a);
    if (parsed) return parsed > 0 ? 0 : 2;
    server_block_signals();
    lm_error err = {{0}};
    lm_model *model = NULL;
    tok_vocab *vocab = NULL;
    srv_template *tmpl = NULL;
    lm_engine *engine = NULL;
    char *tmpl_src = NULL;
    int rc = 1;
    model = lm_model_load(a.srv.model_path, &err);
    if (!model) goto done;
    vocab = tok_vocab_load(model->file, &err);
    if (!vocab) goto done;
    if (tok_n_vocab(vocab) > model->hp.n_vocab) {
        lm_error_set(&err, "%s: the tokenizer has %d tokens but token_embd.weight only %d rows", a.srv.model_path,
                     tok_n_vocab(vocab), model->hp.n_vocab);
        goto done;
    }
    const char *origin = NULL;
    tmpl_src = template_source(&a, model, &origin, &err);
    if (!tmpl_src) goto done;
    tmpl = srv_template_create(tmpl_src, origin, vocab, &err);
    if (!tmpl) goto done;
    lm_engine_config want = build_engine_config(&a, model);
    engine = engine_create(model, vocab, &want, &err);
    if (!engine) goto done;
    const lm_engine_config *ec = engine_config(engine);
    a.srv.n_ctx = ec->n_ctx;
    char device[320];
    if (ec->device == LM_DEVICE_CUDA)
        snprintf(device, sizeof(device), "cuda:%d (%s%s)", ec->gpu_index, engine_gpu_name(engine),
                 ec->gpu_batch_invariant ? ", batch-invariant" : "");
    else
        snprintf(device, sizeof(device), "cpu, %d threads, %s kernels", ec->n_threads,
                 cpu_level_name(cpu_level_active()));
    fprintf(stderr,
            "lamina: %s (%s, %d layers), %s, ctx %d, %d seqs, queue %d, KV pool %.0f MiB, template: %s\n",
            a.srv.model_path, lm_arch_name(model->hp.arch), model->hp.n_layer, device, ec->n_ctx, ec->max_num_seqs,
            ec->max_queue, (double)ec->kv_cache_bytes / (1024 * 1024), origin);
    rc = server_run(&a.srv, engine, vocab, tmpl);
done:
    if (rc && err.msg[0]) fprintf(stderr, "lamina serve: %s\n", err.msg);
    engine_free(engine);
    srv_template_free(tmpl);
    free(tmpl_src);
    tok_vocab_free(vocab);
    lm_model_free(model);
    return rc;
}
