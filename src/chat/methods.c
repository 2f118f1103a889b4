/* methods.c - the Python methods templates call on strings, dicts and lists
 * ("x".strip(), d.get(k), d.items(), ...) and the global functions (range,
 * namespace, dict, raise_exception, strftime_now), with Python's semantics
 * on UTF-8 text (see ustr.h for what is ASCII-only). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "chat/interp.h"
#include "chat/ustr.h"

#define RANGE_MAX 100000 /* items; Jinja2's sandbox refuses larger ranges too */

typedef struct method_def {
    const char *name;
    builtin_fn fn;
} method_def;

static int need_string(interp *ip, const char *fname, jv v, jv_str *out) {
    if (v.kind != JV_STRING)
        return ip_fail(ip, "%s() argument must be str, not %s", fname, jv_type_name(v));
    *out = v.s;
    return 0;
}

static int opt_int(interp *ip, const char *fname, jv v, int64_t dflt, int64_t *out) {
    if (v.kind == JV_UNDEFINED || v.kind == JV_NONE)
        *out = dflt;
    else if (v.kind == JV_INT)
        *out = v.i;
    else if (v.kind == JV_BOOL)
        *out = v.b;
    else
        return ip_fail(ip, "%s() expects an integer, not %s", fname, jv_type_name(v));
    return 0;
}

/* ---- helpers shared with filters ---- */

int str_upper_lower(interp *ip, jv_str s, bool upper, jv *out) {
    char *p = ip_alloc(ip, s.n + 1);
    if (!p) return -1;
    for (size_t i = 0; i < s.n; i++) p[i] = upper ? ascii_upper(s.p[i]) : ascii_lower(s.p[i]);
    p[s.n] = '\0';
    *out = jv_string(p, s.n);
    return 0;
}

int str_replace(interp *ip, jv_str s, jv_str old, jv_str new_, int64_t count, jv *out) {
    sbuf b = ip_capture(ip);
    size_t pos = 0;
    int64_t done = 0;
    int rc = 0;
    if (old.n == 0) { /* Python inserts NEW before every character and at the end */
        while (rc == 0 && pos <= s.n && (count < 0 || done < count)) {
            rc = ip_append(ip, &b, new_.p, new_.n);
            done++;
            if (pos == s.n) {
                pos++;
                break;
            }
            size_t k = ustr_offset((jv_str){s.p + pos, s.n - pos}, 1);
            if (rc == 0) rc = ip_append(ip, &b, s.p + pos, k);
            pos += k;
        }
        if (rc == 0 && pos < s.n) rc = ip_append(ip, &b, s.p + pos, s.n - pos);
    } else {
        ptrdiff_t hit;
        while (rc == 0 && (count < 0 || done < count) && (hit = ustr_find(s, old, pos)) >= 0) {
            rc = ip_append(ip, &b, s.p + pos, (size_t)hit - pos) ||
                 ip_append(ip, &b, new_.p, new_.n);
            pos = (size_t)hit + old.n;
            done++;
        }
        if (rc == 0) rc = ip_append(ip, &b, s.p + pos, s.n - pos);
    }
    if (rc) {
        sb_free(&b);
        return -1;
    }
    return ip_str_from_sb(ip, &b, out);
}

static int push_str(interp *ip, jv_list *l, const char *p, size_t n) {
    return jv_list_push(ip, l, jv_string(p, n));
}

/* str.split(sep, maxsplit); SEP NULL splits at runs of whitespace. */
static int str_split(interp *ip, jv_str s, const jv_str *sep, int64_t maxsplit, jv *out) {
    if (jv_new_list(ip, 0, out)) return -1;
    if (sep && sep->n == 0) return ip_fail(ip, "empty separator");
    size_t pos = 0;
    int64_t splits = 0;
    if (sep) {
        ptrdiff_t hit;
        while ((maxsplit < 0 || splits < maxsplit) && (hit = ustr_find(s, *sep, pos)) >= 0) {
            if (push_str(ip, out->list, s.p + pos, (size_t)hit - pos)) return -1;
            pos = (size_t)hit + sep->n;
            splits++;
        }
        return push_str(ip, out->list, s.p + pos, s.n - pos);
    }
    for (;;) {
        pos += ustr_lead_space(s.p + pos, s.n - pos);
        if (pos >= s.n) return 0;
        if (maxsplit >= 0 && splits >= maxsplit)
            return push_str(ip, out->list, s.p + pos, s.n - pos);
        size_t end = pos;
        while (end < s.n) {
            uint32_t cp;
            size_t k = utf8_decode(s.p + end, s.n - end, &cp);
            if (py_isspace(cp)) break;
            end += k;
        }
        if (push_str(ip, out->list, s.p + pos, end - pos)) return -1;
        pos = end;
        splits++;
    }
}

/* str.rsplit: the pieces are found from the right, returned left to right. */
static int str_rsplit(interp *ip, jv_str s, const jv_str *sep, int64_t maxsplit, jv *out) {
    if (maxsplit < 0) return str_split(ip, s, sep, -1, out);
    if (sep && sep->n == 0) return ip_fail(ip, "empty separator");
    jv rev;
    if (jv_new_list(ip, 0, &rev)) return -1;
    size_t end = s.n;
    for (int64_t splits = 0;; splits++) {
        if (!sep) end -= ustr_trail_space(s.p, end);
        if (!sep && end == 0) break;
        if (splits == maxsplit) {
            if (push_str(ip, rev.list, s.p, end)) return -1;
            break;
        }
        size_t start;
        if (sep) {
            ptrdiff_t hit = ustr_rfind((jv_str){s.p, end}, *sep);
            if (hit < 0) {
                if (push_str(ip, rev.list, s.p, end)) return -1;
                break;
            }
            start = (size_t)hit + sep->n;
            if (push_str(ip, rev.list, s.p + start, end - start)) return -1;
            end = (size_t)hit;
        } else {
            start = end;
            while (start > 0 && !ustr_trail_space(s.p, start)) {
                start--;
                while (start > 0 && ((unsigned char)s.p[start] & 0xC0) == 0x80) start--;
            }
            if (push_str(ip, rev.list, s.p + start, end - start)) return -1;
            end = start;
        }
    }
    if (jv_new_list(ip, rev.list->len, out)) return -1;
    for (size_t i = rev.list->len; i-- > 0;)
        if (jv_list_push(ip, out->list, rev.list->items[i])) return -1;
    return 0;
}

/* ---- string methods ---- */

static int m_strip_any(interp *ip, jv self, const jv_args *args, jv *out, bool l, bool r,
                       const char *fname) {
    static const char *const names[] = {"chars"};
    jv chars;
    if (bind_args(ip, fname, args, names, 1, 0, &chars)) return -1;
    if (chars.kind == JV_UNDEFINED || chars.kind == JV_NONE) {
        jv_str s = ustr_strip(self.s, NULL, l, r);
        *out = jv_string(s.p, s.n);
        return 0;
    }
    jv_str set;
    if (need_string(ip, fname, chars, &set)) return -1;
    jv_str s = ustr_strip(self.s, &set, l, r);
    *out = jv_string(s.p, s.n);
    return 0;
}
static int m_strip(interp *ip, jv self, const jv_args *a, jv *out) {
    return m_strip_any(ip, self, a, out, true, true, "strip");
}
static int m_lstrip(interp *ip, jv self, const jv_args *a, jv *out) {
    return m_strip_any(ip, self, a, out, true, false, "lstrip");
}
static int m_rstrip(interp *ip, jv self, const jv_args *a, jv *out) {
    return m_strip_any(ip, self, a, out, false, true, "rstrip");
}

static int split_any(interp *ip, jv self, const jv_args *args, jv *out, bool right) {
    static const char *const names[] = {"sep", "maxsplit"};
    jv v[2];
    int64_t maxsplit = -1;
    jv_str sep;
    const char *fname = right ? "rsplit" : "split";
    if (bind_args(ip, fname, args, names, 2, 0, v) || opt_int(ip, fname, v[1], -1, &maxsplit))
        return -1;
    bool has_sep = v[0].kind != JV_UNDEFINED && v[0].kind != JV_NONE;
    if (has_sep && need_string(ip, fname, v[0], &sep)) return -1;
    return right ? str_rsplit(ip, self.s, has_sep ? &sep : NULL, maxsplit, out)
                 : str_split(ip, self.s, has_sep ? &sep : NULL, maxsplit, out);
}
static int m_split(interp *ip, jv self, const jv_args *a, jv *out) {
    return split_any(ip, self, a, out, false);
}
static int m_rsplit(interp *ip, jv self, const jv_args *a, jv *out) {
    return split_any(ip, self, a, out, true);
}

/* Length of the line break at P (0 if none): \n \r \r\n \v \f \x1c-\x1e \x85 \u2028 \u2029. */
static size_t line_break(const char *p, size_t n) {
    uint32_t cp;
    size_t k = utf8_decode(p, n, &cp);
    if (cp == '\r') return n > 1 && p[1] == '\n' ? 2 : 1;
    if (cp == '\n' || cp == 0x0B || cp == 0x0C || (cp >= 0x1C && cp <= 0x1E) || cp == 0x85 ||
        cp == 0x2028 || cp == 0x2029)
        return k;
    return 0;
}

int str_splitlines(interp *ip, jv_str s, bool keepends, jv *out) {
    if (jv_new_list(ip, 0, out)) return -1;
    size_t start = 0, i = 0;
    while (i < s.n) {
        size_t br = line_break(s.p + i, s.n - i);
        if (!br) {
            i += ustr_offset((jv_str){s.p + i, s.n - i}, 1);
            continue;
        }
        if (push_str(ip, out->list, s.p + start, i - start + (keepends ? br : 0))) return -1;
        i += br;
        start = i;
    }
    if (start < s.n && push_str(ip, out->list, s.p + start, s.n - start)) return -1;
    return 0;
}

static int m_splitlines(interp *ip, jv self, const jv_args *args, jv *out) {
    static const char *const names[] = {"keepends"};
    jv keep;
    return bind_args(ip, "splitlines", args, names, 1, 0, &keep) ||
           str_splitlines(ip, self.s, jv_truthy(keep), out);
}

static int affix_test(interp *ip, jv self, const jv_args *args, jv *out, bool prefix) {
    const char *fname = prefix ? "startswith" : "endswith";
    if (args->n_pos != 1 || args->n_kw)
        return ip_fail(ip, "%s() takes exactly one argument", fname);
    jv arg = args->pos[0];
    const jv *cands = &arg;
    size_t n = 1;
    if (arg.kind == JV_LIST && arg.list->tuple) cands = arg.list->items, n = arg.list->len;
    for (size_t i = 0; i < n; i++) {
        jv_str a;
        if (need_string(ip, fname, cands[i], &a)) return -1;
        if (prefix ? ustr_starts_with(self.s, a) : ustr_ends_with(self.s, a)) {
            *out = jv_bool(true);
            return 0;
        }
    }
    *out = jv_bool(false);
    return 0;
}
static int m_startswith(interp *ip, jv self, const jv_args *a, jv *out) {
    return affix_test(ip, self, a, out, true);
}
static int m_endswith(interp *ip, jv self, const jv_args *a, jv *out) {
    return affix_test(ip, self, a, out, false);
}

static int no_args(interp *ip, const char *fname, const jv_args *args) {
    if (args->n_pos || args->n_kw) return ip_fail(ip, "%s() takes no arguments", fname);
    return 0;
}

static int m_upper(interp *ip, jv self, const jv_args *a, jv *out) {
    return no_args(ip, "upper", a) || str_upper_lower(ip, self.s, true, out);
}
static int m_lower(interp *ip, jv self, const jv_args *a, jv *out) {
    return no_args(ip, "lower", a) || str_upper_lower(ip, self.s, false, out);
}

/* str.title(): a letter after a cased letter is lowered, any other uppercased
 * (non-ASCII code points count as cased letters and are kept). */
static int m_title(interp *ip, jv self, const jv_args *a, jv *out) {
    if (no_args(ip, "title", a) || str_upper_lower(ip, self.s, false, out)) return -1;
    char *p = (char *)out->s.p;
    bool prev_cased = false;
    for (size_t i = 0; i < out->s.n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (ascii_alpha((char)c)) {
            if (!prev_cased) p[i] = ascii_upper((char)c);
            prev_cased = true;
        } else {
            prev_cased = c >= 0x80;
        }
    }
    return 0;
}

static int m_capitalize(interp *ip, jv self, const jv_args *a, jv *out) {
    if (no_args(ip, "capitalize", a) || str_upper_lower(ip, self.s, false, out)) return -1;
    if (out->s.n) ((char *)out->s.p)[0] = ascii_upper(out->s.p[0]);
    return 0;
}

static int m_replace(interp *ip, jv self, const jv_args *args, jv *out) {
    static const char *const names[] = {"old", "new", "count"};
    jv v[3];
    jv_str old, new_;
    int64_t count = -1;
    if (bind_args(ip, "replace", args, names, 3, 2, v) || need_string(ip, "replace", v[0], &old) ||
        need_string(ip, "replace", v[1], &new_) || opt_int(ip, "replace", v[2], -1, &count))
        return -1;
    return str_replace(ip, self.s, old, new_, count, out);
}

static int find_any(interp *ip, jv self, const jv_args *args, jv *out, int mode) {
    static const char *const fnames[] = {"find", "rfind", "count", "index"};
    static const char *const names[] = {"sub"};
    jv v;
    jv_str sub;
    if (bind_args(ip, fnames[mode], args, names, 1, 1, &v) ||
        need_string(ip, fnames[mode], v, &sub))
        return -1;
    if (mode == 2) {
        int64_t n = 0;
        if (sub.n == 0) {
            n = (int64_t)ustr_len(self.s) + 1;
        } else {
            for (ptrdiff_t hit = 0; (hit = ustr_find(self.s, sub, (size_t)hit)) >= 0; hit += sub.n)
                n++;
        }
        *out = jv_int(n);
        return 0;
    }
    ptrdiff_t hit = mode == 1 ? ustr_rfind(self.s, sub) : ustr_find(self.s, sub, 0);
    if (hit < 0 && mode == 3) return ip_fail(ip, "substring not found");
    *out = jv_int(hit < 0 ? -1 : (int64_t)ustr_len((jv_str){self.s.p, (size_t)hit}));
    return 0;
}
static int m_find(interp *ip, jv self, const jv_args *a, jv *out) {
    return find_any(ip, self, a, out, 0);
}
static int m_rfind(interp *ip, jv self, const jv_args *a, jv *out) {
    return find_any(ip, self, a, out, 1);
}
static int m_count(interp *ip, jv self, const jv_args *a, jv *out) {
    return find_any(ip, self, a, out, 2);
}
static int m_index(interp *ip, jv self, const jv_args *a, jv *out) {
    return find_any(ip, self, a, out, 3);
}

static int m_join(interp *ip, jv self, const jv_args *args, jv *out) {
    static const char *const names[] = {"iterable"};
    jv v;
    jv_list *items;
    if (bind_args(ip, "join", args, names, 1, 1, &v) || iterate(ip, v, &items)) return -1;
    sbuf b = ip_capture(ip);
    for (size_t i = 0; i < items->len; i++) {
        jv it = items->items[i];
        if (it.kind != JV_STRING) {
            sb_free(&b);
            return ip_fail(ip, "sequence item %zu: expected str instance, %s found", i,
                           jv_type_name(it));
        }
        if ((i && ip_append(ip, &b, self.s.p, self.s.n)) || ip_append(ip, &b, it.s.p, it.s.n)) {
            sb_free(&b);
            return -1;
        }
    }
    return ip_str_from_sb(ip, &b, out);
}

/* str.format with {} {0} {name} fields, !s / !r conversions, {{ and }}. */
static int format_field(interp *ip, sbuf *b, jv_str field, const jv_args *args,
                        size_t *auto_index) {
    jv_str name = field, conv = {NULL, 0};
    const char *bang = memchr(field.p, '!', field.n);
    if (memchr(field.p, ':', field.n) || memchr(field.p, '.', field.n) ||
        memchr(field.p, '[', field.n))
        return ip_fail(ip, "format(): only plain {} fields are supported");
    if (bang) {
        name.n = (size_t)(bang - field.p);
        conv = (jv_str){bang + 1, field.n - name.n - 1};
        if (!JV_STR_IS(conv, "s") && !JV_STR_IS(conv, "r"))
            return ip_fail(ip, "format(): unknown conversion");
    }
    jv v = jv_undefined(NULL);
    bool found = false;
    if (name.n == 0 || ascii_digit(name.p[0])) {
        size_t idx = 0;
        if (name.n == 0) {
            idx = (*auto_index)++;
        } else {
            for (size_t i = 0; i < name.n; i++) {
                if (!ascii_digit(name.p[i]) || idx > 1000000)
                    return ip_fail(ip, "format(): bad field");
                idx = idx * 10 + (size_t)(name.p[i] - '0');
            }
        }
        if (idx < args->n_pos) v = args->pos[idx], found = true;
    } else {
        for (size_t k = 0; k < args->n_kw && !found; k++)
            if (jv_str_eq(args->kw_names[k], name.p, name.n)) v = args->kw[k], found = true;
    }
    if (!found) return ip_fail(ip, "format(): no argument for field '%.*s'", (int)name.n, name.p);
    return JV_STR_IS(conv, "r") ? jv_write_repr(ip, b, v) : jv_write_str(ip, b, v);
}

static int m_format(interp *ip, jv self, const jv_args *args, jv *out) {
    sbuf b = ip_capture(ip);
    jv_str s = self.s;
    size_t auto_index = 0;
    int rc = 0;
    for (size_t i = 0; i < s.n && rc == 0;) {
        char c = s.p[i];
        if ((c == '{' || c == '}') && i + 1 < s.n && s.p[i + 1] == c) {
            rc = ip_append(ip, &b, &c, 1);
            i += 2;
        } else if (c == '{') {
            const char *close = memchr(s.p + i, '}', s.n - i);
            if (!close) {
                rc = ip_fail(ip, "format(): single '{' encountered in format string");
                break;
            }
            jv_str field = {s.p + i + 1, (size_t)(close - (s.p + i + 1))};
            rc = format_field(ip, &b, field, args, &auto_index);
            i = (size_t)(close - s.p) + 1;
        } else if (c == '}') {
            rc = ip_fail(ip, "format(): single '}' encountered in format string");
        } else {
            rc = ip_append(ip, &b, &c, 1);
            i++;
        }
    }
    if (rc) {
        sb_free(&b);
        return -1;
    }
    return ip_str_from_sb(ip, &b, out);
}

/* is* predicates on ASCII classes; non-ASCII code points count as letters. */
static int char_class(interp *ip, jv self, const jv_args *args, jv *out, char kind) {
    if (no_args(ip, "is*", args)) return -1;
    jv_str s = self.s;
    bool ok = s.n > 0, any_cased = false;
    for (size_t i = 0; i < s.n && ok;) {
        uint32_t cp;
        i += utf8_decode(s.p + i, s.n - i, &cp);
        bool alpha = cp >= 0x80 ? !py_isspace(cp) : ascii_alpha((char)cp);
        bool digit = cp < 0x80 && ascii_digit((char)cp);
        switch (kind) {
        case 'd': ok = digit; break;
        case 'a': ok = alpha; break;
        case 'n': ok = alpha || digit; break;
        case 's': ok = py_isspace(cp); break;
        case 'u':
        case 'l':
            if (cp < 0x80 && ascii_alpha((char)cp)) {
                any_cased = true;
                ok = kind == 'u' ? cp <= 'Z' : cp >= 'a';
            }
            break;
        }
    }
    *out = jv_bool(ok && (kind != 'u' && kind != 'l' ? true : any_cased));
    return 0;
}
static int m_isdigit(interp *ip, jv s, const jv_args *a, jv *o) {
    return char_class(ip, s, a, o, 'd');
}
static int m_isalpha(interp *ip, jv s, const jv_args *a, jv *o) {
    return char_class(ip, s, a, o, 'a');
}
static int m_isalnum(interp *ip, jv s, const jv_args *a, jv *o) {
    return char_class(ip, s, a, o, 'n');
}
static int m_isspace(interp *ip, jv s, const jv_args *a, jv *o) {
    return char_class(ip, s, a, o, 's');
}
static int m_isupper(interp *ip, jv s, const jv_args *a, jv *o) {
    return char_class(ip, s, a, o, 'u');
}
static int m_islower(interp *ip, jv s, const jv_args *a, jv *o) {
    return char_class(ip, s, a, o, 'l');
}

static int remove_affix(interp *ip, jv self, const jv_args *args, jv *out, bool prefix) {
    const char *fname = prefix ? "removeprefix" : "removesuffix";
    jv_str a;
    if (args->n_pos != 1 || need_string(ip, fname, args->pos[0], &a)) {
        if (args->n_pos != 1) ip_fail(ip, "%s() takes exactly one argument", fname);
        return -1;
    }
    *out = self;
    if (prefix && ustr_starts_with(self.s, a)) *out = jv_string(self.s.p + a.n, self.s.n - a.n);
    if (!prefix && ustr_ends_with(self.s, a)) *out = jv_string(self.s.p, self.s.n - a.n);
    return 0;
}
static int m_removeprefix(interp *ip, jv s, const jv_args *a, jv *o) {
    return remove_affix(ip, s, a, o, true);
}
static int m_removesuffix(interp *ip, jv s, const jv_args *a, jv *o) {
    return remove_affix(ip, s, a, o, false);
}

static int partition_any(interp *ip, jv self, const jv_args *args, jv *out, bool right) {
    const char *fname = right ? "rpartition" : "partition";
    jv_str sep;
    if (args->n_pos != 1) return ip_fail(ip, "%s() takes exactly one argument", fname);
    if (need_string(ip, fname, args->pos[0], &sep)) return -1;
    if (sep.n == 0) return ip_fail(ip, "empty separator");
    ptrdiff_t hit = right ? ustr_rfind(self.s, sep) : ustr_find(self.s, sep, 0);
    jv parts[3];
    if (hit < 0) {
        jv empty = jv_string("", 0);
        parts[0] = right ? empty : self, parts[1] = empty, parts[2] = right ? self : empty;
    } else {
        parts[0] = jv_string(self.s.p, (size_t)hit);
        parts[1] = jv_string(self.s.p + hit, sep.n);
        parts[2] = jv_string(self.s.p + hit + sep.n, self.s.n - (size_t)hit - sep.n);
    }
    if (jv_new_list(ip, 3, out)) return -1;
    out->list->tuple = true;
    for (int i = 0; i < 3; i++)
        if (jv_list_push(ip, out->list, parts[i])) return -1;
    return 0;
}
static int m_partition(interp *ip, jv s, const jv_args *a, jv *o) {
    return partition_any(ip, s, a, o, false);
}
static int m_rpartition(interp *ip, jv s, const jv_args *a, jv *o) {
    return partition_any(ip, s, a, o, true);
}

static const method_def str_methods[] = {
    {"strip", m_strip},
    {"lstrip", m_lstrip},
    {"rstrip", m_rstrip},
    {"split", m_split},
    {"rsplit", m_rsplit},
    {"splitlines", m_splitlines},
    {"startswith", m_startswith},
    {"endswith", m_endswith},
    {"upper", m_upper},
    {"lower", m_lower},
    {"title", m_title},
    {"capitalize", m_capitalize},
    {"replace", m_replace},
    {"find", m_find},
    {"rfind", m_rfind},
    {"index", m_index},
    {"count", m_count},
    {"join", m_join},
    {"format", m_format},
    {"isdigit", m_isdigit},
    {"isalpha", m_isalpha},
    {"isalnum", m_isalnum},
    {"isspace", m_isspace},
    {"isupper", m_isupper},
    {"islower", m_islower},
    {"removeprefix", m_removeprefix},
    {"removesuffix", m_removesuffix},
    {"partition", m_partition},
    {"rpartition", m_rpartition},
    {NULL, NULL},
};

/* ---- dict and list methods ---- */

static int d_get(interp *ip, jv self, const jv_args *args, jv *out) {
    static const char *const names[] = {"key", "default"};
    jv v[2];
    if (bind_args(ip, "get", args, names, 2, 1, v) || count_work(ip, (uint64_t)self.dict->len * ITEM_WORK))
        return -1;
    jv_entry *e = jv_dict_find(self.dict, v[0]);
    *out = e ? e->val : v[1].kind == JV_UNDEFINED ? jv_none() : v[1];
    return 0;
}

static int dict_view(interp *ip, jv self, const jv_args *args, jv *out, int which) {
    if (no_args(ip, which == 0 ? "items" : which == 1 ? "keys" : "values", args)) return -1;
    const jv_dict *d = self.dict;
    if (jv_new_list(ip, d->len, out)) return -1;
    for (size_t i = 0; i < d->len; i++) {
        jv item = which == 1 ? d->entries[i].key : d->entries[i].val;
        if (which == 0) {
            if (jv_new_list(ip, 2, &item)) return -1;
            item.list->tuple = true;
            jv_list_push(ip, item.list, d->entries[i].key);
            jv_list_push(ip, item.list, d->entries[i].val);
        }
        if (jv_list_push(ip, out->list, item)) return -1;
    }
    return 0;
}
static int d_items(interp *ip, jv s, const jv_args *a, jv *o) { return dict_view(ip, s, a, o, 0); }
static int d_keys(interp *ip, jv s, const jv_args *a, jv *o) { return dict_view(ip, s, a, o, 1); }
static int d_values(interp *ip, jv s, const jv_args *a, jv *o) { return dict_view(ip, s, a, o, 2); }

static const method_def dict_methods[] = {
    {"get", d_get}, {"items", d_items}, {"keys", d_keys}, {"values", d_values}, {NULL, NULL},
};

static int l_index_count(interp *ip, jv self, const jv_args *args, jv *out, bool count) {
    if (args->n_pos != 1)
        return ip_fail(ip, "%s() takes exactly one argument", count ? "count" : "index");
    int64_t n = 0;
    for (size_t i = 0; i < self.list->len; i++) {
        bool hit;
        if (ip_eq(ip, self.list->items[i], args->pos[0], &hit)) return -1;
        if (!hit) continue;
        if (!count) {
            *out = jv_int((int64_t)i);
            return 0;
        }
        n++;
    }
    if (!count) return ip_fail(ip, "value is not in list");
    *out = jv_int(n);
    return 0;
}
static int l_index(interp *ip, jv s, const jv_args *a, jv *o) {
    return l_index_count(ip, s, a, o, false);
}
static int l_count(interp *ip, jv s, const jv_args *a, jv *o) {
    return l_index_count(ip, s, a, o, true);
}

static const method_def list_methods[] = {{"index", l_index}, {"count", l_count}, {NULL, NULL}};

int find_method(interp *ip, jv obj, jv_str name, jv *out) {
    const method_def *table = obj.kind == JV_STRING ? str_methods
                              : obj.kind == JV_DICT ? dict_methods
                              : obj.kind == JV_LIST ? list_methods
                                                    : NULL;
    for (; table && table->name; table++) {
        if (!jv_str_eq(name, table->name, strlen(table->name))) continue;
        jv_func *f = ip_alloc(ip, sizeof(jv_func));
        if (!f) return -1;
        *f = (jv_func){.name = table->name, .fn = table->fn, .self = obj};
        *out = (jv){.kind = JV_FUNC, .func = f};
        return 1;
    }
    return 0;
}

/* ---- globals ---- */

static int g_range(interp *ip, jv self, const jv_args *args, jv *out) {
    int64_t v[3] = {0, 0, 1};
    if (args->n_kw || args->n_pos < 1 || args->n_pos > 3)
        return ip_fail(ip, "range() takes 1 to 3 positional arguments");
    for (size_t i = 0; i < args->n_pos; i++)
        if (opt_int(ip, "range", args->pos[i], 0, &v[i])) return -1;
    int64_t start = args->n_pos == 1 ? 0 : v[0], stop = args->n_pos == 1 ? v[0] : v[1];
    int64_t step = args->n_pos == 3 ? v[2] : 1;
    if (step == 0) return ip_fail(ip, "range() arg 3 must not be zero");
    double n = step > 0 ? ((double)stop - (double)start) / (double)step
                        : ((double)start - (double)stop) / (double)-step;
    if (n > RANGE_MAX) return ip_fail(ip, "range too big: the limit is %d items", RANGE_MAX);
    if (jv_new_list(ip, n > 0 ? (size_t)n + 1 : 0, out)) return -1;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step)
        if (jv_list_push(ip, out->list, jv_int(i))) return -1;
    return 0;
}

/* dict(mapping_or_pairs?, **kwargs) into a new dict or namespace. */
static int make_mapping(interp *ip, const jv_args *args, jv_kind kind, jv *out) {
    if (args->n_pos > 1) return ip_fail(ip, "expected at most 1 positional argument");
    if (jv_new_dict(ip, kind, out)) return -1;
    if (args->n_pos == 1) {
        jv src = args->pos[0];
        if (src.kind == JV_DICT || src.kind == JV_NAMESPACE) {
            for (size_t i = 0; i < src.dict->len; i++)
                if (jv_dict_set(ip, out->dict, src.dict->entries[i].key, src.dict->entries[i].val))
                    return -1;
        } else {
            jv_list *pairs;
            if (iterate(ip, src, &pairs)) return -1;
            for (size_t i = 0; i < pairs->len; i++) {
                jv p = pairs->items[i];
                if (p.kind != JV_LIST || p.list->len != 2)
                    return ip_fail(
                        ip, "dictionary update sequence element #%zu has the wrong length", i);
                if (jv_dict_set(ip, out->dict, p.list->items[0], p.list->items[1])) return -1;
            }
        }
    }
    for (size_t k = 0; k < args->n_kw; k++)
        if (jv_dict_set(ip, out->dict, jv_string(args->kw_names[k].p, args->kw_names[k].n),
                        args->kw[k]))
            return -1;
    return 0;
}
static int g_dict(interp *ip, jv self, const jv_args *a, jv *o) {
    return make_mapping(ip, a, JV_DICT, o);
}
static int g_namespace(interp *ip, jv self, const jv_args *a, jv *o) {
    return make_mapping(ip, a, JV_NAMESPACE, o);
}

static int g_raise_exception(interp *ip, jv self, const jv_args *args, jv *out) {
    if (args->n_pos + args->n_kw != 1)
        return ip_fail(ip, "raise_exception() takes exactly one argument (the message)");
    jv msg = args->n_pos ? args->pos[0] : args->kw[0];
    if (jv_to_string(ip, msg, &msg)) return -1;
    if (!ip->err->msg[0]) {
        if (msg.s.n)
            snprintf(ip->err->msg, sizeof(ip->err->msg), "%.*s", (int)msg.s.n, msg.s.p);
        else
            snprintf(ip->err->msg, sizeof(ip->err->msg), "raise_exception() called");
    }
    ip->located = true; /* the template author's words, shown as they are */
    return -1;
}

static int g_strftime_now(interp *ip, jv self, const jv_args *args, jv *out) {
    static const char *const names[] = {"format"};
    jv fmt;
    jv_str f = {"", 0};
    if (bind_args(ip, "strftime_now", args, names, 1, 1, &fmt) ||
        need_string(ip, "strftime_now", fmt, &f))
        return -1;
    if (f.n > 200) return ip_fail(ip, "strftime_now(): format too long");
    char cfmt[208], buf[512];
    memcpy(cfmt, f.p, f.n);
    cfmt[f.n] = '\0';
    time_t t = (time_t)(ip->now ? ip->now : time(NULL));
    struct tm tm;
    if (!localtime_r(&t, &tm)) return ip_fail(ip, "strftime_now(): bad time");
    size_t n = strftime(buf, sizeof(buf), cfmt, &tm);
    return ip_str_copy(ip, buf, n, out);
}

static jv_func globals[] = {
    {.name = "range", .fn = g_range},
    {.name = "dict", .fn = g_dict},
    {.name = "namespace", .fn = g_namespace},
    {.name = "raise_exception", .fn = g_raise_exception},
    {.name = "strftime_now", .fn = g_strftime_now},
};

bool find_global(jv_str name, jv *out) {
    for (size_t i = 0; i < sizeof(globals) / sizeof(globals[0]); i++) {
        if (jv_str_eq(name, globals[i].name, strlen(globals[i].name))) {
            *out = (jv){.kind = JV_FUNC, .func = &globals[i]};
            return true;
        }
    }
    return false;
}
