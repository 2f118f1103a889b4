/* step.c - one engine step: plan, forward pass, draw, emit.
 *
 * A step runs in two phases around its forward pass:
 *   draw  each item's computed tokens counted and its full blocks
 *         registered; each item that wants logits gets its next token
 *         (from its row, or from the GPU's argmax / 64 best candidates),
 *         its logprobs, and whether it ends there (end token, max_tokens,
 *         the context): those leave the running set and free their blocks
 *   emit  the token's text (incremental detokenization, stop strings), its
 *         event, and the sequence's end
 * On the CPU the phases follow each other. On the GPU the next step is
 * planned and launched between them (the tokens it reads were drawn), so
 * the detokenization, stop strings and events of step N run while step
 * N + 1's kernels do (LAMINA_ENGINE_OVERLAP=0 turns it off; =1 runs the
 * same order on the CPU, where the forward pass is synchronous: no gain,
 * but the tests walk the GPU's order). A sequence that a stop
 * string (or an abort) ends during that time is in step N + 1 already: its
 * item there is marked dead (engine_finish) and its result dropped; the K/V
 * it writes lands in blocks the engine hands out again only after the step
 * completes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/engine_internal.h"

/* log-softmax of the raw logits: the chosen token's and the top n */
static void fill_logprobs(lm_engine *e, const float *logits, int32_t chosen, int n_top, lm_event *ev) {
    const int n_vocab = e->model->hp.n_vocab;
    float max = logits[0];
    for (int i = 1; i < n_vocab; i++)
        if (logits[i] > max) max = logits[i];
    double sum = 0.0;
    for (int i = 0; i < n_vocab; i++) sum += exp((double)(logits[i] - max));
    const float log_z = max + (float)log(sum);
    ev->logprob = logits[chosen] - log_z;
    ev->n_top = 0;
    for (int i = 0; i < n_vocab && n_top > 0; i++) { /* insertion into a small sorted list */
        const float lp = logits[i] - log_z;
        if (ev->n_top == n_top && lp <= ev->top_logprobs[n_top - 1]) continue;
        int j = ev->n_top < n_top ? ev->n_top++ : n_top - 1;
        while (j > 0 && ev->top_logprobs[j - 1] < lp) {
            ev->top_logprobs[j] = ev->top_logprobs[j - 1];
            ev->top_ids[j] = ev->top_ids[j - 1];
            j--;
        }
        ev->top_logprobs[j] = lp;
        ev->top_ids[j] = i;
    }
}

/* The GPU's best candidates of a row (value descending, ties by the lower
 * id: fill_logprobs' order) and the row's log-normalizer. */
typedef struct {
    const int32_t *ids;
    const float *vals;
    int n;
    float log_z;
} top_cands;

/* fill_logprobs from the candidates: the chosen token is one of them (the
 * sampler drew among them), and so are the top n (n <= their count) */
static void fill_logprobs_top(const top_cands *tc, int32_t chosen, int n_top, lm_event *ev) {
    ev->logprob = -INFINITY;
    for (int i = 0; i < tc->n; i++)
        if (tc->ids[i] == chosen) {
            ev->logprob = tc->vals[i] - tc->log_z;
            break;
        }
    ev->n_top = n_top < tc->n ? n_top : tc->n;
    for (int i = 0; i < ev->n_top; i++) {
        ev->top_ids[i] = tc->ids[i];
        ev->top_logprobs[i] = tc->vals[i] - tc->log_z;
    }
}

/* Phase one for item IT: draws its next token from LOGITS (its row; EDITED:
 * its logit bias and penalties already applied, by the GPU), or takes
 * PICKED (the GPU's argmax, or a draw from TC's candidates, whose logprobs
 * then serve); records logprobs into it->ev and the token's fate. A token
 * that ends the sequence takes it out of the running set and frees its
 * blocks now (the next step's plan may use them). */
static void draw_token(lm_engine *e, step_item *it, float *logits, bool edited, int32_t picked,
                       const top_cands *tc) {
    lm_seq *s = it->seq;
    lm_event *ev = &it->ev;
    memset(ev, 0, sizeof(*ev));
    ev->kind = LM_EVENT_TOKEN;
    if (logits && s->top_logprobs >= 0) /* of the raw row: before the sampler edits it */
        memcpy(e->logprob_scratch, logits, sizeof(float) * (size_t)e->model->hp.n_vocab);
    const int32_t tok = !logits ? picked
                        : edited ? lm_sampler_sample_edited(s->sampler, logits)
                                 : lm_sampler_sample(s->sampler, logits);
    ev->token = tok;
    if (s->top_logprobs >= 0 && logits) fill_logprobs(e, e->logprob_scratch, tok, s->top_logprobs, ev);
    else if (s->top_logprobs >= 0 && tc) fill_logprobs_top(tc, tok, s->top_logprobs, ev);
    s->n_generated++;
    e->n_generated++;
    if (tok_is_eog(e->vocab, tok) && !s->ignore_eos) { /* the end token itself is counted but not shown */
        it->fate = FATE_ENDS_EOS;
    } else {
        lm_sampler_accept(s->sampler, tok);
        s->tokens[s->n_tokens++] = tok;
        it->fate = s->n_generated >= s->max_tokens || s->n_tokens >= s->cap ? FATE_ENDS_LENGTH : FATE_GOES_ON;
    }
    if (it->fate != FATE_GOES_ON) {
        sched_remove_running(e, s);
        seq_release_blocks(s, e->kv);
    }
}

/* Phase two for item IT: the token's text and event, and the sequence's
 * end (engine_finish) when the token or a stop string ends it. */
static void emit_token(lm_engine *e, step_item *it) {
    lm_seq *s = it->seq;
    lm_event *ev = &it->ev;
    if (it->fate == FATE_ENDS_EOS) {
        seq_flush_text(s, &ev->text, &ev->text_len);
        handle_push(s->handle, ev);
        engine_finish(e, s, LM_FINISH_STOP, NULL, true);
        return;
    }
    const char *stop = seq_push_text(s, e->vocab, ev->token, &ev->text, &ev->text_len);
    if (!stop && it->fate == FATE_ENDS_LENGTH) { /* the last token: send what was held back with it */
        char *tail;
        size_t n;
        seq_flush_text(s, &tail, &n);
        if (n > 0) {
            char *joined = realloc(ev->text, ev->text_len + n + 1);
            if (joined) {
                memcpy(joined + ev->text_len, tail, n + 1);
                ev->text = joined;
                ev->text_len += n;
            }
        }
        free(tail);
    }
    handle_push(s->handle, ev);
    if (stop) {
        if (it->fate == FATE_GOES_ON) engine_unschedule(e, s); /* it may be in the next step already */
        engine_finish(e, s, LM_FINISH_STOP, stop, false);
    } else if (it->fate == FATE_ENDS_LENGTH) {
        engine_finish(e, s, LM_FINISH_LENGTH, NULL, false);
    }
}

/* registers the sequence's newly completed full blocks in the prefix cache */
static void register_blocks(lm_engine *e, lm_seq *s) {
    const int bs = kv_block_size(e->kv);
    while (e->cfg.prefix_cache && (s->n_registered + 1) * bs <= s->n_computed) {
        const int32_t *toks = s->tokens + (size_t)s->n_registered * bs;
        s->chain = kv_hash_block(s->chain, toks, bs);
        kv_register(e->kv, s->blocks[s->n_registered], s->chain, toks);
        s->n_registered++;
    }
}

/* ends the aborted sequences of LIST (e->running or e->waiting, *N long) */
static void reap_from(lm_engine *e, lm_seq **list, const int *n) {
    for (int i = 0; i < *n;) {
        lm_seq *s = list[i];
        if (!atomic_load(&s->handle->aborted)) {
            i++;
            continue;
        }
        engine_unschedule(e, s); /* out of LIST, which closes up */
        engine_finish(e, s, LM_FINISH_ABORT, NULL, false);
    }
}

/* drops aborted sequences wherever they are */
static void reap_aborted(lm_engine *e) {
    reap_from(e, e->running, &e->n_running);
    reap_from(e, e->waiting, &e->n_waiting);
}

/* every live request of the planned step fails (cannot happen with a valid plan) */
static void fail_step(lm_engine *e, const char *msg) {
    for (int i = 0; i < e->n_step; i++)
        if (e->step[i].seq) engine_fail(e, e->step[i].seq, msg);
    e->n_step = 0;
}

/* The GPU's side of a step, launched. Rows of greedy requests get the GPU's
 * argmax, the others its 64 best candidates (with each row's
 * log-normalizer for logprobs and top-p); logit bias and penalties are
 * applied on the GPU first. A row whose draw needs its whole row (a top-k
 * past 64, no cut at all, more than 64 logprobs, or logprobs with edits:
 * those are of the raw logits) is marked host_row and fetched alone after
 * the step; when most rows are such, the step copies every row instead. */
static int gpu_launch(lm_engine *e, const lm_batch *b, lm_error *err) {
    const int K = LM_FORWARD_CUDA_TOP_K;
    int n_want = 0, n_host = 0;
    e->gpu_out = LM_CUDA_OUT_ARGMAX;
    bool want_log_z = false;
    for (int i = 0; i < e->n_step; i++) {
        step_item *it = &e->step[i];
        const lm_seq *s = it->seq;
        e->tables[i] = s->blocks;
        e->n_tables[i] = s->n_blocks;
        it->host_row = false;
        if (it->logits_row < 0) continue;
        n_want++;
        const lm_sample_need need = lm_sampler_need(s->sampler, K);
        const bool lp = s->top_logprobs >= 0;
        if (e->host_rows || need == LM_SAMPLE_ROW || s->top_logprobs > K || (lp && lm_sampler_has_edits(s->sampler))) {
            it->host_row = true;
            n_host++;
            continue;
        }
        if (lp || need != LM_SAMPLE_ARGMAX) e->gpu_out = LM_CUDA_OUT_TOP_K;
        want_log_z |= lp || need == LM_SAMPLE_TOP_Z;
    }
    if (e->gpu_out == LM_CUDA_OUT_TOP_K && want_log_z) e->gpu_out = LM_CUDA_OUT_TOP_K_LOGZ;
    if (2 * n_host > n_want) e->gpu_out = LM_CUDA_OUT_LOGITS;
    int total = 0, row = 0;
    for (int i = 0; e->gpu_out != LM_CUDA_OUT_LOGITS && i < e->n_step; i++) {
        step_item *it = &e->step[i];
        if (it->logits_row < 0) continue;
        e->edit_start[row++] = total;
        if (it->host_row || !lm_sampler_has_edits(it->seq->sampler)) continue;
        const int n = lm_sampler_edits(it->seq->sampler, e->edit_list + total, LM_FORWARD_CUDA_MAX_EDITS - total);
        if (n < 0) it->host_row = true; /* the step's list is full: this row on the host */
        else total += n;
    }
    e->edit_start[row] = total;
    const lm_step_edits edits = {e->edit_start, e->edit_list};
    return lm_forward_cuda_launch(e->fwc, b, e->tables, e->n_tables, e->n_step, total > 0 ? &edits : NULL,
                                  e->gpu_out, err);
}

/* the GPU's pick for step item IT (row r): *picked from its argmax or its
 * candidates (*tc filled when logprobs come from those), or else its whole
 * row into *row (*edited: the GPU applied its edits). -1 + err when the row
 * cannot be fetched. */
static int gpu_pick(lm_engine *e, const step_item *it, int32_t *picked, float **row, bool *edited, top_cands *tc,
                    lm_error *err) {
    const int r = it->logits_row, K = LM_FORWARD_CUDA_TOP_K;
    const lm_cuda_results *res = &e->gpu_res;
    *picked = -1;
    *row = NULL;
    *edited = false;
    if (e->gpu_out == LM_CUDA_OUT_LOGITS) {
        *row = res->logits + (size_t)r * e->model->hp.n_vocab;
        return 0;
    }
    if (!it->host_row && e->gpu_out == LM_CUDA_OUT_ARGMAX) {
        *picked = res->ids[r];
        return 0;
    }
    if (!it->host_row) {
        const size_t at = (size_t)r * K;
        const float log_z = e->gpu_out == LM_CUDA_OUT_TOP_K_LOGZ ? res->log_z[r] : NAN;
        *picked = lm_sampler_sample_top(it->seq->sampler, res->ids + at, res->vals + at, K, log_z);
        if (*picked >= 0) {
            *tc = (top_cands){res->ids + at, res->vals + at, K, log_z};
            return 0;
        }
        *edited = true; /* the candidates could not decide: the edited row */
    }
    *row = lm_forward_cuda_fetch_row(e->fwc, r, err);
    return *row ? 0 : -1;
}

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

/* plans the next step and starts its forward pass (on the CPU: runs it);
 * false when there is nothing to do or it failed (its requests then fail) */
static bool start_step(lm_engine *e) {
    double t0 = now_us();
    const int n_tokens = sched_plan_step(e);
    if (n_tokens == 0) return false;
    double t1 = now_us();
    const lm_batch b = {n_tokens, e->b_tokens, e->b_pos, e->b_seq, e->b_want};
    lm_error err = {{0}};
    const int rc = e->fwc ? gpu_launch(e, &b, &err) : lm_forward_run(e->fw, e->pool, &e->kv_view, &b, e->logits, &err);
    e->prof.plan_us += t1 - t0;
    e->prof.launch_us += now_us() - t1;
    if (rc) fail_step(e, err.msg);
    return rc == 0;
}

/* waits for the started step (GPU) and draws its tokens (phase one) */
static void draw_step(lm_engine *e) {
    const double t0 = now_us();
    lm_error err = {{0}};
    if (e->fwc && lm_forward_cuda_wait(e->fwc, &e->gpu_res, &err) < 0) {
        fail_step(e, err.msg);
        return;
    }
    const double t1 = now_us();
    const int n_vocab = e->model->hp.n_vocab;
    for (int i = 0; i < e->n_step; i++) {
        step_item *it = &e->step[i];
        lm_seq *s = it->seq;
        it->fate = FATE_NONE;
        if (!s) continue; /* ended while the step ran */
        s->n_computed += it->len;
        register_blocks(e, s);
        if (it->logits_row < 0) continue;
        if (atomic_load(&s->handle->aborted)) continue; /* reaped after */
        float *row = e->fwc ? NULL : e->logits + (size_t)it->logits_row * n_vocab;
        int32_t picked = -1;
        bool edited = false;
        top_cands tc = {NULL, NULL, 0, NAN};
        if (e->fwc && gpu_pick(e, it, &picked, &row, &edited, &tc, &err)) {
            engine_fail(e, s, err.msg);
            continue;
        }
        draw_token(e, it, row, edited, picked, tc.ids ? &tc : NULL);
    }
    e->prof.wait_us += t1 - t0;
    e->prof.draw_us += now_us() - t1;
}

/* phase two over the items of a drawn step */
static void emit_step(lm_engine *e, step_item *items, int n) {
    const double t0 = now_us();
    for (int i = 0; i < n; i++)
        if (items[i].seq && items[i].fate != FATE_NONE) emit_token(e, &items[i]);
    e->prof.emit_us += now_us() - t0;
    e->prof.steps++;
    e->n_steps++;
}

void engine_step(lm_engine *e) {
    if (!e->overlap) { /* the phases back to back */
        reap_aborted(e);
        if (!start_step(e)) return;
        draw_step(e);
        emit_step(e, e->step, e->n_step);
        e->n_step = 0;
        return;
    }
    if (!e->in_flight) {
        reap_aborted(e);
        if (!(e->in_flight = start_step(e))) return;
    }
    draw_step(e);
    e->in_flight = false;
    /* the drawn step's items move aside; the next step is planned and
     * launched before they are emitted */
    step_item *drawn = e->step;
    e->n_drawn = e->n_step;
    e->step = e->step_drawn;
    e->step_drawn = drawn;
    e->n_step = 0;
    e->in_flight = start_step(e); /* a failed launch frees its sequences: engine_forget clears them here too */
    emit_step(e, drawn, e->n_drawn);
    e->n_drawn = 0;
    reap_aborted(e); /* after the emission: an aborted sequence may have had a token there */
}

void engine_drain(lm_engine *e) {
    lm_error ignored = {{0}};
    if (e->in_flight && e->fwc) lm_forward_cuda_wait(e->fwc, NULL, &ignored);
    e->in_flight = false;
    e->n_step = 0;
}
