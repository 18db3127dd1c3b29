/* cmd_convert.c: `hyperlora convert`: llama2.c checkpoint (+ tokenizer.bin)
 * to a GGUF that both hyperlora and llama.cpp load. */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

static const char *CMD = "convert";

int cmd_convert(int argc, char **argv) {
    const char *in = NULL, *tok = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (cli_is_help(a)) {
            printf("usage: hyperlora convert MODEL.bin --tokenizer TOK.bin -o OUT.gguf\n\n"
                   "Converts a llama2.c checkpoint and its tokenizer to GGUF (llama architecture,\n"
                   "F32, llama.* and tokenizer.ggml.* keys, explicit output.weight).\n"
                   "Also re-writes a GGUF model in canonical form.\n");
            return 0;
        }
        if (a[0] != '-') {
            if (in) return cli_error(CMD, "more than one input (\"%s\" and \"%s\")", in, a);
            in = a;
            continue;
        }
        if (!(v = cli_value(CMD, argc, argv, &i))) return 1;
        if (!strcmp(a, "--tokenizer")) tok = v;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) out = v;
        else return cli_error(CMD, "unknown option %s (see --help)", a);
    }
    if (!in || !out) return cli_error(CMD, "usage: hyperlora convert MODEL.bin --tokenizer TOK.bin -o OUT.gguf");
    hl_io_plan plan;
    hl_io_plan_init(&plan);
    hl_io_plan_add(&plan, HL_IO_INPUT, "the input", in);
    hl_io_plan_add(&plan, HL_IO_INPUT, "--tokenizer", tok);
    hl_io_plan_add(&plan, HL_IO_OUTPUT, "-o", out);
    if (cli_check_io(CMD, &plan)) return 1;
    hl_error err = {0};
    hl_model *m = NULL;
    if (hl_model_load(in, tok, &m, &err) != HL_OK) return cli_fail(CMD, &err);
    hl_status s = hl_model_save_gguf(m, out, &err);
    const hl_model_config *c = hl_model_get_config(m);
    if (s == HL_OK)
        fprintf(stderr, "hyperlora convert: wrote %s (dim %d, %d layers, %d heads, %d kv heads, ffn %d, vocab %d)\n",
                out, c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->hidden_dim, c->vocab_size);
    hl_model_free(m);
    return s == HL_OK ? 0 : cli_fail(CMD, &err);
}
