/* attention.c: causal grouped-query attention over the KV cache.
 * Query head h reads kv head h / (H / Hkv). Work is split over (token, head)
 * pairs; each pair's reductions run in a fixed order. Token t reads t + 1
 * positions, so the pairs go out in the token order 0, T-1, 1, T-2, ...:
 * each thread's contiguous share then holds about the same number of
 * positions (in plain order the thread with the last tokens did three times
 * the first's work at pos0 = 0). No value depends on the order. */
#include "kernels/kernels.h"

#include <math.h>
#include <string.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

#if defined(__AVX2__) && defined(__FMA__)
#include "kernels/lane_sums.h"
#if defined(__AVX512F__) && defined(__AVX512DQ__)
#define DOT_LANES 16
#else
#define DOT_LANES 8
#endif
#endif

/* att[s] = hl_dot(q, k row s, D) · scale for s in [0, n), rows `stride`
 * apart. Four rows at a time run hl_dot's chains side by side (its lanes,
 * its addition tree, its tail), so each score is hl_dot's bit for bit; four
 * independent chains hide the FMA latency one chain waits on. */
static void scores(float *att, const float *q, const float *k, int64_t stride, int64_t n, int64_t D, float scale) {
    int64_t s = 0;
#if defined(__AVX2__) && defined(__FMA__)
    const int64_t nl = D - D % DOT_LANES;
    for (; s + 4 <= n; s += 4) {
        const float *k0 = k + s * stride, *k1 = k0 + stride, *k2 = k1 + stride, *k3 = k2 + stride;
#if DOT_LANES == 16
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t i = 0; i < nl; i += 16) {
            const __m512 x = _mm512_loadu_ps(q + i);
            a0 = _mm512_fmadd_ps(x, _mm512_loadu_ps(k0 + i), a0);
            a1 = _mm512_fmadd_ps(x, _mm512_loadu_ps(k1 + i), a1);
            a2 = _mm512_fmadd_ps(x, _mm512_loadu_ps(k2 + i), a2);
            a3 = _mm512_fmadd_ps(x, _mm512_loadu_ps(k3 + i), a3);
        }
        float d[4] = {hl_hsum16(a0), hl_hsum16(a1), hl_hsum16(a2), hl_hsum16(a3)};
#else
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t i = 0; i < nl; i += 8) {
            const __m256 x = _mm256_loadu_ps(q + i);
            a0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(k0 + i), a0);
            a1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(k1 + i), a1);
            a2 = _mm256_fmadd_ps(x, _mm256_loadu_ps(k2 + i), a2);
            a3 = _mm256_fmadd_ps(x, _mm256_loadu_ps(k3 + i), a3);
        }
        float d[4] = {hl_hsum8(a0), hl_hsum8(a1), hl_hsum8(a2), hl_hsum8(a3)};
#endif
        const float *rows[4] = {k0, k1, k2, k3};
        for (int r = 0; r < 4; r++) {
            for (int64_t i = nl; i < D; i++) d[r] = d[r] + q[i] * rows[r][i]; /* hl_dot's tail */
            att[s + r] = d[r] * scale;
        }
    }
#endif
    for (; s < n; s++) att[s] = hl_dot(q, k + s * stride, D) * scale;
}

/* o (D) = Σ_s att[s]·v row s, each element one chain of fused multiply-adds
 * over s = 0 .. n-1 from zero (the order axpy-ing row after row gives), kept
 * in registers 64 elements at a time instead of stored and reloaded per row. */
static void weighted_sum(float *restrict o, const float *att, const float *restrict v, int64_t stride, int64_t n,
                         int64_t D) {
    int64_t i = 0;
#if defined(__AVX2__) && defined(__FMA__)
    for (; i + 64 <= D; i += 64) {
        __m256 acc[8];
        for (int c = 0; c < 8; c++) acc[c] = _mm256_setzero_ps();
        for (int64_t s = 0; s < n; s++) {
            const __m256 a = _mm256_set1_ps(att[s]);
            const float *vr = v + s * stride + i;
            for (int c = 0; c < 8; c++) acc[c] = _mm256_fmadd_ps(a, _mm256_loadu_ps(vr + 8 * c), acc[c]);
        }
        for (int c = 0; c < 8; c++) _mm256_storeu_ps(o + i + 8 * c, acc[c]);
    }
    for (; i + 8 <= D; i += 8) {
        __m256 acc = _mm256_setzero_ps();
        for (int64_t s = 0; s < n; s++) acc = _mm256_fmadd_ps(_mm256_set1_ps(att[s]), _mm256_loadu_ps(v + s * stride + i), acc);
        _mm256_storeu_ps(o + i, acc);
    }
#endif
    for (; i < D; i++) {
        float acc = 0.0f;
        for (int64_t s = 0; s < n; s++) acc = fmaf(att[s], v[s * stride + i], acc);
        o[i] = acc;
    }
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
        const int64_t slot = p / j->H, h = p % j->H, kvh = h / group;
        const int64_t t = slot % 2 ? j->T - 1 - slot / 2 : slot / 2; /* 0, T-1, 1, T-2, ... */
        int64_t pos = j->pos0 + t;
        const float *q = j->q + t * j->H * j->D + h * j->D;
        scores(att, q, j->kc + kvh * j->D, kv_dim, pos + 1, j->D, inv_sqrt_d);
        hl_softmax(att, pos + 1);
        weighted_sum(j->out + t * j->H * j->D + h * j->D, att, j->vc + kvh * j->D, kv_dim, pos + 1, j->D);
    }
}

void hl_attention(hl_pool *pool, float *out, const float *q, const float *kcache, const float *vcache,
                  int64_t T, int64_t pos0, int64_t H, int64_t Hkv, int64_t D, int64_t n_ctx, float *scratch) {
    attn_job j = {out, q, kcache, vcache, T, pos0, H, Hkv, D, n_ctx, scratch};
    /* Tiny decode steps run inline: waking workers costs more than the work. */
    if (T * (pos0 + T) * H * D < 16384) pool = NULL;
    /* Otherwise a decode step splits its heads between the threads. In a real step the
     * cache rows come from memory (the weights streamed since the layer's last visit have
     * pushed them out of L2 and L3), and two cores wait on them side by side: s110M q4_K_M
     * tg64, 2 threads on a Zen 5, 1.11x paired against keeping it inline below 96 positions,
     * which a warm-cache harness had favoured (7.9 against 8.5 us a layer at 64). A prompt
     * goes a token's heads at a time. The scratch is per thread, and no value depends on
     * which thread runs a head. */
    if (T == 1) hl_pool_for(pool, H, 1, attn_pairs, &j);
    else hl_pool_for_balanced(pool, T * H, H, attn_pairs, &j);
}
