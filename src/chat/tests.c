/* tests.c - the `is` tests of Jinja2 3.1 (defined, none, string, mapping,
 * iterable, sequence, number, integer, float, boolean, true, false, odd,
 * even, divisibleby, eq/ne/lt/..., in, sameas, callable, lower, upper, ...). */
#include <math.h>
#include <string.h>

#include "chat/interp.h"
#include "chat/ustr.h"

static int one_arg(interp *ip, const char *name, const jv_args *args, jv *out) {
    if (args->n_pos + args->n_kw != 1) return ip_fail(ip, "test '%s' takes one argument", name);
    *out = args->n_pos ? args->pos[0] : args->kw[0];
    return 0;
}

#define KIND_TEST(fn, expr)                                                                        \
    static int fn(interp *ip, jv v, const jv_args *args, bool *out) {                              \
        *out = (expr);                                                                             \
        return 0;                                                                                  \
    }

KIND_TEST(t_defined, v.kind != JV_UNDEFINED)
KIND_TEST(t_undefined, v.kind == JV_UNDEFINED)
KIND_TEST(t_none, v.kind == JV_NONE)
KIND_TEST(t_boolean, v.kind == JV_BOOL)
KIND_TEST(t_true, v.kind == JV_BOOL && v.b)
KIND_TEST(t_false, v.kind == JV_BOOL && !v.b)
KIND_TEST(t_integer, v.kind == JV_INT)
KIND_TEST(t_float, v.kind == JV_FLOAT)
KIND_TEST(t_number, jv_is_number(v))
KIND_TEST(t_string, v.kind == JV_STRING)
KIND_TEST(t_mapping, v.kind == JV_DICT)
/* Python: iter() works; Jinja's Undefined is iterable (empty) */
KIND_TEST(t_iterable, v.kind == JV_STRING || v.kind == JV_LIST || v.kind == JV_DICT ||
                          v.kind == JV_UNDEFINED || v.kind == JV_LOOP)
/* Python: len() and __getitem__ exist */
KIND_TEST(t_sequence, v.kind == JV_STRING || (v.kind == JV_LIST && !v.list->lazy) ||
                          v.kind == JV_DICT || v.kind == JV_UNDEFINED)
KIND_TEST(t_callable, v.kind == JV_FUNC || v.kind == JV_UNDEFINED || v.kind == JV_LOOP)
KIND_TEST(t_escaped, false)

static int parity(interp *ip, jv v, bool *out, int want) {
    if (v.kind == JV_INT || v.kind == JV_BOOL) {
        int64_t i = v.kind == JV_BOOL ? v.b : v.i;
        *out = (i % 2 != 0) == want;
    } else if (v.kind == JV_FLOAT) {
        *out = (fmod(v.f, 2.0) != 0) == want;
    } else {
        return ip_fail(ip, "unsupported operand type(s) for %%: '%s' and 'int'", jv_type_name(v));
    }
    return 0;
}
static int t_odd(interp *ip, jv v, const jv_args *a, bool *o) { return parity(ip, v, o, 1); }
static int t_even(interp *ip, jv v, const jv_args *a, bool *o) { return parity(ip, v, o, 0); }

static int t_divisibleby(interp *ip, jv v, const jv_args *args, bool *out) {
    jv num, rem;
    if (one_arg(ip, "divisibleby", args, &num) || eval_binop(ip, OP_MOD, v, num, &rem)) return -1;
    *out = jv_eq(rem, jv_int(0));
    return 0;
}

static int cmp_test(interp *ip, jv v, const jv_args *args, bool *out, const char *name, int op) {
    jv other;
    int c;
    if (one_arg(ip, name, args, &other)) return -1;
    if (op == 0 || op == 1) {
        if (ip_eq(ip, v, other, out)) return -1;
        *out = *out == (op == 0);
        return 0;
    }
    if (v.kind == JV_UNDEFINED) return undefined_error(ip, v);
    if (other.kind == JV_UNDEFINED) return undefined_error(ip, other);
    if (jv_compare(ip, v, other, &c)) return -1;
    *out = op == 2 ? c < 0 : op == 3 ? c <= 0 : op == 4 ? c > 0 : c >= 0;
    return 0;
}
static int t_eq(interp *ip, jv v, const jv_args *a, bool *o) {
    return cmp_test(ip, v, a, o, "eq", 0);
}
static int t_ne(interp *ip, jv v, const jv_args *a, bool *o) {
    return cmp_test(ip, v, a, o, "ne", 1);
}
static int t_lt(interp *ip, jv v, const jv_args *a, bool *o) {
    return cmp_test(ip, v, a, o, "lt", 2);
}
static int t_le(interp *ip, jv v, const jv_args *a, bool *o) {
    return cmp_test(ip, v, a, o, "le", 3);
}
static int t_gt(interp *ip, jv v, const jv_args *a, bool *o) {
    return cmp_test(ip, v, a, o, "gt", 4);
}
static int t_ge(interp *ip, jv v, const jv_args *a, bool *o) {
    return cmp_test(ip, v, a, o, "ge", 5);
}

static int t_in(interp *ip, jv v, const jv_args *args, bool *out) {
    jv seq;
    if (one_arg(ip, "in", args, &seq)) return -1;
    if (seq.kind == JV_STRING && v.kind == JV_STRING) {
        *out = v.s.n == 0 || ustr_find(seq.s, v.s, 0) >= 0;
        return 0;
    }
    if (seq.kind == JV_DICT) {
        if (count_work(ip, (uint64_t)seq.dict->len * ITEM_WORK)) return -1;
        *out = jv_dict_find(seq.dict, v) != NULL;
        return 0;
    }
    jv_list *items;
    if (seq.kind == JV_STRING) return ip_fail(ip, "'in <string>' requires string as left operand");
    if (iterate(ip, seq, &items)) return -1;
    *out = false;
    for (size_t i = 0; i < items->len && !*out; i++)
        if (ip_eq(ip, items->items[i], v, out)) return -1;
    return 0;
}

/* Python `is`: the same object; scalars compare by value. */
static int t_sameas(interp *ip, jv v, const jv_args *args, bool *out) {
    jv other;
    if (one_arg(ip, "sameas", args, &other)) return -1;
    if (v.kind != other.kind) {
        *out = false;
    } else
        switch (v.kind) {
        case JV_LIST: *out = v.list == other.list; break;
        case JV_DICT:
        case JV_NAMESPACE: *out = v.dict == other.dict; break;
        case JV_FUNC: *out = v.func == other.func; break;
        case JV_LOOP: *out = v.loop == other.loop; break;
        case JV_STRING: *out = v.s.p == other.s.p && v.s.n == other.s.n; break;
        default: *out = jv_eq(v, other);
        }
    return 0;
}

static int case_test(interp *ip, jv v, bool *out, bool upper) {
    jv s;
    if (jv_to_string(ip, v, &s)) return -1;
    bool cased = false, ok = true;
    for (size_t i = 0; i < s.s.n; i++) {
        char c = s.s.p[i];
        if (!ascii_alpha(c)) continue;
        cased = true;
        if (upper ? (c >= 'a') : (c <= 'Z')) ok = false;
    }
    *out = cased && ok;
    return 0;
}
static int t_lower(interp *ip, jv v, const jv_args *a, bool *o) {
    return case_test(ip, v, o, false);
}
static int t_upper(interp *ip, jv v, const jv_args *a, bool *o) {
    return case_test(ip, v, o, true);
}

static int t_filter(interp *ip, jv v, const jv_args *args, bool *out) {
    *out = v.kind == JV_STRING && find_filter(v.s) != NULL;
    return 0;
}
static int t_test(interp *ip, jv v, const jv_args *args, bool *out) {
    *out = v.kind == JV_STRING && find_test(v.s) != NULL;
    return 0;
}

typedef struct test_def {
    const char *name;
    test_fn fn;
} test_def;

static const test_def tests[] = {
    {"defined", t_defined},
    {"undefined", t_undefined},
    {"none", t_none},
    {"boolean", t_boolean},
    {"true", t_true},
    {"false", t_false},
    {"integer", t_integer},
    {"float", t_float},
    {"number", t_number},
    {"string", t_string},
    {"mapping", t_mapping},
    {"iterable", t_iterable},
    {"sequence", t_sequence},
    {"callable", t_callable},
    {"escaped", t_escaped},
    {"odd", t_odd},
    {"even", t_even},
    {"divisibleby", t_divisibleby},
    {"eq", t_eq},
    {"equalto", t_eq},
    {"==", t_eq},
    {"ne", t_ne},
    {"!=", t_ne},
    {"lt", t_lt},
    {"lessthan", t_lt},
    {"<", t_lt},
    {"le", t_le},
    {"<=", t_le},
    {"gt", t_gt},
    {"greaterthan", t_gt},
    {">", t_gt},
    {"ge", t_ge},
    {">=", t_ge},
    {"in", t_in},
    {"sameas", t_sameas},
    {"lower", t_lower},
    {"upper", t_upper},
    {"filter", t_filter},
    {"test", t_test},
    {NULL, NULL},
};

test_fn find_test(jv_str name) {
    for (const test_def *t = tests; t->name; t++)
        if (jv_str_eq(name, t->name, strlen(t->name))) return t->fn;
    return NULL;
}

int apply_test(interp *ip, jv_str name, jv input, const jv_args *args, bool *out) {
    test_fn fn = find_test(name);
    if (!fn) return ip_fail(ip, "no test named '%.*s'", (int)name.n, name.p);
    return fn(ip, input, args, out);
}
