/* metrics.h: what a training run shows the user: a JSONL metrics file (one
 * record per step), a progress display (a redrawn bar on a terminal, plain
 * lines otherwise), and an SVG plot of the train/eval loss curves. */
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

/* Progress on stream f (stderr): on a TTY a single redrawn line
 * "[#####.....] step 120/500 loss 1.234 eval 1.301 312 tok/s ETA 1m12s";
 * otherwise one plain line every `every` steps and at the end. */
typedef struct hl_progress hl_progress;
hl_progress *hl_progress_init(FILE *f, int force_plain, int64_t every);
void hl_progress_update(hl_progress *p, const hl_step_record *r);
void hl_progress_finish(hl_progress *p);
void hl_progress_free(hl_progress *p);

/* Reads a metrics JSONL and writes a standalone SVG with the train loss (and
 * eval loss points/curve when present) against the step, with axes, ticks,
 * labels and a legend. Bad lines are reported with their line number. */
hl_status hl_plot_metrics_svg(const char *metrics_path, const char *svg_path, const char *title, hl_error *err);

/* Test hooks: the pieces the progress display and the plot are built from. */
/* "45s", "1m12s", "2h03m05s"; "--" for a negative or non-finite duration. */
void hl_format_duration(double seconds, char *buf, size_t cap);
/* width chars of '#' (done) then '.' (to do) for frac in [0, 1]; buf needs width+1. */
void hl_format_bar(double frac, int width, char *buf, size_t cap);
/* Nice axis ticks (1/2/5 x 10^k) covering [lo, hi] (lo < hi, both finite) with about
 * `target` ticks: *first, *first + *step, ... up to *last. Returns the tick count. */
int hl_nice_ticks(double lo, double hi, int target, double *first, double *last, double *step);
#endif
