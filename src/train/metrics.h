/* metrics.h: the JSONL metrics log of a training run, one record per step.
 * What displays it lives in the CLI: the progress bar (cli/progress.h) and
 * the SVG plot (cli/plot.h). */
#ifndef HL_TRAIN_METRICS_H
#define HL_TRAIN_METRICS_H
#include <stdint.h>
#include <stdio.h>
#include "hyperlora.h"
#include "hyperlora/train.h"

/* One record per step (hyperlora/train.h); the log, the progress display and
 * the plot all read it. */
typedef hl_train_record hl_step_record;

/* JSONL: {"step":..,"loss":..,"eval_loss":..|null,"lr":..,"grad_norm":..,"tokens_per_s":..,"elapsed_s":..,"tokens":..} */
typedef struct hl_metrics hl_metrics;
/* How every metrics log starts: an existing non-empty file that does not is
 * not a metrics log, and hl_metrics_open refuses to replace it. */
#define HL_METRICS_PREFIX "{\"step\":"
/* append: keep existing records (resume) — records with step >= first_step are dropped first.
 * The log is never truncated in place: the kept records (none for a new run)
 * go to a temp file renamed over path, which is then opened for appending.
 * A path that is a symlink, not a regular file, or not a metrics log is refused. */
hl_status hl_metrics_open(const char *path, int append, int64_t first_step, hl_metrics **out, hl_error *err);
hl_status hl_metrics_write(hl_metrics *m, const hl_step_record *r, hl_error *err);
void hl_metrics_close(hl_metrics *m);

#endif
