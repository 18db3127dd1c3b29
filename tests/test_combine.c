/* test_combine.c: `combine` (cat / linear / svd) against direct computation:
 * cat reproduces the unmerged pair in logits and merged weights, linear of
 * one adapter is that adapter scaled, svd's reported error is the measured
 * ||ΔW - B·A||_F, outputs are byte-identical run to run, and bad usage fails
 * with clear messages (library and CLI). */
#include "hyperlora.h"
#include "lora/adapter_io.h"
#include "lora/combine.h"
#include "lora/merge.h"
#include "util/alloc.h"
#include "test_util.h"

#include <sys/stat.h>
#include <unistd.h>

#define MODEL "models/stories260K/stories260K-f32.gguf"
#define LORA_R4 "oracle/llamacpp/random_lora_r4.gguf"
#define PEFT_PLAIN "oracle/peft_hf/plain"
#define NTOK 32

static const hl_model *g_model;
static const hl_adapter *g_pair[2];            /* random_lora_r4, PEFT plain */
static const float g_pair_w[2] = {1.0f, -0.5f}; /* the weights used throughout */

/* ΔW (rows, cols) = Σ wᵢ·sᵢ·Bᵢ·Aᵢ in double, straight from the definition. */
static double *delta_direct(const hl_adapter *const *ads, const float *w, int n, int layer, int target,
                            int64_t *rows, int64_t *cols) {
    REQUIRE(hl_model_weight(g_model, layer, target, rows, cols));
    double *d = calloc((size_t)(*rows * *cols), sizeof(double));
    REQUIRE(d);
    for (int i = 0; i < n; i++) {
        const hl_lora_weight *lw = hl_adapter_find(ads[i], layer, target);
        if (!lw) continue;
        double s = (double)w[i] * hl_lora_weight_scale(ads[i], lw);
        for (int64_t o = 0; o < *rows; o++)
            for (int32_t r = 0; r < lw->rank; r++) {
                double b = s * lw->B[o * lw->rank + r];
                for (int64_t k = 0; k < *cols; k++) d[o * *cols + k] += b * lw->A[(int64_t)r * *cols + k];
            }
    }
    return d;
}

static double frob_diff(const double *a, const double *b, int64_t n) {
    double acc = 0;
    for (int64_t i = 0; i < n; i++) acc += (a[i] - b[i]) * (a[i] - b[i]);
    return sqrt(acc);
}

static double frob(const double *a, int64_t n) {
    double acc = 0;
    for (int64_t i = 0; i < n; i++) acc += a[i] * a[i];
    return sqrt(acc);
}

static int32_t *story_tokens(void) {
    const char *text = "Once upon a time there was a little dog named Max. He liked to run in the park with his "
                       "friends and play with a red ball every day.";
    hl_error err = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_OK(hl_tokenizer_encode(hl_model_get_tokenizer(g_model), text, strlen(text), 1, 0, &ids, &n, &err), &err);
    REQUIRE(ids && n >= NTOK);
    int32_t *out = malloc(sizeof(int32_t) * NTOK);
    REQUIRE(out);
    memcpy(out, ids, sizeof(int32_t) * NTOK);
    hl_free(ids);
    return out;
}

/* All NTOK·V logits of the story with the given adapter set. */
static float *logits_with(const hl_adapter *const *ads, const float *scales, int n) {
    hl_error err = {0};
    hl_context *ctx = NULL;
    hl_context_params cp = {.n_ctx = 64, .n_threads = 2};
    REQUIRE(hl_context_init(g_model, &cp, &ctx, &err) == HL_OK);
    CHECK_OK(hl_context_set_adapters(ctx, ads, scales, n, &err), &err);
    int V = hl_model_get_config(g_model)->vocab_size;
    float *lg = malloc(sizeof(float) * NTOK * (size_t)V);
    int32_t *tok = story_tokens();
    REQUIRE(lg);
    CHECK_OK(hl_context_eval(ctx, tok, NTOK, 0, lg, 1, &err), &err);
    free(tok);
    hl_context_free(ctx);
    return lg;
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > m || d != d) m = d != d ? INFINITY : d;
    }
    return m;
}

static hl_adapter *combine_ok(const hl_adapter *const *ads, const float *w, int n, hl_combine_method method, int k,
                              hl_combine_report *rep) {
    hl_error err = {0};
    hl_adapter *out = NULL;
    CHECK_OK(hl_adapter_combine(g_model, ads, w, n, method, k, NULL, &out, rep, &err), &err);
    REQUIRE(out);
    return out;
}

/* 1 + 2: cat is exact: logits and merged weights match the unmerged pair. */
static void test_cat(void) {
    hl_combine_report rep;
    hl_adapter *cat = combine_ok(g_pair, g_pair_w, 2, HL_COMBINE_CAT, 0, &rep);
    CHECK(!strcmp(cat->name, "combined") && !cat->rslora);
    /* the union: r4 has q v o up down, plain adds gate -> 6 per layer */
    int L = hl_model_get_config(g_model)->n_layers;
    CHECK_MSG(cat->n_weights == 6 * L, "cat has %d weights", cat->n_weights);
    for (int32_t i = 0; i < cat->n_weights; i++) {
        const hl_lora_weight *w = &cat->w[i];
        int32_t want = 0;
        for (int j = 0; j < 2; j++) {
            const hl_lora_weight *x = hl_adapter_find(g_pair[j], w->layer, w->target);
            want += x ? x->rank : 0;
        }
        CHECK(w->rank == want && hl_lora_weight_scale(cat, w) == 1.0f);
    }
    printf("cat: report total ||dW||_F %.6g, rounding error %.3g (rel %.3g)\n", rep.total_norm, rep.total_error,
           rep.total_rel_error);
    CHECK(rep.n_tensors == cat->n_weights && rep.total_rel_error < 1e-6);

    const hl_adapter *one[1] = {cat};
    float s1 = 1.0f;
    int V = hl_model_get_config(g_model)->vocab_size;
    float *ref = logits_with(g_pair, g_pair_w, 2), *got = logits_with(one, &s1, 1);
    double d = max_abs_diff(ref, got, (size_t)NTOK * V);
    /* The float noise floor of the forward pass: the same pair, applied in the other order. */
    const hl_adapter *rev[2] = {g_pair[1], g_pair[0]};
    const float rev_w[2] = {g_pair_w[1], g_pair_w[0]};
    float *swapped = logits_with(rev, rev_w, 2);
    double floor_d = max_abs_diff(ref, swapped, (size_t)NTOK * V);
    free(swapped);
    printf("cat vs unmerged pair {1, -0.5}: logits max |diff| %.3g over %d tokens x %d "
           "(noise floor: pair vs reversed pair %.3g)\n", d, NTOK, V, floor_d);
    /* The project's logits tolerance for adapter paths (merged vs unmerged within 1e-4,
     * the promise for applying adapters); the noise floor printed above is about 1e-5, and the weights themselves are
     * checked at 1e-6 below. */
    CHECK(d <= 1e-4);
    /* The adapters must really change something, or the test proves nothing. */
    float *base = logits_with(NULL, NULL, 0);
    double moved = max_abs_diff(ref, base, (size_t)NTOK * V);
    printf("  (the pair moves logits by up to %.3g)\n", moved);
    CHECK(moved > 1e-2);

    /* Through the file: the GGUF folds the gate tensors' scale (rank 4 vs the file's
     * alpha 8) into B, exactly a power of two. */
    hl_error err = {0};
    hl_adapter *back = NULL;
    CHECK_OK(hl_adapter_save_gguf(cat, "test_combine_cat.gguf", &err), &err);
    CHECK_OK(hl_adapter_load("test_combine_cat.gguf", g_model, 0, &back, &err), &err);
    REQUIRE(back);
    const hl_adapter *oneb[1] = {back};
    float *got2 = logits_with(oneb, &s1, 1);
    double d2 = max_abs_diff(ref, got2, (size_t)NTOK * V);
    printf("cat saved + reloaded: logits max |diff| %.3g\n", d2);
    CHECK(d2 <= 1e-4);
    free(got2);
    hl_adapter_free(back);
    unlink("test_combine_cat.gguf");

    /* merged weights: W + cat == W + 1·r4 - 0.5·plain */
    double worst = 0;
    for (int l = -1; l < L; l++)
        for (int t = 0; t < HL_TARGET_COUNT; t++) {
            if ((l < 0) != (t == HL_TARGET_OUTPUT)) continue;
            int64_t rows, cols;
            REQUIRE(hl_model_weight(g_model, l, t, &rows, &cols));
            float *x = malloc(sizeof(float) * (size_t)(rows * cols)), *y = malloc(sizeof(float) * (size_t)(rows * cols));
            REQUIRE(x && y);
            CHECK_OK(hl_merge_weight(g_model, one, &s1, 1, l, t, x, &err), &err);
            CHECK_OK(hl_merge_weight(g_model, g_pair, g_pair_w, 2, l, t, y, &err), &err);
            double dd = max_abs_diff(x, y, (size_t)(rows * cols));
            if (dd > worst) worst = dd;
            free(x);
            free(y);
        }
    printf("cat merged weights vs merging the pair: max |diff| %.3g\n", worst);
    CHECK(worst <= 1e-6);
    free(ref);
    free(got);
    free(base);
    hl_combine_report_free(&rep);
    hl_adapter_free(cat);
}

/* 3: linear of one adapter at w is that adapter at scale w; ranks must match. */
static void test_linear(void) {
    const float w = 0.7f;
    hl_combine_report rep;
    const hl_adapter *one[1] = {g_pair[0]};
    hl_adapter *lin = combine_ok(one, &w, 1, HL_COMBINE_LINEAR, 0, &rep);
    double worst = 0;
    const float unit = 1.0f;
    for (int32_t i = 0; i < lin->n_weights; i++) {
        const hl_lora_weight *lw = &lin->w[i];
        CHECK(hl_lora_weight_scale(lin, lw) == 1.0f && lw->rank == 4);
        int64_t rows, cols;
        const hl_adapter *res[1] = {lin};
        double *want = delta_direct(one, &w, 1, lw->layer, lw->target, &rows, &cols);
        double *got = delta_direct(res, &unit, 1, lw->layer, lw->target, &rows, &cols);
        for (int64_t e = 0; e < rows * cols; e++) {
            double d = fabs(want[e] - got[e]);
            if (d > worst) worst = d;
        }
        free(want);
        free(got);
    }
    printf("linear of one adapter at w=%.1f vs that adapter at scale w: delta max |diff| %.3g, report rel error %.3g\n",
           (double)w, worst, rep.total_rel_error);
    CHECK(worst <= 1e-6);
    CHECK(rep.total_rel_error < 1e-6);
    hl_combine_report_free(&rep);
    hl_adapter_free(lin);

    /* two different adapters: allowed (equal ranks), but the cross terms show */
    const float wp[2] = {1.0f, 0.5f};
    lin = combine_ok(g_pair, wp, 2, HL_COMBINE_LINEAR, 0, &rep);
    printf("linear of the pair {1, 0.5}: cross-term error %.4g (rel %.3g), as documented\n", rep.total_error,
           rep.total_rel_error);
    CHECK(rep.total_rel_error > 1e-3);
    /* the reported error is the measured ||ΔW - B·A||_F on a tensor */
    {
        const hl_lora_weight *lw = hl_adapter_find(lin, 0, HL_TARGET_Q);
        REQUIRE(lw);
        int64_t rows, cols;
        const hl_adapter *res[1] = {lin};
        double *want = delta_direct(g_pair, wp, 2, 0, HL_TARGET_Q, &rows, &cols);
        double *got = delta_direct(res, &unit, 1, 0, HL_TARGET_Q, &rows, &cols);
        double direct = frob_diff(want, got, rows * cols);
        const hl_combine_tensor_report *tr = NULL;
        for (int32_t i = 0; i < rep.n_tensors; i++)
            if (rep.tensors[i].layer == 0 && rep.tensors[i].target == HL_TARGET_Q) tr = &rep.tensors[i];
        REQUIRE(tr);
        CHECK_MSG(fabs(tr->error - direct) <= 1e-6 * direct, "linear blk.0.attn_q error %.9g vs direct %.9g",
                  tr->error, direct);
        free(want);
        free(got);
    }
    hl_combine_report_free(&rep);
    hl_adapter_free(lin);

    /* mismatched ranks on blk.0.attn_q: refused, naming the tensor */
    hl_error err = {0};
    hl_adapter *r2 = NULL, *out = NULL;
    CHECK_OK(hl_adapter_new(g_model, "rank2", 2.0f, 0, &r2, &err), &err);
    REQUIRE(r2);
    CHECK_OK(hl_adapter_add(r2, g_model, 0, HL_TARGET_Q, 2, 2.0f, NULL, NULL, &err), &err);
    CHECK_OK(hl_adapter_index(r2, &err), &err);
    const hl_adapter *mixed[2] = {g_pair[0], r2};
    const float w11[2] = {1.0f, 1.0f};
    hl_status s = hl_adapter_combine(g_model, mixed, w11, 2, HL_COMBINE_LINEAR, 0, NULL, &out, NULL, &err);
    CHECK_MSG(s == HL_ERR_MISMATCH && strstr(err.msg, "blk.0.attn_q.weight") && strstr(err.msg, "rank") && !out,
              "got %s \"%s\"", hl_status_name(s), err.msg);
    printf("refused (linear, ranks 4 and 2): %s\n", err.msg);
    /* ... while cat takes them (rank 6 there) */
    hl_adapter *cat = combine_ok(mixed, w11, 2, HL_COMBINE_CAT, 0, NULL);
    CHECK(hl_adapter_find(cat, 0, HL_TARGET_Q)->rank == 6);
    hl_adapter_free(cat);
    hl_adapter_free(r2);

    /* negative weights: refused, pointing at cat */
    s = hl_adapter_combine(g_model, g_pair, g_pair_w, 2, HL_COMBINE_LINEAR, 0, NULL, &out, NULL, &err);
    CHECK_MSG(s == HL_ERR_INVALID_ARG && strstr(err.msg, "cat") && !out, "got %s \"%s\"", hl_status_name(s), err.msg);
    printf("refused (linear, negative weight): %s\n", err.msg);
}

static const hl_combine_tensor_report *find_tr(const hl_combine_report *r, int layer, int target) {
    for (int32_t i = 0; i < r->n_tensors; i++)
        if (r->tensors[i].layer == layer && r->tensors[i].target == target) return &r->tensors[i];
    return NULL;
}

/* 4: svd. Per tensor, compare with ΔW formed directly. */
static void test_svd(void) {
    const float unit = 1.0f;
    int R = 8; /* 4 + 4 where both adapt; gate has only plain's 4 */
    double full_worst = 0, full_err = 0, rep_vs_direct = 0, prev_total = INFINITY;
    int monotone = 1;
    for (int k = 1; k <= R; k++) {
        hl_combine_report rep;
        hl_adapter *svd = combine_ok(g_pair, g_pair_w, 2, HL_COMBINE_SVD, k, &rep);
        CHECK(rep.n_tensors == svd->n_weights);
        for (int32_t i = 0; i < svd->n_weights; i++) {
            const hl_lora_weight *lw = &svd->w[i];
            const hl_combine_tensor_report *tr = find_tr(&rep, lw->layer, lw->target);
            REQUIRE(tr);
            CHECK(lw->rank == (k < tr->rank_in ? k : tr->rank_in) && lw->rank == tr->rank_out);
            CHECK(hl_lora_weight_scale(svd, lw) == 1.0f);
            CHECK(tr->clamped == (k > tr->rank_in));
            int64_t rows, cols;
            const hl_adapter *res[1] = {svd};
            double *want = delta_direct(g_pair, g_pair_w, 2, lw->layer, lw->target, &rows, &cols);
            double *got = delta_direct(res, &unit, 1, lw->layer, lw->target, &rows, &cols);
            double nrm = frob(want, rows * cols), direct = frob_diff(want, got, rows * cols);
            CHECK_MSG(fabs(tr->norm - nrm) <= 1e-9 * nrm, "norm %.12g vs %.12g", tr->norm, nrm);
            if (lw->rank == tr->rank_in) { /* full rank: exact up to float rounding */
                if (direct / nrm > full_worst) full_worst = direct / nrm;
                if (tr->rel_error > full_err) full_err = tr->rel_error;
            } else {
                double rel = fabs(tr->error - direct) / direct;
                if (rel > rep_vs_direct) rep_vs_direct = rel;
            }
            free(want);
            free(got);
        }
        printf("svd k=%d: total error %.6g of ||dW||_F %.6g (rel %.4g)\n", k, rep.total_error, rep.total_norm,
               rep.total_rel_error);
        if (rep.total_error > prev_total) monotone = 0;
        prev_total = rep.total_error;
        /* per tensor too, against the previous k */
        hl_combine_report_free(&rep);
        hl_adapter_free(svd);
    }
    printf("svd at full rank: ||dW - B*A||_F / ||dW||_F max %.3g, reported rel error max %.3g\n", full_worst, full_err);
    printf("svd k < R: reported error vs directly computed ||dW - B*A||_F: max relative diff %.3g\n", rep_vs_direct);
    CHECK(full_worst <= 1e-5);
    CHECK(full_err <= 1e-6);
    CHECK(rep_vs_direct <= 1e-4);
    CHECK_MSG(monotone, "svd total error increased with k");

    /* per tensor monotone in k, on blk.2.ffn_down */
    double prev = INFINITY;
    for (int k = 1; k <= R; k++) {
        hl_combine_report rep;
        hl_adapter *svd = combine_ok(g_pair, g_pair_w, 2, HL_COMBINE_SVD, k, &rep);
        const hl_combine_tensor_report *tr = find_tr(&rep, 2, HL_TARGET_DOWN);
        REQUIRE(tr);
        CHECK_MSG(tr->error <= prev, "k=%d: error %.9g > %.9g", k, tr->error, prev);
        prev = tr->error;
        hl_combine_report_free(&rep);
        hl_adapter_free(svd);
    }

    /* svd at full rank is also exact in the forward pass */
    hl_combine_report rep;
    hl_adapter *svd = combine_ok(g_pair, g_pair_w, 2, HL_COMBINE_SVD, R, &rep);
    const hl_adapter *one[1] = {svd};
    int V = hl_model_get_config(g_model)->vocab_size;
    float *ref = logits_with(g_pair, g_pair_w, 2), *got = logits_with(one, &unit, 1);
    double d = max_abs_diff(ref, got, (size_t)NTOK * V);
    printf("svd k=R vs unmerged pair: logits max |diff| %.3g\n", d);
    CHECK(d <= 1e-4);
    free(ref);
    free(got);
    hl_combine_report_free(&rep);
    hl_adapter_free(svd);

    /* k above R: clamped per tensor, and said so */
    svd = combine_ok(g_pair, g_pair_w, 2, HL_COMBINE_SVD, R + 5, &rep);
    CHECK(rep.n_clamped == rep.n_tensors && rep.total_rel_error <= 1e-6);
    for (int32_t i = 0; i < svd->n_weights; i++) CHECK(svd->w[i].rank == rep.tensors[i].rank_in);
    printf("svd k=%d (> R): %d of %d tensors clamped\n", R + 5, rep.n_clamped, rep.n_tensors);
    hl_combine_report_free(&rep);
    hl_adapter_free(svd);

    /* Stacks taller than the tensor: R = 4 + 4 + 30 = 38 on blk.0 attn_v (32 -> out,
     * so the core is 32 x 38 and is transposed for Jacobi) and 4 + 70 on output
     * (64 in). The rank then clamps to min(out, in, R). */
    hl_error err = {0};
    hl_adapter *wide = NULL;
    CHECK_OK(hl_adapter_new(g_model, "wide", 1.0f, 0, &wide, &err), &err);
    REQUIRE(wide);
    const int wt[3] = {HL_TARGET_Q, HL_TARGET_V, HL_TARGET_OUTPUT}, wr[3] = {30, 30, 70};
    uint32_t seed = 12345;
    for (int i = 0; i < 3; i++) {
        CHECK_OK(hl_adapter_add(wide, g_model, 0, wt[i], wr[i], 1.0f, NULL, NULL, &err), &err);
        hl_lora_weight *lw = &wide->w[wide->n_weights - 1];
        for (int64_t e = 0; e < lw->rank * lw->n_in; e++) lw->A[e] = (float)((seed = seed * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
        for (int64_t e = 0; e < lw->rank * lw->n_out; e++) lw->B[e] = (float)((seed = seed * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
    }
    CHECK_OK(hl_adapter_index(wide, &err), &err);
    const hl_adapter *three[3] = {g_pair[0], g_pair[1], wide};
    const float w3[3] = {1.0f, -0.5f, 0.3f};
    const int checks[3][2] = {{0, HL_TARGET_V}, {0, HL_TARGET_Q}, {-1, HL_TARGET_OUTPUT}};
    double wide_full = 0, wide_rep = 0;
    for (int pass = 0; pass < 2; pass++) {
        int k = pass == 0 ? 100 : 5;
        svd = combine_ok(three, w3, 3, HL_COMBINE_SVD, k, &rep);
        for (int c = 0; c < 3; c++) {
            const hl_combine_tensor_report *tr = find_tr(&rep, checks[c][0], checks[c][1]);
            const hl_lora_weight *lw = hl_adapter_find(svd, checks[c][0], checks[c][1]);
            REQUIRE(tr && lw);
            int64_t rows, cols;
            const hl_adapter *res[1] = {svd};
            double *want = delta_direct(three, w3, 3, checks[c][0], checks[c][1], &rows, &cols);
            double *got = delta_direct(res, &unit, 1, checks[c][0], checks[c][1], &rows, &cols);
            int64_t cap = rows < cols ? rows : cols;
            if (cap > tr->rank_in) cap = tr->rank_in;
            CHECK_MSG(lw->rank == (k < cap ? k : cap), "%d: rank %d (k %d, cap %lld)", c, lw->rank, k, (long long)cap);
            double nrm = frob(want, rows * cols), direct = frob_diff(want, got, rows * cols);
            if (pass == 0) {
                CHECK(tr->clamped && direct / nrm <= 1e-5);
                if (direct / nrm > wide_full) wide_full = direct / nrm;
            } else {
                double rel = fabs(tr->error - direct) / direct;
                CHECK_MSG(rel <= 1e-4, "%d: reported %.9g vs direct %.9g", c, tr->error, direct);
                if (rel > wide_rep) wide_rep = rel;
            }
            free(want);
            free(got);
        }
        hl_combine_report_free(&rep);
        hl_adapter_free(svd);
    }
    printf("svd with R > out or in (R = 38, 74): full-rank rel error %.3g, k=5 reported vs direct %.3g\n", wide_full,
           wide_rep);
    hl_adapter_free(wide);

    /* a rank-deficient stack: an adapter combined with itself has rank 4 inside R = 8 */
    const hl_adapter *twice[2] = {g_pair[0], g_pair[0]};
    const float w2[2] = {0.25f, 0.75f};
    svd = combine_ok(twice, w2, 2, HL_COMBINE_SVD, 4, &rep);
    printf("svd of r4 with itself (R=8, true rank 4) at k=4: rel error %.3g\n", rep.total_rel_error);
    CHECK(rep.total_rel_error <= 1e-6);
    hl_combine_report_free(&rep);
    hl_adapter_free(svd);
}

static int files_equal(const char *x, const char *y) {
    size_t nx = 0, ny = 0;
    void *a = read_whole(x, &nx), *b = read_whole(y, &ny);
    int eq = a && b && nx == ny && !memcmp(a, b, nx);
    free(a);
    free(b);
    return eq;
}

/* 5: same inputs, same bytes; fingerprint and arch kept. */
static void test_deterministic(void) {
    hl_error err = {0};
    for (int method = 0; method < HL_COMBINE_METHOD_COUNT; method++) {
        const float wpos[2] = {1.0f, 0.5f};
        const float *w = method == HL_COMBINE_LINEAR ? wpos : g_pair_w;
        const char *files[2] = {"test_combine_det1.gguf", "test_combine_det2.gguf"};
        for (int run = 0; run < 2; run++) {
            hl_adapter *c = combine_ok(g_pair, w, 2, (hl_combine_method)method, 3, NULL);
            CHECK(!c->has_fingerprint); /* neither input names its base */
            CHECK(!strcmp(c->arch, "llama"));
            CHECK_OK(hl_adapter_save_gguf(c, files[run], &err), &err);
            hl_adapter_free(c);
        }
        CHECK_MSG(files_equal(files[0], files[1]), "%s: two runs wrote different bytes",
                  hl_combine_method_name((hl_combine_method)method));
        unlink(files[0]);
        unlink(files[1]);
    }
    printf("deterministic: cat, linear and svd wrote byte-identical files twice\n");

    /* A fingerprinted input passes its base on. */
    hl_adapter *fp = NULL, *c = NULL;
    CHECK_OK(hl_adapter_load(shared_path(LORA_R4), g_model, 0, &fp, &err), &err);
    REQUIRE(fp);
    fp->has_fingerprint = 1;
    fp->base_fingerprint = hl_model_fingerprint(g_model);
    const hl_adapter *set[2] = {fp, g_pair[1]};
    c = combine_ok(set, g_pair_w, 2, HL_COMBINE_CAT, 0, NULL);
    CHECK(c->has_fingerprint && c->base_fingerprint == hl_model_fingerprint(g_model));
    hl_adapter_free(c);
    /* two inputs claiming different bases are refused */
    hl_adapter *fp2 = NULL;
    CHECK_OK(hl_adapter_load(shared_path(LORA_R4), g_model, 0, &fp2, &err), &err);
    REQUIRE(fp2);
    fp2->has_fingerprint = 1;
    fp2->base_fingerprint = fp->base_fingerprint ^ 1;
    const hl_adapter *bad[2] = {fp, fp2};
    hl_status s = hl_adapter_combine(g_model, bad, g_pair_w, 2, HL_COMBINE_CAT, 0, NULL, &c, NULL, &err);
    CHECK_MSG(s == HL_ERR_MISMATCH && strstr(err.msg, "different bases"), "got %s \"%s\"", hl_status_name(s), err.msg);

    /* A decoder's lexicon is kept, through a save and a load too; two different lexicons are refused. */
    fp2->base_fingerprint = fp->base_fingerprint;
    REQUIRE((fp->lexicon = hl_strdup("{\"unit\": \"A\", \"parts\": [\"a\"]}\n")));
    for (int method = 0; method < HL_COMBINE_METHOD_COUNT; method++) {
        const float wpos[2] = {1.0f, 0.5f};
        c = combine_ok(set, method == HL_COMBINE_LINEAR ? wpos : g_pair_w, 2, (hl_combine_method)method, 3, NULL);
        CHECK_MSG(c->lexicon && !strcmp(c->lexicon, fp->lexicon), "%s dropped the lexicon",
                  hl_combine_method_name((hl_combine_method)method));
        if (method == HL_COMBINE_CAT) {
            hl_adapter *back = NULL;
            CHECK_OK(hl_adapter_save_gguf(c, "test_combine_lex.gguf", &err), &err);
            CHECK_OK(hl_adapter_load("test_combine_lex.gguf", g_model, 0, &back, &err), &err);
            CHECK(back && back->lexicon && !strcmp(back->lexicon, fp->lexicon));
            hl_adapter_free(back);
            unlink("test_combine_lex.gguf");
        }
        hl_adapter_free(c);
    }
    REQUIRE((fp2->lexicon = hl_strdup("{\"unit\": \"B\", \"parts\": [\"b\"]}\n")));
    s = hl_adapter_combine(g_model, bad, g_pair_w, 2, HL_COMBINE_CAT, 0, NULL, &c, NULL, &err);
    CHECK_MSG(s == HL_ERR_MISMATCH && strstr(err.msg, "different lexicons"), "got %s \"%s\"", hl_status_name(s),
              err.msg);
    hl_adapter_free(fp);
    hl_adapter_free(fp2);
    printf("lexicon: kept by cat, linear and svd and through a save; two different ones refused\n");
}

/* 6: bad usage, library level. */
static void test_bad_usage(void) {
    hl_error err = {0};
    hl_adapter *out = NULL;
    hl_combine_method m;
    hl_status s = hl_combine_method_parse("average", &m, &err);
    CHECK_MSG(s == HL_ERR_INVALID_ARG && strstr(err.msg, "unknown combine method") && strstr(err.msg, "svd"),
              "got \"%s\"", err.msg);
    printf("refused (method name): %s\n", err.msg);
    CHECK(hl_combine_method_parse("svd", &m, &err) == HL_OK && m == HL_COMBINE_SVD);
    s = hl_adapter_combine(g_model, g_pair, g_pair_w, 2, (hl_combine_method)7, 0, NULL, &out, NULL, &err);
    CHECK_MSG(s == HL_ERR_INVALID_ARG && strstr(err.msg, "unknown method") && !out, "got \"%s\"", err.msg);
    s = hl_adapter_combine(g_model, g_pair, g_pair_w, 2, HL_COMBINE_SVD, 0, NULL, &out, NULL, &err);
    CHECK_MSG(s == HL_ERR_INVALID_ARG && strstr(err.msg, "--rank") && !out, "got \"%s\"", err.msg);
    printf("refused (svd without rank): %s\n", err.msg);
    s = hl_adapter_combine(g_model, g_pair, g_pair_w, 0, HL_COMBINE_CAT, 0, NULL, &out, NULL, &err);
    CHECK_MSG(s == HL_ERR_INVALID_ARG && strstr(err.msg, "no adapters") && !out, "got \"%s\"", err.msg);
    printf("refused (zero adapters): %s\n", err.msg);
    const float nanw[2] = {1.0f, NAN};
    s = hl_adapter_combine(g_model, g_pair, nanw, 2, HL_COMBINE_CAT, 0, NULL, &out, NULL, &err);
    CHECK_MSG(s == HL_ERR_INVALID_ARG && strstr(err.msg, "not finite") && !out, "got \"%s\"", err.msg);
}

/* Out of memory at every allocation in turn: a clean error, no result, no leak. */
static void test_nomem(void) {
    for (int method = 0; method < HL_COMBINE_METHOD_COUNT; method++) {
        const float wpos[2] = {1.0f, 0.5f};
        int failures = 0;
        for (long n = 0; n < 100000; n++) {
            hl_error err = {0};
            hl_adapter *out = NULL;
            hl_combine_report rep;
            hl_alloc_fail_after(n);
            hl_status s = hl_adapter_combine(g_model, g_pair, wpos, 2, (hl_combine_method)method, 3, NULL, &out, &rep,
                                             &err);
            hl_alloc_fail_after(-1);
            if (s == HL_OK) {
                hl_combine_report_free(&rep);
                hl_adapter_free(out);
                break;
            }
            failures++;
            CHECK_MSG(s == HL_ERR_NOMEM && !out && !rep.tensors, "%s, fail after %ld: %s \"%s\"",
                      hl_combine_method_name((hl_combine_method)method), n, hl_status_name(s), err.msg);
        }
        printf("%s: survived %d injected allocation failures\n", hl_combine_method_name((hl_combine_method)method),
               failures);
        CHECK(failures > 10);
    }
}

/* The CLI: usage errors exit non-zero; a good run writes the library's bytes. */
static int run_cli(const char *args) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "\"%s\" combine %s >test_combine_cli.log 2>&1", HL_CLI_PATH, args);
    int rc = system(cmd);
    return rc;
}

static void test_cli(void) {
    char args[3072];
    const char *base = shared_path(MODEL), *r4 = shared_path(LORA_R4), *plain = shared_path(PEFT_PLAIN);
    snprintf(args, sizeof args, "-m \"%s\" --method svd --rank 3 --lora \"%s\" --lora-weighted \"%s:-0.5\" -o "
             "test_combine_cli.gguf --peft-out test_combine_peft", base, r4, plain);
    CHECK_MSG(run_cli(args) == 0, "CLI svd run failed (see test_combine_cli.log)");
    size_t n = 0;
    char *log = read_whole("test_combine_cli.log", &n);
    CHECK(log && strstr(log, "total") && strstr(log, "blk.0.attn_q.weight"));
    free(log);
    hl_error err = {0};
    hl_adapter *lib = combine_ok(g_pair, g_pair_w, 2, HL_COMBINE_SVD, 3, NULL);
    CHECK_OK(hl_adapter_save_gguf(lib, "test_combine_lib.gguf", &err), &err);
    CHECK_MSG(files_equal("test_combine_cli.gguf", "test_combine_lib.gguf"), "CLI and library outputs differ");
    /* the PEFT copy reloads to the same weights */
    hl_adapter *peft = NULL;
    CHECK_OK(hl_adapter_load("test_combine_peft", g_model, 0, &peft, &err), &err);
    if (peft) {
        CHECK(peft->n_weights == lib->n_weights);
        for (int32_t i = 0; i < lib->n_weights; i++) {
            const hl_lora_weight *x = &lib->w[i], *y = hl_adapter_find(peft, x->layer, x->target);
            CHECK(y && y->rank == x->rank && hl_lora_weight_scale(peft, y) == 1.0f);
            if (y) CHECK(!memcmp(x->A, y->A, sizeof(float) * (size_t)(x->rank * x->n_in)) &&
                         !memcmp(x->B, y->B, sizeof(float) * (size_t)(x->rank * x->n_out)));
        }
    }
    hl_adapter_free(peft);
    hl_adapter_free(lib);
    unlink("test_combine_cli.gguf");
    unlink("test_combine_lib.gguf");
    unlink("test_combine_peft/adapter_model.safetensors");
    unlink("test_combine_peft/adapter_config.json");
    rmdir("test_combine_peft");

    snprintf(args, sizeof args, "-m \"%s\" --method svd --lora \"%s\" -o test_combine_x.gguf", base, r4);
    CHECK(run_cli(args) != 0);
    log = read_whole("test_combine_cli.log", &n);
    CHECK_MSG(log && strstr(log, "--rank"), "svd without --rank: %s", log ? log : "(no log)");
    free(log);
    snprintf(args, sizeof args, "-m \"%s\" --method mean --lora \"%s\" -o test_combine_x.gguf", base, r4);
    CHECK(run_cli(args) != 0);
    log = read_whole("test_combine_cli.log", &n);
    CHECK_MSG(log && strstr(log, "unknown combine method"), "bad method: %s", log ? log : "(no log)");
    free(log);
    snprintf(args, sizeof args, "-m \"%s\" --method cat -o test_combine_x.gguf", base);
    CHECK(run_cli(args) != 0);
    snprintf(args, sizeof args, "-m \"%s\" --method linear --lora \"%s\" --lora-weighted \"%s:-1\" -o "
             "test_combine_x.gguf", base, r4, plain);
    CHECK(run_cli(args) != 0);
    CHECK(access("test_combine_x.gguf", F_OK) != 0);
    CHECK(run_cli("--help") == 0);
    unlink("test_combine_cli.log");
}

int main(void) {
    hl_error err = {0};
    hl_model *m = NULL;
    hl_adapter *a = NULL, *b = NULL;
    CHECK_OK(hl_model_load(shared_path(MODEL), NULL, &m, &err), &err);
    REQUIRE(m);
    CHECK_OK(hl_adapter_load(shared_path(LORA_R4), m, 0, &a, &err), &err);
    CHECK_OK(hl_adapter_load(shared_path(PEFT_PLAIN), m, 0, &b, &err), &err);
    REQUIRE(a && b);
    g_model = m;
    g_pair[0] = a;
    g_pair[1] = b;
    test_cat();
    test_linear();
    test_svd();
    test_deterministic();
    test_bad_usage();
    test_nomem();
    test_cli();
    hl_adapter_free(a);
    hl_adapter_free(b);
    hl_model_free(m);
    return hl_test_finish("test_combine");
}
