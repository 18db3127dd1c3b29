/* word_rows.h: output-adapter rows for words a scene decoder never named in
 * training, composed from the words' own frozen head rows.
 *
 * A decoder whose adapter covers the output projection learns a row of B
 * (Vb, r) for every word it was trained to name: the parts of its carried
 * lexicon. A word that first appears as a part at decode time (an extra
 * lexicon) keeps the row training left it, that of a token never wanted,
 * and the decoder names a trained neighbour instead (BENCHMARKS.md: 0 of
 * 100 unseen-word parts named). The trained rows are close to a fixed
 * function of the words' head rows e (cross-validated R² 0.82 on the demo
 * base), so each new word gets the row that function gives for its own e:
 *
 *   features  f(e) = [e, e/|e|, 1, |e|]                     (2C + 2)
 *   fit       kernel ridge over the trained one-token parts:
 *             alpha = (F·Fᵀ + λI)⁻¹·B_trained,  λ = 0.01·trace(F·Fᵀ)/(2C + 2)
 *   new row   B[v] = 0.9 · f(e_v)·Fᵀ·alpha   (shrunk: see word_rows.c)
 *
 * (the dual of ridge regression, so its size follows the number of trained
 * words, not the width). All in double, in one fixed order: the same bits at
 * any thread count. Nothing is trained and the base is untouched; only the
 * new words' rows of the loaded adapter change. */
#ifndef HL_HYPERLEXEME_WORD_ROWS_H
#define HL_HYPERLEXEME_WORD_ROWS_H
#include "hyperlora.h"
#include "lora/adapter.h"

/* At most this many trained words enter the fit (the first ones in lexicon order). */
#define HL_WORD_ROWS_MAX_FIT 2048
/* Fewer trained one-token words than this, and no rows are composed. */
#define HL_WORD_ROWS_MIN_FIT 16

typedef struct hl_word_rows_report {
    int32_t n_fit;     /* trained one-token parts the map was fitted on */
    int32_t n_new;     /* new one-token parts that got a composed row */
    int32_t n_skipped; /* new parts spelled by more than one token (left as they were) */
} hl_word_rows_report;

/* Composes rows of a's output-projection B for the one-token parts of all
 * that no part of carried (the lexicon a was trained with) spells. a without
 * an output adapter, or with fewer than HL_WORD_ROWS_MIN_FIT trained words,
 * is left unchanged (report->n_new = 0). */
hl_status hl_word_rows_compose(hl_adapter *a, const hl_model *base, const hl_lexicon *carried,
                               const hl_lexicon *all, hl_word_rows_report *report, hl_error *err);
/* The same with carried = the lexicon a carries (nothing changes when it carries none). */
hl_status hl_word_rows_compose_carried(hl_adapter *a, const hl_model *base, const hl_lexicon *all,
                                       hl_word_rows_report *report, hl_error *err);
#endif
