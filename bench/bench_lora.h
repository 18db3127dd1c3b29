/* bench_lora.h: the random adapter the inference benches run with: rank r
 * on q,v,o,gate,up,down, alpha 2r, A as `train` starts it and B drawn
 * (0.01·N(0, 1)), so that it changes the logits as a trained one would. */
#ifndef HL_BENCH_LORA_H
#define HL_BENCH_LORA_H
#include "hyperlora.h"
#include "lora/adapter.h"
#include "util/rng.h"

/* NULL, with err set, on failure. */
static inline hl_adapter *bench_random_adapter(const hl_model *m, int rank, uint64_t seed, hl_error *err) {
    uint32_t targets;
    if (hl_parse_targets("q,v,o,gate,up,down", &targets, err) != HL_OK) return NULL;
    hl_adapter_spec spec = {.name = "bench",
                            .targets = targets,
                            .layers = NULL,
                            .rank = rank,
                            .alpha = (float)(2 * rank),
                            .rslora = 0,
                            .init = HL_INIT_KAIMING,
                            .seed = seed};
    hl_adapter *a = NULL;
    if (hl_adapter_create(m, &spec, &a, err) != HL_OK) return NULL;
    hl_rng rng;
    hl_rng_seed(&rng, seed ^ 0xb0b0b0b0ULL);
    for (int32_t i = 0; i < a->n_weights; i++) {
        hl_lora_weight *w = &a->w[i];
        for (int64_t k = 0; k < w->n_out * w->rank; k++) w->B[k] = 0.01f * hl_rng_normal(&rng);
    }
    return a;
}
#endif
