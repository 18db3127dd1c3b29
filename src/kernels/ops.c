/* ops.c: the element-wise and per-row kernels: RMSNorm, RoPE, softmax, SwiGLU. */
#include "kernels/kernels.h"

#include <math.h>

void hl_rmsnorm(float *out, const float *x, const float *w, int64_t C, float eps) {
    float ss = hl_dot(x, x, C);
    float inv = 1.0f / sqrtf(ss / (float)C + eps);
    for (int64_t i = 0; i < C; i++) out[i] = w[i] * (inv * x[i]);
}

/* Rotates pair i of every head by the angle with cos c, sin s. The fused
 * multiply-adds are written out: GCC 12 turns the plain expression into
 * vfmaddsub when it vectorises the loop (even with -ffp-contract=off), so the
 * bits would depend on which loops the compiler happened to vectorise. */
static inline void rotate_pair(float *vec, int64_t n_heads, int64_t D, int64_t i, float c, float s) {
    for (int64_t h = 0; h < n_heads; h++) {
        float *p = vec + h * D + i;
        float v0 = p[0], v1 = p[1];
        p[0] = fmaf(v0, c, -(v1 * s));
        p[1] = fmaf(v0, s, v1 * c);
    }
}

void hl_rope_table(float *cs, int64_t n_pos, int64_t D, float theta) { hl_rope_table_scaled(cs, n_pos, D, theta, (const float *)0); }

void hl_rope_table_scaled(float *cs, int64_t n_pos, int64_t D, float theta, const float *ff) {
    for (int64_t pos = 0; pos < n_pos; pos++)
        for (int64_t i = 0; i < D; i += 2) {
            /* In double, rounded once: every position gets a correctly rounded angle. */
            double angle = (double)pos * pow((double)theta, -(double)i / (double)D);
            if (ff) angle /= (double)ff[i / 2];
            cs[pos * D + i] = (float)cos(angle);
            cs[pos * D + i + 1] = (float)sin(angle);
        }
}

void hl_rope_apply(float *vec, int64_t n_heads, int64_t D, const float *cs, int inverse) {
    for (int64_t i = 0; i < D; i += 2) rotate_pair(vec, n_heads, D, i, cs[i], inverse ? -cs[i + 1] : cs[i + 1]);
}

void hl_rope_apply_neox(float *vec, int64_t n_heads, int64_t D, const float *cs, int inverse) {
    const int64_t half = D / 2;
    for (int64_t j = 0; j < half; j++) {
        float c = cs[2 * j], sn = inverse ? -cs[2 * j + 1] : cs[2 * j + 1];
        for (int64_t h = 0; h < n_heads; h++) { /* the same fused form as rotate_pair */
            float *p = vec + h * D + j;
            float v0 = p[0], v1 = p[half];
            p[0] = fmaf(v0, c, -(v1 * sn));
            p[half] = fmaf(v0, sn, v1 * c);
        }
    }
}

/* The exponentials by hl_exp_sum, as the training attention takes them,
 * the sum in its double lanes (with libm's scalar expf, the softmax was a
 * third of s110M-shaped decode attention at 40 positions on a Zen 5). */
void hl_softmax(float *x, int64_t n) {
    float mx = x[0];
    for (int64_t i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    const float inv = (float)(1.0 / hl_exp_sum(x, x, n, mx));
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

void hl_rmsnorm_backward(float *dx, const float *x, const float *w, const float *dy, int64_t C, float eps,
                         int accumulate) {
    /* y = w·x·inv, inv = (mean(x²)+eps)^-1/2:
     * dx = inv·(w⊙dy) − x·inv³·Σ(w⊙dy⊙x)/C. Sums in double, in order. */
    double ss = 0, dot = 0;
    for (int64_t i = 0; i < C; i++) {
        ss += (double)x[i] * x[i];
        dot += (double)w[i] * dy[i] * x[i];
    }
    double inv = 1.0 / sqrt(ss / (double)C + eps);
    double k = inv * inv * inv * dot / (double)C;
    for (int64_t i = 0; i < C; i++) {
        float g = (float)(inv * (double)w[i] * dy[i] - (double)x[i] * k);
        dx[i] = accumulate ? dx[i] + g : g;
    }
}

/* exp(−g) for a block of gate values, by hl_exp. */
#define SWIGLU_BLOCK 256
static void exp_neg(float *e, const float *g, int64_t n) {
    for (int64_t i = 0; i < n; i++) e[i] = -g[i];
    hl_exp(e, e, n);
}

void hl_swiglu(float *out, const float *gate, const float *up, int64_t n) {
    float e[SWIGLU_BLOCK];
    for (int64_t b = 0; b < n; b += SWIGLU_BLOCK) {
        int64_t m = n - b < SWIGLU_BLOCK ? n - b : SWIGLU_BLOCK;
        exp_neg(e, gate + b, m);
        for (int64_t i = 0; i < m; i++) out[b + i] = gate[b + i] / (1.0f + e[i]) * up[b + i];
    }
}

void hl_swiglu_backward(float *dgate, float *dup, const float *gate, const float *up, const float *dout, int64_t n) {
    float e[SWIGLU_BLOCK];
    for (int64_t b = 0; b < n; b += SWIGLU_BLOCK) {
        int64_t m = n - b < SWIGLU_BLOCK ? n - b : SWIGLU_BLOCK;
        exp_neg(e, gate + b, m);
        for (int64_t i = 0; i < m; i++) {
            float g = gate[b + i], sig = 1.0f / (1.0f + e[i]), silu = g * sig;
            dgate[b + i] = dout[b + i] * up[b + i] * (sig * (1.0f + g * (1.0f - sig)));
            dup[b + i] = dout[b + i] * silu;
        }
    }
}
