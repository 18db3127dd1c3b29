/* cmd_merge.c: `hyperlora merge`: base + adapters -> a new merged GGUF. */
#include "cli/cli.h"
#include "lora/merge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *CMD = "merge";

int cmd_merge(int argc, char **argv) {
    const char *model_path = NULL, *tok = NULL, *out = NULL;
    cli_loras loras = {0};
    int force = 0, rc = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (cli_is_help(a)) {
            printf("usage: hyperlora merge -m BASE [--lora A.gguf] [--lora-scaled B.gguf:0.5 ...] -o MERGED.gguf\n\n"
                   "Writes a new base model with W' = W + sum(u * s * B * A) over the adapters\n"
                   "(u = user scale, s = alpha/r or alpha/sqrt(r)). The base file is not modified.\n"
                   "  --tokenizer FILE   for llama2.c .bin bases\n"
                   "  --force            apply adapters made for another base\n");
            return 0;
        }
        if (!strcmp(a, "--force")) {
            force = 1;
            continue;
        }
        if (!(v = cli_value(CMD, argc, argv, &i))) goto done;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) model_path = v;
        else if (!strcmp(a, "--tokenizer")) tok = v;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) out = v;
        else if (!strcmp(a, "--lora") || !strcmp(a, "--lora-scaled")) {
            if (!cli_loras_add(&loras, CMD, a, v, !strcmp(a, "--lora-scaled"))) goto done;
        } else {
            cli_error(CMD, "unknown option %s (see --help)", a);
            goto done;
        }
    }
    if (!model_path || !out || loras.n == 0) {
        cli_error(CMD, "needs -m BASE, at least one --lora, and -o OUT (see --help)");
        goto done;
    }
    hl_io_plan plan;
    hl_io_plan_init(&plan);
    hl_io_plan_add(&plan, HL_IO_INPUT, "-m", model_path);
    hl_io_plan_add(&plan, HL_IO_INPUT, "--tokenizer", tok);
    for (int i = 0; i < loras.n; i++) cli_plan_adapter(&plan, "--lora", loras.paths[i]);
    hl_io_plan_add(&plan, HL_IO_OUTPUT, "-o", out);
    if (cli_check_io(CMD, &plan)) goto done;
    hl_error err = {0};
    hl_model *m = NULL;
    hl_adapter *adapters[CLI_MAX_LORA] = {0};
    int n = loras.n;
    hl_status s = hl_model_load(model_path, tok, &m, &err);
    for (int i = 0; s == HL_OK && i < n; i++) s = hl_adapter_load(loras.paths[i], m, force, &adapters[i], &err);
    if (s == HL_OK) s = hl_merge_to_gguf(m, (const hl_adapter *const *)adapters, loras.scales, n, out, &err);
    if (s == HL_OK) fprintf(stderr, "hyperlora merge: wrote %s (%d adapter%s)\n", out, n, n == 1 ? "" : "s");
    else cli_fail(CMD, &err);
    for (int i = 0; i < n; i++) hl_adapter_free(adapters[i]);
    hl_model_free(m);
    rc = s == HL_OK ? 0 : 1;
done:
    cli_loras_free(&loras);
    return rc;
}
