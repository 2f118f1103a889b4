/* engine.c - the engine thread, the submit/event API, and the end of a
 * sequence (a step's work is step.c's).
 *
 * Threads: HTTP threads call engine_submit / engine_next_event /
 * engine_abort / engine_release; they touch only the inbox (under e->mu) and
 * their handle (under h->mu). The engine thread owns everything else. A
 * handle is freed when both sides are done with it: the client released it
 * and the engine dropped its sequence. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/cpu.h"
#include "engine/engine_internal.h"

lm_engine_config lm_engine_config_default(const lm_model *model) {
    lm_engine_config c;
    memset(&c, 0, sizeof(c));
    c.n_threads = cpu_physical_cores();
    c.n_ctx = model->hp.n_ctx_train < 4096 ? model->hp.n_ctx_train : 4096;
    c.max_num_seqs = 64;
    c.max_num_batched_tokens = 2048;
    c.max_queue = 256;
    c.block_size = 16;
    c.prefix_cache = true;
    return c;
}

/* ---- handles and events ---- */

static lm_handle *handle_create(void) {
    lm_handle *h = calloc(1, sizeof(*h));
    if (!h) return NULL;
    h->cap = 16;
    h->events = malloc(sizeof(lm_event) * (size_t)h->cap);
    if (!h->events) {
        free(h);
        return NULL;
    }
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    return h;
}

static void handle_destroy(lm_handle *h) {
    for (int i = 0; i < h->count; i++) lm_event_clear(&h->events[(h->head + i) % h->cap]);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h->events);
    free(h);
}

void lm_event_clear(lm_event *ev) {
    free(ev->text);
    ev->text = NULL;
}

/* queues ev (taking its text) unless the request was aborted */
void handle_push(lm_handle *h, lm_event *ev) {
    pthread_mutex_lock(&h->mu);
    if (atomic_load(&h->aborted) || h->final_queued) {
        pthread_mutex_unlock(&h->mu);
        lm_event_clear(ev);
        return;
    }
    if (h->count == h->cap) {
        lm_event *grown = malloc(sizeof(lm_event) * (size_t)h->cap * 2);
        if (!grown) { /* drop the token text rather than the final event */
            pthread_mutex_unlock(&h->mu);
            lm_event_clear(ev);
            return;
        }
        for (int i = 0; i < h->count; i++) grown[i] = h->events[(h->head + i) % h->cap];
        free(h->events);
        h->events = grown;
        h->head = 0;
        h->cap *= 2;
    }
    h->events[(h->head + h->count) % h->cap] = *ev;
    h->count++;
    if (ev->kind != LM_EVENT_TOKEN) h->final_queued = true;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

/* the engine's side lets go; frees the handle if the client already did */
void handle_engine_done(lm_handle *h) {
    pthread_mutex_lock(&h->mu);
    h->engine_done = true;
    bool free_it = h->client_released;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
    if (free_it) handle_destroy(h);
}

int engine_next_event(lm_handle *h, lm_event *ev, int timeout_ms) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    if (timeout_ms >= 0) {
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&h->mu);
    while (h->count == 0) {
        if (h->engine_done && !h->final_queued) { /* ended without a final event (shutdown) */
            memset(ev, 0, sizeof(*ev));
            ev->kind = LM_EVENT_ERROR;
            snprintf(ev->error, sizeof(ev->error), "the engine stopped");
            h->final_queued = true;
            pthread_mutex_unlock(&h->mu);
            return 1;
        }
        if (timeout_ms < 0) pthread_cond_wait(&h->cv, &h->mu);
        else if (pthread_cond_timedwait(&h->cv, &h->mu, &deadline) != 0) {
            pthread_mutex_unlock(&h->mu);
            return 0;
        }
    }
    *ev = h->events[h->head];
    h->head = (h->head + 1) % h->cap;
    h->count--;
    pthread_mutex_unlock(&h->mu);
    return 1;
}

void engine_abort(lm_handle *h) { atomic_store(&h->aborted, true); }

void engine_release(lm_handle *h) {
    engine_abort(h);
    pthread_mutex_lock(&h->mu);
    h->client_released = true;
    bool free_it = h->engine_done;
    pthread_mutex_unlock(&h->mu);
    if (free_it) handle_destroy(h);
}

/* ---- submit ---- */

lm_submit_status engine_submit(lm_engine *e, const lm_request_params *p, lm_handle **out, lm_error *err) {
    const int n_vocab = e->model->hp.n_vocab;
    *out = NULL;
    if (p->n_prompt < 1) {
        lm_error_set(err, "the prompt is empty");
        return LM_SUBMIT_INVALID;
    }
    for (int i = 0; i < p->n_prompt; i++)
        if (p->prompt[i] < 0 || p->prompt[i] >= n_vocab) {
            lm_error_set(err, "token id %d at position %d is out of range [0, %d)", p->prompt[i], i, n_vocab);
            return LM_SUBMIT_INVALID;
        }
    if (p->max_tokens < 1 || p->top_logprobs > LM_MAX_TOP_LOGPROBS || p->n_stop < 0) {
        lm_error_set(err, "max_tokens must be >= 1 and top_logprobs at most %d", LM_MAX_TOP_LOGPROBS);
        return LM_SUBMIT_INVALID;
    }
    if (p->n_prompt >= e->cfg.n_ctx) {
        lm_error_set(err, "the prompt has %d tokens; the context holds %d (including at least one to generate)",
                     p->n_prompt, e->cfg.n_ctx);
        return LM_SUBMIT_TOO_LONG;
    }
    lm_seq *s = seq_create(p, e->cfg.n_ctx, e->cfg.block_size, n_vocab);
    lm_handle *h = s ? handle_create() : NULL;
    if (!h) {
        seq_free(s);
        lm_error_set(err, "out of memory");
        return LM_SUBMIT_QUEUE_FULL;
    }
    s->handle = h;
    pthread_mutex_lock(&e->mu);
    if (e->stop) {
        pthread_mutex_unlock(&e->mu);
        seq_free(s);
        handle_destroy(h);
        lm_error_set(err, "the server is shutting down");
        return LM_SUBMIT_SHUTTING_DOWN;
    }
    if (atomic_load(&e->n_queued) >= e->cfg.max_queue) {
        pthread_mutex_unlock(&e->mu);
        seq_free(s);
        handle_destroy(h);
        lm_error_set(err, "the server is busy: %d requests are waiting", e->cfg.max_queue);
        return LM_SUBMIT_QUEUE_FULL;
    }
    lm_seq **grown = realloc(e->inbox, sizeof(lm_seq *) * (size_t)(e->n_inbox + 1));
    if (!grown) {
        pthread_mutex_unlock(&e->mu);
        seq_free(s);
        handle_destroy(h);
        lm_error_set(err, "out of memory");
        return LM_SUBMIT_QUEUE_FULL;
    }
    e->inbox = grown;
    s->order = e->next_order++;
    e->inbox[e->n_inbox++] = s;
    atomic_fetch_add(&e->n_queued, 1);
    e->stats.prompt_tokens += (uint64_t)p->n_prompt;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    *out = h;
    return LM_SUBMIT_OK;
}

void engine_stats(lm_engine *e, lm_engine_stats *out) {
    pthread_mutex_lock(&e->mu);
    *out = e->stats;
    pthread_mutex_unlock(&e->mu);
}

/* ---- the engine thread ---- */

static lm_fp16 *view_k(void *ctx, int layer, int slot, int block) {
    lm_engine *e = ctx;
    return kv_k(e->kv, e->step[slot].seq->blocks[block], layer);
}

static lm_fp16 *view_v(void *ctx, int layer, int slot, int block) {
    lm_engine *e = ctx;
    return kv_v(e->kv, e->step[slot].seq->blocks[block], layer);
}

/* the K/V pool's counters of the stats; e->mu held */
void put_kv_stats(lm_engine *e) {
    e->stats.kv_blocks_total = kv_n_blocks(e->kv);
    e->stats.kv_blocks_used = kv_n_blocks(e->kv) - kv_n_free(e->kv);
    e->stats.kv_blocks_cached = kv_n_cached(e->kv);
}

void engine_unschedule(lm_engine *e, lm_seq *s) {
    for (int i = 0; i < e->n_running; i++)
        if (e->running[i] == s) {
            sched_remove_running(e, s);
            return;
        }
    for (int i = 0; i < e->n_waiting; i++)
        if (e->waiting[i] == s) {
            memmove(&e->waiting[i], &e->waiting[i + 1], sizeof(lm_seq *) * (size_t)(e->n_waiting - i - 1));
            e->n_waiting--;
            atomic_fetch_sub(&e->n_queued, 1);
            return;
        }
}

void engine_forget(lm_engine *e, const lm_seq *s) {
    for (int i = 0; i < e->n_step; i++)
        if (e->step[i].seq == s) e->step[i].seq = NULL;
    for (int i = 0; i < e->n_drawn; i++)
        if (e->step_drawn[i].seq == s) e->step_drawn[i].seq = NULL;
}

/* the end of every sequence: blocks back to the cache, the pool's counters
 * refreshed (so a client that reads /metrics after its reply sees them
 * released: update_stats runs only after the step), the final event, the
 * handle let go, its items in the step marked dead, freed */
static void end_seq(lm_engine *e, lm_seq *s, lm_event *final) {
    seq_release_blocks(s, e->kv);
    pthread_mutex_lock(&e->mu);
    put_kv_stats(e);
    pthread_mutex_unlock(&e->mu);
    handle_push(s->handle, final);
    handle_engine_done(s->handle);
    engine_forget(e, s);
    seq_free(s);
}

void engine_finish(lm_engine *e, lm_seq *s, lm_finish_reason why, const char *stop_string, bool by_eos) {
    lm_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.kind = LM_EVENT_DONE;
    ev.finish = why;
    ev.stop_index = -1;
    for (int i = 0; stop_string && i < s->n_stops; i++)
        if (s->stops[i] == stop_string) ev.stop_index = i;
    ev.stopped_by_eos = by_eos;
    ev.prompt_tokens = s->n_prompt;
    ev.completion_tokens = s->n_generated;
    ev.cached_tokens = s->cached_tokens;
    end_seq(e, s, &ev);
}

void engine_fail(lm_engine *e, lm_seq *s, const char *msg) {
    lm_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.kind = LM_EVENT_ERROR;
    snprintf(ev.error, sizeof(ev.error), "%.255s", msg);
    engine_unschedule(e, s);
    end_seq(e, s, &ev);
}

static void update_stats(lm_engine *e) {
    pthread_mutex_lock(&e->mu);
    e->stats.waiting = atomic_load(&e->n_queued);
    e->stats.running = e->n_running;
    put_kv_stats(e);
    /* audited only when idle: it walks every block */
    if (e->n_running == 0 && e->stats.waiting == 0 && kv_cache_check(e->kv)) e->stats.kv_audit_failed = true;
    e->stats.generated_tokens = e->n_generated;
    e->stats.prefix_hit_tokens = e->n_prefix_hit;
    e->stats.preemptions = e->n_preemptions;
    e->stats.steps = e->n_steps;
    pthread_mutex_unlock(&e->mu);
}

static void *engine_main(void *arg) {
    lm_engine *e = arg;
    for (;;) {
        pthread_mutex_lock(&e->mu);
        while (!e->stop && e->n_inbox == 0 && e->n_running == 0 && e->n_waiting == 0 && !e->in_flight)
            pthread_cond_wait(&e->cv, &e->mu);
        bool stop = e->stop;
        for (int i = 0; i < e->n_inbox; i++) e->waiting[e->n_waiting++] = e->inbox[i];
        e->n_inbox = 0;
        pthread_mutex_unlock(&e->mu);
        if (stop) break;
        engine_step(e);
        update_stats(e);
    }
    /* shutdown: every sequence ends as aborted */
    engine_drain(e);
    for (int i = 0; i < e->n_running; i++) engine_finish(e, e->running[i], LM_FINISH_ABORT, NULL, false);
    for (int i = 0; i < e->n_waiting; i++) engine_finish(e, e->waiting[i], LM_FINISH_ABORT, NULL, false);
    e->n_running = e->n_waiting = 0;
    update_stats(e);
    return NULL;
}

/* ---- create / free ---- */

/* the default pool: 8 full contexts, at most a quarter of physical memory,
 * at least one context */
static size_t default_pool_bytes(const lm_engine_config *c, size_t per_token) {
    size_t want = (size_t)8 * c->n_ctx * per_token;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    if (pages > 0 && page > 0 && want > (size_t)pages * (size_t)page / 4) want = (size_t)pages * (size_t)page / 4;
    if (want < (size_t)c->n_ctx * per_token) want = (size_t)c->n_ctx * per_token;
    return want;
}

lm_engine *engine_create(const lm_model *model, const tok_vocab *vocab, const lm_engine_config *cfg,
                         lm_error *err) {
    const lm_hparams *hp = &model->hp;
    lm_engine_config c = *cfg;
    if (c.n_ctx < 16 || c.max_num_seqs < 1 || c.max_num_batched_tokens < 1 || c.block_size < 1 ||
        c.max_queue < 1 || c.n_threads < 1) {
        lm_error_set(err, "invalid engine configuration (ctx %d, seqs %d, batched tokens %d, block %d)", c.n_ctx,
                     c.max_num_seqs, c.max_num_batched_tokens, c.block_size);
        return NULL;
    }
    const size_t block_bytes = kv_block_bytes(hp, c.block_size);
    const int min_blocks = (c.n_ctx + c.block_size - 1) / c.block_size + 1;
    lm_forward_cuda *fwc = NULL;
    if (c.device == LM_DEVICE_CUDA) {
        /* the GPU's pool: --kv-cache-mib, else what the memory share leaves after the weights */
        const lm_cuda_forward_config fc = {
            .device = c.gpu_index, .max_tokens = c.max_num_batched_tokens, .max_logits = c.max_num_seqs,
            .max_slots = c.max_num_seqs, .max_ctx = c.n_ctx, .block_size = c.block_size,
            .kv_bytes = c.kv_cache_bytes, .memory_utilization = c.gpu_memory_utilization,
            .batch_invariant = c.gpu_batch_invariant,
        };
        if (!(fwc = lm_forward_cuda_create(model, &fc, err))) return NULL;
        c.kv_cache_bytes = (size_t)lm_forward_cuda_n_blocks(fwc) * block_bytes;
    }
    if (!c.kv_cache_bytes) c.kv_cache_bytes = default_pool_bytes(&c, block_bytes / (size_t)c.block_size);
    size_t n_blocks = c.kv_cache_bytes / block_bytes;
    if (n_blocks < (size_t)min_blocks) {
        lm_error_set(err, "a K/V pool of %zu MiB holds %zu blocks; one context of %d tokens needs %d",
                     c.kv_cache_bytes >> 20, n_blocks, c.n_ctx, min_blocks);
        lm_forward_cuda_free(fwc);
        return NULL;
    }
    if (n_blocks > (1u << 30)) n_blocks = 1u << 30;
    lm_engine *e = calloc(1, sizeof(*e));
    if (!e) {
        lm_error_set(err, "out of memory");
        lm_forward_cuda_free(fwc);
        return NULL;
    }
    e->fwc = fwc;
    e->model = model;
    e->vocab = vocab;
    e->cfg = c;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    const size_t T = (size_t)c.max_num_batched_tokens, S = (size_t)c.max_num_seqs;
    e->pool = tp_create(c.n_threads);
    if (!fwc) e->fw = lm_forward_create(model, c.max_num_batched_tokens, c.n_ctx);
    e->tables = malloc(sizeof(int *) * S);
    e->n_tables = malloc(sizeof(int) * S);
    e->kv = kv_cache_create(hp, c.block_size, (int)n_blocks, !fwc);
    e->waiting = malloc(sizeof(lm_seq *) * (size_t)(c.max_queue + c.max_num_seqs));
    e->running = malloc(sizeof(lm_seq *) * S);
    e->step = malloc(sizeof(step_item) * S);
    e->step_drawn = malloc(sizeof(step_item) * S);
    e->b_tokens = malloc(sizeof(int32_t) * T);
    e->b_pos = malloc(sizeof(int32_t) * T);
    e->b_seq = malloc(sizeof(int32_t) * T);
    e->b_want = malloc(sizeof(bool) * T);
    e->logits = fwc ? NULL : malloc(sizeof(float) * S * (size_t)hp->n_vocab);
    e->edit_list = fwc ? malloc(sizeof(lm_logit_edit) * LM_FORWARD_CUDA_MAX_EDITS) : NULL;
    e->edit_start = fwc ? malloc(sizeof(int32_t) * (S + 1)) : NULL;
    const char *host_rows = getenv("LAMINA_CUDA_SAMPLE_ROWS");
    e->host_rows = host_rows && !strcmp(host_rows, "1");
    const char *overlap = getenv("LAMINA_ENGINE_OVERLAP"), *profile = getenv("LAMINA_ENGINE_PROFILE");
    e->overlap = overlap && *overlap ? strcmp(overlap, "0") != 0 : fwc != NULL;
    e->profile = profile && !strcmp(profile, "1");
    e->logprob_scratch = malloc(sizeof(float) * (size_t)hp->n_vocab);
    if (!e->pool || !(e->fw || e->fwc) || !e->tables || !e->n_tables || !e->kv || !e->waiting || !e->running || !e->step || !e->step_drawn || !e->b_tokens || !e->b_pos ||
        !e->b_seq || !e->b_want || !(e->logits || fwc) || (fwc && (!e->edit_list || !e->edit_start)) ||
        !e->logprob_scratch) {
        lm_error_set(err, "out of memory for the engine (K/V pool %zu MiB)", (n_blocks * block_bytes) >> 20);
        engine_free(e);
        return NULL;
    }
    e->kv_view = (lm_kv){c.block_size, view_k, view_v, e};
    update_stats(e);
    if (pthread_create(&e->thread, NULL, engine_main, e) != 0) {
        lm_error_set(err, "cannot start the engine thread");
        engine_free(e);
        return NULL;
    }
    e->thread_started = true;
    return e;
}

const lm_engine_config *engine_config(const lm_engine *e) { return &e->cfg; }

const char *engine_gpu_name(const lm_engine *e) { return e->fwc ? lm_forward_cuda_device_name(e->fwc) : NULL; }

void engine_free(lm_engine *e) {
    if (!e) return;
    if (e->thread_started) {
        pthread_mutex_lock(&e->mu);
        e->stop = true;
        pthread_cond_signal(&e->cv);
        pthread_mutex_unlock(&e->mu);
        pthread_join(e->thread, NULL);
    }
    for (int i = 0; i < e->n_inbox; i++) engine_finish(e, e->inbox[i], LM_FINISH_ABORT, NULL, false);
    if (e->profile && e->prof.steps > 0) {
        const double n = (double)e->prof.steps;
        fprintf(stderr,
                "lamina engine: %.0f steps; per step (us): plan %.1f, launch %.1f, wait %.1f, draw %.1f, emit %.1f%s\n",
                n, e->prof.plan_us / n, e->prof.launch_us / n, e->prof.wait_us / n, e->prof.draw_us / n,
                e->prof.emit_us / n, e->overlap ? " (emit after the next step's launch)" : "");
    }
    free(e->inbox);
    tp_free(e->pool);
    lm_forward_free(e->fw);
    lm_forward_cuda_free(e->fwc);
    free(e->tables);
    free(e->n_tables);
    kv_cache_free(e->kv);
    free(e->waiting);
    free(e->running);
    free(e->step);
    free(e->step_drawn);
    free(e->b_tokens);
    free(e->b_pos);
    free(e->b_seq);
    free(e->b_want);
    free(e->logits);
    free(e->edit_list);
    free(e->edit_start);
    free(e->logprob_scratch);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e);
}
