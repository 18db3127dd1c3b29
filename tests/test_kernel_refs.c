/* test_kernel_refs.c: the inference kernels that no other suite compares with
 * their plain references (kernels/reference.c): hl_rmsnorm against
 * hl_rmsnorm_ref and hl_attention against hl_attention_ref, on seeded random
 * inputs over several shapes, at 1 and 3 threads. The references work in
 * double; the kernels in float with their own summation order, so the two
 * agree to a few float roundings, far below what any indexing, scaling or
 * masking mistake would produce. Attention is also checked to give the same
 * bits at every thread count. */
#include "hyperlora.h"
#include "kernels/kernels.h"
#include "util/rng.h"
#include "util/threadpool.h"
#include "test_util.h"

static void fill_normal(hl_rng *r, float *x, int64_t n, float scale) {
    for (int64_t i = 0; i < n; i++) x[i] = scale * hl_rng_normal(r);
}

/* max |a - b| / max(1, max |b|) */
static double rel_err(const float *a, const float *b, int64_t n) {
    double worst = 0, peak = 1;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > worst || isnan(d)) worst = isnan(d) ? INFINITY : d;
        if (fabs(b[i]) > peak) peak = fabs(b[i]);
    }
    return worst / peak;
}

static void test_rmsnorm(void) {
    static const int64_t sizes[] = {1, 2, 7, 8, 15, 64, 288, 1000, 4096};
    hl_rng r;
    hl_rng_seed(&r, 11);
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        int64_t C = sizes[k];
        float *x = malloc((size_t)C * sizeof *x), *w = malloc((size_t)C * sizeof *w);
        float *out = malloc((size_t)C * sizeof *out), *ref = malloc((size_t)C * sizeof *ref);
        REQUIRE(x && w && out && ref);
        for (int scale_case = 0; scale_case < 3; scale_case++) {
            float scale = scale_case == 0 ? 1.0f : scale_case == 1 ? 1e-3f : 40.0f;
            fill_normal(&r, x, C, scale);
            fill_normal(&r, w, C, 1.0f);
            hl_rmsnorm(out, x, w, C, 1e-5f);
            hl_rmsnorm_ref(ref, x, w, C, 1e-5f);
            double e = rel_err(out, ref, C);
            CHECK_MSG(e < 1e-5, "rmsnorm C=%lld scale %g: relative error %.3g", (long long)C, scale, e);
            /* In place (out aliases x), as the forward pass calls it. */
            hl_rmsnorm(x, x, w, C, 1e-5f);
            CHECK_MSG(memcmp(x, out, (size_t)C * sizeof *x) == 0, "rmsnorm C=%lld: in place differs", (long long)C);
        }
        /* A plain case worked by hand: x = (3, 4), w = 1, eps 0: rms = sqrt(12.5). */
        if (C == 2) {
            float x2[2] = {3, 4}, w2[2] = {1, 1}, o2[2];
            hl_rmsnorm(o2, x2, w2, 2, 0.0f);
            CHECK(fabsf(o2[0] - 3.0f / sqrtf(12.5f)) < 1e-6f && fabsf(o2[1] - 4.0f / sqrtf(12.5f)) < 1e-6f);
        }
        free(x);
        free(w);
        free(out);
        free(ref);
    }
}

/* The order hl_attention promises, written plainly: each score
 * hl_dot(q, k_s)·(1/√D), hl_softmax, then per element a chain of fmaf over
 * s from zero. hl_attention must give these bits exactly (decoding one token
 * and a batched prompt both run it). */
static void attention_canonical(float *out, const float *q, const float *kc, const float *vc, int64_t T, int64_t pos0,
                                int64_t H, int64_t Hkv, int64_t D) {
    const int64_t kvd = Hkv * D, group = H / Hkv;
    const float inv_sqrt_d = 1.0f / sqrtf((float)D);
    float *att = malloc((size_t)(pos0 + T) * sizeof *att);
    REQUIRE(att);
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < H; h++) {
            const int64_t pos = pos0 + t, kvh = h / group;
            for (int64_t s = 0; s <= pos; s++) att[s] = hl_dot(q + (t * H + h) * D, kc + s * kvd + kvh * D, D) * inv_sqrt_d;
            hl_softmax(att, pos + 1);
            for (int64_t i = 0; i < D; i++) {
                float o = 0.0f;
                for (int64_t s = 0; s <= pos; s++) o = fmaf(att[s], vc[s * kvd + kvh * D + i], o);
                out[(t * H + h) * D + i] = o;
            }
        }
    free(att);
}

typedef struct attn_shape {
    int64_t T, pos0, H, Hkv, D;
} attn_shape;

static void test_attention(void) {
    static const attn_shape shapes[] = {
        {1, 0, 1, 1, 8},     /* one token attends to itself only */
        {1, 9, 4, 4, 16},    /* decode step, no grouping */
        {5, 0, 8, 4, 8},     /* prompt from the start, groups of 2 */
        {3, 17, 8, 2, 32},   /* prompt continuing a cache, groups of 4 */
        {7, 3, 6, 1, 12},    /* one kv head for all */
        {2, 40, 4, 2, 64},   /* one 64-element block */
        {9, 6, 4, 2, 72},    /* 64 elements in registers and an 8-wide rest */
        {4, 11, 2, 1, 20},   /* a 16-lane chain and a scalar tail */
        {3, 30, 2, 2, 128},  /* two 64-element blocks */
        {1, 200, 12, 4, 64}, /* decode steps long enough that the heads split between threads */
        {1, 150, 8, 8, 128}, /* the same with 128-element heads, no grouping */
    };
    hl_pool *pool3 = hl_pool_init(3);
    REQUIRE(pool3);
    hl_rng r;
    hl_rng_seed(&r, 23);
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
        attn_shape s = shapes[k];
        int64_t n_ctx = s.pos0 + s.T + 3, qd = s.H * s.D, kvd = s.Hkv * s.D;
        float *q = malloc((size_t)(s.T * qd) * sizeof *q);
        float *kc = malloc((size_t)(n_ctx * kvd) * sizeof *kc), *vc = malloc((size_t)(n_ctx * kvd) * sizeof *vc);
        float *out1 = malloc((size_t)(s.T * qd) * sizeof *out1), *out3 = malloc((size_t)(s.T * qd) * sizeof *out3);
        float *ref = malloc((size_t)(s.T * qd) * sizeof *ref);
        float *scratch = malloc((size_t)(3 * n_ctx) * sizeof *scratch);
        REQUIRE(q && kc && vc && out1 && out3 && ref && scratch);
        fill_normal(&r, q, s.T * qd, 1.0f);
        fill_normal(&r, kc, n_ctx * kvd, 1.0f);
        fill_normal(&r, vc, n_ctx * kvd, 1.0f);
        /* Rows past the last position must not be read: poison them. */
        for (int64_t i = (s.pos0 + s.T) * kvd; i < n_ctx * kvd; i++) kc[i] = vc[i] = NAN;
        hl_attention(NULL, out1, q, kc, vc, s.T, s.pos0, s.H, s.Hkv, s.D, n_ctx, scratch);
        hl_attention(pool3, out3, q, kc, vc, s.T, s.pos0, s.H, s.Hkv, s.D, n_ctx, scratch);
        hl_attention_ref(ref, q, kc, vc, s.T, s.pos0, s.H, s.Hkv, s.D);
        double e = rel_err(out1, ref, s.T * qd);
        CHECK_MSG(e < 2e-5, "attention T=%lld pos0=%lld H=%lld Hkv=%lld D=%lld: relative error %.3g", (long long)s.T,
                  (long long)s.pos0, (long long)s.H, (long long)s.Hkv, (long long)s.D, e);
        CHECK_MSG(memcmp(out1, out3, (size_t)(s.T * qd) * sizeof *out1) == 0,
                  "attention shape %zu: 1 and 3 threads differ", k);
        attention_canonical(ref, q, kc, vc, s.T, s.pos0, s.H, s.Hkv, s.D);
        CHECK_MSG(memcmp(out1, ref, (size_t)(s.T * qd) * sizeof *out1) == 0,
                  "attention shape %zu (D=%lld): bits differ from the canonical order", k, (long long)s.D);
        /* The first token of a fresh cache sees only itself: out = its v row. */
        if (s.pos0 == 0) {
            int64_t wrong = 0;
            for (int64_t h = 0; h < s.H; h++)
                for (int64_t i = 0; i < s.D; i++) wrong += out1[h * s.D + i] != vc[(h / (s.H / s.Hkv)) * s.D + i];
            CHECK_MSG(wrong == 0, "attention shape %zu: token 0 differs from its v row in %lld values", k,
                      (long long)wrong);
        }
        free(q);
        free(kc);
        free(vc);
        free(out1);
        free(out3);
        free(ref);
        free(scratch);
    }
    hl_pool_free(pool3);
}

int main(void) {
    test_rmsnorm();
    test_attention();
    return hl_test_finish("test_kernel_refs");
}
