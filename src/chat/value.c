/* value.c - the value model: containers, truthiness, equality, ordering,
 * and Python's str() / repr() of every value (see value.h). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/interp.h"
#include "chat/ustr.h"

#define REPR_MAX_DEPTH 64 /* nesting of containers printed by str()/repr() */

bool jv_truthy(jv v) {
    switch (v.kind) {
    case JV_UNDEFINED:
    case JV_NONE: return false;
    case JV_BOOL: return v.b;
    case JV_INT: return v.i != 0;
    case JV_FLOAT: return v.f != 0.0;
    case JV_STRING: return v.s.n > 0;
    case JV_LIST: return v.list->len > 0 || v.list->lazy;
    case JV_DICT: return v.dict->len > 0;
    case JV_NAMESPACE:
    case JV_FUNC:
    case JV_LOOP: return true;
    }
    return false;
}

double jv_as_double(jv v) {
    return v.kind == JV_FLOAT  ? v.f
           : v.kind == JV_INT  ? (double)v.i
           : v.kind == JV_BOOL ? v.b
                               : 0.0;
}

/* Python ==; with IP, the items and bytes compared are charged to its
 * budget (count_work) and -1 returned when it is spent */
static int eq(interp *ip, jv a, jv b, bool *out) {
    *out = false;
    if (ip && count_work(ip, ITEM_WORK)) return -1;
    if (jv_is_number(a) && jv_is_number(b)) {
        if (a.kind != JV_FLOAT && b.kind != JV_FLOAT)
            *out = (a.kind == JV_BOOL ? a.b : a.i) == (b.kind == JV_BOOL ? b.b : b.i);
        else
            *out = jv_as_double(a) == jv_as_double(b);
        return 0;
    }
    if (a.kind != b.kind) return 0;
    switch (a.kind) {
    case JV_UNDEFINED:
    case JV_NONE: *out = true; return 0;
    case JV_STRING: /* views of one string are equal without reading it */
        if (a.s.n != b.s.n) return 0;
        if (a.s.n == 0 || a.s.p == b.s.p) {
            *out = true;
            return 0;
        }
        if (ip && count_work(ip, a.s.n)) return -1;
        *out = memcmp(a.s.p, b.s.p, a.s.n) == 0;
        return 0;
    case JV_LIST:
        if (a.list->lazy || b.list->lazy) {
            *out = a.list == b.list;
            return 0;
        }
        if (a.list->tuple != b.list->tuple || a.list->len != b.list->len) return 0;
        for (size_t i = 0; i < a.list->len; i++) {
            if (eq(ip, a.list->items[i], b.list->items[i], out)) return -1;
            if (!*out) return 0;
        }
        *out = true;
        return 0;
    case JV_DICT:
        if (a.dict->len != b.dict->len) return 0;
        for (size_t i = 0; i < a.dict->len; i++) {
            if (ip && count_work(ip, (uint64_t)b.dict->len * ITEM_WORK)) return -1;
            jv_entry *e = jv_dict_find(b.dict, a.dict->entries[i].key);
            if (!e) return 0;
            if (eq(ip, a.dict->entries[i].val, e->val, out)) return -1;
            if (!*out) return 0;
        }
        *out = true;
        return 0;
    case JV_NAMESPACE: *out = a.dict == b.dict; return 0;
    case JV_FUNC: *out = a.func == b.func; return 0;
    case JV_LOOP: *out = a.loop == b.loop; return 0;
    default: return 0;
    }
}

bool jv_eq(jv a, jv b) {
    bool r;
    eq(NULL, a, b, &r);
    return r;
}

int ip_eq(interp *ip, jv a, jv b, bool *out) { return eq(ip, a, b, out); }

const char *jv_type_name(jv v) {
    switch (v.kind) {
    case JV_UNDEFINED: return "Undefined";
    case JV_NONE: return "NoneType";
    case JV_BOOL: return "bool";
    case JV_INT: return "int";
    case JV_FLOAT: return "float";
    case JV_STRING: return "str";
    case JV_LIST: return v.list->lazy ? "generator" : v.list->tuple ? "tuple" : "list";
    case JV_DICT: return "dict";
    case JV_NAMESPACE: return "Namespace";
    case JV_FUNC: return "function";
    case JV_LOOP: return "LoopContext";
    }
    return "?";
}

jv_entry *jv_dict_find(const jv_dict *d, jv key) {
    for (size_t i = 0; i < d->len; i++)
        if (jv_eq(d->entries[i].key, key)) return &d->entries[i];
    return NULL;
}

jv_entry *jv_dict_find_str(const jv_dict *d, const char *key, size_t n) {
    for (size_t i = 0; i < d->len; i++) {
        jv k = d->entries[i].key;
        if (k.kind == JV_STRING && jv_str_eq(k.s, key, n)) return &d->entries[i];
    }
    return NULL;
}

int jv_new_list(interp *ip, size_t cap, jv *out) {
    jv_list *l = ip_alloc(ip, sizeof(jv_list));
    if (!l) return -1;
    memset(l, 0, sizeof(*l));
    if (cap) {
        if (cap > SIZE_MAX / sizeof(jv) || !(l->items = ip_alloc(ip, cap * sizeof(jv)))) {
            if (cap > SIZE_MAX / sizeof(jv)) ip_fail(ip, "list too large");
            return -1;
        }
        l->cap = cap;
    }
    *out = (jv){.kind = JV_LIST, .list = l};
    return 0;
}

int jv_list_push(interp *ip, jv_list *l, jv v) {
    if (l->len == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        if (cap > SIZE_MAX / sizeof(jv)) return ip_fail(ip, "list too large");
        jv *items = ip_alloc(ip, cap * sizeof(jv));
        if (!items) return -1;
        if (l->len) memcpy(items, l->items, l->len * sizeof(jv));
        l->items = items;
        l->cap = cap;
    }
    l->items[l->len++] = v;
    return 0;
}

int jv_new_dict(interp *ip, jv_kind kind, jv *out) {
    jv_dict *d = ip_alloc(ip, sizeof(jv_dict));
    if (!d) return -1;
    memset(d, 0, sizeof(*d));
    *out = (jv){.kind = kind, .dict = d};
    return 0;
}

int jv_dict_set(interp *ip, jv_dict *d, jv key, jv val) {
    if (count_work(ip, (uint64_t)d->len * ITEM_WORK)) return -1;
    jv_entry *e = jv_dict_find(d, key);
    if (e) {
        e->val = val;
        return 0;
    }
    return jv_dict_append(ip, d, key, val);
}

int jv_dict_append(interp *ip, jv_dict *d, jv key, jv val) {
    if (d->len == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4;
        if (cap > SIZE_MAX / sizeof(jv_entry)) return ip_fail(ip, "dict too large");
        jv_entry *entries = ip_alloc(ip, cap * sizeof(jv_entry));
        if (!entries) return -1;
        if (d->len) memcpy(entries, d->entries, d->len * sizeof(jv_entry));
        d->entries = entries;
        d->cap = cap;
    }
    d->entries[d->len++] = (jv_entry){key, val};
    return 0;
}

/* ---- str() and repr() ---- */

void format_float(double f, char buf[32]) {
    if (isnan(f)) {
        strcpy(buf, "nan");
        return;
    }
    if (isinf(f)) {
        strcpy(buf, f < 0 ? "-inf" : "inf");
        return;
    }
    if (f == 0) {
        strcpy(buf, signbit(f) ? "-0.0" : "0.0");
        return;
    }
    char tmp[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, f);
        if (strtod(tmp, NULL) == f) break;
    }
    /* tmp is [-]d[.ddd]e(+|-)xx: split into digits and decimal exponent */
    char digits[24];
    int nd = 0;
    const char *p = tmp + (tmp[0] == '-');
    for (; *p && *p != 'e'; p++)
        if (*p != '.') digits[nd++] = *p;
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    int decpt = atoi(p + 1) + 1; /* value = 0.digits * 10^decpt */
    char *o = buf;
    if (f < 0) *o++ = '-';
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            *o++ = '0', *o++ = '.';
            for (int i = 0; i < -decpt; i++) *o++ = '0';
            for (int i = 0; i < nd; i++) *o++ = digits[i];
        } else {
            for (int i = 0; i < decpt; i++) *o++ = i < nd ? digits[i] : '0';
            *o++ = '.';
            if (decpt >= nd) *o++ = '0';
            for (int i = decpt; i < nd; i++) *o++ = digits[i];
        }
        *o = '\0';
    } else {
        *o++ = digits[0];
        if (nd > 1) {
            *o++ = '.';
            for (int i = 1; i < nd; i++) *o++ = digits[i];
        }
        int e = decpt - 1;
        snprintf(o, (size_t)(buf + 32 - o), "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    }
}

/* str.isprintable() for non-ASCII code points, approximately (no Unicode
 * tables: controls, format characters, separators and private use). */
static bool printable_nonascii(uint32_t cp) {
    return !(cp <= 0xA0 || cp == 0xAD || (cp >= 0x600 && cp <= 0x605) || cp == 0x61C ||
             cp == 0x6DD || cp == 0x70F || cp == 0x1680 || cp == 0x180E ||
             (cp >= 0x2000 && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202F) ||
             (cp >= 0x205F && cp <= 0x206F) || cp == 0x3000 || (cp >= 0xD800 && cp <= 0xF8FF) ||
             cp == 0xFEFF || (cp >= 0xFFF9 && cp <= 0xFFFB) || cp == 0xFFFE || cp == 0xFFFF ||
             cp == 0xE0001 || (cp >= 0xE0020 && cp <= 0xE007F) || cp >= 0xF0000);
}

static int write_str_repr(interp *ip, sbuf *b, jv_str s) {
    bool single = s.n && memchr(s.p, '\'', s.n), dbl = s.n && memchr(s.p, '"', s.n);
    char q = single && !dbl ? '"' : '\'';
    if (ip_append(ip, b, &q, 1)) return -1;
    size_t run = 0; /* bytes [i - run, i) to copy as they are */
    for (size_t i = 0; i < s.n;) {
        uint32_t cp;
        size_t k = utf8_decode(s.p + i, s.n - i, &cp);
        char esc[12];
        esc[0] = '\0';
        if (cp == (uint32_t)q || cp == '\\')
            snprintf(esc, sizeof(esc), "\\%c", (char)cp);
        else if (cp == '\t')
            strcpy(esc, "\\t");
        else if (cp == '\n')
            strcpy(esc, "\\n");
        else if (cp == '\r')
            strcpy(esc, "\\r");
        else if (cp < 0x20 || cp == 0x7F)
            snprintf(esc, sizeof(esc), "\\x%02x", cp);
        else if (cp >= 0x80 && !printable_nonascii(cp))
            snprintf(esc, sizeof(esc),
                     cp <= 0xFF     ? "\\x%02x"
                     : cp <= 0xFFFF ? "\\u%04x"
                                    : "\\U%08x",
                     cp);
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
    return ip_append(ip, b, &q, 1);
}

static int write_value(interp *ip, sbuf *b, jv v, bool repr, int depth);

static int write_dict_body(interp *ip, sbuf *b, const jv_dict *d, int depth) {
    if (ip_append(ip, b, "{", 1)) return -1;
    for (size_t i = 0; i < d->len; i++) {
        if ((i && ip_append(ip, b, ", ", 2)) ||
            write_value(ip, b, d->entries[i].key, true, depth) || ip_append(ip, b, ": ", 2) ||
            write_value(ip, b, d->entries[i].val, true, depth))
            return -1;
    }
    return ip_append(ip, b, "}", 1);
}

static int write_value(interp *ip, sbuf *b, jv v, bool repr, int depth) {
    char num[40];
    if (depth > REPR_MAX_DEPTH) return ip_fail(ip, "value nested too deeply to print");
    switch (v.kind) {
    case JV_UNDEFINED: return repr ? ip_append(ip, b, "Undefined", 9) : 0;
    case JV_NONE: return ip_append(ip, b, "None", 4);
    case JV_BOOL: return v.b ? ip_append(ip, b, "True", 4) : ip_append(ip, b, "False", 5);
    case JV_INT:
        snprintf(num, sizeof(num), "%" PRId64, v.i);
        return ip_append(ip, b, num, strlen(num));
    case JV_FLOAT: format_float(v.f, num); return ip_append(ip, b, num, strlen(num));
    case JV_STRING: return repr ? write_str_repr(ip, b, v.s) : ip_append(ip, b, v.s.p, v.s.n);
    case JV_LIST: {
        const jv_list *l = v.list;
        if (l->lazy) return ip_append(ip, b, "<generator object>", 18);
        if (ip_append(ip, b, l->tuple ? "(" : "[", 1)) return -1;
        for (size_t i = 0; i < l->len; i++)
            if ((i && ip_append(ip, b, ", ", 2)) ||
                write_value(ip, b, l->items[i], true, depth + 1))
                return -1;
        if (l->tuple && l->len == 1 && ip_append(ip, b, ",", 1)) return -1;
        return ip_append(ip, b, l->tuple ? ")" : "]", 1);
    }
    case JV_DICT: return write_dict_body(ip, b, v.dict, depth + 1);
    case JV_NAMESPACE:
        if (ip_append(ip, b, "<Namespace ", 11) || write_dict_body(ip, b, v.dict, depth + 1))
            return -1;
        return ip_append(ip, b, ">", 1);
    case JV_FUNC:
        snprintf(num, sizeof(num), "<function %.24s>", v.func->name);
        return ip_append(ip, b, num, strlen(num));
    case JV_LOOP:
        snprintf(num, sizeof(num), "<LoopContext %zu/%zu>", v.loop->index0 + 1, v.loop->items->len);
        return ip_append(ip, b, num, strlen(num));
    }
    return 0;
}

int jv_write_str(interp *ip, sbuf *b, jv v) { return write_value(ip, b, v, false, 0); }
int jv_write_repr(interp *ip, sbuf *b, jv v) { return write_value(ip, b, v, true, 0); }

int jv_to_string(interp *ip, jv v, jv *out) {
    if (v.kind == JV_STRING) {
        *out = v;
        return 0;
    }
    sbuf b = ip_capture(ip);
    if (jv_write_str(ip, &b, v)) {
        sb_free(&b);
        return -1;
    }
    return ip_str_from_sb(ip, &b, out);
}

/* ---- ordering ---- */

int jv_compare(interp *ip, jv a, jv b, int *cmp) {
    bool strings = a.kind == JV_STRING && b.kind == JV_STRING, same = strings && a.s.p == b.s.p;
    if (count_work(ip, ITEM_WORK + (strings && !same ? (a.s.n < b.s.n ? a.s.n : b.s.n) : 0))) return -1;
    if (jv_is_number(a) && jv_is_number(b)) {
        if (a.kind != JV_FLOAT && b.kind != JV_FLOAT) {
            int64_t x = a.kind == JV_BOOL ? a.b : a.i, y = b.kind == JV_BOOL ? b.b : b.i;
            *cmp = (x > y) - (x < y);
        } else {
            double x = jv_as_double(a), y = jv_as_double(b);
            *cmp = (x > y) - (x < y);
        }
        return 0;
    }
    if (a.kind == JV_STRING && b.kind == JV_STRING) {
        size_t n = a.s.n < b.s.n ? a.s.n : b.s.n;
        int c = n && !same ? memcmp(a.s.p, b.s.p, n) : 0;
        *cmp = c ? (c > 0) - (c < 0) : (a.s.n > b.s.n) - (a.s.n < b.s.n);
        return 0;
    }
    if (a.kind == JV_LIST && b.kind == JV_LIST && a.list->tuple == b.list->tuple && !a.list->lazy &&
        !b.list->lazy) {
        size_t n = a.list->len < b.list->len ? a.list->len : b.list->len;
        for (size_t i = 0; i < n; i++)
            if (!jv_eq(a.list->items[i], b.list->items[i]))
                return jv_compare(ip, a.list->items[i], b.list->items[i], cmp);
        *cmp = (a.list->len > b.list->len) - (a.list->len < b.list->len);
        return 0;
    }
    return ip_fail(ip, "'<' not supported between instances of '%s' and '%s'", jv_type_name(a),
                   jv_type_name(b));
}
