/* quant_x86.h - the small AVX2 primitives the x86 quant kernels are built
 * from (unpacking nibbles and bits, integer dot steps, horizontal sums,
 * exact rounding, dequantized stores). Include only from files compiled
 * with the AVX2/FMA/F16C flags (*_avx2.c, *_avx512.c). */
#ifndef LAMINA_BACKEND_CPU_QUANT_X86_H
#define LAMINA_BACKEND_CPU_QUANT_X86_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "base/fp16.h"

/* Fully unrolls a short fixed loop so that per-iteration constants (shift
 * counts, shuffle masks) fold into immediates and constant loads, and the
 * accumulators of a token tile stay in registers. */
#define Q_UNROLL _Pragma("GCC unroll 16")

/* Rows stream from memory one after the other; the hardware prefetcher alone
 * leaves the kernels waiting on DRAM, so each row asks for the bytes this far
 * ahead of it (about DRAM latency times a core's bandwidth). */
#define Q_PREFETCH_BYTES 3072

/* A decode (one token) reads each weight once, straight from DRAM: there
 * every step of a row (a group of blocks, a super-block) asks for the bytes
 * this far ahead of the ones it reads, which keeps more lines in flight than
 * one request per row. Measured on the 2-vCPU AVX-512 machine, Qwen3-0.6B
 * decode at 1 thread: q4_0 33.3 t/s with the per-row request, 35.0 with this
 * (3072: 35.0, 12288: 34.2); q4_K_M 32.6 -> 35.3 (3072: 34.9, 12288: 34.2). */
#define Q_DECODE_AHEAD 6144

/* prefetches the cache lines of bytes [p, p + n); never faults. (asm: GCC 12
 * drops __builtin_prefetch from some of the kernel loops as dead code.) */
static inline void q_prefetch(const void *p, int64_t n) {
    for (int64_t o = 0; o < n; o += 64) __asm__ volatile("prefetcht0 %0" : : "m"(*((const char *)p + o)));
}

/* F16C scalar conversion: the same value as lm_fp16_to_fp32, in 2 µops */
static inline float q_h2f(lm_fp16 h) { return _cvtsh_ss(h); }

/* Stops the compiler from fusing a multiply and a following add into an
 * FMA: dequantization must round twice (d * q, then + m) as the reference. */
static inline __m256 q_nofuse(__m256 v) {
    __asm__("" : "+x"(v));
    return v;
}

static inline float q_hsum_f32x8(__m256 x) {
    __m128 r = _mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

#ifdef __AVX512F__
/* The sum of 16 lanes in the one tree every AVX-512 kernel uses: lanes l
 * and l + 8, then l + 4, l + 2, l + 1. */
static inline float q_hsum_f32x16(__m512 x) {
    const __m256 a = _mm256_add_ps(_mm512_castps512_ps256(x), _mm512_extractf32x8_ps(x, 1));
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}
#endif

static inline int q_hsum_i32x8(__m256i a) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

/* 16 bytes of nibble pairs -> 32 bytes in [0, 15]: low nibbles first, then high */
static inline __m256i q_nibbles_32(const uint8_t *p) {
    const __m128i t = _mm_loadu_si128((const __m128i *)p);
    const __m256i b = _mm256_inserti128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    return _mm256_and_si256(b, _mm256_set1_epi8(0x0F));
}

/* 32 bits -> 32 bytes, 0xFF where the bit is set */
static inline __m256i q_bits_32(const uint8_t *p) {
    uint32_t x32;
    memcpy(&x32, p, 4);
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32((int)x32), shuf);
    bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    return _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1));
}

/* the 32 five-bit values of a q5 block, in [0, 31] */
static inline __m256i q_q5_32(const uint8_t *qs, const uint8_t *qh) {
    const __m256i hi = _mm256_and_si256(q_bits_32(qh), _mm256_set1_epi8(0x10));
    return _mm256_or_si256(q_nibbles_32(qs), hi);
}

/* unsigned bytes u times signed bytes s, summed in groups of 4 -> 8 int32.
 * maddubs saturates at 16 bits; callers keep |u| * 127 * 2 < 32768. */
static inline __m256i q_dot_u8s8(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* signed bytes times signed bytes (x = -128 allowed, y > -128) -> 8 int32 */
static inline __m256i q_dot_s8s8(__m256i x, __m256i y) {
    return q_dot_u8s8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

/* four vectors of 8 int32 (elements 0-7, 8-15, 16-23, 24-31) -> 32 int8 in
 * order, saturating */
static inline __m256i q_pack_i32_to_i8(__m256i i0, __m256i i1, __m256i i2, __m256i i3) {
    const __m256i a = _mm256_packs_epi32(i0, i1);
    const __m256i b = _mm256_packs_epi32(i2, i3);
    const __m256i c = _mm256_packs_epi16(a, b);
    return _mm256_permutevar8x32_epi32(c, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* dst[0..16) = q * d (q: 16 int8) */
static inline void q_store_scaled16(float *dst, __m128i q, float d) {
    const __m256 vd = _mm256_set1_ps(d);
    const __m256 lo = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
    const __m256 hi = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q, 8)));
    _mm256_storeu_ps(dst, _mm256_mul_ps(lo, vd));
    _mm256_storeu_ps(dst + 8, _mm256_mul_ps(hi, vd));
}

/* dst[0..16) = q * d + m, rounded after the product as the reference */
static inline void q_store_scaled16_add(float *dst, __m128i q, float d, float m) {
    const __m256 vd = _mm256_set1_ps(d), vm = _mm256_set1_ps(m);
    const __m256 lo = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
    const __m256 hi = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q, 8)));
    _mm256_storeu_ps(dst, _mm256_add_ps(q_nofuse(_mm256_mul_ps(lo, vd)), vm));
    _mm256_storeu_ps(dst + 8, _mm256_add_ps(q_nofuse(_mm256_mul_ps(hi, vd)), vm));
}

static inline void q_store_scaled32(float *dst, __m256i q, float d) {
    q_store_scaled16(dst, _mm256_castsi256_si128(q), d);
    q_store_scaled16(dst + 16, _mm256_extracti128_si256(q, 1), d);
}

static inline void q_store_scaled32_add(float *dst, __m256i q, float d, float m) {
    q_store_scaled16_add(dst, _mm256_castsi256_si128(q), d, m);
    q_store_scaled16_add(dst + 16, _mm256_extracti128_si256(q, 1), d, m);
}

/* q4_K / q5_K: the 12 packed scale bytes -> 8 scales (bytes 0-7) and 8
 * mins (bytes 8-15), 6 bits each, as q_unpack_k4_scales. Reads 16 bytes at
 * packed: the 4 after the field are the block's next field, ignored. */
static inline __m128i q_k4_scales(const uint8_t *packed) {
    const __m128i v = _mm_loadu_si128((const __m128i *)packed);
    /* a: the bytes holding the low bits of scale/min j, b: those holding its 2 high bits */
    const __m128i a = _mm_shuffle_epi8(v, _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11));
    const __m128i b = _mm_shuffle_epi8(v, _mm_setr_epi8(-1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1, 4, 5, 6, 7));
    const __m128i low = _mm_or_si128(
        _mm_and_si128(a, _mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 0, 0, 0, 0)),
        _mm_and_si128(_mm_srli_epi16(a, 4), _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 15, 15, 15)));
    return _mm_or_si128(low, _mm_and_si128(_mm_srli_epi16(b, 2), _mm_set1_epi8(0x30)));
}

/* byte-shuffle mask picking byte b into the low byte of every 16-bit word
 * and zero into the high one: unsigned byte -> int16 broadcast */
static inline __m256i q_byte_to_words(int b) { return _mm256_set1_epi16((short)(0x8000 + b)); }

#endif
