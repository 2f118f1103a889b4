/* ast.h - the syntax tree of a parsed chat template.
 *
 * A template is a list of statements; expressions hang below them. Every
 * node records where it starts (line:col, 1-based, col in characters) and
 * its source span, so errors and undefined-value messages can quote it.
 * Nodes live in the template's arena and are immutable after parsing, so
 * one parsed template may be rendered by several threads at once. */
#ifndef LAMINA_CHAT_AST_H
#define LAMINA_CHAT_AST_H

#include "chat/value.h"

typedef enum node_kind {
    /* statements */
    N_TEXT,         /* text: literal output */
    N_OUTPUT,       /* {{ expr }} */
    N_IF,           /* if_ */
    N_FOR,          /* for_ */
    N_SET,          /* set: target = value */
    N_SET_BLOCK,    /* set_block: {% set x %}body{% endset %} */
    N_MACRO,        /* macro */
    N_CALL_BLOCK,   /* call_block: {% call(params) m(args) %}body{% endcall %} */
    N_FILTER_BLOCK, /* filter_block: {% filter f %}body{% endfilter %} */
    N_BREAK,
    N_CONTINUE,
    N_GENERATION, /* {% generation %}body{% endgeneration %}: renders body */
    /* expressions */
    N_CONST,   /* constant */
    N_NAME,    /* name */
    N_GETATTR, /* attr: obj.name */
    N_GETITEM, /* item: obj[index] */
    N_SLICE,   /* slice: obj[start:stop:step], absent parts NULL */
    N_CALL,    /* call: callee(args) */
    N_FILTER,  /* filter: operand | name(args); operand NULL in filter blocks */
    N_TEST,    /* filter: operand is [not] name args */
    N_NEG,     /* unary */
    N_POS,     /* unary */
    N_NOT,     /* unary */
    N_BINOP,   /* binop: + - * / // % ** ~ */
    N_AND,     /* binop */
    N_OR,      /* binop */
    N_COMPARE, /* compare: a op b op c ... */
    N_COND,    /* cond: then if cond else otherwise (otherwise may be NULL) */
    N_LIST,    /* items */
    N_TUPLE,   /* items */
    N_DICT,    /* dict */
} node_kind;

typedef enum binop_kind {
    OP_ADD,
    OP_SUB,
    OP_MUL,
    OP_DIV,
    OP_FLOORDIV,
    OP_MOD,
    OP_POW,
    OP_CONCAT,
} binop_kind;

typedef enum cmp_kind {
    CMP_EQ,
    CMP_NE,
    CMP_LT,
    CMP_LE,
    CMP_GT,
    CMP_GE,
    CMP_IN,
    CMP_NOT_IN
} cmp_kind;

typedef struct node node;

typedef struct node_list {
    node **items;
    size_t len;
} node_list;

/* call arguments as written: positional, then name=value pairs */
typedef struct ast_args {
    node_list pos;
    jv_str *kw_names;
    node **kw_values;
    size_t n_kw;
} ast_args;

/* what a for or set binds: one name, several (unpacking), or ns.attr */
typedef struct ast_target {
    jv_str *names;
    size_t n_names;
    bool unpack; /* "a, b" or "(a,)": the value is unpacked */
    jv_str attr; /* set ns.attr: names[0] is ns; attr.p NULL otherwise */
} ast_target;

/* macro or caller parameters; defaults[i] NULL when none */
typedef struct ast_params {
    jv_str *names;
    node **defaults;
    size_t n;
} ast_params;

struct node {
    node_kind kind;
    uint32_t line, col; /* 1-based; col counts characters */
    uint32_t src_pos;   /* bytes into the (normalized) source */
    uint32_t src_len;   /* bytes */
    union {
        jv_str text;
        node *expr; /* N_OUTPUT */
        struct {
            node *cond;
            node_list body, orelse;
        } if_;
        struct {
            ast_target target;
            node *iter, *filter;
            node_list body, orelse;
        } for_;
        struct {
            ast_target target;
            node *value;
        } set;
        struct {
            ast_target target;
            node_list filters, body;
        } set_block;
        struct {
            jv_str name;
            ast_params params;
            node_list body;
            bool uses_varargs, uses_kwargs, uses_caller; /* extra arguments accepted */
        } macro;
        struct {
            node *call;
            ast_params params;
            node_list body;
            bool uses_varargs, uses_kwargs, uses_caller; /* as for macros */
        } call_block;
        struct {
            node_list filters, body;
        } filter_block;
        node_list body; /* N_GENERATION */
        jv constant;
        jv_str name;
        struct {
            node *obj;
            jv_str name;
        } attr;
        struct {
            node *obj, *index;
        } item;
        struct {
            node *obj, *start, *stop, *step;
        } slice;
        struct {
            node *callee;
            ast_args args;
        } call;
        struct {
            node *operand;
            jv_str name;
            ast_args args;
            bool negated;
        } filter;
        struct {
            node *operand;
        } unary;
        struct {
            binop_kind op;
            node *left, *right;
        } binop;
        struct {
            node *first;
            cmp_kind *ops;
            node **rest;
            size_t n;
        } compare;
        struct {
            node *then, *cond, *otherwise;
        } cond;
        node_list items;
        struct {
            node_list keys, values;
        } dict;
    };
};

#endif
