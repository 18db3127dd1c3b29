/* apply.h: running adapters unmerged inside the forward pass:
 * out += Σᵢ uᵢ·sᵢ·Bᵢ(Aᵢ·x) for every adapter i active on (layer, target).
 * hl_context_set_adapters (hyperlora.h) installs the adapter set as the
 * context's projection hook (model/context.h). */
#ifndef HL_LORA_APPLY_H
#define HL_LORA_APPLY_H
#include "lora/adapter.h"
#include "model/context.h"

#define HL_MAX_ACTIVE_ADAPTERS 64
#endif
