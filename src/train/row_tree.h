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

/* The rank whose rows hold row (ranks with no rows own nothing). */
int32_t hl_row_tree_owner(const hl_row_tree *t, int64_t row);

/* Point to point between ranks, vec_len floats at a time. */
typedef hl_status (*hl_row_send_fn)(void *user, int32_t to, const float *v, hl_error *err);
typedef hl_status (*hl_row_recv_fn)(void *user, int32_t from, float *v, hl_error *err);

/* The root as a reduction along the tree itself: called by every rank that
 * has rows, each with the values of its own cover (n_cover × vec_len, in
 * hl_row_tree_cover order). Each node above the covers is added by the rank
 * that owns its first row, after the rank owning its right half's first row
 * sent that half: the additions of hl_row_tree_sum, so the same bits. A
 * rank sends and receives at most one vector per tree level. The root ends
 * in dst on the owner of row 0; dst is scratch elsewhere. Ranks go through
 * the nodes in the same post-order, so blocking sends cannot deadlock. */
hl_status hl_row_tree_reduce(hl_row_tree *t, int32_t rank, const float *cover_values, hl_row_send_fn send,
                             hl_row_recv_fn recv, void *user, float *dst, hl_error *err);
#endif
