/* cpu.h - which SIMD level the kernels run at.
 *
 * Chosen once at start: the best the CPU supports, lowered (never raised) by
 * the environment variable LAMINA_CPU_LEVEL=scalar|avx2|avx512|neon so tests
 * can exercise every path on one machine. On 64-bit Arm the levels are
 * scalar and neon (NEON with the dot-product instructions); the x86 levels
 * between them fall back to the best the CPU has. */
#ifndef LAMINA_BASE_CPU_H
#define LAMINA_BASE_CPU_H

#include <stdbool.h>

typedef enum cpu_level {
    CPU_SCALAR = 0,
    CPU_AVX2 = 1,   /* AVX2 + FMA + F16C */
    CPU_AVX512 = 2, /* AVX-512 F/BW/DQ/VL (+VNNI when present) */
    CPU_NEON = 3,   /* aarch64 NEON + dotprod (sdot) */
    CPU_LEVEL_COUNT
} cpu_level;

/* best level this CPU supports (ignores the environment) */
cpu_level cpu_level_detect(void);
/* level in force: detect() lowered by LAMINA_CPU_LEVEL; computed once */
cpu_level cpu_level_active(void);
/* detect(), computed once (thread-safe) */
cpu_level cpu_level_best(void);
/* AVX-512 VNNI (vpdpbusd), computed once */
bool cpu_has_avx512_vnni(void);
const char *cpu_level_name(cpu_level level);
/* number of physical cores (>= 1), for the default thread count */
int cpu_physical_cores(void);

#endif
