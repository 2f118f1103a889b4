/* scheduler.c - what one engine step computes, in the manner of vLLM's
 * scheduler with chunked prefill.
 *
 * Under a budget of max_num_batched_tokens, a step takes first one token of
 * every running sequence that is decoding, then prefill chunks of running
 * sequences still reading their prompt, then admits waiting sequences FCFS
 * (up to max_num_seqs running), each with as much of its prompt as the budget
 * and the free blocks allow. A new sequence first looks its full prompt
 * blocks up in the prefix cache and computes only the rest. When a running
 * sequence needs a block and none is free, the newest running sequence that
 * is not in this step is preempted: its blocks are freed and it goes back to
 * the front of the waiting queue, to be recomputed later (its tokens so far
 * are kept, so the output continues where it stopped). */
#include <string.h>

#include "engine/engine_internal.h"

void sched_remove_running(lm_engine *e, lm_seq *s) {
    for (int i = 0; i < e->n_running; i++)
        if (e->running[i] == s) {
            memmove(&e->running[i], &e->running[i + 1], sizeof(lm_seq *) * (size_t)(e->n_running - i - 1));
            e->n_running--;
            return;
        }
}

static bool in_step(const lm_engine *e, const lm_seq *s) {
    for (int i = 0; i < e->n_step; i++)
        if (e->step[i].seq == s) return true;
    return false;
}

static void preempt(lm_engine *e, lm_seq *s) {
    seq_release_blocks(s, e->kv);
    sched_remove_running(e, s);
    memmove(&e->waiting[1], &e->waiting[0], sizeof(lm_seq *) * (size_t)e->n_waiting);
    e->waiting[0] = s;
    e->n_waiting++;
    atomic_fetch_add(&e->n_queued, 1);
    e->n_preemptions++;
}

/* the newest running sequence that is not S and not in this step, or NULL */
static lm_seq *pick_victim(lm_engine *e, const lm_seq *s) {
    lm_seq *victim = NULL;
    for (int i = 0; i < e->n_running; i++) {
        lm_seq *r = e->running[i];
        if (r != s && !in_step(e, r) && (!victim || r->order > victim->order)) victim = r;
    }
    return victim;
}

/* Ensures blocks for the first n_upto tokens, preempting others if allowed.
 * Returns false if they cannot be had. */
static bool reserve_blocks(lm_engine *e, lm_seq *s, int n_upto, bool may_preempt) {
    const int bs = kv_block_size(e->kv);
    const int need = (n_upto + bs - 1) / bs;
    while (s->n_blocks < need) {
        int b = kv_alloc(e->kv);
        if (b < 0) {
            lm_seq *victim = may_preempt ? pick_victim(e, s) : NULL;
            if (!victim) return false;
            preempt(e, victim);
            continue;
        }
        s->blocks[s->n_blocks++] = b;
    }
    return true;
}

/* Reuses the longest cached chain of full prompt blocks; at least one token
 * is always left to compute, since its logits are needed. */
static void lookup_prefix(lm_engine *e, lm_seq *s) {
    const int bs = kv_block_size(e->kv);
    s->admitted = true;
    if (!e->cfg.prefix_cache) return;
    while ((s->n_blocks + 1) * bs <= s->n_tokens - 1) {
        const int32_t *toks = s->tokens + (size_t)s->n_blocks * bs;
        kv_hash h = kv_hash_block(s->chain, toks, bs);
        int b = kv_lookup(e->kv, h, toks);
        if (b < 0) break;
        s->blocks[s->n_blocks++] = b;
        s->chain = h;
        s->n_registered = s->n_blocks;
        s->n_computed = s->n_blocks * bs;
    }
    if (s->n_generated == 0) s->cached_tokens = s->n_computed;
    e->n_prefix_hit += (uint64_t)s->n_computed;
}

static int add_item(lm_engine *e, lm_seq *s, int len, int n_batch) {
    step_item *it = &e->step[e->n_step++];
    it->seq = s;
    it->start = s->n_computed;
    it->len = len;
    it->logits_row = -1;
    const int slot = e->n_step - 1;
    for (int j = 0; j < len; j++) {
        e->b_tokens[n_batch + j] = s->tokens[s->n_computed + j];
        e->b_pos[n_batch + j] = s->n_computed + j;
        e->b_seq[n_batch + j] = slot;
        e->b_want[n_batch + j] = false;
    }
    if (s->n_computed + len == s->n_tokens) e->b_want[n_batch + len - 1] = true;
    return n_batch + len;
}

static int schedule_running(lm_engine *e, bool decodes, int n_batch, int *budget) {
    for (int i = 0; i < e->n_running && *budget > 0; i++) {
        lm_seq *s = e->running[i];
        const int remaining = s->n_tokens - s->n_computed;
        /* nothing to compute: an aborted sequence whose last token was not
         * drawn (step.c reaps it once its step's tokens are emitted) */
        if (remaining < 1 || (remaining == 1) != decodes || in_step(e, s)) continue;
        int len = remaining < *budget ? remaining : *budget;
        if (!reserve_blocks(e, s, s->n_computed + len, true)) {
            preempt(e, s); /* nothing left to take from: it waits for others to finish */
            i--;
            continue;
        }
        n_batch = add_item(e, s, len, n_batch);
        *budget -= len;
        /* preemption may have shifted the running array: find s again */
        for (i = 0; e->running[i] != s; i++) {}
    }
    return n_batch;
}

static int admit_waiting(lm_engine *e, int n_batch, int *budget) {
    const int bs = kv_block_size(e->kv);
    while (e->n_waiting > 0 && e->n_running < e->cfg.max_num_seqs && *budget > 0) {
        lm_seq *s = e->waiting[0];
        if (!s->admitted || s->n_computed == 0) lookup_prefix(e, s);
        const int remaining = s->n_tokens - s->n_computed;
        int len = remaining < *budget ? remaining : *budget;
        const int fits = (s->n_blocks + kv_n_free(e->kv)) * bs - s->n_computed;
        if (len > fits) len = fits;
        if (len <= 0 || !reserve_blocks(e, s, s->n_computed + len, false)) {
            seq_release_blocks(s, e->kv); /* keep nothing while waiting */
            s->admitted = false;
            break;
        }
        memmove(&e->waiting[0], &e->waiting[1], sizeof(lm_seq *) * (size_t)(e->n_waiting - 1));
        e->n_waiting--;
        atomic_fetch_sub(&e->n_queued, 1);
        e->running[e->n_running++] = s;
        n_batch = add_item(e, s, len, n_batch);
        *budget -= len;
    }
    return n_batch;
}

int sched_plan_step(lm_engine *e) {
    int budget = e->cfg.max_num_batched_tokens;
    e->n_step = 0;
    int n_batch = schedule_running(e, true, 0, &budget);
    n_batch = schedule_running(e, false, n_batch, &budget);
    n_batch = admit_waiting(e, n_batch, &budget);
    int row = 0;
    for (int i = 0, t = 0; i < e->n_step; t += e->step[i].len, i++)
        if (e->b_want[t + e->step[i].len - 1]) e->step[i].logits_row = row++;
    return n_batch;
}
