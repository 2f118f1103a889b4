/* filters.c - the filters on single values (default, trim, tojson, int,
 * round, indent, title, ...) with Jinja2 3.1's semantics, transformers'
 * tojson, argument binding, and the filter lookup. Filters over sequences
 * are in filters_seq.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/interp.h"
#include "chat/ustr.h"

#define MAX_PARAMS 16

int bind_args(interp *ip, const char *fname, const jv_args *args, const char *const *names,
              size_t n_names, size_t n_required, jv *out) {
    bool given[MAX_PARAMS] = {false};
    if (args->n_pos > n_names)
        return ip_fail(ip, "%s() takes at most %zu argument%s (%zu given)", fname, n_names,
                       n_names == 1 ? "" : "s", args->n_pos);
    for (size_t i = 0; i < n_names; i++) out[i] = jv_undefined(NULL);
    for (size_t i = 0; i < args->n_pos; i++) out[i] = args->pos[i], given[i] = true;
    for (size_t k = 0; k < args->n_kw; k++) {
        jv_str name = args->kw_names[k];
        size_t i = 0;
        while (i < n_names && !jv_str_eq(name, names[i], strlen(names[i]))) i++;
        if (i == n_names)
            return ip_fail(ip, "%s() got an unexpected keyword argument '%.*s'", fname, (int)name.n,
                           name.p);
        if (given[i])
            return ip_fail(ip, "%s() got multiple values for argument '%s'", fname, names[i]);
        out[i] = args->kw[k], given[i] = true;
    }
    for (size_t i = 0; i < n_required; i++)
        if (!given[i]) return ip_fail(ip, "%s() missing required argument '%s'", fname, names[i]);
    return 0;
}

static bool absent(jv v) { return v.kind == JV_UNDEFINED; }

/* str(v), with undefined as "" (Jinja's soft_str). */
static int soft_str(interp *ip, jv v, jv_str *out) {
    jv s;
    if (jv_to_string(ip, v, &s)) return -1;
    *out = s.s;
    return 0;
}

static int f_default(interp *ip, jv in, const jv_args *args, jv *out) {
    static const char *const names[] = {"default_value", "boolean"};
    jv v[2];
    if (bind_args(ip, "default", args, names, 2, 0, v)) return -1;
    if (absent(v[0])) v[0] = jv_string("", 0);
    bool use = in.kind == JV_UNDEFINED || (jv_truthy(v[1]) && !jv_truthy(in));
    *out = use ? v[0] : in;
    return 0;
}

static int f_string(interp *ip, jv in, const jv_args *args, jv *out) {
    if (args->n_pos || args->n_kw) return ip_fail(ip, "string() takes no arguments");
    return jv_to_string(ip, in, out);
}

static int case_filter(interp *ip, jv in, const jv_args *args, jv *out, bool upper) {
    jv_str s;
    if (args->n_pos || args->n_kw)
        return ip_fail(ip, "%s() takes no arguments", upper ? "upper" : "lower");
    return soft_str(ip, in, &s) || str_upper_lower(ip, s, upper, out);
}
static int f_upper(interp *ip, jv in, const jv_args *a, jv *o) {
    return case_filter(ip, in, a, o, true);
}
static int f_lower(interp *ip, jv in, const jv_args *a, jv *o) {
    return case_filter(ip, in, a, o, false);
}

static int f_capitalize(interp *ip, jv in, const jv_args *args, jv *out) {
    jv_str s;
    if (soft_str(ip, in, &s) || str_upper_lower(ip, s, false, out)) return -1;
    if (out->s.n) ((char *)out->s.p)[0] = ascii_upper(out->s.p[0]);
    return 0;
}

/* Jinja's title: split at runs of [-\s({[<], upper the first character of
 * each piece and lower the rest. */
static int f_title(interp *ip, jv in, const jv_args *args, jv *out) {
    jv_str s;
    if (soft_str(ip, in, &s) || str_upper_lower(ip, s, false, out)) return -1;
    char *p = (char *)out->s.p;
    bool at_start = true;
    for (size_t i = 0; i < s.n;) {
        uint32_t cp;
        size_t k = utf8_decode(s.p + i, s.n - i, &cp);
        bool sep = py_isspace(cp) || cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<';
        if (!sep && at_start) p[i] = ascii_upper(p[i]);
        at_start = sep;
        i += k;
    }
    return 0;
}

static int f_trim(interp *ip, jv in, const jv_args *args, jv *out) {
    static const char *const names[] = {"chars"};
    jv chars;
    jv_str s, set;
    if (bind_args(ip, "trim", args, names, 1, 0, &chars) || soft_str(ip, in, &s)) return -1;
    bool with_set = !absent(chars) && chars.kind != JV_NONE;
    if (with_set && soft_str(ip, chars, &set)) return -1;
    jv_str r = ustr_strip(s, with_set ? &set : NULL, true, true);
    *out = jv_string(r.p, r.n);
    return 0;
}

static int f_replace(interp *ip, jv in, const jv_args *args, jv *out) {
    static const char *const names[] = {"old", "new", "count"};
    jv v[3];
    jv_str s, old, new_;
    if (bind_args(ip, "replace", args, names, 3, 2, v) || soft_str(ip, in, &s) ||
        soft_str(ip, v[0], &old) || soft_str(ip, v[1], &new_))
        return -1;
    int64_t count = -1;
    if (!absent(v[2]) && v[2].kind != JV_NONE) {
        if (v[2].kind != JV_INT) return ip_fail(ip, "replace() count must be an integer");
        count = v[2].i;
    }
    return str_replace(ip, s, old, new_, count, out);
}

static int html_escape(interp *ip, jv in, const jv_args *args, jv *out) {
    jv_str s;
    if (soft_str(ip, in, &s)) return -1;
    sbuf b = ip_capture(ip);
    size_t run = 0;
    for (size_t i = 0; i < s.n; i++) {
        const char *rep = s.p[i] == '&'    ? "&amp;"
                          : s.p[i] == '<'  ? "&lt;"
                          : s.p[i] == '>'  ? "&gt;"
                          : s.p[i] == '"'  ? "&#34;"
                          : s.p[i] == '\'' ? "&#39;"
                                           : NULL;
        if (!rep) {
            run++;
            continue;
        }
        if (ip_append(ip, &b, s.p + i - run, run) || ip_append(ip, &b, rep, strlen(rep))) {
            sb_free(&b);
            return -1;
        }
        run = 0;
    }
    if (ip_append(ip, &b, s.p + s.n - run, run)) {
        sb_free(&b);
        return -1;
    }
    return ip_str_from_sb(ip, &b, out);
}

static int f_safe(interp *ip, jv in, const jv_args *args, jv *out) {
    return jv_to_string(ip, in, out);
}

static int f_wordcount(interp *ip, jv in, const jv_args *args, jv *out) {
    jv_str s;
    if (soft_str(ip, in, &s)) return -1;
    int64_t words = 0;
    bool in_word = false;
    for (size_t i = 0; i < s.n;) {
        uint32_t cp;
        i += utf8_decode(s.p + i, s.n - i, &cp);
        bool w = cp >= 0x80 ? !py_isspace(cp)
                            : (ascii_alpha((char)cp) || ascii_digit((char)cp) || cp == '_');
        if (w && !in_word) words++;
        in_word = w;
    }
    *out = jv_int(words);
    return 0;
}

static int f_center(interp *ip, jv in, const jv_args *args, jv *out) {
    static const char *const names[] = {"width"};
    jv w;
    jv_str s;
    if (bind_args(ip, "center", args, names, 1, 0, &w) || soft_str(ip, in, &s)) return -1;
    int64_t width = absent(w) ? 80 : w.kind == JV_INT ? w.i : -1;
    if (width < 0 || width > 1 << 20) return ip_fail(ip, "center() width must be a small integer");
    int64_t len = (int64_t)ustr_len(s);
    if (len >= width) {
        *out = jv_string(s.p, s.n);
        return 0;
    }
    int64_t marg = width - len, left = marg / 2 + (marg & width & 1);
    sbuf b = ip_capture(ip);
    int rc = 0;
    for (int64_t i = 0; i < left && rc == 0; i++) rc = ip_append(ip, &b, " ", 1);
    if (rc == 0) rc = ip_append(ip, &b, s.p, s.n);
    for (int64_t i = 0; i < marg - left && rc == 0; i++) rc = ip_append(ip, &b, " ", 1);
    if (rc) {
        sb_free(&b);
        return -1;
    }
    return ip_str_from_sb(ip, &b, out);
}

/* ---- numbers ---- */

/* Python float(str): surrounding whitespace, '_' between digits, nan/inf. */
static bool parse_float(jv_str s, double *out) {
    s = ustr_strip(s, NULL, true, true);
    char buf[128];
    size_t k = 0;
    for (size_t i = 0; i < s.n; i++) {
        char c = s.p[i];
        if (c == '_' && i > 0 && i + 1 < s.n && ascii_digit(s.p[i - 1]) && ascii_digit(s.p[i + 1]))
            continue;
        if (k + 1 >= sizeof(buf) ||
            !(ascii_digit(c) || ascii_alpha(c) || c == '.' || c == '+' || c == '-'))
            return false;
        buf[k++] = c;
    }
    buf[k] = '\0';
    if (k == 0) return false;
    const char *body = buf + (buf[0] == '+' || buf[0] == '-');
    bool word = ascii_alpha(body[0]);
    if (word && strcasecmp(body, "nan") && strcasecmp(body, "inf") && strcasecmp(body, "infinity"))
        return false;
    if (!word && strpbrk(body, "xXpP")) return false;
    char *end;
    *out = strtod(buf, &end);
    return *end == '\0';
}

/* Python int(str, base) for bases 2..36 and 0. */
static bool parse_int(jv_str s, int base, int64_t *out) {
    s = ustr_strip(s, NULL, true, true);
    size_t i = 0;
    bool neg = false;
    if (i < s.n && (s.p[i] == '+' || s.p[i] == '-')) neg = s.p[i++] == '-';
    if (i + 1 < s.n && s.p[i] == '0') {
        char c = (char)(s.p[i + 1] | 32);
        int prefix = c == 'x' ? 16 : c == 'o' ? 8 : c == 'b' ? 2 : 0;
        if (prefix && (base == 0 || base == prefix)) base = prefix, i += 2;
    }
    if (base == 0) base = 10;
    uint64_t v = 0;
    bool digits = false, last_us = true;
    for (; i < s.n; i++) {
        char c = (char)(s.p[i] | 32);
        if (s.p[i] == '_' && !last_us) {
            last_us = true;
            continue;
        }
        int d = ascii_digit(c) ? c - '0' : (c >= 'a' && c <= 'z') ? c - 'a' + 10 : 99;
        if (d >= base) return false;
        if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base) return false;
        v = v * (uint64_t)base + (uint64_t)d;
        digits = true, last_us = false;
    }
    if (!digits || last_us || v > (uint64_t)INT64_MAX + neg) return false;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

static int f_int(interp *ip, jv in, const jv_args *args, jv *out) {
    static const char *const names[] = {"default", "base"};
    jv v[2];
    if (bind_args(ip, "int", args, names, 2, 0, v)) return -1;
    jv dflt = absent(v[0]) ? jv_int(0) : v[0];
    int64_t base = absent(v[1]) ? 10 : v[1].kind == JV_INT ? v[1].i : -1;
    if (base != 0 && (base < 2 || base > 36))
        return ip_fail(ip, "int() base must be >= 2 and <= 36, or 0");
    int64_t i;
    double f;
    if (in.kind == JV_UNDEFINED) return undefined_error(ip, in);
    switch (in.kind) {
    case JV_INT: *out = in; return 0;
    case JV_BOOL: *out = jv_int(in.b); return 0;
    case JV_FLOAT:
        if (isnan(in.f) || isinf(in.f) || fabs(in.f) >= 9.2e18)
            return ip_fail(ip, "cannot convert float to integer");
        *out = jv_int((int64_t)in.f);
        return 0;
    case JV_STRING:
        if (parse_int(in.s, (int)base, &i))
            *out = jv_int(i);
        else if (parse_float(in.s, &f) && !isnan(f) && fabs(f) < 9.2e18)
            *out = jv_int((int64_t)f);
        else
            *out = dflt;
        return 0;
    default: *out = dflt; return 0;
    }
}

static int f_float(interp *ip, jv in, const jv_args *args, jv *out) {
    static const char *const names[] = {"default"};
    jv dflt;
    double f;
    if (bind_args(ip, "float", args, names, 1, 0, &dflt)) return -1;
    if (in.kind == JV_UNDEFINED) return undefined_error(ip, in);
    if (jv_is_number(in))
        *out = jv_float(jv_as_double(in));
    else if (in.kind == JV_STRING && parse_float(in.s, &f))
        *out = jv_float(f);
    else
        *out = absent(dflt) ? jv_float(0.0) : dflt;
    return 0;
}

static int f_abs(interp *ip, jv in, const jv_args *args, jv *out) {
    if (in.kind == JV_INT && in.i != INT64_MIN)
        *out = jv_int(in.i < 0 ? -in.i : in.i);
    else if (in.kind == JV_BOOL)
        *out = jv_int(in.b);
    else if (in.kind == JV_FLOAT)
        *out = jv_float(fabs(in.f));
    else
        return ip_fail(ip, "bad operand type for abs(): '%s'", jv_type_name(in));
    return 0;
}

/* Python round(x, ndigits): exact half-even on the binary value. */
static double round_digits(double x, int64_t nd) {
    if (isnan(x) || isinf(x)) return x;
    if (nd > 300) return x;
    if (nd < 0) {
        double p = pow(10.0, (double)-nd);
        return nearbyint(x / p) * p;
    }
    char buf[400];
    snprintf(buf, sizeof(buf), "%.*f", (int)nd, x);
    return strtod(buf, NULL);
}

static int f_round(interp *ip, jv in, const jv_args *args, jv *out) {
    static const char *const names[] = {"precision", "method"};
    jv v[2];
    if (bind_args(ip, "round", args, names, 2, 0, v)) return -1;
    int64_t prec = absent(v[0]) ? 0 : v[0].kind == JV_INT ? v[0].i : INT64_MIN;
    if (prec == INT64_MIN || prec < -300)
        return ip_fail(ip, "round() precision must be an integer");
    jv_str method = absent(v[1])             ? (jv_str){"common", 6}
                    : v[1].kind == JV_STRING ? v[1].s
                                             : (jv_str){"", 0};
    bool common = JV_STR_IS(method, "common"), ceil_ = JV_STR_IS(method, "ceil");
    if (!common && !ceil_ && !JV_STR_IS(method, "floor"))
        return ip_fail(ip, "method must be common, ceil or floor");
    if (!jv_is_number(in)) return ip_fail(ip, "round() of '%s'", jv_type_name(in));
    if (common && in.kind != JV_FLOAT && prec >= 0) {
        *out = jv_int(in.kind == JV_BOOL ? in.b : in.i);
        return 0;
    }
    double x = jv_as_double(in);
    if (common) {
        *out = jv_float(round_digits(x, prec));
    } else {
        double scale = pow(10.0, (double)prec);
        *out = jv_float((ceil_ ? ceil(x * scale) : floor(x * scale)) / scale);
    }
    return 0;
}

/* ---- text layout ---- */

static int f_indent(interp *ip, jv in, const jv_args *args, jv *out) {
    static const char *const names[] = {"width", "first", "blank"};
    jv v[3];
    jv_str s, unit;
    char spaces[256];
    if (bind_args(ip, "indent", args, names, 3, 0, v)) return -1;
    if (in.kind == JV_UNDEFINED) return undefined_error(ip, in);
    if (in.kind != JV_STRING) /* Jinja's indent does s += "\n" without str() */
        return ip_fail(ip, "indent() expects a string, not %s", jv_type_name(in));
    s = in.s;
    if (v[0].kind == JV_STRING) {
        unit = v[0].s;
    } else {
        int64_t w = absent(v[0]) ? 4 : v[0].kind == JV_INT ? v[0].i : -1;
        if (w < 0 || w > (int64_t)sizeof(spaces))
            return ip_fail(ip, "indent() width must be 0..256");
        memset(spaces, ' ', (size_t)w);
        unit = (jv_str){spaces, (size_t)w};
    }
    bool first = jv_truthy(v[1]), blank = jv_truthy(v[2]);
    /* Jinja appends "\n" before splitlines() so a trailing newline is kept */
    sbuf ext = ip_capture(ip);
    jv text, lines;
    if (ip_append(ip, &ext, s.p, s.n) || ip_append(ip, &ext, "\n", 1)) {
        sb_free(&ext);
        return -1;
    }
    if (ip_str_from_sb(ip, &ext, &text) || str_splitlines(ip, text.s, false, &lines)) return -1;
    sbuf b = ip_capture(ip);
    int rc = 0;
    if (first) rc = ip_append(ip, &b, unit.p, unit.n);
    for (size_t i = 0; i < lines.list->len && rc == 0; i++) {
        jv_str line = lines.list->items[i].s;
        if (i > 0) {
            rc = ip_append(ip, &b, "\n", 1);
            if (rc == 0 && (blank || line.n)) rc = ip_append(ip, &b, unit.p, unit.n);
        }
        if (rc == 0) rc = ip_append(ip, &b, line.p, line.n);
    }
    if (rc) {
        sb_free(&b);
        return -1;
    }
    return ip_str_from_sb(ip, &b, out);
}

/* ---- JSON ---- */

/* transformers' tojson(x, ensure_ascii=False, indent=None, separators=None,
 * sort_keys=False) */
static int f_tojson(interp *ip, jv in, const jv_args *args, jv *out) {
    static const char *const names[] = {"ensure_ascii", "indent", "separators", "sort_keys"};
    jv v[4];
    char spaces[256];
    if (bind_args(ip, "tojson", args, names, 4, 0, v)) return -1;
    json_style st = {.ensure_ascii = jv_truthy(v[0]), .sort_keys = jv_truthy(v[3])};
    if (v[1].kind == JV_INT || v[1].kind == JV_BOOL) {
        int64_t w = v[1].kind == JV_BOOL ? v[1].b : v[1].i;
        if (w > (int64_t)sizeof(spaces) - 1) return ip_fail(ip, "tojson() indent too large");
        if (w < 0) w = 0;
        memset(spaces, ' ', (size_t)w);
        spaces[w] = '\0';
        st.indent = spaces;
    } else if (v[1].kind == JV_STRING) {
        char *p = ip_alloc(ip, v[1].s.n + 1);
        if (!p) return -1;
        memcpy(p, v[1].s.p, v[1].s.n);
        p[v[1].s.n] = '\0';
        st.indent = p;
    } else if (!absent(v[1]) && v[1].kind != JV_NONE) {
        return ip_fail(ip, "tojson() indent must be an integer or a string");
    }
    st.item_sep = st.indent ? (jv_str){",", 1} : (jv_str){", ", 2};
    st.key_sep = (jv_str){": ", 2};
    if (!absent(v[2]) && v[2].kind != JV_NONE) {
        const jv_list *seps = v[2].kind == JV_LIST ? v[2].list : NULL;
        if (!seps || seps->len != 2 || seps->items[0].kind != JV_STRING ||
            seps->items[1].kind != JV_STRING)
            return ip_fail(ip, "tojson() separators must be a pair of strings");
        st.item_sep = seps->items[0].s;
        st.key_sep = seps->items[1].s;
    }
    sbuf b = ip_capture(ip);
    if (jv_write_json(ip, &b, in, &st)) {
        sb_free(&b);
        return -1;
    }
    return ip_str_from_sb(ip, &b, out);
}

/* ---- lookup ---- */

typedef struct filter_def {
    const char *name;
    filter_fn fn;
} filter_def;

static const filter_def filters[] = {
    {"default", f_default}, {"d", f_default},
    {"string", f_string},   {"upper", f_upper},
    {"lower", f_lower},     {"capitalize", f_capitalize},
    {"title", f_title},     {"trim", f_trim},
    {"replace", f_replace}, {"escape", html_escape},
    {"e", html_escape},     {"forceescape", html_escape},
    {"safe", f_safe},       {"wordcount", f_wordcount},
    {"center", f_center},   {"int", f_int},
    {"float", f_float},     {"abs", f_abs},
    {"round", f_round},     {"indent", f_indent},
    {"tojson", f_tojson},   {NULL, NULL},
};

filter_fn find_filter(jv_str name) {
    for (const filter_def *f = filters; f->name; f++)
        if (jv_str_eq(name, f->name, strlen(f->name))) return f->fn;
    return find_seq_filter(name);
}

int apply_filter(interp *ip, jv_str name, jv input, const jv_args *args, jv *out) {
    filter_fn fn = find_filter(name);
    if (!fn) return ip_fail(ip, "no filter named '%.*s'", (int)name.n, name.p);
    return fn(ip, input, args, out);
}
