/* interp.h - the evaluator's internal interface, shared by eval.c (expressions),
 * exec.c (statements), filters.c, tests.c, methods.c, value.c and json.c.
 *
 * Error protocol: a fallible function returns -1 after setting ip->err with a
 * plain message ("'int' object is not iterable"); the innermost syntax node
 * that sees the failure prefixes its position once ("chat template 3:14: ...").
 * raise_exception() messages are kept verbatim (no prefix). Every allocation
 * comes from ip->arena, so no error path frees anything. */
#ifndef LAMINA_CHAT_INTERP_H
#define LAMINA_CHAT_INTERP_H

#include <jansson.h>

#include "base/error.h"
#include "chat/ast.h"
#include "chat/mem.h"

/* A variable scope: the template body, a for-loop iteration, a macro call. */
typedef struct scope {
    struct scope *parent;
    jv_dict vars;
    bool captured; /* a macro or caller closes over it: a loop may not reuse it */
} scope;

/* Evaluated call arguments: positional, then name=value. */
typedef struct jv_args {
    const jv *pos;
    size_t n_pos;
    const jv_str *kw_names;
    const jv *kw;
    size_t n_kw;
} jv_args;

typedef struct interp interp;

/* A builtin: global function, bound method (SELF), loop.cycle. */
typedef int (*builtin_fn)(interp *ip, jv self, const jv_args *args, jv *out);

struct jv_func {
    const char *name; /* for messages */
    builtin_fn fn;    /* builtin; NULL for macros and callers */
    jv self;          /* bound receiver of a method */
    const node *def;  /* N_MACRO, or N_CALL_BLOCK for caller() */
    scope *closure;   /* scope the macro or call block was defined in */
};

struct jv_loop {
    const jv_list *items; /* after the `if` filter */
    size_t index0;
};

struct interp {
    chat_arena arena; /* every value of this render */
    lm_error *err;
    bool located;      /* err already has its position (or is verbatim) */
    sbuf *out;         /* where output goes now: the result or a capture */
    size_t max_output; /* bytes, for the result and every captured string */
    uint64_t steps, max_steps;
    uint64_t work;        /* units of count_work not yet turned into steps */
    int depth, max_depth; /* nested evaluation frames (C stack bound) */
    int64_t now;          /* seconds since the epoch, for strftime_now() */
    const char *src;      /* template source, to quote undefined expressions */
};

/* ---- errors and memory (exec.c) ---- */
__attribute__((format(printf, 2, 3))) int ip_fail(interp *ip, const char *fmt, ...);
/* One more evaluation step; -1 when the budget is spent. */
int count_step(interp *ip);
/* Work inside one step that grows with its operands, charged to the same
 * budget at WORK_PER_STEP units a step: a byte scanned or compared is one
 * unit, an item compared ITEM_WORK. Without it one expression over a 16 MiB
 * string or a 100k-item list (unique is quadratic) could run for minutes
 * within the step limit. */
#define WORK_PER_STEP 64
#define ITEM_WORK     8
int count_work(interp *ip, uint64_t units);
/* count_work for scanning V: a string's bytes (lists and dicts: 0) */
int count_str_work(interp *ip, jv v);
/* "'messages[0].x' is undefined" for an undefined value U; returns -1. */
int undefined_error(interp *ip, jv u);
/* Prefixes N's position to an error not yet located; returns -1. */
int ip_locate(interp *ip, const node *n);
void *ip_alloc(interp *ip, size_t n);
int ip_append(interp *ip, sbuf *b, const char *s, size_t n);
/* A string value holding a copy of N bytes at S. */
int ip_str_copy(interp *ip, const char *s, size_t n, jv *out);
/* A string value from the captured buffer B (freed). */
int ip_str_from_sb(interp *ip, sbuf *b, jv *out);
/* An empty capture buffer, limited like the output. */
sbuf ip_capture(const interp *ip);

/* ---- values (value.c) ---- */
int jv_new_list(interp *ip, size_t cap, jv *out);
int jv_list_push(interp *ip, jv_list *l, jv v);
int jv_new_dict(interp *ip, jv_kind kind, jv *out);
/* Sets KEY (replacing an equal key in place). */
int jv_dict_set(interp *ip, jv_dict *d, jv key, jv val);
/* Python ==, with the items and bytes compared charged (count_work). */
int ip_eq(interp *ip, jv a, jv b, bool *out);
/* Adds KEY, which the caller knows D does not hold (no search). */
int jv_dict_append(interp *ip, jv_dict *d, jv key, jv val);
/* Python str(v) / repr(v) appended to B. */
int jv_write_str(interp *ip, sbuf *b, jv v);
int jv_write_repr(interp *ip, sbuf *b, jv v);
/* str(v) as a string value (strings are returned as they are). */
int jv_to_string(interp *ip, jv v, jv *out);
/* Python ordering for <, sort, min, max: *CMP < 0, 0, > 0; -1 when the
 * types cannot be ordered. */
int jv_compare(interp *ip, jv a, jv b, int *cmp);
/* Python repr() of a float: shortest round-trip digits. */
void format_float(double f, char buf[32]);

/* ---- JSON (json.c) ---- */
/* The value of a jansson node (strings are referenced, not copied). */
int jv_from_json(interp *ip, const json_t *j, jv *out);

typedef struct json_style {
    const char *indent; /* NULL: one line; else the indent unit */
    jv_str item_sep;    /* ", " on one line, "," when indented */
    jv_str key_sep;     /* ": " */
    bool ensure_ascii;  /* \uXXXX for non-ASCII */
    bool sort_keys;
} json_style;
/* Python json.dumps(v, ...) appended to B. */
int jv_write_json(interp *ip, sbuf *b, jv v, const json_style *style);

/* ---- scopes and calls (exec.c) ---- */
jv *scope_find(scope *sc, jv_str name);
int scope_set(interp *ip, scope *sc, jv_str name, jv val);
/* Calls a function value with evaluated arguments. */
int call_value(interp *ip, jv fn, const jv_args *args, jv *out);
/* obj.name / obj[key] with Jinja's sandboxed lookup rules. ORIGIN is the
 * node a resulting undefined refers to. */
int get_attr(interp *ip, jv obj, jv_str name, const node *origin, jv *out);
int get_item(interp *ip, jv obj, jv key, const node *origin, jv *out);

/* ---- argument binding (filters.c) ---- */
/* Binds ARGS to parameters NAMES (by position or keyword) into OUT; a
 * parameter not given is JV_UNDEFINED. Fails on unknown keywords, too many
 * positionals, or fewer than N_REQUIRED given. */
int bind_args(interp *ip, const char *fname, const jv_args *args, const char *const *names,
              size_t n_names, size_t n_required, jv *out);

/* ---- filters (filters.c, filters_seq.c), tests (tests.c) ---- */
typedef int (*filter_fn)(interp *ip, jv input, const jv_args *args, jv *out);
typedef int (*test_fn)(interp *ip, jv input, const jv_args *args, bool *out);
filter_fn find_filter(jv_str name);
filter_fn find_seq_filter(jv_str name);
test_fn find_test(jv_str name);
int apply_filter(interp *ip, jv_str name, jv input, const jv_args *args, jv *out);
int apply_test(interp *ip, jv_str name, jv input, const jv_args *args, bool *out);
/* The items of an iterable value (list, tuple, dict keys, string characters);
 * undefined is empty. */
int iterate(interp *ip, jv v, jv_list **items);

/* ---- methods and globals (methods.c) ---- */
/* A bound method of OBJ named NAME: 1 found, 0 none, -1 error. */
int find_method(interp *ip, jv obj, jv_str name, jv *out);
/* A global function (range, namespace, dict, raise_exception, strftime_now). */
bool find_global(jv_str name, jv *out);

/* ---- strings shared by filters and methods (methods.c) ---- */
int str_upper_lower(interp *ip, jv_str s, bool upper, jv *out);
int str_replace(interp *ip, jv_str s, jv_str old, jv_str new_, int64_t count, jv *out);
int str_splitlines(interp *ip, jv_str s, bool keepends, jv *out);

/* ---- evaluation (eval.c, exec.c) ---- */
/* A op B with Python's semantics. */
int eval_binop(interp *ip, binop_kind op, jv a, jv b, jv *out);
int eval(interp *ip, scope *sc, const node *n, jv *out);
/* Renders BODY into ip->out: 0, -1, or EXEC_BREAK / EXEC_CONTINUE. */
int exec_body(interp *ip, scope *sc, const node_list *body);
enum { EXEC_BREAK = 1, EXEC_CONTINUE = 2 };

#endif
