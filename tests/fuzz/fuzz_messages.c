/* fuzz_messages.c - POST /v1/messages and /v1/messages/count_tokens bodies
 * through prep_messages, the handlers' own front half (JSON, fields,
 * system + messages, prefill, chat template, tokens, context fit) with
 * SmolLM2's vocab and template. Every input goes to both endpoints; they
 * must agree on the prompt when both accept it. */
#include <string.h>

#include "server/handlers.h"
#include "support.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fz_server();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    srv_server *srv = fz_server();
    srv_request req = fz_request(srv, "/v1/messages", SRV_API_ANTHROPIC, data, size);
    prep_request gen, count;
    srv_error err = {0};
    int gen_rc = prep_messages(&req, false, &gen, &err);
    if (gen_rc) {
        fz_check_error(&err);
    } else {
        FZ_CHECK(gen.model, "no model name to echo");
        fz_check_prepared(srv, &gen.g, gen.ids, gen.n_ids, gen.g.max_tokens);
    }
    req.path = "/v1/messages/count_tokens";
    memset(&err, 0, sizeof(err));
    if (prep_messages(&req, true, &count, &err)) {
        fz_check_error(&err);
        FZ_CHECK(gen_rc, "count_tokens refused what messages accepted: %s", err.message);
    } else {
        FZ_CHECK(count.n_ids >= 1, "count_tokens: %d tokens", count.n_ids);
        for (int i = 0; i < count.n_ids; i++)
            FZ_CHECK(count.ids[i] >= 0 && count.ids[i] < tok_n_vocab(srv->vocab), "count_tokens: token %d", i);
        FZ_CHECK(gen_rc || (gen.n_ids == count.n_ids && !memcmp(gen.ids, count.ids, sizeof(int32_t) * gen.n_ids)),
                 "count_tokens counts %d tokens, messages prepares %d", count.n_ids, gen.n_ids);
        prep_request_free(&count);
    }
    if (!gen_rc) prep_request_free(&gen);
    fz_request_free(&req);
    return 0;
}
