/* run.c: the training loop (hl_train_run, include/hyperlora/train.h), the
 * one that `train`, `pretrain` and the training benchmark share: gradient
 * accumulation, clipping, the schedule, AdamW, evaluation, the metrics log,
 * checkpoints and resume. Display and signals stay with the caller. */
#include "hyperlora/train.h"
#include "train/checkpoint.h"
#include "train/dataset.h"
#include "train/metrics.h"
#include "train/optim.h"
#include "train/row_tree.h"
#include "train/trainer.h"
#include "util/alloc.h"
#include "util/checked.h"
#include "util/error.h"
#include "util/hash.h"

#include <math.h>
#include <stdio.h>
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
    /* A step's rows: accum micro-batches of B rows each, micro-batch k's rows k·B..k·B+B-1 */
    int64_t n_rows;           /* accum × B */
    int32_t *tok;             /* (n_rows, T+1) */
    uint8_t *mask;            /* (n_rows, T) */
    int32_t *pos;             /* (n_rows, T) */
    int64_t *micro_total;     /* [accum] counted targets of each micro-batch */
    double *row_loss;         /* [n_rows] the sum of each row's counted losses */
    int64_t *row_count;       /* [n_rows] each row's counted targets */
    /* The gradient: the rows' vectors summed along the row tree (row_tree.h) */
    int64_t n_params;         /* trainable scalars: the length of every gradient vector */
    hl_row_tree *tree;
    float *grad;              /* (n_params) the step's summed gradient */
    /* Data parallelism: rank of n_ranks, joined by comm (NULL when alone) */
    const hl_train_comm *comm;
    int32_t rank, n_ranks;
    double exchange_s;        /* the last step's gradient exchange (wall clock) */
    int tree_reduce;          /* comm has send/recv: reduce along the tree (else allgather every node) */
    int peers_checked;        /* the ranks have compared their inputs (peers_agree) */
    float *covers;            /* (cover nodes, n_params) this rank's node values, tree_reduce only */
    uint8_t *send, *recv;     /* exchange buffers, grown as needed */
    size_t send_cap, recv_cap;
    size_t *counts, *offsets; /* [n_ranks] bytes each rank sends, and where they land in recv */
    double *val_loss;         /* [validation rows] per-row loss sums of the current eval */
    int64_t *val_count;
    int64_t val_cap;
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
    /* The trainer runs one row at a time: rows are the leaves of the summation tree. */
    hl_trainer_params tp = {.full = c->mode == HL_TRAIN_FULL, .batch = 1, .ctx = c->ctx,
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
    r->n_rows = (int64_t)c->batch * c->accum;
    size_t cells;
    if (!hl_mul_size((size_t)r->n_rows, (size_t)c->ctx + 1, &cells)) {
        s = hl_fail(err, HL_ERR_INVALID_ARG, "train config: batch x accum x ctx is too large");
        goto fail;
    }
    r->tok = hl_malloc_array(cells, sizeof *r->tok);
    r->mask = hl_malloc(cells);
    r->pos = hl_malloc_array(cells, sizeof *r->pos);
    r->micro_total = hl_calloc((size_t)c->accum, sizeof *r->micro_total);
    r->row_loss = hl_calloc((size_t)r->n_rows, sizeof *r->row_loss);
    r->row_count = hl_calloc((size_t)r->n_rows, sizeof *r->row_count);
    r->n_params = hl_train_run_n_params(r);
    r->grad = hl_malloc_array(r->n_params ? (size_t)r->n_params : 1, sizeof *r->grad);
    if (!r->tok || !r->mask || !r->pos || !r->micro_total || !r->row_loss || !r->row_count || !r->grad) {
        s = hl_fail(err, HL_ERR_NOMEM, "train run: out of memory for %lld rows of %d tokens", (long long)r->n_rows,
                    c->ctx);
        goto fail;
    }
    r->comm = c->comm && c->comm->size > 1 ? c->comm : NULL;
    r->rank = r->comm ? r->comm->rank : 0;
    r->n_ranks = r->comm ? r->comm->size : 1;
    if (c->comm && (c->comm->size < 1 || c->comm->rank < 0 || c->comm->rank >= c->comm->size ||
                    (c->comm->size > 1 && !c->comm->allgather))) {
        s = hl_fail(err, HL_ERR_INVALID_ARG, "train config: comm has rank %d of %d%s", (int)c->comm->rank,
                    (int)c->comm->size, c->comm->allgather ? "" : " and no allgather");
        goto fail;
    }
    if (c->comm && !c->comm->send != !c->comm->recv) {
        s = hl_fail(err, HL_ERR_INVALID_ARG, "train config: comm has %s but not %s", c->comm->send ? "send" : "recv",
                    c->comm->send ? "recv" : "send");
        goto fail;
    }
    r->tree_reduce = r->comm && r->comm->send;
    if ((s = hl_row_tree_init(r->n_rows, r->n_ranks, r->n_params, &r->tree, err)) != HL_OK) goto fail;
    if (r->comm && (!(r->counts = hl_calloc((size_t)r->n_ranks, sizeof *r->counts)) ||
                    !(r->offsets = hl_calloc((size_t)r->n_ranks, sizeof *r->offsets)))) {
        s = hl_fail(err, HL_ERR_NOMEM, "train run: out of memory");
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
    hl_free(r->micro_total);
    hl_free(r->row_loss);
    hl_free(r->row_count);
    hl_row_tree_free(r->tree);
    hl_free(r->grad);
    hl_free(r->send);
    hl_free(r->recv);
    hl_free(r->counts);
    hl_free(r->offsets);
    hl_free(r->val_loss);
    hl_free(r->val_count);
    hl_free(r->covers);
    hl_free(r);
}

/* ---- exchanges between ranks ----
 * Every collective sends a fixed header (the rank's status and one flag)
 * before its body, so a rank that failed still takes part and every rank
 * returns the same failure instead of waiting for a message that never
 * comes. */
typedef struct wire_header {
    int32_t status; /* hl_status of the sender's part */
    int32_t flag;   /* e.g. "stop requested" */
    char msg[248];  /* the sender's error message */
} wire_header;

static hl_status grow(uint8_t **buf, size_t *cap, size_t need, hl_error *err) {
    if (need <= *cap) return HL_OK;
    uint8_t *p = hl_realloc(*buf, need);
    if (!p) return hl_fail(err, HL_ERR_NOMEM, "train run: out of memory for %zu bytes of exchange buffers", need);
    *buf = p;
    *cap = need;
    return HL_OK;
}

/* body[q]: the body bytes rank q sends; this rank's own body must already
 * sit in r->send after the header (reserve it with reserve_send). */
static hl_status reserve_send(hl_train_run *r, size_t body, hl_error *err) {
    return grow(&r->send, &r->send_cap, sizeof(wire_header) + body, err);
}
static uint8_t *send_body(hl_train_run *r) { return r->send + sizeof(wire_header); }
static const uint8_t *recv_body(const hl_train_run *r, int32_t q) { return r->recv + r->offsets[q] + sizeof(wire_header); }

/* The collective: local is this rank's outcome so far (with lerr); on
 * return every rank has the same status (the lowest failing rank's). */
static hl_status exchange(hl_train_run *r, hl_status local, const hl_error *lerr, int flag, const size_t *body,
                          int *flag_any, hl_error *err) {
    size_t total = 0;
    for (int32_t q = 0; q < r->n_ranks; q++) {
        size_t n = sizeof(wire_header) + body[q];
        if (n < body[q] || total + n < total) return hl_fail(err, HL_ERR_INVALID_ARG, "train run: exchange too large");
        r->counts[q] = n;
        r->offsets[q] = total;
        total += n;
    }
    hl_status s = grow(&r->recv, &r->recv_cap, total, err);
    if (s == HL_OK) s = reserve_send(r, body[r->rank], err);
    if (s != HL_OK) return s;
    wire_header h = {.status = (int32_t)local, .flag = flag};
    if (local != HL_OK && lerr) memcpy(h.msg, lerr->msg, strnlen(lerr->msg, sizeof h.msg - 1)); /* h is zeroed: ends in NUL */
    memcpy(r->send, &h, sizeof h);
    if ((s = r->comm->allgather(r->comm->user, r->send, r->recv, r->counts, err)) != HL_OK) return s;
    int any = 0;
    for (int32_t q = 0; q < r->n_ranks; q++) {
        wire_header hq;
        memcpy(&hq, r->recv + r->offsets[q], sizeof hq);
        hq.msg[sizeof hq.msg - 1] = 0;
        if (hq.status != HL_OK) {
            hl_status st = hq.status > 0 && hq.status < HL_STATUS_COUNT ? (hl_status)hq.status : HL_ERR_INVALID_ARG;
            if (q == r->rank) return hl_fail(err, st, "%s", hq.msg);
            return hl_fail(err, st, "rank %d of %d: %s", (int)q, (int)r->n_ranks, hq.msg);
        }
        any |= hq.flag != 0;
    }
    if (flag_any) *flag_any = any;
    return HL_OK;
}

/* What must be the same on every rank for the ranks to train one run: the
 * config, the settings text, the base and the data's shape. */
static uint64_t run_fingerprint(const hl_train_run *r) {
    const hl_train_config *c = &r->cfg;
    uint64_t h = hl_fnv1a_str(HL_FNV1A_BASIS, c->settings);
    const double reals[] = {c->lr, c->min_lr_ratio, c->weight_decay, c->beta1, c->beta2, c->eps, c->clip, c->dropout};
    const int64_t ints[] = {c->mode, c->batch, c->ctx, c->accum, c->steps, c->schedule, c->warmup, c->eval_every,
                            c->checkpoint_every, c->stop_at, (int64_t)c->seed, (int64_t)c->rng_salt,
                            (int64_t)c->base_fingerprint, r->n_params};
    h = hl_fnv1a(h, reals, sizeof reals);
    h = hl_fnv1a(h, ints, sizeof ints);
    if (r->data) h = hl_fnv1a(h, hl_dataset_get_stats(r->data), sizeof(hl_dataset_stats));
    return h;
}

static hl_status exchange(hl_train_run *r, hl_status local, const hl_error *lerr, int flag, const size_t *body,
                          int *flag_any, hl_error *err);

/* Before the first collective of a run: the ranks compare fingerprints, so
 * ranks with other data, base or settings stop with a message instead of
 * training a mixture. */
static hl_status peers_agree(hl_train_run *r, hl_error *err) {
    if (!r->comm || r->peers_checked) return HL_OK;
    size_t body[r->n_ranks];
    for (int32_t q = 0; q < r->n_ranks; q++) body[q] = sizeof(uint64_t);
    hl_status s = reserve_send(r, body[r->rank], err);
    if (s != HL_OK) return s;
    uint64_t mine = run_fingerprint(r), theirs;
    memcpy(send_body(r), &mine, sizeof mine);
    if ((s = exchange(r, HL_OK, NULL, 0, body, NULL, err)) != HL_OK) return s;
    for (int32_t q = 1; q < r->n_ranks; q++) {
        memcpy(&theirs, recv_body(r, q), sizeof theirs);
        uint64_t first;
        memcpy(&first, recv_body(r, 0), sizeof first);
        if (theirs != first)
            return hl_fail(err, HL_ERR_MISMATCH,
                           "rank %d of %d has other inputs or settings than rank 0 (base, data, lexicon, options or "
                           "kernels differ): every rank must see the same files at the same paths and run the "
                           "same kernel level and weight layout (hyperlora info; HYPERLORA_ISA, HYPERLORA_WEIGHTS)",
                           (int)q, (int)r->n_ranks);
    }
    r->peers_checked = 1;
    return HL_OK;
}

/* A header-only exchange: every rank learns whether any failed or flagged. */
static hl_status agree(hl_train_run *r, hl_status local, const hl_error *lerr, int flag, int *flag_any, hl_error *err) {
    if (!r->comm) {
        if (flag_any) *flag_any = flag;
        if (local != HL_OK && lerr != err) return hl_fail(err, local, "%s", lerr->msg);
        return local;
    }
    size_t body[r->n_ranks];
    memset(body, 0, sizeof body);
    return exchange(r, local, lerr, flag, body, flag_any, err);
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

/* Rows [lo, hi) of n owned by this rank: contiguous slices, rank order. */
static void my_slice(const hl_train_run *r, int64_t n, int64_t *lo, int64_t *hi) {
    *lo = n * r->rank / r->n_ranks;
    *hi = n * (r->rank + 1) / r->n_ranks;
}

hl_status hl_train_run_eval_batch(hl_train_run *r, const int32_t *tokens, const uint8_t *mask, const int32_t *pos,
                                  double *loss_sum, int64_t *n_counted, hl_error *err) {
    const int32_t T = r->cfg.ctx;
    *loss_sum = 0;
    *n_counted = 0;
    for (int32_t b = 0; b < r->cfg.batch; b++) {
        double ls;
        int64_t n;
        hl_status s = hl_trainer_eval(r->tr, tokens + (int64_t)b * (T + 1), mask ? mask + (int64_t)b * T : NULL,
                                      pos ? pos + (int64_t)b * T : NULL, &ls, &n, err);
        if (s != HL_OK) return s;
        *loss_sum += ls;
        *n_counted += n;
    }
    return HL_OK;
}

/* One 16-byte record per row on the wire: its loss sum and its count. */
static void put_row(uint8_t *p, double loss, int64_t count) {
    memcpy(p, &loss, 8);
    memcpy(p + 8, &count, 8);
}
static void get_row(const uint8_t *p, double *loss, int64_t *count) {
    memcpy(loss, p, 8);
    memcpy(count, p + 8, 8);
}

hl_status hl_train_run_eval(hl_train_run *r, double *loss, hl_error *err) {
    int64_t n = n_val_rows(r), lo, hi;
    *loss = NAN;
    hl_status ps = peers_agree(r, err);
    if (ps != HL_OK) return ps;
    if (n == 0) return HL_OK;
    if (n > r->val_cap) {
        hl_free(r->val_loss);
        hl_free(r->val_count);
        r->val_loss = hl_malloc_array((size_t)n, sizeof *r->val_loss);
        r->val_count = hl_malloc_array((size_t)n, sizeof *r->val_count);
        r->val_cap = r->val_loss && r->val_count ? n : 0;
        if (!r->val_cap) return hl_fail(err, HL_ERR_NOMEM, "eval: out of memory for %lld rows", (long long)n);
    }
    my_slice(r, n, &lo, &hi);
    hl_error lerr = {0};
    hl_status s = HL_OK;
    for (int64_t i = lo; i < hi && s == HL_OK; i++) {
        hl_dataset_val_row(r->data, i, r->tok, r->mask, r->pos);
        s = hl_trainer_eval(r->tr, r->tok, r->mask, r->pos, &r->val_loss[i], &r->val_count[i], &lerr);
    }
    if (r->comm) {
        size_t body[r->n_ranks];
        for (int32_t q = 0; q < r->n_ranks; q++) body[q] = (size_t)(n * (q + 1) / r->n_ranks - n * q / r->n_ranks) * 16;
        hl_status g = reserve_send(r, body[r->rank], err);
        if (g != HL_OK) return g;
        for (int64_t i = lo; i < hi && s == HL_OK; i++) put_row(send_body(r) + (i - lo) * 16, r->val_loss[i], r->val_count[i]);
        if ((s = exchange(r, s, &lerr, 0, body, NULL, err)) != HL_OK) return s;
        for (int32_t q = 0; q < r->n_ranks; q++)
            for (int64_t i = n * q / r->n_ranks, i0 = i; i < n * (q + 1) / r->n_ranks; i++)
                get_row(recv_body(r, q) + (i - i0) * 16, &r->val_loss[i], &r->val_count[i]);
    } else if (s != HL_OK) {
        return hl_fail(err, s, "%s", lerr.msg);
    }
    double sum = 0;
    int64_t count = 0;
    for (int64_t i = 0; i < n; i++) { /* row order, whoever computed them */
        sum += r->val_loss[i];
        count += r->val_count[i];
    }
    if (count) *loss = sum / (double)count;
    return HL_OK;
}

hl_status hl_train_run_save_checkpoint(const hl_train_run *r, const char *path, hl_error *err) {
    if (!path) return hl_fail(err, HL_ERR_INVALID_ARG, "checkpoint: no path");
    return hl_checkpoint_save(path, r->tr, &r->opt, &r->st, err);
}

/* Rank 0 writes the checkpoint; every rank learns whether that worked. */
static hl_status checkpoint_all(hl_train_run *r, hl_error *err) {
    hl_error lerr = {0};
    hl_status s = r->rank == 0 ? hl_train_run_save_checkpoint(r, r->cfg.checkpoint_path, &lerr) : HL_OK;
    return agree(r, s, &lerr, 0, NULL, err);
}

/* The first record opens the log: a resumed run keeps the records before
 * its next step. Only rank 0 keeps the log; every rank sees the callbacks. */
static hl_status record(hl_train_run *r, const hl_train_record *rec, hl_error *err) {
    if (r->cfg.metrics_path && r->rank == 0) {
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
    if (!r->cfg.metrics_path || r->met || r->rank != 0) return HL_OK;
    return hl_metrics_open(r->cfg.metrics_path, r->resumed, r->st.step + 1, &r->met, err);
}

/* ---- one step's gradient ---- */

/* Row j of the step (micro-batch j / B, row j % B of it): dst = the
 * gradient of its counted losses / (accum · its micro-batch's count). */
static hl_status row_gradient(void *user, int64_t j, float *dst, hl_error *err) {
    hl_train_run *r = user;
    const hl_train_config *c = &r->cfg;
    const int64_t T = c->ctx, k = j / c->batch, b = j % c->batch;
    int64_t count = 0;
    for (int64_t i = 0; i < T; i++) count += r->mask[j * T + i] != 0;
    r->row_loss[j] = 0;
    r->row_count[j] = count;
    if (count == 0) {
        memset(dst, 0, (size_t)r->n_params * sizeof *dst);
        return HL_OK;
    }
    hl_trainer_zero_grad(r->tr);
    uint64_t micro = (uint64_t)r->st.step * (uint64_t)c->accum + (uint64_t)k; /* seeds dropout */
    double scale = 1.0 / ((double)c->accum * (double)r->micro_total[k]);
    int64_t n;
    hl_status s = hl_trainer_forward_backward_rows(r->tr, r->tok + j * (T + 1), r->mask + j * T, r->pos + j * T, scale,
                                                   micro, b * T, &r->row_loss[j], &n, err);
    if (s != HL_OK) return s;
    for (int32_t i = 0; i < hl_trainer_n_params(r->tr); i++) {
        hl_param p = hl_trainer_param(r->tr, i);
        memcpy(dst, p.grad, (size_t)p.n * sizeof *dst);
        dst += p.n;
    }
    return HL_OK;
}

/* Another rank's cover node, found in the exchange. */
static const float *known_node(void *user, int64_t lo, int64_t hi) {
    hl_train_run *r = user;
    for (int32_t q = 0; q < r->n_ranks; q++) {
        int32_t n;
        const hl_tree_node *cv = hl_row_tree_cover(r->tree, q, &n);
        int64_t rlo, rhi;
        hl_row_tree_rows(r->tree, q, &rlo, &rhi);
        const uint8_t *vec = recv_body(r, q) + (size_t)(rhi - rlo) * 16;
        for (int32_t i = 0; i < n; i++, vec += (size_t)r->n_params * sizeof(float))
            if (cv[i].lo == lo && cv[i].hi == hi) return (const float *)(const void *)vec;
    }
    return NULL;
}

static hl_status send_vec(void *user, int32_t to, const float *v, hl_error *err) {
    const hl_train_run *r = user;
    return r->comm->send(r->comm->user, to, v, (size_t)r->n_params * sizeof *v, err);
}
static hl_status recv_vec(void *user, int32_t from, float *v, hl_error *err) {
    const hl_train_run *r = user;
    return r->comm->recv(r->comm->user, from, v, (size_t)r->n_params * sizeof *v, err);
}

/* r->grad from the rank holding it (root) to every rank: a binomial tree,
 * each rank receiving once. */
static hl_status broadcast_grad(hl_train_run *r, int32_t root, hl_error *err) {
    const int32_t n = r->n_ranks, me = (r->rank - root + n) % n;
    for (int32_t step = 1; step < n; step *= 2) {
        hl_status s = HL_OK;
        if (me < step && me + step < n) s = send_vec(r, (me + step + root) % n, r->grad, err);
        else if (me >= step && me < 2 * step) s = recv_vec(r, (me - step + root) % n, r->grad, err);
        if (s != HL_OK) return s;
    }
    return HL_OK;
}

/* step_gradient with send/recv: the covers' values stay home; the status
 * and the per-row losses go round by allgather (so a failed rank stops
 * everyone before any gradient moves), then the gradient goes up the row
 * tree and the root comes back down. */
static hl_status step_gradient_tree(hl_train_run *r, hl_status local, hl_error *lerr, hl_error *err) {
    int64_t lo, hi;
    int32_t n_cover;
    hl_row_tree_rows(r->tree, r->rank, &lo, &hi);
    const hl_tree_node *cv = hl_row_tree_cover(r->tree, r->rank, &n_cover);
    if (!r->covers && n_cover > 0 &&
        !(r->covers = hl_malloc_array((size_t)n_cover * (size_t)(r->n_params ? r->n_params : 1), sizeof(float))))
        return hl_fail(err, HL_ERR_NOMEM, "train run: out of memory for %d gradient vectors", (int)n_cover);
    for (int32_t i = 0; i < n_cover && local == HL_OK; i++)
        local = hl_row_tree_sum(r->tree, cv[i].lo, cv[i].hi, row_gradient, NULL, r, r->covers + (size_t)i * r->n_params,
                                lerr);
    size_t body[r->n_ranks];
    for (int32_t q = 0; q < r->n_ranks; q++) {
        int64_t qlo, qhi;
        hl_row_tree_rows(r->tree, q, &qlo, &qhi);
        body[q] = (size_t)(qhi - qlo) * 16;
    }
    hl_status s = reserve_send(r, body[r->rank], err);
    if (s != HL_OK) return s;
    for (int64_t j = lo; j < hi && local == HL_OK; j++) put_row(send_body(r) + (j - lo) * 16, r->row_loss[j], r->row_count[j]);
    double t0 = now_s();
    if ((s = exchange(r, local, lerr, 0, body, NULL, err)) != HL_OK) return s;
    for (int32_t q = 0; q < r->n_ranks; q++) {
        int64_t qlo, qhi;
        hl_row_tree_rows(r->tree, q, &qlo, &qhi);
        for (int64_t j = qlo; j < qhi; j++) get_row(recv_body(r, q) + (j - qlo) * 16, &r->row_loss[j], &r->row_count[j]);
    }
    s = hl_row_tree_reduce(r->tree, r->rank, r->covers, send_vec, recv_vec, r, r->grad, err);
    if (s == HL_OK) s = broadcast_grad(r, hl_row_tree_owner(r->tree, 0), err);
    r->exchange_s = now_s() - t0;
    return s;
}

/* The step's gradient into r->grad (and the rows' losses and counts into
 * row_loss / row_count on every rank). local: this rank's outcome so far. */
static hl_status step_gradient(hl_train_run *r, hl_status local, hl_error *lerr, hl_error *err) {
    int64_t lo, hi;
    hl_row_tree_rows(r->tree, r->rank, &lo, &hi);
    if (!r->comm) {
        if (local != HL_OK) return hl_fail(err, local, "%s", lerr->msg);
        return hl_row_tree_sum(r->tree, 0, r->n_rows, row_gradient, NULL, r, r->grad, err);
    }
    if (r->tree_reduce) return step_gradient_tree(r, local, lerr, err);
    int32_t n_cover;
    const hl_tree_node *cv = hl_row_tree_cover(r->tree, r->rank, &n_cover);
    size_t body[r->n_ranks], vec_bytes = (size_t)r->n_params * sizeof(float);
    for (int32_t q = 0; q < r->n_ranks; q++) {
        int32_t nq;
        int64_t qlo, qhi;
        hl_row_tree_cover(r->tree, q, &nq);
        hl_row_tree_rows(r->tree, q, &qlo, &qhi);
        body[q] = (size_t)(qhi - qlo) * 16 + (size_t)nq * vec_bytes; /* sizes checked at init via the tree */
    }
    hl_status s = reserve_send(r, body[r->rank], err);
    if (s != HL_OK) return s;
    uint8_t *out = send_body(r);
    float *vec = (float *)(void *)(out + (size_t)(hi - lo) * 16);
    for (int32_t i = 0; i < n_cover && local == HL_OK; i++)
        local = hl_row_tree_sum(r->tree, cv[i].lo, cv[i].hi, row_gradient, NULL, r, vec + (size_t)i * r->n_params, lerr);
    for (int64_t j = lo; j < hi && local == HL_OK; j++) put_row(out + (j - lo) * 16, r->row_loss[j], r->row_count[j]);
    double t0 = now_s();
    s = exchange(r, local, lerr, 0, body, NULL, err);
    r->exchange_s = now_s() - t0;
    if (s != HL_OK) return s;
    for (int32_t q = 0; q < r->n_ranks; q++) {
        int64_t qlo, qhi;
        hl_row_tree_rows(r->tree, q, &qlo, &qhi);
        for (int64_t j = qlo; j < qhi; j++) get_row(recv_body(r, q) + (j - qlo) * 16, &r->row_loss[j], &r->row_count[j]);
    }
    return hl_row_tree_sum(r->tree, 0, r->n_rows, NULL, known_node, r, r->grad, err);
}

hl_status hl_train_run_step(hl_train_run *r, hl_error *err) {
    const hl_train_config *c = &r->cfg;
    const int64_t B = c->batch, T = c->ctx;
    hl_status s;
    if (r->st.step >= c->steps) /* the same on every rank: no exchange needed */
        return hl_fail(err, HL_ERR_INVALID_ARG, "train run: already at its last step (%lld)", (long long)c->steps);
    if ((s = peers_agree(r, err)) != HL_OK) return s;
    start_clock(r);
    /* This rank's part, failures kept for the exchange so no rank is left waiting. */
    hl_error lerr = {0};
    hl_status local = open_log(r, &lerr);
    if (local == HL_OK && c->before_step) local = c->before_step(c->user, r->st.step + 1, &lerr);
    double t0 = now_s();
    for (int32_t k = 0; k < c->accum && local == HL_OK; k++) { /* every rank draws every row: the cursors agree */
        uint64_t micro = (uint64_t)r->st.step * (uint64_t)c->accum + (uint64_t)k;
        int32_t *tok = r->tok + k * B * (T + 1), *pos = r->pos + k * B * T;
        uint8_t *mask = r->mask + k * B * T;
        if (r->data) hl_dataset_next_batch(r->data, &r->st.cursor, c->batch, tok, mask, pos);
        else local = c->next_batch(c->user, micro, tok, mask, pos, &lerr);
        r->micro_total[k] = 0;
        for (int64_t i = 0; i < B * T; i++) r->micro_total[k] += mask[i] != 0;
    }
    if ((s = step_gradient(r, local, &lerr, err)) != HL_OK) return s;
    double loss = 0;
    int64_t step_tokens = 0;
    for (int32_t k = 0; k < c->accum; k++) {
        double sum = 0;
        for (int64_t b = 0; b < B; b++) sum += r->row_loss[k * B + b];
        if (r->micro_total[k]) loss += sum / (double)r->micro_total[k] / (double)c->accum;
        step_tokens += r->micro_total[k];
    }
    const float *g = r->grad;
    for (int32_t i = 0; i < hl_trainer_n_params(r->tr); i++) {
        hl_param p = hl_trainer_param(r->tr, i);
        memcpy(p.grad, g, (size_t)p.n * sizeof *g);
        g += p.n;
    }
    double t_fb = now_s();
    double gnorm = hl_trainer_grad_norm(r->tr);
    if (!isfinite(gnorm)) /* the same gradient, so the same verdict, on every rank */
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
                           .optim_s = t_opt - t_fb, .exchange_s = r->exchange_s};
    local = record(r, &rec, &lerr);
    if (local == HL_OK && c->on_progress) c->on_progress(c->user, &rec);
    if ((s = agree(r, local, &lerr, 0, NULL, err)) != HL_OK) return s;
    if (c->checkpoint_path && ((c->checkpoint_every > 0 && r->st.step % c->checkpoint_every == 0) ||
                               r->st.step == c->steps))
        return checkpoint_all(r, err);
    return HL_OK;
}

hl_status hl_train_run_to_end(hl_train_run *r, hl_train_outcome *outcome, hl_error *err) {
    const hl_train_config *c = &r->cfg;
    hl_status s;
    hl_error lerr = {0};
    if (outcome) *outcome = HL_TRAIN_FINISHED;
    if ((s = peers_agree(r, err)) != HL_OK) return s;
    start_clock(r);
    if ((s = agree(r, open_log(r, &lerr), &lerr, 0, NULL, err)) != HL_OK) return s;
    if (c->eval_at_start && !r->resumed && r->st.step == 0 && n_val_rows(r) > 0) {
        /* The starting point: the eval loss before any update. */
        if ((s = hl_train_run_eval(r, &r->last_eval, err)) != HL_OK) return s;
        hl_train_record r0 = {.step = 0, .total_steps = c->steps, .loss = NAN, .eval_loss = r->last_eval, .lr = 0,
                              .grad_norm = NAN, .tokens_per_s = NAN, .elapsed_s = now_s() - r->t_start, .tokens = 0,
                              .fwd_bwd_s = NAN, .optim_s = NAN};
        if ((s = agree(r, record(r, &r0, &lerr), &lerr, 0, NULL, err)) != HL_OK) return s;
    }
    /* A stop any rank asks for stops them all, at the same step. */
    int stop = 0, paused = 0;
    if ((s = agree(r, HL_OK, &lerr, c->should_stop && c->should_stop(c->user), &stop, err)) != HL_OK) return s;
    while (r->st.step < c->steps && !stop && !paused) {
        if ((s = hl_train_run_step(r, err)) != HL_OK) return s;
        if ((s = agree(r, HL_OK, &lerr, c->should_stop && c->should_stop(c->user), &stop, err)) != HL_OK) return s;
        paused = c->stop_at > 0 && r->st.step >= c->stop_at && r->st.step < c->steps;
        /* hl_train_run_step already saved at the last step and every checkpoint_every. */
        int saved = (c->checkpoint_every > 0 && r->st.step % c->checkpoint_every == 0) || r->st.step == c->steps;
        if (c->checkpoint_path && (stop || paused) && !saved && (s = checkpoint_all(r, err)) != HL_OK) return s;
    }
    if (outcome) *outcome = paused ? HL_TRAIN_PAUSED : stop ? HL_TRAIN_STOPPED : HL_TRAIN_FINISHED;
    return HL_OK;
}

int64_t hl_train_run_step_count(const hl_train_run *r) { return r->st.step; }

/* Vectors rank q receives while reducing node [lo, hi) (as reduce_node). */
static int64_t reduce_recvs(const hl_train_run *r, int32_t q, int64_t lo, int64_t hi) {
    int64_t qlo, qhi;
    hl_row_tree_rows(r->tree, q, &qlo, &qhi);
    if (qlo >= qhi || hi <= qlo || qhi <= lo || (qlo <= lo && hi <= qhi)) return 0;
    int64_t mid = lo + (hi - lo) / 2;
    int64_t n = reduce_recvs(r, q, lo, mid) + reduce_recvs(r, q, mid, hi);
    int32_t own_left = hl_row_tree_owner(r->tree, lo), own_right = hl_row_tree_owner(r->tree, mid);
    return n + (q == own_left && own_right != q);
}

int64_t hl_train_run_exchange_bytes(const hl_train_run *r) {
    if (!r->comm) return 0;
    int64_t total = 0;
    if (r->tree_reduce) { /* the status and row allgather, then the most vectors one rank receives */
        int64_t most = 0;
        int32_t root = hl_row_tree_owner(r->tree, 0);
        for (int32_t q = 0; q < r->n_ranks; q++) {
            int64_t v = reduce_recvs(r, q, 0, r->n_rows) + (q != root);
            if (v > most) most = v;
        }
        return (int64_t)sizeof(wire_header) * r->n_ranks + r->n_rows * 16 +
               most * r->n_params * (int64_t)sizeof(float);
    }
    for (int32_t q = 0; q < r->n_ranks; q++) {
        int32_t n;
        int64_t lo, hi;
        hl_row_tree_cover(r->tree, q, &n);
        hl_row_tree_rows(r->tree, q, &lo, &hi);
        total += (int64_t)sizeof(wire_header) + (hi - lo) * 16 + (int64_t)n * r->n_params * (int64_t)sizeof(float);
    }
    return total;
}
int64_t hl_train_run_tokens(const hl_train_run *r) { return r->st.tokens; }
double hl_train_run_last_eval(const hl_train_run *r) { return r->last_eval; }
const char *hl_train_run_checkpoint_settings(const hl_train_run *r) { return r->ck_settings; }

int64_t hl_train_run_n_params(const hl_train_run *r) {
    int64_t n = 0;
    for (int32_t i = 0; i < hl_trainer_n_params(r->tr); i++) n += hl_trainer_param(r->tr, i).n;
    return n;
}
