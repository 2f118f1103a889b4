/* parse.h - the parser's private state and helpers, shared by parser.c
 * (statements) and parse_expr.c (expressions). */
#ifndef LAMINA_CHAT_PARSE_H
#define LAMINA_CHAT_PARSE_H

#include "chat/parser.h"

typedef struct parser {
    chat_arena *a;
    lm_error *err;
    const lexed *lx;
    size_t i;       /* current token */
    int depth;      /* nesting of parse_expression / statement bodies */
    int loop_depth; /* for bodies around the current statement (break/continue) */
} parser;

/* growable node array in the arena (old arrays are left behind: templates are small) */
typedef struct nvec {
    node **items;
    size_t len, cap;
} nvec;

static inline const token *cur(const parser *ps) { return &ps->lx->toks[ps->i]; }
static inline const token *peek(const parser *ps) {
    return ps->i + 1 < ps->lx->n ? &ps->lx->toks[ps->i + 1] : cur(ps);
}
static inline const token *advance(parser *ps) {
    const token *t = cur(ps);
    if (t->kind != TK_EOF) ps->i++;
    return t;
}
static inline bool is_op(const parser *ps, tok_op op) {
    return cur(ps)->kind == TK_OP && cur(ps)->op == op;
}
static inline bool is_name(const token *t, const char *name) {
    return t->kind == TK_NAME && jv_str_eq(t->s, name, __builtin_strlen(name));
}
static inline bool at_name(const parser *ps, const char *name) { return is_name(cur(ps), name); }
static inline bool skip_op(parser *ps, tok_op op) {
    if (!is_op(ps, op)) return false;
    advance(ps);
    return true;
}
static inline bool skip_name(parser *ps, const char *name) {
    if (!at_name(ps, name)) return false;
    advance(ps);
    return true;
}

/* "chat template L:C: what" at token T; returns -1. */
__attribute__((format(printf, 3, 4))) int fail_at(parser *ps, const token *t, const char *fmt, ...);
/* "expected WANTED, got X" (or "unexpected X" when WANTED is NULL); returns -1. */
int fail_unexpected(parser *ps, const char *wanted);
int expect_op(parser *ps, tok_op op);
int expect_kind(parser *ps, tok_kind kind, const char *what);
node *new_node(parser *ps, node_kind kind, const token *at);
/* The node's span ends where the previous token ends. */
void finish(parser *ps, node *n);
int nvec_push(parser *ps, nvec *v, node *n);
static inline node_list nvec_list(nvec v) { return (node_list){v.items, v.len}; }
/* One nesting level more; -1 past PARSE_MAX_DEPTH. */
int enter(parser *ps);

/* ---- expressions (parse_expr.c) ---- */
node *parse_expression(parser *ps, bool with_condexpr);
/* A tuple when commas separate expressions, else the one expression;
 * EXTRA_END is a keyword that also ends it ("in", "recursive"). */
node *parse_tuple(parser *ps, bool with_condexpr, const char *extra_end, bool explicit_parens);
/* True at a token that ends a tuple. */
bool tuple_end(const parser *ps, const char *extra_end);
/* One "name(args)" of a filter chain (the pipe already consumed). */
node *parse_one_filter(parser *ps, node *operand);

#endif
