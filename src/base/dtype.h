/* dtype.h - tensor element types, numbered as in GGUF/ggml files.
 *
 * Quantized types store elements in blocks: block_size elements take
 * type_size bytes. A row of n elements (n a multiple of block_size) takes
 * n / block_size * type_size bytes. */
#ifndef LAMINA_BASE_DTYPE_H
#define LAMINA_BASE_DTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum lm_dtype {
    LM_F32 = 0,
    LM_F16 = 1,
    LM_Q4_0 = 2,
    LM_Q4_1 = 3,
    LM_Q5_0 = 6,
    LM_Q5_1 = 7,
    LM_Q8_0 = 8,
    LM_Q8_1 = 9,
    LM_Q2_K = 10,
    LM_Q3_K = 11,
    LM_Q4_K = 12,
    LM_Q5_K = 13,
    LM_Q6_K = 14,
    LM_Q8_K = 15,
    LM_BF16 = 30,
    LM_DTYPE_COUNT = 40, /* upper bound of the numbering, not a type */
} lm_dtype;

/* true for the types lamina can load and compute with */
bool lm_dtype_supported(uint32_t type);
/* elements per block (1 for float types); 0 if unsupported */
int64_t lm_dtype_block_size(uint32_t type);
/* bytes per block; 0 if unsupported */
size_t lm_dtype_type_size(uint32_t type);
/* "q4_K", "f16", ...; "unknown" if unsupported */
const char *lm_dtype_name(uint32_t type);

#endif
