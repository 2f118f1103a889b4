/* template.h - chat templates: the Jinja2 subset that GGUF models store in
 * tokenizer.chat_template, rendered byte for byte as transformers'
 * apply_chat_template renders them (Jinja2 with trim_blocks and
 * lstrip_blocks, its tojson, raise_exception and strftime_now).
 *
 *     chat_template *t = chat_template_parse(src, strlen(src), &err);
 *     char *prompt = chat_template_render(t, context, NULL, &err);
 *     ...
 *     free(prompt);
 *     chat_template_free(t);
 *
 * Supported: {{ }}, {% %}, {# #}, whitespace control (-, +), raw; if/elif/
 * else, for (else, `if` filter, unpacking, loop.*, break/continue), set
 * (ns.attr, unpacking, block set with filters), macro/call/caller,
 * filter blocks, generation blocks; Python-like expressions with literals,
 * slices, calls, filters and tests (see filters.c, filters_seq.c, tests.c),
 * string/dict/list methods (methods.c) and the globals range, dict,
 * namespace, raise_exception and strftime_now. Not supported: extends,
 * include, import, recursive loops, loop.changed, star-args in calls,
 * cycler/joiner/lipsum, the format filter and `str % args`.
 *
 * Known differences from Jinja2 (none shows in real chat templates):
 * integers are 64-bit (overflow is an error, not a big integer); upper,
 * lower, title and capitalize change ASCII letters only; filters that give
 * generators in Jinja2 (map, select, ...) are computed at once, so a bad
 * input fails even if never consumed, and they may be iterated twice; repr()
 * of non-ASCII text approximates str.isprintable().
 *
 * A template never crashes the process: syntax errors and runtime faults are
 * returned as "chat template LINE:COL: what" messages, and a render is
 * bounded in output size, memory, evaluation steps and recursion depth.
 * A parsed template is immutable: several threads may render it at once. */
#ifndef LAMINA_CHAT_TEMPLATE_H
#define LAMINA_CHAT_TEMPLATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef struct chat_template chat_template;

typedef struct chat_render_opts {
    int64_t now;        /* seconds since the epoch for strftime_now() (local time); 0 = now */
    size_t max_output;  /* bytes of output, and of any one string built; 0 = 16 MiB */
    size_t max_memory;  /* bytes one render may allocate; 0 = 256 MiB */
    uint64_t max_steps; /* evaluation steps (expressions and statements, and one per 64 bytes
                           or 8 items an operation scans or compares); 0 = 20 million */
    int max_depth;      /* nested evaluation (macro recursion, deep expressions); 0 = 1000 */
} chat_render_opts;

/* Parses LEN bytes of template source (UTF-8). Returns NULL and fills err
 * with "chat template L:C: what" on a syntax error, an unknown filter or
 * test, or bytes that are not UTF-8. Free with chat_template_free(). */
chat_template *chat_template_parse(const char *src, size_t len, lm_error *err);
void chat_template_free(chat_template *t);

/* Renders T with the variables of CONTEXT (a JSON object: messages,
 * add_generation_prompt, bos_token, eos_token, tools, ...). OPTS may be NULL.
 * Returns a malloc'd NUL-terminated string (the caller frees it), or NULL
 * with err filled: "chat template L:C: what" for faults, and the template's
 * own words, verbatim, when it calls raise_exception("..."). */
char *chat_template_render(const chat_template *t, const json_t *context,
                           const chat_render_opts *opts, lm_error *err);

/* Convenience for the server: parses TEMPLATE_SRC and renders MESSAGES (a
 * JSON array of {role, content, ...}) with add_generation_prompt, bos_token
 * and eos_token (NULL = ""), plus the keys of EXTRA (a JSON object or NULL:
 * tools, documents, enable_thinking, ...). Same result and errors as
 * chat_template_render(). */
char *chat_apply(const char *template_src, const json_t *messages, bool add_generation_prompt,
                 const char *bos_token, const char *eos_token, const json_t *extra, lm_error *err);

#endif
