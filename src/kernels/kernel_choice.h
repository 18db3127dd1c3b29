/* kernel_choice.h: which weight layout the projections run on, chosen per
 * microarchitecture from measurements, and how a user pins it.
 *
 * Two product kinds have a choice, each between our packed panels
 * (matmul_packed.c) and the row-major weights (lane-tree dots for inference,
 * OpenBLAS tiles for training):
 *   - inference: prompt and decode x·Wᵀ share one layout per context, so that
 *     batched and token-by-token evaluation give the same bits;
 *   - LoRA training: x·Wᵀ and dY·W over the frozen base share one copy.
 * Attention runs on OpenBLAS (training) and on our kernels (inference) on
 * every machine; quantized bases are read from their blocks.
 *
 * The choice comes from a table keyed by microarchitecture and kernel level
 * (kernel_choice.c), each row naming the measurement behind it; a CPU the
 * table does not know gets the rule by kernel level. It is fixed for the
 * process, so every run on one machine and level rounds the same way.
 * $HYPERLORA_WEIGHTS=packed|rows pins both kinds; `hyperlora info` prints the
 * choice and its basis, and training records it in its resume settings. */
#ifndef HL_KERNELS_KERNEL_CHOICE_H
#define HL_KERNELS_KERNEL_CHOICE_H
#include <stdint.h>

#include "kernels/dispatch.h"

typedef struct hl_cpu_id {
    char vendor[13];   /* cpuid's vendor string, "AuthenticAMD", "GenuineIntel", ... ("" off x86) */
    char brand[49];    /* the processor brand string ("" when the CPU has none) */
    int family, model; /* display family and model (base plus extended fields) */
    const char *uarch; /* "zen2", "zen3", "zen4", "zen5", "intel-amx" (AVX-512 and AMX:
                        * Sapphire Rapids and later), "intel-avx512", "intel-avx2", "x86-64", "other" */
} hl_cpu_id;

/* Reads the running CPU (cpuid on x86). Never fails. */
void hl_cpu_identify(hl_cpu_id *out);

typedef struct hl_kernel_choice {
    int32_t infer;     /* hl_weight_layout: HL_WEIGHTS_PACKED or HL_WEIGHTS_ROWS */
    int32_t train;     /* the same, for LoRA training over an f32 base */
    const char *basis; /* one line: the measurement or rule behind this choice */
    /* Decoding over a q4_K, q5_K or q6_K weight with 8-bit activations:
     * how many bytes ahead of each row the kernel asks the memory for that
     * row's blocks (0: the hardware prefetchers alone). Changes no value.
     * $HYPERLORA_DECODE_AHEAD=BYTES (0 ... 1048576) pins it. */
    int32_t decode_ahead;
    const char *decode_basis; /* the measurement behind decode_ahead */
} hl_kernel_choice;

/* The table's choice for a microarchitecture (hl_cpu_id.uarch) at a kernel
 * level, before $HYPERLORA_WEIGHTS. Pure: the tests read every row. */
hl_kernel_choice hl_kernel_choice_for(const char *uarch, hl_isa level);
/* The choice for this CPU at the active level (computed once), with
 * $HYPERLORA_DECODE_AHEAD applied when it is valid. */
hl_kernel_choice hl_kernel_choice_active(void);
/* Refuses a $HYPERLORA_DECODE_AHEAD that is not a whole number of bytes in
 * 0 ... 1048576 (contexts over quantized bases and `hyperlora info` call it). */
hl_status hl_decode_ahead_check(hl_error *err);
/* How x·Wᵀ runs over a quantized weight whose type has an 8-bit-activation
 * kernel (every block type: q4_0 ... q8_0, q2_K ... q6_K; kernels.h,
 * hl_qmatmul_a8) in inference:
 *   - "int8" (the default): tokens quantized to int8, integer dot products,
 *     as llama.cpp does; decode reads the blocks once and never widens them;
 *   - "f32": the weight dequantized in tiles and f32 products, bit-equal to
 *     the same model dequantized to f32.
 * F16 and BF16 weights always take the f32 path, and LoRA training always
 * does (its gradients are checked against the dequantized weights). Both
 * paths give the same bits at any thread count and batch size; the int8 one
 * also at every SIMD level.
 * $HYPERLORA_QPRODUCT=int8|f32 pins it; anything else is refused. *a8 = 1
 * for int8. */
hl_status hl_quant_product_resolve(int32_t *a8, hl_error *err);
/* Whether the int8 products run on VNNI byte-dot instructions (one
 * instruction where the plain AVX2 form takes two): a native build compiled
 * with AVX512-VNNI or AVX-VNNI always does; a portable build does when the
 * CPU has the VNNI of the active level (AVX512-VNNI at avx512, AVX-VNNI at
 * avx2) and $HYPERLORA_VNNI is not "off". The integer sums are exact, so
 * the bits are the same either way; "off" is for measuring. Computed once. */
int hl_a8_vnni_active(void);
/* Whether this CPU has the VNNI of a level's twin (AVX-VNNI for avx2,
 * AVX512-VNNI for avx512; 0 for scalar), whatever the environment says. */
int hl_cpu_has_vnni(hl_isa level);
/* "packed" or "rows". */
const char *hl_weight_layout_name(int32_t layout);
#endif
