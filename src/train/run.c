/* run.c: the training loop (hl_train_run, include/hyperlora/train.h), the
 * one that `train`, `pretrain` and the training benchmark share: gradient
 * accumulation, clipping, the schedule, AdamW, evaluation, the metrics log,
 * checkpoints and resume. Display and signals stay with the caller. */
#include "hyperlora/train.h"
#include "train/checkpoint.h"
#include "train/dataset.h"
#include "train/metrics.h"
#include "train/optim.h"
#include "train/trainer.h"
#include "util/alloc.h"
#include "util/error.h"

#include <math.h>
#include <string.h>
#include <time.h>

_Static_assert((int)HL_TRAIN_SCHED_CONSTANT == (int)HL_SCHED_CONSTANT && (int)HL_TRAIN_SCHED_COSINE == (int)HL_SCHED_COSINE &&
                   (int)HL_TRAIN_SCHED_LINEAR == (int)HL_SCHED_LINEAR,
               "hl_train_schedule mirrors hl_schedule_kind");

struct hl_train_run {
    hl_train_config cfg;
    const hl_dataset *data;
    hl_trainer *tr;
    hl_adamw opt;
    hl_schedule sched;
    hl_checkpoint_state st;   /* step, tokens, cursor, RNG: what a checkpoint saves */
    hl_metrics *met;          /* opened on the first record */
    int resumed;
    double last_eval;         /* NAN until an eval */
    double t_start;           /* wall clock of the first step (or to_end), for elapsed_s */
    int started;
    char *ck_settings;        /* from the checkpoint resume read */
    int32_t *tok;             /* (B, T+1) */
    uint8_t *mask;            /* (B, T) */
    int32_t *pos;             /* (B, T) */
};

hl_train_config hl_train_default_config(void) {
    return (hl_train_config){.mode = HL_TRAIN_LORA, .batch = 4, .ctx = 256, .accum = 1, .n_threads = 1, .steps = 100,
                             .lr = 1e-3, .schedule = HL_TRAIN_SCHED_COSINE, .warmup = 0, .min_lr_ratio = 0.1,
                             .weight_decay = 0, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .clip = 1.0, .dropout = 0,
                             .seed = 0, .rng_salt = 0x5eed, .eval_every = 50, .eval_at_start = 1,
                             .checkpoint_every = 50, .settings = ""};
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static hl_status check_config(const hl_train_config *c, const hl_adapter *adapter, hl_error *err) {
#define NEED(cond, field, why) \
    if (!(cond)) return hl_fail(err, HL_ERR_INVALID_ARG, "train config: %s %s", field, why)
    NEED(c->mode == HL_TRAIN_LORA || c->mode == HL_TRAIN_FULL, "mode", "must be HL_TRAIN_LORA or HL_TRAIN_FULL");
    NEED((c->mode == HL_TRAIN_LORA) == (adapter != NULL), "mode",
         c->mode == HL_TRAIN_LORA ? "LoRA needs an adapter" : "full training takes no adapter");
    NEED(c->batch >= 1, "batch", "must be at least 1");
    NEED(c->ctx >= 1, "ctx", "must be at least 1");
    NEED(c->accum >= 1, "accum", "must be at least 1");
    NEED(c->n_threads >= 1, "n_threads", "must be at least 1");
    NEED(c->steps >= 1, "steps", "must be at least 1");
    NEED(isfinite(c->lr) && c->lr >= 0, "lr", "must be finite and >= 0");
    NEED((int)c->schedule >= 0 && (int)c->schedule < (int)HL_SCHED_COUNT, "schedule", "is not a hl_train_schedule");
    NEED(c->warmup >= 0, "warmup", "must be >= 0");
    NEED(c->min_lr_ratio >= 0 && c->min_lr_ratio <= 1, "min_lr_ratio", "must be in [0, 1]");
    NEED(isfinite(c->weight_decay) && c->weight_decay >= 0, "weight_decay", "must be finite and >= 0");
    NEED(c->beta1 >= 0 && c->beta1 < 1, "beta1", "must be in [0, 1)");
    NEED(c->beta2 >= 0 && c->beta2 < 1, "beta2", "must be in [0, 1)");
    NEED(c->eps > 0 && isfinite(c->eps), "eps", "must be finite and > 0");
    NEED(c->clip >= 0 && !isnan(c->clip), "clip", "must be >= 0");
    NEED(c->dropout >= 0 && c->dropout < 1, "dropout", "must be in [0, 1)");
    NEED(c->eval_every >= 0, "eval_every", "must be >= 0");
    NEED(c->checkpoint_every >= 0, "checkpoint_every", "must be >= 0");
    NEED(c->stop_at >= 0, "stop_at", "must be >= 0");
#undef NEED
    return HL_OK;
}

hl_status hl_train_run_init(const hl_model *model, hl_adapter *adapter, const hl_dataset *data,
                            const hl_train_config *cfg, hl_train_run **out, hl_error *err) {
    *out = NULL;
    if (!model || !cfg) return hl_fail(err, HL_ERR_INVALID_ARG, "train run: needs a model and a config");
    if (!data && !cfg->next_batch)
        return hl_fail(err, HL_ERR_INVALID_ARG, "train config: next_batch is needed when there is no dataset");
    hl_status s = check_config(cfg, adapter, err);
    if (s != HL_OK) return s;
    if (data && hl_dataset_ctx(data) != cfg->ctx) /* the batch buffers are sized by cfg->ctx */
        return hl_fail(err, HL_ERR_INVALID_ARG, "train config: ctx %d differs from the dataset's rows (%d tokens)",
                       cfg->ctx, hl_dataset_ctx(data));
    hl_train_run *r = hl_calloc(1, sizeof *r);
    if (!r) return hl_fail(err, HL_ERR_NOMEM, "train run: out of memory");
    r->cfg = *cfg;
    if (!r->cfg.settings) r->cfg.settings = "";
    r->data = data;
    r->last_eval = NAN;
    const hl_train_config *c = &r->cfg;
    hl_trainer_params tp = {.full = c->mode == HL_TRAIN_FULL, .batch = c->batch, .ctx = c->ctx,
                            .n_threads = c->n_threads, .dropout = (float)c->dropout, .seed = c->seed};
    hl_adamw_params ap = {.beta1 = (float)c->beta1, .beta2 = (float)c->beta2, .eps = (float)c->eps,
                          .weight_decay = (float)c->weight_decay};
    if ((s = hl_trainer_init(model, adapter, &tp, &r->tr, err)) != HL_OK ||
        (s = hl_adamw_init(&r->opt, &ap, r->tr, err)) != HL_OK)
        goto fail;
    r->sched = (hl_schedule){.kind = (hl_schedule_kind)c->schedule, .lr = (float)c->lr,
                             .min_lr_ratio = (float)c->min_lr_ratio, .warmup = c->warmup, .total = c->steps};
    r->st = (hl_checkpoint_state){.config = c->settings, .base_fingerprint = c->base_fingerprint};
    hl_rng_seed(&r->st.rng, c->seed ^ c->rng_salt);
    r->tok = hl_malloc_array((size_t)c->batch * (size_t)(c->ctx + 1), sizeof *r->tok);
    r->mask = hl_malloc((size_t)c->batch * (size_t)c->ctx);
    r->pos = hl_malloc_array((size_t)c->batch * (size_t)c->ctx, sizeof *r->pos);
    if (!r->tok || !r->mask || !r->pos) {
        s = hl_fail(err, HL_ERR_NOMEM, "train run: out of memory for %d x %d batch buffers", c->batch, c->ctx);
        goto fail;
    }
    *out = r;
    return HL_OK;
fail:
    hl_train_run_free(r);
    return s;
}

void hl_train_run_free(hl_train_run *r) {
    if (!r) return;
    hl_metrics_close(r->met);
    hl_adamw_free(&r->opt);
    hl_trainer_free(r->tr);
    hl_free(r->ck_settings);
    hl_free(r->tok);
    hl_free(r->mask);
    hl_free(r->pos);
    hl_free(r);
}

hl_status hl_train_run_resume(hl_train_run *r, const char *path, hl_error *err) {
    if (!path) return hl_fail(err, HL_ERR_INVALID_ARG, "resume: no checkpoint path");
    if (r->st.step > 0 || r->met) return hl_fail(err, HL_ERR_INVALID_ARG, "resume: the run has already started");
    hl_checkpoint_state loaded;
    hl_free(r->ck_settings);
    r->ck_settings = NULL;
    hl_status s = hl_checkpoint_load(path, r->tr, &r->opt, &loaded, &r->ck_settings, err);
    if (s != HL_OK) return s;
    if (strcmp(r->ck_settings, r->cfg.settings) != 0)
        return hl_fail(err, HL_ERR_MISMATCH, "%s was made with other settings; resume needs the same ones", path);
    r->st.step = loaded.step;
    r->st.tokens = loaded.tokens;
    r->st.cursor = loaded.cursor;
    r->st.rng = loaded.rng;
    r->resumed = 1;
    return HL_OK;
}

static int64_t n_val_rows(const hl_train_run *r) { return r->data ? hl_dataset_n_val_rows(r->data) : 0; }

hl_status hl_train_run_eval_batch(hl_train_run *r, const int32_t *tokens, const uint8_t *mask, const int32_t *pos,
                                  double *loss_sum, int64_t *n_counted, hl_error *err) {
    return hl_trainer_eval(r->tr, tokens, mask, pos, loss_sum, n_counted, err);
}

hl_status hl_train_run_eval(hl_train_run *r, double *loss, hl_error *err) {
    const int32_t B = r->cfg.batch, T = r->cfg.ctx;
    int64_t n = n_val_rows(r), count = 0;
    double sum = 0;
    *loss = NAN;
    for (int64_t i = 0; i < n; i += B) {
        for (int32_t b = 0; b < B; b++) {
            int32_t *tok = r->tok + (int64_t)b * (T + 1), *pos = r->pos + (int64_t)b * T;
            uint8_t *mask = r->mask + (int64_t)b * T;
            if (i + b < n) hl_dataset_val_row(r->data, i + b, tok, mask, pos);
            else { /* a short last batch: copies of row 0 that count nothing */
                memcpy(tok, r->tok, (size_t)(T + 1) * sizeof *tok);
                memcpy(pos, r->pos, (size_t)T * sizeof *pos);
                memset(mask, 0, (size_t)T);
            }
        }
        double s_loss;
        int64_t c;
        hl_status s = hl_trainer_eval(r->tr, r->tok, r->mask, r->pos, &s_loss, &c, err);
        if (s != HL_OK) return s;
        sum += s_loss;
        count += c;
    }
    if (count) *loss = sum / (double)count;
    return HL_OK;
}

hl_status hl_train_run_save_checkpoint(const hl_train_run *r, const char *path, hl_error *err) {
    if (!path) return hl_fail(err, HL_ERR_INVALID_ARG, "checkpoint: no path");
    return hl_checkpoint_save(path, r->tr, &r->opt, &r->st, err);
}

/* The first record opens the log: a resumed run keeps the records before its next step. */
static hl_status record(hl_train_run *r, const hl_train_record *rec, hl_error *err) {
    if (r->cfg.metrics_path) {
        hl_status s;
        if (!r->met && (s = hl_metrics_open(r->cfg.metrics_path, r->resumed, r->st.step + 1, &r->met, err)) != HL_OK)
            return s;
        if ((s = hl_metrics_write(r->met, rec, err)) != HL_OK) return s;
    }
    if (r->cfg.on_metrics) r->cfg.on_metrics(r->cfg.user, rec);
    return HL_OK;
}

static void start_clock(hl_train_run *r) {
    if (!r->started) {
        r->t_start = now_s();
        r->started = 1;
    }
}

/* Opens the log even when no record follows, so a resume at the last step
 * still drops the records after it. */
static hl_status open_log(hl_train_run *r, hl_error *err) {
    if (!r->cfg.metrics_path || r->met) return HL_OK;
    return hl_metrics_open(r->cfg.metrics_path, r->resumed, r->st.step + 1, &r->met, err);
}

hl_status hl_train_run_step(hl_train_run *r, hl_error *err) {
    const hl_train_config *c = &r->cfg;
    hl_status s;
    if (r->st.step >= c->steps)
        return hl_fail(err, HL_ERR_INVALID_ARG, "train run: already at its last step (%lld)", (long long)c->steps);
    start_clock(r);
    if ((s = open_log(r, err)) != HL_OK) return s;
    if (c->before_step && (s = c->before_step(c->user, r->st.step + 1, err)) != HL_OK) return s;
    double t0 = now_s();
    hl_trainer_zero_grad(r->tr);
    double loss = 0;
    int64_t step_tokens = 0;
    for (int32_t k = 0; k < c->accum; k++) {
        uint64_t micro = (uint64_t)r->st.step * (uint64_t)c->accum + (uint64_t)k; /* seeds dropout */
        if (r->data) hl_dataset_next_batch(r->data, &r->st.cursor, c->batch, r->tok, r->mask, r->pos);
        else if ((s = c->next_batch(c->user, micro, r->tok, r->mask, r->pos, err)) != HL_OK) return s;
        double l;
        int64_t n;
        if ((s = hl_trainer_forward_backward(r->tr, r->tok, r->mask, r->pos, 1.0f / (float)c->accum, micro, &l, &n,
                                             err)) != HL_OK)
            return s;
        loss += l / (double)c->accum;
        step_tokens += n;
    }
    double t_fb = now_s();
    double gnorm = hl_trainer_grad_norm(r->tr);
    if (!isfinite(gnorm))
        return hl_fail(err, HL_ERR_INVALID_ARG, HL_TRAIN_GRAD_NORM_MSG "%g at step %lld", gnorm,
                       (long long)r->st.step + 1);
    if (c->clip > 0 && gnorm > c->clip) hl_trainer_scale_grads(r->tr, (float)(c->clip / gnorm));
    r->st.step++;
    float lr = hl_schedule_lr(&r->sched, r->st.step);
    hl_adamw_step(&r->opt, r->tr, lr);
    r->st.tokens += step_tokens;
    double t_opt = now_s();
    double eval = NAN;
    if ((c->eval_every > 0 && r->st.step % c->eval_every == 0) || r->st.step == c->steps) {
        if ((s = hl_train_run_eval(r, &eval, err)) != HL_OK) return s;
        r->last_eval = eval;
    }
    double t1 = now_s();
    hl_train_record rec = {.step = r->st.step, .total_steps = c->steps, .loss = loss, .eval_loss = eval, .lr = lr,
                           .grad_norm = gnorm, .tokens_per_s = (double)step_tokens / (t1 - t0),
                           .elapsed_s = t1 - r->t_start, .tokens = r->st.tokens, .fwd_bwd_s = t_fb - t0,
                           .optim_s = t_opt - t_fb};
    if ((s = record(r, &rec, err)) != HL_OK) return s;
    if (c->on_progress) c->on_progress(c->user, &rec);
    if (c->checkpoint_path && ((c->checkpoint_every > 0 && r->st.step % c->checkpoint_every == 0) ||
                               r->st.step == c->steps))
        return hl_train_run_save_checkpoint(r, c->checkpoint_path, err);
    return HL_OK;
}

hl_status hl_train_run_to_end(hl_train_run *r, hl_train_outcome *outcome, hl_error *err) {
    const hl_train_config *c = &r->cfg;
    hl_status s;
    if (outcome) *outcome = HL_TRAIN_FINISHED;
    start_clock(r);
    if ((s = open_log(r, err)) != HL_OK) return s;
    if (c->eval_at_start && !r->resumed && r->st.step == 0 && n_val_rows(r) > 0) {
        /* The starting point: the eval loss before any update. */
        if ((s = hl_train_run_eval(r, &r->last_eval, err)) != HL_OK) return s;
        hl_train_record r0 = {.step = 0, .total_steps = c->steps, .loss = NAN, .eval_loss = r->last_eval, .lr = 0,
                              .grad_norm = NAN, .tokens_per_s = NAN, .elapsed_s = now_s() - r->t_start, .tokens = 0,
                              .fwd_bwd_s = NAN, .optim_s = NAN};
        if ((s = record(r, &r0, err)) != HL_OK) return s;
    }
    int stop = c->should_stop && c->should_stop(c->user), paused = 0;
    while (r->st.step < c->steps && !stop && !paused) {
        if ((s = hl_train_run_step(r, err)) != HL_OK) return s;
        stop = c->should_stop && c->should_stop(c->user);
        paused = c->stop_at > 0 && r->st.step >= c->stop_at && r->st.step < c->steps;
        /* hl_train_run_step already saved at the last step and every checkpoint_every. */
        int saved = (c->checkpoint_every > 0 && r->st.step % c->checkpoint_every == 0) || r->st.step == c->steps;
        if (c->checkpoint_path && (stop || paused) && !saved &&
            (s = hl_train_run_save_checkpoint(r, c->checkpoint_path, err)) != HL_OK)
            return s;
    }
    if (outcome) *outcome = paused ? HL_TRAIN_PAUSED : stop ? HL_TRAIN_STOPPED : HL_TRAIN_FINISHED;
    return HL_OK;
}

int64_t hl_train_run_step_count(const hl_train_run *r) { return r->st.step; }
int64_t hl_train_run_tokens(const hl_train_run *r) { return r->st.tokens; }
double hl_train_run_last_eval(const hl_train_run *r) { return r->last_eval; }
const char *hl_train_run_checkpoint_settings(const hl_train_run *r) { return r->ck_settings; }

int64_t hl_train_run_n_params(const hl_train_run *r) {
    int64_t n = 0;
    for (int32_t i = 0; i < hl_trainer_n_params(r->tr); i++) n += hl_trainer_param(r->tr, i).n;
    return n;
}
