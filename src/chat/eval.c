/* eval.c - expression evaluation: names, literals, operators with Python's
 * semantics (int/float promotion, floor division and modulo signs, string
 * and list concatenation and repetition), chained comparisons, `in`,
 * short-circuit and/or returning an operand, conditional expressions, calls,
 * filters and tests. */
#define _GNU_SOURCE /* memmem */
#include <math.h>
#include <string.h>

#include "chat/interp.h"
#include "chat/ustr.h"

static int as_int(jv v, int64_t *out) {
    if (v.kind == JV_INT)
        *out = v.i;
    else if (v.kind == JV_BOOL)
        *out = v.b;
    else
        return -1;
    return 0;
}

static int type_error(interp *ip, const char *op, jv a, jv b) {
    if (a.kind == JV_UNDEFINED) return undefined_error(ip, a);
    if (b.kind == JV_UNDEFINED) return undefined_error(ip, b);
    return ip_fail(ip, "unsupported operand type(s) for %s: '%s' and '%s'", op, jv_type_name(a),
                   jv_type_name(b));
}

static int concat_strings(interp *ip, jv_str a, jv_str b, jv *out) {
    if (a.n > ip->max_output || b.n > ip->max_output - a.n)
        return ip_fail(ip, "string longer than the %zu-byte output limit", ip->max_output);
    char *p = ip_alloc(ip, a.n + b.n + 1);
    if (!p) return -1;
    if (a.n) memcpy(p, a.p, a.n);
    if (b.n) memcpy(p + a.n, b.p, b.n);
    p[a.n + b.n] = '\0';
    *out = jv_string(p, a.n + b.n);
    return 0;
}

/* SEQ * COUNT for a string or a list. */
static int repeat(interp *ip, jv seq, int64_t count, jv *out) {
    if (count < 0) count = 0;
    if (seq.kind == JV_STRING) {
        if (seq.s.n && (uint64_t)count > ip->max_output / seq.s.n)
            return ip_fail(ip, "string longer than the %zu-byte output limit", ip->max_output);
        size_t n = seq.s.n * (size_t)count;
        char *p = ip_alloc(ip, n + 1);
        if (!p) return -1;
        for (int64_t i = 0; i < count; i++) memcpy(p + (size_t)i * seq.s.n, seq.s.p, seq.s.n);
        p[n] = '\0';
        *out = jv_string(p, n);
        return 0;
    }
    size_t len = seq.list->len;
    if (len && (uint64_t)count > ip->max_output / len) return ip_fail(ip, "list too large");
    if (jv_new_list(ip, len * (size_t)count, out)) return -1;
    out->list->tuple = seq.list->tuple;
    for (int64_t i = 0; i < count; i++)
        for (size_t k = 0; k < len; k++)
            if (jv_list_push(ip, out->list, seq.list->items[k])) return -1;
    return 0;
}

static int int_arith(interp *ip, binop_kind op, int64_t x, int64_t y, jv *out) {
    int64_t r;
    switch (op) {
    case OP_ADD:
        if (__builtin_add_overflow(x, y, &r)) goto overflow;
        break;
    case OP_SUB:
        if (__builtin_sub_overflow(x, y, &r)) goto overflow;
        break;
    case OP_MUL:
        if (__builtin_mul_overflow(x, y, &r)) goto overflow;
        break;
    case OP_DIV:
        if (y == 0) return ip_fail(ip, "division by zero");
        *out = jv_float((double)x / (double)y);
        return 0;
    case OP_FLOORDIV:
    case OP_MOD:
        if (y == 0) return ip_fail(ip, "integer division or modulo by zero");
        if (x == INT64_MIN && y == -1) goto overflow;
        r = op == OP_MOD ? x % y : x / y;
        if (x % y != 0 && ((x % y < 0) != (y < 0))) r = op == OP_MOD ? r + y : r - 1;
        break;
    case OP_POW:
        if (y < 0) {
            if (x == 0) return ip_fail(ip, "0.0 cannot be raised to a negative power");
            *out = jv_float(pow((double)x, (double)y));
            return 0;
        }
        r = 1;
        for (int64_t base = x, e = y; e > 0; e >>= 1) {
            if ((e & 1) && __builtin_mul_overflow(r, base, &r)) goto overflow;
            if (e > 1 && __builtin_mul_overflow(base, base, &base)) goto overflow;
        }
        break;
    default: return -1;
    }
    *out = jv_int(r);
    return 0;
overflow:
    return ip_fail(ip, "integer overflow (values are limited to 64 bits)");
}

static int float_arith(interp *ip, binop_kind op, double x, double y, jv *out) {
    double r;
    switch (op) {
    case OP_ADD: r = x + y; break;
    case OP_SUB: r = x - y; break;
    case OP_MUL: r = x * y; break;
    case OP_DIV:
        if (y == 0) return ip_fail(ip, "float division by zero");
        r = x / y;
        break;
    case OP_FLOORDIV:
    case OP_MOD: {
        if (y == 0) return ip_fail(ip, "float modulo or floor division by zero");
        double mod = fmod(x, y), div = (x - mod) / y;
        if (mod != 0) {
            if ((y < 0) != (mod < 0)) mod += y, div -= 1.0;
        } else {
            mod = copysign(0.0, y);
        }
        if (op == OP_MOD) {
            r = mod;
        } else if (div != 0) {
            r = floor(div);
            if (div - r > 0.5) r += 1.0;
        } else {
            r = copysign(0.0, x / y);
        }
        break;
    }
    case OP_POW:
        if (x == 0 && y < 0) return ip_fail(ip, "0.0 cannot be raised to a negative power");
        r = pow(x, y);
        break;
    default: return -1;
    }
    *out = jv_float(r);
    return 0;
}

int eval_binop(interp *ip, binop_kind op, jv a, jv b, jv *out) {
    static const char *const names[] = {"+", "-", "*", "/", "//", "%", "**", "~"};
    if (op == OP_CONCAT) {
        jv sa, sb;
        if (jv_to_string(ip, a, &sa) || jv_to_string(ip, b, &sb)) return -1;
        return concat_strings(ip, sa.s, sb.s, out);
    }
    int64_t x, y;
    if (as_int(a, &x) == 0 && as_int(b, &y) == 0) return int_arith(ip, op, x, y, out);
    if (jv_is_number(a) && jv_is_number(b))
        return float_arith(ip, op, jv_as_double(a), jv_as_double(b), out);
    if (op == OP_ADD && a.kind == JV_STRING && b.kind == JV_STRING)
        return concat_strings(ip, a.s, b.s, out);
    if (op == OP_ADD && a.kind == JV_LIST && b.kind == JV_LIST && a.list->tuple == b.list->tuple &&
        !a.list->lazy && !b.list->lazy) {
        if (jv_new_list(ip, a.list->len + b.list->len, out)) return -1;
        out->list->tuple = a.list->tuple;
        for (size_t i = 0; i < a.list->len; i++)
            if (jv_list_push(ip, out->list, a.list->items[i])) return -1;
        for (size_t i = 0; i < b.list->len; i++)
            if (jv_list_push(ip, out->list, b.list->items[i])) return -1;
        return 0;
    }
    bool a_seq = a.kind == JV_STRING || (a.kind == JV_LIST && !a.list->lazy);
    bool b_seq = b.kind == JV_STRING || (b.kind == JV_LIST && !b.list->lazy);
    if (op == OP_MUL && a_seq && as_int(b, &y) == 0) return repeat(ip, a, y, out);
    if (op == OP_MUL && b_seq && as_int(a, &x) == 0) return repeat(ip, b, x, out);
    return type_error(ip, names[op], a, b);
}

/* ITEM in CONTAINER */
static int contains(interp *ip, jv container, jv item, bool *out) {
    switch (container.kind) {
    case JV_UNDEFINED: *out = false; return 0;
    case JV_STRING:
        if (item.kind != JV_STRING)
            return ip_fail(ip, "'in <string>' requires string as left operand, not %s",
                           jv_type_name(item));
        if (count_work(ip, container.s.n)) return -1;
        *out = item.s.n == 0 || (item.s.n <= container.s.n &&
                                 memmem(container.s.p, container.s.n, item.s.p, item.s.n));
        return 0;
    case JV_LIST:
        *out = false;
        for (size_t i = 0; i < container.list->len && !*out; i++)
            if (ip_eq(ip, container.list->items[i], item, out)) return -1;
        return 0;
    case JV_DICT:
        if ((item.kind == JV_LIST && !item.list->tuple) || item.kind == JV_DICT)
            return ip_fail(ip, "unhashable type: '%s'", jv_type_name(item));
        if (count_work(ip, (uint64_t)container.dict->len * ITEM_WORK)) return -1;
        *out = jv_dict_find(container.dict, item) != NULL;
        return 0;
    default: return ip_fail(ip, "argument of type '%s' is not iterable", jv_type_name(container));
    }
}

static int compare(interp *ip, cmp_kind op, jv a, jv b, bool *out) {
    int c;
    switch (op) {
    case CMP_EQ:
    case CMP_NE:
        if (ip_eq(ip, a, b, out)) return -1;
        *out = *out == (op == CMP_EQ);
        return 0;
    case CMP_IN: return contains(ip, b, a, out);
    case CMP_NOT_IN:
        if (contains(ip, b, a, out)) return -1;
        *out = !*out;
        return 0;
    default:
        if (a.kind == JV_UNDEFINED) return undefined_error(ip, a);
        if (b.kind == JV_UNDEFINED) return undefined_error(ip, b);
        if (jv_compare(ip, a, b, &c)) return -1;
        *out = op == CMP_LT ? c < 0 : op == CMP_LE ? c <= 0 : op == CMP_GT ? c > 0 : c >= 0;
        return 0;
    }
}

/* Evaluates the arguments of a call, filter or test. */
static int eval_args(interp *ip, scope *sc, const ast_args *a, jv_args *out) {
    jv *pos = NULL, *kw = NULL;
    if (a->pos.len && !(pos = ip_alloc(ip, a->pos.len * sizeof(jv)))) return -1;
    if (a->n_kw && !(kw = ip_alloc(ip, a->n_kw * sizeof(jv)))) return -1;
    for (size_t i = 0; i < a->pos.len; i++)
        if (eval(ip, sc, a->pos.items[i], &pos[i])) return -1;
    for (size_t i = 0; i < a->n_kw; i++)
        if (eval(ip, sc, a->kw_values[i], &kw[i])) return -1;
    *out = (jv_args){pos, a->pos.len, a->kw_names, kw, a->n_kw};
    return 0;
}

static int eval_slice(interp *ip, scope *sc, const node *n, jv *out);

static int eval_node(interp *ip, scope *sc, const node *n, jv *out) {
    jv a, b;
    jv_args args;
    switch (n->kind) {
    case N_CONST: *out = n->constant; return 0;
    case N_NAME: {
        jv *v = scope_find(sc, n->name);
        if (v)
            *out = *v;
        else if (!find_global(n->name, out))
            *out = jv_undefined(n);
        return 0;
    }
    case N_GETATTR: return eval(ip, sc, n->attr.obj, &a) || get_attr(ip, a, n->attr.name, n, out);
    case N_GETITEM:
        return eval(ip, sc, n->item.obj, &a) || eval(ip, sc, n->item.index, &b) || count_str_work(ip, a) ||
               get_item(ip, a, b, n, out);
    case N_SLICE: return eval_slice(ip, sc, n, out);
    case N_CALL: /* a string method scans its string */
        return eval(ip, sc, n->call.callee, &a) || eval_args(ip, sc, &n->call.args, &args) ||
               (a.kind == JV_FUNC && count_str_work(ip, a.func->self)) || call_value(ip, a, &args, out);
    case N_FILTER:
        return eval(ip, sc, n->filter.operand, &a) || eval_args(ip, sc, &n->filter.args, &args) ||
               count_str_work(ip, a) || apply_filter(ip, n->filter.name, a, &args, out);
    case N_TEST: {
        bool r;
        if (eval(ip, sc, n->filter.operand, &a) || eval_args(ip, sc, &n->filter.args, &args) ||
            count_str_work(ip, a) || apply_test(ip, n->filter.name, a, &args, &r))
            return -1;
        *out = jv_bool(r != n->filter.negated);
        return 0;
    }
    case N_NEG:
    case N_POS:
        if (eval(ip, sc, n->unary.operand, &a)) return -1;
        if (a.kind == JV_BOOL) a = jv_int(a.b);
        if (a.kind == JV_INT && n->kind == N_NEG) {
            if (a.i == INT64_MIN)
                return ip_fail(ip, "integer overflow (values are limited to 64 bits)");
            *out = jv_int(-a.i);
        } else if (a.kind == JV_FLOAT && n->kind == N_NEG) {
            *out = jv_float(-a.f);
        } else if (a.kind == JV_INT || a.kind == JV_FLOAT) {
            *out = a;
        } else {
            if (a.kind == JV_UNDEFINED) return undefined_error(ip, a);
            return ip_fail(ip, "bad operand type for unary %s: '%s'", n->kind == N_NEG ? "-" : "+",
                           jv_type_name(a));
        }
        return 0;
    case N_NOT:
        if (eval(ip, sc, n->unary.operand, &a)) return -1;
        *out = jv_bool(!jv_truthy(a));
        return 0;
    case N_BINOP:
        return eval(ip, sc, n->binop.left, &a) || eval(ip, sc, n->binop.right, &b) ||
               eval_binop(ip, n->binop.op, a, b, out);
    case N_AND:
    case N_OR:
        if (eval(ip, sc, n->binop.left, &a)) return -1;
        if (jv_truthy(a) == (n->kind == N_OR)) {
            *out = a;
            return 0;
        }
        return eval(ip, sc, n->binop.right, out);
    case N_COMPARE: {
        if (eval(ip, sc, n->compare.first, &a)) return -1;
        bool r = true;
        for (size_t i = 0; i < n->compare.n && r; i++) {
            if (eval(ip, sc, n->compare.rest[i], &b) || compare(ip, n->compare.ops[i], a, b, &r))
                return -1;
            a = b;
        }
        *out = jv_bool(r);
        return 0;
    }
    case N_COND:
        if (eval(ip, sc, n->cond.cond, &a)) return -1;
        if (jv_truthy(a)) return eval(ip, sc, n->cond.then, out);
        if (n->cond.otherwise) return eval(ip, sc, n->cond.otherwise, out);
        *out = jv_undefined(n);
        return 0;
    case N_LIST:
    case N_TUPLE:
        if (jv_new_list(ip, n->items.len, out)) return -1;
        out->list->tuple = n->kind == N_TUPLE;
        for (size_t i = 0; i < n->items.len; i++)
            if (eval(ip, sc, n->items.items[i], &a) || jv_list_push(ip, out->list, a)) return -1;
        return 0;
    case N_DICT:
        if (jv_new_dict(ip, JV_DICT, out)) return -1;
        for (size_t i = 0; i < n->dict.keys.len; i++) {
            if (eval(ip, sc, n->dict.keys.items[i], &a) ||
                eval(ip, sc, n->dict.values.items[i], &b))
                return -1;
            if (a.kind == JV_LIST && !a.list->tuple) return ip_fail(ip, "unhashable type: 'list'");
            if (a.kind == JV_DICT) return ip_fail(ip, "unhashable type: 'dict'");
            if (jv_dict_set(ip, out->dict, a, b)) return -1;
        }
        return 0;
    default: return ip_fail(ip, "statement used as an expression");
    }
}

int eval(interp *ip, scope *sc, const node *n, jv *out) {
    if (count_step(ip)) return ip_locate(ip, n);
    if (++ip->depth > ip->max_depth) {
        ip->depth--;
        ip_fail(ip, "template recursion deeper than %d levels", ip->max_depth);
        return ip_locate(ip, n);
    }
    int rc = eval_node(ip, sc, n, out);
    ip->depth--;
    return rc ? ip_locate(ip, n) : 0;
}

/* ---- slices ---- */

/* Python's slice.indices(): the first index and the count of the slice
 * [start:stop:step] of a sequence of LEN. */
static int slice_indices(interp *ip, jv start_v, jv stop_v, jv step_v, int64_t len, int64_t *start,
                         int64_t *step, int64_t *count) {
    int64_t st = 1, lo = 0, hi = 0;
    jv parts[3] = {start_v, stop_v, step_v};
    for (int i = 0; i < 3; i++)
        if (parts[i].kind != JV_NONE && parts[i].kind != JV_INT && parts[i].kind != JV_BOOL)
            return ip_fail(ip, "slice indices must be integers or None, not %s",
                           jv_type_name(parts[i]));
    if (step_v.kind != JV_NONE) as_int(step_v, &st);
    if (st == 0) return ip_fail(ip, "slice step cannot be zero");
    if (st == INT64_MIN) st = -INT64_MAX;
    if (start_v.kind == JV_NONE) {
        lo = st < 0 ? len - 1 : 0;
    } else {
        as_int(start_v, &lo);
        if (lo < 0 && (lo += len) < 0)
            lo = st < 0 ? -1 : 0;
        else if (lo >= len)
            lo = st < 0 ? len - 1 : len;
    }
    if (stop_v.kind == JV_NONE) {
        hi = st < 0 ? -1 : len;
    } else {
        as_int(stop_v, &hi);
        if (hi < 0 && (hi += len) < 0)
            hi = st < 0 ? -1 : 0;
        else if (hi >= len)
            hi = st < 0 ? len - 1 : len;
    }
    if (st < 0)
        *count = hi < lo ? (lo - hi - 1) / (-st) + 1 : 0;
    else
        *count = lo < hi ? (hi - lo - 1) / st + 1 : 0;
    *start = lo;
    *step = st;
    return 0;
}

static int eval_slice(interp *ip, scope *sc, const node *n, jv *out) {
    jv obj, parts[3] = {jv_none(), jv_none(), jv_none()};
    const node *exprs[3] = {n->slice.start, n->slice.stop, n->slice.step};
    /* a slice inside a tuple subscript (x[:, 1]) has no object of its own: Python
     * builds a slice object there, which no list, string or dict takes (found by
     * fuzz_jinja: it used to be evaluated as a NULL node) */
    if (!n->slice.obj) return ip_fail(ip, "unhashable type: 'slice'");
    if (eval(ip, sc, n->slice.obj, &obj)) return -1;
    for (int i = 0; i < 3; i++)
        if (exprs[i] && eval(ip, sc, exprs[i], &parts[i])) return -1;
    if (obj.kind == JV_UNDEFINED) return undefined_error(ip, obj);
    /* Jinja compiles slices to plain Python subscripts: no undefined fallback */
    if (obj.kind == JV_DICT) return ip_fail(ip, "unhashable type: 'slice'");
    if ((obj.kind != JV_STRING && obj.kind != JV_LIST) || (obj.kind == JV_LIST && obj.list->lazy))
        return ip_fail(ip, "'%s' object is not subscriptable", jv_type_name(obj));
    if (count_str_work(ip, obj)) return -1;
    int64_t len = obj.kind == JV_STRING ? (int64_t)ustr_len(obj.s) : (int64_t)obj.list->len;
    int64_t start = 0, step = 1, count = 0;
    if (slice_indices(ip, parts[0], parts[1], parts[2], len, &start, &step, &count)) return -1;
    if (obj.kind == JV_STRING && (step == 1 || count == 0)) {
        size_t from = ustr_offset(obj.s, (size_t)start);
        jv_str rest = {obj.s.p + from, obj.s.n - from};
        *out = jv_string(rest.p, ustr_offset(rest, (size_t)count));
        return 0;
    }
    if (obj.kind == JV_STRING) {
        jv_list *chars;
        if (iterate(ip, obj, &chars)) return -1;
        sbuf b = ip_capture(ip);
        for (int64_t i = 0; i < count; i++) {
            jv_str c = chars->items[start + i * step].s;
            if (ip_append(ip, &b, c.p, c.n)) {
                sb_free(&b);
                return -1;
            }
        }
        return ip_str_from_sb(ip, &b, out);
    }
    const jv_list *seq = obj.list;
    if (jv_new_list(ip, (size_t)count, out)) return -1;
    out->list->tuple = obj.list->tuple;
    for (int64_t i = 0; i < count; i++)
        if (jv_list_push(ip, out->list, seq->items[start + i * step])) return -1;
    return 0;
}
