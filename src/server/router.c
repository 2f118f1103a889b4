/* router.c - the route table (see router.h). */
#include "server/router.h"

#include <string.h>

static const srv_route ROUTES[] = {
    {"GET", "/health", false, h_health, SRV_API_OPENAI, false, false},
    {"GET", "/metrics", false, h_metrics, SRV_API_OPENAI, false, false},
    {"GET", "/v1/models", false, h_models, SRV_API_OPENAI, true, false},
    {"GET", "/v1/models/", true, h_model, SRV_API_OPENAI, true, false},
    {"POST", "/v1/chat/completions", false, h_chat_completions, SRV_API_OPENAI, true, true},
    {"POST", "/v1/completions", false, h_completions, SRV_API_OPENAI, true, true},
    {"POST", "/v1/messages", false, h_messages, SRV_API_ANTHROPIC, true, true},
    {"POST", "/v1/messages/count_tokens", false, h_count_tokens, SRV_API_ANTHROPIC, true, false},
    {"POST", "/tokenize", false, h_tokenize, SRV_API_OPENAI, true, false},
    {"POST", "/detokenize", false, h_detokenize, SRV_API_OPENAI, true, false},
};
#define N_ROUTES ((int)(sizeof(ROUTES) / sizeof(ROUTES[0])))

static bool path_matches(const srv_route *r, const char *path, const char **arg) {
    if (!r->has_arg) return !strcmp(r->path, path);
    size_t n = strlen(r->path);
    if (strncmp(r->path, path, n) || !path[n] || strchr(path + n, '/')) return false;
    *arg = path + n;
    return true;
}

const srv_route *router_find(const char *method, const char *path, const char **arg, bool *wrong_method) {
    const char *m = !strcmp(method, "HEAD") ? "GET" : method;
    *wrong_method = false;
    *arg = NULL;
    for (int i = 0; i < N_ROUTES; i++) {
        const char *a = NULL;
        if (!path_matches(&ROUTES[i], path, &a)) continue;
        if (strcmp(ROUTES[i].method, m)) {
            *wrong_method = true;
            continue;
        }
        *arg = a;
        *wrong_method = false;
        return &ROUTES[i];
    }
    return NULL;
}

srv_api router_api_of_path(const char *path) {
    return !strncmp(path, "/v1/messages", 12) ? SRV_API_ANTHROPIC : SRV_API_OPENAI;
}

int router_n_endpoints(void) { return N_ROUTES + 1; }

int router_endpoint(const srv_route *route) { return route ? (int)(route - ROUTES) : N_ROUTES; }

const char *router_endpoint_name(int endpoint) {
    if (endpoint < 0 || endpoint >= N_ROUTES) return "other";
    return ROUTES[endpoint].has_arg ? "/v1/models/{id}" : ROUTES[endpoint].path;
}
