/* bench_isa.c: pp128, tg64 and LoRA training tok/s on one thread, timed by
 * the thread's CPU clock as well as the wall clock, for comparing builds
 * and SIMD levels on a shared machine (bench/isa_compare.sh).
 *
 * With one thread the pool has no workers, so all the work runs on the
 * calling thread and CLOCK_THREAD_CPUTIME_ID counts exactly the time it
 * computed, not the time other processes held the core. (It still sees
 * their effect on the caches.) Wall-clock tok/s are printed beside it.
 *
 *   pp128  one hl_context_eval of 128 random tokens at position 0, last
 *          logits, on a fresh context each rep (the KV cache position 0);
 *   tg64   64 single-token evals after a 16-token prompt;
 *   train  one step as bench_train does it: zero the gradients,
 *          forward/backward on batch x ctx random tokens (default 4x256),
 *          AdamW; LoRA rank 8 on q,v,o,gate,up,down.
 * Each is the median of --reps reps after one untimed warm-up; the layout is
 * the build's default. Output: one line per metric,
 * "metric cpu_tok_s wall_tok_s", after a line naming the SIMD level, and
 * "logits HASH", a hash of pp128's last logits, to compare results across
 * builds bit for bit. */
#include "hyperlora.h"
#include "kernels/dispatch.h"
#include "lora/create.h"
#include "train/optim.h"
#include "train/trainer.h"
#include "util/rng.h"

#include "bench_util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_REPS 64

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void die(const char *what, const hl_error *err) {
    fprintf(stderr, "bench_isa: %s: %s\n", what, err->msg);
    exit(1);
}

static void report(const char *metric, double tokens, const double *cpu, const double *wall, int n) {
    printf("%s %.1f %.1f\n", metric, tokens / bench_median(cpu, n), tokens / bench_median(wall, n));
    fflush(stdout);
}

int main(int argc, char **argv) {
    const char *model = NULL, *only = "pp128,tg64,train";
    int reps = 5, batch = 4, ctx = 256;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-m")) model = argv[i + 1];
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--only")) only = argv[i + 1];
        else if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--ctx")) ctx = atoi(argv[i + 1]);
    }
    if (!model || reps < 1 || reps > MAX_REPS || batch < 1 || ctx < 1) {
        fprintf(stderr, "usage: bench_isa -m MODEL.gguf [--reps N (1..%d)] [--only pp128,tg64,train] "
                        "[--batch B] [--ctx T]\n", MAX_REPS);
        return 2;
    }
    hl_error err = {0};
    if (hl_isa_check(&err) != HL_OK) die("HYPERLORA_ISA", &err);
    printf("level %s %s\n", hl_isa_name(hl_isa_active()), hl_isa_dispatching() ? "portable" : "native");
    hl_model *m = NULL;
    if (hl_model_load(model, NULL, &m, &err) != HL_OK) die(model, &err);
    const int32_t V = hl_model_get_config(m)->vocab_size;
    hl_rng rng;
    hl_rng_seed(&rng, 7);
    int32_t prompt[128];
    for (int i = 0; i < 128; i++) prompt[i] = (int32_t)hl_rng_below(&rng, (uint64_t)V);
    float *logits = malloc(sizeof(float) * (size_t)V);
    double cpu[MAX_REPS], wall[MAX_REPS];
    hl_context_params cp = {.n_ctx = 256, .n_threads = 1};

    if (strstr(only, "pp128")) {
        for (int r = -1; r < reps; r++) {
            hl_context *c = NULL;
            if (hl_context_init(m, &cp, &c, &err) != HL_OK) die("context", &err);
            double c0 = cpu_now(), w0 = bench_now();
            if (hl_context_eval(c, prompt, 128, 0, logits, 0, &err) != HL_OK) die("eval", &err);
            if (r >= 0) cpu[r] = cpu_now() - c0, wall[r] = bench_now() - w0;
            hl_context_free(c);
        }
        report("pp128", 128, cpu, wall, reps);
        uint64_t h = 1469598103934665603ull; /* FNV-1a of the logits' bits: equal across builds = same results */
        const unsigned char *bytes = (const unsigned char *)logits;
        for (size_t i = 0; i < sizeof(float) * (size_t)V; i++) h = (h ^ bytes[i]) * 1099511628211ull;
        printf("logits %016llx\n", (unsigned long long)h);
    }
    if (strstr(only, "tg64")) {
        hl_context *c = NULL;
        if (hl_context_init(m, &cp, &c, &err) != HL_OK) die("context", &err);
        for (int r = -1; r < reps; r++) {
            if (hl_context_eval(c, prompt, 16, 0, logits, 0, &err) != HL_OK) die("eval", &err);
            int32_t tok = prompt[16];
            double c0 = cpu_now(), w0 = bench_now();
            for (int i = 0; i < 64; i++) {
                if (hl_context_eval(c, &tok, 1, 16 + i, logits, 0, &err) != HL_OK) die("eval", &err);
                int32_t best = 0;
                for (int32_t v = 1; v < V; v++) best = logits[v] > logits[best] ? v : best;
                tok = best;
            }
            if (r >= 0) cpu[r] = cpu_now() - c0, wall[r] = bench_now() - w0;
        }
        hl_context_free(c);
        report("tg64", 64, cpu, wall, reps);
    }
    if (strstr(only, "train")) {
        uint32_t targets;
        if (hl_parse_targets("q,v,o,gate,up,down", &targets, &err) != HL_OK) die("targets", &err);
        hl_adapter_spec spec = {.name = "bench", .targets = targets, .layers = NULL, .rank = 8, .alpha = 16.0f,
                                .rslora = 0, .init = HL_INIT_KAIMING, .seed = 1};
        hl_adapter *ad = NULL;
        if (hl_adapter_create(m, &spec, &ad, &err) != HL_OK) die("adapter", &err);
        hl_trainer_params tp = {.batch = batch, .ctx = ctx, .n_threads = 1, .dropout = 0, .seed = 1};
        hl_trainer *tr = NULL;
        if (hl_trainer_init(m, ad, &tp, &tr, &err) != HL_OK) die("trainer", &err);
        hl_adamw opt = {0};
        hl_adamw_params ap = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.0f};
        if (hl_adamw_init(&opt, &ap, tr, &err) != HL_OK) die("adamw", &err);
        const int64_t n_tok = (int64_t)batch * (ctx + 1);
        int32_t *tok = malloc(sizeof(int32_t) * (size_t)n_tok);
        if (!tok) return 1;
        for (int64_t i = 0; i < n_tok; i++) tok[i] = (int32_t)hl_rng_below(&rng, (uint64_t)V);
        for (int r = -1; r < reps; r++) {
            double c0 = cpu_now(), w0 = bench_now(), loss;
            int64_t counted;
            hl_trainer_zero_grad(tr);
            if (hl_trainer_forward_backward(tr, tok, NULL, NULL, 1.0f, (uint64_t)(r + 1), &loss, &counted, &err) !=
                HL_OK)
                die("forward/backward", &err);
            hl_adamw_step(&opt, tr, 1e-4f);
            if (r >= 0) cpu[r] = cpu_now() - c0, wall[r] = bench_now() - w0;
        }
        report("train", (double)batch * ctx, cpu, wall, reps);
        free(tok);
        hl_adamw_free(&opt);
        hl_trainer_free(tr);
        hl_adapter_free(ad);
    }
    free(logits);
    hl_model_free(m);
    return 0;
}
