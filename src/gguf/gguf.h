/* gguf.h - GGUF v2/v3 reader over a read-only mmap.
 *
 * gguf_open() maps the file, parses the header, the metadata key/value table
 * and the tensor table, and validates everything before returning: counts and
 * string lengths within the file, known value and tensor types, tensor
 * offsets aligned and in bounds, byte sizes consistent with type and shape, no
 * duplicate keys or tensor names. After a successful open every accessor is
 * safe: no accessor ever reads outside the mapping.
 *
 * Strings (gguf_str) point into the mapping and are NOT NUL-terminated; they
 * live as long as the gguf_file. Tensor names are copied and NUL-terminated. */
#ifndef LAMINA_GGUF_H
#define LAMINA_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef enum gguf_type {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT
} gguf_type;

/* "uint8", "string", "array", ...; "unknown" outside the enum */
const char *gguf_type_name(gguf_type type);

typedef struct gguf_str {
    const char *data; /* into the mapping, not NUL-terminated */
    uint64_t len;     /* bytes */
} gguf_str;

#define GGUF_MAX_DIMS 4

typedef struct gguf_tensor {
    char *name;                 /* NUL-terminated copy */
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS];  /* elements per dim, ne[0] fastest; unused dims = 1 */
    uint32_t type;              /* lm_dtype */
    uint64_t offset;            /* bytes, relative to the data section */
    uint64_t nbytes;            /* bytes */
    const void *data;           /* into the mapping */
} gguf_tensor;

typedef struct gguf_file gguf_file;

/* Maps and validates PATH. Returns NULL and fills err ("PATH: what is wrong")
 * on any fault. The caller frees with gguf_close(). */
gguf_file *gguf_open(const char *path, lm_error *err);

/* Same over a caller-owned buffer (fuzzing, tests). NAME is used in messages.
 * The buffer must outlive the gguf_file. */
gguf_file *gguf_open_memory(const void *data, size_t size, const char *name, lm_error *err);

void gguf_close(gguf_file *f);

const char *gguf_path(const gguf_file *f);
uint32_t gguf_version(const gguf_file *f);
uint64_t gguf_alignment(const gguf_file *f);  /* bytes */
size_t gguf_file_size(const gguf_file *f);    /* bytes */

/* ---- metadata ---- */
int64_t gguf_n_kv(const gguf_file *f);
int64_t gguf_find_key(const gguf_file *f, const char *key); /* index or -1 */
gguf_str gguf_key_at(const gguf_file *f, int64_t idx);
gguf_type gguf_kv_type(const gguf_file *f, int64_t idx);

/* Typed getters by key. Return 0 and set *out when the key exists and its
 * value converts losslessly (any integer type to the integer asked for if in
 * range; f32/f64 to float); -1 otherwise (*out untouched). */
int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out);
int gguf_get_i64(const gguf_file *f, const char *key, int64_t *out);
int gguf_get_f32(const gguf_file *f, const char *key, float *out);
int gguf_get_bool(const gguf_file *f, const char *key, bool *out);
int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out);

/* Arrays (the kv at idx must be GGUF_TYPE_ARRAY; otherwise the type is
 * GGUF_TYPE_COUNT, the length 0, strings empty and data NULL). Arrays of
 * arrays are validated at open but their elements are not exposed. */
gguf_type gguf_arr_type(const gguf_file *f, int64_t idx);
uint64_t gguf_arr_len(const gguf_file *f, int64_t idx);
/* element i of a string array */
gguf_str gguf_arr_str(const gguf_file *f, int64_t idx, uint64_t i);
/* raw little-endian elements of a numeric array (may be unaligned: memcpy);
 * NULL for string arrays and arrays of arrays */
const void *gguf_arr_data(const gguf_file *f, int64_t idx);
/* element i of any numeric array converted to double (0 on a type error) */
double gguf_arr_num(const gguf_file *f, int64_t idx, uint64_t i);

/* A printable rendering of a value ("42", "\"llama\"", "[array of 49152 string]")
 * into buf; returns buf. */
const char *gguf_value_repr(const gguf_file *f, int64_t idx, char *buf, size_t cap);

/* ---- tensors ---- */
int64_t gguf_n_tensors(const gguf_file *f);
const gguf_tensor *gguf_tensor_at(const gguf_file *f, int64_t i);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name); /* or NULL */

#endif
