/* test_tokenizer_fixtures.c - tokenization of 326 strings per vocabulary
 * (English, code, whitespace runs, CJK, Arabic, Hindi, Thai, emoji with ZWJ
 * sequences, numbers, contractions, special tokens and near misses, the
 * empty string), each with and without BOS / special-token parsing,
 * compared id for id with llama.cpp (tests/fixtures/tokenizer/, made by
 * scripts/gen_fixtures.py); plus the vocabulary facts llama.cpp resolves
 * (BOS, EOS, EOT, add_bos, the end-of-generation set). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

#define MAX_IDS 4096

static void check_vocab_facts(const tok_vocab *v, json_t *facts, const char *file) {
    CHECK(tok_n_vocab(v) == json_integer_value(json_object_get(facts, "n_vocab")), "%s: n_vocab", file);
    CHECK(tok_bos(v) == json_integer_value(json_object_get(facts, "bos")), "%s: bos %d", file, tok_bos(v));
    CHECK(tok_eos(v) == json_integer_value(json_object_get(facts, "eos")), "%s: eos %d", file, tok_eos(v));
    CHECK(tok_eot(v) == json_integer_value(json_object_get(facts, "eot")), "%s: eot %d", file, tok_eot(v));
    CHECK(tok_add_bos(v) == json_is_true(json_object_get(facts, "add_bos")), "%s: add_bos", file);
    json_t *eog = json_object_get(facts, "eog_ids");
    int n_eog = 0;
    for (int32_t id = 0; id < tok_n_vocab(v); id++) n_eog += tok_is_eog(v, id);
    CHECK(n_eog == (int)json_array_size(eog), "%s: %d end-of-generation tokens, llama.cpp has %zu", file, n_eog,
          json_array_size(eog));
    size_t i;
    json_t *id;
    json_array_foreach(eog, i, id) CHECK(tok_is_eog(v, (int32_t)json_integer_value(id)), "%s: eog id %lld", file,
                                         (long long)json_integer_value(id));
}

static void check_file(const char *file) {
    json_error_t jerr;
    json_t *root = json_load_file(file, 0, &jerr);
    CHECK(root != NULL, "%s: %s", file, jerr.text);
    if (!root) return;
    const char *model = json_string_value(json_object_get(root, "model"));
    lm_error err = {{0}};
    gguf_file *f = model ? gguf_open(model, &err) : NULL;
    tok_vocab *v = f ? tok_vocab_load(f, &err) : NULL;
    CHECK(v != NULL, "%s: %s", file, err.msg);
    if (!v) {
        gguf_close(f);
        json_decref(root);
        return;
    }
    check_vocab_facts(v, json_object_get(root, "vocab"), file);
    int32_t *ids = malloc(sizeof(int32_t) * MAX_IDS);
    int n_cases = 0, n_equal = 0;
    size_t ci;
    json_t *c;
    json_array_foreach(json_object_get(root, "cases"), ci, c) {
        const char *text = json_string_value(json_object_get(c, "text"));
        size_t len = json_string_length(json_object_get(c, "text"));
        bool add_bos = json_is_true(json_object_get(c, "add_bos"));
        bool special = json_is_true(json_object_get(c, "special"));
        json_t *expect = json_object_get(c, "ids");
        int64_t n = tok_encode(v, text, len, add_bos, special, ids, MAX_IDS, &err);
        bool same = n == (int64_t)json_array_size(expect);
        for (int64_t k = 0; same && k < n; k++) same = ids[k] == json_integer_value(json_array_get(expect, (size_t)k));
        n_cases++;
        n_equal += same;
        CHECK(same, "%s case %zu (add_bos %d, special %d): %lld ids differ from llama.cpp's %zu for \"%.60s\"", file,
              ci, add_bos, special, (long long)n, json_array_size(expect), text);
    }
    printf("%s: %d/%d tokenizations identical to llama.cpp\n", file, n_equal, n_cases);
    CHECK(n_cases >= 400, "%s: only %d cases", file, n_cases);
    free(ids);
    tok_vocab_free(v);
    gguf_close(f);
    json_decref(root);
}

int main(void) {
    check_file("tests/fixtures/tokenizer/smollm2.json");
    check_file("tests/fixtures/tokenizer/gemma3.json");
    return check_done("tokenizer fixtures");
}
