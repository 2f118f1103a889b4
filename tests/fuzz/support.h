/* support.h - what the fuzz harnesses share: the real models' vocabularies
 * and a server front end over them (no engine), and a reader that splits a
 * fuzz input into fields.
 *
 * Set-up failures (a model missing: run scripts/setup) end the process with a
 * message; they happen once, in LLVMFuzzerInitialize, never on an input. */
#ifndef LAMINA_FUZZ_SUPPORT_H
#define LAMINA_FUZZ_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf/gguf.h"
#include "server/request.h"
#include "server/srv.h"
#include "tokenizer/tokenizer.h"

#define FZ_SMOLLM2 "models/SmolLM2-135M-Instruct.Q4_1.gguf" /* byte-level BPE, ChatML template */
#define FZ_GEMMA3 "models/gemma-3-270m-q4_k_m.gguf"         /* SentencePiece */

/* Reports a broken invariant (with printf-style detail) and traps, so the
 * fuzzer records the input as a crash. */
void fz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
#define FZ_CHECK(cond, ...)                \
    do {                                   \
        if (!(cond)) fz_fail(__VA_ARGS__); \
    } while (0)

/* The vocabulary of the model at REL (relative to the source tree), loaded
 * once; *file (may be NULL) gets the open GGUF (kept open for the process). */
const tok_vocab *fz_vocab(const char *rel, const gguf_file **file);

/* A server as `lamina serve` sets it up for SmolLM2 (vocab, the model's chat
 * template, n_ctx 2048, 8 MiB bodies) with no engine: only the request front
 * halves (server/handlers.h) may run against it. */
srv_server *fz_server(void);

/* A POST request with a private NUL-terminated copy of BODY (fz_request_free). */
srv_request fz_request(srv_server *srv, const char *path, srv_api api, const uint8_t *body, size_t len);
void fz_request_free(srv_request *req);

/* Checks an error as the HTTP layer would render it: a known kind, a
 * message, and a body in both APIs' shapes. */
void fz_check_error(const srv_error *err);

/* Checks what a request front half accepted: a prompt of N_IDS (1 ..
 * n_ctx - 1) ids in the vocab, MAX_TOKENS within the rest of the context,
 * and generation fields in range; then builds each choice's engine
 * parameters from them. */
void fz_check_prepared(const srv_server *srv, const req_gen *g, const int32_t *ids, int n_ids, int max_tokens);

/* Splits a fuzz input: fields are taken from the front. */
typedef struct fz_reader {
    const uint8_t *data;
    size_t size;
} fz_reader;

uint8_t fz_byte(fz_reader *r);   /* 0 when empty */
uint16_t fz_u16(fz_reader *r);   /* little-endian; 0 when empty */
/* the bytes up to the next SEP (not included; consumed) or to the end */
size_t fz_until(fz_reader *r, uint8_t sep, const uint8_t **field);

#endif
