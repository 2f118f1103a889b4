/* chat.c - POST /v1/chat/completions: messages -> chat template -> tokens,
 * then n choices through the shared OpenAI run (openai.c). */
#include "server/openai.h"
#include "server/prompt.h"

int h_chat_completions(srv_request *req, srv_reply *out, srv_error *err) {
    srv_server *srv = req->srv;
    json_t *body = NULL, *messages = NULL;
    int32_t *ids = NULL;
    int n_ids = 0, rc = -1;
    req_gen g = {0};
    const char *model;
    if (srv_parse_body(req, &body, err) || srv_resolve_model(srv, body, &model, err)) goto done;
    if (req_parse_openai(srv, body, false, &g, err)) goto done;
    if (prompt_openai_messages(json_object_get(body, "messages"), &messages, err)) goto done;
    json_t *kwargs = json_object_get(body, "chat_template_kwargs");
    if (kwargs && !json_is_null(kwargs) && !json_is_object(kwargs)) {
        srv_fail(err, SRV_ERR_INVALID, "chat_template_kwargs", "'chat_template_kwargs' must be an object");
        goto done;
    }
    if (prompt_chat_tokens(srv, messages, false, json_is_object(kwargs) ? kwargs : NULL, &ids, &n_ids, err)) goto done;
    if (req_fit_context(srv, n_ids, "messages", &g, err)) goto done;
    oai_run *run = oai_run_create(req, false, model, 1, &g, err);
    if (!run) goto done;
    if (oai_run_submit(run, 0, ids, n_ids, &g, err)) {
        oai_run_free(run);
        goto done;
    }
    rc = oai_run_finish(run, g.stream, out, err);
done:
    free(ids);
    req_gen_free(&g);
    json_decref(messages);
    json_decref(body);
    return rc;
}
