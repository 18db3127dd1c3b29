/* test_train_grad.c: LoRA training numerics against the PyTorch float64
 * reference (../shared/oracle/torch, variant attn_ffn): the loss and every
 * gradient at adapter_init, 10 AdamW steps at weight decay 0 and 0.01, a
 * finite-difference check, the fast kernels against their references, and
 * bit-identical gradients at 1 and 2 threads. */
#include "hyperlora.h"
#include "kernels/kernels.h"
#include "lora/adapter_io.h"
#include "train/optim.h"
#include "train/trainer.h"
#include "util/rng.h"
#include "model/model.h"
#include "test_util.h"
#include "train_fd.h"

#define TORCH "oracle/torch/ref/"
#define N_FLAT 21200

/* Canonical flat layout order of the reference: wq, wv, wo, w1, w2, w3. */
static const int flat_targets[6] = {HL_TARGET_Q, HL_TARGET_V, HL_TARGET_O, HL_TARGET_GATE, HL_TARGET_DOWN, HL_TARGET_UP};

/* Calls fn(weight, offset_of_A, offset_of_B) for each flat-layout block. */
static void flat_layout(const hl_adapter *a, void (*fn)(const hl_lora_weight *, int64_t, int64_t, void *), void *user) {
    int64_t off = 0;
    for (int l = 0; l < 5; l++)
        for (int k = 0; k < 6; k++) {
            const hl_lora_weight *w = hl_adapter_find(a, l, flat_targets[k]);
            REQUIRE(w);
            int64_t na = w->rank * w->n_in, nb = w->n_out * w->rank;
            fn(w, off, off + na, user);
            off += na + nb;
        }
    REQUIRE(off == N_FLAT);
}

typedef struct {
    const hl_trainer *tr;
    const hl_adapter *a;
    const double *ref;
    double worst_rel;
    int use_grad;
    const float *ref32;
    double worst_abs;
} cmp_ctx;

static void cmp_block(const hl_lora_weight *w, int64_t oa, int64_t ob, void *user) {
    cmp_ctx *c = user;
    int32_t i = (int32_t)(w - c->a->w);
    hl_param pa = hl_trainer_param(c->tr, 2 * i), pb = hl_trainer_param(c->tr, 2 * i + 1);
    const float *va = c->use_grad ? pa.grad : pa.value, *vb = c->use_grad ? pb.grad : pb.value;
    for (int part = 0; part < 2; part++) {
        const float *v = part ? vb : va;
        int64_t n = part ? pb.n : pa.n, off = part ? ob : oa;
        double maxref = 0, maxd = 0;
        for (int64_t e = 0; e < n; e++) {
            double r = c->ref ? c->ref[off + e] : c->ref32[off + e];
            if (fabs(r) > maxref) maxref = fabs(r);
            double d = fabs((double)v[e] - r);
            if (d > maxd) maxd = d;
        }
        if (maxd > c->worst_abs) c->worst_abs = maxd;
        double rel = maxref > 0 ? maxd / maxref : maxd;
        if (rel > c->worst_rel) c->worst_rel = rel;
    }
}

static hl_trainer *make_trainer(const hl_model *m, hl_adapter *a, int threads) {
    hl_trainer *tr;
    hl_error err = {0};
    hl_trainer_params p = {.batch = 4, .ctx = 32, .n_threads = threads, .dropout = 0, .seed = 1};
    REQUIRE(hl_trainer_init(m, a, &p, &tr, &err) == HL_OK);
    return tr;
}

static void test_kernels(void) {
    hl_rng rng;
    hl_rng_seed(&rng, 7);
    hl_pool *pool = hl_pool_init(2);
    int64_t T = 37, O = 45, K = 70;
    float *dy = malloc(sizeof(float) * T * O), *w = malloc(sizeof(float) * O * K);
    float *o1 = malloc(sizeof(float) * T * K), *o2 = malloc(sizeof(float) * T * K), *o3 = malloc(sizeof(float) * T * K);
    for (int64_t i = 0; i < T * O; i++) dy[i] = hl_rng_normal(&rng);
    for (int64_t i = 0; i < O * K; i++) w[i] = hl_rng_normal(&rng);
    hl_matmul_nn(pool, o1, dy, w, T, O, K, 1.0f, 0);
    hl_matmul_nn(NULL, o2, dy, w, T, O, K, 1.0f, 0);
    hl_matmul_nn_ref(o3, dy, w, T, O, K);
    double d = 0;
    for (int64_t i = 0; i < T * K; i++) d = fmax(d, fabs(o1[i] - o3[i]));
    CHECK(!memcmp(o1, o2, sizeof(float) * T * K));
    CHECK_MSG(d < 1e-4, "matmul_nn vs reference: %g", d);
    /* tn: G (O, K) = dyᵀ·x with x (T, K) = reuse o3 */
    float *g1 = calloc((size_t)(O * K), sizeof(float)), *g2 = malloc(sizeof(float) * O * K);
    hl_matmul_tn_acc(pool, g1, dy, o3, T, O, K);
    hl_matmul_tn_ref(g2, dy, o3, T, O, K);
    d = 0;
    for (int64_t i = 0; i < O * K; i++) d = fmax(d, fabs(g1[i] - g2[i]) / (1 + fabs(g2[i])));
    CHECK_MSG(d < 1e-5, "matmul_tn vs reference: %g", d);
    /* x·Wᵀ vs reference */
    float *x = malloc(sizeof(float) * T * K), *y1 = malloc(sizeof(float) * T * O), *y2 = malloc(sizeof(float) * T * O);
    for (int64_t i = 0; i < T * K; i++) x[i] = hl_rng_normal(&rng);
    hl_matmul(pool, y1, x, w, T, K, O);
    hl_matmul_ref(y2, x, w, T, K, O);
    d = 0;
    for (int64_t i = 0; i < T * O; i++) d = fmax(d, fabs(y1[i] - y2[i]));
    CHECK_MSG(d < 1e-4, "matmul vs reference: %g", d);
    /* each row of a batched matmul equals the single-row product bitwise */
    for (int64_t t = 0; t < T; t++) {
        float row[64];
        hl_matmul(NULL, row, x + t * K, w, 1, K, O);
        CHECK(!memcmp(row, y1 + t * O, sizeof(float) * O));
    }
    free(dy); free(w); free(o1); free(o2); free(o3); free(g1); free(g2); free(x); free(y1); free(y2);
    /* dY·W blocked over a long reduction (O > the block) keeps each element's
     * fused multiply-add chain: bitwise equal to the plain chain, for the plain,
     * scaled and accumulating forms, at 1 and 2 threads. */
    int64_t T2 = 9, O2 = 700, K2 = 50;
    float *dy2 = malloc(sizeof(float) * T2 * O2), *w2 = malloc(sizeof(float) * O2 * K2);
    float *want = malloc(sizeof(float) * T2 * K2), *got = malloc(sizeof(float) * T2 * K2);
    for (int64_t i = 0; i < T2 * O2; i++) dy2[i] = hl_rng_normal(&rng);
    for (int64_t i = 0; i < O2 * K2; i++) w2[i] = hl_rng_normal(&rng);
    for (int64_t t = 0; t < T2; t++)
        for (int64_t k = 0; k < K2; k++) {
            float acc = 0;
            for (int64_t o = 0; o < O2; o++) acc = fmaf(dy2[t * O2 + o], w2[o * K2 + k], acc);
            want[t * K2 + k] = acc;
        }
    for (int th = 0; th < 2; th++) {
        hl_pool *p2 = hl_pool_init(th + 1);
        hl_matmul_nn(p2, got, dy2, w2, T2, O2, K2, 1.0f, 0);
        CHECK_MSG(!memcmp(got, want, sizeof(float) * T2 * K2), "blocked dY·W differs from the plain chain (%d threads)", th + 1);
        for (int64_t i = 0; i < T2 * K2; i++) got[i] = 1.0f;
        hl_matmul_nn(p2, got, dy2, w2, T2, O2, K2, 0.5f, 1);
        int same = 1;
        for (int64_t i = 0; i < T2 * K2; i++) same &= got[i] == 1.0f + 0.5f * want[i];
        CHECK_MSG(same, "blocked, accumulating dY·W differs (%d threads)", th + 1);
        hl_pool_free(p2);
    }
    free(dy2); free(w2); free(want); free(got);
    /* Every tile shape and tail of hl_matmul gives each element exactly the
     * canonical hl_dot, plain and accumulating, for reductions that are and
     * are not a multiple of the lane count. */
    const int64_t Ks[] = {64, 96, 70, 8};
    for (size_t ki = 0; ki < sizeof Ks / sizeof Ks[0]; ki++) {
        const int64_t T3 = 37, O3 = 45, K3 = Ks[ki];
        float *x3 = malloc(sizeof(float) * T3 * K3), *w3 = malloc(sizeof(float) * O3 * K3);
        float *y3 = malloc(sizeof(float) * T3 * (O3 + 2)), *ya = malloc(sizeof(float) * T3 * (O3 + 2));
        for (int64_t i = 0; i < T3 * K3; i++) x3[i] = hl_rng_normal(&rng);
        for (int64_t i = 0; i < O3 * K3; i++) w3[i] = hl_rng_normal(&rng);
        for (int64_t i = 0; i < T3 * (O3 + 2); i++) ya[i] = 0.25f * (float)(i % 7);
        hl_matmul_strided(pool, y3, O3 + 2, x3, w3, T3, K3, O3, 1.0f, 0);
        hl_matmul_strided(pool, ya, O3 + 2, x3, w3, T3, K3, O3, 0.5f, 1);
        int same = 1;
        for (int64_t t = 0; t < T3; t++)
            for (int64_t o = 0; o < O3; o++) {
                float d = hl_dot(x3 + t * K3, w3 + o * K3, K3);
                same &= y3[t * (O3 + 2) + o] == d;
                same &= ya[t * (O3 + 2) + o] == 0.25f * (float)((t * (O3 + 2) + o) % 7) + 0.5f * d;
            }
        CHECK_MSG(same, "hl_matmul differs from hl_dot per element (K = %lld)", (long long)K3);
        free(x3); free(w3); free(y3); free(ya);
    }
    hl_pool_free(pool);
}

/* The packed-panel kernels: every element of every tile shape (6- or
 * 12-token prompt tiles and their tails, 144-token blocks, 4-panel and
 * single-panel decode tiles, the partial last panel, K blocks of 256 and
 * their remainder) is
 * bitwise hl_dot_seq's chain at 1 and 2 threads; nothing past column O is
 * written; a three-part group matches too; K = 0 gives zeros. */
static void test_packed_matmul(void) {
    hl_rng rng;
    hl_rng_seed(&rng, 11);
    hl_pool *pools[2] = {hl_pool_init(1), hl_pool_init(2)};
    const int64_t Ks[] = {64, 70, 300, 513, 1};
    const int64_t Os[] = {16, 37, 5, 80};
    const int64_t Ts[] = {1, 2, 5, 6, 13, 40, 150}; /* 150: more than one 144-token block */
    for (size_t ki = 0; ki < sizeof Ks / sizeof Ks[0]; ki++)
        for (size_t oi = 0; oi < sizeof Os / sizeof Os[0]; oi++) {
            const int64_t K = Ks[ki], O = Os[oi], ld = O + 3, Tmax = 150;
            float *x = malloc(sizeof(float) * Tmax * K), *w = malloc(sizeof(float) * O * K);
            float *wp = malloc(sizeof(float) * hl_packed_floats(O, K)), *y = malloc(sizeof(float) * Tmax * ld);
            for (int64_t i = 0; i < Tmax * K; i++) x[i] = hl_rng_normal(&rng);
            for (int64_t i = 0; i < O * K; i++) w[i] = hl_rng_normal(&rng);
            hl_pack_weights(wp, w, O, K);
            for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++) {
                const int64_t T = Ts[ti];
                for (int th = 0; th < 2; th++) {
                    for (int64_t i = 0; i < Tmax * ld; i++) y[i] = -7.0f;
                    hl_matmul_packed(pools[th], y, ld, x, wp, T, K, O);
                    int same = 1, untouched = 1;
                    for (int64_t t = 0; t < T; t++) {
                        for (int64_t o = 0; o < O; o++) {
                            float d = hl_dot_seq(x + t * K, w + o * K, K);
                            same &= !memcmp(&d, &y[t * ld + o], sizeof d);
                        }
                        for (int64_t o = O; o < ld; o++) untouched &= y[t * ld + o] == -7.0f;
                    }
                    for (int64_t i = T * ld; i < Tmax * ld; i++) untouched &= y[i] == -7.0f;
                    CHECK_MSG(same, "packed x·Wᵀ differs from hl_dot_seq (T %lld, K %lld, O %lld, %d threads)",
                              (long long)T, (long long)K, (long long)O, th + 1);
                    CHECK_MSG(untouched, "packed x·Wᵀ wrote outside its output (T %lld, O %lld)", (long long)T,
                              (long long)O);
                }
            }
            free(x); free(w); free(wp); free(y);
        }
    /* The three-part group with different row counts per part. */
    {
        const int64_t T = 9, K = 33, Op[3] = {21, 16, 50};
        float *x = malloc(sizeof(float) * T * K), *out = malloc(sizeof(float) * T * 87), *ref = malloc(sizeof(float) * T * 87);
        float *w[3], *wp[3];
        for (int64_t i = 0; i < T * K; i++) x[i] = hl_rng_normal(&rng);
        hl_matmul_part parts[3];
        int64_t col = 0;
        for (int i = 0; i < 3; i++) {
            w[i] = malloc(sizeof(float) * Op[i] * K);
            wp[i] = malloc(sizeof(float) * hl_packed_floats(Op[i], K));
            for (int64_t e = 0; e < Op[i] * K; e++) w[i][e] = hl_rng_normal(&rng);
            hl_pack_weights(wp[i], w[i], Op[i], K);
            parts[i] = (hl_matmul_part){out + col, 87, wp[i], Op[i]};
            for (int64_t t = 0; t < T; t++)
                for (int64_t o = 0; o < Op[i]; o++) ref[t * 87 + col + o] = hl_dot_seq(x + t * K, w[i] + o * K, K);
            col += Op[i];
        }
        hl_matmul_packed_group(pools[1], x, T, K, parts, 3);
        CHECK_MSG(!memcmp(out, ref, sizeof(float) * T * 87), "packed three-part group differs from hl_dot_seq");
        for (int i = 0; i < 3; i++) { free(w[i]); free(wp[i]); }
        free(x); free(out); free(ref);
    }
    /* K = 0: an empty sum. */
    float yz[2 * 5] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, xz[1] = {0}, wz[1] = {0};
    hl_matmul_packed(pools[0], yz, 5, xz, wz, 2, 0, 5);
    int zeros = 1;
    for (int i = 0; i < 10; i++) zeros &= yz[i] == 0.0f;
    CHECK_MSG(zeros, "packed x·Wᵀ with K = 0 is not zero");
    hl_pool_free(pools[0]);
    hl_pool_free(pools[1]);
}

/* dX = dY·W from packed panels: every element bitwise the documented order
 * (blocks of 64 panels, 16 lanes of o, hl_hsum16's tree, block sums added in
 * order), written out here from the row-major W; close to a double-precision
 * sum; plain and accumulating; 1 and 2 threads; 8-column tiles and their
 * tails, 3-token tiles and 48-token blocks. */
static float tree16(const float l[16]) {
    float h[8];
    for (int j = 0; j < 8; j++) h[j] = l[j] + l[j + 8];
    float a = h[0] + h[4], b = h[1] + h[5], c = h[2] + h[6], d = h[3] + h[7];
    return (a + c) + (b + d);
}

static void test_packed_nn(void) {
    hl_rng rng;
    hl_rng_seed(&rng, 12);
    hl_pool *pools[2] = {hl_pool_init(1), hl_pool_init(2)};
    const int64_t Os[] = {16, 37, 1030, 5};
    const int64_t Ks[] = {8, 13, 64, 70};
    const int64_t Ts[] = {1, 3, 7, 50, 100}; /* 100: more than one 96-token pass */
    double worst = 0;
    for (size_t oi = 0; oi < sizeof Os / sizeof Os[0]; oi++)
        for (size_t ki = 0; ki < sizeof Ks / sizeof Ks[0]; ki++) {
            const int64_t O = Os[oi], K = Ks[ki], Tmax = 100, n_panels = (O + 15) / 16;
            float *w = malloc(sizeof(float) * O * K), *wp = malloc(sizeof(float) * hl_packed_floats(O, K));
            float *dy = malloc(sizeof(float) * Tmax * O), *got = malloc(sizeof(float) * Tmax * K);
            float *want = malloc(sizeof(float) * Tmax * K);
            for (int64_t i = 0; i < O * K; i++) w[i] = hl_rng_normal(&rng);
            for (int64_t i = 0; i < Tmax * O; i++) dy[i] = hl_rng_normal(&rng);
            hl_pack_weights(wp, w, O, K);
            for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++)
                for (int acc = 0; acc < 2; acc++) {
                    const int64_t T = Ts[ti];
                    for (int64_t t = 0; t < T; t++)
                        for (int64_t k = 0; k < K; k++) {
                            float v = acc ? 0.5f * (float)((t + k) % 5) : 0.0f;
                            double ref = v, mag = fabs(v);
                            for (int64_t pb = 0; pb < n_panels; pb += 64) {
                                float l[16] = {0};
                                for (int64_t p = pb; p < pb + 64 && p < n_panels; p++)
                                    for (int r = 0; r < 16; r++) {
                                        int64_t o = p * 16 + r;
                                        l[r] = fmaf(o < O ? dy[t * O + o] : 0.0f, o < O ? w[o * K + k] : 0.0f, l[r]);
                                    }
                                v = (pb == 0 && !acc) ? tree16(l) : v + tree16(l);
                            }
                            for (int64_t o = 0; o < O; o++) {
                                ref += (double)dy[t * O + o] * w[o * K + k];
                                mag += fabs((double)dy[t * O + o] * w[o * K + k]);
                            }
                            want[t * K + k] = v;
                            worst = fmax(worst, fabs(ref - v) / mag); /* rounding error relative to Σ|terms| */
                        }
                    for (int th = 0; th < 2; th++) {
                        for (int64_t t = 0; t < T; t++)
                            for (int64_t k = 0; k < K; k++) got[t * K + k] = acc ? 0.5f * (float)((t + k) % 5) : -9.0f;
                        hl_matmul_packed_nn(pools[th], got, dy, wp, T, O, K, acc);
                        CHECK_MSG(!memcmp(got, want, sizeof(float) * T * K),
                                  "packed dY·W differs from its order (T %lld, O %lld, K %lld, acc %d, %d threads)",
                                  (long long)T, (long long)O, (long long)K, acc, th + 1);
                    }
                }
            free(w); free(wp); free(dy); free(got); free(want);
        }
    /* O = 0: an empty sum stores zeros, and adds nothing when accumulating. */
    float z[6] = {3, 3, 3, 3, 3, 3}, none[1] = {0};
    hl_matmul_packed_nn(pools[1], z, none, none, 2, 0, 3, 1);
    int kept = 1, zeros = 1;
    for (int i = 0; i < 6; i++) kept &= z[i] == 3.0f;
    hl_matmul_packed_nn(pools[1], z, none, none, 2, 0, 3, 0);
    for (int i = 0; i < 6; i++) zeros &= z[i] == 0.0f;
    CHECK_MSG(kept && zeros, "packed dY·W with O = 0 is not an empty sum");
    printf("packed dY·W vs double: worst |diff| / sum |terms| = %.3g\n", worst);
    CHECK(worst < 1e-6); /* a few f32 roundings (6e-8 each) */
    hl_pool_free(pools[0]);
    hl_pool_free(pools[1]);
}

/* The OpenBLAS products used by training: against the plain references, and
 * bitwise the same at 1 and 2 threads (the tile grid depends on shapes only).
 * Shapes large enough to be cut into several tiles, with ragged edges. */
static void test_blas_gemm(void) {
    hl_rng rng;
    hl_rng_seed(&rng, 11);
    const int64_t T = 300, K = 70, O = 290;
    float *x = malloc(sizeof(float) * T * K), *w = malloc(sizeof(float) * O * K), *dy = malloc(sizeof(float) * T * O);
    float *y[2], *dx[2], *g[2], *ref = malloc(sizeof(float) * T * O * 2);
    for (int64_t i = 0; i < T * K; i++) x[i] = hl_rng_normal(&rng);
    for (int64_t i = 0; i < O * K; i++) w[i] = hl_rng_normal(&rng);
    for (int64_t i = 0; i < T * O; i++) dy[i] = hl_rng_normal(&rng);
    for (int th = 0; th < 2; th++) {
        hl_pool *pool = hl_pool_init(th + 1);
        y[th] = malloc(sizeof(float) * T * (O + 3));
        dx[th] = malloc(sizeof(float) * T * K);
        g[th] = calloc((size_t)(O * K), sizeof(float));
        /* strided output (ldo = O + 3): stored, then += 0.5·x·Wᵀ */
        hl_gemm_nt(pool, y[th], O + 3, x, w, T, K, O, 1.0f, 0);
        hl_gemm_nt(pool, y[th], O + 3, x, w, T, K, O, 0.5f, 1);
        hl_gemm_nn(pool, dx[th], dy, w, T, O, K, 2.0f, 0);
        hl_gemm_tn_acc(pool, g[th], dy, x, T, O, K);
        hl_gemm_tn_acc(pool, g[th], dy, x, T, O, K);
        hl_pool_free(pool);
    }
    double d = 0;
    hl_matmul_ref(ref, x, w, T, K, O);
    for (int64_t t = 0; t < T; t++)
        for (int64_t o = 0; o < O; o++) d = fmax(d, fabs(y[0][t * (O + 3) + o] - 1.5 * ref[t * O + o]));
    CHECK_MSG(d < 1e-4, "gemm_nt vs reference: %g", d);
    hl_matmul_nn_ref(ref, dy, w, T, O, K);
    d = 0;
    for (int64_t i = 0; i < T * K; i++) d = fmax(d, fabs(dx[0][i] - 2 * ref[i]));
    CHECK_MSG(d < 1e-3, "gemm_nn vs reference: %g", d);
    d = 0; /* G = 2·dyᵀ·x against a double-precision sum, relative to max |G| */
    double gmax = 0;
    for (int64_t o = 0; o < O; o++)
        for (int64_t k = 0; k < K; k++) {
            double acc = 0;
            for (int64_t t = 0; t < T; t++) acc += (double)dy[t * O + o] * x[t * K + k];
            d = fmax(d, fabs(g[0][o * K + k] - 2 * acc));
            gmax = fmax(gmax, fabs(2 * acc));
        }
    CHECK_MSG(d / gmax < 1e-6, "gemm_tn vs reference: %g of max %g", d, gmax);
    int same = 1;
    for (int64_t t = 0; t < T; t++) same &= !memcmp(y[0] + t * (O + 3), y[1] + t * (O + 3), sizeof(float) * O);
    CHECK_MSG(same, "gemm_nt differs between 1 and 2 threads");
    CHECK_MSG(!memcmp(dx[0], dx[1], sizeof(float) * T * K), "gemm_nn differs between 1 and 2 threads");
    CHECK_MSG(!memcmp(g[0], g[1], sizeof(float) * O * K), "gemm_tn differs between 1 and 2 threads");
    for (int th = 0; th < 2; th++) { free(y[th]); free(dx[th]); free(g[th]); }
    /* the split-reduction form (LM head): long O, small output */
    const int64_t T2 = 20, O2 = 5000, K2 = 24;
    float *dy2 = malloc(sizeof(float) * T2 * O2), *w2 = malloc(sizeof(float) * O2 * K2);
    float *scratch = malloc(sizeof(float) * HL_GEMM_SPLIT_K * T2 * K2), *s1 = malloc(sizeof(float) * T2 * K2);
    float *s2 = malloc(sizeof(float) * T2 * K2);
    for (int64_t i = 0; i < T2 * O2; i++) dy2[i] = hl_rng_normal(&rng);
    for (int64_t i = 0; i < O2 * K2; i++) w2[i] = hl_rng_normal(&rng);
    for (int th = 0; th < 2; th++) {
        hl_pool *pool = hl_pool_init(th + 1);
        float *o = th ? s2 : s1;
        for (int64_t i = 0; i < T2 * K2; i++) o[i] = 1.0f;
        hl_gemm_nn_split(pool, o, dy2, w2, T2, O2, K2, 0.5f, 1, scratch);
        hl_pool_free(pool);
    }
    d = 0;
    double smax = 0;
    for (int64_t t = 0; t < T2; t++)
        for (int64_t k = 0; k < K2; k++) {
            double acc = 0;
            for (int64_t o = 0; o < O2; o++) acc += (double)dy2[t * O2 + o] * w2[o * K2 + k];
            d = fmax(d, fabs(s1[t * K2 + k] - (1.0 + 0.5 * acc)));
            smax = fmax(smax, fabs(0.5 * acc));
        }
    CHECK_MSG(d / smax < 1e-6, "gemm_nn_split vs reference: %g of max %g", d, smax);
    CHECK_MSG(!memcmp(s1, s2, sizeof(float) * T2 * K2), "gemm_nn_split differs between 1 and 2 threads");
    free(dy2); free(w2); free(scratch); free(s1); free(s2);
    free(x); free(w); free(dy); free(ref);
}

/* Training attention on OpenBLAS against the plain per-element reference,
 * with grouped heads (H 4, Hkv 2) and T not a multiple of the row block, and
 * bitwise the same at 1 and 2 threads; once with one sequence per row, once
 * with rows of packed documents (1, 2 and 6 per row, some longer than a row
 * block), where each document must also match the same document run alone. */
static void test_attention_train_case(const int32_t *pos, const char *what) {
    hl_rng rng;
    hl_rng_seed(&rng, 3);
    const int64_t B = 3, T = 150, H = 4, Hkv = 2, D = 16, N = B * T, C = H * D, KV = Hkv * D;
    float *q = malloc(sizeof(float) * N * C), *k = malloc(sizeof(float) * N * KV), *v = malloc(sizeof(float) * N * KV);
    float *dout = malloc(sizeof(float) * N * C);
    for (int64_t i = 0; i < N * C; i++) { q[i] = hl_rng_normal(&rng); dout[i] = hl_rng_normal(&rng); }
    for (int64_t i = 0; i < N * KV; i++) { k[i] = hl_rng_normal(&rng); v[i] = hl_rng_normal(&rng); }
    float *out[3], *probs[3], *dq[3], *dk[3], *dv[3];
    for (int w = 0; w < 3; w++) { /* 0: reference, 1: 1 thread, 2: 2 threads */
        out[w] = malloc(sizeof(float) * N * C);
        probs[w] = malloc(sizeof(float) * B * H * T * T);
        dq[w] = malloc(sizeof(float) * N * C);
        dk[w] = malloc(sizeof(float) * N * KV);
        dv[w] = malloc(sizeof(float) * N * KV);
        if (w == 0) {
            hl_attention_train_ref(out[0], probs[0], q, k, v, pos, B, T, H, Hkv, D);
            hl_attention_train_backward_ref(dq[0], dk[0], dv[0], dout, probs[0], q, k, v, pos, B, T, H, Hkv, D);
            continue;
        }
        hl_pool *pool = hl_pool_init(w);
        float *scratch = malloc(sizeof(float) * 2 * w * T * T);
        for (int64_t i = 0; i < N * KV; i++) dk[w][i] = dv[w][i] = NAN; /* must be overwritten */
        for (int64_t i = 0; i < 2 * w * T * T; i++) scratch[i] = NAN; /* the kernels must not read stale scratch */
        hl_attention_train(pool, out[w], q, k, v, pos, B, T, H, Hkv, D, scratch);
        for (int64_t i = 0; i < 2 * w * T * T; i++) scratch[i] = NAN;
        hl_attention_train_backward(pool, dq[w], dk[w], dv[w], dout, q, k, v, pos, B, T, H, Hkv, D, scratch);
        free(scratch);
        hl_pool_free(pool);
    }
    struct { const char *name; float **x; int64_t n; } cmp[] = {
        {"out", out, N * C}, {"dq", dq, N * C}, {"dk", dk, N * KV}, {"dv", dv, N * KV}};
    for (size_t c = 0; c < sizeof cmp / sizeof cmp[0]; c++) {
        double d = 0, mx = 0;
        for (int64_t i = 0; i < cmp[c].n; i++) {
            d = fmax(d, fabs((double)cmp[c].x[1][i] - cmp[c].x[0][i]));
            if (isnan(cmp[c].x[1][i])) d = INFINITY;
            mx = fmax(mx, fabs((double)cmp[c].x[0][i]));
        }
        CHECK_MSG(d <= 1e-5 * mx, "attention %s (%s) vs reference: max diff %g of max %g", cmp[c].name, what, d, mx);
        CHECK_MSG(!memcmp(cmp[c].x[1], cmp[c].x[2], sizeof(float) * cmp[c].n),
                  "attention %s (%s) differs between 1 and 2 threads", cmp[c].name, what);
    }
    /* Each document alone (one row of its own length) gives what it got packed. */
    int64_t n_docs = 0;
    double worst = 0;
    for (int64_t b = 0; pos && b < B; b++)
        for (int64_t s0 = 0, s1; s0 < T; s0 = s1, n_docs++) {
            for (s1 = s0 + 1; s1 < T && pos[b * T + s1] != 0; s1++) {}
            int64_t len = s1 - s0, r = b * T + s0;
            float *o = malloc(sizeof(float) * len * C);
            float *g[3] = {malloc(sizeof(float) * len * C), malloc(sizeof(float) * len * KV), malloc(sizeof(float) * len * KV)};
            float *scratch = malloc(sizeof(float) * 2 * len * len);
            hl_pool *pool = hl_pool_init(1);
            hl_attention_train(pool, o, q + r * C, k + r * KV, v + r * KV, NULL, 1, len, H, Hkv, D, scratch);
            hl_attention_train_backward(pool, g[0], g[1], g[2], dout + r * C, q + r * C, k + r * KV, v + r * KV,
                                        NULL, 1, len, H, Hkv, D, scratch);
            const float *packed[4] = {out[1] + r * C, dq[1] + r * C, dk[1] + r * KV, dv[1] + r * KV};
            const float *alone[4] = {o, g[0], g[1], g[2]};
            const int64_t n[4] = {len * C, len * C, len * KV, len * KV};
            for (int a = 0; a < 4; a++) {
                double d = 0, mx = 0;
                for (int64_t i = 0; i < n[a]; i++) {
                    d = fmax(d, fabs((double)packed[a][i] - alone[a][i]));
                    mx = fmax(mx, fabs((double)alone[a][i]));
                }
                worst = fmax(worst, d / mx);
            }
            hl_pool_free(pool);
            free(o); free(g[0]); free(g[1]); free(g[2]); free(scratch);
        }
    if (pos) {
        printf("attention, %lld packed documents vs each alone: worst max|diff| / max|alone| %.3g\n",
               (long long)n_docs, worst);
        CHECK_MSG(worst <= 1e-6, "packed attention vs each document alone: %g", worst);
    }
    for (int w = 0; w < 3; w++) { free(out[w]); free(probs[w]); free(dq[w]); free(dk[w]); free(dv[w]); }
    free(q); free(k); free(v); free(dout);
}

static void test_attention_train(void) {
    test_attention_train_case(NULL, "one sequence per row");
    /* rows of 1, 2 and 6 documents (T 150): 150 | 70 + 80 | 1 + 5 + 64 + 65 + 10 + 5 */
    static const int lens[3][6] = {{150}, {70, 80}, {1, 5, 64, 65, 10, 5}};
    int32_t pos[3 * 150];
    for (int b = 0; b < 3; b++) {
        int t = 0;
        for (int d = 0; d < 6 && lens[b][d]; d++)
            for (int i = 0; i < lens[b][d]; i++) pos[b * 150 + t++] = i;
        REQUIRE(t == 150);
    }
    test_attention_train_case(pos, "packed documents");
}

/* Table RoPE against the double-precision rotation, and its inverse undoing
 * it, for head shapes whose loops the compiler vectorises differently. */
static void test_rope_table(void) {
    hl_rng rng;
    hl_rng_seed(&rng, 9);
    const int64_t shapes[][2] = {{3, 48}, {8, 8}, {2, 6}, {6, 64}}; /* (heads, D) */
    const int64_t n_pos = 300;
    double worst = 0, worst_back = 0;
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        const int64_t H = shapes[k][0], D = shapes[k][1];
        float *cs = malloc(sizeof(float) * n_pos * D), a[512], b[512], orig[512];
        hl_rope_table(cs, n_pos, D, 10000.0f);
        for (int64_t pos = 0; pos < n_pos; pos += 7) {
            for (int64_t i = 0; i < H * D; i++) a[i] = b[i] = orig[i] = (float)hl_rng_normal(&rng);
            hl_rope_ref(a, H, D, pos, 10000.0f);
            hl_rope_apply(b, H, D, cs + pos * D, 0);
            for (int64_t i = 0; i < H * D; i++) worst = fmax(worst, fabs(a[i] - b[i]));
            hl_rope_apply(b, H, D, cs + pos * D, 1);
            for (int64_t i = 0; i < H * D; i++) worst_back = fmax(worst_back, fabs(b[i] - orig[i]));
        }
        free(cs);
    }
    printf("table RoPE vs double: max |diff| %.3g; inverse after forward: %.3g\n", worst, worst_back);
    CHECK_MSG(worst < 2e-6, "table RoPE vs the double reference: %g", worst);
    CHECK_MSG(worst_back < 2e-6, "inverse RoPE does not undo the rotation: %g", worst_back);
}

/* The cross-entropy's exp-and-sum: the vector path equals the scalar
 * reference bit for bit, and both are within 2 float ulps of libm's exp. */
static void test_exp_sum(void) {
    hl_rng rng;
    hl_rng_seed(&rng, 5);
    const int64_t n = 32003; /* a vocabulary-sized row with a ragged tail */
    float *x = malloc(sizeof(float) * n), *e1 = malloc(sizeof(float) * n), *e2 = malloc(sizeof(float) * n);
    for (int64_t i = 0; i < n; i++) x[i] = 12.0f * (float)hl_rng_normal(&rng);
    x[3] = -INFINITY;
    const float mx = 60.0f;
    x[10] = mx; /* the row's maximum: exp(0) = 1 */
    x[n - 1] = mx - 85.9f;
    x[n - 2] = mx - 86.1f; /* below the cut: 0 */
    for (int64_t i = 0; i < n; i++) x[i] = x[i] > mx ? mx : x[i];
    double s1 = hl_exp_sum(e1, x, n, mx), s2 = hl_exp_sum_ref(e2, x, n, mx);
    CHECK_MSG(s1 == s2 && !memcmp(e1, e2, sizeof(float) * n), "vector exp_sum differs from the scalar reference");
    CHECK(hl_exp_sum(NULL, x, n, mx) == s1);
    double worst = 0, want = 0;
    for (int64_t i = 0; i < n; i++) {
        double ex = exp((double)(x[i] - mx));
        want += ex;
        if (x[i] - mx >= -86.0f) worst = fmax(worst, fabs(e1[i] - ex) / ex);
        else CHECK(e1[i] == 0.0f);
    }
    printf("exp_sum: worst relative error vs exp() %.3g, sum %.17g vs %.17g\n", worst, s1, want);
    CHECK_MSG(worst < 2.4e-7, "exp_sum relative error %g", worst);
    CHECK(fabs(s1 - want) / want < 1e-7 && e1[10] == 1.0f);
    /* the element-wise exp over the whole float range */
    for (int64_t i = 0; i < n; i++) x[i] = 40.0f * (float)hl_rng_normal(&rng);
    x[0] = 88.5f; x[1] = -90.0f; x[2] = NAN; x[3] = 87.9f; x[4] = 0.0f;
    hl_exp(e1, x, n);
    hl_exp_ref(e2, x, n);
    CHECK_MSG(!memcmp(e1, e2, sizeof(float) * n), "vector exp differs from the scalar reference");
    CHECK(isinf(e1[0]) && e1[1] == 0.0f && e1[2] == 0.0f && isfinite(e1[3]) && e1[4] == 1.0f);
    worst = 0;
    for (int64_t i = 0; i < n; i++)
        if (x[i] >= -86.0f && x[i] <= 88.0f) worst = fmax(worst, fabs(e1[i] - exp((double)x[i])) / exp((double)x[i]));
    CHECK_MSG(worst < 2.4e-7, "exp relative error %g", worst);
    /* SwiGLU (which uses it) against the double-precision libm reference */
    float *up = malloc(sizeof(float) * n), *d = malloc(sizeof(float) * n), *ga = malloc(sizeof(float) * n);
    float *gb = malloc(sizeof(float) * n), *ua = malloc(sizeof(float) * n), *ub = malloc(sizeof(float) * n);
    for (int64_t i = 0; i < n; i++) {
        x[i] = 6.0f * (float)hl_rng_normal(&rng);
        up[i] = (float)hl_rng_normal(&rng);
        d[i] = (float)hl_rng_normal(&rng);
    }
    hl_swiglu(e1, x, up, n);
    hl_swiglu_ref(e2, x, up, n);
    hl_swiglu_backward(ga, ua, x, up, d, n);
    hl_swiglu_backward_ref(gb, ub, x, up, d, n);
    /* per output: max |diff| / max |reference| (the gradient crosses zero near g = -1.28,
     * where an element-wise relative error only measures the cancellation) */
    const float *got[3] = {e1, ga, ua}, *ref3[3] = {e2, gb, ub};
    double ws = 0;
    for (int a = 0; a < 3; a++) {
        double md = 0, mr = 0;
        for (int64_t i = 0; i < n; i++) {
            md = fmax(md, fabs(got[a][i] - ref3[a][i]));
            mr = fmax(mr, fabs(ref3[a][i]));
        }
        ws = fmax(ws, md / mr);
    }
    printf("SwiGLU vs double reference: worst max|diff| / max|ref| %.3g\n", ws);
    CHECK_MSG(ws < 1e-6, "SwiGLU vs the double reference: %g", ws);
    free(up); free(d); free(ga); free(gb); free(ua); free(ub);
    free(x); free(e1); free(e2);
}

/* Full-parameter mode (pretraining): every tensor kind against central finite
 * differences on a tiny random model, and determinism across threads. Tied:
 * one table for the embeddings and the head, whose gradient sums both uses
 * (finite differences perturb both at once), and no output.weight param. */
static void test_full_mode(int tied) {
    hl_error err = {0};
    hl_model_config c = {.dim = 16, .hidden_dim = 24, .n_layers = 2, .n_heads = 2, .n_kv_heads = 1, .seq_len = 16,
                         .tied_output = tied};
    hl_model *m = NULL;
    CHECK_OK(hl_model_init_random(&c, shared_path("models/stories260K/tok512.bin"), 5, &m, &err), &err);
    REQUIRE(m);
    /* bigger weights than the init so that gradients are not tiny */
    hl_trainer_params p = {.full = 1, .batch = 2, .ctx = 8, .n_threads = 1, .seed = 1};
    hl_trainer *t = NULL;
    CHECK_OK(hl_trainer_init(m, NULL, &p, &t, &err), &err);
    REQUIRE(t);
    CHECK(hl_model_get_config(m)->tied_output == tied && (m->output == m->token_embd) == tied);
    int has_output = 0;
    for (int32_t i = 0; i < hl_trainer_n_params(t); i++) has_output |= !strcmp(hl_trainer_param(t, i).name, "output.weight");
    CHECK(has_output == !tied);
    int32_t tok[2 * 9];
    hl_rng rng;
    hl_rng_seed(&rng, 11);
    for (int i = 0; i < 18; i++) tok[i] = 3 + (int32_t)hl_rng_below(&rng, 500);
    for (int32_t i = 0; i < hl_trainer_n_params(t); i++) {
        hl_param prm = hl_trainer_param(t, i);
        for (int64_t e = 0; e < prm.n; e++) prm.value[e] += 0.3f * hl_rng_normal(&rng) * (prm.decay ? 1.0f : 0.5f);
    }
    double loss;
    int64_t n;
    hl_trainer_zero_grad(t);
    CHECK_OK(hl_trainer_forward_backward(t, tok, NULL, NULL, 1.0f, 0, &loss, &n, &err), &err);
    CHECK(n == 16);
    double worst = 0;
    int checked = 0;
    for (int32_t i = 0; i < hl_trainer_n_params(t); i++) {
        hl_param prm = hl_trainer_param(t, i);
        for (int k = 0; k < 4; k++) {
            int64_t e = (int64_t)hl_rng_below(&rng, (uint64_t)prm.n);
            /* rows the input actually uses (the fourth: any row, which only the head uses) */
            if (!strcmp(prm.name, "token_embd.weight") && k < 3) e = (int64_t)tok[k] * 16 + k;
            else if (k == 3 && (tied ? strcmp(prm.name, "token_embd.weight") : 1)) continue;
            double fd = central_fd(t, tok, &prm.value[e], 2e-2f), g = prm.grad[e];
            double d = fabs(fd - g) / (fabs(g) + 1e-2);
            if (d > worst) worst = d;
            CHECK_MSG(d < 5e-2, "%s[%lld]: fd %.6g vs grad %.6g", prm.name, (long long)e, fd, g);
            checked++;
        }
    }
    printf("full mode%s: %d entries over %d tensors vs finite differences: worst rel %.3g\n", tied ? " (tied)" : "",
           checked, hl_trainer_n_params(t), worst);
    /* 2 threads: identical gradients */
    p.n_threads = 2;
    hl_trainer *t2 = NULL;
    CHECK_OK(hl_trainer_init(m, NULL, &p, &t2, &err), &err);
    hl_trainer_zero_grad(t2);
    double loss2;
    CHECK_OK(hl_trainer_forward_backward(t2, tok, NULL, NULL, 1.0f, 0, &loss2, &n, &err), &err);
    int same = loss2 == loss;
    for (int32_t i = 0; i < hl_trainer_n_params(t); i++)
        same &= !memcmp(hl_trainer_param(t, i).grad, hl_trainer_param(t2, i).grad, sizeof(float) * (size_t)hl_trainer_param(t, i).n);
    CHECK_MSG(same, "full-mode gradients differ between 1 and 2 threads");
    hl_trainer_free(t2);
    hl_trainer_free(t);
    hl_model_free(m);
}

int main(void) {
    test_kernels();
    test_packed_matmul();
    test_packed_nn();
    test_blas_gemm();
    test_attention_train();
    test_rope_table();
    test_exp_sum();
    test_full_mode(0);
    test_full_mode(1);
    hl_error err = {0};
    hl_model *m = NULL;
    CHECK_OK(hl_model_load(shared_path("models/stories260K/stories260K.bin"), shared_path("models/stories260K/tok512.bin"), &m, &err), &err);
    REQUIRE(m);
    size_t size;
    int32_t *tok = read_whole(shared_path(TORCH "batch_tokens.i32"), &size);
    REQUIRE(tok && size == 4 * 33 * 4);
    double *gref = read_whole(shared_path(TORCH "attn_ffn/grad_init.f64"), &size);
    REQUIRE(gref && size == N_FLAT * 8);

    hl_adapter *a = NULL;
    CHECK_OK(hl_adapter_load(shared_path(TORCH "attn_ffn/adapter_init.safetensors"), m, 0, &a, &err), &err);
    REQUIRE(a);
    hl_trainer *tr = make_trainer(m, a, 1);

    double loss;
    int64_t n;
    hl_trainer_zero_grad(tr);
    CHECK_OK(hl_trainer_forward_backward(tr, tok, NULL, NULL, 1.0f, 0, &loss, &n, &err), &err);
    double ref_loss = 0.8916659525484903;
    printf("loss at adapter_init: %.10f (reference %.10f, rel %.2g)\n", loss, ref_loss, fabs(loss - ref_loss) / ref_loss);
    CHECK(n == 128);
    CHECK(fabs(loss - ref_loss) / ref_loss < 1e-5);
    cmp_ctx c = {.tr = tr, .a = a, .ref = gref, .use_grad = 1};
    flat_layout(a, cmp_block, &c);
    printf("gradients vs torch f64: worst max|diff| / max|ref| per tensor = %.3g (max abs %.3g)\n", c.worst_rel, c.worst_abs);
    CHECK(c.worst_rel < 1e-4);

    /* eval path agrees with the training forward */
    double lsum;
    int64_t cnt;
    CHECK_OK(hl_trainer_eval(tr, tok, NULL, NULL, &lsum, &cnt, &err), &err);
    CHECK(cnt == 128 && fabs(lsum / cnt - loss) < 1e-12);

    /* threads 1 vs 2: identical gradients */
    float *g1 = malloc(N_FLAT * sizeof(float));
    int64_t off = 0;
    for (int32_t i = 0; i < hl_trainer_n_params(tr); i++) {
        hl_param p = hl_trainer_param(tr, i);
        memcpy(g1 + off, p.grad, (size_t)p.n * sizeof(float));
        off += p.n;
    }
    hl_trainer *tr2 = make_trainer(m, a, 2);
    hl_trainer_zero_grad(tr2);
    double loss2;
    CHECK_OK(hl_trainer_forward_backward(tr2, tok, NULL, NULL, 1.0f, 0, &loss2, &n, &err), &err);
    CHECK(loss2 == loss);
    off = 0;
    int same = 1;
    for (int32_t i = 0; i < hl_trainer_n_params(tr2); i++) {
        hl_param p = hl_trainer_param(tr2, i);
        same &= !memcmp(g1 + off, p.grad, (size_t)p.n * sizeof(float));
        off += p.n;
    }
    CHECK_MSG(same, "gradients differ between 1 and 2 threads");
    hl_trainer_free(tr2);

    /* finite differences on random entries (central, in f32 through the eval path). The
     * step is large because rounding noise, not truncation, limits the estimate here: the
     * worst of these 12 entries measured 0.030 / 0.018 / 0.0013 / 0.00096 at h = 3e-3 /
     * 5e-3 / 2e-2 / 4e-2 (the error falls as h grows). */
    hl_rng rng;
    hl_rng_seed(&rng, 99);
    double worst_fd = 0;
    for (int k = 0; k < 12; k++) {
        int32_t pi = (int32_t)hl_rng_below(&rng, (uint64_t)hl_trainer_n_params(tr));
        hl_param p = hl_trainer_param(tr, pi);
        int64_t e = (int64_t)hl_rng_below(&rng, (uint64_t)p.n);
        double fd = central_fd(tr, tok, &p.value[e], 4e-2f);
        /* analytic gradient of this entry */
        int64_t base = 0;
        for (int32_t q = 0; q < pi; q++) base += hl_trainer_param(tr, q).n;
        double g = g1[base + e];
        double d = fabs(fd - g) / (fabs(g) + 1e-3);
        if (d > worst_fd) worst_fd = d;
    }
    printf("finite differences: worst |fd - grad| / (|grad| + 1e-3) = %.3g\n", worst_fd);
    CHECK(worst_fd < 1e-2);
    free(g1);

    /* 10 AdamW steps, weight decay 0 and 0.01 */
    static const double losses[2][11] = {
        {0.8916659525484903, 0.8019482800124025, 0.7301196543874401, 0.6682483891523283, 0.6130233684235383,
         0.5638550815881527, 0.5203415932693954, 0.4814610804850584, 0.44618595114720194, 0.41383403268852653,
         0.3839726076777492},
        {0.8916659525484903, 0.801947287319337, 0.7301203106589412, 0.6682521621992952, 0.6130311166305519,
         0.5638670020755105, 0.5203575424749725, 0.48148095805468, 0.44620963441201933, 0.4138612983235296,
         0.3840031141574613}};
    const char *finals[2] = {TORCH "attn_ffn/adamw_wd0_final.f64", TORCH "attn_ffn/adamw_wd0.01_final.f64"};
    float wds[2] = {0.0f, 0.01f};
    for (int run = 0; run < 2; run++) {
        hl_adapter *b = NULL;
        CHECK_OK(hl_adapter_load(shared_path(TORCH "attn_ffn/adapter_init.safetensors"), m, 0, &b, &err), &err);
        REQUIRE(b);
        hl_trainer *t = make_trainer(m, b, 2);
        hl_adamw opt;
        hl_adamw_params ap = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = wds[run]};
        CHECK_OK(hl_adamw_init(&opt, &ap, t, &err), &err);
        double worst = 0;
        for (int s = 0; s <= 10; s++) {
            hl_trainer_zero_grad(t);
            CHECK_OK(hl_trainer_forward_backward(t, tok, NULL, NULL, 1.0f, (uint64_t)s, &loss, &n, &err), &err);
            double d = fabs(loss - losses[run][s]);
            if (d > worst) worst = d;
            if (s < 10) hl_adamw_step(&opt, t, 1e-3f);
        }
        double *fin = read_whole(shared_path(finals[run]), &size);
        REQUIRE(fin && size == N_FLAT * 8);
        cmp_ctx cf = {.tr = t, .a = b, .ref = fin, .use_grad = 0};
        flat_layout(b, cmp_block, &cf);
        printf("AdamW wd %.2f: worst per-step |loss diff| %.3g, final adapter max |diff| %.3g\n", wds[run], worst, cf.worst_abs);
        CHECK(worst < 1e-5);
        CHECK(cf.worst_abs < 5e-5);
        free(fin);
        hl_adamw_free(&opt);
        hl_trainer_free(t);
        hl_adapter_free(b);
    }
    hl_trainer_free(tr);
    hl_adapter_free(a);
    free(tok);
    free(gref);
    hl_model_free(m);
    return hl_test_finish("test_train_grad");
}
