/* train_fd.h: test helper: the central finite difference of a trainer's
 * mean loss in one parameter entry, through the eval path (no dropout). */
#ifndef HL_TEST_TRAIN_FD_H
#define HL_TEST_TRAIN_FD_H
#include "test_util.h"
#include "train/trainer.h"

static inline double central_fd(hl_trainer *t, const int32_t *tok, float *value, float h) {
    hl_error err = {0};
    double lp, lm;
    int64_t cnt = 0;
    float orig = *value;
    *value = orig + h;
    CHECK_OK(hl_trainer_eval(t, tok, NULL, NULL, &lp, &cnt, &err), &err);
    *value = orig - h;
    CHECK_OK(hl_trainer_eval(t, tok, NULL, NULL, &lm, &cnt, &err), &err);
    *value = orig;
    return (lp - lm) / (2.0 * h * (double)cnt);
}
#endif
