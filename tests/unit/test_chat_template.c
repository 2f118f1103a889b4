/* test_chat_template.c - the chat template interpreter against Python Jinja2.
 *
 * The reference outputs come from scripts/gen_template_fixtures.py, which
 * renders with Jinja2 configured as transformers' apply_chat_template:
 *   - expected.json: 29 real chat templates (SmolLM2's from its GGUF, the rest
 *     from llama.cpp's models/templates) x 13 conversations, byte for byte;
 *     where Jinja2 fails (raise_exception, type errors) we must fail too, with
 *     raise_exception's words verbatim;
 *   - language.json: one case per statement, expression, filter, test and
 *     method, the source newline rules, and every whitespace-control marker.
 * Then what Python cannot tell us: error messages with line:col, the limits
 * (steps, depth, memory, output, work within a step), the SmolLM2 template read through our GGUF
 * reader, concurrent renders of one template, and mutated templates that
 * must fail cleanly (run the ASan build to make that check strict). */
#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat/template.h"
#include "check.h"
#include "gguf/gguf.h"

#define FIXTURES     "tests/fixtures/templates/"
#define SMOLLM2_GGUF "models/SmolLM2-135M-Instruct.Q4_1.gguf"

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)size + 1);
    size_t n = fread(buf, 1, (size_t)size, f);
    fclose(f);
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

/* The output agrees with the reference; on a mismatch, show where. */
static void check_same(const char *what, const char *want, const char *got) {
    if (strcmp(want, got) == 0) {
        CHECK(1, "%s", what);
        return;
    }
    size_t i = 0;
    while (want[i] && want[i] == got[i]) i++;
    size_t from = i > 40 ? i - 40 : 0;
    CHECK(0, "%s: differs at byte %zu:\n  want ...%.80s\n  got  ...%.80s", what, i, want + from,
          got + from);
}

/* Compares one render with a reference entry {output} or {error}. */
static void check_render(const char *what, const json_t *ref, const char *got, const char *err) {
    const json_t *out = json_object_get(ref, "output");
    if (out) {
        CHECK(got != NULL, "%s: failed: %s", what, err);
        if (got) check_same(what, json_string_value(out), got);
        return;
    }
    const char *want_err = json_string_value(json_object_get(ref, "error"));
    CHECK(got == NULL, "%s: rendered, but Jinja2 fails with %s", what, want_err);
    if (got) return;
    const char *raised = "TemplateError: ";
    if (strncmp(want_err, raised, strlen(raised)) == 0)
        CHECK(strcmp(err, want_err + strlen(raised)) == 0,
              "%s: raise_exception message '%s', want '%s'", what, err, want_err + strlen(raised));
    else
        CHECK(strncmp(err, "chat template", 13) == 0 && !strchr(err, '\n'),
              "%s: bad message '%s' (Jinja2: %s)", what, err, want_err);
}

static json_t *load_json(const char *path) {
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    CHECK(j != NULL, "%s: %s (run scripts/gen_template_fixtures.py)", path, je.text);
    return j;
}

/* ---- real templates ---- */

typedef struct parsed {
    char name[128];
    chat_template *t;
} parsed;

static chat_template *template_named(parsed *cache, size_t *n, const char *name) {
    for (size_t i = 0; i < *n; i++)
        if (strcmp(cache[i].name, name) == 0) return cache[i].t;
    char path[256];
    snprintf(path, sizeof(path), FIXTURES "%s.jinja", name);
    size_t len;
    char *src = read_file(path, &len);
    CHECK(src != NULL, "cannot read %s", path);
    lm_error err = {{0}};
    chat_template *t = src ? chat_template_parse(src, len, &err) : NULL;
    CHECK(t != NULL, "%s: %s", name, err.msg);
    free(src);
    snprintf(cache[*n].name, sizeof(cache[*n].name), "%s", name);
    cache[(*n)++].t = t;
    return t;
}

static void test_real_templates(const json_t *expected) {
    const json_t *contexts = json_object_get(expected, "contexts");
    const json_t *renders = json_object_get(expected, "renders");
    chat_render_opts opts = {.now = json_integer_value(json_object_get(expected, "now"))};
    parsed cache[64];
    size_t n_cache = 0, n_out = 0;
    size_t i;
    const json_t *r;
    json_array_foreach(renders, i, r) {
        const char *name = json_string_value(json_object_get(r, "template"));
        const char *cname = json_string_value(json_object_get(r, "context"));
        if (n_cache == 64) break;
        chat_template *t = template_named(cache, &n_cache, name);
        if (!t) continue;
        lm_error err = {{0}};
        char *got = chat_template_render(t, json_object_get(contexts, cname), &opts, &err);
        char what[256];
        snprintf(what, sizeof(what), "%s / %s", name, cname);
        check_render(what, r, got, err.msg);
        n_out += got != NULL;
        free(got);
    }
    CHECK(n_cache >= 12 && json_array_size(renders) >= 12 * 10, "only %zu templates", n_cache);
    printf("real templates: %zu templates, %zu renders (%zu outputs)\n", n_cache,
           json_array_size(renders), n_out);
    for (size_t k = 0; k < n_cache; k++) chat_template_free(cache[k].t);
}

static void test_language(const json_t *cases, int64_t now) {
    chat_render_opts opts = {.now = now};
    size_t i;
    const json_t *c;
    json_array_foreach(cases, i, c) {
        const json_t *src = json_object_get(c, "template");
        lm_error err = {{0}};
        chat_template *t =
            chat_template_parse(json_string_value(src), json_string_length(src), &err);
        char *got = t ? chat_template_render(t, json_object_get(c, "context"), &opts, &err) : NULL;
        char what[160];
        snprintf(what, sizeof(what), "language case %zu '%.100s'", i, json_string_value(src));
        check_render(what, c, got, err.msg);
        free(got);
        chat_template_free(t);
    }
    printf("language: %zu cases\n", json_array_size(cases));
}

/* ---- what only we can check ---- */

static char *render_text(const char *src, const char *ctx_json, const chat_render_opts *opts,
                         lm_error *err) {
    json_error_t je;
    json_t *ctx = json_loads(ctx_json ? ctx_json : "{}", 0, &je);
    chat_template *t = chat_template_parse(src, strlen(src), err);
    char *out = t ? chat_template_render(t, ctx, opts, err) : NULL;
    chat_template_free(t);
    json_decref(ctx);
    return out;
}

static void expect_error_at(const char *src, const char *ctx, const chat_render_opts *opts,
                            const char *want, int line) {
    lm_error err = {{0}};
    char *out = render_text(src, ctx, opts, &err);
    CHECK(out == NULL, "line %d: '%s' rendered '%s'", line, src, out ? out : "");
    CHECK(strstr(err.msg, want) != NULL, "line %d: '%s': message '%s' lacks '%s'", line, src,
          err.msg, want);
    free(out);
}
#define expect_error(src, ctx, want) expect_error_at(src, ctx, NULL, want, __LINE__)

static void test_errors(void) {
    /* syntax errors name line:col */
    expect_error("hello\n  {% if x %}\n{% endfor %}", NULL, "chat template 3:4: ");
    expect_error("{{ 1 + }}", NULL, "chat template 1:8: ");
    expect_error("a\n{{ 'abc }}", NULL, "chat template 2:4: unterminated string");
    expect_error("{# open", NULL, "chat template 1:1: missing end of comment tag");
    expect_error("{% if true %}x", NULL, "expected 'endif'");
    expect_error("{{ (1, 2 }}", NULL, "chat template 1:10: unexpected '}'");
    expect_error("{{ x }", NULL, "chat template 1:6: unexpected '}'");
    expect_error("{{ x ", NULL, "chat template 1:1: unexpected end of template, expected '}}'");
    expect_error("{% include 'other' %}", NULL, "unsupported tag 'include'");
    expect_error("{% for x in y recursive %}{% endfor %}", NULL,
                 "recursive loops are not supported");
    expect_error("{% break %}", NULL, "chat template 1:4: 'break' outside loop");
    expect_error("{% macro m(a=1, b) %}{% endmacro %}", NULL, "non-default argument");
    expect_error("{{ x is defined is none }}", NULL, "cannot chain");
    expect_error("caf\xc3(", NULL, "chat template 1:4: invalid UTF-8");
    /* unknown filters and tests fail at parse time, even in branches never taken */
    expect_error("{% if false %}{{ x|nope }}{% endif %}", NULL,
                 "chat template 1:20: no filter named 'nope'");
    expect_error("{{ x is nope }}", NULL, "no test named 'nope'");
    /* a slice inside a tuple subscript is Python's slice object, which nothing takes
     * (it used to be evaluated as a NULL node: fuzz_jinja) */
    expect_error("{{ [1, 2][:, 1] }}", NULL, "unhashable type: 'slice'");
    expect_error("r{{-0.4[:,1]-}}}", NULL, "unhashable type: 'slice'");
    /* runtime faults carry the position of the failing expression */
    expect_error("{{ 1 }}\n{{ x.y.z }}", "{\"x\": {}}", "chat template 2:4: 'x.y' is undefined");
    expect_error("{{ 'a' + 1 }}", NULL, "unsupported operand type(s) for +: 'str' and 'int'");
    expect_error("{{ 1 // 0 }}", NULL, "division or modulo by zero");
    expect_error("{% for x in 3 %}{% endfor %}", NULL, "'int' object is not iterable");
    expect_error("{% set a, b = [1] %}", NULL, "not enough values to unpack");
    expect_error("{{ [].append(1) }}", NULL, "'[].append' is undefined");
    expect_error("{{ 'x'|tojson(indent=[]) }}", NULL, "indent must be");
    expect_error("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", NULL, "takes not more than 1");
    expect_error("{{ range(1000000) }}", NULL, "range too big");
    expect_error("{{ 9223372036854775807 + 1 }}", NULL, "integer overflow");
    /* raise_exception: the template's words, verbatim */
    lm_error err = {{0}};
    char *out = render_text("{% if messages|length > 1 %}{{ raise_exception('Only one message, "
                            "please.') }}{% endif %}",
                            "{\"messages\": [1, 2]}", NULL, &err);
    CHECK(out == NULL && strcmp(err.msg, "Only one message, please.") == 0, "raise_exception: '%s'",
          err.msg);
    free(out);
    /* the context must be an object */
    chat_template *t = chat_template_parse("x", 1, &err);
    json_t *arr = json_array();
    out = chat_template_render(t, arr, NULL, &err);
    CHECK(out == NULL && strstr(err.msg, "JSON object"), "array context: '%s'", err.msg);
    json_decref(arr);
    chat_template_free(t);
    /* a NUL inside the source (GGUF strings carry a length) */
    CHECK(chat_template_parse("a\0b", 3, &err) == NULL && strstr(err.msg, "NUL"), "NUL: '%s'",
          err.msg);
}

static void test_limits(void) {
    chat_render_opts small = {
        .max_output = 1000, .max_steps = 10000, .max_memory = 1 << 20, .max_depth = 50};
    expect_error_at(
        "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}", NULL,
        &small, "evaluation steps", __LINE__);
    expect_error_at("{% for i in range(2000) %}xx{% endfor %}", NULL, &small,
                    "output longer than 1000 bytes", __LINE__);
    expect_error_at("{{ 'x' * 5000 }}", NULL, &small, "output limit", __LINE__);
    expect_error_at("{% set ns = namespace(l=[]) %}{% for i in range(5000) %}"
                    "{% set ns.l = ns.l + [i] %}{% endfor %}",
                    NULL, &(chat_render_opts){.max_memory = 1 << 20}, "more than 1 MiB", __LINE__);
    expect_error_at("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", NULL, &small,
                    "recursion deeper than 50", __LINE__);
    /* the defaults stop runaway templates too */
    expect_error("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", NULL,
                 "recursion deeper");
    expect_error(
        "{% set l = range(100000) %}{% for a in l %}{% for b in l %}{% endfor %}{% endfor %}", NULL,
        "evaluation steps");
    /* deep trees are refused when parsed, whatever their shape */
    char *deep = malloc(300000);
    size_t k = (size_t)sprintf(deep, "{{ 1");
    for (int i = 0; i < 50000; i++) k += (size_t)sprintf(deep + k, " + 1");
    sprintf(deep + k, " }}");
    expect_error(deep, NULL, "nested too deeply");
    memset(deep, '(', 1000);
    memcpy(deep, "{{ ", 3);
    strcpy(deep + 1000, "1 }}");
    expect_error(deep, NULL, "nested too deeply");
    strcpy(deep, "");
    for (int i = 0; i < 300; i++) strcat(deep, "{% if 1 %}");
    expect_error(deep, NULL, "nested too deeply");
    free(deep);
    /* a namespace that contains itself cannot be printed, but does not crash */
    expect_error("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}", NULL,
                 "nested too deeply");
}

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* One step over a big string or list costs what it scans, in the same step
 * budget: these each ran for minutes to hours within 20M steps (found
 * fuzzing, tests/fuzz/fuzz_jinja.c). */
static void test_work_limits(void) {
    static const char *const runaway[] = {
        /* quadratic unique over 100k items (15 s in one step) */
        "{{ range(100000)|list|unique|list|length }}",
        /* O(n) scans of an 8 MB string, 100k times */
        "{% set s = 'a' * 8000000 %}{% for i in range(100000) %}{% set t = s[1:] %}{% endfor %}",
        "{% set s = 'a' * 8000000 %}{% for i in range(100000) %}{% set t = s[7999999] %}{% endfor %}",
        "{% set s = 'a' * 8000000 %}{% for i in range(100000) %}{% set t = s|length %}{% endfor %}",
        "{% set s = 'a' * 8000000 %}{% for i in range(100000) %}{% if 'b' in s %}{% endif %}{% endfor %}",
        "{% set s = 'a' * 8000000 %}{% for i in range(100000) %}{% set t = s.find('b') %}{% endfor %}",
        /* list scans whose items are long equal strings (800 GB compared in one step) */
        "{% set s = 'a' * 8000000 %}{% set u = s[:7999998] ~ 'b' %}{% set l = [s[:7999999]] * 100000 %}"
        "{{ u in l }}",
        "{% set s = 'a' * 8000000 %}{{ [s[:7999999]] * 100000 == [s[1:]] * 100000 }}",
        "{% set l = range(100000)|list %}{% for i in range(100000) %}{% if -1 in l %}{% endif %}{% endfor %}",
    };
    chat_render_opts opts = {.max_steps = 2000000}; /* a tenth of the default, for speed */
    for (size_t i = 0; i < sizeof(runaway) / sizeof(runaway[0]); i++) {
        double t0 = seconds();
        expect_error_at(runaway[i], NULL, &opts, "evaluation steps", __LINE__);
        double dt = seconds() - t0;
        CHECK(dt < 20, "runaway template %zu stopped after %.1f s", i, dt);
    }
    /* the context is read in linear time: a JSON object of 300k keys (a
     * chat_template_kwargs of 4 MB) took minutes when each key was looked up
     * among the ones before it */
    json_t *big = json_object();
    for (int i = 0; i < 300000; i++) {
        char key[16];
        snprintf(key, sizeof(key), "k%07d", i);
        json_object_set_new(big, key, json_integer(i));
    }
    json_t *ctx = json_pack("{s:o}", "kwargs", big);
    lm_error err = {{0}};
    chat_template *t = chat_template_parse("{{ kwargs.k0299999 }}", 21, &err);
    double t0 = seconds();
    char *out = t ? chat_template_render(t, ctx, NULL, &err) : NULL;
    double dt = seconds() - t0;
    CHECK(out && !strcmp(out, "299999"), "300k-key context: '%s' (%s)", out ? out : "", err.msg);
    CHECK(dt < 5, "a 300k-key context took %.1f s to render", dt);
    free(out);
    chat_template_free(t);
    json_decref(ctx);
}

/* The SmolLM2 template read with our GGUF reader is the fixture's, and
 * chat_apply() renders it as Jinja2 did. */
static void test_gguf_template(const json_t *expected) {
    lm_error err = {{0}};
    gguf_file *f = gguf_open(SMOLLM2_GGUF, &err);
    if (!f) {
        printf("skipping the GGUF template check: %s\n", err.msg);
        return;
    }
    gguf_str s;
    CHECK(gguf_get_str(f, "tokenizer.chat_template", &s) == 0, "no tokenizer.chat_template");
    size_t len;
    char *fixture = read_file(FIXTURES "SmolLM2-135M-Instruct.jinja", &len);
    CHECK(fixture && len == s.len && memcmp(fixture, s.data, len) == 0,
          "the GGUF template differs from the fixture");
    char *src = strndup(s.data, s.len);
    gguf_close(f);

    const json_t *ctx = json_object_get(json_object_get(expected, "contexts"), "system_user");
    const json_t *r;
    size_t i;
    json_array_foreach(json_object_get(expected, "renders"), i, r) {
        if (strcmp(json_string_value(json_object_get(r, "template")), "SmolLM2-135M-Instruct") ||
            strcmp(json_string_value(json_object_get(r, "context")), "system_user"))
            continue;
        json_t *extra = json_pack("{s:n, s:n}", "tools", "documents");
        char *got =
            chat_apply(src, json_object_get(ctx, "messages"), true, "<s>", "</s>", extra, &err);
        CHECK(got != NULL, "chat_apply: %s", err.msg);
        if (got)
            check_same("chat_apply SmolLM2", json_string_value(json_object_get(r, "output")), got);
        free(got);
        json_decref(extra);
    }
    free(src);
    free(fixture);
}

/* ---- concurrency ---- */

typedef struct job {
    const chat_template *t;
    const json_t *ctx;
    const char *want;
    int failures;
} job;

static void *render_many(void *arg) {
    job *j = arg;
    for (int i = 0; i < 30; i++) {
        lm_error err;
        char *got =
            chat_template_render(j->t, j->ctx, &(chat_render_opts){.now = 1721980800}, &err);
        j->failures += !got || strcmp(got, j->want) != 0;
        free(got);
    }
    return NULL;
}

static void test_threads(const json_t *expected) {
    const json_t *r;
    size_t i;
    json_array_foreach(json_object_get(expected, "renders"), i, r) {
        if (strcmp(json_string_value(json_object_get(r, "template")), "Qwen-Qwen3-0.6B") ||
            strcmp(json_string_value(json_object_get(r, "context")), "tool_call"))
            continue;
        size_t len;
        char *src = read_file(FIXTURES "Qwen-Qwen3-0.6B.jinja", &len);
        lm_error err;
        chat_template *t = chat_template_parse(src, len, &err);
        CHECK(t != NULL, "parse: %s", err.msg);
        job jobs[4];
        pthread_t th[4];
        for (int k = 0; k < 4; k++) {
            jobs[k] = (job){t, json_object_get(json_object_get(expected, "contexts"), "tool_call"),
                            json_string_value(json_object_get(r, "output")), 0};
            pthread_create(&th[k], NULL, render_many, &jobs[k]);
        }
        for (int k = 0; k < 4; k++) {
            pthread_join(th[k], NULL);
            CHECK(jobs[k].failures == 0, "thread %d: %d bad renders", k, jobs[k].failures);
        }
        chat_template_free(t);
        free(src);
    }
}

/* ---- mutated templates fail cleanly ---- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static uint64_t rng(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void test_mutations(const json_t *expected) {
    static const char *const names[] = {"Qwen-Qwen3-0.6B", "meta-llama-Llama-3.1-8B-Instruct",
                                        "openai-gpt-oss-120b", "google-gemma-4-31B-it",
                                        "meetkai-functionary-medium-v3.2"};
    static const char *const pieces[] = {"{%",
                                         "%}",
                                         "{{",
                                         "}}",
                                         "{#",
                                         "#}",
                                         "-",
                                         "(",
                                         ")",
                                         "[",
                                         "]",
                                         "'",
                                         "\"",
                                         "|",
                                         ".",
                                         " is ",
                                         " in ",
                                         ",",
                                         "\\",
                                         "\n",
                                         "endif",
                                         "endfor",
                                         "{% endmacro %}",
                                         "loop",
                                         "ns",
                                         "~"};
    const json_t *ctx = json_object_get(json_object_get(expected, "contexts"), "tool_call");
    int parsed_ok = 0, rendered = 0, total = 0;
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        char path[256];
        size_t len;
        snprintf(path, sizeof(path), FIXTURES "%s.jinja", names[k]);
        char *src = read_file(path, &len);
        if (!src) continue;
        char *buf = malloc(len + 64);
        for (int m = 0; m < 150; m++, total++) {
            memcpy(buf, src, len);
            size_t n = len;
            for (int edits = 1 + (int)(rng() % 3); edits > 0 && n > 0; edits--) {
                size_t at = rng() % n;
                switch (rng() % 3) {
                case 0:
                    buf[at] = (char)(rng() & 0xFF);
                    break; /* may break UTF-8: must be refused */
                case 1: /* delete a run */ {
                    size_t k2 = 1 + rng() % 8;
                    if (k2 > n - at) k2 = n - at;
                    memmove(buf + at, buf + at + k2, n - at - k2);
                    n -= k2;
                    break;
                }
                default: { /* insert a syntax piece */
                    const char *p = pieces[rng() % (sizeof(pieces) / sizeof(pieces[0]))];
                    size_t pl = strlen(p);
                    if (n + pl > len + 63) break;
                    memmove(buf + at + pl, buf + at, n - at);
                    memcpy(buf + at, p, pl);
                    n += pl;
                }
                }
            }
            lm_error err = {{0}};
            chat_template *t = chat_template_parse(buf, n, &err);
            if (!t) {
                CHECK(err.msg[0] && !strchr(err.msg, '\n'), "mutation: bad parse message '%s'",
                      err.msg);
                continue;
            }
            parsed_ok++;
            char *out =
                chat_template_render(t, ctx, &(chat_render_opts){.max_steps = 200000}, &err);
            if (out)
                rendered++;
            else
                CHECK(err.msg[0] != '\0', "mutation: render failed without a message");
            free(out);
            chat_template_free(t);
        }
        free(buf);
        free(src);
    }
    printf("mutations: %d templates, %d parsed, %d rendered\n", total, parsed_ok, rendered);
}

int main(void) {
    json_t *expected = load_json(FIXTURES "expected.json");
    json_t *language = load_json(FIXTURES "language.json");
    if (expected) test_real_templates(expected);
    if (language && expected)
        test_language(language, json_integer_value(json_object_get(expected, "now")));
    test_errors();
    test_limits();
    test_work_limits();
    if (expected) {
        test_gguf_template(expected);
        test_threads(expected);
        test_mutations(expected);
    }
    json_decref(expected);
    json_decref(language);
    return check_done("chat_template");
}
