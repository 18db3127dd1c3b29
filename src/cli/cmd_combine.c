/* cmd_combine.c: `hyperlora combine`: weighted adapters -> one new adapter
 * (cat, linear or svd; see lora/combine.h), with the error report. */
#include "cli/cli.h"
#include "lora/adapter_io.h"
#include "lora/combine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *CMD = "combine";
#define MAX_LORA 64

static void usage(void) {
    printf("usage: hyperlora combine -m BASE --method cat|linear|svd [--rank K] --lora A.gguf\n"
           "                         [--lora-weighted B.gguf:-0.5 ...] -o OUT.gguf [--peft-out DIR]\n\n"
           "Makes one adapter from weighted adapters. With w = the weight given here and\n"
           "s = each adapter's alpha/r (or alpha/sqrt(r)), the target is dW = sum(w * s * B * A)\n"
           "per projection; the result has scale 1 (alpha = r).\n"
           "  --method cat      exact: stacks the factors (rank = sum of ranks); any weights\n"
           "  --method linear   PEFT's linear: A = sum(sqrt(w) s A), B = sum(sqrt(w) B); equal\n"
           "                    ranks, w >= 0; exact only when the adapters share A or B\n"
           "  --method svd      best rank-K approximation of dW (needs --rank K)\n"
           "  --rank K          target rank for svd (clamped per tensor to the rank it can hold)\n"
           "  --lora FILE       an adapter (GGUF or PEFT directory) at weight 1\n"
           "  --lora-weighted FILE:W   an adapter at weight W (may be negative, except for linear)\n"
           "  -o, --output FILE the new adapter as GGUF\n"
           "  --peft-out DIR    also write it as a PEFT directory\n"
           "  --name NAME       the adapter's name (default \"combined\")\n"
           "  --tokenizer FILE  for llama2.c .bin bases\n"
           "  --force           accept adapters made for another base\n"
           "Prints, per tensor, ||dW||_F and the error ||dW - B*A||_F of the result.\n");
}

static void print_report(const hl_combine_report *r, int32_t want_rank) {
    printf("  %-28s %6s %6s %12s %12s %10s\n", "tensor", "R", "rank", "||dW||_F", "error", "rel");
    for (int32_t i = 0; i < r->n_tensors; i++) {
        const hl_combine_tensor_report *t = &r->tensors[i];
        char name[64];
        hl_model_tensor_name(t->layer, t->target, name, sizeof name);
        printf("  %-28s %6d %6d %12.6g %12.6g %10.3g%s\n", name, t->rank_in, t->rank_out, t->norm, t->error,
               t->rel_error, t->clamped ? "  (clamped)" : "");
    }
    printf("  %-28s %6s %6s %12.6g %12.6g %10.3g\n", "total", "", "", r->total_norm, r->total_error,
           r->total_rel_error);
    if (r->method == HL_COMBINE_SVD && r->n_clamped)
        printf("note: --rank %d is above what %d tensor%s can hold; %s kept at full rank R (exact)\n", want_rank,
               r->n_clamped, r->n_clamped == 1 ? "" : "s", r->n_clamped == 1 ? "it is" : "they are");
    if (r->method == HL_COMBINE_LINEAR && r->total_rel_error > 1e-6)
        printf("note: linear has cross terms between adapters; use --method cat for the exact sum\n");
}

int cmd_combine(int argc, char **argv) {
    const char *model_path = NULL, *tok = NULL, *out = NULL, *peft_out = NULL, *method_name = NULL;
    const char *name = "combined";
    const char *paths[MAX_LORA];
    char *owned[MAX_LORA] = {0};
    float weights[MAX_LORA];
    long rank = 0;
    int have_rank = 0, n = 0, force = 0, rc = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (cli_is_help(a)) {
            usage();
            rc = 0;
            goto done;
        }
        if (!strcmp(a, "--force")) {
            force = 1;
            continue;
        }
        if (!(v = cli_value(CMD, argc, argv, &i))) goto done;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) model_path = v;
        else if (!strcmp(a, "--tokenizer")) tok = v;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) out = v;
        else if (!strcmp(a, "--peft-out")) peft_out = v;
        else if (!strcmp(a, "--name")) name = v;
        else if (!strcmp(a, "--method")) method_name = v;
        else if (!strcmp(a, "--rank")) {
            if (!cli_int(CMD, a, v, 1, 65536, &rank)) goto done;
            have_rank = 1;
        } else if (!strcmp(a, "--lora") || !strcmp(a, "--lora-weighted")) {
            if (n == MAX_LORA) {
                cli_error(CMD, "at most %d adapters", MAX_LORA);
                goto done;
            }
            weights[n] = 1.0f;
            if (!strcmp(a, "--lora-weighted")) {
                /* the last colon, so paths with colons still work */
                const char *colon = strrchr(v, ':');
                double wv;
                if (!colon) {
                    cli_error(CMD, "--lora-weighted expects FILE:WEIGHT, got \"%s\"", v);
                    goto done;
                }
                if (!cli_float(CMD, a, colon + 1, -1e6, 1e6, &wv)) goto done;
                weights[n] = (float)wv;
                if (!(owned[n] = strndup(v, (size_t)(colon - v)))) {
                    cli_error(CMD, "out of memory");
                    goto done;
                }
                v = owned[n];
            }
            paths[n++] = v;
        } else {
            cli_error(CMD, "unknown option %s (see --help)", a);
            goto done;
        }
    }
    if (!model_path || !out || !method_name || n == 0) {
        cli_error(CMD, "needs -m BASE, --method cat|linear|svd, at least one --lora, and -o OUT (see --help)");
        goto done;
    }
    hl_error err = {0};
    hl_combine_method method;
    if (hl_combine_method_parse(method_name, &method, &err) != HL_OK) {
        cli_error(CMD, "--method: %s", err.msg);
        goto done;
    }
    if (method == HL_COMBINE_SVD && !have_rank) {
        cli_error(CMD, "--method svd needs --rank K (the rank of the result)");
        goto done;
    }
    if (method != HL_COMBINE_SVD && have_rank) {
        cli_error(CMD, "--rank applies to --method svd only (cat keeps the sum of ranks, linear the common rank)");
        goto done;
    }
    hl_io_plan plan;
    hl_io_plan_init(&plan);
    hl_io_plan_add(&plan, HL_IO_INPUT, "-m", model_path);
    hl_io_plan_add(&plan, HL_IO_INPUT, "--tokenizer", tok);
    for (int i = 0; i < n; i++) cli_plan_adapter(&plan, "--lora", paths[i]);
    hl_io_plan_add(&plan, HL_IO_OUTPUT, "-o", out);
    cli_plan_peft_out(&plan, "--peft-out", peft_out);
    if (cli_check_io(CMD, &plan)) goto done;
    hl_model *m = NULL;
    hl_adapter *adapters[MAX_LORA] = {0}, *res = NULL;
    hl_combine_report report = {0};
    hl_status s = hl_model_load(model_path, tok, &m, &err);
    for (int i = 0; s == HL_OK && i < n; i++) s = hl_adapter_load(paths[i], m, force, &adapters[i], &err);
    if (s == HL_OK)
        s = hl_adapter_combine(m, (const hl_adapter *const *)adapters, weights, n, method, (int32_t)rank, name, &res,
                               &report, &err);
    if (s == HL_OK) {
        printf("hyperlora combine: %s of %d adapter%s", hl_combine_method_name(method), n, n == 1 ? "" : "s");
        if (method == HL_COMBINE_SVD) printf(" at rank %ld", rank);
        printf(" -> %d tensors\n", report.n_tensors);
        print_report(&report, (int32_t)rank);
        s = hl_adapter_save_gguf(res, out, &err);
    }
    if (s == HL_OK && peft_out) s = hl_adapter_save_peft(res, m, peft_out, &err);
    if (s == HL_OK) {
        fprintf(stderr, "hyperlora combine: wrote %s", out);
        if (peft_out) fprintf(stderr, " and %s/", peft_out);
        fputc('\n', stderr);
    } else cli_fail(CMD, &err);
    hl_combine_report_free(&report);
    hl_adapter_free(res);
    for (int i = 0; i < n; i++) hl_adapter_free(adapters[i]);
    hl_model_free(m);
    rc = s == HL_OK ? 0 : 1;
done:
    for (int i = 0; i < n; i++) free(owned[i]);
    return rc;
}
