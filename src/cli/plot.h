/* plot.h: the SVG loss plot of a metrics log (`hyperlora plot`). */
#ifndef HL_CLI_PLOT_H
#define HL_CLI_PLOT_H
#include "hyperlora.h"

/* Reads a metrics JSONL and writes a standalone SVG with the train loss (and
 * eval loss points/curve when present) against the step, with axes, ticks,
 * labels and a legend. Bad lines are reported with their line number. */
hl_status hl_plot_metrics_svg(const char *metrics_path, const char *svg_path, const char *title, hl_error *err);

/* Test hook: nice axis ticks (1/2/5 x 10^k) covering [lo, hi] (lo < hi, both
 * finite) with about `target` ticks: *first, *first + *step, ... up to *last.
 * Returns the tick count. */
int hl_nice_ticks(double lo, double hi, int target, double *first, double *last, double *step);
#endif
