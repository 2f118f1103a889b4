/* test_cuda_forward.c - the GPU forward pass (model/forward_cuda.h) against
 * the CPU's (model.h) and llama.cpp's logits.
 *
 *   test_cuda_forward                 every fixture of tests/fixtures/logits
 *   test_cuda_forward MODEL.gguf...   the GPU against the CPU on these files
 *                                     (real shapes: bench/gen_model makes them)
 *
 * Per model, with the CPU forward pass as the reference (it is itself held to
 * llama.cpp by tests/unit/test_model_fidelity.c):
 *   - whole prompts in one batch (the GEMM path from 9 tokens on) and token by
 *     token (the VEC path): every logits row within the tolerance of the CPU's,
 *     the argmax equal except at a near tie of the CPU's (top-2 margin below
 *     the tolerance); for fixtures also the llama.cpp probes within the
 *     fixture's tolerance, as test_model_fidelity checks the CPU;
 *   - all prompts in one batch, their tokens interleaved, each sequence in
 *     blocks scattered over the pool: the same logits as alone (within the
 *     tolerance: cuBLAS may pick other algorithms for other batch sizes);
 *   - a long context fed in chunks of 128 and then decoded (past the sliding
 *     window of gemma3-shaped models; long enough that decode attention runs
 *     in several splits and merges them);
 *   - greedy fixtures: the GPU's greedy continuation against llama.cpp's, as
 *     the CPU's is checked.
 * Tolerance: against llama.cpp, that of the fixture (twice llama.cpp's own
 * divergence, floors 0.01 float / 0.06 quantized), the very bound the CPU
 * is held to; against the CPU twice that, since both sides may sit that far
 * from llama.cpp in opposite directions. Files without a fixture have no
 * measured divergence to scale a logit bound by (llama.cpp's own run-to-run
 * divergence is 1-3 logits on real quantized models of this size, 0.03-0.06
 * on the tiny fixtures), so there the distributions are compared instead:
 * KL(CPU || GPU) of every row at most MAX_KL, and the argmax equal except
 * where the CPU's top-2 margin is below twice the row's max |difference|
 * (also reported).
 * Exits 77 (ctest: skipped) where no GPU is visible. */
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/check.h"
#include "../unit/logits_fixture.h"
#include "../unit/ranked.h"
#include "backend/cpu/ops.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_ops.h"
#include "base/dtype.h"
#include "engine/sampler.h"
#include "model/forward_cuda.h"
#include "model/kv_contig.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

#define FIXTURE_DIR "tests/fixtures/logits"
#define MAX_CTX 1024
#define MAX_SLOTS 8
#define BLOCK 16
#define CHUNK 128
#define MAX_KL 1e-2 /* nats, per row, files without a fixture */

typedef struct runner {
    const char *name;
    lm_model *model;
    int n_vocab, max_ctx;
    /* the CPU reference */
    tp_pool *pool;
    lm_forward *cpu;
    kv_contig *cpu_kv;
    lm_kv kv;
    /* the GPU: each slot owns max_blocks pool blocks, a scattered permutation */
    lm_forward_cuda *gpu;
    int *tables[MAX_SLOTS];
    const int *gpu_tables[MAX_SLOTS]; /* the same, as lm_forward_cuda_run takes them */
    int n_table[MAX_SLOTS];           /* max_blocks each */
    int max_blocks;
} runner;

/* The GPU forward pass runs batch-invariant (lm_cuda_forward_config) unless
 * LAMINA_CUDA_BATCH_INVARIANT=0 (the default serving mode, GEMM for
 * batches: tolerances only). Invariant, a token's logits must be the same
 * bits whatever batch, place in it or prefill chunking they came from. */
static bool batch_invariant(void) {
    const char *e = getenv("LAMINA_CUDA_BATCH_INVARIANT");
    return !(e && strcmp(e, "0") == 0);
}

static int runner_open(runner *r, const char *path) {
    memset(r, 0, sizeof(*r));
    r->name = path;
    lm_error err = {{0}};
    r->model = lm_model_load(path, &err);
    CHECK(r->model != NULL, "%s", err.msg);
    if (!r->model) return -1;
    r->n_vocab = r->model->hp.n_vocab;
    r->max_ctx = r->model->hp.n_ctx_train < MAX_CTX ? r->model->hp.n_ctx_train : MAX_CTX;
    r->pool = tp_create(4);
    r->cpu = lm_forward_create(r->model, MAX_CTX, r->max_ctx);
    r->cpu_kv = kv_contig_create(&r->model->hp, 1, r->max_ctx, &r->kv);
    r->max_blocks = (r->max_ctx + BLOCK - 1) / BLOCK;
    const int n_blocks = MAX_SLOTS * r->max_blocks + 1;
    const size_t block_bytes = (size_t)r->model->hp.n_layer * BLOCK * r->model->hp.n_head_kv *
                               (r->model->hp.head_dim + r->model->hp.head_dim_v) * 2;
    const lm_cuda_forward_config cfg = {.device = 0, .max_tokens = MAX_CTX, .max_logits = MAX_CTX,
                                        .max_slots = MAX_SLOTS, .max_ctx = r->max_ctx, .block_size = BLOCK,
                                        .kv_bytes = (size_t)n_blocks * block_bytes,
                                        .batch_invariant = batch_invariant()};
    r->gpu = lm_forward_cuda_create(r->model, &cfg, &err);
    CHECK(r->gpu != NULL, "%s: %s", path, err.msg);
    /* blocks 1.. in a fixed scattered order (block 0 stays unused: a table
     * entry that is never written would read it) */
    int *perm = malloc(sizeof(int) * (size_t)n_blocks);
    for (int i = 0; i < n_blocks; i++) perm[i] = i;
    uint32_t seed = 12345;
    for (int i = n_blocks - 1; i > 1; i--) {
        seed = seed * 1664525u + 1013904223u;
        int j = 1 + (int)(seed % (uint32_t)i);
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (int s = 0; s < MAX_SLOTS; s++) {
        r->tables[s] = malloc(sizeof(int) * (size_t)r->max_blocks);
        for (int i = 0; i < r->max_blocks; i++) r->tables[s][i] = perm[1 + s * r->max_blocks + i];
        r->gpu_tables[s] = r->tables[s];
        r->n_table[s] = r->max_blocks;
    }
    free(perm);
    return r->pool && r->cpu && r->cpu_kv && r->gpu ? 0 : -1;
}

static void runner_close(runner *r) {
    for (int s = 0; s < MAX_SLOTS; s++) free(r->tables[s]);
    lm_forward_cuda_free(r->gpu);
    kv_contig_free(r->cpu_kv);
    lm_forward_free(r->cpu);
    tp_free(r->pool);
    lm_model_free(r->model);
}

/* tokens[0..n) at positions start.. of one sequence, one batch; logits of
 * every token if all, else of the last (run_gpu: in slot SLOT) */
static int run_cpu(runner *r, const int32_t *tokens, int n, int start, bool all, float *logits) {
    static int32_t pos[MAX_CTX], seq[MAX_CTX];
    static bool want[MAX_CTX];
    const lm_batch b = one_sequence_batch(tokens, n, start, 0, all, pos, seq, want);
    lm_error err = {{0}};
    int rc = lm_forward_run(r->cpu, r->pool, &r->kv, &b, logits, &err);
    CHECK(rc == 0, "cpu: %s", err.msg);
    return rc;
}

static int run_gpu_batch(runner *r, const lm_batch *b, float *logits) {
    lm_error err = {{0}};
    int rc = lm_forward_cuda_run(r->gpu, b, r->gpu_tables, r->n_table, MAX_SLOTS, NULL, logits, NULL, &err);
    CHECK(rc == 0, "gpu: %s", err.msg);
    return rc;
}

static int run_gpu(runner *r, int slot, const int32_t *tokens, int n, int start, bool all, float *logits) {
    static int32_t pos[MAX_CTX], seq[MAX_CTX];
    static bool want[MAX_CTX];
    const lm_batch b = one_sequence_batch(tokens, n, start, slot, all, pos, seq, want);
    return run_gpu_batch(r, &b, logits);
}

static int n_invariance_checks;

static void check_same_bits(const char *what, const float *a, const float *b, int n) {
    if (!batch_invariant()) return;
    n_invariance_checks++;
    int at = -1;
    for (int i = 0; i < n && at < 0; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0) at = i;
    CHECK(at < 0, "%s: not the same bits (logit %d: %.9g vs %.9g)", what, at, at < 0 ? 0.0 : a[at],
          at < 0 ? 0.0 : b[at]);
}

/* the largest |a - b| of two rows */
static float max_diff(const float *a, const float *b, int n) {
    float worst = 0.0f;
    for (int i = 0; i < n; i++) {
        float d = fabsf(a[i] - b[i]);
        if (!(d <= worst)) worst = d; /* NaN wins */
    }
    return worst;
}

static float top2_margin(const float *row, int n) {
    float a = -INFINITY, b = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (row[i] > a) {
            b = a;
            a = row[i];
        } else if (row[i] > b) {
            b = row[i];
        }
    }
    return a - b;
}

typedef struct stats {
    float worst_cpu, worst_batch, worst_long, worst_ref;
    double worst_kl, sum_kl;
    int n_rows, n_argmax_equal;
} stats;

/* GPU row against CPU row: within tol, argmax equal unless the CPU's own
 * top-2 margin is a near tie */
/* KL(p || q) of the softmaxes of two logits rows, nats */
static double kl_div(const float *p_logits, const float *q_logits, int n) {
    double pm = -INFINITY, qm = -INFINITY, ps = 0.0, qs = 0.0, kl = 0.0;
    for (int i = 0; i < n; i++) {
        pm = fmax(pm, p_logits[i]);
        qm = fmax(qm, q_logits[i]);
    }
    for (int i = 0; i < n; i++) {
        ps += exp(p_logits[i] - pm);
        qs += exp(q_logits[i] - qm);
    }
    const double lp = log(ps) + pm, lq = log(qs) + qm;
    for (int i = 0; i < n; i++) {
        const double a = p_logits[i] - lp, b = q_logits[i] - lq;
        kl += exp(a) * (a - b);
    }
    return kl;
}

/* GPU row against the CPU's (or the GPU's own alone): with BASE_TOL > 0,
 * within twice it and the argmax equal unless the CPU's top-2 margin is a
 * near tie; with BASE_TOL < 0 (no fixture), KL at most MAX_KL */
static void compare_rows(const char *what, const float *gpu, const float *cpu, int n_vocab, float base_tol,
                         float *worst, stats *st) {
    const float d = max_diff(gpu, cpu, n_vocab);
    if (!(d <= *worst)) *worst = d;
    const int ga = lm_argmax(gpu, n_vocab), ca = lm_argmax(cpu, n_vocab);
    st->n_rows++;
    st->n_argmax_equal += ga == ca;
    if (base_tol > 0) {
        const float tol = 2.0f * base_tol;
        CHECK(d <= tol, "%s: max |gpu - cpu| %.5f > tolerance %.4f", what, d, tol);
        CHECK(ga == ca || top2_margin(cpu, n_vocab) < tol, "%s: argmax %d on the GPU, %d on the CPU (CPU margin %.4f)",
              what, ga, ca, top2_margin(cpu, n_vocab));
    } else {
        const double kl = kl_div(cpu, gpu, n_vocab);
        if (!(kl <= st->worst_kl)) st->worst_kl = kl;
        st->sum_kl += kl;
        CHECK(kl <= MAX_KL, "%s: KL(cpu || gpu) %.3g > %.3g (max |diff| %.4f)", what, kl, MAX_KL, d);
        CHECK(ga == ca || top2_margin(cpu, n_vocab) < 2.0f * d, "%s: argmax %d on the GPU, %d on the CPU", what, ga, ca);
    }
}

/* whole-prompt, token-by-token and interleaved multi-sequence runs of PROMPTS */
static void check_prompts(runner *r, int32_t (*prompts)[64], const int *lens, int n_prompts, float tol_fixed,
                          stats *st, float *gpu_all) {
    const int V = r->n_vocab;
    float *cpu = malloc(sizeof(float) * (size_t)V * 64);
    float *gpu = malloc(sizeof(float) * (size_t)V * 64);
    float *one = malloc(sizeof(float) * (size_t)V);
    char what[256];
    for (int p = 0; p < n_prompts; p++) {
        const int n = lens[p];
        if (run_cpu(r, prompts[p], n, 0, true, cpu) || run_gpu(r, 0, prompts[p], n, 0, true, gpu)) break;
        memcpy(gpu_all + (size_t)p * 64 * V, gpu, sizeof(float) * (size_t)n * V);
        for (int t = 0; t < n; t++) {
            const float *c = cpu + (size_t)t * V;
            snprintf(what, sizeof(what), "%s prompt %d pos %d (one batch)", r->name, p, t);
            compare_rows(what, gpu + (size_t)t * V, c, V, tol_fixed, &st->worst_cpu, st);
        }
        /* token by token, in another slot: the decode path */
        for (int t = 0; t < n; t++)
            if (run_gpu(r, 1, prompts[p] + t, 1, t, false, one)) break;
        snprintf(what, sizeof(what), "%s prompt %d (token by token)", r->name, p);
        compare_rows(what, one, cpu + (size_t)(n - 1) * V, V, tol_fixed, &st->worst_cpu, st);
        snprintf(what, sizeof(what), "%s prompt %d: token by token vs one batch", r->name, p);
        check_same_bits(what, one, gpu + (size_t)(n - 1) * V, V);
    }
    /* every prompt in one batch, interleaved, prompt p in slot p */
    int n_total = 0;
    static int32_t tok[MAX_CTX], pos[MAX_CTX], seq[MAX_CTX];
    static bool want[MAX_CTX];
    for (int t = 0; t < 64; t++)
        for (int p = 0; p < n_prompts && p < MAX_SLOTS; p++)
            if (t < lens[p]) {
                tok[n_total] = prompts[p][t];
                pos[n_total] = t;
                seq[n_total] = p;
                want[n_total] = true;
                n_total++;
            }
    float *mixed = malloc(sizeof(float) * (size_t)V * n_total);
    lm_batch b = {n_total, tok, pos, seq, want};
    if (run_gpu_batch(r, &b, mixed) == 0) {
        for (int i = 0; i < n_total; i++) {
            const float *alone = gpu_all + ((size_t)seq[i] * 64 + pos[i]) * V;
            snprintf(what, sizeof(what), "%s prompt %d pos %d (interleaved batch)", r->name, seq[i], pos[i]);
            compare_rows(what, mixed + (size_t)i * V, alone, V, tol_fixed, &st->worst_batch, st);
            check_same_bits(what, mixed + (size_t)i * V, alone, V);
        }
    }
    free(mixed);
    free(cpu);
    free(gpu);
    free(one);
}

/* a long context in chunks of CHUNK, then 4 greedy decode steps (the CPU's
 * choice fed to both) */
static void check_long(runner *r, const int32_t *text, int n_text, float tol_fixed, stats *st) {
    const int V = r->n_vocab;
    const int n = r->max_ctx - 8 < 900 ? r->max_ctx - 8 : 900;
    int32_t *tokens = malloc(sizeof(int32_t) * (size_t)(n + 8));
    for (int i = 0; i < n; i++) tokens[i] = text[i % n_text];
    float *cpu = malloc(sizeof(float) * (size_t)V), *gpu = malloc(sizeof(float) * (size_t)V);
    char what[256];
    for (int start = 0; start < n; start += CHUNK) {
        const int len = n - start < CHUNK ? n - start : CHUNK;
        if (run_cpu(r, tokens + start, len, start, false, cpu) || run_gpu(r, 2, tokens + start, len, start, false, gpu))
            goto out;
    }
    /* the same context in chunks of another size (the last in one token) gives the same bits */
    if (batch_invariant()) {
        float *other = malloc(sizeof(float) * (size_t)V);
        for (int start = 0; start < n;) {
            const int len = start + 37 < n - 1 ? 37 : (start < n - 1 ? n - 1 - start : 1);
            if (run_gpu(r, 3, tokens + start, len, start, false, other)) break;
            start += len;
        }
        snprintf(what, sizeof(what), "%s long context: chunks of 37 vs %d", r->name, CHUNK);
        check_same_bits(what, other, gpu, V);
        free(other);
    }
    for (int step = 0; step < 5; step++) {
        snprintf(what, sizeof(what), "%s long context, position %d", r->name, n - 1 + step);
        compare_rows(what, gpu, cpu, V, tol_fixed, &st->worst_long, st);
        if (step == 4) break;
        tokens[n + step] = lm_argmax(cpu, V);
        if (run_cpu(r, tokens + n + step, 1, n + step, false, cpu) ||
            run_gpu(r, 2, tokens + n + step, 1, n + step, false, gpu))
            break;
    }
out:
    free(tokens);
    free(cpu);
    free(gpu);
}

static int n_files_run, n_files_absent;

/* the model file a fixture names, or NULL (said and counted) when it is not
 * here: the real models are too large to carry to the GPU machine */
static const char *fixture_model(json_t *root, const char *file) {
    const char *path = json_string_value(json_object_get(root, "model"));
    FILE *f = path ? fopen(path, "rb") : NULL;
    if (f) {
        fclose(f);
        return path;
    }
    printf("%s: NOT RUN, model %s absent here\n", file, path ? path : "(none)");
    n_files_absent++;
    return NULL;
}

static void check_logits_fixture(const char *file) {
    json_error_t jerr;
    json_t *root = json_load_file(file, 0, &jerr);
    CHECK(root != NULL, "%s: %s", file, jerr.text);
    if (!root) return;
    const char *model_path = fixture_model(root, file);
    if (!model_path) {
        json_decref(root);
        return;
    }
    runner r;
    if (runner_open(&r, model_path)) {
        runner_close(&r);
        json_decref(root);
        return;
    }
    n_files_run++;
    const int V = r.n_vocab;
    const float tol = tolerance_of(root, float_weights(r.model));
    CHECK(tol > 0.0f, "%s: no self_divergence", file);
    static int32_t prompts[MAX_SLOTS][64];
    int lens[MAX_SLOTS], n_prompts = 0;
    json_t *jp = json_object_get(root, "prompts");
    for (size_t i = 0; i < json_array_size(jp) && n_prompts < MAX_SLOTS; i++, n_prompts++)
        lens[n_prompts] = read_ids(json_object_get(json_array_get(jp, i), "tokens"), prompts[n_prompts], 64);
    stats st = {0};
    float *gpu_all = calloc((size_t)MAX_SLOTS * 64 * V, sizeof(float));
    check_prompts(&r, prompts, lens, n_prompts, tol, &st, gpu_all);
    /* the llama.cpp probes, as test_model_fidelity checks the CPU */
    int ref_equal = 0, ref_rows = 0;
    for (int p = 0; p < n_prompts; p++) {
        json_t *pr = json_array_get(jp, (size_t)p);
        json_t *argmax = json_object_get(pr, "argmax"), *margin = json_object_get(pr, "top2_margin");
        json_t *probe_ids = json_object_get(pr, "probe_ids"), *probe_logits = json_object_get(pr, "probe_logits");
        for (int t = 0; t < lens[p]; t++) {
            const float *row = gpu_all + ((size_t)p * 64 + t) * V;
            const int32_t ref = (int32_t)json_integer_value(json_array_get(argmax, t)), ours = lm_argmax(row, V);
            const double ref_margin = json_number_value(json_array_get(margin, t));
            ref_rows++;
            ref_equal += ours == ref;
            CHECK(ours == ref || ref_margin < tol, "%s prompt %d pos %d: GPU argmax %d, llama.cpp %d (margin %.4f)", file,
                  p, t, ours, ref, ref_margin);
            json_t *ids = json_array_get(probe_ids, t), *vals = json_array_get(probe_logits, t);
            for (size_t j = 0; j < json_array_size(ids); j++) {
                const int id = (int)json_integer_value(json_array_get(ids, j));
                const float d = fabsf(row[id] - (float)json_number_value(json_array_get(vals, j)));
                if (!(d <= st.worst_ref)) st.worst_ref = d;
            }
        }
    }
    /* The GPU is a third implementation beside the CPU and llama.cpp, each with
     * its own rounding (re-quantized activations turn small differences into
     * steps): it is held to the GPU-CPU bound, twice the fixture's tolerance */
    CHECK(st.worst_ref <= 2.0f * tol, "%s: GPU vs llama.cpp max |logit diff| %.5f > twice the tolerance %.3f", file,
          st.worst_ref, tol);
    check_long(&r, prompts[0], lens[0], tol, &st);
    printf("%s: tolerance %.3f (GPU-CPU and GPU-llama.cpp twice it) | GPU vs llama.cpp %.5f, argmax %d/%d | GPU vs CPU %.5f, argmax %d/%d rows | "
           "interleaved batch %.5f | long context %.5f\n",
           file, tol, st.worst_ref, ref_equal, ref_rows, st.worst_cpu, st.n_argmax_equal, st.n_rows, st.worst_batch,
           st.worst_long);
    free(gpu_all);
    runner_close(&r);
    json_decref(root);
}

/* greedy_NAME.json: the GPU's greedy continuation against llama.cpp's */
static void check_greedy_fixture(const char *file) {
    json_t *root = json_load_file(file, 0, NULL);
    CHECK(root != NULL, "%s: unreadable", file);
    if (!root) return;
    const char *model_path = fixture_model(root, file);
    if (!model_path) {
        json_decref(root);
        return;
    }
    char logits_file[512];
    snprintf(logits_file, sizeof(logits_file), "%s/%s", FIXTURE_DIR, strrchr(file, '/') + 1 + strlen("greedy_"));
    json_t *lroot = json_load_file(logits_file, 0, NULL);
    runner r;
    if (runner_open(&r, model_path)) {
        runner_close(&r);
        json_decref(lroot);
        json_decref(root);
        return;
    }
    n_files_run++;
    const float tol = lroot ? tolerance_of(lroot, float_weights(r.model)) : -1.0f;
    json_decref(lroot);
    CHECK(tol > 0.0f, "%s: the model's logits fixture has no tolerance", file);
    lm_error err = {{0}};
    tok_vocab *vocab = tok_vocab_load(r.model->file, &err);
    const int V = r.n_vocab;
    float *logits = malloc(sizeof(float) * (size_t)V);
    size_t ci;
    json_t *c;
    json_array_foreach(json_object_get(root, "cases"), ci, c) {
        int32_t tokens[MAX_CTX], expect[MAX_CTX];
        const int n = read_ids(json_object_get(c, "prompt_tokens"), tokens, MAX_CTX);
        const int n_expect = read_ids(json_object_get(c, "tokens"), expect, MAX_CTX);
        if (run_gpu(&r, 0, tokens, n, 0, false, logits)) break;
        json_t *margins = json_object_get(c, "top2_margin");
        int n_same = 0;
        bool parted_at_tie = false;
        for (int i = 0; i < n_expect && n + i < r.max_ctx; i++) {
            const int32_t tok = lm_argmax(logits, V);
            if (tok != expect[i]) {
                const double margin = json_number_value(json_array_get(margins, i));
                parted_at_tie = json_array_size(margins) > (size_t)i && margin < tol;
                CHECK(parted_at_tie, "%s case %zu: token %d is %d on the GPU, llama.cpp %d (its margin %.4f)", file, ci,
                      i, tok, expect[i], margin);
                break;
            }
            n_same++;
            tokens[n + i] = tok;
            if (vocab && tok_is_eog(vocab, tok)) break;
            if (i + 1 < n_expect && run_gpu(&r, 0, &tokens[n + i], 1, n + i, false, logits)) break;
        }
        printf("%s case %zu: %d/%d greedy tokens identical to llama.cpp's on the GPU%s\n", file, ci, n_same, n_expect,
               parted_at_tie ? " (then parted at a near tie)" : "");
    }
    free(logits);
    tok_vocab_free(vocab);
    runner_close(&r);
    json_decref(root);
}

/* a model file without fixture: the GPU against the CPU on made-up prompts */
static void check_model_file(const char *path) {
    runner r;
    if (runner_open(&r, path)) {
        runner_close(&r);
        return;
    }
    n_files_run++;
    const int V = r.n_vocab;
    static int32_t prompts[4][64];
    int lens[4] = {32, 17, 9, 1};
    uint32_t seed = 7;
    for (int p = 0; p < 4; p++)
        for (int t = 0; t < lens[p]; t++) {
            seed = seed * 1664525u + 1013904223u;
            prompts[p][t] = (int32_t)((seed >> 8) % (uint32_t)V);
        }
    stats st = {0};
    float *gpu_all = calloc((size_t)MAX_SLOTS * 64 * V, sizeof(float));
    check_prompts(&r, prompts, lens, 4, -1.0f, &st, gpu_all);
    check_long(&r, prompts[0], lens[0], -1.0f, &st);
    printf("%s: GPU vs CPU max |diff| %.5f, argmax %d/%d rows, KL max %.2e mean %.2e (bound %.0e) | interleaved batch "
           "%.5f | long context %.5f\n",
           path, st.worst_cpu, st.n_argmax_equal, st.n_rows, st.worst_kl, st.sum_kl / (st.n_rows ? st.n_rows : 1),
           MAX_KL, st.worst_batch, st.worst_long);
    free(gpu_all);
    runner_close(&r);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* lm_cuda_top_k and lm_cuda_argmax against a sort on the CPU: rows with many
 * ties at the cut, -inf, NaN (never taken), and vocabulary-sized rows */
static void check_top_k_op(void) {
    lm_error err = {{0}};
    lm_cuda_ctx *ctx = lm_cuda_ctx_create(0, &err);
    CHECK(ctx != NULL, "%s", err.msg);
    if (!ctx) return;
    enum { ROWS = 6, K = LM_CUDA_TOP_K_MAX };
    const int n = 151936;
    float *x = malloc(sizeof(float) * (size_t)ROWS * n), *vals = malloc(sizeof(float) * ROWS * K);
    int32_t *ids = malloc(sizeof(int32_t) * ROWS * K), *amax = malloc(sizeof(int32_t) * ROWS);
    ranked *r = malloc(sizeof(ranked) * (size_t)n);
    uint32_t state = 5;
    for (int row = 0; row < ROWS; row++)
        for (int i = 0; i < n; i++) {
            state = state * 1664525u + 1013904223u;
            float v = row % 2 ? (float)((int)(state >> 16) % 50) : (float)(state >> 8) / 16777216.0f * 20.0f - 10.0f;
            if (row == 2 && i % 97 == 0) v = -INFINITY;
            if (row == 3 && i % 89 == 0) v = NAN;
            if (row == 5) v = 1.0f; /* all equal: the lowest ids */
            x[(size_t)row * n + i] = v;
        }
    float *x_dev = lm_cuda_alloc(ctx, sizeof(float) * (size_t)ROWS * n, &err);
    int32_t *ids_dev = lm_cuda_alloc(ctx, sizeof(int32_t) * ROWS * K, &err), *amax_dev = lm_cuda_alloc(ctx, 4 * 64, &err);
    float *vals_dev = lm_cuda_alloc(ctx, sizeof(float) * ROWS * K, &err);
    int rc = !x_dev || !ids_dev || !vals_dev || !amax_dev ||
             lm_cuda_upload(ctx, x_dev, x, sizeof(float) * (size_t)ROWS * n, &err) ||
             lm_cuda_top_k(ctx, x_dev, ROWS, n, K, ids_dev, vals_dev, &err) ||
             lm_cuda_argmax(ctx, x_dev, ROWS, n, amax_dev, &err) || lm_cuda_sync(ctx, &err) ||
             lm_cuda_download(ctx, ids, ids_dev, sizeof(int32_t) * ROWS * K, &err) ||
             lm_cuda_download(ctx, vals, vals_dev, sizeof(float) * ROWS * K, &err) ||
             lm_cuda_download(ctx, amax, amax_dev, 4 * ROWS, &err);
    CHECK(rc == 0, "top-k op: %s", err.msg);
    for (int row = 0; rc == 0 && row < ROWS; row++) {
        int m = 0;
        for (int i = 0; i < n; i++)
            if (!isnan(x[(size_t)row * n + i])) r[m++] = (ranked){i, x[(size_t)row * n + i]};
        qsort(r, (size_t)m, sizeof(ranked), cmp_ranked);
        int same = 0;
        for (int j = 0; j < K; j++) same += ids[row * K + j] == r[j].id && vals[row * K + j] == r[j].v;
        CHECK(same == K, "top-k row %d: %d of %d candidates as the CPU sorts them", row, same, K);
        CHECK(amax[row] == r[0].id, "argmax row %d: %d, CPU %d", row, amax[row], r[0].id);
    }
    /* each row's log-normalizer (logprobs from the top-k path) against the
     * CPU's: max + log(sum of e^(x - max)) in double; NaN where a row has one */
    float *logz_dev = lm_cuda_alloc(ctx, sizeof(float) * ROWS, &err), logz[ROWS];
    rc = rc || !logz_dev || lm_cuda_log_z(ctx, x_dev, ROWS, n, logz_dev, &err) || lm_cuda_sync(ctx, &err) ||
         lm_cuda_download(ctx, logz, logz_dev, sizeof(logz), &err);
    CHECK(rc == 0, "log_z op: %s", err.msg);
    for (int row = 0; rc == 0 && row < ROWS; row++) {
        const float *xr = x + (size_t)row * n;
        float max = -INFINITY;
        bool has_nan = false;
        for (int i = 0; i < n; i++) {
            has_nan |= isnan(xr[i]);
            if (xr[i] > max) max = xr[i];
        }
        double sum = 0.0;
        for (int i = 0; i < n; i++)
            if (!isnan(xr[i])) sum += exp((double)(xr[i] - max));
        const float want = max + (float)log(sum);
        if (has_nan) CHECK(isnan(logz[row]), "log_z row %d (with NaN): %g", row, logz[row]);
        else CHECK(fabsf(logz[row] - want) <= 1e-5f * (1.0f + fabsf(want)), "log_z row %d: %.7g, CPU %.7g", row,
                   logz[row], want);
    }
    lm_cuda_free(ctx, logz_dev);
    /* the argmax again over other shapes: one block a row, or a row split
     * over up to 32 blocks whose last folds the partials (every launch must
     * leave its counters at zero for the next, so each shape runs twice) */
    const int lens[] = {n, 40000, 3000, 151};
    int n_argmax = 0;
    for (int li = 0; rc == 0 && li < 4; li++) {
        const int len = lens[li], rows = (int)((size_t)ROWS * n / (size_t)len) < 64 ? (int)((size_t)ROWS * n / len) : 64;
        for (int used = 1; used <= rows; used = used * 3 + 1)
            for (int rep = 0; rep < 2; rep++) {
                int32_t got[64];
                rc = lm_cuda_argmax(ctx, x_dev, used, len, amax_dev, &err) || lm_cuda_sync(ctx, &err) ||
                     lm_cuda_download(ctx, got, amax_dev, 4 * (size_t)used, &err);
                CHECK(rc == 0, "argmax op: %s", err.msg);
                for (int row = 0; rc == 0 && row < used; row++) {
                    const float *xr = x + (size_t)row * len;
                    int want = -1;
                    for (int i = 0; i < len; i++)
                        if (!isnan(xr[i]) && (want < 0 || xr[i] > xr[want])) want = i;
                    CHECK(got[row] == (want < 0 ? 0 : want), "argmax of %d rows of %d, row %d: %d, CPU %d", used, len,
                          row, got[row], want);
                    n_argmax++;
                }
            }
    }
    printf("top-k op: %d rows of %d against a CPU sort (ties, -inf, NaN); argmax: %d rows of 4 lengths\n", ROWS, n,
           n_argmax);
    lm_cuda_free(ctx, x_dev);
    lm_cuda_free(ctx, ids_dev);
    lm_cuda_free(ctx, vals_dev);
    lm_cuda_free(ctx, amax_dev);
    lm_cuda_ctx_free(ctx);
    free(x);
    free(vals);
    free(ids);
    free(amax);
    free(r);
}

/* lm_cuda_logit_edits against lm_logit_edits_apply: the same bits, with a
 * token biased twice, penalties on positive, negative and zero logits, and
 * divisions that round */
static void check_edits_op(void) {
    lm_error err = {{0}};
    lm_cuda_ctx *ctx = lm_cuda_ctx_create(0, &err);
    CHECK(ctx != NULL, "%s", err.msg);
    if (!ctx) return;
    enum { ROWS = 5, N = 3001, PER_ROW = 300 };
    static float x[ROWS * N], want[ROWS * N], got[ROWS * N];
    static lm_logit_edit edits[ROWS * PER_ROW];
    int32_t start[ROWS + 1];
    uint32_t state = 11;
    for (int i = 0; i < ROWS * N; i++) {
        state = state * 1664525u + 1013904223u;
        x[i] = i % 17 == 0 ? 0.0f : (float)((int)(state >> 8) % 200001 - 100000) * 1.37e-4f;
    }
    memcpy(want, x, sizeof(x));
    int n = 0;
    for (int r = 0; r < ROWS; r++) {
        start[r] = n;
        const int n_bias = r * 3, n_pen = r == 2 ? 0 : PER_ROW - 20;
        for (int j = 0; j < n_bias; j++) {
            state = state * 1664525u + 1013904223u;
            edits[n++] = (lm_logit_edit){(int32_t)(j % 4 ? state % N : 5), LM_EDIT_BIAS, 0.1f * (float)(j + 1) - 0.7f, 0};
        }
        for (int j = 0; j < n_pen; j++) /* distinct tokens, biased ones among them */
            edits[n++] = (lm_logit_edit){(int32_t)((j * 7 + r) % N), LM_EDIT_PENALTY, 1.0f + 0.013f * (float)(j % 29),
                                         (float)(j % 5) * 0.31f + 0.07f};
        lm_logit_edits_apply(want + (size_t)r * N, edits + start[r], n - start[r]);
    }
    start[ROWS] = n;
    float *x_dev = lm_cuda_alloc(ctx, sizeof(x), &err);
    int32_t *start_dev = lm_cuda_alloc(ctx, sizeof(start), &err);
    lm_logit_edit *edits_dev = lm_cuda_alloc(ctx, sizeof(lm_logit_edit) * (size_t)n, &err);
    int rc = !x_dev || !start_dev || !edits_dev || lm_cuda_upload(ctx, x_dev, x, sizeof(x), &err) ||
             lm_cuda_upload(ctx, start_dev, start, sizeof(start), &err) ||
             lm_cuda_upload(ctx, edits_dev, edits, sizeof(lm_logit_edit) * (size_t)n, &err) ||
             lm_cuda_logit_edits(ctx, x_dev, ROWS, N, start_dev, edits_dev, &err) || lm_cuda_sync(ctx, &err) ||
             lm_cuda_download(ctx, got, x_dev, sizeof(got), &err);
    CHECK(rc == 0, "edits op: %s", err.msg);
    int same = 0, changed = 0;
    for (int i = 0; i < ROWS * N; i++) {
        same += !memcmp(&got[i], &want[i], sizeof(float));
        changed += want[i] != x[i];
    }
    CHECK(rc || same == ROWS * N, "edits op: %d of %d logits the CPU's bits", same, ROWS * N);
    printf("edits op: %d edits over %d rows, %d logits changed, the CPU's bits\n", n, ROWS, changed);
    lm_cuda_free(ctx, x_dev);
    lm_cuda_free(ctx, start_dev);
    lm_cuda_free(ctx, edits_dev);
    lm_cuda_ctx_free(ctx);
}

/* The engine's two ways of drawing a step's tokens on the GPU give the same
 * tokens: every logits row copied and drawn on the host (the reference),
 * against the GPU's edits (bias, penalties) and argmax or 64 best
 * candidates with log-normalizers, drawn from those, or from the one row
 * fetched when they cannot decide. Samplers of every kind, MAX_SLOTS rows
 * a step, penalties growing with each step's tokens. */
static void check_sampling_paths(const char *path) {
    runner r;
    if (runner_open(&r, path)) {
        runner_close(&r);
        return;
    }
    const int V = r.model->hp.n_vocab, K = LM_FORWARD_CUDA_TOP_K;
    static const lm_logit_bias bias[] = {{1, 2.5f}, {2, -1.0f}, {1, 0.75f}, {3, 8.0f}};
    const lm_sampling kinds[MAX_SLOTS] = {
        {0.0f, 0, 1.0f, 0.0f, 1.0f, 0.0f, 0.0f, 64, 1, NULL, 0},        /* greedy */
        {0.0f, 0, 1.0f, 0.0f, 1.3f, 0.4f, 0.2f, 64, 2, bias, 4},         /* greedy, penalties, bias */
        {0.8f, 40, 0.95f, 0.05f, 1.0f, 0.0f, 0.0f, 64, 3, NULL, 0},     /* the server's defaults */
        {1.0f, 20, 0.9f, 0.0f, 1.1f, 0.5f, 0.0f, -1, 4, bias, 2},        /* top-k, penalties over all */
        {1.0f, 0, 0.9f, 0.0f, 1.0f, 0.0f, 0.0f, 64, 5, NULL, 0},         /* top-p alone */
        {0.7f, 0, 1.0f, 0.1f, 1.2f, 0.0f, 0.3f, 64, 6, bias + 1, 3},     /* min-p alone, penalties */
        {1.0f, 0, 1.0f, 0.0f, 1.0f, 0.0f, 0.0f, 64, 7, NULL, 0},         /* no cut: the whole row */
        {0.9f, 0, 0.5f, 0.02f, 1.0f, 1.0f, 0.0f, 16, 8, NULL, 0},        /* top-p and min-p, presence */
    };
    lm_sampler *ref[MAX_SLOTS], *gpu[MAX_SLOTS];
    for (int i = 0; i < MAX_SLOTS; i++) {
        ref[i] = lm_sampler_create(&kinds[i], V);
        gpu[i] = lm_sampler_create(&kinds[i], V);
    }
    float *rows = malloc(sizeof(float) * (size_t)MAX_SLOTS * V), *z = malloc(sizeof(float) * MAX_SLOTS);
    int32_t *ids = malloc(sizeof(int32_t) * MAX_SLOTS * K), *amax = malloc(sizeof(int32_t) * MAX_SLOTS);
    float *vals = malloc(sizeof(float) * MAX_SLOTS * K);
    lm_logit_edit *list = malloc(sizeof(lm_logit_edit) * LM_FORWARD_CUDA_MAX_EDITS);
    int32_t tok[MAX_SLOTS], pos[MAX_SLOTS], seq[MAX_SLOTS], start[MAX_SLOTS + 1];
    bool want[MAX_SLOTS];
    int equal = 0, total = 0, fetched = 0;
    lm_error err = {{0}};
    for (int step = 0; step < 24; step++) {
        for (int i = 0; i < MAX_SLOTS; i++) {
            tok[i] = step == 0 ? (int32_t)((i * 131 + 7) % V) : tok[i];
            pos[i] = step;
            seq[i] = i;
            want[i] = true;
        }
        const lm_batch b = {MAX_SLOTS, tok, pos, seq, want};
        int rc = lm_forward_cuda_run(r.gpu, &b, r.gpu_tables, r.n_table, MAX_SLOTS, NULL, rows, NULL, &err);
        CHECK(rc == 0, "%s rows run: %s", path, err.msg);
        int n = 0;
        for (int i = 0; i < MAX_SLOTS; i++) {
            start[i] = n;
            const int m = lm_sampler_edits(gpu[i], list + n, LM_FORWARD_CUDA_MAX_EDITS - n);
            n += m > 0 ? m : 0;
        }
        start[MAX_SLOTS] = n;
        const lm_step_edits edits = {start, list};
        /* the same batch again (the same K/V written): the GPU's picks */
        rc = rc || lm_forward_cuda_run(r.gpu, &b, r.gpu_tables, r.n_table, MAX_SLOTS, &edits, NULL, amax, &err);
        rc = rc || lm_forward_cuda_run_top_k(r.gpu, &b, r.gpu_tables, r.n_table, MAX_SLOTS, &edits, ids, vals, z, &err);
        CHECK(rc == 0, "%s GPU-pick runs: %s", path, err.msg);
        if (rc) break;
        for (int i = 0; i < MAX_SLOTS; i++) {
            const int32_t a = lm_sampler_sample(ref[i], rows + (size_t)i * V);
            int32_t g = lm_sampler_need(gpu[i], K) == LM_SAMPLE_ARGMAX ? amax[i] : -1;
            if (lm_sampler_need(gpu[i], K) != LM_SAMPLE_ROW && g < 0)
                g = lm_sampler_sample_top(gpu[i], ids + (size_t)i * K, vals + (size_t)i * K, K, z[i]);
            if (g < 0) {
                float *row = lm_forward_cuda_fetch_row(r.gpu, i, &err);
                CHECK(row != NULL, "%s fetch row %d: %s", path, i, err.msg);
                if (!row) break;
                g = lm_sampler_sample_edited(gpu[i], row);
                fetched++;
            }
            CHECK(a == g, "%s step %d sampler %d: %d from the rows, %d from the GPU's picks", path, step, i, a, g);
            equal += a == g;
            total++;
            lm_sampler_accept(ref[i], a);
            lm_sampler_accept(gpu[i], g);
            tok[i] = a;
        }
    }
    printf("%s: GPU-side edits and picks: %d of %d tokens as the whole rows' draws (%d from a fetched row)\n", path,
           equal, total, fetched);
    for (int i = 0; i < MAX_SLOTS; i++) {
        lm_sampler_free(ref[i]);
        lm_sampler_free(gpu[i]);
    }
    free(rows);
    free(z);
    free(ids);
    free(amax);
    free(vals);
    free(list);
    runner_close(&r);
}

/* lm_cuda_get_rows (the token embeddings' lookup on the GPU) against the
 * CPU's op_get_row: the same bits, for the model's embedding matrix, at its
 * own embedding scale and at 2.5 (every type the models carry) */
static void check_get_rows(const char *path) {
    lm_error err = {{0}};
    lm_model *m = lm_model_load(path, &err);
    if (!m) return; /* absent: the fixture checks say so */
    lm_cuda_ctx *ctx = lm_cuda_ctx_create(0, &err);
    const lm_weight *e = &m->tok_embd;
    lm_cuda_matrix *w = ctx && lm_cuda_type_supported(e->type)
                            ? lm_cuda_matrix_upload(ctx, e->type, e->ne1, e->ne0, e->data, &err)
                            : NULL;
    if (!w) {
        printf("%s: get_rows not checked (%s)\n", path, err.msg[0] ? err.msg : "embedding type not on the GPU");
        lm_cuda_ctx_free(ctx);
        lm_model_free(m);
        return;
    }
    enum { N = 7 };
    const int64_t V = e->ne1, E = e->ne0;
    const int32_t ids[N] = {0, 1, 2, (int32_t)(V / 3), (int32_t)(V / 2) + 1, (int32_t)(V - 2), (int32_t)(V - 1)};
    const cpu_matrix cm = {e->data, e->type, e->ne0, e->ne1, e->row_bytes, NULL};
    float *want = malloc(sizeof(float) * N * (size_t)E), *got = malloc(sizeof(float) * N * (size_t)E);
    int32_t *ids_dev = lm_cuda_alloc(ctx, sizeof(ids), &err);
    float *out_dev = lm_cuda_alloc(ctx, sizeof(float) * N * (size_t)E, &err);
    const float scales[2] = {m->hp.embd_scale, 2.5f};
    for (int si = 0; si < 2; si++) {
        for (int i = 0; i < N; i++) {
            op_get_row(&cm, ids[i], want + (size_t)i * E);
            if (scales[si] != 1.0f)
                for (int64_t k = 0; k < E; k++) want[(size_t)i * E + k] *= scales[si];
        }
        int rc = !ids_dev || !out_dev || lm_cuda_upload(ctx, ids_dev, ids, sizeof(ids), &err) ||
                 lm_cuda_get_rows(ctx, w, ids_dev, N, scales[si], out_dev, &err) || lm_cuda_sync(ctx, &err) ||
                 lm_cuda_download(ctx, got, out_dev, sizeof(float) * N * (size_t)E, &err);
        CHECK(rc == 0, "%s: get_rows: %s", path, err.msg);
        CHECK(rc || !memcmp(got, want, sizeof(float) * N * (size_t)E), "%s: get_rows (%s, scale %g) differs from op_get_row",
              path, lm_dtype_name(e->type), scales[si]);
    }
    printf("%s: get_rows of %s embeddings, %d rows at scale %g and 2.5: op_get_row's bits\n", path,
           lm_dtype_name(e->type), N, m->hp.embd_scale);
    lm_cuda_free(ctx, ids_dev);
    lm_cuda_free(ctx, out_dev);
    free(want);
    free(got);
    lm_cuda_matrix_free(w);
    lm_cuda_ctx_free(ctx);
    lm_model_free(m);
}

int main(int argc, char **argv) {
    int n_dev = 0;
    lm_error err = {{0}};
    if (lm_cuda_device_count(&n_dev, &err) || n_dev == 0) {
        printf("test_cuda_forward: no CUDA device (%s): skipped\n", err.msg[0] ? err.msg : "none visible");
        return 77;
    }
    check_top_k_op();
    check_edits_op();
    check_sampling_paths("tests/fixtures/models/qwen3-q4_k_m.gguf");
    if (argc > 1) {
        for (int i = 1; i < argc; i++) {
            check_get_rows(argv[i]);
            check_model_file(argv[i]);
        }
        return check_done("cuda forward");
    }
    DIR *dir = opendir(FIXTURE_DIR);
    CHECK(dir != NULL, "cannot open %s", FIXTURE_DIR);
    if (!dir) return check_done("cuda forward");
    char *names[256];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dir)) && n < 256)
        if (strstr(e->d_name, ".json")) names[n++] = strdup(e->d_name);
    closedir(dir);
    qsort(names, (size_t)n, sizeof(char *), cmp_str);
    static const char *MODELS[] = {"llama3-f16", "llama3-q4_0", "llama3-q4_k_m", "llama3-q8_0", "qwen2-q4_k_m",
                                   "qwen3-q4_k_m"};
    for (size_t i = 0; i < sizeof(MODELS) / sizeof(MODELS[0]); i++) {
        char model[256];
        snprintf(model, sizeof(model), "tests/fixtures/models/%s.gguf", MODELS[i]);
        check_get_rows(model);
    }
    for (int i = 0; i < n; i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", FIXTURE_DIR, names[i]);
        if (!strncmp(names[i], "greedy_", 7)) check_greedy_fixture(path);
        else check_logits_fixture(path);
        free(names[i]);
    }
    printf("fixtures run %d, not run for want of the model file %d\n", n_files_run, n_files_absent);
    CHECK(n_files_run >= 12, "only %d fixtures ran", n_files_run);
    printf("batch invariance: %d same-bits checks%s\n", n_invariance_checks,
           batch_invariant() ? "" : " (off: LAMINA_CUDA_BATCH_INVARIANT=0)");
    CHECK(!batch_invariant() || n_invariance_checks > 0, "no batch-invariance check ran");
    return check_done("cuda forward");
}
