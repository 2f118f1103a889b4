/* info.c - `lamina info [MODEL]`: what a GGUF model file holds.
 *
 * Opens the file with the validating reader, so a bad file is reported with
 * the reader's one-line message and exit code 1. Prints the architecture and
 * hyperparameters, the parameter count and quantization mix, the tokenizer
 * summary and the sizes; --kv dumps every metadata entry, --tensors every
 * tensor, --cpu the SIMD level the kernels would run at, --gpu whether the
 * CUDA backend is compiled in and the devices it sees. Also home of
 * cli_default_model(), shared by the other subcommands. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/cpu/quant_pack.h"
#include "backend/cuda/cuda_backend.h"
#include "base/cpu.h"
#include "base/dtype.h"
#include "cli/cli.h"
#include "gguf/gguf.h"

#define DEFAULT_MODEL "models/SmolLM2-135M-Instruct.Q4_1.gguf"

static bool is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

const char *cli_default_model(void) {
    static char path[PATH_MAX];
    const char *env = getenv("LAMINA_MODEL");
    if (env && *env) return env;
    if (is_file(DEFAULT_MODEL)) return DEFAULT_MODEL;
    /* <repo>/build/lamina -> <repo>/models/... */
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        for (int up = 0; up < 2; up++) {
            char *slash = strrchr(exe, '/');
            if (slash) *slash = '\0';
        }
        int len = snprintf(path, sizeof(path), "%s/%s", exe, DEFAULT_MODEL);
        if (len > 0 && (size_t)len < sizeof(path) && is_file(path)) return path;
    }
    return DEFAULT_MODEL;
}

/* ---- formatting ---- */

/* "134.5 M" */
static const char *fmt_count(char *buf, size_t cap, uint64_t n) {
    if (n < 1000) snprintf(buf, cap, "%llu", (unsigned long long)n);
    else if (n < 1000000) snprintf(buf, cap, "%.1f K", n / 1e3);
    else if (n < 1000000000) snprintf(buf, cap, "%.1f M", n / 1e6);
    else snprintf(buf, cap, "%.2f B", n / 1e9);
    return buf;
}

/* "77.94 MiB" */
static const char *fmt_bytes(char *buf, size_t cap, uint64_t n) {
    if (n < 1024) snprintf(buf, cap, "%llu B", (unsigned long long)n);
    else if (n < 1024 * 1024) snprintf(buf, cap, "%.2f KiB", n / 1024.0);
    else if (n < 1024ull * 1024 * 1024) snprintf(buf, cap, "%.2f MiB", n / (1024.0 * 1024));
    else snprintf(buf, cap, "%.2f GiB", n / (1024.0 * 1024 * 1024));
    return buf;
}

/* Prints S quoted, control bytes escaped, at most MAX bytes of it. */
static void print_quoted(gguf_str s, uint64_t max) {
    putchar('\'');
    for (uint64_t i = 0; i < s.len && i < max; i++) {
        unsigned char c = (unsigned char)s.data[i];
        if (c == '\n') fputs("\\n", stdout);
        else if (c < 0x20 || c == 0x7f) printf("\\x%02x", c);
        else putchar(c);
    }
    if (s.len > max) fputs("...", stdout);
    putchar('\'');
}

static void print_str_key(const gguf_file *f, const char *label, const char *key) {
    gguf_str s;
    printf("%-17s", label);
    if (gguf_get_str(f, key, &s) == 0) printf("%.*s\n", (int)s.len, s.data);
    else printf("-\n");
}

/* <arch>.<suffix>: an integer, or whatever the value is (a per-layer array). */
static void print_arch_key(const gguf_file *f, gguf_str arch, const char *label,
                           const char *suffix) {
    char key[256], repr[128];
    snprintf(key, sizeof(key), "%.*s.%s", (int)(arch.len < 64 ? arch.len : 64), arch.data, suffix);
    int64_t idx = gguf_find_key(f, key);
    printf("%-17s%s\n", label, idx < 0 ? "-" : gguf_value_repr(f, idx, repr, sizeof(repr)));
}

/* ---- sections ---- */

static void print_tensor_summary(const gguf_file *f) {
    uint64_t n_params = 0; /* unsigned: a crafted file cannot make the sums overflow UB */
    uint64_t total_bytes = 0, type_bytes[LM_DTYPE_COUNT] = {0};
    int64_t type_count[LM_DTYPE_COUNT] = {0};
    char a[32], b[32];
    for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        n_params += (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
        total_bytes += t->nbytes;
        type_count[t->type]++;
        type_bytes[t->type] += t->nbytes;
    }
    printf("%-17s%s (%llu)\n", "parameters:", fmt_count(a, sizeof(a), n_params),
           (unsigned long long)n_params);
    printf("%-17s%lld\n", "tensors:", (long long)gguf_n_tensors(f));
    printf("quant mix:\n");
    for (;;) { /* types by bytes, largest first */
        int best = -1;
        for (int ty = 0; ty < LM_DTYPE_COUNT; ty++)
            if (type_count[ty] && (best < 0 || type_bytes[ty] > type_bytes[best])) best = ty;
        if (best < 0) break;
        printf("  %-6s %6lld tensors %12s\n", lm_dtype_name((uint32_t)best),
               (long long)type_count[best], fmt_bytes(a, sizeof(a), type_bytes[best]));
        type_count[best] = 0;
    }
    printf("%-17s%s (%llu bytes)\n", "size in memory:", fmt_bytes(a, sizeof(a), total_bytes),
           (unsigned long long)total_bytes);
    printf("%-17s%s (%zu bytes)\n", "file size:", fmt_bytes(b, sizeof(b), gguf_file_size(f)),
           gguf_file_size(f));
}

static void print_special_tokens(const gguf_file *f) {
    static const struct {
        const char *name, *key;
    } SPECIAL[] = {
        {"bos", "tokenizer.ggml.bos_token_id"},     {"eos", "tokenizer.ggml.eos_token_id"},
        {"eot", "tokenizer.ggml.eot_token_id"},     {"pad", "tokenizer.ggml.padding_token_id"},
        {"unk", "tokenizer.ggml.unknown_token_id"},
    };
    int64_t tokens = gguf_find_key(f, "tokenizer.ggml.tokens");
    printf("special tokens:\n");
    for (size_t i = 0; i < sizeof(SPECIAL) / sizeof(SPECIAL[0]); i++) {
        uint32_t id;
        if (gguf_get_u32(f, SPECIAL[i].key, &id)) continue;
        printf("  %-4s %8u ", SPECIAL[i].name, id);
        if (id < gguf_arr_len(f, tokens)) print_quoted(gguf_arr_str(f, tokens, id), 64);
        else printf("(not in the vocabulary)");
        putchar('\n');
    }
}

static void print_tokenizer(const gguf_file *f) {
    int64_t tokens = gguf_find_key(f, "tokenizer.ggml.tokens");
    gguf_str model, tmpl;
    printf("%-17s", "vocab:");
    if (gguf_get_str(f, "tokenizer.ggml.model", &model) == 0)
        printf("%.*s", (int)model.len, model.data);
    else printf("-");
    printf(", %llu tokens\n", (unsigned long long)gguf_arr_len(f, tokens));
    print_str_key(f, "pre-tokenizer:", "tokenizer.ggml.pre");
    print_special_tokens(f);
    if (gguf_get_str(f, "tokenizer.chat_template", &tmpl) == 0)
        printf("%-17syes (%llu bytes)\n", "chat template:", (unsigned long long)tmpl.len);
    else printf("%-17sno\n", "chat template:");
}

static void print_summary(const gguf_file *f) {
    gguf_str arch = {"", 0};
    printf("%-17s%s\n", "file:", gguf_path(f));
    printf("%-17s%u\n", "gguf version:", gguf_version(f));
    print_str_key(f, "architecture:", "general.architecture");
    gguf_get_str(f, "general.architecture", &arch);
    print_str_key(f, "name:", "general.name");
    print_arch_key(f, arch, "context length:", "context_length");
    print_arch_key(f, arch, "embedding:", "embedding_length");
    print_arch_key(f, arch, "layers:", "block_count");
    print_arch_key(f, arch, "heads:", "attention.head_count");
    print_arch_key(f, arch, "kv heads:", "attention.head_count_kv");
    print_tokenizer(f);
    print_tensor_summary(f);
}

static void print_kv(const gguf_file *f) {
    char repr[256];
    printf("metadata (%lld entries):\n", (long long)gguf_n_kv(f));
    for (int64_t i = 0; i < gguf_n_kv(f); i++) {
        gguf_str key = gguf_key_at(f, i);
        printf("  %-44.*s %-8s %s\n", (int)key.len, key.data, gguf_type_name(gguf_kv_type(f, i)),
               gguf_value_repr(f, i, repr, sizeof(repr)));
    }
}

static void print_tensors(const gguf_file *f) {
    printf("tensors (%lld):\n", (long long)gguf_n_tensors(f));
    for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        char shape[96];
        int n = snprintf(shape, sizeof(shape), "[");
        for (uint32_t d = 0; d < t->n_dims; d++)
            n += snprintf(shape + n, sizeof(shape) - (size_t)n, "%s%lld", d ? ", " : "",
                          (long long)t->ne[d]);
        snprintf(shape + n, sizeof(shape) - (size_t)n, "]");
        printf("  %-40s %-6s %-22s offset %llu, %llu bytes\n", t->name, lm_dtype_name(t->type),
               shape, (unsigned long long)t->offset, (unsigned long long)t->nbytes);
    }
}

static void print_cpu(void) {
    printf("%-17s%s (best detected: %s)\n", "cpu level:", cpu_level_name(cpu_level_active()),
           cpu_level_name(cpu_level_best()));
    /* a shape every packed kernel takes: whether the level (and LAMINA_CPU_REPACK) allows it */
    const bool q4 = q_pack_supported(LM_Q4_K, Q_PACK_ROWS, 256), q6 = q_pack_supported(LM_Q6_K, Q_PACK_ROWS, 256);
    printf("%-17s%s\n", "weight repack:", q4 && q6 ? "q4_K, q6_K (16-row blocks at load)" : q4 ? "q4_K" : q6 ? "q6_K" : "none");
}

static void print_gpu(void) {
    lm_error err = {{0}};
    int count = 0;
    if (!lm_cuda_compiled()) {
        printf("%-17snot compiled in (configure with -DLAMINA_CUDA=ON)\n", "cuda:");
    } else if (lm_cuda_device_count(&count, &err)) {
        printf("%-17scompiled in; %s\n", "cuda:", err.msg);
    } else {
        printf("%-17scompiled in, %d device%s\n", "cuda:", count, count == 1 ? "" : "s");
        for (int d = 0; d < count; d++) {
            lm_cuda_device_info info;
            if (lm_cuda_device_query(d, &info, &err)) printf("  gpu %d: %s\n", d, err.msg);
            else printf("  gpu %d: %s, compute %d.%d, %d SMs, %.1f GiB\n", d, info.name, info.major, info.minor,
                        info.sm_count, info.total_mem / 1073741824.0);
        }
    }
}

int cmd_info(int argc, char **argv) {
    const char *path = NULL;
    bool show_cpu = false, show_gpu = false, show_kv = false, show_tensors = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--cpu")) show_cpu = true;
        else if (!strcmp(argv[i], "--gpu")) show_gpu = true;
        else if (!strcmp(argv[i], "--kv")) show_kv = true;
        else if (!strcmp(argv[i], "--tensors")) show_tensors = true;
        else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "lamina info: unknown option '%s'\n"
                            "usage: lamina info [MODEL] [--cpu] [--gpu] [--kv] [--tensors]\n", argv[i]);
            return 2;
        } else if (path) {
            fprintf(stderr, "lamina info: one model at a time ('%s' and '%s')\n", path, argv[i]);
            return 2;
        } else {
            path = argv[i];
        }
    }
    if (!path) path = cli_default_model();
    lm_error err = {{0}};
    gguf_file *f = gguf_open(path, &err);
    if (!f) {
        fprintf(stderr, "lamina: %s\n", err.msg);
        return 1;
    }
    print_summary(f);
    if (show_cpu) print_cpu();
    if (show_gpu) print_gpu();
    if (show_kv) print_kv(f);
    if (show_tensors) print_tensors(f);
    gguf_close(f);
    return 0;
}
