/* cmd_decode.c: `hyperlora decode`: a scene in, its form out. stdout carries
 * only the decoded output (and a newline); diagnostics go to stderr. */
#include "cli/cli.h"
#include "infer/scene.h"
#include "util/alloc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *CMD = "decode";
int cmd_decode(int argc, char **argv) {
    const char *model = NULL, *tok = NULL, *lexicon = NULL, *compose = NULL, *bundle = NULL, *scene = NULL, *vec_path = NULL;
    const char *form_name = "text", *reg_name = "poetic", *eval_path = NULL, *eval_form = NULL;
    long eval_limit = 0;
    int verbose = 0;
    cli_loras loras = {0};
    int force = 0, rc = 1;
    long n_predict = 128, threads = 1, top_k = 0;
    double temp = 0, top_p = 1;
    uint64_t seed = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (cli_is_help(a)) {
            printf("usage: hyperlora decode -m BASE --lora DECODER.gguf (--scene TEXT | --scene-vector FILE)\n"
                   "                        [--form F] [--register R] [options]\n\n"
                   "  --scene TEXT          a scene: one or more hyperlexemes (e.g. \"Δ21\")\n"
                   "  --scene-vector FILE   a mute scene: raw f32 vectors of the model dimension\n"
                   "  --form F              text | symbols | formula | dialogue | report (default text)\n"
                   "  --register R          poetic | logical | technical (default poetic)\n"
                   "  --lora FILE           decoder adapter (repeatable); its lexicon is used\n"
                   "  --lora-scaled FILE:S  adapter at user scale S\n"
                   "  --bundle FILE         decoder bundle: adapters per (form, register)\n"
                   "  --lexicon FILE        lexicon, when no adapter carries one\n"
                   "  --compose RULE        with --lexicon: parts (default) or parts+facets\n"
                   "  -n N                  at most N output tokens (default 128)\n"
                   "  --temp T --top-k K --top-p P --seed S   sampling (default greedy)\n"
                   "  --threads N           output is identical for any N\n"
                   "  --tokenizer FILE      for llama2.c .bin bases\n"
                   "  --force               apply adapters made for another base\n"
                   "  --eval FILE.jsonl     decode every scene example in FILE and report exact-match\n"
                   "                        rate and character error rate (--eval-form F, --eval-limit N,\n"
                   "                        --verbose for one line per example on stderr)\n");
            return 0;
        }
        if (!strcmp(a, "--force")) {
            force = 1;
            continue;
        }
        if (!strcmp(a, "--verbose")) {
            verbose = 1;
            continue;
        }
        if (!(v = cli_value(CMD, argc, argv, &i))) goto done;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--tokenizer")) tok = v;
        else if (!strcmp(a, "--lexicon")) lexicon = v;
        else if (!strcmp(a, "--compose")) compose = v;
        else if (!strcmp(a, "--bundle")) bundle = v;
        else if (!strcmp(a, "--scene")) scene = v;
        else if (!strcmp(a, "--eval")) eval_path = v;
        else if (!strcmp(a, "--eval-form")) eval_form = v;
        else if (!strcmp(a, "--eval-limit")) {
            if (!cli_int(CMD, a, v, 1, 1L << 40, &eval_limit)) goto done;
        }
        else if (!strcmp(a, "--scene-vector")) vec_path = v;
        else if (!strcmp(a, "--form")) form_name = v;
        else if (!strcmp(a, "--register")) reg_name = v;
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            if (!cli_int(CMD, a, v, 1, 1 << 20, &n_predict)) goto done;
        } else if (!strcmp(a, "--threads") || !strcmp(a, "-t")) {
            if (!cli_int(CMD, a, v, 1, 256, &threads)) goto done;
        } else if (!strcmp(a, "--temp")) {
            if (!cli_float(CMD, a, v, 0, 100, &temp)) goto done;
        } else if (!strcmp(a, "--top-k")) {
            if (!cli_int(CMD, a, v, 0, 1 << 24, &top_k)) goto done;
        } else if (!strcmp(a, "--top-p")) {
            if (!cli_float(CMD, a, v, 1e-9, 1, &top_p)) goto done;
        } else if (!strcmp(a, "--seed")) {
            if (!cli_u64(CMD, a, v, &seed)) goto done;
        } else if (!strcmp(a, "--lora") || !strcmp(a, "--lora-scaled")) {
            if (!cli_loras_add(&loras, CMD, a, v, !strcmp(a, "--lora-scaled"))) goto done;
        } else {
            cli_error(CMD, "unknown option %s (see --help)", a);
            goto done;
        }
    }
    int form = hl_form_from_name(form_name), reg = hl_register_from_name(reg_name);
    if (form < 0) {
        cli_error(CMD, "unknown form \"%s\" (text, symbols, formula, dialogue, report)", form_name);
        goto done;
    }
    if (reg < 0) {
        cli_error(CMD, "unknown register \"%s\" (poetic, logical, technical)", reg_name);
        goto done;
    }
    int only_form = -1;
    if (eval_form && (only_form = hl_form_from_name(eval_form)) < 0) {
        cli_error(CMD, "unknown --eval-form \"%s\"", eval_form);
        goto done;
    }
    if (model && eval_path) {
        hl_error err = {0};
        hl_scene_decoder *d = NULL;
        hl_scene_decoder_params p = {.model_path = model, .tokenizer_path = tok, .lexicon_path = lexicon, .compose = compose,
                                     .lora_paths = loras.paths, .lora_scales = loras.scales, .n_lora = loras.n,
                                     .bundle_path = bundle, .n_threads = (int32_t)threads, .force = force};
        hl_scene_eval r;
        if (hl_scene_decoder_init(&p, &d, &err) != HL_OK ||
            hl_scene_eval_file(d, eval_path, only_form, eval_limit, &r, verbose ? stderr : NULL, &err) != HL_OK) {
            cli_fail(CMD, &err);
        } else {
            printf("examples %lld  exact %lld (%.1f%%)  CER %.4f\n", (long long)r.n, (long long)r.exact,
                   r.n ? 100.0 * (double)r.exact / (double)r.n : 0.0,
                   r.ref_chars ? (double)r.edits / (double)r.ref_chars : 0.0);
            for (int f = 0; f < HL_FORM_COUNT; f++)
                if (r.per_form_n[f])
                    printf("  %-9s %lld/%lld exact\n", hl_form_name(f), (long long)r.per_form_exact[f],
                           (long long)r.per_form_n[f]);
            rc = 0;
        }
        hl_scene_decoder_free(d);
        goto done;
    }
    if (!model || (!scene == !vec_path)) {
        cli_error(CMD, "needs -m BASE and exactly one of --scene or --scene-vector (see --help)");
        goto done;
    }
    hl_error err = {0};
    hl_scene_decoder *d = NULL;
    hl_scene_decoder_params p = {.model_path = model, .tokenizer_path = tok, .lexicon_path = lexicon, .compose = compose,
                                 .lora_paths = loras.paths, .lora_scales = loras.scales, .n_lora = loras.n,
                                 .bundle_path = bundle, .n_threads = (int32_t)threads, .force = force};
    if (hl_scene_decoder_init(&p, &d, &err) != HL_OK) {
        cli_fail(CMD, &err);
        goto done;
    }
    if (!hl_scene_decoder_has_adapters(d))
        fprintf(stderr, "hyperlora decode: note: no adapter given, decoding with the bare base model\n");
    float *vectors = NULL;
    int32_t n_vec = 0;
    if (vec_path &&
        hl_scene_vectors_load(vec_path, hl_model_get_config(hl_scene_decoder_base(d))->dim, &vectors, &n_vec, &err)) {
        cli_fail(CMD, &err);
        hl_scene_decoder_free(d);
        goto done;
    }
    hl_sampler_params sp = {.temperature = (float)temp, .top_k = (int32_t)top_k, .top_p = (float)top_p, .seed = seed};
    char *text = NULL;
    if (hl_scene_decode(d, scene, vectors, n_vec, form, reg, &sp, (int32_t)n_predict, &text, &err) != HL_OK)
        cli_fail(CMD, &err);
    else {
        printf("%s\n", text);
        rc = 0;
    }
    hl_free(text);
    hl_free(vectors);
    hl_scene_decoder_free(d);
done:
    cli_loras_free(&loras);
    return rc;
}
