/* access.c - obj.name and obj[key], with the lookup rules of Jinja2's
 * sandboxed environment: `.name` tries a (safe) Python attribute first, then
 * the item; `[key]` tries the item first, then the attribute. Missing things
 * are undefined values, not errors; using an undefined value's attributes is
 * an error. Mutating methods (list.append, dict.pop, ...) are unsafe in the
 * immutable sandbox and look undefined. The loop object's attributes live
 * here too. */
#include <string.h>

#include "chat/interp.h"
#include "chat/ustr.h"

static bool unsafe_method(jv obj, jv_str name) {
    static const char *const dict_mut[] = {"pop", "popitem", "update", "clear", "setdefault", NULL};
    static const char *const list_mut[] = {"append",  "extend", "insert", "pop", "remove",
                                           "reverse", "sort",   "clear",  NULL};
    const char *const *names = obj.kind == JV_DICT   ? dict_mut
                               : obj.kind == JV_LIST ? list_mut
                                                     : NULL;
    for (; names && *names; names++)
        if (jv_str_eq(name, *names, strlen(*names))) return true;
    return false;
}

static int loop_cycle(interp *ip, jv self, const jv_args *args, jv *out) {
    if (args->n_pos == 0) return ip_fail(ip, "no items for cycling given");
    *out = args->pos[self.loop->index0 % args->n_pos];
    return 0;
}

static int loop_attr(interp *ip, jv self, jv_str name, const node *origin, jv *out) {
    const jv_loop *l = self.loop;
    size_t i = l->index0, len = l->items->len;
    if (JV_STR_IS(name, "index"))
        *out = jv_int((int64_t)i + 1);
    else if (JV_STR_IS(name, "index0"))
        *out = jv_int((int64_t)i);
    else if (JV_STR_IS(name, "revindex"))
        *out = jv_int((int64_t)(len - i));
    else if (JV_STR_IS(name, "revindex0"))
        *out = jv_int((int64_t)(len - i - 1));
    else if (JV_STR_IS(name, "first"))
        *out = jv_bool(i == 0);
    else if (JV_STR_IS(name, "last"))
        *out = jv_bool(i + 1 == len);
    else if (JV_STR_IS(name, "length"))
        *out = jv_int((int64_t)len);
    else if (JV_STR_IS(name, "depth"))
        *out = jv_int(1);
    else if (JV_STR_IS(name, "depth0"))
        *out = jv_int(0);
    else if (JV_STR_IS(name, "previtem"))
        *out = i > 0 ? l->items->items[i - 1] : jv_undefined(origin);
    else if (JV_STR_IS(name, "nextitem"))
        *out = i + 1 < len ? l->items->items[i + 1] : jv_undefined(origin);
    else if (JV_STR_IS(name, "cycle")) {
        jv_func *f = ip_alloc(ip, sizeof(jv_func));
        if (!f) return -1;
        *f = (jv_func){.name = "cycle", .fn = loop_cycle, .self = self};
        *out = (jv){.kind = JV_FUNC, .func = f};
    } else {
        *out = jv_undefined(origin);
    }
    return 0;
}

/* The attribute NAME of OBJ, not looking at dict items. */
static int attribute(interp *ip, jv obj, jv_str name, const node *origin, jv *out) {
    if (obj.kind == JV_LOOP) return loop_attr(ip, obj, name, origin, out);
    if (obj.kind == JV_NAMESPACE) {
        jv_entry *e = jv_dict_find_str(obj.dict, name.p, name.n);
        *out = e ? e->val : jv_undefined(origin);
        return 0;
    }
    if (unsafe_method(obj, name)) {
        *out = jv_undefined(origin);
        return 0;
    }
    int found = find_method(ip, obj, name, out);
    if (found < 0) return -1;
    if (!found) *out = jv_undefined(origin);
    return 0;
}

/* a dict lookup scans its entries */
static int count_lookup_work(interp *ip, jv obj) {
    bool dict = obj.kind == JV_DICT || obj.kind == JV_NAMESPACE;
    return dict ? count_work(ip, (uint64_t)obj.dict->len * ITEM_WORK) : 0;
}

int get_attr(interp *ip, jv obj, jv_str name, const node *origin, jv *out) {
    if (obj.kind == JV_UNDEFINED) return undefined_error(ip, obj);
    if (count_lookup_work(ip, obj)) return -1;
    if (obj.kind == JV_DICT && !unsafe_method(obj, name)) {
        int found = find_method(ip, obj, name, out);
        if (found) return found < 0 ? -1 : 0;
        jv_entry *e = jv_dict_find_str(obj.dict, name.p, name.n);
        *out = e ? e->val : jv_undefined(origin);
        return 0;
    }
    return attribute(ip, obj, name, origin, out);
}

int get_item(interp *ip, jv obj, jv key, const node *origin, jv *out) {
    if (obj.kind == JV_UNDEFINED) return undefined_error(ip, obj);
    if (count_lookup_work(ip, obj)) return -1;
    bool int_key = key.kind == JV_INT || key.kind == JV_BOOL;
    int64_t index = key.kind == JV_BOOL ? key.b : key.i;
    if (obj.kind == JV_DICT) {
        jv_entry *e = jv_dict_find(obj.dict, key);
        if (e) {
            *out = e->val;
            return 0;
        }
    } else if (obj.kind == JV_LIST && obj.list->lazy) {
        *out = jv_undefined(origin);
        return 0;
    } else if (obj.kind == JV_LIST && int_key) {
        int64_t len = (int64_t)obj.list->len;
        if (index < 0) index += len;
        *out = index >= 0 && index < len ? obj.list->items[index] : jv_undefined(origin);
        return 0;
    } else if (obj.kind == JV_STRING && int_key) {
        int64_t len = (int64_t)ustr_len(obj.s);
        if (index < 0) index += len;
        if (index < 0 || index >= len) {
            *out = jv_undefined(origin);
            return 0;
        }
        size_t from = ustr_offset(obj.s, (size_t)index);
        jv_str rest = {obj.s.p + from, obj.s.n - from};
        *out = jv_string(rest.p, ustr_offset(rest, 1));
        return 0;
    }
    if (key.kind == JV_STRING) return attribute(ip, obj, key.s, origin, out);
    *out = jv_undefined(origin);
    return 0;
}
