/* kernel_choice.c: the CPU's microarchitecture from cpuid, and the table of
 * measured weight-layout choices per microarchitecture and kernel level (see
 * kernel_choice.h; the measurements are in BENCHMARKS.md, "Kernel choice").
 * A row is added only with a measurement behind it; anything else falls
 * back to the rule by level that every build had before the table. */
#include "kernels/kernel_choice.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "hyperlora.h"
#include "util/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

static const char *uarch_of(const char *vendor, int family, int model, int avx512, int amx) {
    if (!strcmp(vendor, "AuthenticAMD") || !strcmp(vendor, "HygonGenuine")) {
        if (family == 0x17) return model >= 0x30 ? "zen2" : "x86-64";
        /* family 19h holds Zen 3 and Zen 4; only Zen 4 has AVX-512 (a guest
         * that hides it runs as a Zen 3 would, at the AVX2 level) */
        if (family == 0x19) return avx512 ? "zen4" : "zen3";
        if (family == 0x1a) return "zen5";
        return "x86-64";
    }
    /* Intel by feature, not model number: guests often show a model that
     * is not the host's. AMX marks Sapphire Rapids and the server parts
     * after it (AVX-512 with two 512-bit FMA pipes per core). */
    if (!strcmp(vendor, "GenuineIntel")) return avx512 ? (amx ? "intel-amx" : "intel-avx512") : "intel-avx2";
    (void)model;
    return vendor[0] ? "x86-64" : "other";
}

void hl_cpu_identify(hl_cpu_id *out) {
    memset(out, 0, sizeof *out);
    out->uarch = "other";
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return;
    memcpy(out->vendor, &b, 4);
    memcpy(out->vendor + 4, &d, 4);
    memcpy(out->vendor + 8, &c, 4);
    unsigned max_leaf = a;
    if (__get_cpuid(1, &a, &b, &c, &d)) {
        int base_family = (int)((a >> 8) & 0xf), base_model = (int)((a >> 4) & 0xf);
        out->family = base_family == 0xf ? base_family + (int)((a >> 20) & 0xff) : base_family;
        out->model = base_family == 0x6 || base_family == 0xf ? base_model + (int)(((a >> 16) & 0xf) << 4) : base_model;
    }
    int avx512 = 0, amx = 0;
    if (max_leaf >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        avx512 = (b >> 16) & 1; /* AVX512F */
        amx = (d >> 24) & 1;    /* AMX-TILE */
    }
    unsigned ext = __get_cpuid_max(0x80000000u, NULL);
    if (ext >= 0x80000004u) {
        unsigned r[12];
        for (unsigned i = 0; i < 3; i++) __get_cpuid(0x80000002u + i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2], &r[4 * i + 3]);
        memcpy(out->brand, r, 48);
        out->brand[48] = 0;
        /* the string is padded with spaces on some parts */
        size_t n = strlen(out->brand), s = 0;
        while (n > 0 && out->brand[n - 1] == ' ') out->brand[--n] = 0;
        while (out->brand[s] == ' ') s++;
        memmove(out->brand, out->brand + s, n - s + 1);
    }
    out->uarch = uarch_of(out->vendor, out->family, out->model, avx512, amx);
#endif
}

typedef struct {
    const char *uarch;
    hl_isa level;
    hl_kernel_choice choice;
} row;

/* Measured rows. Each basis says what was timed; BENCHMARKS.md has the runs.
 * Rows without a decode_ahead leave q4_K-q6_K decoding to the hardware
 * prefetchers: on a Zen 3 asking 8 KiB ahead made the K types' decoding
 * 25-45% slower (matmul_a8.c). */
#define ZEN4_AHEAD 4096
#define ZEN4_AHEAD_BASIS                                                                                       \
    "zen4 table row: s110M tg64 at 2 threads, rounds alternating, 423-449 tok/s at q4_K_M with the "           \
    "hardware prefetchers alone, 454-483 asking 4 KiB ahead, 437-463 at 8 KiB; q6_K 353-386, 398-431 and "    \
    "364-398; q5_K_M 411, 430-437 at 4 KiB"
#define ZEN5_AHEAD_BASIS                                                                                       \
    "zen5 table row: s110M tg64 at 2 threads, 3 rounds alternating, asking 4 or 8 KiB ahead measured the "    \
    "same as none within the host's noise: q4_K_M 386-494 tok/s with none, 353-491 at 4 KiB, 386-503 at "     \
    "8 KiB; q6_K 377-445, 392-429 and 410-462"
static const row table[] = {
    {"zen5", HL_ISA_AVX512, {HL_WEIGHTS_PACKED, HL_WEIGHTS_PACKED,
                             "zen5/avx512 table row: packed panels measured 97-114% of the same run's OpenBLAS sgemm "
                             "peak in s110M LoRA training (OpenBLAS tiles 75-88%), s110M pp128 1,826 against 1,363 "
                             "tok/s on rows",
                             0, ZEN5_AHEAD_BASIS}},
    {"zen4", HL_ISA_AVX512, {HL_WEIGHTS_PACKED, HL_WEIGHTS_ROWS,
                             "zen4/avx512 table row: training on OpenBLAS tiles, s110M 1x256 365 tok/s against 330 "
                             "packed, s15M 4x256 2,359 against 2,083 (OpenBLAS sgemm 196-204 GFLOP/s, the packed "
                             "dY*W 141-147); inference packed, s110M pp128 880 tok/s against 701 rows, tg64 112 "
                             "against 81",
                             ZEN4_AHEAD, ZEN4_AHEAD_BASIS}},
    {"intel-amx", HL_ISA_AVX512, {HL_WEIGHTS_PACKED, HL_WEIGHTS_ROWS,
                                  "intel-amx/avx512 table row: training on OpenBLAS tiles, s110M 1x256 488 tok/s "
                                  "against 442 packed (OpenBLAS sgemm 342-410 GFLOP/s, the packed dY*W 201-239); "
                                  "s110M pp128 1,294 tok/s packed against 842 rows",
                                  0, NULL}},
    {"zen3", HL_ISA_AVX2, {HL_WEIGHTS_PACKED, HL_WEIGHTS_ROWS,
                           "zen3/avx2 table row: s110M pp128 501 tok/s packed against 414 rows, tg64 53 against 42; "
                           "training on OpenBLAS tiles, s110M 1x256 224 tok/s against 165 packed (the packed dY*W "
                           "runs 59-84 GFLOP/s at avx2 where OpenBLAS runs 139-178)",
                           0, "zen3 table row: asking 8 KiB ahead made the K types' decoding 25-45% slower"}},
};

hl_kernel_choice hl_kernel_choice_for(const char *uarch, hl_isa level) {
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (uarch && !strcmp(table[i].uarch, uarch) && table[i].level == level) return table[i].choice;
    switch (level) {
    case HL_ISA_AVX512:
        return (hl_kernel_choice){HL_WEIGHTS_PACKED, HL_WEIGHTS_PACKED,
                                  "level rule (no table row for this CPU): packed at avx512", 0, NULL};
    case HL_ISA_AVX2:
        return (hl_kernel_choice){HL_WEIGHTS_PACKED, HL_WEIGHTS_ROWS,
                                  "level rule (no table row for this CPU): packed inference at avx2, training on "
                                  "OpenBLAS tiles (measured faster than the packed dY*W on the one avx2 CPU measured)",
                                  0, NULL};
    default:
        return (hl_kernel_choice){HL_WEIGHTS_ROWS, HL_WEIGHTS_ROWS,
                                  "level rule: rows at the scalar level (the packed panels are not vectorised)", 0, NULL};
    }
}

static pthread_once_t active_once = PTHREAD_ONCE_INIT;
static hl_kernel_choice active; /* written once under pthread_once, read-only afterwards */

/* $HYPERLORA_DECODE_AHEAD: 1 and *bytes when it is set and valid, 0 when
 * unset, -1 when set to anything else. */
#define DECODE_AHEAD_MAX (1 << 20)
static int decode_ahead_env(int32_t *bytes) {
    const char *env = getenv("HYPERLORA_DECODE_AHEAD");
    if (!env || !*env) return 0;
    char *end = NULL;
    long v = strtol(env, &end, 10);
    if (*end || v < 0 || v > DECODE_AHEAD_MAX) return -1;
    *bytes = (int32_t)v;
    return 1;
}

static void choose_active(void) {
    hl_cpu_id id;
    hl_cpu_identify(&id);
    active = hl_kernel_choice_for(id.uarch, hl_isa_active());
    if (!active.decode_basis) active.decode_basis = "not measured on this CPU";
    int32_t bytes;
    if (decode_ahead_env(&bytes) == 1) {
        active.decode_ahead = bytes;
        active.decode_basis = "pinned by HYPERLORA_DECODE_AHEAD";
    }
}

hl_status hl_decode_ahead_check(hl_error *err) {
    int32_t bytes;
    if (decode_ahead_env(&bytes) < 0)
        return hl_fail(err, HL_ERR_INVALID_ARG, "HYPERLORA_DECODE_AHEAD=%s: expected a whole number of bytes, 0 to %d",
                       getenv("HYPERLORA_DECODE_AHEAD"), DECODE_AHEAD_MAX);
    return HL_OK;
}

hl_kernel_choice hl_kernel_choice_active(void) {
    pthread_once(&active_once, choose_active);
    return active;
}

const char *hl_weight_layout_name(int32_t layout) {
    return layout == HL_WEIGHTS_PACKED ? "packed" : layout == HL_WEIGHTS_ROWS ? "rows" : "auto";
}

/* The VNNI of each level, from cpuid: leaf 7 ECX bit 11 (AVX512-VNNI),
 * leaf 7 subleaf 1 EAX bit 4 (AVX-VNNI). The level itself was already
 * checked to be usable (dispatch.c), which covers the OS saving the
 * registers. */
int hl_cpu_has_vnni(hl_isa level) {
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    if (__get_cpuid_max(0, NULL) < 7) return 0;
    if (level == HL_ISA_AVX512) {
        __cpuid_count(7, 0, a, b, c, d);
        return (c >> 11) & 1;
    }
    if (level == HL_ISA_AVX2) {
        __cpuid_count(7, 1, a, b, c, d);
        return (a >> 4) & 1;
    }
#endif
    (void)level;
    return 0;
}

static pthread_once_t vnni_once = PTHREAD_ONCE_INIT;
static int vnni; /* written once under pthread_once, read-only afterwards */

static void choose_vnni(void) {
#if defined(__AVX512VNNI__) || defined(__AVXVNNI__)
    vnni = !hl_isa_dispatching(); /* a native build compiled the instruction in */
    if (vnni) return;
#endif
    const char *env = getenv("HYPERLORA_VNNI");
    vnni = hl_isa_dispatching() && !(env && !strcmp(env, "off")) && hl_cpu_has_vnni(hl_isa_active());
}

int hl_a8_vnni_active(void) {
    pthread_once(&vnni_once, choose_vnni);
    return vnni;
}

/* int8 by default: on a Zen 3 (AVX2) guest it decoded s110M 2.1-3.8x faster
 * than the dequantizing tile at every type measured (q8_0, q4_0, q5_1, q4_K_M,
 * q5_K_M, q6_K), and ran prompts faster at the K types, slower at the
 * 32-element ones (BENCHMARKS.md, "8-bit activations"). */
hl_status hl_quant_product_resolve(int32_t *a8, hl_error *err) {
    const char *env = getenv("HYPERLORA_QPRODUCT");
    *a8 = 1;
    if (!env || !*env || !strcmp(env, "int8")) return HL_OK;
    if (!strcmp(env, "f32")) {
        *a8 = 0;
        return HL_OK;
    }
    return hl_fail(err, HL_ERR_INVALID_ARG, "HYPERLORA_QPRODUCT=%s: expected \"int8\" or \"f32\"", env);
}
