/* consumer.c: a program that uses libhyperlora through its public headers
 * only. It loads a base model and a hyperlexeme lexicon, trains a LoRA scene
 * decoder for a few steps with hl_train_run, saves it (GGUF and PEFT), loads
 * it back, and decodes a scene with it.
 *
 *   consumer MODEL.gguf LEXICON.jsonl DATA.jsonl OUTDIR [SCENE]
 *
 * Build against an installed library with pkg-config or CMake; see
 * README.md ("Use as a library"). */
#include <hyperlora.h>
#include <hyperlora/train.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Training progress: the first and the latest step loss, and one line per step. */
typedef struct progress {
    double first_loss, last_loss;
} progress;

static void on_progress(void *user, const hl_train_record *r) {
    progress *p = user;
    if (r->step == 1) p->first_loss = r->loss;
    p->last_loss = r->loss;
    printf("step %lld/%lld loss %.4f\n", (long long)r->step, (long long)r->total_steps, r->loss);
}

static int fail(const char *what, const hl_error *err) {
    fprintf(stderr, "consumer: %s: %s\n", what, err->msg);
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: consumer MODEL.gguf LEXICON.jsonl DATA.jsonl OUTDIR [SCENE]\n");
        return 2;
    }
    const char *model_path = argv[1], *lexicon_path = argv[2], *data_path = argv[3], *outdir = argv[4];
    printf("libhyperlora %s (header %s)\n", hl_version(), HL_VERSION_STRING);

    hl_error err = {0};
    hl_model *model = NULL;
    hl_lexicon *lex = NULL;
    hl_dataset *data = NULL;
    hl_adapter *adapter = NULL, *reloaded = NULL;
    hl_train_run *run = NULL;
    hl_scene_decoder *decoder = NULL;
    char *text = NULL;
    int rc = 1;

    if (hl_model_load(model_path, NULL, &model, &err)) { rc = fail("model", &err); goto done; }
    if (hl_lexicon_load_compose(lexicon_path, model, NULL, &lex, &err)) { rc = fail("lexicon", &err); goto done; }
    const char *scene = argc > 5 ? argv[5] : hl_lexicon_lexeme(lex, 0);
    printf("lexicon: %d hyperlexemes\n", hl_lexicon_n_entries(lex));

    /* Scene examples need the lexicon's tokenizer (it knows the hyperlexeme tokens). */
    hl_dataset_params dp = {.ctx = 64, .pack = HL_PACK_DOCS, .val_fraction = 0.1f, .seed = 1,
                            .scene_format = hl_lexicon_scene_format, .scene_user = lex};
    if (hl_dataset_load(data_path, hl_lexicon_tokenizer(lex), &dp, &data, &err)) { rc = fail("data", &err); goto done; }
    printf("data: %lld training rows\n", (long long)hl_dataset_get_stats(data)->n_train_rows);

    uint32_t targets = 0;
    if (hl_parse_targets("q,v,output", &targets, &err)) { rc = fail("targets", &err); goto done; }
    hl_adapter_spec spec = {.name = "consumer-decoder", .targets = targets, .rank = 8, .alpha = 16,
                            .init = HL_INIT_KAIMING, .seed = 1};
    if (hl_adapter_create(model, &spec, &adapter, &err)) { rc = fail("adapter", &err); goto done; }
    /* The saved adapter carries the lexicon: one self-contained decoder file. */
    if (hl_lexicon_attach(lex, adapter, &err)) { rc = fail("attach", &err); goto done; }

    progress prog = {NAN, NAN};
    hl_train_config cfg = hl_train_default_config();
    cfg.steps = 30;
    cfg.batch = 4;
    cfg.ctx = 64;
    cfg.lr = 1e-2;
    cfg.eval_every = 10;
    cfg.n_threads = 2;
    cfg.on_progress = on_progress;
    cfg.user = &prog;
    /* Train on the lexicon's view of the model: the base plus the frozen hyperlexeme rows. */
    if (hl_train_run_init(hl_lexicon_model(lex), adapter, data, &cfg, &run, &err)) { rc = fail("train", &err); goto done; }
    if (hl_train_run_to_end(run, NULL, &err)) { rc = fail("train", &err); goto done; }
    printf("trained: loss %.4f -> %.4f, eval %.4f\n", prog.first_loss, prog.last_loss, hl_train_run_last_eval(run));

    char path[4096];
    snprintf(path, sizeof path, "%s/decoder.gguf", outdir);
    if (hl_adapter_save_gguf(adapter, path, &err)) { rc = fail("save", &err); goto done; }
    char peft[4096];
    snprintf(peft, sizeof peft, "%s/decoder-peft", outdir);
    if (hl_adapter_save_peft(adapter, model, peft, &err)) { rc = fail("save peft", &err); goto done; }
    if (hl_adapter_load(path, model, 0, &reloaded, &err)) { rc = fail("reload", &err); goto done; }
    printf("saved %s and %s, reloaded\n", path, peft);

    const char *loras[1] = {path};
    hl_scene_decoder_params sp = {.model_path = model_path, .lora_paths = loras, .n_lora = 1, .n_threads = 1};
    if (hl_scene_decoder_init(&sp, &decoder, &err)) { rc = fail("decoder", &err); goto done; }
    if (hl_scene_decode(decoder, scene, NULL, 0, HL_FORM_TEXT, HL_REGISTER_POETIC, NULL, 24, &text, &err)) {
        rc = fail("decode", &err);
        goto done;
    }
    printf("decode %s: %s\n", scene, text);
    rc = prog.last_loss < prog.first_loss ? 0 : 3; /* training must have lowered the loss */
    if (rc) fprintf(stderr, "consumer: the loss did not fall\n");

done:
    hl_free(text);
    hl_scene_decoder_free(decoder);
    hl_train_run_free(run);
    hl_adapter_free(reloaded);
    hl_adapter_free(adapter);
    hl_dataset_free(data);
    hl_lexicon_free(lex);
    hl_model_free(model);
    return rc;
}
