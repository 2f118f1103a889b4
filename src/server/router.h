/* router.h - the route table: which handler answers METHOD PATH, in which
 * API's error shape, behind the API key or not. */
#ifndef LAMINA_SERVER_ROUTER_H
#define LAMINA_SERVER_ROUTER_H

#include <stdbool.h>

#include "server/srv.h"

typedef struct srv_route {
    const char *method;   /* "GET" or "POST" (HEAD is answered as GET) */
    const char *path;     /* exact path, or the prefix of PATH/{id} when has_arg */
    bool has_arg;
    srv_handler handler;
    srv_api api;
    bool needs_auth;      /* behind --api-key */
    bool generates;       /* does model work: refused while shutting down */
} srv_route;

/* The route for METHOD PATH, or NULL: then *wrong_method tells whether the
 * path exists under another method (405) or not at all (404). *arg gets the
 * {id} of a has_arg route (pointing into PATH). */
const srv_route *router_find(const char *method, const char *path, const char **arg, bool *wrong_method);
/* the API a path belongs to, for errors of unmatched paths */
srv_api router_api_of_path(const char *path);

/* endpoints for the metrics: 0..router_n_endpoints()-1, the last one "other" */
int router_n_endpoints(void);
int router_endpoint(const srv_route *route); /* route NULL: "other" */
const char *router_endpoint_name(int endpoint);

#endif
