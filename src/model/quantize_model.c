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
#include <stdio.h>
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

static int name_is(const char *s, const char *n);

int32_t hl_quantize_type_by_name(const char *s) {
    static const uint32_t cand[] = {HL_TYPE_Q8_0, HL_TYPE_Q4_0, HL_TYPE_Q4_1, HL_TYPE_Q5_0, HL_TYPE_Q5_1,
                                    HL_TYPE_Q2_K, HL_TYPE_Q3_K, HL_TYPE_Q4_K, HL_TYPE_Q5_K, HL_TYPE_Q6_K};
    for (size_t i = 0; i < sizeof cand / sizeof cand[0]; i++)
        if (name_is(s, hl_type_traits_of(cand[i])->name) && hl_quantize_supported(cand[i])) return (int32_t)cand[i];
    return -1;
}

/* 1 when the (not NUL-terminated) file name contains the C string needle. */
static int str_contains(hl_gguf_str s, const char *needle) {
    size_t n = strlen(needle);
    for (uint64_t i = 0; n <= s.len && i + n <= s.len; i++)
        if (!memcmp(s.data + i, needle, n)) return 1;
    return 0;
}

static int name_is(const char *s, const char *n) {
    size_t k = 0;
    while (n[k] && s[k] && tolower((unsigned char)n[k]) == tolower((unsigned char)s[k])) k++;
    return !n[k] && !s[k];
}

/* Each mix: its name, base type and llama.cpp's llama_ftype number. */
static const struct { const char *name; uint32_t base; uint32_t file_type; } mixes[HL_QUANT_MIX_COUNT] = {
    [HL_QUANT_Q3_K_M] = {"q3_K_M", HL_TYPE_Q3_K, 12}, [HL_QUANT_Q4_K_M] = {"q4_K_M", HL_TYPE_Q4_K, 15},
    [HL_QUANT_Q5_K_M] = {"q5_K_M", HL_TYPE_Q5_K, 17}, [HL_QUANT_Q3_K_S] = {"q3_K_S", HL_TYPE_Q3_K, 11}, [HL_QUANT_Q3_K_L] = {"q3_K_L", HL_TYPE_Q3_K, 13},
    [HL_QUANT_Q4_K_S] = {"q4_K_S", HL_TYPE_Q4_K, 14}, [HL_QUANT_Q5_K_S] = {"q5_K_S", HL_TYPE_Q5_K, 16},
};

int32_t hl_quantize_mix_by_name(const char *s) {
    for (int m = HL_QUANT_PURE + 1; m < HL_QUANT_MIX_COUNT; m++)
        if (name_is(s, mixes[m].name)) return m;
    return -1;
}

const char *hl_quantize_mix_name(hl_quant_mix mix) {
    return mix > HL_QUANT_PURE && mix < HL_QUANT_MIX_COUNT ? mixes[mix].name : "pure";
}

/* llama.cpp's use_more_bits: the first and last eighth of the layers, and
 * every third layer between. */
static int more_bits(int64_t i, int64_t n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

/* What the mixes' rules read from the model besides the tensor's name. */
typedef struct mix_model {
    int big_gqa_80; /* llama.cpp's LLM_TYPE_70B: 80 layers, llama with GQA, or qwen2 */
} mix_model;

/* The mix's type for 2-D tensor `name` with rows of ne0: i_v / i_down are
 * this tensor's index among the attn_v / ffn_down tensors (file order by
 * layer), n_v / n_down their counts. llama.cpp's rules (llama_tensor_get_type)
 * for dense llama-family models without an importance matrix. Returns 0 when
 * no type we can write fits. */
static uint32_t mix_type(hl_quant_mix mix, const mix_model *mm, const char *name, int64_t ne0, int64_t i_v,
                         int64_t n_v, int64_t i_down, int64_t n_down) {
    uint32_t t = mixes[mix].base;
    if (!strcmp(name, "output.weight")) {
        t = ne0 % HL_QK_K ? HL_TYPE_Q8_0 : HL_TYPE_Q6_K;
    } else if (strstr(name, "attn_v.weight")) {
        switch (mix) {
        case HL_QUANT_Q3_K_M: t = i_v < 2 ? HL_TYPE_Q5_K : HL_TYPE_Q4_K; break;
        case HL_QUANT_Q3_K_L: t = HL_TYPE_Q5_K; break;
        case HL_QUANT_Q4_K_M:
        case HL_QUANT_Q5_K_M: if (more_bits(i_v, n_v)) t = HL_TYPE_Q6_K; break;
        case HL_QUANT_Q4_K_S: if (i_v < 4) t = HL_TYPE_Q5_K; break;
        default: break;
        }
        /* 70B-class models share one attn_v among 8 heads: it is small, so more bits */
        if (mm->big_gqa_80 && (t == HL_TYPE_Q3_K || t == HL_TYPE_Q4_K)) t = HL_TYPE_Q5_K;
    } else if (strstr(name, "ffn_down")) {
        switch (mix) {
        case HL_QUANT_Q3_K_M: t = i_down < n_down / 16 ? HL_TYPE_Q5_K : HL_TYPE_Q4_K; break;
        case HL_QUANT_Q3_K_L: t = HL_TYPE_Q5_K; break;
        case HL_QUANT_Q4_K_M:
        case HL_QUANT_Q5_K_M: if (more_bits(i_down, n_down)) t = HL_TYPE_Q6_K; break;
        case HL_QUANT_Q4_K_S: if (i_down < n_down / 8) t = HL_TYPE_Q5_K; break;
        default: break;
        }
    } else if (strstr(name, "attn_output.weight")) {
        if (mix == HL_QUANT_Q3_K_M) t = HL_TYPE_Q4_K;
        else if (mix == HL_QUANT_Q3_K_L) t = HL_TYPE_Q5_K;
    }
    if (ne0 % HL_QK_K) { /* llama.cpp's fallbacks for rows that are not whole 256-blocks */
        switch (t) {
        case HL_TYPE_Q4_K: t = HL_TYPE_Q5_0; break;
        case HL_TYPE_Q5_K: t = HL_TYPE_Q5_1; break;
        case HL_TYPE_Q6_K: t = HL_TYPE_Q8_0; break;
        case HL_TYPE_Q8_0: break; /* output.weight's choice for such rows */
        default: return 0; /* q3_K falls back to iq4_nl, which we do not write */
        }
        if (ne0 % HL_QK) return 0;
    }
    return t;
}

/* The model facts the rules need, from the metadata (absent keys: none apply). */
static mix_model mix_model_of(const hl_gguf *g) {
    mix_model mm = {.big_gqa_80 = 0};
    hl_gguf_str arch;
    if (hl_gguf_get_str(g, "general.architecture", &arch, NULL) != HL_OK || arch.len == 0 || arch.len > 64) return mm;
    char a[65], key[128];
    memcpy(a, arch.data, (size_t)arch.len);
    a[arch.len] = 0;
    uint32_t n_head = 0, n_kv = 0, n_layer = 0;
    snprintf(key, sizeof key, "%s.attention.head_count", a);
    if (hl_gguf_get_u32(g, key, &n_head, NULL) != HL_OK) return mm;
    snprintf(key, sizeof key, "%s.attention.head_count_kv", a);
    if (hl_gguf_get_u32(g, key, &n_kv, NULL) != HL_OK) n_kv = n_head;
    snprintf(key, sizeof key, "%s.block_count", a);
    if (hl_gguf_get_u32(g, key, &n_layer, NULL) == HL_OK && n_layer == 80)
        mm.big_gqa_80 = (!strcmp(a, "llama") && n_head != n_kv) || !strcmp(a, "qwen2");
    return mm;
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

static hl_status quantize_file(const char *in_path, const char *out_path, uint32_t type, hl_quant_mix mix,
                               hl_error *err);

hl_status hl_model_quantize_file(const char *in_path, const char *out_path, uint32_t type, hl_error *err) {
    if (!hl_quantize_supported(type))
        return hl_fail(err, HL_ERR_UNSUPPORTED, "quantize: type %s cannot be written", hl_ggml_type_name(type));
    return quantize_file(in_path, out_path, type, HL_QUANT_PURE, err);
}

hl_status hl_model_quantize_file_mix(const char *in_path, const char *out_path, hl_quant_mix mix, hl_error *err) {
    if (mix <= HL_QUANT_PURE || mix >= HL_QUANT_MIX_COUNT)
        return hl_fail(err, HL_ERR_INVALID_ARG, "quantize: unknown mix %d", (int)mix);
    return quantize_file(in_path, out_path, mixes[mix].base, mix, err);
}

static hl_status quantize_file(const char *in_path, const char *out_path, uint32_t type, hl_quant_mix mix,
                               hl_error *err) {
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
    const uint32_t tail_vals[2] = {2, mix != HL_QUANT_PURE ? mixes[mix].file_type : file_type_of(type)};
    const mix_model mm = mix_model_of(g);
    for (int k = 0; s == HL_OK && k < 2; k++)
        if ((s = hl_gguf_writer_remove_key(w, tail_keys[k])) != HL_OK ||
            (s = hl_gguf_writer_set_u32(w, tail_keys[k], tail_vals[k])) != HL_OK)
            hl_fail(err, s, "%s: cannot set %s", out_path, tail_keys[k]);
    for (int64_t i = 0; s == HL_OK && i < nt; i++) {
        ord[i].t = hl_gguf_tensor_at(g, i);
        ord[i].layer = layer_of(ord[i].t);
    }
    if (s == HL_OK && nt > 1) qsort(ord, (size_t)nt, sizeof *ord, cmp_order);
    int64_t n_v = 0, n_down = 0, i_v = 0, i_down = 0; /* the mixes count attn_v and ffn_down tensors */
    for (int64_t i = 0; s == HL_OK && i < nt; i++) {
        const hl_gguf_tensor *t = ord[i].t;
        if (t->n_dims != 2) continue;
        n_v += str_contains(t->name, "attn_v.weight");
        n_down += str_contains(t->name, "ffn_down");
    }
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
            uint32_t tt = type;
            if (mix != HL_QUANT_PURE) {
                tt = mix_type(mix, &mm, name, t->ne[0], i_v, n_v, i_down, n_down);
                i_v += strstr(name, "attn_v.weight") != NULL;
                i_down += strstr(name, "ffn_down") != NULL;
                if (!tt) {
                    char shown[HL_ESCAPE_NAME];
                    s = hl_fail(err, HL_ERR_INVALID_ARG, "%s: tensor %s: rows of %lld elements fit no type this mix can write",
                                in_path, hl_escape_str(name, shown, sizeof shown), (long long)t->ne[0]);
                    hl_free(name);
                    break;
                }
            }
            if ((s = quantize_tensor(in_path, t, tt, &bufs[i], err)) == HL_OK)
                s = hl_gguf_writer_add_tensor(w, name, tt, 2, t->ne, bufs[i], err);
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
