/* apply.c: unmerged LoRA inside the forward pass, and the adapter set a
 * context runs with, installed as the context's projection hook. Swapping
 * adapters never touches the base weights. */
#include "lora/apply.h"
#include "kernels/kernels.h"
#include "util/alloc.h"
#include "util/error.h"

#include <math.h>
#include <string.h>

/* The hook's state: the active adapters and the scratch for A·x. */
typedef struct hl_adapter_set {
    int32_t n;
    const hl_adapter *adapters[HL_MAX_ACTIVE_ADAPTERS];
    float scales[HL_MAX_ACTIVE_ADAPTERS]; /* user scales (llama.cpp --lora-scaled) */
    float *tmp;                           /* (n_batch, tmp_cap) */
    int32_t tmp_cap;
} hl_adapter_set;

static void adapter_set_free(void *state) {
    hl_adapter_set *set = state;
    if (!set) return;
    hl_free(set->tmp);
    hl_free(set);
}

/* x (T, in), out (T, out) with row stride ldo. */
static hl_status adapter_set_apply(void *state, const hl_context *ctx, int layer, int target, const float *x,
                                   float *out, int64_t ldo, int64_t T, hl_error *err) {
    hl_adapter_set *set = state;
    for (int32_t i = 0; i < set->n; i++) {
        const hl_adapter *a = set->adapters[i];
        const hl_lora_weight *w = hl_adapter_find(a, layer, target);
        if (!w || set->scales[i] == 0.0f) continue;
        if (w->rank > set->tmp_cap)
            return hl_fail(err, HL_ERR_INVALID_ARG, "adapter %s: rank %d exceeds the context's scratch", a->name,
                           w->rank);
        /* tmp (T, r) = x · Aᵀ;  out += s · tmp · Bᵀ */
        hl_matmul(ctx->pool, set->tmp, x, w->A, T, w->n_in, w->rank);
        hl_matmul_strided(ctx->pool, out, ldo, set->tmp, w->B, T, w->rank, w->n_out,
                          set->scales[i] * hl_lora_weight_scale(a, w), 1);
    }
    return HL_OK;
}

hl_status hl_context_set_adapters(hl_context *ctx, const hl_adapter *const *adapters, const float *scales,
                                  int32_t n, hl_error *err) {
    if (n < 0 || n > HL_MAX_ACTIVE_ADAPTERS)
        return hl_fail(err, HL_ERR_LIMIT, "at most %d adapters can be active at once (got %d)",
                       HL_MAX_ACTIVE_ADAPTERS, n);
    int32_t max_rank = 0;
    for (int32_t i = 0; i < n; i++) {
        const hl_adapter *a = adapters[i];
        if (a->n_layers != ctx->m->cfg.n_layers)
            return hl_fail(err, HL_ERR_MISMATCH, "adapter %s was made for %d layers, the model has %d", a->name,
                           a->n_layers, ctx->m->cfg.n_layers);
        for (int32_t j = 0; j < a->n_weights; j++)
            if (a->w[j].rank > max_rank) max_rank = a->w[j].rank;
        if (!isfinite(scales[i])) return hl_fail(err, HL_ERR_INVALID_ARG, "adapter %s: scale is not finite", a->name);
    }
    const hl_projection_hook *cur = hl_context_projection_hook(ctx);
    hl_adapter_set *set = cur->free_state == adapter_set_free ? cur->state : NULL;
    if (!set) {
        set = hl_calloc(1, sizeof *set);
        if (!set) return hl_fail(err, HL_ERR_NOMEM, "out of memory");
        hl_projection_hook idle = {.apply = NULL, .free_state = adapter_set_free, .state = set};
        hl_context_set_projection_hook(ctx, &idle);
    }
    if (max_rank > set->tmp_cap) {
        float *tmp = hl_malloc_array((size_t)ctx->n_batch * (size_t)max_rank, sizeof(float));
        if (!tmp) return hl_fail(err, HL_ERR_NOMEM, "out of memory for adapter scratch");
        hl_free(set->tmp);
        set->tmp = tmp;
        set->tmp_cap = max_rank;
    }
    set->n = n;
    for (int32_t i = 0; i < n; i++) {
        set->adapters[i] = adapters[i];
        set->scales[i] = scales[i];
    }
    hl_projection_hook h = {.apply = n ? adapter_set_apply : NULL, .free_state = adapter_set_free, .state = set};
    hl_context_set_projection_hook(ctx, &h);
    return HL_OK;
}
