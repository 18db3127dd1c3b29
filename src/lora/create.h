/* create.h: new adapters: which projections (targets and layers) and how the
 * weights start. A is Kaiming-uniform with a = √5, i.e. U(−1/√in, 1/√in)
 * (PEFT's default), or Gaussian N(0, 1/r); B = 0, so a fresh adapter changes
 * nothing. The same seed gives the same bytes. */
#ifndef HL_LORA_CREATE_H
#define HL_LORA_CREATE_H
#include "lora/adapter.h"

/* hl_lora_init, hl_adapter_spec, hl_parse_targets, hl_parse_layers and
 * hl_adapter_create are public: include/hyperlora.h. */
#endif
