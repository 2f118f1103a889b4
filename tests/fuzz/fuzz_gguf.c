/* fuzz_gguf.c - the GGUF reader over a memory buffer (gguf_open_memory),
 * then every accessor of a file it accepts: keys, typed getters, arrays
 * (numbers, strings, arrays of arrays), value renderings, tensors and their
 * data. gguf.h promises that no accessor reads outside the buffer, which
 * ASan checks byte for byte here. An accepted file then goes through the
 * two other parsers of model metadata: the tokenizer vocabulary
 * (tok_vocab_load) and the model's hyperparameters and tensor table
 * (lm_model_from_gguf). */
#include <stdio.h>
#include <string.h>

#include "gguf/gguf.h"
#include "model/model.h"
#include "support.h"
#include "tokenizer/tokenizer.h"

static volatile uint8_t sink;

/* reads every byte, so ASan sees a read outside the buffer */
static void touch(const void *p, uint64_t n) {
    const uint8_t *b = p;
    uint8_t x = 0;
    for (uint64_t i = 0; i < n; i++) x ^= b[i];
    sink ^= x;
}

static void check_array(const gguf_file *f, int64_t idx) {
    gguf_type t = gguf_arr_type(f, idx);
    uint64_t n = gguf_arr_len(f, idx);
    FZ_CHECK(t < GGUF_TYPE_COUNT, "array %lld of type %d", (long long)idx, (int)t);
    const void *data = gguf_arr_data(f, idx);
    FZ_CHECK(!data == (t == GGUF_TYPE_STRING || t == GGUF_TYPE_ARRAY), "array data of a %s array",
             gguf_type_name(t));
    for (uint64_t i = 0; i <= n; i++) {
        gguf_str s = gguf_arr_str(f, idx, i);
        touch(s.data, s.len);
        FZ_CHECK((t == GGUF_TYPE_STRING && i < n) || s.len == 0, "string %llu of a %s array",
                 (unsigned long long)i, gguf_type_name(t));
        double x = gguf_arr_num(f, idx, i);
        FZ_CHECK((data && i < n) || x == 0, "number %llu of a %s array", (unsigned long long)i, gguf_type_name(t));
    }
}

static void check_kv(const gguf_file *f, int64_t idx) {
    gguf_str key = gguf_key_at(f, idx);
    touch(key.data, key.len);
    gguf_type t = gguf_kv_type(f, idx);
    FZ_CHECK(t < GGUF_TYPE_COUNT, "key %lld of type %d", (long long)idx, (int)t);
    char name[512];
    if (key.len < sizeof(name) && !memchr(key.data, 0, key.len)) {
        memcpy(name, key.data, key.len);
        name[key.len] = 0;
        FZ_CHECK(gguf_find_key(f, name) == idx, "gguf_find_key(\"%s\") is not %lld", name, (long long)idx);
        uint32_t u32;
        int64_t i64;
        float f32;
        bool b;
        gguf_str s;
        gguf_get_u32(f, name, &u32);
        gguf_get_i64(f, name, &i64);
        gguf_get_f32(f, name, &f32);
        gguf_get_bool(f, name, &b);
        if (!gguf_get_str(f, name, &s)) touch(s.data, s.len);
    }
    if (t == GGUF_TYPE_ARRAY) check_array(f, idx);
    else FZ_CHECK(gguf_arr_type(f, idx) == GGUF_TYPE_COUNT && gguf_arr_len(f, idx) == 0, "array view of a %s",
                  gguf_type_name(t));
    static const size_t caps[] = {1, 2, 7, 8, 9, 16, 64, 256};
    for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++) {
        char buf[256];
        gguf_value_repr(f, idx, buf, caps[c]);
        FZ_CHECK(memchr(buf, 0, caps[c]), "value_repr of key %lld is not terminated within %zu bytes", (long long)idx,
                 caps[c]);
    }
}

static void check_tensors(const gguf_file *f, size_t size) {
    int64_t n = gguf_n_tensors(f);
    for (int64_t i = 0; i < n; i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        FZ_CHECK(t && t->name && t->n_dims <= GGUF_MAX_DIMS, "tensor %lld", (long long)i);
        FZ_CHECK(gguf_find_tensor(f, t->name) == t, "gguf_find_tensor(\"%s\")", t->name);
        FZ_CHECK(t->offset % gguf_alignment(f) == 0, "tensor '%s' at offset %llu (alignment %llu)", t->name,
                 (unsigned long long)t->offset, (unsigned long long)gguf_alignment(f));
        if (t->nbytes) {
            const uint8_t *d = t->data;
            sink ^= d[0] ^ d[t->nbytes - 1];
        }
    }
    FZ_CHECK(!gguf_tensor_at(f, -1) && !gguf_tensor_at(f, n), "tensor out of range");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lm_error err = {{0}};
    gguf_file *f = gguf_open_memory(data, size, "fuzz.gguf", &err);
    if (!f) {
        FZ_CHECK(err.msg[0], "gguf_open_memory failed without a message");
        return 0;
    }
    FZ_CHECK(gguf_version(f) == 2 || gguf_version(f) == 3, "version %u", gguf_version(f));
    FZ_CHECK(gguf_file_size(f) == size, "file size %zu of %zu bytes", gguf_file_size(f), size);
    uint64_t align = gguf_alignment(f);
    FZ_CHECK(align && !(align & (align - 1)), "alignment %llu", (unsigned long long)align);
    touch(gguf_path(f), strlen(gguf_path(f)));
    int64_t n_kv = gguf_n_kv(f);
    FZ_CHECK(n_kv >= 0, "%lld keys", (long long)n_kv);
    for (int64_t i = 0; i < n_kv; i++) check_kv(f, i);
    for (int64_t i = -1; i <= n_kv; i += n_kv + 1) {
        char buf[32];
        FZ_CHECK(gguf_key_at(f, i).len == 0 && gguf_kv_type(f, i) == GGUF_TYPE_COUNT && gguf_arr_len(f, i) == 0 &&
                     !gguf_arr_data(f, i) && gguf_arr_str(f, i, 0).len == 0 &&
                     !strcmp(gguf_value_repr(f, i, buf, sizeof(buf)), "(no such key)"),
                 "key %lld out of range", (long long)i);
    }
    check_tensors(f, size);
    for (int t = -1; t <= GGUF_TYPE_COUNT; t++) touch(gguf_type_name((gguf_type)t), 1);

    tok_vocab *v = tok_vocab_load(f, &err);
    if (v) {
        for (int32_t id = 0; id < tok_n_vocab(v) && id < 4096; id++) {
            char piece[64];
            int n = tok_piece(v, id, id & 1, piece, sizeof(piece));
            FZ_CHECK(n >= 0, "tok_piece(%d) = %d", id, n);
        }
        int32_t ids[256];
        const char *text = "Hello world! <|im_start|> 123 \xe2\x96\x81x\xff";
        int64_t n = tok_encode(v, text, strlen(text), true, true, ids, 256, &err);
        for (int64_t i = 0; i < n && i < 256; i++) FZ_CHECK(ids[i] >= 0 && ids[i] < tok_n_vocab(v), "id %d", ids[i]);
        tok_vocab_free(v);
    }
    lm_model *m = lm_model_from_gguf(f, &err); /* takes f */
    lm_model_free(m);
    return 0;
}
