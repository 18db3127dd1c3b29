/* bench_adapters.c: what one unmerged adapter costs, base and adapter timed
 * in turn in one process.
 *
 *   bench_adapters -m MODEL.gguf [--rank 8] [--rounds 3] [--threads 2]
 *                  [--tg 64] [--pp 128]
 *
 * A random adapter of --rank (bench_lora.h, as bench_infer's) is set on one
 * context, and each round times, without and then with it: --tg greedy
 * single-token evals after an 8-token prompt (decode), and one --pp token
 * prompt (the logits of its last token). It prints each round and the
 * medians of tokens/s and of the adapter's share (with / without).
 * Comparing two builds, run each in turn and pair the runs (BENCHMARKS.md,
 * "Short rows"). */
#include "hyperlora.h"
#include "bench_lora.h"
#include "bench_util.h"

static void die(const char *what, const hl_error *err) {
    fprintf(stderr, "bench_adapters: %s: %s\n", what, err ? err->msg : "");
    exit(1);
}

/* tokens/s of n greedy single-token evals after an 8-token prompt */
static double decode_rate(hl_context *ctx, int32_t V, int n, float *logits) {
    hl_error err = {0};
    const int32_t prompt[8] = {1, 450, 4996, 1024, 2982, 727, 471, 263};
    int32_t p[8];
    for (int i = 0; i < 8; i++) p[i] = prompt[i] % V; /* any vocabulary */
    if (hl_context_eval(ctx, p, 8, 0, logits, 0, &err) != HL_OK) die("prompt", &err);
    double t0 = bench_now();
    for (int i = 0; i < n; i++) {
        int32_t best = 0;
        for (int32_t v = 1; v < V; v++)
            if (logits[v] > logits[best]) best = v;
        if (hl_context_eval(ctx, &best, 1, 8 + i, logits, 0, &err) != HL_OK) die("decode", &err);
    }
    return n / (bench_now() - t0);
}

/* tokens/s of one n-token prompt at position 0 */
static double prompt_rate(hl_context *ctx, int n, const int32_t *ids, float *logits) {
    hl_error err = {0};
    double t0 = bench_now();
    if (hl_context_eval(ctx, ids, n, 0, logits, 0, &err) != HL_OK) die("prompt", &err);
    return n / (bench_now() - t0);
}

int main(int argc, char **argv) {
    const char *model = NULL;
    int rank = 8, rounds = 3, threads = 2, tg = 64, pp = 128;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "bench_adapters: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "-m")) model = v;
        else if (!strcmp(a, "--rank")) rank = atoi(v);
        else if (!strcmp(a, "--rounds")) rounds = atoi(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--tg")) tg = atoi(v);
        else if (!strcmp(a, "--pp")) pp = atoi(v);
        else {
            fprintf(stderr, "bench_adapters: unknown option %s\n", a);
            return 2;
        }
        i++;
    }
    if (!model || rank < 1 || rounds < 1 || rounds > 256 || threads < 1 || tg < 1 || pp < 1) {
        fprintf(stderr, "usage: bench_adapters -m MODEL.gguf [--rank 8] [--rounds 3] [--threads 2] [--tg 64] "
                        "[--pp 128]\n");
        return 2;
    }
    hl_error err = {0};
    hl_model *m = NULL;
    if (hl_model_load(model, NULL, &m, &err) != HL_OK) die(model, &err);
    const int32_t V = hl_model_get_config(m)->vocab_size;
    const int need = pp > 8 + tg ? pp : 8 + tg;
    if (need > hl_model_get_config(m)->seq_len) {
        fprintf(stderr, "bench_adapters: the model's context (%d) is shorter than the %d positions needed\n",
                hl_model_get_config(m)->seq_len, need);
        return 2;
    }
    hl_context_params cp = hl_context_default_params();
    cp.n_threads = threads;
    cp.n_ctx = need;
    hl_context *ctx = NULL;
    if (hl_context_init(m, &cp, &ctx, &err) != HL_OK) die("context", &err);
    hl_adapter *a = bench_random_adapter(m, rank, 5, &err);
    if (!a) die("adapter create", &err);
    const hl_adapter *set[1] = {a};
    const float one = 1.0f;
    float *logits = malloc(sizeof(float) * (size_t)V);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)pp);
    if (!logits || !ids) die("out of memory", NULL);
    for (int i = 0; i < pp; i++) ids[i] = (100 + i * 37) % V;
    decode_rate(ctx, V, 8, logits); /* warm-up */
    prompt_rate(ctx, pp, ids, logits);
    double r[4][256]; /* decode base, decode adapter, prompt base, prompt adapter */
    printf("bench_adapters: %s, rank %d on q,v,o,gate,up,down, %d threads\n", model, rank, threads);
    for (int k = 0; k < rounds; k++) {
        for (int with = 0; with < 2; with++) {
            if (hl_context_set_adapters(ctx, set, &one, with, &err) != HL_OK) die("set adapters", &err);
            r[with][k] = decode_rate(ctx, V, tg, logits);
            r[2 + with][k] = prompt_rate(ctx, pp, ids, logits);
        }
        printf("round %d: tg%d %.1f / %.1f tok/s, pp%d %.1f / %.1f tok/s (base / adapter)\n", k + 1, tg, r[0][k],
               r[1][k], pp, r[2][k], r[3][k]);
    }
    double share[2][256];
    for (int k = 0; k < rounds; k++) {
        share[0][k] = r[1][k] / r[0][k];
        share[1][k] = r[3][k] / r[2][k];
    }
    printf("median: tg%d base %.1f adapter %.1f (x%.3f), pp%d base %.1f adapter %.1f (x%.3f)\n", tg,
           bench_median(r[0], rounds), bench_median(r[1], rounds), bench_median(share[0], rounds), pp,
           bench_median(r[2], rounds), bench_median(r[3], rounds), bench_median(share[1], rounds));
    free(logits);
    free(ids);
    hl_adapter_free(a);
    hl_context_free(ctx);
    hl_model_free(m);
    return 0;
}
