/* gguf_meta.c - read access to an open GGUF file: metadata values, typed
 * getters, arrays, printable renderings and tensor lookup.
 *
 * Everything here runs after gguf.c validated the file, so values are known
 * to lie inside the buffer; the checks left are on the caller's arguments
 * (a key of another type, an index out of range), which answer -1, 0 or an
 * empty string rather than touching memory. */
#include <stdio.h>
#include <string.h>

#include "gguf/gguf_internal.h"

static const struct {
    const char *name;
    size_t size; /* bytes; 0 for variable-size types */
} TYPES[GGUF_TYPE_COUNT] = {
    [GGUF_TYPE_UINT8] = {"uint8", 1},     [GGUF_TYPE_INT8] = {"int8", 1},
    [GGUF_TYPE_UINT16] = {"uint16", 2},   [GGUF_TYPE_INT16] = {"int16", 2},
    [GGUF_TYPE_UINT32] = {"uint32", 4},   [GGUF_TYPE_INT32] = {"int32", 4},
    [GGUF_TYPE_FLOAT32] = {"float32", 4}, [GGUF_TYPE_BOOL] = {"bool", 1},
    [GGUF_TYPE_STRING] = {"string", 0},   [GGUF_TYPE_ARRAY] = {"array", 0},
    [GGUF_TYPE_UINT64] = {"uint64", 8},   [GGUF_TYPE_INT64] = {"int64", 8},
    [GGUF_TYPE_FLOAT64] = {"float64", 8},
};

size_t gguf_type_size(uint32_t type) { return type < GGUF_TYPE_COUNT ? TYPES[type].size : 0; }

const char *gguf_type_name(gguf_type type) {
    return (unsigned)type < GGUF_TYPE_COUNT ? TYPES[type].name : "unknown";
}

/* FNV-1a, 64-bit. */
uint64_t gguf_hash(const char *data, uint64_t len) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (uint64_t i = 0; i < len; i++) {
        h ^= (unsigned char)data[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

int64_t gguf_index_find(const gguf_file *f, const gguf_index *ix, bool tensors, const char *name,
                        uint64_t len) {
    if (!ix->slots) return -1;
    uint64_t h = gguf_hash(name, len);
    for (uint64_t i = h & ix->mask; ix->slots[i]; i = (i + 1) & ix->mask) {
        if (ix->hashes[i] != h) continue;
        int64_t pos = (int64_t)ix->slots[i] - 1;
        gguf_str s = tensors ? (gguf_str){f->tensors[pos].name, strlen(f->tensors[pos].name)}
                             : f->kvs[pos].key;
        if (s.len == len && memcmp(s.data, name, len) == 0) return pos;
    }
    return -1;
}

const char *gguf_path(const gguf_file *f) { return f->path; }
uint32_t gguf_version(const gguf_file *f) { return f->version; }
uint64_t gguf_alignment(const gguf_file *f) { return f->alignment; }
size_t gguf_file_size(const gguf_file *f) { return f->size; }

/* ---- metadata ---- */

int64_t gguf_n_kv(const gguf_file *f) { return f->n_kv; }

int64_t gguf_find_key(const gguf_file *f, const char *key) {
    return gguf_index_find(f, &f->kv_index, false, key, strlen(key));
}

static const gguf_kv *kv_at(const gguf_file *f, int64_t idx) {
    return idx >= 0 && idx < f->n_kv ? &f->kvs[idx] : NULL;
}

gguf_str gguf_key_at(const gguf_file *f, int64_t idx) {
    const gguf_kv *kv = kv_at(f, idx);
    return kv ? kv->key : (gguf_str){"", 0};
}

gguf_type gguf_kv_type(const gguf_file *f, int64_t idx) {
    const gguf_kv *kv = kv_at(f, idx);
    return kv ? kv->type : GGUF_TYPE_COUNT;
}

static bool is_signed_int(gguf_type t) {
    return t == GGUF_TYPE_INT8 || t == GGUF_TYPE_INT16 || t == GGUF_TYPE_INT32 ||
           t == GGUF_TYPE_INT64;
}

static bool is_unsigned_int(gguf_type t) {
    return t == GGUF_TYPE_UINT8 || t == GGUF_TYPE_UINT16 || t == GGUF_TYPE_UINT32 ||
           t == GGUF_TYPE_UINT64;
}

/* The signed integer at P of type T (any signed width), sign-extended. */
static int64_t load_signed(gguf_type t, const uint8_t *p) {
    size_t n = gguf_type_size(t);
    uint64_t raw = gguf_load_le(p, n);
    if (n < 8 && (raw >> (8 * n - 1)) & 1) raw |= ~0ull << (8 * n);
    return (int64_t)raw;
}

static double load_float(gguf_type t, const uint8_t *p) {
    if (t == GGUF_TYPE_FLOAT32) {
        uint32_t bits = (uint32_t)gguf_load_le(p, 4);
        float v;
        memcpy(&v, &bits, sizeof(v));
        return v;
    }
    uint64_t bits = gguf_load_le(p, 8);
    double v;
    memcpy(&v, &bits, sizeof(v));
    return v;
}

/* The integer value of kv as an unsigned (*neg false) or negative number. */
static int kv_integer(const gguf_kv *kv, bool *neg, uint64_t *u, int64_t *s) {
    if (is_unsigned_int(kv->type)) {
        *neg = false;
        *u = gguf_load_le(kv->value, gguf_type_size(kv->type));
        return 0;
    }
    if (is_signed_int(kv->type)) {
        *s = load_signed(kv->type, kv->value);
        *neg = *s < 0;
        *u = (uint64_t)*s;
        return 0;
    }
    return -1;
}

static const gguf_kv *kv_by_key(const gguf_file *f, const char *key) {
    return kv_at(f, gguf_find_key(f, key));
}

int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out) {
    const gguf_kv *kv = kv_by_key(f, key);
    bool neg;
    uint64_t u;
    int64_t s;
    if (!kv || kv_integer(kv, &neg, &u, &s) || neg || u > UINT32_MAX) return -1;
    *out = (uint32_t)u;
    return 0;
}

int gguf_get_i64(const gguf_file *f, const char *key, int64_t *out) {
    const gguf_kv *kv = kv_by_key(f, key);
    bool neg;
    uint64_t u;
    int64_t s;
    if (!kv || kv_integer(kv, &neg, &u, &s) || (!neg && u > INT64_MAX)) return -1;
    *out = (int64_t)u;
    return 0;
}

int gguf_get_f32(const gguf_file *f, const char *key, float *out) {
    const gguf_kv *kv = kv_by_key(f, key);
    if (!kv || (kv->type != GGUF_TYPE_FLOAT32 && kv->type != GGUF_TYPE_FLOAT64)) return -1;
    *out = (float)load_float(kv->type, kv->value);
    return 0;
}

int gguf_get_bool(const gguf_file *f, const char *key, bool *out) {
    const gguf_kv *kv = kv_by_key(f, key);
    if (!kv || kv->type != GGUF_TYPE_BOOL) return -1;
    *out = kv->value[0] != 0;
    return 0;
}

int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out) {
    const gguf_kv *kv = kv_by_key(f, key);
    if (!kv || kv->type != GGUF_TYPE_STRING) return -1;
    *out = kv->str;
    return 0;
}

/* ---- arrays ---- */

static const gguf_kv *arr_at(const gguf_file *f, int64_t idx) {
    const gguf_kv *kv = kv_at(f, idx);
    return kv && kv->type == GGUF_TYPE_ARRAY ? kv : NULL;
}

gguf_type gguf_arr_type(const gguf_file *f, int64_t idx) {
    const gguf_kv *kv = arr_at(f, idx);
    return kv ? kv->arr_type : GGUF_TYPE_COUNT;
}

uint64_t gguf_arr_len(const gguf_file *f, int64_t idx) {
    const gguf_kv *kv = arr_at(f, idx);
    return kv ? kv->arr_len : 0;
}

gguf_str gguf_arr_str(const gguf_file *f, int64_t idx, uint64_t i) {
    const gguf_kv *kv = arr_at(f, idx);
    if (!kv || kv->arr_type != GGUF_TYPE_STRING || i >= kv->arr_len) return (gguf_str){"", 0};
    return kv->arr_strs[i];
}

const void *gguf_arr_data(const gguf_file *f, int64_t idx) {
    const gguf_kv *kv = arr_at(f, idx);
    if (!kv || gguf_type_size(kv->arr_type) == 0) return NULL;
    return kv->arr_data;
}

static double load_number(gguf_type t, const uint8_t *p) {
    if (is_unsigned_int(t)) return (double)gguf_load_le(p, gguf_type_size(t));
    if (is_signed_int(t)) return (double)load_signed(t, p);
    if (t == GGUF_TYPE_BOOL) return p[0] != 0;
    return load_float(t, p);
}

double gguf_arr_num(const gguf_file *f, int64_t idx, uint64_t i) {
    const gguf_kv *kv = arr_at(f, idx);
    size_t elem_size = kv ? gguf_type_size(kv->arr_type) : 0;
    if (!elem_size || i >= kv->arr_len) return 0;
    return load_number(kv->arr_type, kv->arr_data + i * elem_size);
}

/* ---- printable values ---- */

/* Writes S quoted and escaped into buf (cap >= 8), cut with "..." when it
 * does not fit. */
static void repr_string(gguf_str s, char *buf, size_t cap) {
    size_t n = 0;
    buf[n++] = '"';
    for (uint64_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.data[i];
        char esc[8];
        if (c == '"' || c == '\\') snprintf(esc, sizeof(esc), "\\%c", c);
        else if (c == '\n') snprintf(esc, sizeof(esc), "\\n");
        else if (c == '\t') snprintf(esc, sizeof(esc), "\\t");
        else if (c < 0x20 || c == 0x7f) snprintf(esc, sizeof(esc), "\\x%02x", c);
        else snprintf(esc, sizeof(esc), "%c", c);
        size_t len = strlen(esc);
        if (n + len + 5 > cap) { /* room for `..."` and the NUL */
            memcpy(buf + n, "...", 3);
            n += 3;
            break;
        }
        memcpy(buf + n, esc, len);
        n += len;
    }
    buf[n++] = '"';
    buf[n] = '\0';
}

const char *gguf_value_repr(const gguf_file *f, int64_t idx, char *buf, size_t cap) {
    const gguf_kv *kv = kv_at(f, idx);
    bool neg;
    uint64_t u;
    int64_t s;
    if (cap == 0) return buf;
    if (!kv) {
        snprintf(buf, cap, "(no such key)");
    } else if (kv->type == GGUF_TYPE_STRING && cap >= 8) {
        repr_string(kv->str, buf, cap);
    } else if (kv->type == GGUF_TYPE_ARRAY) {
        snprintf(buf, cap, "[array of %llu %s]", (unsigned long long)kv->arr_len,
                 gguf_type_name(kv->arr_type));
    } else if (kv->type == GGUF_TYPE_BOOL) {
        snprintf(buf, cap, "%s", kv->value[0] ? "true" : "false");
    } else if (kv_integer(kv, &neg, &u, &s) == 0) {
        if (neg) snprintf(buf, cap, "%lld", (long long)s);
        else snprintf(buf, cap, "%llu", (unsigned long long)u);
    } else if (kv->type == GGUF_TYPE_FLOAT32 || kv->type == GGUF_TYPE_FLOAT64) {
        snprintf(buf, cap, "%g", load_float(kv->type, kv->value));
    } else {
        snprintf(buf, cap, "\"...\"");
    }
    return buf;
}

/* ---- tensors ---- */

int64_t gguf_n_tensors(const gguf_file *f) { return f->n_tensors; }

const gguf_tensor *gguf_tensor_at(const gguf_file *f, int64_t i) {
    return i >= 0 && i < f->n_tensors ? &f->tensors[i] : NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    return gguf_tensor_at(f, gguf_index_find(f, &f->tensor_index, true, name, strlen(name)));
}
