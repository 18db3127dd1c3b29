/* quantize_model.c: `hyperlora quantize` as a library driver (see
 * quantize_model.h). The blocks come from quant/quantize.c; this file only
 * decides which tensors are quantized, their order and the metadata.
 *
 * Shapes: a 2-D tensor (ne0 = cols, ne1 = rows) becomes rows × cols/32 (or
 * /256) blocks; 1-D tensors (norms) are copied. */
#include "model/quantize_model.h"
#include "io/gguf.h"
#include "quant/quantize.h"
#include "util/alloc.h"
#include "util/checked.h"
#include "util/error.h"
#include "util/escape.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* llama.cpp's llama_ftype for an all-<type> file ("Q4_K" means its Q4_K_M number). */
static uint32_t file_type_of(uint32_t type) {
    switch (type) {
    case HL_TYPE_Q4_0: return 2;
    case HL_TYPE_Q4_1: return 3;
    case HL_TYPE_Q8_0: return 7;
    case HL_TYPE_Q5_0: return 8;
    case HL_TYPE_Q5_1: return 9;
    case HL_TYPE_Q2_K: return 10;
    case HL_TYPE_Q3_K: return 12;
    case HL_TYPE_Q4_K: return 15;
    case HL_TYPE_Q5_K: return 17;
    case HL_TYPE_Q6_K: return 18;
    default: return 0;
    }
}

int32_t hl_quantize_type_by_name(const char *s) {
    static const uint32_t cand[] = {HL_TYPE_Q8_0, HL_TYPE_Q4_0, HL_TYPE_Q4_1, HL_TYPE_Q5_0, HL_TYPE_Q5_1,
                                    HL_TYPE_Q2_K, HL_TYPE_Q3_K, HL_TYPE_Q4_K, HL_TYPE_Q5_K, HL_TYPE_Q6_K};
    for (size_t i = 0; i < sizeof cand / sizeof cand[0]; i++) {
        const char *n = hl_type_traits_of(cand[i])->name;
        size_t k = 0;
        while (n[k] && s[k] && tolower((unsigned char)n[k]) == tolower((unsigned char)s[k])) k++;
        if (!n[k] && !s[k] && hl_quantize_supported(cand[i])) return (int32_t)cand[i];
    }
    return -1;
}

/* Sort key: the layer of "blk.N.…" (-1 for any other name), then the name's bytes. */
typedef struct order { int64_t layer; const hl_gguf_tensor *t; } order;

static int64_t layer_of(const hl_gguf_tensor *t) {
    const char *p = t->name.data;
    uint64_t n = t->name.len;
    if (n < 5 || memcmp(p, "blk.", 4) != 0 || !isdigit((unsigned char)p[4])) return -1;
    int64_t v = 0;
    for (uint64_t i = 4; i < n && isdigit((unsigned char)p[i]); i++) {
        if (v > 1000000000) return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

static int cmp_order(const void *a, const void *b) {
    const order *x = a, *y = b;
    if (x->layer != y->layer) return x->layer < y->layer ? -1 : 1;
    uint64_t n = x->t->name.len < y->t->name.len ? x->t->name.len : y->t->name.len;
    int c = n ? memcmp(x->t->name.data, y->t->name.data, (size_t)n) : 0;
    if (c) return c;
    return x->t->name.len < y->t->name.len ? -1 : x->t->name.len > y->t->name.len;
}

/* The quantized blocks of 2-D tensor t in a new buffer. */
static hl_status quantize_tensor(const char *path, const hl_gguf_tensor *t, uint32_t type, void **out, hl_error *err) {
    char shown[HL_ESCAPE_NAME];
    const char *nm = hl_escape(t->name.data, (size_t)t->name.len, shown, sizeof shown);
    const hl_type_traits *src = hl_type_traits_of(t->type), *dst = hl_type_traits_of(type);
    *out = NULL;
    if (src->quantized)
        return hl_fail(err, HL_ERR_UNSUPPORTED, "%s: tensor %s is already %s; quantize from an f32/f16/bf16 file",
                       path, nm, src->name);
    uint64_t row_bytes, total;
    if (!hl_type_row_bytes(type, t->ne[0], &row_bytes))
        return hl_fail(err, HL_ERR_INVALID_ARG, "%s: tensor %s: rows of %lld elements are not whole %s blocks of %d",
                       path, nm, (long long)t->ne[0], dst->name, dst->block_elems);
    if (!hl_mul_u64(row_bytes, (uint64_t)t->ne[1], &total) || total > SIZE_MAX)
        return hl_fail(err, HL_ERR_LIMIT, "%s: tensor %s: quantized size overflows", path, nm);
    float *row = hl_malloc_array((size_t)t->ne[0], sizeof(float));
    uint8_t *q = hl_malloc((size_t)total ? (size_t)total : 1);
    if (!row || !q) {
        hl_free(row);
        hl_free(q);
        return hl_fail(err, HL_ERR_NOMEM, "%s: out of memory quantizing %s", path, nm);
    }
    const uint64_t src_row = (uint64_t)t->ne[0] * (uint64_t)src->block_bytes; /* f32/f16/bf16: one element per block */
    const int64_t nb = t->ne[0] / dst->block_elems;
    for (int64_t r = 0; r < t->ne[1]; r++) {
        hl_dequantize(t->type, (const uint8_t *)t->data + (uint64_t)r * src_row, row, t->ne[0]);
        for (int64_t k = 0; k < t->ne[0]; k++)
            if (!isfinite(row[k])) {
                hl_free(row);
                hl_free(q);
                return hl_fail(err, HL_ERR_FORMAT, "%s: tensor %s: element %lld of row %lld is not finite", path, nm,
                               (long long)k, (long long)r);
            }
        hl_quantize_blocks(type, row, q + (uint64_t)r * row_bytes, nb);
    }
    hl_free(row);
    *out = q;
    return HL_OK;
}

hl_status hl_model_quantize_file(const char *in_path, const char *out_path, uint32_t type, hl_error *err) {
    if (!hl_quantize_supported(type))
        return hl_fail(err, HL_ERR_UNSUPPORTED, "quantize: type %s cannot be written", hl_ggml_type_name(type));
    hl_gguf *g = NULL;
    hl_status s = hl_gguf_open(in_path, &g, err);
    if (s != HL_OK) return s;
    hl_gguf_str gt;
    if (hl_gguf_find_key(g, "general.type") >= 0 && hl_gguf_get_str(g, "general.type", &gt, NULL) == HL_OK &&
        gt.len == 7 && !memcmp(gt.data, "adapter", 7)) {
        hl_gguf_free(g);
        return hl_fail(err, HL_ERR_INVALID_ARG, "%s: this is an adapter; quantize takes a base model", in_path);
    }
    int64_t nt = hl_gguf_n_tensors(g);
    order *ord = hl_malloc_array(nt ? (size_t)nt : 1, sizeof *ord);
    void **bufs = hl_calloc(nt ? (size_t)nt : 1, sizeof *bufs);
    hl_gguf_writer *w = hl_gguf_writer_init();
    if (!ord || !bufs || !w) s = hl_fail(err, HL_ERR_NOMEM, "%s: out of memory", out_path);
    for (int64_t i = 0; s == HL_OK && i < hl_gguf_n_kv(g); i++)
        if ((s = hl_gguf_writer_copy_kv(w, g, i)) != HL_OK) hl_fail(err, s, "%s: cannot copy metadata", out_path);
    /* llama-quantize sets these last, so they move to the end */
    const char *tail_keys[2] = {"general.quantization_version", "general.file_type"};
    const uint32_t tail_vals[2] = {2, file_type_of(type)};
    for (int k = 0; s == HL_OK && k < 2; k++)
        if ((s = hl_gguf_writer_remove_key(w, tail_keys[k])) != HL_OK ||
            (s = hl_gguf_writer_set_u32(w, tail_keys[k], tail_vals[k])) != HL_OK)
            hl_fail(err, s, "%s: cannot set %s", out_path, tail_keys[k]);
    for (int64_t i = 0; s == HL_OK && i < nt; i++) {
        ord[i].t = hl_gguf_tensor_at(g, i);
        ord[i].layer = layer_of(ord[i].t);
    }
    if (s == HL_OK && nt > 1) qsort(ord, (size_t)nt, sizeof *ord, cmp_order);
    for (int64_t i = 0; s == HL_OK && i < nt; i++) {
        const hl_gguf_tensor *t = ord[i].t;
        char *name = hl_strndup(t->name.data, (size_t)t->name.len);
        if (!name) {
            s = hl_fail(err, HL_ERR_NOMEM, "%s: out of memory", out_path);
            break;
        }
        if (strlen(name) != t->name.len) { /* a NUL inside the name: the writer takes C strings */
            hl_free(name);
            s = hl_fail(err, HL_ERR_FORMAT, "%s: tensor %lld has a NUL byte in its name", in_path, (long long)i);
            break;
        }
        if (t->n_dims == 2) {
            if ((s = quantize_tensor(in_path, t, type, &bufs[i], err)) == HL_OK)
                s = hl_gguf_writer_add_tensor(w, name, type, 2, t->ne, bufs[i], err);
        } else {
            s = hl_gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, t->data, err);
        }
        hl_free(name);
    }
    if (s == HL_OK) s = hl_gguf_writer_write_file(w, out_path, err);
    for (int64_t i = 0; bufs && i < nt; i++) hl_free(bufs[i]);
    hl_free(bufs);
    hl_free(ord);
    hl_gguf_writer_free(w);
    hl_gguf_free(g);
    return s;
}
