/* logits_fixture.h - what the tests that hold logits to llama.cpp's stored
 * fixtures (tests/fixtures/logits/) share: the tolerance rule, token id
 * lists, and one-sequence batches.
 *
 * Tolerance: llama.cpp is not exactly reproducible by itself; each fixture
 * records its own run-to-run divergence (self_divergence.max_abs_diff). We
 * allow twice that, at least 0.01 on float weights and 0.06 on quantized
 * ones (test_model_fidelity.c explains the floors). */
#ifndef LAMINA_TEST_LOGITS_FIXTURE_H
#define LAMINA_TEST_LOGITS_FIXTURE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/dtype.h"
#include "model/model.h"

#define MIN_TOLERANCE_FLOAT 0.01f
#define MIN_TOLERANCE_QUANT 0.06f

static inline bool float_weights(const lm_model *m) {
    uint32_t t = m->layers[0].wq.type;
    return t == LM_F32 || t == LM_F16 || t == LM_BF16;
}

/* twice llama.cpp's own divergence, with the floor of the weight kind; -1
 * if the fixture lacks it */
static inline float tolerance_of(json_t *root, bool float_model) {
    json_t *self = json_object_get(json_object_get(root, "self_divergence"), "max_abs_diff");
    if (!json_is_number(self)) return -1.0f;
    float tol = 2.0f * (float)json_number_value(self);
    float floor = float_model ? MIN_TOLERANCE_FLOAT : MIN_TOLERANCE_QUANT;
    return tol > floor ? tol : floor;
}

/* tokens[0..n) of sequence SEQ at positions start.. as one batch, logits
 * wanted for every token if ALL, else for the last; pos, seq_ids and want
 * (n each) are the caller's storage */
static inline lm_batch one_sequence_batch(const int32_t *tokens, int n, int start, int seq, bool all, int32_t *pos,
                                          int32_t *seq_ids, bool *want) {
    for (int i = 0; i < n; i++) {
        pos[i] = start + i;
        seq_ids[i] = seq;
        want[i] = all || i == n - 1;
    }
    return (lm_batch){n, tokens, pos, seq_ids, want};
}

/* a JSON array of token ids into out (at most cap); the count */
static inline int read_ids(json_t *arr, int32_t *out, int cap) {
    int n = 0;
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        if (n < cap) out[n++] = (int32_t)json_integer_value(v);
    }
    return n;
}

#endif
