/* support.c - shared fixtures of the fuzz harnesses (see support.h). */
#include "support.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sequence.h"
#include "server/prompt.h"

/* An allocation of more than 2 GiB fails, and failures return NULL as
 * glibc's do, so that the code's own out-of-memory paths run instead of ASan
 * stopping the process (or poisoning shadow for a huge untouched calloc). */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1:max_allocation_size_mb=2048"; }

void fz_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz invariant broken: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    __builtin_trap();
}

static void die(const char *what, const char *detail) {
    fprintf(stderr, "fuzz set-up: %s: %s (run scripts/setup for the models)\n", what, detail);
    exit(1);
}

typedef struct fz_model {
    const char *rel;
    gguf_file *file;
    tok_vocab *vocab;
} fz_model;

static fz_model models[2];

const tok_vocab *fz_vocab(const char *rel, const gguf_file **file) {
    fz_model *m = NULL;
    for (int i = 0; i < 2 && !m; i++)
        if (!models[i].rel || !strcmp(models[i].rel, rel)) m = &models[i];
    if (!m) die(rel, "more models than support.c holds");
    if (!m->vocab) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", LAMINA_SOURCE_DIR, rel);
        lm_error err = {{0}};
        if (!(m->file = gguf_open(path, &err))) die(path, err.msg);
        if (!(m->vocab = tok_vocab_load(m->file, &err))) die(path, err.msg);
        m->rel = rel;
    }
    if (file) *file = m->file;
    return m->vocab;
}

srv_server *fz_server(void) {
    static srv_server *srv;
    if (srv) return srv;
    const gguf_file *f;
    const tok_vocab *vocab = fz_vocab(FZ_SMOLLM2, &f);
    gguf_str s;
    if (gguf_get_str(f, "tokenizer.chat_template", &s)) die(FZ_SMOLLM2, "no tokenizer.chat_template");
    char *src = strndup(s.data, s.len);
    lm_error err = {{0}};
    srv_template *tmpl = src ? srv_template_create(src, "tokenizer.chat_template", vocab, &err) : NULL;
    free(src);
    if (!tmpl) die(FZ_SMOLLM2, err.msg);
    srv = calloc(1, sizeof(*srv));
    if (!srv) die("server", "out of memory");
    srv->cfg = (srv_config){
        .host = "127.0.0.1",
        .served_name = "SmolLM2-135M-Instruct.Q4_1",
        .model_path = FZ_SMOLLM2,
        .max_body_bytes = 8u << 20, /* the defaults of `lamina serve` */
        .max_header_bytes = 16u << 10,
        .max_connections = 256,
        .max_messages = 4096,
        .read_timeout_s = 30,
        .idle_timeout_s = 120,
        .shutdown_grace_s = 10,
        .n_ctx = 2048,
    };
    srv->vocab = vocab;
    srv->tmpl = tmpl;
    snprintf(srv->fingerprint, sizeof(srv->fingerprint), "fp_fuzz");
    srv->id_seed = 0x5eed;
    return srv;
}

srv_request fz_request(srv_server *srv, const char *path, srv_api api, const uint8_t *body, size_t len) {
    char *copy = malloc(len + 1);
    if (!copy) die("request", "out of memory");
    if (len) memcpy(copy, body, len);
    copy[len] = 0;
    return (srv_request){.srv = srv, .method = "POST", .path = path, .body = copy, .body_len = len, .fd = -1, .api = api};
}

void fz_request_free(srv_request *req) {
    free((char *)req->body);
    req->body = NULL;
}

void fz_check_error(const srv_error *err) {
    FZ_CHECK(err->kind >= SRV_ERR_INVALID && err->kind <= SRV_ERR_INTERNAL, "error kind %d", (int)err->kind);
    FZ_CHECK(err->message[0], "an error without a message (param '%s')", err->param);
    FZ_CHECK(err->kind != SRV_ERR_INTERNAL, "a 500 on a request: %s", err->message);
    const srv_api apis[] = {SRV_API_OPENAI, SRV_API_ANTHROPIC};
    for (int i = 0; i < 2; i++) {
        int status = srv_error_status(err->kind, apis[i]);
        FZ_CHECK(status >= 400 && status < 600, "status %d", status);
        char *body = srv_error_json(err, apis[i]);
        FZ_CHECK(body, "the error '%s' (param '%s') cannot be rendered as JSON", err->message, err->param);
        json_error_t jerr;
        json_t *back = json_loads(body, 0, &jerr);
        FZ_CHECK(json_is_object(back), "the error body is not a JSON object: %s", body);
        json_decref(back);
        free(body);
    }
}

void fz_check_prepared(const srv_server *srv, const req_gen *g, const int32_t *ids, int n_ids, int max_tokens) {
    int n_ctx = srv->cfg.n_ctx, n_vocab = tok_n_vocab(srv->vocab);
    FZ_CHECK(n_ids >= 1 && n_ids < n_ctx && ids, "accepted a prompt of %d tokens (context %d)", n_ids, n_ctx);
    for (int i = 0; i < n_ids; i++) FZ_CHECK(ids[i] >= 0 && ids[i] < n_vocab, "prompt token %d = %d", i, ids[i]);
    FZ_CHECK(max_tokens >= 1 && max_tokens <= n_ctx - n_ids, "max_tokens %d for a prompt of %d tokens", max_tokens,
             n_ids);
    FZ_CHECK(g->n >= 1 && g->n <= 64, "n = %d", g->n);
    FZ_CHECK(g->top_logprobs >= -1 && g->top_logprobs <= LM_MAX_TOP_LOGPROBS, "top_logprobs %d", g->top_logprobs);
    FZ_CHECK(g->n_stop >= 0 && g->n_stop <= 16, "%d stop strings", g->n_stop);
    for (int i = 0; i < g->n_stop; i++) FZ_CHECK(g->stop[i] && g->stop[i][0], "stop string %d is empty", i);
    const lm_sampling *s = &g->sampling;
    FZ_CHECK(s->n_logit_bias == 0 || s->logit_bias, "logit_bias entries without an array");
    for (int i = 0; i < s->n_logit_bias; i++)
        FZ_CHECK(s->logit_bias[i].token >= 0 && s->logit_bias[i].token < n_vocab, "logit_bias token %d",
                 s->logit_bias[i].token);
    FZ_CHECK(s->temperature >= 0 && s->top_p >= 0 && s->top_p <= 1 && s->min_p >= 0 && s->min_p <= 1 &&
                 s->top_k >= 0 && s->repetition_penalty > 0,
             "sampling out of range: temperature %g top_p %g min_p %g top_k %d repetition_penalty %g",
             (double)s->temperature, (double)s->top_p, (double)s->min_p, s->top_k, (double)s->repetition_penalty);
    req_gen with_max = *g;
    with_max.max_tokens = max_tokens;
    for (int c = 0; c < g->n; c++) {
        lm_request_params p;
        req_params(&with_max, ids, n_ids, c, &p);
        FZ_CHECK(p.prompt == ids && p.n_prompt == n_ids && p.max_tokens == max_tokens && p.n_stop == g->n_stop,
                 "req_params of choice %d", c);
        if (c > 0) continue;
        lm_seq *seq = seq_create(&p, n_ctx, 16, n_vocab); /* what engine_submit builds (choices differ by seed) */
        FZ_CHECK(seq, "seq_create failed on accepted parameters");
        seq_free(seq);
    }
}

uint8_t fz_byte(fz_reader *r) {
    if (!r->size) return 0;
    r->size--;
    return *r->data++;
}

uint16_t fz_u16(fz_reader *r) {
    uint16_t lo = fz_byte(r);
    return (uint16_t)(lo | (uint16_t)fz_byte(r) << 8);
}

size_t fz_until(fz_reader *r, uint8_t sep, const uint8_t **field) {
    *field = r->data;
    const uint8_t *end = r->size ? memchr(r->data, sep, r->size) : NULL;
    size_t n = end ? (size_t)(end - r->data) : r->size;
    r->data += end ? n + 1 : n;
    r->size -= end ? n + 1 : n;
    return n;
}
