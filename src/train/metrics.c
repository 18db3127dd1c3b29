/* metrics.c: the per-step metrics JSONL and the progress display. */
#include "train/metrics.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/fileio.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A metrics file grows ~200 bytes a step; this allows millions of steps. */
#define METRICS_MAX_BYTES ((size_t)1 << 30)

struct hl_metrics {
    FILE *fp;
    char *path;
};

/* The step of one JSONL record, or 0 when the line is not a complete record
 * (a run killed mid-write can leave a torn last line, which resume drops). */
static int record_step(const char *line, size_t len, int64_t *step) {
    cJSON *j = cJSON_ParseWithLength(line, len);
    if (!j) return 0;
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "step");
    int ok = cJSON_IsObject(j) && cJSON_IsNumber(s) && isfinite(s->valuedouble) &&
             s->valuedouble == floor(s->valuedouble) && fabs(s->valuedouble) < 9e15;
    if (ok) *step = (int64_t)s->valuedouble;
    cJSON_Delete(j);
    return ok;
}

/* Starts the log: a new file holding the records of text with step <
 * first_step (none for a new run), written to a temp file and renamed over
 * path, so a crash leaves the old file intact and nothing is ever truncated
 * in place (a hard link elsewhere keeps its old contents). */
static hl_status start_log(const char *path, int append, int64_t first_step, hl_error *err) {
    char *text = NULL;
    size_t n = 0;
    hl_status s = HL_OK;
    struct stat st;
    if (append) {
        if (lstat(path, &st) == 0) s = hl_read_file(path, METRICS_MAX_BYTES, &text, &n, err);
        else if (errno != ENOENT) return hl_fail(err, HL_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        if (s != HL_OK) return s;
    }
    hl_atomic_file af;
    s = hl_atomic_file_open(&af, path, err);
    for (size_t a = 0; s == HL_OK && a < n;) {
        const char *nl = memchr(text + a, '\n', n - a);
        size_t e = nl ? (size_t)(nl - text) : n;
        int64_t step;
        if (record_step(text + a, e - a, &step) && step < first_step) {
            s = hl_atomic_file_write(&af, text + a, e - a, err);
            if (s == HL_OK) s = hl_atomic_file_write(&af, "\n", 1, err);
        }
        a = e + 1;
    }
    hl_free(text);
    if (s == HL_OK) return hl_atomic_file_commit(&af, err);
    hl_atomic_file_abort(&af); /* safe after a failed open too */
    return s;
}

hl_status hl_metrics_open(const char *path, int append, int64_t first_step, hl_metrics **out, hl_error *err) {
    *out = NULL;
    if (!path || !*path) return hl_fail(err, HL_ERR_INVALID_ARG, "metrics: no file name");
    /* Only a metrics log (or nothing) is ever replaced: --metrics naming a model is refused. */
    hl_status s = hl_output_check(path, HL_METRICS_PREFIX, "a metrics log", err);
    if (s != HL_OK) return s;
    hl_metrics *m = hl_calloc(1, sizeof *m);
    if (!m || !(m->path = hl_strdup(path))) {
        hl_free(m);
        return hl_fail(err, HL_ERR_NOMEM, "%s: out of memory", path);
    }
    s = start_log(path, append, first_step, err);
    if (s == HL_OK) {
        /* The file just renamed into place, for appending: never through a link, never a FIFO or device. */
        int fd = open(path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        struct stat st;
        if (fd < 0) s = hl_fail(err, HL_ERR_IO, "%s: cannot open for writing: %s", path, strerror(errno));
        else if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
            s = hl_fail(err, HL_ERR_IO, "%s: replaced by something other than a regular file", path);
        else if (!(m->fp = fdopen(fd, "a")))
            s = hl_fail(err, HL_ERR_IO, "%s: cannot open for writing: %s", path, strerror(errno));
        if (fd >= 0 && !m->fp) close(fd);
    }
    if (s != HL_OK) {
        hl_metrics_close(m);
        return s;
    }
    *out = m;
    return HL_OK;
}

/* JSON has no NaN/inf: non-finite values become null. */
static void json_num(char *buf, size_t cap, double v) {
    if (isfinite(v)) snprintf(buf, cap, "%.9g", v);
    else snprintf(buf, cap, "null");
}

hl_status hl_metrics_write(hl_metrics *m, const hl_step_record *r, hl_error *err) {
    char loss[32], eval[32], lr[32], gn[32], tps[32], el[32], line[384];
    json_num(loss, sizeof loss, r->loss);
    json_num(eval, sizeof eval, r->eval_loss);
    json_num(lr, sizeof lr, r->lr);
    json_num(gn, sizeof gn, r->grad_norm);
    json_num(tps, sizeof tps, r->tokens_per_s);
    json_num(el, sizeof el, r->elapsed_s);
    snprintf(line, sizeof line,
             "{\"step\":%" PRId64 ",\"loss\":%s,\"eval_loss\":%s,\"lr\":%s,\"grad_norm\":%s,"
             "\"tokens_per_s\":%s,\"elapsed_s\":%s,\"tokens\":%" PRId64 "}\n",
             r->step, loss, eval, lr, gn, tps, el, r->tokens);
    /* Flushed per record: a killed run keeps every completed step. */
    if (fputs(line, m->fp) == EOF || fflush(m->fp) != 0)
        return hl_fail(err, HL_ERR_IO, "%s: write failed: %s", m->path, strerror(errno));
    return HL_OK;
}

void hl_metrics_close(hl_metrics *m) {
    if (!m) return;
    if (m->fp) fclose(m->fp);
    hl_free(m->path);
    hl_free(m);
}

/* ---------------------------------------------------------------- progress */

#define TPS_WINDOW 8
#define BAR_WIDTH 24
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
    hl_step_record last;
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
static double eta_s(const hl_progress *p, const hl_step_record *r) {
    int64_t done = r->step - p->first_step + 1;
    if (r->total_steps <= 0 || done <= 0 || !(r->elapsed_s >= 0)) return NAN;
    int64_t left = r->total_steps - r->step;
    return left <= 0 ? 0 : r->elapsed_s / (double)done * (double)left;
}

/* "step 120/500 loss 1.2345 eval 1.3010 [lr 1.0e-03 ]312 tok/s ETA 1m12s" */
static void format_status(const hl_progress *p, const hl_step_record *r, int with_lr, char *buf, size_t cap) {
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

static void draw_tty(hl_progress *p) {
    const hl_step_record *r = &p->last;
    char bar[BAR_WIDTH + 1], status[256];
    double frac = r->total_steps > 0 ? (double)r->step / (double)r->total_steps : 0;
    hl_format_bar(frac, BAR_WIDTH, bar, sizeof bar);
    format_status(p, r, 0, status, sizeof status);
    /* \r returns to column 0; ESC[K clears what a longer previous line left. */
    fprintf(p->f, "\r[%s] %s\x1b[K", bar, status);
    fflush(p->f);
    p->drawn = 1;
    p->last_draw_s = r->elapsed_s;
}

void hl_progress_update(hl_progress *p, const hl_step_record *r) {
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
    const hl_step_record *r = &p->last;
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
