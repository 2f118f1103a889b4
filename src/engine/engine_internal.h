/* engine_internal.h - the engine's state, shared by engine.c (thread, API,
 * events), scheduler.c (what each step computes) and step.c (a step's
 * forward pass, draws and events). */
#ifndef LAMINA_ENGINE_INTERNAL_H
#define LAMINA_ENGINE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "base/threadpool.h"
#include "engine/engine.h"
#include "engine/kv_cache.h"
#include "engine/sequence.h"
#include "model/forward_cuda.h"

struct lm_handle {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    lm_event *events;       /* ring (cap) */
    int head, count, cap;
    bool final_queued;      /* DONE or ERROR is in the ring or was read */
    bool client_released;
    bool engine_done;       /* the engine dropped its sequence */
    atomic_bool aborted;
};

/* one sequence's share of a step: tokens [start, start + len) */
typedef struct step_item {
    lm_seq *seq;
    int start, len;
    int logits_row;         /* row in the step's logits, or -1 */
    bool host_row;          /* GPU steps: drawn on the host from its whole row (no GPU edits) */
    int fate;               /* after the draw: FATE_* */
    lm_event ev;            /* after the draw: the token's event, its text still to come */
} step_item;

/* what a drawn token does to its sequence (step.c) */
enum { FATE_NONE, FATE_GOES_ON, FATE_ENDS_EOS, FATE_ENDS_LENGTH };

struct lm_engine {
    const lm_model *model;
    const tok_vocab *vocab;
    lm_engine_config cfg;
    tp_pool *pool;
    lm_forward *fw;         /* CPU forward pass, or */
    lm_forward_cuda *fwc;   /* the GPU's (device == LM_DEVICE_CUDA) */
    const int **tables;     /* (max_num_seqs) block tables of the step's sequences, for fwc */
    int *n_tables;
    kv_cache *kv;
    lm_kv kv_view;
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;     /* guards inbox, stop, stats */
    pthread_cond_t cv;
    bool stop;
    lm_seq **inbox;         /* submitted, not yet seen by the engine thread */
    int n_inbox;
    atomic_int n_queued;    /* inbox + waiting, for the queue limit */
    uint64_t next_order;
    lm_engine_stats stats;  /* published copy, under mu */
    /* engine-thread counters, copied into stats after each step */
    uint64_t n_generated, n_prefix_hit, n_preemptions, n_steps;
    /* engine-thread state */
    lm_seq **waiting;       /* FCFS; preempted sequences go back to the front */
    int n_waiting;
    lm_seq **running;       /* admission order, at most max_num_seqs */
    int n_running;
    step_item *step;        /* this step's items (max_num_seqs): planned, in flight, or being drawn */
    step_item *step_drawn;  /* (max_num_seqs) the drawn step's items while the next one runs */
    int n_step, n_drawn;
    bool overlap;           /* the next step launched before the drawn one is emitted (GPU; LAMINA_ENGINE_OVERLAP) */
    bool in_flight;         /* a launched GPU step awaits its draw */
    lm_cuda_out gpu_out;    /* what the launched GPU step sends back */
    lm_cuda_results gpu_res; /* and where, after it completes */
    bool profile;           /* LAMINA_ENGINE_PROFILE=1: per-phase times printed at exit */
    struct {
        double plan_us, launch_us, wait_us, draw_us, emit_us, steps;
    } prof;
    int32_t *b_tokens, *b_pos, *b_seq; /* (max_num_batched_tokens) */
    bool *b_want;
    float *logits;          /* (max_num_seqs, n_vocab) */
    lm_logit_edit *edit_list; /* (LM_FORWARD_CUDA_MAX_EDITS) the step's logit bias and penalties, for the GPU */
    int32_t *edit_start;    /* (max_num_seqs + 1) row r's edits: edit_list[edit_start[r] .. edit_start[r + 1]) */
    bool host_rows;         /* LAMINA_CUDA_SAMPLE_ROWS=1: every GPU row drawn on the host (the reference path) */
    float *logprob_scratch; /* (n_vocab) */
};

/* Plans the step: fills e->step and the batch arrays, preempting sequences
 * if the cache runs out. Returns the number of tokens (0: nothing to do). */
int sched_plan_step(lm_engine *e);
/* takes a running sequence out of the running set (order kept) */
void sched_remove_running(lm_engine *e, lm_seq *s);

/* step.c: one step (plan, forward pass, draw, emit; on the GPU the next
 * step's forward pass overlaps this one's emission) */
void engine_step(lm_engine *e);
/* waits out a GPU step still in flight (shutdown) */
void engine_drain(lm_engine *e);

/* engine.c, for step.c: */
/* queues ev on the handle (taking its text) unless the request was aborted */
void handle_push(lm_handle *h, lm_event *ev);
/* the engine's side lets go of the handle */
void handle_engine_done(lm_handle *h);
/* the pool's block counters into the published stats (under e->mu) */
void put_kv_stats(lm_engine *e);
/* ends sequence s (not in the running or waiting set any more): blocks
 * released, DONE event, its items in the steps marked dead, freed */
void engine_finish(lm_engine *e, lm_seq *s, lm_finish_reason why, const char *stop_string, bool by_eos);
/* the same for a request that cannot go on, wherever it is: an ERROR event
 * with MSG */
void engine_fail(lm_engine *e, lm_seq *s, const char *msg);
/* takes s out of the running or the waiting set, wherever it is */
void engine_unschedule(lm_engine *e, lm_seq *s);
/* marks s's items in the planned / in-flight step and in the drawn step
 * awaiting emission dead (s is being freed) */
void engine_forget(lm_engine *e, const lm_seq *s);

#endif
