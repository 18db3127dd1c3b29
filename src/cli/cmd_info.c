/* cmd_info.c: `hyperlora info`: what this machine and build run on: the CPU
 * and its microarchitecture, the kernel levels and the one in use, the BLAS,
 * and which weight layout each product kind was given and why
 * (kernels/kernel_choice.h). `--json` prints the same as one JSON object, for
 * benchmark reports. */
#include <cblas.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "hyperlora.h"
#include "kernels/dispatch.h"
#include "kernels/kernel_choice.h"
#include "model/model.h"
#include "util/error.h"

#define CMD "info"

static void help(void) {
    printf("usage: hyperlora info [--json]\n\n"
           "Prints the CPU (vendor, family, model, microarchitecture), the kernel levels this build\n"
           "and CPU can run and the one in use, the BLAS library, and the weight layout chosen for\n"
           "inference and for LoRA training with the measurement behind the choice.\n\n"
           "  --json   one JSON object instead of text\n\n"
           "Pinning: HYPERLORA_ISA=scalar|avx2|avx512 picks a lower kernel level;\n"
           "HYPERLORA_WEIGHTS=packed|rows pins the weight layout of both inference and training.\n"
           "HYPERLORA_QPRODUCT=int8|f32 pins how inference multiplies quantized (block type) weights:\n"
           "8-bit activations and integer dot products (int8, the default, as llama.cpp does),\n"
           "or dequantized tiles and f32 products (exact against the dequantized model).\n"
           "HYPERLORA_VNNI=off keeps the int8 products off the VNNI byte-dot instructions\n"
           "(same bits either way; for measuring).\n"
           "HYPERLORA_DECODE_AHEAD=BYTES pins how far ahead decoding over q4_K, q5_K and q6_K asks the\n"
           "memory for each row's blocks (0: the hardware prefetchers alone; same bits either way).\n"
           "Each layout and level is deterministic on its own and rounds differently from the\n"
           "others, so training records them and a resume must run on the same ones.\n");
}

int cmd_info(int argc, char **argv) {
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            help();
            return 0;
        }
        if (!strcmp(argv[i], "--json")) json = 1;
        else return cli_error(CMD, "unknown option \"%s\" (see hyperlora info --help)", argv[i]);
    }
    hl_cpu_id id;
    hl_cpu_identify(&id);
    hl_kernel_choice kc = hl_kernel_choice_active();
    hl_error err = {0};
    int32_t infer = HL_WEIGHTS_ROWS, train = HL_WEIGHTS_ROWS;
    if (hl_weight_layout_resolve(HL_WEIGHTS_AUTO, kc.infer == HL_WEIGHTS_PACKED, &infer, &err) != HL_OK ||
        hl_weight_layout_resolve(HL_WEIGHTS_AUTO, kc.train == HL_WEIGHTS_PACKED, &train, &err) != HL_OK)
        return cli_error(CMD, "%s", err.msg);
    int32_t a8 = 1;
    if (hl_quant_product_resolve(&a8, &err) != HL_OK) return cli_error(CMD, "%s", err.msg);
    if (hl_decode_ahead_check(&err) != HL_OK) return cli_error(CMD, "%s", err.msg);
    const char *qpin = getenv("HYPERLORA_QPRODUCT");
    const char *pin = getenv("HYPERLORA_WEIGHTS");
    const char *isa_env = getenv("HYPERLORA_ISA");
    const char *blas = openblas_get_config();
    const char *core = openblas_get_corename();
    hl_isa active = hl_isa_active();
    if (json) {
        cJSON *o = cJSON_CreateObject(), *cpu = cJSON_AddObjectToObject(o, "cpu");
        cJSON_AddStringToObject(o, "version", HL_VERSION_STRING);
        cJSON_AddStringToObject(cpu, "vendor", id.vendor);
        cJSON_AddStringToObject(cpu, "brand", id.brand);
        cJSON_AddNumberToObject(cpu, "family", id.family);
        cJSON_AddNumberToObject(cpu, "model", id.model);
        cJSON_AddStringToObject(cpu, "uarch", id.uarch);
        cJSON *lv = cJSON_AddArrayToObject(o, "levels_available");
        for (int l = 0; l < HL_ISA_COUNT; l++)
            if (hl_isa_available((hl_isa)l)) cJSON_AddItemToArray(lv, cJSON_CreateString(hl_isa_name((hl_isa)l)));
        cJSON_AddStringToObject(o, "level", hl_isa_name(active));
        cJSON_AddBoolToObject(o, "dispatching", hl_isa_dispatching());
        cJSON_AddStringToObject(o, "blas", blas ? blas : "");
        cJSON_AddStringToObject(o, "blas_core", core ? core : "");
        cJSON *w = cJSON_AddObjectToObject(o, "weights");
        cJSON_AddStringToObject(w, "inference", hl_weight_layout_name(infer));
        cJSON_AddStringToObject(w, "training", hl_weight_layout_name(train));
        cJSON_AddStringToObject(w, "basis", kc.basis);
        if (pin && *pin) cJSON_AddStringToObject(w, "pinned_by", "HYPERLORA_WEIGHTS");
        cJSON *qp = cJSON_AddObjectToObject(o, "quantized_products");
        cJSON_AddStringToObject(qp, "inference", a8 ? "int8" : "f32");
        cJSON_AddBoolToObject(qp, "vnni", a8 && hl_a8_vnni_active());
        cJSON_AddStringToObject(qp, "int8_types", "q4_0 q4_1 q5_0 q5_1 q8_0 q2_K q3_K q4_K q5_K q6_K");
        cJSON_AddStringToObject(qp, "training", "f32");
        cJSON_AddNumberToObject(qp, "k_decode_ahead_bytes", kc.decode_ahead);
        cJSON_AddStringToObject(qp, "k_decode_ahead_basis", kc.decode_basis);
        if (qpin && *qpin) cJSON_AddStringToObject(qp, "pinned_by", "HYPERLORA_QPRODUCT");
        char *text = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (!text) return cli_error(CMD, "out of memory");
        printf("%s\n", text);
        free(text);
        return 0;
    }
    printf("hyperlora %s\n", HL_VERSION_STRING);
    printf("cpu:         %s (%s family 0x%x model 0x%x): %s\n", id.brand[0] ? id.brand : "unnamed",
           id.vendor[0] ? id.vendor : "no cpuid", id.family, id.model, id.uarch);
    printf("levels:     ");
    for (int l = 0; l < HL_ISA_COUNT; l++)
        printf(" %s %s%s", hl_isa_name((hl_isa)l), hl_isa_available((hl_isa)l) ? "yes" : "no",
               l + 1 < HL_ISA_COUNT ? "," : "\n");
    printf("kernels:     %s (%s%s)\n", hl_isa_name(active),
           hl_isa_dispatching() ? "chosen at run time" : "compiled for this CPU, -march=native",
           isa_env && *isa_env ? ", HYPERLORA_ISA" : "");
    printf("blas:        %s (core %s)\n", blas ? blas : "unknown", core ? core : "unknown");
    printf("weights:     inference %s, LoRA training %s%s\n", hl_weight_layout_name(infer),
           train == HL_WEIGHTS_ROWS ? "rows (OpenBLAS tiles)" : "packed",
           pin && *pin ? " (pinned by HYPERLORA_WEIGHTS)" : "");
    printf("  because:   %s\n", kc.basis);
    printf("quantized:   inference on block types %s%s; f16/bf16 weights and LoRA training f32\n",
           a8 ? (hl_a8_vnni_active() ? "int8 (8-bit activations, integer dots on VNNI)"
                                     : "int8 (8-bit activations, integer dots)")
              : "f32 (dequantized tiles)",
           qpin && *qpin ? " (pinned by HYPERLORA_QPRODUCT)" : "");
    if (kc.decode_ahead > 0)
        printf("  q4_K-q6_K decoding: each row's blocks asked for %d bytes ahead (%s)\n", kc.decode_ahead,
               kc.decode_basis);
    else printf("  q4_K-q6_K decoding: the hardware prefetchers alone (%s)\n", kc.decode_basis);
    printf("always:      training attention on OpenBLAS; quantized bases read from their blocks;\n"
           "             full training (pretrain) on OpenBLAS tiles\n");
    return 0;
}
