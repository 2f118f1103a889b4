/* fuzz_jinja.c - the chat template interpreter (chat/template.h): an input
 * is template source, then optionally a NUL byte and a JSON object whose
 * keys are added to (or replace) a default context of messages,
 * add_generation_prompt, bos_token and eos_token.
 *
 * The template is parsed, and rendered under small limits (steps, which
 * also pay for the bytes and items an operation scans, output, memory) so
 * that huge loops and runaway operations end quickly as errors; the
 * recursion depth limit is the production default. A render that succeeds
 * must give valid UTF-8 (the source and the context are), and the same
 * text when rendered again (a parsed template is immutable). */
#include <string.h>

#include "chat/template.h"
#include "support.h"

static json_t *default_context;

static bool utf8_ok(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p;
        int k = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
        if (!k) return false;
        if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f) || (c == 0xf0 && p[1] < 0x90) ||
            (c == 0xf4 && p[1] > 0x8f))
            return false;
        for (int j = 1; j < k; j++)
            if ((p[j] & 0xc0) != 0x80) return false;
        p += k;
    }
    return true;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    default_context = json_pack(
        "{s:[{s:s, s:s}, {s:s, s:s}, {s:s, s:s}, {s:s, s:s}], s:b, s:s, s:s}", "messages", "role", "system",
        "content", "You are helpful.", "role", "user", "content", "Hi \xc3\xa9\xf0\x9f\x99\x82", "role", "assistant",
        "content", "Hello!", "role", "user", "content", "Bye", "add_generation_prompt", 1, "bos_token", "<s>",
        "eos_token", "</s>");
    if (!default_context) fz_fail("default context");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_reader r = {data, size};
    const uint8_t *src;
    size_t src_len = fz_until(&r, 0, &src);
    const uint8_t *ctx_text = r.data;
    size_t ctx_len = r.size;
    lm_error err = {{0}};
    chat_template *t = chat_template_parse((const char *)src, src_len, &err);
    if (!t) {
        FZ_CHECK(err.msg[0], "parse failed without a message");
        return 0;
    }
    json_t *ctx = json_deep_copy(default_context);
    json_t *extra = ctx_len ? json_loadb((const char *)ctx_text, ctx_len, 0, NULL) : NULL;
    if (json_is_object(extra)) json_object_update(ctx, extra);
    json_decref(extra);
    chat_render_opts opts = {
        .now = 1700000000,
        .max_output = 1 << 20,
        .max_memory = 64u << 20,
        .max_steps = 200000,
    };
    char *out = chat_template_render(t, ctx, &opts, &err);
    if (!out) {
        FZ_CHECK(err.msg[0], "render failed without a message");
    } else {
        size_t n = strlen(out);
        FZ_CHECK(utf8_ok(out), "the output is not valid UTF-8 (%zu bytes)", n);
        if (n < (64 << 10)) {
            lm_error err2 = {{0}};
            char *again = chat_template_render(t, ctx, &opts, &err2);
            FZ_CHECK(again && !strcmp(out, again), "a second render differs: %s", again ? "other text" : err2.msg);
            free(again);
        }
        free(out);
    }
    json_decref(ctx);
    chat_template_free(t);
    return 0;
}
