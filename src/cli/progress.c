/* progress.c: the training progress display of the CLI: one redrawn bar
 * line on a terminal, plain lines otherwise, and the closing summary. It
 * reads the run's step records (hyperlora/train.h) and nothing else. */
#include "cli/progress.h"
#include "util/alloc.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define TPS_WINDOW 8
#define BAR_WIDTH 24
#define MIN_BAR_WIDTH 8       /* narrower than this, the bar says too little to keep */
#define REDRAW_INTERVAL_S 0.1 /* a terminal does not need more than ~10 redraws a second */

struct hl_progress {
    FILE *f;
    int tty;
    int64_t every;
    double tps[TPS_WINDOW]; /* ring of the last tokens/s samples */
    int n_tps, tps_pos;
    double tps_sum;
    int64_t tps_count;
    int64_t first_step;     /* first step seen: ETA counts steps of this run (or resume) only */
    double last_eval;       /* NAN until the first eval */
    hl_train_record last;
    int have_last;
    int drawn;              /* a TTY line is on screen without its newline */
    int finished;
    double last_draw_s;
};

void hl_format_duration(double seconds, char *buf, size_t cap) {
    if (!cap) return;
    if (!isfinite(seconds) || seconds < 0 || seconds > 3.6e9) {
        snprintf(buf, cap, "--");
        return;
    }
    long long t = (long long)(seconds + 0.5);
    long long h = t / 3600, m = t / 60 % 60, s = t % 60;
    if (h) snprintf(buf, cap, "%lldh%02lldm%02llds", h, m, s);
    else if (m) snprintf(buf, cap, "%lldm%02llds", m, s);
    else snprintf(buf, cap, "%llds", s);
}

void hl_format_bar(double frac, int width, char *buf, size_t cap) {
    if (!cap) return;
    if (!(frac >= 0)) frac = 0; /* also catches NaN */
    if (frac > 1) frac = 1;
    if (width < 0) width = 0;
    if ((size_t)width >= cap) width = (int)cap - 1;
    int done = (int)(frac * width + 1e-9);
    for (int i = 0; i < width; i++) buf[i] = i < done ? '#' : '.';
    buf[width] = 0;
}

hl_progress *hl_progress_init(FILE *f, int force_plain, int64_t every) {
    if (!f) return NULL;
    hl_progress *p = hl_calloc(1, sizeof *p);
    if (!p) return NULL;
    p->f = f;
    p->tty = !force_plain && isatty(fileno(f));
    p->every = every > 0 ? every : 1;
    p->last_eval = NAN;
    return p;
}

static double median_tps(const hl_progress *p) {
    double v[TPS_WINDOW];
    int n = p->n_tps;
    memcpy(v, p->tps, sizeof(double) * (size_t)n);
    for (int i = 1; i < n; i++) /* insertion sort: at most 8 values */
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    if (!n) return NAN;
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Seconds left, from the average step time of this run so far. */
static double eta_s(const hl_progress *p, const hl_train_record *r) {
    int64_t done = r->step - p->first_step + 1;
    if (r->total_steps <= 0 || done <= 0 || !(r->elapsed_s >= 0)) return NAN;
    int64_t left = r->total_steps - r->step;
    return left <= 0 ? 0 : r->elapsed_s / (double)done * (double)left;
}

/* "step 120/500 loss 1.2345 eval 1.3010 [lr 1.0e-03 ]312 tok/s ETA 1m12s" */
static void format_status(const hl_progress *p, const hl_train_record *r, int with_lr, char *buf, size_t cap) {
    size_t k = 0;
#define PUT(...) do { if (k < cap) { int w_ = snprintf(buf + k, cap - k, __VA_ARGS__); if (w_ > 0) k += (size_t)w_; } } while (0)
    if (r->total_steps > 0) PUT("step %" PRId64 "/%" PRId64, r->step, r->total_steps);
    else PUT("step %" PRId64, r->step);
    PUT(" loss %.4f", r->loss);
    if (isfinite(p->last_eval)) PUT(" eval %.4f", p->last_eval);
    if (with_lr) PUT(" lr %.1e", r->lr);
    double tps = median_tps(p);
    if (isfinite(tps)) PUT(" %.0f tok/s", tps);
    double eta = eta_s(p, r);
    if (isfinite(eta)) {
        char d[32];
        hl_format_duration(eta, d, sizeof d);
        PUT(" ETA %s", d);
    }
#undef PUT
}

void hl_format_progress_line(const char *status, double frac, int columns, char *buf, size_t cap) {
    if (!cap) return;
    buf[0] = 0;
    size_t len = strlen(status);
    /* A line that reaches the last column wraps on most terminals, and the
     * next \r then redraws only the wrapped part: keep one column free. */
    int room = columns > 1 ? columns - 1 : 0;
    int bar_width = BAR_WIDTH;
    if (room > 0 && (int64_t)len + 3 + bar_width > room) {
        bar_width = room - 3 - (int)(len < (size_t)room ? len : (size_t)room);
        if (bar_width < MIN_BAR_WIDTH) bar_width = 0;
    }
    size_t k = 0;
    if (bar_width > 0) {
        char bar[BAR_WIDTH + 1];
        hl_format_bar(frac, bar_width, bar, sizeof bar);
        int w = snprintf(buf, cap, "[%s] ", bar);
        k = w > 0 && (size_t)w < cap ? (size_t)w : cap - 1;
    }
    size_t keep = len;
    if (room > 0 && k + keep > (size_t)room) keep = (size_t)room > k ? (size_t)room - k : 0;
    if (k + keep >= cap) keep = cap - 1 - k;
    memcpy(buf + k, status, keep);
    buf[k + keep] = 0;
}

/* The terminal's width in columns; 0 when it does not say (a fresh
 * pseudo-terminal), and then the line is not fitted. */
static int terminal_columns(FILE *f) {
    struct winsize ws;
    if (ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
    return 0;
}

static void draw_tty(hl_progress *p) {
    const hl_train_record *r = &p->last;
    char status[256], line[320];
    double frac = r->total_steps > 0 ? (double)r->step / (double)r->total_steps : 0;
    format_status(p, r, 0, status, sizeof status);
    hl_format_progress_line(status, frac, terminal_columns(p->f), line, sizeof line);
    /* \r returns to column 0; ESC[K clears what a longer previous line left. */
    fprintf(p->f, "\r%s\x1b[K", line);
    fflush(p->f);
    p->drawn = 1;
    p->last_draw_s = r->elapsed_s;
}

void hl_progress_update(hl_progress *p, const hl_train_record *r) {
    if (!p || !r) return;
    int first = !p->have_last;
    if (first) p->first_step = r->step;
    int evaluated = isfinite(r->eval_loss);
    if (evaluated) p->last_eval = r->eval_loss;
    if (isfinite(r->tokens_per_s) && r->tokens_per_s >= 0) {
        p->tps[p->tps_pos] = r->tokens_per_s;
        p->tps_pos = (p->tps_pos + 1) % TPS_WINDOW;
        if (p->n_tps < TPS_WINDOW) p->n_tps++;
        p->tps_sum += r->tokens_per_s;
        p->tps_count++;
    }
    p->last = *r;
    p->have_last = 1;
    p->finished = 0;
    int last_step = r->total_steps > 0 && r->step >= r->total_steps;
    if (p->tty) {
        double since = r->elapsed_s - p->last_draw_s;
        if (first || evaluated || last_step || !(since >= 0) || since >= REDRAW_INTERVAL_S) draw_tty(p);
    } else if (r->step % p->every == 0 || evaluated || last_step) {
        char status[256];
        format_status(p, r, 1, status, sizeof status);
        fprintf(p->f, "%s\n", status);
        fflush(p->f);
    }
}

void hl_progress_finish(hl_progress *p) {
    if (!p || p->finished || !p->have_last) return;
    const hl_train_record *r = &p->last;
    if (p->tty) {
        draw_tty(p); /* the last update may have been skipped by the redraw throttle */
        fputc('\n', p->f);
        p->drawn = 0;
    }
    char took[32], line[256];
    size_t k = 0;
    hl_format_duration(r->elapsed_s, took, sizeof took);
    k += (size_t)snprintf(line + k, sizeof line - k, "done: step %" PRId64, r->step);
    if (r->total_steps > 0) k += (size_t)snprintf(line + k, sizeof line - k, "/%" PRId64, r->total_steps);
    k += (size_t)snprintf(line + k, sizeof line - k, " in %s, loss %.4f", took, r->loss);
    if (isfinite(p->last_eval)) k += (size_t)snprintf(line + k, sizeof line - k, ", eval %.4f", p->last_eval);
    if (p->tps_count)
        snprintf(line + k, sizeof line - k, ", %.0f tok/s average", p->tps_sum / (double)p->tps_count);
    fprintf(p->f, "%s\n", line);
    fflush(p->f);
    p->finished = 1;
}

void hl_progress_free(hl_progress *p) {
    if (!p) return;
    /* Freed without finish (an error or interrupt): end the redrawn line so
     * the next message does not land on top of it. */
    if (p->tty && p->drawn) {
        fputc('\n', p->f);
        fflush(p->f);
    }
    hl_free(p);
}
