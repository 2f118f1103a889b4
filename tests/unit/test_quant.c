/* test_quant.c - quantized kernels: every type at every level the CPU has.
 *
 * On fixed-seed random rows (gaussian, outliers, zeros, all-equal, large,
 * tiny, and raw random block bytes) of 1, 2, 3, 7, 16 and 64 blocks:
 *   - SIMD dequantize == scalar dequantize, bit for bit;
 *   - SIMD quantize_act == scalar quantize_act, byte for byte;
 *   - SIMD dot == scalar dot within 1e-5 of the sum of |terms|;
 *   - scalar dot == a double-precision dot of the dequantized weights with
 *     the dequantized activations, within the same tolerance;
 *   - dequantize(quantize_ref(x)) is close to x (the test quantizers work);
 * plus fp16/bf16 conversions against known bit patterns, the k-quant scale
 * unpacking against ggml's get_scale_min_k4, the dispatch API, and batch
 * invariance: at every level mul_mat over 1..9 rows times 1..9 tokens gives
 * the dot's floats bit for bit (memcmp) wherever a (row, token) lands, writes
 * nothing else, and reads no byte past the last row (rows end at a guard
 * page). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backend/cpu/quant.h"
#include "backend/cpu/quant_pack.h"
#include "backend/cpu/quant_blocks.h"
#include "base/fp16.h"
#include "check.h"

/* ---- random data ---- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint32_t rng_u32(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}

static float rng_uniform(void) { return (rng_u32() >> 8) * (1.0f / 16777216.0f); } /* [0, 1) */

static float rng_gauss(void) {
    const float u1 = rng_uniform() + 1e-7f, u2 = rng_uniform();
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}

typedef enum { GEN_GAUSS, GEN_OUTLIER, GEN_ZEROS, GEN_EQUAL, GEN_LARGE, GEN_TINY, GEN_RAW, GEN_COUNT } gen_kind;
static const char *GEN_NAMES[GEN_COUNT] = {"gauss", "outlier", "zeros", "equal", "large", "tiny", "raw"};

static void fill_floats(float *x, int64_t n, gen_kind kind) {
    for (int64_t i = 0; i < n; i++) {
        switch (kind) {
        case GEN_OUTLIER: x[i] = (i % 37 == 5) ? 40.0f * rng_gauss() : 0.1f * rng_gauss(); break;
        case GEN_ZEROS: x[i] = 0.0f; break;
        case GEN_EQUAL: x[i] = 0.37f; break;
        case GEN_LARGE: x[i] = 3.0e4f * (2.0f * rng_uniform() - 1.0f); break;
        case GEN_TINY: x[i] = 1e-6f * rng_gauss(); break;
        default: x[i] = rng_gauss(); break;
        }
    }
}

/* ---- the types ---- */

typedef struct {
    uint32_t type;
    int fp16_fields[2]; /* byte offsets of the fp16 scales in a block, -1 = none */
} type_info;

static const type_info TYPES[] = {
    {LM_F32, {-1, -1}},  {LM_F16, {-1, -1}},  {LM_BF16, {-1, -1}}, {LM_Q4_0, {0, -1}}, {LM_Q4_1, {0, 2}},
    {LM_Q5_0, {0, -1}},  {LM_Q5_1, {0, 2}},   {LM_Q8_0, {0, -1}},  {LM_Q2_K, {80, 82}}, {LM_Q3_K, {108, -1}},
    {LM_Q4_K, {0, 2}},   {LM_Q5_K, {0, 2}},   {LM_Q6_K, {208, -1}},
};
#define N_TYPES (int)(sizeof(TYPES) / sizeof(TYPES[0]))

static bool is_float_type(uint32_t t) { return t == LM_F32 || t == LM_F16 || t == LM_BF16; }

/* random finite fp16 in +-[2^-10, 2^2) */
static lm_fp16 random_scale_fp16(void) {
    const float v = ldexpf(1.0f + rng_uniform(), (int)(rng_u32() % 12) - 10);
    return lm_fp32_to_fp16(rng_u32() & 1 ? -v : v);
}

/* random block bytes with finite fp16 scales (float types: random finite values) */
static void fill_raw(const type_info *ti, uint8_t *w, int64_t n) {
    const size_t bytes = q_row_size(ti->type, n);
    for (size_t i = 0; i < bytes; i++) w[i] = (uint8_t)rng_u32();
    if (ti->type == LM_F32) {
        for (int64_t i = 0; i < n; i++) {
            const float f = rng_gauss();
            memcpy(w + 4 * i, &f, 4);
        }
    } else if (ti->type == LM_F16) {
        for (int64_t i = 0; i < n; i++) {
            const lm_fp16 h = lm_fp32_to_fp16(rng_gauss());
            memcpy(w + 2 * i, &h, 2);
        }
    } else if (ti->type == LM_BF16) {
        for (int64_t i = 0; i < n; i++) {
            const lm_bf16 h = lm_fp32_to_bf16(rng_gauss());
            memcpy(w + 2 * i, &h, 2);
        }
    } else {
        const size_t bsize = lm_dtype_type_size(ti->type);
        for (size_t b = 0; b < bytes / bsize; b++)
            for (int f = 0; f < 2; f++)
                if (ti->fp16_fields[f] >= 0) {
                    const lm_fp16 h = random_scale_fp16();
                    memcpy(w + b * bsize + (size_t)ti->fp16_fields[f], &h, 2);
                }
    }
}

/* ---- the reference dot in double ---- */

/* the activation row dequantized to floats */
static void dequantize_act(uint32_t act_type, const void *act, float *af, int64_t n) {
    if (act_type == LM_Q8_1) {
        const block_q8_1 *b = act;
        for (int64_t i = 0; i < n; i++) af[i] = lm_fp16_to_fp32(b[i / QK8_1].d) * b[i / QK8_1].qs[i % QK8_1];
    } else if (act_type == LM_Q8_K) {
        const block_q8_K *b = act;
        for (int64_t i = 0; i < n; i++) af[i] = b[i / QK_K].d * b[i / QK_K].qs[i % QK_K];
    } else {
        q_get_kernels_level(act_type, CPU_SCALAR)->dequantize(act, af, n);
    }
}

/* sum of dequantized weight times dequantized activation in double; *mag
 * gets the sum of |terms|; *slack the bound of what the format itself
 * rounds: for q8_1 activations (weights q4_1, q5_1: min m at byte 2 of each
 * block) the fp16 s = d * sum(q) stands for the exact sum in m * s */
static double dot_double(uint32_t type, const uint8_t *w, const float *wf, uint32_t act_type, const void *act,
                         int64_t n, double *mag, double *slack) {
    float *af = malloc((size_t)n * sizeof(float));
    dequantize_act(act_type, act, af, n);
    double sum = 0.0;
    *mag = 0.0;
    *slack = 0.0;
    for (int64_t i = 0; i < n; i++) {
        sum += (double)wf[i] * af[i];
        *mag += fabs((double)wf[i] * af[i]);
    }
    if (act_type == LM_Q8_1) {
        const block_q8_1 *b = act;
        const size_t bsize = lm_dtype_type_size(type);
        for (int64_t i = 0; i < n / QK8_1; i++) {
            lm_fp16 m;
            memcpy(&m, w + (size_t)i * bsize + 2, 2);
            const double s_err = fabs(lm_fp16_to_fp32(b[i].s)) * ldexp(1.0, -10) + ldexp(1.0, -24);
            *slack += fabs(lm_fp16_to_fp32(m)) * s_err;
        }
    }
    free(af);
    return sum;
}

/* ---- one (type, n, generator) case ---- */

static int n_levels(void) { return (int)cpu_level_detect() + 1; }

static void check_case(const type_info *ti, int64_t n, gen_kind kind) {
    const uint32_t t = ti->type;
    const q_kernels *ref = q_get_kernels_level(t, CPU_SCALAR);
    const char *name = lm_dtype_name(t), *gen = GEN_NAMES[kind];
    const size_t wbytes = q_row_size(t, n), abytes = q_row_size(ref->act_type, n);
    float *x = malloc((size_t)n * sizeof(float)), *a = malloc((size_t)n * sizeof(float));
    float *wf = malloc((size_t)n * sizeof(float)), *wf2 = malloc((size_t)n * sizeof(float));
    uint8_t *w = malloc(wbytes), *act = malloc(abytes), *act2 = malloc(abytes);

    if (kind == GEN_RAW) {
        fill_raw(ti, w, n);
        fill_floats(a, n, GEN_GAUSS);
    } else {
        fill_floats(x, n, kind);
        q_quantize_ref(t, x, w, n);
        fill_floats(a, n, kind == GEN_EQUAL || kind == GEN_ZEROS ? kind : GEN_GAUSS);
    }
    ref->dequantize(w, wf, n);
    ref->quantize_act(a, act, n);
    const float dot_ref = ref->dot(n, w, act);

    /* quantize_ref works: dequantized weights close to the inputs */
    /* (tiny rows are below fp16 scale resolution, as in ggml: skipped here) */
    if (kind != GEN_RAW && kind != GEN_TINY) {
        double err = 0.0, amax = 0.0;
        for (int64_t i = 0; i < n; i++) {
            err = fmax(err, fabs((double)wf[i] - x[i]));
            amax = fmax(amax, fabs((double)x[i]));
        }
        const double bound = t == LM_Q2_K ? 0.5 : t == LM_Q3_K ? 0.35 : 0.2; /* of the row's max |x| */
        CHECK(err <= bound * amax + 1e-30, "%s n=%lld %s: quantize_ref round trip error %g (max |x| %g)", name,
              (long long)n, gen, err, amax);
    }

    /* scalar dot against the double-precision dot of dequantized rows */
    double mag, slack;
    const double expect = dot_double(t, w, wf, ref->act_type, act, n, &mag, &slack);
    CHECK(fabs(dot_ref - expect) <= 1e-5 * mag + slack + 1e-30, "%s n=%lld %s: scalar dot %.9g, double %.9g (mag %g)", name,
          (long long)n, gen, dot_ref, expect, mag);

    for (int lv = 1; lv < n_levels(); lv++) {
        const q_kernels *k = q_get_kernels_level(t, (cpu_level)lv);
        const char *lname = cpu_level_name((cpu_level)lv);
        CHECK(k && k->act_type == ref->act_type, "%s: %s table", name, lname);
        if (!k) continue;
        k->dequantize(w, wf2, n);
        CHECK(!memcmp(wf, wf2, (size_t)n * sizeof(float)), "%s n=%lld %s: %s dequantize differs from scalar", name,
              (long long)n, gen, lname);
        memset(act2, 0xAB, abytes);
        k->quantize_act(a, act2, n);
        CHECK(!memcmp(act, act2, abytes), "%s n=%lld %s: %s quantize_act differs from scalar", name, (long long)n,
              gen, lname);
        const float dot = k->dot(n, w, act);
        CHECK(fabs((double)dot - dot_ref) <= 1e-5 * mag + 1e-30, "%s n=%lld %s: %s dot %.9g, scalar %.9g (mag %g)",
              name, (long long)n, gen, lname, dot, dot_ref, mag);
    }
    free(x), free(a), free(wf), free(wf2), free(w), free(act), free(act2);
}

static void test_all_types(void) {
    static const int BLOCK_COUNTS[] = {1, 2, 3, 7, 16, 64};
    for (int ti = 0; ti < N_TYPES; ti++) {
        const uint32_t t = TYPES[ti].type;
        const int64_t qk = is_float_type(t) ? 32 : lm_dtype_block_size(t);
        for (size_t b = 0; b < sizeof(BLOCK_COUNTS) / sizeof(BLOCK_COUNTS[0]); b++)
            for (int g = 0; g < GEN_COUNT; g++) check_case(&TYPES[ti], BLOCK_COUNTS[b] * qk, (gen_kind)g);
        if (is_float_type(t)) /* lengths that leave SIMD tails */
            for (int64_t n = 1; n < 40; n += 3) check_case(&TYPES[ti], n, GEN_GAUSS);
    }
}

/* ---- conversions ---- */

static void test_fp16_patterns(void) {
    static const struct { float f; uint16_t h; } CASES[] = {
        {1.0f, 0x3C00},         {-2.0f, 0xC000},       {0.5f, 0x3800},        {65504.0f, 0x7BFF},
        {65520.0f, 0x7C00},     {0.1f, 0x2E66},        {1.0f / 3, 0x3555},    {6.1035156e-05f, 0x0400},
        {5.9604645e-08f, 0x0001}, {2.9802322e-08f, 0x0000}, {4.4703484e-08f, 0x0001}, {-0.0f, 0x8000},
        {1.00048828125f, 0x3C00}, {1.00146484375f, 0x3C02}, {INFINITY, 0x7C00},  {-INFINITY, 0xFC00},
    };
    for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++) {
        const lm_fp16 h = lm_fp32_to_fp16(CASES[i].f);
        CHECK(h == CASES[i].h, "fp16(%.9g) = 0x%04X, want 0x%04X", CASES[i].f, h, CASES[i].h);
    }
    CHECK(lm_fp32_to_fp16(NAN) == 0x7E00, "fp16(NaN) = 0x%04X", lm_fp32_to_fp16(NAN));
    CHECK(lm_fp16_to_fp32(0x0001) == ldexpf(1.0f, -24), "smallest subnormal half");
    CHECK(lm_fp16_to_fp32(0x7BFF) == 65504.0f, "largest half");

    /* every non-NaN half round-trips, through the scalar and every SIMD path */
    float *all = malloc(65536 * sizeof(float));
    uint16_t *back = malloc(65536 * sizeof(uint16_t));
    int n = 0, bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7C00) == 0x7C00 && (h & 0x03FF)) continue;
        all[n++] = lm_fp16_to_fp32((lm_fp16)h);
        if (lm_fp32_to_fp16(all[n - 1]) != h) bad++;
    }
    CHECK(bad == 0, "%d halves do not round-trip", bad);
    for (int lv = 0; lv < n_levels(); lv++) {
        const q_kernels *k = q_get_kernels_level(LM_F16, (cpu_level)lv);
        k->quantize_act(all, back, n);
        int i = 0, ok = 1;
        for (uint32_t h = 0; h < 65536; h++) {
            if ((h & 0x7C00) == 0x7C00 && (h & 0x03FF)) continue;
            ok &= back[i++] == h;
        }
        CHECK(ok, "f16 quantize_act round trip at %s", cpu_level_name((cpu_level)lv));
    }
    free(all), free(back);
}

static void test_bf16_patterns(void) {
    static const struct { uint32_t f; uint16_t h; } CASES[] = {
        {0x3F800000, 0x3F80}, {0x3F808000, 0x3F80}, {0x3F818000, 0x3F82}, {0x3F808001, 0x3F81},
        {0xC0490FDB, 0xC049}, {0x7F800000, 0x7F80}, {0x7F7FFFFF, 0x7F80}, {0x00000001, 0x0000},
    };
    for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++) {
        const lm_bf16 h = lm_fp32_to_bf16(lm_bits_to_f32(CASES[i].f));
        CHECK(h == CASES[i].h, "bf16(0x%08X) = 0x%04X, want 0x%04X", CASES[i].f, h, CASES[i].h);
    }
    /* the SIMD path on the same patterns, NaN included */
    float v[16];
    uint16_t want[16], got[16];
    for (int i = 0; i < 16; i++) {
        v[i] = lm_bits_to_f32(i < 8 ? CASES[i].f : rng_u32());
        want[i] = lm_fp32_to_bf16(v[i]);
    }
    v[15] = lm_bits_to_f32(0x7FC12345), want[15] = lm_fp32_to_bf16(v[15]);
    for (int lv = 0; lv < n_levels(); lv++) {
        q_get_kernels_level(LM_BF16, (cpu_level)lv)->quantize_act(v, got, 16);
        CHECK(!memcmp(want, got, sizeof(want)), "bf16 quantize_act patterns at %s", cpu_level_name((cpu_level)lv));
    }
}

/* ggml's get_scale_min_k4: the definition of the packed 6-bit scales */
static void get_scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

static void test_scale_unpacking(void) {
    int bad = 0;
    for (int trial = 0; trial < 10000; trial++) {
        uint8_t packed[12], sm[16];
        for (int i = 0; i < 12; i++) packed[i] = (uint8_t)rng_u32();
        q_unpack_k4_scales(packed, sm);
        for (int j = 0; j < 8; j++) {
            uint8_t d, m;
            get_scale_min_k4(j, packed, &d, &m);
            bad += d != sm[j] || m != sm[8 + j];
        }
        /* q3_K: scale j = low 4 bits (byte j % 8, nibble j / 8) | 2 high bits (byte 8 + j % 4, pair j / 4) */
        q_unpack_q3k_scales(packed, sm);
        for (int j = 0; j < 16; j++) {
            const int lo = (packed[j % 8] >> (4 * (j / 8))) & 0xF;
            const int hi = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
            bad += sm[j] != (lo | (hi << 4));
        }
    }
    CHECK(bad == 0, "%d scale unpacking mismatches", bad);
}

static void test_api(void) {
    CHECK(q_row_size(LM_Q4_K, 4096) == 16 * 144, "q4_K row size");
    CHECK(q_row_size(LM_Q4_0, 64) == 2 * 18, "q4_0 row size");
    CHECK(q_row_size(LM_F16, 10) == 20, "f16 row size");
    CHECK(q_row_size(LM_Q8_K, 512) == 2 * 292, "q8_K row size");
    CHECK(q_get_kernels(4) == NULL, "type 4 is not a type");
    CHECK(q_get_kernels(LM_Q8_1) == NULL, "q8_1 is an activation type only");
    CHECK(q_get_kernels(1000) == NULL, "out of range type");
    CHECK(q_get_kernels(LM_Q4_K) && q_get_kernels(LM_Q4_K)->act_type == LM_Q8_K, "q4_K uses q8_K activations");
    CHECK(q_get_kernels(LM_Q4_1)->act_type == LM_Q8_1, "q4_1 uses q8_1 activations");
    CHECK(q_get_kernels(LM_Q5_0)->act_type == LM_Q8_0, "q5_0 uses q8_0 activations");
    CHECK(q_get_kernels(LM_BF16)->act_type == LM_BF16, "bf16 uses bf16 activations");
    /* a level above the CPU's falls back to what it has */
    CHECK(q_get_kernels_level(LM_Q4_0, CPU_AVX512) == q_get_kernels_level(LM_Q4_0, cpu_level_detect()),
          "level fallback");
}

/* ---- batch invariance ---- */

/* n bytes that end at a PROT_NONE page: a read past them faults */
typedef struct {
    uint8_t *map, *data;
    size_t map_bytes;
} guarded;

static uint8_t *guarded_alloc(guarded *g, size_t n) {
    const size_t page = (size_t)sysconf(_SC_PAGESIZE), body = (n + page - 1) / page * page;
    g->map_bytes = body + page;
    g->map = mmap(NULL, g->map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (g->map == MAP_FAILED) return g->data = NULL;
    mprotect(g->map + body, page, PROT_NONE);
    return g->data = g->map + body - n;
}

static void guarded_free(guarded *g) {
    if (g->data) munmap(g->map, g->map_bytes);
}

#define MM_MAX 9 /* rows and tokens */

/* mul_mat of every (rows, tokens) shape up to MM_MAX x MM_MAX, at offsets
 * (r0, t0) into the matrices, against the dots */
static void check_mul_mat_shapes(const q_kernels *k, const char *what, int64_t n, const uint8_t *w, size_t w_stride,
                                 const uint8_t *act, size_t act_stride, int max_shape) {
    float want[MM_MAX][MM_MAX];
    for (int r = 0; r < MM_MAX; r++)
        for (int t = 0; t < MM_MAX; t++) want[t][r] = k->dot(n, w + r * w_stride, act + t * act_stride);
    const int ld = MM_MAX + 3;
    float out[MM_MAX * (MM_MAX + 3)];
    int bad = 0, stray = 0;
    for (int nr = 1; nr <= max_shape; nr++) {
        for (int nt = 1; nt <= max_shape; nt++) {
            const int r0 = MM_MAX - nr, t0 = (nr + nt) % (MM_MAX - nt + 1);
            memset(out, 0x7F, sizeof(out)); /* sentinel: 0x7F7F7F7F */
            k->mul_mat(n, w + r0 * w_stride, w_stride, nr, act + t0 * act_stride, act_stride, nt, out, ld);
            for (int t = 0; t < MM_MAX; t++) {
                for (int c = 0; c < ld; c++) {
                    const float *o = &out[t * ld + c];
                    if (t < nt && c < nr) bad += memcmp(o, &want[t0 + t][r0 + c], sizeof(float)) != 0;
                    else stray += *(const uint32_t *)o != 0x7F7F7F7Fu;
                }
            }
        }
    }
    CHECK(bad == 0, "%s: %d mul_mat results differ from the dot's bits", what, bad);
    CHECK(stray == 0, "%s: mul_mat wrote %d floats outside its block", what, stray);
}

static void check_batch_invariance(const type_info *ti, int64_t n, int max_shape) {
    const uint32_t t = ti->type;
    const q_kernels *ref = q_get_kernels_level(t, CPU_SCALAR);
    const size_t wrow = q_row_size(t, n), arow = q_row_size(ref->act_type, n);
    guarded gw, ga;
    uint8_t *w = guarded_alloc(&gw, MM_MAX * wrow), *act = guarded_alloc(&ga, MM_MAX * arow);
    float *x = malloc((size_t)n * sizeof(float));
    CHECK(w && act && x, "allocation");
    if (!w || !act || !x) goto done;
    for (int r = 0; r < MM_MAX; r++) {
        if (r % 3 == 2) {
            fill_raw(ti, w + r * wrow, n);
        } else {
            fill_floats(x, n, r % 3 ? GEN_OUTLIER : GEN_GAUSS);
            q_quantize_ref(t, x, w + r * wrow, n);
        }
    }
    for (int tk = 0; tk < MM_MAX; tk++) {
        fill_floats(x, n, tk == 4 ? GEN_ZEROS : tk % 2 ? GEN_OUTLIER : GEN_GAUSS);
        ref->quantize_act(x, act + tk * arow, n);
    }
    for (int lv = 0; lv < n_levels(); lv++) {
        char what[96];
        snprintf(what, sizeof(what), "%s n=%lld at %s", lm_dtype_name(t), (long long)n, cpu_level_name((cpu_level)lv));
        check_mul_mat_shapes(q_get_kernels_level(t, (cpu_level)lv), what, n, w, wrow, act, arow, max_shape);
    }
done:
    guarded_free(&gw), guarded_free(&ga);
    free(x);
}

/* Float types with many rows and tokens and long rows: the AVX-512 / AVX2
 * tiles (4 rows x 6 / 3 tokens) run rows in panels, long rows in chunks whose
 * accumulators wait in memory, and a SIMD tail. Every result must equal the
 * dot's bits, whether the product comes in one call or in pieces. */
static void test_float_panels(void) {
    static const uint32_t TYPES_F[] = {LM_F32, LM_F16, LM_BF16};
    static const int64_t LENGTHS[] = {9005, 4101, 2064, 80};
    enum { ROWS = 70, TOKS = 13 };
    for (size_t ti = 0; ti < 3; ti++) {
        for (size_t li = 0; li < 4; li++) {
            const uint32_t t = TYPES_F[ti];
            const int64_t n = LENGTHS[li];
            const size_t row = q_row_size(t, n);
            uint8_t *w = malloc(ROWS * row), *act = malloc(TOKS * row);
            float *x = malloc((size_t)n * sizeof(float));
            float *got = malloc(sizeof(float) * ROWS * TOKS), *part = malloc(sizeof(float) * ROWS * TOKS);
            CHECK(w && act && x && got && part, "allocation");
            if (!w || !act || !x || !got || !part) goto next;
            for (int r = 0; r < ROWS; r++) {
                fill_floats(x, n, r % 5 == 3 ? GEN_OUTLIER : GEN_GAUSS);
                q_quantize_ref(t, x, w + r * row, n);
            }
            for (int k = 0; k < TOKS; k++) {
                fill_floats(x, n, k % 4 == 1 ? GEN_OUTLIER : GEN_GAUSS);
                q_quantize_ref(t, x, act + k * row, n);
            }
            for (int lv = 0; lv < n_levels(); lv++) {
                const q_kernels *kk = q_get_kernels_level(t, (cpu_level)lv);
                kk->mul_mat(n, w, row, ROWS, act, row, TOKS, got, ROWS);
                /* in pieces: rows 0-36 / 37-69, tokens 0-4 / 5-12 */
                kk->mul_mat(n, w, row, 37, act, row, 5, part, ROWS);
                kk->mul_mat(n, w + 37 * row, row, ROWS - 37, act, row, 5, part + 37, ROWS);
                kk->mul_mat(n, w, row, 37, act + 5 * row, row, TOKS - 5, part + 5 * ROWS, ROWS);
                kk->mul_mat(n, w + 37 * row, row, ROWS - 37, act + 5 * row, row, TOKS - 5, part + 5 * ROWS + 37, ROWS);
                int bad = 0, bad_part = 0;
                for (int k = 0; k < TOKS; k++)
                    for (int r = 0; r < ROWS; r++) {
                        const float want = kk->dot(n, w + r * row, act + k * row);
                        bad += memcmp(&want, &got[k * ROWS + r], sizeof(float)) != 0;
                        bad_part += memcmp(&want, &part[k * ROWS + r], sizeof(float)) != 0;
                    }
                CHECK(bad == 0, "%s n=%lld %dx%d at %s: %d results differ from the dot", lm_dtype_name(t), (long long)n,
                      ROWS, TOKS, cpu_level_name((cpu_level)lv), bad);
                CHECK(bad_part == 0, "%s n=%lld in pieces at %s: %d results differ from the dot", lm_dtype_name(t),
                      (long long)n, cpu_level_name((cpu_level)lv), bad_part);
            }
        next:
            free(w), free(act), free(x), free(got), free(part);
        }
    }
}

/* Packed q4_K and q6_K (quant_pack.h), where the level has a packed kernel: every
 * (row, token) against the scalar dot of the file's rows, within the dot
 * tolerance; any split of rows (in blocks of 16) and tokens, and each token
 * alone, the same bits as the whole product. */
static void test_packed_type(uint32_t type) {
    static const int64_t LENGTHS[] = {256, 1024, 2560};
    enum { ROWS = 48, TOKS = 70 };
    const type_info *ti = NULL;
    for (int i = 0; i < N_TYPES; i++)
        if (TYPES[i].type == type) ti = &TYPES[i];
    int tested = 0;
    for (size_t li = 0; li < sizeof(LENGTHS) / sizeof(LENGTHS[0]); li++) {
        const int64_t n = LENGTHS[li];
        if (!q_pack_supported(type, ROWS, n)) continue;
        const q_kernels *ref = q_get_kernels_level(type, CPU_SCALAR);
        const size_t wrow = q_row_size(type, n), arow = q_row_size(LM_Q8_K, n);
        uint8_t *w = malloc(ROWS * wrow), *act = malloc(TOKS * arow);
        void *packed = aligned_alloc(64, (q_pack_bytes(type, ROWS, n) + 63) / 64 * 64);
        float *x = malloc((size_t)n * sizeof(float)), *wf = malloc((size_t)n * sizeof(float));
        float *all = malloc(sizeof(float) * ROWS * TOKS), *part = malloc(sizeof(float) * ROWS * TOKS);
        CHECK(w && act && packed && x && wf && all && part, "allocation");
        if (!w || !act || !packed || !x || !wf || !all || !part) goto next;
        for (int r = 0; r < ROWS; r++) {
            if (r % 5 == 4) {
                fill_raw(ti, w + r * wrow, n);
            } else {
                fill_floats(x, n, r % 3 ? GEN_OUTLIER : GEN_GAUSS);
                q_quantize_ref(type, x, w + r * wrow, n);
            }
        }
        for (int t = 0; t < TOKS; t++) {
            fill_floats(x, n, t % 4 == 1 ? GEN_OUTLIER : t == 5 ? GEN_ZEROS : GEN_GAUSS);
            ref->quantize_act(x, act + t * arow, n);
        }
        q_pack(type, w, wrow, ROWS, n, packed);
        q_packed_mul_mat(type, n, packed, 0, ROWS, act, arow, TOKS, all, ROWS);
        int far = 0, bad_alone = 0, bad_split = 0;
        for (int t = 0; t < TOKS; t++)
            for (int r = 0; r < ROWS; r++) {
                ref->dequantize(w + r * wrow, wf, n);
                double mag, slack;
                const double expect = dot_double(type, w + r * wrow, wf, LM_Q8_K, act + t * arow, n, &mag, &slack);
                far += !(fabs((double)all[t * ROWS + r] - expect) <= 1e-5 * mag + slack + 1e-30);
            }
        for (int t = 0; t < TOKS; t++) { /* each token alone, in one block of rows at a time */
            float one[ROWS];
            for (int r0 = 0; r0 < ROWS; r0 += 16)
                q_packed_mul_mat(type, n, packed, r0, 16, act + t * arow, arow, 1, one + r0, ROWS);
            bad_alone += memcmp(one, all + t * ROWS, sizeof(one)) != 0;
        }
        /* rows 0-15 / 16-47, tokens 0-12 / 13-69 */
        q_packed_mul_mat(type, n, packed, 0, 16, act, arow, 13, part, ROWS);
        q_packed_mul_mat(type, n, packed, 16, 32, act, arow, 13, part + 16, ROWS);
        q_packed_mul_mat(type, n, packed, 0, 16, act + 13 * arow, arow, TOKS - 13, part + 13 * ROWS, ROWS);
        q_packed_mul_mat(type, n, packed, 16, 32, act + 13 * arow, arow, TOKS - 13, part + 13 * ROWS + 16, ROWS);
        bad_split = memcmp(part, all, sizeof(float) * ROWS * TOKS) != 0;
        CHECK(far == 0, "packed %s n=%lld: %d results outside the dot tolerance", lm_dtype_name(type), (long long)n, far);
        CHECK(bad_alone == 0, "packed %s n=%lld: %d tokens differ alone from in the batch", lm_dtype_name(type), (long long)n, bad_alone);
        CHECK(bad_split == 0, "packed %s n=%lld: the product in pieces differs from whole", lm_dtype_name(type), (long long)n);
        tested++;
    next:
        free(w), free(act), free(packed), free(x), free(wf), free(all), free(part);
    }
    printf("test_quant: packed %s %s\n", lm_dtype_name(type), tested ? "checked" : "not available at this level");
}

static void test_packed(void) {
    test_packed_type(LM_Q4_K);
    test_packed_type(LM_Q6_K);
}

static void test_batch_invariance(void) {
    static const int BLOCK_COUNTS[] = {1, 2, 3, 4, 5, 7, 18, 48};
    for (int ti = 0; ti < N_TYPES; ti++) {
        const int64_t qk = is_float_type(TYPES[ti].type) ? 32 : lm_dtype_block_size(TYPES[ti].type);
        for (size_t b = 0; b < sizeof(BLOCK_COUNTS) / sizeof(BLOCK_COUNTS[0]); b++)
            check_batch_invariance(&TYPES[ti], BLOCK_COUNTS[b] * qk, MM_MAX);
        /* rows longer than what the fast paths prepare on their stack (AVX-512:
         * 89 groups of 16 blocks), so they fall back to one dot per result */
        check_batch_invariance(&TYPES[ti], qk == 256 ? 160 * qk : 1440 * qk, 3);
    }
    check_batch_invariance(&TYPES[1], 37, MM_MAX); /* f16 with a SIMD tail */
}

int main(void) {
    printf("test_quant: detected level %s\n", cpu_level_name(cpu_level_detect()));
    test_api();
    test_fp16_patterns();
    test_bf16_patterns();
    test_scale_unpacking();
    test_all_types();
    test_batch_invariance();
    test_float_panels();
    test_packed();
    return check_done("test_quant");
}
