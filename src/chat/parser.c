/* parser.c - recursive-descent parser for the Jinja subset (see parser.h):
 * the statements and the token helpers; expressions are in parse_expr.c. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "chat/parse.h"

static void describe(const token *t, char *buf, size_t cap) {
    switch (t->kind) {
    case TK_EOF: snprintf(buf, cap, "end of template"); break;
    case TK_DATA: snprintf(buf, cap, "template data"); break;
    case TK_VAR_BEGIN: snprintf(buf, cap, "'{{'"); break;
    case TK_VAR_END: snprintf(buf, cap, "end of print statement"); break;
    case TK_BLOCK_BEGIN: snprintf(buf, cap, "'{%%'"); break;
    case TK_BLOCK_END: snprintf(buf, cap, "end of statement block"); break;
    case TK_NAME: snprintf(buf, cap, "'%.*s'", (int)(t->s.n > 40 ? 40 : t->s.n), t->s.p); break;
    case TK_STRING: snprintf(buf, cap, "string"); break;
    case TK_INT:
    case TK_FLOAT: snprintf(buf, cap, "number"); break;
    case TK_OP: snprintf(buf, cap, "'%s'", tok_op_text(t->op)); break;
    }
}

int fail_at(parser *ps, const token *t, const char *fmt, ...) {
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    lm_error_set(ps->err, "chat template %u:%u: %s", t->line, t->col, what);
    return -1;
}

int fail_unexpected(parser *ps, const char *wanted) {
    char got[64];
    describe(cur(ps), got, sizeof(got));
    if (wanted) return fail_at(ps, cur(ps), "expected %s, got %s", wanted, got);
    return fail_at(ps, cur(ps), "unexpected %s", got);
}

int expect_op(parser *ps, tok_op op) {
    if (skip_op(ps, op)) return 0;
    char want[16];
    snprintf(want, sizeof(want), "'%s'", tok_op_text(op));
    return fail_unexpected(ps, want);
}
int expect_kind(parser *ps, tok_kind kind, const char *what) {
    if (cur(ps)->kind != kind) return fail_unexpected(ps, what);
    advance(ps);
    return 0;
}

node *new_node(parser *ps, node_kind kind, const token *at) {
    node *n = arena_alloc(ps->a, sizeof(node));
    if (!n) {
        fail_at(ps, at, "out of memory");
        return NULL;
    }
    memset(n, 0, sizeof(*n));
    n->kind = kind;
    n->line = at->line;
    n->col = at->col;
    n->src_pos = at->pos;
    return n;
}

void finish(parser *ps, node *n) {
    const token *last = &ps->lx->toks[ps->i ? ps->i - 1 : 0];
    uint32_t end = last->pos + last->len;
    n->src_len = end > n->src_pos ? end - n->src_pos : 0;
}

int nvec_push(parser *ps, nvec *v, node *n) {
    if (v->len == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 4;
        node **items = arena_alloc(ps->a, cap * sizeof(node *));
        if (!items) return fail_at(ps, cur(ps), "out of memory");
        if (v->len) memcpy(items, v->items, v->len * sizeof(node *));
        v->items = items;
        v->cap = cap;
    }
    v->items[v->len++] = n;
    return 0;
}

int enter(parser *ps) {
    if (++ps->depth > PARSE_MAX_DEPTH)
        return fail_at(ps, cur(ps), "template nested too deeply (more than %d levels)",
                       PARSE_MAX_DEPTH);
    return 0;
}

/* ---- statements ---- */

static int parse_body(parser *ps, const char *const *ends, node_list *out);

/* name | name, name | (name, name) | ns.attr (WITH_NAMESPACE) */
static int parse_target(parser *ps, ast_target *tgt, bool with_namespace, const char *extra_end) {
    jv_str names[16];
    size_t n = 0;
    bool parens = skip_op(ps, OPT_LPAREN);
    memset(tgt, 0, sizeof(*tgt));
    for (;;) {
        if (cur(ps)->kind != TK_NAME) return fail_unexpected(ps, "a name");
        if (n == 16) return fail_at(ps, cur(ps), "too many names to unpack");
        names[n++] = advance(ps)->s;
        if (with_namespace && n == 1 && !parens && is_op(ps, OPT_DOT)) {
            advance(ps);
            if (cur(ps)->kind != TK_NAME) return fail_unexpected(ps, "an attribute name");
            tgt->attr = advance(ps)->s;
            break;
        }
        if (!skip_op(ps, OPT_COMMA)) break;
        tgt->unpack = true;
        if ((parens && is_op(ps, OPT_RPAREN)) || tuple_end(ps, extra_end) || at_name(ps, "in") ||
            is_op(ps, OPT_ASSIGN))
            break;
    }
    if (parens && expect_op(ps, OPT_RPAREN)) return -1;
    tgt->names = arena_alloc(ps->a, n * sizeof(jv_str));
    if (!tgt->names) return fail_at(ps, cur(ps), "out of memory");
    memcpy(tgt->names, names, n * sizeof(jv_str));
    tgt->n_names = n;
    return 0;
}

static int block_end(parser *ps) {
    skip_op(ps, OPT_COLON);
    return expect_kind(ps, TK_BLOCK_END, "end of statement block");
}

static int parse_params(parser *ps, ast_params *p) {
    jv_str names[64];
    node *defaults[64];
    size_t n = 0;
    if (expect_op(ps, OPT_LPAREN)) return -1;
    while (!is_op(ps, OPT_RPAREN)) {
        if (n && expect_op(ps, OPT_COMMA)) return -1;
        if (cur(ps)->kind != TK_NAME) return fail_unexpected(ps, "a parameter name");
        if (n == 64) return fail_at(ps, cur(ps), "too many parameters");
        names[n] = advance(ps)->s;
        defaults[n] = NULL;
        if (skip_op(ps, OPT_ASSIGN)) {
            if (!(defaults[n] = parse_expression(ps, true))) return -1;
        } else if (n && defaults[n - 1]) {
            return fail_at(ps, cur(ps), "non-default argument follows default argument");
        }
        n++;
    }
    advance(ps);
    p->n = n;
    p->names = arena_alloc(ps->a, (n ? n : 1) * sizeof(jv_str));
    p->defaults = arena_alloc(ps->a, (n ? n : 1) * sizeof(node *));
    if (!p->names || !p->defaults) return fail_at(ps, cur(ps), "out of memory");
    memcpy(p->names, names, n * sizeof(jv_str));
    memcpy(p->defaults, defaults, n * sizeof(node *));
    return 0;
}

/* "| f | g(x)" chain of a filter block or block set; the first pipe optional. */
static int parse_filter_chain(parser *ps, node_list *out, bool first_inline) {
    nvec v = {0};
    while (first_inline || is_op(ps, OPT_PIPE)) {
        if (!first_inline) advance(ps);
        first_inline = false;
        node *f = parse_one_filter(ps, NULL);
        if (!f || nvec_push(ps, &v, f)) return -1;
    }
    *out = nvec_list(v);
    return 0;
}

static int parse_if(parser *ps, node *n) {
    static const char *const ends[] = {"endif", "elif", "else", NULL};
    if (!(n->if_.cond = parse_tuple(ps, false, NULL, false)) || block_end(ps)) return -1;
    if (parse_body(ps, ends, &n->if_.body)) return -1;
    const token *t = advance(ps);
    if (is_name(t, "elif")) {
        node *inner = new_node(ps, N_IF, t), **items = arena_alloc(ps->a, sizeof(node *));
        if (!inner || !items) return -1;
        if (enter(ps) || parse_if(ps, inner)) return -1;
        ps->depth--;
        items[0] = inner;
        n->if_.orelse = (node_list){items, 1};
        return 0;
    }
    if (is_name(t, "else")) {
        static const char *const endif[] = {"endif", NULL};
        if (block_end(ps) || parse_body(ps, endif, &n->if_.orelse)) return -1;
        advance(ps);
    }
    return 0;
}

static int parse_for(parser *ps, node *n) {
    static const char *const ends[] = {"endfor", "else", NULL};
    static const char *const endfor[] = {"endfor", NULL};
    if (parse_target(ps, &n->for_.target, false, "in")) return -1;
    if (!skip_name(ps, "in")) return fail_unexpected(ps, "'in'");
    if (!(n->for_.iter = parse_tuple(ps, false, "recursive", false))) return -1;
    if (skip_name(ps, "if") && !(n->for_.filter = parse_expression(ps, true))) return -1;
    if (at_name(ps, "recursive")) return fail_at(ps, cur(ps), "recursive loops are not supported");
    ps->loop_depth++;
    int rc = block_end(ps) || parse_body(ps, ends, &n->for_.body);
    ps->loop_depth--;
    if (rc) return -1;
    if (is_name(advance(ps), "else")) {
        if (block_end(ps) || parse_body(ps, endfor, &n->for_.orelse)) return -1;
        advance(ps);
    }
    return 0;
}

static int parse_set(parser *ps, node *n) {
    static const char *const endset[] = {"endset", NULL};
    ast_target tgt;
    if (parse_target(ps, &tgt, true, NULL)) return -1;
    if (skip_op(ps, OPT_ASSIGN)) {
        n->set.target = tgt;
        return (n->set.value = parse_tuple(ps, true, NULL, false)) ? 0 : -1;
    }
    n->kind = N_SET_BLOCK;
    n->set_block.target = tgt;
    if (parse_filter_chain(ps, &n->set_block.filters, false) || block_end(ps)) return -1;
    if (parse_body(ps, endset, &n->set_block.body)) return -1;
    advance(ps);
    return 0;
}

/* One {% ... %} statement; the block begin and the keyword are consumed. */
static int parse_statement(parser *ps, const token *kw, nvec *out) {
    static const char *const endmacro[] = {"endmacro", NULL}, *const endcall[] = {"endcall", NULL},
                             *const endfilter[] = {"endfilter", NULL},
                             *const endgen[] = {"endgeneration", NULL};
    node *n = new_node(ps, N_IF, kw);
    if (!n || enter(ps)) return -1;
    int rc;
    if (is_name(kw, "if")) {
        rc = parse_if(ps, n);
    } else if (is_name(kw, "for")) {
        n->kind = N_FOR;
        rc = parse_for(ps, n);
    } else if (is_name(kw, "set")) {
        n->kind = N_SET;
        rc = parse_set(ps, n);
    } else if (is_name(kw, "macro")) {
        n->kind = N_MACRO;
        if (cur(ps)->kind != TK_NAME) return fail_unexpected(ps, "a macro name");
        n->macro.name = advance(ps)->s;
        int loops = ps->loop_depth; /* a macro body is outside every loop */
        ps->loop_depth = 0;
        rc = parse_params(ps, &n->macro.params) || block_end(ps) ||
             parse_body(ps, endmacro, &n->macro.body);
        ps->loop_depth = loops;
        advance(ps);
    } else if (is_name(kw, "call")) {
        n->kind = N_CALL_BLOCK;
        if (is_op(ps, OPT_LPAREN) && parse_params(ps, &n->call_block.params)) return -1;
        if (!(n->call_block.call = parse_expression(ps, true))) return -1;
        if (n->call_block.call->kind != N_CALL) return fail_at(ps, kw, "expected a call");
        int loops = ps->loop_depth;
        ps->loop_depth = 0;
        rc = block_end(ps) || parse_body(ps, endcall, &n->call_block.body);
        ps->loop_depth = loops;
        advance(ps);
    } else if (is_name(kw, "filter")) {
        n->kind = N_FILTER_BLOCK;
        rc = parse_filter_chain(ps, &n->filter_block.filters, true) || block_end(ps) ||
             parse_body(ps, endfilter, &n->filter_block.body);
        advance(ps);
    } else if (is_name(kw, "generation")) {
        n->kind = N_GENERATION;
        rc = block_end(ps) || parse_body(ps, endgen, &n->body);
        advance(ps);
    } else if (is_name(kw, "break") || is_name(kw, "continue")) {
        n->kind = is_name(kw, "break") ? N_BREAK : N_CONTINUE;
        if (ps->loop_depth == 0)
            return fail_at(ps, kw, "'%s' outside loop", n->kind == N_BREAK ? "break" : "continue");
        rc = 0;
    } else {
        return fail_at(ps, kw, "unknown or unsupported tag '%.*s'",
                       (int)(kw->s.n > 40 ? 40 : kw->s.n), kw->s.p);
    }
    if (rc) return -1;
    ps->depth--;
    return nvec_push(ps, out, n) || expect_kind(ps, TK_BLOCK_END, "end of statement block");
}

static bool is_end(const token *t, const char *const *ends) {
    for (; ends && *ends; ends++)
        if (is_name(t, *ends)) return true;
    return false;
}

/* Statements until a block whose keyword is one of ENDS (left as the
 * current token) or, when ENDS is NULL, the end of the template. */
static int parse_body(parser *ps, const char *const *ends, node_list *out) {
    nvec v = {0};
    for (;;) {
        const token *t = cur(ps);
        if (t->kind == TK_EOF) {
            if (!ends) break;
            return fail_at(ps, t, "unexpected end of template, expected '%s'", ends[0]);
        }
        advance(ps);
        if (t->kind == TK_DATA) {
            node *n = new_node(ps, N_TEXT, t);
            if (!n || nvec_push(ps, &v, n)) return -1;
            n->text = t->s;
        } else if (t->kind == TK_VAR_BEGIN) {
            node *n = new_node(ps, N_OUTPUT, t);
            if (!n || !(n->expr = parse_tuple(ps, true, NULL, false))) return -1;
            if (expect_kind(ps, TK_VAR_END, "end of print statement") || nvec_push(ps, &v, n))
                return -1;
        } else if (t->kind == TK_BLOCK_BEGIN) {
            const token *kw = cur(ps);
            if (kw->kind != TK_NAME) return fail_unexpected(ps, "a statement name");
            if (is_end(kw, ends)) break;
            advance(ps);
            if (parse_statement(ps, kw, &v)) return -1;
        } else {
            return fail_at(ps, t, "unexpected token");
        }
    }
    *out = nvec_list(v);
    return 0;
}

int parse_template(chat_arena *a, const lexed *lx, node_list *body, lm_error *err) {
    parser ps = {.a = a, .err = err, .lx = lx};
    return parse_body(&ps, NULL, body);
}
