/* gen.h - one API request's generations: N engine requests (n > 1, or one
 * per prompt of a list) submitted together and read as one event stream.
 *
 * The job watches the client: if its socket hangs up, or the server's grace
 * period ends, every unfinished request is aborted at once (its K/V blocks
 * go back to the engine) and gen_job_next() says so. It also feeds the
 * latency histograms (time to first token, inter-token latency). */
#ifndef LAMINA_SERVER_GEN_H
#define LAMINA_SERVER_GEN_H

#include "server/srv.h"

typedef struct gen_job gen_job;

/* A job for N_CHOICES requests on behalf of the client on socket FD (-1:
 * none to watch). NULL on allocation failure. */
gen_job *gen_job_create(srv_server *srv, int fd, int n_choices);
/* Releases every handle (aborting unfinished ones) and frees the job. */
void gen_job_free(gen_job *j);

/* Submits choice I. Engine refusals become errors: 400 (invalid, too long),
 * 503/529 (queue full), 503 (shutting down). */
int gen_job_submit(gen_job *j, int i, const lm_request_params *params, srv_error *err);

typedef enum gen_status {
    GEN_IDLE = 2,      /* no event within the caller's MAX_WAIT_S */
    GEN_EVENT = 1,     /* *ev filled for choice *i (the caller lm_event_clear()s it) */
    GEN_FINISHED = 0,  /* every choice has had its DONE or ERROR */
    GEN_CANCELLED = -1 /* client gone, past --request-timeout, or shutdown: all aborted */
} gen_status;

/* Blocks until the next event of any choice (while checking the client
 * socket and the server's cancel flag every few milliseconds), or, when
 * MAX_WAIT_S > 0, at most that long (then GEN_IDLE: a stream sends a
 * keep-alive so that the connection's idle timeout does not cut it while
 * the request waits in the queue). */
gen_status gen_job_next(gen_job *j, int *i, lm_event *ev, double max_wait_s);

/* true once gen_job_next() returned GEN_CANCELLED because the client left */
bool gen_job_client_gone(const gen_job *j);
/* why gen_job_next() returned GEN_CANCELLED, as the error to answer; -1 */
int gen_job_cancel_error(const gen_job *j, srv_error *err);
/* sums over the choices' DONE events, for the request log */
int gen_job_prompt_tokens(const gen_job *j);
int gen_job_completion_tokens(const gen_job *j);

#endif
