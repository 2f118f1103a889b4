#include "cli/session.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

int cli_session_open(cli_session *s, const char *path, int n_ctx, int n_threads, lm_error *err) {
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
    (void)prefault_weights(s->model->file);
    s->n_ctx = n_ctx ? n_ctx : (hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096);
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
        if (lm_forward_run(s->fw, s->pool, &s->kv, &b, s->logits, err)) return -1;
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
