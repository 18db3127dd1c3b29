/* exp_sum.c: a vectorised exp: the training cross-entropy's inner loop,
 * out[i] = exp(x[i] − shift) and Σ out[i] over a full vocabulary row (32,000
 * logits per target token), and a plain element-wise exp (SwiGLU's sigmoid,
 * in inference and training).
 *
 * libm's expf is scalar and was ~12% of a training step. Here exp is a
 * range reduction x = n·ln2 + r (|r| ≤ ln2/2, ln2 split in two parts so r is
 * exact to float precision) and the degree-7 Taylor polynomial of e^r in
 * Horner form with fused multiply-adds (truncation error ≤ 0.347⁸/8! ≈ 5e-9
 * relative, below float rounding), scaled by 2ⁿ through the exponent bits.
 * Inputs below −86 give 0 (their share of a sum that is ≥ 1 is < 1e-37),
 * inputs above 88 give +inf, NaN gives 0.
 *
 * The sum is kept in 8 double lanes (lane j takes i ≡ j mod 8) combined in a
 * fixed tree, then the tail in order. The AVX2 path and the scalar path do
 * the same operations in the same order, so they agree bit for bit (tested).
 */
#include "kernels/kernels.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

#define LOG2E 1.44269504088896341f
#define LN2_HI 0.693359375f /* ln 2 with its low bits cleared, so n·LN2_HI is exact */
#define LN2_LO (-2.12194440e-4f)
#define EXP_MIN (-86.0f)
#define EXP_MAX 88.0f

/* 1/k! for k = 7 .. 0, Horner order. */
static const float exp_coef[8] = {1.98412698e-4f, 1.38888889e-3f, 8.33333333e-3f, 4.16666667e-2f,
                                  1.66666667e-1f, 0.5f,           1.0f,           1.0f};

static float exp_one(float x) {
    if (!(x >= EXP_MIN)) return 0.0f;
    if (x > EXP_MAX) return INFINITY;
    float n = nearbyintf(x * LOG2E);
    float r = fmaf(-n, LN2_HI, x);
    r = fmaf(-n, LN2_LO, r);
    float p = exp_coef[0];
    for (int k = 1; k < 8; k++) p = fmaf(p, r, exp_coef[k]);
    int32_t bits;
    memcpy(&bits, &p, sizeof bits);
    bits += (int32_t)n * (1 << 23); /* p ∈ [0.7, 1.42], n ≥ −124: stays a normal float */
    memcpy(&p, &bits, sizeof p);
    return p;
}

static double lane_tree(const double s[8]) {
    return ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
}

/* The n % 8 tail, in order, added to sum. */
static double exp_sum_tail(float *out, const float *x, int64_t i, int64_t n, float shift, double sum) {
    for (; i < n; i++) {
        float e = exp_one(x[i] - shift);
        if (out) out[i] = e;
        sum += (double)e;
    }
    return sum;
}

double hl_exp_sum_ref(float *out, const float *x, int64_t n, float shift) {
    double s[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) {
            float e = exp_one(x[i + j] - shift);
            if (out) out[i + j] = e;
            s[j] += (double)e;
        }
    return exp_sum_tail(out, x, i, n, shift, lane_tree(s));
}

void hl_exp_ref(float *out, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = exp_one(x[i]);
}

#if defined(__AVX2__) && defined(__FMA__)
/* exp_one on 8 lanes: the same operations in the same order. */
static inline __m256 exp8(__m256 v) {
    __m256 keep = _mm256_cmp_ps(v, _mm256_set1_ps(EXP_MIN), _CMP_GE_OQ);
    __m256 big = _mm256_cmp_ps(v, _mm256_set1_ps(EXP_MAX), _CMP_GT_OQ);
    __m256 nn = _mm256_round_ps(_mm256_mul_ps(v, _mm256_set1_ps(LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(nn, _mm256_set1_ps(LN2_HI), v);
    r = _mm256_fnmadd_ps(nn, _mm256_set1_ps(LN2_LO), r);
    __m256 p = _mm256_set1_ps(exp_coef[0]);
    for (int k = 1; k < 8; k++) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(exp_coef[k]));
    __m256i e = _mm256_slli_epi32(_mm256_cvtps_epi32(nn), 23);
    p = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), e));
    p = _mm256_and_ps(p, keep);
    return _mm256_blendv_ps(p, _mm256_set1_ps(INFINITY), big);
}

void hl_exp(float *out, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, exp8(_mm256_loadu_ps(x + i)));
    for (; i < n; i++) out[i] = exp_one(x[i]);
}

double hl_exp_sum(float *out, const float *x, int64_t n, float shift) {
    const __m256 vshift = _mm256_set1_ps(shift);
    __m256d s_lo = _mm256_setzero_pd(), s_hi = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 p = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vshift));
        if (out) _mm256_storeu_ps(out + i, p);
        s_lo = _mm256_add_pd(s_lo, _mm256_cvtps_pd(_mm256_castps256_ps128(p)));
        s_hi = _mm256_add_pd(s_hi, _mm256_cvtps_pd(_mm256_extractf128_ps(p, 1)));
    }
    double s[8];
    _mm256_storeu_pd(s, s_lo);
    _mm256_storeu_pd(s + 4, s_hi);
    return exp_sum_tail(out, x, i, n, shift, lane_tree(s));
}
#else
double hl_exp_sum(float *out, const float *x, int64_t n, float shift) { return hl_exp_sum_ref(out, x, n, shift); }
void hl_exp(float *out, const float *x, int64_t n) { hl_exp_ref(out, x, n); }
#endif
