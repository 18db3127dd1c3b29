/* cmd_pretrain.c: `hyperlora pretrain`: full-parameter training of a small
 * Llama-family model from scratch on a plain-text corpus, with a BPE
 * tokenizer trained on the same corpus. The loop is LoRA training's
 * (hl_train_run in full mode: same optimizer, schedules, checkpoints,
 * metrics and progress display); writes a standard GGUF that llama.cpp also
 * loads. */
#include "cli/cli.h"
#include "io/gguf.h"
#include "model/model.h"
#include "text/bpe_train.h"
#include "text/tokenizer.h"
#include "train/dataset.h"
#include "cli/dist.h"
#include "cli/progress.h"
#include "train/metrics.h"
#include "train/optim.h"
#include "util/utf8.h"
#include "hyperlora/train.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/hash.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *CMD = "pretrain";
#define MAX_CORPUS 4096

/* Set by SIGINT/SIGTERM; the run checkpoints and stops after the current step. */
static volatile sig_atomic_t stop_requested = 0;
static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

static int should_stop(void *user) {
    (void)user;
    return stop_requested != 0;
}

static void show_progress(void *user, const hl_train_record *r) { hl_progress_update(user, r); }

typedef struct { const char *name; hl_model_config c; } preset;
static const preset presets[] = {
    {"nano", {.dim = 64, .hidden_dim = 176, .n_layers = 4, .n_heads = 4, .n_kv_heads = 4, .seq_len = 128}},
    {"micro", {.dim = 128, .hidden_dim = 352, .n_layers = 4, .n_heads = 4, .n_kv_heads = 4, .seq_len = 256}},
    {"mini", {.dim = 256, .hidden_dim = 688, .n_layers = 6, .n_heads = 8, .n_kv_heads = 4, .seq_len = 256}},
};

static void help(void) {
    printf("usage: hyperlora pretrain --corpus FILE [--corpus FILE ...] -o MODEL.gguf [options]\n\n"
           "Trains a small Llama-family model from scratch (every weight), with a BPE\n"
           "tokenizer trained on the same corpus, and writes a GGUF (llama.cpp loads it).\n\n"
           "corpus\n"
           "  --corpus FILE        UTF-8 text; documents are separated by a line holding only \"%%\"\n"
           "                       (fortune format) or by a blank line\n"
           "  --max-bytes N        use at most N bytes of each corpus file (default: all)\n"
           "  --vocab N            BPE vocabulary size (default 2048)\n"
           "  --val-fraction F     documents held out for the validation loss (default 0.05)\n"
           "  --pack stream|docs|none   how documents become rows (default stream: concatenated\n"
           "                       and cut every --ctx tokens, attending across documents; docs:\n"
           "                       whole documents packed, each attending only to itself, longer\n"
           "                       ones truncated; none: one document per row; see train --help)\n"
           "shape\n"
           "  --preset nano|micro|mini   (default micro: dim 128, 4 layers, ffn 352, ctx 256)\n"
           "  --dim N --ffn N --layers N --heads N --kv-heads N --ctx N\n"
           "  --tied               one table for the embeddings and the LM head (written to the\n"
           "                       file as two equal tensors); a scene decoder on a tied base can\n"
           "                       emit a word straight from its input embedding\n"
           "optimisation (as in train)\n"
           "  --steps N --batch B --lr LR --warmup N --schedule cosine|linear|constant\n"
           "  --min-lr-ratio F --weight-decay W (default 0.1, matrices only) --clip C --seed S\n"
           "  --threads N --eval-every N\n"
           "output\n"
           "  -o FILE  --metrics FILE  --checkpoint FILE  --checkpoint-every N  --resume  --plain\n");
}

/* Appends s as a JSON string literal. */
static int json_escape(char **buf, size_t *len, size_t *cap, const char *s, size_t n) {
    if (*len + 6 * n + 16 > *cap) {
        size_t nc = (*len + 6 * n + 16) * 2;
        char *nb = hl_realloc(*buf, nc);
        if (!nb) return 0;
        *buf = nb;
        *cap = nc;
    }
    char *o = *buf + *len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c == '\n') {
            *o++ = '\\';
            *o++ = 'n';
        } else if (c == '\t') {
            *o++ = '\\';
            *o++ = 't';
        } else if (c < 0x20) {
            o += sprintf(o, "\\u%04x", c);
        } else *o++ = (char)c;
    }
    *o++ = '"';
    *len = (size_t)(o - *buf);
    return 1;
}

/* Splits text into documents and appends {"text": doc} lines to a JSONL buffer,
 * and the raw documents (newline-joined) to the tokenizer's training text. */
static int add_documents(const char *text, size_t len, char **jsonl, size_t *jl, size_t *jc, char **raw, size_t *rl,
                         size_t *rc, int64_t *n_docs) {
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        int at_end = i == len;
        size_t line_end = i;
        if (!at_end && text[i] != '\n') continue;
        /* the line [ls, i) */
        size_t ls = i;
        while (ls > 0 && text[ls - 1] != '\n') ls--;
        int sep = at_end || (i - ls == 1 && text[ls] == '%') || i == ls || (i - ls == 1 && text[ls] == '\r');
        if (!sep) continue;
        size_t doc_end = at_end ? len : ls;
        /* trim */
        size_t a = start, b = doc_end;
        while (a < b && (text[a] == '\n' || text[a] == '\r' || text[a] == ' ')) a++;
        while (b > a && (text[b - 1] == '\n' || text[b - 1] == '\r' || text[b - 1] == ' ')) b--;
        if (b > a) {
            const char *pre = "{\"text\": ";
            size_t pl = strlen(pre);
            if (*jl + pl + 8 > *jc) {
                size_t nc = (*jl + pl + 8) * 2;
                char *nb = hl_realloc(*jsonl, nc);
                if (!nb) return 0;
                *jsonl = nb;
                *jc = nc;
            }
            memcpy(*jsonl + *jl, pre, pl);
            *jl += pl;
            if (!json_escape(jsonl, jl, jc, text + a, b - a)) return 0;
            if (*jl + 4 > *jc) {
                char *nb = hl_realloc(*jsonl, *jc * 2);
                if (!nb) return 0;
                *jsonl = nb;
                *jc *= 2;
            }
            memcpy(*jsonl + *jl, "}\n", 2);
            *jl += 2;
            if (*rl + (b - a) + 2 > *rc) {
                size_t nc = (*rl + (b - a) + 2) * 2;
                char *nb = hl_realloc(*raw, nc);
                if (!nb) return 0;
                *raw = nb;
                *rc = nc;
            }
            memcpy(*raw + *rl, text + a, b - a);
            *rl += b - a;
            (*raw)[(*rl)++] = '\n';
            (*n_docs)++;
        }
        start = line_end + 1;
    }
    return 1;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int pretrain_main(int argc, char **argv, const cli_dist *dist) {
    const char *corpus[MAX_CORPUS], *out = NULL, *metrics_path = NULL, *ckpt_path = NULL;
    int n_corpus = 0, resume = 0, plain = 0, tied = 0;
    hl_model_config cfg = presets[1].c;
    long vocab = 2048, steps = 500, batch = 8, warmup = 50, threads = 1, eval_every = 100, ckpt_every = 100;
    long max_bytes = 0, v_int;
    double lr = 3e-3, min_lr = 0.1, wd = 0.1, clip = 1.0, val_fraction = 0.05;
    uint64_t seed = 0;
    hl_schedule_kind sched_kind = HL_SCHED_COSINE;
    hl_pack_mode pack = HL_PACK_STREAM;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (cli_is_help(a)) {
            help();
            return 0;
        }
        if (!strcmp(a, "--resume")) { resume = 1; continue; }
        if (!strcmp(a, "--plain")) { plain = 1; continue; }
        if (!strcmp(a, "--tied")) { tied = 1; continue; }
        if (!(v = cli_value(CMD, argc, argv, &i))) return 1;
        if (!strcmp(a, "--corpus")) {
            if (n_corpus == MAX_CORPUS) return cli_error(CMD, "at most %d corpus files", MAX_CORPUS);
            corpus[n_corpus++] = v;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) out = v;
        else if (!strcmp(a, "--metrics")) metrics_path = v;
        else if (!strcmp(a, "--checkpoint")) ckpt_path = v;
        else if (!strcmp(a, "--preset")) {
            size_t k = 0;
            for (; k < sizeof presets / sizeof presets[0]; k++)
                if (!strcmp(presets[k].name, v)) break;
            if (k == sizeof presets / sizeof presets[0]) return cli_error(CMD, "unknown preset \"%s\"", v);
            cfg = presets[k].c;
        } else if (!strcmp(a, "--schedule")) {
            if (!strcmp(v, "cosine")) sched_kind = HL_SCHED_COSINE;
            else if (!strcmp(v, "linear")) sched_kind = HL_SCHED_LINEAR;
            else if (!strcmp(v, "constant")) sched_kind = HL_SCHED_CONSTANT;
            else return cli_error(CMD, "--schedule must be cosine, linear or constant");
        } else if (!strcmp(a, "--seed")) {
            if (!cli_u64(CMD, a, v, &seed)) return 1;
        } else if (!strcmp(a, "--pack")) {
            if (!cli_pack_mode(CMD, v, &pack)) return 1;
        }
#define INT(opt, var, lo, hi) else if (!strcmp(a, opt)) { if (!cli_int(CMD, a, v, lo, hi, &var)) return 1; }
#define DBL(opt, var, lo, hi) else if (!strcmp(a, opt)) { if (!cli_float(CMD, a, v, lo, hi, &var)) return 1; }
#define CFG(opt, field) else if (!strcmp(a, opt)) { if (!cli_int(CMD, a, v, 1, 1 << 16, &v_int)) return 1; cfg.field = (int32_t)v_int; }
        INT("--vocab", vocab, 300, 1 << 20) INT("--steps", steps, 1, 1L << 40) INT("--batch", batch, 1, 4096)
        INT("--warmup", warmup, 0, 1L << 40) INT("--threads", threads, 1, 256) INT("--eval-every", eval_every, 0, 1L << 40)
        INT("--checkpoint-every", ckpt_every, 0, 1L << 40) INT("--max-bytes", max_bytes, 1, 1L << 40)
        DBL("--lr", lr, 0, 10) DBL("--min-lr-ratio", min_lr, 0, 1) DBL("--weight-decay", wd, 0, 10)
        DBL("--clip", clip, 0, 1e9) DBL("--val-fraction", val_fraction, 0, 0.5)
        CFG("--dim", dim) CFG("--ffn", hidden_dim) CFG("--layers", n_layers) CFG("--heads", n_heads)
        CFG("--kv-heads", n_kv_heads) CFG("--ctx", seq_len)
#undef INT
#undef DBL
#undef CFG
        else return cli_error(CMD, "unknown option %s (see --help)", a);
    }
    if (!n_corpus || !out) return cli_error(CMD, "needs --corpus FILE and -o MODEL.gguf (see --help)");
    char ckpt_default[4096], metrics_default[4096];
    snprintf(ckpt_default, sizeof ckpt_default, "%s.ckpt", out);
    snprintf(metrics_default, sizeof metrics_default, "%s.metrics.jsonl", out);
    if (!ckpt_path) ckpt_path = ckpt_default;
    if (!metrics_path) metrics_path = metrics_default;
    /* The output rule (util/fileio.h): checked before anything is read or written. */
    hl_io_plan plan;
    hl_io_plan_init(&plan);
    for (int k = 0; k < n_corpus; k++) hl_io_plan_add(&plan, HL_IO_INPUT, "--corpus", corpus[k]);
    hl_io_plan_add(&plan, HL_IO_OUTPUT, "-o", out);
    /* a checkpoint is GGUF: anything else at its path is not replaced (as in train) */
    hl_io_plan_add_log(&plan, ckpt_path == ckpt_default ? "the default --checkpoint" : "--checkpoint", ckpt_path,
                       "GGUF", "a checkpoint");
    hl_io_plan_add_log(&plan, metrics_path == metrics_default ? "the default --metrics" : "--metrics", metrics_path,
                       HL_METRICS_PREFIX, "a metrics log");
    if (cli_check_io(CMD, &plan)) return 1;

    hl_error err = {0};
    hl_status s = HL_OK;
    char *jsonl = NULL, *raw = NULL;
    size_t jl = 0, jc = 0, rl = 0, rcap = 0;
    int64_t n_docs = 0;
    hl_tokenizer *tok = NULL;
    hl_model *m = NULL;
    hl_dataset *ds = NULL;
    hl_train_run *run = NULL;
    hl_progress *prog = NULL;
    int rc = 1;
    uint64_t corpus_hash = HL_FNV1A_BASIS;
    for (int k = 0; k < n_corpus; k++) {
        char *text = NULL;
        size_t len = 0;
        if ((s = hl_read_file(corpus[k], (size_t)1 << 31, &text, &len, &err))) goto fail;
        if (max_bytes > 0 && len > (size_t)max_bytes) {
            len = (size_t)max_bytes;
            while (len > 0 && (text[len] & 0xc0) == 0x80) len--; /* cut on a UTF-8 boundary */
        }
        size_t bad;
        if (!hl_utf8_valid(text, len, &bad)) { /* here the offset is the file's own, not the joined corpus's */
            s = hl_fail(&err, HL_ERR_INVALID_ARG, "--corpus %s: invalid UTF-8 at byte offset %zu (byte 0x%02X)",
                        corpus[k], bad, (unsigned)(unsigned char)text[bad]);
            hl_free(text);
            goto fail;
        }
        corpus_hash = hl_fnv1a(corpus_hash, text, len);
        int ok = add_documents(text, len, &jsonl, &jl, &jc, &raw, &rl, &rcap, &n_docs);
        hl_free(text);
        if (!ok) {
            s = hl_fail(&err, HL_ERR_NOMEM, "out of memory reading the corpus");
            goto fail;
        }
    }
    if (n_docs == 0) {
        cli_error(CMD, "the corpus has no documents");
        goto done;
    }
    double t0 = now_s();
    fprintf(dist->info, "hyperlora pretrain: %lld documents, %zu bytes; training a %ld-token BPE tokenizer...\n",
            (long long)n_docs, rl, vocab);
    hl_bpe_train_params bp;
    hl_bpe_train_params_default(&bp);
    if ((s = hl_tokenizer_train_bpe(raw, rl, (int32_t)vocab, &bp, &tok, &err))) goto fail;
    fprintf(dist->info, "hyperlora pretrain: tokenizer ready in %.1f s\n", now_s() - t0);
    if (hl_tokenizer_n_vocab(tok) < vocab)
        fprintf(dist->info,
                "hyperlora pretrain: the corpus gave %d tokens, not the %ld asked for: it has no more "
                "pairs to merge\n",
                hl_tokenizer_n_vocab(tok), vocab);
    cfg.tied_output = tied;
    if ((s = hl_model_init_random_tok(&cfg, tok, seed, &m, &err))) {
        tok = NULL;
        goto fail;
    }
    tok = NULL;
    hl_free(m->name);
    m->name = hl_strdup("hyperlora-pretrained");
    hl_dataset_params dp = {.ctx = cfg.seq_len, .pack = pack, .val_fraction = (float)val_fraction, .seed = seed};
    if ((s = hl_dataset_load_memory(jsonl, jl, "corpus", m->tok, &dp, &ds, &err))) goto fail;
    const hl_dataset_stats *dst = hl_dataset_get_stats(ds);
    char config[1024];
    snprintf(config, sizeof config,
             "pretrain corpus=%016llx vocab=%ld dim=%d ffn=%d layers=%d heads=%d kv=%d ctx=%d steps=%ld batch=%ld "
             "lr=%.9g warmup=%ld schedule=%d min_lr=%.9g wd=%.9g clip=%.9g val=%.9g seed=%llu%s%s",
             (unsigned long long)corpus_hash, vocab, cfg.dim, cfg.hidden_dim, cfg.n_layers, cfg.n_heads,
             cfg.n_kv_heads, cfg.seq_len, steps, batch, lr, warmup, (int)sched_kind, min_lr, wd, clip, val_fraction,
             (unsigned long long)seed, pack == HL_PACK_STREAM ? "" : pack == HL_PACK_DOCS ? " pack=docs" : " pack=none",
             tied ? " tied" : "");
    if (!(prog = hl_progress_init(dist->info, plain, 25))) {
        s = hl_fail(&err, HL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    hl_train_config tc = hl_train_default_config();
    tc.mode = HL_TRAIN_FULL;
    tc.batch = (int32_t)batch;
    tc.ctx = cfg.seq_len;
    tc.n_threads = (int32_t)threads;
    tc.steps = steps;
    tc.lr = lr;
    tc.schedule = (hl_train_schedule)sched_kind;
    tc.warmup = warmup;
    tc.min_lr_ratio = min_lr;
    tc.weight_decay = wd;
    tc.beta2 = 0.95; /* pretraining's AdamW: betas 0.9, 0.95 */
    tc.clip = clip;
    tc.seed = seed;
    tc.rng_salt = 0x9e37; /* pretrain's checkpoints have always held this RNG */
    tc.eval_every = eval_every;
    tc.eval_at_start = 0; /* pretrain logs no step-0 eval */
    tc.checkpoint_every = ckpt_every;
    tc.checkpoint_path = ckpt_path;
    tc.metrics_path = metrics_path;
    tc.settings = config;
    tc.on_progress = show_progress;
    tc.should_stop = should_stop;
    tc.user = prog;
    tc.comm = cli_dist_comm(dist);
    if ((s = hl_train_run_init(m, NULL, ds, &tc, &run, &err))) goto fail;
    fprintf(dist->info, "hyperlora pretrain: %lld parameters (dim %d, %d layers, ffn %d, vocab %d, ctx %d%s); %lld train "
                    "rows, %lld val rows, %lld tokens; %ld steps of %ld x %d\n",
            (long long)hl_train_run_n_params(run), cfg.dim, cfg.n_layers, cfg.hidden_dim, m->cfg.vocab_size,
            cfg.seq_len, tied ? ", tied LM head" : "", (long long)dst->n_train_rows, (long long)dst->n_val_rows,
            (long long)dst->n_tokens, steps, batch, cfg.seq_len);
    if (dist->size > 1)
        fprintf(dist->info, "hyperlora pretrain: %d processes share each step's %ld rows; %.1f MiB exchanged per step\n",
                dist->size, batch, (double)hl_train_run_exchange_bytes(run) / 1048576.0);
    if (resume) {
        if ((s = hl_train_run_resume(run, ckpt_path, &err))) {
            if (s != HL_ERR_MISMATCH) goto fail;
            cli_error(CMD, "%s", err.msg); /* "... was made with other settings" */
            goto done;
        }
        fprintf(dist->info, "hyperlora pretrain: resumed at step %lld\n", (long long)hl_train_run_step_count(run));
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    hl_train_outcome outcome;
    if ((s = hl_train_run_to_end(run, &outcome, &err))) {
        if (strncmp(err.msg, HL_TRAIN_GRAD_NORM_MSG, strlen(HL_TRAIN_GRAD_NORM_MSG)) != 0) goto fail;
        cli_error(CMD, "%s: lower --lr", err.msg);
        goto done;
    }
    hl_progress_finish(prog);
    if (outcome == HL_TRAIN_STOPPED) {
        fprintf(dist->info, "hyperlora pretrain: interrupted at step %lld; continue with --resume\n",
                (long long)hl_train_run_step_count(run));
        rc = 130;
        goto done;
    }
    if (dist->rank == 0 && (s = hl_model_save_gguf(m, out, &err))) goto fail; /* the same weights on every rank */
    fprintf(dist->info, "hyperlora pretrain: wrote %s; validation loss %.4f after %lld steps (%.0f s)\n", out,
            hl_train_run_last_eval(run), (long long)hl_train_run_step_count(run), now_s() - t0);
    rc = 0;
    goto done;
fail:
    rc = cli_fail(CMD, &err);
done:
    hl_train_run_free(run);
    hl_progress_free(prog);
    hl_dataset_free(ds);
    hl_model_free(m);
    hl_tokenizer_free(tok);
    hl_free(jsonl);
    hl_free(raw);
    return rc;
}

int cmd_pretrain(int argc, char **argv) {
    cli_dist dist;
    int rc = cli_dist_begin(&dist, CMD);
    return rc ? rc : cli_dist_end(&dist, pretrain_main(argc, argv, &dist));
}
