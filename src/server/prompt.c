/* prompt.c - chat messages of both APIs -> template -> tokens, and token
 * pieces (see prompt.h).
 *
 * Both APIs' messages are first normalized to [{role, content}] with string
 * content (text parts joined by "\n", as vLLM does), so the template only
 * ever sees the shape every chat template is written for. */
#include "server/prompt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/template.h"

struct srv_template {
    chat_template *parsed; /* immutable: rendered by every connection thread at once */
    char *bos_text; /* "" when the vocab has none */
    char *eos_text;
    bool add_bos;   /* the tokenizer adds BOS itself */
};

static char *token_text_copy(const tok_vocab *v, int32_t id) {
    return strdup(id >= 0 ? tok_text(v, id) : "");
}

void srv_template_free(srv_template *t) {
    if (!t) return;
    chat_template_free(t->parsed);
    free(t->bos_text);
    free(t->eos_text);
    free(t);
}

/* renders MESSAGES (a JSON array) with extra variables KWARGS (may be NULL);
 * the text is malloc'd */
static char *render(const srv_template *t, json_t *messages, bool add_generation_prompt, json_t *kwargs,
                    lm_error *err) {
    json_t *ctx = kwargs ? json_deep_copy(kwargs) : json_object();
    if (!ctx || json_object_set(ctx, "messages", messages) ||
        json_object_set_new(ctx, "add_generation_prompt", json_boolean(add_generation_prompt)) ||
        json_object_set_new(ctx, "bos_token", json_string(t->bos_text)) ||
        json_object_set_new(ctx, "eos_token", json_string(t->eos_text))) {
        json_decref(ctx);
        lm_error_set(err, "out of memory");
        return NULL;
    }
    char *text = chat_template_render(t->parsed, ctx, NULL, err);
    json_decref(ctx);
    return text;
}

srv_template *srv_template_create(const char *source, const char *origin, const tok_vocab *vocab, lm_error *err) {
    srv_template *t = calloc(1, sizeof(*t));
    lm_error e = {{0}};
    if (t) {
        t->bos_text = token_text_copy(vocab, tok_bos(vocab));
        t->eos_text = token_text_copy(vocab, tok_eos(vocab));
        t->add_bos = tok_add_bos(vocab) && tok_bos(vocab) >= 0;
        t->parsed = chat_template_parse(source, strlen(source), &e);
    }
    if (!t || !t->bos_text || !t->eos_text || !t->parsed) {
        if (t && t->bos_text && t->eos_text) lm_error_set(err, "%s: %s", origin, e.msg);
        else lm_error_set(err, "out of memory");
        srv_template_free(t);
        return NULL;
    }
    json_t *probe = json_pack("[{s:s, s:s}, {s:s, s:s}, {s:s, s:s}]", "role", "user", "content", "Hi", "role",
                              "assistant", "content", "Hello!", "role", "user", "content", "Bye");
    char *text = probe ? render(t, probe, true, NULL, &e) : NULL;
    json_decref(probe);
    if (!text) {
        lm_error_set(err, "%s: the chat template cannot render a plain conversation: %s", origin, e.msg);
        srv_template_free(t);
        return NULL;
    }
    free(text);
    return t;
}

/* ---- messages ---- */

/* appends the text of CONTENT (a string, or a list of text parts/blocks)
 * to OUT; FIELD names it in errors */
static int content_text(json_t *content, const char *field, strbuf *out, srv_error *err) {
    if (json_is_string(content)) {
        strbuf_append(out, json_string_value(content), json_string_length(content));
        return 0;
    }
    if (!json_is_array(content))
        return srv_fail(err, SRV_ERR_INVALID, field, "%s must be a string or a list of content parts", field);
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part) {
        json_t *type = json_is_object(part) ? json_object_get(part, "type") : NULL;
        if (!json_is_string(type))
            return srv_fail(err, SRV_ERR_INVALID, field, "%s[%zu] must be an object with a 'type'", field, i);
        const char *ty = json_string_value(type);
        if (!strcmp(ty, "text")) {
            json_t *text = json_object_get(part, "text");
            if (!json_is_string(text))
                return srv_fail(err, SRV_ERR_INVALID, field, "%s[%zu].text must be a string", field, i);
            if (out->len) strbuf_puts(out, "\n");
            strbuf_append(out, json_string_value(text), json_string_length(text));
        } else if (!strcmp(ty, "image_url") || !strcmp(ty, "image") || !strcmp(ty, "input_image")) {
            return srv_fail(err, SRV_ERR_INVALID, field,
                            "%s[%zu]: image content is not supported yet (this server has no vision model)", field, i);
        } else {
            return srv_fail(err, SRV_ERR_INVALID, field, "%s[%zu]: content of type '%s' is not supported", field, i,
                            ty);
        }
    }
    return 0;
}

/* appends {role, content: text of CONTENT} to OUT */
static int push_message(json_t *out, const char *role, json_t *content, const char *field, srv_error *err) {
    strbuf text;
    strbuf_init(&text);
    int rc = content ? content_text(content, field, &text, err) : 0;
    if (!rc) {
        json_t *m = json_pack("{s:s, s:s#}", "role", role, "content", text.data ? text.data : "", text.len);
        if (!m || text.failed || json_array_append_new(out, m))
            rc = srv_fail(err, SRV_ERR_INTERNAL, NULL, "out of memory");
    }
    strbuf_free(&text);
    return rc;
}

int prompt_openai_messages(json_t *messages, json_t **out, srv_error *err) {
    *out = NULL;
    if (!json_is_array(messages) || !json_array_size(messages))
        return srv_fail(err, SRV_ERR_INVALID, "messages", "'messages' must be a non-empty list of messages");
    json_t *list = json_array();
    size_t i;
    json_t *m;
    json_array_foreach(messages, i, m) {
        char field[48];
        snprintf(field, sizeof(field), "messages[%zu]", i);
        json_t *role = json_is_object(m) ? json_object_get(m, "role") : NULL;
        if (!json_is_string(role)) {
            json_decref(list);
            return srv_fail(err, SRV_ERR_INVALID, field, "%s must be an object with a string 'role'", field);
        }
        const char *r = json_string_value(role);
        if (!strcmp(r, "developer")) r = "system";
        if (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant")) {
            json_decref(list);
            return srv_fail(err, SRV_ERR_INVALID, field,
                            "%s.role '%s' is not supported (expected system, developer, user or assistant)", field,
                            json_string_value(role));
        }
        json_t *content = json_object_get(m, "content");
        snprintf(field, sizeof(field), "messages[%zu].content", i);
        if (json_is_null(content) || !content) {
            if (strcmp(r, "assistant")) {
                json_decref(list);
                return srv_fail(err, SRV_ERR_INVALID, field, "%s is required", field);
            }
            content = NULL;
        }
        if (push_message(list, r, content, field, err)) {
            json_decref(list);
            return -1;
        }
    }
    *out = list;
    return 0;
}

int prompt_anthropic_messages(json_t *body, json_t **out, bool *prefill, srv_error *err) {
    *out = NULL;
    *prefill = false;
    json_t *messages = json_object_get(body, "messages");
    if (!json_is_array(messages) || !json_array_size(messages))
        return srv_fail(err, SRV_ERR_INVALID, "messages", "messages: must be a non-empty list of messages");
    json_t *list = json_array();
    json_t *system = json_object_get(body, "system");
    if (system && !json_is_null(system) && push_message(list, "system", system, "system", err)) goto fail;
    if (json_array_size(list) && !strcmp(json_string_value(json_object_get(json_array_get(list, 0), "content")), ""))
        json_array_clear(list);
    size_t i;
    json_t *m;
    json_array_foreach(messages, i, m) {
        char field[48];
        snprintf(field, sizeof(field), "messages.%zu", i);
        json_t *role = json_is_object(m) ? json_object_get(m, "role") : NULL;
        const char *r = json_is_string(role) ? json_string_value(role) : "";
        if (strcmp(r, "user") && strcmp(r, "assistant")) {
            srv_fail(err, SRV_ERR_INVALID, field, "%s.role: must be 'user' or 'assistant'", field);
            goto fail;
        }
        json_t *content = json_object_get(m, "content");
        snprintf(field, sizeof(field), "messages.%zu.content", i);
        if (!content) {
            srv_fail(err, SRV_ERR_INVALID, field, "%s: Field required", field);
            goto fail;
        }
        if (push_message(list, r, content, field, err)) goto fail;
    }
    json_t *last = json_array_get(list, json_array_size(list) - 1);
    if (!strcmp(json_string_value(json_object_get(last, "role")), "assistant")) {
        if (strcmp(json_string_value(json_object_get(last, "content")), "")) *prefill = true;
        else json_array_remove(list, json_array_size(list) - 1);
    }
    *out = list;
    return 0;
fail:
    json_decref(list);
    return -1;
}

/* ---- tokens ---- */

int prompt_tokenize(const tok_vocab *v, const char *text, size_t len, bool add_bos, bool parse_special,
                    int32_t **ids, int *n_ids, srv_error *err) {
    *ids = NULL;
    *n_ids = 0;
    if (len > (size_t)1 << 30) return srv_fail(err, SRV_ERR_INVALID, NULL, "the text is too long to tokenize");
    int64_t cap = (int64_t)len + 16;
    for (;;) {
        int32_t *buf = malloc(sizeof(int32_t) * (size_t)cap);
        if (!buf) return srv_fail(err, SRV_ERR_INTERNAL, NULL, "out of memory");
        lm_error e = {{0}};
        int64_t n = tok_encode(v, text, len, add_bos, parse_special, buf, cap, &e);
        if (n < 0) {
            free(buf);
            return srv_fail(err, SRV_ERR_INVALID, NULL, "cannot tokenize the text: %s", e.msg);
        }
        if (n <= cap) {
            *ids = buf;
            *n_ids = (int)n;
            return 0;
        }
        free(buf);
        cap = n;
    }
}

void prompt_piece(const tok_vocab *v, int32_t id, strbuf *out) {
    char small[128];
    int n = tok_piece(v, id, true, small, (int)sizeof(small));
    if (n <= 0) return;
    if (n <= (int)sizeof(small)) {
        strbuf_append(out, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n);
    if (!big) {
        out->failed = true;
        return;
    }
    tok_piece(v, id, true, big, n);
    strbuf_append(out, big, (size_t)n);
    free(big);
}

void prompt_detokenize(const tok_vocab *v, const int32_t *ids, int n, strbuf *out) {
    for (int i = 0; i < n; i++) prompt_piece(v, ids[i], out);
}

/* cuts TEXT right after the last occurrence of CONTENT (the final assistant
 * message), so the model continues it; -1 if the template did not write it */
static int cut_after_final(char *text, const char *content) {
    size_t n = strlen(content);
    char *last = NULL;
    for (char *p = strstr(text, content); p; p = strstr(p + 1, content)) last = p;
    if (!last) return -1;
    last[n] = 0;
    return 0;
}

int prompt_chat_tokens(const srv_server *srv, json_t *messages, bool continue_final, json_t *kwargs, int32_t **ids,
                       int *n_ids, srv_error *err) {
    const srv_template *t = srv->tmpl;
    lm_error e = {{0}};
    char *text = render(t, messages, !continue_final, kwargs, &e);
    if (!text) return srv_fail(err, SRV_ERR_INVALID, "messages", "the chat template failed on these messages: %s", e.msg);
    if (continue_final) {
        json_t *last = json_array_get(messages, json_array_size(messages) - 1);
        if (cut_after_final(text, json_string_value(json_object_get(last, "content")))) {
            free(text);
            return srv_fail(err, SRV_ERR_INVALID, "messages",
                            "the chat template does not write the final assistant message, so it cannot be continued");
        }
    }
    /* the template may write BOS itself; the tokenizer then must not add a second one */
    size_t bos_len = strlen(t->bos_text);
    const char *start = text;
    if (t->add_bos && bos_len && !strncmp(text, t->bos_text, bos_len)) start += bos_len;
    int rc = prompt_tokenize(srv->vocab, start, strlen(start), t->add_bos, true, ids, n_ids, err);
    free(text);
    return rc;
}
