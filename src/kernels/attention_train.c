/* attention_train.c: causal grouped-query attention for training, forward and
 * backward, as small matrix products on OpenBLAS.
 *
 * A training batch holds whole sequences from position 0, so each (sequence,
 * head) is a handful of (T × T) and (T × D) products. Rows are taken in
 * blocks of ROW_BLOCK so that the products skip most of the masked upper
 * triangle. The work is split over (sequence, head) in the forward pass and
 * (sequence, kv head) in the backward pass, where the heads of a group add into
 * their shared dK/dV in a fixed order; the block grid depends on T only, so
 * results do not depend on the thread count. reference.c keeps the plain
 * per-element versions that the tests compare against.
 */
#include "kernels/kernels.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#define ROW_BLOCK 64

typedef struct {
    float *out, *probs, *dq, *dk, *dv, *scratch;
    const float *q, *k, *v, *dout, *probs_in;
    int64_t B, T, H, Hkv, D;
} job;

/* Rows [r0, r1) of a causal (T × T) score matrix reach columns [0, r1). */
static int64_t block_end(int64_t r0, int64_t T) { return r0 + ROW_BLOCK < T ? r0 + ROW_BLOCK : T; }

static void fwd(void *arg, int64_t begin, int64_t end, int worker) {
    (void)worker;
    const job *j = arg;
    const int64_t T = j->T, H = j->H, D = j->D, kvd = j->Hkv * D, group = H / j->Hkv, qd = H * D;
    const float inv_sqrt_d = 1.0f / sqrtf((float)D);
    for (int64_t p = begin; p < end; p++) { /* p = (b, h) */
        int64_t b = p / H, h = p % H, kvh = h / group;
        const float *q = j->q + b * T * qd + h * D;  /* (T, D), row stride qd */
        const float *k = j->k + b * T * kvd + kvh * D; /* (T, D), row stride kvd */
        const float *v = j->v + b * T * kvd + kvh * D;
        float *P = j->probs + (b * H + h) * T * T; /* (T, T) */
        float *o = j->out + b * T * qd + h * D;
        for (int64_t r0 = 0; r0 < T; r0 += ROW_BLOCK) {
            int64_t r1 = block_end(r0, T), m = r1 - r0;
            /* S[r0:r1, 0:r1] = Q[r0:r1] · K[0:r1]ᵀ / √D */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)r1, (int)D, inv_sqrt_d, q + r0 * qd,
                        (int)qd, k, (int)kvd, 0.0f, P + r0 * T, (int)T);
            for (int64_t t = r0; t < r1; t++) {
                float *row = P + t * T, mx = row[0];
                for (int64_t s = 1; s <= t; s++) mx = row[s] > mx ? row[s] : mx;
                float inv = (float)(1.0 / hl_exp_sum(row, row, t + 1, mx));
                for (int64_t s = 0; s <= t; s++) row[s] *= inv;
                memset(row + t + 1, 0, (size_t)(T - t - 1) * sizeof(float));
            }
            /* O[r0:r1] = P[r0:r1, 0:r1] · V[0:r1] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)D, (int)r1, 1.0f, P + r0 * T, (int)T,
                        v, (int)kvd, 0.0f, o + r0 * qd, (int)qd);
        }
    }
}

void hl_attention_train(hl_pool *pool, float *out, float *probs, const float *q, const float *k, const float *v,
                        int64_t B, int64_t T, int64_t H, int64_t Hkv, int64_t D) {
    job j = {.out = out, .probs = probs, .q = q, .k = k, .v = v, .B = B, .T = T, .H = H, .Hkv = Hkv, .D = D};
    hl_gemm_init();
    hl_pool_for(pool, B * H, 1, fwd, &j);
}

static void bwd(void *arg, int64_t begin, int64_t end, int worker) {
    const job *j = arg;
    const int64_t T = j->T, H = j->H, D = j->D, kvd = j->Hkv * D, group = H / j->Hkv, qd = H * D;
    const float inv_sqrt_d = 1.0f / sqrtf((float)D);
    float *dS = j->scratch + (int64_t)worker * T * T; /* (T, T): dP, then dS in place */
    for (int64_t p = begin; p < end; p++) { /* p = (b, kv head) */
        int64_t b = p / j->Hkv, kvh = p % j->Hkv;
        const float *k = j->k + b * T * kvd + kvh * D, *v = j->v + b * T * kvd + kvh * D;
        float *dk = j->dk + b * T * kvd + kvh * D, *dv = j->dv + b * T * kvd + kvh * D;
        for (int64_t h = kvh * group; h < (kvh + 1) * group; h++) {
            const float *P = j->probs_in + (b * H + h) * T * T;
            const float *dout = j->dout + b * T * qd + h * D, *q = j->q + b * T * qd + h * D;
            float *dq = j->dq + b * T * qd + h * D;
            const float beta = h == kvh * group ? 0.0f : 1.0f; /* the group's first head stores, the rest add */
            for (int64_t r0 = 0; r0 < T; r0 += ROW_BLOCK) {
                int64_t r1 = block_end(r0, T), m = r1 - r0;
                /* dP[r0:r1, 0:r1] = dO[r0:r1] · V[0:r1]ᵀ */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)r1, (int)D, 1.0f, dout + r0 * qd,
                            (int)qd, v, (int)kvd, 0.0f, dS + r0 * T, (int)T);
                /* dS = P ⊙ (dP − Σ P⊙dP) / √D on and below the diagonal, 0 above */
                for (int64_t t = r0; t < r1; t++) {
                    const float *pr = P + t * T;
                    float *row = dS + t * T;
                    double sum = 0;
                    for (int64_t s = 0; s <= t; s++) sum += (double)pr[s] * row[s];
                    for (int64_t s = 0; s <= t; s++) row[s] = pr[s] * (row[s] - (float)sum) * inv_sqrt_d;
                    memset(row + t + 1, 0, (size_t)(r1 - t - 1) * sizeof(float));
                }
                /* dQ[r0:r1] = dS[r0:r1, 0:r1] · K[0:r1] */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)D, (int)r1, 1.0f, dS + r0 * T,
                            (int)T, k, (int)kvd, 0.0f, dq + r0 * qd, (int)qd);
            }
            /* dK[c0:c1] (+)= dS[c0:T, c0:c1]ᵀ · Q[c0:T];  dV[c0:c1] (+)= P[c0:T, c0:c1]ᵀ · dO[c0:T] */
            for (int64_t c0 = 0; c0 < T; c0 += ROW_BLOCK) {
                int64_t c1 = block_end(c0, T), n = c1 - c0, rows = T - c0;
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n, (int)D, (int)rows, 1.0f,
                            dS + c0 * T + c0, (int)T, q + c0 * qd, (int)qd, beta, dk + c0 * kvd, (int)kvd);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n, (int)D, (int)rows, 1.0f,
                            P + c0 * T + c0, (int)T, dout + c0 * qd, (int)qd, beta, dv + c0 * kvd, (int)kvd);
            }
        }
    }
}

void hl_attention_train_backward(hl_pool *pool, float *dq, float *dk, float *dv, const float *dout,
                                 const float *probs, const float *q, const float *k, const float *v, int64_t B,
                                 int64_t T, int64_t H, int64_t Hkv, int64_t D, float *scratch) {
    job j = {.dq = dq, .dk = dk, .dv = dv, .dout = dout, .probs_in = probs, .q = q, .k = k, .v = v, .B = B, .T = T,
             .H = H, .Hkv = Hkv, .D = D, .scratch = scratch};
    hl_gemm_init();
    hl_pool_for(pool, B * Hkv, 1, bwd, &j);
}
