/* bench_quant.c: quantized bases against their f32 original, measured side
 * by side (the machine is shared, so every model runs once per round, in
 * turn, and each figure is the median over the rounds).
 *
 *   bench_quant --threads N --runs R --pp 64 --tg 32 F32.gguf Q1.gguf Q2.gguf ...
 *
 * Per model: file size; dequantization throughput over its largest 2-D
 * tensor in 16-row tiles, as the kernels do it (elements/s, one thread);
 * the prompt product over blk.0.ffn_up (x·Wᵀ for 128 tokens, one thread,
 * best of 10) with 8-bit activations (hl_qmatmul_a8) and with dequantized
 * f32 tiles (hl_qmatmul), in 1e9 multiply-adds/s, and that tensor's type; pp<N> (one batched eval of N
 * tokens, last logits) and tg<N> (N single-token evals) in tokens/s; and
 * the largest |logit| difference from the first model on the same prompt
 * (the first model is the f32 reference). */
#include "kernels/kernels.h"
#include "kernels/qweight_rows.h"
#include "hyperlora.h"
#include "io/gguf.h"
#include "model/model.h"

#include "bench_util.h"

#include <math.h>

#define MAX_MODELS 16
#define MAX_RUNS 64

typedef struct {
    const char *path;
    hl_model *m;
    hl_context *ctx;
    double size_mib, deq_gps, a8_gmacs, f32_gmacs;
    const char *deq_type, *product_type;
    double pp[MAX_RUNS], tg[MAX_RUNS];
    double max_diff;
} entry;

static double file_mib(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    double n = (double)ftell(f);
    fclose(f);
    return n / (1024.0 * 1024.0);
}

/* One thread's prompt product over q: 8-bit activations and f32 tiles, best of 10. */
static void prompt_product_speed(entry *e, const hl_qweight *q) {
    const int64_t T = 128, K = q->cols, O = q->rows;
    const int64_t a8_bytes = hl_qmatmul_a8_scratch_bytes(K) * T;
    float *x = malloc(sizeof(float) * (size_t)(T * K)), *out = malloc(sizeof(float) * (size_t)(T * O));
    float *fs = malloc(sizeof(float) * (size_t)hl_qmatmul_scratch_floats(1, K));
    void *as = malloc((size_t)a8_bytes);
    if (x && out && fs && as) {
        uint64_t s = 5;
        for (int64_t i = 0; i < T * K; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            x[i] = (float)((double)(s >> 40) / (double)(1ull << 24) - 0.5);
        }
        double best_a8 = 1e30, best_f32 = 1e30;
        for (int r = 0; r < 10; r++) {
            double t0 = bench_now();
            if (hl_qmatmul_a8_supports(q->type)) hl_qmatmul_a8(NULL, out, O, x, q, T, as, a8_bytes);
            double t1 = bench_now();
            hl_qmatmul(NULL, out, O, x, q, T, fs);
            double t2 = bench_now();
            if (t1 - t0 < best_a8) best_a8 = t1 - t0;
            if (t2 - t1 < best_f32) best_f32 = t2 - t1;
        }
        const double macs = (double)T * (double)K * (double)O;
        e->a8_gmacs = hl_qmatmul_a8_supports(q->type) ? macs / best_a8 / 1e9 : 0;
        e->f32_gmacs = macs / best_f32 / 1e9;
    }
    free(x);
    free(out);
    free(fs);
    free(as);
}

/* Dequantization speed over the largest 2-D tensor of the file, as the
 * kernels run it: 16 rows at a time into one reused tile (one thread). */
static void deq_speed(entry *e) {
    hl_gguf *g = NULL;
    hl_error err = {0};
    if (hl_gguf_open(e->path, &g, &err) != HL_OK) return;
    const hl_gguf_tensor *best = NULL;
    for (int64_t i = 0; i < hl_gguf_n_tensors(g); i++) {
        const hl_gguf_tensor *t = hl_gguf_tensor_at(g, i);
        if (t->n_dims == 2 && (!best || t->nbytes > best->nbytes)) best = t;
    }
    uint64_t rb;
    if (best && hl_type_row_bytes(best->type, best->ne[0], &rb)) {
        hl_qweight q = {best->data, best->type, best->ne[1], best->ne[0], rb};
        float *tile = malloc(sizeof(float) * 16 * (size_t)q.cols);
        double t_best = 1e30;
        volatile float sink = 0;
        for (int r = 0; tile && r < 10; r++) {
            double t0 = bench_now();
            for (int64_t o = 0; o < q.rows; o += 16) {
                for (int64_t i = 0; i < 16 && o + i < q.rows; i++) hl_qweight_row(&q, o + i, tile + i * q.cols);
                sink += tile[0];
            }
            double dt = bench_now() - t0;
            if (dt < t_best) t_best = dt;
        }
        e->deq_gps = tile ? (double)(q.rows * q.cols) / t_best / 1e9 : 0;
        e->deq_type = hl_type_traits_of(best->type)->name;
        free(tile);
    }
    /* the products on a layer's matrix, as a prompt runs them (the largest
       tensor is usually the embedding or output, which a prompt barely uses) */
    const int64_t up = hl_gguf_find_tensor(g, "blk.0.ffn_up.weight");
    const hl_gguf_tensor *t = up >= 0 ? hl_gguf_tensor_at(g, up) : NULL;
    if (t && t->n_dims == 2 && hl_type_row_bytes(t->type, t->ne[0], &rb)) {
        hl_qweight q = {t->data, t->type, t->ne[1], t->ne[0], rb};
        prompt_product_speed(e, &q);
        e->product_type = hl_type_traits_of(t->type)->name;
    }
    hl_gguf_free(g);
}

int main(int argc, char **argv) {
    long threads = 1, runs = 5, pp = 64, tg = 32;
    entry e[MAX_MODELS];
    int n = 0;
    memset(e, 0, sizeof e);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atol(argv[++i]);
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc) runs = atol(argv[++i]);
        else if (!strcmp(argv[i], "--pp") && i + 1 < argc) pp = atol(argv[++i]);
        else if (!strcmp(argv[i], "--tg") && i + 1 < argc) tg = atol(argv[++i]);
        else if (argv[i][0] != '-' && n < MAX_MODELS) e[n++].path = argv[i];
        else {
            fprintf(stderr, "usage: bench_quant [--threads N] [--runs R] [--pp N] [--tg N] F32.gguf QUANT.gguf ...\n");
            return 1;
        }
    }
    if (n < 1 || runs < 1 || runs > MAX_RUNS || threads < 1 || pp < 1 || tg < 1) {
        fprintf(stderr, "bench_quant: give 1..%d models, --runs 1..%d\n", MAX_MODELS, MAX_RUNS);
        return 1;
    }
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(pp + tg));
    if (!ids) return 1;
    for (int i = 0; i < n; i++) {
        hl_error err = {0};
        if (hl_model_load(e[i].path, NULL, &e[i].m, &err) != HL_OK) {
            fprintf(stderr, "bench_quant: %s\n", err.msg);
            return 1;
        }
        hl_context_params cp = hl_context_default_params();
        cp.n_threads = (int32_t)threads;
        cp.n_ctx = (int32_t)(pp + tg);
        if (hl_context_init(e[i].m, &cp, &e[i].ctx, &err) != HL_OK) {
            fprintf(stderr, "bench_quant: %s\n", err.msg);
            return 1;
        }
        e[i].size_mib = file_mib(e[i].path);
        deq_speed(&e[i]);
    }
    const int32_t V = hl_model_get_config(e[0].m)->vocab_size;
    for (long t = 0; t < pp + tg; t++) ids[t] = (int32_t)(1 + (t * 7919) % (V - 1));
    float *logits = malloc(sizeof(float) * (size_t)V), *ref = malloc(sizeof(float) * (size_t)V);
    if (!logits || !ref) return 1;
    for (long r = -1; r < runs; r++) /* round -1: untimed warm-up */
        for (int i = 0; i < n; i++) {
            hl_error err = {0};
            double t0 = bench_now();
            if (hl_context_eval(e[i].ctx, ids, (int32_t)pp, 0, logits, 0, &err) != HL_OK) return 1;
            double t1 = bench_now();
            if (r == 0) {
                if (i == 0) memcpy(ref, logits, sizeof(float) * (size_t)V);
                double d = 0;
                for (int32_t v = 0; v < V; v++) d = fmax(d, fabs((double)logits[v] - ref[v]));
                e[i].max_diff = d;
            }
            for (long k = 0; k < tg; k++)
                if (hl_context_eval(e[i].ctx, &ids[pp + k], 1, (int32_t)(pp + k), logits, 0, &err) != HL_OK) return 1;
            double t2 = bench_now();
            if (r >= 0) {
                e[i].pp[r] = (double)pp / (t1 - t0);
                e[i].tg[r] = (double)tg / (t2 - t1);
            }
        }
    printf("threads %ld, %ld rounds, load average %.2f\n", threads, runs, bench_loadavg1());
    printf("%-28s %9s %7s %10s %7s %10s %10s %12s %12s %12s\n", "model", "MiB", "type", "deq Gel/s", "up type",
           "int8 GMAC", "f32 GMAC", "pp tok/s", "tg tok/s", "max|dlogit|");
    for (int i = 0; i < n; i++) {
        const char *b = strrchr(e[i].path, '/');
        /* a type without an 8-bit path (f32, f16) shows a dash, not a speed of 0 */
        char a8[16] = "-";
        if (e[i].a8_gmacs > 0) snprintf(a8, sizeof a8, "%.1f", e[i].a8_gmacs);
        printf("%-28s %9.1f %7s %10.2f %7s %10s %10.1f %12.1f %12.1f %12.3g\n", b ? b + 1 : e[i].path, e[i].size_mib,
               e[i].deq_type ? e[i].deq_type : "-", e[i].deq_gps,
               e[i].product_type ? e[i].product_type : "-", a8, e[i].f32_gmacs,
               bench_median(e[i].pp, (int)runs),
               bench_median(e[i].tg, (int)runs), e[i].max_diff);
        hl_context_free(e[i].ctx);
        hl_model_free(e[i].m);
    }
    free(ids);
    free(logits);
    free(ref);
    return 0;
}
