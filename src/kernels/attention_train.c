/* attention_train.c: causal grouped-query attention for training, forward and
 * backward, as small matrix products on OpenBLAS.
 *
 * A training row holds one or more documents (packed examples), each from
 * position 0; a token attends only to the earlier tokens of its own document,
 * so each (row, head) is a set of diagonal blocks, one per document, and each
 * block is a handful of (len × len) and (len × D) products. Within a document
 * rows are taken in blocks of ROW_BLOCK counted from the document's start, so
 * the products skip most of the masked upper triangle, and nothing outside
 * the diagonal blocks is computed: a row of several short documents costs
 * less than one long one. The work is split over (row, head) in the forward
 * pass and (row, kv head) in the backward pass, where the heads of a group add
 * into their shared dK/dV in a fixed order; the block grid depends on the
 * document boundaries only, so results do not depend on the thread count.
 * The attention probabilities are not kept between the passes: (L, B, H, T, T)
 * floats grow with T² and become the largest activation of a long-context run
 * (36 MiB at s110M's 12 layers and 12 heads for one 256-token row, 2.25 GiB
 * at 4 rows of 1024). Each worker holds one head's (T, T) at a time, and the backward pass
 * recomputes it with the forward pass's own code, for a few percent more
 * arithmetic and the same bits.
 * reference.c keeps the plain per-element versions that the tests compare
 * against. */
#include "kernels/kernels.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#define ROW_BLOCK 64

typedef struct {
    float *out, *dq, *dk, *dv, *scratch;
    const float *q, *k, *v, *dout;
    const int32_t *pos; /* (B, T) position of each token in its document, or NULL: one document per row */
    int64_t B, T, H, Hkv, D;
} job;

/* The end of the document that starts at s0 in row b: the next position 0, or T. */
static int64_t doc_end(const job *j, int64_t b, int64_t s0) {
    if (!j->pos) return j->T;
    const int32_t *p = j->pos + b * j->T;
    int64_t s1 = s0 + 1;
    while (s1 < j->T && p[s1] != 0) s1++;
    return s1;
}

/* Rows [r0, r1) of a document's causal block reach columns [s0, r1). */
static int64_t block_end(int64_t r0, int64_t s1) { return r0 + ROW_BLOCK < s1 ? r0 + ROW_BLOCK : s1; }

/* P (T, T) = the causal softmax of Q·Kᵀ/√D for head h of row b, document by
 * document in ROW_BLOCK row blocks, zero outside each token's document and
 * above the diagonal. The forward pass and the backward pass's recomputation
 * both call this, so the backward pass sees the forward pass's bits. */
static void head_probs(const job *j, int64_t b, int64_t h, float *P) {
    const int64_t T = j->T, H = j->H, D = j->D, kvd = j->Hkv * D, group = H / j->Hkv, qd = H * D;
    const float inv_sqrt_d = 1.0f / sqrtf((float)D);
    const float *q = j->q + b * T * qd + h * D;          /* (T, D), row stride qd */
    const float *k = j->k + b * T * kvd + (h / group) * D; /* (T, D), row stride kvd */
    for (int64_t s0 = 0, s1; s0 < T; s0 = s1) { /* one document: tokens [s0, s1) */
        s1 = doc_end(j, b, s0);
        for (int64_t r0 = s0; r0 < s1; r0 += ROW_BLOCK) {
            int64_t r1 = block_end(r0, s1), m = r1 - r0, n = r1 - s0;
            /* S[r0:r1, s0:r1] = Q[r0:r1] · K[s0:r1]ᵀ / √D */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, (int)D, inv_sqrt_d, q + r0 * qd,
                        (int)qd, k + s0 * kvd, (int)kvd, 0.0f, P + r0 * T + s0, (int)T);
            for (int64_t t = r0; t < r1; t++) {
                float *row = P + t * T + s0, mx = row[0];
                int64_t len = t - s0 + 1;
                for (int64_t s = 1; s < len; s++) mx = row[s] > mx ? row[s] : mx;
                float inv = (float)(1.0 / hl_exp_sum(row, row, len, mx));
                for (int64_t s = 0; s < len; s++) row[s] *= inv;
                /* zero outside [s0, t]: before the document and above the diagonal */
                memset(P + t * T, 0, (size_t)s0 * sizeof(float));
                memset(P + t * T + t + 1, 0, (size_t)(T - t - 1) * sizeof(float));
            }
        }
    }
}

static void fwd(void *arg, int64_t begin, int64_t end, int worker) {
    const job *j = arg;
    const int64_t T = j->T, H = j->H, D = j->D, kvd = j->Hkv * D, group = H / j->Hkv, qd = H * D;
    float *P = j->scratch + (int64_t)worker * T * T; /* (T, T): this head's probabilities */
    for (int64_t p = begin; p < end; p++) { /* p = (b, h) */
        int64_t b = p / H, h = p % H, kvh = h / group;
        const float *v = j->v + b * T * kvd + kvh * D; /* (T, D), row stride kvd */
        float *o = j->out + b * T * qd + h * D;
        head_probs(j, b, h, P);
        for (int64_t s0 = 0, s1; s0 < T; s0 = s1) {
            s1 = doc_end(j, b, s0);
            for (int64_t r0 = s0; r0 < s1; r0 += ROW_BLOCK) {
                int64_t r1 = block_end(r0, s1), m = r1 - r0, n = r1 - s0;
                /* O[r0:r1] = P[r0:r1, s0:r1] · V[s0:r1] */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)D, (int)n, 1.0f, P + r0 * T + s0,
                            (int)T, v + s0 * kvd, (int)kvd, 0.0f, o + r0 * qd, (int)qd);
            }
        }
    }
}

void hl_attention_train(hl_pool *pool, float *out, const float *q, const float *k, const float *v,
                        const int32_t *pos, int64_t B, int64_t T, int64_t H, int64_t Hkv, int64_t D, float *scratch) {
    job j = {.out = out, .q = q, .k = k, .v = v, .pos = pos, .B = B, .T = T, .H = H, .Hkv = Hkv, .D = D,
             .scratch = scratch};
    hl_gemm_init();
    hl_pool_for(pool, B * H, 1, fwd, &j);
}

static void bwd(void *arg, int64_t begin, int64_t end, int worker) {
    const job *j = arg;
    const int64_t T = j->T, H = j->H, D = j->D, kvd = j->Hkv * D, group = H / j->Hkv, qd = H * D;
    const float inv_sqrt_d = 1.0f / sqrtf((float)D);
    float *dS = j->scratch + (int64_t)worker * 2 * T * T; /* (T, T): dP, then dS in place */
    float *P = dS + T * T;                                  /* (T, T): the head's probabilities, recomputed */
    for (int64_t p = begin; p < end; p++) { /* p = (b, kv head) */
        int64_t b = p / j->Hkv, kvh = p % j->Hkv;
        const float *k = j->k + b * T * kvd + kvh * D, *v = j->v + b * T * kvd + kvh * D;
        float *dk = j->dk + b * T * kvd + kvh * D, *dv = j->dv + b * T * kvd + kvh * D;
        for (int64_t h = kvh * group; h < (kvh + 1) * group; h++) {
            head_probs(j, b, h, P);
            const float *dout = j->dout + b * T * qd + h * D, *q = j->q + b * T * qd + h * D;
            float *dq = j->dq + b * T * qd + h * D;
            const float beta = h == kvh * group ? 0.0f : 1.0f; /* the group's first head stores, the rest add */
            for (int64_t s0 = 0, s1; s0 < T; s0 = s1) { /* one document: tokens [s0, s1) */
                s1 = doc_end(j, b, s0);
                for (int64_t r0 = s0; r0 < s1; r0 += ROW_BLOCK) {
                    int64_t r1 = block_end(r0, s1), m = r1 - r0, n = r1 - s0;
                    /* dP[r0:r1, s0:r1] = dO[r0:r1] · V[s0:r1]ᵀ */
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, (int)D, 1.0f,
                                dout + r0 * qd, (int)qd, v + s0 * kvd, (int)kvd, 0.0f, dS + r0 * T + s0, (int)T);
                    /* dS = P ⊙ (dP − Σ P⊙dP) / √D on and below the diagonal, 0 above it within the block */
                    for (int64_t t = r0; t < r1; t++) {
                        const float *pr = P + t * T + s0;
                        float *row = dS + t * T + s0;
                        int64_t len = t - s0 + 1;
                        double sum = 0;
                        for (int64_t s = 0; s < len; s++) sum += (double)pr[s] * row[s];
                        for (int64_t s = 0; s < len; s++) row[s] = pr[s] * (row[s] - (float)sum) * inv_sqrt_d;
                        memset(row + len, 0, (size_t)(r1 - t - 1) * sizeof(float));
                    }
                    /* dQ[r0:r1] = dS[r0:r1, s0:r1] · K[s0:r1] */
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)D, (int)n, 1.0f,
                                dS + r0 * T + s0, (int)T, k + s0 * kvd, (int)kvd, 0.0f, dq + r0 * qd, (int)qd);
                }
                /* dK[c0:c1] (+)= dS[c0:s1, c0:c1]ᵀ · Q[c0:s1];  dV[c0:c1] (+)= P[c0:s1, c0:c1]ᵀ · dO[c0:s1] */
                for (int64_t c0 = s0; c0 < s1; c0 += ROW_BLOCK) {
                    int64_t c1 = block_end(c0, s1), n = c1 - c0, rows = s1 - c0;
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n, (int)D, (int)rows, 1.0f,
                                dS + c0 * T + c0, (int)T, q + c0 * qd, (int)qd, beta, dk + c0 * kvd, (int)kvd);
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n, (int)D, (int)rows, 1.0f,
                                P + c0 * T + c0, (int)T, dout + c0 * qd, (int)qd, beta, dv + c0 * kvd, (int)kvd);
                }
            }
        }
    }
}

void hl_attention_train_backward(hl_pool *pool, float *dq, float *dk, float *dv, const float *dout, const float *q,
                                 const float *k, const float *v, const int32_t *pos, int64_t B, int64_t T, int64_t H,
                                 int64_t Hkv, int64_t D, float *scratch) {
    job j = {.dq = dq, .dk = dk, .dv = dv, .dout = dout, .q = q, .k = k, .v = v, .pos = pos,
             .B = B, .T = T, .H = H, .Hkv = Hkv, .D = D, .scratch = scratch};
    hl_gemm_init();
    hl_pool_for(pool, B * Hkv, 1, bwd, &j);
}
