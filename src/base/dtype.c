#include "base/dtype.h"

typedef struct {
    const char *name;
    int64_t block_size; /* elements */
    size_t type_size;   /* bytes per block */
} dtype_traits;

static const dtype_traits TRAITS[LM_DTYPE_COUNT] = {
    [LM_F32] = {"f32", 1, 4},        [LM_F16] = {"f16", 1, 2},
    [LM_BF16] = {"bf16", 1, 2},      [LM_Q4_0] = {"q4_0", 32, 18},
    [LM_Q4_1] = {"q4_1", 32, 20},    [LM_Q5_0] = {"q5_0", 32, 22},
    [LM_Q5_1] = {"q5_1", 32, 24},    [LM_Q8_0] = {"q8_0", 32, 34},
    [LM_Q8_1] = {"q8_1", 32, 36},    [LM_Q2_K] = {"q2_K", 256, 84},
    [LM_Q3_K] = {"q3_K", 256, 110},  [LM_Q4_K] = {"q4_K", 256, 144},
    [LM_Q5_K] = {"q5_K", 256, 176},  [LM_Q6_K] = {"q6_K", 256, 210},
    [LM_Q8_K] = {"q8_K", 256, 292},
};

bool lm_dtype_supported(uint32_t type) {
    return type < LM_DTYPE_COUNT && TRAITS[type].name != NULL;
}

int64_t lm_dtype_block_size(uint32_t type) {
    return lm_dtype_supported(type) ? TRAITS[type].block_size : 0;
}

size_t lm_dtype_type_size(uint32_t type) {
    return lm_dtype_supported(type) ? TRAITS[type].type_size : 0;
}

const char *lm_dtype_name(uint32_t type) {
    return lm_dtype_supported(type) ? TRAITS[type].name : "unknown";
}
