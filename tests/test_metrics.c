/* test_metrics.c: the metrics JSONL (write, resume truncation, torn lines),
 * the progress display (plain lines, a real pseudo-terminal when available,
 * the duration/bar formatters), the SVG plot and its error cases, and the
 * `plot` subcommand. */
#define _XOPEN_SOURCE 700 /* posix_openpt and friends */
#include "hyperlora.h"
#include "cli/plot.h"
#include "cli/progress.h"
#include "train/metrics.h"
#include "util/alloc.h"
#include "test_util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static char *slurp(const char *path) {
    size_t n;
    char *p = read_whole(path, &n);
    if (!p) return NULL;
    p = realloc(p, n + 1);
    p[n] = 0;
    return p;
}

static void spit(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    REQUIRE(f);
    fputs(text, f);
    fclose(f);
}

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Whether a temp file of path ("PATH.tmp.*") is left behind. */
static int temp_left(const char *path) {
    char pattern[300];
    snprintf(pattern, sizeof pattern, "%s.tmp.*", path);
    glob_t g;
    int found = glob(pattern, 0, NULL, &g) == 0 && g.gl_pathc > 0;
    if (found) globfree(&g);
    return found;
}

static hl_step_record rec(int64_t step, int64_t total, double loss, double eval) {
    hl_step_record r = {
        .step = step, .total_steps = total, .loss = loss, .eval_loss = eval, .lr = 1e-3, .grad_norm = 0.5,
        .tokens_per_s = 300.0 + (double)step, .elapsed_s = (double)step, .tokens = step * 256,
    };
    return r;
}

/* ---------------------------------------------------------------- metrics */

static void test_metrics_file(void) {
    const char *path = "test_metrics_run.jsonl";
    hl_error err = {0};
    hl_metrics *m = NULL;
    remove(path);
    CHECK_OK(hl_metrics_open(path, 0, 1, &m, &err), &err);
    REQUIRE(m);
    for (int s = 1; s <= 6; s++) {
        hl_step_record r = rec(s, 6, 2.5 - 0.1 * s, s == 3 ? 2.25 : NAN);
        if (s == 5) r.grad_norm = INFINITY;
        CHECK_OK(hl_metrics_write(m, &r, &err), &err);
        if (s == 2) { /* flushed per record: readable while the run goes on */
            char *t = slurp(path);
            CHECK(t && count(t, "\n") == 2);
            free(t);
        }
    }
    hl_metrics_close(m);
    char *t = slurp(path);
    REQUIRE(t);
    CHECK(count(t, "\n") == 6);
    CHECK_MSG(!strncmp(t, "{\"step\":1,\"loss\":2.4,\"eval_loss\":null,\"lr\":0.001,\"grad_norm\":0.5,"
                          "\"tokens_per_s\":301,\"elapsed_s\":1,\"tokens\":256}\n", strlen("{\"step\":1,")),
              "got %s", t);
    CHECK(strstr(t, "\"eval_loss\":2.25,") != NULL);
    CHECK(strstr(t, "\"grad_norm\":null") != NULL); /* inf is not JSON */
    CHECK(count(t, "\"eval_loss\":null") == 5);
    CHECK(strstr(t, "\"loss\":2.4,") != NULL); /* %.9g prints 2.4 - 0.1 exactly enough */
    /* every line is valid JSON with all fields */
    int good = 0;
    for (char *line = t, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
        *nl = 0;
        cJSON *j = cJSON_Parse(line);
        good += j && cJSON_IsNumber(cJSON_GetObjectItem(j, "step")) && cJSON_GetObjectItem(j, "tokens") &&
                cJSON_GetObjectItem(j, "elapsed_s") && cJSON_GetObjectItem(j, "tokens_per_s") &&
                cJSON_GetObjectItem(j, "lr") && cJSON_GetObjectItem(j, "eval_loss");
        cJSON_Delete(j);
    }
    CHECK(good == 6);
    free(t);

    /* Resume at step 4: steps 4..6 of the old run go, 1..3 stay. A torn last
     * line (a run killed mid-write) is dropped too. */
    FILE *f = fopen(path, "ab");
    REQUIRE(f);
    fputs("{\"step\":7,\"loss\":1.", f);
    fclose(f);
    CHECK_OK(hl_metrics_open(path, 1, 4, &m, &err), &err);
    REQUIRE(m);
    t = slurp(path);
    CHECK(t && count(t, "\n") == 3 && strstr(t, "\"step\":3,") && !strstr(t, "\"step\":4,") &&
          !strstr(t, "\"step\":7"));
    free(t);
    hl_step_record r = rec(4, 6, 9.5, NAN);
    CHECK_OK(hl_metrics_write(m, &r, &err), &err);
    hl_metrics_close(m);
    t = slurp(path);
    CHECK(t && count(t, "\n") == 4 && strstr(t, "{\"step\":4,\"loss\":9.5,") && count(t, "\"step\":4,") == 1);
    free(t);
    CHECK(!temp_left(path));

    /* Resume before the first record keeps nothing; a missing file is created. */
    CHECK_OK(hl_metrics_open(path, 1, 1, &m, &err), &err);
    hl_metrics_close(m);
    t = slurp(path);
    CHECK(t && !*t);
    free(t);
    remove(path);
    CHECK_OK(hl_metrics_open(path, 1, 10, &m, &err), &err);
    CHECK(m && exists(path));
    hl_metrics_close(m);

    /* A new run truncates. */
    spit(path, "{\"step\":1,\"loss\":1}\n");
    CHECK_OK(hl_metrics_open(path, 0, 1, &m, &err), &err);
    hl_metrics_close(m);
    t = slurp(path);
    CHECK(t && !*t);
    free(t);

    /* Errors name the file. */
    m = NULL;
    CHECK(hl_metrics_open("no_such_dir_xyz/m.jsonl", 0, 1, &m, &err) == HL_ERR_IO && !m);
    CHECK(strstr(err.msg, "no_such_dir_xyz/m.jsonl") != NULL);
    remove(path);
}

/* The log never replaces what is not a log: a model named by --metrics, a
 * symlink, a FIFO; each is refused, unchanged, with no temp file left. */
static void test_metrics_refuses(void) {
    const char *path = "test_metrics_not_a_log.gguf";
    hl_error err = {0};
    hl_metrics *m = NULL;
    spit(path, "GGUF\x03\x00\x00\x00 pretend weights");
    for (int append = 0; append <= 1; append++) {
        CHECK(hl_metrics_open(path, append, 1, &m, &err) == HL_ERR_INVALID_ARG && !m);
        CHECK_MSG(strstr(err.msg, path) && strstr(err.msg, "not a metrics log"), "%s", err.msg);
        char *t = slurp(path);
        CHECK(t && !strncmp(t, "GGUF", 4));
        free(t);
        CHECK(!temp_left(path));
    }
    const char *link = "test_metrics_link.jsonl";
    remove(link);
    CHECK(symlink(path, link) == 0);
    CHECK(hl_metrics_open(link, 0, 1, &m, &err) == HL_ERR_INVALID_ARG && !m && strstr(err.msg, "symbolic link"));
    remove(link);
    remove(path);
    const char *fifo = "test_metrics_fifo.jsonl";
    remove(fifo);
    CHECK(mkfifo(fifo, 0600) == 0);
    CHECK(hl_metrics_open(fifo, 1, 1, &m, &err) == HL_ERR_INVALID_ARG && !m && strstr(err.msg, "FIFO"));
    CHECK(!temp_left(fifo));
    remove(fifo);
    /* An empty file is a log with no records yet. */
    spit(path, "");
    CHECK_OK(hl_metrics_open(path, 0, 1, &m, &err), &err);
    hl_metrics_close(m);
    remove(path);
}

/* Out-of-memory at every allocation of a resume: a clean error, no leak. */
static void test_metrics_oom(void) {
    const char *path = "test_metrics_oom.jsonl";
    spit(path, "{\"step\":1,\"loss\":1}\n{\"step\":2,\"loss\":1}\n");
    int failures = 0, k;
    for (k = 0; k < 100; k++) {
        hl_error err = {0};
        hl_metrics *m = NULL;
        hl_alloc_fail_after(k);
        hl_status s = hl_metrics_open(path, 1, 2, &m, &err);
        hl_alloc_fail_after(-1);
        hl_metrics_close(m);
        if (s == HL_OK) break;
        CHECK_MSG(s == HL_ERR_NOMEM && !m, "k=%d: %s", k, err.msg);
        failures++;
    }
    CHECK(k < 100 && failures >= 2);
    char *t = slurp(path);
    CHECK(t && !strcmp(t, "{\"step\":1,\"loss\":1}\n"));
    free(t);
    remove(path);
}

/* --------------------------------------------------------------- progress */

static void test_formatters(void) {
    char b[64];
    struct { double s; const char *want; } d[] = {
        {0, "0s"}, {0.4, "0s"}, {59.4, "59s"}, {59.6, "1m00s"}, {72, "1m12s"}, {3599, "59m59s"},
        {3600, "1h00m00s"}, {3725, "1h02m05s"}, {100 * 3600 + 61, "100h01m01s"},
        {-1, "--"}, {NAN, "--"}, {INFINITY, "--"},
    };
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
        hl_format_duration(d[i].s, b, sizeof b);
        CHECK_MSG(!strcmp(b, d[i].want), "%g s -> \"%s\", want \"%s\"", d[i].s, b, d[i].want);
    }
    hl_format_duration(3725, b, 4); /* truncates, stays terminated */
    CHECK(strlen(b) == 3);
    hl_format_bar(0.5, 10, b, sizeof b);
    CHECK(!strcmp(b, "#####....."));
    hl_format_bar(0, 4, b, sizeof b);
    CHECK(!strcmp(b, "...."));
    hl_format_bar(1, 4, b, sizeof b);
    CHECK(!strcmp(b, "####"));
    hl_format_bar(2.0, 3, b, sizeof b);
    CHECK(!strcmp(b, "###"));
    hl_format_bar(NAN, 3, b, sizeof b);
    CHECK(!strcmp(b, "..."));
    hl_format_bar(120.0 / 500.0, 24, b, sizeof b);
    CHECK(strlen(b) == 24 && count(b, "#") == 5);
    hl_format_bar(0.5, 24, b, 8); /* capped by the buffer */
    CHECK(strlen(b) == 7);

    /* The redrawn line fits the terminal: one column free, the bar narrowed, then dropped, then the status cut. */
    const char *st = "step 120/500 loss 1.2345 eval 1.3010 312 tok/s ETA 1m12s"; /* 56 characters */
    char line[128];
    hl_format_progress_line(st, 0.5, 0, line, sizeof line); /* width unknown: as before */
    CHECK(!strcmp(line, "[############............] step 120/500 loss 1.2345 eval 1.3010 312 tok/s ETA 1m12s"));
    hl_format_progress_line(st, 0.5, 120, line, sizeof line);
    CHECK(strlen(line) == 83 && !strncmp(line, "[############............] ", 27));
    hl_format_progress_line(st, 0.5, 80, line, sizeof line); /* 79 usable: a bar of 20 */
    CHECK_MSG(!strcmp(line, "[##########..........] step 120/500 loss 1.2345 eval 1.3010 312 tok/s ETA 1m12s"),
              "got %s", line);
    hl_format_progress_line(st, 0.5, 66, line, sizeof line); /* a bar of 6 says too little: none */
    CHECK_MSG(!strcmp(line, st), "got %s", line);
    hl_format_progress_line(st, 0.5, 40, line, sizeof line);
    CHECK_MSG(!strcmp(line, "step 120/500 loss 1.2345 eval 1.3010 31"), "got %s", line);
    hl_format_progress_line(st, 0.5, 1, line, sizeof line);
    CHECK(strlen(line) == 83);                     /* a 1-column report is not a width to fit */
    hl_format_progress_line(st, 0.5, 0, line, 20); /* capped by the buffer */
    CHECK(strlen(line) == 19 && line[0] == '[');

    double f, l, s;
    int n = hl_nice_ticks(0, 100, 5, &f, &l, &s);
    CHECK(n == 6 && f == 0 && l == 100 && s == 20);
    n = hl_nice_ticks(0.93, 2.31, 5, &f, &l, &s);
    CHECK(s == 0.5 && fabs(f - 0.5) < 1e-12 && fabs(l - 2.5) < 1e-12 && n == 5);
    n = hl_nice_ticks(1, 500, 5, &f, &l, &s);
    CHECK(s == 100 && f == 0 && l == 500 && n == 6);
    n = hl_nice_ticks(-3e-5, 7e-5, 5, &f, &l, &s);
    CHECK(n >= 4 && n <= 8 && f <= -3e-5 && l >= 7e-5);
}

static char *read_stream(FILE *f) {
    fflush(f);
    long n = ftell(f);
    REQUIRE(n >= 0);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    REQUIRE(buf && fread(buf, 1, (size_t)n, f) == (size_t)n);
    buf[n] = 0;
    return buf;
}

static void test_progress_plain(void) {
    for (int force = 1; force >= 0; force--) { /* a tmpfile is no TTY: plain either way */
        FILE *f = tmpfile();
        REQUIRE(f);
        hl_progress *p = hl_progress_init(f, force, 2);
        REQUIRE(p);
        for (int s = 1; s <= 5; s++) {
            hl_step_record r = rec(s, 5, 2.0 - 0.25 * s, s == 3 ? 1.30104 : NAN);
            hl_progress_update(p, &r);
        }
        hl_progress_finish(p);
        hl_progress_finish(p); /* once only */
        hl_progress_free(p);
        char *out = read_stream(f);
        /* step 2 (every 2), 3 (eval), 4, 5 (last), then the summary; tok/s is
         * the median of 301..30x, ETA = 1 s/step x steps left. */
        const char *want =
            "step 2/5 loss 1.5000 lr 1.0e-03 302 tok/s ETA 3s\n"
            "step 3/5 loss 1.2500 eval 1.3010 lr 1.0e-03 302 tok/s ETA 2s\n"
            "step 4/5 loss 1.0000 eval 1.3010 lr 1.0e-03 302 tok/s ETA 1s\n"
            "step 5/5 loss 0.7500 eval 1.3010 lr 1.0e-03 303 tok/s ETA 0s\n"
            "done: step 5/5 in 5s, loss 0.7500, eval 1.3010, 303 tok/s average\n";
        CHECK_MSG(!strcmp(out, want), "force_plain=%d: got\n%s", force, out);
        CHECK(!strchr(out, '\r') && !strchr(out, '\x1b'));
        free(out);
        fclose(f);
    }

    /* A resumed run: ETA from this run's steps only; no total: no ETA, no bar. */
    FILE *f = tmpfile();
    hl_progress *p = hl_progress_init(f, 1, 100);
    hl_step_record r = rec(101, 200, 1.0, NAN);
    r.elapsed_s = 2;
    hl_progress_update(p, &r); /* 1 step in 2 s, 99 left */
    r = rec(200, 0, 1.0, NAN);
    r.tokens_per_s = 401; /* median of 401, 401 */
    hl_progress_update(p, &r);
    hl_progress_free(p); /* without finish: no summary */
    char *out = read_stream(f);
    CHECK_MSG(!strcmp(out, "step 200 loss 1.0000 lr 1.0e-03 401 tok/s\n"), "got %s", out);
    free(out);
    fclose(f);
    f = tmpfile();
    p = hl_progress_init(f, 1, 1);
    r = rec(101, 200, 1.0, NAN);
    r.elapsed_s = 2;
    hl_progress_update(p, &r);
    hl_progress_free(p);
    out = read_stream(f);
    CHECK_MSG(strstr(out, "ETA 3m18s\n") != NULL, "got %s", out);
    free(out);
    fclose(f);

    /* NULL-tolerant, so a caller can run without a display. */
    CHECK(hl_progress_init(NULL, 1, 1) == NULL);
    hl_progress_update(NULL, &r);
    hl_progress_finish(NULL);
    hl_progress_free(NULL);
}

/* A raw pseudo-terminal (the bytes as written: no \n -> \r\n); 0 where none can be opened. */
static int open_raw_pty(int *master, int *slave) {
    *master = posix_openpt(O_RDWR | O_NOCTTY);
    if (*master < 0 || grantpt(*master) || unlockpt(*master)) {
        printf("progress tty: skipped (no pseudo-terminal: %s)\n", strerror(errno));
        if (*master >= 0) close(*master);
        return 0;
    }
    *slave = open(ptsname(*master), O_RDWR | O_NOCTTY);
    REQUIRE(*slave >= 0);
    struct termios tio;
    if (tcgetattr(*slave, &tio) == 0) {
        cfmakeraw(&tio);
        tcsetattr(*slave, TCSANOW, &tio);
    }
    return 1;
}

/* What the terminal shows so far, into buf (terminated). */
static void read_pty(int master, char *buf, size_t cap) {
    size_t n = 0;
    struct pollfd pf = {.fd = master, .events = POLLIN};
    while (n < cap - 1 && poll(&pf, 1, 200) > 0) {
        ssize_t got = read(master, buf + n, cap - 1 - n);
        if (got <= 0) break;
        n += (size_t)got;
    }
    buf[n] = 0;
}

/* The TTY mode on a real pseudo-terminal (skipped where none can be opened). */
static void test_progress_tty(void) {
    int master, slave;
    if (!open_raw_pty(&master, &slave)) return;
    FILE *f = fdopen(slave, "w");
    REQUIRE(f);
    hl_progress *p = hl_progress_init(f, 0, 1000);
    REQUIRE(p);
    for (int s = 1; s <= 4; s++) {
        hl_step_record r = rec(s, 4, 2.0 - 0.25 * s, s == 2 ? 1.5 : NAN);
        hl_progress_update(p, &r);
    }
    hl_progress_finish(p);
    hl_progress_free(p);
    char buf[4096];
    read_pty(master, buf, sizeof buf);
    fclose(f);
    close(master);
    CHECK_MSG(count(buf, "\r[") == 5 && count(buf, "\x1b[K") == 5, "got %s", buf); /* 4 steps + final redraw */
    CHECK(strstr(buf, "\r[######..................] step 1/4 loss 1.7500 301 tok/s ETA 3s\x1b[K") != NULL);
    CHECK(strstr(buf, "] step 3/4 loss 1.2500 eval 1.5000 302 tok/s ETA 1s\x1b[K") != NULL); /* eval kept */
    CHECK(strstr(buf, "\r[########################] step 4/4 loss 1.0000 eval 1.5000 ") != NULL);
    CHECK(strstr(buf, "\x1b[K\ndone: step 4/4 in 4s, loss 1.0000, eval 1.5000, 302 tok/s average\n") != NULL);
    CHECK(!strstr(buf, " lr ")); /* the bar line stays short */
    CHECK(count(buf, "\n") == 2);

    /* A terminal of 60 columns: every redrawn line stays within 59, so none wraps. */
    REQUIRE(open_raw_pty(&master, &slave));
    struct winsize ws = {.ws_row = 24, .ws_col = 60};
    if (ioctl(slave, TIOCSWINSZ, &ws) != 0) {
        printf("progress tty: width not settable (%s), narrow case skipped\n", strerror(errno));
        close(slave);
        close(master);
        return;
    }
    f = fdopen(slave, "w");
    REQUIRE(f);
    p = hl_progress_init(f, 0, 1000);
    REQUIRE(p);
    for (int s = 1; s <= 4; s++) {
        hl_step_record r = rec(s, 4, 2.0 - 0.25 * s, s == 2 ? 1.5 : NAN);
        hl_progress_update(p, &r);
    }
    hl_progress_free(p);
    read_pty(master, buf, sizeof buf);
    fclose(f);
    close(master);
    int lines = 0, widest = 0;
    for (char *q = buf; (q = strchr(q, '\r')); lines++) {
        char *end = strstr(q, "\x1b[K");
        REQUIRE(end);
        if (end - q - 1 > widest) widest = (int)(end - q - 1);
        q = end;
    }
    CHECK_MSG(lines == 4 && widest <= 59, "%d lines, widest %d: %s", lines, widest, buf);
    CHECK(strstr(buf, "\r[####...............] step 1/4 loss 1.7500 301 tok/s ETA 3s\x1b[K") != NULL);
    CHECK(strstr(buf, "\rstep 3/4 loss 1.2500 eval 1.5000 302 tok/s ETA 1s\x1b[K") != NULL);
}

/* ------------------------------------------------------------------- plot */

static void write_synthetic(const char *path, int steps, int eval_every) {
    hl_error err = {0};
    hl_metrics *m;
    int failed = 0;
    CHECK_OK(hl_metrics_open(path, 0, 1, &m, &err), &err);
    REQUIRE(m);
    for (int s = 1; s <= steps; s++) {
        double loss = 1.0 + 2.0 * exp(-s / (steps / 4.0)) + 0.05 * sin(s * 1.7);
        hl_step_record r = rec(s, steps, loss, eval_every && s % eval_every == 0 ? loss + 0.15 : NAN);
        if (s == 7) r.loss = NAN; /* written as null, skipped */
        if (hl_metrics_write(m, &r, &err) != HL_OK) failed++;
    }
    hl_metrics_close(m);
    CHECK_MSG(!failed, "%s: %s", path, err.msg);
}

/* Every <tag ...> opens and closes in order: enough to catch a broken writer. */
static int tags_balanced(const char *s) {
    const char *stack[64];
    size_t len[64];
    int depth = 0;
    for (const char *p = s; (p = strchr(p, '<'));) {
        const char *e = strchr(p, '>');
        if (!e) return 0;
        if (p[1] == '/') {
            size_t n = strcspn(p + 2, " >");
            if (!depth || len[depth - 1] != n || strncmp(stack[depth - 1], p + 2, n)) return 0;
            depth--;
        } else if (e[-1] != '/') {
            if (depth == 64) return 0;
            stack[depth] = p + 1;
            len[depth++] = strcspn(p + 1, " >");
        }
        p = e + 1;
    }
    return depth == 0;
}

static int svg_ok(const char *svg) {
    size_t n = strlen(svg);
    return !strncmp(svg, "<svg ", 5) && n > 7 && !strcmp(svg + n - 7, "</svg>\n") && tags_balanced(svg) &&
           !strstr(svg, "nan") && !strstr(svg, "inf") && strstr(svg, "viewBox=\"0 0 800 480\"");
}

static void test_plot(void) {
    const char *mpath = "test_metrics_plot.jsonl", *svg = "test_metrics_plot.svg";
    hl_error err = {0};
    write_synthetic(mpath, 300, 25);
    CHECK_OK(hl_plot_metrics_svg(mpath, svg, "LoRA r=8 <q,v> & \"stories\" 'α'", &err), &err);
    char *t = slurp(svg);
    REQUIRE(t);
    CHECK(svg_ok(t));
    CHECK(count(t, "<polyline") == 2);
    CHECK(count(t, "<circle") == 12 + 1); /* 12 eval points + the legend's marker */
    CHECK(count(t, "LoRA r=8 &lt;q,v&gt; &amp; &quot;stories&quot; &apos;α&apos;") == 2); /* title + <title> */
    CHECK(!strstr(t, "<q,v>"));
    CHECK(strstr(t, ">step</text>") && strstr(t, ">loss</text>"));
    CHECK(strstr(t, "train loss (final ") && strstr(t, "eval loss (final "));
    CHECK(strstr(t, ">300</text>") != NULL); /* the last x tick */
    /* train: 299 points (step 7 was null) */
    const char *pl = strstr(t, "points=\"");
    CHECK(pl && count(pl, ",") > 0);
    if (pl) {
        const char *end = strchr(pl + 8, '"');
        int pts = 1;
        for (const char *q = pl + 8; q < end; q++) pts += *q == ' ';
        CHECK_MSG(pts == 299, "%d train points", pts);
    }
    free(t);
    printf("plot: wrote %s\n", svg); /* left in the build dir to look at */

    /* No eval, one polyline; the final value is the last step's. */
    const char *m2 = "test_metrics_plot2.jsonl", *s2 = "test_metrics_plot2.svg";
    spit(m2, "{\"step\":1,\"loss\":3.5,\"eval_loss\":null}\n\n{\"step\":2,\"loss\":2.25}\n  \r\n");
    CHECK_OK(hl_plot_metrics_svg(m2, s2, NULL, &err), &err);
    t = slurp(s2);
    CHECK(t && svg_ok(t) && count(t, "<polyline") == 1 && !strstr(t, "eval loss") &&
          strstr(t, "train loss (final 2.25)") && strstr(t, ">Training loss</text>"));
    free(t);

    /* A single record; all-equal losses; inf and huge values skipped. */
    const char *cases[] = {
        "{\"step\":5,\"loss\":2.0,\"eval_loss\":2.5}\n",
        "{\"step\":1,\"loss\":0}\n{\"step\":2,\"loss\":0}\n{\"step\":3,\"loss\":0}\n",
        "{\"step\":1,\"loss\":1.5}\n{\"step\":2,\"loss\":1.5}\n",
        ("{\"step\":1,\"loss\":1e999}\n{\"step\":2,\"loss\":-1e999,\"eval_loss\":1e300}\n{\"step\":3,\"loss\":2}\n"
         "{\"step\":4,\"loss\":null,\"eval_loss\":1.5}\n"),
        "{\"step\":1000000000,\"loss\":1e-7}\n{\"step\":1000000001,\"loss\":1.00001e-7}\n",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        spit(m2, cases[i]);
        hl_status s = hl_plot_metrics_svg(m2, s2, "edge", &err);
        CHECK_MSG(s == HL_OK, "case %zu: %s", i, err.msg);
        t = slurp(s2);
        CHECK_MSG(t && svg_ok(t), "case %zu", i);
        free(t);
    }

    /* Many steps: downsampled to at most 2000 points, final value exact. */
    write_synthetic(m2, 9000, 0);
    FILE *f = fopen(m2, "ab");
    fputs("{\"step\":9001,\"loss\":0.123456}\n", f);
    fclose(f);
    CHECK_OK(hl_plot_metrics_svg(m2, s2, "long run", &err), &err);
    t = slurp(s2);
    CHECK(t && svg_ok(t));
    if (t) {
        const char *pl2 = strstr(t, "points=\"");
        const char *end = pl2 ? strchr(pl2 + 8, '"') : NULL;
        int pts = 1;
        for (const char *q = pl2 ? pl2 + 8 : ""; end && q < end; q++) pts += *q == ' ';
        CHECK_MSG(pts == 2000, "%d points", pts);
        CHECK(strstr(t, "train loss (final 0.12346)") != NULL);
    }
    free(t);
    remove(m2);
    remove(s2);
}

static void test_plot_errors(void) {
    const char *m = "test_metrics_bad.jsonl", *svg = "test_metrics_bad.svg";
    hl_error err = {0};
    remove(svg);
    CHECK(hl_plot_metrics_svg("no_such_metrics.jsonl", svg, NULL, &err) == HL_ERR_IO);
    CHECK(strstr(err.msg, "no_such_metrics.jsonl") != NULL);
    struct { const char *text, *want; } bad[] = {
        {"", "no metrics records"},
        {"\n  \n\n", "no metrics records"},
        {"{\"step\":1,\"loss\":2}\n\n{\"step\":2,\"loss\":2,\n", "test_metrics_bad.jsonl:3: not valid JSON"},
        {"{\"step\":1,\"loss\":2}\n[1,2]\n", ":2: expected a JSON object"},
        {"{\"loss\":2}\n", ":1: step: missing"},
        {"{\"step\":\"1\",\"loss\":2}\n", ":1: step:"},
        {"{\"step\":1}\n", ":1: loss: missing"},
        {"{\"step\":1,\"loss\":\"x\"}\n", ":1: loss:"},
        {"{\"step\":1,\"loss\":1,\"eval_loss\":true}\n", ":1: eval_loss:"},
        {"{\"step\":1,\"loss\":null}\n{\"step\":2,\"loss\":1e999}\n", "no finite loss values in 2 records"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        spit(m, bad[i].text);
        hl_status s = hl_plot_metrics_svg(m, svg, NULL, &err);
        CHECK_MSG(s == HL_ERR_FORMAT && strstr(err.msg, bad[i].want), "case %zu: %s: %s", i, hl_status_name(s),
                  err.msg);
        CHECK(!exists(svg));
    }
    /* A failed plot leaves an existing SVG alone. */
    spit(svg, "old");
    spit(m, "garbage\n");
    CHECK(hl_plot_metrics_svg(m, svg, NULL, &err) == HL_ERR_FORMAT);
    char *t = slurp(svg);
    CHECK(t && !strcmp(t, "old"));
    free(t);
    /* Unwritable output. */
    spit(m, "{\"step\":1,\"loss\":1}\n");
    CHECK(hl_plot_metrics_svg(m, "no_such_dir_xyz/a.svg", NULL, &err) == HL_ERR_IO);
    /* Invalid UTF-8 and control characters never reach the XML. */
    CHECK_OK(hl_plot_metrics_svg(m, svg, "a\xff\xc3(b\x01\tc\xe2\x82\xac", &err), &err);
    t = slurp(svg);
    CHECK(t && strstr(t, ">a\?\?(b  c\xe2\x82\xac</text>"));
    free(t);

    /* Out-of-memory anywhere in the plot: a clean error, no leak. */
    write_synthetic(m, 50, 10);
    int k, failures = 0;
    for (k = 0; k < 200; k++) {
        hl_alloc_fail_after(k);
        hl_status s = hl_plot_metrics_svg(m, svg, "oom", &err);
        hl_alloc_fail_after(-1);
        if (s == HL_OK) break;
        CHECK_MSG(s == HL_ERR_NOMEM, "k=%d: %s", k, err.msg);
        failures++;
    }
    CHECK(k < 200 && failures >= 3);
    remove(m);
    remove(svg);
}

/* ------------------------------------------------------------------- CLI */

static int run(const char *args) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s 2>test_metrics_cli.err >/dev/null", HL_CLI_PATH, args);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_cli(void) {
    write_synthetic("test_metrics_cli.jsonl", 40, 10);
    remove("test_metrics_cli.svg");
    CHECK(run("plot --help") == 0);
    CHECK(run("plot test_metrics_cli.jsonl -o test_metrics_cli.svg --title 'CLI run'") == 0);
    char *t = slurp("test_metrics_cli.svg");
    CHECK(t && svg_ok(t) && strstr(t, ">CLI run</text>") && count(t, "<polyline") == 2);
    free(t);
    CHECK(run("plot test_metrics_cli.jsonl") == 1); /* no -o */
    CHECK(run("plot -o x.svg") == 1);
    CHECK(run("plot a.jsonl b.jsonl -o x.svg") == 1);
    CHECK(run("plot test_metrics_cli.jsonl -o x.svg --bogus") == 1);
    CHECK(run("plot test_metrics_cli.jsonl -o") == 1);
    CHECK(run("plot missing.jsonl -o x.svg") == 1);
    t = slurp("test_metrics_cli.err");
    CHECK(t && strstr(t, "hyperlora plot: missing.jsonl: cannot open"));
    free(t);
    CHECK(!exists("x.svg"));
    remove("test_metrics_cli.jsonl");
    remove("test_metrics_cli.svg");
    remove("test_metrics_cli.err");
}

int main(void) {
    test_metrics_file();
    test_metrics_oom();
    test_metrics_refuses();
    test_formatters();
    test_progress_plain();
    test_progress_tty();
    test_plot();
    test_plot_errors();
    test_cli();
    return hl_test_finish("test_metrics");
}
