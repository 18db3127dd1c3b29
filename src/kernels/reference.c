/* reference.c: plain, obviously-correct versions of the kernels, accumulated
 * in double. Tests compare the fast kernels against these; nothing else
 * calls them. */
#include "kernels/kernels.h"

#include <math.h>
#include <stdlib.h>

void hl_matmul_ref(float *out, const float *x, const float *w, int64_t T, int64_t K, int64_t O) {
    for (int64_t t = 0; t < T; t++)
        for (int64_t o = 0; o < O; o++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++) s += (double)x[t * K + k] * w[o * K + k];
            out[t * O + o] = (float)s;
        }
}

void hl_rmsnorm_ref(float *out, const float *x, const float *w, int64_t C, float eps) {
    double ss = 0;
    for (int64_t i = 0; i < C; i++) ss += (double)x[i] * x[i];
    double inv = 1.0 / sqrt(ss / C + eps);
    for (int64_t i = 0; i < C; i++) out[i] = (float)(w[i] * x[i] * inv);
}

void hl_rope_ref(float *vec, int64_t n_heads, int64_t D, int64_t pos, float theta) {
    for (int64_t h = 0; h < n_heads; h++)
        for (int64_t i = 0; i < D; i += 2) {
            double a = pos * pow(theta, -(double)i / D);
            double v0 = vec[h * D + i], v1 = vec[h * D + i + 1];
            vec[h * D + i] = (float)(v0 * cos(a) - v1 * sin(a));
            vec[h * D + i + 1] = (float)(v0 * sin(a) + v1 * cos(a));
        }
}

void hl_attention_ref(float *out, const float *q, const float *kcache, const float *vcache,
                      int64_t T, int64_t pos0, int64_t H, int64_t Hkv, int64_t D) {
    int64_t kv_dim = Hkv * D, group = H / Hkv;
    double *att = malloc((size_t)(pos0 + T) * sizeof *att);
    if (!att) abort(); /* test-only code */
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < H; h++) {
            int64_t pos = pos0 + t, kvh = h / group;
            double mx = -INFINITY, sum = 0;
            for (int64_t s = 0; s <= pos; s++) {
                double d = 0;
                for (int64_t i = 0; i < D; i++) d += (double)q[t * H * D + h * D + i] * kcache[s * kv_dim + kvh * D + i];
                att[s] = d / sqrt((double)D);
                if (att[s] > mx) mx = att[s];
            }
            for (int64_t s = 0; s <= pos; s++) sum += (att[s] = exp(att[s] - mx));
            for (int64_t i = 0; i < D; i++) {
                double o = 0;
                for (int64_t s = 0; s <= pos; s++) o += att[s] / sum * vcache[s * kv_dim + kvh * D + i];
                out[t * H * D + h * D + i] = (float)o;
            }
        }
    free(att);
}

void hl_matmul_nn_ref(float *out, const float *dy, const float *w, int64_t T, int64_t O, int64_t K) {
    for (int64_t t = 0; t < T; t++)
        for (int64_t k = 0; k < K; k++) {
            double s = 0;
            for (int64_t o = 0; o < O; o++) s += (double)dy[t * O + o] * w[o * K + k];
            out[t * K + k] = (float)s;
        }
}

void hl_matmul_tn_ref(float *g, const float *p, const float *q, int64_t T, int64_t M, int64_t N) {
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double s = 0;
            for (int64_t t = 0; t < T; t++) s += (double)p[t * M + m] * q[t * N + n];
            g[m * N + n] = (float)s;
        }
}
