/* compose.h: the named rules that turn a lexeme's parts into its one frozen
 * embedding row (and its output row), and the fixed per-slot transforms the
 * order-aware rules use.
 *
 * A rule is a word order rule plus, optionally, "+facets":
 *   parts   the weighted mean of the parts: Σ w_k e_k / Σ w_k (default;
 *           forgets the order: "a b" and "b a" give the same row);
 *   slots   a fixed signed permutation S_k per part position k, then a
 *           norm-keeping sum: Σ w_k S_k e_k / sqrt(Σ w_k²). S_0 is the
 *           identity, so a one-part lexeme is its word, as under parts;
 *           the other S_k scatter each position into near-orthogonal
 *           directions, so the order survives and a reader can undo S_k;
 *   ranked  a position-weighted mean: part k weighs w_k / (k + 1);
 *   decay   a geometric mean: part k weighs w_k · 0.6^k, so the parts stand
 *           in order of strength and a reader can peel them off one by one
 *           (name the strongest, take it away, name the next), the same
 *           readout at every position; the base's end-of-text row closes
 *           the list at weight 0.6^n, so the reader also finds where the
 *           parts end.
 * "+facets" adds each facet value as one more word at weight 1: under parts
 * and ranked in the mean (ranked gives facets no rank), under slots with a
 * signed permutation chosen by the facet's key, so "tone=fear" and
 * "field=fear" differ. Under decay a facet value also takes its key's
 * permutation, at weight 1/4, so it stays out of the way of the parts'
 * readout (BENCHMARKS.md measures the trade). "decay+facet-words" composes
 * the facet values as they are, each its own word row at weight 1/4: a
 * reader names a facet the way it names a part (its row is in the scene),
 * where a reader of decay+facets has to learn to undo a permutation per
 * key, which trained readers did not (BENCHMARKS.md, "reading facets").
 * Facet values are a small closed set apart from the parts, so they are
 * told apart from the parts by what they are, not by where they stand.
 * e_k is the mean of the part's token rows (input or output table). The
 * transforms depend on nothing but the dimension and the position or key,
 * so an adapter carrying the rule's name composes the same rows anywhere. */
#ifndef HL_HYPERLEXEME_COMPOSE_H
#define HL_HYPERLEXEME_COMPOSE_H
#include <stdint.h>

enum {
    HL_COMPOSE_FACETS = 1,       /* bit: facet values join the parts */
    HL_COMPOSE_PARTS = 0,        /* order rule, bits 1..2 */
    HL_COMPOSE_SLOTS = 2,
    HL_COMPOSE_RANKED = 4,
    HL_COMPOSE_DECAY = 6,
    HL_COMPOSE_FACET_WORDS = 8, /* bit, with decay+facets only: facet values unpermuted */
    HL_COMPOSE_N_RULES = 16     /* rule values below this; not every one names a rule */
};
#define HL_COMPOSE_ORDER(rule) ((rule) & 6)

/* The rule's name ("parts", "slots+facets", ...) and back (-1 if unknown). */
const char *hl_compose_rule_name(int rule);
int hl_compose_rule_from_name(const char *name);
/* The weight of part k (0-based) of a part list under an order rule, before
 * normalisation: the entry's own weight times the rule's rank factor; and a
 * facet value's weight. */
double hl_compose_part_weight(int order, int32_t k, double entry_weight);
double hl_compose_facet_weight(int order);
/* Whether facet values take their key's signed permutation under this rule. */
int hl_compose_facets_transformed(int rule);
/* The names, comma separated, for messages and --help. */
const char *hl_compose_rule_list(void);

/* The key of part position k (k >= 0) and of a facet key, for the transform. */
uint64_t hl_compose_part_key(int32_t k);
uint64_t hl_compose_facet_key(const char *facet_key);
/* The signed permutation for key over C dims: out[c] = sign · in[src[c]],
 * with src[c] = code[c] >> 1 and sign = -1 when code[c] & 1. Part 0's key
 * gives the identity. code holds C entries. */
void hl_compose_transform(uint64_t key, int64_t C, int32_t *code);
#endif
