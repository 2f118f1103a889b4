/* exec.c - statements, scopes, macro calls, and the interpreter's error and
 * memory helpers.
 *
 * Scoping follows Jinja2: `if` bodies share their scope; every for-loop
 * iteration starts a fresh scope under the enclosing one (so a `set` inside a
 * loop is gone at the next iteration and after the loop: hence namespace());
 * a macro call gets a scope under the scope the macro was defined in, looked
 * up when called (so it sees top-level variables set after its definition). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "chat/interp.h"

/* ---- errors and memory ---- */

int ip_fail(interp *ip, const char *fmt, ...) {
    if (ip->err->msg[0]) return -1; /* keep the first (innermost) message */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ip->err->msg, sizeof(ip->err->msg), fmt, ap);
    va_end(ap);
    if (!ip->err->msg[0]) strcpy(ip->err->msg, "error");
    return -1;
}

int ip_locate(interp *ip, const node *n) {
    if (ip->located) return -1;
    ip->located = true;
    char msg[sizeof(ip->err->msg)];
    snprintf(msg, sizeof(msg), "chat template %u:%u: %.*s", n->line, n->col, (int)sizeof(msg) - 48,
             ip->err->msg);
    memcpy(ip->err->msg, msg, sizeof(msg));
    return -1;
}

int undefined_error(interp *ip, jv u) {
    const node *o = u.origin;
    if (!o || !o->src_len) return ip_fail(ip, "value is undefined");
    int n = o->src_len > 80 ? 80 : (int)o->src_len;
    return ip_fail(ip, "'%.*s%s' is undefined", n, ip->src + o->src_pos,
                   o->src_len > 80 ? "..." : "");
}

void *ip_alloc(interp *ip, size_t n) {
    void *p = arena_alloc(&ip->arena, n);
    if (!p) ip_fail(ip, "template needs more than %zu MiB of memory", ip->arena.limit >> 20);
    return p;
}

int ip_append(interp *ip, sbuf *b, const char *s, size_t n) {
    if (sb_append(b, s, n) == 0) return 0;
    return ip_fail(ip, "template output longer than %zu bytes", b->limit);
}

int ip_str_copy(interp *ip, const char *s, size_t n, jv *out) {
    char *p = arena_strndup(&ip->arena, s, n);
    if (!p) return ip_fail(ip, "template needs more than %zu MiB of memory", ip->arena.limit >> 20);
    *out = jv_string(p, n);
    return 0;
}

int ip_str_from_sb(interp *ip, sbuf *b, jv *out) {
    int rc = ip_str_copy(ip, b->data ? b->data : "", b->len, out);
    sb_free(b);
    return rc;
}

sbuf ip_capture(const interp *ip) { return (sbuf){.limit = ip->max_output}; }

int count_step(interp *ip) {
    if (++ip->steps <= ip->max_steps) return 0;
    return ip_fail(ip, "template exceeded %llu evaluation steps",
                   (unsigned long long)ip->max_steps);
}

int count_work(interp *ip, uint64_t units) {
    ip->work += units;
    if (ip->work < WORK_PER_STEP) return 0;
    ip->steps += ip->work / WORK_PER_STEP;
    ip->work %= WORK_PER_STEP;
    if (ip->steps <= ip->max_steps) return 0;
    return ip_fail(ip, "template exceeded %llu evaluation steps",
                   (unsigned long long)ip->max_steps);
}

int count_str_work(interp *ip, jv v) { return v.kind == JV_STRING ? count_work(ip, v.s.n) : 0; }

/* ---- scopes ---- */

jv *scope_find(scope *sc, jv_str name) {
    for (; sc; sc = sc->parent) {
        jv_entry *e = jv_dict_find_str(&sc->vars, name.p, name.n);
        if (e) return &e->val;
    }
    return NULL;
}

int scope_set(interp *ip, scope *sc, jv_str name, jv val) {
    return jv_dict_set(ip, &sc->vars, jv_string(name.p, name.n), val);
}

static scope *new_scope(interp *ip, scope *parent) {
    scope *sc = ip_alloc(ip, sizeof(scope));
    if (sc) *sc = (scope){.parent = parent};
    return sc;
}

/* A fresh scope under PARENT for the next loop iteration: SC emptied when no
 * closure holds it (so a long loop does not allocate per iteration). */
static scope *iteration_scope(interp *ip, scope *sc, scope *parent) {
    if (!sc || sc->captured) return new_scope(ip, parent);
    sc->vars.len = 0;
    return sc;
}

/* ---- macros and calls ---- */

/* An undefined value that names a macro parameter in messages. */
static jv missing_param(interp *ip, jv_str name) {
    node *n = ip_alloc(ip, sizeof(node));
    if (!n) return jv_undefined(NULL);
    memset(n, 0, sizeof(*n));
    n->kind = N_NAME;
    n->src_pos = (uint32_t)(name.p - ip->src);
    n->src_len = (uint32_t)name.n;
    return jv_undefined(n);
}

/* What a macro or a caller accepts beyond its parameters. */
typedef struct macro_sig {
    jv_str name;
    const ast_params *params;
    bool varargs, kwargs, caller;
} macro_sig;

static int bind_macro_args(interp *ip, scope *sc, const macro_sig *m, const jv_args *args) {
    const ast_params *params = m->params;
    jv varargs, kwargs;
    bool bound[64] = {false};
    if (args->n_pos > params->n && !m->varargs)
        return ip_fail(ip, "macro '%.*s' takes not more than %zu argument(s)", (int)m->name.n,
                       m->name.p, params->n);
    if (jv_new_list(ip, 0, &varargs) || jv_new_dict(ip, JV_DICT, &kwargs)) return -1;
    varargs.list->tuple = true;
    for (size_t i = 0; i < args->n_pos; i++) {
        if (i < params->n) {
            if (scope_set(ip, sc, params->names[i], args->pos[i])) return -1;
            bound[i] = true;
        } else if (jv_list_push(ip, varargs.list, args->pos[i])) {
            return -1;
        }
    }
    for (size_t k = 0; k < args->n_kw; k++) {
        jv_str name = args->kw_names[k];
        size_t i = 0;
        while (i < params->n && !jv_str_eq(params->names[i], name.p, name.n)) i++;
        if (i < params->n) {
            if (bound[i])
                return ip_fail(ip, "macro '%.*s' got multiple values for argument '%.*s'",
                               (int)m->name.n, m->name.p, (int)name.n, name.p);
            bound[i] = true;
            if (scope_set(ip, sc, name, args->kw[k])) return -1;
        } else if (JV_STR_IS(name, "caller") ? !m->caller : !m->kwargs) {
            return ip_fail(ip, "macro '%.*s' takes no keyword argument '%.*s'", (int)m->name.n,
                           m->name.p, (int)name.n, name.p);
        } else if (JV_STR_IS(name, "caller")) {
            if (scope_set(ip, sc, name, args->kw[k])) return -1;
        } else if (jv_dict_set(ip, kwargs.dict, jv_string(name.p, name.n), args->kw[k])) {
            return -1;
        }
    }
    for (size_t i = 0; i < params->n; i++) {
        if (bound[i]) continue;
        jv v = missing_param(ip, params->names[i]);
        if (params->defaults[i] && eval(ip, sc, params->defaults[i], &v)) return -1;
        if (scope_set(ip, sc, params->names[i], v)) return -1;
    }
    return scope_set(ip, sc, (jv_str){"varargs", 7}, varargs) ||
           scope_set(ip, sc, (jv_str){"kwargs", 6}, kwargs);
}

/* Renders BODY into a new string. */
static int capture_body(interp *ip, scope *sc, const node_list *body, jv *out) {
    sbuf cap = ip_capture(ip), *saved = ip->out;
    ip->out = &cap;
    int rc = exec_body(ip, sc, body);
    ip->out = saved;
    if (rc < 0) {
        sb_free(&cap);
        return -1;
    }
    return ip_str_from_sb(ip, &cap, out);
}

static int call_macro(interp *ip, const jv_func *f, const jv_args *args, jv *out) {
    const node *def = f->def;
    bool macro = def->kind == N_MACRO;
    macro_sig sig = macro
                        ? (macro_sig){def->macro.name, &def->macro.params, def->macro.uses_varargs,
                                      def->macro.uses_kwargs, def->macro.uses_caller}
                        : (macro_sig){{"caller", 6},
                                      &def->call_block.params,
                                      def->call_block.uses_varargs,
                                      def->call_block.uses_kwargs,
                                      def->call_block.uses_caller};
    scope *sc = new_scope(ip, f->closure);
    if (!sc || bind_macro_args(ip, sc, &sig, args)) return -1;
    return capture_body(ip, sc, macro ? &def->macro.body : &def->call_block.body, out);
}

int call_value(interp *ip, jv fn, const jv_args *args, jv *out) {
    if (fn.kind == JV_UNDEFINED) return undefined_error(ip, fn);
    if (fn.kind != JV_FUNC) return ip_fail(ip, "'%s' object is not callable", jv_type_name(fn));
    if (fn.func->fn) return fn.func->fn(ip, fn.func->self, args, out);
    return call_macro(ip, fn.func, args, out);
}

static int new_func(interp *ip, const char *name, const node *def, scope *closure, jv *out) {
    jv_func *f = ip_alloc(ip, sizeof(jv_func));
    if (!f) return -1;
    for (scope *s = closure; s && !s->captured; s = s->parent) s->captured = true;
    *f = (jv_func){.name = name, .def = def, .closure = closure};
    *out = (jv){.kind = JV_FUNC, .func = f};
    return 0;
}

/* ---- statements ---- */

static int assign(interp *ip, scope *sc, const ast_target *t, jv value) {
    if (t->attr.p) {
        jv *ns = scope_find(sc, t->names[0]);
        if (!ns || ns->kind != JV_NAMESPACE)
            return ip_fail(ip, "cannot assign attribute on non-namespace object");
        return jv_dict_set(ip, ns->dict, jv_string(t->attr.p, t->attr.n), value);
    }
    if (!t->unpack) return scope_set(ip, sc, t->names[0], value);
    jv_list *items;
    if (iterate(ip, value, &items)) return -1;
    if (items->len != t->n_names)
        return ip_fail(ip, "%s values to unpack (expected %zu, got %zu)",
                       items->len > t->n_names ? "too many" : "not enough", t->n_names, items->len);
    for (size_t i = 0; i < t->n_names; i++)
        if (scope_set(ip, sc, t->names[i], items->items[i])) return -1;
    return 0;
}

static int apply_filters(interp *ip, scope *sc, const node_list *filters, jv *v) {
    for (size_t i = 0; i < filters->len; i++) {
        const node *f = filters->items[i];
        jv *pos = NULL, *kw = NULL;
        const ast_args *a = &f->filter.args;
        if ((a->pos.len && !(pos = ip_alloc(ip, a->pos.len * sizeof(jv)))) ||
            (a->n_kw && !(kw = ip_alloc(ip, a->n_kw * sizeof(jv)))))
            return -1;
        for (size_t k = 0; k < a->pos.len; k++)
            if (eval(ip, sc, a->pos.items[k], &pos[k])) return -1;
        for (size_t k = 0; k < a->n_kw; k++)
            if (eval(ip, sc, a->kw_values[k], &kw[k])) return -1;
        jv_args args = {pos, a->pos.len, a->kw_names, kw, a->n_kw};
        if (apply_filter(ip, f->filter.name, *v, &args, v)) return ip_locate(ip, f);
    }
    return 0;
}

static int exec_for(interp *ip, scope *sc, const node *n) {
    jv iter;
    jv_list *items;
    if (eval(ip, sc, n->for_.iter, &iter) || iterate(ip, iter, &items)) return -1;
    scope *body = NULL;
    if (n->for_.filter) {
        jv kept;
        if (jv_new_list(ip, 0, &kept)) return -1;
        for (size_t i = 0; i < items->len; i++) {
            if (count_step(ip)) return -1;
            scope *fs = body = iteration_scope(ip, body, sc);
            jv ok;
            if (!fs || assign(ip, fs, &n->for_.target, items->items[i]) ||
                eval(ip, fs, n->for_.filter, &ok))
                return -1;
            if (jv_truthy(ok) && jv_list_push(ip, kept.list, items->items[i])) return -1;
        }
        items = kept.list;
    }
    jv_loop *loop = ip_alloc(ip, sizeof(jv_loop));
    if (!loop) return -1;
    *loop = (jv_loop){.items = items};
    for (size_t i = 0; i < items->len; i++) {
        if (count_step(ip)) return -1;
        body = iteration_scope(ip, body, sc);
        loop->index0 = i;
        if (!body || assign(ip, body, &n->for_.target, items->items[i]) ||
            scope_set(ip, body, (jv_str){"loop", 4}, (jv){.kind = JV_LOOP, .loop = loop}))
            return -1;
        int rc = exec_body(ip, body, &n->for_.body);
        if (rc < 0) return -1;
        if (rc == EXEC_BREAK) break;
    }
    if (items->len == 0 && n->for_.orelse.len) {
        /* a break or continue here belongs to the enclosing loop, as in Python */
        scope *other = new_scope(ip, sc);
        if (!other) return -1;
        return exec_body(ip, other, &n->for_.orelse);
    }
    return 0;
}

static int exec_call_block(interp *ip, scope *sc, const node *n) {
    const node *call = n->call_block.call;
    const ast_args *a = &call->call.args;
    jv fn, caller, result;
    jv *pos = ip_alloc(ip, (a->pos.len + 1) * sizeof(jv));
    jv *kw = ip_alloc(ip, (a->n_kw + 1) * sizeof(jv));
    jv_str *names = ip_alloc(ip, (a->n_kw + 1) * sizeof(jv_str));
    if (!pos || !kw || !names || eval(ip, sc, call->call.callee, &fn)) return -1;
    for (size_t k = 0; k < a->pos.len; k++)
        if (eval(ip, sc, a->pos.items[k], &pos[k])) return -1;
    for (size_t k = 0; k < a->n_kw; k++) {
        if (eval(ip, sc, a->kw_values[k], &kw[k])) return -1;
        names[k] = a->kw_names[k];
    }
    if (new_func(ip, "caller", n, sc, &caller)) return -1;
    kw[a->n_kw] = caller;
    names[a->n_kw] = (jv_str){"caller", 6};
    jv_args args = {pos, a->pos.len, names, kw, a->n_kw + 1};
    if (call_value(ip, fn, &args, &result)) return ip_locate(ip, call);
    return jv_write_str(ip, ip->out, result);
}

/* -1 if any step failed (the steps return -1 or, joined with ||, 1), else 0:
 * a failure must never read as EXEC_BREAK. */
static int status(int failed) { return failed ? -1 : 0; }

/* Statements that produce no control flow: 0 or -1. */
static int exec_simple(interp *ip, scope *sc, const node *n) {
    jv v;
    switch (n->kind) {
    case N_TEXT: return ip_append(ip, ip->out, n->text.p, n->text.n);
    case N_OUTPUT:
        if (eval(ip, sc, n->expr, &v)) return -1;
        return v.kind == JV_STRING ? ip_append(ip, ip->out, v.s.p, v.s.n)
                                   : jv_write_str(ip, ip->out, v);
    case N_SET: return eval(ip, sc, n->set.value, &v) || assign(ip, sc, &n->set.target, v);
    case N_SET_BLOCK:
        return capture_body(ip, sc, &n->set_block.body, &v) ||
               apply_filters(ip, sc, &n->set_block.filters, &v) ||
               assign(ip, sc, &n->set_block.target, v);
    case N_MACRO: return new_func(ip, "macro", n, sc, &v) || scope_set(ip, sc, n->macro.name, v);
    case N_CALL_BLOCK: return exec_call_block(ip, sc, n);
    case N_FILTER_BLOCK:
        return capture_body(ip, sc, &n->filter_block.body, &v) ||
               apply_filters(ip, sc, &n->filter_block.filters, &v) || jv_write_str(ip, ip->out, v);
    default: return ip_fail(ip, "expression used as a statement");
    }
}

static int exec_node(interp *ip, scope *sc, const node *n) {
    jv v;
    switch (n->kind) {
    case N_IF:
        if (eval(ip, sc, n->if_.cond, &v)) return -1;
        return exec_body(ip, sc, jv_truthy(v) ? &n->if_.body : &n->if_.orelse);
    case N_FOR: return exec_for(ip, sc, n); /* -1, 0, or a break/continue of its else */
    case N_BREAK: return EXEC_BREAK;
    case N_CONTINUE: return EXEC_CONTINUE;
    case N_GENERATION: return exec_body(ip, sc, &n->body);
    default: return status(exec_simple(ip, sc, n));
    }
}

int exec_body(interp *ip, scope *sc, const node_list *body) {
    for (size_t i = 0; i < body->len; i++) {
        const node *n = body->items[i];
        if (count_step(ip)) return ip_locate(ip, n);
        if (++ip->depth > ip->max_depth) {
            ip->depth--;
            ip_fail(ip, "template recursion deeper than %d levels", ip->max_depth);
            return ip_locate(ip, n);
        }
        int rc = exec_node(ip, sc, n);
        ip->depth--;
        if (rc < 0) return ip_locate(ip, n);
        if (rc) return rc;
    }
    return 0;
}
