/* test_gguf.c - the GGUF reader: valid files parse to what was written,
 * every malformed file fails with a one-line message naming the file and the
 * fault, and no input makes it read outside the buffer (run this under the
 * ASan build: every image is copied into an exactly-sized allocation).
 *
 * Images are built with gguf_writer.h; the real models in models/ (when
 * present) are checked against values read with the gguf Python package. */
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/dtype.h"
#include "check.h"
#include "gguf/gguf.h"
#include "gguf_writer.h"

/* value type ids, as written into the images */
enum { T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR, T_U64, T_I64, T_F64 };

#define NAME "test.gguf"

/* ---- helpers ---- */

/* Opens a copy of the bytes in an allocation of exactly their size, so any
 * read past the end is an ASan error. Returns the copy in *copy. */
static gguf_file *open_copy(const uint8_t *data, size_t size, uint8_t **copy, lm_error *err) {
    *copy = malloc(size ? size : 1);
    if (size) memcpy(*copy, data, size);
    return gguf_open_memory(*copy, size, NAME, err);
}

static bool str_eq(gguf_str s, const char *want) {
    return s.len == strlen(want) && memcmp(s.data, want, s.len) == 0;
}

/* The message is one line that starts with the file name. */
static bool message_ok(const char *msg) {
    return strncmp(msg, NAME ": ", strlen(NAME ": ")) == 0 && !strchr(msg, '\n') &&
           strlen(msg) > strlen(NAME ": ");
}

/* Opening W must fail with a message holding NEEDLE (and NEEDLE2 if set). */
static void expect_fail_at(gw *w, const char *needle, const char *needle2, int line) {
    lm_error err = {{0}};
    uint8_t *copy;
    gguf_file *f = open_copy(w->buf, w->len, &copy, &err);
    CHECK(f == NULL, "line %d: opened a bad file (wanted '%s')", line, needle);
    gguf_close(f);
    CHECK(message_ok(err.msg), "line %d: bad message '%s'", line, err.msg);
    CHECK(strstr(err.msg, needle) != NULL, "line %d: '%s' lacks '%s'", line, err.msg, needle);
    if (needle2)
        CHECK(strstr(err.msg, needle2) != NULL, "line %d: '%s' lacks '%s'", line, err.msg, needle2);
    free(copy);
    gw_free(w);
}
#define expect_fail(w, needle, needle2) expect_fail_at(w, needle, needle2, __LINE__)

/* Reads every value and every tensor byte range of an open file through the
 * API and checks the invariants an open file promises. */
static void exercise(const gguf_file *f, const uint8_t *buf, size_t size) {
    char repr[64], tiny[8];
    volatile unsigned sink = 0;
    for (int64_t i = 0; i < gguf_n_kv(f); i++) {
        gguf_str key = gguf_key_at(f, i);
        char *ckey = strndup(key.data, key.len);
        CHECK(gguf_find_key(f, ckey) == i, "key %lld not found by name", (long long)i);
        gguf_value_repr(f, i, repr, sizeof(repr));
        gguf_value_repr(f, i, tiny, sizeof(tiny));
        gguf_value_repr(f, i, tiny, 1);
        CHECK(strlen(repr) < sizeof(repr) && strlen(tiny) < 1, "repr overflow");
        uint32_t u32;
        int64_t i64;
        float f32;
        bool b;
        gguf_str s;
        gguf_get_u32(f, ckey, &u32);
        gguf_get_i64(f, ckey, &i64);
        gguf_get_f32(f, ckey, &f32);
        gguf_get_bool(f, ckey, &b);
        if (gguf_get_str(f, ckey, &s) == 0)
            CHECK((const uint8_t *)s.data >= buf && (const uint8_t *)s.data + s.len <= buf + size,
                  "string outside the buffer");
        free(ckey);
        uint64_t n = gguf_arr_len(f, i);
        for (uint64_t j = 0; j < n && j < 4096; j++) {
            gguf_str e = gguf_arr_str(f, i, j);
            for (uint64_t k = 0; k < e.len; k++) sink += (unsigned char)e.data[k];
            sink += (unsigned)gguf_arr_num(f, i, j);
        }
    }
    for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        const uint8_t *d = t->data;
        CHECK(d >= buf && t->nbytes <= size && d - buf <= (ptrdiff_t)(size - t->nbytes),
              "tensor '%s' data outside the buffer", t->name);
        CHECK(t->offset % gguf_alignment(f) == 0, "tensor '%s' misaligned", t->name);
        CHECK(gguf_find_tensor(f, t->name) == t, "tensor '%s' not found by name", t->name);
        sink += d[0] + d[t->nbytes - 1];
    }
    (void)sink;
}

/* ---- the reference valid file ---- */

typedef struct image {
    gw w;
    size_t data_start; /* bytes: where the data section begins */
} image;

static const char *const TOKENS[] = {"<unk>", "a", "bc", ""};
#define N_IMAGE_KV 20
#define N_IMAGE_TENSORS 3

static void write_kvs(gw *w) {
    gw_kv_str(w, "general.architecture", "llama");
    gw_kv_str(w, "general.name", "tiny");
    gw_kv_u32(w, "llama.context_length", 256);
    gw_key(w, "t.u8", T_U8), gw_u8(w, 200);
    gw_key(w, "t.i8", T_I8), gw_u8(w, (uint8_t)-5);
    gw_key(w, "t.u16", T_U16), gw_u16(w, 60000);
    gw_key(w, "t.i16", T_I16), gw_u16(w, (uint16_t)-30000);
    gw_key(w, "t.i32", T_I32), gw_u32(w, (uint32_t)-7);
    gw_key(w, "t.f32", T_F32), gw_f32(w, 0.5f);
    gw_key(w, "t.bool", T_BOOL), gw_u8(w, 1);
    gw_key(w, "t.u64", T_U64), gw_u64(w, 1ull << 40);
    gw_key(w, "t.u64max", T_U64), gw_u64(w, UINT64_MAX);
    gw_key(w, "t.i64", T_I64), gw_u64(w, (uint64_t)-(1ll << 40));
    gw_key(w, "t.f64", T_F64), gw_f64(w, 2.25);
    gw_kv_arr_str(w, "tokenizer.ggml.tokens", TOKENS, 4);
    gw_key(w, "t.arr_i32", T_ARR), gw_u32(w, T_I32), gw_u64(w, 3);
    gw_u32(w, 1), gw_u32(w, (uint32_t)-2), gw_u32(w, 3);
    /* [[1, 2] int16, [] uint8, [["x"], ["y", "z"]] array of string arrays] */
    gw_key(w, "t.nested", T_ARR), gw_u32(w, T_ARR), gw_u64(w, 3);
    gw_u32(w, T_I16), gw_u64(w, 2), gw_u16(w, 1), gw_u16(w, 2);
    gw_u32(w, T_U8), gw_u64(w, 0);
    gw_u32(w, T_ARR), gw_u64(w, 2);
    gw_u32(w, T_STR), gw_u64(w, 1), gw_str(w, "x");
    gw_u32(w, T_STR), gw_u64(w, 2), gw_str(w, "y"), gw_str(w, "z");
    gw_kv_u32(w, "t.after_nested", 7);
    gw_kv_str(w, "t.empty_str", "");
    gw_key(w, "t.arr_f32", T_ARR), gw_u32(w, T_F32), gw_u64(w, 2);
    gw_f32(w, 0.25f), gw_f32(w, -1.0f);
}

/* tok.weight f32 [4, 3] at 0 (48 B), q.weight q4_0 [32, 2] at 64 (36 B),
 * n.weight f16 [8] at 128 (16 B); the file ends with the last tensor. */
static image build_image(uint32_t version) {
    image im = {{0}, 0};
    gw *w = &im.w;
    gw_header(w, version, N_IMAGE_TENSORS, N_IMAGE_KV);
    write_kvs(w);
    gw_tensor_info(w, "tok.weight", 2, (int64_t[]){4, 3}, LM_F32, 0);
    gw_tensor_info(w, "q.weight", 2, (int64_t[]){32, 2}, LM_Q4_0, 64);
    gw_tensor_info(w, "n.weight", 1, (int64_t[]){8}, LM_F16, 128);
    gw_pad(w, 32);
    im.data_start = w->len;
    for (int i = 0; i < 144; i++) gw_u8(w, (uint8_t)(i * 7 + 1));
    return im;
}

static void check_repr(const gguf_file *f, const char *key, const char *want) {
    char repr[64];
    gguf_value_repr(f, gguf_find_key(f, key), repr, sizeof(repr));
    CHECK(!strcmp(repr, want), "%s: repr %s, want %s", key, repr, want);
}

static void check_image_values(const gguf_file *f, uint32_t version) {
    uint32_t u32 = 0;
    int64_t i64 = 0;
    float f32 = 0;
    bool b = false;
    gguf_str s;
    CHECK(gguf_version(f) == version, "version %u", gguf_version(f));
    CHECK(gguf_alignment(f) == 32, "default alignment %llu", (unsigned long long)gguf_alignment(f));
    CHECK(gguf_n_kv(f) == N_IMAGE_KV, "n_kv %lld", (long long)gguf_n_kv(f));
    CHECK(gguf_get_str(f, "general.architecture", &s) == 0 && str_eq(s, "llama"), "architecture");
    CHECK(gguf_get_u32(f, "llama.context_length", &u32) == 0 && u32 == 256, "context %u", u32);
    CHECK(gguf_get_u32(f, "t.u8", &u32) == 0 && u32 == 200, "u8 -> u32");
    CHECK(gguf_get_i64(f, "t.i8", &i64) == 0 && i64 == -5, "i8 -> i64 %lld", (long long)i64);
    CHECK(gguf_get_u32(f, "t.i8", &u32) == -1, "negative i8 must not convert to u32");
    CHECK(gguf_get_u32(f, "t.u16", &u32) == 0 && u32 == 60000, "u16");
    CHECK(gguf_get_i64(f, "t.i16", &i64) == 0 && i64 == -30000, "i16");
    CHECK(gguf_get_i64(f, "t.i32", &i64) == 0 && i64 == -7, "i32");
    CHECK(gguf_get_u32(f, "t.u64", &u32) == -1, "2^40 does not fit u32");
    CHECK(gguf_get_i64(f, "t.u64", &i64) == 0 && i64 == (1ll << 40), "u64 -> i64");
    CHECK(gguf_get_i64(f, "t.u64max", &i64) == -1, "UINT64_MAX does not fit i64");
    CHECK(gguf_get_i64(f, "t.i64", &i64) == 0 && i64 == -(1ll << 40), "i64");
    CHECK(gguf_get_f32(f, "t.f32", &f32) == 0 && f32 == 0.5f, "f32");
    CHECK(gguf_get_f32(f, "t.f64", &f32) == 0 && f32 == 2.25f, "f64 -> f32");
    CHECK(gguf_get_f32(f, "t.u8", &f32) == -1, "an integer is not a float");
    CHECK(gguf_get_bool(f, "t.bool", &b) == 0 && b, "bool");
    CHECK(gguf_get_u32(f, "t.bool", &u32) == -1, "a bool is not an integer");
    CHECK(gguf_get_str(f, "t.empty_str", &s) == 0 && s.len == 0, "empty string");
    CHECK(gguf_get_u32(f, "general.name", &u32) == -1, "a string is not an integer");
    CHECK(gguf_get_u32(f, "no.such.key", &u32) == -1 && gguf_find_key(f, "no.such.key") == -1,
          "missing key");
    CHECK(gguf_get_u32(f, "t.after_nested", &u32) == 0 && u32 == 7, "value after nested arrays");

    int64_t tok = gguf_find_key(f, "tokenizer.ggml.tokens");
    CHECK(gguf_kv_type(f, tok) == GGUF_TYPE_ARRAY && gguf_arr_type(f, tok) == GGUF_TYPE_STRING &&
              gguf_arr_len(f, tok) == 4, "token array");
    for (int i = 0; i < 4; i++)
        CHECK(str_eq(gguf_arr_str(f, tok, (uint64_t)i), TOKENS[i]), "token %d", i);
    CHECK(gguf_arr_str(f, tok, 4).len == 0 && gguf_arr_data(f, tok) == NULL, "string array bounds");
    int64_t ai = gguf_find_key(f, "t.arr_i32");
    CHECK(gguf_arr_len(f, ai) == 3 && gguf_arr_num(f, ai, 1) == -2 && gguf_arr_num(f, ai, 2) == 3,
          "i32 array");
    int32_t raw;
    memcpy(&raw, (const uint8_t *)gguf_arr_data(f, ai) + 4, 4);
    CHECK(raw == -2, "raw i32 array data");
    int64_t af = gguf_find_key(f, "t.arr_f32");
    CHECK(gguf_arr_num(f, af, 0) == 0.25 && gguf_arr_num(f, af, 1) == -1.0, "f32 array");
    int64_t nested = gguf_find_key(f, "t.nested");
    CHECK(gguf_arr_type(f, nested) == GGUF_TYPE_ARRAY && gguf_arr_len(f, nested) == 3 &&
              gguf_arr_data(f, nested) == NULL, "nested array");
    check_repr(f, "t.nested", "[array of 3 array]");
    check_repr(f, "tokenizer.ggml.tokens", "[array of 4 string]");
    check_repr(f, "t.i8", "-5");
    check_repr(f, "t.u64max", "18446744073709551615");
    check_repr(f, "t.bool", "true");
    check_repr(f, "t.f64", "2.25");
    check_repr(f, "general.architecture", "\"llama\"");
    CHECK(gguf_kv_type(f, -1) == GGUF_TYPE_COUNT && gguf_key_at(f, N_IMAGE_KV).len == 0, "bad idx");
}

static void check_image_tensors(const gguf_file *f, const image *im, const uint8_t *buf) {
    CHECK(gguf_n_tensors(f) == N_IMAGE_TENSORS, "n_tensors %lld", (long long)gguf_n_tensors(f));
    const gguf_tensor *t = gguf_find_tensor(f, "q.weight");
    CHECK(t && t->type == LM_Q4_0 && t->n_dims == 2 && t->ne[0] == 32 && t->ne[1] == 2 &&
              t->ne[2] == 1 && t->ne[3] == 1 && t->nbytes == 36 && t->offset == 64,
          "q.weight info");
    if (t) CHECK(t->data == buf + im->data_start + 64, "q.weight data pointer");
    t = gguf_find_tensor(f, "n.weight");
    CHECK(t && t->type == LM_F16 && t->nbytes == 16 &&
              ((const uint8_t *)t->data)[0] == (uint8_t)(128 * 7 + 1), "n.weight data");
    t = gguf_tensor_at(f, 0);
    CHECK(t && !strcmp(t->name, "tok.weight") && t->nbytes == 48, "tensor 0");
    CHECK(gguf_find_tensor(f, "tok.weigh") == NULL && gguf_find_tensor(f, "") == NULL,
          "missing tensor");
    CHECK(gguf_tensor_at(f, 3) == NULL && gguf_tensor_at(f, -1) == NULL, "tensor bounds");
}

static void test_valid(uint32_t version) {
    image im = build_image(version);
    lm_error err = {{0}};
    uint8_t *copy;
    gguf_file *f = open_copy(im.w.buf, im.w.len, &copy, &err);
    CHECK(f != NULL, "v%u image: %s", version, err.msg);
    if (f) {
        check_image_values(f, version);
        check_image_tensors(f, &im, copy);
        CHECK(gguf_file_size(f) == im.w.len && !strcmp(gguf_path(f), NAME), "size/path");
        exercise(f, copy, im.w.len);
    }
    gguf_close(f);
    free(copy);
    gw_free(&im.w);
}

/* ---- damage to the valid file ---- */

/* Every proper prefix must fail cleanly with a past-the-end message. */
static void test_truncated(void) {
    image im = build_image(3);
    int n_bad = 0;
    for (size_t len = 0; len < im.w.len; len++) {
        lm_error err = {{0}};
        uint8_t *copy;
        gguf_file *f = open_copy(im.w.buf, len, &copy, &err);
        bool ok = f == NULL && message_ok(err.msg) && strstr(err.msg, "past end of file");
        if (!ok && n_bad++ < 5)
            CHECK(ok, "prefix %zu of %zu: %s", len, im.w.len, f ? "opened" : err.msg);
        gguf_close(f);
        free(copy);
    }
    CHECK(n_bad == 0, "%d of %zu prefixes misbehaved", n_bad, im.w.len);
    gw_free(&im.w);
}

/* Every byte of the header, metadata and tensor infos, flipped with several
 * masks: either the file still opens (and reads stay inside it) or it fails
 * cleanly. */
static void test_flipped(void) {
    static const uint8_t MASKS[] = {0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff};
    image im = build_image(3);
    int n_open = 0, n_fail = 0, n_bad = 0;
    for (size_t pos = 0; pos < im.data_start; pos++) {
        for (size_t m = 0; m < sizeof(MASKS); m++) {
            lm_error err = {{0}};
            uint8_t *copy;
            im.w.buf[pos] ^= MASKS[m];
            gguf_file *f = open_copy(im.w.buf, im.w.len, &copy, &err);
            im.w.buf[pos] ^= MASKS[m];
            if (f) {
                n_open++;
                exercise(f, copy, im.w.len);
            } else if (message_ok(err.msg)) {
                n_fail++;
            } else if (n_bad++ < 5) {
                CHECK(false, "flip %02x at %zu: bad message '%s'", MASKS[m], pos, err.msg);
            }
            gguf_close(f);
            free(copy);
        }
    }
    CHECK(n_bad == 0 && n_fail > 0 && n_open > 0, "flips: %d opened, %d failed, %d bad", n_open,
          n_fail, n_bad);
    gw_free(&im.w);
}

/* Random multi-byte damage, including 8-byte fields set to extreme values
 * (fixed seed: the same cases every run). */
static void test_random_damage(void) {
    image im = build_image(3);
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    int n_bad = 0;
    for (int iter = 0; iter < 20000; iter++) {
        gw w = {0};
        gw_bytes(&w, im.w.buf, im.w.len);
        int n_edits = 1 + iter % 4;
        for (int e = 0; e < n_edits; e++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            size_t pos = (size_t)(rng >> 33) % im.data_start;
            if ((rng >> 20) % 4 == 0 && pos + 8 <= w.len) {
                static const uint64_t EXTREMES[] = {0, 1, 0x7fffffffffffffffull, UINT64_MAX,
                                                    1ull << 32, 1ull << 62, 0xffffffffull};
                uint64_t v = EXTREMES[(rng >> 40) % 7];
                for (int b = 0; b < 8; b++) w.buf[pos + (size_t)b] = (uint8_t)(v >> (8 * b));
            } else {
                w.buf[pos] = (uint8_t)(rng >> 48);
            }
        }
        size_t len = iter % 3 == 0 ? w.len - (size_t)(rng >> 50) % w.len : w.len;
        lm_error err = {{0}};
        uint8_t *copy;
        gguf_file *f = open_copy(w.buf, len, &copy, &err);
        if (f) exercise(f, copy, len);
        else if (!message_ok(err.msg) && n_bad++ < 5) CHECK(false, "iter %d: '%s'", iter, err.msg);
        gguf_close(f);
        free(copy);
        gw_free(&w);
    }
    CHECK(n_bad == 0, "%d random damages misbehaved", n_bad);
    gw_free(&im.w);
}

/* ---- specific faults ---- */

/* A file with one tensor and `general.architecture`, data zero-filled. */
static gw tensor_file(const char *name, uint32_t n_dims, const int64_t *ne, uint32_t type,
                      uint64_t offset, size_t data_bytes) {
    gw w = {0};
    gw_header(&w, 3, 1, 1);
    gw_kv_str(&w, "general.architecture", "llama");
    gw_tensor_info(&w, name, n_dims, ne, type, offset);
    gw_pad(&w, 32);
    for (size_t i = 0; i < data_bytes; i++) gw_u8(&w, 0);
    return w;
}

/* A header for N_KV entries and no tensors, with one good entry written. */
static gw kv_file(uint64_t n_kv) {
    gw w = {0};
    gw_header(&w, 3, 0, n_kv);
    gw_kv_str(&w, "general.architecture", "llama");
    return w;
}

static void test_header_faults(void) {
    gw w = {0};
    gw_header(&w, 3, 0, 0);
    memcpy(w.buf, "GGUG", 4);
    expect_fail(&w, "not a GGUF file", NULL);
    gw_header(&w, 1, 0, 0);
    expect_fail(&w, "v1 is not supported", NULL);
    gw_header(&w, 4, 0, 0);
    expect_fail(&w, "version 4 is not supported", NULL);
    gw_header(&w, 0x03000000, 0, 0);
    expect_fail(&w, "big-endian", NULL);
    gw_header(&w, 3, 0, UINT64_MAX);
    expect_fail(&w, "metadata entries", "would run past end of file");
    gw_header(&w, 3, 1ull << 40, 0);
    expect_fail(&w, "tensor infos", "would run past end of file");
    gw_header(&w, 3, 0, 2); /* two entries claimed, one written */
    gw_kv_str(&w, "general.name", "long enough for two entries");
    expect_fail(&w, "metadata entry 1 of 2", "past end of file");

    w = (gw){0};
    gw_header(&w, 3, 0, 0);
    lm_error err = {{0}};
    uint8_t *copy;
    gguf_file *f = open_copy(w.buf, w.len, &copy, &err);
    CHECK(f && gguf_n_kv(f) == 0 && gguf_n_tensors(f) == 0 && gguf_find_key(f, "x") == -1 &&
              gguf_find_tensor(f, "x") == NULL, "empty GGUF: %s", err.msg);
    gguf_close(f);
    free(copy);
    gw_free(&w);
    f = gguf_open_memory(NULL, 0, NAME, &err);
    CHECK(!f && message_ok(err.msg), "NULL buffer: %s", err.msg);
}

static void test_kv_faults(void) {
    gw w = kv_file(2);
    gw_key(&w, "t.weird", 13), gw_u32(&w, 0);
    expect_fail(&w, "key 't.weird'", "unknown value type 13");

    w = kv_file(2);
    gw_key(&w, "t.arr", T_ARR), gw_u32(&w, 99), gw_u64(&w, 0);
    expect_fail(&w, "key 't.arr'", "unknown array element type 99");

    w = kv_file(2);
    gw_key(&w, "general.name", T_STR), gw_u64(&w, 1ull << 62), gw_bytes(&w, "abc", 3);
    expect_fail(&w, "key 'general.name'", "past end of file");

    w = kv_file(2);
    gw_key(&w, "general.name", T_STR), gw_u64(&w, UINT64_MAX);
    expect_fail(&w, "key 'general.name'", "past end of file");

    w = kv_file(2);
    gw_u64(&w, UINT64_MAX), gw_bytes(&w, "key", 3); /* key length */
    expect_fail(&w, "metadata entry 1 of 2", "past end of file");

    w = kv_file(2);
    gw_key(&w, "t.arr", T_ARR), gw_u32(&w, T_U64), gw_u64(&w, 1ull << 61);
    expect_fail(&w, "key 't.arr'", "past end of file");

    w = kv_file(2);
    gw_key(&w, "t.arr", T_ARR), gw_u32(&w, T_STR), gw_u64(&w, UINT64_MAX);
    expect_fail(&w, "key 't.arr'", "past end of file");

    w = kv_file(2);
    gw_key(&w, "t.arr", T_ARR), gw_u32(&w, T_ARR), gw_u64(&w, 1ull << 60);
    expect_fail(&w, "key 't.arr'", "past end of file");

    w = kv_file(2);
    gw_key(&w, "t.deep", T_ARR);
    for (int i = 0; i < 40; i++) gw_u32(&w, T_ARR), gw_u64(&w, 1);
    gw_u32(&w, T_U8), gw_u64(&w, 0);
    expect_fail(&w, "key 't.deep'", "nested deeper");

    w = kv_file(2);
    gw_key(&w, "", T_U32), gw_u32(&w, 1);
    expect_fail(&w, "metadata entry 1 of 2", "empty key");

    w = kv_file(2);
    gw_u64(&w, 3), gw_bytes(&w, "a\0b", 3), gw_u32(&w, T_U32), gw_u32(&w, 1);
    expect_fail(&w, "NUL", NULL);

    w = kv_file(3);
    gw_kv_u32(&w, "t.x", 1);
    gw_kv_u32(&w, "general.architecture", 2);
    expect_fail(&w, "key 'general.architecture'", "duplicate key (metadata entries 0 and 2)");

    w = kv_file(2); /* a control byte in a key is shown as '?' */
    gw_key(&w, "bad\nkey", 13), gw_u32(&w, 0);
    expect_fail(&w, "key 'bad?key'", "unknown value type");
}

static void test_alignment(void) {
    gw w = kv_file(2);
    gw_kv_u32(&w, "general.alignment", 48);
    expect_fail(&w, "general.alignment", "not a power of two");
    w = kv_file(2);
    gw_kv_u32(&w, "general.alignment", 0);
    expect_fail(&w, "general.alignment", "not a power of two");
    w = kv_file(2);
    gw_key(&w, "general.alignment", T_U64), gw_u64(&w, 64);
    expect_fail(&w, "general.alignment", "expected uint32");

    /* alignment 64: data starts at a multiple of 64, offsets are checked
     * against 64 */
    for (int misaligned = 0; misaligned < 2; misaligned++) {
        w = (gw){0};
        gw_header(&w, 3, 2, 1);
        gw_kv_u32(&w, "general.alignment", 64);
        gw_tensor_info(&w, "a", 1, (int64_t[]){4}, LM_F32, 0);
        gw_tensor_info(&w, "b", 1, (int64_t[]){4}, LM_F32, misaligned ? 32 : 64);
        gw_pad(&w, 64);
        size_t data_start = w.len;
        for (int i = 0; i < 80; i++) gw_u8(&w, (uint8_t)i);
        if (misaligned) {
            expect_fail(&w, "tensor 'b'", "offset 32 is not a multiple of the alignment 64");
            continue;
        }
        lm_error err = {{0}};
        uint8_t *copy;
        gguf_file *f = open_copy(w.buf, w.len, &copy, &err);
        CHECK(f && gguf_alignment(f) == 64 && data_start % 64 == 0, "alignment 64: %s", err.msg);
        if (f) CHECK(gguf_find_tensor(f, "b")->data == copy + data_start + 64, "b data pointer");
        gguf_close(f);
        free(copy);
        gw_free(&w);
    }
}

static void test_tensor_faults(void) {
    gw w = tensor_file("blk.0.attn_q.weight", 2, (int64_t[]){32, 4}, 99, 0, 1024);
    expect_fail(&w, "tensor 'blk.0.attn_q.weight'", "unknown tensor type id 99");
    w = tensor_file("iq", 1, (int64_t[]){256}, 16 /* IQ2_XXS: not ours */, 0, 1024);
    expect_fail(&w, "tensor 'iq'", "unknown tensor type id 16");
    w = tensor_file("t", 0, (int64_t[]){1}, LM_F32, 0, 64);
    expect_fail(&w, "tensor 't'", "n_dims 0 not in 1..4");
    w = tensor_file("t", 5, (int64_t[]){1, 1, 1, 1, 1}, LM_F32, 0, 64);
    expect_fail(&w, "tensor 't'", "n_dims 5");
    w = tensor_file("t", 2, (int64_t[]){4, 0}, LM_F32, 0, 64);
    expect_fail(&w, "tensor 't'", "dimension 1 is 0");
    w = tensor_file("t", 2, (int64_t[]){4, -3}, LM_F32, 0, 64);
    expect_fail(&w, "tensor 't'", "dimension 1 is -3");
    w = tensor_file("t", 3, (int64_t[]){1ll << 40, 1ll << 20, 1ll << 10}, LM_F32, 0, 64);
    expect_fail(&w, "tensor 't'", "overflows int64");
    w = tensor_file("t", 4, (int64_t[]){INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX}, LM_F32, 0, 64);
    expect_fail(&w, "tensor 't'", "overflows int64");
    w = tensor_file("t", 2, (int64_t[]){1ll << 31, 1ll << 31}, LM_F32, 0, 64);
    expect_fail(&w, "tensor 't'", "byte size of");
    w = tensor_file("t", 2, (int64_t[]){1ll << 20, 1ll << 20}, LM_Q8_0, 0, 64);
    expect_fail(&w, "tensor 't'", "past end of file");
    w = tensor_file("t", 1, (int64_t[]){33}, LM_Q4_0, 0, 64);
    expect_fail(&w, "tensor 't'", "row length 33 is not a multiple of the q4_0 block size 32");
    w = tensor_file("t", 1, (int64_t[]){512}, LM_Q4_K, 0, 64);
    expect_fail(&w, "tensor 't'", "past end of file (size");
    w = tensor_file("t", 1, (int64_t[]){4}, LM_F32, 16, 64);
    expect_fail(&w, "tensor 't'", "offset 16 is not a multiple of the alignment 32");
    w = tensor_file("t", 1, (int64_t[]){4}, LM_F32, UINT64_MAX - 31, 64);
    expect_fail(&w, "tensor 't'", "overflows");
    w = tensor_file("t", 1, (int64_t[]){4}, LM_F32, 1ull << 40, 64);
    expect_fail(&w, "tensor 't'", "past end of file");
    w = tensor_file("", 1, (int64_t[]){4}, LM_F32, 0, 64);
    expect_fail(&w, "tensor info 0 of 1", "empty tensor name");

    /* the message gives the data range and the file size */
    w = tensor_file("blk.0.attn_q.weight", 1, (int64_t[]){64}, LM_F32, 0, 100);
    size_t size = w.len, start = size - 100;
    char want[128];
    snprintf(want, sizeof(want), "data [%zu, %zu) past end of file (size %zu)", start, start + 256,
             size);
    expect_fail(&w, "tensor 'blk.0.attn_q.weight'", want);

    w = (gw){0};
    gw_header(&w, 3, 2, 0);
    gw_tensor_info(&w, "same", 1, (int64_t[]){4}, LM_F32, 0);
    gw_tensor_info(&w, "same", 1, (int64_t[]){4}, LM_F32, 32);
    gw_pad(&w, 32);
    for (int i = 0; i < 64; i++) gw_u8(&w, 0);
    expect_fail(&w, "tensor 'same'", "duplicate tensor name (tensors 0 and 1)");

    /* overlapping tensor data is allowed (as in llama.cpp) */
    w = (gw){0};
    gw_header(&w, 3, 2, 0);
    gw_tensor_info(&w, "a", 1, (int64_t[]){8}, LM_F32, 0);
    gw_tensor_info(&w, "b", 1, (int64_t[]){8}, LM_F32, 0);
    gw_pad(&w, 32);
    for (int i = 0; i < 32; i++) gw_u8(&w, 0);
    lm_error err = {{0}};
    uint8_t *copy;
    gguf_file *f = open_copy(w.buf, w.len, &copy, &err);
    CHECK(f != NULL, "overlapping tensors: %s", err.msg);
    gguf_close(f);
    free(copy);
    gw_free(&w);
}

/* Many keys and tensors: every one found by name through the index. */
static void test_many_names(void) {
    enum { N = 3000 };
    gw w = {0};
    char name[32];
    gw_header(&w, 3, N, N);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "k.%d", i);
        gw_kv_u32(&w, name, (uint32_t)i);
    }
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "blk.%d.w", i);
        gw_tensor_info(&w, name, 1, (int64_t[]){8}, LM_F32, (uint64_t)i * 32);
    }
    gw_pad(&w, 32);
    for (int i = 0; i < N * 32; i++) gw_u8(&w, 0);
    lm_error err = {{0}};
    uint8_t *copy;
    gguf_file *f = open_copy(w.buf, w.len, &copy, &err);
    CHECK(f != NULL, "many names: %s", err.msg);
    int n_bad = 0;
    for (int i = 0; f && i < N; i++) {
        uint32_t v = 0;
        snprintf(name, sizeof(name), "k.%d", i);
        n_bad += gguf_get_u32(f, name, &v) != 0 || v != (uint32_t)i;
        snprintf(name, sizeof(name), "blk.%d.w", i);
        const gguf_tensor *t = gguf_find_tensor(f, name);
        n_bad += !t || t->offset != (uint64_t)i * 32;
    }
    CHECK(n_bad == 0, "%d names not found", n_bad);
    if (f) CHECK(gguf_find_key(f, "k.3000") == -1 && !gguf_find_tensor(f, "blk.3000.w"), "absent");
    gguf_close(f);
    free(copy);
    gw_free(&w);
}

/* ---- files on disk ---- */

static void test_files(void) {
    char path[] = "/tmp/lamina_test_gguf_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    if (fd < 0) return;
    lm_error err = {{0}};
    gguf_file *f = gguf_open(path, &err);
    CHECK(!f && strstr(err.msg, path) && strstr(err.msg, "empty file"), "empty file: %s", err.msg);

    image im = build_image(3);
    CHECK(write(fd, im.w.buf, im.w.len) == (ssize_t)im.w.len, "write");
    close(fd);
    f = gguf_open(path, &err);
    CHECK(f != NULL, "mapped image: %s", err.msg);
    if (f) {
        check_image_values(f, 3);
        CHECK(!strcmp(gguf_path(f), path) && gguf_file_size(f) == im.w.len, "path/size");
        const gguf_tensor *t = gguf_find_tensor(f, "tok.weight");
        CHECK(t && memcmp(t->data, im.w.buf + im.data_start, 48) == 0, "mapped tensor bytes");
    }
    gguf_close(f);

    CHECK(truncate(path, (off_t)im.w.len - 1) == 0, "truncate");
    f = gguf_open(path, &err);
    CHECK(!f && strncmp(err.msg, path, strlen(path)) == 0 && strstr(err.msg, "tensor 'n.weight'") &&
              strstr(err.msg, "past end of file"), "truncated file: %s", err.msg);
    unlink(path);
    gw_free(&im.w);

    f = gguf_open("/nonexistent/model.gguf", &err);
    CHECK(!f && strstr(err.msg, "/nonexistent/model.gguf: cannot open"), "%s", err.msg);
    f = gguf_open("/tmp", &err);
    CHECK(!f && strstr(err.msg, "/tmp: not a regular file"), "%s", err.msg);
}

/* ---- the real models (values read with the gguf Python package) ---- */

static gguf_file *open_model(const char *path) {
    if (access(path, R_OK) != 0) {
        printf("skip: %s not present\n", path);
        return NULL;
    }
    lm_error err = {{0}};
    gguf_file *f = gguf_open(path, &err);
    CHECK(f != NULL, "%s", err.msg);
    return f;
}

/* The first BYTES bytes of tensor NAME equal the file's bytes at ABS_OFFSET. */
static void check_tensor_bytes(const gguf_file *f, const char *name, long abs_offset) {
    const gguf_tensor *t = gguf_find_tensor(f, name);
    uint8_t want[64];
    FILE *fp = fopen(gguf_path(f), "rb");
    bool ok = t && fp && fseek(fp, abs_offset, SEEK_SET) == 0 && fread(want, 1, 64, fp) == 64 &&
              memcmp(want, t->data, 64) == 0;
    CHECK(ok, "%s: bytes of tensor '%s'", gguf_path(f), name);
    if (fp) fclose(fp);
}

static void test_smollm(void) {
    gguf_file *f = open_model("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if (!f) return;
    gguf_str s;
    uint32_t u32 = 0;
    float eps = 0;
    CHECK(gguf_version(f) == 3 && gguf_n_kv(f) == 33 && gguf_n_tensors(f) == 272, "counts");
    CHECK(gguf_get_str(f, "general.architecture", &s) == 0 && str_eq(s, "llama"), "arch");
    CHECK(gguf_get_str(f, "tokenizer.ggml.pre", &s) == 0 && str_eq(s, "smollm"), "pre");
    CHECK(gguf_get_u32(f, "llama.context_length", &u32) == 0 && u32 == 8192, "ctx");
    CHECK(gguf_get_u32(f, "llama.attention.head_count_kv", &u32) == 0 && u32 == 3, "kv heads");
    CHECK(gguf_get_f32(f, "llama.attention.layer_norm_rms_epsilon", &eps) == 0 &&
              fabsf(eps - 1e-5f) < 1e-9f, "eps");
    int64_t tok = gguf_find_key(f, "tokenizer.ggml.tokens");
    CHECK(gguf_arr_len(f, tok) == 49152 && str_eq(gguf_arr_str(f, tok, 1), "<|im_start|>") &&
              str_eq(gguf_arr_str(f, tok, 2), "<|im_end|>"), "tokens");
    CHECK(gguf_arr_len(f, gguf_find_key(f, "tokenizer.ggml.merges")) == 48900, "merges");
    const gguf_tensor *t = gguf_find_tensor(f, "token_embd.weight");
    CHECK(t && t->type == LM_Q8_0 && t->ne[0] == 576 && t->ne[1] == 49152 && t->offset == 0,
          "token_embd");
    t = gguf_find_tensor(f, "blk.0.ffn_down.weight");
    CHECK(t && t->type == LM_Q4_1 && t->ne[0] == 1536 && t->ne[1] == 576, "ffn_down");
    check_tensor_bytes(f, "blk.0.attn_norm.weight", 31866688);
    gguf_close(f);
}

static void test_gemma(void) {
    gguf_file *f = open_model("models/gemma-3-270m-q4_k_m.gguf");
    if (!f) return;
    gguf_str s;
    uint32_t u32 = 0;
    CHECK(gguf_n_kv(f) == 33 && gguf_n_tensors(f) == 236, "counts");
    CHECK(gguf_get_str(f, "general.architecture", &s) == 0 && str_eq(s, "gemma3"), "arch");
    CHECK(gguf_get_str(f, "tokenizer.ggml.model", &s) == 0 && str_eq(s, "llama"), "vocab");
    CHECK(gguf_get_u32(f, "gemma3.attention.sliding_window", &u32) == 0 && u32 == 512, "swa");
    int64_t tok = gguf_find_key(f, "tokenizer.ggml.tokens");
    CHECK(gguf_arr_len(f, tok) == 262144 && str_eq(gguf_arr_str(f, tok, 2), "<bos>"), "tokens");
    int64_t scores = gguf_find_key(f, "tokenizer.ggml.scores");
    CHECK(gguf_arr_type(f, scores) == GGUF_TYPE_FLOAT32 && gguf_arr_len(f, scores) == 262144,
          "scores");
    const gguf_tensor *t = gguf_find_tensor(f, "token_embd.weight");
    CHECK(t && t->type == LM_Q8_0 && t->ne[0] == 640 && t->ne[1] == 262144 && t->offset == 2560,
          "token_embd");
    check_tensor_bytes(f, "output_norm.weight", 6525120);
    check_tensor_bytes(f, "blk.0.attn_k.weight", 184785600);
    gguf_close(f);
}

int main(void) {
    test_valid(3);
    test_valid(2);
    test_truncated();
    test_flipped();
    test_random_damage();
    test_header_faults();
    test_kv_faults();
    test_alignment();
    test_tensor_faults();
    test_many_names();
    test_files();
    test_smollm();
    test_gemma();
    return check_done("gguf");
}
