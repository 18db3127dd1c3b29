/* cmd_scene.c: `hyperlora scene explain LEXEME`: what a scene is made of,
 * where its composed vector sits among the base tokens and the other
 * lexemes, and (with a decoder) what it decodes to in every form. */
#include "cli/cli.h"
#include "util/escape.h"
#include "hyperlexeme/explain.h"
#include "hyperlexeme/scene.h"
#include "model/model.h"
#include "text/tokenizer.h"
#include "util/alloc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *CMD = "scene";

int cmd_scene(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "synth")) return cmd_scene_synth(argc - 1, argv + 1);
    if (argc >= 2 && !cli_is_help(argv[1]) && strcmp(argv[1], "explain") != 0)
        return cli_error(CMD, "unknown subcommand \"%s\" (explain or synth; see --help)", argv[1]);
    if (argc < 2 || cli_is_help(argv[1]) || strcmp(argv[1], "explain") != 0) {
        printf("usage: hyperlora scene explain LEXEME -m BASE (--lexicon LEX.jsonl [--compose RULE] | --lora DECODER.gguf)\n"
               "                              [--top N]\n\n"
               "Shows the lexeme's parts and facets, the nearest base tokens and lexemes by cosine\n"
               "similarity of its composed embedding, and, with a decoder adapter, its output in\n"
               "every form and register (greedy). With --lora and --lexicon, the extra entries are\n"
               "added to the decoder's own and their new words get composed output rows, as in\n"
               "decode (--no-word-rows keeps the trained rows alone).\n\n"
               "       hyperlora scene synth -m BASE -o DIR [options]   (a generated scene corpus; --help)\n");
        return argc < 2 || !cli_is_help(argv[argc > 1 ? 1 : 0]);
    }
    const char *lexeme = NULL, *model = NULL, *tok = NULL, *lexicon = NULL, *compose = NULL, *paths[64];
    int n_lora = 0, no_word_rows = 0;
    long top = 8, threads = 1;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v;
        if (cli_is_help(a)) return cmd_scene(1, argv);
        if (a[0] != '-') {
            lexeme = a;
            continue;
        }
        if (!strcmp(a, "--no-word-rows")) {
            no_word_rows = 1;
            continue;
        }
        if (!(v = cli_value(CMD, argc, argv, &i))) return 1;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--tokenizer")) tok = v;
        else if (!strcmp(a, "--lexicon")) lexicon = v;
        else if (!strcmp(a, "--compose")) compose = v;
        else if (!strcmp(a, "--lora")) {
            if (n_lora == 64) return cli_error(CMD, "too many adapters");
            paths[n_lora++] = v;
        } else if (!strcmp(a, "--top")) {
            if (!cli_int(CMD, a, v, 1, 1000, &top)) return 1;
        } else if (!strcmp(a, "--threads")) {
            if (!cli_int(CMD, a, v, 1, 256, &threads)) return 1;
        } else return cli_error(CMD, "unknown option %s (see --help)", a);
    }
    if (!lexeme || !model) return cli_error(CMD, "usage: hyperlora scene explain LEXEME -m BASE --lexicon LEX | --lora DEC");
    hl_error err = {0};
    hl_scene_decoder *d = NULL;
    hl_scene_decoder_params p = {.model_path = model, .tokenizer_path = tok, .lexicon_path = lexicon, .compose = compose,
                                 .lora_paths = paths, .n_lora = n_lora, .n_threads = (int32_t)threads,
                                 .no_word_rows = no_word_rows};
    if (hl_scene_decoder_init(&p, &d, &err) != HL_OK) return cli_fail(CMD, &err);
    cli_report_word_rows(CMD, d);
    const hl_lexicon *lex = hl_scene_decoder_lexicon(d);
    cli_note_byte_parts(CMD, lex);
    const hl_model *base = hl_scene_decoder_base(d);
    int32_t i = hl_lexicon_find(lex, lexeme);
    if (i < 0) {
        hl_scene_decoder_free(d);
        char shown[HL_ESCAPE_NAME];
        return cli_error(CMD, "\"%s\" is not in the lexicon (%d entries)", hl_escape_str(lexeme, shown, sizeof shown),
                         hl_lexicon_n_entries(lex));
    }
    const float *e = hl_lexicon_embedding(lex, i);
    /* Lexemes, parts, facets and pieces come from files: every one is shown through hl_escape. */
    char shown[HL_ESCAPE_NAME];
    printf("%s  (token %d)\n  parts:", hl_escape_str(lexeme, shown, sizeof shown), hl_lexicon_token(lex, i));
    if (hl_lexicon_n_parts(lex, i) == 0) printf(" (a scene vector)");
    for (int32_t k = 0; k < hl_lexicon_n_parts(lex, i); k++)
        printf(" %s", hl_escape_str(hl_lexicon_part(lex, i, k), shown, sizeof shown));
    printf("\n");
    const char *facets = hl_lexicon_facets(lex, i);
    if (*facets) {
        printf("  facets:");
        for (const char *f = facets; *f;) {
            const char *nl = strchr(f, '\n');
            printf(" %s", hl_escape(f, (size_t)(nl ? nl - f : (long)strlen(f)), shown, sizeof shown));
            f = nl ? nl + 1 : f + strlen(f);
        }
        printf("\n");
    }
    hl_neighbour *near = malloc(sizeof *near * 2 * (size_t)top);
    int32_t n_tok = 0, n_ent = 0;
    if (!near) {
        hl_scene_decoder_free(d);
        return cli_error(CMD, "out of memory");
    }
    if (hl_lexicon_neighbours(lex, base, e, i, (int32_t)top, near, &n_tok, near + top, &n_ent, &err) != HL_OK) {
        free(near);
        hl_scene_decoder_free(d);
        return cli_fail(CMD, &err);
    }
    printf("  nearest base tokens:");
    const hl_tokenizer *bt = base->tok;
    for (int32_t k = 0; k < n_tok; k++) {
        char piece[256];
        size_t n = hl_tokenizer_decode(bt, -1, near[k].id, piece, sizeof piece - 1);
        piece[n] = 0;
        printf(" \"%s\" %.3f", hl_escape(piece, n, shown, sizeof shown), near[k].cosine);
    }
    printf("\n  nearest lexemes:");
    for (int32_t k = 0; k < n_ent; k++)
        printf(" %s %.3f", hl_escape_str(hl_lexicon_lexeme(lex, near[top + k].id), shown, sizeof shown),
               near[top + k].cosine);
    printf("\n");
    free(near);
    int rc = 0;
    if (hl_scene_decoder_has_adapters(d)) {
        printf("  decoded (greedy):\n");
        hl_sampler_params sp = hl_sampler_default_params();
        for (int f = 0; f < HL_FORM_COUNT && !rc; f++)
            for (int r = 0; r < HL_REGISTER_COUNT && !rc; r++) {
                char *text = NULL;
                if (hl_scene_decode(d, lexeme, NULL, 0, f, r, &sp, 96, &text, &err) != HL_OK) rc = cli_fail(CMD, &err);
                else {
                    char out[4 * 512 + 8];
                    printf("    %-8s %-9s  %s\n", hl_form_name(f), hl_register_name(r),
                           hl_escape_str(text, out, sizeof out));
                }
                hl_free(text);
            }
    }
    hl_scene_decoder_free(d);
    return rc;
}
