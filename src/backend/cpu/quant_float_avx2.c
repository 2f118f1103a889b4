/* quant_float_avx2.c - f32 / f16 / bf16 dot and matrix product, AVX2 + FMA +
 * F16C: 8-float vectors, tiles of 4 rows x 3 tokens (12 accumulators and 4
 * weight vectors fill the 16 ymm registers). The kernel is the template in
 * quant_float_gemm.h. */
#include "backend/cpu/quant_impl.h"
#include "backend/cpu/quant_x86.h"

#define FG_LEVEL avx2
#define FG_V __m256
#define FG_W 8
#define FG_R 4
#define FG_T 3
#define FG_ZERO() _mm256_setzero_ps()
#define FG_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define FG_LOADU(p) _mm256_loadu_ps(p)
#define FG_STOREU(p, v) _mm256_storeu_ps(p, v)
#define FG_HSUM(v) q_hsum_f32x8(v)
#define FG_PREFETCH(p) q_prefetch(p, 1)
#define FG_F16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
#define FG_BF16(p) \
    _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p))), 16))

#include "backend/cpu/quant_float_gemm.h"
