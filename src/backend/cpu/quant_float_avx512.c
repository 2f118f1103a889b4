/* quant_float_avx512.c - f32 / f16 / bf16 dot and matrix product, AVX-512:
 * 16-float vectors, tiles of 4 rows x 6 tokens (24 accumulators and 4
 * weight vectors of the 32 zmm registers). The kernel is the template in
 * quant_float_gemm.h. */
#include "backend/cpu/quant_impl.h"
#include "backend/cpu/quant_x86.h"

#define FG_LEVEL avx512
#define FG_V __m512
#define FG_W 16
#define FG_R 4
#define FG_T 6
#define FG_ZERO() _mm512_setzero_ps()
#define FG_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define FG_LOADU(p) _mm512_loadu_ps(p)
#define FG_STOREU(p, v) _mm512_storeu_ps(p, v)
#define FG_HSUM(v) q_hsum_f32x16(v)
#define FG_PREFETCH(p) q_prefetch(p, 1)
#define FG_F16(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))
#define FG_BF16(p) \
    _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(p))), 16))

#include "backend/cpu/quant_float_gemm.h"
