/* attention.c: causal grouped-query attention over the KV cache.
 * Query head h reads kv head h / (H / Hkv). Work is split over (token, head)
 * pairs; each pair's reductions run in a fixed order. */
#include "kernels/kernels.h"

#include <math.h>
#include <string.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

/* y += a·x with fused multiply-adds: one rounding per element, the same in the
 * vector and scalar paths, so every caller sees identical bits. */
static inline void axpy(float *restrict y, float a, const float *restrict x, int64_t n) {
    int64_t i = 0;
#if defined(__AVX2__) && defined(__FMA__)
    __m256 va = _mm256_set1_ps(a);
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
#endif
    for (; i < n; i++) y[i] = fmaf(a, x[i], y[i]);
}

typedef struct {
    float *out;
    const float *q, *kc, *vc;
    int64_t T, pos0, H, Hkv, D, n_ctx;
    float *scratch;
} attn_job;

static void attn_pairs(void *arg, int64_t begin, int64_t end, int worker) {
    const attn_job *j = arg;
    const int64_t kv_dim = j->Hkv * j->D, group = j->H / j->Hkv;
    const float inv_sqrt_d = 1.0f / sqrtf((float)j->D);
    float *att = j->scratch + (int64_t)worker * j->n_ctx;
    for (int64_t p = begin; p < end; p++) {
        int64_t t = p / j->H, h = p % j->H, kvh = h / group;
        int64_t pos = j->pos0 + t;
        const float *q = j->q + t * j->H * j->D + h * j->D;
        for (int64_t s = 0; s <= pos; s++) att[s] = hl_dot(q, j->kc + s * kv_dim + kvh * j->D, j->D) * inv_sqrt_d;
        hl_softmax(att, pos + 1);
        float *o = j->out + t * j->H * j->D + h * j->D;
        memset(o, 0, (size_t)j->D * sizeof *o);
        for (int64_t s = 0; s <= pos; s++) axpy(o, att[s], j->vc + s * kv_dim + kvh * j->D, j->D);
    }
}

void hl_attention(hl_pool *pool, float *out, const float *q, const float *kcache, const float *vcache,
                  int64_t T, int64_t pos0, int64_t H, int64_t Hkv, int64_t D, int64_t n_ctx, float *scratch) {
    attn_job j = {out, q, kcache, vcache, T, pos0, H, Hkv, D, n_ctx, scratch};
    /* Tiny decode steps run inline: waking workers costs more than the work. */
    if (T * (pos0 + T) * H * D < 16384) pool = NULL;
    hl_pool_for(pool, T * H, 1, attn_pairs, &j);
}

/* ---- training: whole sequences from position 0, probabilities saved ---- */

typedef struct {
    float *out, *probs, *dq, *dk, *dv; /* probs written by the forward pass */
    const float *q, *k, *v, *dout, *probs_in;
    int64_t B, T, H, Hkv, D;
} attn_train_job;

static void attn_train_fwd(void *arg, int64_t begin, int64_t end, int worker) {
    (void)worker;
    const attn_train_job *j = arg;
    const int64_t T = j->T, H = j->H, D = j->D, kvd = j->Hkv * D, group = H / j->Hkv;
    const float inv_sqrt_d = 1.0f / sqrtf((float)D);
    for (int64_t p = begin; p < end; p++) { /* p = (b, h, t) */
        int64_t t = p % T, h = (p / T) % H, b = p / (T * H), kvh = h / group;
        const float *q = j->q + (b * T + t) * H * D + h * D;
        float *pr = j->probs + ((b * H + h) * T + t) * T;
        for (int64_t s = 0; s <= t; s++) pr[s] = hl_dot(q, j->k + (b * T + s) * kvd + kvh * D, D) * inv_sqrt_d;
        hl_softmax(pr, t + 1);
        for (int64_t s = t + 1; s < T; s++) pr[s] = 0.0f;
        float *restrict o = j->out + (b * T + t) * H * D + h * D;
        memset(o, 0, (size_t)D * sizeof *o);
        for (int64_t s = 0; s <= t; s++) axpy(o, pr[s], j->v + (b * T + s) * kvd + kvh * D, D);
    }
}

void hl_attention_train(hl_pool *pool, float *out, float *probs, const float *q, const float *k, const float *v,
                        int64_t B, int64_t T, int64_t H, int64_t Hkv, int64_t D) {
    attn_train_job j = {.out = out, .probs = probs, .q = q, .k = k, .v = v, .B = B, .T = T, .H = H, .Hkv = Hkv, .D = D};
    hl_pool_for(pool, B * H * T, T, attn_train_fwd, &j);
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
                for (int64_t s = 0; s <= t; s++) {
                    dp[s] = hl_dot(dout, j->v + (b * T + s) * kvd + kvh * D, D);
                    sum += (double)pr[s] * dp[s];
                }
                memset(dq, 0, (size_t)D * sizeof(float));
                for (int64_t s = 0; s <= t; s++) {
                    float ds = pr[s] * (dp[s] - (float)sum) * inv_sqrt_d;
                    const float *restrict ks = j->k + (b * T + s) * kvd + kvh * D;
                    float *restrict dks = j->dk + (b * T + s) * kvd + kvh * D;
                    float *restrict dvs = j->dv + (b * T + s) * kvd + kvh * D;
                    axpy(dq, ds, ks, D);
                    axpy(dks, ds, q, D);
                    axpy(dvs, pr[s], dout, D);
                }
            }
    }
}

void hl_attention_train_backward(hl_pool *pool, float *dq, float *dk, float *dv, const float *dout,
                                 const float *probs, const float *q, const float *k, const float *v, int64_t B,
                                 int64_t T, int64_t H, int64_t Hkv, int64_t D) {
    attn_train_job j = {.dq = dq, .dk = dk, .dv = dv, .dout = dout, .probs_in = probs, .q = q, .k = k, .v = v,
                        .B = B, .T = T, .H = H, .Hkv = Hkv, .D = D};
    hl_pool_for(pool, B * Hkv, 1, attn_train_bwd, &j);
}
