/* http.c - the HTTP side of `lamina serve` (libmicrohttpd).
 *
 * One thread per connection: a handler may block while the engine
 * generates (non-streaming), and an SSE body is produced by a content-reader
 * callback that blocks on the request's events (sse.c), so no request ever
 * waits for another one's I/O. Per request: the body is collected up to
 * --max-body-size (the rest is read and dropped, then 413), the route is
 * found, the API key checked, and the handler's reply or error is queued.
 *
 * Shutdown: SIGINT/SIGTERM are taken by server_run() with sigwait (every
 * other thread has them blocked). The listening socket is closed, new model
 * work answers 503, running requests get the grace period to finish, then
 * whatever still runs is aborted and the daemon stops. */
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lamina.h"
#include "server/auth.h"
#include "server/conns.h"
#include "server/metrics.h"
#include "server/router.h"
#include "server/sse.h"
#include "server/srv.h"
#include "server/strbuf.h"

#define STREAM_BLOCK 16384       /* bytes per content-reader call */
#define CANCEL_WAIT_S 5          /* after the grace period: time for aborted requests to unwind */
#define REAP_EVERY_MS 250        /* how often the main thread enforces read deadlines */
#define EXTRA_CONNECTIONS 16     /* accepted beyond --max-connections, to answer them 503 */

/* per-request state, from the first header callback to the completion callback */
typedef struct conn_ctx {
    double t_start;
    strbuf body;
    bool too_large;     /* the body went past the limit: it is read and dropped */
    bool streaming;     /* an SSE reply: the stream writes the log line */
    srv_error refused;  /* set (message != "") when the head failed a check: the body is dropped */
    int status;         /* 0 until a response is queued */
    int prompt_tokens, completion_tokens;
    char method[8];
    char path[64];
} conn_ctx;

double srv_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- logging ---- */

static void iso_time(char *buf, size_t cap) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, cap - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

static void log_json(json_t *obj) {
    char *s = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (s) fprintf(stderr, "%s\n", s);
    free(s);
}

static void log_info(const srv_server *srv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_info(const srv_server *srv, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!srv->cfg.log_json) {
        fprintf(stderr, "lamina: %s\n", msg);
        return;
    }
    char ts[40];
    iso_time(ts, sizeof(ts));
    log_json(json_pack("{s:s, s:s, s:o}", "time", ts, "level", "info", "msg", srv_json_text(msg, strlen(msg))));
}

void srv_log_request(const srv_server *srv, const char *method, const char *path, int status, double t_start,
                     int prompt_tokens, int completion_tokens, const char *note) {
    double ms = (srv_now() - t_start) * 1e3;
    if (!srv->cfg.log_json) {
        char tokens[64] = "";
        if (prompt_tokens || completion_tokens)
            snprintf(tokens, sizeof(tokens), ", %d prompt + %d generated tokens", prompt_tokens, completion_tokens);
        fprintf(stderr, "lamina: %s %s %d %.1f ms%s%s%s\n", method, path, status, ms, tokens, note ? ", " : "",
                note ? note : "");
        return;
    }
    char ts[40];
    iso_time(ts, sizeof(ts));
    json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:i, s:f, s:i, s:i}", "time", ts, "level", "info", "method", method,
                          "path", srv_json_text(path, strlen(path)), "status", status, "duration_ms", ms,
                          "prompt_tokens", prompt_tokens, "completion_tokens", completion_tokens);
    if (o && note) json_object_set_new(o, "note", json_string(note));
    log_json(o);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    const srv_server *srv = cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = 0;
    log_info(srv, "http: %s", msg);
}

/* ---- responses ---- */

static void add_common_headers(const srv_server *srv, struct MHD_Response *r, const char *content_type) {
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (srv->cfg.cors_origin) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_ORIGIN, srv->cfg.cors_origin);
        if (strcmp(srv->cfg.cors_origin, "*")) MHD_add_response_header(r, "Vary", "Origin");
    }
}

/* queues BODY (malloc'd; taken) with STATUS and counts it in the metrics */
static enum MHD_Result queue_body(srv_server *srv, struct MHD_Connection *conn, conn_ctx *c, int endpoint,
                                  int status, const char *content_type, char *body, const char *allow) {
    static const char fallback[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\"}}";
    struct MHD_Response *r;
    if (body) {
        r = MHD_create_response_from_buffer_with_free_callback(strlen(body), body, free);
    } else {
        status = 500;
        r = MHD_create_response_from_buffer(sizeof(fallback) - 1, (void *)fallback, MHD_RESPMEM_PERSISTENT);
    }
    if (!r) {
        free(body);
        return MHD_NO;
    }
    add_common_headers(srv, r, content_type ? content_type : "application/json");
    if (allow) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    if (status == 401) MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (status == 413 || c->refused.message[0]) /* the rest of the body was dropped */
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ok = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    metrics_count_request(srv->metrics, endpoint, status);
    c->status = status;
    return ok;
}

static enum MHD_Result queue_error(srv_server *srv, struct MHD_Connection *conn, conn_ctx *c, int endpoint,
                                   srv_api api, const srv_error *err, const char *allow) {
    return queue_body(srv, conn, c, endpoint, srv_error_status(err->kind, api), NULL, srv_error_json(err, api),
                      allow);
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    ssize_t n = sse_stream_read(cls, buf, max);
    if (n > 0) return n;
    return n == 0 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void stream_free(void *cls) { sse_stream_free(cls); }

static enum MHD_Result queue_stream(srv_server *srv, struct MHD_Connection *conn, conn_ctx *c, int endpoint,
                                    sse_stream *s) {
    sse_stream_set_log(s, c->method, c->path, c->t_start);
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK, stream_reader, s,
                                                               stream_free);
    if (!r) {
        sse_stream_free(s);
        return MHD_NO;
    }
    add_common_headers(srv, r, "text/event-stream; charset=utf-8");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    c->streaming = true;
    enum MHD_Result ok = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    metrics_count_request(srv->metrics, endpoint, 200);
    c->status = 200;
    return ok;
}

static enum MHD_Result queue_preflight(srv_server *srv, struct MHD_Connection *conn, conn_ctx *c) {
    struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    add_common_headers(srv, r, "text/plain");
    MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, POST, OPTIONS");
    if (srv->cfg.cors_origin) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, OPTIONS");
        MHD_add_response_header(r, "Access-Control-Allow-Headers",
                                "Authorization, Content-Type, x-api-key, anthropic-version, anthropic-beta");
        MHD_add_response_header(r, MHD_HTTP_HEADER_ACCESS_CONTROL_MAX_AGE, "86400");
    }
    enum MHD_Result ok = MHD_queue_response(conn, MHD_HTTP_NO_CONTENT, r);
    MHD_destroy_response(r);
    c->status = 204;
    return ok;
}

/* ---- requests ---- */

static int connection_fd(struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? (int)ci->connect_fd : -1;
}

static enum MHD_Result add_header_bytes(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    size_t *n = cls;
    *n += strlen(key) + (value ? strlen(value) : 0) + 4; /* "key: value\r\n" */
    return MHD_YES;
}

static conn_entry *conn_entry_of(struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* the checks that need only the request line and headers: header size,
 * connection limit, read deadline; 0 or -1 with ERR filled */
static int check_request_head(srv_server *srv, struct MHD_Connection *conn, const char *url, srv_error *err) {
    size_t n = strlen(url);
    MHD_get_connection_values(conn, MHD_HEADER_KIND, add_header_bytes, &n);
    if (n > srv->cfg.max_header_bytes)
        return srv_fail(err, SRV_ERR_HEADERS, NULL,
                        "the request line and headers take %zu bytes, more than %zu (--max-header-size)", n,
                        srv->cfg.max_header_bytes);
    int open = conns_active(srv->conns);
    if (open > srv->cfg.max_connections)
        return srv_fail(err, SRV_ERR_OVERLOADED, NULL, "too many open connections (%d, --max-connections %d)", open,
                        srv->cfg.max_connections);
    return 0;
}

/* the read deadline of the request on CONN has passed */
static bool read_overdue(srv_server *srv, struct MHD_Connection *conn) {
    return conns_overdue(srv->conns, conn_entry_of(conn), srv_now());
}

static enum MHD_Result dispatch(srv_server *srv, struct MHD_Connection *conn, conn_ctx *c, const char *url,
                                const char *method) {
    if (!strcmp(method, "OPTIONS")) return queue_preflight(srv, conn, c);
    const char *arg;
    bool wrong_method;
    const srv_route *route = router_find(method, url, &arg, &wrong_method);
    int endpoint = router_endpoint(route);
    srv_api api = route ? route->api : router_api_of_path(url);
    srv_error err;
    memset(&err, 0, sizeof(err));
    conns_request_read(srv->conns, conn_entry_of(conn));
    if (c->refused.message[0]) return queue_error(srv, conn, c, endpoint, api, &c->refused, NULL);
    if (c->too_large) {
        srv_fail(&err, SRV_ERR_TOO_LARGE, NULL, "the request body is larger than %zu bytes (--max-body-size)",
                 srv->cfg.max_body_bytes);
        return queue_error(srv, conn, c, endpoint, api, &err, NULL);
    }
    if (!route) {
        if (wrong_method) {
            srv_fail(&err, SRV_ERR_METHOD, NULL, "Method %s is not allowed on %s", method, url);
            return queue_error(srv, conn, c, endpoint, api, &err, "GET, POST, OPTIONS");
        }
        srv_fail(&err, SRV_ERR_NOT_FOUND, NULL, "Invalid URL (%s %s)", method, url);
        snprintf(err.code, sizeof(err.code), "unknown_url");
        return queue_error(srv, conn, c, endpoint, api, &err, NULL);
    }
    if (route->needs_auth && srv->cfg.api_key &&
        !auth_check(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION),
                    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "x-api-key"), srv->cfg.api_key)) {
        srv_fail(&err, SRV_ERR_AUTH, NULL,
                 api == SRV_API_ANTHROPIC ? "invalid x-api-key"
                                          : "Incorrect or missing API key: send it as 'Authorization: Bearer KEY'");
        return queue_error(srv, conn, c, endpoint, api, &err, NULL);
    }
    if (route->generates && atomic_load(&srv->draining)) {
        srv_fail(&err, SRV_ERR_UNAVAILABLE, NULL, "the server is shutting down");
        return queue_error(srv, conn, c, endpoint, api, &err, NULL);
    }
    srv_request req = {srv, method, url, arg, c->body.data ? c->body.data : "", c->body.len, connection_fd(conn),
                       api};
    srv_reply rep;
    memset(&rep, 0, sizeof(rep));
    if (route->handler(&req, &rep, &err)) return queue_error(srv, conn, c, endpoint, api, &err, NULL);
    if (rep.stream) return queue_stream(srv, conn, c, endpoint, rep.stream);
    c->prompt_tokens = rep.prompt_tokens;
    c->completion_tokens = rep.completion_tokens;
    return queue_body(srv, conn, c, endpoint, rep.status ? rep.status : 200, rep.content_type, rep.body, NULL);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    srv_server *srv = cls;
    conn_ctx *c = *con_cls;
    if (!c) {
        c = calloc(1, sizeof(*c));
        if (!c) return MHD_NO;
        c->t_start = srv_now();
        strbuf_init(&c->body);
        snprintf(c->method, sizeof(c->method), "%s", method);
        snprintf(c->path, sizeof(c->path), "%s", url);
        *con_cls = c;
        if (check_request_head(srv, conn, url, &c->refused)) strbuf_free(&c->body);
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!c->refused.message[0] && read_overdue(srv, conn))
            srv_fail(&c->refused, SRV_ERR_SLOW_CLIENT, NULL,
                     "the request did not arrive within %d s (--read-timeout)", srv->cfg.read_timeout_s);
        if (c->refused.message[0]) {
            *upload_data_size = 0; /* read and dropped */
            return MHD_YES;
        }
        if (!c->too_large && c->body.len + *upload_data_size > srv->cfg.max_body_bytes) {
            c->too_large = true;
            strbuf_free(&c->body);
        }
        if (!c->too_large) strbuf_append(&c->body, upload_data, *upload_data_size);
        if (c->body.failed) return MHD_NO;
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (c->status) return MHD_YES;
    return dispatch(srv, conn, c, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    srv_server *srv = cls;
    conn_ctx *c = *con_cls;
    if (!c) return;
    if (c->status && !c->streaming)
        srv_log_request(srv, c->method, c->path, c->status, c->t_start, c->prompt_tokens, c->completion_tokens,
                        toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? NULL : "client disconnected");
    strbuf_free(&c->body);
    free(c);
    *con_cls = NULL;
    int wait_s = srv->cfg.read_timeout_s > srv->cfg.idle_timeout_s ? srv->cfg.read_timeout_s : srv->cfg.idle_timeout_s;
    conns_request_done(srv->conns, conn_entry_of(conn), srv_now() + wait_s);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
    srv_server *srv = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED)
        *socket_context = conns_open(srv->conns, connection_fd(conn), srv_now() + srv->cfg.read_timeout_s);
    else conns_close(srv->conns, *socket_context);
}

/* ---- listening and lifetime ---- */

/* binds HOST:PORT; returns the socket and the bound port, or -1 with why */
static int open_listener(const char *host, int port, int *bound_port, char *why, size_t why_cap) {
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char port_s[16];
    snprintf(port_s, sizeof(port_s), "%d", port);
    int rc = getaddrinfo(host, port_s, &hints, &res);
    if (rc) {
        snprintf(why, why_cap, "cannot resolve host '%s': %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1, last_errno = 0;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, a->ai_addr, a->ai_addrlen) || listen(fd, 512)) {
            last_errno = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(why, why_cap, "cannot listen on %s:%d: %s", host, port, strerror(last_errno));
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &len);
    *bound_port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                           : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001B3ull;
    return h;
}

static void init_identity(srv_server *srv) {
    uint64_t h = 0xCBF29CE484222325ull;
    const char *v = lamina_version();
    h = fnv1a(h, v, strlen(v));
    h = fnv1a(h, srv->cfg.served_name, strlen(srv->cfg.served_name));
    struct stat st;
    if (srv->cfg.model_path && !stat(srv->cfg.model_path, &st)) h = fnv1a(h, &st.st_size, sizeof(st.st_size));
    snprintf(srv->fingerprint, sizeof(srv->fingerprint), "fp_%010llx", (unsigned long long)(h >> 24));
    srv->started = time(NULL);
    if (getrandom(&srv->id_seed, sizeof(srv->id_seed), 0) != (ssize_t)sizeof(srv->id_seed))
        srv->id_seed = (uint64_t)srv->started * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid();
    atomic_init(&srv->id_counter, 0);
    atomic_init(&srv->in_flight, 0);
    atomic_init(&srv->draining, false);
    atomic_init(&srv->cancel_all, false);
}

void server_block_signals(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* the pending SIGINT/SIGTERM within TIMEOUT_MS (< 0: wait forever), or 0 */
static int wait_signal(int timeout_ms) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (timeout_ms < 0) {
        int sig = 0;
        return sigwait(&set, &sig) ? 0 : sig;
    }
    struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};
    int sig = sigtimedwait(&set, NULL, &ts);
    return sig > 0 ? sig : 0;
}

static void wait_in_flight(srv_server *srv, double seconds, bool stop_on_signal) {
    double deadline = srv_now() + seconds;
    while (atomic_load(&srv->in_flight) > 0 && srv_now() < deadline)
        if (wait_signal(50) && stop_on_signal) return;
}

static void print_start_line(const srv_server *srv, const char *host, int port) {
    const char *fmt = strchr(host, ':') ? "http://[%s]:%d" : "http://%s:%d";
    char url[128];
    snprintf(url, sizeof(url), fmt, host, port);
    printf("lamina: serving %s (%s, ctx %d) at %s - try: curl %s/v1/chat/completions "
           "-H 'Content-Type: application/json'%s -d '{\"model\": \"%s\", \"messages\": [{\"role\": \"user\", "
           "\"content\": \"Hello!\"}]}'\n",
           srv->cfg.served_name, srv->cfg.model_path, srv->cfg.n_ctx, url, url,
           srv->cfg.api_key ? " -H \"Authorization: Bearer $LAMINA_API_KEY\"" : "", srv->cfg.served_name);
    fflush(stdout);
}

static void shutdown_server(srv_server *srv, struct MHD_Daemon *d, int sig) {
    log_info(srv, "%s received: no new requests; %d in flight get %d s to finish", sig == SIGINT ? "SIGINT" : "SIGTERM",
             atomic_load(&srv->in_flight), srv->cfg.shutdown_grace_s);
    atomic_store(&srv->draining, true);
    MHD_socket lfd = MHD_quiesce_daemon(d);
    if (lfd != MHD_INVALID_SOCKET) close(lfd);
    wait_in_flight(srv, srv->cfg.shutdown_grace_s, true);
    int left = atomic_load(&srv->in_flight);
    if (left > 0) {
        log_info(srv, "cancelling %d request%s still running", left, left == 1 ? "" : "s");
        atomic_store(&srv->cancel_all, true);
        wait_in_flight(srv, CANCEL_WAIT_S, false);
    }
    MHD_stop_daemon(d);
    log_info(srv, "stopped");
}

int server_run(const srv_config *cfg, lm_engine *engine, const tok_vocab *vocab, const srv_template *tmpl) {
    srv_server *srv = calloc(1, sizeof(*srv));
    if (!srv) return 1;
    srv->cfg = *cfg;
    srv->engine = engine;
    srv->vocab = vocab;
    srv->tmpl = tmpl;
    srv->metrics = metrics_create();
    srv->conns = conns_create();
    init_identity(srv);
    char why[256];
    int port = 0;
    int fd = srv->metrics && srv->conns ? open_listener(cfg->host, cfg->port, &port, why, sizeof(why)) : -1;
    if (!srv->metrics || !srv->conns) snprintf(why, sizeof(why), "out of memory");
    struct MHD_Daemon *d = NULL;
    if (fd >= 0) {
        unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC |
                         MHD_USE_AUTO | MHD_USE_ERROR_LOG;
        d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, srv,
                             MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
                             srv, MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv, MHD_OPTION_CONNECTION_TIMEOUT,
                             (unsigned)cfg->idle_timeout_s, MHD_OPTION_CONNECTION_LIMIT,
                             (unsigned)(cfg->max_connections + EXTRA_CONNECTIONS), MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                             cfg->max_header_bytes * 2 + 32768, MHD_OPTION_END);
        if (!d) {
            snprintf(why, sizeof(why), "libmicrohttpd could not start on %s:%d", cfg->host, port);
            close(fd);
        }
    }
    if (!d) {
        fprintf(stderr, "lamina serve: %s\n", why);
        metrics_free(srv->metrics);
        conns_free(srv->conns);
        free(srv);
        return 1;
    }
    print_start_line(srv, cfg->host, port);
    int sig;
    while (!(sig = wait_signal(REAP_EVERY_MS))) conns_reap(srv->conns, srv_now());
    shutdown_server(srv, d, sig);
    metrics_free(srv->metrics);
    conns_free(srv->conns);
    free(srv);
    return 0;
}
