/* optim.c: AdamW (PyTorch semantics) and learning-rate schedules. */
#include "train/optim.h"
#include "util/alloc.h"
#include "util/error.h"

#include <math.h>
#include <string.h>

void hl_adamw_free(hl_adamw *opt) {
    for (int32_t i = 0; i < opt->n; i++) {
        if (opt->m) hl_free(opt->m[i]);
        if (opt->v) hl_free(opt->v[i]);
    }
    hl_free(opt->m);
    hl_free(opt->v);
    hl_free(opt->len);
    memset(opt, 0, sizeof *opt);
}

hl_status hl_adamw_init(hl_adamw *opt, const hl_adamw_params *p, const hl_trainer *tr, hl_error *err) {
    memset(opt, 0, sizeof *opt);
    opt->p = *p;
    int32_t n = hl_trainer_n_params(tr);
    opt->m = hl_calloc((size_t)n, sizeof *opt->m);
    opt->v = hl_calloc((size_t)n, sizeof *opt->v);
    opt->len = hl_calloc((size_t)n, sizeof *opt->len);
    if (!opt->m || !opt->v || !opt->len) {
        hl_adamw_free(opt);
        return hl_fail(err, HL_ERR_NOMEM, "out of memory");
    }
    opt->n = n;
    for (int32_t i = 0; i < n; i++) {
        hl_param prm = hl_trainer_param(tr, i);
        opt->len[i] = prm.n;
        opt->m[i] = hl_calloc((size_t)prm.n, sizeof(float));
        opt->v[i] = hl_calloc((size_t)prm.n, sizeof(float));
        if (!opt->m[i] || !opt->v[i]) {
            hl_adamw_free(opt);
            return hl_fail(err, HL_ERR_NOMEM, "out of memory for optimizer state");
        }
    }
    return HL_OK;
}

void hl_adamw_step(hl_adamw *opt, hl_trainer *tr, float lr) {
    opt->t++;
    const float b1 = opt->p.beta1, b2 = opt->p.beta2, eps = opt->p.eps;
    const float decay = (float)(1.0 - (double)lr * opt->p.weight_decay);
    const double bc1 = 1.0 - pow((double)b1, (double)opt->t), bc2 = 1.0 - pow((double)b2, (double)opt->t);
    const float step_size = (float)((double)lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    for (int32_t i = 0; i < opt->n; i++) {
        hl_param prm = hl_trainer_param(tr, i);
        float *m = opt->m[i], *v = opt->v[i];
        for (int64_t e = 0; e < prm.n; e++) {
            float g = prm.grad[e];
            float p = opt->p.weight_decay != 0.0f && prm.decay ? prm.value[e] * decay : prm.value[e];
            m[e] = b1 * m[e] + (1.0f - b1) * g;
            v[e] = b2 * v[e] + (1.0f - b2) * g * g;
            float denom = sqrtf(v[e]) / bc2_sqrt + eps;
            prm.value[e] = p - step_size * (m[e] / denom);
        }
    }
}

float hl_schedule_lr(const hl_schedule *s, int64_t step) {
    if (s->warmup > 0 && step <= s->warmup) return s->lr * (float)step / (float)s->warmup;
    if (s->kind == HL_SCHED_CONSTANT || s->total <= s->warmup) return s->lr;
    double progress = (double)(step - s->warmup) / (double)(s->total - s->warmup);
    if (progress > 1) progress = 1;
    double floor = s->min_lr_ratio, f;
    if (s->kind == HL_SCHED_COSINE) f = floor + (1 - floor) * 0.5 * (1 + cos(3.141592653589793 * progress));
    else f = 1 - (1 - floor) * progress;
    return (float)(s->lr * f);
}
