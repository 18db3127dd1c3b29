/* metrics.c: the per-step metrics JSONL of a training run (the log a
 * resume rewrites). Its display, the progress bar, is the CLI's (cli/progress.c). */
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
