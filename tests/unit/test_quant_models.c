/* test_quant_models.c - our dequantization against the gguf package's
 * (numpy) dequantization, an independent implementation, at every level:
 *   - tests/fixtures/quant/synthetic.json: random block bytes of every type;
 *   - tests/fixtures/quant/<model>.json: one row of one tensor per type found
 *     in the real models (models/, skipped when absent), read with our GGUF
 *     reader.
 * Values must match bit for bit. On the real rows the dots at every level are
 * also checked against a double-precision dot of the dequantized rows.
 * Fixtures: scripts/gen_quant_fixtures.py. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/cpu/quant.h"
#include "backend/cpu/quant_blocks.h"
#include "check.h"
#include "gguf/gguf.h"

#define FIXTURE_DIR "tests/fixtures/quant/"

static json_t *load_fixture(const char *name) {
    json_error_t jerr;
    json_t *root = json_load_file(name, 0, &jerr);
    CHECK(root != NULL, "%s: %s (line %d)", name, jerr.text, jerr.line);
    return root;
}

/* the float values of a fixture entry; n_out gets their count (caller frees) */
static float *fixture_values(json_t *entry, size_t *n_out) {
    json_t *arr = json_object_get(entry, "values");
    const size_t n = json_array_size(arr);
    float *v = malloc(n * sizeof(float) + 1);
    for (size_t i = 0; i < n; i++) v[i] = (float)json_number_value(json_array_get(arr, i));
    *n_out = n;
    return v;
}

/* index of the first value whose bits differ, or -1 */
static long first_mismatch(const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0) return (long)i;
    return -1;
}

static int n_levels(void) { return (int)cpu_level_detect() + 1; }

static void check_dequant(const char *what, uint32_t type, const void *row, int64_t n, const float *want,
                          size_t n_want) {
    float *got = malloc((size_t)n * sizeof(float));
    for (int lv = 0; lv < n_levels(); lv++) {
        const q_kernels *k = q_get_kernels_level(type, (cpu_level)lv);
        CHECK(k != NULL, "%s: no kernels for %s", what, lm_dtype_name(type));
        if (!k) continue;
        k->dequantize(row, got, n);
        const long bad = first_mismatch(got, want, n_want);
        CHECK(bad < 0, "%s (%s) at %s: value %ld is %.9g, gguf-py %.9g", what, lm_dtype_name(type),
              cpu_level_name((cpu_level)lv), bad, bad < 0 ? 0.0 : got[bad], bad < 0 ? 0.0 : want[bad]);
    }
    free(got);
}

static int hex_digit(char c) { return c <= '9' ? c - '0' : c - 'a' + 10; }

static void test_synthetic(void) {
    json_t *root = load_fixture(FIXTURE_DIR "synthetic.json");
    if (!root) return;
    json_t *types = json_object_get(root, "types");
    CHECK(json_array_size(types) == 13, "synthetic.json has %zu types", json_array_size(types));
    for (size_t t = 0; t < json_array_size(types); t++) {
        json_t *e = json_array_get(types, t);
        const uint32_t type = (uint32_t)json_integer_value(json_object_get(e, "type_id"));
        const int64_t n = json_integer_value(json_object_get(e, "n"));
        const char *hex = json_string_value(json_object_get(e, "hex"));
        CHECK(!strcmp(json_string_value(json_object_get(e, "type")), lm_dtype_name(type)), "type name %s",
              lm_dtype_name(type));
        const size_t nbytes = strlen(hex) / 2;
        CHECK(nbytes == q_row_size(type, n), "%s: %zu bytes for %lld values", lm_dtype_name(type), nbytes,
              (long long)n);
        if (nbytes != q_row_size(type, n)) continue;
        uint8_t *raw = malloc(nbytes);
        for (size_t i = 0; i < nbytes; i++) raw[i] = (uint8_t)(hex_digit(hex[2 * i]) << 4 | hex_digit(hex[2 * i + 1]));
        size_t n_want;
        float *want = fixture_values(e, &n_want);
        CHECK(n_want == (size_t)n, "%s: %zu values", lm_dtype_name(type), n_want);
        check_dequant("synthetic", type, raw, n, want, n_want < (size_t)n ? n_want : (size_t)n);
        free(raw);
        free(want);
    }
    json_decref(root);
}

static uint64_t rng_state = 0x243F6A8885A308D3ull;

static float rng_gauss(void) {
    float s = 0.0f; /* sum of 4 uniforms: close enough to normal for activations */
    for (int i = 0; i < 4; i++) {
        rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
        s += (float)(rng_state >> 40) / 16777216.0f - 0.5f;
    }
    return s;
}

/* the activation row dequantized to floats */
static void dequantize_act(uint32_t act_type, const void *act, float *af, int64_t n) {
    if (act_type == LM_Q8_1) {
        const block_q8_1 *b = act;
        for (int64_t i = 0; i < n; i++) af[i] = lm_fp16_to_fp32(b[i / QK8_1].d) * b[i / QK8_1].qs[i % QK8_1];
    } else if (act_type == LM_Q8_K) {
        const block_q8_K *b = act;
        for (int64_t i = 0; i < n; i++) af[i] = b[i / QK_K].d * b[i / QK_K].qs[i % QK_K];
    } else {
        q_get_kernels_level(act_type, CPU_SCALAR)->dequantize(act, af, n);
    }
}

/* the dot of a real weight row with random activations, at every level,
 * against the double dot of the dequantized row and activations; for q8_1
 * activations the bound also holds the rounding of their fp16 s = d * sum(q),
 * which the format uses (times the weight block's min m, at byte 2) */
static void check_real_dot(const char *what, uint32_t type, const uint8_t *row, const float *wf, int64_t n) {
    const q_kernels *ref = q_get_kernels_level(type, CPU_SCALAR);
    float *a = malloc((size_t)n * sizeof(float)), *af = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) a[i] = rng_gauss();
    void *act = malloc(q_row_size(ref->act_type, n));
    ref->quantize_act(a, act, n);
    dequantize_act(ref->act_type, act, af, n);
    double expect = 0.0, mag = 0.0, slack = 0.0;
    for (int64_t i = 0; i < n; i++) {
        expect += (double)wf[i] * af[i];
        mag += fabs((double)wf[i] * af[i]);
    }
    if (ref->act_type == LM_Q8_1) {
        const block_q8_1 *b = act;
        const size_t bsize = lm_dtype_type_size(type);
        for (int64_t i = 0; i < n / QK8_1; i++) {
            lm_fp16 m;
            memcpy(&m, row + (size_t)i * bsize + 2, 2);
            slack += fabs(lm_fp16_to_fp32(m)) * (fabs(lm_fp16_to_fp32(b[i].s)) * ldexp(1.0, -10) + ldexp(1.0, -24));
        }
    }
    for (int lv = 0; lv < n_levels(); lv++) {
        const float got = q_get_kernels_level(type, (cpu_level)lv)->dot(n, row, act);
        CHECK(fabs(got - expect) <= 1e-5 * mag + slack, "%s (%s) dot at %s: %.9g, double %.9g (mag %g)", what,
              lm_dtype_name(type), cpu_level_name((cpu_level)lv), got, expect, mag);
    }
    free(a), free(af), free(act);
}

static void test_model(const char *fixture) {
    json_t *root = load_fixture(fixture);
    if (!root) return;
    const char *path = json_string_value(json_object_get(root, "model"));
    if (!path || access(path, R_OK) != 0) {
        printf("skip: %s not present\n", path ? path : "(no model)");
        json_decref(root);
        return;
    }
    lm_error err = {{0}};
    gguf_file *f = gguf_open(path, &err);
    CHECK(f != NULL, "%s", err.msg);
    json_t *tensors = json_object_get(root, "tensors");
    CHECK(json_array_size(tensors) > 0, "%s: no tensors", fixture);
    for (size_t i = 0; f && i < json_array_size(tensors); i++) {
        json_t *e = json_array_get(tensors, i);
        const char *name = json_string_value(json_object_get(e, "name"));
        const int64_t row = json_integer_value(json_object_get(e, "row"));
        const gguf_tensor *t = gguf_find_tensor(f, name);
        CHECK(t != NULL, "%s: tensor %s not found", path, name);
        if (!t) continue;
        CHECK(t->type == json_integer_value(json_object_get(e, "type_id")), "%s: type of %s", path, name);
        CHECK(t->ne[0] == json_integer_value(json_object_get(e, "ne0")), "%s: ne0 of %s", path, name);
        const int64_t n = t->ne[0];
        const size_t row_bytes = q_row_size(t->type, n);
        CHECK((uint64_t)(row + 1) * row_bytes <= t->nbytes, "%s: row %lld of %s", path, (long long)row, name);
        const uint8_t *data = (const uint8_t *)t->data + row * row_bytes;
        size_t n_want;
        float *want = fixture_values(e, &n_want);
        char what[256];
        snprintf(what, sizeof(what), "%s %s row %lld", path, name, (long long)row);
        check_dequant(what, t->type, data, n, want, n_want);
        float *wf = malloc((size_t)n * sizeof(float));
        q_get_kernels_level(t->type, CPU_SCALAR)->dequantize(data, wf, n);
        check_real_dot(what, t->type, data, wf, n);
        free(wf);
        free(want);
    }
    gguf_close(f);
    json_decref(root);
}

int main(void) {
    test_synthetic();
    test_model(FIXTURE_DIR "SmolLM2-135M-Instruct.Q4_1.json");
    test_model(FIXTURE_DIR "gemma-3-270m-q4_k_m.json");
    return check_done("test_quant_models");
}
