/* model.c - hyperparameters and weights of a GGUF transformer.
 *
 * Reads <arch>.* keys with llama.cpp's defaults, then binds every tensor the
 * architecture needs, checking its type and shape, so that the forward pass
 * never meets a surprise. */
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/dtype.h"

typedef struct {
    const char *name;
    lm_arch arch;
} arch_entry;

static const arch_entry ARCHS[] = {
    {"llama", LM_ARCH_LLAMA},
    {"qwen2", LM_ARCH_QWEN2},
    {"qwen3", LM_ARCH_QWEN3},
    {"gemma3", LM_ARCH_GEMMA3},
};

const char *lm_arch_name(lm_arch arch) {
    for (size_t i = 0; i < sizeof(ARCHS) / sizeof(ARCHS[0]); i++)
        if (ARCHS[i].arch == arch) return ARCHS[i].name;
    return "unknown";
}

typedef struct {
    gguf_file *f;
    const char *arch;
    lm_error *err;
} loader;

static int key_u32(loader *ld, const char *suffix, bool required, int *out) {
    char key[128];
    snprintf(key, sizeof(key), "%s.%s", ld->arch, suffix);
    uint32_t v;
    if (gguf_get_u32(ld->f, key, &v) == 0) {
        if (v > (1u << 30)) {
            lm_error_set(ld->err, "%s: key '%s' = %u is out of range", gguf_path(ld->f), key, v);
            return -1;
        }
        *out = (int)v;
        return 0;
    }
    if (gguf_find_key(ld->f, key) >= 0) {
        lm_error_set(ld->err, "%s: key '%s' is not an unsigned integer", gguf_path(ld->f), key);
        return -1;
    }
    if (required) {
        lm_error_set(ld->err, "%s: required key '%s' is missing", gguf_path(ld->f), key);
        return -1;
    }
    return 0;
}

static int key_f32(loader *ld, const char *suffix, float *out) {
    char key[128];
    snprintf(key, sizeof(key), "%s.%s", ld->arch, suffix);
    if (gguf_get_f32(ld->f, key, out) == 0) return 0;
    if (gguf_find_key(ld->f, key) >= 0) {
        lm_error_set(ld->err, "%s: key '%s' is not a float", gguf_path(ld->f), key);
        return -1;
    }
    return 0;
}

static int load_hparams(loader *ld, lm_hparams *hp) {
    memset(hp, 0, sizeof(*hp));
    bool known = false;
    for (size_t i = 0; i < sizeof(ARCHS) / sizeof(ARCHS[0]); i++)
        if (!strcmp(ARCHS[i].name, ld->arch)) {
            hp->arch = ARCHS[i].arch;
            known = true;
        }
    if (!known) {
        lm_error_set(ld->err, "%s: architecture '%s' is not supported (llama, qwen2, qwen3, gemma3)",
                     gguf_path(ld->f), ld->arch);
        return -1;
    }
    if (key_u32(ld, "block_count", true, &hp->n_layer) || key_u32(ld, "embedding_length", true, &hp->n_embd) ||
        key_u32(ld, "feed_forward_length", true, &hp->n_ff) ||
        key_u32(ld, "attention.head_count", true, &hp->n_head) ||
        key_u32(ld, "context_length", true, &hp->n_ctx_train))
        return -1;
    hp->n_head_kv = hp->n_head;
    if (key_u32(ld, "attention.head_count_kv", false, &hp->n_head_kv)) return -1;
    if (hp->n_layer < 1 || hp->n_embd < 1 || hp->n_head < 1 || hp->n_head_kv < 1 || hp->n_ff < 1 ||
        hp->n_head % hp->n_head_kv != 0 || hp->n_embd % hp->n_head != 0) {
        lm_error_set(ld->err,
                     "%s: inconsistent shape: n_layer=%d n_embd=%d n_ff=%d n_head=%d n_head_kv=%d",
                     gguf_path(ld->f), hp->n_layer, hp->n_embd, hp->n_ff, hp->n_head, hp->n_head_kv);
        return -1;
    }
    hp->head_dim = hp->n_embd / hp->n_head;
    if (key_u32(ld, "attention.key_length", false, &hp->head_dim)) return -1;
    hp->head_dim_v = hp->head_dim;
    if (key_u32(ld, "attention.value_length", false, &hp->head_dim_v)) return -1;
    hp->n_rot = hp->head_dim;
    if (key_u32(ld, "rope.dimension_count", false, &hp->n_rot)) return -1;
    if (hp->head_dim < 2 || hp->head_dim > 1024 || hp->head_dim_v < 1 || hp->head_dim_v > 1024 ||
        hp->n_rot > hp->head_dim || hp->n_rot % 2 != 0 || hp->head_dim_v != hp->head_dim) {
        lm_error_set(ld->err, "%s: unsupported head sizes: key %d, value %d, rope dims %d", gguf_path(ld->f),
                     hp->head_dim, hp->head_dim_v, hp->n_rot);
        return -1;
    }
    hp->rms_eps = 1e-5f;
    if (key_f32(ld, "attention.layer_norm_rms_epsilon", &hp->rms_eps)) return -1;
    hp->rope_base = 10000.0f;
    if (key_f32(ld, "rope.freq_base", &hp->rope_base)) return -1;
    float scale_factor = 0.0f;
    if (key_f32(ld, "rope.scaling.factor", &scale_factor)) return -1;
    hp->rope_scale = scale_factor > 0.0f ? 1.0f / scale_factor : 1.0f;
    hp->rope_base_swa = hp->rope_base;
    hp->rope_scale_swa = hp->rope_scale;
    hp->attn_scale = 1.0f / sqrtf((float)hp->head_dim);
    hp->embd_scale = 1.0f;
    hp->rope_style = LM_ROPE_NEOX;
    if (key_f32(ld, "attn_logit_softcapping", &hp->attn_softcap) ||
        key_f32(ld, "final_logit_softcapping", &hp->final_softcap))
        return -1;

    switch (hp->arch) {
    case LM_ARCH_LLAMA: hp->rope_style = LM_ROPE_NORM; break;
    case LM_ARCH_QWEN2: hp->has_qkv_bias = true; break;
    case LM_ARCH_QWEN3: hp->has_qk_norm = true; break;
    case LM_ARCH_GEMMA3:
        /* as llama.cpp: every 6th layer global, the others sliding with base 10000 */
        hp->has_qk_norm = true;
        hp->has_post_norms = true;
        hp->gelu_ffn = true;
        hp->embd_scale = sqrtf((float)hp->n_embd);
        hp->swa_pattern = 6;
        hp->rope_base_swa = 10000.0f;
        hp->rope_scale_swa = 1.0f;
        if (key_u32(ld, "attention.sliding_window", true, &hp->sliding_window)) return -1;
        /* gemma3 27B scales by n_embd / n_head; the others by the head size */
        if (hp->n_layer == 62) hp->attn_scale = 1.0f / sqrtf((float)(hp->n_embd / hp->n_head));
        hp->final_softcap = 0.0f;
        break;
    }
    return 0;
}

/* Binds tensor NAME (formatted with il) as a weight of ne0 x ne1 elements
 * (ne1 = 1 for vectors). optional: absent -> zeroed weight, no error. */
static int bind(loader *ld, lm_weight *w, bool optional, int64_t ne0, int64_t ne1, const char *fmt, int il) {
    char name[96];
    snprintf(name, sizeof(name), fmt, il);
    const gguf_tensor *t = gguf_find_tensor(ld->f, name);
    memset(w, 0, sizeof(*w));
    if (!t) {
        if (optional) return 0;
        lm_error_set(ld->err, "%s: tensor '%s' is missing", gguf_path(ld->f), name);
        return -1;
    }
    int64_t t_ne1 = t->n_dims >= 2 ? t->ne[1] : 1;
    if (t->ne[0] != ne0 || t_ne1 != ne1 || (t->n_dims > 2 && t->ne[2] * t->ne[3] != 1)) {
        lm_error_set(ld->err, "%s: tensor '%s' has shape [%lld, %lld], expected [%lld, %lld]", gguf_path(ld->f),
                     name, (long long)t->ne[0], (long long)t_ne1, (long long)ne0, (long long)ne1);
        return -1;
    }
    if (!lm_dtype_supported(t->type) || t->type == LM_Q8_1 || t->type == LM_Q8_K ||
        ((strstr(name, "norm") || strstr(name, "bias") || strstr(name, "rope_freqs")) && t->type != LM_F32)) {
        lm_error_set(ld->err, "%s: tensor '%s' has type %s (%u), which lamina cannot use there", gguf_path(ld->f),
                     name, lm_dtype_name(t->type), t->type);
        return -1;
    }
    w->data = t->data;
    w->type = t->type;
    w->ne0 = ne0;
    w->ne1 = ne1;
    w->row_bytes = (size_t)(ne0 / lm_dtype_block_size(t->type)) * lm_dtype_type_size(t->type);
    return 0;
}

static int bind_layer(loader *ld, const lm_hparams *hp, lm_layer *L, int il) {
    const int64_t E = hp->n_embd, Q = (int64_t)hp->n_head * hp->head_dim, KV = (int64_t)hp->n_head_kv * hp->head_dim,
                  VV = (int64_t)hp->n_head_kv * hp->head_dim_v, F = hp->n_ff;
    if (bind(ld, &L->attn_norm, false, E, 1, "blk.%d.attn_norm.weight", il) ||
        bind(ld, &L->wq, false, E, Q, "blk.%d.attn_q.weight", il) ||
        bind(ld, &L->wk, false, E, KV, "blk.%d.attn_k.weight", il) ||
        bind(ld, &L->wv, false, E, VV, "blk.%d.attn_v.weight", il) ||
        bind(ld, &L->wo, false, (int64_t)hp->n_head * hp->head_dim_v, E, "blk.%d.attn_output.weight", il) ||
        bind(ld, &L->ffn_norm, false, E, 1, "blk.%d.ffn_norm.weight", il) ||
        bind(ld, &L->ffn_gate, false, E, F, "blk.%d.ffn_gate.weight", il) ||
        bind(ld, &L->ffn_up, false, E, F, "blk.%d.ffn_up.weight", il) ||
        bind(ld, &L->ffn_down, false, F, E, "blk.%d.ffn_down.weight", il))
        return -1;
    /* biases: required for qwen2, accepted wherever present (llama.cpp does the same) */
    bool need_bias = hp->has_qkv_bias;
    if (bind(ld, &L->bq, !need_bias, Q, 1, "blk.%d.attn_q.bias", il) ||
        bind(ld, &L->bk, !need_bias, KV, 1, "blk.%d.attn_k.bias", il) ||
        bind(ld, &L->bv, !need_bias, VV, 1, "blk.%d.attn_v.bias", il))
        return -1;
    if (hp->has_qk_norm && (bind(ld, &L->q_norm, false, hp->head_dim, 1, "blk.%d.attn_q_norm.weight", il) ||
                            bind(ld, &L->k_norm, false, hp->head_dim, 1, "blk.%d.attn_k_norm.weight", il)))
        return -1;
    if (hp->has_post_norms &&
        (bind(ld, &L->attn_post_norm, false, E, 1, "blk.%d.post_attention_norm.weight", il) ||
         bind(ld, &L->ffn_post_norm, false, E, 1, "blk.%d.post_ffw_norm.weight", il)))
        return -1;
    L->is_swa = hp->swa_pattern > 0 && hp->sliding_window > 0 && (il % hp->swa_pattern) < hp->swa_pattern - 1;
    return 0;
}

static int bind_weights(loader *ld, lm_model *m) {
    lm_hparams *hp = &m->hp;
    const gguf_tensor *emb = gguf_find_tensor(ld->f, "token_embd.weight");
    if (!emb) {
        lm_error_set(ld->err, "%s: tensor 'token_embd.weight' is missing", gguf_path(ld->f));
        return -1;
    }
    hp->n_vocab = emb->n_dims >= 2 ? (int)emb->ne[1] : 0;
    if (hp->n_vocab < 1) {
        lm_error_set(ld->err, "%s: tensor 'token_embd.weight' has no vocabulary dimension", gguf_path(ld->f));
        return -1;
    }
    if (bind(ld, &m->tok_embd, false, hp->n_embd, hp->n_vocab, "token_embd.weight", 0) ||
        bind(ld, &m->output_norm, false, hp->n_embd, 1, "output_norm.weight", 0) ||
        bind(ld, &m->output, true, hp->n_embd, hp->n_vocab, "output.weight", 0) ||
        bind(ld, &m->rope_freqs, true, hp->n_rot / 2, 1, "rope_freqs.weight", 0))
        return -1;
    if (!m->output.data) m->output = m->tok_embd; /* tied embeddings */
    /* every layer has at least its norm and its Q, K, V, O and FFN weights:
     * a block_count beyond what the tensors can hold is a broken file, not a
     * reason to allocate per-layer state for it */
    if ((int64_t)hp->n_layer > gguf_n_tensors(ld->f) / 7) {
        lm_error_set(ld->err, "%s: block_count %d but only %lld tensors: the file is incomplete or corrupt",
                     gguf_path(ld->f), hp->n_layer, (long long)gguf_n_tensors(ld->f));
        return -1;
    }
    m->layers = calloc((size_t)hp->n_layer, sizeof(lm_layer));
    if (!m->layers) {
        lm_error_set(ld->err, "%s: out of memory", gguf_path(ld->f));
        return -1;
    }
    for (int il = 0; il < hp->n_layer; il++)
        if (bind_layer(ld, hp, &m->layers[il], il)) return -1;
    return 0;
}

lm_model *lm_model_from_gguf(gguf_file *f, lm_error *err) {
    lm_model *m = calloc(1, sizeof(*m));
    if (!m) {
        gguf_close(f);
        lm_error_set(err, "out of memory");
        return NULL;
    }
    m->file = f;
    gguf_str arch;
    if (gguf_get_str(f, "general.architecture", &arch) != 0 || arch.len == 0 || arch.len > 64) {
        lm_error_set(err, "%s: key 'general.architecture' is missing or not a short string", gguf_path(f));
        lm_model_free(m);
        return NULL;
    }
    char arch_name[65];
    memcpy(arch_name, arch.data, arch.len);
    arch_name[arch.len] = '\0';
    loader ld = {f, arch_name, err};
    if (load_hparams(&ld, &m->hp) || bind_weights(&ld, m)) {
        lm_model_free(m);
        return NULL;
    }
    return m;
}

lm_model *lm_model_load(const char *path, lm_error *err) {
    gguf_file *f = gguf_open(path, err);
    if (!f) return NULL;
    return lm_model_from_gguf(f, err);
}

void lm_model_free(lm_model *m) {
    if (!m) return;
    gguf_close(m->file);
    free(m->layers);
    free(m);
}
