/* test_isa.c: every SIMD level this build and CPU can run (one in a native
 * build; scalar, avx2 and avx512 in a portable one, as the CPU allows), each
 * in its own child process with $HYPERLORA_ISA set before the first kernel
 * runs (the level is chosen once per process):
 *   - the level in use is the one asked for;
 *   - its kernels against the plain references of reference.c, at the
 *     tolerances of test_train_grad, and bitwise against their own canonical
 *     orders (hl_dot per element of hl_matmul, hl_dot_seq per element of the
 *     packed product, the same bits at 1 and 3 threads);
 *   - a stories260K forward in both weight layouts at 1 and 3 threads:
 *     bit-identical logits per level and layout.
 * The parent then compares the levels' logits with each other (AVX-512 sums
 * in another order: within 1e-4, as packed against row-major; AVX2 and
 * scalar share their orders: the same bits) and checks that
 * an unknown $HYPERLORA_ISA is refused with a message naming it. */
#include "hyperlora.h"
#include "kernels/dispatch.h"
#include "kernels/kernels.h"
#include "util/rng.h"
#include "test_util.h"

#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#define STORIES "models/stories260K/"
#define N_TOKENS 24

static double max_abs_diff(const float *a, const float *b, int64_t n) {
    double d = 0;
    for (int64_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - (double)b[i]));
    return d;
}

static float *randn(hl_rng *rng, int64_t n) {
    float *p = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    REQUIRE(p);
    for (int64_t i = 0; i < n; i++) p[i] = hl_rng_normal(rng);
    return p;
}

static void check_kernels(const char *level) {
    hl_rng rng;
    hl_rng_seed(&rng, 15);
    hl_pool *p1 = hl_pool_init(1), *p3 = hl_pool_init(3);
    const int64_t T = 37, O = 45, K = 70;
    float *x = randn(&rng, T * K), *w = randn(&rng, O * K), *dy = randn(&rng, T * O);
    float *a = malloc(sizeof(float) * T * K), *b = malloc(sizeof(float) * T * K), *r = malloc(sizeof(float) * T * K);
    float *ya = malloc(sizeof(float) * T * O), *yb = malloc(sizeof(float) * T * O), *yr = malloc(sizeof(float) * T * O);

    /* x·Wᵀ, row-major weights: each element is hl_dot */
    hl_matmul(p1, ya, x, w, T, K, O);
    hl_matmul(p3, yb, x, w, T, K, O);
    hl_matmul_ref(yr, x, w, T, K, O);
    CHECK_MSG(!memcmp(ya, yb, sizeof(float) * T * O), "%s: hl_matmul differs at 1 and 3 threads", level);
    CHECK_MSG(max_abs_diff(ya, yr, T * O) < 1e-4, "%s: hl_matmul vs reference %g", level, max_abs_diff(ya, yr, T * O));
    int same = 1;
    for (int64_t t = 0; t < T; t++)
        for (int64_t o = 0; o < O; o++) same &= ya[t * O + o] == hl_dot(x + t * K, w + o * K, K);
    CHECK_MSG(same, "%s: hl_matmul differs from hl_dot per element", level);

    /* Short rows (an adapter's B: K = its rank), accumulated with a scale: each element is dst + s·hl_dot.
     * 1, 4 and 19 tokens: a decoded token and prompts. */
    const int64_t short_k[] = {1, 3, 8, 12, 16, 20, 24, 32, 40, 48, 56, 64, 72}, short_t[] = {1, 4, 19};
    for (size_t ki = 0; ki < sizeof short_k / sizeof short_k[0]; ki++)
        for (size_t ti = 0; ti < sizeof short_t / sizeof short_t[0]; ti++) {
            const int64_t ts = short_t[ti], ks = short_k[ki];
            const int64_t os = 53; /* three 16-row tiles and a tail */
            float *ws = randn(&rng, os * ks), *xs = randn(&rng, ts * ks), *ys = randn(&rng, ts * os);
            float *y1 = malloc(sizeof(float) * ts * os), *y3 = malloc(sizeof(float) * ts * os);
            REQUIRE(y1 && y3);
            memcpy(y1, ys, sizeof(float) * ts * os);
            memcpy(y3, ys, sizeof(float) * ts * os);
            hl_matmul_strided(p1, y1, os, xs, ws, ts, ks, os, 0.37f, 1);
            hl_matmul_strided(p3, y3, os, xs, ws, ts, ks, os, 0.37f, 1);
            int same_short = !memcmp(y1, y3, sizeof(float) * ts * os);
            for (int64_t t = 0; t < ts; t++)
                for (int64_t o = 0; o < os; o++) {
                    const float want = ys[t * os + o] + 0.37f * hl_dot(xs + t * ks, ws + o * ks, ks);
                    same_short &= memcmp(&y1[t * os + o], &want, sizeof want) == 0;
                }
            CHECK_MSG(same_short, "%s: hl_matmul_strided on rows of %lld, %lld tokens, differs from dst + s·hl_dot",
                      level, (long long)ks, (long long)ts);
            free(ws);
            free(xs);
            free(ys);
            free(y1);
            free(y3);
        }

    /* Short rows split between 3 threads (4,104 rows: chunks start 8 rows past a 16-row tile), into a wider
     * output (ldo = O + 3: the columns between stay as they were), stored and accumulated; 1 and 17 tokens. */
    for (int64_t ts = 1; ts <= 17; ts += 16) {
        const int64_t os = 4104, ks = 8, ld = os + 3;
        float *ws = randn(&rng, os * ks), *xs = randn(&rng, ts * ks), *ys = randn(&rng, ts * ld);
        float *y3 = malloc(sizeof(float) * ts * ld);
        REQUIRE(y3);
        for (int acc = 0; acc < 2; acc++) {
            memcpy(y3, ys, sizeof(float) * ts * ld);
            hl_matmul_strided(p3, y3, ld, xs, ws, ts, ks, os, acc ? -1.5f : 1.0f, acc);
            int same_split = 1;
            for (int64_t t = 0; t < ts; t++) {
                same_split &= !memcmp(y3 + t * ld + os, ys + t * ld + os, sizeof(float) * 3);
                for (int64_t o = 0; o < os; o++) {
                    const float d = hl_dot(xs + t * ks, ws + o * ks, ks);
                    const float want = acc ? ys[t * ld + o] + -1.5f * d : d;
                    same_split &= memcmp(&y3[t * ld + o], &want, sizeof want) == 0;
                }
            }
            CHECK_MSG(same_split,
                      "%s: short rows split between threads (%lld tokens, accumulate %d) differ from hl_dot", level,
                      (long long)ts, acc);
        }
        free(ws);
        free(xs);
        free(ys);
        free(y3);
    }

    /* packed weights: each element is hl_dot_seq */
    float *wp = malloc(sizeof(float) * (size_t)hl_packed_floats(O, K));
    hl_pack_weights(wp, w, O, K);
    hl_matmul_packed(p1, ya, O, x, wp, T, K, O);
    hl_matmul_packed(p3, yb, O, x, wp, T, K, O);
    CHECK_MSG(!memcmp(ya, yb, sizeof(float) * T * O), "%s: hl_matmul_packed differs at 1 and 3 threads", level);
    CHECK_MSG(max_abs_diff(ya, yr, T * O) < 1e-4, "%s: hl_matmul_packed vs reference %g", level,
              max_abs_diff(ya, yr, T * O));
    same = 1;
    for (int64_t t = 0; t < T; t++)
        for (int64_t o = 0; o < O; o++) same &= ya[t * O + o] == hl_dot_seq(x + t * K, w + o * K, K);
    CHECK_MSG(same, "%s: hl_matmul_packed differs from hl_dot_seq per element", level);

    /* dY·W, row-major and packed */
    hl_matmul_nn(p1, a, dy, w, T, O, K, 1.0f, 0);
    hl_matmul_nn(p3, b, dy, w, T, O, K, 1.0f, 0);
    hl_matmul_nn_ref(r, dy, w, T, O, K);
    CHECK_MSG(!memcmp(a, b, sizeof(float) * T * K), "%s: hl_matmul_nn differs at 1 and 3 threads", level);
    CHECK_MSG(max_abs_diff(a, r, T * K) < 1e-4, "%s: hl_matmul_nn vs reference %g", level, max_abs_diff(a, r, T * K));
    hl_matmul_packed_nn(p1, a, dy, wp, T, O, K, 0);
    hl_matmul_packed_nn(p3, b, dy, wp, T, O, K, 0);
    CHECK_MSG(!memcmp(a, b, sizeof(float) * T * K), "%s: hl_matmul_packed_nn differs at 1 and 3 threads", level);
    CHECK_MSG(max_abs_diff(a, r, T * K) < 1e-4, "%s: hl_matmul_packed_nn vs reference %g", level,
              max_abs_diff(a, r, T * K));

    /* G += dYᵀ·X */
    float *g = calloc((size_t)(O * K), sizeof(float)), *gr = malloc(sizeof(float) * O * K);
    hl_matmul_tn_acc(p3, g, dy, x, T, O, K);
    hl_matmul_tn_ref(gr, dy, x, T, O, K);
    double d = 0;
    for (int64_t i = 0; i < O * K; i++) d = fmax(d, fabs(g[i] - gr[i]) / (1 + fabs(gr[i])));
    CHECK_MSG(d < 1e-5, "%s: hl_matmul_tn_acc vs reference %g", level, d);

    /* exp: the vector forms equal the scalar ones bitwise */
    const int64_t n = 1000;
    float *e = randn(&rng, n), *e1 = malloc(sizeof(float) * n), *e2 = malloc(sizeof(float) * n);
    for (int64_t i = 0; i < n; i++) e[i] = 12.0f * e[i] > 60.0f ? 60.0f : 12.0f * e[i];
    double s1 = hl_exp_sum(e1, e, n, 60.0f), s2 = hl_exp_sum_ref(e2, e, n, 60.0f);
    CHECK_MSG(s1 == s2 && !memcmp(e1, e2, sizeof(float) * n), "%s: hl_exp_sum differs from the reference", level);
    hl_exp(e1, e, n);
    hl_exp_ref(e2, e, n);
    CHECK_MSG(!memcmp(e1, e2, sizeof(float) * n), "%s: hl_exp differs from the reference", level);

    /* RMSNorm and SwiGLU */
    float *up = randn(&rng, n);
    hl_rmsnorm(e1, e, up, n, 1e-5f);
    hl_rmsnorm_ref(e2, e, up, n, 1e-5f);
    CHECK_MSG(max_abs_diff(e1, e2, n) < 1e-5, "%s: hl_rmsnorm vs reference %g", level, max_abs_diff(e1, e2, n));
    for (int64_t i = 0; i < n; i++) e[i] /= 12.0f;
    hl_swiglu(e1, e, up, n);
    hl_swiglu_ref(e2, e, up, n);
    d = 0;
    for (int64_t i = 0; i < n; i++) d = fmax(d, fabs(e1[i] - e2[i]) / (1e-3 + fabs(e2[i])));
    CHECK_MSG(d < 1e-5, "%s: hl_swiglu vs reference %g", level, d);

    /* decode attention over a cache, at 1 and 3 threads */
    const int64_t H = 4, Hkv = 2, D = 16, n_ctx = 40, Ta = 5, pos0 = 30;
    float *q = randn(&rng, Ta * H * D), *kc = randn(&rng, n_ctx * Hkv * D), *vc = randn(&rng, n_ctx * Hkv * D);
    float *o1 = malloc(sizeof(float) * Ta * H * D), *o3 = malloc(sizeof(float) * Ta * H * D);
    float *orf = malloc(sizeof(float) * Ta * H * D), *scratch = malloc(sizeof(float) * 3 * n_ctx);
    hl_attention(p1, o1, q, kc, vc, Ta, pos0, H, Hkv, D, n_ctx, scratch);
    hl_attention(p3, o3, q, kc, vc, Ta, pos0, H, Hkv, D, n_ctx, scratch);
    hl_attention_ref(orf, q, kc, vc, Ta, pos0, H, Hkv, D);
    CHECK_MSG(!memcmp(o1, o3, sizeof(float) * Ta * H * D), "%s: hl_attention differs at 1 and 3 threads", level);
    CHECK_MSG(max_abs_diff(o1, orf, Ta * H * D) < 1e-5, "%s: hl_attention vs reference %g", level,
              max_abs_diff(o1, orf, Ta * H * D));

    free(x); free(w); free(dy); free(a); free(b); free(r); free(ya); free(yb); free(yr); free(wp);
    free(g); free(gr); free(e); free(e1); free(e2); free(up);
    free(q); free(kc); free(vc); free(o1); free(o3); free(orf); free(scratch);
    hl_pool_free(p1);
    hl_pool_free(p3);
}

static const int32_t prompt[N_TOKENS] = {1, 403, 407, 261, 378, 294, 429, 271, 400, 309, 386, 268,
                                         283, 469, 276, 314, 260, 356, 365, 435, 263, 289, 272, 271};

/* Logits of all N_TOKENS prompt tokens at the given threads and layout. */
static void forward(const hl_model *m, int threads, int32_t layout, float *out) {
    hl_context *ctx = NULL;
    hl_error err = {0};
    hl_context_params cp = {.n_ctx = 0, .n_threads = threads, .weights = layout};
    CHECK_OK(hl_context_init(m, &cp, &ctx, &err), &err);
    REQUIRE(ctx);
    CHECK_OK(hl_context_eval(ctx, prompt, N_TOKENS, 0, out, 1, &err), &err);
    hl_context_free(ctx);
}

static const char *logits_file(hl_isa level, int32_t layout) {
    static char path[64];
    snprintf(path, sizeof path, "isa_logits_%s_%d.bin", hl_isa_name(level), (int)layout);
    return path;
}

/* The child for one level: returns its exit status. */
static int run_level(hl_isa level) {
    const char *name = hl_isa_name(level);
    hl_test_checks = hl_test_failures = 0; /* this child's own count */
    setenv("HYPERLORA_ISA", name, 1);
    hl_error err = {0};
    CHECK_OK(hl_isa_check(&err), &err);
    CHECK_MSG(hl_isa_active() == level, "asked for %s, running %s", name, hl_isa_name(hl_isa_active()));
    check_kernels(name);
    hl_model *m = NULL;
    CHECK_OK(hl_model_load(shared_path(STORIES "stories260K-f32.gguf"), NULL, &m, &err), &err);
    REQUIRE(m);
    const int64_t n = (int64_t)N_TOKENS * hl_model_get_config(m)->vocab_size;
    float *l1 = malloc(sizeof(float) * n), *l3 = malloc(sizeof(float) * n);
    const int32_t layouts[2] = {HL_WEIGHTS_ROWS, HL_WEIGHTS_PACKED};
    for (int i = 0; i < 2; i++) {
        forward(m, 1, layouts[i], l1);
        forward(m, 3, layouts[i], l3);
        CHECK_MSG(!memcmp(l1, l3, sizeof(float) * n), "%s, %s weights: logits differ at 1 and 3 threads", name,
                  i ? "packed" : "row-major");
        FILE *f = fopen(logits_file(level, layouts[i]), "wb");
        REQUIRE(f && fwrite(l1, sizeof(float), (size_t)n, f) == (size_t)n);
        fclose(f);
    }
    free(l1);
    free(l3);
    hl_model_free(m);
    printf("level %s: ", name);
    return hl_test_finish("test_isa");
}

int main(void) {
    /* No kernel may run in this process before the children fork: the level
     * is chosen on first use. hl_isa_available does not choose. */
    hl_isa levels[HL_ISA_COUNT];
    int n_levels = 0;
    for (int l = 0; l < HL_ISA_COUNT; l++)
        if (hl_isa_available((hl_isa)l)) levels[n_levels++] = (hl_isa)l;
    printf("levels this build and CPU run:");
    for (int i = 0; i < n_levels; i++) printf(" %s", hl_isa_name(levels[i]));
    printf(" (%s build)\n", hl_isa_dispatching() ? "portable" : "native");
    fflush(stdout);
    CHECK(n_levels >= 1);
    CHECK(!hl_isa_dispatching() || hl_isa_available(HL_ISA_SCALAR));
    for (int i = 0; i < n_levels; i++) {
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            int rc = run_level(levels[i]);
            fflush(stdout);
            _exit(rc);
        }
        int status = 0;
        REQUIRE(waitpid(pid, &status, 0) == pid);
        CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "level %s failed", hl_isa_name(levels[i]));
    }

    /* The levels against each other: different summation orders, the same numbers to 1e-4. */
    size_t sz0 = 0;
    for (int lay = HL_WEIGHTS_PACKED; lay <= HL_WEIGHTS_ROWS; lay++) {
        float *l0 = read_whole(logits_file(levels[0], lay), &sz0);
        REQUIRE(l0 && sz0 > 0);
        for (int i = 1; i < n_levels; i++) {
            size_t sz = 0;
            float *li = read_whole(logits_file(levels[i], lay), &sz);
            REQUIRE(li && sz == sz0);
            double d = max_abs_diff(l0, li, (int64_t)(sz / sizeof(float)));
            printf("%s weights: %s vs %s logits max |diff| %.3g\n", lay == HL_WEIGHTS_PACKED ? "packed" : "row-major",
                   hl_isa_name(levels[i]), hl_isa_name(levels[0]), d);
            CHECK(d < 1e-4);
            /* AVX2 runs the scalar level's orders (8 lanes), vectorised: the same bits */
            if (levels[0] == HL_ISA_SCALAR && levels[i] == HL_ISA_AVX2)
                CHECK_MSG(!memcmp(l0, li, sz), "avx2 and scalar logits differ");
            free(li);
        }
        free(l0);
    }
    for (int i = 0; i < n_levels; i++)
        for (int lay = HL_WEIGHTS_PACKED; lay <= HL_WEIGHTS_ROWS; lay++) remove(logits_file(levels[i], lay));

    /* An unknown level is refused by context creation, by name. */
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        setenv("HYPERLORA_ISA", "sse9", 1);
        hl_error err = {0};
        hl_model *m = NULL;
        int ok = hl_model_load(shared_path(STORIES "stories260K-f32.gguf"), NULL, &m, &err) == HL_OK;
        hl_context *ctx = NULL;
        hl_context_params cp = {.n_threads = 1};
        ok = ok && hl_context_init(m, &cp, &ctx, &err) == HL_ERR_INVALID_ARG && !ctx && strstr(err.msg, "sse9");
        if (!ok) fprintf(stderr, "HYPERLORA_ISA=sse9 was not refused: %s\n", err.msg);
        hl_model_free(m);
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "an unknown HYPERLORA_ISA was not refused");
    return hl_test_finish("test_isa");
}
