/* dispatch.c: choosing the instruction-set level of the kernels at run time.
 *
 * In a portable build (HL_ISA_DISPATCH defined) the kernels listed in
 * HL_ISA_KERNELS (dispatch.h) exist once per level under suffixed names
 * (isa_names.h): hl_dot_scalar, hl_dot_avx2, hl_dot_avx512, ... This file
 * defines the plain names; each forwards through a table of function
 * pointers for the chosen level.
 *
 * The choice is made once, under pthread_once, on the first kernel call or
 * the first hl_isa_* call, whichever comes first: the best level the CPU
 * supports (__builtin_cpu_supports, which also checks that the OS saves the
 * wider registers), or the lower one $HYPERLORA_ISA names. The only state
 * written is `chosen` and its message, both set inside that once-routine
 * before any reader can see them and never written again, so the forwarders
 * read them without locks from any thread. The tables themselves are const.
 *
 * A native build (-march=native) has one level, known at compile time; the
 * plain names are the kernels themselves and this file only reports the
 * level and checks $HYPERLORA_ISA against it. */
#include "kernels/dispatch.h"
#include "kernels/kernels.h"
#include "util/error.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const isa_names[HL_ISA_COUNT] = {"scalar", "avx2", "avx512"};

const char *hl_isa_name(hl_isa level) {
    return (unsigned)level < HL_ISA_COUNT ? isa_names[level] : "unknown";
}

#ifdef HL_ISA_DISPATCH

/* What the CPU can run. The avx2 level is compiled for x86-64-v3 (AVX2, FMA,
 * BMI1/2, F16C, LZCNT, MOVBE), the avx512 level for x86-64-v4 (that plus
 * AVX-512 F, CD, BW, DQ, VL), so the compiler may use any of those. Every
 * CPU with AVX2, FMA and BMI2 has the rest of v3; F16C is not asked for
 * by name because clang 14's __builtin_cpu_supports does not know it. */
static int cpu_has(hl_isa level) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    switch (level) {
    case HL_ISA_SCALAR: return 1;
    case HL_ISA_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi") &&
               __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("popcnt");
    case HL_ISA_AVX512:
        return cpu_has(HL_ISA_AVX2) && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512vl");
    default: return 0;
    }
#else
    return level == HL_ISA_SCALAR;
#endif
}

/* The per-level kernels, and one table of them per level. */
#define HL_ISA_TABLE_FIELD(ret, kw, name, params, args) ret(*name) params;
typedef struct {
    HL_ISA_KERNELS(HL_ISA_TABLE_FIELD)
} isa_table;

#define HL_ISA_DECLARE(ret, kw, name, params, args) ret HL_ISA_CAT(name, HL_ISA_LEVEL_NOW) params;
#define HL_ISA_ENTRY(ret, kw, name, params, args) HL_ISA_CAT(name, HL_ISA_LEVEL_NOW),

#define HL_ISA_LEVEL_NOW scalar
HL_ISA_KERNELS(HL_ISA_DECLARE)
static const isa_table table_scalar = {HL_ISA_KERNELS(HL_ISA_ENTRY)};
#undef HL_ISA_LEVEL_NOW
#ifdef HL_ISA_HAVE_AVX2
#define HL_ISA_LEVEL_NOW avx2
HL_ISA_KERNELS(HL_ISA_DECLARE)
static const isa_table table_avx2 = {HL_ISA_KERNELS(HL_ISA_ENTRY)};
#undef HL_ISA_LEVEL_NOW
#endif
#ifdef HL_ISA_HAVE_AVX512
#define HL_ISA_LEVEL_NOW avx512
HL_ISA_KERNELS(HL_ISA_DECLARE)
static const isa_table table_avx512 = {HL_ISA_KERNELS(HL_ISA_ENTRY)};
#undef HL_ISA_LEVEL_NOW
#endif

static const isa_table *level_table(hl_isa level) {
    switch (level) {
    case HL_ISA_SCALAR: return &table_scalar;
#ifdef HL_ISA_HAVE_AVX2
    case HL_ISA_AVX2: return &table_avx2;
#endif
#ifdef HL_ISA_HAVE_AVX512
    case HL_ISA_AVX512: return &table_avx512;
#endif
    default: return NULL;
    }
}

int hl_isa_available(hl_isa level) { return level_table(level) != NULL && cpu_has(level); }
int hl_isa_dispatching(void) { return 1; }

#else /* native build: one level, the compiler's */

#if defined(__AVX512F__) && defined(__AVX512DQ__) && defined(__AVX2__) && defined(__FMA__)
#define HL_ISA_NATIVE HL_ISA_AVX512
#elif defined(__AVX2__) && defined(__FMA__)
#define HL_ISA_NATIVE HL_ISA_AVX2
#else
#define HL_ISA_NATIVE HL_ISA_SCALAR
#endif

int hl_isa_available(hl_isa level) { return level == HL_ISA_NATIVE; }
int hl_isa_dispatching(void) { return 0; }

#endif

/* Written once by choose() under pthread_once, read-only afterwards. */
static pthread_once_t chosen_once = PTHREAD_ONCE_INIT;
static hl_isa chosen = HL_ISA_SCALAR;
static char chosen_problem[160]; /* empty unless $HYPERLORA_ISA was refused */
#ifdef HL_ISA_DISPATCH
static const isa_table *chosen_table;
#endif

static void choose(void) {
    hl_isa best = HL_ISA_SCALAR;
    for (int l = HL_ISA_COUNT - 1; l > HL_ISA_SCALAR; l--)
        if (hl_isa_available((hl_isa)l)) {
            best = (hl_isa)l;
            break;
        }
    chosen = best;
    const char *env = getenv("HYPERLORA_ISA");
    if (env && *env) {
        int asked = -1;
        for (int l = 0; l < HL_ISA_COUNT; l++)
            if (!strcmp(env, isa_names[l])) asked = l;
        if (asked < 0)
            snprintf(chosen_problem, sizeof chosen_problem,
                     "HYPERLORA_ISA=%.32s: expected \"scalar\", \"avx2\" or \"avx512\"", env);
        else if (!hl_isa_available((hl_isa)asked))
            snprintf(chosen_problem, sizeof chosen_problem, "HYPERLORA_ISA=%s: %s", env,
                     hl_isa_dispatching() ? "this CPU does not support it"
                                          : "this build is compiled for one level (-march=native, HL_NATIVE=ON); "
                                            "configure with -DHL_NATIVE=OFF to choose");
        else
            chosen = (hl_isa)asked;
    }
#ifdef HL_ISA_DISPATCH
    chosen_table = level_table(chosen);
#endif
}

hl_isa hl_isa_active(void) {
    pthread_once(&chosen_once, choose);
    return chosen;
}

hl_status hl_isa_check(hl_error *err) {
    pthread_once(&chosen_once, choose);
    if (chosen_problem[0]) return hl_fail(err, HL_ERR_INVALID_ARG, "%s", chosen_problem);
    return HL_OK;
}

#ifdef HL_ISA_DISPATCH
static inline const isa_table *active_table(void) {
    pthread_once(&chosen_once, choose);
    return chosen_table;
}

/* The plain names: one forwarder per kernel. */
#define HL_ISA_FORWARD(ret, kw, name, params, args) \
    ret name params { kw active_table()->name args; }
HL_ISA_KERNELS(HL_ISA_FORWARD)
#endif
