/* chat.c - POST /v1/chat/completions: messages -> chat template -> tokens
 * (prep_chat, see handlers.h), then n choices through the shared OpenAI run
 * (openai.c). */
#include "server/handlers.h"
#include "server/openai.h"
#include "server/prompt.h"

/* the prompt tokens of the request's messages, rendered with
 * chat_template_kwargs as extra template variables */
static int chat_tokens(const srv_server *srv, json_t *body, int32_t **ids, int *n_ids, srv_error *err) {
    json_t *messages = NULL;
    if (prompt_openai_messages(json_object_get(body, "messages"), &messages, err)) return -1;
    json_t *kwargs = json_object_get(body, "chat_template_kwargs");
    int rc;
    if (kwargs && !json_is_null(kwargs) && !json_is_object(kwargs))
        rc = srv_fail(err, SRV_ERR_INVALID, "chat_template_kwargs", "'chat_template_kwargs' must be an object");
    else
        rc = prompt_chat_tokens(srv, messages, false, json_is_object(kwargs) ? kwargs : NULL, ids, n_ids, err);
    json_decref(messages);
    return rc;
}

int prep_chat(const srv_request *req, prep_request *out, srv_error *err) {
    srv_server *srv = req->srv;
    *out = (prep_request){0};
    if (srv_parse_body(req, &out->body, err) || srv_resolve_model(srv, out->body, &out->model, err) ||
        req_parse_openai(srv, out->body, false, &out->g, err) ||
        chat_tokens(srv, out->body, &out->ids, &out->n_ids, err) ||
        req_fit_context(srv, out->n_ids, "messages", &out->g, err)) {
        prep_request_free(out);
        return -1;
    }
    return 0;
}

int h_chat_completions(srv_request *req, srv_reply *out, srv_error *err) {
    prep_request in;
    if (prep_chat(req, &in, err)) return -1;
    int rc = -1;
    oai_run *run = oai_run_create(req, false, in.model, 1, &in.g, err);
    if (!run) goto done;
    if (oai_run_submit(run, 0, in.ids, in.n_ids, &in.g, err)) {
        oai_run_free(run);
        goto done;
    }
    rc = oai_run_finish(run, in.g.stream, out, err);
done:
    prep_request_free(&in);
    return rc;
}
