/* sampler.c: greedy, temperature, top-k and top-p sampling from logits with
 * a seeded RNG. Candidates are ordered by probability with ties broken by
 * token id, so a given seed and logits always pick the same token. */
#include "hyperlora.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/rng.h"

#include <math.h>
#include <stdlib.h>

typedef struct { float p; int32_t id; } candidate;

struct hl_sampler {
    hl_sampler_params params;
    int32_t vocab;
    hl_rng rng;
    candidate *cand; /* [vocab] */
};

hl_sampler_params hl_sampler_default_params(void) {
    hl_sampler_params p = {.temperature = 0.0f, .top_k = 0, .top_p = 1.0f, .seed = 0};
    return p;
}

hl_status hl_sampler_init(const hl_sampler_params *p, int32_t vocab_size, hl_sampler **out, hl_error *err) {
    *out = NULL;
    if (!(p->temperature >= 0) || !isfinite(p->temperature))
        return hl_fail(err, HL_ERR_INVALID_ARG, "temperature must be >= 0 (got %g)", p->temperature);
    if (p->top_k < 0) return hl_fail(err, HL_ERR_INVALID_ARG, "top-k must be >= 0 (got %d)", p->top_k);
    if (!(p->top_p > 0 && p->top_p <= 1))
        return hl_fail(err, HL_ERR_INVALID_ARG, "top-p must be in (0, 1] (got %g)", p->top_p);
    if (vocab_size <= 0) return hl_fail(err, HL_ERR_INVALID_ARG, "empty vocabulary");
    hl_sampler *s = hl_calloc(1, sizeof *s);
    if (s) s->cand = hl_malloc_array((size_t)vocab_size, sizeof *s->cand);
    if (!s || !s->cand) {
        hl_free(s);
        return hl_fail(err, HL_ERR_NOMEM, "out of memory");
    }
    s->params = *p;
    s->vocab = vocab_size;
    hl_rng_seed(&s->rng, p->seed);
    *out = s;
    return HL_OK;
}

void hl_sampler_free(hl_sampler *s) {
    if (!s) return;
    hl_free(s->cand);
    hl_free(s);
}

static int32_t argmax(const float *x, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static int by_prob_desc(const void *a, const void *b) {
    const candidate *x = a, *y = b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return x->id < y->id ? -1 : (x->id > y->id);
}

int32_t hl_sampler_sample(hl_sampler *s, const float *logits) {
    const hl_sampler_params *p = &s->params;
    if (p->temperature == 0.0f || p->top_k == 1) return argmax(logits, s->vocab);
    float mx = logits[argmax(logits, s->vocab)];
    double sum = 0;
    for (int32_t i = 0; i < s->vocab; i++) {
        float e = expf((logits[i] - mx) / p->temperature);
        s->cand[i].p = e;
        s->cand[i].id = i;
        sum += e;
    }
    int32_t n = s->vocab;
    if (p->top_k > 0 || p->top_p < 1.0f) {
        qsort(s->cand, (size_t)n, sizeof *s->cand, by_prob_desc);
        if (p->top_k > 0 && p->top_k < n) n = p->top_k;
        double kept = 0;
        for (int32_t i = 0; i < n; i++) kept += s->cand[i].p;
        if (p->top_p < 1.0f) {
            double cum = 0;
            for (int32_t i = 0; i < n; i++) {
                cum += s->cand[i].p;
                if (cum >= p->top_p * kept) {
                    n = i + 1;
                    break;
                }
            }
        }
        sum = 0;
        for (int32_t i = 0; i < n; i++) sum += s->cand[i].p;
    }
    double u = hl_rng_uniform_f64(&s->rng) * sum, cum = 0;
    for (int32_t i = 0; i < n; i++) {
        cum += s->cand[i].p;
        if (u < cum) return s->cand[i].id;
    }
    return s->cand[n - 1].id;
}
