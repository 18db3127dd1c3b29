/* create.h: new adapters: which projections (targets and layers) and how the
 * weights start. A is Kaiming-uniform with a = √5, i.e. U(−1/√in, 1/√in)
 * (PEFT's default), or Gaussian N(0, 1/r); B = 0, so a fresh adapter changes
 * nothing. The same seed gives the same bytes. */
#ifndef HL_LORA_CREATE_H
#define HL_LORA_CREATE_H
#include "lora/adapter.h"

typedef enum hl_lora_init { HL_INIT_KAIMING = 0, HL_INIT_GAUSSIAN, HL_INIT_COUNT } hl_lora_init;

#define HL_DEFAULT_TARGETS "q,v,o,gate,up,down,output"

/* "q,v,o" -> bitmask over hl_target. Refuses embeddings/positions with the
 * reason, and unknown names listing the valid ones. */
hl_status hl_parse_targets(const char *spec, uint32_t *mask, hl_error *err);
/* "0-3,7" -> per-layer flags (n_layers entries); NULL/"" = all layers. */
hl_status hl_parse_layers(const char *spec, int32_t n_layers, uint8_t *flags, hl_error *err);

typedef struct hl_adapter_spec {
    const char *name;
    uint32_t targets;     /* bitmask of (1 << hl_target) */
    const uint8_t *layers;/* n_layers flags, or NULL for all */
    int32_t rank;
    float alpha;
    int rslora;
    hl_lora_init init;
    uint64_t seed;
} hl_adapter_spec;

hl_status hl_adapter_create(const hl_model *m, const hl_adapter_spec *spec, hl_adapter **out, hl_error *err);
#endif
