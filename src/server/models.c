/* models.c - GET /v1/models and GET /v1/models/{id} (OpenAI list shape).
 * The one model is listed under its served name; looking up another name
 * echoes it (any name is accepted, as for completions) unless --strict-model. */
#include <stdio.h>
#include <string.h>

#include "server/srv.h"

static json_t *model_json(const srv_server *srv, const char *id) {
    return json_pack("{s:s, s:s, s:I, s:s, s:i}", "id", id, "object", "model", "created", (json_int_t)srv->started,
                     "owned_by", "lamina", "max_model_len", srv->cfg.n_ctx);
}

int h_models(srv_request *req, srv_reply *out, srv_error *err) {
    return srv_reply_json(out,
                          json_pack("{s:s, s:[o]}", "object", "list", "data",
                                    model_json(req->srv, req->srv->cfg.served_name)),
                          err);
}

int h_model(srv_request *req, srv_reply *out, srv_error *err) {
    const char *id = req->path_arg;
    if (req->srv->cfg.strict_model && strcmp(id, req->srv->cfg.served_name)) {
        srv_fail(err, SRV_ERR_NOT_FOUND, "model", "The model '%s' does not exist; this server serves '%s'", id,
                 req->srv->cfg.served_name);
        snprintf(err->code, sizeof(err->code), "model_not_found");
        return -1;
    }
    json_t *name = srv_json_text(id, strlen(id));
    json_t *m = name ? model_json(req->srv, json_string_value(name)) : NULL;
    json_decref(name);
    return srv_reply_json(out, m, err);
}
