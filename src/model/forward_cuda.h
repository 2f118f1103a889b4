/* forward_cuda.h - the forward pass of model.h on an NVIDIA GPU.
 *
 * The same families and the same batch as lm_forward_run (a step's tokens
 * from many sequences, each with its position), computed by the CUDA ops
 * (backend/cuda): the weights are uploaded once at create in their GGUF
 * quantized types, the K/V cache is a pool of blocks in GPU memory that the
 * engine's block manager (engine/kv_cache.h) hands out by index, and only
 * the logits of the tokens that want them come back to the host.
 *
 * A batch names its sequences by slot (lm_batch.seq = 0..n_slots-1); slot s
 * reads and writes the pool blocks listed in tables[s] (tables[s][i] holds
 * positions i * block_size .. (i + 1) * block_size - 1), which must cover
 * every position up to the slot's highest one in the batch. */
#ifndef LAMINA_MODEL_FORWARD_CUDA_H
#define LAMINA_MODEL_FORWARD_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/logit_edit.h"
#include "model/model.h"

typedef struct lm_cuda_forward_config {
    int device;              /* CUDA device index */
    int max_tokens;          /* tokens per batch */
    int max_logits;          /* tokens per batch that want logits */
    int max_slots;           /* sequences per batch */
    int max_ctx;             /* positions per sequence */
    int block_size;          /* positions per K/V block */
    size_t kv_bytes;         /* K/V pool; 0: what memory_utilization leaves, at most (max_slots + 1)
                              * full contexts */
    float memory_utilization; /* share of the device's memory this process may hold (0..1] */
    bool batch_invariant;     /* every product on the integer path, every token's logits the same
                               * bits in any batch (lm_cuda_set_batch_invariant) */
} lm_cuda_forward_config;

typedef struct lm_forward_cuda lm_forward_cuda;

/* Uploads the weights and allocates activations and the K/V pool. NULL + err
 * (a weight type the GPU does not take, out of device memory, no device).
 * The model must outlive the result. */
lm_forward_cuda *lm_forward_cuda_create(const lm_model *m, const lm_cuda_forward_config *cfg, lm_error *err);
void lm_forward_cuda_free(lm_forward_cuda *fw);

/* K/V blocks in the device pool */
int lm_forward_cuda_n_blocks(const lm_forward_cuda *fw);
/* bytes of weights on the device, and the device's name (for the log line) */
size_t lm_forward_cuda_weight_bytes(const lm_forward_cuda *fw);
const char *lm_forward_cuda_device_name(const lm_forward_cuda *fw);

/* The logit edits (base/logit_edit.h: bias, penalties) of a step's rows
 * that want logits, in batch order: row r's are
 * list[row_start[r] .. row_start[r + 1]), at most LM_FORWARD_CUDA_MAX_EDITS
 * in all. The GPU applies them to its rows before picking from them. */
#define LM_FORWARD_CUDA_MAX_EDITS 65536
typedef struct lm_step_edits {
    const int32_t *row_start; /* (n_want + 1) */
    const lm_logit_edit *list;
} lm_step_edits;

/* Runs the batch; tables[s] lists slot s's pool blocks (n_table[s] of them).
 * What comes back, for the n_want tokens that want logits, in batch order:
 *   argmax != NULL   only the index of each row's largest logit (n_want
 *                    int32), after EDITS when not NULL: the GPU picks
 *                    greedy tokens, no logits cross
 *   logits != NULL   the logits, (n_want, n_vocab) f32, copied there
 *   both NULL        the logits, left in lm_forward_cuda_logits() (page-
 *                    locked host memory, valid until the next run: no copy)
 * (EDITS only with argmax.) 0, or -1 + err. */
int lm_forward_cuda_run(lm_forward_cuda *fw, const lm_batch *batch, const int *const *tables, const int *n_table,
                        int n_slots, const lm_step_edits *edits, float *logits, int32_t *argmax, lm_error *err);
/* As lm_forward_cuda_run, returning for each wanted row (after EDITS when
 * not NULL) its LM_FORWARD_CUDA_TOP_K largest logits, sorted as the CPU
 * sampler sorts them (value descending, ties by the lower id): ids and vals
 * (n_want, that many). A sampler that looks at no more than its top_k
 * candidates needs no more. log_z, when not NULL, gets each row's log of
 * the sum of e^logit (n_want): a candidate's logprob is then its logit -
 * log_z. */
#define LM_FORWARD_CUDA_TOP_K 64
int lm_forward_cuda_run_top_k(lm_forward_cuda *fw, const lm_batch *batch, const int *const *tables,
                              const int *n_table, int n_slots, const lm_step_edits *edits, int32_t *ids, float *vals,
                              float *log_z, lm_error *err);
/* A run in two halves, for a caller with host work to do while the GPU
 * computes. launch checks and stages the batch (and EDITS, not with
 * LOGITS) and queues the step, returning once it is queued; wait blocks
 * until it is done and returns n_want (or -1 + err), with *res (when not
 * NULL) pointing at its results in page-locked memory, valid until the
 * next launch: ids (n_want, TOP_K for the top-k kinds, else n_want argmax
 * ids), vals (n_want, TOP_K), log_z (n_want), logits (n_want, n_vocab).
 * One step in flight at a time; the run functions above are the two
 * halves back to back. */
typedef enum {
    LM_CUDA_OUT_LOGITS,     /* every wanted row's logits */
    LM_CUDA_OUT_ARGMAX,     /* each row's argmax */
    LM_CUDA_OUT_TOP_K,      /* each row's TOP_K best */
    LM_CUDA_OUT_TOP_K_LOGZ, /* and its log-normalizer */
    LM_CUDA_OUT_KINDS
} lm_cuda_out;
typedef struct lm_cuda_results {
    const int32_t *ids;
    const float *vals, *log_z;
    float *logits;
} lm_cuda_results;
int lm_forward_cuda_launch(lm_forward_cuda *fw, const lm_batch *batch, const int *const *tables, const int *n_table,
                           int n_slots, const lm_step_edits *edits, lm_cuda_out out, lm_error *err);
int lm_forward_cuda_wait(lm_forward_cuda *fw, lm_cuda_results *res, lm_error *err);
/* the last run's logits rows (when it was asked for logits) */
float *lm_forward_cuda_logits(lm_forward_cuda *fw);
/* logits row ROW (0 .. n_want - 1) of the last run, its edits applied,
 * copied from the device into the page-locked rows of
 * lm_forward_cuda_logits() (valid until the next run): for a draw the top-k
 * could not decide. NULL + err. */
float *lm_forward_cuda_fetch_row(lm_forward_cuda *fw, int row, lm_error *err);

#endif
