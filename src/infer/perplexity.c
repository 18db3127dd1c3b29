/* perplexity.c: hl_perplexity (see perplexity.h). Shapes: logits (n_ctx, V)
 * for one chunk at a time. The log-softmax of each scored row subtracts the
 * row's max and sums exp in double, as llama-perplexity does. */
#include "infer/perplexity.h"
#include "model/context.h"
#include "util/alloc.h"
#include "util/error.h"

#include <math.h>
#include <string.h>

/* -log softmax(row)[tok] over V logits. */
static double nll_of(const float *row, int64_t V, int32_t tok) {
    float max = row[0];
    for (int64_t v = 1; v < V; v++)
        if (row[v] > max) max = row[v];
    double sum_exp = 0.0;
    for (int64_t v = 0; v < V; v++) sum_exp += expf(row[v] - max);
    return -((double)(row[tok] - max) - log(sum_exp));
}

hl_status hl_perplexity(hl_context *ctx, const int32_t *tokens, int64_t n_tokens, int32_t n_ctx, int32_t bos,
                        hl_perplexity_result *out, hl_error *err) {
    memset(out, 0, sizeof *out);
    const int64_t V = ctx->m->cfg.vocab_size;
    if (n_ctx < 4 || n_ctx > hl_context_n_ctx(ctx))
        return hl_fail(err, HL_ERR_INVALID_ARG, "a chunk of %d tokens needs 4..%d (the context)", n_ctx,
                       hl_context_n_ctx(ctx));
    const int64_t n_chunks = n_tokens / n_ctx;
    if (n_chunks < 1)
        return hl_fail(err, HL_ERR_INVALID_ARG, "%lld tokens are fewer than one chunk of %d",
                       (long long)n_tokens, n_ctx);
    if (n_chunks > INT32_MAX) return hl_fail(err, HL_ERR_LIMIT, "too many chunks");
    float *logits = hl_malloc_array((size_t)n_ctx * (size_t)V, sizeof(float));
    int32_t *chunk = hl_malloc_array((size_t)n_ctx, sizeof(int32_t));
    double *running = hl_malloc_array((size_t)n_chunks, sizeof(double));
    hl_status s = logits && chunk && running ? HL_OK : hl_fail(err, HL_ERR_NOMEM, "out of memory");
    const int32_t first = n_ctx / 2;
    double nll = 0, nll2 = 0;
    int64_t count = 0;
    for (int64_t c = 0; s == HL_OK && c < n_chunks; c++) {
        memcpy(chunk, tokens + c * n_ctx, sizeof(int32_t) * (size_t)n_ctx);
        if (bos >= 0) chunk[0] = bos;
        if ((s = hl_context_eval(ctx, chunk, n_ctx, 0, logits, 1, err)) != HL_OK) break;
        for (int32_t i = first; i < n_ctx - 1; i++) {
            double v = nll_of(logits + (int64_t)i * V, V, chunk[i + 1]);
            nll += v;
            nll2 += v * v;
            count++;
        }
        running[c] = exp(nll / (double)count);
    }
    hl_free(logits);
    hl_free(chunk);
    if (s != HL_OK) {
        hl_free(running);
        return s;
    }
    double mean = nll / (double)count, var = nll2 / (double)count - mean * mean;
    out->ppl = exp(mean);
    out->ppl_err = var > 0 && count > 1 ? sqrt(var / (double)(count - 1)) * out->ppl : 0.0;
    out->n_scored = count;
    out->n_chunks = (int32_t)n_chunks;
    out->running = running;
    return HL_OK;
}
