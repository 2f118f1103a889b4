/* gen.c - a request's generations read as one event stream (see gen.h).
 *
 * Reading: each call first takes a ready event from any choice, round robin
 * (so n > 1 streams interleave fairly); when none is ready it waits on one
 * unfinished choice for a short slice, then checks the client socket and the
 * server's cancel flag, and tries again. A slice is short when several
 * choices run (another may be ready first) and longer with one. */
#define _GNU_SOURCE
#include "server/gen.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "server/metrics.h"

#define WAIT_ONE_MS 50  /* slice when one choice is left */
#define WAIT_MANY_MS 5  /* slice when several are */

typedef struct gen_choice {
    lm_handle *handle; /* NULL until submitted */
    bool finished;
    int n_tokens;      /* token events seen */
    double t_submit;   /* seconds, monotonic */
    double t_last;     /* time of the last token event */
    int prompt_tokens, completion_tokens;
} gen_choice;

struct gen_job {
    srv_server *srv;
    int fd;
    int n_choices;
    int n_finished;
    int next;          /* round-robin start */
    bool client_gone;
    bool timed_out;    /* ran past --request-timeout */
    double deadline;   /* monotonic seconds; 0 = none */
    gen_choice *choices; /* (n_choices) */
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

gen_job *gen_job_create(srv_server *srv, int fd, int n_choices) {
    gen_job *j = calloc(1, sizeof(*j));
    if (!j) return NULL;
    j->choices = calloc((size_t)n_choices, sizeof(gen_choice));
    if (!j->choices) {
        free(j);
        return NULL;
    }
    j->srv = srv;
    j->fd = fd;
    j->n_choices = n_choices;
    if (srv->cfg.request_timeout_s > 0) j->deadline = now_s() + srv->cfg.request_timeout_s;
    atomic_fetch_add(&srv->in_flight, 1);
    return j;
}

void gen_job_free(gen_job *j) {
    if (!j) return;
    for (int i = 0; i < j->n_choices; i++) {
        gen_choice *c = &j->choices[i];
        if (!c->handle) continue;
        if (!c->finished) metrics_count_finish(j->srv->metrics, "abort");
        engine_release(c->handle);
    }
    atomic_fetch_sub(&j->srv->in_flight, 1);
    free(j->choices);
    free(j);
}

int gen_job_submit(gen_job *j, int i, const lm_request_params *params, srv_error *err) {
    gen_choice *c = &j->choices[i];
    lm_error e = {{0}};
    c->t_submit = now_s();
    switch (engine_submit(j->srv->engine, params, &c->handle, &e)) {
    case LM_SUBMIT_OK: return 0;
    case LM_SUBMIT_INVALID:
    case LM_SUBMIT_TOO_LONG: return srv_fail(err, SRV_ERR_INVALID, NULL, "%s", e.msg);
    case LM_SUBMIT_QUEUE_FULL:
        return srv_fail(err, SRV_ERR_OVERLOADED, NULL, "the server is overloaded: its request queue is full (--max-queue)");
    case LM_SUBMIT_SHUTTING_DOWN: break;
    }
    return srv_fail(err, SRV_ERR_UNAVAILABLE, NULL, "the server is shutting down");
}

/* the peer closed or reset the connection (a half-close counts: HTTP clients
 * do not half-close while waiting for a response) */
static bool peer_hung_up(int fd) {
    if (fd < 0) return false;
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return false;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

static void cancel_all(gen_job *j) {
    for (int i = 0; i < j->n_choices; i++) {
        gen_choice *c = &j->choices[i];
        if (c->handle && !c->finished) engine_abort(c->handle);
    }
}

/* latency histograms, finish counters and token sums for an event of choice i */
static void account(gen_job *j, int i, const lm_event *ev) {
    gen_choice *c = &j->choices[i];
    double t = now_s();
    if (ev->kind == LM_EVENT_TOKEN) {
        if (c->n_tokens == 0) metrics_observe_ttft(j->srv->metrics, t - c->t_submit);
        else metrics_observe_itl(j->srv->metrics, t - c->t_last);
        c->n_tokens++;
        c->t_last = t;
        return;
    }
    c->finished = true;
    j->n_finished++;
    if (ev->kind == LM_EVENT_ERROR) {
        metrics_count_finish(j->srv->metrics, "error");
        return;
    }
    c->prompt_tokens = ev->prompt_tokens;
    c->completion_tokens = ev->completion_tokens;
    metrics_count_finish(j->srv->metrics, ev->finish == LM_FINISH_LENGTH  ? "length"
                                          : ev->finish == LM_FINISH_ABORT ? "abort"
                                                                          : "stop");
}

gen_status gen_job_next(gen_job *j, int *i, lm_event *ev, double max_wait_s) {
    double give_up = max_wait_s > 0 ? now_s() + max_wait_s : 0;
    for (;;) {
        if (j->n_finished == j->n_choices) return GEN_FINISHED;
        if (j->deadline > 0 && !j->timed_out && now_s() > j->deadline) j->timed_out = true;
        if (j->client_gone || j->timed_out || atomic_load(&j->srv->cancel_all) || peer_hung_up(j->fd)) {
            if (!j->timed_out && !atomic_load(&j->srv->cancel_all)) j->client_gone = true;
            cancel_all(j);
            return GEN_CANCELLED;
        }
        int waiting_on = -1, n_open = 0;
        for (int k = 0; k < j->n_choices; k++) {
            int c = (j->next + k) % j->n_choices;
            if (j->choices[c].finished || !j->choices[c].handle) continue;
            n_open++;
            if (waiting_on < 0) waiting_on = c;
            if (engine_next_event(j->choices[c].handle, ev, 0) == 1) {
                j->next = (c + 1) % j->n_choices;
                account(j, c, ev);
                *i = c;
                return GEN_EVENT;
            }
        }
        if (waiting_on < 0) return GEN_FINISHED; /* nothing was submitted */
        int slice = n_open > 1 ? WAIT_MANY_MS : WAIT_ONE_MS;
        if (engine_next_event(j->choices[waiting_on].handle, ev, slice) == 1) {
            account(j, waiting_on, ev);
            *i = waiting_on;
            return GEN_EVENT;
        }
        if (give_up > 0 && now_s() > give_up) return GEN_IDLE;
    }
}

bool gen_job_client_gone(const gen_job *j) { return j->client_gone; }

int gen_job_cancel_error(const gen_job *j, srv_error *err) {
    if (j->client_gone) return srv_fail(err, SRV_ERR_CLIENT_GONE, NULL, "the client disconnected");
    if (j->timed_out)
        return srv_fail(err, SRV_ERR_DEADLINE, NULL, "generation ran longer than %d s (--request-timeout)",
                        j->srv->cfg.request_timeout_s);
    return srv_fail(err, SRV_ERR_UNAVAILABLE, NULL, "the server is shutting down");
}

int gen_job_prompt_tokens(const gen_job *j) {
    int n = 0;
    for (int i = 0; i < j->n_choices; i++) n += j->choices[i].prompt_tokens;
    return n;
}

int gen_job_completion_tokens(const gen_job *j) {
    int n = 0;
    for (int i = 0; i < j->n_choices; i++) n += j->choices[i].completion_tokens;
    return n;
}
