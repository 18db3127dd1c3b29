/* batch_decode.h: one forward pass over the rows of several contexts over
 * the same base weights, with every base product shared. Each context
 * brings a segment: its one decoding token, or a chunk of its prompt (up to
 * its n_batch tokens at consecutive positions). All the rows go through each
 * projection and the LM head together (the weights read once per pass),
 * while each segment adds its own context's adapters (its projection hook,
 * on its own rows), gets its own RoPE positions, writes K and V into its own
 * cache and attends causally over it. Every kernel gives each output row the
 * same bits whatever the other rows and the thread count (matmuls row by
 * row, attention per (row, head), the hook per row), so each context gets
 * exactly the logits hl_context_eval gives it alone, and a prompt evaluated
 * in chunks gets the bits of one evaluated at once (test_scheduler). */
#ifndef HL_INFER_BATCH_DECODE_H
#define HL_INFER_BATCH_DECODE_H
#include "model/context.h"

typedef struct hl_batch_decode hl_batch_decode; /* scratch, grown on use */

void hl_batch_decode_free(hl_batch_decode *b);
/* 1 when two contexts can share a batch: the same weights, layout and shapes, over a plain
 * Llama model (qwen2, qwen3 and Llama-3 frequency factors decode one context at a time). */
int hl_batch_decode_compatible(const hl_context *a, const hl_context *b);
typedef struct hl_batch_seg {
    hl_context *ctx;
    const int32_t *tokens; /* (n) ids, scene vectors (-1..-k) included, at positions pos0..pos0+n-1 */
    int32_t n;             /* 1..ctx->n_batch */
    int32_t pos0;
    float *logits;         /* (V of ctx) the last row's logits, or NULL: none wanted (a prompt chunk before the last) */
} hl_batch_seg;

/* One pass over segs[0..n_segs). The contexts must be pairwise compatible,
 * have scratch for pool's threads and room for their positions. *b is made
 * or grown as needed. */
hl_status hl_batch_decode_run(hl_batch_decode **b, hl_pool *pool, const hl_batch_seg *segs, int32_t n_segs,
                              hl_error *err);
#endif
