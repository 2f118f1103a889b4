/* cuda_mmq.cu - y = W x for batches (9 tokens and up) on the int8 tensor
 * cores, straight from the quantized planes: the MMQ path.
 *
 * The GEMM path reads 2-byte f16 weights (a dequantized copy, or one made
 * per call); at a few dozen tokens a product is still a pass over the
 * weights, so reading them at 4.5 to 8.5 bits instead is most of the
 * gain. The activations are the q8 blocks the VEC path takes (and the
 * fused residual / gating kernels write): every integer sum is the CPU
 * dot's, as on the VEC path; only the float steps that scale them are
 * grouped differently (per block of 32 for q4_0 / q8_0, per super-block
 * of 256 for the k-quants, where the CPU and VEC round per 16 or 32), so
 * results agree with the VEC path to float rounding, not bit for bit.
 *
 * Tiling. A block of 4 warps computes ROWS = 16 WM rows x TOK = 8 NT
 * tokens. Its warps form WM row groups (an m-tile of 16 rows each) times
 * WK slices of the row: the row is walked in chunks of 256 elements (one
 * k-quant super-block, eight blocks of 32), slice k taking chunks k, k +
 * WK, ... (WK > 1 gives small matrices enough blocks to fill the GPU; the
 * slices' sums are added in slice order at the end, so the result does not
 * depend on timing). Per step the block copies WK chunks of its rows' body
 * and hdr planes and of its tokens' quants and scales to shared memory
 * with cp.async, the next steps' copies in flight during this step's
 * arithmetic (2 to 4 stages, as many as about 64 KiB of shared memory
 * holds). ldmatrix then gives each lane its fragment of
 * the weights: 16 rows x 32 bytes is two units of each row, and for the
 * 4-bit types the low nibbles of such a pair are one group of 32 (q4_K:
 * runs 0 of units 2j and 2j + 1) and the high nibbles the next, in the
 * element order the activations have, so no shuffle is needed.
 * mma.m16n8k32 (m16n8k16 for q6_K, whose scales change every 16) gives
 * the group's integer sums; the k-quants add sc x sum per super-block in
 * integers (and the min term, sum over groups of m x the activations'
 * group sum), then one float step: d dy S - dmin dy M.
 *
 * Rows and tokens past the end are not copied (their tiles hold what the
 * shared memory held: integer products of any bits, and floats that may be
 * anything, in sums that are never written). Copying the last token again
 * instead made a 9-token call slower than a 16-token one: every block
 * asked the same L2 lines for it. */
#include <stdio.h>

#include "backend/cuda/cuda_internal.cuh"

#define MMQ_K 256     /* elements of a row per chunk */
#define MMQ_WARPS 4   /* warps per block */
#define MMQ_PAD 16    /* bytes after each row of a shared tile, so ldmatrix's 8 rows hit distinct banks */
#define MMQ_XROW (MMQ_K + MMQ_PAD)

/* bytes of the body and hdr planes per row and chunk, and the hdr's copy unit */
template <int T> struct mmq_type {
    static constexpr int per = MMQ_K / cu_traits<T>::qk; /* blocks per chunk */
    static constexpr int body = cu_traits<T>::body * per;
    static constexpr int hdr = cu_traits<T>::hdr * per;
    static constexpr int hdr_piece = hdr % 16 == 0 ? 16 : 4;
    static constexpr int hdr_row = (hdr + 15) / 16 * 16; /* shared stride */
};

/* the shared memory of one stage */
template <int T, int WM, int WK, int NT> struct mmq_stage {
    static constexpr int rows = 16 * WM, tok = 8 * NT;
    static constexpr int body_row = mmq_type<T>::body + MMQ_PAD;
    static constexpr int wb = WK * rows * body_row;            /* body tiles */
    static constexpr int wh = WK * rows * mmq_type<T>::hdr_row; /* hdr tiles */
    static constexpr int xq = WK * tok * MMQ_XROW;             /* token quants */
    static constexpr int xd = WK * tok * 8 * 8;                /* token scales: 8 float2 per chunk */
    static constexpr int bytes = wb + wh + xq + xd;
    /* stages in flight: as many as about 64 KiB holds, 2 to 4 */
    static constexpr int stages = 65536 / bytes < 2 ? 2 : 65536 / bytes > 4 ? 4 : 65536 / bytes;
};

__device__ __forceinline__ uint32_t smem_addr(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void cp_async16(void *dst, const void *src) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_addr(dst)), "l"(src));
}

__device__ __forceinline__ void cp_async4(void *dst, const void *src) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(smem_addr(dst)), "l"(src));
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

/* four 8x8 matrices of b16 (here: 8 rows x 16 bytes); lane l gives the address of row l % 8 of matrix l / 8 */
__device__ __forceinline__ void ldmatrix_x4(const void *p, uint32_t r[4]) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}

/* C = A (16 x 32, row) B (32 x 8, col), int8 in, int32 out */
__device__ __forceinline__ void mma_k32(const uint32_t a[4], uint32_t b0, uint32_t b1, int c[4]) {
    asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                 "{%10, %11, %12, %13};\n"
                 : "=r"(c[0]), "=r"(c[1]), "=r"(c[2]), "=r"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1), "r"(0), "r"(0), "r"(0), "r"(0));
}

/* C = A (16 x 16) B (16 x 8) */
__device__ __forceinline__ void mma_k16(uint32_t a0, uint32_t a1, uint32_t b0, int c[4]) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5}, {%6}, "
                 "{%7, %8, %9, %10};\n"
                 : "=r"(c[0]), "=r"(c[1]), "=r"(c[2]), "=r"(c[3])
                 : "r"(a0), "r"(a1), "r"(b0), "r"(0), "r"(0), "r"(0), "r"(0));
}

/* The B fragments of 16 tokens (two n-tiles) at element E of a chunk: b[0], b[1]
 * k 0-15 and 16-31 of n-tile 0, b[2], b[3] of n-tile 1 (for k16 products,
 * b[0] / b[2] are the run at E and b[1] / b[3] the run at E + 16). */
__device__ __forceinline__ void load_b(const int8_t *xq, int e, uint32_t b[4]) {
    const int l = threadIdx.x & 31;
    ldmatrix_x4(xq + ((l & 7) + 8 * (l >> 4)) * MMQ_XROW + e + 16 * ((l >> 3) & 1), b);
}

/* The weights of one m-tile at byte OFF of its rows' body tiles: a[0] row g
 * and a[1] row g + 8, bytes OFF + 4t ..; a[2], a[3] the same at OFF + 16
 * (g = lane / 4, t = lane % 4). */
__device__ __forceinline__ void load_a(const uint8_t *wb, int body_row, int off, uint32_t a[4]) {
    const int l = threadIdx.x & 31;
    ldmatrix_x4(wb + ((l & 7) + 8 * ((l >> 3) & 1)) * body_row + off + 16 * (l >> 4), a);
}

/* One chunk of one m-tile for NT n-tiles: ACC (row g / g + 8, tokens 2t, 2t + 1
 * of each n-tile, mma's C order) += the chunk's dot. WB, WH: the m-tile's
 * first row in the body / hdr tiles; XQ, XD: the chunk's token tiles. */
template <int T, int NT>
__device__ __forceinline__ void mmq_chunk(const uint8_t *wb, const uint8_t *wh, const int8_t *xq, const float2 *xd,
                                          float acc[NT][4]) {
    constexpr int BR = mmq_type<T>::body + MMQ_PAD, HR = mmq_type<T>::hdr_row;
    const int l = threadIdx.x & 31, g = l >> 2, t = l & 3;
    const uint8_t *h0 = wh + g * HR, *h1 = wh + (g + 8) * HR; /* the lane's two rows' hdr */
    if constexpr (T == CU_Q8_0 || T == CU_Q4_0) {
#pragma unroll
        for (int step = 0; step < (T == CU_Q8_0 ? 8 : 4); step++) {
            uint32_t r[4];
            load_a(wb, BR, 32 * step, r);
#pragma unroll
            for (int half = 0; half < (T == CU_Q8_0 ? 1 : 2); half++) {
                const int blk = T == CU_Q8_0 ? step : 2 * step + half;
                uint32_t a[4];
                if constexpr (T == CU_Q8_0) {
                    a[0] = r[0], a[1] = r[1], a[2] = r[2], a[3] = r[3];
                } else { /* block 2 step: unit 2 step (r0, r1); its runs are the low and high nibbles */
                    const uint32_t u0 = r[2 * half], u1 = r[2 * half + 1];
                    a[0] = (uint32_t)cu_sub8(u0 & CU_M4);
                    a[1] = (uint32_t)cu_sub8(u1 & CU_M4);
                    a[2] = (uint32_t)cu_sub8((u0 >> 4) & CU_M4);
                    a[3] = (uint32_t)cu_sub8((u1 >> 4) & CU_M4);
                }
                const float d0 = cu_h2f(*reinterpret_cast<const uint16_t *>(h0 + 2 * blk));
                const float d1 = cu_h2f(*reinterpret_cast<const uint16_t *>(h1 + 2 * blk));
#pragma unroll
                for (int p = 0; p < NT / 2; p++) {
                    uint32_t b[4];
                    load_b(xq + 16 * p * MMQ_XROW, 32 * blk, b);
#pragma unroll
                    for (int n = 0; n < 2; n++) {
                        int c[4];
                        mma_k32(a, b[2 * n], b[2 * n + 1], c);
                        const int tok = 8 * (2 * p + n) + 2 * t;
                        const float y0 = xd[tok * 8 + blk].x, y1 = xd[(tok + 1) * 8 + blk].x;
                        float *o = acc[2 * p + n];
                        o[0] = fmaf((float)c[0], d0 * y0, o[0]);
                        o[1] = fmaf((float)c[1], d0 * y1, o[1]);
                        o[2] = fmaf((float)c[2], d1 * y0, o[2]);
                        o[3] = fmaf((float)c[3], d1 * y1, o[3]);
                    }
                }
            }
        }
    } else if constexpr (T == CU_Q4_K || T == CU_Q5_K) {
        /* the rows' 8 scales and 8 mins as bytes, four to a word */
        uint32_t scw[2][2], mnw[2][2]; /* [row g, g + 8][groups 0-3, 4-7] */
        float dd[2], dm[2];
#pragma unroll
        for (int row = 0; row < 2; row++) {
            const int4 hv = *reinterpret_cast<const int4 *>(row ? h1 : h0);
            cu_k4_unpack((uint32_t)hv.y, (uint32_t)hv.z, (uint32_t)hv.w, scw[row], mnw[row]);
            dd[row] = cu_h2f((uint16_t)((uint32_t)hv.x & 0xFFFF));
            dm[row] = cu_h2f((uint16_t)((uint32_t)hv.x >> 16));
        }
        int S[NT][4]; /* sum over groups of sc x the group's integer dot */
#pragma unroll
        for (int n = 0; n < NT; n++)
#pragma unroll
            for (int i = 0; i < 4; i++) S[n][i] = 0;
#pragma unroll(T == CU_Q5_K ? 1 : 4) /* q5_K's high bits spill unrolled */
        for (int j = 0; j < 4; j++) { /* units 2j, 2j + 1: groups 2j (low nibbles) and 2j + 1 (high) */
            uint32_t r[4];
            load_a(wb, BR, 32 * j, r);
            uint32_t a[2][4]; /* [group 2j, 2j + 1]: r[k] is row g + 8 (k & 1) of unit 2j + (k >> 1) */
#pragma unroll
            for (int k = 0; k < 4; k++) {
                a[0][k] = r[k] & CU_M4;
                a[1][k] = (r[k] >> 4) & CU_M4;
                if constexpr (T == CU_Q5_K) {
                    const uint32_t qh =
                        *reinterpret_cast<const uint32_t *>((k & 1 ? h1 : h0) + 16 + 4 * (2 * j + (k >> 1)));
                    a[0][k] |= ((qh >> t) & 0x01010101u) << 4;
                    a[1][k] |= ((qh >> (4 + t)) & 0x01010101u) << 4;
                }
            }
#pragma unroll
            for (int q = 0; q < 2; q++) {
                const int grp = 2 * j + q;
                /* one 64-bit shift, not scw[.][grp >> 2]: q5_K's loop is not
                 * unrolled, and a run-time index would put scw in local memory */
                const int sc0 = (int)((((uint64_t)scw[0][1] << 32 | scw[0][0]) >> (8 * grp)) & 0xFF);
                const int sc1 = (int)((((uint64_t)scw[1][1] << 32 | scw[1][0]) >> (8 * grp)) & 0xFF);
#pragma unroll
                for (int p = 0; p < NT / 2; p++) {
                    uint32_t b[4];
                    load_b(xq + 16 * p * MMQ_XROW, 32 * grp, b);
#pragma unroll
                    for (int n = 0; n < 2; n++) {
                        int c[4];
                        mma_k32(a[q], b[2 * n], b[2 * n + 1], c);
                        int *o = S[2 * p + n];
                        o[0] += sc0 * c[0];
                        o[1] += sc0 * c[1];
                        o[2] += sc1 * c[2];
                        o[3] += sc1 * c[3];
                    }
                }
            }
        }
        /* the min term: M = sum over groups of m x the token's group sum */
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
#pragma unroll
            for (int e = 0; e < 2; e++) { /* tokens 2t, 2t + 1 */
                const float4 *ds = reinterpret_cast<const float4 *>(xd + (8 * nt + 2 * t + e) * 8);
                int M0 = 0, M1 = 0;
                float yd = 0.0f;
#pragma unroll
                for (int h = 0; h < 4; h++) { /* groups 2h, 2h + 1 */
                    const float4 v = ds[h];
                    if (h == 0) yd = v.x; /* q8_K: the super-block's d */
#pragma unroll
                    for (int q = 0; q < 2; q++) {
                        const int grp = 2 * h + q, bs = (int)(q ? v.w : v.y), sh = 8 * (grp & 3);
                        M0 += (int)((mnw[0][grp >> 2] >> sh) & 0xFF) * bs;
                        M1 += (int)((mnw[1][grp >> 2] >> sh) & 0xFF) * bs;
                    }
                }
                acc[nt][e] += (float)S[nt][e] * (dd[0] * yd) - (float)M0 * (dm[0] * yd);
                acc[nt][2 + e] += (float)S[nt][2 + e] * (dd[1] * yd) - (float)M1 * (dm[1] * yd);
            }
        }
    } else if constexpr (T == CU_Q6_K) {
        int S[NT][4];
#pragma unroll
        for (int n = 0; n < NT; n++)
#pragma unroll
            for (int i = 0; i < 4; i++) S[n][i] = 0;
        uint32_t scq[2][4]; /* the rows' 16 scales (int8), four to a word */
#pragma unroll
        for (int row = 0; row < 2; row++)
#pragma unroll
            for (int k = 0; k < 4; k++) scq[row][k] = *reinterpret_cast<const uint32_t *>((row ? h1 : h0) + 4 + 4 * k);
#pragma unroll 1
        for (int sp = 0; sp < 4; sp++) { /* units s = 2 sp, 2 sp + 1 */
            uint32_t r[4];
            load_a(wb, BR, 32 * sp, r);
            const int half = sp >> 1, c0 = (2 * sp) & 3;
            /* quants: [unit u][run][row] */
            uint32_t qa[2][2][2];
            int sc[2][2][2];
#pragma unroll
            for (int u = 0; u < 2; u++) {
                const int s = 2 * sp + u;
#pragma unroll
                for (int row = 0; row < 2; row++) {
                    const uint8_t *h = row ? h1 : h0;
                    /* 4-byte aligned only (the hdr is 84 bytes a super-block) */
                    const uint32_t qlo = *reinterpret_cast<const uint32_t *>(h + 20 + 8 * s);
                    const uint32_t qhi = *reinterpret_cast<const uint32_t *>(h + 24 + 8 * s);
                    const uint32_t v = r[2 * u + row];
                    qa[u][0][row] = (uint32_t)cu_sub32((v & CU_M4) | (((qlo >> (2 * t)) & 0x03030303u) << 4));
                    qa[u][1][row] = (uint32_t)cu_sub32(((v >> 4) & CU_M4) | (((qhi >> (2 * t)) & 0x03030303u) << 4));
                    /* scales[8 half + c] and scales[8 half + 4 + c], c = c0 + u */
                    const uint32_t w0 = half ? scq[row][2] : scq[row][0], w1 = half ? scq[row][3] : scq[row][1];
                    sc[u][0][row] = (int)(int8_t)(w0 >> (8 * (c0 + u)));
                    sc[u][1][row] = (int)(int8_t)(w1 >> (8 * (c0 + u)));
                }
            }
#pragma unroll
            for (int p = 0; p < NT / 2; p++) {
#pragma unroll
                for (int run = 0; run < 2; run++) { /* run 0 of both units at e, e + 16; run 1 at e + 64 */
                    uint32_t b[4];
                    load_b(xq + 16 * p * MMQ_XROW, 128 * half + 16 * c0 + 64 * run, b);
#pragma unroll
                    for (int u = 0; u < 2; u++)
#pragma unroll
                        for (int n = 0; n < 2; n++) {
                            int c[4];
                            mma_k16(qa[u][run][0], qa[u][run][1], b[2 * n + u], c);
                            const int nt = 2 * p + n;
                            S[nt][0] += sc[u][run][0] * c[0];
                            S[nt][1] += sc[u][run][0] * c[1];
                            S[nt][2] += sc[u][run][1] * c[2];
                            S[nt][3] += sc[u][run][1] * c[3];
                        }
                }
            }
        }
        const float d0 = cu_h2f(*reinterpret_cast<const uint16_t *>(h0));
        const float d1 = cu_h2f(*reinterpret_cast<const uint16_t *>(h1));
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            const int tok = 8 * nt + 2 * t;
            const float y0 = xd[tok * 8].x, y1 = xd[(tok + 1) * 8].x;
            float *o = acc[nt];
            o[0] += (float)S[nt][0] * (d0 * y0);
            o[1] += (float)S[nt][1] * (d0 * y1);
            o[2] += (float)S[nt][2] * (d1 * y0);
            o[3] += (float)S[nt][3] * (d1 * y1);
        }
    }
}

template <int T, int WM, int WK, int NT>
__global__ void __launch_bounds__(MMQ_WARPS * 32) mmq_kernel(const cu_mat w, const int8_t *__restrict__ aq,
                                                             const float2 *__restrict__ ads, int n_tok, int n_tt,
                                                             float *__restrict__ y) {
    cu_pdl_wait();
    static_assert(WM * WK == MMQ_WARPS, "the warps are WM row groups x WK slices");
    static_assert(NT % 2 == 0, "n-tiles come in pairs (one ldmatrix.x4 of tokens)");
    using L = mmq_type<T>;
    using St = mmq_stage<T, WM, WK, NT>;
    constexpr int ROWS = St::rows, TOK = St::tok;
    extern __shared__ __align__(16) uint8_t smem[];
    const int rt = blockIdx.x / n_tt, tt = blockIdx.x % n_tt;
    const int64_t row0 = (int64_t)rt * ROWS;
    const int tok0 = tt * TOK;
    const int n_chunks = (int)(w.cols / MMQ_K), n_steps = (n_chunks + WK - 1) / WK;
    const int64_t body_row = w.blocks * cu_traits<T>::body, hdr_row = w.blocks * cu_traits<T>::hdr;
    const int64_t act_blocks = w.cols / 32;

    /* Each thread copies the same pieces of every step (a piece: 16 bytes,
     * 4 for a q6_K hdr): its sources, less the chunk's offset, and
     * destinations are worked out once. */
    constexpr int PB = L::body / 16, PH = L::hdr / L::hdr_piece, THREADS = MMQ_WARPS * 32;
    constexpr int NB = WK * ROWS * PB, NH = WK * ROWS * PH, NX = WK * TOK * 20; /* 16 of quants, 4 of scales a token */
    constexpr int TB = (NB + THREADS - 1) / THREADS, TH = (NH + THREADS - 1) / THREADS, TX = (NX + THREADS - 1) / THREADS;
    const uint8_t *src_b[TB], *src_h[TH];
    int k_b[TB], k_h[TH], k_x[TX], off_x[TX]; /* off_x: bytes from aq (quants) or ads (scales, ds_x) */
    bool ds_x[TX];
#pragma unroll
    for (int j = 0; j < TB; j++) {
        const int i = threadIdx.x + THREADS * j, k = i / (ROWS * PB), r = (i / PB) % ROWS, p = i % PB;
        const int64_t row = min(row0 + r, w.rows - 1);
        k_b[j] = i < NB && row0 + r < w.rows ? k : WK; /* WK: no piece (rows past the end are not copied) */
        src_b[j] = w.body + row * body_row + 16 * p + (int64_t)k * L::body;
    }
#pragma unroll
    for (int j = 0; j < TH; j++) {
        const int i = threadIdx.x + THREADS * j, k = i / (ROWS * PH), r = (i / PH) % ROWS, p = i % PH;
        const int64_t row = min(row0 + r, w.rows - 1);
        k_h[j] = i < NH && row0 + r < w.rows ? k : WK;
        src_h[j] = w.hdr + row * hdr_row + L::hdr_piece * p + (int64_t)k * L::hdr;
    }
#pragma unroll
    for (int j = 0; j < TX; j++) { /* the activations of a batch are under 2 GiB (bounded by the caller) */
        const int i = threadIdx.x + THREADS * j, k = i / (TOK * 20), tk = (i / 20) % TOK, p = i % 20;
        const int tok = min(tok0 + tk, n_tok - 1);
        k_x[j] = i < NX && tok0 + tk < n_tok ? k : WK; /* nor tokens past the end */
        ds_x[j] = p >= 16;
        off_x[j] = p < 16 ? tok * (int)w.cols + k * MMQ_K + 16 * p : (tok * (int)act_blocks + k * 8 + 2 * (p - 16)) * 8;
    }
    /* step S's chunks (S WK + k for slice k) into stage BUF */
    auto copy_step = [&](int s, int buf) {
        uint8_t *base = smem + buf * St::bytes;
#pragma unroll
        for (int j = 0; j < TB; j++) {
            const int i = threadIdx.x + THREADS * j, r = (i / PB) % ROWS, p = i % PB;
            if (k_b[j] < WK && s * WK + k_b[j] < n_chunks)
                cp_async16(base + (k_b[j] * ROWS + r) * St::body_row + 16 * p, src_b[j] + (int64_t)s * WK * L::body);
        }
#pragma unroll
        for (int j = 0; j < TH; j++) {
            const int i = threadIdx.x + THREADS * j, r = (i / PH) % ROWS, p = i % PH;
            if (k_h[j] < WK && s * WK + k_h[j] < n_chunks) {
                uint8_t *dst = base + St::wb + (k_h[j] * ROWS + r) * L::hdr_row + L::hdr_piece * p;
                const uint8_t *src = src_h[j] + (int64_t)s * WK * L::hdr;
                if constexpr (L::hdr_piece == 16) cp_async16(dst, src);
                else cp_async4(dst, src);
            }
        }
#pragma unroll
        for (int j = 0; j < TX; j++) {
            const int i = threadIdx.x + THREADS * j, tk = (i / 20) % TOK, p = i % 20;
            if (k_x[j] < WK && s * WK + k_x[j] < n_chunks) {
                const int slot = k_x[j] * TOK + tk;
                if (ds_x[j])
                    cp_async16(base + St::wb + St::wh + St::xq + (slot * 8 + 2 * (p - 16)) * 8,
                               reinterpret_cast<const uint8_t *>(ads) + off_x[j] + s * WK * 64);
                else
                    cp_async16(base + St::wb + St::wh + slot * MMQ_XROW + 16 * p, aq + off_x[j] + s * WK * MMQ_K);
            }
        }
    };

    const int warp = threadIdx.x / 32, wm = warp % WM, wk = warp / WM;
    float acc[NT][4];
#pragma unroll
    for (int n = 0; n < NT; n++)
#pragma unroll
        for (int i = 0; i < 4; i++) acc[n][i] = 0.0f;

    /* STAGES - 1 steps in flight while one is computed; every iteration
     * commits one group (empty past the end), so waiting for all but the
     * last STAGES - 2 groups means step S has landed */
    constexpr int STAGES = St::stages;
#pragma unroll
    for (int p = 0; p < STAGES - 1; p++) {
        if (p < n_steps) copy_step(p, p);
        cp_async_commit();
    }
    for (int s = 0; s < n_steps; s++) {
        cp_async_wait<STAGES - 2>();
        __syncthreads(); /* step S is in; every warp is done with step S - 1, whose stage the next copy takes */
        if (s + STAGES - 1 < n_steps) copy_step(s + STAGES - 1, (s + STAGES - 1) % STAGES);
        cp_async_commit();
        if (s * WK + wk < n_chunks) {
            const uint8_t *base = smem + (s % STAGES) * St::bytes;
            const int8_t *xq = reinterpret_cast<const int8_t *>(base + St::wb + St::wh) + wk * TOK * MMQ_XROW;
            const float2 *xd = reinterpret_cast<const float2 *>(base + St::wb + St::wh + St::xq) + wk * TOK * 8;
            const int r = wk * ROWS + 16 * wm; /* the warp's m-tile in the slice's tiles */
            mmq_chunk<T, NT>(base + r * St::body_row, base + St::wb + r * L::hdr_row, xq, xd, acc);
        }
    }
    cp_async_wait<0>();
    __syncthreads(); /* the stages are free for the slices' sums */

    /* the slices' sums, added in slice order through shared memory */
    float *red = reinterpret_cast<float *>(smem);
    const int l = threadIdx.x & 31;
    if constexpr (WK > 1) {
        if (wk > 0) {
#pragma unroll
            for (int n = 0; n < NT; n++)
#pragma unroll
                for (int i = 0; i < 4; i++) red[(((wk - 1) * WM + wm) * NT * 4 + n * 4 + i) * 32 + l] = acc[n][i];
        }
        __syncthreads();
        if (wk > 0) return;
#pragma unroll
        for (int k = 1; k < WK; k++)
#pragma unroll
            for (int n = 0; n < NT; n++)
#pragma unroll
                for (int i = 0; i < 4; i++) acc[n][i] += red[(((k - 1) * WM + wm) * NT * 4 + n * 4 + i) * 32 + l];
    }
    const int g = l >> 2, t = l & 3;
#pragma unroll
    for (int n = 0; n < NT; n++)
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int64_t row = row0 + 16 * wm + g + 8 * (i >> 1);
            const int tok = tok0 + 8 * n + 2 * t + (i & 1);
            if (row < w.rows && tok < n_tok) y[(int64_t)tok * w.rows + row] = acc[n][i];
        }
}

typedef void (*mmq_fn)(const cu_mat, const int8_t *, const float2 *, int, int, float *);

/* a kernel with the bytes of shared memory it takes (two stages, or the slices' sums) */
typedef struct mmq_kernel_ref {
    mmq_fn fn;
    int smem;
    int rows, tokens; /* per block */
    unsigned long long *opted; /* devices on which the kernel may take more than 48 KiB (bit per device) */
} mmq_kernel_ref;

template <int T, int WM, int WK, int NT> static mmq_kernel_ref mmq_ref() {
    using St = mmq_stage<T, WM, WK, NT>;
    const int red = (WK - 1) * WM * NT * 4 * 32 * 4;
    static unsigned long long opted = 0;
    const int stages = St::stages * St::bytes;
    mmq_kernel_ref k = {mmq_kernel<T, WM, WK, NT>, stages > red ? stages : red, St::rows, St::tok,
                        &opted};
    return k;
}

/* the row tilings (rows per block x slices): (WM, WK) = (4, 1), (2, 2), (1, 4) */
enum { MMQ_SHAPE_64 = 0, MMQ_SHAPE_32x2 = 1, MMQ_SHAPE_16x4 = 2, MMQ_SHAPES = 3 };

template <int T, int NT> static mmq_kernel_ref mmq_pick_shape(int shape) {
    switch (shape) {
    case MMQ_SHAPE_64: return mmq_ref<T, 4, 1, NT>();
    case MMQ_SHAPE_32x2: return mmq_ref<T, 2, 2, NT>();
    default: return NT == 2 ? mmq_ref<T, 1, 4, 2>() : mmq_ref<T, 2, 2, NT>(); /* 4 slices of 32 tokens spill */
    }
}

template <int T> static mmq_kernel_ref mmq_pick(int shape, int nt) {
    return nt <= 2 ? mmq_pick_shape<T, 2>(shape) : mmq_pick_shape<T, 4>(shape);
}

static bool mmq_type_ok(int type_index) {
    return type_index == CU_Q4_0 || type_index == CU_Q8_0 || type_index == CU_Q4_K || type_index == CU_Q5_K ||
           type_index == CU_Q6_K;
}

extern "C" bool lm_cuda_mmq_supported(const lm_cuda_matrix *w) {
    return mmq_type_ok(w->type_index) && w->view.cols % MMQ_K == 0;
}

extern "C" int lm_cuda_set_mmq_shape(lm_cuda_ctx *ctx, int shape, lm_error *err) {
    if (shape < 0 || shape > MMQ_SHAPES) {
        lm_error_set(err, "CUDA: MMQ shape must be 0 (built-in) to %d (got %d)", MMQ_SHAPES, shape);
        return -1;
    }
    ctx->mmq_shape = shape;
    return 0;
}

/* Measured on an H100 (test_cuda_quant --bench-mmq, BENCHMARKS.md): blocks
 * of 64 rows once they give 1.5 blocks an SM (they load each token tile
 * least often); below that, at up to 16 tokens, rows split in 4 slices
 * when they are long (4096 columns and more) or 2-slice blocks would not
 * reach half the SMs (2048 rows and fewer), else in 2. */
static int mmq_shape_for(const lm_cuda_ctx *ctx, const cu_mat *w, int nt, int token_tiles) {
    if (ctx->mmq_shape) return ctx->mmq_shape - 1;
    if ((w->rows + 63) / 64 * token_tiles * 2 >= 3 * (int64_t)ctx->sm_count) return MMQ_SHAPE_64;
    const bool few = (w->rows + 31) / 32 * token_tiles * 2 <= (int64_t)ctx->sm_count;
    return nt == 2 && (w->cols >= 4096 || few) ? MMQ_SHAPE_16x4 : MMQ_SHAPE_32x2;
}

int cu_mmq_check(const lm_cuda_matrix *w, lm_error *err) {
    if (lm_cuda_mmq_supported(w)) return 0;
    lm_error_set(err, "CUDA: no MMQ kernel for %s with %lld columns", w->layout->name, (long long)w->view.cols);
    return -1;
}

int cu_mmq_launch(lm_cuda_ctx *ctx, const lm_cuda_matrix *w, int n_tok, float *y, lm_error *err) {
    if (cu_mmq_check(w, err)) return -1;
    /* token tiles of 16 or 32: wider ones hold too many registers (measured:
     * 64-token tiles ran at a quarter of the speed of two 32-token ones) */
    const int nt = n_tok <= 16 ? 2 : 4;
    const int token_tiles = (n_tok + 8 * nt - 1) / (8 * nt);
    const int shape = mmq_shape_for(ctx, &w->view, nt, token_tiles);
    mmq_kernel_ref k;
    switch (w->type_index) {
    case CU_Q4_0: k = mmq_pick<CU_Q4_0>(shape, nt); break;
    case CU_Q8_0: k = mmq_pick<CU_Q8_0>(shape, nt); break;
    case CU_Q4_K: k = mmq_pick<CU_Q4_K>(shape, nt); break;
    case CU_Q5_K: k = mmq_pick<CU_Q5_K>(shape, nt); break;
    default: k = mmq_pick<CU_Q6_K>(shape, nt); break;
    }
    const int64_t row_tiles = (w->view.rows + k.rows - 1) / k.rows;
    const int tiles = (n_tok + k.tokens - 1) / k.tokens;
    if (row_tiles * tiles > INT32_MAX) {
        lm_error_set(err, "CUDA: a product of %d tokens with %lld rows is too large for one launch", n_tok,
                     (long long)w->view.rows);
        return -1;
    }
    if (k.smem > 48 * 1024 && !(*k.opted & (1ull << (ctx->device & 63)))) { /* once per kernel and device */
        CU_TRY(cudaFuncSetAttribute(k.fn, cudaFuncAttributeMaxDynamicSharedMemorySize, k.smem));
        *k.opted |= 1ull << (ctx->device & 63);
    }
    CU_LAUNCH("mmq_kernel", k.fn, (unsigned)(row_tiles * tiles), MMQ_WARPS * 32, k.smem, w->view,
        (const int8_t *)ctx->act_q.ptr, (const float2 *)ctx->act_ds.ptr, n_tok, tiles, y);
    return 0;
}
