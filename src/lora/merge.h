/* merge.h: folding adapters into the base: W' = W + Σᵢ uᵢ·sᵢ·Bᵢ·Aᵢ, written
 * as a new GGUF model (the base file is never modified). */
#ifndef HL_LORA_MERGE_H
#define HL_LORA_MERGE_H
#include "lora/adapter.h"

/* out (rows, cols) = W + Σ scale·B·A for (layer, target); W from m. */
hl_status hl_merge_weight(const hl_model *m, const hl_adapter *const *adapters, const float *scales, int32_t n,
                          int layer, int target, float *out, hl_error *err);
/* hl_merge_to_gguf, which writes the merged model, is public: include/hyperlora.h. */
#endif
