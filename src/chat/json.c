/* json.c - values from jansson trees, and values to JSON text exactly as
 * Python's json.dumps writes it (transformers' tojson filter calls
 * json.dumps(x, ensure_ascii=False, indent=None, separators=None,
 * sort_keys=False)): ", " and ": " on one line, "," and ": " when indented,
 * float repr digits, NaN/Infinity, only the mandatory escapes. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "chat/interp.h"
#include "chat/ustr.h"

#define JSON_MAX_DEPTH 512 /* nesting of context values and of dumped values */

static int from_json(interp *ip, const json_t *j, jv *out, int depth) {
    if (depth > JSON_MAX_DEPTH) return ip_fail(ip, "context JSON nested too deeply");
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        const char *key;
        size_t key_len;
        json_t *val;
        if (jv_new_dict(ip, JV_DICT, out)) return -1;
        /* a JSON object's keys are unique: appending keeps this linear in
         * the number of keys (an 8 MiB request holds 600k) */
        json_object_keylen_foreach((json_t *)j, key, key_len, val) {
            jv v;
            if (from_json(ip, val, &v, depth + 1) ||
                jv_dict_append(ip, out->dict, jv_string(key, key_len), v))
                return -1;
        }
        return 0;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        if (jv_new_list(ip, n, out)) return -1;
        for (size_t i = 0; i < n; i++) {
            jv v;
            if (from_json(ip, json_array_get(j, i), &v, depth + 1) ||
                jv_list_push(ip, out->list, v))
                return -1;
        }
        return 0;
    }
    case JSON_STRING: {
        const char *s = json_string_value(j);
        size_t n = json_string_length(j);
        size_t bad;
        if (!utf8_valid(s, n, &bad)) return ip_fail(ip, "context string is not valid UTF-8");
        *out = jv_string(s, n);
        return 0;
    }
    case JSON_INTEGER: *out = jv_int(json_integer_value(j)); return 0;
    case JSON_REAL: *out = jv_float(json_real_value(j)); return 0;
    case JSON_TRUE: *out = jv_bool(true); return 0;
    case JSON_FALSE: *out = jv_bool(false); return 0;
    case JSON_NULL: *out = jv_none(); return 0;
    }
    return ip_fail(ip, "unknown JSON type");
}

int jv_from_json(interp *ip, const json_t *j, jv *out) { return from_json(ip, j, out, 0); }

static int write_json_string(interp *ip, sbuf *b, jv_str s, bool ensure_ascii) {
    if (ip_append(ip, b, "\"", 1)) return -1;
    size_t run = 0;
    for (size_t i = 0; i < s.n;) {
        uint32_t cp;
        size_t k = utf8_decode(s.p + i, s.n - i, &cp);
        char esc[16];
        esc[0] = '\0';
        switch (cp) {
        case '"': strcpy(esc, "\\\""); break;
        case '\\': strcpy(esc, "\\\\"); break;
        case '\n': strcpy(esc, "\\n"); break;
        case '\r': strcpy(esc, "\\r"); break;
        case '\t': strcpy(esc, "\\t"); break;
        case '\b': strcpy(esc, "\\b"); break;
        case '\f': strcpy(esc, "\\f"); break;
        default:
            if (cp < 0x20 || (ensure_ascii && cp == 0x7F)) {
                snprintf(esc, sizeof(esc), "\\u%04x", cp);
            } else if (ensure_ascii && cp > 0x7F) {
                if (cp > 0xFFFF) {
                    uint32_t v = cp - 0x10000;
                    snprintf(esc, sizeof(esc), "\\u%04x\\u%04x", 0xD800 + (v >> 10),
                             0xDC00 + (v & 0x3FF));
                } else {
                    snprintf(esc, sizeof(esc), "\\u%04x", cp);
                }
            }
        }
        if (esc[0]) {
            if (ip_append(ip, b, s.p + i - run, run) || ip_append(ip, b, esc, strlen(esc)))
                return -1;
            run = 0;
        } else {
            run += k;
        }
        i += k;
    }
    if (ip_append(ip, b, s.p + s.n - run, run)) return -1;
    return ip_append(ip, b, "\"", 1);
}

static int write_float(interp *ip, sbuf *b, double f) {
    char num[32];
    if (isnan(f))
        strcpy(num, "NaN");
    else if (isinf(f))
        strcpy(num, f < 0 ? "-Infinity" : "Infinity");
    else
        format_float(f, num);
    return ip_append(ip, b, num, strlen(num));
}

/* A dict key as json.dumps converts it. */
static int write_key(interp *ip, sbuf *b, jv key, const json_style *st) {
    char num[32];
    switch (key.kind) {
    case JV_STRING: return write_json_string(ip, b, key.s, st->ensure_ascii);
    case JV_INT: snprintf(num, sizeof(num), "\"%" PRId64 "\"", key.i); break;
    case JV_BOOL: strcpy(num, key.b ? "\"true\"" : "\"false\""); break;
    case JV_NONE: strcpy(num, "\"null\""); break;
    case JV_FLOAT:
        return ip_append(ip, b, "\"", 1) || write_float(ip, b, key.f) || ip_append(ip, b, "\"", 1);
    default:
        return ip_fail(ip, "keys must be str, int, float, bool or None, not %s", jv_type_name(key));
    }
    return ip_append(ip, b, num, strlen(num));
}

static int newline_indent(interp *ip, sbuf *b, const json_style *st, int level) {
    if (!st->indent) return 0;
    if (ip_append(ip, b, "\n", 1)) return -1;
    size_t n = strlen(st->indent);
    for (int i = 0; i < level; i++)
        if (ip_append(ip, b, st->indent, n)) return -1;
    return 0;
}

/* Entries of D in key order (stable merge of indices). */
static int sorted_entries(interp *ip, const jv_dict *d, const jv_entry ***out) {
    const jv_entry **e = ip_alloc(ip, (d->len + 1) * sizeof(*e));
    const jv_entry **tmp = ip_alloc(ip, (d->len + 1) * sizeof(*e));
    if (!e || !tmp) return -1;
    for (size_t i = 0; i < d->len; i++) e[i] = &d->entries[i];
    for (size_t width = 1; width < d->len; width *= 2) {
        for (size_t lo = 0; lo < d->len; lo += 2 * width) {
            size_t mid = lo + width < d->len ? lo + width : d->len;
            size_t hi = lo + 2 * width < d->len ? lo + 2 * width : d->len;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                int c;
                if (jv_compare(ip, e[j]->key, e[i]->key, &c)) return -1;
                tmp[k++] = c < 0 ? e[j++] : e[i++];
            }
            while (i < mid) tmp[k++] = e[i++];
            while (j < hi) tmp[k++] = e[j++];
        }
        memcpy(e, tmp, d->len * sizeof(*e));
    }
    *out = e;
    return 0;
}

static int write_json(interp *ip, sbuf *b, jv v, const json_style *st, int level) {
    if (level > JSON_MAX_DEPTH) return ip_fail(ip, "value nested too deeply for tojson");
    switch (v.kind) {
    case JV_NONE: return ip_append(ip, b, "null", 4);
    case JV_BOOL: return v.b ? ip_append(ip, b, "true", 4) : ip_append(ip, b, "false", 5);
    case JV_INT: {
        char num[24];
        snprintf(num, sizeof(num), "%" PRId64, v.i);
        return ip_append(ip, b, num, strlen(num));
    }
    case JV_FLOAT: return write_float(ip, b, v.f);
    case JV_STRING: return write_json_string(ip, b, v.s, st->ensure_ascii);
    case JV_LIST: {
        const jv_list *l = v.list;
        if (l->lazy) return ip_fail(ip, "Object of type generator is not JSON serializable");
        if (l->len == 0) return ip_append(ip, b, "[]", 2);
        if (ip_append(ip, b, "[", 1) || newline_indent(ip, b, st, level + 1)) return -1;
        for (size_t i = 0; i < l->len; i++) {
            if (i && (ip_append(ip, b, st->item_sep.p, st->item_sep.n) ||
                      newline_indent(ip, b, st, level + 1)))
                return -1;
            if (write_json(ip, b, l->items[i], st, level + 1)) return -1;
        }
        return newline_indent(ip, b, st, level) || ip_append(ip, b, "]", 1);
    }
    case JV_DICT: {
        const jv_dict *d = v.dict;
        if (d->len == 0) return ip_append(ip, b, "{}", 2);
        const jv_entry **sorted = NULL;
        if (st->sort_keys && sorted_entries(ip, d, &sorted)) return -1;
        if (ip_append(ip, b, "{", 1) || newline_indent(ip, b, st, level + 1)) return -1;
        for (size_t i = 0; i < d->len; i++) {
            const jv_entry *e = sorted ? sorted[i] : &d->entries[i];
            if (i && (ip_append(ip, b, st->item_sep.p, st->item_sep.n) ||
                      newline_indent(ip, b, st, level + 1)))
                return -1;
            if (write_key(ip, b, e->key, st) || ip_append(ip, b, st->key_sep.p, st->key_sep.n) ||
                write_json(ip, b, e->val, st, level + 1))
                return -1;
        }
        return newline_indent(ip, b, st, level) || ip_append(ip, b, "}", 1);
    }
    default: return ip_fail(ip, "Object of type %s is not JSON serializable", jv_type_name(v));
    }
}

int jv_write_json(interp *ip, sbuf *b, jv v, const json_style *style) {
    return write_json(ip, b, v, style, 0);
}
