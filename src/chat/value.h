/* value.h - the values a chat template computes with.
 *
 * A jv is a small tagged value passed by copy. Scalars live inside it;
 * strings, lists, dicts, namespaces, callables and loop objects point to
 * memory owned elsewhere: the render arena, the template's arena (literals),
 * or the caller's json_t (strings of the context, never copied). Nothing is
 * reference-counted: a render frees its arena at the end.
 *
 * Semantics follow Python as Jinja2 exposes it: str() and repr() of every
 * value, == across int/float/bool, truthiness, ordering, so that a template
 * renders byte for byte as transformers' apply_chat_template renders it. */
#ifndef LAMINA_CHAT_VALUE_H
#define LAMINA_CHAT_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum jv_kind {
    JV_UNDEFINED, /* a missing name, key or attribute: renders "", is falsy */
    JV_NONE,
    JV_BOOL,
    JV_INT,
    JV_FLOAT,
    JV_STRING, /* UTF-8, not NUL-terminated, may hold NUL bytes */
    JV_LIST,   /* list or tuple (jv_list.tuple) */
    JV_DICT,
    JV_NAMESPACE, /* namespace(): a dict whose attributes `set ns.x = ...` may change */
    JV_FUNC,      /* builtin function, bound method, macro, caller */
    JV_LOOP,      /* the `loop` object of a for statement */
} jv_kind;

typedef struct jv_str {
    const char *p;
    size_t n; /* bytes */
} jv_str;

typedef struct jv_list jv_list;
typedef struct jv_dict jv_dict;
typedef struct jv_func jv_func;
typedef struct jv_loop jv_loop;
struct node;

typedef struct jv {
    jv_kind kind;
    union {
        bool b;
        int64_t i;
        double f;
        jv_str s;
        jv_list *list;
        jv_dict *dict; /* JV_DICT, JV_NAMESPACE */
        jv_func *func;
        jv_loop *loop;
        const struct node *origin; /* JV_UNDEFINED: the expression that gave it, or NULL */
    };
} jv;

struct jv_list {
    jv *items;
    size_t len, cap;
    bool tuple; /* renders as (a, b) and is never equal to a list */
    bool lazy;  /* a generator in Jinja2 (map, select, ...): always true, no len(), no
                   indexing, equal only to itself */
};

typedef struct jv_entry {
    jv key;
    jv val;
} jv_entry;

/* insertion-ordered; lookup is a linear scan (chat data has few keys) */
struct jv_dict {
    jv_entry *entries;
    size_t len, cap;
};

static inline jv jv_undefined(const struct node *origin) {
    jv v = {.kind = JV_UNDEFINED};
    v.origin = origin;
    return v;
}
static inline jv jv_none(void) { return (jv){.kind = JV_NONE}; }
static inline jv jv_bool(bool b) { return (jv){.kind = JV_BOOL, .b = b}; }
static inline jv jv_int(int64_t i) { return (jv){.kind = JV_INT, .i = i}; }
static inline jv jv_float(double f) { return (jv){.kind = JV_FLOAT, .f = f}; }
static inline jv jv_string(const char *p, size_t n) { return (jv){.kind = JV_STRING, .s = {p, n}}; }

static inline bool jv_is_number(jv v) {
    return v.kind == JV_INT || v.kind == JV_FLOAT || v.kind == JV_BOOL;
}
static inline bool jv_str_eq(jv_str a, const char *b, size_t n) {
    return a.n == n && (n == 0 || __builtin_memcmp(a.p, b, n) == 0);
}
#define JV_STR_IS(s, lit) jv_str_eq((s), lit, sizeof(lit) - 1)

/* Python truthiness; undefined is false. */
bool jv_truthy(jv v);
/* Python ==: 1 == 1.0 == True, deep on lists and dicts (a tuple never equals
 * a list), undefined equals only undefined. */
bool jv_eq(jv a, jv b);
/* Python type name for messages: 'str', 'int', 'dict', 'NoneType', ... */
const char *jv_type_name(jv v);
/* Entry of KEY in D, or NULL. */
jv_entry *jv_dict_find(const jv_dict *d, jv key);
jv_entry *jv_dict_find_str(const jv_dict *d, const char *key, size_t n);
/* Value as a float (int, float, bool). */
double jv_as_double(jv v);

#endif
