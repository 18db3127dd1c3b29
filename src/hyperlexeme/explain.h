/* explain.h: where a scene's composed row sits among the base tokens and the
 * lexicon's entries, by cosine similarity: what `scene explain` prints and
 * the server's /v1/scenes/explain answers. */
#ifndef HL_HYPERLEXEME_EXPLAIN_H
#define HL_HYPERLEXEME_EXPLAIN_H
#include <stdint.h>
#include "hyperlora.h"

typedef struct hl_neighbour {
    int32_t id;    /* a base token id, or a lexicon entry index */
    double cosine;
} hl_neighbour;

/* The k nearest base tokens (ids below the base vocabulary; a quantized
 * base's rows are dequantized one at a time) and the k nearest entries of
 * lex other than entry skip (-1: none) to row (C floats), each best first,
 * ties to the lower id. tokens and entries hold k each; *n_tokens and
 * *n_entries get how many were found. */
hl_status hl_lexicon_neighbours(const hl_lexicon *lex, const hl_model *base, const float *row, int32_t skip, int32_t k,
                                hl_neighbour *tokens, int32_t *n_tokens, hl_neighbour *entries, int32_t *n_entries,
                                hl_error *err);
#endif
