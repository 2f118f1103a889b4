#include "cli/session.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/cuda/cuda_backend.h"
#include "chat/template.h"

#define EVAL_CHUNK 256 /* tokens per forward pass while reading a prompt */

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

#define GPU_BLOCK 16 /* positions per K/V block on the GPU */

int cli_parse_device(const char *cmd, const char *value) {
    char *end = NULL;
    int gpu = -2;
    if (!strcmp(value, "cpu")) gpu = -1;
    else if (!strcmp(value, "cuda")) gpu = 0;
    else if (!strncmp(value, "cuda:", 5) && value[5] && (gpu = (int)strtol(value + 5, &end, 10)) >= 0 && !*end) {
    } else gpu = -2;
    if (gpu == -2) fprintf(stderr, "lamina %s: --device is 'cpu', 'cuda' or 'cuda:N', got '%s'\n", cmd, value);
    else if (gpu >= 0 && !lm_cuda_compiled()) {
        fprintf(stderr, "lamina %s: --device %s: this lamina was built without CUDA (configure with -DLAMINA_CUDA=ON)\n",
                cmd, value);
        gpu = -2;
    }
    return gpu;
}

int cli_session_open(cli_session *s, const char *path, int n_ctx, int n_threads, lm_error *err) {
    return cli_session_open_on(s, path, n_ctx, n_threads, -1, false, err);
}

int cli_session_open_on(cli_session *s, const char *path, int n_ctx, int n_threads, int gpu, bool batch_invariant,
                        lm_error *err) {
    memset(s, 0, sizeof(*s));
    s->path = path;
    s->n_threads = n_threads;
    if (!(s->model = lm_model_load(path, err))) return -1;
    if (!(s->vocab = tok_vocab_load(s->model->file, err))) return -1;
    const lm_hparams *hp = &s->model->hp;
    if (tok_n_vocab(s->vocab) > hp->n_vocab) {
        lm_error_set(err, "%s: the tokenizer has %d tokens but token_embd.weight only %d rows", path,
                     tok_n_vocab(s->vocab), hp->n_vocab);
        return -1;
    }
    s->n_ctx = n_ctx ? n_ctx : (hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096);
    if (gpu >= 0) { /* one sequence in blocks 0, 1, 2, ... of a pool of exactly that */
        s->gpu_blocks = (s->n_ctx + GPU_BLOCK - 1) / GPU_BLOCK;
        const size_t block_bytes =
            (size_t)hp->n_layer * GPU_BLOCK * hp->n_head_kv * (hp->head_dim + hp->head_dim_v) * sizeof(lm_fp16);
        const lm_cuda_forward_config cfg = {.device = gpu, .max_tokens = EVAL_CHUNK, .max_logits = 1, .max_slots = 1,
                                            .max_ctx = s->n_ctx, .block_size = GPU_BLOCK,
                                            .kv_bytes = (size_t)(s->gpu_blocks + 1) * block_bytes,
                                            .batch_invariant = batch_invariant};
        if (!(s->gpu = lm_forward_cuda_create(s->model, &cfg, err))) return -1;
        s->gpu_table = malloc(sizeof(int) * (size_t)s->gpu_blocks);
        s->logits = malloc(sizeof(float) * (size_t)hp->n_vocab);
        if (!s->gpu_table || !s->logits) {
            lm_error_set(err, "out of memory");
            return -1;
        }
        for (int i = 0; i < s->gpu_blocks; i++) s->gpu_table[i] = i;
        return 0;
    }
    (void)prefault_weights(s->model->file);
    s->pool = tp_create(n_threads);
    s->fw = lm_forward_create(s->model, EVAL_CHUNK, s->n_ctx);
    s->kv_store = kv_contig_create(hp, 1, s->n_ctx, &s->kv);
    s->logits = malloc(sizeof(float) * (size_t)hp->n_vocab);
    if (!s->pool || !s->fw || !s->kv_store || !s->logits) {
        lm_error_set(err, "out of memory for a context of %d tokens", s->n_ctx);
        return -1;
    }
    return 0;
}

void cli_session_close(cli_session *s) {
    free(s->logits);
    free(s->gpu_table);
    lm_forward_cuda_free(s->gpu);
    kv_contig_free(s->kv_store);
    lm_forward_free(s->fw);
    tp_free(s->pool);
    tok_vocab_free(s->vocab);
    lm_model_free(s->model);
    memset(s, 0, sizeof(*s));
}

int cli_session_eval(cli_session *s, const int32_t *tokens, int start, int n, lm_error *err) {
    int32_t pos[EVAL_CHUNK], seq[EVAL_CHUNK];
    bool want[EVAL_CHUNK];
    memset(seq, 0, sizeof(seq));
    for (int i = start; i < n; i += EVAL_CHUNK) {
        int m = n - i < EVAL_CHUNK ? n - i : EVAL_CHUNK;
        for (int j = 0; j < m; j++) {
            pos[j] = i + j;
            want[j] = i + j == n - 1;
        }
        lm_batch b = {m, tokens + i, pos, seq, want};
        if (s->gpu) {
            const int *table = s->gpu_table;
            if (lm_forward_cuda_run(s->gpu, &b, &table, &s->gpu_blocks, 1, NULL, s->logits, NULL, err)) return -1;
        } else if (lm_forward_run(s->fw, s->pool, &s->kv, &b, s->logits, err)) {
            return -1;
        }
    }
    return 0;
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

char *cli_template_source(const cli_session *s, const char *override_path, lm_error *err) {
    if (override_path) return read_file(override_path, err);
    gguf_str t;
    if (gguf_get_str(s->model->file, "tokenizer.chat_template", &t) != 0) {
        lm_error_set(err, "%s: the model has no chat template (tokenizer.chat_template); pass --chat-template FILE",
                     s->path);
        return NULL;
    }
    char *src = strndup(t.data, t.len);
    if (!src) lm_error_set(err, "out of memory");
    return src;
}

char *cli_render_chat(const cli_session *s, const char *src, const void *messages_json, lm_error *err) {
    const tok_vocab *v = s->vocab;
    const char *bos = tok_bos(v) >= 0 ? tok_text(v, tok_bos(v)) : "";
    const char *eos = tok_eos(v) >= 0 ? tok_text(v, tok_eos(v)) : "";
    return chat_apply(src, messages_json, true, bos, eos, NULL, err);
}
