/* cmd_train.c: `hyperlora train`: LoRA training on a frozen base.
 *
 * Parses the options, loads the base, data and lexicon, builds the adapter,
 * and hands the loop to hl_train_run (hyperlora/train.h): accumulation,
 * clipping, schedule, eval, metrics, checkpoints and resume live there. This
 * file adds what belongs to a terminal: the progress display and SIGINT. */
#include "cli/cli.h"
#include "cli/dist.h"
#include "lora/adapter_io.h"
#include "lora/create.h"
#include "hyperlexeme/lexicon.h"
#include "kernels/kernel_choice.h"
#include "model/model.h"
#include "train/trainer.h"
#include "train/dataset.h"
#include "cli/progress.h"
#include "train/metrics.h"
#include "train/optim.h"
#include "hyperlora/train.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/escape.h"
#include "util/hash.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *CMD = "train";

/* Set by SIGINT/SIGTERM; the loop checkpoints and stops at the next step boundary. */
static volatile sig_atomic_t interrupted = 0;
static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
}

static void help(void) {
    printf("usage: hyperlora train -m BASE --data FILE.jsonl -o ADAPTER.gguf [options]\n\n"
           "model and data\n"
           "  -m, --model FILE         base model (GGUF, or llama2.c .bin with --tokenizer)\n"
           "  --tokenizer FILE         llama2.c tokenizer.bin for .bin bases\n"
           "  --data FILE              JSONL: {\"text\"}, {\"prompt\",\"completion\"} or scene examples\n"
           "  --lexicon FILE           hyperlexeme lexicon (JSONL), needed for scene examples\n"
           "  --compose RULE           how lexemes are composed (stored with the adapter):\n"
           "                           parts (default): the mean of the parts, order-blind;\n"
           "                           slots: each part position turned by its own fixed signed\n"
           "                             permutation, then summed (keeps the order);\n"
           "                           ranked: part k weighs 1/(k+1);\n"
           "                           decay: part k weighs 0.6^k, so strength gives the order;\n"
           "                           +facets (parts+facets, slots+facets, ranked+facets,\n"
           "                             decay+facets): facet words join the parts (under slots and\n"
           "                             decay each turned by its key's permutation, decay's at 1/4);\n"
           "                           decay+facet-words: decay, and the facet words as they are at\n"
           "                             1/4, so a reader names a facet as it names a part\n"
           "  --ctx T                  tokens per row (default 256, at most the model's context)\n"
           "  --pack docs|none|stream  how examples become rows of --ctx tokens (default docs):\n"
           "                           docs: whole examples packed into rows, each attending only\n"
           "                             to itself from position 0 (trains as if alone in a row)\n"
           "                           none: one example per row, padded (--no-pack is the same)\n"
           "                           stream: examples concatenated and cut every --ctx tokens,\n"
           "                             attending across examples (raw-text corpora)\n"
           "                           examples longer than --ctx + 1 tokens are truncated (docs, none)\n"
           "  --val-fraction F         share of examples held out for eval, never trained on\n"
           "                           (default 0.1; 0 trains on all of them)\n"
           "  --eval-every N           evaluate every N steps (default 50; 0 = only at the end)\n"
           "adapter\n"
           "  --rank R --alpha A       LoRA rank and alpha (default 8, 16)\n"
           "  --rslora                 scale alpha/sqrt(r) instead of alpha/r\n"
           "  --targets LIST           default " HL_DEFAULT_TARGETS " (also k)\n"
           "  --layers SPEC            e.g. 0-3,7 (default: all)\n"
           "  --init kaiming|gaussian  A's init (B = 0 either way)\n"
           "  --dropout P              LoRA dropout (default 0)\n"
           "  --name NAME              adapter name stored in the file\n"
           "  --init-from ADAPTER      start A and B from a trained adapter (GGUF or PEFT) of this\n"
           "                           base instead of the fresh init: it must fit --rank, and\n"
           "                           --targets/--layers must include all it adapts (ones it lacks\n"
           "                           start fresh); B is rescaled if --alpha/--rslora differ, so\n"
           "                           training starts from what the adapter computes. AdamW starts\n"
           "                           fresh. Without --lexicon the adapter's carried lexicon is used\n"
           "  --force                  --init-from an adapter made for another base (fingerprint)\n"
           "optimisation\n"
           "  --steps N | --epochs E   length of the run (default 100 steps)\n"
           "  --batch B                rows per batch (default 4)\n"
           "  --accum K                batches per optimizer step (default 1)\n"
           "  --lr LR                  peak learning rate (default 1e-3)\n"
           "  --schedule cosine|linear|constant   decay after warmup (default cosine)\n"
           "  --warmup N               linear warmup steps (default 0)\n"
           "  --min-lr-ratio F         decay floor as a fraction of lr (default 0.1)\n"
           "  --weight-decay W         AdamW decoupled decay (default 0)\n"
           "  --beta1 B1 --beta2 B2 --eps E   AdamW (default 0.9 0.999 1e-8)\n"
           "  --clip C                 global gradient-norm clip (default 1; 0 = off)\n"
           "  --seed S                 init, shuffling, split and dropout (default 0)\n"
           "  --threads N              worker threads; results identical for any N\n"
           "output\n"
           "  -o, --output FILE        adapter GGUF (llama.cpp loads it)\n"
           "  --peft-out DIR           also write PEFT adapter_model.safetensors + adapter_config.json\n"
           "  --checkpoint FILE        default OUTPUT.ckpt\n"
           "  --checkpoint-every N     default 50 (and always on SIGINT and at the end)\n"
           "  --resume                 continue from the checkpoint (settings must match)\n"
           "  --stop-at STEP           checkpoint and stop after STEP (resume later with --resume)\n"
           "  --metrics FILE           JSONL, one record per step (default OUTPUT.metrics.jsonl)\n"
           "  --plain                  plain progress lines even on a terminal\n");
}

typedef struct {
    const char *model, *tokenizer, *data, *lexicon, *compose, *out, *peft_out, *ckpt, *metrics, *targets, *layers, *name, *init_from;
    long ctx, eval_every, rank, steps, batch, accum, warmup, ckpt_every, threads, stop_at;
    double val_fraction, alpha, dropout, epochs, lr, min_lr_ratio, wd, beta1, beta2, eps, clip;
    uint64_t seed;
    hl_pack_mode pack;
    int rslora, resume, plain, force;
    hl_lora_init init;
    hl_schedule_kind schedule;
} train_opts;

static uint64_t file_hash(const char *path) {
    FILE *f = fopen(path, "rb");
    uint64_t h = HL_FNV1A_BASIS;
    if (!f) return 0;
    unsigned char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) h = hl_fnv1a(h, buf, n);
    fclose(f);
    return h;
}

/* The settings a resumed run must share (threads and output paths excluded). */
static void describe(const train_opts *o, uint64_t base_fp, const char *kernels, char *buf, size_t cap) {
    snprintf(buf, cap,
             "base=%016llx data=%016llx lexicon=%016llx compose=%s ctx=%ld pack=%d val=%.9g rank=%ld alpha=%.9g rslora=%d "
             "targets=%s layers=%s init=%d dropout=%.9g steps=%ld batch=%ld accum=%ld lr=%.9g schedule=%d warmup=%ld "
             "min_lr=%.9g wd=%.9g betas=%.9g,%.9g eps=%.9g clip=%.9g seed=%llu kernels=%s",
             (unsigned long long)base_fp, (unsigned long long)file_hash(o->data),
             (unsigned long long)(o->lexicon ? file_hash(o->lexicon) : 0), o->compose ? o->compose : "file", o->ctx, o->pack, o->val_fraction, o->rank,
             o->alpha, o->rslora, o->targets ? o->targets : HL_DEFAULT_TARGETS, o->layers ? o->layers : "all",
             (int)o->init, o->dropout, o->steps, o->batch, o->accum, o->lr, (int)o->schedule, o->warmup,
             o->min_lr_ratio, o->wd, o->beta1, o->beta2, o->eps, o->clip, (unsigned long long)o->seed, kernels);
    /* Added only when used, so checkpoints of runs without it still resume. */
    size_t used = strlen(buf);
    if (o->init_from && used < cap)
        snprintf(buf + used, cap - used, " init_from=%016llx", (unsigned long long)file_hash(o->init_from));
}

static int parse(int argc, char **argv, train_opts *o) {
    *o = (train_opts){.ctx = 256, .eval_every = 50, .rank = 8, .steps = -1, .batch = 4, .accum = 1, .ckpt_every = 50,
                      .threads = 1, .val_fraction = 0.1, .alpha = 16, .epochs = -1, .lr = 1e-3, .min_lr_ratio = 0.1,
                      .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .clip = 1.0, .pack = HL_PACK_DOCS,
                      .schedule = HL_SCHED_COSINE, .init = HL_INIT_KAIMING};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (cli_is_help(a)) {
            help();
            return 2;
        }
        if (!strcmp(a, "--no-pack")) { o->pack = HL_PACK_NONE; continue; }
        if (!strcmp(a, "--rslora")) { o->rslora = 1; continue; }
        if (!strcmp(a, "--resume")) { o->resume = 1; continue; }
        if (!strcmp(a, "--plain")) { o->plain = 1; continue; }
        if (!strcmp(a, "--force")) { o->force = 1; continue; }
        if (!(v = cli_value(CMD, argc, argv, &i))) return 1;
#define STR(opt, field) if (!strcmp(a, opt)) { o->field = v; continue; }
#define INT(opt, field, lo, hi) if (!strcmp(a, opt)) { if (!cli_int(CMD, a, v, lo, hi, &o->field)) return 1; continue; }
#define DBL(opt, field, lo, hi) if (!strcmp(a, opt)) { if (!cli_float(CMD, a, v, lo, hi, &o->field)) return 1; continue; }
        STR("-m", model) STR("--model", model) STR("--tokenizer", tokenizer) STR("--data", data)
        STR("--lexicon", lexicon) STR("--compose", compose) STR("-o", out) STR("--output", out) STR("--peft-out", peft_out)
        STR("--checkpoint", ckpt) STR("--metrics", metrics) STR("--targets", targets) STR("--layers", layers)
        STR("--name", name) STR("--init-from", init_from)
        INT("--ctx", ctx, 1, 4096) INT("--eval-every", eval_every, 0, 1L << 40) INT("--rank", rank, 1, 65536)
        INT("--steps", steps, 1, 1L << 40) INT("--batch", batch, 1, 65536) INT("--accum", accum, 1, 65536)
        INT("--warmup", warmup, 0, 1L << 40) INT("--checkpoint-every", ckpt_every, 0, 1L << 40) INT("--stop-at", stop_at, 1, 1L << 40)
        INT("--threads", threads, 1, 256) INT("-t", threads, 1, 256)
        DBL("--val-fraction", val_fraction, 0, 0.5) DBL("--alpha", alpha, -1e6, 1e6) DBL("--dropout", dropout, 0, 0.99)
        DBL("--epochs", epochs, 1e-6, 1e6) DBL("--lr", lr, 0, 10) DBL("--min-lr-ratio", min_lr_ratio, 0, 1)
        DBL("--weight-decay", wd, 0, 10) DBL("--beta1", beta1, 0, 0.999999) DBL("--beta2", beta2, 0, 0.99999999)
        DBL("--eps", eps, 1e-30, 1) DBL("--clip", clip, 0, 1e9)
#undef STR
#undef INT
#undef DBL
        if (!strcmp(a, "--seed")) {
            if (!cli_u64(CMD, a, v, &o->seed)) return 1;
        } else if (!strcmp(a, "--pack")) {
            if (!cli_pack_mode(CMD, v, &o->pack)) return 1;
        } else if (!strcmp(a, "--init")) {
            if (!strcmp(v, "kaiming")) o->init = HL_INIT_KAIMING;
            else if (!strcmp(v, "gaussian")) o->init = HL_INIT_GAUSSIAN;
            else return cli_error(CMD, "--init must be kaiming or gaussian, got \"%s\"", v);
        } else if (!strcmp(a, "--schedule")) {
            if (!strcmp(v, "cosine")) o->schedule = HL_SCHED_COSINE;
            else if (!strcmp(v, "linear")) o->schedule = HL_SCHED_LINEAR;
            else if (!strcmp(v, "constant")) o->schedule = HL_SCHED_CONSTANT;
            else return cli_error(CMD, "--schedule must be cosine, linear or constant, got \"%s\"", v);
        } else return cli_error(CMD, "unknown option %s (see --help)", a);
    }
    if (!o->model || !o->data || !o->out) return cli_error(CMD, "needs -m BASE, --data FILE and -o OUT (see --help)");
    if (o->steps > 0 && o->epochs > 0) return cli_error(CMD, "give --steps or --epochs, not both");
    return 0;
}

/* What the loop calls back into: the display and the checks of a terminal. */
typedef struct train_ui {
    const hl_model *model;  /* the base, whose file is checked before each step */
    hl_progress *prog;
    FILE *info;             /* notes: stderr, or nowhere on the ranks after the first */
    double exchange_s, step_s; /* summed over the steps: the gradient exchange, and the whole step */
    int64_t steps;
} train_ui;

static int stop_requested(void *user) {
    (void)user;
    return interrupted != 0;
}

static hl_status check_base(void *user, int64_t next_step, hl_error *err) {
    (void)next_step;
    return cli_check_model_file(((train_ui *)user)->model, err); /* truncated by another process? */
}

static void show_progress(void *user, const hl_train_record *r) {
    train_ui *ui = user;
    hl_progress_update(ui->prog, r);
    ui->exchange_s += r->exchange_s;
    ui->step_s += r->fwd_bwd_s + r->optim_s;
    ui->steps++;
}

static void show_start(void *user, const hl_train_record *r) {
    if (r->step == 0) fprintf(((train_ui *)user)->info, "hyperlora train: eval loss before training %.4f\n", r->eval_loss);
}

/* With --init-from: no --lexicon takes the adapter's carried one; a --lexicon
 * composed by another rule than the adapter's is said, since its weights
 * learned to read the other rule's vectors. */
static hl_status check_start_lexicon(const train_opts *o, const hl_adapter *start, const hl_model *m, hl_lexicon **lex,
                                     FILE *info, hl_error *err) {
    hl_lexicon *carried = NULL;
    hl_status s = hl_lexicon_from_adapter(start, m, &carried, err);
    if (s) return s;
    if (!*lex) {
        if (carried)
            fprintf(info, "hyperlora train: using the lexicon %s carries (%d lexemes, %s); --lexicon replaces it\n",
                    o->init_from, (int)hl_lexicon_n_entries(carried), hl_lexicon_compose_rule(carried));
        *lex = carried;
        return HL_OK;
    }
    if (carried && strcmp(hl_lexicon_compose_rule(carried), hl_lexicon_compose_rule(*lex)))
        fprintf(info, "hyperlora train: warning: %s was trained on lexemes composed by %s; --lexicon %s composes by %s\n",
                o->init_from, hl_lexicon_compose_rule(carried), o->lexicon, hl_lexicon_compose_rule(*lex));
    hl_lexicon_free(carried);
    return HL_OK;
}

static int train_main(int argc, char **argv, const cli_dist *dist) {
    train_opts o;
    int pr = parse(argc, argv, &o);
    if (pr) return pr == 2 ? 0 : 1;
    /* An empty list is a slip (an unset shell variable), not a request for the default. */
    if (o.targets && !*o.targets) return cli_error(CMD, "--targets is empty (leave it out for the default, " HL_DEFAULT_TARGETS ")");
    if (o.layers && !*o.layers) return cli_error(CMD, "--layers is empty (leave it out for all layers)");
    char ckpt_default[4096], metrics_default[4096];
    snprintf(ckpt_default, sizeof ckpt_default, "%s.ckpt", o.out);
    snprintf(metrics_default, sizeof metrics_default, "%s.metrics.jsonl", o.out);
    if (!o.ckpt) o.ckpt = ckpt_default;
    if (!o.metrics) o.metrics = metrics_default;
    /* The output rule (util/fileio.h): checked before anything is loaded or written. */
    hl_io_plan plan;
    hl_io_plan_init(&plan);
    hl_io_plan_add(&plan, HL_IO_INPUT, "-m", o.model);
    hl_io_plan_add(&plan, HL_IO_INPUT, "--tokenizer", o.tokenizer);
    hl_io_plan_add(&plan, HL_IO_INPUT, "--data", o.data);
    hl_io_plan_add(&plan, HL_IO_INPUT, "--lexicon", o.lexicon);
    if (o.init_from) cli_plan_adapter(&plan, "--init-from", o.init_from); /* a PEFT directory: its two files */
    hl_io_plan_add(&plan, HL_IO_OUTPUT, "-o", o.out);
    /* A checkpoint is a GGUF file: anything else at its path (the default one
     * is derived from -o, so the user never named it) is not replaced. */
    hl_io_plan_add_log(&plan, o.ckpt == ckpt_default ? "the default --checkpoint" : "--checkpoint", o.ckpt, "GGUF",
                       "a checkpoint");
    hl_io_plan_add_log(&plan, o.metrics == metrics_default ? "the default --metrics" : "--metrics", o.metrics,
                       HL_METRICS_PREFIX, "a metrics log");
    cli_plan_peft_out(&plan, "--peft-out", o.peft_out);
    if (cli_check_io(CMD, &plan)) return 1;

    hl_error err = {0};
    hl_status s;
    hl_model *m = NULL;
    hl_lexicon *lex = NULL;
    hl_dataset *ds = NULL;
    hl_adapter *ad = NULL, *start = NULL;
    hl_train_run *run = NULL;
    train_ui ui = {.model = NULL, .prog = NULL, .info = dist->info};
    char config[2048];
    int rc = 1;

    if ((s = hl_model_load(o.model, o.tokenizer, &m, &err))) goto fail;
    ui.model = m;
    const hl_model_config *mc = hl_model_get_config(m);
    if (o.ctx > mc->seq_len) {
        cli_error(CMD, "--ctx %ld exceeds the model's context (%d)", o.ctx, mc->seq_len);
        goto done;
    }
    if (o.compose && !o.lexicon) {
        rc = cli_error(CMD, "--compose needs --lexicon");
        goto done;
    }
    if (o.init_from && (s = hl_adapter_load(o.init_from, m, o.force, &start, &err))) goto fail;
    if (o.lexicon && (s = hl_lexicon_load_compose(o.lexicon, m, o.compose, &lex, &err))) goto fail;
    if (start && (s = check_start_lexicon(&o, start, m, &lex, dist->info, &err))) goto fail;
    if (lex) cli_note_byte_parts(CMD, lex);
    hl_dataset_params dp = {.ctx = (int32_t)o.ctx, .pack = o.pack, .val_fraction = (float)o.val_fraction,
                            .seed = o.seed, .scene_format = lex ? hl_lexicon_scene_format : NULL, .scene_user = lex};
    const hl_tokenizer *tk = lex ? hl_lexicon_tokenizer(lex) : hl_model_get_tokenizer(m);
    if ((s = hl_dataset_load(o.data, tk, &dp, &ds, &err))) goto fail;
    const hl_dataset_stats *dst = hl_dataset_get_stats(ds);
    if (dst->n_train_rows == 0) {
        cli_error(CMD, "%s: no training rows", o.data);
        goto done;
    }
    if (o.epochs > 0) {
        double rows = o.epochs * (double)dst->n_train_rows / (double)(o.batch * o.accum);
        o.steps = (long)ceil(rows);
        if (o.steps < 1) o.steps = 1;
    } else if (o.steps < 0) o.steps = 100;
    /* The kernel level and weight layout round differently, so a resume must
     * run on the same ones (kernels/kernel_choice.h). */
    char kernels[64];
    if ((s = hl_train_kernels_name(m, 0, kernels, sizeof kernels, &err))) goto fail;
    describe(&o, hl_model_fingerprint(m), kernels, config, sizeof config);
    fprintf(dist->info, "hyperlora train: kernels %s (%s)\n", kernels,
            m->quantized ? "a quantized base is read from its blocks" : hl_kernel_choice_active().basis);
    fprintf(dist->info, "hyperlora train: %lld examples (%lld train, %lld val, longest %lld tokens), %lld train rows of %ld "
                    "tokens, %lld loss tokens; %ld steps of %ld x %ld x %ld\n",
            (long long)dst->n_examples, (long long)dst->n_train_examples, (long long)dst->n_val_examples,
            (long long)dst->max_example_tokens, (long long)dst->n_train_rows, o.ctx, (long long)dst->n_loss_tokens,
            o.steps, o.batch, o.accum, o.ctx);
    fprintf(dist->info, "hyperlora train: rows: %s packing, %.1f%% of target slots are padding\n",
            cli_pack_mode_name(o.pack),
            100.0 * (1.0 - (double)dst->n_tokens / ((double)dst->n_train_rows * (double)o.ctx)));
    if (dst->n_val_examples)
        fprintf(dist->info, "hyperlora train: %lld of %lld examples are held out for validation and never trained on "
                        "(--val-fraction %g; --val-fraction 0 trains on all of them)\n",
                (long long)dst->n_val_examples, (long long)dst->n_examples, o.val_fraction);
    else if (o.val_fraction > 0) /* too few examples for even one */
        fprintf(dist->info,
                "hyperlora train: no validation split: --val-fraction %g of %lld examples holds none; all "
                "train\n",
                o.val_fraction, (long long)dst->n_examples);
    else
        fprintf(dist->info, "hyperlora train: no validation split (--val-fraction 0): all %lld examples train\n",
                (long long)dst->n_examples);
    if (dst->n_truncated)
        fprintf(dist->info, "hyperlora train: warning: %lld examples are longer than --ctx %ld + 1 and were truncated\n",
                (long long)dst->n_truncated, o.ctx);

    /* The adapter starts exactly as the run did; a resume then overwrites it from the checkpoint. */
    uint32_t targets;
    uint8_t *layers = hl_malloc((size_t)mc->n_layers);
    if (!layers) {
        s = hl_fail(&err, HL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if ((s = hl_parse_targets(o.targets, &targets, &err)) == HL_OK &&
        (s = hl_parse_layers(o.layers, mc->n_layers, layers, &err)) == HL_OK) {
        hl_adapter_spec spec = {.name = o.name ? o.name : "hyperlora-adapter", .targets = targets, .layers = layers,
                                .rank = (int32_t)o.rank, .alpha = (float)o.alpha, .rslora = o.rslora, .init = o.init,
                                .seed = o.seed};
        s = hl_adapter_create(m, &spec, &ad, &err);
    }
    hl_free(layers);
    if (s) goto fail;
    if (start) {
        int32_t fresh = 0;
        if ((s = hl_adapter_start_from(ad, start, &fresh, &err))) {
            cli_error(CMD, "--init-from %s: %s (--rank, --targets and --layers must give the new adapter every "
                           "weight it has, at its rank)", o.init_from, err.msg);
            goto done;
        }
        fprintf(dist->info, "hyperlora train: A and B start from %s (%d weights%s%d start fresh); AdamW starts fresh\n",
                o.init_from, (int)(ad->n_weights - fresh), fresh ? ", " : "; ", (int)fresh);
    }
    if (lex && (s = hl_lexicon_attach(lex, ad, &err))) goto fail;
    const hl_model *train_model = lex ? hl_lexicon_model(lex) : m;
    hl_train_config tc = hl_train_default_config();
    tc.batch = (int32_t)o.batch;
    tc.ctx = (int32_t)o.ctx;
    tc.accum = (int32_t)o.accum;
    tc.n_threads = (int32_t)o.threads;
    tc.steps = o.steps;
    tc.lr = o.lr;
    tc.schedule = (hl_train_schedule)o.schedule;
    tc.warmup = o.warmup;
    tc.min_lr_ratio = o.min_lr_ratio;
    tc.weight_decay = o.wd;
    tc.beta1 = o.beta1;
    tc.beta2 = o.beta2;
    tc.eps = o.eps;
    tc.clip = o.clip;
    tc.dropout = o.dropout;
    tc.seed = o.seed;
    tc.rng_salt = 0x5eed; /* train's checkpoints have always held this RNG */
    tc.eval_every = o.eval_every;
    tc.eval_at_start = 1;
    tc.checkpoint_every = o.ckpt_every;
    tc.checkpoint_path = o.ckpt;
    tc.metrics_path = o.metrics;
    tc.stop_at = o.stop_at;
    tc.settings = config;
    tc.base_fingerprint = hl_model_fingerprint(m);
    tc.on_metrics = show_start;
    tc.on_progress = show_progress;
    tc.before_step = check_base;
    tc.should_stop = stop_requested;
    tc.user = &ui;
    tc.comm = cli_dist_comm(dist);
    if ((s = hl_train_run_init(train_model, ad, ds, &tc, &run, &err))) goto fail;
    if (dist->size > 1)
        fprintf(dist->info, "hyperlora train: %d processes share each step's %ld rows; %.1f KiB exchanged per step\n",
                dist->size, o.batch * o.accum, (double)hl_train_run_exchange_bytes(run) / 1024.0);
    if (o.resume) {
        if ((s = hl_train_run_resume(run, o.ckpt, &err))) {
            const char *saved = hl_train_run_checkpoint_settings(run);
            if (s != HL_ERR_MISMATCH || !saved) goto fail;
            char shown[1024]; /* the checkpoint's settings come from the file */
            cli_error(CMD, "%s was made with other settings; resume needs the same ones.\n  checkpoint: %s\n  now:        %s",
                      o.ckpt, hl_escape_str(saved, shown, sizeof shown), config);
            goto done;
        }
        fprintf(dist->info, "hyperlora train: resumed from %s at step %lld\n", o.ckpt,
                (long long)hl_train_run_step_count(run));
    }
    if (!(ui.prog = hl_progress_init(dist->info, o.plain, 10))) {
        s = hl_fail(&err, HL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    hl_train_outcome outcome;
    s = hl_train_run_to_end(run, &outcome, &err);
    if (s && strncmp(err.msg, HL_TRAIN_GRAD_NORM_MSG, strlen(HL_TRAIN_GRAD_NORM_MSG)) == 0) {
        cli_error(CMD, "%s: lower --lr or raise --clip", err.msg);
        goto done;
    }
    if (s) goto fail;
    hl_progress_finish(ui.prog);
    int64_t step = hl_train_run_step_count(run);
    double last_eval = hl_train_run_last_eval(run);
    if (outcome == HL_TRAIN_PAUSED) {
        fprintf(dist->info, "hyperlora train: stopped at step %lld as asked; checkpoint %s; continue with --resume\n",
                (long long)step, o.ckpt);
        rc = 0;
        goto done;
    }
    if (outcome == HL_TRAIN_STOPPED) {
        fprintf(dist->info, "hyperlora train: interrupted at step %lld; checkpoint %s; continue with --resume\n",
                (long long)step, o.ckpt);
        rc = 130;
        goto done;
    }
    if (dist->rank == 0) { /* every rank holds the same weights; one writes them */
        if ((s = hl_adapter_save_gguf(ad, o.out, &err))) goto fail;
        if (o.peft_out && (s = hl_adapter_save_peft(ad, train_model, o.peft_out, &err))) goto fail;
    }
    if (dist->size > 1 && ui.steps > 0 && ui.step_s > 0)
        fprintf(dist->info, "hyperlora train: the gradient exchange took %.1f%% of the step time (%.2f ms a step)\n",
                100.0 * ui.exchange_s / ui.step_s, 1e3 * ui.exchange_s / (double)ui.steps);
    if (isnan(last_eval))
        fprintf(dist->info, "hyperlora train: wrote %s after %lld steps (%s)\n", o.out, (long long)step,
                hl_dataset_get_stats(ds)->n_val_examples ? "no evaluation ran in this run" : "no validation split");
    else
        fprintf(dist->info, "hyperlora train: wrote %s after %lld steps (final eval loss %.4f)\n", o.out,
                (long long)step, last_eval);
    rc = 0;
    goto done;
fail:
    rc = cli_fail(CMD, &err);
done:
    hl_progress_free(ui.prog);
    hl_train_run_free(run);
    hl_adapter_free(ad);
    hl_adapter_free(start);
    hl_dataset_free(ds);
    hl_lexicon_free(lex);
    hl_model_free(m);
    return rc;
}

int cmd_train(int argc, char **argv) {
    cli_dist dist;
    int rc = cli_dist_begin(&dist, CMD);
    return rc ? rc : cli_dist_end(&dist, train_main(argc, argv, &dist));
}
