#include "base/cpu.h"

#if defined(__aarch64__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

/* CPUID rather than has_f16c(), which clang 14 lacks */
static bool has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}
#endif

cpu_level cpu_level_detect(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("fma") && has_f16c())
        return CPU_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
        has_f16c())
        return CPU_AVX2;
#endif
#if defined(__aarch64__)
    if (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) return CPU_NEON;
#endif
    return CPU_SCALAR;
}

static cpu_level level_from_env(cpu_level best) {
    const char *s = getenv("LAMINA_CPU_LEVEL");
    if (!s || !*s) return best;
    cpu_level want = best;
    if (!strcmp(s, "scalar")) want = CPU_SCALAR;
    else if (!strcmp(s, "avx2")) want = CPU_AVX2;
    else if (!strcmp(s, "avx512")) want = CPU_AVX512;
    else if (!strcmp(s, "neon")) want = CPU_NEON;
    return want < best ? want : best;
}

/* what the CPU offers and what we use, settled once for all threads */
static cpu_level best_level, active_level;
static bool has_vnni;
static pthread_once_t levels_once = PTHREAD_ONCE_INIT;

static void choose_levels(void) {
    best_level = cpu_level_detect();
    active_level = level_from_env(best_level);
#if defined(__x86_64__) || defined(__i386__)
    has_vnni = __builtin_cpu_supports("avx512vnni");
#endif
}

cpu_level cpu_level_active(void) {
    pthread_once(&levels_once, choose_levels);
    return active_level;
}

cpu_level cpu_level_best(void) {
    pthread_once(&levels_once, choose_levels);
    return best_level;
}

bool cpu_has_avx512_vnni(void) {
    pthread_once(&levels_once, choose_levels);
    return has_vnni;
}

const char *cpu_level_name(cpu_level level) {
    switch (level) {
    case CPU_SCALAR: return "scalar";
    case CPU_AVX2: return "avx2";
    case CPU_AVX512: return "avx512";
    case CPU_NEON: return "neon";
    default: return "unknown";
    }
}

int cpu_physical_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
