/* fuzz_completions.c - POST /v1/completions bodies through
 * prep_completions, the handler's own front half (JSON, fields, the four
 * shapes of "prompt", token id checks, echo text, per-prompt context fit)
 * with SmolLM2's vocab. Every accepted prompt must be one the engine takes;
 * a refused request must carry an error the HTTP layer can render, never a
 * 500. */
#include "server/handlers.h"
#include "support.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fz_server();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    srv_server *srv = fz_server();
    srv_request req = fz_request(srv, "/v1/completions", SRV_API_OPENAI, data, size);
    prep_legacy_request in;
    srv_error err = {0};
    if (prep_completions(&req, &in, &err)) {
        fz_check_error(&err);
    } else {
        FZ_CHECK(in.model, "no model name to echo");
        FZ_CHECK(in.n_prompts >= 1 && in.n_prompts * in.g.n <= PREP_MAX_CHOICES_TOTAL, "%d prompts x n = %d",
                 in.n_prompts, in.g.n);
        for (int p = 0; p < in.n_prompts; p++) {
            const prep_prompt *pp = &in.prompts[p];
            fz_check_prepared(srv, &in.g, pp->ids, pp->n_ids, pp->max_tokens);
            FZ_CHECK(!pp->echo == !in.echo, "prompt %d: echo text %s", p, pp->echo ? "without echo" : "missing");
        }
        prep_legacy_request_free(&in);
    }
    fz_request_free(&req);
    return 0;
}
