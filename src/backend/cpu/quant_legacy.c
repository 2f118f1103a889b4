/* quant_legacy.c - scalar reference kernels of the 32-element block types:
 * q4_0, q4_1, q5_0, q5_1, q8_0 (weights) and q8_0, q8_1 (activations).
 *
 * Each follows ggml (ggml-quants.c dequantize_row_* / quantize_row_*_ref,
 * ggml-cpu/quants.c ggml_vec_dot_*_generic): dequantization and quantization
 * are bit-exact with it; dots compute the same integer sum per block and
 * scale it by the block scales. */
/* GCC's -O2 vectorizes only "very cheap" loops; the unpack and dot loops
 * here gain 2-9x from its cheap model (no effect on results: no float
 * reassociation, no contraction). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("vect-cost-model=cheap")
#endif

#include <float.h>
#include <math.h>

#include "backend/cpu/quant_blocks.h"
#include "backend/cpu/quant_impl.h"

/* ---- dequantization ---- */

void q4_0_dequant_ref(const void *src, float *dst, int64_t n) {
    const block_q4_0 *x = src;
    for (int64_t i = 0; i < n / QK4_0; i++, dst += QK4_0) {
        const float d = lm_fp16_to_fp32(x[i].d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            dst[j] = ((x[i].qs[j] & 0x0F) - 8) * d;
            dst[j + QK4_0 / 2] = ((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

void q4_1_dequant_ref(const void *src, float *dst, int64_t n) {
    const block_q4_1 *x = src;
    for (int64_t i = 0; i < n / QK4_1; i++, dst += QK4_1) {
        const float d = lm_fp16_to_fp32(x[i].d);
        const float m = lm_fp16_to_fp32(x[i].m);
        for (int j = 0; j < QK4_1 / 2; j++) {
            dst[j] = (x[i].qs[j] & 0x0F) * d + m;
            dst[j + QK4_1 / 2] = (x[i].qs[j] >> 4) * d + m;
        }
    }
}

/* the 32 five-bit values (0..31) of a q5 block: low nibbles of qs (element
 * j and j + 16 share byte j), bit j of qh as bit 4 of element j */
static inline void q5_unpack(const uint8_t *qs, const uint8_t *qh_bytes, int8_t q[32]) {
    uint32_t qh;
    memcpy(&qh, qh_bytes, 4);
    for (int j = 0; j < 16; j++) {
        q[j] = (int8_t)((qs[j] & 0x0F) | (((qh >> j) & 1) << 4));
        q[j + 16] = (int8_t)((qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4));
    }
}

void q5_0_dequant_ref(const void *src, float *dst, int64_t n) {
    const block_q5_0 *x = src;
    for (int64_t i = 0; i < n / QK5_0; i++, dst += QK5_0) {
        const float d = lm_fp16_to_fp32(x[i].d);
        int8_t q[QK5_0];
        q5_unpack(x[i].qs, x[i].qh, q);
        for (int j = 0; j < QK5_0; j++) dst[j] = (q[j] - 16) * d;
    }
}

void q5_1_dequant_ref(const void *src, float *dst, int64_t n) {
    const block_q5_1 *x = src;
    for (int64_t i = 0; i < n / QK5_1; i++, dst += QK5_1) {
        const float d = lm_fp16_to_fp32(x[i].d);
        const float m = lm_fp16_to_fp32(x[i].m);
        int8_t q[QK5_1];
        q5_unpack(x[i].qs, x[i].qh, q);
        for (int j = 0; j < QK5_1; j++) dst[j] = q[j] * d + m;
    }
}

void q8_0_dequant_ref(const void *src, float *dst, int64_t n) {
    const block_q8_0 *x = src;
    for (int64_t i = 0; i < n / QK8_0; i++, dst += QK8_0) {
        const float d = lm_fp16_to_fp32(x[i].d);
        for (int j = 0; j < QK8_0; j++) dst[j] = x[i].qs[j] * d;
    }
}

/* ---- activation quantizers ----
 * As llama.cpp runs them on x86 (its AVX2 quantize_row_q8_0/q8_1, which is
 * what the reference we are checked against executes): scale 127/amax and
 * round half to even. (ggml's portable *_ref divides by d and rounds half
 * away from zero; the two differ on a few elements per row, and real Q4
 * models amplify such differences into visible logit changes.) */

static float block_amax(const float *x, int n) {
    float amax = 0.0f;
    for (int j = 0; j < n; j++) amax = fmaxf(amax, fabsf(x[j]));
    return amax;
}

void q8_0_quantize_ref(const float *src, void *dst, int64_t n) {
    block_q8_0 *y = dst;
    for (int64_t i = 0; i < n / QK8_0; i++, src += QK8_0) {
        const float amax = block_amax(src, QK8_0);
        const float d = amax / 127;
        const float id = amax ? 127.0f / amax : 0.0f;
        y[i].d = lm_fp32_to_fp16(d);
        for (int j = 0; j < QK8_0; j++) y[i].qs[j] = (int8_t)nearbyintf(src[j] * id);
    }
}

void q8_1_quantize_ref(const float *src, void *dst, int64_t n) {
    block_q8_1 *y = dst;
    for (int64_t i = 0; i < n / QK8_1; i++, src += QK8_1) {
        const float amax = block_amax(src, QK8_1);
        const float d = amax / 127;
        const float id = amax ? 127.0f / amax : 0.0f;
        y[i].d = lm_fp32_to_fp16(d);
        int sum = 0;
        for (int j = 0; j < QK8_1; j++) {
            y[i].qs[j] = (int8_t)nearbyintf(src[j] * id);
            sum += y[i].qs[j];
        }
        y[i].s = lm_fp32_to_fp16(sum * d);
    }
}

/* ---- weight quantizers (round to nearest, for tests) ---- */

/* the element of largest magnitude, signed (first one on ties) */
static float block_signed_max(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

static void block_min_max(const float *x, int n, float *min, float *max) {
    *min = FLT_MAX;
    *max = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        if (x[j] < *min) *min = x[j];
        if (x[j] > *max) *max = x[j];
    }
}

static inline int min_int(int a, int b) { return a < b ? a : b; }

void q4_0_quantize_ref(const float *src, void *dst, int64_t n) {
    block_q4_0 *y = dst;
    for (int64_t i = 0; i < n / QK4_0; i++, src += QK4_0) {
        const float d = block_signed_max(src, QK4_0) / -8;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = lm_fp32_to_fp16(d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            const uint8_t lo = (uint8_t)min_int(15, (int8_t)(src[j] * id + 8.5f));
            const uint8_t hi = (uint8_t)min_int(15, (int8_t)(src[j + QK4_0 / 2] * id + 8.5f));
            y[i].qs[j] = (uint8_t)(lo | (hi << 4));
        }
    }
}

void q4_1_quantize_ref(const float *src, void *dst, int64_t n) {
    block_q4_1 *y = dst;
    for (int64_t i = 0; i < n / QK4_1; i++, src += QK4_1) {
        float min, max;
        block_min_max(src, QK4_1, &min, &max);
        const float d = (max - min) / 15;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = lm_fp32_to_fp16(d);
        y[i].m = lm_fp32_to_fp16(min);
        for (int j = 0; j < QK4_1 / 2; j++) {
            const uint8_t lo = (uint8_t)min_int(15, (int8_t)((src[j] - min) * id + 0.5f));
            const uint8_t hi = (uint8_t)min_int(15, (int8_t)((src[j + QK4_1 / 2] - min) * id + 0.5f));
            y[i].qs[j] = (uint8_t)(lo | (hi << 4));
        }
    }
}

/* packs 32 five-bit values: low nibbles into qs, bit 4 of value j into bit j of qh */
static void q5_pack(const uint8_t q[32], uint8_t qs[16], uint8_t qh_out[4]) {
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 0x0F) | ((q[j + 16] & 0x0F) << 4));
        qh |= (uint32_t)((q[j] >> 4) & 1) << j;
        qh |= (uint32_t)((q[j + 16] >> 4) & 1) << (j + 16);
    }
    memcpy(qh_out, &qh, 4);
}

void q5_0_quantize_ref(const float *src, void *dst, int64_t n) {
    block_q5_0 *y = dst;
    for (int64_t i = 0; i < n / QK5_0; i++, src += QK5_0) {
        const float d = block_signed_max(src, QK5_0) / -16;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = lm_fp32_to_fp16(d);
        uint8_t q[QK5_0];
        for (int j = 0; j < QK5_0; j++) q[j] = (uint8_t)min_int(31, (int8_t)(src[j] * id + 16.5f));
        q5_pack(q, y[i].qs, y[i].qh);
    }
}

void q5_1_quantize_ref(const float *src, void *dst, int64_t n) {
    block_q5_1 *y = dst;
    for (int64_t i = 0; i < n / QK5_1; i++, src += QK5_1) {
        float min, max;
        block_min_max(src, QK5_1, &min, &max);
        const float d = (max - min) / 31;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = lm_fp32_to_fp16(d);
        y[i].m = lm_fp32_to_fp16(min);
        uint8_t q[QK5_1];
        for (int j = 0; j < QK5_1; j++) q[j] = (uint8_t)((src[j] - min) * id + 0.5f);
        q5_pack(q, y[i].qs, y[i].qh);
    }
}

/* ---- dots: integer sum per block, then the block scales ---- */

float q4_0_dot_ref(int64_t n, const void *w, const void *act) {
    const block_q4_0 *x = w;
    const block_q8_0 *y = act;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int isum = 0;
        for (int j = 0; j < QK8_0 / 2; j++) {
            isum += ((x[i].qs[j] & 0x0F) - 8) * y[i].qs[j];
            isum += ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + QK8_0 / 2];
        }
        sum += isum * lm_fp16_to_fp32(x[i].d) * lm_fp16_to_fp32(y[i].d);
    }
    return sum;
}

float q4_1_dot_ref(int64_t n, const void *w, const void *act) {
    const block_q4_1 *x = w;
    const block_q8_1 *y = act;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        int isum = 0;
        for (int j = 0; j < QK8_1 / 2; j++) {
            isum += (x[i].qs[j] & 0x0F) * y[i].qs[j];
            isum += (x[i].qs[j] >> 4) * y[i].qs[j + QK8_1 / 2];
        }
        sum += lm_fp16_to_fp32(x[i].d) * lm_fp16_to_fp32(y[i].d) * isum +
               lm_fp16_to_fp32(x[i].m) * lm_fp16_to_fp32(y[i].s);
    }
    return sum;
}

float q5_0_dot_ref(int64_t n, const void *w, const void *act) {
    const block_q5_0 *x = w;
    const block_q8_0 *y = act;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int8_t q[QK5_0];
        q5_unpack(x[i].qs, x[i].qh, q);
        int isum = 0;
        for (int j = 0; j < QK8_0; j++) isum += (q[j] - 16) * y[i].qs[j];
        sum += lm_fp16_to_fp32(x[i].d) * lm_fp16_to_fp32(y[i].d) * isum;
    }
    return sum;
}

float q5_1_dot_ref(int64_t n, const void *w, const void *act) {
    const block_q5_1 *x = w;
    const block_q8_1 *y = act;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        int8_t q[QK5_1];
        q5_unpack(x[i].qs, x[i].qh, q);
        int isum = 0;
        for (int j = 0; j < QK8_1; j++) isum += q[j] * y[i].qs[j];
        sum += lm_fp16_to_fp32(x[i].d) * lm_fp16_to_fp32(y[i].d) * isum +
               lm_fp16_to_fp32(x[i].m) * lm_fp16_to_fp32(y[i].s);
    }
    return sum;
}

float q8_0_dot_ref(int64_t n, const void *w, const void *act) {
    const block_q8_0 *x = w;
    const block_q8_0 *y = act;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int isum = 0;
        for (int j = 0; j < QK8_0; j++) isum += x[i].qs[j] * y[i].qs[j];
        sum += isum * (lm_fp16_to_fp32(x[i].d) * lm_fp16_to_fp32(y[i].d));
    }
    return sum;
}
