/* cmd_scene_synth.c: `hyperlora scene synth`: writes a generated scene
 * corpus (hyperlexeme/scene_synth.h) for a base: a lexicon of scenes over the
 * base's own words and training / held-out example files. */
#include "cli/cli.h"
#include "hyperlexeme/scene_synth.h"
#include "model/model.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *CMD = "scene synth";

static void help(void) {
    printf("usage: hyperlora scene synth -m BASE -o DIR [options]\n\n"
           "Generates a scene-decoder corpus from the base's own one-token words (English and\n"
           "Russian), seeded and byte-stable: scenes of 2-5 parts in order with four facets, and\n"
           "outputs in all 5 forms x 3 registers from templates that keep each part in its\n"
           "dictionary form (so a part was read iff it appears as a word of the output).\n\n"
           "  -m, --model FILE      base model (GGUF, or llama2.c .bin with --tokenizer)\n"
           "  --tokenizer FILE      llama2.c tokenizer.bin for .bin bases\n"
           "  -o, --out DIR         output directory (made when missing)\n"
           "  --seed S              default 1\n"
           "  --scenes N            training + held-out scenes (default 2000)\n"
           "  --heldout F           share of those scenes held out (default 0.2)\n"
           "  --words N             parts pool per language (default 400)\n"
           "  --unseen-words N      words per language never parts in training (default 20)\n"
           "  --unseen-scenes N     scenes holding unseen words (default 100)\n"
           "  --pairs N             (form, register) pairs each training scene trains on (default 3);\n"
           "                        each also holds one more pair out\n"
           "  --parts MIN-MAX       parts per scene (default 2-5)\n"
           "  --balance words|scenes   words (default): scenes per language in proportion to\n"
           "                        its seen words, so every word is a part about equally often;\n"
           "                        scenes: half the scenes in each language\n\n"
           "Writes DIR/lexicon.jsonl (every scene), train.jsonl, heldout_scenes.jsonl (new\n"
           "combinations of known words, every pair), heldout_pairs.jsonl (training scenes in\n"
           "their held-out pair), unseen_words.jsonl (symbols and formula) and words.json.\n"
           "Every example line carries \"lang\" and \"split\".\n");
}

int cmd_scene_synth(int argc, char **argv) {
    const char *model = NULL, *tok = NULL, *out = NULL;
    hl_synth_params p;
    hl_synth_params_default(&p);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        long n;
        double d;
        if (cli_is_help(a)) {
            help();
            return 0;
        }
        if (!(v = cli_value(CMD, argc, argv, &i))) return 1;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--tokenizer")) tok = v;
        else if (!strcmp(a, "-o") || !strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--seed")) {
            if (!cli_u64(CMD, a, v, &p.seed)) return 1;
        } else if (!strcmp(a, "--heldout")) {
            if (!cli_float(CMD, a, v, 0, 0.9, &d)) return 1;
            p.heldout_fraction = (float)d;
        } else if (!strcmp(a, "--balance")) {
            if (strcmp(v, "words") && strcmp(v, "scenes"))
                return cli_error(CMD, "--balance expects words or scenes, got \"%s\"", v);
            p.balance_words = !strcmp(v, "words");
        } else if (!strcmp(a, "--parts")) {
            int lo, hi;
            char tail;
            if (sscanf(v, "%d-%d%c", &lo, &hi, &tail) != 2 || lo < 2 || hi > 5 || lo > hi)
                return cli_error(CMD, "--parts expects MIN-MAX within 2-5, got \"%s\"", v);
            p.min_parts = lo;
            p.max_parts = hi;
        } else {
            int32_t *field = !strcmp(a, "--scenes") ? &p.n_scenes : !strcmp(a, "--words") ? &p.words_per_lang
                             : !strcmp(a, "--unseen-words") ? &p.unseen_per_lang
                             : !strcmp(a, "--unseen-scenes") ? &p.n_unseen_scenes
                             : !strcmp(a, "--pairs") ? &p.pairs_per_scene : NULL;
            if (!field) return cli_error(CMD, "unknown option %s (see --help)", a);
            if (!cli_int(CMD, a, v, 0, 100000, &n)) return 1;
            *field = (int32_t)n;
        }
    }
    if (!model || !out) return cli_error(CMD, "needs -m BASE and -o DIR (see --help)");
    hl_io_plan plan;
    hl_io_plan_init(&plan);
    hl_io_plan_add(&plan, HL_IO_INPUT, "-m", model);
    hl_io_plan_add(&plan, HL_IO_INPUT, "--tokenizer", tok);
    hl_io_plan_add(&plan, HL_IO_OUTPUT_DIR, "-o", out);
    static const char *const files[] = {"lexicon.jsonl", "train.jsonl", "heldout_scenes.jsonl", "heldout_pairs.jsonl",
                                        "unseen_words.jsonl", "words.json"};
    char paths[6][4096];
    for (int k = 0; k < 6; k++) {
        snprintf(paths[k], sizeof paths[k], "%s/%s", out, files[k]);
        hl_io_plan_add(&plan, HL_IO_OUTPUT, "-o", paths[k]);
    }
    if (cli_check_io(CMD, &plan)) return 1;
    int made = mkdir(out, 0777) == 0;
    if (!made && errno != EEXIST) return cli_error(CMD, "cannot make %s: %s", out, strerror(errno));
    hl_error err = {0};
    hl_model *m = NULL;
    hl_status s = hl_model_load(model, tok, &m, &err);
    hl_synth_counts c;
    if (s == HL_OK) s = hl_scene_synth(hl_model_get_tokenizer(m), &p, out, &c, &err);
    hl_model_free(m);
    if (s != HL_OK) {
        if (made) rmdir(out); /* the directory this run made, if nothing was written in it */
        return cli_fail(CMD, &err);
    }
    fprintf(stderr,
            "hyperlora scene synth: %s: words en %d (%d unseen), ru %d (%d unseen); scenes: %d train, %d held out "
            "(en %d, ru %d), %d with unseen words; examples: %lld train, %lld held-out scenes, %lld held-out pairs, %lld unseen words\n",
            out, c.words[0], c.unseen[0], c.words[1], c.unseen[1], c.train_scenes, c.heldout_scenes,
            c.scenes[0], c.scenes[1], c.unseen_scenes,
            (long long)c.train_examples, (long long)c.heldout_scene_examples, (long long)c.heldout_pair_examples,
            (long long)c.unseen_examples);
    return 0;
}
