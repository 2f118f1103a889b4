/* gguf_writer.h - builds GGUF images in memory for the unit tests.
 *
 * A raw little-endian byte writer with one helper per GGUF construct. It
 * writes exactly what it is told (counts, types, lengths), so a test can
 * build a valid file or inject any fault: a wrong count, an unknown type, a
 * string length past the end. The caller frees with gw_free(). */
#ifndef LAMINA_TEST_GGUF_WRITER_H
#define LAMINA_TEST_GGUF_WRITER_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct gw {
    uint8_t *buf;
    size_t len, cap; /* bytes */
} gw;

static inline void gw_free(gw *w) {
    free(w->buf);
    *w = (gw){0};
}

static inline void gw_bytes(gw *w, const void *data, size_t n) {
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n) cap *= 2;
        w->buf = realloc(w->buf, cap);
        if (!w->buf) {
            fprintf(stderr, "gguf_writer: out of memory\n");
            exit(2);
        }
        w->cap = cap;
    }
    if (n) memcpy(w->buf + w->len, data, n);
    w->len += n;
}

static inline void gw_le(gw *w, uint64_t v, size_t n) {
    uint8_t b[8];
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)(v >> (8 * i));
    gw_bytes(w, b, n);
}

static inline void gw_u8(gw *w, uint8_t v) { gw_le(w, v, 1); }
static inline void gw_u16(gw *w, uint16_t v) { gw_le(w, v, 2); }
static inline void gw_u32(gw *w, uint32_t v) { gw_le(w, v, 4); }
static inline void gw_u64(gw *w, uint64_t v) { gw_le(w, v, 8); }
static inline void gw_f32(gw *w, float v) {
    uint32_t bits;
    memcpy(&bits, &v, 4);
    gw_u32(w, bits);
}
static inline void gw_f64(gw *w, double v) {
    uint64_t bits;
    memcpy(&bits, &v, 8);
    gw_u64(w, bits);
}

/* u64 length + bytes */
static inline void gw_str(gw *w, const char *s) {
    gw_u64(w, strlen(s));
    gw_bytes(w, s, strlen(s));
}

static inline void gw_header(gw *w, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    gw_bytes(w, "GGUF", 4);
    gw_u32(w, version);
    gw_u64(w, n_tensors);
    gw_u64(w, n_kv);
}

/* key + value type; the caller writes the value */
static inline void gw_key(gw *w, const char *key, uint32_t type) {
    gw_str(w, key);
    gw_u32(w, type);
}

static inline void gw_kv_u32(gw *w, const char *key, uint32_t v) {
    gw_key(w, key, 4 /* GGUF_TYPE_UINT32 */);
    gw_u32(w, v);
}

static inline void gw_kv_str(gw *w, const char *key, const char *v) {
    gw_key(w, key, 8 /* GGUF_TYPE_STRING */);
    gw_str(w, v);
}

static inline void gw_kv_arr_str(gw *w, const char *key, const char *const *items, uint64_t n) {
    gw_key(w, key, 9 /* GGUF_TYPE_ARRAY */);
    gw_u32(w, 8 /* GGUF_TYPE_STRING */);
    gw_u64(w, n);
    for (uint64_t i = 0; i < n; i++) gw_str(w, items[i]);
}

/* name, n_dims, ne[n_dims], type, offset */
static inline void gw_tensor_info(gw *w, const char *name, uint32_t n_dims, const int64_t *ne,
                                  uint32_t type, uint64_t offset) {
    gw_str(w, name);
    gw_u32(w, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) gw_u64(w, (uint64_t)ne[d]);
    gw_u32(w, type);
    gw_u64(w, offset);
}

/* zero bytes up to the next multiple of ALIGN */
static inline void gw_pad(gw *w, size_t align) {
    while (w->len % align) gw_u8(w, 0);
}

#endif
