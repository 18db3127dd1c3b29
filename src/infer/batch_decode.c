/* batch_decode.c: one token per context, base products shared across the
 * contexts (see batch_decode.h). The layer loop follows forward.c's
 * forward_chunk step for step, with rows from different contexts. */
#include "infer/batch_decode.h"
#include "kernels/kernels.h"
#include "util/alloc.h"
#include "util/error.h"

#include <string.h>

struct hl_batch_decode {
    int32_t cap;                       /* rows the buffers hold */
    float *x, *xb, *q, *k, *v, *att, *hb, *hb2, *proj, *head; /* (cap, C / kv / F / max(C,F) / Vb) */
    hl_pool **saved;                   /* (cap) the contexts' own pools while the shared one runs */
    float *rope_cs;                    /* (rope_n, D) */
    int32_t rope_n;
};

void hl_batch_decode_free(hl_batch_decode *b) {
    if (!b) return;
    hl_free(b->x);
    hl_free(b->xb);
    hl_free(b->q);
    hl_free(b->k);
    hl_free(b->v);
    hl_free(b->att);
    hl_free(b->hb);
    hl_free(b->hb2);
    hl_free(b->proj);
    hl_free(b->head);
    hl_free(b->rope_cs);
    hl_free(b->saved);
    hl_free(b);
}

/* The shared pass implements the plain Llama layer only: no biases or q/k norms (qwen2, qwen3), no
 * Llama-3 frequency factors, head size = width / heads. Other models decode one context at a time. */
static int plain_llama(const hl_model *m) {
    return m->cfg.arch == HL_ARCH_LLAMA && !m->rope_freqs && hl_cfg_head_dim(&m->cfg) == m->cfg.dim / m->cfg.n_heads;
}

int hl_batch_decode_compatible(const hl_context *a, const hl_context *b) {
    const hl_model *ma = a->m, *mb = b->m;
    return plain_llama(ma) && plain_llama(mb) && ma->layers == mb->layers && ma->output == mb->output && ma->token_embd == mb->token_embd &&
           ma->n_vocab_base == mb->n_vocab_base && a->packed == b->packed &&
           !memcmp(&ma->cfg.dim, &mb->cfg.dim, sizeof(int32_t) * 5);
}

static hl_status reserve(hl_batch_decode **bp, const hl_model *m, int32_t n, int32_t max_pos, hl_error *err) {
    hl_batch_decode *b = *bp;
    if (!b && !(b = *bp = hl_calloc(1, sizeof *b))) return hl_fail(err, HL_ERR_NOMEM, "out of memory");
    const hl_model_config *c = &m->cfg;
    const int64_t C = c->dim, F = c->hidden_dim, D = C / c->n_heads, kv = (int64_t)c->n_kv_heads * D;
    const int64_t wide = C > F ? C : F, Vb = m->n_vocab_base;
    if (n > b->cap) {
        int32_t cap = n > 2 * b->cap ? n : 2 * b->cap;
        float **bufs[] = {&b->x, &b->xb, &b->q, &b->k, &b->v, &b->att, &b->hb, &b->hb2, &b->proj, &b->head};
        const int64_t widths[] = {C, C, C, kv, kv, C, F, F, wide, Vb};
        for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) {
            hl_free(*bufs[i]);
            if (!(*bufs[i] = hl_malloc_array((size_t)cap * (size_t)widths[i], sizeof(float)))) {
                b->cap = 0;
                return hl_fail(err, HL_ERR_NOMEM, "out of memory for a batch of %d rows", cap);
            }
        }
        hl_free(b->saved);
        if (!(b->saved = hl_calloc((size_t)cap, sizeof *b->saved))) {
            b->cap = 0;
            return hl_fail(err, HL_ERR_NOMEM, "out of memory for a batch of %d rows", cap);
        }
        b->cap = cap;
    }
    if (max_pos >= b->rope_n) {
        /* Every row of the table is computed on its own: the same values as a context's table. */
        int32_t np = max_pos + 1 > 2 * b->rope_n ? max_pos + 1 : 2 * b->rope_n;
        if (np > c->seq_len) np = c->seq_len;
        float *cs = hl_malloc_array((size_t)np * (size_t)D, sizeof(float));
        if (!cs) return hl_fail(err, HL_ERR_NOMEM, "out of memory for the RoPE table");
        hl_rope_table(cs, np, D, c->rope_theta);
        hl_free(b->rope_cs);
        b->rope_cs = cs;
        b->rope_n = np;
    }
    return HL_OK;
}

/* Each context's projection hook (its adapters) on its own row of (layer, target). */
static hl_status lora_rows(hl_context *const *ctxs, int32_t n, int layer, int target, const float *x, int64_t ldx,
                           float *out, int64_t ldo, hl_error *err) {
    for (int32_t i = 0; i < n; i++) {
        const hl_projection_hook *h = hl_context_projection_hook(ctxs[i]);
        if (!h->apply) continue;
        hl_status s = h->apply(h->state, ctxs[i], layer, target, x + i * ldx, out + i * ldo, ldo, 1, err);
        if (s != HL_OK) return s;
    }
    return HL_OK;
}

/* out (n, O) = x · Wᵀ on whichever form the weight has, as forward.c's project_ld. */
static void base_product(hl_pool *pool, const hl_context *c0, int layer, int target, const float *W, const float *x,
                         float *out, int64_t ldo, int64_t n, int64_t K, int64_t O) {
    const hl_qweight *qw = hl_model_qweight(c0->m, layer, target);
    if (qw) hl_qmatmul(pool, out, ldo, x, qw, n, c0->qscratch);
    else if (c0->packed) hl_matmul_packed(pool, out, ldo, x, W, n, K, O);
    else hl_matmul_strided(pool, out, ldo, x, W, n, K, O, 1.0f, 0);
}

static void base_group(hl_pool *pool, const hl_context *c0, int layer, const int *targets,
                       const hl_matmul_part *parts, int np, const float *x, int64_t n, int64_t K) {
    if (c0->m->quantized) {
        for (int i = 0; i < np; i++) {
            const hl_qweight *qw = hl_model_qweight(c0->m, layer, targets[i]);
            if (qw) hl_qmatmul(pool, parts[i].out, parts[i].ldo, x, qw, n, c0->qscratch);
            else hl_matmul_strided(pool, parts[i].out, parts[i].ldo, x, parts[i].w, n, K, parts[i].O, 1.0f, 0);
        }
    } else if (c0->packed) hl_matmul_packed_group(pool, x, n, K, parts, np);
    else hl_matmul_group(pool, x, n, K, parts, np);
}

hl_status hl_batch_decode_run(hl_batch_decode **bp, hl_pool *pool, hl_context *const *ctxs, const int32_t *tokens,
                              const int32_t *pos, float *const *logits, int32_t n, hl_error *err) {
    if (n <= 0) return HL_OK;
    const hl_context *c0 = ctxs[0];
    const hl_model *m = c0->m;
    const hl_model_config *c = &m->cfg;
    const int64_t C = c->dim, F = c->hidden_dim, H = c->n_heads, Hkv = c->n_kv_heads, D = C / H, kv = Hkv * D;
    const int64_t Vb = m->n_vocab_base;
    int32_t max_pos = 0;
    for (int32_t i = 0; i < n; i++) {
        const hl_model *mi = ctxs[i]->m;
        if (pos[i] < 0 || pos[i] >= ctxs[i]->n_ctx || tokens[i] < 0 || tokens[i] >= mi->cfg.vocab_size)
            return hl_fail(err, HL_ERR_INVALID_ARG, "batch decode: row %d: token %d at position %d is out of range", i,
                           tokens[i], pos[i]);
        if (pos[i] > max_pos) max_pos = pos[i];
    }
    hl_status s = reserve(bp, m, n, max_pos, err);
    if (s != HL_OK) return s;
    hl_batch_decode *b = *bp;
    /* The adapters' products run on the shared pool too (thread-count invariant). */
    hl_pool **saved = b->saved;
    for (int32_t i = 0; i < n; i++) {
        saved[i] = ctxs[i]->pool;
        ctxs[i]->pool = pool;
    }
    for (int32_t i = 0; i < n; i++) {
        const hl_model *mi = ctxs[i]->m;
        int32_t id = tokens[i];
        const float *row = id >= mi->n_vocab_base ? mi->extra_embd + (int64_t)(id - mi->n_vocab_base) * C
                                                  : hl_model_embd_row(mi, id, b->x + i * C);
        if (row != b->x + i * C) memcpy(b->x + i * C, row, (size_t)C * sizeof(float));
    }
    for (int l = 0; l < c->n_layers && s == HL_OK; l++) {
        const hl_layer_weights *w = &m->layers[l];
        hl_layer_weights pw;
        if (c0->packed) {
            const hl_packed_layer *p = &c0->packed->layers[l];
            pw = (hl_layer_weights){.attn_norm = w->attn_norm, .wq = p->wq, .wk = p->wk, .wv = p->wv, .wo = p->wo,
                                    .ffn_norm = w->ffn_norm, .w_gate = p->w_gate, .w_up = p->w_up,
                                    .w_down = p->w_down};
            w = &pw;
        }
        for (int32_t i = 0; i < n; i++) hl_rmsnorm(b->xb + i * C, b->x + i * C, w->attn_norm, C, c->norm_eps);
        const int qkv[3] = {HL_TARGET_Q, HL_TARGET_K, HL_TARGET_V};
        const hl_matmul_part qkv_parts[3] = {{b->q, C, w->wq, C}, {b->k, kv, w->wk, kv}, {b->v, kv, w->wv, kv}};
        base_group(pool, c0, l, qkv, qkv_parts, 3, b->xb, n, C);
        for (int t = 0; t < 3 && s == HL_OK; t++)
            s = lora_rows(ctxs, n, l, qkv[t], b->xb, C, qkv_parts[t].out, qkv_parts[t].ldo, err);
        if (s != HL_OK) break;
        for (int32_t i = 0; i < n; i++) {
            hl_context *ci = ctxs[i];
            float *kc = ci->kcache + (int64_t)l * ci->n_ctx * kv, *vc = ci->vcache + (int64_t)l * ci->n_ctx * kv;
            const float *cs = b->rope_cs + (int64_t)pos[i] * D;
            hl_rope_apply(b->q + i * C, H, D, cs, 0);
            memcpy(kc + (int64_t)pos[i] * kv, b->k + i * kv, (size_t)kv * sizeof(float));
            memcpy(vc + (int64_t)pos[i] * kv, b->v + i * kv, (size_t)kv * sizeof(float));
            hl_rope_apply(kc + (int64_t)pos[i] * kv, Hkv, D, cs, 0);
            hl_attention(pool, b->att + i * C, b->q + i * C, kc, vc, 1, pos[i], H, Hkv, D, ci->n_ctx, ci->att_scratch);
        }
        base_product(pool, c0, l, HL_TARGET_O, w->wo, b->att, b->proj, C, n, C, C);
        if ((s = lora_rows(ctxs, n, l, HL_TARGET_O, b->att, C, b->proj, C, err)) != HL_OK) break;
        for (int64_t i = 0; i < n * C; i++) b->x[i] += b->proj[i];

        for (int32_t i = 0; i < n; i++) hl_rmsnorm(b->xb + i * C, b->x + i * C, w->ffn_norm, C, c->norm_eps);
        const int gate_up[2] = {HL_TARGET_GATE, HL_TARGET_UP};
        const hl_matmul_part gu_parts[2] = {{b->hb, F, w->w_gate, F}, {b->hb2, F, w->w_up, F}};
        base_group(pool, c0, l, gate_up, gu_parts, 2, b->xb, n, C);
        for (int t = 0; t < 2 && s == HL_OK; t++) s = lora_rows(ctxs, n, l, gate_up[t], b->xb, C, gu_parts[t].out, F, err);
        if (s != HL_OK) break;
        for (int32_t i = 0; i < n; i++) hl_swiglu(b->hb + i * F, b->hb + i * F, b->hb2 + i * F, F);
        base_product(pool, c0, l, HL_TARGET_DOWN, w->w_down, b->hb, b->proj, C, n, F, C);
        if ((s = lora_rows(ctxs, n, l, HL_TARGET_DOWN, b->hb, F, b->proj, C, err)) != HL_OK) break;
        for (int64_t i = 0; i < n * C; i++) b->x[i] += b->proj[i];
    }
    if (s == HL_OK) {
        for (int32_t i = 0; i < n; i++) hl_rmsnorm(b->xb + i * C, b->x + i * C, m->output_norm, C, c->norm_eps);
        const float *head = c0->packed ? c0->packed->output : m->output;
        base_product(pool, c0, -1, HL_TARGET_OUTPUT, head, b->xb, b->head, Vb, n, C, Vb);
        s = lora_rows(ctxs, n, -1, HL_TARGET_OUTPUT, b->xb, C, b->head, Vb, err);
        for (int32_t i = 0; s == HL_OK && i < n; i++) {
            const hl_model *mi = ctxs[i]->m;
            const int64_t V = mi->cfg.vocab_size;
            memcpy(logits[i], b->head + i * Vb, (size_t)Vb * sizeof(float));
            if (V > Vb) hl_matmul_strided(pool, logits[i] + Vb, V, b->xb + i * C, mi->extra_out, 1, C, V - Vb, 1.0f, 0);
        }
    }
    for (int32_t i = 0; i < n; i++) ctxs[i]->pool = saved[i];
    return s;
}
