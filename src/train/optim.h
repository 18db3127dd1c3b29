/* optim.h: AdamW exactly as torch.optim.AdamW defines it, and the learning
 * rate schedule (linear warmup, then cosine or linear decay, or constant).
 *
 *   p ← p·(1 − lr·wd)
 *   m ← β1·m + (1 − β1)·g
 *   v ← β2·v + (1 − β2)·g²
 *   p ← p − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε)
 *
 * Moments are f32 like PyTorch's; the bias corrections are computed in
 * double and rounded, as PyTorch's Python scalars are. */
#ifndef HL_TRAIN_OPTIM_H
#define HL_TRAIN_OPTIM_H
#include <stdint.h>
#include "train/trainer.h"

typedef struct hl_adamw_params {
    float beta1, beta2, eps, weight_decay;
} hl_adamw_params;

typedef struct hl_adamw {
    hl_adamw_params p;
    int64_t t;          /* steps taken */
    int32_t n;          /* parameter tensors */
    float **m, **v;     /* [n], shaped like the parameters */
    int64_t *len;
} hl_adamw;

hl_status hl_adamw_init(hl_adamw *opt, const hl_adamw_params *p, const hl_trainer *tr, hl_error *err);
void hl_adamw_free(hl_adamw *opt);
/* One update of every parameter of tr with its current gradient. */
void hl_adamw_step(hl_adamw *opt, hl_trainer *tr, float lr);

typedef enum hl_schedule_kind { HL_SCHED_CONSTANT, HL_SCHED_COSINE, HL_SCHED_LINEAR, HL_SCHED_COUNT } hl_schedule_kind;
typedef struct hl_schedule {
    hl_schedule_kind kind;
    float lr;            /* peak */
    float min_lr_ratio;  /* floor of the decay, as a fraction of lr */
    int64_t warmup;      /* steps of linear warmup from lr/warmup */
    int64_t total;       /* steps in the run */
} hl_schedule;
/* Learning rate for 1-based step. */
float hl_schedule_lr(const hl_schedule *s, int64_t step);
#endif
