/* cmd_decode.c: `hyperlora decode`: a scene in, its form out. stdout carries
 * only the decoded output (and a newline); diagnostics go to stderr. */
#include "cli/cli.h"
#include "hyperlexeme/scene.h"
#include "util/alloc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *CMD = "decode";

static double ratio(int64_t a, int64_t b) { return b ? (double)a / (double)b : NAN; }

/* One line of read metrics: "-" where nothing was counted. */
static void print_read(const char *what, const hl_read_stats *st) {
    char rec[32] = "-", pre[32] = "-", ord[32] = "-", fac[32] = "-";
    if (st->parts_ref) snprintf(rec, sizeof rec, "%.3f", ratio(st->parts_hit, st->parts_ref));
    if (st->named) snprintf(pre, sizeof pre, "%.3f", ratio(st->named_right, st->named));
    if (st->order_n) snprintf(ord, sizeof ord, "%.3f", ratio(st->order_ok, st->order_n));
    if (st->facets_ref) snprintf(fac, sizeof fac, "%.3f", ratio(st->facets_hit, st->facets_ref));
    printf("  %-34s n %-5lld exact %5.1f%%  CER %.4f  part recall %s  precision %s  order %s  facets %s\n", what,
           (long long)st->n, 100.0 * ratio(st->exact, st->n), st->ref_chars ? ratio(st->edits, st->ref_chars) : 0.0,
           rec, pre, ord, fac);
}

static void json_stats(const hl_read_stats *st) {
    printf("{\"n\": %lld, \"exact\": %lld, \"edits\": %lld, \"ref_chars\": %lld, \"parts_ref\": %lld, "
           "\"parts_hit\": %lld, \"named\": %lld, \"named_right\": %lld, \"order_n\": %lld, \"order_ok\": %lld, "
           "\"facets_ref\": %lld, \"facets_hit\": %lld}",
           (long long)st->n, (long long)st->exact, (long long)st->edits, (long long)st->ref_chars,
           (long long)st->parts_ref, (long long)st->parts_hit, (long long)st->named, (long long)st->named_right,
           (long long)st->order_n, (long long)st->order_ok, (long long)st->facets_ref, (long long)st->facets_hit);
}

/* The counts (rates are ratios of them), overall and per "form register lang split" group. */
static void print_eval_json(const hl_scene_eval *r) {
    printf("{\"all\": ");
    json_stats(&r->all);
    printf(", \"groups\": [");
    for (int32_t g = 0; g < r->n_groups; g++) {
        char form[32], reg[32], lang[48], split[48];
        form[0] = reg[0] = lang[0] = split[0] = 0;
        sscanf(r->groups[g].key, "%31s %31s %47s %47s", form, reg, lang, split);
        printf("%s{\"form\": \"%s\", \"register\": \"%s\", \"lang\": \"", g ? ", " : "", form, reg);
        /* lang and split come from the file: only word characters pass into the JSON */
        for (const char *c = lang; *c; c++) putchar((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_' || *c == '-' ? *c : '?');
        printf("\", \"split\": \"");
        for (const char *c = split; *c; c++) putchar((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_' || *c == '-' ? *c : '?');
        printf("\", \"stats\": ");
        json_stats(&r->groups[g].st);
        printf("}");
    }
    printf("]}\n");
}
int cmd_decode(int argc, char **argv) {
    const char *model = NULL, *tok = NULL, *lexicon = NULL, *compose = NULL, *bundle = NULL, *scene = NULL, *vec_path = NULL;
    const char *form_name = "text", *reg_name = "poetic", *eval_path = NULL, *eval_form = NULL;
    long eval_limit = 0;
    int verbose = 0, allow_text = 0, json = 0, no_word_rows = 0;
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
                   "  --scene TEXT          a scene: one or more hyperlexemes separated by spaces (e.g.\n"
                   "                        \"Δ21\"); a word that is not a lexeme is refused, naming the\n"
                   "                        nearest ones\n"
                   "  --scene-text          let plain text stand in a scene between lexemes\n"
                   "  --scene-vector FILE   a mute scene: raw f32 vectors of the model dimension\n"
                   "  --form F              text | symbols | formula | dialogue | report (default text)\n"
                   "  --register R          poetic | logical | technical (default poetic)\n"
                   "  --lora FILE           decoder adapter (repeatable); its lexicon is used\n"
                   "  --lora-scaled FILE:S  adapter at user scale S\n"
                   "  --bundle FILE         decoder bundle: adapters per (form, register)\n"
                   "  --lexicon FILE        with a decoder that carries a lexicon: FILE's entries are added\n"
                   "                        to it (scenes declared after training, composed by the carried\n"
                   "                        rule; nothing is retrained; a lexeme in both is refused);\n"
                   "                        without one: the lexicon to use. A word that is a part only of\n"
                   "                        the added scenes gets a row of the decoder's output adapter\n"
                   "                        composed from its own head row, by a map fitted on the words\n"
                   "                        the decoder trained on, so the decoder can name it (README:\n"
                   "                        new words)\n"
                   "  --no-word-rows        keep the trained output rows alone (new words are then named\n"
                   "                        as their nearest trained word)\n"
                   "  --compose RULE        with --lexicon alone: parts (default), slots, ranked, decay, one\n"
                   "                        of those +facets, or decay+facet-words (see train --help)\n"
                   "  -n N                  at most N output tokens (default 128)\n"
                   "  --temp T --top-k K --top-p P --seed S   sampling (default greedy)\n"
                   "  --threads N           output is identical for any N\n"
                   "  --tokenizer FILE      for llama2.c .bin bases\n"
                   "  --force               apply adapters made for another base\n"
                   "  --eval FILE.jsonl     decode every scene example in FILE and report exact-match\n"
                   "                        rate and character error rate (--eval-form F, --eval-limit N,\n"
                   "                        --verbose for one line per example on stderr): also what the\n"
                   "                        outputs say about their scenes, overall and per form, register,\n"
                   "                        language and split (the lines' \"lang\" and \"split\" fields):\n"
                   "                        part recall (the scene's parts that the reference names, named\n"
                   "                        as words in the output), part precision (output words that are\n"
                   "                        some lexeme's part and belong to this scene), order (symbols\n"
                   "                        and formula outputs naming 2+ parts name them in the scene's\n"
                   "                        order) and facet recall (as parts)\n"
                   "  --json                with --eval: the counts as one JSON object on stdout\n");
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
        if (!strcmp(a, "--scene-text")) {
            allow_text = 1;
            continue;
        }
        if (!strcmp(a, "--no-word-rows")) {
            no_word_rows = 1;
            continue;
        }
        if (!strcmp(a, "--json")) {
            json = 1;
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
                                     .bundle_path = bundle, .n_threads = (int32_t)threads, .force = force,
                                     .allow_text = allow_text, .no_word_rows = no_word_rows};
        static hl_scene_eval r; /* large: the per-group table */
        if (hl_scene_decoder_init(&p, &d, &err) == HL_OK) cli_report_word_rows(CMD, d);
        if (!d ||
            hl_scene_eval_file(d, eval_path, only_form, eval_limit, &r, verbose ? stderr : NULL, &err) != HL_OK) {
            cli_fail(CMD, &err);
        } else if (r.n == 0) { /* a rate over nothing is not a result */
            cli_error(CMD, "--eval %s: no scene examples%s%s", eval_path, eval_form ? " of form " : "",
                      eval_form ? eval_form : "");
        } else if (json) {
            print_eval_json(&r);
            rc = 0;
        } else {
            printf("examples %lld  exact %lld (%.1f%%)  CER %.4f\n", (long long)r.n, (long long)r.exact,
                   r.n ? 100.0 * (double)r.exact / (double)r.n : 0.0,
                   r.ref_chars ? (double)r.edits / (double)r.ref_chars : 0.0);
            for (int f = 0; f < HL_FORM_COUNT; f++)
                if (r.per_form_n[f])
                    printf("  %-9s %lld/%lld exact\n", hl_form_name(f), (long long)r.per_form_exact[f],
                           (long long)r.per_form_n[f]);
            print_read("all", &r.all);
            for (int32_t g = 0; g < r.n_groups; g++) print_read(r.groups[g].key, &r.groups[g].st);
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
                                 .bundle_path = bundle, .n_threads = (int32_t)threads, .force = force,
                                     .allow_text = allow_text, .no_word_rows = no_word_rows};
    if (hl_scene_decoder_init(&p, &d, &err) != HL_OK) {
        cli_fail(CMD, &err);
        goto done;
    }
    cli_report_word_rows(CMD, d);
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
