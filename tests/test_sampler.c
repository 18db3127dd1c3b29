/* test_sampler.c: temperature, top-k and top-p sampling (infer/sampler.c).
 * top-k = 1 and a temperature near 0 pick the arg-max; top-p keeps the
 * smallest set of most probable tokens whose mass reaches p; a seed fixes
 * the draws; and with fixed seeds the draw frequencies on small known
 * distributions pass a chi-square test (plain, top-k, top-p, temperature 2),
 * while a wrong distribution fails it. */
#include "hyperlora.h"
#include "util/rng.h"
#include "test_util.h"

#define DRAWS 20000
/* Chi-square critical values at p = 0.001 for 1..4 degrees of freedom. */
static const double CHI2_CRIT[5] = {0, 10.83, 13.82, 16.27, 18.47};

static hl_sampler *make(float temperature, int32_t top_k, float top_p, uint64_t seed, int32_t vocab) {
    hl_sampler_params p = hl_sampler_default_params();
    p.temperature = temperature;
    p.top_k = top_k;
    p.top_p = top_p;
    p.seed = seed;
    hl_sampler *s = NULL;
    hl_error err = {0};
    CHECK_OK(hl_sampler_init(&p, vocab, &s, &err), &err);
    REQUIRE(s);
    return s;
}

static int32_t argmax(const float *x, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Logits whose softmax at temperature 1 is probs. */
static void logits_of(const double *probs, int32_t n, float *logits) {
    for (int32_t i = 0; i < n; i++) logits[i] = (float)log(probs[i]);
}

/* Counts DRAWS samples from s into count[n]; 0 if a token outside [0, n) came out. */
static int draw(hl_sampler *s, const float *logits, int32_t n, long *count) {
    for (int32_t i = 0; i < n; i++) count[i] = 0;
    for (int d = 0; d < DRAWS; d++) {
        int32_t t = hl_sampler_sample(s, logits);
        if (t < 0 || t >= n) return 0;
        count[t]++;
    }
    return 1;
}

/* Pearson's statistic of count against expected probabilities want (tokens
 * with want 0 must never be drawn; they add nothing, else infinity). */
static double chi2(const long *count, const double *want, int32_t n) {
    double x = 0;
    for (int32_t i = 0; i < n; i++) {
        if (want[i] == 0) {
            if (count[i]) return INFINITY;
            continue;
        }
        double e = want[i] * DRAWS, d = (double)count[i] - e;
        x += d * d / e;
    }
    return x;
}

static void test_greedy_equivalents(void) {
    hl_rng r;
    hl_rng_seed(&r, 5);
    enum { V = 50 };
    float logits[V];
    for (int round = 0; round < 40; round++) {
        /* Distinct logits at least 0.05 apart around a random order. */
        for (int i = 0; i < V; i++) logits[i] = 0.05f * (float)hl_rng_below(&r, 1000);
        int32_t best = argmax(logits, V);
        logits[best] += 1.0f;
        hl_sampler *k1 = make(1.0f, 1, 1.0f, (uint64_t)round, V);
        hl_sampler *k1p = make(0.7f, 1, 0.9f, (uint64_t)round, V);
        hl_sampler *cold = make(1e-3f, 0, 1.0f, (uint64_t)round, V);
        hl_sampler *zero = make(0.0f, 0, 1.0f, (uint64_t)round, V);
        int same = 1;
        for (int d = 0; d < 20; d++) {
            same &= hl_sampler_sample(k1, logits) == best;
            same &= hl_sampler_sample(k1p, logits) == best;
            same &= hl_sampler_sample(cold, logits) == best;
            same &= hl_sampler_sample(zero, logits) == best;
        }
        CHECK_MSG(same, "round %d: top-k 1, temperature 1e-3 or 0 did not pick the arg-max %d", round, best);
        hl_sampler_free(k1);
        hl_sampler_free(k1p);
        hl_sampler_free(cold);
        hl_sampler_free(zero);
    }
    /* Ties go to the lowest id at temperature 0. */
    float flat[4] = {1, 3, 3, 2};
    hl_sampler *zero = make(0.0f, 0, 1.0f, 1, 4);
    CHECK(hl_sampler_sample(zero, flat) == 1);
    hl_sampler_free(zero);
}

static void test_seed(void) {
    enum { V = 16 };
    float logits[V];
    for (int i = 0; i < V; i++) logits[i] = 0.1f * (float)((i * 7) % V);
    hl_sampler *a = make(1.0f, 0, 1.0f, 42, V), *b = make(1.0f, 0, 1.0f, 42, V), *c = make(1.0f, 0, 1.0f, 43, V);
    int same = 1, differ = 0;
    for (int d = 0; d < 500; d++) {
        int32_t x = hl_sampler_sample(a, logits), y = hl_sampler_sample(b, logits), z = hl_sampler_sample(c, logits);
        same &= x == y;
        differ |= x != z;
    }
    CHECK_MSG(same, "two samplers with seed 42 drew different tokens");
    CHECK_MSG(differ, "seeds 42 and 43 drew the same 500 tokens");
    hl_sampler_free(a);
    hl_sampler_free(b);
    hl_sampler_free(c);
}

static void test_top_p_set(void) {
    /* Probabilities 0.5, 0.3, 0.15, 0.05 (in a shuffled id order): the
     * smallest set reaching p = 0.75 is {0.5, 0.3}; p = 0.45 keeps 0.5 alone;
     * p = 0.9 keeps three; p = 1 keeps all. */
    const double probs[4] = {0.15, 0.5, 0.05, 0.3};
    const struct { float top_p; int keep[4]; } cases[] = {
        {0.45f, {0, 1, 0, 0}}, {0.75f, {0, 1, 0, 1}}, {0.9f, {1, 1, 0, 1}}, {1.0f, {1, 1, 1, 1}}};
    float logits[4];
    logits_of(probs, 4, logits);
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        hl_sampler *s = make(1.0f, 0, cases[c].top_p, 7 + c, 4);
        long count[4];
        REQUIRE(draw(s, logits, 4, count));
        double kept = 0, want[4];
        for (int i = 0; i < 4; i++) kept += cases[c].keep[i] ? probs[i] : 0;
        for (int i = 0; i < 4; i++) want[i] = cases[c].keep[i] ? probs[i] / kept : 0;
        for (int i = 0; i < 4; i++)
            CHECK_MSG(cases[c].keep[i] ? count[i] > 0 : count[i] == 0, "top-p %g: token %d drawn %ld times",
                      cases[c].top_p, i, count[i]);
        int dof = cases[c].keep[0] + cases[c].keep[1] + cases[c].keep[2] + cases[c].keep[3] - 1;
        if (dof > 0) {
            double x = chi2(count, want, 4);
            CHECK_MSG(x < CHI2_CRIT[dof], "top-p %g: chi-square %.2f >= %.2f", cases[c].top_p, x, CHI2_CRIT[dof]);
        }
        hl_sampler_free(s);
    }
}

static void test_frequencies(void) {
    const double probs[4] = {0.4, 0.1, 0.3, 0.2};
    float logits[4];
    logits_of(probs, 4, logits);
    long count[4];

    /* Plain sampling at temperature 1. */
    hl_sampler *s = make(1.0f, 0, 1.0f, 1234, 4);
    REQUIRE(draw(s, logits, 4, count));
    double x = chi2(count, probs, 4);
    CHECK_MSG(x < CHI2_CRIT[3], "temperature 1: chi-square %.2f (counts %ld %ld %ld %ld)", x, count[0], count[1],
              count[2], count[3]);
    /* The same counts are far from a wrong distribution: the test can fail. */
    const double wrong[4] = {0.35, 0.15, 0.3, 0.2};
    CHECK_MSG(chi2(count, wrong, 4) > CHI2_CRIT[3], "chi-square does not tell 0.4/0.1 from 0.35/0.15");
    hl_sampler_free(s);

    /* top-k 2 keeps 0.4 and 0.3, renormalised. */
    s = make(1.0f, 2, 1.0f, 99, 4);
    REQUIRE(draw(s, logits, 4, count));
    const double top2[4] = {0.4 / 0.7, 0, 0.3 / 0.7, 0};
    x = chi2(count, top2, 4);
    CHECK_MSG(x < CHI2_CRIT[1], "top-k 2: chi-square %.2f (counts %ld %ld %ld %ld)", x, count[0], count[1], count[2],
              count[3]);
    hl_sampler_free(s);

    /* Temperature 2: probabilities proportional to sqrt(p). */
    s = make(2.0f, 0, 1.0f, 2024, 4);
    REQUIRE(draw(s, logits, 4, count));
    double warm[4], z = 0;
    for (int i = 0; i < 4; i++) z += warm[i] = sqrt(probs[i]);
    for (int i = 0; i < 4; i++) warm[i] /= z;
    x = chi2(count, warm, 4);
    CHECK_MSG(x < CHI2_CRIT[3], "temperature 2: chi-square %.2f (counts %ld %ld %ld %ld)", x, count[0], count[1],
              count[2], count[3]);
    hl_sampler_free(s);
}

static void test_invalid_params(void) {
    hl_sampler_params p = hl_sampler_default_params();
    hl_sampler *s = NULL;
    hl_error err = {0};
    p.temperature = -1;
    CHECK(hl_sampler_init(&p, 4, &s, &err) == HL_ERR_INVALID_ARG && !s);
    p = hl_sampler_default_params();
    p.top_p = 0;
    CHECK(hl_sampler_init(&p, 4, &s, &err) == HL_ERR_INVALID_ARG && !s);
    p = hl_sampler_default_params();
    p.top_k = -1;
    CHECK(hl_sampler_init(&p, 4, &s, &err) == HL_ERR_INVALID_ARG && !s);
    p = hl_sampler_default_params();
    CHECK(hl_sampler_init(&p, 0, &s, &err) == HL_ERR_INVALID_ARG && !s);
}

int main(void) {
    test_greedy_equivalents();
    test_seed();
    test_top_p_set();
    test_frequencies();
    test_invalid_params();
    return hl_test_finish("test_sampler");
}
