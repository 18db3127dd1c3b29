/* generate.c: prompt processing in one batch, then token-by-token decoding. */
#include "hyperlora.h"
#include "model/context.h"
#include "util/alloc.h"
#include "util/error.h"

hl_status hl_generate(hl_context *ctx, hl_sampler *sampler, const int32_t *prompt, int32_t n_prompt,
                      const hl_generate_params *params, hl_token_fn fn, void *user, int32_t *tokens,
                      int32_t *n_out, hl_error *err) {
    const hl_model_config *c = &ctx->m->cfg;
    int32_t bos = hl_tokenizer_bos(ctx->m->tok), eos = hl_tokenizer_eos(ctx->m->tok);
    if (n_out) *n_out = 0;
    if (n_prompt <= 0) return hl_fail(err, HL_ERR_INVALID_ARG, "generate: the prompt has no tokens (not even BOS)");
    if (n_prompt > ctx->n_ctx)
        return hl_fail(err, HL_ERR_LIMIT, "generate: the prompt has %d tokens but the context holds %d", n_prompt,
                       ctx->n_ctx);
    float *logits = hl_malloc_array((size_t)c->vocab_size, sizeof(float));
    if (!logits) return hl_fail(err, HL_ERR_NOMEM, "out of memory");
    hl_status s = hl_context_eval(ctx, prompt, n_prompt, 0, logits, 0, err);
    int32_t pos = n_prompt, produced = 0;
    while (s == HL_OK && produced < params->n_predict) {
        int32_t next = hl_sampler_sample(sampler, logits);
        if (tokens) tokens[produced] = next;
        produced++;
        int stop = fn ? fn(user, next) : 0;
        if (params->stop_at_eos && (next == eos || next == bos || hl_tokenizer_is_eog(ctx->m->tok, next))) break;
        if (stop || produced == params->n_predict) break;
        if (pos >= ctx->n_ctx) break; /* context full */
        s = hl_context_eval(ctx, &next, 1, pos++, logits, 0, err);
    }
    hl_free(logits);
    if (n_out) *n_out = produced;
    return s;
}
