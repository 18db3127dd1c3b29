/* attention.c: causal grouped-query attention over the KV cache.
 * Query head h reads kv head h / (H / Hkv). Work is split over (token, head)
 * pairs; each pair's reductions run in a fixed order. */
#include "kernels/kernels.h"

#include <math.h>
#include <string.h>

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
        for (int64_t s = 0; s <= pos; s++) {
            const float *v = j->vc + s * kv_dim + kvh * j->D;
            float a = att[s];
            for (int64_t d = 0; d < j->D; d++) o[d] += a * v[d];
        }
    }
}

void hl_attention(hl_pool *pool, float *out, const float *q, const float *kcache, const float *vcache,
                  int64_t T, int64_t pos0, int64_t H, int64_t Hkv, int64_t D, int64_t n_ctx, float *scratch) {
    attn_job j = {out, q, kcache, vcache, T, pos0, H, Hkv, D, n_ctx, scratch};
    /* Tiny decode steps run inline: waking workers costs more than the work. */
    if (T * (pos0 + T) * H * D < 16384) pool = NULL;
    hl_pool_for(pool, T * H, 1, attn_pairs, &j);
}
