/* adapter.c: creating, filling and indexing adapters; shape checks against
 * the base model. */
#include "lora/adapter.h"
#include "util/alloc.h"
#include "util/error.h"

#include <math.h>
#include <string.h>

float hl_lora_weight_scale(const hl_adapter *a, const hl_lora_weight *w) {
    if (w->rank <= 0) return 0.0f;
    return a->rslora ? w->alpha / sqrtf((float)w->rank) : w->alpha / (float)w->rank;
}

static int32_t slot(const hl_adapter *a, int layer, int target) {
    int32_t l = layer < 0 ? a->n_layers : layer;
    return l * HL_TARGET_COUNT + target;
}

const hl_lora_weight *hl_adapter_find(const hl_adapter *a, int layer, int target) {
    if (!a->lookup || layer >= a->n_layers || layer < -1 || target < 0 || target >= HL_TARGET_COUNT) return NULL;
    int32_t i = a->lookup[slot(a, layer, target)];
    return i < 0 ? NULL : &a->w[i];
}

void hl_adapter_free(hl_adapter *a) {
    if (!a) return;
    for (int32_t i = 0; i < a->n_weights; i++) {
        hl_free(a->w[i].A);
        hl_free(a->w[i].B);
    }
    hl_free(a->w);
    hl_free(a->lookup);
    hl_free(a->name);
    hl_free(a->arch);
    hl_free(a->lexicon);
    hl_free(a);
}

hl_status hl_adapter_new(const hl_model *m, const char *name, float alpha, int rslora, hl_adapter **out,
                         hl_error *err) {
    *out = NULL;
    hl_adapter *a = hl_calloc(1, sizeof *a);
    if (!a) return hl_fail(err, HL_ERR_NOMEM, "out of memory");
    a->name = hl_strdup(name ? name : "adapter");
    a->arch = hl_strdup(m ? hl_arch_name(m->cfg.arch) : "llama"); /* llama.cpp requires the base's */
    if (!a->name || !a->arch) {
        hl_adapter_free(a);
        return hl_fail(err, HL_ERR_NOMEM, "out of memory");
    }
    a->alpha = alpha;
    a->rslora = rslora;
    a->n_layers = m->cfg.n_layers;
    a->base_fingerprint = m->fingerprint;
    a->has_fingerprint = 1;
    *out = a;
    return HL_OK;
}

hl_status hl_adapter_add(hl_adapter *a, const hl_model *m, int layer, int target, int rank, float alpha,
                         const float *A, const float *B, hl_error *err) {
    if (target < 0 || target >= HL_TARGET_COUNT)
        return hl_fail(err, HL_ERR_INVALID_ARG, "adapter %s: unknown target %d", a->name, target);
    if (target == HL_TARGET_OUTPUT) layer = -1;
    else if (layer < 0 || layer >= m->cfg.n_layers)
        return hl_fail(err, HL_ERR_MISMATCH, "adapter %s: layer %d does not exist (the base has %d layers)", a->name,
                       layer, m->cfg.n_layers);
    if (rank <= 0 || rank > 65536)
        return hl_fail(err, HL_ERR_INVALID_ARG, "adapter %s: rank %d out of range", a->name, rank);
    if (!isfinite(alpha)) return hl_fail(err, HL_ERR_INVALID_ARG, "adapter %s: alpha is not finite", a->name);
    if (layer >= a->n_layers)
        return hl_fail(err, HL_ERR_MISMATCH, "adapter %s: layer %d does not exist (the adapter has %d layers)",
                       a->name, layer, a->n_layers);
    if (!a->lookup || a->n_indexed != a->n_weights) {
        hl_status s = hl_adapter_index(a, err);
        if (s != HL_OK) return s;
    }
    if (a->lookup[slot(a, layer, target)] >= 0)
        return hl_fail(err, HL_ERR_FORMAT, "adapter %s: two weights for layer %d target %s", a->name, layer,
                       hl_target_name(target));
    int64_t rows, cols;
    if (!hl_model_weight_shape(m, layer, target, &rows, &cols))
        return hl_fail(err, HL_ERR_MISMATCH, "adapter %s: the base has no %s projection", a->name,
                       hl_target_name(target));
    if (a->n_weights == a->cap_weights) {
        int32_t cap = a->cap_weights ? a->cap_weights * 2 : 16;
        hl_lora_weight *nw = hl_realloc(a->w, (size_t)cap * sizeof *nw);
        if (!nw) return hl_fail(err, HL_ERR_NOMEM, "out of memory");
        a->w = nw;
        a->cap_weights = cap;
    }
    hl_lora_weight w = {.layer = layer, .target = target, .rank = rank, .n_in = cols, .n_out = rows, .alpha = alpha};
    w.A = hl_calloc((size_t)rank * (size_t)cols, sizeof(float));
    w.B = hl_calloc((size_t)rows * (size_t)rank, sizeof(float));
    if (!w.A || !w.B) {
        hl_free(w.A);
        hl_free(w.B);
        return hl_fail(err, HL_ERR_NOMEM, "out of memory for a rank-%d adapter weight", rank);
    }
    if (A) memcpy(w.A, A, (size_t)rank * (size_t)cols * sizeof(float));
    if (B) memcpy(w.B, B, (size_t)rows * (size_t)rank * sizeof(float));
    a->lookup[slot(a, layer, target)] = a->n_weights;
    a->w[a->n_weights++] = w;
    a->n_indexed = a->n_weights;
    return HL_OK;
}

hl_status hl_adapter_index(hl_adapter *a, hl_error *err) {
    size_t n = (size_t)(a->n_layers + 1) * HL_TARGET_COUNT;
    int32_t *lookup = hl_malloc_array(n, sizeof *lookup);
    if (!lookup) return hl_fail(err, HL_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) lookup[i] = -1;
    hl_free(a->lookup);
    a->lookup = lookup;
    for (int32_t i = 0; i < a->n_weights; i++) lookup[slot(a, a->w[i].layer, a->w[i].target)] = i;
    a->n_indexed = a->n_weights;
    return HL_OK;
}
