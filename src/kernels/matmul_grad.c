/* matmul_grad.c: the two products the backward pass needs besides x·Wᵀ:
 * dY·W (input gradients through frozen weights) and Pᵀ·Q (LoRA weight
 * gradients). Both keep one summation order per output element (the
 * reduced index in increasing order, fused multiply-add), whatever the
 * tiling or thread split, so training is bit-reproducible at any --threads. */
#include "kernels/kernels.h"
#include "util/alloc.h"

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
    float *partial; /* (T, K) running sums between blocks of o, or NULL: then out holds them */
    int64_t o0, o1; /* the block of o this pass covers */
} nn_job;

/* The reduction over o runs in blocks of NN_BLOCK rows of W, so a block of W
 * (NN_BLOCK × 24 columns) stays in cache across all token tiles. Each
 * element's running sum is kept in memory between blocks, which leaves its
 * summation order (o increasing, fused multiply-add) exactly as unblocked. */
#define NN_BLOCK 256

static inline float *nn_sum_slot(const nn_job *j, int64_t t, int64_t k) {
    return (j->partial ? j->partial : j->out) + t * j->K + k;
}

/* Running sum at the start of this block (0 for the first block). */
static inline float nn_load(const nn_job *j, int64_t t, int64_t k) {
    return j->o0 == 0 ? 0.0f : *nn_sum_slot(j, t, k);
}

/* Saves the running sum; after the last block, applies scale/accumulate. */
static inline void nn_save(const nn_job *j, int64_t t, int64_t k, float v) {
    if (j->o1 < j->O) {
        *nn_sum_slot(j, t, k) = v;
        return;
    }
    float *d = j->out + t * j->K + k;
    if (j->accumulate) *d = *d + j->scale * v;
    else *d = j->scale == 1.0f ? v : j->scale * v;
}

/* One element over this block: Σ_{o in block} dy[t][o]·w[o][k], in order. */
static void nn_elem(const nn_job *j, int64_t t, int64_t k) {
    float acc = nn_load(j, t, k);
    const float *dy = j->dy + t * j->O;
    for (int64_t o = j->o0; o < j->o1; o++) acc = fmaf(dy[o], j->w[o * j->K + k], acc);
    nn_save(j, t, k, acc);
}

#ifdef HL_HAVE_AVX2
static inline __m256 nn_load8(const nn_job *j, int64_t t, int64_t k) {
    return j->o0 == 0 ? _mm256_setzero_ps() : _mm256_loadu_ps(nn_sum_slot(j, t, k));
}

static inline void nn_save8(const nn_job *j, int64_t t, int64_t k, __m256 v) {
    if (j->o1 < j->O) {
        _mm256_storeu_ps(nn_sum_slot(j, t, k), v);
        return;
    }
    float tmp[8];
    _mm256_storeu_ps(tmp, v);
    for (int c = 0; c < 8; c++) nn_save(j, t, k + c, tmp[c]);
}

/* 4 tokens × 24 columns: 12 accumulators; per o, 3 loads of W and 4 broadcasts of dy. */
static void nn_tile4x24(const nn_job *j, int64_t t, int64_t k) {
    __m256 a[4][3];
    for (int i = 0; i < 4; i++)
        for (int v = 0; v < 3; v++) a[i][v] = nn_load8(j, t + i, k + 8 * v);
    const int64_t O = j->O, K = j->K;
    const float *d0 = j->dy + t * O, *d1 = d0 + O, *d2 = d1 + O, *d3 = d2 + O;
    for (int64_t o = j->o0; o < j->o1; o++) {
        const float *wr = j->w + o * K + k;
        __m256 w0 = _mm256_loadu_ps(wr), w1 = _mm256_loadu_ps(wr + 8), w2 = _mm256_loadu_ps(wr + 16);
        __m256 b = _mm256_broadcast_ss(d0 + o);
        a[0][0] = _mm256_fmadd_ps(b, w0, a[0][0]); a[0][1] = _mm256_fmadd_ps(b, w1, a[0][1]); a[0][2] = _mm256_fmadd_ps(b, w2, a[0][2]);
        b = _mm256_broadcast_ss(d1 + o);
        a[1][0] = _mm256_fmadd_ps(b, w0, a[1][0]); a[1][1] = _mm256_fmadd_ps(b, w1, a[1][1]); a[1][2] = _mm256_fmadd_ps(b, w2, a[1][2]);
        b = _mm256_broadcast_ss(d2 + o);
        a[2][0] = _mm256_fmadd_ps(b, w0, a[2][0]); a[2][1] = _mm256_fmadd_ps(b, w1, a[2][1]); a[2][2] = _mm256_fmadd_ps(b, w2, a[2][2]);
        b = _mm256_broadcast_ss(d3 + o);
        a[3][0] = _mm256_fmadd_ps(b, w0, a[3][0]); a[3][1] = _mm256_fmadd_ps(b, w1, a[3][1]); a[3][2] = _mm256_fmadd_ps(b, w2, a[3][2]);
    }
    for (int i = 0; i < 4; i++)
        for (int v = 0; v < 3; v++) nn_save8(j, t + i, k + 8 * v, a[i][v]);
}

/* Up to 4 tokens × nv·8 columns (nv = 1 or 2): the tails of the 4 × 24 tiling. */
static void nn_tile(const nn_job *j, int64_t t, int64_t nt, int64_t k, int nv) {
    __m256 acc[4][2];
    for (int i = 0; i < nt; i++)
        for (int v = 0; v < nv; v++) acc[i][v] = nn_load8(j, t + i, k + 8 * v);
    const float *dy = j->dy + t * j->O;
    for (int64_t o = j->o0; o < j->o1; o++) {
        const float *wr = j->w + o * j->K + k;
        __m256 w0 = _mm256_loadu_ps(wr), w1 = nv > 1 ? _mm256_loadu_ps(wr + 8) : w0;
        for (int i = 0; i < nt; i++) {
            __m256 b = _mm256_broadcast_ss(dy + i * j->O + o);
            acc[i][0] = _mm256_fmadd_ps(b, w0, acc[i][0]);
            if (nv > 1) acc[i][1] = _mm256_fmadd_ps(b, w1, acc[i][1]);
        }
    }
    for (int i = 0; i < nt; i++)
        for (int v = 0; v < nv; v++) nn_save8(j, t + i, k + 8 * v, acc[i][v]);
}
#endif

static void nn_cols(void *arg, int64_t c_begin, int64_t c_end, int worker) {
    (void)worker;
    const nn_job *j = arg;
    int64_t k = c_begin;
#ifdef HL_HAVE_AVX2
    for (; k + 24 <= c_end; k += 24) {
        int64_t t = 0;
        for (; t + 4 <= j->T; t += 4) nn_tile4x24(j, t, k);
        if (t < j->T) {
            nn_tile(j, t, j->T - t, k, 2);
            nn_tile(j, t, j->T - t, k + 16, 1);
        }
    }
    while (k + 8 <= c_end) {
        int nv = c_end - k >= 16 ? 2 : 1;
        for (int64_t t = 0; t < j->T; t += 4) nn_tile(j, t, j->T - t < 4 ? j->T - t : 4, k, nv);
        k += 8 * nv;
    }
#endif
    for (; k < c_end; k++)
        for (int64_t t = 0; t < j->T; t++) nn_elem(j, t, k);
}

void hl_matmul_nn(hl_pool *pool, float *out, const float *dy, const float *w, int64_t T, int64_t O, int64_t K,
                  float scale, int accumulate) {
    nn_job j = {out, dy, w, T, O, K, scale, accumulate, NULL, 0, O};
    if (T * O * K < 32768) pool = NULL;
    int64_t block = NN_BLOCK;
    /* Running sums live in out unless out must keep its values until the end
     * (accumulate) or gets a scale; then in a scratch buffer. Without one the
     * reduction runs unblocked: slower, same bits. */
    if (O > block && (accumulate || scale != 1.0f)) {
        j.partial = hl_malloc_array((size_t)T * (size_t)K, sizeof(float));
        if (!j.partial) block = O;
    }
    for (int64_t o0 = 0; o0 < O; o0 += block) {
        j.o0 = o0;
        j.o1 = o0 + block < O ? o0 + block : O;
        hl_pool_for(pool, K, 24, nn_cols, &j);
    }
    hl_free(j.partial);
}

typedef struct {
    float *g;
    const float *p, *q;
    int64_t T, M, N;
    int64_t t0, t1; /* the block of t this pass covers */
} tn_job;

/* G rows [m_begin, m_end) += Σ_{t in [t0, t1)} P[t][m]·Q[t][n]. Each element
 * keeps its accumulator in G between blocks, so splitting t into blocks leaves
 * the summation order (t increasing, fused multiply-add) unchanged. */
static void tn_rows(void *arg, int64_t m_begin, int64_t m_end, int worker) {
    (void)worker;
    const tn_job *j = arg;
    const int64_t M = j->M, N = j->N;
    int64_t m = m_begin;
#ifdef HL_HAVE_AVX2
    /* 4 rows of G × 16 columns: 8 accumulators; per t, 2 loads of Q and 4 broadcasts of P. */
    for (; m + 4 <= m_end; m += 4) {
        int64_t n = 0;
        for (; n + 16 <= N; n += 16) {
            float *g0 = j->g + m * N + n, *g1 = g0 + N, *g2 = g1 + N, *g3 = g2 + N;
            __m256 a00 = _mm256_loadu_ps(g0), a01 = _mm256_loadu_ps(g0 + 8);
            __m256 a10 = _mm256_loadu_ps(g1), a11 = _mm256_loadu_ps(g1 + 8);
            __m256 a20 = _mm256_loadu_ps(g2), a21 = _mm256_loadu_ps(g2 + 8);
            __m256 a30 = _mm256_loadu_ps(g3), a31 = _mm256_loadu_ps(g3 + 8);
            for (int64_t t = j->t0; t < j->t1; t++) {
                const float *qr = j->q + t * N + n, *pr = j->p + t * M + m;
                __m256 q0 = _mm256_loadu_ps(qr), q1 = _mm256_loadu_ps(qr + 8);
                __m256 b = _mm256_broadcast_ss(pr);
                a00 = _mm256_fmadd_ps(b, q0, a00); a01 = _mm256_fmadd_ps(b, q1, a01);
                b = _mm256_broadcast_ss(pr + 1);
                a10 = _mm256_fmadd_ps(b, q0, a10); a11 = _mm256_fmadd_ps(b, q1, a11);
                b = _mm256_broadcast_ss(pr + 2);
                a20 = _mm256_fmadd_ps(b, q0, a20); a21 = _mm256_fmadd_ps(b, q1, a21);
                b = _mm256_broadcast_ss(pr + 3);
                a30 = _mm256_fmadd_ps(b, q0, a30); a31 = _mm256_fmadd_ps(b, q1, a31);
            }
            _mm256_storeu_ps(g0, a00); _mm256_storeu_ps(g0 + 8, a01);
            _mm256_storeu_ps(g1, a10); _mm256_storeu_ps(g1 + 8, a11);
            _mm256_storeu_ps(g2, a20); _mm256_storeu_ps(g2 + 8, a21);
            _mm256_storeu_ps(g3, a30); _mm256_storeu_ps(g3 + 8, a31);
        }
        for (; n + 8 <= N; n += 8) { /* 4 rows × 8 columns: LoRA's rank-8 factors */
            float *g0 = j->g + m * N + n, *g1 = g0 + N, *g2 = g1 + N, *g3 = g2 + N;
            __m256 a0 = _mm256_loadu_ps(g0), a1 = _mm256_loadu_ps(g1), a2 = _mm256_loadu_ps(g2), a3 = _mm256_loadu_ps(g3);
            for (int64_t t = j->t0; t < j->t1; t++) {
                const float *pr = j->p + t * M + m;
                __m256 q0 = _mm256_loadu_ps(j->q + t * N + n);
                a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(pr), q0, a0);
                a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(pr + 1), q0, a1);
                a2 = _mm256_fmadd_ps(_mm256_broadcast_ss(pr + 2), q0, a2);
                a3 = _mm256_fmadd_ps(_mm256_broadcast_ss(pr + 3), q0, a3);
            }
            _mm256_storeu_ps(g0, a0); _mm256_storeu_ps(g1, a1); _mm256_storeu_ps(g2, a2); _mm256_storeu_ps(g3, a3);
        }
        for (; n < N; n++)
            for (int64_t r = 0; r < 4; r++) {
                float acc = j->g[(m + r) * N + n];
                for (int64_t t = j->t0; t < j->t1; t++) acc = fmaf(j->p[t * M + m + r], j->q[t * N + n], acc);
                j->g[(m + r) * N + n] = acc;
            }
    }
#endif
    for (; m < m_end; m++) {
        float *g = j->g + m * N;
        for (int64_t n = 0; n < N; n++) {
            float acc = g[n];
            for (int64_t t = j->t0; t < j->t1; t++) acc = fmaf(j->p[t * M + m], j->q[t * N + n], acc);
            g[n] = acc;
        }
    }
}

#define TN_BLOCK 128 /* rows of P and Q per pass: keeps the Q block in L2 */

void hl_matmul_tn_acc(hl_pool *pool, float *g, const float *p, const float *q, int64_t T, int64_t M, int64_t N) {
    tn_job j = {g, p, q, T, M, N, 0, 0};
    if (T * M * N < 32768) pool = NULL;
    for (int64_t t0 = 0; t0 < T; t0 += TN_BLOCK) {
        j.t0 = t0;
        j.t1 = t0 + TN_BLOCK < T ? t0 + TN_BLOCK : T;
        hl_pool_for(pool, M, 4, tn_rows, &j);
    }
}
