/* plot.c: train/eval loss curves from a metrics JSONL as a standalone SVG
 * (`hyperlora plot`; display only, so it lives with the CLI). */
#include "cli/plot.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/buffer.h"
#include "util/fileio.h"
#include "util/utf8.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define PLOT_MAX_BYTES ((size_t)1 << 30)
#define MAX_POINTS 2000    /* more points than pixels only bloats the file */
#define MAX_MARKERS 400    /* beyond this, eval circles would merge into a smear */
#define HUGE_VALUE 1e100   /* losses beyond this are treated like inf: they would flatten the plot */

/* Canvas and plot area (pixels). */
#define W 800
#define H 480
#define X0 72.0
#define X1 776.0
#define Y0 48.0
#define Y1 424.0

#define TRAIN_COLOR "#1f77b4"
#define EVAL_COLOR "#d62728"

typedef struct {
    double x, y;
    size_t i; /* file order: keeps the sort stable */
} point;

typedef struct {
    point *v;
    size_t n, cap;
} series;

static int series_add(series *s, double x, double y) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        point *v = hl_realloc(s->v, cap * sizeof *v);
        if (!v) return 0;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n] = (point){x, y, s->n};
    s->n++;
    return 1;
}

static int cmp_point(const void *a, const void *b) {
    const point *p = a, *q = b;
    if (p->x != q->x) return p->x < q->x ? -1 : 1;
    return p->i < q->i ? -1 : p->i > q->i;
}

/* Averages consecutive buckets so at most MAX_POINTS remain (in place). */
static void downsample(series *s) {
    if (s->n <= MAX_POINTS) return;
    size_t n = s->n;
    for (size_t b = 0; b < MAX_POINTS; b++) {
        size_t lo = b * n / MAX_POINTS, hi = (b + 1) * n / MAX_POINTS;
        double sx = 0, sy = 0;
        for (size_t k = lo; k < hi; k++) {
            sx += s->v[k].x;
            sy += s->v[k].y;
        }
        /* lo >= b, so bucket b only reads entries not yet overwritten */
        s->v[b] = (point){sx / (double)(hi - lo), sy / (double)(hi - lo), b};
    }
    s->n = MAX_POINTS;
}

static int plottable(double v) { return isfinite(v) && fabs(v) < HUGE_VALUE; }

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}

/* Parses one record: a number, or null (not evaluated / non-finite when written). */
static hl_status parse_line(const char *path, size_t lineno, const char *line, size_t len, series *train,
                            series *eval, hl_error *err) {
    cJSON *j = cJSON_ParseWithLength(line, len);
    if (!j) return hl_fail(err, HL_ERR_FORMAT, "%s:%zu: not valid JSON", path, lineno);
    hl_status s = HL_OK;
    const cJSON *step = cJSON_GetObjectItemCaseSensitive(j, "step");
    const cJSON *loss = cJSON_GetObjectItemCaseSensitive(j, "loss");
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(j, "eval_loss");
    if (!cJSON_IsObject(j))
        s = hl_fail(err, HL_ERR_FORMAT, "%s:%zu: expected a JSON object", path, lineno);
    else if (!cJSON_IsNumber(step) || !isfinite(step->valuedouble))
        s = hl_fail(err, HL_ERR_FORMAT, "%s:%zu: step: missing or not a number", path, lineno);
    else if (!cJSON_IsNumber(loss) && !cJSON_IsNull(loss))
        s = hl_fail(err, HL_ERR_FORMAT, "%s:%zu: loss: missing or not a number", path, lineno);
    else if (ev && !cJSON_IsNumber(ev) && !cJSON_IsNull(ev))
        s = hl_fail(err, HL_ERR_FORMAT, "%s:%zu: eval_loss: not a number or null", path, lineno);
    else {
        double x = step->valuedouble;
        int ok = 1;
        if (cJSON_IsNumber(loss) && plottable(loss->valuedouble)) ok &= series_add(train, x, loss->valuedouble);
        if (cJSON_IsNumber(ev) && plottable(ev->valuedouble)) ok &= series_add(eval, x, ev->valuedouble);
        if (!ok) s = hl_fail(err, HL_ERR_NOMEM, "%s: out of memory", path);
    }
    cJSON_Delete(j);
    return s;
}

static hl_status read_metrics(const char *path, series *train, series *eval, hl_error *err) {
    char *text;
    size_t n, records = 0, lineno = 0;
    hl_status s = hl_read_file(path, PLOT_MAX_BYTES, &text, &n, err);
    if (s != HL_OK) return s;
    for (size_t a = 0; s == HL_OK && a < n;) {
        const char *nl = memchr(text + a, '\n', n - a);
        size_t e = nl ? (size_t)(nl - text) : n;
        lineno++;
        if (!is_blank(text + a, e - a)) {
            s = parse_line(path, lineno, text + a, e - a, train, eval, err);
            records++;
        }
        a = e + 1;
    }
    hl_free(text);
    if (s != HL_OK) return s;
    if (!records) return hl_fail(err, HL_ERR_FORMAT, "%s: no metrics records (empty file)", path);
    if (!train->n && !eval->n)
        return hl_fail(err, HL_ERR_FORMAT, "%s: no finite loss values in %zu records", path, records);
    return HL_OK;
}

/* ------------------------------------------------------------------ ticks */

/* Heckbert's nice numbers: the 1, 2 or 5 x 10^k nearest x (round) or above it. */
static double nice_num(double x, int round) {
    double e = floor(log10(x)), p = pow(10, e), f = x / p, nf;
    if (round) nf = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
    else nf = f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10;
    return nf * p;
}

int hl_nice_ticks(double lo, double hi, int target, double *first, double *last, double *step) {
    if (target < 2) target = 2;
    /* Callers avoid an empty range; stay defined anyway. Near 1e18 a step of 1
     * is below the spacing of doubles (lo + 1 == lo), so widen relatively too. */
    if (!(hi > lo)) hi = lo + fmax(1.0, fabs(lo) * 1e-9);
    double d = hi > lo ? nice_num(nice_num(hi - lo, 0) / (target - 1), 1) : NAN;
    if (!isfinite(d) || !(d > 0) || !isfinite(lo) || !isfinite(hi)) { /* one tick, never a NaN count */
        *first = *last = isfinite(lo) ? lo : 0;
        *step = 1;
        return 1;
    }
    double f = floor(lo / d) * d, l = ceil(hi / d) * d;
    double count = floor((l - f) / d + 0.5) + 1;
    *first = f;
    *last = l;
    *step = d;
    return !(count >= 1) ? 1 : count > 100 ? 100 : (int)count;
}

typedef struct {
    double lo, hi, step; /* lo/hi: the first and last tick, also the axis ends */
    int n;
} axis;

static axis make_axis(double lo, double hi, int integer) {
    axis a;
    if (!(hi - lo > fabs(lo + hi) * 1e-9)) { /* one value (or all equal): give it room */
        double mid = 0.5 * (lo + hi), pad = integer ? 1 : (mid != 0 ? fabs(mid) * 0.05 : 1);
        if (!(mid + pad > mid - pad)) pad = fabs(mid) * 1e-6; /* 1 is below the spacing of doubles this far out */
        lo = mid - pad;
        hi = mid + pad;
    }
    a.n = hl_nice_ticks(lo, hi, 5, &a.lo, &a.hi, &a.step);
    if (integer && a.step < 1) { /* no ticks between steps */
        a.lo = floor(lo);
        a.hi = ceil(hi);
        a.step = 1;
        a.n = (int)(a.hi - a.lo) + 1;
    }
    return a;
}

static void format_tick(char *buf, size_t cap, double v, double step) {
    if (fabs(v) < step * 1e-9) v = 0; /* no "-0.0" from rounding */
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (fabs(v) < 1e7 && dec <= 8) {
        snprintf(buf, cap, "%.*f", dec, v);
        return;
    }
    /* Exponent form with enough digits that neighbouring ticks differ. */
    int prec = (int)ceil(log10(fmax(fabs(v), step) / step) - 1e-9) + 1;
    snprintf(buf, cap, "%.*g", prec < 1 ? 1 : prec > 17 ? 17 : prec, v);
}

/* ----------------------------------------------------------------- output */

/* Text content/attribute escaping. Control characters and invalid UTF-8 are
 * not allowed in XML at all, so they are replaced rather than escaped. */
static void sb_xml(hl_buf *b, const char *text) {
    const unsigned char *s = (const unsigned char *)text;
    size_t left = strlen(text);
    while (*s) {
        unsigned c = *s;
        size_t n;
        if (c == '&') hl_buf_printf(b, "&amp;");
        else if (c == '<') hl_buf_printf(b, "&lt;");
        else if (c == '>') hl_buf_printf(b, "&gt;");
        else if (c == '"') hl_buf_printf(b, "&quot;");
        else if (c == '\'') hl_buf_printf(b, "&apos;");
        else if (c < 0x20) hl_buf_printf(b, " ");
        else if (c < 0x80) hl_buf_printf(b, "%c", (char)c);
        else if ((n = hl_utf8_decode(s, left, NULL, NULL)) != 0) {
            hl_buf_put(b, s, n);
            s += n;
            left -= n;
            continue;
        } else hl_buf_printf(b, "?");
        s++;
        left--;
    }
}

typedef struct {
    axis x, y;
} frame;

static double px(const frame *f, double x) { return X0 + (x - f->x.lo) / (f->x.hi - f->x.lo) * (X1 - X0); }
static double py(const frame *f, double y) { return Y1 - (y - f->y.lo) / (f->y.hi - f->y.lo) * (Y1 - Y0); }

static void draw_axes(hl_buf *b, const frame *f) {
    char label[64];
    hl_buf_printf(b, "<g stroke=\"#e6e6e6\" stroke-width=\"1\">\n");
    for (int i = 0; i < f->x.n; i++) {
        double x = px(f, f->x.lo + i * f->x.step);
        hl_buf_printf(b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", x, Y0, x, Y1);
    }
    for (int i = 0; i < f->y.n; i++) {
        double y = py(f, f->y.lo + i * f->y.step);
        hl_buf_printf(b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", X0, y, X1, y);
    }
    hl_buf_printf(b, "</g>\n<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"none\" stroke=\"#333333\"/>\n",
              X0, Y0, X1 - X0, Y1 - Y0);
    hl_buf_printf(b, "<g stroke=\"#333333\">\n");
    for (int i = 0; i < f->x.n; i++) {
        double x = px(f, f->x.lo + i * f->x.step);
        hl_buf_printf(b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", x, Y1, x, Y1 + 5);
    }
    for (int i = 0; i < f->y.n; i++) {
        double y = py(f, f->y.lo + i * f->y.step);
        hl_buf_printf(b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", X0 - 5, y, X0, y);
    }
    hl_buf_printf(b, "</g>\n<g fill=\"#333333\" font-size=\"11\">\n");
    for (int i = 0; i < f->x.n; i++) {
        double v = f->x.lo + i * f->x.step;
        format_tick(label, sizeof label, v, f->x.step);
        hl_buf_printf(b, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">%s</text>\n", px(f, v), Y1 + 18, label);
    }
    for (int i = 0; i < f->y.n; i++) {
        double v = f->y.lo + i * f->y.step;
        format_tick(label, sizeof label, v, f->y.step);
        hl_buf_printf(b, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"end\">%s</text>\n", X0 - 8, py(f, v) + 4, label);
    }
    hl_buf_printf(b, "</g>\n");
    hl_buf_printf(b, "<text x=\"%.2f\" y=\"%d\" text-anchor=\"middle\" font-size=\"13\">step</text>\n", (X0 + X1) / 2,
              H - 14);
    hl_buf_printf(b, "<text transform=\"translate(20,%.2f) rotate(-90)\" text-anchor=\"middle\" font-size=\"13\">loss</text>\n",
              (Y0 + Y1) / 2);
}

static void draw_series(hl_buf *b, const frame *f, const series *s, const char *color, int markers) {
    if (!s->n) return;
    hl_buf_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" stroke-linejoin=\"round\" points=\"",
              color);
    for (size_t i = 0; i < s->n; i++)
        hl_buf_printf(b, "%s%.2f,%.2f", i ? " " : "", px(f, s->v[i].x), py(f, s->v[i].y));
    hl_buf_printf(b, "\"/>\n");
    if (!markers) return;
    hl_buf_printf(b, "<g fill=\"%s\">\n", color);
    for (size_t i = 0; i < s->n; i++)
        hl_buf_printf(b, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"3\"/>\n", px(f, s->v[i].x), py(f, s->v[i].y));
    hl_buf_printf(b, "</g>\n");
}

static void draw_legend(hl_buf *b, const series *train, double train_final, const series *eval, double eval_final) {
    char lines[2][96];
    const char *colors[2];
    int marker[2], n = 0;
    if (train->n) {
        snprintf(lines[n], sizeof lines[n], "train loss (final %.5g)", train_final);
        marker[n] = 0;
        colors[n++] = TRAIN_COLOR;
    }
    if (eval->n) {
        snprintf(lines[n], sizeof lines[n], "eval loss (final %.5g)", eval_final);
        marker[n] = 1;
        colors[n++] = EVAL_COLOR;
    }
    size_t longest = 0;
    for (int i = 0; i < n; i++)
        if (strlen(lines[i]) > longest) longest = strlen(lines[i]);
    /* No text metrics in SVG: ~6.5 px per 12 px sans-serif character is enough room. */
    double w = 40 + 6.5 * (double)longest, h = 10 + 18.0 * n, x = X1 - 10 - w, y = Y0 + 10;
    hl_buf_printf(b, "<g font-size=\"12\">\n<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"#ffffff\" "
                 "fill-opacity=\"0.9\" stroke=\"#999999\"/>\n", x, y, w, h);
    for (int i = 0; i < n; i++) {
        double ly = y + 14 + 18.0 * i;
        hl_buf_printf(b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\" stroke-width=\"2\"/>\n", x + 8,
                  ly, x + 30, ly, colors[i]);
        if (marker[i]) hl_buf_printf(b, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"3\" fill=\"%s\"/>\n", x + 19, ly,
                                               colors[i]);
        hl_buf_printf(b, "<text x=\"%.2f\" y=\"%.2f\">%s</text>\n", x + 36, ly + 4, lines[i]);
    }
    hl_buf_printf(b, "</g>\n");
}

static void range_of(const series *s, double *xlo, double *xhi, double *ylo, double *yhi) {
    for (size_t i = 0; i < s->n; i++) {
        if (s->v[i].x < *xlo) *xlo = s->v[i].x;
        if (s->v[i].x > *xhi) *xhi = s->v[i].x;
        if (s->v[i].y < *ylo) *ylo = s->v[i].y;
        if (s->v[i].y > *yhi) *yhi = s->v[i].y;
    }
}

hl_status hl_plot_metrics_svg(const char *metrics_path, const char *svg_path, const char *title, hl_error *err) {
    if (!metrics_path || !svg_path) return hl_fail(err, HL_ERR_INVALID_ARG, "plot: needs a metrics file and an output file");
    if (!title || !*title) title = "Training loss";
    series train = {0}, eval = {0};
    hl_buf b = {0};
    hl_status s = read_metrics(metrics_path, &train, &eval, err);
    if (s != HL_OK) goto done;
    if (train.n) qsort(train.v, train.n, sizeof *train.v, cmp_point); /* v is NULL when empty */
    if (eval.n) qsort(eval.v, eval.n, sizeof *eval.v, cmp_point);
    /* The legend shows the last real values, not a bucket average. */
    double train_final = train.n ? train.v[train.n - 1].y : NAN, eval_final = eval.n ? eval.v[eval.n - 1].y : NAN;
    downsample(&train);
    downsample(&eval);

    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    range_of(&train, &xlo, &xhi, &ylo, &yhi);
    range_of(&eval, &xlo, &xhi, &ylo, &yhi);
    frame f = {make_axis(xlo, xhi, 1), make_axis(ylo, yhi, 0)};

    hl_buf_printf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                  "font-family=\"sans-serif\" font-size=\"12\">\n<title>", W, H, W, H);
    sb_xml(&b, title);
    hl_buf_printf(&b, "</title>\n<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", W, H);
    hl_buf_printf(&b, "<text x=\"%d\" y=\"30\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\">", W / 2);
    sb_xml(&b, title);
    hl_buf_printf(&b, "</text>\n");
    draw_axes(&b, &f);
    /* A lone point draws no line, so it gets a marker. */
    draw_series(&b, &f, &train, TRAIN_COLOR, train.n == 1);
    draw_series(&b, &f, &eval, EVAL_COLOR, eval.n <= MAX_MARKERS);
    draw_legend(&b, &train, train_final, &eval, eval_final);
    hl_buf_printf(&b, "</svg>\n");
    if (b.oom) {
        s = hl_fail(err, HL_ERR_NOMEM, "%s: out of memory", svg_path);
        goto done;
    }
    hl_atomic_file af;
    s = hl_atomic_file_open(&af, svg_path, err);
    if (s == HL_OK) s = hl_atomic_file_write(&af, b.p, b.len, err);
    if (s == HL_OK) s = hl_atomic_file_commit(&af, err);
    else hl_atomic_file_abort(&af);
done:
    hl_free(train.v);
    hl_free(eval.v);
    hl_buf_free(&b);
    return s;
}
