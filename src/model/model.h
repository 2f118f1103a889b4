/* model.h - a transformer loaded from a GGUF file, and its forward pass.
 *
 * Families: llama (SmolLM2, Llama 2/3 shapes), qwen2 (QKV biases), qwen3
 * (per-head QK RMSNorm), gemma3 (QK norm, post-attention/FFN norms, GELU,
 * scaled embeddings, interleaved sliding-window and global layers with two
 * RoPE bases). The weights stay in the mmap'd file in their quantized layout.
 *
 * The forward pass takes a batch of tokens, each with its position and
 * sequence id, writes their K/V through an lm_kv interface (so the paged
 * cache of the engine can stand behind it) and returns logits for the tokens
 * that ask for them. */
#ifndef LAMINA_MODEL_H
#define LAMINA_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "base/fp16.h"
#include "base/threadpool.h"
#include "gguf/gguf.h"

typedef enum lm_arch { LM_ARCH_LLAMA, LM_ARCH_QWEN2, LM_ARCH_QWEN3, LM_ARCH_GEMMA3 } lm_arch;

typedef enum lm_rope_style {
    LM_ROPE_NORM, /* rotate adjacent pairs (x[2i], x[2i+1]): llama */
    LM_ROPE_NEOX, /* rotate halves (x[i], x[i + n_rot/2]): qwen, gemma */
} lm_rope_style;

typedef struct lm_hparams {
    lm_arch arch;
    int n_vocab;
    int n_ctx_train;    /* tokens */
    int n_embd;
    int n_layer;
    int n_head;
    int n_head_kv;
    int head_dim;       /* key/query head size */
    int head_dim_v;     /* value head size */
    int n_ff;
    int n_rot;          /* dims rotated by RoPE (<= head_dim) */
    float rms_eps;
    float rope_base;        /* global layers */
    float rope_scale;       /* position multiplier (1 / linear scaling factor) */
    float rope_base_swa;    /* sliding-window layers */
    float rope_scale_swa;
    lm_rope_style rope_style;
    int sliding_window;     /* tokens; 0 = none */
    int swa_pattern;        /* layer il is sliding iff il % swa_pattern < swa_pattern - 1; 0 = none */
    float attn_scale;       /* multiplies QK^T */
    float attn_softcap;     /* 0 = none */
    float final_softcap;    /* 0 = none */
    float embd_scale;       /* multiplies token embeddings (gemma: sqrt(n_embd)) */
    bool gelu_ffn;          /* GELU gate (gemma) instead of SiLU */
    bool has_qkv_bias;
    bool has_qk_norm;
    bool has_post_norms;    /* gemma: norms after attention and FFN outputs */
} lm_hparams;

/* a 2-D weight in the mapping: ne0 elements per row, ne1 rows */
typedef struct lm_weight {
    const void *data;
    uint32_t type;   /* lm_dtype */
    int64_t ne0, ne1;
    size_t row_bytes;
} lm_weight;

typedef struct lm_layer {
    lm_weight attn_norm, wq, wk, wv, wo;
    lm_weight bq, bk, bv;              /* qwen2 (f32 vectors) */
    lm_weight q_norm, k_norm;          /* qwen3, gemma3: (head_dim) */
    lm_weight attn_post_norm;          /* gemma3 */
    lm_weight ffn_norm, ffn_gate, ffn_up, ffn_down;
    lm_weight ffn_post_norm;           /* gemma3 */
    bool is_swa;                       /* sliding-window layer */
} lm_layer;

typedef struct lm_model {
    gguf_file *file;        /* owned */
    lm_hparams hp;
    lm_weight tok_embd;     /* (n_vocab, n_embd) */
    lm_weight output_norm;  /* (n_embd) */
    lm_weight output;       /* (n_vocab, n_embd); = tok_embd when tied */
    lm_weight rope_freqs;   /* optional (n_rot/2) divisors of theta, llama 3.1 */
    lm_layer *layers;       /* (n_layer) */
} lm_model;

/* Opens PATH, validates the architecture's required keys and every tensor's
 * type and shape. NULL + err ("PATH: key 'llama.block_count' missing") on
 * failure. */
lm_model *lm_model_load(const char *path, lm_error *err);
/* same over an already opened file; takes ownership of F even on failure */
lm_model *lm_model_from_gguf(gguf_file *f, lm_error *err);
void lm_model_free(lm_model *m);
const char *lm_arch_name(lm_arch arch);

/* ---- K/V storage seen by the forward pass ----
 * Keys and values of (layer, sequence, position) live in blocks of
 * block_size positions; a block holds, per position, n_head_kv * head_dim
 * f16 keys (resp. head_dim_v values). block(...) returns the block holding
 * logical block index pos / block_size of the sequence (allocated by the
 * caller beforehand). */
typedef struct lm_kv {
    int block_size; /* positions per block */
    lm_fp16 *(*k_block)(void *ctx, int layer, int seq, int block);
    lm_fp16 *(*v_block)(void *ctx, int layer, int seq, int block);
    void *ctx;
} lm_kv;

/* One step's tokens. Positions of one sequence must be contiguous with what
 * the cache already holds for it (causal attention covers positions 0..pos
 * of the token's own sequence). */
typedef struct lm_batch {
    int n_tokens;
    const int32_t *tokens;     /* (n_tokens) */
    const int32_t *pos;        /* (n_tokens) */
    const int32_t *seq;        /* (n_tokens) */
    const bool *want_logits;   /* (n_tokens) */
} lm_batch;

typedef struct lm_forward lm_forward;

/* Scratch for batches of up to max_tokens tokens and positions up to max_ctx.
 * NULL on allocation failure. */
lm_forward *lm_forward_create(const lm_model *m, int max_tokens, int max_ctx);
void lm_forward_free(lm_forward *fw);

/* Runs the batch on the pool. logits: (n_want, n_vocab) f32, one row per
 * token with want_logits set, in batch order. Returns 0, or -1 with err
 * (token id out of range, batch too large, position beyond max_ctx). */
int lm_forward_run(lm_forward *fw, tp_pool *pool, const lm_kv *kv, const lm_batch *batch,
                   float *logits, lm_error *err);

#endif
