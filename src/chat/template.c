/* template.c - the public chat template API: parse (lex, parse, then the
 * checks Jinja2 does at compile time) and render
 * (context JSON to values, run the statements, enforce the limits). */
#include "chat/template.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat/interp.h"
#include "chat/lexer.h"
#include "chat/parser.h"

#define DEFAULT_MAX_OUTPUT ((size_t)16 << 20)  /* bytes */
#define DEFAULT_MAX_MEMORY ((size_t)256 << 20) /* bytes */
#define DEFAULT_MAX_STEPS  20000000ULL
#define DEFAULT_MAX_DEPTH  1000 /* frames of at most ~600 bytes: well under 1 MiB of stack */

struct chat_template {
    chat_arena arena; /* normalized source, tokens, nodes */
    const char *src;  /* normalized source */
    node_list body;
};

typedef int (*visit_fn)(node *n, void *ctx);

typedef struct walker {
    visit_fn fn;
    void *ctx;
    lm_error *err; /* for the depth limit */
    int depth;
} walker;

/* Deepest syntax tree accepted. The parser bounds its own recursion, but
 * left-associative chains (a + b + c ..., x.a.b.c ..., x|f|g ...) are built
 * by loops; every recursive walk over the tree relies on this bound. */
#define TREE_MAX_DEPTH 400

static int walk(walker *w, node *n);
static int walk_children(walker *w, node *n);

static int walk_list(walker *w, const node_list *l) {
    for (size_t i = 0; i < l->len; i++)
        if (walk(w, l->items[i])) return -1;
    return 0;
}

static int walk_args(walker *w, const ast_args *a) {
    if (walk_list(w, &a->pos)) return -1;
    for (size_t i = 0; i < a->n_kw; i++)
        if (walk(w, a->kw_values[i])) return -1;
    return 0;
}

static int walk_params(walker *w, const ast_params *p) {
    for (size_t i = 0; i < p->n; i++)
        if (walk(w, p->defaults[i])) return -1;
    return 0;
}

/* Calls w->fn on N and every node below it (pre-order); stops at -1. */
static int walk(walker *w, node *n) {
    if (!n) return 0;
    if (w->depth >= TREE_MAX_DEPTH) {
        lm_error_set(w->err,
                     "chat template %u:%u: template nested too deeply (more than %d levels)",
                     n->line, n->col, TREE_MAX_DEPTH);
        return -1;
    }
    if (w->fn(n, w->ctx)) return -1;
    w->depth++;
    int rc = walk_children(w, n);
    w->depth--;
    return rc;
}

static int walk_children(walker *w, node *n) {
    switch (n->kind) {
    case N_TEXT:
    case N_BREAK:
    case N_CONTINUE:
    case N_CONST:
    case N_NAME: return 0;
    case N_OUTPUT: return walk(w, n->expr);
    case N_IF:
        return walk(w, n->if_.cond) || walk_list(w, &n->if_.body) || walk_list(w, &n->if_.orelse);
    case N_FOR:
        return walk(w, n->for_.iter) || walk(w, n->for_.filter) || walk_list(w, &n->for_.body) ||
               walk_list(w, &n->for_.orelse);
    case N_SET: return walk(w, n->set.value);
    case N_SET_BLOCK:
        return walk_list(w, &n->set_block.filters) || walk_list(w, &n->set_block.body);
    case N_MACRO: return walk_params(w, &n->macro.params) || walk_list(w, &n->macro.body);
    case N_CALL_BLOCK:
        return walk_params(w, &n->call_block.params) || walk(w, n->call_block.call) ||
               walk_list(w, &n->call_block.body);
    case N_FILTER_BLOCK:
        return walk_list(w, &n->filter_block.filters) || walk_list(w, &n->filter_block.body);
    case N_GENERATION: return walk_list(w, &n->body);
    case N_GETATTR: return walk(w, n->attr.obj);
    case N_GETITEM: return walk(w, n->item.obj) || walk(w, n->item.index);
    case N_SLICE:
        return walk(w, n->slice.obj) || walk(w, n->slice.start) || walk(w, n->slice.stop) ||
               walk(w, n->slice.step);
    case N_CALL: return walk(w, n->call.callee) || walk_args(w, &n->call.args);
    case N_FILTER:
    case N_TEST: return walk(w, n->filter.operand) || walk_args(w, &n->filter.args);
    case N_NEG:
    case N_POS:
    case N_NOT: return walk(w, n->unary.operand);
    case N_BINOP:
    case N_AND:
    case N_OR: return walk(w, n->binop.left) || walk(w, n->binop.right);
    case N_COMPARE:
        if (walk(w, n->compare.first)) return -1;
        for (size_t i = 0; i < n->compare.n; i++)
            if (walk(w, n->compare.rest[i])) return -1;
        return 0;
    case N_COND:
        return walk(w, n->cond.then) || walk(w, n->cond.cond) || walk(w, n->cond.otherwise);
    case N_LIST:
    case N_TUPLE: return walk_list(w, &n->items);
    case N_DICT: return walk_list(w, &n->dict.keys) || walk_list(w, &n->dict.values);
    }
    return 0;
}

/* Which of varargs, kwargs, caller a macro body refers to. */
typedef struct name_uses {
    bool varargs, kwargs, caller;
} name_uses;

static int note_name(node *n, void *ctx) {
    name_uses *u = ctx;
    if (n->kind != N_NAME) return 0;
    u->varargs |= JV_STR_IS(n->name, "varargs");
    u->kwargs |= JV_STR_IS(n->name, "kwargs");
    u->caller |= JV_STR_IS(n->name, "caller");
    return 0;
}

/* Compile-time checks and facts, as Jinja2 computes them: every filter and
 * test exists; macros accept extra arguments only if their body uses
 * varargs / kwargs / caller. */
static int prepare_node(node *n, void *ctx) {
    lm_error *err = ctx;
    if (n->kind == N_FILTER || n->kind == N_TEST) {
        bool known = n->kind == N_FILTER ? find_filter(n->filter.name) != NULL
                                         : find_test(n->filter.name) != NULL;
        if (!known) {
            lm_error_set(err, "chat template %u:%u: no %s named '%.*s'", n->line, n->col,
                         n->kind == N_FILTER ? "filter" : "test",
                         (int)(n->filter.name.n > 40 ? 40 : n->filter.name.n), n->filter.name.p);
            return -1;
        }
    } else if (n->kind == N_MACRO || n->kind == N_CALL_BLOCK) {
        name_uses u = {0};
        walker w = {.fn = note_name, .ctx = &u, .err = err};
        if (walk_list(&w, n->kind == N_MACRO ? &n->macro.body : &n->call_block.body)) return -1;
        if (n->kind == N_MACRO) {
            n->macro.uses_varargs = u.varargs, n->macro.uses_kwargs = u.kwargs;
            n->macro.uses_caller = u.caller;
        } else {
            n->call_block.uses_varargs = u.varargs, n->call_block.uses_kwargs = u.kwargs;
            n->call_block.uses_caller = u.caller;
        }
    }
    return 0;
}

chat_template *chat_template_parse(const char *src, size_t len, lm_error *err) {
    chat_template *t = calloc(1, sizeof(*t));
    if (!t) {
        lm_error_set(err, "chat template: out of memory");
        return NULL;
    }
    lexed lx;
    if (lex_template(&t->arena, src ? src : "", src ? len : 0, &lx, err) ||
        parse_template(&t->arena, &lx, &t->body, err) ||
        walk_list(&(walker){.fn = prepare_node, .ctx = err, .err = err}, &t->body)) {
        chat_template_free(t);
        return NULL;
    }
    t->src = lx.src;
    return t;
}

void chat_template_free(chat_template *t) {
    if (!t) return;
    arena_release(&t->arena);
    free(t);
}

char *chat_template_render(const chat_template *t, const json_t *context,
                           const chat_render_opts *opts, lm_error *err) {
    lm_error scratch;
    chat_render_opts o = opts ? *opts : (chat_render_opts){0};
    if (!err) err = &scratch;
    err->msg[0] = '\0';
    if (!t || !context || !json_is_object(context)) {
        lm_error_set(err, "chat template: the context must be a JSON object");
        return NULL;
    }
    interp ip = {
        .err = err,
        .max_output = o.max_output ? o.max_output : DEFAULT_MAX_OUTPUT,
        .max_steps = o.max_steps ? o.max_steps : DEFAULT_MAX_STEPS,
        .max_depth = o.max_depth > 0 ? o.max_depth : DEFAULT_MAX_DEPTH,
        .now = o.now ? o.now : (int64_t)time(NULL),
        .src = t->src,
    };
    ip.arena.limit = o.max_memory ? o.max_memory : DEFAULT_MAX_MEMORY;
    sbuf out = ip_capture(&ip);
    ip.out = &out;
    jv ctx;
    scope *globals, *top;
    int rc = jv_from_json(&ip, context, &ctx);
    if (rc == 0) {
        globals = ip_alloc(&ip, sizeof(scope));
        top = ip_alloc(&ip, sizeof(scope));
        if (!globals || !top) {
            rc = -1;
        } else {
            *globals = (scope){.vars = *ctx.dict};
            *top = (scope){.parent = globals};
            rc = exec_body(&ip, top, &t->body);
        }
    }
    arena_release(&ip.arena);
    if (rc) {
        sb_free(&out);
        if (!err->msg[0])
            lm_error_set(err, "chat template: render failed");
        else if (!ip.located) {
            char msg[sizeof(err->msg)];
            memcpy(msg, err->msg, sizeof(msg));
            lm_error_set(err, "chat template: %s", msg);
        }
        return NULL;
    }
    char *s = sb_take(&out);
    if (!s) lm_error_set(err, "chat template: out of memory");
    return s;
}

char *chat_apply(const char *template_src, const json_t *messages, bool add_generation_prompt,
                 const char *bos_token, const char *eos_token, const json_t *extra, lm_error *err) {
    chat_template *t =
        chat_template_parse(template_src, template_src ? strlen(template_src) : 0, err);
    if (!t) return NULL;
    json_t *ctx = json_object();
    char *out = NULL;
    if (ctx && extra && json_is_object(extra)) json_object_update(ctx, (json_t *)extra);
    if (!ctx || json_object_set(ctx, "messages", messages ? (json_t *)messages : json_array()) ||
        json_object_set_new(ctx, "add_generation_prompt", json_boolean(add_generation_prompt)) ||
        json_object_set_new(ctx, "bos_token", json_string(bos_token ? bos_token : "")) ||
        json_object_set_new(ctx, "eos_token", json_string(eos_token ? eos_token : ""))) {
        lm_error_set(err, "chat template: out of memory building the context");
    } else {
        out = chat_template_render(t, ctx, NULL, err);
    }
    json_decref(ctx);
    chat_template_free(t);
    return out;
}
