/* gguf_internal.h - the in-memory layout of an open GGUF file, shared by the
 * parser (gguf.c) and the accessors (gguf_meta.c). Not part of the API.
 *
 * Everything the parser records points into the mapping (or the caller's
 * buffer) except the arrays allocated here: the kv and tensor tables, the
 * element table of each string array, the tensor name copies and the two
 * hash indexes. gguf_close() frees all of them. */
#ifndef LAMINA_GGUF_INTERNAL_H
#define LAMINA_GGUF_INTERNAL_H

#include "gguf/gguf.h"

/* One metadata entry, validated. */
typedef struct gguf_kv {
    gguf_str key;
    gguf_type type;
    const uint8_t *value;   /* scalar types: the raw little-endian value */
    gguf_str str;           /* GGUF_TYPE_STRING */
    gguf_type arr_type;     /* GGUF_TYPE_ARRAY: element type */
    uint64_t arr_len;       /* elements */
    const uint8_t *arr_data; /* first element (numeric: packed, elem size each) */
    gguf_str *arr_strs;     /* string arrays: (arr_len) element views, owned */
} gguf_kv;

/* Open-addressing hash index from a name to its position in a table.
 * Slots hold position + 1 (0 = empty); capacity is a power of two at least
 * twice the number of entries, so probes stay short. */
typedef struct gguf_index {
    uint64_t *slots;  /* (capacity) position + 1, or 0 */
    uint64_t *hashes; /* (capacity) full hash of the slot's name */
    uint64_t mask;    /* capacity - 1 */
} gguf_index;

struct gguf_file {
    char *path;           /* NUL-terminated copy, used in every message */
    const uint8_t *base;  /* the file's bytes */
    size_t size;          /* bytes */
    void *map;            /* mmap base, NULL for gguf_open_memory */

    uint32_t version;
    uint64_t alignment;   /* bytes, a power of two */
    uint64_t data_start;  /* bytes from the file start to the data section */

    int64_t n_kv;
    gguf_kv *kvs;         /* (n_kv) */
    gguf_index kv_index;

    int64_t n_tensors;
    gguf_tensor *tensors; /* (n_tensors) */
    gguf_index tensor_index;
};

/* Fixed byte size of a scalar value type; 0 for string/array/unknown. */
size_t gguf_type_size(uint32_t type);

uint64_t gguf_hash(const char *data, uint64_t len);
/* Position of NAME in the table behind the index, or -1. */
int64_t gguf_index_find(const gguf_file *f, const gguf_index *ix, bool tensors, const char *name,
                        uint64_t len);

/* Little-endian loads from possibly unaligned bytes. */
static inline uint64_t gguf_load_le(const uint8_t *p, size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

#endif
