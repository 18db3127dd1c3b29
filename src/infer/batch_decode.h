/* batch_decode.h: one decoding token for each of several contexts over the
 * same base weights, with every base product shared: the rows of all the
 * contexts go through each projection and the LM head together (the weights
 * read once per step), while each row adds its own context's adapters
 * (its projection hook), attends over its own KV cache and gets its own RoPE
 * position. Every kernel gives each output row the same bits whatever the
 * other rows and the thread count, so each context gets exactly the logits
 * hl_context_eval gives it alone (test_scheduler). Not here: prompts
 * (hl_context_eval runs those), mute-scene inputs. */
#ifndef HL_INFER_BATCH_DECODE_H
#define HL_INFER_BATCH_DECODE_H
#include "model/context.h"

typedef struct hl_batch_decode hl_batch_decode; /* scratch, grown on use */

void hl_batch_decode_free(hl_batch_decode *b);
/* 1 when two contexts can share a batch: the same weights, layout and shapes, over a plain
 * Llama model (qwen2, qwen3 and Llama-3 frequency factors decode one context at a time). */
int hl_batch_decode_compatible(const hl_context *a, const hl_context *b);
/* Token tokens[i] at position pos[i] of ctxs[i] (i < n), its logits into
 * logits[i] (that context's vocabulary). The contexts must be pairwise
 * compatible, have scratch for pool's threads, and hold pos[i] < n_ctx.
 * *b is made or grown as needed. */
hl_status hl_batch_decode_run(hl_batch_decode **b, hl_pool *pool, hl_context *const *ctxs, const int32_t *tokens,
                              const int32_t *pos, float *const *logits, int32_t n, hl_error *err);
#endif
