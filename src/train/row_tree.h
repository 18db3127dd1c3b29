/* row_tree.h: the one order in which a training step's row gradients are
 * added, and how that order is shared out among data-parallel ranks.
 *
 * The rows of a step (0..n_rows-1) are the leaves of one fixed binary tree:
 * node [lo, hi) is a leaf when hi - lo == 1, otherwise the sum left + right
 * of its halves [lo, mid) and [mid, hi), mid = lo + (hi - lo) / 2, added
 * element by element. Rank r of n_ranks owns the contiguous rows
 * [n_rows·r/n_ranks, n_rows·(r+1)/n_ranks); the maximal tree nodes inside
 * that range (its "cover", at most 2·log2(n_rows) of them) are what the
 * rank computes and sends. Any rank that has every rank's cover values
 * rebuilds the root with the very additions a single process would make,
 * so the sum's bits depend on neither n_ranks nor who computed what. */
#ifndef HL_TRAIN_ROW_TREE_H
#define HL_TRAIN_ROW_TREE_H
#include "util/error.h"
#include <stddef.h>
#include <stdint.h>

typedef struct hl_row_tree hl_row_tree;

typedef struct hl_tree_node {
    int64_t lo, hi;   /* rows [lo, hi) */
} hl_tree_node;

/* A tree over n_rows >= 1 rows of vec_len floats each, split among
 * n_ranks >= 1 ranks. It owns the scratch vectors of the additions. */
hl_status hl_row_tree_init(int64_t n_rows, int32_t n_ranks, int64_t vec_len, hl_row_tree **out, hl_error *err);
void hl_row_tree_free(hl_row_tree *t);

/* Rank r's rows [*lo, *hi) (empty when there are more ranks than rows). */
void hl_row_tree_rows(const hl_row_tree *t, int32_t rank, int64_t *lo, int64_t *hi);
/* Rank r's cover, left to right: *n nodes (the array is the tree's). */
const hl_tree_node *hl_row_tree_cover(const hl_row_tree *t, int32_t rank, int32_t *n);

/* Fills dst (vec_len) with one row's vector. */
typedef hl_status (*hl_row_leaf_fn)(void *user, int64_t row, float *dst, hl_error *err);
/* The value of a node already known (another rank's cover), or NULL. */
typedef const float *(*hl_row_known_fn)(void *user, int64_t lo, int64_t hi);

/* dst (vec_len) = the sum of node [lo, hi), which must be a tree node:
 * a node known() returns is copied, a leaf comes from leaf(), any other is
 * left + right. known may be NULL. Not reentrant (shared scratch). */
hl_status hl_row_tree_sum(hl_row_tree *t, int64_t lo, int64_t hi, hl_row_leaf_fn leaf, hl_row_known_fn known,
                          void *user, float *dst, hl_error *err);
#endif
