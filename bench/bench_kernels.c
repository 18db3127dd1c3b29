/* bench_kernels.c: where the time of a LoRA training step and of a decoded
 * token goes, kernel call by kernel call.
 *
 * It replays, with random data, the kernel calls that the trainer
 * (src/train/trainer.c) and the forward pass (src/model/forward.c) make for
 * one step / one token of a model shape, times each kind of call (median of
 * --runs), and multiplies by how often a step or token makes it. The sum is
 * an estimate to hold against the measured step time of bench_train /
 * bench_infer (--step-s, --token-s; the difference is what the table does not
 * cover: the loss, residual adds, copies); the table says which calls to make
 * faster.
 *
 *   bench_kernels --shape s15M|s110M [--batch 4] [--ctx 256] [--threads 2] [--rank 8] [--runs 5]
 *                 [--decode-rank 16] [--decode-weights packed|rows] [--train-weights packed|rows] [--pos 40]
 *
 * Decode's matrix-vector products use the packed layout unless
 * --decode-weights rows (hl_weight_layout in include/hyperlora.h); the
 * training step's base products use it where the trainer does (AVX-512
 * builds) unless --train-weights rows.
 */
#include "hyperlora.h"
#include "kernels/kernel_choice.h"
#include "kernels/kernels.h"
#include "util/threadpool.h"

#include "bench_util.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RUNS 32

typedef struct shape {
    const char *name;
    int64_t C, F, L, H, Hkv, V;
} shape;

static const shape SHAPES[] = {
    {"s15M", 288, 768, 6, 6, 6, 32000},
    {"s110M", 768, 2048, 12, 12, 12, 32000},
};

/* One kind of kernel call. */
typedef struct item {
    const char *group, *what;
    double count;       /* calls per step / token */
    double flops;       /* per call (0 = not a matmul) */
    double bytes;       /* weight bytes streamed per call (decode) */
    double sec;         /* median seconds per call */
} item;

static item items[128];
static int n_items;

static float *buf(int64_t n) {
    float *p = malloc((size_t)n * sizeof *p);
    if (!p) {
        fprintf(stderr, "bench_kernels: out of memory\n");
        exit(1);
    }
    uint32_t s = (uint32_t)n * 2654435761u + 1;
    for (int64_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = (float)((int32_t)(s >> 8) - (1 << 23)) / (float)(1 << 23) * 0.05f;
    }
    return p;
}

typedef void (*call_fn)(void *);

static int g_runs = 5;

static double time_call(call_fn fn, void *arg) {
    double t[MAX_RUNS];
    fn(arg);
    int runs = g_runs;
    for (int r = 0; r < runs; r++) {
        double t0 = bench_now();
        fn(arg);
        t[r] = bench_now() - t0;
    }
    return bench_median(t, runs);
}

static void add(const char *group, const char *what, double count, double flops, double bytes, call_fn fn, void *arg) {
    item *it = &items[n_items++];
    *it = (item){group, what, count, flops, bytes, time_call(fn, arg)};
}

/* ---- call wrappers ---- */
typedef struct mm {
    hl_pool *pool;
    float *out, *x, *w;
    int64_t T, K, O, ldo;
    float scale;
    int acc, reps; /* reps: calls per timed unit (for tiny calls) */
} mm;

static void c_matmul(void *a) {
    mm *m = a;
    for (int i = 0; i < m->reps; i++) hl_matmul_strided(m->pool, m->out, m->ldo, m->x, m->w, m->T, m->K, m->O, m->scale, m->acc);
}
/* The trainer's OpenBLAS products (gemm_blas.c): x·Wᵀ, dY·W, Pᵀ·Q. */
static void c_gnt(void *a) {
    mm *m = a;
    for (int i = 0; i < m->reps; i++) hl_gemm_nt(m->pool, m->out, m->ldo, m->x, m->w, m->T, m->K, m->O, m->scale, m->acc);
}
static void c_gnn(void *a) {
    mm *m = a;
    for (int i = 0; i < m->reps; i++) hl_gemm_nn(m->pool, m->out, m->x, m->w, m->T, m->O, m->K, m->scale, m->acc);
}
static float *g_split_scratch; /* HL_GEMM_SPLIT_K · chunk · C floats, for the LM head's dY·W */
static void c_gnn_split(void *a) {
    mm *m = a;
    for (int i = 0; i < m->reps; i++)
        hl_gemm_nn_split(m->pool, m->out, m->x, m->w, m->T, m->O, m->K, m->scale, m->acc, g_split_scratch);
}
/* The same two base products on packed panels (matmul_packed.c), the
 * trainer's choice where the kernel choice says so (kernel_choice.h). The weight buffers
 * hold random numbers, so any (O, K) buffer with O a multiple of 16 serves
 * as its own packing. */
static void c_pnt(void *a) {
    mm *m = a;
    for (int i = 0; i < m->reps; i++) hl_matmul_packed(m->pool, m->out, m->ldo, m->x, m->w, m->T, m->K, m->O);
}
static void c_pnn(void *a) {
    mm *m = a;
    for (int i = 0; i < m->reps; i++) hl_matmul_packed_nn(m->pool, m->out, m->x, m->w, m->T, m->O, m->K, m->acc);
}
static void c_gtn(void *a) {
    mm *m = a;
    for (int i = 0; i < m->reps; i++) hl_gemm_tn_acc(m->pool, m->out, m->x, m->w, m->T, m->O, m->K);
}

typedef struct at {
    hl_pool *pool;
    float *out, *q, *k, *v, *dq, *dk, *dv, *dout, *scratch;
    int64_t B, T, H, Hkv, D, pos, n_ctx;
    int reps;
} at;

static void c_att_fwd(void *a) {
    at *x = a;
    hl_attention_train(x->pool, x->out, x->q, x->k, x->v, NULL, x->B, x->T, x->H, x->Hkv, x->D, x->scratch);
}
static void c_att_bwd(void *a) {
    at *x = a;
    hl_attention_train_backward(x->pool, x->dq, x->dk, x->dv, x->dout, x->q, x->k, x->v, NULL, x->B, x->T, x->H,
                                x->Hkv, x->D, x->scratch);
}
static void c_att_dec(void *a) {
    at *x = a;
    for (int i = 0; i < x->reps; i++)
        hl_attention(x->pool, x->out, x->q, x->k, x->v, 1, x->pos, x->H, x->Hkv, x->D, x->n_ctx, x->scratch);
}

typedef struct ew {
    hl_pool *pool;
    float *a, *b, *c, *d, *w, *cs;
    int64_t rows, C, F, T, H, D;
    int reps;
} ew;

/* The per-layer element-wise work of the training step, as the trainer runs it
 * (rows split over the pool): 4 rmsnorm passes over the rows (2 forward, 2
 * recomputed in backward), 2 rmsnorm backward passes, table RoPE on q and k and
 * its backward on dq and dk, SwiGLU twice (forward, recomputed) and its
 * backward, with the vectorised exp. */
static void elementwise_rows(void *a, int64_t begin, int64_t end, int worker) {
    (void)worker;
    ew *e = a;
    const int64_t C = e->C, F = e->F, nf = e->rows * F;
    for (int64_t r = begin; r < end; r++) {
        for (int k = 0; k < 4; k++) hl_rmsnorm(e->b + r * C, e->a + r * C, e->w, C, 1e-5f);
        for (int k = 0; k < 2; k++) hl_rmsnorm_backward(e->c + r * C, e->a + r * C, e->w, e->b + r * C, C, 1e-5f, 1);
        const float *cs = e->cs + (r % e->T) * e->D; /* q and k forward, dq and dk backward */
        hl_rope_apply(e->b + r * C, e->H, e->D, cs, 0);
        hl_rope_apply(e->c + r * C, e->H, e->D, cs, 0);
        hl_rope_apply(e->b + r * C, e->H, e->D, cs, 1);
        hl_rope_apply(e->c + r * C, e->H, e->D, cs, 1);
        float *g = e->d + r * F; /* d: gate, up, out, dout, dgate, dup (no feedback between runs) */
        hl_swiglu(g + 2 * nf, g, g + nf, F);
        hl_swiglu(g + 2 * nf, g, g + nf, F);
        hl_swiglu_backward(g + 4 * nf, g + 5 * nf, g, g + nf, g + 3 * nf, F);
    }
}
static void c_elementwise_layer(void *a) {
    ew *e = a;
    hl_pool_for(e->pool, e->rows, 16, elementwise_rows, e);
}

/* n distinct (O, K) matrices times one vector each, as a decode step walks
 * the layers; in the packed layout (inference's default on SIMD builds) or
 * row-major. w holds n matrices of hl_packed_floats(O, K) floats either way. */
typedef struct mv_set {
    hl_pool *pool;
    float *w, *x, *y;
    int64_t K, O;
    int n, packed;
} mv_set;
static void c_matvec_set(void *a) {
    mv_set *m = a;
    const int64_t stride = hl_packed_floats(m->O, m->K);
    for (int i = 0; i < m->n; i++) {
        if (m->packed) hl_matmul_packed(m->pool, m->y, m->O, m->x, m->w + i * stride, 1, m->K, m->O);
        else hl_matmul(m->pool, m->y, m->x, m->w + i * stride, 1, m->K, m->O);
    }
}

static void nop_chunk(void *arg, int64_t b, int64_t e, int worker) {
    (void)arg;
    (void)b;
    (void)e;
    (void)worker;
}
typedef struct pl {
    hl_pool *pool;
    int reps;
} pl;
static void c_pool(void *a) {
    pl *p = a;
    for (int i = 0; i < p->reps; i++) hl_pool_for(p->pool, 1 << 20, 4, nop_chunk, NULL);
}

static void print_table(const char *title, double measured, const char *unit) {
    /* groups named "lora ..." in the decode table are extra work on top of the base token: not summed */
    double total = 0;
    for (int i = 0; i < n_items; i++)
        if (strncmp(items[i].group, "lora x", 6)) total += items[i].sec * items[i].count;
    printf("\n%s\n", title);
    printf("%-16s %-46s %8s %10s %8s %7s %9s\n", "group", "call (T x K -> O)", "calls", unit, "share", "GFLOP/s", "GB/s");
    for (int i = 0; i < n_items; i++) {
        item *it = &items[i];
        double per = it->sec * it->count;
        char gf[16] = "-", gb[16] = "-";
        if (it->flops > 0) snprintf(gf, sizeof gf, "%.1f", it->flops / it->sec / 1e9);
        if (it->bytes > 0) snprintf(gb, sizeof gb, "%.1f", it->bytes / it->sec / 1e9);
        printf("%-16s %-46s %8.0f %10.3f %7.1f%% %7s %9s\n", it->group, it->what, it->count, 1e3 * per,
               100 * per / total, gf, gb);
    }
    printf("%-16s %-46s %8s %10.3f\n", "sum", "(without the lora xN rows)", "", 1e3 * total);
    if (measured > 0) {
        printf("%-16s %-46s %8s %10.3f\n", "measured", "(median step of bench_train / token of bench_infer)", "",
               1e3 * measured);
        printf("%-16s %-46s %8s %10.3f %7.1f%%\n", "rest", "measured - sum: loss, residual adds, copies, ...", "",
               1e3 * (measured - total), 100 * (measured - total) / measured);
    }
    /* group totals */
    printf("by group:");
    for (int i = 0; i < n_items; i++) {
        int seen = 0;
        for (int k = 0; k < i; k++) seen |= !strcmp(items[k].group, items[i].group);
        if (seen) continue;
        double g = 0;
        for (int k = i; k < n_items; k++)
            if (!strcmp(items[k].group, items[i].group)) g += items[k].sec * items[k].count;
        printf("  %s %.0f%%", items[i].group, 100 * g / total);
    }
    printf("\n");
}

int main(int argc, char **argv) {
    const char *shape_name = "s15M";
    int64_t batch = 4, ctx = 256, rank = 8, dec_rank = 16, pos = 40;
    /* the engine's defaults for this CPU and level (hyperlora info), overridable below */
    const hl_kernel_choice kc = hl_kernel_choice_active();
    int dec_packed = kc.infer == HL_WEIGHTS_PACKED, train_packed = kc.train == HL_WEIGHTS_PACKED;
    int threads = 2;
    double measured_step = 0, measured_token = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--shape")) shape_name = v;
        else if (!strcmp(a, "--batch")) batch = atoi(v);
        else if (!strcmp(a, "--ctx")) ctx = atoi(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--rank")) rank = atoi(v);
        else if (!strcmp(a, "--decode-rank")) dec_rank = atoi(v);
        else if (!strcmp(a, "--decode-weights")) dec_packed = strcmp(v, "rows") != 0;
        else if (!strcmp(a, "--train-weights")) train_packed = strcmp(v, "rows") != 0;
        else if (!strcmp(a, "--pos")) pos = atoi(v);
        else if (!strcmp(a, "--runs")) g_runs = atoi(v);
        else if (!strcmp(a, "--step-s")) measured_step = atof(v);
        else if (!strcmp(a, "--token-s")) measured_token = atof(v);
        else {
            fprintf(stderr, "bench_kernels: unknown option %s\n", a);
            return 2;
        }
    }
    if (argc % 2 == 0 || g_runs < 1 || g_runs > MAX_RUNS) {
        printf("usage: bench_kernels --shape s15M|s110M [--batch 4] [--ctx 256] [--threads 2] [--rank 8]\n"
               "                     [--decode-rank 16] [--decode-weights packed|rows] [--train-weights packed|rows]\n"
               "                     [--pos 40] [--runs 5]\n"
               "                     [--step-s S] [--token-s S]\n");
        return 2;
    }
    const shape *sh = NULL;
    for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++)
        if (!strcmp(SHAPES[i].name, shape_name)) sh = &SHAPES[i];
    if (!sh) {
        fprintf(stderr, "bench_kernels: unknown shape %s\n", shape_name);
        return 2;
    }
    const int64_t C = sh->C, F = sh->F, L = sh->L, H = sh->H, Hkv = sh->Hkv, D = C / H, KV = Hkv * D, V = sh->V;
    const int64_t N = batch * ctx, r = rank, chunk = 256; /* chunk: the trainer's LOGIT_CHUNK */
    hl_pool *pool = hl_pool_init(threads);
    if (!pool) return 1;
    /* OpenBLAS's pthread build starts a server thread per core when it is
     * loaded, and they poll for work with sched_yield for a while before
     * they sleep (2^28 cycles by default). The trainer's products run
     * OpenBLAS single-threaded under our pool, and those timed inside that
     * window ran at one core's speed on a Zen 4 guest (s15M's 288-wide
     * products ~100 GFLOP/s against 188-203 afterwards). A long
     * training run spends all but its first step after it, so wait it out. */
    hl_gemm_init();
    usleep(400000);

    /* ---------------------------------------------------------- training step */
    int64_t wide = F > C ? F : C;
    float *X = buf(N * wide), *Y = buf(N * wide), *Z = buf(N * wide);
    float *Wcc = buf(C * C), *Wfc = buf(F * C), *Wcf = buf(C * F), *Wout = buf(V * C);
    float *A_c = buf(r * wide), *B_o = buf(wide * r), *G = buf(wide * wide), *h = buf(N * r);
    float *logits = buf(chunk * V);
    char what[96];
    /* the projections of one layer: (name, K in, O out, is a LoRA target) */
    struct { const char *n; int64_t K, O; const float *W; int lora; } pj[] = {
        {"q", C, C, Wcc, 1}, {"k", C, KV, Wcc, 0}, {"v", C, KV, Wcc, 1}, {"o", C, C, Wcc, 1},
        {"gate", C, F, Wfc, 1}, {"up", C, F, Wfc, 1}, {"down", F, C, Wcf, 1}};
    /* identical shapes are timed once and counted for each */
    for (size_t p = 0; p < sizeof pj / sizeof pj[0]; p++) {
        int dup = 0;
        for (size_t k = 0; k < p; k++) dup |= pj[k].K == pj[p].K && pj[k].O == pj[p].O;
        if (dup) continue;
        double cnt = 0, lcnt = 0;
        char names[64] = "";
        for (size_t k = 0; k < sizeof pj / sizeof pj[0]; k++)
            if (pj[k].K == pj[p].K && pj[k].O == pj[p].O) {
                cnt += 1;
                lcnt += pj[k].lora;
                snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", names[0] ? "," : "", pj[k].n);
            }
        int64_t K = pj[p].K, O = pj[p].O;
        mm m = {pool, Y, X, (float *)pj[p].W, N, K, O, O, 1.0f, 0, 1};
        snprintf(what, sizeof what, "x*W^T %s: %lldx%lld->%lld", names, (long long)N, (long long)K, (long long)O);
        add("fwd base", strdup(what), cnt * L, 2.0 * N * K * O, 0, train_packed ? c_pnt : c_gnt, &m);
        mm nn = {pool, Y, X, (float *)pj[p].W, N, K, O, K, 1.0f, 0, 1};
        snprintf(what, sizeof what, "dY*W %s: %lldx%lld->%lld", names, (long long)N, (long long)O, (long long)K);
        add("bwd base dX", strdup(what), cnt * L, 2.0 * N * K * O, 0, train_packed ? c_pnn : c_gnn, &nn);
        if (lcnt > 0) {
            mm la = {pool, h, X, A_c, N, K, r, r, 1.0f, 0, 1};
            snprintf(what, sizeof what, "lora h=x*A^T %s: %lldx%lld->%lld", names, (long long)N, (long long)K, (long long)r);
            add("fwd lora", strdup(what), lcnt * L, 2.0 * N * K * r, 0, c_gnt, &la);
            mm lb = {pool, Y, h, B_o, N, r, O, O, 0.5f, 1, 1};
            snprintf(what, sizeof what, "lora y+=s*h*B^T %s: %lldx%lld->%lld", names, (long long)N, (long long)r, (long long)O);
            add("fwd lora", strdup(what), lcnt * L, 2.0 * N * r * O, 0, c_gnt, &lb);
            mm gb = {pool, G, Z, h, N, r, O, 0, 1.0f, 1, 1}; /* gB (O, r) += dyᵀ·lh: M = O, N = r */
            snprintf(what, sizeof what, "lora dB+=dY^T*h %s: M %lld N %lld T %lld", names, (long long)O, (long long)r, (long long)N);
            add("bwd lora", strdup(what), lcnt * L, 2.0 * N * r * O, 0, c_gtn, &gb);
            mm lg = {pool, h, Z, B_o, N, r, O, r, 0.5f, 0, 1}; /* lg (N, r) = dy (N, O) · B (O, r) */
            snprintf(what, sizeof what, "lora g=dY*B %s: %lldx%lld->%lld", names, (long long)N, (long long)O, (long long)r);
            add("bwd lora", strdup(what), lcnt * L, 2.0 * N * r * O, 0, c_gnn, &lg);
            mm ga = {pool, G, h, X, N, K, r, 0, 1.0f, 1, 1}; /* gA (r, K) += lgᵀ·x: M = r, N = K */
            snprintf(what, sizeof what, "lora dA+=g^T*x %s: M %lld N %lld T %lld", names, (long long)r, (long long)K, (long long)N);
            add("bwd lora", strdup(what), lcnt * L, 2.0 * N * r * K, 0, c_gtn, &ga);
            mm dx = {pool, Y, h, A_c, N, K, r, K, 1.0f, 1, 1}; /* dx (N, K) += lg (N, r) · A (r, K) */
            snprintf(what, sizeof what, "lora dX+=g*A %s: %lldx%lld->%lld", names, (long long)N, (long long)r, (long long)K);
            add("bwd lora", strdup(what), lcnt * L, 2.0 * N * r * K, 0, c_gnn, &dx);
        }
    }
    /* LM head, in chunks of `chunk` rows */
    {
        mm hf = {pool, logits, X, Wout, chunk, C, V, V, 1.0f, 0, 1};
        snprintf(what, sizeof what, "head x*W^T: %lldx%lld->%lld (x%lld chunks)", (long long)chunk, (long long)C,
                 (long long)V, (long long)(N / chunk));
        add("head", strdup(what), (double)N / chunk, 2.0 * chunk * C * V, 0, train_packed ? c_pnt : c_gnt, &hf);
        mm hb = {pool, Y, logits, Wout, chunk, C, V, C, 1.0f, 0, 1};
        snprintf(what, sizeof what, "head dY*W: %lldx%lld->%lld", (long long)chunk, (long long)V, (long long)C);
        g_split_scratch = buf(HL_GEMM_SPLIT_K * chunk * C);
        add("head", strdup(what), (double)N / chunk, 2.0 * chunk * C * V, 0, train_packed ? c_pnn : c_gnn_split, &hb);
    }
    /* attention */
    {
        float *q = buf(N * C), *k = buf(N * KV), *v = buf(N * KV), *o = buf(N * C);
        float *dq = buf(N * C), *dk = buf(N * KV), *dv = buf(N * KV), *dout = buf(N * C);
        at a = {pool, o, q, k, v, dq, dk, dv, dout, buf(2 * threads * ctx * ctx), batch, ctx, H, Hkv, D, 0, 0, 1};
        double fl = 4.0 * batch * H * D * ctx * (ctx + 1) / 2; /* QK^T and PV over the causal half */
        add("attention", "train forward", (double)L, fl, 0, c_att_fwd, &a);
        add("attention", "train backward (QK^T recomputed)", (double)L, 2.5 * fl, 0, c_att_bwd, &a);
        ew e = {.a = X, .b = Y, .c = Z, .d = G, .w = Wcc, .rows = N, .C = C, .F = F, .T = ctx, .H = H, .D = D,
                .pool = pool, .cs = buf(ctx * D)};
        e.d = buf(6 * N * F);
        hl_rope_table(e.cs, ctx, D, 10000.0f);
        add("elementwise", "rmsnorm/rope/swiglu fwd+bwd of a layer, rows over the pool", (double)L, 0, 0,
            c_elementwise_layer, &e);
    }
    char title[256];
    snprintf(title, sizeof title,
             "LoRA training step, %s, batch %lldx%lld, rank %lld on q,v,o,gate,up,down, %d threads "
             "(ms per step, estimated from kernel timings; median of %d)",
             sh->name, (long long)batch, (long long)ctx, (long long)r, threads, g_runs);
    print_table(title, measured_step, "ms/step");

    /* ---------------------------------------------------------- decode token */
    /* Every matrix of the model is distinct here, as in a real model: decode
     * streams all the weights from memory once per token. */
    n_items = 0;
    int reps = 20;
    for (size_t p = 0; p < sizeof pj / sizeof pj[0]; p++) {
        int dup = 0;
        for (size_t k = 0; k < p; k++) dup |= pj[k].K == pj[p].K && pj[k].O == pj[p].O;
        if (dup) continue;
        int cnt = 0;
        char names[64] = "";
        for (size_t k = 0; k < sizeof pj / sizeof pj[0]; k++)
            if (pj[k].K == pj[p].K && pj[k].O == pj[p].O) {
                cnt += 1;
                snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", names[0] ? "," : "", pj[k].n);
            }
        int64_t K = pj[p].K, O = pj[p].O;
        mv_set *ms = calloc(1, sizeof *ms);
        ms->pool = pool;
        ms->n = cnt * (int)L;
        ms->K = K;
        ms->O = O;
        ms->x = X;
        ms->y = Y;
        ms->w = buf((int64_t)ms->n * hl_packed_floats(O, K));
        ms->packed = dec_packed;
        snprintf(what, sizeof what, "W*x %s: %lld->%lld (all %d matrices)", names, (long long)K, (long long)O, ms->n);
        add("matvec", strdup(what), 1, 2.0 * K * O * ms->n, 4.0 * K * O * ms->n, c_matvec_set, ms);
    }
    {
        mv_set hm = {pool, buf(hl_packed_floats(V, C)), X, logits, C, V, 1, dec_packed};
        snprintf(what, sizeof what, "head W*x: %lld->%lld", (long long)C, (long long)V);
        add("matvec", strdup(what), 1, 2.0 * C * V, 4.0 * C * V, c_matvec_set, &hm);
        int64_t n_ctx = 256;
        float *kc = buf(n_ctx * KV), *vc = buf(n_ctx * KV), *q = buf(C), *o = buf(C), *sc = buf(threads * n_ctx);
        at a = {pool, o, q, kc, vc, NULL, NULL, NULL, NULL, sc, 1, 1, H, Hkv, D, pos, n_ctx, reps};
        snprintf(what, sizeof what, "attention at pos %lld (x%d per timing)", (long long)pos, reps);
        add("attention", strdup(what), (double)L / reps, 0, 0, c_att_dec, &a);
        pl pp = {pool, reps};
        /* dispatches per token: the 7 projections, attention when it goes parallel, and the head */
        double dispatches = L * 7.0 + 1;
        snprintf(what, sizeof what, "hl_pool_for wake+join, empty (x%d per timing)", reps);
        add("threads", strdup(what), dispatches / reps, 0, 0, c_pool, &pp);
        /* one unmerged adapter */
        float *Ad = buf(dec_rank * wide), *Bd = buf(wide * dec_rank), *hd = buf(dec_rank);
        for (size_t p = 0; p < sizeof pj / sizeof pj[0]; p++) {
            if (!pj[p].lora) continue;
            int dup = 0;
            for (size_t k = 0; k < p; k++) dup |= pj[k].lora && pj[k].K == pj[p].K && pj[k].O == pj[p].O;
            if (dup) continue;
            double cnt = 0;
            char names[64] = "";
            for (size_t k = 0; k < sizeof pj / sizeof pj[0]; k++)
                if (pj[k].lora && pj[k].K == pj[p].K && pj[k].O == pj[p].O) {
                    cnt += 1;
                    snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", names[0] ? "," : "", pj[k].n);
                }
            int64_t K = pj[p].K, O = pj[p].O;
            mm a1 = {pool, hd, X, Ad, 1, K, dec_rank, dec_rank, 1.0f, 0, reps};
            snprintf(what, sizeof what, "A*x %s: %lld->%lld (x%d)", names, (long long)K, (long long)dec_rank, reps);
            add("lora x1", strdup(what), cnt * L / reps, 2.0 * K * dec_rank * reps, 4.0 * K * dec_rank * reps, c_matmul, &a1);
            mm b1 = {pool, Y, hd, Bd, 1, dec_rank, O, O, 0.5f, 1, reps};
            snprintf(what, sizeof what, "y+=s*B*h %s: %lld->%lld (x%d)", names, (long long)dec_rank, (long long)O, reps);
            add("lora x1", strdup(what), cnt * L / reps, 2.0 * O * dec_rank * reps, 4.0 * O * dec_rank * reps, c_matmul, &b1);
        }
    }
    snprintf(title, sizeof title,
             "Decode, one token, %s, %d threads (ms per token, estimated from kernel timings; the 'lora x1' rows are "
             "the extra work of one unmerged rank-%lld adapter)",
             sh->name, threads, (long long)dec_rank);
    print_table(title, measured_token, "ms/token");
    hl_pool_free(pool);
    return 0;
}
