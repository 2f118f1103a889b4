/* filters_seq.c - filters over sequences and mappings: length, first, last,
 * list, join, reverse, sort, unique, dictsort, items, map, select/reject,
 * selectattr/rejectattr, sum, min, max, batch. Where Jinja2 returns a
 * generator (map, select, reject, selectattr, rejectattr, unique, items,
 * batch, reverse) the result is a list marked lazy, which behaves like one:
 * always true, no length, no indexing (each is fully computed, though, and
 * may be iterated more than once). */
#include <string.h>

#include "chat/interp.h"
#include "chat/ustr.h"

int iterate(interp *ip, jv v, jv_list **items) {
    jv out;
    switch (v.kind) {
    case JV_LIST: *items = v.list; return 0;
    case JV_UNDEFINED:
        if (jv_new_list(ip, 0, &out)) return -1;
        break;
    case JV_DICT:
        if (jv_new_list(ip, v.dict->len, &out)) return -1;
        for (size_t i = 0; i < v.dict->len; i++)
            if (jv_list_push(ip, out.list, v.dict->entries[i].key)) return -1;
        break;
    case JV_STRING:
        if (jv_new_list(ip, ustr_len(v.s), &out)) return -1;
        for (size_t i = 0; i < v.s.n;) {
            size_t k = ustr_offset((jv_str){v.s.p + i, v.s.n - i}, 1);
            if (jv_list_push(ip, out.list, jv_string(v.s.p + i, k))) return -1;
            i += k;
        }
        break;
    default: return ip_fail(ip, "'%s' object is not iterable", jv_type_name(v));
    }
    *items = out.list;
    return 0;
}

static bool absent(jv v) { return v.kind == JV_UNDEFINED; }

/* Jinja's make_attrgetter: "a.b.0" looked up item-first on ITEM; DFLT (if
 * given) replaces an undefined result; LOWER folds strings for comparison. */
static int attr_path(interp *ip, jv item, jv attr, jv dflt, bool lower, jv *out) {
    jv cur = item;
    if (attr.kind == JV_INT) {
        if (get_item(ip, cur, attr, NULL, &cur)) return -1;
    } else if (attr.kind == JV_STRING) {
        jv_str path = attr.s;
        size_t start = 0;
        while (start <= path.n) {
            const char *dot = memchr(path.p + start, '.', path.n - start);
            size_t end = dot ? (size_t)(dot - path.p) : path.n;
            jv_str part = {path.p + start, end - start};
            bool digits = part.n > 0;
            int64_t index = 0;
            for (size_t i = 0; i < part.n && digits; i++) {
                digits = ascii_digit(part.p[i]) && index < INT64_MAX / 10;
                index = index * 10 + (part.p[i] - '0');
            }
            jv key = digits ? jv_int(index) : jv_string(part.p, part.n);
            if (get_item(ip, cur, key, NULL, &cur)) return -1;
            start = end + 1;
        }
    } else if (!absent(attr) && attr.kind != JV_NONE) {
        return ip_fail(ip, "attribute must be a string or an integer");
    }
    if (cur.kind == JV_UNDEFINED && !absent(dflt)) cur = dflt;
    if (lower && cur.kind == JV_STRING) return str_upper_lower(ip, cur.s, false, out);
    *out = cur;
    return 0;
}

/* Stable merge sort of ITEMS by KEYS (both N long). */
static int sort_by_keys(interp *ip, jv *items, jv *keys, size_t n, bool reverse) {
    jv *ti = ip_alloc(ip, (n + 1) * sizeof(jv)), *tk = ip_alloc(ip, (n + 1) * sizeof(jv));
    if (!ti || !tk) return -1;
    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n,
                   hi = lo + 2 * width < n ? lo + 2 * width : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                int c;
                if (jv_compare(ip, keys[j], keys[i], &c)) return -1;
                bool right_first = reverse ? c > 0 : c < 0;
                size_t from = right_first ? j++ : i++;
                ti[k] = items[from], tk[k++] = keys[from];
            }
            for (; i < mid; i++, k++) ti[k] = items[i], tk[k] = keys[i];
            for (; j < hi; j++, k++) ti[k] = items[j], tk[k] = keys[j];
        }
        memcpy(items, ti, n * sizeof(jv));
        memcpy(keys, tk, n * sizeof(jv));
    }
    return 0;
}

/* A plain (not lazy, not tuple) list of SRC's items. */
static int copy_list(interp *ip, const jv_list *src, jv *out) {
    if (jv_new_list(ip, src->len, out)) return -1;
    if (src->len) memcpy(out->list->items, src->items, src->len * sizeof(jv));
    out->list->len = src->len;
    return 0;
}

static int f_length(interp *ip, jv in, const jv_args *args, jv *out) {
    switch (in.kind) {
    case JV_UNDEFINED: *out = jv_int(0); return 0;
    case JV_STRING: *out = jv_int((int64_t)ustr_len(in.s)); return 0;
    case JV_LIST:
        if (in.list->lazy) return ip_fail(ip, "object of type 'generator' has no len()");
        *out = jv_int((int64_t)in.list->len);
        return 0;
    case JV_DICT: *out = jv_int((int64_t)in.dict->len); return 0;
    default: return ip_fail(ip, "object of type '%s' has no len()", jv_type_name(in));
    }
}

static int f_list(interp *ip, jv in, const jv_args *args, jv *out) {
    jv_list *items;
    return iterate(ip, in, &items) || copy_list(ip, items, out);
}

static int first_last(interp *ip, jv in, jv *out, bool last) {
    jv_list *items;
    if (last && in.kind == JV_LIST && in.list->lazy)
        return ip_fail(ip, "'generator' object is not reversible");
    if (iterate(ip, in, &items)) return -1;
    *out = items->len ? items->items[last ? items->len - 1 : 0] : jv_undefined(NULL);
    return 0;
}
static int f_first(interp *ip, jv in, const jv_args *a, jv *o) {
    return first_last(ip, in, o, false);
}
static int f_last(interp *ip, jv in, const jv_args *a, jv *o) {
    return first_last(ip, in, o, true);
}

static int f_join(interp *ip, jv in, const jv_args *args, jv *out) {
    static const char *const names[] = {"d", "attribute"};
    jv v[2], sep;
    jv_list *items;
    if (bind_args(ip, "join", args, names, 2, 0, v) || iterate(ip, in, &items)) return -1;
    if (absent(v[0]))
        sep = jv_string("", 0);
    else if (jv_to_string(ip, v[0], &sep))
        return -1;
    sbuf b = ip_capture(ip);
    for (size_t i = 0; i < items->len; i++) {
        jv it = items->items[i];
        if ((!absent(v[1]) && attr_path(ip, it, v[1], jv_undefined(NULL), false, &it)) ||
            (i && ip_append(ip, &b, sep.s.p, sep.s.n)) || jv_write_str(ip, &b, it)) {
            sb_free(&b);
            return -1;
        }
    }
    return ip_str_from_sb(ip, &b, out);
}

static int f_reverse(interp *ip, jv in, const jv_args *args, jv *out) {
    jv_list *items;
    if (iterate(ip, in, &items)) return -1;
    if (in.kind == JV_STRING) {
        sbuf b = ip_capture(ip);
        for (size_t i = items->len; i-- > 0;) {
            if (ip_append(ip, &b, items->items[i].s.p, items->items[i].s.n)) {
                sb_free(&b);
                return -1;
            }
        }
        return ip_str_from_sb(ip, &b, out);
    }
    if (jv_new_list(ip, items->len, out)) return -1;
    out->list->lazy = !(in.kind == JV_LIST && in.list->lazy); /* reversed() is an iterator */
    for (size_t i = items->len; i-- > 0;)
        if (jv_list_push(ip, out->list, items->items[i])) return -1;
    return 0;
}

/* The keys of ITEMS under ATTR, lower-cased unless CASE_SENSITIVE. */
static int keys_of(interp *ip, const jv_list *items, jv attr, bool case_sensitive, jv **keys) {
    *keys = ip_alloc(ip, (items->len + 1) * sizeof(jv));
    if (!*keys) return -1;
    for (size_t i = 0; i < items->len; i++)
        if (attr_path(ip, items->items[i], attr, jv_undefined(NULL), !case_sensitive, &(*keys)[i]))
            return -1;
    return 0;
}

static int f_sort(interp *ip, jv in, const jv_args *args, jv *out) {
    static const char *const names[] = {"reverse", "case_sensitive", "attribute"};
    jv v[3], *keys;
    jv_list *items;
    if (bind_args(ip, "sort", args, names, 3, 0, v) || iterate(ip, in, &items) ||
        copy_list(ip, items, out) || keys_of(ip, out->list, v[2], jv_truthy(v[1]), &keys))
        return -1;
    return sort_by_keys(ip, out->list->items, keys, out->list->len, jv_truthy(v[0]));
}

static int f_dictsort(interp *ip, jv in, const jv_args *args, jv *out) {
    static const char *const names[] = {"case_sensitive", "by", "reverse"};
    jv v[3], *keys;
    if (bind_args(ip, "dictsort", args, names, 3, 0, v)) return -1;
    if (in.kind != JV_DICT) return ip_fail(ip, "dictsort() expects a mapping");
    bool by_value = v[1].kind == JV_STRING && JV_STR_IS(v[1].s, "value");
    if (!absent(v[1]) && !by_value && !(v[1].kind == JV_STRING && JV_STR_IS(v[1].s, "key")))
        return ip_fail(ip, "You can only sort by either \"key\" or \"value\"");
    const jv_dict *d = in.dict;
    if (jv_new_list(ip, d->len, out) || !(keys = ip_alloc(ip, (d->len + 1) * sizeof(jv))))
        return -1;
    for (size_t i = 0; i < d->len; i++) {
        jv pair, key = by_value ? d->entries[i].val : d->entries[i].key;
        if (jv_new_list(ip, 2, &pair)) return -1;
        pair.list->tuple = true;
        jv_list_push(ip, pair.list, d->entries[i].key);
        jv_list_push(ip, pair.list, d->entries[i].val);
        if (jv_list_push(ip, out->list, pair)) return -1;
        if (!jv_truthy(v[0]) && key.kind == JV_STRING && str_upper_lower(ip, key.s, false, &key))
            return -1;
        keys[i] = key;
    }
    return sort_by_keys(ip, out->list->items, keys, d->len, jv_truthy(v[2]));
}

static int f_unique(interp *ip, jv in, const jv_args *args, jv *out) {
    static const char *const names[] = {"case_sensitive", "attribute"};
    jv v[2], *keys;
    jv_list *items;
    if (bind_args(ip, "unique", args, names, 2, 0, v) || iterate(ip, in, &items) ||
        keys_of(ip, items, v[1], jv_truthy(v[0]), &keys) || jv_new_list(ip, 0, out))
        return -1;
    out->list->lazy = true;
    for (size_t i = 0; i < items->len; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++) /* quadratic: each comparison is charged */
            if (ip_eq(ip, keys[i], keys[j], &seen)) return -1;
        if (!seen && jv_list_push(ip, out->list, items->items[i])) return -1;
    }
    return 0;
}

static int min_max(interp *ip, jv in, const jv_args *args, jv *out, bool max) {
    static const char *const names[] = {"case_sensitive", "attribute"};
    jv v[2], *keys;
    jv_list *items;
    if (bind_args(ip, max ? "max" : "min", args, names, 2, 0, v) || iterate(ip, in, &items) ||
        keys_of(ip, items, v[1], jv_truthy(v[0]), &keys))
        return -1;
    *out = jv_undefined(NULL);
    size_t best = 0;
    for (size_t i = 1; i < items->len; i++) {
        int c;
        if (jv_compare(ip, keys[i], keys[best], &c)) return -1;
        if (max ? c > 0 : c < 0) best = i;
    }
    if (items->len) *out = items->items[best];
    return 0;
}
static int f_min(interp *ip, jv in, const jv_args *a, jv *o) {
    return min_max(ip, in, a, o, false);
}
static int f_max(interp *ip, jv in, const jv_args *a, jv *o) { return min_max(ip, in, a, o, true); }

static int f_sum(interp *ip, jv in, const jv_args *args, jv *out) {
    static const char *const names[] = {"attribute", "start"};
    jv v[2];
    jv_list *items;
    if (bind_args(ip, "sum", args, names, 2, 0, v) || iterate(ip, in, &items)) return -1;
    jv total = absent(v[1]) ? jv_int(0) : v[1];
    for (size_t i = 0; i < items->len; i++) {
        jv it = items->items[i];
        if ((!absent(v[0]) && attr_path(ip, it, v[0], jv_undefined(NULL), false, &it)) ||
            eval_binop(ip, OP_ADD, total, it, &total))
            return -1;
    }
    *out = total;
    return 0;
}

static int f_items(interp *ip, jv in, const jv_args *args, jv *out) {
    jv fn;
    jv_args none = {0};
    if (in.kind == JV_UNDEFINED) {
        if (jv_new_list(ip, 0, out)) return -1;
    } else if (in.kind != JV_DICT) {
        return ip_fail(ip, "Can only get item pairs from a mapping.");
    } else if (find_method(ip, in, (jv_str){"items", 5}, &fn) < 0 ||
               call_value(ip, fn, &none, out)) {
        return -1;
    }
    out->list->lazy = true;
    return 0;
}

static int f_batch(interp *ip, jv in, const jv_args *args, jv *out) {
    static const char *const names[] = {"linecount", "fill_with"};
    jv v[2], row = {0};
    jv_list *items;
    if (bind_args(ip, "batch", args, names, 2, 1, v) || iterate(ip, in, &items)) return -1;
    if (v[0].kind != JV_INT || v[0].i <= 0)
        return ip_fail(ip, "batch() linecount must be positive");
    size_t per = (size_t)v[0].i;
    if (jv_new_list(ip, 0, out)) return -1;
    out->list->lazy = true;
    for (size_t i = 0; i < items->len; i++) {
        if (i % per == 0 && (jv_new_list(ip, 0, &row) || jv_list_push(ip, out->list, row)))
            return -1;
        if (jv_list_push(ip, row.list, items->items[i])) return -1;
    }
    if (row.list && !absent(v[1]) && v[1].kind != JV_NONE)
        while (row.list->len < per)
            if (jv_list_push(ip, row.list, v[1])) return -1;
    return 0;
}

/* The arguments after the first SKIP positionals, for a nested filter or test. */
static jv_args rest_args(const jv_args *a, size_t skip) {
    jv_args r = *a;
    const size_t n = skip < a->n_pos ? skip : a->n_pos;
    if (n) { /* no arithmetic on the NULL of an empty list (UB, found by fuzz_jinja) */
        r.pos += n;
        r.n_pos -= n;
    }
    return r;
}

static int f_map(interp *ip, jv in, const jv_args *args, jv *out) {
    jv_list *items;
    jv attr = jv_undefined(NULL), dflt = jv_undefined(NULL);
    if (iterate(ip, in, &items) || jv_new_list(ip, items->len, out)) return -1;
    out->list->lazy = true;
    if (args->n_pos == 0) {
        for (size_t k = 0; k < args->n_kw; k++) {
            if (JV_STR_IS(args->kw_names[k], "attribute"))
                attr = args->kw[k];
            else if (JV_STR_IS(args->kw_names[k], "default"))
                dflt = args->kw[k];
            else
                return ip_fail(ip, "map(): unexpected keyword argument");
        }
        if (absent(attr)) return ip_fail(ip, "map requires a filter argument");
    } else if (args->pos[0].kind != JV_STRING) {
        return ip_fail(ip, "map(): the filter name must be a string");
    }
    jv_args rest = rest_args(args, 1);
    for (size_t i = 0; i < items->len; i++) {
        jv r;
        if (args->n_pos == 0 ? attr_path(ip, items->items[i], attr, dflt, false, &r)
                             : apply_filter(ip, args->pos[0].s, items->items[i], &rest, &r))
            return -1;
        if (jv_list_push(ip, out->list, r)) return -1;
    }
    return 0;
}

/* select / reject / selectattr / rejectattr */
static int select_any(interp *ip, jv in, const jv_args *args, jv *out, bool keep, bool by_attr) {
    jv_list *items;
    size_t off = by_attr ? 1 : 0;
    if (by_attr && args->n_pos < 1) return ip_fail(ip, "Missing parameter for attribute name");
    if (args->n_pos > off && args->pos[off].kind != JV_STRING)
        return ip_fail(ip, "the test name must be a string");
    if (iterate(ip, in, &items) || jv_new_list(ip, 0, out)) return -1;
    out->list->lazy = true;
    jv_args rest = rest_args(args, off + 1);
    for (size_t i = 0; i < items->len; i++) {
        jv v = items->items[i];
        bool pass;
        if (by_attr && attr_path(ip, v, args->pos[0], jv_undefined(NULL), false, &v)) return -1;
        if (args->n_pos > off) {
            if (apply_test(ip, args->pos[off].s, v, &rest, &pass)) return -1;
        } else {
            pass = jv_truthy(v);
        }
        if (pass == keep && jv_list_push(ip, out->list, items->items[i])) return -1;
    }
    return 0;
}
static int f_select(interp *ip, jv in, const jv_args *a, jv *o) {
    return select_any(ip, in, a, o, true, false);
}
static int f_reject(interp *ip, jv in, const jv_args *a, jv *o) {
    return select_any(ip, in, a, o, false, false);
}
static int f_selectattr(interp *ip, jv in, const jv_args *a, jv *o) {
    return select_any(ip, in, a, o, true, true);
}
static int f_rejectattr(interp *ip, jv in, const jv_args *a, jv *o) {
    return select_any(ip, in, a, o, false, true);
}

typedef struct seq_filter_def {
    const char *name;
    filter_fn fn;
} seq_filter_def;

static const seq_filter_def seq_filters[] = {
    {"length", f_length},
    {"count", f_length},
    {"list", f_list},
    {"first", f_first},
    {"last", f_last},
    {"join", f_join},
    {"reverse", f_reverse},
    {"sort", f_sort},
    {"dictsort", f_dictsort},
    {"unique", f_unique},
    {"min", f_min},
    {"max", f_max},
    {"sum", f_sum},
    {"items", f_items},
    {"batch", f_batch},
    {"map", f_map},
    {"select", f_select},
    {"reject", f_reject},
    {"selectattr", f_selectattr},
    {"rejectattr", f_rejectattr},
    {NULL, NULL},
};

filter_fn find_seq_filter(jv_str name) {
    for (const seq_filter_def *f = seq_filters; f->name; f++)
        if (jv_str_eq(name, f->name, strlen(f->name))) return f->fn;
    return NULL;
}
