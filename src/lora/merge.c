/* merge.c: W + Σ s·B·A into a new GGUF. The delta of each adapter is
 * accumulated in double per element and rounded once, so the merged weights
 * sit within an ulp or two of the exact sum. */
#include "lora/merge.h"
#include "kernels/qweight_rows.h"
#include "io/gguf.h"
#include "lora/adapter_io.h"
#include "util/alloc.h"
#include "util/error.h"

#include <stdio.h>
#include <string.h>

hl_status hl_merge_weight(const hl_model *m, const hl_adapter *const *adapters, const float *scales, int32_t n,
                          int layer, int target, float *out, hl_error *err) {
    int64_t rows, cols;
    if (!hl_model_weight_shape(m, layer, target, &rows, &cols))
        return hl_fail(err, HL_ERR_INVALID_ARG, "merge: no such weight (layer %d, %s)", layer, hl_target_name(target));
    const float *W = hl_model_weight(m, layer, target, &rows, &cols);
    const hl_qweight *q = hl_model_qweight(m, layer, target);
    if (W) memcpy(out, W, (size_t)(rows * cols) * sizeof(float));
    else for (int64_t o = 0; o < rows; o++) hl_qweight_row(q, o, out + o * cols); /* a quantized base merges into f32 */
    for (int32_t i = 0; i < n; i++) {
        const hl_lora_weight *w = hl_adapter_find(adapters[i], layer, target);
        if (!w || scales[i] == 0.0f) continue;
        if (w->n_in != cols || w->n_out != rows)
            return hl_fail(err, HL_ERR_MISMATCH, "merge: adapter %s does not fit %s of layer %d", adapters[i]->name,
                           hl_target_name(target), layer);
        double s = (double)scales[i] * hl_lora_weight_scale(adapters[i], w);
        for (int64_t o = 0; o < rows; o++)
            for (int64_t k = 0; k < cols; k++) {
                double d = 0;
                for (int32_t r = 0; r < w->rank; r++) d += (double)w->B[o * w->rank + r] * w->A[(int64_t)r * cols + k];
                out[o * cols + k] = (float)(out[o * cols + k] + s * d);
            }
    }
    return HL_OK;
}

static int adapted(const hl_adapter *const *adapters, const float *scales, int32_t n, int layer, int target) {
    for (int32_t i = 0; i < n; i++)
        if (scales[i] != 0.0f && hl_adapter_find(adapters[i], layer, target)) return 1;
    return 0;
}

hl_status hl_merge_to_gguf(const hl_model *m, const hl_adapter *const *adapters, const float *scales, int32_t n,
                           const char *path, hl_error *err) {
    const hl_model_config *c = &m->cfg;
    if (m->n_extra)
        return hl_fail(err, HL_ERR_INVALID_ARG, "%s: merge the base model, not its hyperlexeme view", path);
    int32_t slots = (c->n_layers + 1) * HL_TARGET_COUNT;
    float **merged = hl_calloc((size_t)slots, sizeof *merged);
    if (!merged) return hl_fail(err, HL_ERR_NOMEM, "out of memory");
    hl_status s = HL_OK;
    for (int l = -1; l < c->n_layers && s == HL_OK; l++)
        for (int t = 0; t < HL_TARGET_COUNT && s == HL_OK; t++) {
            if ((l < 0) != (t == HL_TARGET_OUTPUT) || !adapted(adapters, scales, n, l, t)) continue;
            int64_t rows, cols;
            hl_model_weight(m, l, t, &rows, &cols);
            int32_t k = (l < 0 ? c->n_layers : l) * HL_TARGET_COUNT + t;
            merged[k] = hl_malloc_array((size_t)(rows * cols), sizeof(float));
            if (!merged[k]) s = hl_fail(err, HL_ERR_NOMEM, "out of memory merging");
            else s = hl_merge_weight(m, adapters, scales, n, l, t, merged[k], err);
        }
    hl_gguf_writer *w = NULL;
    if (s == HL_OK && m->gguf) {
        w = hl_gguf_writer_init();
        if (!w) s = hl_fail(err, HL_ERR_NOMEM, "out of memory");
        for (int64_t i = 0; s == HL_OK && i < hl_gguf_n_kv(m->gguf); i++) s = hl_gguf_writer_copy_kv(w, m->gguf, i);
        if (s != HL_OK && err && !err->msg[0]) hl_fail(err, s, "%s: cannot copy metadata", path);
        for (int64_t i = 0; s == HL_OK && i < hl_gguf_n_tensors(m->gguf); i++) {
            const hl_gguf_tensor *t = hl_gguf_tensor_at(m->gguf, i);
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)(t->name.len > 255 ? 255 : t->name.len), t->name.data);
            int layer, target;
            const float *data = NULL;
            if (hl_adapter_parse_base_name(name, strlen(name), &layer, &target)) {
                int32_t k = (layer < 0 ? c->n_layers : layer) * HL_TARGET_COUNT + target;
                data = merged[k];
            }
            if (data) s = hl_gguf_writer_add_tensor(w, name, HL_TYPE_F32, t->n_dims, t->ne, data, err);
            else s = hl_gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, t->data, err);
        }
        /* A tied base gets its own output.weight: the adapter changes the LM
         * head only, never the embedding lookup. */
        float *out = merged[c->n_layers * HL_TARGET_COUNT + HL_TARGET_OUTPUT];
        if (s == HL_OK && out && c->tied_output) {
            int64_t ne[2] = {c->dim, m->n_vocab_base};
            s = hl_gguf_writer_add_tensor(w, "output.weight", HL_TYPE_F32, 2, ne, out, err);
        }
        if (s == HL_OK) s = hl_gguf_writer_write_file(w, path, err);
        hl_gguf_writer_free(w);
    } else if (s == HL_OK) {
        /* A llama2.c base: a view with the merged weights in place of the base's, saved. */
        hl_model_view_params vp = {.weights = (const float *const *)merged};
        hl_model *view = NULL;
        s = hl_model_view_init(m, &vp, &view, err);
        if (s == HL_OK) s = hl_model_save_gguf(view, path, err);
        hl_model_free(view);
    }
    for (int32_t k = 0; k < slots; k++) hl_free(merged[k]);
    hl_free(merged);
    return s;
}
