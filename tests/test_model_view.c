/* test_model_view.c: the model's seams for the layers above it. Views
 * (hl_model_view_init): extra rows extend the vocabulary and share every
 * base weight; replaced weights change the view alone, and a view whose
 * replacements equal the base gives the base's logits bit for bit; bad
 * requests are refused with a message. The projection hook: called once per
 * adaptable projection, its terms reach the logits, and the context releases
 * its state. */
#include "hyperlora.h"
#include "model/context.h"
#include "model/model.h"
#include "test_util.h"

#include <stdint.h>

#define STORIES_GGUF "models/stories260K/stories260K-f32.gguf"

static void eval_rows(const hl_model *m, const int32_t *ids, int32_t n, float *logits) {
    hl_error err = {0};
    hl_context_params p = hl_context_default_params();
    p.weights = HL_WEIGHTS_ROWS;
    hl_context *ctx = NULL;
    CHECK_OK(hl_context_init(m, &p, &ctx, &err), &err);
    if (ctx) CHECK_OK(hl_context_eval(ctx, ids, n, 0, logits, 0, &err), &err);
    hl_context_free(ctx);
}

static void test_extra_rows(const hl_model *base) {
    hl_error err = {0};
    const int64_t C = base->cfg.dim;
    float *rows = calloc((size_t)(2 * C), sizeof(float));
    REQUIRE(rows);
    hl_model_view_params vp = {.n_extra = 2, .extra_embd = rows, .extra_out = rows};
    hl_model *v = NULL;
    CHECK_OK(hl_model_view_init(base, &vp, &v, &err), &err);
    REQUIRE(v);
    CHECK(v->cfg.vocab_size == base->n_vocab_base + 2);
    CHECK(v->n_vocab_base == base->n_vocab_base && v->n_extra == 2 && v->extra_embd == rows);
    CHECK(v->layers == base->layers && v->token_embd == base->token_embd && v->output == base->output);
    CHECK(v->packed == base->packed && v->tok == base->tok && v->fingerprint == base->fingerprint);
    CHECK(base->n_extra == 0 && base->cfg.vocab_size == base->n_vocab_base);
    hl_model_free(v);
    free(rows);
}

static void test_replaced_weights(const hl_model *base) {
    hl_error err = {0};
    const int L = base->cfg.n_layers;
    const int32_t ids[5] = {1, 403, 407, 261, 378};
    int64_t rows, cols;
    const float *wq = hl_model_weight(base, 0, HL_TARGET_Q, &rows, &cols);
    REQUIRE(wq);
    float *copy = malloc((size_t)(rows * cols) * sizeof(float));
    REQUIRE(copy);
    memcpy(copy, wq, (size_t)(rows * cols) * sizeof(float));
    const float **w = calloc((size_t)(L + 1) * HL_TARGET_COUNT, sizeof *w);
    REQUIRE(w);
    w[HL_TARGET_Q] = copy;
    hl_model_view_params vp = {.weights = w};
    hl_model *v = NULL;
    CHECK_OK(hl_model_view_init(base, &vp, &v, &err), &err);
    REQUIRE(v);
    int64_t r2, c2;
    CHECK(hl_model_weight(v, 0, HL_TARGET_Q, &r2, &c2) == copy && r2 == rows && c2 == cols);
    CHECK(hl_model_weight(base, 0, HL_TARGET_Q, &r2, &c2) == wq);
    CHECK(v->layers != base->layers && v->layers[L - 1].wq == base->layers[L - 1].wq);
    CHECK(v->packed == NULL);
    const int64_t V = base->cfg.vocab_size;
    float *a = malloc((size_t)V * sizeof(float)), *b = malloc((size_t)V * sizeof(float));
    REQUIRE(a && b);
    eval_rows(base, ids, 5, a);
    eval_rows(v, ids, 5, b);
    CHECK_MSG(!memcmp(a, b, (size_t)V * sizeof(float)), "a view of the same weights changed the logits");
    hl_model_free(v);
    /* A changed weight changes the view's logits, not the base's. */
    for (int64_t i = 0; i < rows * cols; i++) copy[i] *= 0.5f;
    CHECK_OK(hl_model_view_init(base, &vp, &v, &err), &err);
    eval_rows(v, ids, 5, b);
    CHECK(memcmp(a, b, (size_t)V * sizeof(float)) != 0);
    hl_model_free(v);
    eval_rows(base, ids, 5, b);
    CHECK(!memcmp(a, b, (size_t)V * sizeof(float)));
    /* A slot that names no weight: layer L holds only the LM head. */
    w[HL_TARGET_Q] = NULL;
    w[(size_t)L * HL_TARGET_COUNT + HL_TARGET_Q] = copy;
    v = NULL;
    CHECK(hl_model_view_init(base, &vp, &v, &err) == HL_ERR_INVALID_ARG && !v);
    CHECK_MSG(strstr(err.msg, "to replace") != NULL, "message: %s", err.msg);
    hl_model_view_params missing = {.n_extra = 3};
    CHECK(hl_model_view_init(base, &missing, &v, &err) == HL_ERR_INVALID_ARG && !v);
    free(a);
    free(b);
    free(w);
    free(copy);
}

static void test_quantized_base(void) {
    hl_error err = {0};
    hl_model *q = NULL;
    CHECK_OK(hl_model_load(shared_path("oracle/llamacpp/quant/models/q256-Q8_0.gguf"), NULL, &q, &err), &err);
    if (!q) return;
    const int L = q->cfg.n_layers;
    float dummy = 0;
    const float **w = calloc((size_t)(L + 1) * HL_TARGET_COUNT, sizeof *w);
    REQUIRE(w);
    w[HL_TARGET_V] = &dummy;
    hl_model_view_params vp = {.weights = w};
    hl_model *v = NULL;
    CHECK(hl_model_view_init(q, &vp, &v, &err) == HL_ERR_INVALID_ARG && !v);
    CHECK_MSG(strstr(err.msg, "quantized") != NULL, "message: %s", err.msg);
    free(w);
    hl_model_free(q);
}

/* A hook that counts its calls and adds 1 to every output of (layer 0, q). */
typedef struct counting_hook {
    int calls, freed;
} counting_hook;

static hl_status count_apply(void *state, const hl_context *ctx, int layer, int target, const float *x, float *out,
                             int64_t ldo, int64_t T, hl_error *err) {
    (void)x;
    (void)err;
    counting_hook *h = state;
    h->calls++;
    if (layer == 0 && target == HL_TARGET_Q) {
        int64_t rows, cols;
        hl_model_weight(ctx->m, 0, HL_TARGET_Q, &rows, &cols);
        for (int64_t t = 0; t < T; t++)
            for (int64_t o = 0; o < rows; o++) out[t * ldo + o] += 1.0f;
    }
    return HL_OK;
}

static void count_free(void *state) { ((counting_hook *)state)->freed++; }

static void test_projection_hook(const hl_model *m) {
    hl_error err = {0};
    const int32_t ids[3] = {1, 403, 407};
    const int64_t V = m->cfg.vocab_size;
    float *a = malloc((size_t)V * sizeof(float)), *b = malloc((size_t)V * sizeof(float));
    REQUIRE(a && b);
    eval_rows(m, ids, 3, a);
    hl_context_params p = hl_context_default_params();
    p.weights = HL_WEIGHTS_ROWS;
    hl_context *ctx = NULL;
    CHECK_OK(hl_context_init(m, &p, &ctx, &err), &err);
    REQUIRE(ctx);
    CHECK(hl_context_projection_hook(ctx)->apply == NULL);
    counting_hook st = {0};
    hl_projection_hook h = {.apply = count_apply, .free_state = count_free, .state = &st};
    hl_context_set_projection_hook(ctx, &h);
    CHECK_OK(hl_context_eval(ctx, ids, 3, 0, b, 0, &err), &err);
    /* One batch: seven projections per layer and the LM head. */
    CHECK_MSG(st.calls == m->cfg.n_layers * 7 + 1, "%d hook calls", st.calls);
    CHECK(memcmp(a, b, (size_t)V * sizeof(float)) != 0);
    hl_context_set_projection_hook(ctx, &h); /* the same state again: kept */
    CHECK(st.freed == 0);
    hl_context_free(ctx);
    CHECK(st.freed == 1);
    free(a);
    free(b);
}

int main(void) {
    hl_error err = {0};
    hl_model *base = NULL;
    CHECK_OK(hl_model_load(shared_path(STORIES_GGUF), NULL, &base, &err), &err);
    REQUIRE(base);
    test_extra_rows(base);
    test_replaced_weights(base);
    test_quantized_base();
    test_projection_hook(base);
    hl_model_free(base);
    return hl_test_finish("test_model_view");
}
