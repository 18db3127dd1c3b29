/* word_rows.c: output-adapter rows for words a decoder never named in
 * training (see word_rows.h for the why and the formula).
 *
 * The features f(e) = [e, e/|e|, 1, |e|] never need storing: for two head
 * rows with g = e·e', f(e)·f(e') = g·(1 + 1/(|e||e'|)) + 1 + |e||e'|, so the
 * fit needs only the trained rows and their norms. */
#include "hyperlexeme/word_rows.h"
#include "hyperlexeme/lexicon.h"
#include "model/model.h"
#include "util/alloc.h"
#include "util/error.h"

#include <math.h>
#include <string.h>

/* λ relative to the mean diagonal of F·Fᵀ: in the flat part of the
 * cross-validated fit on the demo base (λ 0.01-0.1 absolute gave R² 0.817). */
#define LAMBDA_REL 0.01
/* The composed rows are shrunk by this factor: at 1.0 a new word took the
 * place of trained neighbours in scenes it was not part of (BENCHMARKS.md). */
#define SHRINK 0.9

static double kernel(const double *a, double na, const double *b, double nb, int64_t C) {
    double g = 0;
    for (int64_t c = 0; c < C; c++) g += a[c] * b[c];
    double inv = na > 0 && nb > 0 ? 1.0 / (na * nb) : 0.0;
    return g * (1.0 + inv) + 1.0 + na * nb;
}

/* word's tokens (*ids_out, released with hl_free) and its one-token spelling *id, or -1. */
static hl_status one_token(const hl_model *base, const char *word, int32_t *id, int32_t **ids_out, size_t *n_out,
                           hl_error *err) {
    int32_t *ids = NULL;
    size_t n = 0;
    hl_status s = hl_lexicon_word_ids(base, word, &ids, &n, err);
    if (s != HL_OK) return s;
    *id = n == 1 && ids[0] >= 0 && ids[0] < base->n_vocab_base ? ids[0] : -1;
    *ids_out = ids;
    *n_out = n;
    return HL_OK;
}

/* Lower Cholesky factor of the SPD matrix K (n, n) in place; HL_OK unless a pivot is not positive. */
static int cholesky(double *K, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j <= i; j++) {
            double s = K[i * n + j];
            for (int64_t k = 0; k < j; k++) s -= K[i * n + k] * K[j * n + k];
            if (i == j) {
                if (!(s > 0)) return 0;
                K[i * n + i] = sqrt(s);
            } else
                K[i * n + j] = s / K[j * n + j];
        }
    return 1;
}

hl_status hl_word_rows_compose(hl_adapter *a, const hl_model *base, const hl_lexicon *carried,
                               const hl_lexicon *all, hl_word_rows_report *report, hl_error *err) {
    *report = (hl_word_rows_report){0};
    hl_lora_weight *w = NULL;
    for (int32_t i = 0; i < a->n_weights; i++)
        if (a->w[i].layer < 0 && a->w[i].target == HL_TARGET_OUTPUT) w = &a->w[i];
    const int64_t V = base->n_vocab_base, C = base->cfg.dim;
    if (!w || !carried || w->n_out != V || w->n_in != C) return HL_OK;
    const int64_t r = w->rank;
    uint8_t *trained = hl_calloc((size_t)V, 1); /* 1: a token of a carried part; 2: also fitted; 3: new */
    int32_t *fit = hl_malloc(HL_WORD_ROWS_MAX_FIT * sizeof *fit);
    float *buf = hl_malloc((size_t)C * sizeof *buf);
    double *rows = NULL, *norms = NULL, *K = NULL, *alpha = NULL, *kx = NULL, *x = NULL;
    hl_status s = trained && fit && buf ? HL_OK : hl_fail(err, HL_ERR_NOMEM, "word rows: out of memory");
    int32_t n = 0;
    /* The carried parts' tokens are all trained; the first HL_WORD_ROWS_MAX_FIT one-token parts are fitted. */
    for (int32_t e = 0; s == HL_OK && e < hl_lexicon_n_entries(carried); e++)
        for (int32_t p = 0; s == HL_OK && p < hl_lexicon_n_parts(carried, e); p++) {
            int32_t id, *ids = NULL;
            size_t nt = 0;
            if ((s = one_token(base, hl_lexicon_part(carried, e, p), &id, &ids, &nt, err)) != HL_OK) break;
            for (size_t k = 0; k < nt; k++)
                if (ids[k] >= 0 && ids[k] < V && !trained[ids[k]]) trained[ids[k]] = 1;
            if (id >= 0 && trained[id] == 1 && n < HL_WORD_ROWS_MAX_FIT) {
                trained[id] = 2;
                fit[n++] = id;
            }
            hl_free(ids);
        }
    report->n_fit = n;
    if (s != HL_OK || n < HL_WORD_ROWS_MIN_FIT) goto done;
    rows = hl_malloc((size_t)n * (size_t)C * sizeof *rows);
    norms = hl_malloc((size_t)n * sizeof *norms);
    K = hl_malloc((size_t)n * (size_t)n * sizeof *K);
    alpha = hl_malloc((size_t)n * (size_t)r * sizeof *alpha);
    kx = hl_malloc((size_t)n * sizeof *kx);
    x = hl_malloc((size_t)C * sizeof *x);
    if (!rows || !norms || !K || !alpha || !kx || !x) {
        s = hl_fail(err, HL_ERR_NOMEM, "word rows: out of memory");
        goto done;
    }
    for (int32_t i = 0; i < n; i++) {
        const float *e = hl_model_output_row(base, fit[i], buf);
        double ss = 0;
        for (int64_t c = 0; c < C; c++) {
            rows[(int64_t)i * C + c] = e[c];
            ss += (double)e[c] * e[c];
        }
        norms[i] = sqrt(ss);
    }
    double trace = 0;
    for (int32_t i = 0; i < n; i++)
        for (int32_t j = 0; j <= i; j++) {
            double k = kernel(rows + (int64_t)i * C, norms[i], rows + (int64_t)j * C, norms[j], C);
            K[(int64_t)i * n + j] = K[(int64_t)j * n + i] = k;
            if (i == j) trace += k;
        }
    const double lambda = LAMBDA_REL * trace / (double)(2 * C + 2);
    for (int32_t i = 0; i < n; i++) K[(int64_t)i * n + i] += lambda;
    if (!cholesky(K, n)) { /* K + λI is positive definite for λ > 0; only non-finite rows end here */
        s = hl_fail(err, HL_ERR_INVALID_ARG, "word rows: the trained words' head rows are not finite");
        goto done;
    }
    /* alpha = (K + λI)⁻¹ · B[fit] (n, r): forward then back substitution per column */
    for (int64_t j = 0; j < r; j++) {
        for (int32_t i = 0; i < n; i++) {
            double v = w->B[(int64_t)fit[i] * r + j];
            for (int32_t k = 0; k < i; k++) v -= K[(int64_t)i * n + k] * alpha[(int64_t)k * r + j];
            alpha[(int64_t)i * r + j] = v / K[(int64_t)i * n + i];
        }
        for (int32_t i = n - 1; i >= 0; i--) {
            double v = alpha[(int64_t)i * r + j];
            for (int32_t k = i + 1; k < n; k++) v -= K[(int64_t)k * n + i] * alpha[(int64_t)k * r + j];
            alpha[(int64_t)i * r + j] = v / K[(int64_t)i * n + i];
        }
    }
    /* The new words: one-token parts of all that no carried part spells. */
    for (int32_t e = 0; s == HL_OK && e < hl_lexicon_n_entries(all); e++)
        for (int32_t p = 0; s == HL_OK && p < hl_lexicon_n_parts(all, e); p++) {
            int32_t id, *ids = NULL;
            size_t nt = 0;
            if ((s = one_token(base, hl_lexicon_part(all, e, p), &id, &ids, &nt, err)) != HL_OK) break;
            if (id < 0) {
                for (size_t k = 0; k < nt; k++)
                    if (ids[k] >= 0 && ids[k] < V && !trained[ids[k]]) {
                        trained[ids[k]] = 4; /* counted once */
                        report->n_skipped++;
                    }
            }
            hl_free(ids);
            if (id < 0 || (trained[id] && trained[id] != 4)) continue; /* 4: so far only a piece of a longer word */
            trained[id] = 3;
            const float *ev = hl_model_output_row(base, id, buf);
            double ss = 0;
            for (int64_t c = 0; c < C; c++) {
                x[c] = ev[c];
                ss += (double)ev[c] * ev[c];
            }
            const double nx = sqrt(ss);
            for (int32_t i = 0; i < n; i++) kx[i] = kernel(x, nx, rows + (int64_t)i * C, norms[i], C);
            for (int64_t j = 0; j < r; j++) {
                double v = 0;
                for (int32_t i = 0; i < n; i++) v += kx[i] * alpha[(int64_t)i * r + j];
                w->B[(int64_t)id * r + j] = (float)(SHRINK * v);
            }
            report->n_new++;
        }
done:
    hl_free(trained);
    hl_free(fit);
    hl_free(buf);
    hl_free(rows);
    hl_free(norms);
    hl_free(K);
    hl_free(alpha);
    hl_free(kx);
    hl_free(x);
    return s;
}

hl_status hl_word_rows_compose_carried(hl_adapter *a, const hl_model *base, const hl_lexicon *all,
                                       hl_word_rows_report *report, hl_error *err) {
    *report = (hl_word_rows_report){0};
    hl_lexicon *carried = NULL;
    hl_status s = hl_lexicon_from_adapter(a, base, &carried, err);
    if (s == HL_OK && carried) s = hl_word_rows_compose(a, base, carried, all, report, err);
    hl_lexicon_free(carried);
    return s;
}
