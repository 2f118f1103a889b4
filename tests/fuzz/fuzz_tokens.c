/* fuzz_tokens.c - POST /tokenize and POST /detokenize (server/tokens.c),
 * whole handlers (they need no engine) with SmolLM2's vocab. Byte 0 picks
 * the endpoint (bit 0: detokenize); the rest is the body. A reply must be
 * a JSON object ({"tokens"} / {"content"}); a refusal an error the HTTP layer
 * can render, never a 500. */
#include <stdlib.h>

#include "support.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fz_server();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    srv_server *srv = fz_server();
    const bool detok = data[0] & 1;
    srv_request req = fz_request(srv, detok ? "/detokenize" : "/tokenize", SRV_API_OPENAI, data + 1, size - 1);
    srv_reply reply = {0};
    srv_error err = {0};
    int rc = detok ? h_detokenize(&req, &reply, &err) : h_tokenize(&req, &reply, &err);
    if (rc) {
        fz_check_error(&err);
    } else {
        FZ_CHECK(reply.body && !reply.stream, "no reply body");
        json_error_t jerr;
        json_t *back = json_loads(reply.body, JSON_ALLOW_NUL, &jerr); /* a token may be U+0000 */
        FZ_CHECK(json_is_object(back) && json_object_get(back, detok ? "content" : "tokens"),
                 "the reply is not the endpoint's object: %.200s", reply.body);
        json_decref(back);
    }
    free(reply.body);
    fz_request_free(&req);
    return 0;
}
