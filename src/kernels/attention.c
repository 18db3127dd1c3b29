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
        const int64_t slot = p / j->H, h = p % j->H, kvh = h / group;
        const int64_t t = slot % 2 ? j->T - 1 - slot / 2 : slot / 2; /* 0, T-1, 1, T-2, ... */
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
    hl_pool_for_balanced(pool, T * H, H, attn_pairs, &j); /* a token's heads at a time; scratch is per thread */
}
