/* progress.h: the CLI's training progress display, fed with the run's step
 * records (hyperlora/train.h, through the progress callback). */
#ifndef HL_CLI_PROGRESS_H
#define HL_CLI_PROGRESS_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "hyperlora/train.h"

/* Progress on stream f (stderr): on a TTY a single redrawn line
 * "[#####.....] step 120/500 loss 1.234 eval 1.301 312 tok/s ETA 1m12s";
 * otherwise one plain line every `every` steps and at the end. */
typedef struct hl_progress hl_progress;
hl_progress *hl_progress_init(FILE *f, int force_plain, int64_t every);
void hl_progress_update(hl_progress *p, const hl_train_record *r);
void hl_progress_finish(hl_progress *p);
void hl_progress_free(hl_progress *p);

/* Test hooks: the pieces the display is built from. */
/* "45s", "1m12s", "2h03m05s"; "--" for a negative or non-finite duration. */
void hl_format_duration(double seconds, char *buf, size_t cap);
/* width chars of '#' (done) then '.' (to do) for frac in [0, 1]; buf needs width+1. */
void hl_format_bar(double frac, int width, char *buf, size_t cap);
/* The redrawn line, "[bar] status", fitted to a terminal of `columns`
 * (0: unknown, not fitted): within columns - 1 characters, the bar narrowed
 * first, then dropped, then the status cut. */
void hl_format_progress_line(const char *status, double frac, int columns, char *buf, size_t cap);
#endif
