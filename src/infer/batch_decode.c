/* batch_decode.c: the rows of several sequences (a decoding token or a
 * prompt chunk each), base products shared across them (see batch_decode.h).
 * The layer loop follows forward.c's forward_chunk step for step, with rows
 * from different contexts. */
#include "infer/batch_decode.h"
#include "kernels/kernels.h"
#include "util/alloc.h"
#include "util/error.h"

#include <stdint.h>
#include <string.h>

struct hl_batch_decode {
    int32_t cap;                       /* rows the buffers hold */
    float *x, *xb, *q, *k, *v, *att, *hb, *hb2, *proj; /* (cap, C / kv / F / max(C,F)) */
    int32_t seg_cap;                   /* sequences the per-sequence buffers hold */
    float *xh, *head;                  /* (seg_cap, C), (seg_cap, Vb): the rows whose logits are wanted */
    hl_pool **saved;                   /* (seg_cap) the contexts' own pools while the shared one runs */
    float *rope_cs;                    /* (rope_n, D) */
    int32_t rope_n;
};

void hl_batch_decode_free(hl_batch_decode *b) {
    if (!b) return;
    hl_aligned_free(b->x);
    hl_aligned_free(b->xb);
    hl_aligned_free(b->q);
    hl_aligned_free(b->k);
    hl_aligned_free(b->v);
    hl_aligned_free(b->att);
    hl_aligned_free(b->hb);
    hl_aligned_free(b->hb2);
    hl_aligned_free(b->proj);
    hl_aligned_free(b->head);
    hl_aligned_free(b->xh);
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

static hl_status reserve(hl_batch_decode **bp, const hl_model *m, int32_t n, int32_t n_segs, int32_t max_pos,
                         hl_error *err) {
    hl_batch_decode *b = *bp;
    if (!b && !(b = *bp = hl_calloc(1, sizeof *b))) return hl_fail(err, HL_ERR_NOMEM, "out of memory");
    const hl_model_config *c = &m->cfg;
    const int64_t C = c->dim, F = c->hidden_dim, D = C / c->n_heads, kv = (int64_t)c->n_kv_heads * D;
    const int64_t wide = C > F ? C : F, Vb = m->n_vocab_base;
    if (n > b->cap) {
        int32_t cap = n > 2 * b->cap ? n : 2 * b->cap;
        float **bufs[] = {&b->x, &b->xb, &b->q, &b->k, &b->v, &b->att, &b->hb, &b->hb2, &b->proj};
        const int64_t widths[] = {C, C, C, kv, kv, C, F, F, wide};
        for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) {
            hl_aligned_free(*bufs[i]);
            if (!(*bufs[i] = hl_aligned_calloc((size_t)cap * (size_t)widths[i], sizeof(float)))) {
                b->cap = 0;
                return hl_fail(err, HL_ERR_NOMEM, "out of memory for a batch of %d rows", cap);
            }
        }
        b->cap = cap;
    }
    if (n_segs > b->seg_cap) {
        int32_t cap = n_segs > 2 * b->seg_cap ? n_segs : 2 * b->seg_cap;
        hl_aligned_free(b->xh);
        hl_aligned_free(b->head);
        hl_free(b->saved);
        b->xh = hl_aligned_calloc((size_t)cap * (size_t)C, sizeof(float));
        b->head = hl_aligned_calloc((size_t)cap * (size_t)Vb, sizeof(float));
        b->saved = hl_calloc((size_t)cap, sizeof *b->saved);
        if (!b->xh || !b->head || !b->saved) {
            b->seg_cap = 0;
            return hl_fail(err, HL_ERR_NOMEM, "out of memory for a batch of %d sequences", cap);
        }
        b->seg_cap = cap;
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

/* Each sequence's projection hook (its adapters) on its own rows of (layer, target). */
static hl_status lora_rows(const hl_batch_seg *segs, int32_t n_segs, int layer, int target, const float *x,
                           int64_t ldx, float *out, int64_t ldo, hl_error *err) {
    for (int32_t i = 0, r0 = 0; i < n_segs; r0 += segs[i++].n) {
        hl_context *ci = segs[i].ctx;
        const hl_projection_hook *h = hl_context_projection_hook(ci);
        if (!h->apply) continue;
        hl_status s = h->apply(h->state, ci, layer, target, x + (int64_t)r0 * ldx, out + (int64_t)r0 * ldo, ldo,
                               segs[i].n, err);
        if (s != HL_OK) return s;
    }
    return HL_OK;
}

/* out (n, O) = x · Wᵀ on whichever form the weight has, as forward.c's project_ld. */
static void base_product(hl_pool *pool, const hl_context *c0, int layer, int target, const float *W, const float *x,
                         float *out, int64_t ldo, int64_t n, int64_t K, int64_t O) {
    const hl_qweight *qw = hl_model_qweight(c0->m, layer, target);
    if (qw) hl_context_qmatmul(c0, pool, out, ldo, x, qw, n);
    else if (c0->packed) hl_matmul_packed(pool, out, ldo, x, W, n, K, O);
    else hl_matmul_strided(pool, out, ldo, x, W, n, K, O, 1.0f, 0);
}

static void base_group(hl_pool *pool, const hl_context *c0, int layer, const int *targets,
                       const hl_matmul_part *parts, int np, const float *x, int64_t n, int64_t K) {
    if (c0->m->quantized) {
        for (int i = 0; i < np; i++) {
            const hl_qweight *qw = hl_model_qweight(c0->m, layer, targets[i]);
            if (qw) hl_context_qmatmul(c0, pool, parts[i].out, parts[i].ldo, x, qw, n);
            else hl_matmul_strided(pool, parts[i].out, parts[i].ldo, x, parts[i].w, n, K, parts[i].O, 1.0f, 0);
        }
    } else if (c0->packed) hl_matmul_packed_group(pool, x, n, K, parts, np);
    else hl_matmul_group(pool, x, n, K, parts, np);
}

hl_status hl_batch_decode_run(hl_batch_decode **bp, hl_pool *pool, const hl_batch_seg *segs, int32_t n_segs,
                              hl_error *err) {
    if (n_segs <= 0) return HL_OK;
    const hl_context *c0 = segs[0].ctx;
    const hl_model *m = c0->m;
    const hl_model_config *c = &m->cfg;
    const int64_t C = c->dim, F = c->hidden_dim, H = c->n_heads, Hkv = c->n_kv_heads, D = C / H, kv = Hkv * D;
    const int64_t Vb = m->n_vocab_base;
    int32_t max_pos = 0, n = 0, nh = 0;
    for (int32_t i = 0; i < n_segs; i++) {
        const hl_batch_seg *g = &segs[i];
        const hl_context *ci = g->ctx;
        if (g->n < 1 || g->n > ci->n_batch || g->pos0 < 0 || (int64_t)g->pos0 + g->n > ci->n_ctx)
            return hl_fail(err, HL_ERR_INVALID_ARG,
                           "batch: sequence %d: %d tokens at position %d (at most %d at once, %d positions)", i, g->n,
                           g->pos0, ci->n_batch, ci->n_ctx);
        for (int32_t t = 0; t < g->n; t++) {
            int32_t id = g->tokens[t];
            if (id >= ci->m->cfg.vocab_size || (id < 0 && -(int64_t)id > ci->n_scene_vectors))
                return hl_fail(err, HL_ERR_INVALID_ARG, "batch: sequence %d: token id %d at index %d is out of range",
                               i, id, t);
        }
        if (g->pos0 + g->n - 1 > max_pos) max_pos = g->pos0 + g->n - 1;
        if (n > INT32_MAX - g->n) return hl_fail(err, HL_ERR_LIMIT, "batch: too many rows");
        n += g->n;
        nh += g->logits != NULL;
    }
    hl_status s = reserve(bp, m, n, n_segs, max_pos, err);
    if (s != HL_OK) return s;
    hl_batch_decode *b = *bp;
    /* The adapters' products run on the shared pool too (thread-count invariant). */
    hl_pool **saved = b->saved;
    for (int32_t i = 0; i < n_segs; i++) {
        saved[i] = segs[i].ctx->pool;
        segs[i].ctx->pool = pool;
    }
    for (int32_t i = 0, r = 0; i < n_segs; i++)
        for (int32_t t = 0; t < segs[i].n; t++, r++) {
            float *dst = b->x + (int64_t)r * C;
            const float *row = hl_context_embedding_row(segs[i].ctx, segs[i].tokens[t], dst);
            if (row != dst) memcpy(dst, row, (size_t)C * sizeof(float));
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
            s = lora_rows(segs, n_segs, l, qkv[t], b->xb, C, qkv_parts[t].out, qkv_parts[t].ldo, err);
        if (s != HL_OK) break;
        /* Each sequence's rows: RoPE at their positions, K and V into its cache, then causal attention over it. */
        for (int32_t i = 0, r0 = 0; i < n_segs; r0 += segs[i++].n) {
            hl_context *ci = segs[i].ctx;
            const int64_t pos0 = segs[i].pos0;
            float *kc = ci->kcache + (int64_t)l * ci->n_ctx * kv, *vc = ci->vcache + (int64_t)l * ci->n_ctx * kv;
            for (int64_t t = 0, r = r0; t < segs[i].n; t++, r++) {
                const float *cs = b->rope_cs + (pos0 + t) * D;
                hl_rope_apply(b->q + r * C, H, D, cs, 0);
                memcpy(kc + (pos0 + t) * kv, b->k + r * kv, (size_t)kv * sizeof(float));
                memcpy(vc + (pos0 + t) * kv, b->v + r * kv, (size_t)kv * sizeof(float));
                hl_rope_apply(kc + (pos0 + t) * kv, Hkv, D, cs, 0);
            }
            hl_attention(pool, b->att + (int64_t)r0 * C, b->q + (int64_t)r0 * C, kc, vc, segs[i].n, pos0, H, Hkv, D,
                         ci->n_ctx, ci->att_scratch);
        }
        base_product(pool, c0, l, HL_TARGET_O, w->wo, b->att, b->proj, C, n, C, C);
        if ((s = lora_rows(segs, n_segs, l, HL_TARGET_O, b->att, C, b->proj, C, err)) != HL_OK) break;
        for (int64_t i = 0; i < n * C; i++) b->x[i] += b->proj[i];

        for (int32_t i = 0; i < n; i++) hl_rmsnorm(b->xb + i * C, b->x + i * C, w->ffn_norm, C, c->norm_eps);
        const int gate_up[2] = {HL_TARGET_GATE, HL_TARGET_UP};
        const hl_matmul_part gu_parts[2] = {{b->hb, F, w->w_gate, F}, {b->hb2, F, w->w_up, F}};
        base_group(pool, c0, l, gate_up, gu_parts, 2, b->xb, n, C);
        for (int t = 0; t < 2 && s == HL_OK; t++)
            s = lora_rows(segs, n_segs, l, gate_up[t], b->xb, C, gu_parts[t].out, F, err);
        if (s != HL_OK) break;
        hl_swiglu(b->hb, b->hb, b->hb2, (int64_t)n * F);
        base_product(pool, c0, l, HL_TARGET_DOWN, w->w_down, b->hb, b->proj, C, n, F, C);
        if ((s = lora_rows(segs, n_segs, l, HL_TARGET_DOWN, b->hb, F, b->proj, C, err)) != HL_OK) break;
        for (int64_t i = 0; i < n * C; i++) b->x[i] += b->proj[i];
    }
    if (s == HL_OK && nh) {
        /* Only each sequence's last row goes through the LM head, and only where its logits are wanted. */
        for (int32_t i = 0, r0 = 0, j = 0; i < n_segs; r0 += segs[i++].n)
            if (segs[i].logits) {
                hl_rmsnorm(b->xh + (int64_t)j * C, b->x + (int64_t)(r0 + segs[i].n - 1) * C, m->output_norm, C,
                           c->norm_eps);
                j++;
            }
        const float *head = c0->packed ? c0->packed->output : m->output;
        base_product(pool, c0, -1, HL_TARGET_OUTPUT, head, b->xh, b->head, Vb, nh, C, Vb);
        for (int32_t i = 0, j = 0; s == HL_OK && i < n_segs; i++) {
            if (!segs[i].logits) continue;
            hl_context *ci = segs[i].ctx;
            const hl_projection_hook *h = hl_context_projection_hook(ci);
            if (h->apply) s = h->apply(h->state, ci, -1, HL_TARGET_OUTPUT, b->xh + (int64_t)j * C,
                                       b->head + (int64_t)j * Vb, Vb, 1, err);
            if (s != HL_OK) break;
            const hl_model *mi = ci->m;
            const int64_t V = mi->cfg.vocab_size;
            memcpy(segs[i].logits, b->head + (int64_t)j * Vb, (size_t)Vb * sizeof(float));
            if (V > Vb)
                hl_matmul_strided(pool, segs[i].logits + Vb, V, b->xh + (int64_t)j * C, mi->extra_out, 1, C, V - Vb,
                                  1.0f, 0);
            j++;
        }
    }
    /* In reverse: a context with several segments gets back the pool it had before the first. */
    for (int32_t i = n_segs - 1; i >= 0; i--) segs[i].ctx->pool = saved[i];
    return s;
}
