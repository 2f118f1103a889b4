/* gguf.c - open, parse and validate a GGUF v2/v3 file.
 *
 * Layout of a GGUF file (all little-endian):
 *
 *   header      magic "GGUF", u32 version, u64 n_tensors, u64 n_kv
 *   metadata    n_kv x { string key, u32 value type, value }
 *   tensor info n_tensors x { string name, u32 n_dims, u64 ne[n_dims],
 *                             u32 type, u64 offset }
 *   padding     to general.alignment (default 32)
 *   data        tensor bytes, each at data_start + offset
 *
 * A string is a u64 length then that many bytes; an array is a u32 element
 * type, a u64 count, then the elements (arrays may hold arrays).
 *
 * The parser walks the bytes once with a bounds-checked cursor: every count
 * and length is compared with the bytes left before it is used, and every
 * size computation is overflow-checked, so a hostile file can make open()
 * fail but never read outside the buffer. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/dtype.h"
#include "gguf/gguf_internal.h"

#define GGUF_MAGIC "GGUF"
#define GGUF_HEADER_SIZE 24       /* magic + version + n_tensors + n_kv */
#define GGUF_DEFAULT_ALIGNMENT 32 /* bytes */
#define GGUF_MAX_ARRAY_DEPTH 16   /* arrays of arrays, deeper is rejected */
/* The smallest possible encodings, to bound counts by the file size before
 * allocating: key length + 1-byte key + type + 1-byte value; name length +
 * 1-byte name + n_dims + one dim + type + offset; a string; an array header. */
#define GGUF_MIN_KV_SIZE 14
#define GGUF_MIN_TENSOR_INFO_SIZE 33
#define GGUF_MIN_STRING_SIZE 8
#define GGUF_MIN_ARRAY_SIZE 12
#define GGUF_NAME_SHOWN 80 /* bytes of a key or tensor name quoted in messages */

/* The bounds-checked cursor over the file and the context of its messages. */
typedef struct reader {
    const gguf_file *f;
    size_t pos;    /* bytes from the start */
    lm_error *err;
    char ctx[128]; /* what is being read: "header", "key 'x'", "tensor 'y'" */
} reader;

__attribute__((format(printf, 2, 3))) static int fail(reader *r, const char *fmt, ...) {
    char what[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    lm_error_set(r->err, "%s: %s: %s", r->f->path, r->ctx, what);
    return -1;
}

/* Copies a name from the file into buf for a message: at most
 * GGUF_NAME_SHOWN bytes, control bytes shown as '?', so the message stays
 * one printable line whatever the file holds. */
static const char *shown_name(char *buf, size_t cap, const char *s, uint64_t len) {
    size_t n = 0;
    for (uint64_t i = 0; i < len && n + 4 < cap && i < GGUF_NAME_SHOWN; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[n++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (len > GGUF_NAME_SHOWN && n + 4 <= cap) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

static size_t bytes_left(const reader *r) { return r->f->size - r->pos; }

/* Points *out at the next N bytes and advances, or fails naming WHAT. */
static int take(reader *r, uint64_t n, const char *what, const uint8_t **out) {
    *out = r->f->base + r->pos;
    if (n > bytes_left(r))
        return fail(r, "%s (%llu bytes at offset %zu) past end of file (size %zu)", what,
                    (unsigned long long)n, r->pos, r->f->size);
    r->pos += (size_t)n;
    return 0;
}

static int read_u32(reader *r, const char *what, uint32_t *out) {
    const uint8_t *p;
    if (take(r, 4, what, &p)) return -1;
    *out = (uint32_t)gguf_load_le(p, 4);
    return 0;
}

static int read_u64(reader *r, const char *what, uint64_t *out) {
    const uint8_t *p;
    if (take(r, 8, what, &p)) return -1;
    *out = gguf_load_le(p, 8);
    return 0;
}

static int read_str(reader *r, const char *what, gguf_str *out) {
    uint64_t len;
    const uint8_t *p;
    if (read_u64(r, what, &len) || take(r, len, what, &p)) return -1;
    out->data = (const char *)p;
    out->len = len;
    return 0;
}

/* ---- name indexes ---- */

static int index_init(gguf_index *ix, int64_t n) {
    uint64_t cap = 16;
    while (cap < 2 * (uint64_t)n) cap *= 2;
    ix->slots = calloc(cap, sizeof(*ix->slots));
    ix->hashes = calloc(cap, sizeof(*ix->hashes));
    ix->mask = cap - 1;
    return ix->slots && ix->hashes ? 0 : -1;
}

static void index_free(gguf_index *ix) {
    free(ix->slots);
    free(ix->hashes);
}

/* Inserts position POS under NAME; returns -1 on success, or the position
 * already stored under an equal name. */
static int64_t index_insert(const gguf_file *f, gguf_index *ix, bool tensors, int64_t pos,
                            const char *name, uint64_t len) {
    int64_t found = gguf_index_find(f, ix, tensors, name, len);
    if (found >= 0) return found;
    uint64_t h = gguf_hash(name, len);
    uint64_t i = h & ix->mask;
    while (ix->slots[i]) i = (i + 1) & ix->mask;
    ix->slots[i] = (uint64_t)pos + 1;
    ix->hashes[i] = h;
    return -1;
}

/* ---- metadata ---- */

static int parse_array(reader *r, int depth, gguf_kv *kv);

static int check_value_type(reader *r, uint32_t type, const char *what) {
    if (type >= GGUF_TYPE_COUNT) return fail(r, "unknown %s %u", what, type);
    return 0;
}

/* Validates and skips an array of arrays: COUNT nested arrays. */
static int skip_nested_arrays(reader *r, int depth, uint64_t count) {
    if (count > bytes_left(r) / GGUF_MIN_ARRAY_SIZE)
        return fail(r, "array of %llu arrays at offset %zu past end of file (size %zu)",
                    (unsigned long long)count, r->pos, r->f->size);
    for (uint64_t i = 0; i < count; i++) {
        gguf_kv inner = {0};
        if (parse_array(r, depth + 1, &inner)) return -1;
    }
    return 0;
}

/* Reads the element views of a string array of COUNT elements into kv. */
static int parse_string_array(reader *r, gguf_kv *kv, uint64_t count) {
    if (count > bytes_left(r) / GGUF_MIN_STRING_SIZE)
        return fail(r, "array of %llu strings at offset %zu past end of file (size %zu)",
                    (unsigned long long)count, r->pos, r->f->size);
    gguf_str *strs = malloc((count ? count : 1) * sizeof(*strs));
    if (!strs) return fail(r, "out of memory for %llu strings", (unsigned long long)count);
    for (uint64_t i = 0; i < count; i++) {
        if (read_str(r, "array string", &strs[i])) {
            free(strs);
            return -1;
        }
    }
    kv->arr_strs = strs;
    return 0;
}

/* Parses an array value (element type, count, elements) at the cursor and
 * records it in kv. Nested arrays are validated and skipped; DEPTH counts
 * the arrays around this one. */
static int parse_array(reader *r, int depth, gguf_kv *kv) {
    uint32_t elem_type;
    uint64_t count;
    if (depth >= GGUF_MAX_ARRAY_DEPTH)
        return fail(r, "arrays nested deeper than %d levels", GGUF_MAX_ARRAY_DEPTH);
    if (read_u32(r, "array element type", &elem_type)) return -1;
    if (check_value_type(r, elem_type, "array element type")) return -1;
    if (read_u64(r, "array length", &count)) return -1;
    kv->arr_type = (gguf_type)elem_type;
    kv->arr_len = count;
    kv->arr_data = r->f->base + r->pos;
    if (elem_type == GGUF_TYPE_STRING) {
        if (depth == 0) return parse_string_array(r, kv, count);
        for (uint64_t i = 0; i < count; i++) {
            gguf_str s;
            if (read_str(r, "array string", &s)) return -1;
        }
        return 0;
    }
    if (elem_type == GGUF_TYPE_ARRAY) return skip_nested_arrays(r, depth, count);
    size_t elem_size = gguf_type_size(elem_type);
    const uint8_t *p;
    if (count > bytes_left(r) / elem_size)
        return fail(r, "array of %llu %s at offset %zu past end of file (size %zu)",
                    (unsigned long long)count, gguf_type_name(kv->arr_type), r->pos, r->f->size);
    return take(r, count * elem_size, "array", &p);
}

static int parse_value(reader *r, gguf_kv *kv) {
    uint32_t type;
    if (read_u32(r, "value type", &type)) return -1;
    if (check_value_type(r, type, "value type")) return -1;
    kv->type = (gguf_type)type;
    if (type == GGUF_TYPE_STRING) return read_str(r, "string", &kv->str);
    if (type == GGUF_TYPE_ARRAY) return parse_array(r, 0, kv);
    return take(r, gguf_type_size(type), gguf_type_name(kv->type), &kv->value);
}

static int parse_kv(reader *r, gguf_file *f, int64_t i) {
    gguf_kv *kv = &f->kvs[i];
    char shown[GGUF_NAME_SHOWN + 8];
    snprintf(r->ctx, sizeof(r->ctx), "metadata entry %lld of %lld", (long long)i,
             (long long)f->n_kv);
    if (read_str(r, "key", &kv->key)) return -1;
    if (kv->key.len == 0) return fail(r, "empty key");
    snprintf(r->ctx, sizeof(r->ctx), "key '%s'",
             shown_name(shown, sizeof(shown), kv->key.data, kv->key.len));
    if (memchr(kv->key.data, '\0', kv->key.len)) return fail(r, "key contains a NUL byte");
    if (parse_value(r, kv)) return -1;
    int64_t prev = index_insert(f, &f->kv_index, false, i, kv->key.data, kv->key.len);
    if (prev >= 0)
        return fail(r, "duplicate key (metadata entries %lld and %lld)", (long long)prev,
                    (long long)i);
    return 0;
}

/* general.alignment: a u32 power of two when present. */
static int read_alignment(reader *r, gguf_file *f) {
    int64_t idx = gguf_find_key(f, "general.alignment");
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    if (idx < 0) return 0;
    snprintf(r->ctx, sizeof(r->ctx), "key 'general.alignment'");
    if (f->kvs[idx].type != GGUF_TYPE_UINT32)
        return fail(r, "type is %s, expected uint32", gguf_type_name(f->kvs[idx].type));
    uint32_t a = (uint32_t)gguf_load_le(f->kvs[idx].value, 4);
    if (a == 0 || (a & (a - 1)) != 0) return fail(r, "alignment %u is not a power of two", a);
    f->alignment = a;
    return 0;
}

/* ---- tensor infos ---- */

static int parse_dims(reader *r, gguf_tensor *t) {
    if (read_u32(r, "n_dims", &t->n_dims)) return -1;
    if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
        return fail(r, "n_dims %u not in 1..%d", t->n_dims, GGUF_MAX_DIMS);
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t ne;
        if (read_u64(r, "dimension", &ne)) return -1;
        if ((int64_t)ne < 1) return fail(r, "dimension %u is %lld, must be >= 1", d, (long long)ne);
        t->ne[d] = (int64_t)ne;
    }
    return 0;
}

/* Checks the type and shape agree and sets t->nbytes. */
static int size_tensor(reader *r, gguf_tensor *t) {
    if (!lm_dtype_supported(t->type)) return fail(r, "unknown tensor type id %u", t->type);
    int64_t block = lm_dtype_block_size(t->type);
    int64_t nelements = 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) {
        if (__builtin_mul_overflow(nelements, t->ne[d], &nelements))
            return fail(r, "element count of shape [%lld, %lld, %lld, %lld] overflows int64",
                        (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                        (long long)t->ne[3]);
    }
    if (t->ne[0] % block != 0)
        return fail(r, "row length %lld is not a multiple of the %s block size %lld",
                    (long long)t->ne[0], lm_dtype_name(t->type), (long long)block);
    uint64_t blocks = (uint64_t)(nelements / block);
    if (__builtin_mul_overflow(blocks, (uint64_t)lm_dtype_type_size(t->type), &t->nbytes))
        return fail(r, "byte size of %lld %s elements overflows", (long long)nelements,
                    lm_dtype_name(t->type));
    return 0;
}

static int parse_tensor_info(reader *r, gguf_file *f, int64_t i) {
    gguf_tensor *t = &f->tensors[i];
    gguf_str name;
    char shown[GGUF_NAME_SHOWN + 8];
    snprintf(r->ctx, sizeof(r->ctx), "tensor info %lld of %lld", (long long)i,
             (long long)f->n_tensors);
    if (read_str(r, "name", &name)) return -1;
    if (name.len == 0) return fail(r, "empty tensor name");
    snprintf(r->ctx, sizeof(r->ctx), "tensor '%s'",
             shown_name(shown, sizeof(shown), name.data, name.len));
    if (memchr(name.data, '\0', name.len)) return fail(r, "name contains a NUL byte");
    t->name = malloc(name.len + 1);
    if (!t->name) return fail(r, "out of memory");
    memcpy(t->name, name.data, name.len);
    t->name[name.len] = '\0';
    if (parse_dims(r, t)) return -1;
    if (read_u32(r, "type", &t->type)) return -1;
    if (size_tensor(r, t)) return -1;
    if (read_u64(r, "offset", &t->offset)) return -1;
    int64_t prev = index_insert(f, &f->tensor_index, true, i, name.data, name.len);
    if (prev >= 0)
        return fail(r, "duplicate tensor name (tensors %lld and %lld)", (long long)prev,
                    (long long)i);
    return 0;
}

/* Places every tensor in the data section, which starts at the first
 * alignment boundary after the tensor infos. */
static int place_tensors(reader *r, gguf_file *f) {
    char shown[GGUF_NAME_SHOWN + 8];
    f->data_start = (r->pos + f->alignment - 1) & ~(f->alignment - 1);
    for (int64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        snprintf(r->ctx, sizeof(r->ctx), "tensor '%s'",
                 shown_name(shown, sizeof(shown), t->name, strlen(t->name)));
        if (t->offset % f->alignment != 0)
            return fail(r, "offset %llu is not a multiple of the alignment %llu",
                        (unsigned long long)t->offset, (unsigned long long)f->alignment);
        uint64_t start, end;
        if (__builtin_add_overflow(f->data_start, t->offset, &start) ||
            __builtin_add_overflow(start, t->nbytes, &end))
            return fail(r, "data offset %llu + %llu bytes overflows", (unsigned long long)t->offset,
                        (unsigned long long)t->nbytes);
        if (end > f->size)
            return fail(r, "data [%llu, %llu) past end of file (size %zu)",
                        (unsigned long long)start, (unsigned long long)end, f->size);
        t->data = f->base + start;
    }
    return 0;
}

/* ---- the whole file ---- */

static int parse_header(reader *r, gguf_file *f) {
    const uint8_t *magic;
    uint64_t n_tensors, n_kv;
    snprintf(r->ctx, sizeof(r->ctx), "header");
    if (take(r, 4, "magic", &magic)) return -1;
    if (memcmp(magic, GGUF_MAGIC, 4) != 0)
        return fail(r, "not a GGUF file (magic %02x %02x %02x %02x)", magic[0], magic[1], magic[2],
                    magic[3]);
    if (read_u32(r, "version", &f->version)) return -1;
    if (f->version == 1) return fail(r, "GGUF v1 is not supported (only v2 and v3)");
    if (f->version != 2 && f->version != 3) {
        if ((f->version & 0xffff) == 0)
            return fail(r, "GGUF version %u is not supported (a big-endian file?)", f->version);
        return fail(r, "GGUF version %u is not supported (only v2 and v3)", f->version);
    }
    if (read_u64(r, "tensor count", &n_tensors) || read_u64(r, "metadata count", &n_kv)) return -1;
    uint64_t room = bytes_left(r);
    if (n_kv > room / GGUF_MIN_KV_SIZE || n_tensors > room / GGUF_MIN_TENSOR_INFO_SIZE ||
        n_kv * GGUF_MIN_KV_SIZE + n_tensors * GGUF_MIN_TENSOR_INFO_SIZE > room)
        return fail(r, "%llu metadata entries and %llu tensor infos would run past end of file "
                       "(size %zu)",
                    (unsigned long long)n_kv, (unsigned long long)n_tensors, f->size);
    f->n_kv = (int64_t)n_kv;
    f->n_tensors = (int64_t)n_tensors;
    return 0;
}

static int parse_file(gguf_file *f, lm_error *err) {
    reader r = {.f = f, .pos = 0, .err = err};
    if (parse_header(&r, f)) return -1;
    f->kvs = calloc((size_t)f->n_kv + 1, sizeof(*f->kvs));
    f->tensors = calloc((size_t)f->n_tensors + 1, sizeof(*f->tensors));
    if (!f->kvs || !f->tensors || index_init(&f->kv_index, f->n_kv) ||
        index_init(&f->tensor_index, f->n_tensors))
        return fail(&r, "out of memory for %lld entries and %lld tensors", (long long)f->n_kv,
                    (long long)f->n_tensors);
    for (int64_t i = 0; i < f->n_kv; i++)
        if (parse_kv(&r, f, i)) return -1;
    if (read_alignment(&r, f)) return -1;
    for (int64_t i = 0; i < f->n_tensors; i++)
        if (parse_tensor_info(&r, f, i)) return -1;
    return place_tensors(&r, f);
}

static gguf_file *file_new(const char *name, lm_error *err) {
    gguf_file *f = calloc(1, sizeof(*f));
    if (f) f->path = strdup(name ? name : "(memory)");
    if (!f || !f->path) {
        free(f);
        lm_error_set(err, "%s: out of memory", name ? name : "(memory)");
        return NULL;
    }
    return f;
}

gguf_file *gguf_open_memory(const void *data, size_t size, const char *name, lm_error *err) {
    gguf_file *f = file_new(name, err);
    if (!f) return NULL;
    f->base = data;
    f->size = data ? size : 0;
    if (parse_file(f, err)) {
        gguf_close(f);
        return NULL;
    }
    return f;
}

gguf_file *gguf_open(const char *path, lm_error *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        lm_error_set(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        lm_error_set(err, "%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    if (st.st_size == 0) {
        lm_error_set(err, "%s: empty file, not a GGUF file", path);
        close(fd);
        return NULL;
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    close(fd);
    if (map == MAP_FAILED) {
        lm_error_set(err, "%s: cannot map %lld bytes: %s", path, (long long)st.st_size,
                     strerror(map_errno));
        return NULL;
    }
    gguf_file *f = file_new(path, err);
    if (!f) {
        munmap(map, (size_t)st.st_size);
        return NULL;
    }
    f->map = map;
    f->base = map;
    f->size = (size_t)st.st_size;
    if (parse_file(f, err)) {
        gguf_close(f);
        return NULL;
    }
    return f;
}

void gguf_close(gguf_file *f) {
    if (!f) return;
    for (int64_t i = 0; f->kvs && i < f->n_kv; i++) free(f->kvs[i].arr_strs);
    for (int64_t i = 0; f->tensors && i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->kvs);
    free(f->tensors);
    index_free(&f->kv_index);
    index_free(&f->tensor_index);
    if (f->map) munmap(f->map, f->size);
    free(f->path);
    free(f);
}
