/* cmd_quantize.c: `hyperlora quantize`: a GGUF base model re-written with
 * its 2-D tensors in ggml block types, as llama-quantize writes it: one type
 * for all (--pure) or its k-quant _S/_M/_L mixes (model/quantize_model.c). */
#include "cli/cli.h"
#include "model/quantize_model.h"

#include <stdio.h>
#include <string.h>

static const char *CMD = "quantize";

int cmd_quantize(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *type_name = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (cli_is_help(a)) {
            printf("usage: hyperlora quantize IN.gguf -o OUT.gguf --type TYPE\n\n"
                   "Writes IN with every 2-D tensor (projections, token_embd, output) quantized\n"
                   "to TYPE by ggml's reference algorithm (no importance matrix); norms stay f32.\n"
                   "The file is laid out as llama-quantize writes it, byte for byte.\n"
                   "TYPE: q8_0, q4_0, q4_1, q5_0, q5_1, q2_K, q3_K, q4_K, q5_K, q6_K (one type for\n"
                   "all, as --pure), or llama-quantize's mixes q3_K_S, q3_K_M, q3_K_L, q4_K_S,\n"
                   "q4_K_M, q5_K_S, q5_K_M (a type per tensor: output q6_K, some\n"
                   "attn_v/ffn_down/attn_output layers higher; llama-quantize's plain Q2_K mix is\n"
                   "not offered: q2_K here is pure); any case.\n"
                   "IN must be f32, f16 or bf16; every 2-D row must be whole blocks (32 or 256;\n"
                   "the mixes fall back to 32-element types as llama.cpp does).\n");
            return 0;
        }
        if (a[0] != '-') {
            if (in) return cli_error(CMD, "more than one input (\"%s\" and \"%s\")", in, a);
            in = a;
            continue;
        }
        if (!(v = cli_value(CMD, argc, argv, &i))) return 1;
        if (!strcmp(a, "-o") || !strcmp(a, "--output")) out = v;
        else if (!strcmp(a, "--type")) type_name = v;
        else return cli_error(CMD, "unknown option %s (see --help)", a);
    }
    if (!in || !out || !type_name) return cli_error(CMD, "usage: hyperlora quantize IN.gguf -o OUT.gguf --type TYPE");
    int32_t type = hl_quantize_type_by_name(type_name), mix = hl_quantize_mix_by_name(type_name);
    if (type < 0 && mix < 0)
        return cli_error(CMD, "--type %s: not one of q8_0, q4_0, q4_1, q5_0, q5_1, q2_K, q3_K, q4_K, q5_K, q6_K, "
                         "q3_K_S, q3_K_M, q3_K_L, q4_K_S, q4_K_M, q5_K_S, q5_K_M", type_name);
    hl_io_plan plan;
    hl_io_plan_init(&plan);
    hl_io_plan_add(&plan, HL_IO_INPUT, "the input", in);
    hl_io_plan_add(&plan, HL_IO_OUTPUT, "-o", out);
    if (cli_check_io(CMD, &plan)) return 1;
    hl_error err = {0};
    hl_status s = type >= 0 ? hl_model_quantize_file(in, out, (uint32_t)type, &err)
                            : hl_model_quantize_file_mix(in, out, (hl_quant_mix)mix, &err);
    if (s != HL_OK) return cli_fail(CMD, &err);
    fprintf(stderr, "hyperlora quantize: wrote %s (%s)\n", out, type_name);
    return 0;
}
