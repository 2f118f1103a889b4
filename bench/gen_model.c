/* gen_model.c - writes a random-weight GGUF with the shape of a real model,
 * quantized by lamina's reference quantizers (ggml's quantize_row_*_ref).
 *
 *   gen_model SHAPE TYPE OUT.gguf [--seed N] [--layers N]
 *     SHAPE  qwen3-0.6b | llama-1b | qwen2-0.5b | gemma3-1b | llama-3b
 *     TYPE   q4_k_m (ggml's mix: q4_K, q6_K for the output / embedding and
 *            for attn_v and ffn_down of the layers llama.cpp gives more
 *            bits) | q4_0 (q4_0, q6_K for the output / embedding, as
 *            llama.cpp's Q4_0) | q8_0 | f16
 *
 * For the GPU machine, where the real weights cannot be carried: the GPU
 * fidelity test (tests/cuda/test_cuda_forward.c) and the benchmarks against
 * llama.cpp run on these files. The file has no tokenizer
 * (tokenizer.ggml.model = "none", llama.cpp then takes the vocab size from
 * <arch>.vocab_size); weights are N(0, 0.02), norms 1 + N(0, 0.05), biases
 * N(0, 0.05), embeddings N(0, 1 / sqrt(n_embd)) so the residual stream
 * starts at unit scale. Quantization runs on all cores. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../tests/unit/gguf_writer.h"
#include "backend/cpu/quant.h"
#include "base/dtype.h"
#include "base/fp16.h"

typedef struct shape {
    const char *name, *arch;
    int n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_vocab, ctx;
    float rope_base;
    int sliding_window; /* gemma3 */
} shape;

static const shape SHAPES[] = {
    {"qwen3-0.6b", "qwen3", 1024, 28, 16, 8, 128, 3072, 151936, 40960, 1e6f, 0},
    {"qwen2-0.5b", "qwen2", 896, 24, 14, 2, 64, 4864, 151936, 32768, 1e6f, 0},
    {"llama-1b", "llama", 2048, 16, 32, 8, 64, 8192, 128256, 131072, 500000.0f, 0},
    {"llama-3b", "llama", 3072, 28, 24, 8, 128, 8192, 128256, 131072, 500000.0f, 0},
    {"gemma3-1b", "gemma3", 1152, 26, 4, 1, 256, 6912, 262144, 32768, 1e6f, 512},
};

typedef struct tensor {
    char name[96];
    int64_t ne0, ne1; /* ne1 = 1 for vectors */
    uint32_t type;
    enum { W_MATRIX, W_NORM, W_BIAS, W_EMBD } kind;
    uint64_t seed, offset;
    size_t bytes;
} tensor;

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* standard normal (Box-Muller) */
static float normal(uint64_t *s) {
    double u1 = ((splitmix(s) >> 11) + 1.0) / 9007199254740993.0, u2 = (splitmix(s) >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* llama.cpp's use_more_bits: the layers whose attn_v / ffn_down Q4_K_M keeps in q6_K */
static bool more_bits(int il, int n) { return il < n / 8 || il >= 7 * n / 8 || (il - n / 8) % 3 == 2; }

/* llama.cpp's fallback for a row length that is not a multiple of 256 */
static uint32_t fit_type(uint32_t type, int64_t ne0) {
    if (ne0 % 256 == 0) return type;
    switch (type) {
    case LM_Q4_K: return LM_Q5_0;
    case LM_Q5_K: return LM_Q5_1;
    case LM_Q6_K: return LM_Q8_0;
    default: return type;
    }
}

static size_t row_bytes(uint32_t type, int64_t ne0) {
    return (size_t)(ne0 / lm_dtype_block_size(type)) * lm_dtype_type_size(type);
}

/* fills row r of T into DST (row_bytes) */
static void make_row(const tensor *t, int64_t r, float *tmp, void *dst) {
    uint64_t s = t->seed ^ ((uint64_t)r * 0x2545F4914F6CDD1Dull);
    const float sigma = t->kind == W_EMBD ? 1.0f / sqrtf((float)t->ne0) : t->kind == W_MATRIX ? 0.02f : 0.05f;
    for (int64_t i = 0; i < t->ne0; i++) tmp[i] = (t->kind == W_NORM ? 1.0f : 0.0f) + sigma * normal(&s);
    if (t->type == LM_F32) memcpy(dst, tmp, sizeof(float) * (size_t)t->ne0);
    else if (t->type == LM_F16)
        for (int64_t i = 0; i < t->ne0; i++) ((lm_fp16 *)dst)[i] = lm_fp32_to_fp16(tmp[i]);
    else q_quantize_ref(t->type, tmp, dst, t->ne0);
}

typedef struct job {
    const tensor *t;
    uint8_t *out;
    int64_t next_row; /* under mu */
    pthread_mutex_t mu;
} job;

static void *worker(void *arg) {
    job *j = arg;
    const tensor *t = j->t;
    float *tmp = malloc(sizeof(float) * (size_t)t->ne0);
    const size_t rb = row_bytes(t->type, t->ne0);
    for (;;) {
        pthread_mutex_lock(&j->mu);
        const int64_t r0 = j->next_row;
        j->next_row += 64;
        pthread_mutex_unlock(&j->mu);
        if (r0 >= t->ne1) break;
        for (int64_t r = r0; r < r0 + 64 && r < t->ne1; r++) make_row(t, r, tmp, j->out + (size_t)r * rb);
    }
    free(tmp);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: gen_model SHAPE q4_k_m|q4_0|q8_0|f16 OUT.gguf [--seed N] [--layers N]\n  shapes:");
        for (size_t i = 0; i < sizeof(SHAPES) / sizeof(SHAPES[0]); i++) fprintf(stderr, " %s", SHAPES[i].name);
        fprintf(stderr, "\n");
        return 2;
    }
    const shape *sh = NULL;
    for (size_t i = 0; i < sizeof(SHAPES) / sizeof(SHAPES[0]); i++)
        if (!strcmp(argv[1], SHAPES[i].name)) sh = &SHAPES[i];
    const char *ftype = argv[2], *out_path = argv[3];
    uint64_t seed = 1;
    int n_layer = sh ? sh->n_layer : 0;
    for (int i = 4; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--seed")) seed = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--layers")) n_layer = atoi(argv[i + 1]);
    }
    const bool km = !strcmp(ftype, "q4_k_m"), q8 = !strcmp(ftype, "q8_0"), f16 = !strcmp(ftype, "f16");
    const bool q40 = !strcmp(ftype, "q4_0");
    if (!sh || !(km || q8 || f16 || q40) || n_layer < 1) {
        fprintf(stderr, "gen_model: unknown shape '%s' or type '%s' (or bad --layers)\n", argv[1], ftype);
        return 2;
    }
    const uint32_t base = km ? LM_Q4_K : q8 ? LM_Q8_0 : q40 ? LM_Q4_0 : LM_F16;
    const int E = sh->n_embd, Q = sh->n_head * sh->head_dim, KV = sh->n_head_kv * sh->head_dim;
    const bool qwen2 = !strcmp(sh->arch, "qwen2"), gemma = !strcmp(sh->arch, "gemma3");
    const bool qk_norm = !strcmp(sh->arch, "qwen3") || gemma;

    tensor *ts = calloc((size_t)(3 + n_layer * 16), sizeof(tensor));
    int nt = 0;
#define ADD(NAME_FMT, IL, NE0, NE1, TYPE, KIND)                                                                       \
    do {                                                                                                             \
        tensor *t_ = &ts[nt++];                                                                                      \
        snprintf(t_->name, sizeof(t_->name), NAME_FMT, IL);                                                          \
        t_->ne0 = (NE0);                                                                                             \
        t_->ne1 = (NE1);                                                                                             \
        t_->type = fit_type((TYPE), (NE0));                                                                          \
        t_->kind = (KIND);                                                                                           \
        t_->seed = seed * 1000003ull + (uint64_t)nt;                                                                 \
    } while (0)
    ADD("token_embd.weight%.0d", 0, /* "%.0d" of 0 prints nothing */ E, sh->n_vocab, km || q40 ? LM_Q6_K : base, W_EMBD);
    for (int il = 0; il < n_layer; il++) {
        const uint32_t more = km && more_bits(il, n_layer) ? LM_Q6_K : base;
        ADD("blk.%d.attn_norm.weight", il, E, 1, LM_F32, W_NORM);
        ADD("blk.%d.attn_q.weight", il, E, Q, base, W_MATRIX);
        ADD("blk.%d.attn_k.weight", il, E, KV, base, W_MATRIX);
        ADD("blk.%d.attn_v.weight", il, E, KV, more, W_MATRIX);
        if (qwen2) {
            ADD("blk.%d.attn_q.bias", il, Q, 1, LM_F32, W_BIAS);
            ADD("blk.%d.attn_k.bias", il, KV, 1, LM_F32, W_BIAS);
            ADD("blk.%d.attn_v.bias", il, KV, 1, LM_F32, W_BIAS);
        }
        if (qk_norm) {
            ADD("blk.%d.attn_q_norm.weight", il, sh->head_dim, 1, LM_F32, W_NORM);
            ADD("blk.%d.attn_k_norm.weight", il, sh->head_dim, 1, LM_F32, W_NORM);
        }
        ADD("blk.%d.attn_output.weight", il, Q, E, base, W_MATRIX);
        if (gemma) ADD("blk.%d.post_attention_norm.weight", il, E, 1, LM_F32, W_NORM);
        ADD("blk.%d.ffn_norm.weight", il, E, 1, LM_F32, W_NORM);
        ADD("blk.%d.ffn_gate.weight", il, E, sh->n_ff, base, W_MATRIX);
        ADD("blk.%d.ffn_up.weight", il, E, sh->n_ff, base, W_MATRIX);
        ADD("blk.%d.ffn_down.weight", il, sh->n_ff, E, more, W_MATRIX);
        if (gemma) ADD("blk.%d.post_ffw_norm.weight", il, E, 1, LM_F32, W_NORM);
    }
    ADD("output_norm.weight%.0d", 0, E, 1, LM_F32, W_NORM);
#undef ADD

    gw w = {0};
    char key[128];
    const int n_kv = 15 + (gemma ? 1 : 0);
    gw_header(&w, 3, (uint64_t)nt, (uint64_t)n_kv);
    gw_kv_str(&w, "general.architecture", sh->arch);
    char name[128];
    snprintf(name, sizeof(name), "lamina-gen-%s-%s", sh->name, ftype);
    gw_kv_str(&w, "general.name", name);
    gw_kv_u32(&w, "general.file_type", km ? 15 : q8 ? 7 : q40 ? 2 : 1); /* llama_ftype Q4_K_M / Q8_0 / Q4_0 / F16 */
#define KV_U32(SUFFIX, V)                                                                                            \
    do {                                                                                                             \
        snprintf(key, sizeof(key), "%s.%s", sh->arch, SUFFIX);                                                       \
        gw_kv_u32(&w, key, (uint32_t)(V));                                                                           \
    } while (0)
    KV_U32("context_length", sh->ctx);
    KV_U32("embedding_length", E);
    KV_U32("block_count", n_layer);
    KV_U32("feed_forward_length", sh->n_ff);
    KV_U32("attention.head_count", sh->n_head);
    KV_U32("attention.head_count_kv", sh->n_head_kv);
    KV_U32("attention.key_length", sh->head_dim);
    KV_U32("attention.value_length", sh->head_dim);
    KV_U32("vocab_size", sh->n_vocab);
    if (gemma) KV_U32("attention.sliding_window", sh->sliding_window);
#undef KV_U32
    snprintf(key, sizeof(key), "%s.rope.freq_base", sh->arch);
    gw_key(&w, key, 6 /* FLOAT32 */);
    gw_f32(&w, sh->rope_base);
    snprintf(key, sizeof(key), "%s.attention.layer_norm_rms_epsilon", sh->arch);
    gw_key(&w, key, 6);
    gw_f32(&w, 1e-6f);
    gw_kv_str(&w, "tokenizer.ggml.model", "none");

    uint64_t off = 0;
    for (int i = 0; i < nt; i++) {
        tensor *t = &ts[i];
        t->bytes = row_bytes(t->type, t->ne0) * (size_t)t->ne1;
        t->offset = off;
        off += (t->bytes + 31) / 32 * 32;
        const int64_t ne[2] = {t->ne0, t->ne1};
        gw_tensor_info(&w, t->name, t->ne1 > 1 ? 2 : 1, ne, t->type, t->offset);
    }
    gw_pad(&w, 32);
    FILE *f = fopen(out_path, "wb");
    if (!f || fwrite(w.buf, 1, w.len, f) != w.len) {
        fprintf(stderr, "gen_model: cannot write %s\n", out_path);
        return 1;
    }
    gw_free(&w);
    long n_threads = sysconf(_SC_NPROCESSORS_ONLN);
    if (n_threads < 1) n_threads = 1;
    if (n_threads > 64) n_threads = 64;
    pthread_t th[64];
    static const uint8_t zeros[32];
    for (int i = 0; i < nt; i++) {
        tensor *t = &ts[i];
        uint8_t *buf = malloc(t->bytes);
        job j = {.t = t, .out = buf, .next_row = 0};
        pthread_mutex_init(&j.mu, NULL);
        for (long k = 0; k < n_threads; k++) pthread_create(&th[k], NULL, worker, &j);
        for (long k = 0; k < n_threads; k++) pthread_join(th[k], NULL);
        pthread_mutex_destroy(&j.mu);
        const size_t pad = (t->bytes + 31) / 32 * 32 - t->bytes;
        if (fwrite(buf, 1, t->bytes, f) != t->bytes || fwrite(zeros, 1, pad, f) != pad) {
            fprintf(stderr, "gen_model: cannot write %s\n", out_path);
            return 1;
        }
        free(buf);
    }
    if (fclose(f)) {
        fprintf(stderr, "gen_model: cannot write %s\n", out_path);
        return 1;
    }
    printf("gen_model: %s: %s %s, %d layers, %d tensors, %.1f MiB of weights\n", out_path, sh->name, ftype, n_layer,
           nt, (double)off / (1 << 20));
    free(ts);
    return 0;
}
