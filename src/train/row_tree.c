/* row_tree.c: the fixed summation tree over a step's rows (row_tree.h). */
#include "train/row_tree.h"
#include "util/alloc.h"

#include <string.h>

struct hl_row_tree {
    int64_t n_rows, vec_len;
    int32_t n_ranks;
    int32_t depth;           /* scratch vectors: one per tree level below the root */
    float **scratch;         /* [depth] (vec_len) right-hand sums waiting to be added */
    hl_tree_node *covers;    /* every rank's cover, rank after rank */
    int32_t *cover_start;    /* [n_ranks + 1] offsets into covers */
};

static int64_t split(int64_t lo, int64_t hi) { return lo + (hi - lo) / 2; }

/* Appends the maximal nodes of [lo, hi) inside [a, b) to out (NULL: only counts). */
static int32_t cover(int64_t lo, int64_t hi, int64_t a, int64_t b, hl_tree_node *out) {
    if (hi <= a || b <= lo) return 0;
    if (a <= lo && hi <= b) {
        if (out) *out = (hl_tree_node){lo, hi};
        return 1;
    }
    int64_t mid = split(lo, hi);
    int32_t n = cover(lo, mid, a, b, out);
    return n + cover(mid, hi, a, b, out ? out + n : NULL);
}

void hl_row_tree_rows(const hl_row_tree *t, int32_t rank, int64_t *lo, int64_t *hi) {
    /* n_rows < 2^40 and n_ranks < 2^31 (checked at init): the products fit */
    *lo = t->n_rows * rank / t->n_ranks;
    *hi = t->n_rows * (rank + 1) / t->n_ranks;
}

hl_status hl_row_tree_init(int64_t n_rows, int32_t n_ranks, int64_t vec_len, hl_row_tree **out, hl_error *err) {
    *out = NULL;
    if (n_rows < 1 || n_rows > ((int64_t)1 << 40) || n_ranks < 1 || vec_len < 0)
        return hl_fail(err, HL_ERR_INVALID_ARG, "row tree: %lld rows over %d ranks is out of range", (long long)n_rows,
                       (int)n_ranks);
    hl_row_tree *t = hl_calloc(1, sizeof *t);
    if (!t) return hl_fail(err, HL_ERR_NOMEM, "row tree: out of memory");
    t->n_rows = n_rows;
    t->n_ranks = n_ranks;
    t->vec_len = vec_len;
    for (int64_t span = 1; span < n_rows; span *= 2) t->depth++;
    t->scratch = hl_calloc(t->depth ? (size_t)t->depth : 1, sizeof *t->scratch);
    t->cover_start = hl_calloc((size_t)n_ranks + 1, sizeof *t->cover_start);
    int ok = t->scratch && t->cover_start;
    for (int32_t d = 0; ok && d < t->depth; d++)
        ok = (t->scratch[d] = hl_malloc_array(vec_len ? (size_t)vec_len : 1, sizeof(float))) != NULL;
    int64_t total = 0;
    for (int32_t r = 0; ok && r < n_ranks; r++) {
        int64_t lo, hi;
        hl_row_tree_rows(t, r, &lo, &hi);
        t->cover_start[r] = (int32_t)total;
        total += cover(0, n_rows, lo, hi, NULL);
        ok = total < INT32_MAX;
    }
    if (ok) {
        t->cover_start[n_ranks] = (int32_t)total;
        ok = (t->covers = hl_malloc_array(total ? (size_t)total : 1, sizeof *t->covers)) != NULL;
    }
    for (int32_t r = 0; ok && r < n_ranks; r++) {
        int64_t lo, hi;
        hl_row_tree_rows(t, r, &lo, &hi);
        cover(0, n_rows, lo, hi, t->covers + t->cover_start[r]);
    }
    if (!ok) {
        hl_row_tree_free(t);
        return hl_fail(err, HL_ERR_NOMEM, "row tree: out of memory for %lld rows of %lld floats", (long long)n_rows,
                       (long long)vec_len);
    }
    *out = t;
    return HL_OK;
}

void hl_row_tree_free(hl_row_tree *t) {
    if (!t) return;
    for (int32_t d = 0; t->scratch && d < t->depth; d++) hl_free(t->scratch[d]);
    hl_free(t->scratch);
    hl_free(t->covers);
    hl_free(t->cover_start);
    hl_free(t);
}

const hl_tree_node *hl_row_tree_cover(const hl_row_tree *t, int32_t rank, int32_t *n) {
    *n = t->cover_start[rank + 1] - t->cover_start[rank];
    return t->covers + t->cover_start[rank];
}

/* level: how many splits lie above [lo, hi); scratch[level] is free below it. */
static hl_status sum_node(hl_row_tree *t, int64_t lo, int64_t hi, int32_t level, hl_row_leaf_fn leaf,
                          hl_row_known_fn known, void *user, float *dst, hl_error *err) {
    const float *v = known ? known(user, lo, hi) : NULL;
    if (v) {
        memcpy(dst, v, (size_t)t->vec_len * sizeof *dst);
        return HL_OK;
    }
    if (hi - lo == 1) {
        if (!leaf) return hl_fail(err, HL_ERR_INVALID_ARG, "row tree: no value for row %lld", (long long)lo);
        return leaf(user, lo, dst, err);
    }
    int64_t mid = split(lo, hi);
    float *right = t->scratch[level];
    hl_status s = sum_node(t, lo, mid, level + 1, leaf, known, user, dst, err);
    if (s == HL_OK) s = sum_node(t, mid, hi, level + 1, leaf, known, user, right, err);
    if (s != HL_OK) return s;
    for (int64_t i = 0; i < t->vec_len; i++) dst[i] += right[i];
    return HL_OK;
}

/* The level of node [lo, hi): the splits from the root down to it. */
static int32_t node_level(const hl_row_tree *t, int64_t lo, int64_t hi, int32_t *level) {
    int64_t a = 0, b = t->n_rows;
    *level = 0;
    while (a != lo || b != hi) {
        if (b - a < 2 || lo < a || hi > b) return 0;
        int64_t mid = split(a, b);
        if (hi <= mid) b = mid;
        else if (lo >= mid) a = mid;
        else return 0;
        (*level)++;
    }
    return 1;
}

hl_status hl_row_tree_sum(hl_row_tree *t, int64_t lo, int64_t hi, hl_row_leaf_fn leaf, hl_row_known_fn known,
                          void *user, float *dst, hl_error *err) {
    int32_t level;
    if (!node_level(t, lo, hi, &level))
        return hl_fail(err, HL_ERR_INVALID_ARG, "row tree: rows [%lld, %lld) are not a node of the tree over %lld",
                       (long long)lo, (long long)hi, (long long)t->n_rows);
    return sum_node(t, lo, hi, level, leaf, known, user, dst, err);
}

int32_t hl_row_tree_owner(const hl_row_tree *t, int64_t row) {
    for (int32_t q = 0; q < t->n_ranks; q++) {
        int64_t lo, hi;
        hl_row_tree_rows(t, q, &lo, &hi);
        if (lo <= row && row < hi) return q;
    }
    return -1;
}

typedef struct reduce_job {
    hl_row_tree *t;
    int32_t rank;
    int64_t my_lo, my_hi;
    const float *covers;
    hl_row_send_fn send;
    hl_row_recv_fn recv;
    void *user;
} reduce_job;

/* Node [lo, hi), which holds some of this rank's rows. On return the owner
 * of row lo has the node's value in dst; the others have sent what the
 * owners above them need. */
static hl_status reduce_node(const reduce_job *j, int64_t lo, int64_t hi, int32_t level, float *dst, hl_error *err) {
    hl_row_tree *t = j->t;
    if (j->my_lo <= lo && hi <= j->my_hi) { /* inside this rank's rows: one of its cover nodes */
        int32_t n;
        const hl_tree_node *cv = hl_row_tree_cover(t, j->rank, &n);
        for (int32_t i = 0; i < n; i++)
            if (cv[i].lo == lo && cv[i].hi == hi) {
                memcpy(dst, j->covers + (size_t)i * (size_t)t->vec_len, (size_t)t->vec_len * sizeof *dst);
                return HL_OK;
            }
        return hl_fail(err, HL_ERR_INVALID_ARG, "row tree: rows [%lld, %lld) are not a cover node", (long long)lo,
                       (long long)hi);
    }
    int64_t mid = split(lo, hi);
    int32_t own_left = hl_row_tree_owner(t, lo), own_right = hl_row_tree_owner(t, mid);
    int in_left = j->my_lo < mid && j->my_hi > lo, in_right = j->my_lo < hi && j->my_hi > mid;
    float *right = t->scratch[level];
    hl_status s = HL_OK;
    if (in_left) s = reduce_node(j, lo, mid, level + 1, dst, err);
    if (s == HL_OK && in_right) {
        s = reduce_node(j, mid, hi, level + 1, right, err);
        if (s == HL_OK && j->rank == own_right && own_right != own_left) s = j->send(j->user, own_left, right, err);
    }
    if (s != HL_OK || j->rank != own_left) return s;
    if (own_right != j->rank && (s = j->recv(j->user, own_right, right, err)) != HL_OK) return s;
    for (int64_t i = 0; i < t->vec_len; i++) dst[i] += right[i];
    return HL_OK;
}

hl_status hl_row_tree_reduce(hl_row_tree *t, int32_t rank, const float *cover_values, hl_row_send_fn send,
                             hl_row_recv_fn recv, void *user, float *dst, hl_error *err) {
    reduce_job j = {.t = t, .rank = rank, .covers = cover_values, .send = send, .recv = recv, .user = user};
    hl_row_tree_rows(t, rank, &j.my_lo, &j.my_hi);
    if (j.my_lo >= j.my_hi) return HL_OK; /* no rows: nothing to add */
    return reduce_node(&j, 0, t->n_rows, 0, dst, err);
}
