/* test_train_run.c: the training run object (hyperlora/train.h) on
 * stories260K with the shipped stories data: defaults and config errors
 * that name the field; the callbacks; a run stopped by should_stop, or
 * paused at stop_at, and resumed in a fresh run ends with the very weights
 * of an uninterrupted one; stepping by hand equals running to the end; a
 * batch source gives the same weights as the dataset it reads; resume with
 * other settings, a failing pre-step check and a step past the end are
 * refused. */
#include "hyperlora.h"
#include "hyperlora/train.h"
#include "lora/adapter.h"
#include "lora/create.h"
#include "train/dataset.h"
#include "test_util.h"
#include "adapter_util.h"

#include <unistd.h>

#define STEPS 8

typedef struct counts {
    int metrics, progress, stop_after; /* stop_after: should_stop says yes once progress reaches it (0: never) */
    int64_t first_metrics_step;
    hl_status fail_with;               /* before_step's answer */
    const hl_dataset *source;          /* batch source: draws from this dataset */
    hl_data_cursor cursor;
} counts;

static void on_metrics(void *user, const hl_train_record *r) {
    counts *c = user;
    if (c->metrics++ == 0) c->first_metrics_step = r->step;
}
static void on_progress(void *user, const hl_train_record *r) {
    (void)r;
    ((counts *)user)->progress++;
}
static int should_stop(void *user) {
    const counts *c = user;
    return c->stop_after > 0 && c->progress >= c->stop_after;
}
static hl_status before_step(void *user, int64_t next_step, hl_error *err) {
    const counts *c = user;
    if (c->fail_with == HL_OK) return HL_OK;
    err->status = c->fail_with;
    snprintf(err->msg, sizeof err->msg, "refused before step %lld", (long long)next_step);
    return c->fail_with;
}
static hl_status from_dataset(void *user, uint64_t micro_step, int32_t *tokens, uint8_t *mask, int32_t *pos,
                              hl_error *err) {
    counts *c = user;
    (void)micro_step;
    (void)err;
    hl_dataset_next_batch(c->source, &c->cursor, 2, tokens, mask, pos);
    return HL_OK;
}

static hl_adapter *new_adapter(const hl_model *m) {
    hl_error err = {0};
    uint32_t targets;
    CHECK_OK(hl_parse_targets("q,v", &targets, &err), &err);
    hl_adapter_spec spec = {.name = "run", .targets = targets, .rank = 4, .alpha = 8, .seed = 3};
    hl_adapter *ad = NULL;
    CHECK_OK(hl_adapter_create(m, &spec, &ad, &err), &err);
    REQUIRE(ad);
    return ad;
}

static hl_train_config base_config(counts *c) {
    hl_train_config cfg = hl_train_default_config();
    cfg.batch = 2;
    cfg.ctx = 32;
    cfg.accum = 2;
    cfg.steps = STEPS;
    cfg.lr = 3e-3;
    cfg.dropout = 0.1;
    cfg.seed = 3;
    cfg.eval_every = 3;
    cfg.checkpoint_every = 0;
    cfg.settings = "test settings";
    cfg.on_metrics = on_metrics;
    cfg.on_progress = on_progress;
    cfg.should_stop = should_stop;
    cfg.before_step = before_step;
    cfg.user = c;
    return cfg;
}

static int count_lines(const char *path) {
    FILE *f = fopen(path, "r");
    int n = 0, ch;
    if (!f) return -1;
    while ((ch = fgetc(f)) != EOF) n += ch == '\n';
    fclose(f);
    return n;
}

static void test_defaults_and_errors(const hl_model *m, const hl_dataset *ds) {
    hl_train_config d = hl_train_default_config();
    CHECK(d.mode == HL_TRAIN_LORA && d.batch == 4 && d.ctx == 256 && d.accum == 1 && d.n_threads == 1);
    CHECK(d.steps == 100 && d.lr == 1e-3 && d.schedule == HL_TRAIN_SCHED_COSINE && d.min_lr_ratio == 0.1);
    CHECK(d.beta1 == 0.9 && d.beta2 == 0.999 && d.eps == 1e-8 && d.clip == 1.0 && d.rng_salt == 0x5eed);
    CHECK(d.eval_every == 50 && d.eval_at_start == 1 && d.checkpoint_every == 50 && !d.checkpoint_path);

    hl_adapter *ad = new_adapter(m);
    hl_train_run *run = NULL;
    hl_error err = {0};
    counts c = {0};
    hl_train_config cfg = base_config(&c);
    cfg.batch = 0;
    CHECK(hl_train_run_init(m, ad, ds, &cfg, &run, &err) == HL_ERR_INVALID_ARG && !run);
    CHECK_MSG(strstr(err.msg, "batch") != NULL, "%s", err.msg);
    cfg = base_config(&c);
    cfg.mode = HL_TRAIN_FULL;
    CHECK(hl_train_run_init(m, ad, ds, &cfg, &run, &err) == HL_ERR_INVALID_ARG && !run);
    CHECK_MSG(strstr(err.msg, "mode") != NULL, "%s", err.msg);
    cfg = base_config(&c);
    cfg.dropout = 1;
    CHECK(hl_train_run_init(m, ad, ds, &cfg, &run, &err) == HL_ERR_INVALID_ARG);
    CHECK_MSG(strstr(err.msg, "dropout") != NULL, "%s", err.msg);
    cfg = base_config(&c);
    cfg.ctx = 16; /* the dataset's rows are 32 */
    CHECK(hl_train_run_init(m, ad, ds, &cfg, &run, &err) == HL_ERR_INVALID_ARG);
    CHECK_MSG(strstr(err.msg, "ctx") != NULL, "%s", err.msg);
    cfg = base_config(&c);
    CHECK(hl_train_run_init(m, ad, NULL, &cfg, &run, &err) == HL_ERR_INVALID_ARG);
    CHECK_MSG(strstr(err.msg, "next_batch") != NULL, "%s", err.msg);
    hl_adapter_free(ad);
}

int main(void) {
    hl_error err = {0};
    hl_model *m = NULL;
    CHECK_OK(hl_model_load(shared_path("models/stories260K/stories260K-f32.gguf"), NULL, &m, &err), &err);
    REQUIRE(m);
    hl_dataset_params dp = {.ctx = 32, .pack = HL_PACK_DOCS, .val_fraction = 0.2f, .seed = 3};
    hl_dataset *ds = NULL;
    CHECK_OK(hl_dataset_load(HL_SOURCE_DIR "/examples/stories/train.jsonl", hl_model_get_tokenizer(m), &dp, &ds, &err),
             &err);
    REQUIRE(ds && hl_dataset_n_val_rows(ds) > 0);
    char ckpt[64], log[64];
    snprintf(ckpt, sizeof ckpt, "train_run_%d.ckpt", (int)getpid());
    snprintf(log, sizeof log, "train_run_%d.metrics.jsonl", (int)getpid());

    test_defaults_and_errors(m, ds);

    /* The reference: uninterrupted, to the end. */
    counts c0 = {0};
    hl_train_config cfg = base_config(&c0);
    cfg.metrics_path = log;
    hl_adapter *ref = new_adapter(m);
    hl_train_run *run = NULL;
    hl_train_outcome out = HL_TRAIN_PAUSED;
    CHECK_OK(hl_train_run_init(m, ref, ds, &cfg, &run, &err), &err);
    REQUIRE(run);
    CHECK(hl_train_run_n_params(run) > 0);
    CHECK_OK(hl_train_run_to_end(run, &out, &err), &err);
    CHECK(out == HL_TRAIN_FINISHED && hl_train_run_step_count(run) == STEPS && hl_train_run_tokens(run) > 0);
    CHECK(isfinite(hl_train_run_last_eval(run)));
    CHECK(c0.metrics == STEPS + 1 && c0.first_metrics_step == 0 && c0.progress == STEPS);
    CHECK(count_lines(log) == STEPS + 1);
    CHECK(hl_train_run_step(run, &err) == HL_ERR_INVALID_ARG); /* past the end */
    hl_train_run_free(run);

    /* Stopped by should_stop after 3 steps, then resumed in a fresh run. */
    counts c1 = {.stop_after = 3};
    cfg = base_config(&c1);
    cfg.checkpoint_path = ckpt;
    cfg.metrics_path = log;
    hl_adapter *ad = new_adapter(m);
    CHECK_OK(hl_train_run_init(m, ad, ds, &cfg, &run, &err), &err);
    CHECK_OK(hl_train_run_to_end(run, &out, &err), &err);
    CHECK(out == HL_TRAIN_STOPPED && hl_train_run_step_count(run) == 3 && access(ckpt, F_OK) == 0);
    hl_train_run_free(run);
    hl_adapter_free(ad);
    counts c2 = {0};
    cfg = base_config(&c2);
    cfg.checkpoint_path = ckpt;
    cfg.metrics_path = log;
    ad = new_adapter(m);
    CHECK_OK(hl_train_run_init(m, ad, ds, &cfg, &run, &err), &err);
    CHECK_OK(hl_train_run_resume(run, ckpt, &err), &err);
    CHECK(hl_train_run_step_count(run) == 3);
    CHECK_OK(hl_train_run_to_end(run, &out, &err), &err);
    CHECK(out == HL_TRAIN_FINISHED && c2.progress == STEPS - 3 && c2.metrics == STEPS - 3); /* no step-0 eval */
    CHECK(count_lines(log) == STEPS + 1);
    CHECK_MSG(same_weights(ad, ref), "a stopped and resumed run ends with the uninterrupted weights");
    hl_train_run_free(run);
    hl_adapter_free(ad);

    /* Paused at stop_at, resumed. */
    counts c3 = {0};
    cfg = base_config(&c3);
    cfg.checkpoint_path = ckpt;
    cfg.stop_at = 5;
    ad = new_adapter(m);
    CHECK_OK(hl_train_run_init(m, ad, ds, &cfg, &run, &err), &err);
    CHECK_OK(hl_train_run_to_end(run, &out, &err), &err);
    CHECK(out == HL_TRAIN_PAUSED && hl_train_run_step_count(run) == 5);
    hl_train_run_free(run);
    hl_adapter_free(ad);
    cfg.stop_at = 0;
    ad = new_adapter(m);
    CHECK_OK(hl_train_run_init(m, ad, ds, &cfg, &run, &err), &err);
    CHECK_OK(hl_train_run_resume(run, ckpt, &err), &err);
    CHECK_OK(hl_train_run_to_end(run, &out, &err), &err);
    CHECK_MSG(same_weights(ad, ref), "a paused and resumed run ends with the uninterrupted weights");
    hl_train_run_free(run);
    hl_adapter_free(ad);

    /* Other settings: refused, and the saved ones are shown. */
    counts c4 = {0};
    cfg = base_config(&c4);
    cfg.settings = "other settings";
    ad = new_adapter(m);
    CHECK_OK(hl_train_run_init(m, ad, ds, &cfg, &run, &err), &err);
    CHECK(hl_train_run_resume(run, ckpt, &err) == HL_ERR_MISMATCH);
    CHECK(hl_train_run_checkpoint_settings(run) && !strcmp(hl_train_run_checkpoint_settings(run), "test settings"));
    hl_train_run_free(run);
    hl_adapter_free(ad);

    /* By hand: hl_train_run_step STEPS times equals to_end. */
    counts c5 = {0};
    cfg = base_config(&c5);
    ad = new_adapter(m);
    CHECK_OK(hl_train_run_init(m, ad, ds, &cfg, &run, &err), &err);
    for (int i = 0; i < STEPS; i++) CHECK_OK(hl_train_run_step(run, &err), &err);
    CHECK(c5.progress == STEPS && c5.metrics == STEPS);
    double ev = NAN;
    CHECK_OK(hl_train_run_eval(run, &ev, &err), &err);
    CHECK(ev == hl_train_run_last_eval(run)); /* the last step evaluated the same weights */
    CHECK_MSG(same_weights(ad, ref), "stepping by hand gives the weights of to_end");
    hl_train_run_free(run);
    hl_adapter_free(ad);

    /* A batch source reading the same dataset: the same weights, no validation. */
    counts c6 = {.source = ds};
    cfg = base_config(&c6);
    cfg.next_batch = from_dataset;
    ad = new_adapter(m);
    CHECK_OK(hl_train_run_init(m, ad, NULL, &cfg, &run, &err), &err);
    CHECK_OK(hl_train_run_to_end(run, &out, &err), &err);
    CHECK(isnan(hl_train_run_last_eval(run)) && c6.metrics == STEPS);
    CHECK_MSG(same_weights(ad, ref), "a batch source gives the weights of its dataset");
    hl_train_run_free(run);
    hl_adapter_free(ad);

    /* A failing pre-step check fails the run before anything changes. */
    counts c7 = {.fail_with = HL_ERR_IO};
    cfg = base_config(&c7);
    cfg.eval_at_start = 0;
    ad = new_adapter(m);
    CHECK_OK(hl_train_run_init(m, ad, ds, &cfg, &run, &err), &err);
    CHECK(hl_train_run_to_end(run, &out, &err) == HL_ERR_IO && strstr(err.msg, "before step 1"));
    CHECK(hl_train_run_step_count(run) == 0 && c7.progress == 0);
    hl_train_run_free(run);
    hl_adapter_free(ad);

    remove(ckpt);
    remove(log);
    hl_adapter_free(ref);
    hl_dataset_free(ds);
    hl_model_free(m);
    return hl_test_finish("test_train_run");
}
