/* packed.c: the model's projection weights repacked into 16-row panels for
 * inference (the layout of kernels/matmul_packed.c).
 *
 * The copy is made once per model, by the first context that asks for it,
 * under the model's lock, with that context's threads (one matrix per work
 * item). Weights that live in the file mapping are then handed back with
 * MADV_DONTNEED: the mapping is read-only and private, so those pages return
 * to the page cache and are read again from the file if anything (training,
 * merging, an embedding lookup) touches them, and the process does not hold
 * the weights twice. Converted (F16/BF16) and generated weights are heap
 * memory and stay as they are. */
#include "model/model.h"
#include "kernels/kernels.h"
#include "util/alloc.h"
#include "util/checked.h"
#include "util/error.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct {
    const float *src; /* (rows, cols) row-major */
    float *dst;       /* hl_packed_floats(rows, cols) */
    int64_t rows, cols;
} pack_item;

typedef struct {
    pack_item *items;
    const hl_model *m;
} pack_job;

/* Drops the whole pages of [p, p + bytes) from this process when they belong
 * to the file mapping. */
static void release_mapped(const hl_model *m, const void *p, size_t bytes) {
    const uint8_t *b = p, *e = b + bytes;
    if (!m->map_begin || b < m->map_begin || e > m->map_end) return;
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0) return;
    uintptr_t lo = ((uintptr_t)b + (uintptr_t)page - 1) & ~(uintptr_t)(page - 1);
    uintptr_t hi = (uintptr_t)e & ~(uintptr_t)(page - 1);
    if (hi > lo) (void)madvise((void *)lo, hi - lo, MADV_DONTNEED); /* only a hint: failure changes nothing */
}

static void pack_items(void *arg, int64_t begin, int64_t end, int worker) {
    (void)worker;
    const pack_job *j = arg;
    for (int64_t i = begin; i < end; i++) {
        const pack_item *it = &j->items[i];
        hl_pack_weights(it->dst, it->src, it->rows, it->cols);
        release_mapped(j->m, it->src, (size_t)(it->rows * it->cols) * sizeof(float));
    }
}

static hl_status build(const hl_model *m, hl_pool *pool, hl_packed_weights *pw, hl_error *err) {
    const hl_model_config *c = &m->cfg;
    const int64_t C = c->dim, F = c->hidden_dim, D = hl_cfg_head_dim(c), kv = (int64_t)c->n_kv_heads * D;
    const int64_t QD = (int64_t)c->n_heads * D;
    const int64_t L = c->n_layers, n_items = 7 * L + 1;
    pack_item *items = hl_calloc((size_t)n_items, sizeof *items);
    hl_packed_layer *layers = hl_calloc((size_t)L, sizeof *layers);
    if (!items || !layers) {
        hl_free(items);
        hl_free(layers);
        return hl_fail(err, HL_ERR_NOMEM, "out of memory packing the weights");
    }
    int64_t n = 0;
    for (int l = 0; l < L; l++) {
        const hl_layer_weights *w = &m->layers[l];
        items[n++] = (pack_item){w->wq, NULL, QD, C};
        items[n++] = (pack_item){w->wk, NULL, kv, C};
        items[n++] = (pack_item){w->wv, NULL, kv, C};
        items[n++] = (pack_item){w->wo, NULL, C, QD};
        items[n++] = (pack_item){w->w_gate, NULL, F, C};
        items[n++] = (pack_item){w->w_up, NULL, F, C};
        items[n++] = (pack_item){w->w_down, NULL, C, F};
    }
    items[n++] = (pack_item){m->output, NULL, m->n_vocab_base, C};
    /* Offsets in floats, each matrix starting on a 64-byte boundary. */
    size_t total = 0, ok = 1;
    size_t *off = hl_calloc((size_t)n, sizeof *off);
    if (!off) ok = 0;
    for (int64_t i = 0; ok && i < n; i++) {
        off[i] = total;
        size_t f = (size_t)hl_packed_floats(items[i].rows, items[i].cols);
        ok = hl_add_size(total, (f + 15) / 16 * 16, &total);
    }
    size_t bytes = 0;
    float *storage = NULL;
    if (ok && hl_mul_size(total, sizeof(float), &bytes)) storage = hl_aligned_alloc(64, bytes);
    if (!storage) {
        hl_free(off);
        hl_free(items);
        hl_free(layers);
        return hl_fail(err, HL_ERR_NOMEM, "out of memory packing the weights (%zu MiB)", bytes >> 20);
    }
    for (int64_t i = 0; i < n; i++) items[i].dst = storage + off[i];
    pack_job job = {items, m};
    hl_pool_for(pool, n, 1, pack_items, &job);
    for (int l = 0; l < L; l++) {
        pack_item *it = items + 7 * l;
        layers[l] = (hl_packed_layer){it[0].dst, it[1].dst, it[2].dst, it[3].dst, it[4].dst, it[5].dst, it[6].dst};
    }
    pw->output = items[n - 1].dst;
    pw->layers = layers;
    pw->storage = storage;
    hl_free(off);
    hl_free(items);
    return HL_OK;
}

hl_status hl_model_packed(const hl_model *m, hl_pool *pool, const hl_packed_weights **out, hl_error *err) {
    *out = NULL;
    hl_packed_weights *pw = m->packed;
    if (!pw) return hl_fail(err, HL_ERR_INVALID_ARG, "%s: this model has no packed-weight cache", m->path);
    if (m->quantized) /* callers read quantized weights from their blocks (hl_qmatmul) */
        return hl_fail(err, HL_ERR_INVALID_ARG, "%s: a quantized base has no packed f32 copy", m->path);
    pthread_mutex_lock(&pw->lock);
    hl_status s = HL_OK;
    if (!pw->ready && (s = build(m, pool, pw, err)) == HL_OK) pw->ready = 1;
    pthread_mutex_unlock(&pw->lock);
    if (s == HL_OK) *out = pw;
    return s;
}

hl_status hl_model_packed_init(hl_model *m, hl_error *err) {
    m->packed = hl_calloc(1, sizeof *m->packed);
    if (!m->packed) return hl_fail(err, HL_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&m->packed->lock, NULL);
    return HL_OK;
}

void hl_model_packed_free(hl_model *m) {
    if (!m->packed) return;
    pthread_mutex_destroy(&m->packed->lock);
    hl_free(m->packed->storage);
    hl_free(m->packed->layers);
    hl_free(m->packed);
    m->packed = NULL;
}

hl_status hl_weight_layout_resolve(int32_t asked, int prefer_packed, int32_t *out, hl_error *err) {
    if (asked == HL_WEIGHTS_PACKED || asked == HL_WEIGHTS_ROWS) {
        *out = asked;
        return HL_OK;
    }
    if (asked != HL_WEIGHTS_AUTO) return hl_fail(err, HL_ERR_INVALID_ARG, "weights: unknown layout %d", asked);
    const char *env = getenv("HYPERLORA_WEIGHTS");
    if (env && *env) {
        if (!strcmp(env, "packed")) *out = HL_WEIGHTS_PACKED;
        else if (!strcmp(env, "rows")) *out = HL_WEIGHTS_ROWS;
        else return hl_fail(err, HL_ERR_INVALID_ARG, "HYPERLORA_WEIGHTS=%s: expected \"packed\" or \"rows\"", env);
        return HL_OK;
    }
    *out = prefer_packed ? HL_WEIGHTS_PACKED : HL_WEIGHTS_ROWS;
    return HL_OK;
}

const float *hl_packed_weight(const hl_packed_weights *pw, int layer, int target) {
    if (layer < 0) return target == HL_TARGET_OUTPUT ? pw->output : NULL;
    const hl_packed_layer *l = &pw->layers[layer];
    switch (target) {
    case HL_TARGET_Q: return l->wq;
    case HL_TARGET_K: return l->wk;
    case HL_TARGET_V: return l->wv;
    case HL_TARGET_O: return l->wo;
    case HL_TARGET_GATE: return l->w_gate;
    case HL_TARGET_UP: return l->w_up;
    case HL_TARGET_DOWN: return l->w_down;
    default: return NULL;
    }
}
