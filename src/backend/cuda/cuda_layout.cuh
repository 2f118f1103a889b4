/* cuda_layout.cuh - how a quantized weight matrix sits on the GPU, and the
 * per-thread work of the kernels on it (internal to backend/cuda).
 *
 * Layout. A GGUF row is a run of blocks (ggml's block_q4_0 ... block_q6_K),
 * 18 to 210 bytes each, so most blocks are not 16-byte aligned. At upload
 * each block is split in two and the parts are stored in two planes, block
 * (row r, block b) at index r * blocks_per_row + b of each:
 *   body  the quant bits, a multiple of 16 bytes per block: the kernels read
 *         them as 16-byte "units", each thread one unit at a time;
 *   hdr   the block scales (and the repacked high bits of q5_0, q5_1,
 *         q5_K and q6_K), read with 2- to 16-byte loads.
 *
 *   type   elems  units  body (bytes)       hdr (bytes)
 *   q4_0    32     1     qs 16              d 2
 *   q4_1    32     1     qs 16              d, m 4
 *   q5_0    32     1     qs 16              d 2, pad 2, qh' 4
 *   q5_1    32     1     qs 16              d, m 4, qh' 4
 *   q8_0    32     2     qs 32              d 2
 *   q4_K   256     8     qs 128             d, dmin, scales[12] 16
 *   q5_K   256     8     qs 128             d, dmin, scales[12] 16, qh' 32
 *   q6_K   256     8     ql 128             d 2, pad 2, scales[16] 16, qh' 64
 *   f16      8     1     8 halves 16        -
 *   bf16     8     1     8 bf16 16          -
 *
 * Every unit of quant bits holds two runs of 16 elements (one for q8_0, f16
 * and bf16): byte i of a q4 / q5 unit carries element i of run 0 in its low
 * nibble and element i of run 1 in its high nibble, as in the GGUF blocks.
 * qh' is the high bits of q5_0 / q5_1 / q5_K / q6_K regrouped per unit so
 * that a shift and a mask put them next to the nibbles: for unit s, word bit
 * 8 (i & 3) + (i >> 2) holds bit 4 of element i of run 0 and bit
 * 8 (i & 3) + 4 + (i >> 2) bit 4 of element i of run 1 (q5_0, q5_1, q5_K:
 * one word per unit; q5_0 pads its hdr to 8 bytes so one aligned 8-byte load
 * reads it); q6_K has a word per run with bits 4-5 of element i at
 * 8 (i & 3) + 2 (i >> 2).
 *
 * Decoding a unit (cu_decode) gives its 32 quants as eight words of four
 * int8, the element offsets of its two runs and the scales that apply;
 * cu_unit_dot dots it with one token's quantized activations, cu_unit_value
 * gives the dequantized element. All are __host__ __device__ so
 * tests/cuda/test_cuda_layout.cu checks them on the CPU against the CPU
 * kernels, without a GPU.
 *
 * Activations (cu_act): the VEC path quantizes x once per call as the CPU
 * does: int8 quants (n_tok, cols), and per block of 32 one float2 ds: x the
 * scale d (for q8_K the super-block's d, repeated), y for q8_0 / q8_1
 * s = fp16(d * sum of the quants) (used by q4_1 / q5_1), for q8_K the sum of the
 * quants (exact in a float), so a k-quant unit reads the d and both sums of
 * its two groups with one 16-byte load. f16 and bf16 weights take x rounded
 * to their own type (to nearest even), as the CPU's f16 / bf16 dots do.
 *
 * A unit's dot is cu_act_load (the activations at the unit's position, the
 * same for every row) then cu_unit_dot_loaded (per row): a kernel thread
 * that handles the same unit of several rows loads the activations once. */
#ifndef LAMINA_BACKEND_CUDA_LAYOUT_CUH
#define LAMINA_BACKEND_CUDA_LAYOUT_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>
#include <string.h>

#define QD __host__ __device__ __forceinline__

/* the weight types, in the order of the kernel tables */
enum cu_type { CU_Q4_0, CU_Q4_1, CU_Q5_0, CU_Q5_1, CU_Q8_0, CU_Q4_K, CU_Q5_K, CU_Q6_K, CU_F16, CU_BF16, CU_TYPE_COUNT };

/* how the activations are prepared for a type */
enum cu_act_kind { CU_ACT_Q8_32, CU_ACT_Q8_K, CU_ACT_F16, CU_ACT_BF16 };

template <int T> struct cu_traits;
template <> struct cu_traits<CU_Q4_0> { static constexpr int qk = 32, units = 1, body = 16, hdr = 2, act = CU_ACT_Q8_32, runs = 2; };
template <> struct cu_traits<CU_Q4_1> { static constexpr int qk = 32, units = 1, body = 16, hdr = 4, act = CU_ACT_Q8_32, runs = 2; };
template <> struct cu_traits<CU_Q5_0> { static constexpr int qk = 32, units = 1, body = 16, hdr = 8, act = CU_ACT_Q8_32, runs = 2; };
template <> struct cu_traits<CU_Q5_1> { static constexpr int qk = 32, units = 1, body = 16, hdr = 8, act = CU_ACT_Q8_32, runs = 2; };
template <> struct cu_traits<CU_Q8_0> { static constexpr int qk = 32, units = 2, body = 32, hdr = 2, act = CU_ACT_Q8_32, runs = 1; };
template <> struct cu_traits<CU_Q4_K> { static constexpr int qk = 256, units = 8, body = 128, hdr = 16, act = CU_ACT_Q8_K, runs = 2; };
template <> struct cu_traits<CU_Q5_K> { static constexpr int qk = 256, units = 8, body = 128, hdr = 48, act = CU_ACT_Q8_K, runs = 2; };
template <> struct cu_traits<CU_Q6_K> { static constexpr int qk = 256, units = 8, body = 128, hdr = 84, act = CU_ACT_Q8_K, runs = 2; };
template <> struct cu_traits<CU_F16> { static constexpr int qk = 8, units = 1, body = 16, hdr = 0, act = CU_ACT_F16, runs = 1; };
template <> struct cu_traits<CU_BF16> { static constexpr int qk = 8, units = 1, body = 16, hdr = 0, act = CU_ACT_BF16, runs = 1; };

/* the same, at run time (host code) */
typedef struct cu_layout {
    uint32_t lm_type; /* lm_dtype */
    int qk, units, body, hdr, act;
    const char *name;
} cu_layout;

/* a matrix on the device, as the kernels see it */
typedef struct cu_mat {
    const uint8_t *body; /* (rows, blocks_per_row, body) bytes */
    const uint8_t *hdr;  /* (rows, blocks_per_row, hdr) bytes */
    int64_t rows, cols;
    int64_t blocks; /* per row */
    int units;      /* 16-byte units per row */
} cu_mat;

/* one call's prepared activations (token t starts at q + t * cols, ds + t * cols / 32, ...) */
typedef struct cu_act {
    const int8_t *q;    /* (n_tok, cols) int8 quants */
    const float2 *ds;   /* (n_tok, cols / 32) per block of 32: d, and s (q8_0/q8_1) or the quants' sum (q8_K) */
    const __half *h;    /* (n_tok, cols) f16 activations (f16 weights) */
    int64_t cols;
    const __nv_bfloat16 *bh; /* (n_tok, cols) bf16 activations (bf16 weights) */
} cu_act;

/* ---- loads: read-only cache on the device, memcpy on the host ---- */

QD int4 cu_ld16(const void *p) {
#ifdef __CUDA_ARCH__
    return __ldg(reinterpret_cast<const int4 *>(p));
#else
    int4 v;
    memcpy(&v, p, 16);
    return v;
#endif
}

QD uint2 cu_ld8(const void *p) {
#ifdef __CUDA_ARCH__
    return __ldg(reinterpret_cast<const uint2 *>(p));
#else
    uint2 v;
    memcpy(&v, p, 8);
    return v;
#endif
}

QD uint32_t cu_ld4(const void *p) {
#ifdef __CUDA_ARCH__
    return __ldg(reinterpret_cast<const unsigned int *>(p));
#else
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
#endif
}

QD uint16_t cu_ld2(const void *p) {
#ifdef __CUDA_ARCH__
    return __ldg(reinterpret_cast<const unsigned short *>(p));
#else
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
#endif
}

QD int cu_ld1s(const void *p) {
#ifdef __CUDA_ARCH__
    return __ldg(reinterpret_cast<const signed char *>(p));
#else
    return *reinterpret_cast<const int8_t *>(p);
#endif
}

QD float2 cu_ld8f(const float2 *p) {
#ifdef __CUDA_ARCH__
    return __ldg(p);
#else
    return *p;
#endif
}

QD float4 cu_ld16f(const float2 *p) {
#ifdef __CUDA_ARCH__
    return __ldg(reinterpret_cast<const float4 *>(p));
#else
    float4 v;
    memcpy(&v, p, 16);
    return v;
#endif
}

QD float cu_h2f(uint16_t bits) { return __half2float(__ushort_as_half(bits)); }

/* sum of the four int8 products of a and b, plus c */
QD int cu_dp4a(int a, int b, int c) {
#ifdef __CUDA_ARCH__
    return __dp4a(a, b, c);
#else
    for (int i = 0; i < 4; i++) c += (int8_t)(a >> (8 * i)) * (int8_t)(b >> (8 * i));
    return c;
#endif
}

/* float products, sums and differences that must not fuse into an fma, so
 * that dequantization rounds as the CPU's does and a dot rounds the same in
 * every kernel */
QD float cu_mul_rn(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}

QD float cu_add_rn(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fadd_rn(a, b);
#else
    return a + b;
#endif
}

QD float cu_sub_rn(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fsub_rn(a, b);
#else
    return a - b;
#endif
}

/* bytes in [0, 15] -> bytes minus 8, in [0, 31] -> minus 16, and in
 * [0, 63] -> minus 32, as signed int8 (no borrow crosses a byte: each is
 * biased by 128 first) */
QD int cu_sub8(uint32_t v) { return (int)(((v | 0x80808080u) - 0x08080808u) ^ 0x80808080u); }
QD int cu_sub16(uint32_t v) { return (int)(((v | 0x80808080u) - 0x10101010u) ^ 0x80808080u); }
QD int cu_sub32(uint32_t v) { return (int)(((v | 0x80808080u) - 0x20202020u) ^ 0x80808080u); }

/* The 8 scales and 8 mins of a q4_K / q5_K super-block from its 12 packed
 * bytes (three words): ggml's get_scale_min_k4 on four groups at once,
 * as bytes four to a word, sc[0] / m[0] groups 0-3 and sc[1] / m[1]
 * groups 4-7. Branch-free: the lanes of a warp decode different groups. */
QD void cu_k4_unpack(uint32_t w0, uint32_t w1, uint32_t w2, uint32_t sc[2], uint32_t m[2]) {
    sc[0] = w0 & 0x3F3F3F3Fu;
    m[0] = w1 & 0x3F3F3F3Fu;
    sc[1] = (w2 & 0x0F0F0F0Fu) | ((w0 >> 2) & 0x30303030u);
    m[1] = ((w2 >> 4) & 0x0F0F0F0Fu) | ((w1 >> 2) & 0x30303030u);
}

/* one decoded 16-byte unit of quant bits */
typedef struct cu_unit {
    int lo[4], hi[4]; /* runs 0 and 1: 16 int8 quants each, four per word */
    int e0, e1;       /* element (within the row) where each run starts */
    float d, dm;      /* q4_0/q5_0/q8_0: d; q4_1/q5_1: d, m; k-quants: d, dmin */
    int sc0, sc1;     /* k-quants: the runs' sub-block scales */
    int m0, m1;       /* q4_K/q5_K: the mins of the runs' groups of 32 */
    bool mins;        /* this unit adds its groups' min terms (one unit of the two per group) */
} cu_unit;

#define CU_M4 0x0F0F0F0Fu

/* Unit U (0 <= U < units per row) of the row whose planes start at WB, WH. */
template <int T> QD void cu_decode(const uint8_t *wb, const uint8_t *wh, int u, cu_unit *x) {
    const int4 q = cu_ld16(wb + 16 * (int64_t)u);
    const uint32_t qw[4] = {(uint32_t)q.x, (uint32_t)q.y, (uint32_t)q.z, (uint32_t)q.w};
    x->sc0 = x->sc1 = x->m0 = x->m1 = 0;
    x->mins = false;
    x->dm = 0.0f;
    if constexpr (T == CU_Q4_0 || T == CU_Q4_1 || T == CU_Q5_0 || T == CU_Q5_1) {
        constexpr bool q5 = T == CU_Q5_0 || T == CU_Q5_1;
        x->e0 = 32 * u;
        x->e1 = 32 * u + 16;
        uint32_t qh = 0;
        if constexpr (T == CU_Q4_0) {
            x->d = cu_h2f(cu_ld2(wh + 2 * (int64_t)u));
        } else if constexpr (T == CU_Q4_1) {
            const uint32_t dm = cu_ld4(wh + 4 * (int64_t)u);
            x->d = cu_h2f((uint16_t)(dm & 0xFFFF));
            x->dm = cu_h2f((uint16_t)(dm >> 16));
        } else {
            const uint2 h = cu_ld8(wh + 8 * (int64_t)u); /* d, m (q5_1) or pad (q5_0), qh' */
            x->d = cu_h2f((uint16_t)(h.x & 0xFFFF));
            if constexpr (T == CU_Q5_1) x->dm = cu_h2f((uint16_t)(h.x >> 16));
            qh = h.y;
        }
        for (int k = 0; k < 4; k++) {
            uint32_t lo = qw[k] & CU_M4, hi = (qw[k] >> 4) & CU_M4;
            if constexpr (q5) {
                lo |= ((qh >> k) & 0x01010101u) << 4;
                hi |= ((qh >> (4 + k)) & 0x01010101u) << 4;
            }
            x->lo[k] = T == CU_Q4_0 ? cu_sub8(lo) : T == CU_Q5_0 ? cu_sub16(lo) : (int)lo;
            x->hi[k] = T == CU_Q4_0 ? cu_sub8(hi) : T == CU_Q5_0 ? cu_sub16(hi) : (int)hi;
        }
    } else if constexpr (T == CU_Q8_0) {
        const int b = u >> 1;
        x->e0 = 32 * b + 16 * (u & 1);
        x->e1 = x->e0;
        for (int k = 0; k < 4; k++) {
            x->lo[k] = (int)qw[k];
            x->hi[k] = 0;
        }
        x->d = cu_h2f(cu_ld2(wh + 2 * (int64_t)b));
    } else if constexpr (T == CU_Q4_K || T == CU_Q5_K) {
        const int sb = u >> 3, s = u & 7, j = s >> 1;
        const uint8_t *h = wh + (int64_t)cu_traits<T>::hdr * sb;
        const int4 hv = cu_ld16(h);
        x->d = cu_h2f((uint16_t)((uint32_t)hv.x & 0xFFFF));
        x->dm = cu_h2f((uint16_t)((uint32_t)hv.x >> 16));
        uint32_t sc[2], mn[2];
        cu_k4_unpack((uint32_t)hv.y, (uint32_t)hv.z, (uint32_t)hv.w, sc, mn);
        const uint32_t scw = j < 2 ? sc[0] : sc[1], mnw = j < 2 ? mn[0] : mn[1];
        const int sh = 16 * (j & 1); /* groups 2j, 2j + 1: bytes 2 (j & 1), 2 (j & 1) + 1 of their word */
        x->sc0 = (int)((scw >> sh) & 0xFF);
        x->sc1 = (int)((scw >> (sh + 8)) & 0xFF);
        x->m0 = (int)((mnw >> sh) & 0xFF);
        x->m1 = (int)((mnw >> (sh + 8)) & 0xFF);
        x->mins = (s & 1) == 0;
        x->e0 = 256 * sb + 64 * j + 16 * (s & 1);
        x->e1 = x->e0 + 32;
        uint32_t qh = 0;
        if constexpr (T == CU_Q5_K) qh = cu_ld4(h + 16 + 4 * s);
        for (int k = 0; k < 4; k++) {
            uint32_t lo = qw[k] & CU_M4, hi = (qw[k] >> 4) & CU_M4;
            if constexpr (T == CU_Q5_K) {
                lo |= ((qh >> k) & 0x01010101u) << 4;
                hi |= ((qh >> (4 + k)) & 0x01010101u) << 4;
            }
            x->lo[k] = (int)lo;
            x->hi[k] = (int)hi;
        }
    } else if constexpr (T == CU_Q6_K) {
        const int sb = u >> 3, s = u & 7, half = s >> 2, c = s & 3;
        const uint8_t *h = wh + (int64_t)cu_traits<T>::hdr * sb;
        x->d = cu_h2f(cu_ld2(h));
        x->sc0 = cu_ld1s(h + 4 + 8 * half + c);
        x->sc1 = cu_ld1s(h + 4 + 8 * half + 4 + c);
        const uint32_t qhlo = cu_ld4(h + 20 + 8 * s), qhhi = cu_ld4(h + 24 + 8 * s);
        x->e0 = 256 * sb + 128 * half + 16 * c;
        x->e1 = x->e0 + 64;
        for (int k = 0; k < 4; k++) {
            x->lo[k] = cu_sub32((qw[k] & CU_M4) | (((qhlo >> (2 * k)) & 0x03030303u) << 4));
            x->hi[k] = cu_sub32(((qw[k] >> 4) & CU_M4) | (((qhhi >> (2 * k)) & 0x03030303u) << 4));
        }
    }
}

/* the activations a unit needs from one token: the quants of its two runs and
 * the block metadata (k-quants: ds of both groups, d sum0 d sum1) */
typedef struct cu_act_unit {
    int4 a0, a1;
    float4 m;
} cu_act_unit;

/* the activations of token T0 at X's position (the same for every row) */
template <int T> QD void cu_act_load(const cu_unit *x, const cu_act *a, int t0, cu_act_unit *au) {
    const int8_t *aq = a->q + (int64_t)t0 * a->cols;
    const float2 *ds = a->ds + (int64_t)t0 * (a->cols / 32) + x->e0 / 32;
    au->a0 = cu_ld16(aq + x->e0);
    if constexpr (cu_traits<T>::runs == 2) au->a1 = cu_ld16(aq + x->e1);
    if constexpr (T == CU_Q4_K || T == CU_Q5_K) {
        au->m = cu_ld16f(ds); /* groups 2j, 2j + 1: 16-byte aligned */
    } else {
        const float2 v = cu_ld8f(ds);
        au->m = make_float4(v.x, v.y, 0.0f, 0.0f);
    }
}

/* The unit's dot with loaded activations. The integer sums are the CPU
 * dot's; the float steps follow it per block, each rounded on its own (no
 * step fuses into an fma, whatever the surrounding kernel: a unit's dot
 * is the same bits in every kernel that computes it, which batch
 * invariance rests on). */
template <int T> QD float cu_unit_dot_loaded(const cu_unit *x, const cu_act_unit *au) {
    int s0 = cu_dp4a(x->lo[0], au->a0.x, 0);
    s0 = cu_dp4a(x->lo[1], au->a0.y, s0);
    s0 = cu_dp4a(x->lo[2], au->a0.z, s0);
    s0 = cu_dp4a(x->lo[3], au->a0.w, s0);
    int s1 = 0;
    if constexpr (cu_traits<T>::runs == 2) {
        s1 = cu_dp4a(x->hi[0], au->a1.x, 0);
        s1 = cu_dp4a(x->hi[1], au->a1.y, s1);
        s1 = cu_dp4a(x->hi[2], au->a1.z, s1);
        s1 = cu_dp4a(x->hi[3], au->a1.w, s1);
    }
    const float yd = au->m.x;
    if constexpr (T == CU_Q4_0) {
        return cu_mul_rn(cu_mul_rn((float)(s0 + s1), x->d), yd);
    } else if constexpr (T == CU_Q5_0) {
        return cu_mul_rn(cu_mul_rn(x->d, yd), (float)(s0 + s1));
    } else if constexpr (T == CU_Q4_1 || T == CU_Q5_1) {
        return cu_add_rn(cu_mul_rn(cu_mul_rn(x->d, yd), (float)(s0 + s1)), cu_mul_rn(x->dm, au->m.y));
    } else if constexpr (T == CU_Q8_0) {
        return cu_mul_rn((float)s0, cu_mul_rn(x->d, yd));
    } else {
        float r = cu_mul_rn(cu_mul_rn(x->d, yd), (float)(x->sc0 * s0 + x->sc1 * s1));
        if constexpr (T == CU_Q4_K || T == CU_Q5_K) {
            if (x->mins)
                r = cu_sub_rn(r, cu_mul_rn(cu_mul_rn(x->dm, yd),
                                           (float)(x->m0 * (int)au->m.y + x->m1 * (int)au->m.w)));
        }
        return r;
    }
}

/* The unit's dot with token T0's activations. */
template <int T> QD float cu_unit_dot(const cu_unit *x, const cu_act *a, int t0) {
    cu_act_unit au;
    cu_act_load<T>(x, a, t0, &au);
    return cu_unit_dot_loaded<T>(x, &au);
}

/* The scale and the offset of run R (0, 1): element = scale * q - offset,
 * the CPU's dequantization step for step (q4_1 / q5_1: q * d + m). */
template <int T> QD void cu_run_scale(const cu_unit *x, int r, float *scale, float *offset) {
    if constexpr (T == CU_Q4_0 || T == CU_Q5_0 || T == CU_Q8_0) {
        *scale = x->d;
        *offset = 0.0f;
    } else if constexpr (T == CU_Q4_1 || T == CU_Q5_1) {
        *scale = x->d;
        *offset = -x->dm;
    } else {
        *scale = cu_mul_rn(x->d, (float)(r ? x->sc1 : x->sc0));
        *offset = cu_mul_rn(x->dm, (float)(r ? x->m1 : x->m0));
    }
}

/* quant I (0..15) of run R as a float */
QD float cu_unit_q(const cu_unit *x, int r, int i) {
    const int w = r ? x->hi[i >> 2] : x->lo[i >> 2];
    return (float)(int8_t)(w >> (8 * (i & 3)));
}

/* element I (0..15) of run R dequantized, the CPU's float step for step:
 * scale * q - offset with the run's cu_run_scale */
QD float cu_unit_value(const cu_unit *x, int r, int i, float scale, float offset) {
    return cu_sub_rn(cu_mul_rn(scale, cu_unit_q(x, r, i)), offset);
}

#endif
