/* cmd_perplexity.c: `hyperlora perplexity`: a model's (and adapters')
 * perplexity on a text file by llama-perplexity's convention
 * (infer/perplexity.c), printed as llama.cpp prints it. */
#include "cli/cli.h"
#include "infer/perplexity.h"
#include "util/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *CMD = "perplexity";

#define MAX_TEXT (256u << 20) /* bytes of text read */

static void help(void) {
    printf("usage: hyperlora perplexity -m MODEL -f TEXT [--ctx N] [options]\n\n"
           "  -m, --model FILE        GGUF model (any supported type, quantized included),\n"
           "                          or llama2.c checkpoint (.bin, with --tokenizer)\n"
           "  --tokenizer FILE        llama2.c tokenizer.bin (for .bin checkpoints)\n"
           "  -f, --file FILE         the text (UTF-8), tokenized once (with BOS when the vocabulary adds one)\n"
           "  --ctx N                 chunk length (default 512, at most the model's context)\n"
           "  --threads N             worker threads; the figures are identical for any N (default 1)\n"
           "  --lora FILE             apply an adapter at scale 1 (repeatable)\n"
           "  --lora-scaled FILE:S    apply an adapter at user scale S (repeatable)\n\n"
           "llama-perplexity's convention: floor(tokens / N) chunks of N tokens, each starting\n"
           "with BOS at position 0 (when the vocabulary adds BOS; Qwen's does not), the second\n"
           "half of each chunk scored. Prints the running value after each chunk, then\n"
           "PPL = ... +/- ... (llama.cpp's standard error).\n");
}

int cmd_perplexity(int argc, char **argv) {
    const char *model_path = NULL, *tok_path = NULL, *text_path = NULL;
    long threads = 1, n_ctx = 512;
    cli_loras loras = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (cli_is_help(a)) {
            help();
            return 0;
        }
        if (!(v = cli_value(CMD, argc, argv, &i))) return 1;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) model_path = v;
        else if (!strcmp(a, "--tokenizer")) tok_path = v;
        else if (!strcmp(a, "-f") || !strcmp(a, "--file")) text_path = v;
        else if (!strcmp(a, "--ctx") || !strcmp(a, "-c")) {
            if (!cli_int(CMD, a, v, 4, 1 << 20, &n_ctx)) return 1;
        } else if (!strcmp(a, "--threads") || !strcmp(a, "-t")) {
            if (!cli_int(CMD, a, v, 1, 256, &threads)) return 1;
        } else if (!strcmp(a, "--lora") || !strcmp(a, "--lora-scaled")) {
            if (!cli_loras_add(&loras, CMD, a, v, !strcmp(a, "--lora-scaled"))) {
                cli_loras_free(&loras);
                return 1;
            }
        } else {
            cli_loras_free(&loras);
            return cli_error(CMD, "unknown option %s (see --help)", a);
        }
    }
    if (!model_path || !text_path) {
        cli_loras_free(&loras);
        return cli_error(CMD, "needs -m MODEL and -f TEXT (see --help)");
    }
    hl_error err = {0};
    hl_model *model = NULL;
    hl_context *ctx = NULL;
    hl_adapter *adapters[CLI_MAX_LORA] = {0};
    int32_t *ids = NULL;
    char *text = NULL;
    hl_perplexity_result r = {0};
    int rc = 1;
    hl_error ferr = {0};
    FILE *f = hl_fopen_regular(text_path, &ferr);
    if (!f) {
        cli_fail(CMD, &ferr);
        goto done;
    }
    text = malloc(MAX_TEXT + 1);
    size_t n_text = text ? fread(text, 1, MAX_TEXT + 1, f) : 0;
    int read_err = ferror(f);
    fclose(f);
    if (!text || read_err || n_text > MAX_TEXT) {
        cli_error(CMD, "%s: %s", text_path, !text ? "out of memory" : read_err ? "read error" : "larger than 256 MiB");
        goto done;
    }
    if (hl_model_load(model_path, tok_path, &model, &err) != HL_OK) goto fail;
    if (n_ctx > hl_model_get_config(model)->seq_len) {
        cli_error(CMD, "--ctx %ld is longer than the context length of %s (%d positions)", n_ctx, model_path,
                  hl_model_get_config(model)->seq_len);
        goto done;
    }
    hl_context_params cp = {.n_ctx = (int32_t)n_ctx, .n_threads = (int32_t)threads};
    if (hl_context_init(model, &cp, &ctx, &err) != HL_OK) goto fail;
    for (int i = 0; i < loras.n; i++)
        if (hl_adapter_load(loras.paths[i], model, 0, &adapters[i], &err) != HL_OK) goto fail;
    if (loras.n && hl_context_set_adapters(ctx, (const hl_adapter *const *)adapters, loras.scales, loras.n, &err))
        goto fail;
    const hl_tokenizer *tok = hl_model_get_tokenizer(model);
    size_t n_ids;
    /* As llama-perplexity: BOS first and at each chunk's start only when the vocabulary asks for it
     * (Qwen's does not). */
    const int add_bos = hl_tokenizer_add_bos(tok);
    if (hl_tokenizer_encode(tok, text, n_text, add_bos, 0, &ids, &n_ids, &err) != HL_OK) goto fail;
    fprintf(stderr, "hyperlora perplexity: %zu tokens, %zu chunks of %ld\n", n_ids, n_ids / (size_t)n_ctx, n_ctx);
    if (hl_perplexity(ctx, ids, (int64_t)n_ids, (int32_t)n_ctx, add_bos ? hl_tokenizer_bos(tok) : -1, &r, &err) != HL_OK) goto fail;
    for (int32_t c = 0; c < r.n_chunks; c++) printf("[%d]%.4f%s", c + 1, r.running[c], c + 1 < r.n_chunks ? "," : "\n");
    printf("PPL = %.4f +/- %.5f\n", r.ppl, r.ppl_err);
    rc = 0;
    goto done;
fail:
    rc = cli_fail(CMD, &err);
done:
    hl_free(r.running);
    hl_free(ids);
    free(text);
    for (int i = 0; i < loras.n; i++) hl_adapter_free(adapters[i]);
    hl_context_free(ctx);
    hl_model_free(model);
    cli_loras_free(&loras);
    return rc;
}
