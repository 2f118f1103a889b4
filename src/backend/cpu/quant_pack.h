/* quant_pack.h - weights repacked at load for the CPU's batched kernels.
 *
 * A q4_K matrix is stored row after row, and its kernel (quant_k_*.c)
 * unpacks each super-block of a row once per tile of tokens: the work per
 * product grows with the unpacking and with vpmaddubsw-style pair sums.
 * Repacked, 16 rows are interleaved so that one 64-byte vector holds four
 * consecutive quants of each of the 16 rows: one vpdpbusd against four
 * activation bytes broadcast from memory adds 64 products into 16 per-row
 * sums, no shuffle, no horizontal sum at the end (a lane is a row). This is
 * the layout llama.cpp's CPU "repack" buffers use for the same reason.
 *
 * Layout, per block of Q_PACK_ROWS rows and per super-block (256 elements)
 * of them; q4_K (block_q4_Kx16, 2368 bytes for 16 x 144 bytes):
 *   d[16], dmin[16]     the rows' fp16 scales, as in the file
 *   sc[8][16], m[8][16] sub-block g's 6-bit scale and min of each row
 *   qs[8][4][64]        sub-block g (32 elements), step p: row r's bytes
 *                       4r..4r+3 hold elements 4p + b (low nibble) and
 *                       16 + 4p + b (high) of its sub-block, b = 0..3
 * q6_K (block_q6_Kx16, 3360 bytes, as 16 x 210):
 *   d[16]; sc[16][16]   scale group k's (16 elements) int8 scale of each row
 *   qs[8][4][64]        the low 4 bits of the quants, laid out as q4_K's
 *   qh[8][h][64]        their high 2 bits: row r's byte 4r + b holds in bits
 *                       2p, 2p + 1 those of element 16 h + 4p + b
 * A row of the result is computed by one fixed sequence of float steps per
 * super-block (quant_pack_avx512.c), so every token's result is the same
 * whatever the batch around it; the packed kernel is the only one that
 * touches a packed matrix, decode included. */
#ifndef LAMINA_BACKEND_CPU_QUANT_PACK_H
#define LAMINA_BACKEND_CPU_QUANT_PACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define Q_PACK_ROWS 16

/* whether a (n_rows, n) matrix of TYPE (q4_K, q6_K) has a packed kernel at the active
 * level (LAMINA_CPU_LEVEL included) */
bool q_pack_supported(uint32_t type, int64_t n_rows, int64_t n);
/* bytes of the packed copy */
size_t q_pack_bytes(uint32_t type, int64_t n_rows, int64_t n);
/* src: n_rows rows of row_bytes; dst: q_pack_bytes, 64-byte aligned */
void q_pack(uint32_t type, const void *src, size_t row_bytes, int64_t n_rows, int64_t n, void *dst);
/* out[t * ld_out + r - r0] = row r of the packed matrix times activation row
 * t (q8_K, act_stride bytes apart), for r in [r0, r0 + n_rows), t < n_tok;
 * r0 and n_rows multiples of Q_PACK_ROWS */
void q_packed_mul_mat(uint32_t type, int64_t n, const void *packed, int64_t r0, int n_rows, const void *act,
                      size_t act_stride, int n_tok, float *out, int64_t ld_out);

#endif
