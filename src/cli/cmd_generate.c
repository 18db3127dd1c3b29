/* cmd_generate.c: `hyperlora generate`: prompt in, text out, streamed.
 * stdout carries the prompt followed by the generated text, as llama2.c
 * prints it; timings and diagnostics go to stderr. */
#include "cli/cli.h"
#include "text/tokenizer.h"
#include "util/escape.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *CMD = "generate";

static void help(void) {
    printf("usage: hyperlora generate -m MODEL [-p PROMPT] [-n N] [options]\n\n"
           "  -m, --model FILE        GGUF model, or llama2.c checkpoint (.bin, with --tokenizer)\n"
           "  --tokenizer FILE        llama2.c tokenizer.bin (for .bin checkpoints)\n"
           "  -p, --prompt TEXT       prompt (default: empty, i.e. BOS only)\n"
           "  -n, --n-predict N       tokens to generate after the prompt (default 128)\n"
           "  --temp T                temperature; 0 = greedy (default 0)\n"
           "  --top-k K               keep the K most likely tokens (0 = off)\n"
           "  --top-p P               nucleus sampling threshold (1 = off)\n"
           "  --seed S                RNG seed for sampling (default 0)\n"
           "  --threads N             worker threads; output is identical for any N (default 1)\n"
           "  --ctx N                 context length (default: the model's, at most 4096; more only when asked,\n"
           "                          never more than the model's)\n"
           "  --lora FILE             apply an adapter at scale 1 (repeatable)\n"
           "  --lora-scaled FILE:S    apply an adapter at user scale S (repeatable)\n"
           "  --ignore-eos            keep generating past end-of-sequence\n");
}

typedef struct {
    const hl_tokenizer *tok;
    const hl_model *model; /* its file is checked after every token */
    hl_error *err;
    int truncated;
    int32_t prev;
    char buf[HL_TOKENIZER_MAX_PIECE + 16];
} printer;

static void print_token(printer *p, int32_t id) {
    size_t n = hl_tokenizer_decode(p->tok, p->prev, id, p->buf, sizeof p->buf);
    /* Like llama2.c, drop lone control bytes; UTF-8 (bytes >= 0x80) passes. */
    if (n == 1 && (unsigned char)p->buf[0] < 0x20 && !strchr("\n\t\r ", p->buf[0])) n = 0;
    fwrite(p->buf, 1, n, stdout);
    fflush(stdout);
    p->prev = id;
}

static int on_token(void *user, int32_t id) {
    printer *p = user;
    print_token(p, id);
    /* Truncated by another process: stop before the next step touches lost pages. */
    if (cli_check_model_file(p->model, p->err) != HL_OK) p->truncated = 1;
    return p->truncated;
}


int cmd_generate(int argc, char **argv) {
    const char *model_path = NULL, *tok_path = NULL, *prompt = "";
    long n_predict = 128, threads = 1, top_k = 0, n_ctx = 0;
    double temp = 0, top_p = 1;
    uint64_t seed = 0;
    int ignore_eos = 0;
    cli_loras loras = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (cli_is_help(a)) {
            help();
            return 0;
        }
        if (!strcmp(a, "--ignore-eos")) {
            ignore_eos = 1;
            continue;
        }
        if (!(v = cli_value(CMD, argc, argv, &i))) return 1;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) model_path = v;
        else if (!strcmp(a, "--tokenizer")) tok_path = v;
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) prompt = v;
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            if (!cli_int(CMD, a, v, 0, 1 << 24, &n_predict)) return 1;
        } else if (!strcmp(a, "--temp")) {
            if (!cli_float(CMD, a, v, 0, 100, &temp)) return 1;
        } else if (!strcmp(a, "--top-k")) {
            if (!cli_int(CMD, a, v, 0, 1 << 24, &top_k)) return 1;
        } else if (!strcmp(a, "--top-p")) {
            if (!cli_float(CMD, a, v, 1e-9, 1, &top_p)) return 1;
        } else if (!strcmp(a, "--seed")) {
            if (!cli_u64(CMD, a, v, &seed)) return 1;
        } else if (!strcmp(a, "--threads") || !strcmp(a, "-t")) {
            if (!cli_int(CMD, a, v, 1, 256, &threads)) return 1;
        } else if (!strcmp(a, "--ctx")) {
            if (!cli_int(CMD, a, v, 1, 1 << 24, &n_ctx)) return 1;
        } else if (!strcmp(a, "--lora") || !strcmp(a, "--lora-scaled")) {
            if (!cli_loras_add(&loras, CMD, a, v, !strcmp(a, "--lora-scaled"))) {
                cli_loras_free(&loras);
                return 1;
            }
        } else return cli_error(CMD, "unknown option %s (see --help)", a);
    }
    if (!model_path) return cli_error(CMD, "missing -m MODEL (see --help)");

    hl_error err = {0};
    hl_model *model = NULL;
    hl_context *ctx = NULL;
    hl_sampler *sampler = NULL;
    hl_adapter *adapters[CLI_MAX_LORA] = {0};
    int n_lora = loras.n;
    int32_t *ids = NULL;
    int rc = 1;
    if (hl_model_load(model_path, tok_path, &model, &err) != HL_OK) goto fail;
    const int32_t model_ctx = hl_model_get_config(model)->seq_len;
    if (n_ctx > model_ctx) {
        cli_error(CMD, "--ctx %ld is longer than the context length of %s (%d positions)", n_ctx, model_path,
                  model_ctx);
        goto done;
    }
    hl_context_params cp = {.n_ctx = (int32_t)n_ctx, .n_threads = (int32_t)threads};
    if (hl_context_init(model, &cp, &ctx, &err) != HL_OK) goto fail;
    for (int i = 0; i < n_lora; i++)
        if (hl_adapter_load(loras.paths[i], model, 0, &adapters[i], &err) != HL_OK) goto fail;
    if (n_lora && hl_context_set_adapters(ctx, (const hl_adapter *const *)adapters, loras.scales, n_lora, &err))
        goto fail;
    const hl_tokenizer *tok = hl_model_get_tokenizer(model);
    size_t n_ids;
    /* Special-token text in a prompt ("<|im_start|>") is parsed, as llama.cpp does. A tokenizer
     * that adds no BOS (Qwen) still gets one when the prompt is empty: generation needs a start. */
    int bos = hl_tokenizer_add_bos(tok) || prompt[0] == 0;
    if (hl_tokenizer_encode_special(tok, prompt, strlen(prompt), bos, 0, 1, &ids, &n_ids, &err) != HL_OK)
        goto fail;
    hl_sampler_params sp = {.temperature = (float)temp, .top_k = (int32_t)top_k, .top_p = (float)top_p, .seed = seed};
    if (hl_sampler_init(&sp, hl_model_get_config(model)->vocab_size, &sampler, &err) != HL_OK) goto fail;

    /* A prompt that cannot fit is refused before any of it is echoed. */
    if ((int64_t)n_ids > hl_context_n_ctx(ctx)) {
        char shown[64]; /* the start of the prompt, escaped, then "..." */
        cli_error(CMD, "the prompt \"%s\" (%zu bytes) is %zu tokens but the context holds %d (--ctx)",
                  hl_escape_str(prompt, shown, sizeof shown), strlen(prompt), n_ids, hl_context_n_ctx(ctx));
        goto done;
    }
    printer pr = {.tok = tok, .model = model, .err = &err, .prev = bos ? ids[0] : -1};
    for (size_t i = bos ? 1 : 0; i < n_ids; i++) print_token(&pr, ids[i]);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    hl_generate_params gp = {.n_predict = (int32_t)n_predict, .stop_at_eos = !ignore_eos};
    int32_t produced = 0;
    if (cli_check_model_file(model, &err) != HL_OK) goto fail;
    if (hl_generate(ctx, sampler, ids, (int32_t)n_ids, &gp, on_token, &pr, NULL, &produced, &err) != HL_OK ||
        pr.truncated) {
        printf("\n");
        goto fail;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("\n");
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    fprintf(stderr, "hyperlora generate: %zu prompt + %d generated tokens in %.3f s (%.1f tok/s), %ld thread%s, "
            "%s weights\n", n_ids, produced, secs, secs > 0 ? (double)(produced + (int32_t)n_ids) / secs : 0.0, threads,
            threads == 1 ? "" : "s", hl_context_weight_layout(ctx) == HL_WEIGHTS_PACKED ? "packed" : "row-major");
    rc = 0;
    goto done;
fail:
    rc = cli_fail(CMD, &err);
done:
    hl_free(ids);
    hl_sampler_free(sampler);
    hl_context_free(ctx);
    for (int i = 0; i < n_lora; i++) hl_adapter_free(adapters[i]);
    cli_loras_free(&loras);
    hl_model_free(model);
    return rc;
}
