/* model.c: loading a Llama-family model (GGUF architectures "llama" with
 * optional Llama-3 rope_freqs, "qwen2" with q/k/v biases, "qwen3" with
 * per-head q/k norms; or a llama2.c checkpoint), random initialisation for
 * benchmarks, and saving as GGUF in the layout llama.cpp expects.
 *
 * Every tensor's presence, type and exact shape are checked against the
 * hyperparameters before any view is used; nothing is trusted from the file. */
#include "model/model.h"
#include "kernels/qweight_rows.h"
#include "util/alloc.h"
#include "util/checked.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/escape.h"
#include "util/half.h"
#include "util/hash.h"
#include "util/rng.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *target_names[HL_TARGET_COUNT] = {"q", "k", "v", "o", "gate", "up", "down", "output"};
static const char *target_tensor[HL_TARGET_COUNT] = {"attn_q",   "attn_k", "attn_v",    "attn_output",
                                                     "ffn_gate", "ffn_up", "ffn_down", "output"};

const char *hl_target_name(hl_target t) { return (unsigned)t < HL_TARGET_COUNT ? target_names[t] : "?"; }

static const char *arch_names[HL_ARCH_COUNT] = {"llama", "qwen2", "qwen3"};
const char *hl_arch_name(hl_arch a) { return (unsigned)a < HL_ARCH_COUNT ? arch_names[a] : "?"; }

void hl_model_tensor_name(int layer, int target, char *buf, size_t cap) {
    if (target == HL_TARGET_OUTPUT) snprintf(buf, cap, "output.weight");
    else snprintf(buf, cap, "blk.%d.%s.weight", layer, target_tensor[target]);
}

const float *hl_model_weight(const hl_model *m, int layer, int target, int64_t *rows, int64_t *cols) {
    const hl_model_config *c = &m->cfg;
    int64_t C = c->dim, F = c->hidden_dim, D = hl_cfg_head_dim(c), kv = (int64_t)c->n_kv_heads * D;
    int64_t qd = (int64_t)c->n_heads * D;
    if (target == HL_TARGET_OUTPUT) {
        *rows = m->n_vocab_base;
        *cols = C;
        return m->output;
    }
    if (layer < 0 || layer >= c->n_layers) return NULL;
    const hl_layer_weights *l = &m->layers[layer];
    switch (target) {
    case HL_TARGET_Q: *rows = qd; *cols = C; return l->wq;
    case HL_TARGET_K: *rows = kv; *cols = C; return l->wk;
    case HL_TARGET_V: *rows = kv; *cols = C; return l->wv;
    case HL_TARGET_O: *rows = C; *cols = qd; return l->wo;
    case HL_TARGET_GATE: *rows = F; *cols = C; return l->w_gate;
    case HL_TARGET_UP: *rows = F; *cols = C; return l->w_up;
    case HL_TARGET_DOWN: *rows = C; *cols = F; return l->w_down;
    default: return NULL;
    }
}

int hl_model_weight_shape(const hl_model *m, int layer, int target, int64_t *rows, int64_t *cols) {
    if (target < 0 || target >= HL_TARGET_COUNT) return 0;
    if (target != HL_TARGET_OUTPUT && (layer < 0 || layer >= m->cfg.n_layers)) return 0;
    hl_model_weight(m, layer, target, rows, cols);
    return 1;
}

const hl_qweight *hl_model_qweight(const hl_model *m, int layer, int target) {
    if (!m->qw || target < 0 || target >= HL_TARGET_COUNT) return NULL;
    if (target == HL_TARGET_OUTPUT) layer = m->cfg.n_layers;
    else if (layer < 0 || layer >= m->cfg.n_layers) return NULL;
    const hl_qweight *q = &m->qw[(int64_t)layer * HL_TARGET_COUNT + target];
    return q->data ? q : NULL;
}

const float *hl_model_embd_row(const hl_model *m, int32_t id, float *buf) {
    if (m->token_embd) return m->token_embd + (int64_t)id * m->cfg.dim;
    hl_qweight_row(&m->qembd, id, buf);
    return buf;
}

const float *hl_model_output_row(const hl_model *m, int32_t id, float *buf) {
    if (m->output) return m->output + (int64_t)id * m->cfg.dim;
    hl_qweight_row(hl_model_qweight(m, -1, HL_TARGET_OUTPUT), id, buf);
    return buf;
}

static float *own(hl_model *m, size_t n) {
    if (m->n_owned == m->cap_owned) {
        int cap = m->cap_owned ? m->cap_owned * 2 : 32;
        float **p = hl_realloc(m->owned, (size_t)cap * sizeof *p);
        if (!p) return NULL;
        m->owned = p;
        m->cap_owned = cap;
    }
    float *buf = hl_malloc_array(n, sizeof(float));
    if (buf) m->owned[m->n_owned++] = buf;
    return buf;
}

void hl_model_free(hl_model *m) {
    if (!m) return;
    if (m->is_view) { /* only what hl_model_view_init gave it */
        hl_free(m->view_layers);
        hl_tokenizer_free(m->view_tok);
        hl_free(m);
        return;
    }
    for (int i = 0; i < m->n_owned; i++) hl_free(m->owned[i]);
    hl_free(m->owned);
    hl_free(m->qw);
    hl_model_packed_free(m);
    hl_free(m->layers);
    hl_tokenizer_free(m->tok);
    hl_gguf_free(m->gguf);
    if (m->from_llama2c) hl_llama2c_close(&m->l2c);
    hl_free(m->name);
    hl_free(m->path);
    hl_free(m);
}

hl_status hl_model_view_init(const hl_model *base, const hl_model_view_params *p, hl_model **out, hl_error *err) {
    *out = NULL;
    const hl_model_config *c = &base->cfg;
    const int64_t L = c->n_layers;
    int replaces = 0;
    for (int64_t k = 0; p->weights && k < (L + 1) * HL_TARGET_COUNT; k++) {
        if (!p->weights[k]) continue;
        int layer = (int)(k / HL_TARGET_COUNT), target = (int)(k % HL_TARGET_COUNT);
        if ((layer == L) != (target == HL_TARGET_OUTPUT))
            return hl_fail(err, HL_ERR_INVALID_ARG, "model view: no weight (layer %d, %s) to replace", layer,
                           hl_target_name((hl_target)target));
        replaces = 1;
    }
    if (replaces && base->quantized)
        return hl_fail(err, HL_ERR_INVALID_ARG, "%s: a view cannot replace the weights of a quantized model",
                       base->name ? base->name : "model");
    if (p->n_extra < 0 || (p->n_extra > 0 && (!p->extra_embd || !p->extra_out)))
        return hl_fail(err, HL_ERR_INVALID_ARG, "model view: %d extra rows without their tables", p->n_extra);
    if (p->n_extra > INT32_MAX - base->n_vocab_base)
        return hl_fail(err, HL_ERR_LIMIT, "model view: %d extra rows overflow the vocabulary", p->n_extra);
    hl_model *v = hl_calloc(1, sizeof *v);
    if (!v) return hl_fail(err, HL_ERR_NOMEM, "out of memory for a model view");
    if (replaces && !(v->view_layers = hl_malloc_array((size_t)L, sizeof *v->view_layers))) {
        hl_free(v);
        return hl_fail(err, HL_ERR_NOMEM, "out of memory for a model view");
    }
    v->is_view = 1;
    /* Shared with the base, read-only. */
    v->cfg = base->cfg;
    v->token_embd = base->token_embd;
    v->layers = base->layers;
    v->output_norm = base->output_norm;
    v->output = base->output;
    v->rope_freqs = base->rope_freqs;
    v->n_vocab_base = base->n_vocab_base;
    v->n_extra = base->n_extra;
    v->extra_embd = base->extra_embd;
    v->extra_out = base->extra_out;
    v->tok = base->tok;
    v->name = base->name;
    v->path = base->path;
    v->fingerprint = base->fingerprint;
    v->gguf = base->gguf;
    v->l2c = base->l2c;
    v->from_llama2c = base->from_llama2c;
    v->map_begin = base->map_begin;
    v->map_end = base->map_end;
    v->packed = base->packed;
    v->quantized = base->quantized;
    v->qw = base->qw;
    v->qembd = base->qembd;
    /* What the view changes. */
    if (p->n_extra > 0) {
        v->n_extra = p->n_extra;
        v->extra_embd = p->extra_embd;
        v->extra_out = p->extra_out;
        v->cfg.vocab_size = base->n_vocab_base + p->n_extra;
    }
    if (replaces) {
        memcpy(v->view_layers, base->layers, (size_t)L * sizeof *v->view_layers);
        v->layers = v->view_layers;
        v->packed = NULL; /* the base's panels hold the base's weights */
        for (int64_t l = 0; l < L; l++) {
            const float *const *w = p->weights + l * HL_TARGET_COUNT;
            hl_layer_weights *lw = &v->view_layers[l];
            if (w[HL_TARGET_Q]) lw->wq = w[HL_TARGET_Q];
            if (w[HL_TARGET_K]) lw->wk = w[HL_TARGET_K];
            if (w[HL_TARGET_V]) lw->wv = w[HL_TARGET_V];
            if (w[HL_TARGET_O]) lw->wo = w[HL_TARGET_O];
            if (w[HL_TARGET_GATE]) lw->w_gate = w[HL_TARGET_GATE];
            if (w[HL_TARGET_UP]) lw->w_up = w[HL_TARGET_UP];
            if (w[HL_TARGET_DOWN]) lw->w_down = w[HL_TARGET_DOWN];
        }
        const float *head = p->weights[L * HL_TARGET_COUNT + HL_TARGET_OUTPUT];
        if (head) v->output = head;
    }
    if (p->tok) v->tok = v->view_tok = p->tok;
    *out = v;
    return HL_OK;
}

const hl_model_config *hl_model_get_config(const hl_model *m) { return &m->cfg; }
const hl_tokenizer *hl_model_get_tokenizer(const hl_model *m) { return m->tok; }
uint64_t hl_model_fingerprint(const hl_model *m) { return m->fingerprint; }

/* ---- fingerprint ---- */


static void fnv_tensor(uint64_t *h, const float *w, int64_t n) {
    *h = hl_fnv1a(*h, &n, sizeof n);
    /* 64 evenly spaced samples plus the last element: cheap, and any real
     * difference between two bases almost surely shows up. */
    for (int i = 0; i < 64; i++) *h = hl_fnv1a(*h, &w[(n * i) / 64], sizeof(float));
    *h = hl_fnv1a(*h, &w[n - 1], sizeof(float));
}

/* A quantized weight: its type, then 64 evenly spaced bytes and the last. */
static void fnv_qweight(uint64_t *h, const hl_qweight *q) {
    uint64_t n = q->row_bytes * (uint64_t)q->rows;
    const uint8_t *p = q->data;
    *h = hl_fnv1a(*h, &q->type, sizeof q->type);
    *h = hl_fnv1a(*h, &n, sizeof n);
    for (int i = 0; i < 64; i++) *h = hl_fnv1a(*h, &p[(n * (uint64_t)i) / 64], 1);
    *h = hl_fnv1a(*h, &p[n - 1], 1);
}

static uint64_t compute_fingerprint(const hl_model *m) {
    uint64_t h = HL_FNV1A_BASIS;
    const hl_model_config *c = &m->cfg;
    int32_t dims[7] = {c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, m->n_vocab_base, 0};
    h = hl_fnv1a(h, dims, sizeof dims);
    if (m->token_embd) fnv_tensor(&h, m->token_embd, (int64_t)m->n_vocab_base * c->dim);
    else fnv_qweight(&h, &m->qembd);
    for (int l = 0; l < c->n_layers; l++)
        for (int t = 0; t < HL_TARGET_OUTPUT; t++) {
            int64_t r, k;
            const float *w = hl_model_weight(m, l, t, &r, &k);
            if (w) fnv_tensor(&h, w, r * k);
            else fnv_qweight(&h, hl_model_qweight(m, l, t));
        }
    if (m->output) fnv_tensor(&h, m->output, (int64_t)m->n_vocab_base * c->dim);
    else fnv_qweight(&h, hl_model_qweight(m, -1, HL_TARGET_OUTPUT));
    return h;
}

/* ---- GGUF loading ---- */

static hl_status gguf_tensor_f32(hl_model *m, const char *name, int n_dims, int64_t ne0, int64_t ne1,
                                 int optional, const float **out, hl_error *err) {
    *out = NULL;
    int64_t idx = hl_gguf_find_tensor(m->gguf, name);
    if (idx < 0) {
        if (optional) return HL_OK;
        return hl_fail(err, HL_ERR_FORMAT, "%s: missing tensor %s", m->path, name);
    }
    const hl_gguf_tensor *t = hl_gguf_tensor_at(m->gguf, idx);
    int64_t want[2] = {ne0, ne1};
    int bad = (int)t->n_dims != n_dims;
    for (int d = 0; !bad && d < n_dims; d++) bad = t->ne[d] != want[d];
    if (bad) {
        if (n_dims == 1)
            return hl_fail(err, HL_ERR_FORMAT, "%s: tensor %s has shape [%lld%s], expected [%lld]", m->path, name,
                           (long long)t->ne[0], t->n_dims > 1 ? ", ..." : "", (long long)ne0);
        return hl_fail(err, HL_ERR_FORMAT, "%s: tensor %s has shape [%lld, %lld] (%u dims), expected [%lld, %lld]",
                       m->path, name, (long long)t->ne[0], (long long)(t->n_dims > 1 ? t->ne[1] : 1), t->n_dims,
                       (long long)ne0, (long long)ne1);
    }
    size_t n = (size_t)ne0 * (size_t)(n_dims > 1 ? ne1 : 1);
    if (t->type == HL_TYPE_F32 && ((uintptr_t)t->data % sizeof(float)) == 0) {
        *out = t->data;
        return HL_OK;
    }
    const hl_type_traits *tr = hl_type_traits_of(t->type); /* the reader accepts only types with traits */
    int64_t n_blocks = (int64_t)n / tr->block_elems;
    int64_t bad_block = hl_quant_find_bad_scale(t->type, t->data, n_blocks);
    if (bad_block >= 0)
        return hl_fail(err, HL_ERR_FORMAT, "%s: tensor %s (%s): block %lld has a non-finite scale", m->path, name,
                       tr->name, (long long)bad_block);
    float *buf = own(m, n);
    if (!buf) return hl_fail(err, HL_ERR_NOMEM, "%s: out of memory converting %s", m->path, name);
    hl_dequantize(t->type, t->data, buf, n_blocks);
    *out = buf;
    return HL_OK;
}

/* A 2-D weight (ne0 = cols, ne1 = rows): a block-type tensor becomes a view
 * of the file in *q (its scales checked finite) and *out stays NULL; any
 * other type goes through gguf_tensor_f32. */
static hl_status gguf_tensor_weight(hl_model *m, const char *name, int64_t ne0, int64_t ne1, int optional,
                                    const float **out, hl_qweight *q, hl_error *err) {
    *out = NULL;
    int64_t idx = hl_gguf_find_tensor(m->gguf, name);
    const hl_gguf_tensor *t = idx >= 0 ? hl_gguf_tensor_at(m->gguf, idx) : NULL;
    const hl_type_traits *tr = t ? hl_type_traits_of(t->type) : NULL;
    if (!tr || !tr->quantized || t->n_dims != 2 || t->ne[0] != ne0 || t->ne[1] != ne1)
        return gguf_tensor_f32(m, name, 2, ne0, ne1, optional, out, err); /* checks and messages as before */
    uint64_t row_bytes;
    if (!hl_type_row_bytes(t->type, ne0, &row_bytes)) /* the reader checked this already; kept for a clear message */
        return hl_fail(err, HL_ERR_FORMAT, "%s: tensor %s: %s rows of %lld elements are not whole blocks", m->path,
                       name, tr->name, (long long)ne0);
    int64_t bad_block = hl_quant_find_bad_scale(t->type, t->data, (int64_t)(t->nbytes / (uint64_t)tr->block_bytes));
    if (bad_block >= 0)
        return hl_fail(err, HL_ERR_FORMAT, "%s: tensor %s (%s): block %lld has a non-finite scale", m->path, name,
                       tr->name, (long long)bad_block);
    *q = (hl_qweight){t->data, t->type, ne1, ne0, row_bytes};
    m->quantized = 1;
    return HL_OK;
}

static hl_status get_u32_default(const hl_gguf *g, const char *path, const char *key, uint32_t def, uint32_t *out,
                                 hl_error *err) {
    if (hl_gguf_find_key(g, key) < 0) {
        *out = def;
        return HL_OK;
    }
    return hl_gguf_get_u32(g, key, out, err); /* its message already names the file */
}

/* Llama-3 frequency factors from the rope-scaling keys, when a file states
 * them (rope.scaling.type "llama3") instead of the rope_freqs.weight tensor:
 * factor and original_context_length are required, low_freq_factor and
 * high_freq_factor default to Llama-3's 1 and 4. Pair i of frequency
 * f = theta^(-2i/D) and wavelength 2pi/f keeps f when the wavelength is
 * below original/high, is slowed by `factor` above original/low, and in
 * between mixes the two by smooth = (original/wavelength - low)/(high - low),
 * as HF's llama3 rope initialisation does; the stored factor divides the angle. */
static hl_status llama3_freqs(hl_model *m, int64_t D, float theta, hl_error *err) {
    const hl_gguf *g = m->gguf;
    float factor = 0, low = 1, high = 4;
    uint32_t orig = 0;
    hl_status s;
    if ((s = hl_gguf_get_f32(g, "llama.rope.scaling.factor", &factor, err)) ||
        (s = hl_gguf_get_u32(g, "llama.rope.scaling.original_context_length", &orig, err)))
        return s;
    if (hl_gguf_find_key(g, "llama.rope.scaling.low_freq_factor") >= 0 &&
        (s = hl_gguf_get_f32(g, "llama.rope.scaling.low_freq_factor", &low, err)))
        return s;
    if (hl_gguf_find_key(g, "llama.rope.scaling.high_freq_factor") >= 0 &&
        (s = hl_gguf_get_f32(g, "llama.rope.scaling.high_freq_factor", &high, err)))
        return s;
    if (!(factor >= 1 && factor < 1e6) || orig == 0 || !(low > 0) || !(high > low) || !(high < 1e6))
        return hl_fail(err, HL_ERR_FORMAT,
                       "%s: llama3 rope scaling: factor %g, original_context_length %u, low_freq_factor %g, "
                       "high_freq_factor %g out of range", m->path, factor, orig, low, high);
    float *ff = own(m, (size_t)(D / 2));
    if (!ff) return hl_fail(err, HL_ERR_NOMEM, "%s: out of memory", m->path);
    const double pi = 3.14159265358979323846;
    for (int64_t i = 0; i < D / 2; i++) {
        double freq = pow((double)theta, -(double)(2 * i) / (double)D), wavelen = 2 * pi / freq;
        double low_wavelen = (double)orig / low, high_wavelen = (double)orig / high, r;
        if (wavelen < high_wavelen) r = 1;
        else if (wavelen > low_wavelen) r = factor;
        else {
            double smooth = ((double)orig / wavelen - low) / (high - low);
            r = freq / ((1 - smooth) * freq / factor + smooth * freq);
        }
        ff[i] = (float)r;
    }
    m->rope_freqs = ff;
    return HL_OK;
}

/* "<arch>.<rest>" into buf. */
static const char *akey(char *buf, size_t cap, hl_arch arch, const char *rest) {
    snprintf(buf, cap, "%s.%s", hl_arch_name(arch), rest);
    return buf;
}

static hl_status load_gguf(hl_model *m, hl_error *err) {
    const hl_gguf *g = m->gguf;
    hl_gguf_str arch_s, type;
    hl_status s;
    if (hl_gguf_find_key(g, "general.type") >= 0 && hl_gguf_get_str(g, "general.type", &type, NULL) == HL_OK &&
        type.len == 7 && memcmp(type.data, "adapter", 7) == 0)
        return hl_fail(err, HL_ERR_INVALID_ARG, "%s: this is an adapter, not a base model (pass it with --lora)",
                       m->path);
    if ((s = hl_gguf_get_str(g, "general.architecture", &arch_s, err)) != HL_OK) return s; /* names the file */
    int arch = -1;
    for (int a = 0; a < HL_ARCH_COUNT; a++)
        if (arch_s.len == strlen(arch_names[a]) && memcmp(arch_s.data, arch_names[a], arch_s.len) == 0) arch = a;
    if (arch < 0) {
        char shown[96];
        return hl_fail(err, HL_ERR_UNSUPPORTED, "%s: general.architecture is \"%s\"; supported: llama, qwen2, qwen3",
                       m->path, hl_escape(arch_s.data, (size_t)arch_s.len, shown, sizeof shown));
    }
    char k[8][96];
    const char *kC = akey(k[0], sizeof k[0], arch, "embedding_length"),
               *kF = akey(k[1], sizeof k[1], arch, "feed_forward_length"),
               *kL = akey(k[2], sizeof k[2], arch, "block_count"),
               *kH = akey(k[3], sizeof k[3], arch, "attention.head_count"),
               *kHkv = akey(k[4], sizeof k[4], arch, "attention.head_count_kv"),
               *kctx = akey(k[5], sizeof k[5], arch, "context_length"),
               *kkl = akey(k[6], sizeof k[6], arch, "attention.key_length"),
               *kvl = akey(k[7], sizeof k[7], arch, "attention.value_length");
    uint32_t C, F, L, H, Hkv, ctx, rope_dims, D, Dv;
    if ((s = get_u32_default(g, m->path, kC, 0, &C, err)) || (s = get_u32_default(g, m->path, kF, 0, &F, err)) ||
        (s = get_u32_default(g, m->path, kL, 0, &L, err)) || (s = get_u32_default(g, m->path, kH, 0, &H, err)) ||
        (s = get_u32_default(g, m->path, kHkv, H, &Hkv, err)) ||
        (s = get_u32_default(g, m->path, kctx, 2048, &ctx, err)))
        return s;
    const char *need[4] = {kC, kF, kL, kH};
    uint32_t vals[4] = {C, F, L, H};
    for (int i = 0; i < 4; i++)
        if (vals[i] == 0 || vals[i] > (1u << 20))
            return hl_fail(err, HL_ERR_FORMAT, "%s: %s is %s (%u)", m->path, need[i],
                           vals[i] == 0 ? "missing or zero" : "implausibly large", vals[i]);
    if (Hkv == 0 || H % Hkv != 0 || C % H != 0)
        return hl_fail(err, HL_ERR_FORMAT,
                       "%s: inconsistent heads: embedding_length %u, head_count %u, head_count_kv %u", m->path, C, H,
                       Hkv);
    if ((s = get_u32_default(g, m->path, kkl, C / H, &D, err)) || (s = get_u32_default(g, m->path, kvl, D, &Dv, err)))
        return s;
    if (D == 0 || D % 2 != 0 || D > (1u << 16) || (uint64_t)H * D > (1u << 20))
        return hl_fail(err, HL_ERR_FORMAT, "%s: %s %u is odd, zero or too large", m->path, kkl, D);
    if (Dv != D)
        return hl_fail(err, HL_ERR_UNSUPPORTED, "%s: %s %u differs from %s %u", m->path, kvl, Dv, kkl, D);
    if (ctx == 0 || ctx > (1u << 24))
        return hl_fail(err, HL_ERR_FORMAT, "%s: %s %u is out of range", m->path, kctx, ctx);
    char kr[96];
    if ((s = get_u32_default(g, m->path, akey(kr, sizeof kr, arch, "rope.dimension_count"), D, &rope_dims, err)))
        return s;
    if (rope_dims != D)
        return hl_fail(err, HL_ERR_UNSUPPORTED, "%s: %s %u != head size %u (partial RoPE)", m->path, kr, rope_dims, D);
    float eps = 1e-5f, theta = 10000.0f;
    char ke[96], kt[96], ks[96];
    akey(ke, sizeof ke, arch, "attention.layer_norm_rms_epsilon");
    akey(kt, sizeof kt, arch, "rope.freq_base");
    akey(ks, sizeof ks, arch, "rope.scaling.type");
    if (hl_gguf_find_key(g, ke) >= 0 && (s = hl_gguf_get_f32(g, ke, &eps, err)))
        return s; /* the getters' messages name the file already */
    if (hl_gguf_find_key(g, kt) >= 0 && (s = hl_gguf_get_f32(g, kt, &theta, err))) return s;
    if (!(eps > 0 && eps < 1) || !(theta > 1 && isfinite(theta)))
        return hl_fail(err, HL_ERR_FORMAT, "%s: rms epsilon %g or rope base %g out of range", m->path, eps, theta);
    int llama3_keys = 0;
    if (hl_gguf_find_key(g, ks) >= 0) {
        hl_gguf_str st;
        if ((s = hl_gguf_get_str(g, ks, &st, err))) return s;
        llama3_keys = st.len == 6 && memcmp(st.data, "llama3", 6) == 0 && arch == HL_ARCH_LLAMA;
        if (!llama3_keys && (st.len != 4 || memcmp(st.data, "none", 4) != 0)) {
            char shown[96];
            return hl_fail(err, HL_ERR_UNSUPPORTED,
                           "%s: %s is \"%s\"; supported: none, llama3 (llama only; or the rope_freqs.weight tensor)",
                           m->path, ks, hl_escape(st.data, (size_t)st.len, shown, sizeof shown));
        }
    }

    /* Vocabulary size comes from the embedding tensor. */
    int64_t ti = hl_gguf_find_tensor(g, "token_embd.weight");
    if (ti < 0) return hl_fail(err, HL_ERR_FORMAT, "%s: missing tensor token_embd.weight", m->path);
    const hl_gguf_tensor *te = hl_gguf_tensor_at(g, ti);
    if (te->n_dims != 2 || te->ne[0] != C || te->ne[1] < 1 || te->ne[1] > (1 << 24))
        return hl_fail(err, HL_ERR_FORMAT, "%s: token_embd.weight has shape [%lld, %lld], expected [%u, vocab]",
                       m->path, (long long)te->ne[0], (long long)te->ne[1], C);
    hl_model_config *c = &m->cfg;
    *c = (hl_model_config){.dim = (int32_t)C, .hidden_dim = (int32_t)F, .n_layers = (int32_t)L,
                           .n_heads = (int32_t)H, .n_kv_heads = (int32_t)Hkv, .vocab_size = (int32_t)te->ne[1],
                           .seq_len = (int32_t)ctx, .norm_eps = eps, .rope_theta = theta, .arch = arch,
                           .head_dim = (int32_t)D};
    int64_t kv = (int64_t)Hkv * D, qd = (int64_t)H * D, V = c->vocab_size;
    m->layers = hl_calloc(L, sizeof *m->layers);
    m->qw = hl_calloc((size_t)(L + 1) * HL_TARGET_COUNT, sizeof *m->qw);
    if (!m->layers || !m->qw) return hl_fail(err, HL_ERR_NOMEM, "%s: out of memory", m->path);
    hl_qweight *q_out = &m->qw[(size_t)L * HL_TARGET_COUNT + HL_TARGET_OUTPUT];
    if ((s = gguf_tensor_weight(m, "token_embd.weight", C, V, 0, &m->token_embd, &m->qembd, err)) ||
        (s = gguf_tensor_f32(m, "output_norm.weight", 1, C, 1, 0, &m->output_norm, err)) ||
        (s = gguf_tensor_weight(m, "output.weight", C, V, 1, &m->output, q_out, err)) ||
        (s = gguf_tensor_f32(m, "rope_freqs.weight", 1, D / 2, 1, 1, &m->rope_freqs, err)))
        return s;
    if (!m->rope_freqs && llama3_keys && (s = llama3_freqs(m, (int64_t)D, theta, err))) return s;
    if (m->rope_freqs && arch != HL_ARCH_LLAMA)
        return hl_fail(err, HL_ERR_UNSUPPORTED, "%s: rope_freqs.weight in a %s model", m->path, hl_arch_name(arch));
    for (int64_t i = 0; m->rope_freqs && i < D / 2; i++)
        if (!(m->rope_freqs[i] > 0) || !isfinite(m->rope_freqs[i]))
            return hl_fail(err, HL_ERR_FORMAT, "%s: rope_freqs.weight[%lld] = %g is not a positive factor", m->path,
                           (long long)i, m->rope_freqs[i]);
    if (!m->output && !q_out->data) {
        m->output = m->token_embd;
        *q_out = m->qembd;
        c->tied_output = 1;
    }
    const int biases = arch == HL_ARCH_QWEN2, qk_norm = arch == HL_ARCH_QWEN3;
    for (uint32_t l = 0; l < L; l++) {
        hl_layer_weights *w = &m->layers[l];
        char name[64];
#define T2(field, tname, ne0, ne1, target)                                            \
    snprintf(name, sizeof name, "blk.%u.%s.weight", l, tname);                        \
    if ((s = gguf_tensor_weight(m, name, ne0, ne1, 0, &w->field,                      \
                                &m->qw[(size_t)l * HL_TARGET_COUNT + target], err)))  \
        return s;
#define T1(field, tname, suffix, n, optional)                                         \
    snprintf(name, sizeof name, "blk.%u.%s.%s", l, tname, suffix);                    \
    if ((s = gguf_tensor_f32(m, name, 1, n, 1, optional, &w->field, err))) return s;
        T1(attn_norm, "attn_norm", "weight", C, 0);
        T2(wq, "attn_q", C, qd, HL_TARGET_Q);
        T2(wk, "attn_k", C, kv, HL_TARGET_K);
        T2(wv, "attn_v", C, kv, HL_TARGET_V);
        T2(wo, "attn_output", qd, C, HL_TARGET_O);
        T1(ffn_norm, "ffn_norm", "weight", C, 0);
        T2(w_gate, "ffn_gate", C, F, HL_TARGET_GATE);
        T2(w_up, "ffn_up", C, F, HL_TARGET_UP);
        T2(w_down, "ffn_down", F, C, HL_TARGET_DOWN);
        if (biases) {
            T1(bq, "attn_q", "bias", qd, 0);
            T1(bk, "attn_k", "bias", kv, 0);
            T1(bv, "attn_v", "bias", kv, 0);
        }
        if (qk_norm) {
            T1(q_norm, "attn_q_norm", "weight", D, 0);
            T1(k_norm, "attn_k_norm", "weight", D, 0);
        }
#undef T1
#undef T2
        /* Tensors this architecture does not use would be silently ignored: refuse them. */
        static const char *const unused[] = {"attn_q.bias", "attn_k.bias", "attn_v.bias", "attn_output.bias",
                                             "attn_q_norm.weight", "attn_k_norm.weight"};
        for (size_t i = 0; i < sizeof unused / sizeof unused[0]; i++) {
            int used = (biases && i < 3) || (qk_norm && i >= 4);
            snprintf(name, sizeof name, "blk.%u.%s", l, unused[i]);
            if (!used && hl_gguf_find_tensor(g, name) >= 0)
                return hl_fail(err, HL_ERR_UNSUPPORTED, "%s: tensor %s is not part of a %s model", m->path, name,
                               hl_arch_name(arch));
        }
    }
    hl_gguf_str gname;
    if (hl_gguf_find_key(g, "general.name") >= 0 && hl_gguf_get_str(g, "general.name", &gname, NULL) == HL_OK) {
        char shown[HL_ESCAPE_NAME]; /* a display name from the file: kept escaped */
        m->name = hl_strdup(hl_escape(gname.data, (size_t)gname.len, shown, sizeof shown));
    }
    if ((s = hl_tokenizer_from_gguf(g, &m->tok, err))) return s; /* its messages name the file */
    if (hl_tokenizer_n_vocab(m->tok) != c->vocab_size)
        return hl_fail(err, HL_ERR_FORMAT, "%s: tokenizer has %d tokens but token_embd.weight has %d rows", m->path,
                       hl_tokenizer_n_vocab(m->tok), c->vocab_size);
    return HL_OK;
}

/* ---- llama2.c loading ---- */

static hl_status load_llama2c(hl_model *m, const char *tokenizer_path, hl_error *err) {
    hl_status s = hl_llama2c_open(m->path, &m->l2c, err);
    if (s != HL_OK) return s;
    m->from_llama2c = 1;
    const hl_llama2c *l2 = &m->l2c;
    m->cfg = l2->cfg;
    const hl_model_config *c = &m->cfg;
    int64_t C = c->dim, F = c->hidden_dim, D = C / c->n_heads, kv = c->n_kv_heads * D;
    m->token_embd = l2->token_embd;
    m->output_norm = l2->rms_final;
    m->output = l2->wcls;
    m->layers = hl_calloc((size_t)c->n_layers, sizeof *m->layers);
    if (!m->layers) return hl_fail(err, HL_ERR_NOMEM, "%s: out of memory", m->path);
    for (int l = 0; l < c->n_layers; l++) {
        hl_layer_weights *w = &m->layers[l];
        w->attn_norm = l2->rms_att + l * C;
        w->wq = l2->wq + l * C * C;
        w->wk = l2->wk + l * kv * C;
        w->wv = l2->wv + l * kv * C;
        w->wo = l2->wo + l * C * C;
        w->ffn_norm = l2->rms_ffn + l * C;
        w->w_gate = l2->w1 + l * F * C;
        w->w_down = l2->w2 + l * C * F;
        w->w_up = l2->w3 + l * F * C;
    }
    if (!tokenizer_path)
        return hl_fail(err, HL_ERR_INVALID_ARG, "%s: a llama2.c checkpoint needs its tokenizer (--tokenizer tok.bin)",
                       m->path);
    if ((s = hl_tokenizer_from_llama2c(tokenizer_path, c->vocab_size, &m->tok, err))) return s;
    return HL_OK;
}

static char *base_name(const char *path) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    const char *dot = strrchr(b, '.');
    return hl_strndup(b, dot && dot != b ? (size_t)(dot - b) : strlen(b));
}

hl_status hl_model_load(const char *path, const char *tokenizer_path, hl_model **out, hl_error *err) {
    *out = NULL;
    hl_model *m = hl_calloc(1, sizeof *m);
    if (!m || !(m->path = hl_strdup(path))) {
        hl_free(m);
        return hl_fail(err, HL_ERR_NOMEM, "%s: out of memory", path);
    }
    hl_status s;
    if (hl_file_starts_with(path, "GGUF", 4)) {
        s = hl_gguf_open(path, &m->gguf, err);
        if (s == HL_OK) s = load_gguf(m, err);
    } else {
        s = load_llama2c(m, tokenizer_path, err);
    }
    if (s == HL_OK && !m->name && !(m->name = base_name(path))) s = hl_fail(err, HL_ERR_NOMEM, "out of memory");
    if (s == HL_OK) s = hl_model_packed_init(m, err);
    if (s == HL_OK && m->gguf) {
        size_t size;
        hl_gguf_mapping(m->gguf, &m->map_begin, &size);
        m->map_end = m->map_begin ? m->map_begin + size : NULL;
    } else if (s == HL_OK && m->l2c.owns_map) {
        m->map_begin = m->l2c.map.data;
        m->map_end = m->l2c.map.data + m->l2c.map.size;
    }
    if (s != HL_OK) {
        hl_model_free(m);
        return s;
    }
    m->n_vocab_base = m->cfg.vocab_size;
    m->fingerprint = compute_fingerprint(m);
    *out = m;
    return HL_OK;
}

/* ---- random init (benchmarks) ---- */

hl_status hl_model_init_random(const hl_model_config *cfg, const char *tokenizer_path, uint64_t seed,
                               hl_model **out, hl_error *err) {
    *out = NULL;
    hl_tokenizer *tok = NULL;
    hl_status s = hl_tokenizer_from_llama2c(tokenizer_path, 0, &tok, err);
    if (s != HL_OK) return s;
    return hl_model_init_random_tok(cfg, tok, seed, out, err);
}

hl_status hl_model_init_random_tok(const hl_model_config *cfg, hl_tokenizer *tok, uint64_t seed, hl_model **out,
                                   hl_error *err) {
    *out = NULL;
    const hl_model_config *c = cfg;
    if (c->dim <= 0 || c->hidden_dim <= 0 || c->n_layers <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 ||
        c->dim % c->n_heads || c->n_heads % c->n_kv_heads || (c->dim / c->n_heads) % 2 || c->seq_len <= 0 ||
        c->dim > (1 << 16) || c->hidden_dim > (1 << 19) || c->n_layers > 1024 || c->seq_len > (1 << 20)) {
        hl_tokenizer_free(tok);
        return hl_fail(err, HL_ERR_INVALID_ARG, "model shape: inconsistent or too large (dim %d, ffn %d, layers %d, "
                       "heads %d, kv heads %d, ctx %d)", c->dim, c->hidden_dim, c->n_layers, c->n_heads,
                       c->n_kv_heads, c->seq_len);
    }
    hl_model *m = hl_calloc(1, sizeof *m);
    if (!m) {
        hl_tokenizer_free(tok);
        return hl_fail(err, HL_ERR_NOMEM, "out of memory");
    }
    m->tok = tok;
    m->path = hl_strdup("(random)");
    m->name = hl_strdup("random");
    m->cfg = *c;
    m->cfg.vocab_size = hl_tokenizer_n_vocab(m->tok);
    m->cfg.tied_output = c->tied_output ? 1 : 0; /* tied: the LM head is the embedding table itself */
    if (m->cfg.norm_eps == 0) m->cfg.norm_eps = 1e-5f;
    if (m->cfg.rope_theta == 0) m->cfg.rope_theta = 10000.0f;
    int64_t C = c->dim, F = c->hidden_dim, V = m->cfg.vocab_size, D = C / c->n_heads, kv = c->n_kv_heads * D;
    hl_rng rng;
    hl_rng_seed(&rng, seed);
    /* Projections that write into the residual stream start smaller, so the
     * stream's scale does not grow with depth (as GPT-2 initialises them). */
    const float resid_std = 0.02f / sqrtf(2.0f * (float)c->n_layers);
    m->layers = hl_calloc((size_t)c->n_layers, sizeof *m->layers);
    int ok = m->layers != NULL;
#define RAND(dst, n, std)                                                       \
    do {                                                                        \
        float *b_ = ok ? own(m, (size_t)(n)) : NULL;                            \
        if (!b_) { ok = 0; break; }                                             \
        for (int64_t i_ = 0; i_ < (n); i_++) b_[i_] = (std) * hl_rng_normal(&rng); \
        dst = b_;                                                               \
    } while (0)
#define ONES(dst, n)                                                            \
    do {                                                                        \
        float *b_ = ok ? own(m, (size_t)(n)) : NULL;                            \
        if (!b_) { ok = 0; break; }                                             \
        for (int64_t i_ = 0; i_ < (n); i_++) b_[i_] = 1.0f;                     \
        dst = b_;                                                               \
    } while (0)
    RAND(m->token_embd, V * C, 0.02f);
    for (int l = 0; ok && l < c->n_layers; l++) {
        hl_layer_weights *w = &m->layers[l];
        ONES(w->attn_norm, C);
        RAND(w->wq, C * C, 0.02f);
        RAND(w->wk, kv * C, 0.02f);
        RAND(w->wv, kv * C, 0.02f);
        RAND(w->wo, C * C, resid_std);
        ONES(w->ffn_norm, C);
        RAND(w->w_gate, F * C, 0.02f);
        RAND(w->w_up, F * C, 0.02f);
        RAND(w->w_down, C * F, resid_std);
    }
    ONES(m->output_norm, C);
    if (m->cfg.tied_output) m->output = m->token_embd;
    else RAND(m->output, V * C, 0.02f);
#undef RAND
#undef ONES
    if (ok && hl_model_packed_init(m, err) != HL_OK) ok = 0;
    if (!ok) {
        hl_model_free(m);
        return hl_fail(err, HL_ERR_NOMEM, "init-model: out of memory");
    }
    m->n_vocab_base = m->cfg.vocab_size;
    m->fingerprint = compute_fingerprint(m);
    *out = m;
    return HL_OK;
}

/* ---- saving ---- */

hl_status hl_model_save_gguf(const hl_model *m, const char *path, hl_error *err) {
    const hl_model_config *c = &m->cfg;
    if (m->n_extra)
        return hl_fail(err, HL_ERR_INVALID_ARG, "%s: hyperlexemes live in the adapter, not in a base model file", path);
    if (m->quantized)
        return hl_fail(err, HL_ERR_UNSUPPORTED, "%s: saving a quantized base as f32 is not supported", path);
    if (c->arch != HL_ARCH_LLAMA || hl_cfg_head_dim(c) != c->dim / c->n_heads || m->rope_freqs)
        return hl_fail(err, HL_ERR_UNSUPPORTED, "%s: writing a %s model from scratch is not supported (merge copies "
                       "GGUF bases instead)", path, hl_arch_name(c->arch));
    hl_gguf_writer *w = hl_gguf_writer_init();
    if (!w) return hl_fail(err, HL_ERR_NOMEM, "%s: out of memory", path);
    int64_t C = c->dim, F = c->hidden_dim, V = c->vocab_size, D = C / c->n_heads, kv = c->n_kv_heads * D;
    hl_status s = HL_OK;
#define KV(call) if (s == HL_OK && (s = (call)) != HL_OK) hl_fail(err, s, "%s: cannot set metadata", path)
    KV(hl_gguf_writer_set_str(w, "general.architecture", "llama"));
    KV(hl_gguf_writer_set_str(w, "general.name", m->name ? m->name : "model"));
    KV(hl_gguf_writer_set_u32(w, "llama.context_length", (uint32_t)c->seq_len));
    KV(hl_gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)C));
    KV(hl_gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)F));
    KV(hl_gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)c->n_heads));
    KV(hl_gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads));
    KV(hl_gguf_writer_set_u32(w, "llama.block_count", (uint32_t)c->n_layers));
    KV(hl_gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)D));
    KV(hl_gguf_writer_set_f32(w, "llama.rope.freq_base", c->rope_theta));
    KV(hl_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", c->norm_eps));
    KV(hl_gguf_writer_set_u32(w, "general.file_type", 0)); /* all F32 */
#undef KV
    if (s == HL_OK) s = hl_tokenizer_to_gguf(m->tok, w, err);
    /* llama.cpp's tensor order; output.weight always explicit, so that
     * llama.cpp can apply an output adapter even for a tied base. */
#define ADD(name, nd, ne0, ne1, ptr)                                                    \
    if (s == HL_OK) {                                                                   \
        int64_t ne_[2] = {ne0, ne1};                                                    \
        s = hl_gguf_writer_add_tensor(w, name, HL_TYPE_F32, nd, ne_, ptr, err);         \
    }
    ADD("token_embd.weight", 2, C, V, m->token_embd);
    ADD("output_norm.weight", 1, C, 1, m->output_norm);
    ADD("output.weight", 2, C, V, m->output);
    for (int l = 0; l < c->n_layers && s == HL_OK; l++) {
        const hl_layer_weights *lw = &m->layers[l];
        char n[9][64];
        const char *names[9] = {"attn_q", "attn_k", "attn_v", "attn_output", "attn_norm", "ffn_gate", "ffn_down",
                                "ffn_up", "ffn_norm"};
        for (int i = 0; i < 9; i++) snprintf(n[i], sizeof n[i], "blk.%d.%s.weight", l, names[i]);
        ADD(n[0], 2, C, C, lw->wq);
        ADD(n[1], 2, C, kv, lw->wk);
        ADD(n[2], 2, C, kv, lw->wv);
        ADD(n[3], 2, C, C, lw->wo);
        ADD(n[4], 1, C, 1, lw->attn_norm);
        ADD(n[5], 2, C, F, lw->w_gate);
        ADD(n[6], 2, F, C, lw->w_down);
        ADD(n[7], 2, C, F, lw->w_up);
        ADD(n[8], 1, C, 1, lw->ffn_norm);
    }
#undef ADD
    if (s == HL_OK) s = hl_gguf_writer_write_file(w, path, err);
    hl_gguf_writer_free(w);
    return s;
}
