/* quant_pack.c - repacking q4_K and q6_K into interleaved 16-row blocks (the layout
 * is described in quant_pack.h) and the dispatch of the packed kernels. */
#include "backend/cpu/quant_pack.h"

#include <stdlib.h>
#include <string.h>

#include "backend/cpu/quant_blocks.h"
#include "base/cpu.h"
#include "base/dtype.h"

#ifndef LAMINA_NO_X86
void q_x16_mul_mat_avx512(uint32_t type, int64_t n, const void *packed, int n_blocks, const void *act,
                          size_t act_stride, int n_tok, float *out, int64_t ld_out);
#endif

#ifndef LAMINA_NO_X86
/* LAMINA_CPU_REPACK=0 keeps every matrix in its file layout (read once) */
static bool pack_enabled(void) {
    static int enabled = -1; /* read once; threads that race store the same value */
    int e = __atomic_load_n(&enabled, __ATOMIC_RELAXED);
    if (e < 0) {
        const char *v = getenv("LAMINA_CPU_REPACK");
        e = !(v && !strcmp(v, "0"));
        __atomic_store_n(&enabled, e, __ATOMIC_RELAXED);
    }
    return e;
}
#endif

bool q_pack_supported(uint32_t type, int64_t n_rows, int64_t n) {
#ifndef LAMINA_NO_X86
    if (!pack_enabled()) return false;
    return (type == LM_Q4_K || type == LM_Q6_K) && n_rows > 0 && n_rows % Q_PACK_ROWS == 0 && n > 0 && n % QK_K == 0 &&
           cpu_level_active() >= CPU_AVX512 && cpu_has_avx512_vnni();
#else
    (void)type, (void)n_rows, (void)n;
    return false;
#endif
}

size_t q_pack_bytes(uint32_t type, int64_t n_rows, int64_t n) {
    const size_t block = type == LM_Q6_K ? sizeof(block_q6_Kx16) : sizeof(block_q4_Kx16);
    return (size_t)(n_rows / Q_PACK_ROWS) * (size_t)(n / QK_K) * block;
}

/* element e (0..255) of a q6_K super-block, 0..63 (stored + 32) */
static int q6_K_elem(const block_q6_K *b, int e) {
    const int h = e / 128, l = e % 32, quarter = (e % 128) / 32;
    const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
    const int low = quarter == 0 ? ql[l] & 0xF : quarter == 1 ? ql[l + 32] & 0xF : quarter == 2 ? ql[l] >> 4 : ql[l + 32] >> 4;
    return low | ((qh[l] >> (2 * quarter)) & 3) << 4;
}

/* row r of a packed block o from the same super-block b of that row */
static void pack_row_q6_K(block_q6_Kx16 *o, const block_q6_K *b, int r) {
    int q[QK_K];
    for (int e = 0; e < QK_K; e++) q[e] = q6_K_elem(b, e);
    o->d[r] = b->d;
    for (int k = 0; k < 16; k++) o->sc[k][r] = b->scales[k];
    for (int g = 0; g < 8; g++) {
        const int *qg = q + 32 * g;
        for (int i = 0; i < 4; i++) {
            uint8_t h0 = 0, h1 = 0;
            for (int p = 0; p < 4; p++) {
                o->qs[g][p][4 * r + i] = (uint8_t)((qg[4 * p + i] & 0xF) | (qg[16 + 4 * p + i] & 0xF) << 4);
                h0 |= (uint8_t)((qg[4 * p + i] >> 4) << (2 * p));
                h1 |= (uint8_t)((qg[16 + 4 * p + i] >> 4) << (2 * p));
            }
            o->qh[g][0][4 * r + i] = h0;
            o->qh[g][1][4 * r + i] = h1;
        }
    }
}

static void pack_row_q4_K(block_q4_Kx16 *o, const block_q4_K *b, int r) {
    o->d[r] = b->d;
    o->dmin[r] = b->dmin;
    uint8_t scm[16];
    q_unpack_k4_scales(b->scales, scm);
    for (int g = 0; g < 8; g++) {
        o->sc[g][r] = scm[g];
        o->m[g][r] = scm[8 + g];
        /* sub-block g: the low (g even) or high nibbles of bytes 32 (g / 2) .. + 31 */
        const uint8_t *q = b->qs + 32 * (g / 2);
        const int shift = 4 * (g % 2);
        for (int p = 0; p < 4; p++)
            for (int i = 0; i < 4; i++)
                o->qs[g][p][4 * r + i] =
                    (uint8_t)(((q[4 * p + i] >> shift) & 0x0F) | ((q[16 + 4 * p + i] >> shift) & 0x0F) << 4);
    }
}

void q_pack(uint32_t type, const void *src, size_t row_bytes, int64_t n_rows, int64_t n, void *dst) {
    const int64_t nsb = n / QK_K;
    const bool q6 = type == LM_Q6_K;
    const size_t in_bytes = q6 ? sizeof(block_q6_K) : sizeof(block_q4_K);
    const size_t out_bytes = q6 ? sizeof(block_q6_Kx16) : sizeof(block_q4_Kx16);
    for (int64_t rb = 0; rb < n_rows / Q_PACK_ROWS; rb++)
        for (int64_t s = 0; s < nsb; s++) {
            void *o = (char *)dst + (size_t)(rb * nsb + s) * out_bytes;
            for (int r = 0; r < Q_PACK_ROWS; r++) {
                const void *b = (const char *)src + (size_t)(rb * Q_PACK_ROWS + r) * row_bytes + (size_t)s * in_bytes;
                if (q6) pack_row_q6_K(o, b, r);
                else pack_row_q4_K(o, b, r);
            }
        }
}

void q_packed_mul_mat(uint32_t type, int64_t n, const void *packed, int64_t r0, int n_rows, const void *act,
                      size_t act_stride, int n_tok, float *out, int64_t ld_out) {
    const char *b = (const char *)packed + q_pack_bytes(type, r0, n);
#ifndef LAMINA_NO_X86
    q_x16_mul_mat_avx512(type, n, b, n_rows / Q_PACK_ROWS, act, act_stride, n_tok, out, ld_out);
#else
    (void)b, (void)n_rows, (void)act, (void)act_stride, (void)n_tok, (void)out, (void)ld_out;
#endif
}
