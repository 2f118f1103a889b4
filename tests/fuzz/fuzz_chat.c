/* fuzz_chat.c - POST /v1/chat/completions bodies through prep_chat, the
 * handler's own front half (JSON, fields, messages, chat template,
 * tokens, context fit) with SmolLM2's vocab and template. An accepted
 * request must be one the engine takes; a refused one must carry an error
 * the HTTP layer can render, and never a 500. */
#include "server/handlers.h"
#include "support.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fz_server();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    srv_server *srv = fz_server();
    srv_request req = fz_request(srv, "/v1/chat/completions", SRV_API_OPENAI, data, size);
    prep_request in;
    srv_error err = {0};
    if (prep_chat(&req, &in, &err)) {
        fz_check_error(&err);
    } else {
        FZ_CHECK(in.model, "no model name to echo");
        fz_check_prepared(srv, &in.g, in.ids, in.n_ids, in.g.max_tokens);
        prep_request_free(&in);
    }
    fz_request_free(&req);
    return 0;
}
