/* reference.c: plain, obviously-correct versions of the kernels, accumulated
 * in double. Tests compare the fast kernels against these; nothing else
 * calls them. */
#include "kernels/kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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

void hl_rope_neox_ref(float *vec, int64_t n_heads, int64_t D, int64_t pos, float theta, const float *ff) {
    for (int64_t h = 0; h < n_heads; h++)
        for (int64_t j = 0; j < D / 2; j++) {
            double a = pos * pow(theta, -(double)(2 * j) / D) / (ff ? ff[j] : 1.0);
            double v0 = vec[h * D + j], v1 = vec[h * D + j + D / 2];
            vec[h * D + j] = (float)(v0 * cos(a) - v1 * sin(a));
            vec[h * D + j + D / 2] = (float)(v0 * sin(a) + v1 * cos(a));
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

static void ref_axpy(float *y, float a, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

/* ---- training attention, one (row, head) at a time ---- */

typedef struct {
    float *out, *probs, *dq, *dk, *dv; /* probs written by the forward pass */
    const float *q, *k, *v, *dout, *probs_in;
    const int32_t *pos; /* (B, T) or NULL */
    int64_t B, T, H, Hkv, D;
} attn_train_job;

/* The first token of t's document in row b: t less its position. */
static int64_t doc_start(const attn_train_job *j, int64_t b, int64_t t) {
    return j->pos ? t - j->pos[b * j->T + t] : 0;
}

static void attn_train_fwd(void *arg, int64_t begin, int64_t end, int worker) {
    (void)worker;
    const attn_train_job *j = arg;
    const int64_t T = j->T, H = j->H, D = j->D, kvd = j->Hkv * D, group = H / j->Hkv;
    const float inv_sqrt_d = 1.0f / sqrtf((float)D);
    for (int64_t p = begin; p < end; p++) { /* p = (b, h, t) */
        int64_t t = p % T, h = (p / T) % H, b = p / (T * H), kvh = h / group;
        const float *q = j->q + (b * T + t) * H * D + h * D;
        float *pr = j->probs + ((b * H + h) * T + t) * T;
        int64_t s0 = doc_start(j, b, t);
        for (int64_t s = 0; s < T; s++) pr[s] = 0.0f;
        for (int64_t s = s0; s <= t; s++) pr[s] = hl_dot(q, j->k + (b * T + s) * kvd + kvh * D, D) * inv_sqrt_d;
        hl_softmax(pr + s0, t - s0 + 1);
        float *restrict o = j->out + (b * T + t) * H * D + h * D;
        memset(o, 0, (size_t)D * sizeof *o);
        for (int64_t s = s0; s <= t; s++) ref_axpy(o, pr[s], j->v + (b * T + s) * kvd + kvh * D, D);
    }
}

void hl_attention_train_ref(float *out, float *probs, const float *q, const float *k, const float *v,
                            const int32_t *pos, int64_t B, int64_t T, int64_t H, int64_t Hkv, int64_t D) {
    attn_train_job j = {.out = out, .probs = probs, .q = q, .k = k, .v = v, .pos = pos, .B = B, .T = T, .H = H,
                        .Hkv = Hkv, .D = D};
    attn_train_fwd(&j, 0, B * H * T, 0);
}

static void attn_train_bwd(void *arg, int64_t begin, int64_t end, int worker) {
    (void)worker;
    const attn_train_job *j = arg;
    const int64_t T = j->T, H = j->H, D = j->D, kvd = j->Hkv * D, group = H / j->Hkv;
    const float inv_sqrt_d = 1.0f / sqrtf((float)D);
    float dp[4096];
    for (int64_t p = begin; p < end; p++) { /* p = (b, kv head) */
        int64_t b = p / j->Hkv, kvh = p % j->Hkv;
        for (int64_t s = 0; s < T; s++) {
            memset(j->dk + (b * T + s) * kvd + kvh * D, 0, (size_t)D * sizeof(float));
            memset(j->dv + (b * T + s) * kvd + kvh * D, 0, (size_t)D * sizeof(float));
        }
        for (int64_t h = kvh * group; h < (kvh + 1) * group; h++)
            for (int64_t t = 0; t < T; t++) {
                const float *pr = j->probs_in + ((b * H + h) * T + t) * T;
                const float *dout = j->dout + (b * T + t) * H * D + h * D;
                const float *q = j->q + (b * T + t) * H * D + h * D;
                float *restrict dq = j->dq + (b * T + t) * H * D + h * D;
                /* dP = dout·v_s; dS = P ⊙ (dP − Σ P⊙dP) */
                double sum = 0;
                int64_t s0 = doc_start(j, b, t);
                for (int64_t s = s0; s <= t; s++) {
                    dp[s] = hl_dot(dout, j->v + (b * T + s) * kvd + kvh * D, D);
                    sum += (double)pr[s] * dp[s];
                }
                memset(dq, 0, (size_t)D * sizeof(float));
                for (int64_t s = s0; s <= t; s++) {
                    float ds = pr[s] * (dp[s] - (float)sum) * inv_sqrt_d;
                    const float *restrict ks = j->k + (b * T + s) * kvd + kvh * D;
                    float *restrict dks = j->dk + (b * T + s) * kvd + kvh * D;
                    float *restrict dvs = j->dv + (b * T + s) * kvd + kvh * D;
                    ref_axpy(dq, ds, ks, D);
                    ref_axpy(dks, ds, q, D);
                    ref_axpy(dvs, pr[s], dout, D);
                }
            }
    }
}

void hl_attention_train_backward_ref(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                                     const float *q, const float *k, const float *v, const int32_t *pos, int64_t B,
                                     int64_t T, int64_t H, int64_t Hkv, int64_t D) {
    attn_train_job j = {.dq = dq, .dk = dk, .dv = dv, .dout = dout, .probs_in = probs, .q = q, .k = k, .v = v,
                        .pos = pos, .B = B, .T = T, .H = H, .Hkv = Hkv, .D = D};
    attn_train_bwd(&j, 0, B * Hkv, 0);
}

/* SwiGLU and its gradient in double with libm's exp. */
void hl_swiglu_ref(float *out, const float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = (float)(gate[i] / (1.0 + exp(-(double)gate[i])) * up[i]);
}

void hl_swiglu_backward_ref(float *dgate, float *dup, const float *gate, const float *up, const float *dout, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        double g = gate[i], sig = 1.0 / (1.0 + exp(-g));
        dgate[i] = (float)(dout[i] * up[i] * sig * (1.0 + g * (1.0 - sig)));
        dup[i] = (float)(dout[i] * g * sig);
    }
}
