/* perplexity.h: perplexity of a model on a token sequence, by llama.cpp's
 * llama-perplexity convention, so that figures compare one to one:
 * the tokens (BOS first) are cut into floor(n / n_ctx) chunks of n_ctx (the
 * rest dropped); each chunk has its first token replaced by BOS and is
 * evaluated from position 0 in one batch; the predictions at positions
 * n_ctx/2 .. n_ctx-2 are scored on the token after them; PPL = exp(mean
 * negative log-likelihood), ± exp(mean)·sqrt((E[nll²] - E[nll]²)/(count-1)). */
#ifndef HL_INFER_PERPLEXITY_H
#define HL_INFER_PERPLEXITY_H
#include <stdint.h>
#include "hyperlora.h"

typedef struct hl_perplexity_result {
    double ppl;          /* exp of the mean NLL over every scored token */
    double ppl_err;      /* llama.cpp's standard-error estimate of ppl */
    int64_t n_scored;    /* tokens scored: n_chunks · (n_ctx - n_ctx/2 - 1) */
    int32_t n_chunks;
    double *running;     /* [n_chunks]: PPL over chunks 0..i, as llama.cpp prints them; hl_free */
} hl_perplexity_result;

/* Evaluates with ctx (its context must hold n_ctx positions; its adapters
 * apply). tokens (n_tokens) as the tokenizer gave them; bos replaces each
 * chunk's first token (bos < 0: nothing is replaced, for vocabularies that
 * add no BOS). Fewer tokens than one chunk is HL_ERR_INVALID_ARG. */
hl_status hl_perplexity(hl_context *ctx, const int32_t *tokens, int64_t n_tokens, int32_t n_ctx, int32_t bos,
                        hl_perplexity_result *out, hl_error *err);
#endif
