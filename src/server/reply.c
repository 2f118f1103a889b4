/* reply.c - errors as values in each API's shape, and the small helpers
 * every handler uses to read a request and build its reply. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/srv.h"
#include "server/strbuf.h"

int srv_fail(srv_error *e, srv_err_kind kind, const char *param, const char *fmt, ...) {
    e->kind = kind;
    snprintf(e->param, sizeof(e->param), "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    return -1;
}

int srv_error_status(srv_err_kind kind, srv_api api) {
    switch (kind) {
    case SRV_ERR_INVALID: return 400;
    case SRV_ERR_AUTH: return 401;
    case SRV_ERR_NOT_FOUND: return 404;
    case SRV_ERR_METHOD: return 405;
    case SRV_ERR_TOO_LARGE: return 413;
    case SRV_ERR_HEADERS: return 431;
    case SRV_ERR_SLOW_CLIENT: return 408;
    case SRV_ERR_DEADLINE: return 504;
    case SRV_ERR_OVERLOADED: return api == SRV_API_ANTHROPIC ? 529 : 503;
    case SRV_ERR_UNAVAILABLE: return 503;
    case SRV_ERR_CLIENT_GONE: return 499;
    case SRV_ERR_INTERNAL: return 500;
    }
    return 500;
}

/* OpenAI: "type" and a default "code" per kind */
static void openai_type(srv_err_kind kind, const char **type, const char **code) {
    *code = NULL;
    *type = "invalid_request_error";
    switch (kind) {
    case SRV_ERR_AUTH: *code = "invalid_api_key"; break;
    case SRV_ERR_TOO_LARGE: *code = "request_too_large"; break;
    case SRV_ERR_HEADERS: *code = "request_header_fields_too_large"; break;
    case SRV_ERR_SLOW_CLIENT: *code = "request_timeout"; break;
    case SRV_ERR_DEADLINE:
        *type = "server_error";
        *code = "timeout";
        break;
    case SRV_ERR_OVERLOADED:
        *type = "server_error";
        *code = "queue_full";
        break;
    case SRV_ERR_UNAVAILABLE:
        *type = "server_error";
        *code = "shutting_down";
        break;
    case SRV_ERR_CLIENT_GONE: *code = "client_closed_request"; break;
    case SRV_ERR_INTERNAL: *type = "server_error"; break;
    default: break;
    }
}

static const char *anthropic_type(srv_err_kind kind) {
    switch (kind) {
    case SRV_ERR_AUTH: return "authentication_error";
    case SRV_ERR_NOT_FOUND: return "not_found_error";
    case SRV_ERR_TOO_LARGE:
    case SRV_ERR_HEADERS: return "request_too_large";
    case SRV_ERR_DEADLINE: return "timeout_error";
    case SRV_ERR_OVERLOADED: return "overloaded_error";
    case SRV_ERR_UNAVAILABLE:
    case SRV_ERR_INTERNAL: return "api_error";
    default: return "invalid_request_error";
    }
}

char *srv_error_json(const srv_error *e, srv_api api) {
    json_t *msg = srv_json_text(e->message, strlen(e->message));
    json_t *root;
    if (api == SRV_API_ANTHROPIC) {
        root = json_pack("{s:s, s:{s:s, s:o}}", "type", "error", "error", "type", anthropic_type(e->kind),
                         "message", msg);
    } else {
        const char *type, *code;
        openai_type(e->kind, &type, &code);
        if (e->code[0]) code = e->code;
        root = json_pack("{s:{s:o, s:s, s:o, s:o}}", "error", "message", msg, "type", type, "param",
                         e->param[0] ? json_string(e->param) : json_null(), "code",
                         code ? json_string(code) : json_null());
    }
    if (!root) return NULL;
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return s;
}

int srv_parse_body(const srv_request *req, json_t **out, srv_error *err) {
    *out = NULL;
    if (req->body_len == 0)
        return srv_fail(err, SRV_ERR_INVALID, NULL, "the request body is empty; expected a JSON object");
    json_error_t jerr;
    json_t *root = json_loadb(req->body, req->body_len, 0, &jerr);
    if (!root)
        return srv_fail(err, SRV_ERR_INVALID, NULL, "invalid JSON in the request body: %s (line %d, column %d)",
                        jerr.text, jerr.line, jerr.column);
    if (!json_is_object(root)) {
        json_decref(root);
        return srv_fail(err, SRV_ERR_INVALID, NULL, "the request body must be a JSON object");
    }
    *out = root;
    return 0;
}

int srv_reply_json(srv_reply *out, json_t *obj, srv_error *err) {
    char *s = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!s) return srv_fail(err, SRV_ERR_INTERNAL, NULL, "out of memory building the response");
    out->body = s;
    return 0;
}

int srv_resolve_model(const srv_server *srv, json_t *body, const char **name, srv_error *err) {
    json_t *m = json_object_get(body, "model");
    *name = srv->cfg.served_name;
    if (!m || json_is_null(m)) return 0;
    if (!json_is_string(m)) return srv_fail(err, SRV_ERR_INVALID, "model", "'model' must be a string");
    if (srv->cfg.strict_model && strcmp(json_string_value(m), srv->cfg.served_name)) {
        srv_fail(err, SRV_ERR_NOT_FOUND, "model", "The model '%s' does not exist; this server serves '%s'",
                 json_string_value(m), srv->cfg.served_name);
        snprintf(err->code, sizeof(err->code), "model_not_found");
        return -1;
    }
    *name = json_string_value(m);
    return 0;
}

static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

void srv_new_id(srv_server *srv, const char *prefix, char *buf, size_t cap) {
    uint64_t n = atomic_fetch_add(&srv->id_counter, 1);
    uint64_t a = splitmix64(srv->id_seed ^ (n * 2)), b = splitmix64(srv->id_seed ^ (n * 2 + 1));
    snprintf(buf, cap, "%s%016llx%08llx", prefix, (unsigned long long)a, (unsigned long long)(b >> 32));
}

uint64_t srv_random(srv_server *srv) {
    return splitmix64(srv->id_seed ^ (atomic_fetch_add(&srv->id_counter, 1) * 0xD1B54A32D192ED03ull));
}

json_t *srv_json_text(const char *s, size_t len) {
    if (srv_utf8_valid(s, len)) return json_stringn(s, len);
    strbuf b;
    strbuf_init(&b);
    strbuf_append_utf8_lossy(&b, s, len);
    json_t *j = b.failed ? NULL : json_stringn(b.data ? b.data : "", b.len);
    strbuf_free(&b);
    return j;
}
