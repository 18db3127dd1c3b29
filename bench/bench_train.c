/* bench_train.c: LoRA training throughput and memory on one GGUF model.
 *
 * A step is one hl_train_run_step, the loop `hyperlora train` runs, fed
 * by a batch source instead of a dataset: zero the gradients, forward and
 * backward on a batch of random tokens (B rows of T+1; mean cross-entropy
 * over all B·T targets with the full-vocabulary logits), the gradient norm
 * (no clipping), then one AdamW update (lr 1e-4 constant, betas 0.9 /
 * 0.999, eps 1e-8, no weight decay, as the PyTorch peer). The adapter is
 * fresh (Kaiming-uniform A, B = 0), no dropout. No metrics log, no
 * checkpoints.
 *
 * Step time = the record's fwd_bwd_s + optim_s; tokens/s = B·T / median
 * step time over --steps timed steps after --warmup untimed ones. Peak RSS is this process's ru_maxrss (it includes the mmapped
 * model pages that were touched). With --mflop (per token), the achieved
 * GFLOP/s is reported too. After the steps, --eval-runs forward-only passes
 * (hl_trainer_eval) give the forward share of a step.
 *
 * One configuration per process, so that peak RSS is that configuration's. */
#include "hyperlora.h"
#include "hyperlora/train.h"
#include "lora/create.h"
#include "util/rng.h"

#include "bench_util.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STEPS 64

typedef struct opts {
    const char *model, *name, *json, *targets;
    int batch, ctx, threads, rank, warmup, steps, eval_runs;
    double alpha, mflop;
} opts;

static void usage(void) {
    printf("usage: bench_train -m MODEL.gguf [--name LABEL] [--batch 4] [--ctx 256] [--threads 2] [--rank 8]\n"
           "                   [--alpha 16] [--targets q,v,o,gate,up,down] [--warmup 2] [--steps 5]\n"
           "                   [--eval-runs 2] [--mflop MFLOP_PER_TOKEN] [--json FILE]\n");
}

static int parse(int argc, char **argv, opts *o) {
    *o = (opts){.batch = 4, .ctx = 256, .threads = 2, .rank = 8, .alpha = 16, .warmup = 2, .steps = 5,
                .eval_runs = 2, .targets = "q,v,o,gate,up,down"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            exit(0);
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "bench_train: %s needs a value\n", a);
            return 0;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "-m")) o->model = v;
        else if (!strcmp(a, "--name")) o->name = v;
        else if (!strcmp(a, "--json")) o->json = v;
        else if (!strcmp(a, "--targets")) o->targets = v;
        else if (!strcmp(a, "--batch")) o->batch = atoi(v);
        else if (!strcmp(a, "--ctx")) o->ctx = atoi(v);
        else if (!strcmp(a, "--threads")) o->threads = atoi(v);
        else if (!strcmp(a, "--rank")) o->rank = atoi(v);
        else if (!strcmp(a, "--alpha")) o->alpha = atof(v);
        else if (!strcmp(a, "--warmup")) o->warmup = atoi(v);
        else if (!strcmp(a, "--steps")) o->steps = atoi(v);
        else if (!strcmp(a, "--eval-runs")) o->eval_runs = atoi(v);
        else if (!strcmp(a, "--mflop")) o->mflop = atof(v);
        else {
            fprintf(stderr, "bench_train: unknown option %s\n", a);
            return 0;
        }
    }
    if (!o->model) {
        usage();
        return 0;
    }
    if (o->batch < 1 || o->ctx < 2 || o->threads < 1 || o->rank < 1 || o->warmup < 0 || o->steps < 1 ||
        o->steps > MAX_STEPS || o->eval_runs < 0 || o->eval_runs > MAX_STEPS) {
        fprintf(stderr, "bench_train: bad sizes (steps 1..%d)\n", MAX_STEPS);
        return 0;
    }
    if (!o->name) o->name = o->model;
    return 1;
}

/* The batch source: the same random rows every step, each one sequence. */
typedef struct bench_data {
    const int32_t *tok;   /* (B, T+1) */
    int batch, ctx;
    hl_train_record last; /* the latest step's record */
} bench_data;

static hl_status same_batch(void *user, uint64_t micro_step, int32_t *tokens, uint8_t *mask, int32_t *pos,
                            hl_error *err) {
    const bench_data *d = user;
    (void)micro_step;
    (void)err;
    memcpy(tokens, d->tok, (size_t)d->batch * (size_t)(d->ctx + 1) * sizeof *tokens);
    memset(mask, 1, (size_t)d->batch * (size_t)d->ctx);
    for (int64_t i = 0; i < (int64_t)d->batch * d->ctx; i++) pos[i] = (int32_t)(i % d->ctx);
    return HL_OK;
}

static void keep_record(void *user, const hl_train_record *r) { ((bench_data *)user)->last = *r; }

static void die(const char *what, const hl_error *err) {
    fprintf(stderr, "bench_train: %s: %s\n", what, err->msg);
    exit(1);
}

int main(int argc, char **argv) {
    opts o;
    if (!parse(argc, argv, &o)) return 2;
    hl_error err = {0};
    double load0 = bench_loadavg1();
    hl_model *m = NULL;
    if (hl_model_load(o.model, NULL, &m, &err) != HL_OK) die(o.model, &err);
    const hl_model_config *mc = hl_model_get_config(m);
    double rss_model = bench_peak_rss_mib();

    uint32_t targets;
    if (hl_parse_targets(o.targets, &targets, &err) != HL_OK) die("targets", &err);
    hl_adapter_spec spec = {.name = "bench", .targets = targets, .layers = NULL, .rank = o.rank,
                            .alpha = (float)o.alpha, .rslora = 0, .init = HL_INIT_KAIMING, .seed = 1};
    hl_adapter *ad = NULL;
    if (hl_adapter_create(m, &spec, &ad, &err) != HL_OK) die("adapter", &err);
    int64_t trainable = 0;
    for (int32_t i = 0; i < ad->n_weights; i++)
        trainable += (int64_t)ad->w[i].rank * (ad->w[i].n_in + ad->w[i].n_out);

    const int64_t row = o.ctx + 1;
    int32_t *tok = malloc((size_t)(o.batch * row) * sizeof *tok);
    if (!tok) return 1;
    hl_rng rng;
    hl_rng_seed(&rng, 7);
    for (int64_t i = 0; i < o.batch * row; i++) tok[i] = (int32_t)hl_rng_below(&rng, (uint64_t)mc->vocab_size);

    bench_data bd = {.tok = tok, .batch = o.batch, .ctx = o.ctx};
    hl_train_config tc = hl_train_default_config();
    tc.batch = o.batch;
    tc.ctx = o.ctx;
    tc.n_threads = o.threads;
    tc.steps = o.warmup + o.steps;
    tc.lr = 1e-4;
    tc.schedule = HL_TRAIN_SCHED_CONSTANT;
    tc.clip = 0;
    tc.seed = 1;
    tc.eval_every = 0;
    tc.next_batch = same_batch;
    tc.on_progress = keep_record;
    tc.user = &bd;
    hl_train_run *run = NULL;
    if (hl_train_run_init(m, ad, NULL, &tc, &run, &err) != HL_OK) die("train run", &err);
    double rss_init = bench_peak_rss_mib();

    double step_s[MAX_STEPS], fb_s[MAX_STEPS], opt_s[MAX_STEPS], other[MAX_STEPS], losses[2 * MAX_STEPS];
    int n_loss = 0;
    bench_interference_sum timed = {0, 0, 0}; /* the timed steps together */
    for (int it = 0; it < o.warmup + o.steps; it++) {
        bench_interference bi;
        bench_interference_begin(&bi);
        if (hl_train_run_step(run, &err) != HL_OK) die("step", &err);
        double oc = bench_interference_end(&bi, it >= o.warmup ? &timed : NULL);
        const hl_train_record *r = &bd.last;
        double fb = r->fwd_bwd_s, op = r->optim_s;
        losses[n_loss++] = r->loss;
        if (it >= o.warmup) {
            int k = it - o.warmup;
            step_s[k] = fb + op;
            fb_s[k] = fb;
            opt_s[k] = op;
            other[k] = oc;
        }
        char ocs[24] = "n/a (short step)";
        if (!isnan(oc)) snprintf(ocs, sizeof ocs, "%.2f", oc);
        fprintf(stderr, "bench_train %s b=%d: step %d%s loss %.4f  %.3f s (fwd+bwd %.3f, adamw %.4f), other cores %s\n",
                o.name, o.batch, it + 1, it < o.warmup ? " (warm-up)" : "", r->loss, fb + op, fb, op, ocs);
    }
    double eval_s[MAX_STEPS];
    for (int k = 0; k < o.eval_runs; k++) {
        double t0 = bench_now(), ls;
        int64_t n;
        if (hl_train_run_eval_batch(run, tok, NULL, NULL, &ls, &n, &err) != HL_OK) die("eval", &err);
        eval_s[k] = bench_now() - t0;
    }
    double load1 = bench_loadavg1();
    double rss_peak = bench_peak_rss_mib();

    /* other processes' cores: the worst long-enough step, or the timed steps together when all were short */
    double other_max = NAN;
    for (int k = 0; k < o.steps; k++)
        if (!isnan(other[k]) && (isnan(other_max) || other[k] > other_max)) other_max = other[k];
    if (isnan(other_max)) other_max = bench_interference_cores(&timed);
    char oms[16] = "n/a";
    if (!isnan(other_max)) snprintf(oms, sizeof oms, "%.2f", other_max);
    double med = bench_median(step_s, o.steps), tps = (double)o.batch * o.ctx / med;
    double fwd = o.eval_runs ? bench_median(eval_s, o.eval_runs) : NAN;
    double gflops = o.mflop > 0 ? o.mflop * 1e6 * tps / 1e9 : NAN;
    double fb = bench_median(fb_s, o.steps), op = bench_median(opt_s, o.steps);
    char gfs[48] = "";
    if (!isnan(gflops)) snprintf(gfs, sizeof gfs, ", %.1f GFLOP/s", gflops);
    printf("%s LoRA r%d b%dx%d threads %d: %.1f tok/s (median step %.3f s: fwd+bwd %.3f [fwd-only %.3f], adamw %.4f; "
           "steps %.1f-%.1f tok/s)%s, peak RSS %.0f MiB (model loaded %.0f, after init %.0f), "
           "trainable %lld, other cores max %s\n",
           o.name, o.rank, o.batch, o.ctx, o.threads, tps, med, fb, fwd, op,
           (double)o.batch * o.ctx / bench_max(step_s, o.steps), (double)o.batch * o.ctx / bench_min(step_s, o.steps),
           gfs, rss_peak, rss_model, rss_init, (long long)trainable, oms);
    if (o.json) {
        FILE *js = fopen(o.json, "a");
        if (!js) {
            perror(o.json);
            return 1;
        }
        fprintf(js,
                "{\"bench\":\"train\",\"impl\":\"hyperlora\",\"model\":\"%s\",\"batch\":%d,\"seq\":%d,\"threads\":%d,"
                "\"rank\":%d,\"alpha\":%g,\"targets\":\"%s\",\"trainable_params\":%lld,\"tokens_per_s\":%.3f,"
                "\"median_step_s\":%.5f,\"median_fwd_bwd_s\":%.5f,\"median_adamw_s\":%.5f,\"forward_only_s\":",
                o.name, o.batch, o.ctx, o.threads, o.rank, o.alpha, o.targets, (long long)trainable, tps, med, fb, op);
        if (isnan(fwd)) fprintf(js, "null");
        else fprintf(js, "%.5f", fwd);
        fprintf(js, ",\"step_times_s\":[");
        for (int k = 0; k < o.steps; k++) fprintf(js, "%s%.5f", k ? "," : "", step_s[k]);
        fprintf(js, "],\"losses\":[");
        for (int k = 0; k < n_loss; k++) fprintf(js, "%s%.6f", k ? "," : "", losses[k]);
        fprintf(js, "],\"mflop_per_token\":%g,\"gflops\":", o.mflop);
        if (isnan(gflops)) fprintf(js, "null");
        else fprintf(js, "%.3f", gflops);
        fprintf(js,
                ",\"peak_rss_MiB\":%.1f,\"rss_after_model_MiB\":%.1f,\"rss_after_init_MiB\":%.1f,"
                "\"other_cores_max\":",
                rss_peak, rss_model, rss_init);
        if (isnan(other_max)) fprintf(js, "null");
        else fprintf(js, "%.3f", other_max);
        fprintf(js, ",\"loadavg1_start\":%.2f,\"loadavg1_end\":%.2f}\n", load0, load1);
        fclose(js);
    }
    free(tok);
    hl_train_run_free(run);
    hl_adapter_free(ad);
    hl_model_free(m);
    return 0;
}
