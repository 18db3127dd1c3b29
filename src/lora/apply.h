/* apply.h: running adapters unmerged inside the forward pass:
 * out += Σᵢ uᵢ·sᵢ·Bᵢ(Aᵢ·x) for every adapter i active on (layer, target). */
#ifndef HL_LORA_APPLY_H
#define HL_LORA_APPLY_H
#include "lora/adapter.h"
#include "model/context.h"

#define HL_MAX_ACTIVE_ADAPTERS 64

struct hl_adapter_set {
    int32_t n;
    const hl_adapter *adapters[HL_MAX_ACTIVE_ADAPTERS];
    float scales[HL_MAX_ACTIVE_ADAPTERS]; /* user scales (llama.cpp --lora-scaled) */
};

/* x (T, in), out (T, out) with row stride ldo. */
hl_status hl_lora_apply(hl_context *ctx, int layer, int target, const float *x, float *out, int64_t ldo, int64_t T,
                        hl_error *err);
#endif
