/* parse_expr.c - expressions, with Jinja2's precedence from lowest to
 * highest: conditional (x if c else y), or, and, not, comparisons (chained,
 * in, not in), + -, ~, * / // %, **, unary - +, then filters, tests, calls,
 * attributes and subscripts. Left-associative chains are built by loops, so
 * their depth is checked after parsing (template.c), not here. */
#include <string.h>

#include "chat/parse.h"

static node *parse_unary(parser *ps, bool with_filter);
static node *parse_primary(parser *ps);
static node *parse_postfix(parser *ps, node *n);

/* ---- call arguments, filters, tests ---- */

static int parse_call_args(parser *ps, ast_args *args) {
    const token *open = cur(ps);
    if (expect_op(ps, OPT_LPAREN)) return -1;
    nvec pos = {0}, kw = {0};
    jv_str names[64];
    bool require_comma = false;
    while (!is_op(ps, OPT_RPAREN)) {
        if (require_comma) {
            if (expect_op(ps, OPT_COMMA)) return -1;
            if (is_op(ps, OPT_RPAREN)) break;
        }
        if (is_op(ps, OPT_MUL) || is_op(ps, OPT_POW))
            return fail_at(ps, cur(ps), "*args and **kwargs in calls are not supported");
        if (cur(ps)->kind == TK_NAME && peek(ps)->kind == TK_OP && peek(ps)->op == OPT_ASSIGN) {
            if (kw.len == 64) return fail_at(ps, cur(ps), "too many keyword arguments");
            names[kw.len] = advance(ps)->s;
            advance(ps);
            node *value = parse_expression(ps, true);
            if (!value || nvec_push(ps, &kw, value)) return -1;
        } else {
            if (kw.len) return fail_at(ps, open, "positional argument follows keyword argument");
            node *value = parse_expression(ps, true);
            if (!value || nvec_push(ps, &pos, value)) return -1;
        }
        require_comma = true;
    }
    advance(ps);
    args->pos = nvec_list(pos);
    args->kw_values = kw.items;
    args->n_kw = kw.len;
    if (kw.len) {
        args->kw_names = arena_alloc(ps->a, kw.len * sizeof(jv_str));
        if (!args->kw_names) return fail_at(ps, open, "out of memory");
        memcpy(args->kw_names, names, kw.len * sizeof(jv_str));
    }
    return 0;
}

/* name(.name)* as one dotted name: filters and tests may be namespaced. */
static int parse_dotted_name(parser *ps, jv_str *name) {
    const token *t = cur(ps);
    if (t->kind != TK_NAME) return fail_unexpected(ps, "a name");
    advance(ps);
    while (is_op(ps, OPT_DOT)) {
        advance(ps);
        if (expect_kind(ps, TK_NAME, "a name")) return -1;
    }
    const token *last = &ps->lx->toks[ps->i - 1];
    *name = (jv_str){ps->lx->src + t->pos, last->pos + last->len - t->pos};
    return 0;
}

/* OPERAND may be NULL (filter blocks, block sets). */
node *parse_one_filter(parser *ps, node *operand) {
    node *f = new_node(ps, N_FILTER, cur(ps));
    if (!f || parse_dotted_name(ps, &f->filter.name)) return NULL;
    f->filter.operand = operand;
    if (operand) f->src_pos = operand->src_pos; /* quoted from the operand on */
    if (is_op(ps, OPT_LPAREN) && parse_call_args(ps, &f->filter.args)) return NULL;
    finish(ps, f);
    return f;
}

static node *parse_test(parser *ps, node *operand) {
    node *t = new_node(ps, N_TEST, advance(ps)); /* "is" */
    if (!t) return NULL;
    t->filter.operand = operand;
    t->src_pos = operand->src_pos;
    t->filter.negated = skip_name(ps, "not");
    if (parse_dotted_name(ps, &t->filter.name)) return NULL;
    const token *c = cur(ps);
    if (is_op(ps, OPT_LPAREN)) {
        if (parse_call_args(ps, &t->filter.args)) return NULL;
    } else if ((c->kind == TK_NAME || c->kind == TK_STRING || c->kind == TK_INT ||
                c->kind == TK_FLOAT ||
                (c->kind == TK_OP && (c->op == OPT_LBRACKET || c->op == OPT_LBRACE))) &&
               !is_name(c, "else") && !is_name(c, "or") && !is_name(c, "and")) {
        if (is_name(c, "is")) {
            fail_at(ps, c, "you cannot chain multiple tests with is");
            return NULL;
        }
        node *arg = parse_primary(ps);
        if (!arg || !(arg = parse_postfix(ps, arg))) return NULL;
        node **items = arena_alloc(ps->a, sizeof(node *));
        if (!items) {
            fail_at(ps, c, "out of memory");
            return NULL;
        }
        items[0] = arg;
        t->filter.args.pos = (node_list){items, 1};
    }
    finish(ps, t);
    return t;
}

static node *parse_call(parser *ps, node *callee) {
    node *c = new_node(ps, N_CALL, cur(ps));
    if (!c) return NULL;
    c->line = callee->line, c->col = callee->col, c->src_pos = callee->src_pos;
    c->call.callee = callee;
    if (parse_call_args(ps, &c->call.args)) return NULL;
    finish(ps, c);
    return c;
}

static node *parse_filter_expr(parser *ps, node *n) {
    while (n) {
        if (is_op(ps, OPT_PIPE)) {
            advance(ps);
            n = parse_one_filter(ps, n);
        } else if (at_name(ps, "is")) {
            n = parse_test(ps, n);
        } else if (is_op(ps, OPT_LPAREN)) {
            n = parse_call(ps, n);
        } else {
            break;
        }
    }
    return n;
}

/* ---- primary and postfix ---- */

static node *parse_subscribed(parser *ps) {
    const token *start = cur(ps);
    node *parts[3] = {NULL, NULL, NULL};
    if (!is_op(ps, OPT_COLON)) {
        node *e = parse_expression(ps, true);
        if (!e || !is_op(ps, OPT_COLON)) return e;
        parts[0] = e;
    }
    advance(ps); /* ':' */
    if (!is_op(ps, OPT_COLON) && !is_op(ps, OPT_RBRACKET) && !is_op(ps, OPT_COMMA)) {
        if (!(parts[1] = parse_expression(ps, true))) return NULL;
    }
    if (skip_op(ps, OPT_COLON) && !is_op(ps, OPT_RBRACKET) && !is_op(ps, OPT_COMMA)) {
        if (!(parts[2] = parse_expression(ps, true))) return NULL;
    }
    node *s = new_node(ps, N_SLICE, start);
    if (!s) return NULL;
    s->slice.start = parts[0], s->slice.stop = parts[1], s->slice.step = parts[2];
    return s;
}

static node *parse_subscript(parser *ps, node *obj) {
    const token *t = advance(ps);
    if (t->op == OPT_DOT) {
        const token *attr = cur(ps);
        if (attr->kind == TK_NAME) {
            advance(ps);
            node *n = new_node(ps, N_GETATTR, t);
            if (!n) return NULL;
            n->attr.obj = obj, n->attr.name = attr->s;
            n->line = obj->line, n->col = obj->col, n->src_pos = obj->src_pos;
            finish(ps, n);
            return n;
        }
        if (attr->kind != TK_INT) {
            fail_unexpected(ps, "a name or number");
            return NULL;
        }
        advance(ps);
        node *index = new_node(ps, N_CONST, attr), *n = new_node(ps, N_GETITEM, t);
        if (!index || !n) return NULL;
        index->constant = jv_int(attr->i);
        n->item.obj = obj, n->item.index = index;
        n->line = obj->line, n->col = obj->col, n->src_pos = obj->src_pos;
        finish(ps, n);
        return n;
    }
    nvec args = {0};
    while (!is_op(ps, OPT_RBRACKET)) {
        if (args.len && expect_op(ps, OPT_COMMA)) return NULL;
        if (is_op(ps, OPT_RBRACKET)) break;
        node *a = parse_subscribed(ps);
        if (!a || nvec_push(ps, &args, a)) return NULL;
    }
    if (expect_op(ps, OPT_RBRACKET)) return NULL;
    if (args.len == 0) {
        fail_at(ps, t, "expected a subscript");
        return NULL;
    }
    node *n;
    if (args.len == 1 && args.items[0]->kind == N_SLICE) {
        n = args.items[0];
        n->slice.obj = obj;
    } else {
        n = new_node(ps, N_GETITEM, t);
        if (!n) return NULL;
        n->item.obj = obj;
        if (args.len == 1) {
            n->item.index = args.items[0];
        } else {
            node *tup = new_node(ps, N_TUPLE, t);
            if (!tup) return NULL;
            tup->items = nvec_list(args);
            n->item.index = tup;
        }
    }
    n->line = obj->line, n->col = obj->col, n->src_pos = obj->src_pos;
    finish(ps, n);
    return n;
}

static node *parse_postfix(parser *ps, node *n) {
    while (n) {
        if (is_op(ps, OPT_DOT) || is_op(ps, OPT_LBRACKET))
            n = parse_subscript(ps, n);
        else if (is_op(ps, OPT_LPAREN))
            n = parse_call(ps, n);
        else
            break;
    }
    return n;
}

static node *parse_list(parser *ps) {
    node *n = new_node(ps, N_LIST, advance(ps));
    nvec items = {0};
    while (n && !is_op(ps, OPT_RBRACKET)) {
        if (items.len && expect_op(ps, OPT_COMMA)) return NULL;
        if (is_op(ps, OPT_RBRACKET)) break;
        node *e = parse_expression(ps, true);
        if (!e || nvec_push(ps, &items, e)) return NULL;
    }
    if (!n || expect_op(ps, OPT_RBRACKET)) return NULL;
    n->items = nvec_list(items);
    return n;
}

static node *parse_dict(parser *ps) {
    node *n = new_node(ps, N_DICT, advance(ps));
    nvec keys = {0}, values = {0};
    while (n && !is_op(ps, OPT_RBRACE)) {
        if (keys.len && expect_op(ps, OPT_COMMA)) return NULL;
        if (is_op(ps, OPT_RBRACE)) break;
        node *k = parse_expression(ps, true);
        if (!k || expect_op(ps, OPT_COLON)) return NULL;
        node *v = parse_expression(ps, true);
        if (!v || nvec_push(ps, &keys, k) || nvec_push(ps, &values, v)) return NULL;
    }
    if (!n || expect_op(ps, OPT_RBRACE)) return NULL;
    n->dict.keys = nvec_list(keys);
    n->dict.values = nvec_list(values);
    return n;
}

static node *parse_primary(parser *ps) {
    const token *t = cur(ps);
    node *n = NULL;
    if (enter(ps)) return NULL;
    if (t->kind == TK_NAME) {
        advance(ps);
        if (!(n = new_node(ps, N_CONST, t))) return NULL;
        if (is_name(t, "true") || is_name(t, "True"))
            n->constant = jv_bool(true);
        else if (is_name(t, "false") || is_name(t, "False"))
            n->constant = jv_bool(false);
        else if (is_name(t, "none") || is_name(t, "None"))
            n->constant = jv_none();
        else
            n->kind = N_NAME, n->name = t->s;
    } else if (t->kind == TK_STRING) {
        advance(ps);
        if (!(n = new_node(ps, N_CONST, t))) return NULL;
        jv_str s = t->s;
        if (cur(ps)->kind == TK_STRING) {
            size_t total = 0;
            for (size_t j = ps->i - 1; ps->lx->toks[j].kind == TK_STRING; j++)
                total += ps->lx->toks[j].s.n;
            char *buf = arena_alloc(ps->a, total + 1);
            if (!buf) return fail_at(ps, t, "out of memory"), NULL;
            size_t k = 0;
            for (ps->i--; cur(ps)->kind == TK_STRING; advance(ps)) {
                memcpy(buf + k, cur(ps)->s.p, cur(ps)->s.n);
                k += cur(ps)->s.n;
            }
            s = (jv_str){buf, k};
        }
        n->constant = jv_string(s.p, s.n);
    } else if (t->kind == TK_INT || t->kind == TK_FLOAT) {
        advance(ps);
        if (!(n = new_node(ps, N_CONST, t))) return NULL;
        n->constant = t->kind == TK_INT ? jv_int(t->i) : jv_float(t->f);
    } else if (t->kind == TK_OP && t->op == OPT_LPAREN) {
        advance(ps);
        n = parse_tuple(ps, true, NULL, true);
        if (!n || expect_op(ps, OPT_RPAREN)) return NULL;
        n->src_pos = t->pos; /* quote "(...)" whole; the position stays inside */
    } else if (t->kind == TK_OP && t->op == OPT_LBRACKET) {
        n = parse_list(ps);
    } else if (t->kind == TK_OP && t->op == OPT_LBRACE) {
        n = parse_dict(ps);
    } else {
        fail_unexpected(ps, NULL);
        return NULL;
    }
    if (n) finish(ps, n);
    ps->depth--;
    return n;
}

/* ---- operators, lowest precedence last ---- */

static node *parse_unary(parser *ps, bool with_filter) {
    const token *t = cur(ps);
    node *n;
    if (enter(ps)) return NULL;
    if (is_op(ps, OPT_SUB) || is_op(ps, OPT_ADD)) {
        advance(ps);
        n = new_node(ps, t->op == OPT_SUB ? N_NEG : N_POS, t);
        node *operand = parse_unary(ps, false);
        if (!n || !operand) return NULL;
        n->unary.operand = operand;
    } else {
        n = parse_primary(ps);
    }
    n = parse_postfix(ps, n);
    if (with_filter) n = parse_filter_expr(ps, n);
    ps->depth--;
    return n;
}

static node *binop(parser *ps, node_kind kind, binop_kind op, const token *at, node *l, node *r) {
    if (!l || !r) return NULL;
    node *n = new_node(ps, kind, at);
    if (!n) return NULL;
    n->binop.op = op, n->binop.left = l, n->binop.right = r;
    n->line = l->line, n->col = l->col, n->src_pos = l->src_pos;
    finish(ps, n);
    return n;
}

static node *parse_pow(parser *ps) {
    node *l = parse_unary(ps, true);
    while (l && is_op(ps, OPT_POW)) {
        const token *t = advance(ps);
        l = binop(ps, N_BINOP, OP_POW, t, l, parse_unary(ps, true));
    }
    return l;
}

static node *parse_math2(parser *ps) {
    node *l = parse_pow(ps);
    while (l && cur(ps)->kind == TK_OP) {
        tok_op op = cur(ps)->op;
        binop_kind b = op == OPT_MUL        ? OP_MUL
                       : op == OPT_DIV      ? OP_DIV
                       : op == OPT_FLOORDIV ? OP_FLOORDIV
                       : op == OPT_MOD      ? OP_MOD
                                            : OP_ADD;
        if (b == OP_ADD) break;
        const token *t = advance(ps);
        l = binop(ps, N_BINOP, b, t, l, parse_pow(ps));
    }
    return l;
}

static node *parse_concat(parser *ps) {
    node *l = parse_math2(ps);
    while (l && is_op(ps, OPT_TILDE)) {
        const token *t = advance(ps);
        l = binop(ps, N_BINOP, OP_CONCAT, t, l, parse_math2(ps));
    }
    return l;
}

static node *parse_math1(parser *ps) {
    node *l = parse_concat(ps);
    while (l && (is_op(ps, OPT_ADD) || is_op(ps, OPT_SUB))) {
        const token *t = advance(ps);
        l = binop(ps, N_BINOP, t->op == OPT_ADD ? OP_ADD : OP_SUB, t, l, parse_concat(ps));
    }
    return l;
}

static node *parse_compare(parser *ps) {
    node *first = parse_math1(ps);
    cmp_kind ops[32];
    node *rest[32];
    size_t n = 0;
    while (first) {
        const token *t = cur(ps);
        cmp_kind op;
        if (t->kind == TK_OP && t->op >= OPT_EQ && t->op <= OPT_LTEQ) {
            static const cmp_kind map[] = {CMP_EQ, CMP_NE, CMP_GT, CMP_GE, CMP_LT, CMP_LE};
            op = map[t->op - OPT_EQ];
            advance(ps);
        } else if (is_name(t, "in")) {
            op = CMP_IN;
            advance(ps);
        } else if (is_name(t, "not") && is_name(peek(ps), "in")) {
            op = CMP_NOT_IN;
            advance(ps), advance(ps);
        } else {
            break;
        }
        if (n == 32) return fail_at(ps, t, "comparison chain too long"), NULL;
        ops[n] = op;
        if (!(rest[n++] = parse_math1(ps))) return NULL;
    }
    if (!first || n == 0) return first;
    node *c = new_node(ps, N_COMPARE, &ps->lx->toks[ps->i - 1]);
    if (!c) return NULL;
    c->line = first->line, c->col = first->col, c->src_pos = first->src_pos;
    c->compare.first = first;
    c->compare.n = n;
    c->compare.ops = arena_alloc(ps->a, n * sizeof(cmp_kind));
    c->compare.rest = arena_alloc(ps->a, n * sizeof(node *));
    if (!c->compare.ops || !c->compare.rest) return fail_at(ps, cur(ps), "out of memory"), NULL;
    memcpy(c->compare.ops, ops, n * sizeof(cmp_kind));
    memcpy(c->compare.rest, rest, n * sizeof(node *));
    finish(ps, c);
    return c;
}

static node *parse_not(parser *ps) {
    if (!at_name(ps, "not")) return parse_compare(ps);
    const token *t = advance(ps);
    if (enter(ps)) return NULL;
    node *n = new_node(ps, N_NOT, t), *operand = parse_not(ps);
    ps->depth--;
    if (!n || !operand) return NULL;
    n->unary.operand = operand;
    finish(ps, n);
    return n;
}

static node *parse_and(parser *ps) {
    node *l = parse_not(ps);
    while (l && at_name(ps, "and")) {
        const token *t = advance(ps);
        l = binop(ps, N_AND, OP_ADD, t, l, parse_not(ps));
    }
    return l;
}

static node *parse_or(parser *ps) {
    node *l = parse_and(ps);
    while (l && at_name(ps, "or")) {
        const token *t = advance(ps);
        l = binop(ps, N_OR, OP_ADD, t, l, parse_and(ps));
    }
    return l;
}

node *parse_expression(parser *ps, bool with_condexpr) {
    if (enter(ps)) return NULL;
    node *n = parse_or(ps);
    while (with_condexpr && n && at_name(ps, "if")) {
        const token *t = advance(ps);
        node *c = new_node(ps, N_COND, t);
        if (!c || !(c->cond.cond = parse_or(ps))) return NULL;
        if (skip_name(ps, "else") && !(c->cond.otherwise = parse_expression(ps, true))) return NULL;
        c->cond.then = n;
        c->line = n->line, c->col = n->col, c->src_pos = n->src_pos;
        finish(ps, c);
        n = c;
    }
    ps->depth--;
    return n;
}

bool tuple_end(const parser *ps, const char *extra_end) {
    const token *t = cur(ps);
    return t->kind == TK_VAR_END || t->kind == TK_BLOCK_END || t->kind == TK_EOF ||
           (t->kind == TK_OP && t->op == OPT_RPAREN) || (extra_end && is_name(t, extra_end));
}

node *parse_tuple(parser *ps, bool with_condexpr, const char *extra_end, bool explicit_parens) {
    const token *start = cur(ps);
    nvec items = {0};
    bool is_tuple = false;
    for (;;) {
        if (items.len && expect_op(ps, OPT_COMMA)) return NULL;
        if (tuple_end(ps, extra_end)) break;
        node *e = parse_expression(ps, with_condexpr);
        if (!e || nvec_push(ps, &items, e)) return NULL;
        if (!is_op(ps, OPT_COMMA)) break;
        is_tuple = true;
    }
    if (!is_tuple) {
        if (items.len) return items.items[0];
        if (!explicit_parens) return fail_unexpected(ps, "an expression"), NULL;
    }
    node *n = new_node(ps, N_TUPLE, start);
    if (!n) return NULL;
    n->items = nvec_list(items);
    finish(ps, n);
    return n;
}
