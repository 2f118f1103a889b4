/* quant_k.c - scalar reference kernels of the k-quants (super-blocks of 256):
 * q2_K, q3_K, q4_K, q5_K, q6_K (weights) and q8_K (their activation type).
 *
 * Dequantization is bit-exact with ggml's dequantize_row_*; q8_K
 * quantization with quantize_row_q8_K_ref. The dots compute, per super-block,
 * the exact integer sum of scale * (q . q8) over the sub-blocks, then apply
 * the float super-block scales, as ggml_vec_dot_*_q8_K_generic. */
#include <math.h>

#include "backend/cpu/quant_blocks.h"
#include "backend/cpu/quant_impl.h"

/* round half to even for |x| < 2^22 (ggml's nearest_int) */
static inline int nearest_int(float x) {
    float v = x + 12582912.f;
    int32_t i;
    memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
}

/* element 32 * g + l (g < 8 a group of 32) of the 2-bit fields shared by
 * q2_K and q3_K: byte l (+32 for the second 128) at shift 2 * (g % 4) */
static inline int q2_field(const uint8_t *qs, int g, int l) {
    return (qs[32 * (g / 4) + l] >> (2 * (g % 4))) & 3;
}

/* element 32 * g + l of q4_K's 4-bit fields: group pairs share 32 bytes */
static inline int q4_field(const uint8_t *qs, int g, int l) {
    const uint8_t b = qs[32 * (g / 2) + l];
    return g % 2 ? b >> 4 : b & 0x0F;
}

/* element 32 * g + l of q6_K (0..63): low nibbles of ql, 2 high bits of qh */
static inline int q6_field(const uint8_t *ql, const uint8_t *qh, int g, int l) {
    const int half = g / 4, k = g % 4; /* k: 0,1 low nibbles of ql[0..63]; 2,3 high */
    const uint8_t b = ql[64 * half + 32 * (k % 2) + l];
    const int lo = k < 2 ? b & 0x0F : b >> 4;
    return lo | (((qh[32 * half + l] >> (2 * k)) & 3) << 4);
}

/* ---- dequantization ---- */

void q2_K_dequant_ref(const void *src, float *dst, int64_t n) {
    const block_q2_K *x = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = lm_fp16_to_fp32(x[i].d);
        const float min = lm_fp16_to_fp32(x[i].dmin);
        for (int s = 0; s < QK_K / 16; s++, dst += 16) {
            const uint8_t sc = x[i].scales[s];
            const float dl = d * (sc & 0xF), ml = min * (sc >> 4);
            for (int l = 0; l < 16; l++) dst[l] = dl * q2_field(x[i].qs, s / 2, 16 * (s % 2) + l) - ml;
        }
    }
}

void q3_K_dequant_ref(const void *src, float *dst, int64_t n) {
    const block_q3_K *x = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d_all = lm_fp16_to_fp32(x[i].d);
        uint8_t scales[16];
        q_unpack_q3k_scales(x[i].scales, scales);
        for (int s = 0; s < QK_K / 16; s++, dst += 16) {
            const int g = s / 2;
            const float dl = d_all * (scales[s] - 32);
            for (int l = 16 * (s % 2); l < 16 * (s % 2) + 16; l++) {
                const int hbit = (x[i].hmask[l] >> g) & 1;
                dst[l % 16] = dl * (q2_field(x[i].qs, g, l) - (hbit ? 0 : 4));
            }
        }
    }
}

void q4_K_dequant_ref(const void *src, float *dst, int64_t n) {
    const block_q4_K *x = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = lm_fp16_to_fp32(x[i].d);
        const float min = lm_fp16_to_fp32(x[i].dmin);
        uint8_t sm[16];
        q_unpack_k4_scales(x[i].scales, sm);
        for (int g = 0; g < 8; g++, dst += 32) {
            const float dl = d * sm[g], ml = min * sm[8 + g];
            for (int l = 0; l < 32; l++) dst[l] = dl * q4_field(x[i].qs, g, l) - ml;
        }
    }
}

void q5_K_dequant_ref(const void *src, float *dst, int64_t n) {
    const block_q5_K *x = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = lm_fp16_to_fp32(x[i].d);
        const float min = lm_fp16_to_fp32(x[i].dmin);
        uint8_t sm[16];
        q_unpack_k4_scales(x[i].scales, sm);
        for (int g = 0; g < 8; g++, dst += 32) {
            const float dl = d * sm[g], ml = min * sm[8 + g];
            for (int l = 0; l < 32; l++) {
                const int q = q4_field(x[i].qs, g, l) + (((x[i].qh[l] >> g) & 1) << 4);
                dst[l] = dl * q - ml;
            }
        }
    }
}

void q6_K_dequant_ref(const void *src, float *dst, int64_t n) {
    const block_q6_K *x = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = lm_fp16_to_fp32(x[i].d);
        for (int g = 0; g < 8; g++, dst += 32) {
            for (int l = 0; l < 32; l++) {
                const int q = q6_field(x[i].ql, x[i].qh, g, l) - 32;
                dst[l] = d * x[i].scales[2 * g + l / 16] * q;
            }
        }
    }
}

/* ---- q8_K activations ---- */

void q8_K_quantize_ref(const float *src, void *dst, int64_t n) {
    block_q8_K *y = dst;
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK_K; j++) {
            if (fabsf(src[j]) > amax) {
                amax = fabsf(src[j]);
                max = src[j];
            }
        }
        if (!amax) {
            memset(&y[i], 0, sizeof(y[i]));
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < QK_K; j++) {
            const int v = nearest_int(iscale * src[j]);
            y[i].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < QK_K / 16; j++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) sum += y[i].qs[16 * j + l];
            y[i].bsums[j] = (int16_t)sum;
        }
        y[i].d = 1 / iscale;
    }
}

/* ---- dots ---- */

float q2_K_dot_ref(int64_t n, const void *w, const void *act) {
    const block_q2_K *x = w;
    const block_q8_K *y = act;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int summs = 0, isum = 0;
        for (int s = 0; s < QK_K / 16; s++) {
            const uint8_t sc = x[i].scales[s];
            summs += y[i].bsums[s] * (sc >> 4);
            int sub = 0;
            for (int l = 0; l < 16; l++)
                sub += q2_field(x[i].qs, s / 2, 16 * (s % 2) + l) * y[i].qs[16 * s + l];
            isum += (sc & 0xF) * sub;
        }
        const float dall = y[i].d * lm_fp16_to_fp32(x[i].d);
        const float dmin = y[i].d * lm_fp16_to_fp32(x[i].dmin);
        sum += dall * isum - dmin * summs;
    }
    return sum;
}

float q3_K_dot_ref(int64_t n, const void *w, const void *act) {
    const block_q3_K *x = w;
    const block_q8_K *y = act;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint8_t scales[16];
        q_unpack_q3k_scales(x[i].scales, scales);
        int isum = 0;
        for (int s = 0; s < QK_K / 16; s++) {
            const int g = s / 2;
            int sub = 0;
            for (int l = 16 * (s % 2); l < 16 * (s % 2) + 16; l++) {
                const int q = q2_field(x[i].qs, g, l) - (((x[i].hmask[l] >> g) & 1) ? 0 : 4);
                sub += q * y[i].qs[32 * g + l];
            }
            isum += (scales[s] - 32) * sub;
        }
        sum += lm_fp16_to_fp32(x[i].d) * y[i].d * isum;
    }
    return sum;
}

/* sum over the 8 sub-blocks of mins[g] * (bsums of its two halves) */
static inline int k4_min_sum(const uint8_t sm[16], const int16_t bsums[16]) {
    int s = 0;
    for (int j = 0; j < QK_K / 16; j++) s += bsums[j] * sm[8 + j / 2];
    return s;
}

float q4_K_dot_ref(int64_t n, const void *w, const void *act) {
    const block_q4_K *x = w;
    const block_q8_K *y = act;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint8_t sm[16];
        q_unpack_k4_scales(x[i].scales, sm);
        int isum = 0;
        for (int g = 0; g < 8; g++) {
            int sub = 0;
            for (int l = 0; l < 32; l++) sub += q4_field(x[i].qs, g, l) * y[i].qs[32 * g + l];
            isum += sm[g] * sub;
        }
        const float d = lm_fp16_to_fp32(x[i].d) * y[i].d;
        const float dmin = lm_fp16_to_fp32(x[i].dmin) * y[i].d;
        sum += d * isum - dmin * k4_min_sum(sm, y[i].bsums);
    }
    return sum;
}

float q5_K_dot_ref(int64_t n, const void *w, const void *act) {
    const block_q5_K *x = w;
    const block_q8_K *y = act;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint8_t sm[16];
        q_unpack_k4_scales(x[i].scales, sm);
        int isum = 0;
        for (int g = 0; g < 8; g++) {
            int sub = 0;
            for (int l = 0; l < 32; l++) {
                const int q = q4_field(x[i].qs, g, l) + (((x[i].qh[l] >> g) & 1) << 4);
                sub += q * y[i].qs[32 * g + l];
            }
            isum += sm[g] * sub;
        }
        const float d = lm_fp16_to_fp32(x[i].d) * y[i].d;
        const float dmin = lm_fp16_to_fp32(x[i].dmin) * y[i].d;
        sum += d * isum - dmin * k4_min_sum(sm, y[i].bsums);
    }
    return sum;
}

float q6_K_dot_ref(int64_t n, const void *w, const void *act) {
    const block_q6_K *x = w;
    const block_q8_K *y = act;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int isum = 0;
        for (int s = 0; s < QK_K / 16; s++) {
            int sub = 0;
            for (int l = 16 * (s % 2); l < 16 * (s % 2) + 16; l++)
                sub += (q6_field(x[i].ql, x[i].qh, s / 2, l) - 32) * y[i].qs[16 * s + l % 16];
            isum += x[i].scales[s] * sub;
        }
        sum += lm_fp16_to_fp32(x[i].d) * y[i].d * isum;
    }
    return sum;
}
