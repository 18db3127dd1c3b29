/* create.c: target/layer selection and seeded initialisation of new adapters. */
#include "lora/create.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/rng.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *embedding_names[] = {"embd", "token_embd", "embed", "embed_tokens", "tok_embeddings", "wte",
                                        "embedding", "embeddings", "pos", "wpe", "position", "rope", "rope_freqs"};

hl_status hl_parse_targets(const char *spec, uint32_t *mask, hl_error *err) {
    *mask = 0;
    if (!spec || !*spec) spec = HL_DEFAULT_TARGETS;
    const char *p = spec;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char name[32];
        if (n == 0 || n >= sizeof name)
            return hl_fail(err, HL_ERR_INVALID_ARG, "targets \"%s\": empty or overlong name", spec);
        memcpy(name, p, n);
        name[n] = 0;
        for (size_t i = 0; i < sizeof embedding_names / sizeof embedding_names[0]; i++)
            if (!strcmp(name, embedding_names[i]))
                return hl_fail(err, HL_ERR_UNSUPPORTED,
                               "target \"%s\": token embeddings and positions are never adapted: they carry the "
                               "frozen scene vectors of hyperlexemes",
                               name);
        int found = -1;
        for (int t = 0; t < HL_TARGET_COUNT; t++)
            if (!strcmp(name, hl_target_name(t))) found = t;
        if (found < 0)
            return hl_fail(err, HL_ERR_INVALID_ARG, "unknown target \"%s\" (valid: q k v o gate up down output)", name);
        *mask |= 1u << found;
        p += n;
        if (*p == ',') p++;
    }
    return HL_OK;
}

hl_status hl_parse_layers(const char *spec, int32_t n_layers, uint8_t *flags, hl_error *err) {
    memset(flags, spec && *spec ? 0 : 1, (size_t)n_layers);
    if (!spec || !*spec) return HL_OK;
    const char *p = spec;
    while (*p) {
        char *end;
        if (!isdigit((unsigned char)*p)) return hl_fail(err, HL_ERR_INVALID_ARG, "layers \"%s\": expected a number at \"%s\"", spec, p);
        long a = strtol(p, &end, 10), b = a;
        p = end;
        if (*p == '-') {
            p++;
            if (!isdigit((unsigned char)*p)) return hl_fail(err, HL_ERR_INVALID_ARG, "layers \"%s\": bad range", spec);
            b = strtol(p, &end, 10);
            p = end;
        }
        if (a > b)
            return hl_fail(err, HL_ERR_INVALID_ARG, "layers \"%s\": the range %ld-%ld is reversed (write %ld-%ld)", spec,
                           a, b, b, a);
        if (a < 0 || b >= n_layers)
            return hl_fail(err, HL_ERR_INVALID_ARG, "layers \"%s\": %ld-%ld is outside 0-%d", spec, a, b, n_layers - 1);
        for (long l = a; l <= b; l++) flags[l] = 1;
        if (*p == ',') p++;
        else if (*p) return hl_fail(err, HL_ERR_INVALID_ARG, "layers \"%s\": unexpected \"%c\"", spec, *p);
    }
    return HL_OK;
}

/* "q of layer 3", or "output" (layer -1). */
static void weight_place(int layer, int target, char *buf, size_t cap) {
    if (layer < 0) snprintf(buf, cap, "output");
    else snprintf(buf, cap, "%s of layer %d", hl_target_name((hl_target)target), layer);
}

hl_status hl_adapter_create(const hl_model *m, const hl_adapter_spec *spec, hl_adapter **out, hl_error *err) {
    *out = NULL;
    if (spec->rank < 1 || spec->rank > 65536)
        return hl_fail(err, HL_ERR_INVALID_ARG, "rank must be in 1..65536 (got %d)", spec->rank);
    if (!isfinite(spec->alpha)) return hl_fail(err, HL_ERR_INVALID_ARG, "alpha must be finite");
    if (!spec->targets) return hl_fail(err, HL_ERR_INVALID_ARG, "no targets selected");
    if (spec->init < 0 || spec->init >= HL_INIT_COUNT) return hl_fail(err, HL_ERR_INVALID_ARG, "unknown init");
    hl_adapter *a;
    hl_status s = hl_adapter_new(m, spec->name, spec->alpha, spec->rslora, &a, err);
    if (s != HL_OK) return s;
    hl_rng rng;
    hl_rng_seed(&rng, spec->seed);
    /* Layer-major, target order, output last: the order the weights are drawn in. */
    for (int l = 0; l <= m->cfg.n_layers && s == HL_OK; l++)
        for (int t = 0; t < HL_TARGET_COUNT && s == HL_OK; t++) {
            int is_out = t == HL_TARGET_OUTPUT;
            if ((l == m->cfg.n_layers) != is_out || !(spec->targets & (1u << t))) continue;
            if (!is_out && spec->layers && !spec->layers[l]) continue;
            /* A rank above min(in, out) adds parameters and no expressiveness: refuse it. */
            int64_t rows = 0, cols = 0;
            if (hl_model_weight_shape(m, is_out ? -1 : l, t, &rows, &cols) && spec->rank > (rows < cols ? rows : cols)) {
                char where[32];
                weight_place(is_out ? -1 : l, t, where, sizeof where);
                s = hl_fail(err, HL_ERR_INVALID_ARG,
                            "rank %d is larger than the target %s allows: its weight maps %lld -> %lld, so the rank "
                            "can be at most %lld", spec->rank, where, (long long)cols, (long long)rows,
                            (long long)(rows < cols ? rows : cols));
                break;
            }
            s = hl_adapter_add(a, m, is_out ? -1 : l, t, spec->rank, spec->alpha, NULL, NULL, err);
            if (s != HL_OK) break;
            hl_lora_weight *w = &a->w[a->n_weights - 1];
            int64_t n = (int64_t)w->rank * w->n_in;
            if (spec->init == HL_INIT_KAIMING) {
                float bound = 1.0f / sqrtf((float)w->n_in);
                for (int64_t e = 0; e < n; e++) w->A[e] = bound * (2.0f * hl_rng_uniform(&rng) - 1.0f);
            } else {
                float std = 1.0f / (float)w->rank;
                for (int64_t e = 0; e < n; e++) w->A[e] = std * hl_rng_normal(&rng);
            }
        }
    if (s == HL_OK && a->n_weights == 0) s = hl_fail(err, HL_ERR_INVALID_ARG, "the target/layer selection is empty");
    if (s == HL_OK) s = hl_adapter_index(a, err);
    if (s != HL_OK) {
        hl_adapter_free(a);
        return s;
    }
    *out = a;
    return HL_OK;
}

hl_status hl_adapter_start_from(hl_adapter *dst, const hl_adapter *src, int32_t *n_fresh, hl_error *err) {
    if (n_fresh) *n_fresh = 0;
    if (dst->n_layers != src->n_layers)
        return hl_fail(err, HL_ERR_MISMATCH, "it was made for a base with %d layers, this one has %d", src->n_layers,
                       dst->n_layers);
    char at[48];
    /* Refuse before writing anything, so a failed start leaves dst as it was. */
    for (int32_t i = 0; i < src->n_weights; i++) {
        const hl_lora_weight *sw = &src->w[i], *dw = hl_adapter_find(dst, sw->layer, sw->target);
        weight_place(sw->layer, sw->target, at, sizeof at);
        if (!dw)
            return hl_fail(err, HL_ERR_MISMATCH,
                           "it adapts %s, which the new adapter does not, so its training would be lost", at);
        if (dw->rank != sw->rank)
            return hl_fail(err, HL_ERR_MISMATCH, "%s has rank %d there and %d here", at, sw->rank, dw->rank);
        if (dw->n_in != sw->n_in || dw->n_out != sw->n_out)
            return hl_fail(err, HL_ERR_MISMATCH, "%s is %lld -> %lld there and %lld -> %lld here", at,
                           (long long)sw->n_in, (long long)sw->n_out, (long long)dw->n_in, (long long)dw->n_out);
        float ss = hl_lora_weight_scale(src, sw), ds = hl_lora_weight_scale(dst, dw);
        if (!isfinite(ss) || !(ds != 0.0f) || !isfinite(ds))
            return hl_fail(err, HL_ERR_MISMATCH, "%s scales by %g there and %g here; both must be finite and the new "
                           "one non-zero", at, (double)ss, (double)ds);
    }
    for (int32_t i = 0; i < src->n_weights; i++) {
        const hl_lora_weight *sw = &src->w[i];
        hl_lora_weight *dw = (hl_lora_weight *)hl_adapter_find(dst, sw->layer, sw->target);
        memcpy(dw->A, sw->A, sizeof(float) * (size_t)sw->rank * (size_t)sw->n_in);
        /* The product s·B·A is what the file means; under another scale B is
         * rescaled to keep it (bit-exact when the scales are equal or differ by
         * a power of two). */
        double ratio = (double)hl_lora_weight_scale(src, sw) / (double)hl_lora_weight_scale(dst, dw);
        size_t nb = (size_t)sw->n_out * (size_t)sw->rank;
        if (ratio == 1.0) memcpy(dw->B, sw->B, sizeof(float) * nb);
        else
            for (size_t k = 0; k < nb; k++) dw->B[k] = (float)((double)sw->B[k] * ratio);
    }
    if (n_fresh) *n_fresh = dst->n_weights - src->n_weights;
    return HL_OK;
}
