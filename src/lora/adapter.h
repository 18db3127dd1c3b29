/* adapter.h: the LoRA adapter object: a set of (layer, target, A, B) with
 * alpha, scaling mode and the identity of the base it was made for.
 *
 *   W' = W + s·B·A,  A (r, in), B (out, r),  s = alpha/r  (rsLoRA: alpha/√r)
 *
 * Per-tensor rank and alpha are allowed (PEFT's rank_pattern/alpha_pattern).
 * Token embeddings are never adaptable: embeddings carry the frozen scene
 * vectors of hyperlexemes. */
#ifndef HL_LORA_ADAPTER_H
#define HL_LORA_ADAPTER_H
#include "hyperlora.h"
#include "model/model.h"

typedef struct hl_lora_weight {
    int32_t layer;   /* 0..L-1, or -1 for the output projection */
    int32_t target;  /* hl_target */
    int32_t rank;    /* r */
    int64_t n_in, n_out;
    float alpha;     /* this tensor's alpha */
    float *A;        /* (r, n_in) */
    float *B;        /* (n_out, r) */
} hl_lora_weight;

struct hl_adapter {
    char *name;
    char *arch;               /* "llama" */
    uint64_t base_fingerprint;
    int has_fingerprint;
    float alpha;              /* default alpha */
    int rslora;               /* scale = alpha/√r instead of alpha/r */
    int32_t n_layers;         /* of the base it fits */
    int32_t n_weights, cap_weights;
    hl_lora_weight *w;
    int32_t *lookup;          /* [(n_layers + 1) · HL_TARGET_COUNT] -> index into w, or -1 */
    int32_t n_indexed;        /* n_weights when lookup was last brought up to date */
    char *lexicon;            /* hyperlexeme lexicon (JSONL) this decoder was trained with, or NULL */
};

/* The effective scale of one weight (without the user scale). */
float hl_lora_weight_scale(const hl_adapter *a, const hl_lora_weight *w);
const hl_lora_weight *hl_adapter_find(const hl_adapter *a, int layer, int target);
/* Creates an empty adapter shaped for model m (no weights yet). */
hl_status hl_adapter_new(const hl_model *m, const char *name, float alpha, int rslora, hl_adapter **out,
                         hl_error *err);
/* Adds a weight (A, B copied when non-NULL, else zero-filled). Checks shapes
 * against m, and that (layer, target) has no weight yet (through lookup, kept
 * up to date as weights are added, so n adds take O(n)). */
hl_status hl_adapter_add(hl_adapter *a, const hl_model *m, int layer, int target, int rank, float alpha,
                         const float *A, const float *B, hl_error *err);
/* Rebuilds the lookup table (after adds). */
hl_status hl_adapter_index(hl_adapter *a, hl_error *err);
#endif
