/* test_ops.c - the f16 attention kernel against its one-head definition.
 *
 * op_attend handles the query heads of a GQA group together (each K/V row
 * converted once for all of them). Every head's output must be
 * bit-identical to attending it alone with the dot / axpy helpers in the
 * order op_attend documents, on every dispatch level, for group sizes 1..9,
 * head sizes 8..256 and 1..300 positions, with and without a softcap; so
 * must every (token, head) of op_attend_tokens, which attends consecutive
 * tokens of a sequence together. The softmax exponential (op_exp_shifted)
 * is checked bit for bit against its scalar definition and against e^x.
 * The level is fixed per process (LAMINA_CPU_LEVEL), so the test runs
 * itself once per level the CPU has. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/cpu/ops.h"
#include "backend/cpu/softmax_exp.h"
#include "base/cpu.h"
#include "check.h"

static float frand(void) { return (float)rand() / (float)RAND_MAX * 2.0f - 1.0f; }
static float round16(float x) { return lm_fp16_to_fp32(lm_fp32_to_fp16(x)); }

/* random K/V rows (n_kv of hd, at scattered positions, as blocks of the
 * paged cache are), n_q query floats, and n_out outputs NaN (every one must
 * be written) */
static void fill_attention(lm_fp16 *kv, const lm_fp16 **k, const lm_fp16 **v, int n_kv, int hd, float *q, size_t n_q,
                           float *out, size_t n_out) {
    for (int i = 0; i < 2 * n_kv * hd; i++) kv[i] = lm_fp32_to_fp16(frand() * 3.0f);
    for (int j = 0; j < n_kv; j++) {
        k[j] = kv + (size_t)((j * 7) % n_kv) * hd;
        v[j] = kv + (size_t)n_kv * hd + (size_t)((j * 5 + 1) % n_kv) * hd;
    }
    for (size_t i = 0; i < n_q; i++) q[i] = frand() * 2.0f;
    for (size_t i = 0; i < n_out; i++) out[i] = NAN;
}

/* one head over one chunk of keys, exactly as op_attend defines it; its
 * maximum and sum after out when STATS */
static void attend_plain(float *out, bool stats, const float *q, const lm_fp16 *const *k, const lm_fp16 *const *v,
                         int n_kv, int hd, float scale, float softcap, float *w) {
    float q16[1024];
    for (int i = 0; i < hd; i++) q16[i] = round16(q[i]);
    float max = -INFINITY;
    for (int j = 0; j < n_kv; j++) {
        float s = op_dot_f32_f16(q16, k[j], hd) * scale;
        if (softcap > 0.0f) s = softcap * tanhf(s / softcap);
        w[j] = s;
        if (s > max) max = s;
    }
    double sum = 0.0;
    for (int j = 0; j < n_kv; j++) {
        w[j] = softmax_exp(w[j] - max);
        sum += w[j];
    }
    if (stats) op_attend_stats_put(out + hd, max, sum);
    const float inv = (float)(1.0 / sum);
    memset(out, 0, sizeof(float) * (size_t)hd);
    for (int j = 0; j < n_kv; j++) op_axpy_f16(out, round16(w[j] * inv), v[j], hd);
}

/* one head: a two-pass softmax per chunk of OP_ATT_CHUNK keys, the chunks
 * folded in order */
static void attend_alone(float *out, const float *q, const lm_fp16 *const *k, const lm_fp16 *const *v, int n_kv, int hd,
                         float scale, float softcap, float *w) {
    if (n_kv <= OP_ATT_CHUNK) {
        attend_plain(out, false, q, k, v, n_kv, hd, scale, softcap, w);
        return;
    }
    const int n_c = (n_kv + OP_ATT_CHUNK - 1) / OP_ATT_CHUNK, pw = hd + OP_ATT_PART_EXTRA;
    float *parts = malloc(sizeof(float) * (size_t)n_c * pw);
    for (int c = 0; c < n_c; c++) {
        const int first = c * OP_ATT_CHUNK, len = n_kv - first < OP_ATT_CHUNK ? n_kv - first : OP_ATT_CHUNK;
        attend_plain(parts + (size_t)c * pw, true, q, k + first, v + first, len, hd, scale, softcap, w);
    }
    op_attend_fold(out, parts, (size_t)pw, n_c, hd);
    free(parts);
}

/* the same head in double precision over all keys at once (one softmax):
 * what the chunked arithmetic approximates */
static void attend_exact(double *out, const float *q, const lm_fp16 *const *k, const lm_fp16 *const *v, int n_kv,
                         int hd, float scale) {
    double *s = malloc(sizeof(double) * (size_t)n_kv), max = -INFINITY, sum = 0.0;
    for (int j = 0; j < n_kv; j++) {
        double d = 0.0;
        for (int i = 0; i < hd; i++) d += (double)round16(q[i]) * lm_fp16_to_fp32(k[j][i]);
        s[j] = d * scale;
        if (s[j] > max) max = s[j];
    }
    for (int j = 0; j < n_kv; j++) sum += s[j] = exp(s[j] - max);
    for (int i = 0; i < hd; i++) out[i] = 0.0;
    for (int j = 0; j < n_kv; j++)
        for (int i = 0; i < hd; i++) out[i] += s[j] / sum * lm_fp16_to_fp32(v[j][i]);
    free(s);
}

/* op_exp_shifted at this level: the bits of the scalar softmax_exp on
 * every input (lengths with SIMD tails, -inf, the clamp, NaN), and within
 * 2 ulp of e^x over the softmax range [-87, 0]. */
static void check_exp(cpu_level level) {
    enum { N = 4099 };
    static float w[N], x[N];
    double worst = 0.0;
    for (int pass = 0; pass < 64; pass++) {
        const float shift = pass % 2 ? 0.0f : 3.5f;
        for (int j = 0; j < N; j++) /* [-87, 0] densely, then a spread of specials */
            x[j] = shift - 87.0f * (float)(pass * N + j) / (float)(64 * N - 1);
        if (pass == 63) {
            x[0] = -INFINITY, x[1] = -1000.0f, x[2] = -87.5f, x[3] = NAN, x[4] = 0.0f, x[5] = -0.0f, x[6] = 1e-30f;
            x[N - 1] = shift - 88.0f, x[N - 2] = shift - 86.99f;
        }
        memcpy(w, x, sizeof(w));
        const int n = N - pass % 9; /* tails of 0..8 elements */
        op_exp_shifted(w, n, shift);
        int bad = 0;
        for (int j = 0; j < n; j++) {
            const float want = softmax_exp(x[j] - shift);
            if (memcmp(&want, &w[j], sizeof(float)) != 0 && !(isnan(want) && isnan(w[j]))) bad++;
            const float d = x[j] - shift;
            if (d >= -87.0f && d <= 0.0f) {
                const double e = exp((double)d), ulp = nextafterf((float)e, INFINITY) - (float)e;
                const double err = fabs((double)w[j] - e) / ulp;
                if (err > worst) worst = err;
            }
        }
        CHECK(bad == 0, "%s: op_exp_shifted differs from softmax_exp in %d of %d (pass %d)", cpu_level_name(level), bad,
              n, pass);
    }
    CHECK(worst <= 2.0, "%s: softmax_exp is %.2f ulp from e^x", cpu_level_name(level), worst);
    float nan_in = NAN, inf_in = -INFINITY;
    op_exp_shifted(&nan_in, 1, 0.0f);
    op_exp_shifted(&inf_in, 1, 0.0f);
    CHECK(isnan(nan_in), "%s: e^NaN is NaN", cpu_level_name(level));
    CHECK(inf_in >= 0.0f && inf_in < 1e-37f, "%s: e^-inf is %g", cpu_level_name(level), inf_in);
}

static void run_level(cpu_level level) {
    static const int head_dims[] = {8, 64, 128, 256};
    static const int n_kvs[] = {1, 2, 7, 16, 33, 300};
    check_exp(level);
    srand(7);
    int cases = 0;
    for (int a = 0; a < 4; a++)
        for (int g = 1; g <= 9; g++)
            for (int b = 0; b < 6; b++) {
                const int hd = head_dims[a], n_kv = n_kvs[b];
                const float softcap = (g % 3 == 0) ? 30.0f : 0.0f;
                lm_fp16 *kv = malloc(sizeof(lm_fp16) * (size_t)2 * n_kv * hd);
                const lm_fp16 **k = malloc(sizeof(*k) * (size_t)n_kv), **v = malloc(sizeof(*v) * (size_t)n_kv);
                float *q = malloc(sizeof(float) * (size_t)g * hd), *out = malloc(sizeof(float) * (size_t)g * hd);
                float *ref = malloc(sizeof(float) * (size_t)hd);
                float *scratch = malloc(sizeof(float) * op_attend_scratch_floats(1, g, n_kv, hd));
                fill_attention(kv, k, v, n_kv, hd, q, (size_t)g * hd, out, (size_t)g * hd);
                op_attend(out, q, g, k, v, n_kv, hd, 0.125f, softcap, scratch);
                for (int h = 0; h < g; h++) {
                    attend_alone(ref, q + (size_t)h * hd, k, v, n_kv, hd, 0.125f, softcap, scratch);
                    CHECK(!memcmp(ref, out + (size_t)h * hd, sizeof(float) * (size_t)hd),
                          "%s: group %d head %d, head_dim %d, %d positions: differs from attending alone",
                          cpu_level_name(level), g, h, hd, n_kv);
                }
                cases++;
                free(kv), free(k), free(v), free(q), free(out), free(ref), free(scratch);
            }
    printf("%s: %d attention cases\n", cpu_level_name(level), cases);
}

/* op_attend_tokens: consecutive tokens, token t seeing n_kv0 + t keys, each
 * (token, head) the bits of attending it alone */
static void run_tokens(cpu_level level) {
    static const int head_dims[] = {8, 64, 128};
    static const int groups[] = {1, 2, 3, 4, 8};
    static const int n_kv0s[] = {1, 7, 33};
    int cases = 0;
    for (int a = 0; a < 3; a++)
        for (int gi = 0; gi < 5; gi++)
            for (int b = 0; b < 3; b++)
                for (int nt = 1; nt <= 5; nt++) {
                    const int hd = head_dims[a], g = groups[gi], n_kv0 = n_kv0s[b], n_kv = n_kv0 + nt - 1;
                    const float softcap = (nt + gi) % 4 == 0 ? 30.0f : 0.0f;
                    const size_t q_stride = (size_t)g * hd + 3, out_stride = (size_t)g * hd + 5;
                    lm_fp16 *kv = malloc(sizeof(lm_fp16) * (size_t)2 * n_kv * hd);
                    const lm_fp16 **k = malloc(sizeof(*k) * (size_t)n_kv), **v = malloc(sizeof(*v) * (size_t)n_kv);
                    float *q = malloc(sizeof(float) * q_stride * nt), *out = malloc(sizeof(float) * out_stride * nt);
                    float *ref = malloc(sizeof(float) * (size_t)hd);
                    float *scratch = malloc(sizeof(float) * op_attend_scratch_floats(nt, g, n_kv, hd));
                    float *w = malloc(sizeof(float) * n_kv);
                    fill_attention(kv, k, v, n_kv, hd, q, q_stride * nt, out, out_stride * nt);
                    op_attend_tokens(out, out_stride, q, q_stride, nt, g, k, v, n_kv0, hd, 0.125f, softcap, scratch);
                    for (int t = 0; t < nt; t++)
                        for (int h = 0; h < g; h++) {
                            attend_alone(ref, q + t * q_stride + (size_t)h * hd, k, v, n_kv0 + t, hd, 0.125f, softcap, w);
                            CHECK(!memcmp(ref, out + t * out_stride + (size_t)h * hd, sizeof(float) * (size_t)hd),
                                  "%s: %d tokens, token %d head %d of %d, head_dim %d, %d keys: differs from alone",
                                  cpu_level_name(level), nt, t, h, g, hd, n_kv0 + t);
                        }
                    cases++;
                    free(kv), free(k), free(v), free(q), free(out), free(ref), free(scratch), free(w);
                }
    printf("%s: %d multi-token attention cases\n", cpu_level_name(level), cases);
}

/* Past OP_ATT_CHUNK keys: token runs across chunk boundaries, every
 * (token, head) the bits of attending alone (the chunked definition) and
 * of the split path (each chunk's partials by op_attend_chunk, in any
 * order, then op_attend_fold), and within 2e-3 of one softmax in double. */
static void run_long(cpu_level level) {
    static const struct {
        int n_kv0, nt, g, hd;
    } cases[] = {{1022, 4, 3, 64}, {1024, 1, 1, 128}, {1025, 3, 2, 64}, {2047, 4, 4, 64}, {3000, 1, 8, 64},
                 {2049, 2, 1, 8}};
    int n = 0;
    double worst = 0.0;
    for (int ci = 0; ci < (int)(sizeof(cases) / sizeof(cases[0])); ci++) {
        const int n_kv0 = cases[ci].n_kv0, nt = cases[ci].nt, g = cases[ci].g, hd = cases[ci].hd;
        const int n_kv = n_kv0 + nt - 1, n_c = (n_kv + OP_ATT_CHUNK - 1) / OP_ATT_CHUNK, pw = hd + OP_ATT_PART_EXTRA;
        const size_t q_stride = (size_t)g * hd + 1, out_stride = (size_t)g * hd + 2;
        lm_fp16 *kv = malloc(sizeof(lm_fp16) * (size_t)2 * n_kv * hd);
        const lm_fp16 **k = malloc(sizeof(*k) * (size_t)n_kv), **v = malloc(sizeof(*v) * (size_t)n_kv);
        float *q = malloc(sizeof(float) * q_stride * nt), *out = malloc(sizeof(float) * out_stride * nt);
        float *split = malloc(sizeof(float) * (size_t)nt * g * n_c * pw), *ref = malloc(sizeof(float) * (size_t)hd);
        float *scratch = malloc(sizeof(float) * op_attend_scratch_floats(nt, g, n_kv, hd));
        float *w = malloc(sizeof(float) * OP_ATT_CHUNK);
        double *exact = malloc(sizeof(double) * (size_t)hd);
        fill_attention(kv, k, v, n_kv, hd, q, q_stride * nt, out, out_stride * nt);
        const float softcap = ci == 2 ? 30.0f : 0.0f;
        op_attend_tokens(out, out_stride, q, q_stride, nt, g, k, v, n_kv0, hd, 0.125f, softcap, scratch);
        for (int c = n_c - 1; c >= 0; c--) /* chunks in reverse: the order they run in must not matter */
            op_attend_chunk(split + (size_t)c * pw, (size_t)g * n_c * pw, (size_t)n_c * pw, q, q_stride, nt, g, k, v,
                            n_kv0, c, hd, 0.125f, softcap, scratch);
        for (int t = 0; t < nt; t++)
            for (int h = 0; h < g; h++) {
                const float *qh = q + t * q_stride + (size_t)h * hd, *o = out + t * out_stride + (size_t)h * hd;
                attend_alone(ref, qh, k, v, n_kv0 + t, hd, 0.125f, softcap, w);
                CHECK(!memcmp(ref, o, sizeof(float) * (size_t)hd), "%s: %d keys, token %d head %d: differs from alone",
                      cpu_level_name(level), n_kv0 + t, t, h);
                float *sp = split + ((size_t)t * g + h) * n_c * pw;
                op_attend_fold(sp, sp, (size_t)pw, (n_kv0 + t + OP_ATT_CHUNK - 1) / OP_ATT_CHUNK, hd);
                CHECK(!memcmp(sp, o, sizeof(float) * (size_t)hd), "%s: %d keys, token %d head %d: split differs",
                      cpu_level_name(level), n_kv0 + t, t, h);
                if (softcap == 0.0f) {
                    attend_exact(exact, qh, k, v, n_kv0 + t, hd, 0.125f);
                    for (int i = 0; i < hd; i++) {
                        const double e = fabs(o[i] - exact[i]);
                        if (e > worst) worst = e;
                    }
                }
                n++;
            }
        free(kv), free(k), free(v), free(q), free(out), free(split), free(ref), free(scratch), free(w), free(exact);
    }
    CHECK(worst < 2e-3, "%s: chunked attention %.2e from one softmax in double", cpu_level_name(level), worst);
    printf("%s: %d long-context (token, head) results, chunked = split = alone, %.1e from double\n",
           cpu_level_name(level), n, worst);
}

int main(int argc, char **argv) {
    if (argc > 1) { /* a child: the level in force is the one asked for */
        run_level(cpu_level_active());
        run_tokens(cpu_level_active());
        run_long(cpu_level_active());
        return check_done("ops");
    }
    int failed = 0;
    for (int level = CPU_SCALAR; level <= (int)cpu_level_best(); level++) {
        pid_t pid = fork();
        if (pid == 0) {
            setenv("LAMINA_CPU_LEVEL", cpu_level_name((cpu_level)level), 1);
            execl("/proc/self/exe", argv[0], "child", (char *)NULL);
            _exit(127);
        }
        int status = 0;
        CHECK(pid > 0 && waitpid(pid, &status, 0) == pid, "fork/wait for level %s", cpu_level_name((cpu_level)level));
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "level %s failed (status %d)",
              cpu_level_name((cpu_level)level), status);
        failed |= !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    return check_done("ops") || failed;
}
