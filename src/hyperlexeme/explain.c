/* explain.c: nearest base tokens and lexicon entries of a composed row (see explain.h). */
#include "hyperlexeme/explain.h"
#include "hyperlexeme/lexicon.h"
#include "model/model.h"
#include "util/alloc.h"
#include "util/error.h"

#include <math.h>

static double cosine(const float *a, const float *b, int64_t n) {
    double ab = 0, aa = 0, bb = 0;
    for (int64_t i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0;
}

static int ranks_above(hl_neighbour a, hl_neighbour b) { return a.cosine > b.cosine || (a.cosine == b.cosine && a.id < b.id); }

/* Keeps the k best of what it is given in top[0..*n), best first. */
static void keep(hl_neighbour *top, int32_t *n, int32_t k, hl_neighbour x) {
    if (*n == k) {
        if (!ranks_above(x, top[k - 1])) return;
        top[k - 1] = x;
    } else top[(*n)++] = x;
    for (int32_t i = *n - 1; i > 0 && ranks_above(top[i], top[i - 1]); i--) {
        hl_neighbour t = top[i - 1];
        top[i - 1] = top[i];
        top[i] = t;
    }
}

hl_status hl_lexicon_neighbours(const hl_lexicon *lex, const hl_model *base, const float *row, int32_t skip, int32_t k,
                                hl_neighbour *tokens, int32_t *n_tokens, hl_neighbour *entries, int32_t *n_entries,
                                hl_error *err) {
    *n_tokens = *n_entries = 0;
    if (k < 1) return hl_fail(err, HL_ERR_INVALID_ARG, "explain: k must be >= 1 (got %d)", k);
    const int64_t C = base->cfg.dim;
    float *buf = hl_malloc_array((size_t)C, sizeof(float));
    if (!buf) return hl_fail(err, HL_ERR_NOMEM, "explain: out of memory");
    for (int32_t v = 0; v < base->n_vocab_base; v++)
        keep(tokens, n_tokens, k, (hl_neighbour){v, cosine(row, hl_model_embd_row(base, v, buf), C)});
    hl_free(buf);
    for (int32_t j = 0; j < hl_lexicon_n_entries(lex); j++)
        if (j != skip) keep(entries, n_entries, k, (hl_neighbour){j, cosine(row, hl_lexicon_embedding(lex, j), C)});
    return HL_OK;
}
