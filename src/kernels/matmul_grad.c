/* matmul_grad.c: the two products the backward pass needs besides x·Wᵀ:
 * dY·W (input gradients through frozen weights) and Pᵀ·Q (LoRA weight
 * gradients). Both keep one summation order per output element (the
 * reduced index in increasing order, fused multiply-add), whatever the
 * tiling or thread split, so training is bit-reproducible at any --threads. */
#include "kernels/kernels.h"

#include <math.h>
#include <stddef.h>
#include <string.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define HL_HAVE_AVX2 1
#endif

typedef struct {
    float *out;
    const float *dy, *w;
    int64_t T, O, K;
    float scale;
    int accumulate;
} nn_job;

static inline void nn_store(const nn_job *j, int64_t t, int64_t k, float v) {
    float *d = j->out + t * j->K + k;
    if (j->accumulate) *d = *d + j->scale * v;
    else *d = j->scale == 1.0f ? v : j->scale * v;
}

/* One element: Σ_o dy[t][o]·w[o][k], in order. */
static float nn_elem(const nn_job *j, int64_t t, int64_t k) {
    float acc = 0.0f;
    const float *dy = j->dy + t * j->O;
    for (int64_t o = 0; o < j->O; o++) acc = fmaf(dy[o], j->w[o * j->K + k], acc);
    return acc;
}

#ifdef HL_HAVE_AVX2
/* 4 tokens × 16 columns: 8 accumulators, W row chunk loaded once per o. */
static void nn_tile(const nn_job *j, int64_t t, int64_t nt, int64_t k) {
    __m256 acc[4][2];
    for (int i = 0; i < 4; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    const float *dy = j->dy + t * j->O;
    for (int64_t o = 0; o < j->O; o++) {
        const float *wr = j->w + o * j->K + k;
        __m256 w0 = _mm256_loadu_ps(wr), w1 = _mm256_loadu_ps(wr + 8);
        for (int i = 0; i < nt; i++) {
            __m256 b = _mm256_broadcast_ss(dy + i * j->O + o);
            acc[i][0] = _mm256_fmadd_ps(b, w0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(b, w1, acc[i][1]);
        }
    }
    for (int i = 0; i < nt; i++) {
        float tmp[16];
        _mm256_storeu_ps(tmp, acc[i][0]);
        _mm256_storeu_ps(tmp + 8, acc[i][1]);
        for (int c = 0; c < 16; c++) nn_store(j, t + i, k + c, tmp[c]);
    }
}
#endif

static void nn_cols(void *arg, int64_t c_begin, int64_t c_end, int worker) {
    (void)worker;
    const nn_job *j = arg;
    int64_t k = c_begin;
#ifdef HL_HAVE_AVX2
    for (; k + 16 <= c_end; k += 16)
        for (int64_t t = 0; t < j->T; t += 4) nn_tile(j, t, j->T - t < 4 ? j->T - t : 4, k);
#endif
    for (; k < c_end; k++)
        for (int64_t t = 0; t < j->T; t++) nn_store(j, t, k, nn_elem(j, t, k));
}

void hl_matmul_nn(hl_pool *pool, float *out, const float *dy, const float *w, int64_t T, int64_t O, int64_t K,
                  float scale, int accumulate) {
    nn_job j = {out, dy, w, T, O, K, scale, accumulate};
    if (T * O * K < 32768) pool = NULL;
    hl_pool_for(pool, K, 16, nn_cols, &j);
}

typedef struct {
    float *g;
    const float *p, *q;
    int64_t T, M, N;
} tn_job;

static void tn_rows(void *arg, int64_t m_begin, int64_t m_end, int worker) {
    (void)worker;
    const tn_job *j = arg;
    for (int64_t m = m_begin; m < m_end; m++) {
        float *g = j->g + m * j->N;
        int64_t n = 0;
#ifdef HL_HAVE_AVX2
        for (; n + 16 <= j->N; n += 16) {
            __m256 a0 = _mm256_loadu_ps(g + n), a1 = _mm256_loadu_ps(g + n + 8);
            for (int64_t t = 0; t < j->T; t++) {
                __m256 b = _mm256_broadcast_ss(j->p + t * j->M + m);
                const float *qr = j->q + t * j->N + n;
                a0 = _mm256_fmadd_ps(b, _mm256_loadu_ps(qr), a0);
                a1 = _mm256_fmadd_ps(b, _mm256_loadu_ps(qr + 8), a1);
            }
            _mm256_storeu_ps(g + n, a0);
            _mm256_storeu_ps(g + n + 8, a1);
        }
#endif
        for (; n < j->N; n++) {
            float acc = g[n];
            for (int64_t t = 0; t < j->T; t++) acc = fmaf(j->p[t * j->M + m], j->q[t * j->N + n], acc);
            g[n] = acc;
        }
    }
}

void hl_matmul_tn_acc(hl_pool *pool, float *g, const float *p, const float *q, int64_t T, int64_t M, int64_t N) {
    tn_job j = {g, p, q, T, M, N};
    if (T * M * N < 32768) pool = NULL;
    hl_pool_for(pool, M, 1, tn_rows, &j);
}
