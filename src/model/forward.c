/* forward.c: the Llama-family forward pass for a batch of tokens over the
 * KV cache.
 *
 * For each layer: x += Wo·attn(rope(Wq·n), rope(Wk·n), Wv·n) with n =
 * rmsnorm(x), then x += Wdown·(silu(Wgate·n) ⊙ Wup·n) with n = rmsnorm(x);
 * finally logits = Wout·rmsnorm(x). Every projection goes through project(),
 * which calls the context's projection hook (context.h), where LoRA adapters
 * add s·B(A·x). Architecture extras, as
 * llama.cpp computes them: qwen2 adds the q/k/v biases after the projection
 * (and its adapters); qwen3 RMS-normalises each q and k head (weights
 * attn_q_norm/attn_k_norm) before RoPE; qwen2/3 rotate the pairs
 * (i, i + D/2), llama the pairs (2i, 2i+1), with Llama-3's rope_freqs
 * dividing each pair's angle. */
#include "model/context.h"
#include "kernels/kernel_choice.h"
#include "kernels/kernels.h"
#include "util/alloc.h"
#include "util/error.h"

#include <string.h>

hl_context_params hl_context_default_params(void) {
    hl_context_params p = {.n_ctx = 0, .n_threads = 1, .weights = HL_WEIGHTS_AUTO};
    return p;
}

void hl_context_free(hl_context *ctx) {
    if (!ctx) return;
    hl_pool_free(ctx->pool);
    hl_huge_free(ctx->kcache, ctx->k_mapped);
    hl_huge_free(ctx->vcache, ctx->v_mapped);
    float *bufs[] = {ctx->x, ctx->xb, ctx->q, ctx->att, ctx->hb, ctx->hb2, ctx->proj, ctx->att_scratch};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) hl_aligned_free(bufs[i]);
    hl_free(ctx->rope_cs);
    if (ctx->hook.free_state) ctx->hook.free_state(ctx->hook.state);
    hl_aligned_free(ctx->qscratch);
    hl_free(ctx);
}

int32_t hl_context_n_ctx(const hl_context *ctx) { return ctx->n_ctx; }

hl_weight_layout hl_context_weight_layout(const hl_context *ctx) {
    return ctx->packed ? HL_WEIGHTS_PACKED : HL_WEIGHTS_ROWS;
}

hl_status hl_context_set_scene_vectors(hl_context *ctx, const float *vectors, int32_t n, hl_error *err) {
    if (n < 0) return hl_fail(err, HL_ERR_INVALID_ARG, "negative scene vector count");
    ctx->scene_vectors = vectors;
    ctx->n_scene_vectors = vectors ? n : 0;
    return HL_OK;
}

void hl_context_set_projection_hook(hl_context *ctx, const hl_projection_hook *hook) {
    if (ctx->hook.state != hook->state && ctx->hook.free_state) ctx->hook.free_state(ctx->hook.state);
    ctx->hook = *hook;
}

hl_status hl_context_init(const hl_model *m, const hl_context_params *params, hl_context **out, hl_error *err) {
    *out = NULL;
    const hl_model_config *c = &m->cfg;
    hl_context_params p = params ? *params : hl_context_default_params();
    /* The default follows the work, not the header: a file may claim 2^24 positions. */
    if (p.n_ctx <= 0) p.n_ctx = c->seq_len < HL_CONTEXT_DEFAULT_MAX ? c->seq_len : HL_CONTEXT_DEFAULT_MAX;
    if (p.n_ctx > c->seq_len)
        return hl_fail(err, HL_ERR_INVALID_ARG,
                       "a context of %d positions is longer than the model's context length (%d positions)", p.n_ctx,
                       c->seq_len);
    if (p.n_threads < 1 || p.n_threads > 256)
        return hl_fail(err, HL_ERR_INVALID_ARG, "threads must be in 1..256 (got %d)", p.n_threads);
    int32_t layout = HL_WEIGHTS_ROWS;
    /* AUTO: the measured choice for this microarchitecture and kernel level
     * (kernels/kernel_choice.c), else packed wherever the prompt tile is
     * vectorised: s110M pp128 at 2 threads (BENCHMARKS.md) went from 638 to
     * 1,215 tok/s on AVX2 and from 1,363 to 1,826 on AVX-512. */
    hl_status is = hl_isa_check(err); /* refuses a $HYPERLORA_ISA this CPU lacks */
    if (is != HL_OK) return is;
    const int prefer_packed = hl_kernel_choice_active().infer == HL_WEIGHTS_PACKED;
    hl_status ls = hl_weight_layout_resolve(p.weights, prefer_packed, &layout, err);
    if (ls != HL_OK) return ls;
    int32_t quant_a8 = 0;
    if (m->quantized && (ls = hl_quant_product_resolve(&quant_a8, err)) != HL_OK) return ls;
    if (m->quantized && (ls = hl_decode_ahead_check(err)) != HL_OK) return ls;
    /* Quantized weights are read from their blocks; packing is for f32 bases. */
    if (m->quantized) layout = HL_WEIGHTS_ROWS;
    hl_context *ctx = hl_calloc(1, sizeof *ctx);
    if (!ctx) return hl_fail(err, HL_ERR_NOMEM, "out of memory creating a context");
    ctx->m = m;
    ctx->n_ctx = p.n_ctx;
    ctx->n_batch = p.n_ctx < 128 ? p.n_ctx : 128;
    int64_t C = c->dim, F = c->hidden_dim, D = hl_cfg_head_dim(c), kv = (int64_t)c->n_kv_heads * D;
    int64_t QD = (int64_t)c->n_heads * D; /* q and attention-output width; C unless the file sets key_length */
    int64_t B = ctx->n_batch, L = c->n_layers, wide = C > F ? C : F;
    ctx->pool = hl_pool_init(p.n_threads);
    /* The caches' pages are touched only as they fill: huge pages from 2 MiB
     * (hl_huge_calloc), so that decoding does not stop at a page fault for
     * every 4 KiB it writes; the rest 64-byte aligned (HL_VECTOR_ALIGN). */
    ctx->kcache = hl_huge_calloc((size_t)(L * ctx->n_ctx), (size_t)kv * sizeof(float), &ctx->k_mapped);
    ctx->vcache = hl_huge_calloc((size_t)(L * ctx->n_ctx), (size_t)kv * sizeof(float), &ctx->v_mapped);
    ctx->x = hl_aligned_calloc((size_t)(B * C), sizeof(float));
    ctx->xb = hl_aligned_calloc((size_t)(B * C), sizeof(float));
    ctx->q = hl_aligned_calloc((size_t)(B * QD), sizeof(float));
    ctx->att = hl_aligned_calloc((size_t)(B * QD), sizeof(float));
    ctx->hb = hl_aligned_calloc((size_t)(B * F), sizeof(float));
    ctx->hb2 = hl_aligned_calloc((size_t)(B * F), sizeof(float));
    ctx->proj = hl_aligned_calloc((size_t)(B * wide), sizeof(float));
    ctx->att_scratch = hl_aligned_calloc((size_t)p.n_threads * (size_t)ctx->n_ctx, sizeof(float));
    if (m->quantized) {
        int64_t floats = hl_qmatmul_scratch_floats(p.n_threads, wide > QD ? wide : QD);
        int64_t a8 = hl_qmatmul_a8_scratch_bytes(wide > QD ? wide : QD);
        if (floats * (int64_t)sizeof(float) < a8) floats = (a8 + 3) / 4;
        ctx->qscratch = hl_aligned_calloc((size_t)floats, sizeof(float));
        ctx->qscratch_bytes = floats * (int64_t)sizeof(float);
        ctx->quant_a8 = quant_a8;
    }
    /* rope_cs grows with the positions used (rope_reserve). */
    if (!ctx->pool || !ctx->kcache || !ctx->vcache || !ctx->x || !ctx->xb || !ctx->q || !ctx->att || !ctx->hb ||
        !ctx->hb2 || !ctx->proj || !ctx->att_scratch || (m->quantized && !ctx->qscratch)) {
        hl_context_free(ctx);
        return hl_fail(err, HL_ERR_NOMEM, "out of memory creating a context of %d positions", p.n_ctx);
    }
    if (layout == HL_WEIGHTS_PACKED && (ls = hl_model_packed(m, ctx->pool, &ctx->packed, err)) != HL_OK) {
        hl_context_free(ctx);
        return ls;
    }
    *out = ctx;
    return HL_OK;
}

void hl_context_qmatmul(const hl_context *ctx, hl_pool *pool, float *out, int64_t ldo, const float *x,
                        const hl_qweight *q, int64_t T) {
    if (ctx->quant_a8 && hl_qmatmul_a8_supports(q->type))
        hl_qmatmul_a8(pool, out, ldo, x, q, T, ctx->qscratch, ctx->qscratch_bytes);
    else hl_qmatmul(pool, out, ldo, x, q, T, ctx->qscratch);
}

/* out (T, O; row stride ldo) = x (T, K) · Wᵀ, plus the projection hook's terms on (layer, target). */
/* W is row-major, or packed when the context runs on packed weights. */
/* A quantized W (hl_model_qweight) is read from its blocks whatever the layout. */
static hl_status project_ld(hl_context *ctx, int layer, int target, const float *W, const float *x, float *out,
                            int64_t ldo, int64_t T, int64_t K, int64_t O, hl_error *err) {
    const hl_qweight *q = hl_model_qweight(ctx->m, layer, target);
    if (q) hl_context_qmatmul(ctx, ctx->pool, out, ldo, x, q, T);
    else if (ctx->packed) hl_matmul_packed(ctx->pool, out, ldo, x, W, T, K, O);
    else hl_matmul_strided(ctx->pool, out, ldo, x, W, T, K, O, 1.0f, 0);
    if (ctx->hook.apply) return ctx->hook.apply(ctx->hook.state, ctx, layer, target, x, out, ldo, T, err);
    return HL_OK;
}

static hl_status project(hl_context *ctx, int layer, int target, const float *W, const float *x, float *out,
                         int64_t T, int64_t K, int64_t O, hl_error *err) {
    return project_ld(ctx, layer, target, W, x, out, O, T, K, O, err);
}

/* Decoding a quantized model: the parts of one input in one 8-bit-activation
 * dispatch (hl_qmatmul_a8_group: the same bits as one call each, with longer
 * runs of rows per thread). 0 when a part cannot take it. */
static int decode_group(const hl_context *ctx, int layer, const int *targets, const hl_matmul_part *parts, int n,
                        const float *x, int64_t T) {
    if (!ctx->m->quantized || T != 1 || !ctx->quant_a8 || n > HL_QGROUP_MAX) return 0;
    hl_qpart qp[HL_QGROUP_MAX];
    for (int i = 0; i < n; i++) {
        qp[i].out = parts[i].out;
        qp[i].w = hl_model_qweight(ctx->m, layer, targets[i]);
        if (!qp[i].w || !hl_qmatmul_a8_supports(qp[i].w->type)) return 0;
    }
    hl_qmatmul_a8_group(ctx->pool, x, qp, n, ctx->qscratch, ctx->qscratch_bytes);
    return 1;
}

/* The projections of one input (q/k/v, or gate/up) as one dispatch, then each target's hook terms. */
static hl_status project_group(hl_context *ctx, int layer, const int *targets, const hl_matmul_part *parts, int n,
                               const float *x, int64_t T, int64_t K, hl_error *err) {
    if (decode_group(ctx, layer, targets, parts, n, x, T)) {
        /* the hook terms below, as for the other paths */
    } else if (ctx->m->quantized) { /* each part on its own: any of them may be quantized (the _M mixes mix types) */
        for (int i = 0; i < n; i++) {
            const hl_qweight *q = hl_model_qweight(ctx->m, layer, targets[i]);
            if (q) hl_context_qmatmul(ctx, ctx->pool, parts[i].out, parts[i].ldo, x, q, T);
            else hl_matmul_strided(ctx->pool, parts[i].out, parts[i].ldo, x, parts[i].w, T, K, parts[i].O, 1.0f, 0);
        }
    } else if (ctx->packed) hl_matmul_packed_group(ctx->pool, x, T, K, parts, n);
    else hl_matmul_group(ctx->pool, x, T, K, parts, n);
    for (int i = 0; ctx->hook.apply && i < n; i++) {
        hl_status s = ctx->hook.apply(ctx->hook.state, ctx, layer, targets[i], x, parts[i].out, parts[i].ldo, T, err);
        if (s != HL_OK) return s;
    }
    return HL_OK;
}

const float *hl_context_embedding_row(const hl_context *ctx, int32_t id, float *buf) {
    const hl_model *m = ctx->m;
    const int64_t C = m->cfg.dim;
    if (id < 0) return ctx->scene_vectors + (int64_t)(-id - 1) * C;
    if (id >= m->n_vocab_base) return m->extra_embd + (int64_t)(id - m->n_vocab_base) * C;
    return hl_model_embd_row(m, id, buf);
}

static hl_status forward_chunk(hl_context *ctx, const int32_t *tokens, int64_t T, int64_t pos0, float *logits,
                               int all_logits, hl_error *err) {
    const hl_model *m = ctx->m;
    const hl_model_config *c = &m->cfg;
    const int64_t C = c->dim, F = c->hidden_dim, H = c->n_heads, Hkv = c->n_kv_heads, D = hl_cfg_head_dim(c);
    const int64_t kv = Hkv * D, QD = H * D, V = c->vocab_size;
    const int neox = hl_cfg_rope_neox(c);
    hl_status s;
    for (int64_t t = 0; t < T; t++) {
        const float *row = hl_context_embedding_row(ctx, tokens[t], ctx->x + t * C);
        if (row != ctx->x + t * C) memcpy(ctx->x + t * C, row, C * sizeof(float));
    }

    for (int l = 0; l < c->n_layers; l++) {
        /* The projections come from the packed copy when there is one; the norms always from the model. */
        const hl_layer_weights *w = &m->layers[l];
        hl_layer_weights pw;
        if (ctx->packed) {
            const hl_packed_layer *p = &ctx->packed->layers[l];
            pw = *w;
            pw.wq = p->wq;
            pw.wk = p->wk;
            pw.wv = p->wv;
            pw.wo = p->wo;
            pw.w_gate = p->w_gate;
            pw.w_up = p->w_up;
            pw.w_down = p->w_down;
            w = &pw;
        }
        float *kc = ctx->kcache + (int64_t)l * ctx->n_ctx * kv, *vc = ctx->vcache + (int64_t)l * ctx->n_ctx * kv;
        for (int64_t t = 0; t < T; t++) hl_rmsnorm(ctx->xb + t * C, ctx->x + t * C, w->attn_norm, C, c->norm_eps);
        /* K and V go straight into the cache rows of their positions. */
        const int qkv[3] = {HL_TARGET_Q, HL_TARGET_K, HL_TARGET_V};
        const hl_matmul_part qkv_parts[3] = {
            {ctx->q, QD, w->wq, QD}, {kc + pos0 * kv, kv, w->wk, kv}, {vc + pos0 * kv, kv, w->wv, kv}};
        if ((s = project_group(ctx, l, qkv, qkv_parts, 3, ctx->xb, T, C, err))) return s;
        for (int64_t t = 0; t < T; t++) {
            float *q = ctx->q + t * QD, *k = kc + (pos0 + t) * kv, *v = vc + (pos0 + t) * kv;
            if (w->bq) { /* qwen2: biases after the projection and its adapters, as llama.cpp adds them */
                for (int64_t i = 0; i < QD; i++) q[i] += w->bq[i];
                for (int64_t i = 0; i < kv; i++) k[i] += w->bk[i];
                for (int64_t i = 0; i < kv; i++) v[i] += w->bv[i];
            }
            if (w->q_norm) { /* qwen3: each head normalised on its own */
                for (int64_t h = 0; h < H; h++) hl_rmsnorm(q + h * D, q + h * D, w->q_norm, D, c->norm_eps);
                for (int64_t h = 0; h < Hkv; h++) hl_rmsnorm(k + h * D, k + h * D, w->k_norm, D, c->norm_eps);
            }
            const float *cs = ctx->rope_cs + (pos0 + t) * D;
            if (neox) {
                hl_rope_apply_neox(q, H, D, cs, 0);
                hl_rope_apply_neox(k, Hkv, D, cs, 0);
            } else {
                hl_rope_apply(q, H, D, cs, 0);
                hl_rope_apply(k, Hkv, D, cs, 0);
            }
        }
        hl_attention(ctx->pool, ctx->att, ctx->q, kc, vc, T, pos0, H, Hkv, D, ctx->n_ctx, ctx->att_scratch);
        if ((s = project(ctx, l, HL_TARGET_O, w->wo, ctx->att, ctx->proj, T, QD, C, err))) return s;
        for (int64_t i = 0; i < T * C; i++) ctx->x[i] += ctx->proj[i];

        for (int64_t t = 0; t < T; t++) hl_rmsnorm(ctx->xb + t * C, ctx->x + t * C, w->ffn_norm, C, c->norm_eps);
        const int gate_up[2] = {HL_TARGET_GATE, HL_TARGET_UP};
        const hl_matmul_part gate_up_parts[2] = {{ctx->hb, F, w->w_gate, F}, {ctx->hb2, F, w->w_up, F}};
        if ((s = project_group(ctx, l, gate_up, gate_up_parts, 2, ctx->xb, T, C, err))) return s;
        hl_swiglu(ctx->hb, ctx->hb, ctx->hb2, T * F);
        if ((s = project(ctx, l, HL_TARGET_DOWN, w->w_down, ctx->hb, ctx->proj, T, F, C, err))) return s;
        for (int64_t i = 0; i < T * C; i++) ctx->x[i] += ctx->proj[i];
    }
    if (!logits) return HL_OK;
    /* Only the rows whose logits are wanted go through the LM head. */
    int64_t first = all_logits ? 0 : T - 1, n = T - first;
    for (int64_t t = first; t < T; t++) hl_rmsnorm(ctx->xb + t * C, ctx->x + t * C, m->output_norm, C, c->norm_eps);
    /* Base rows (with any output adapter), then the frozen hyperlexeme rows. */
    const int64_t Vb = m->n_vocab_base;
    const float *head = ctx->packed ? ctx->packed->output : m->output;
    s = project_ld(ctx, -1, HL_TARGET_OUTPUT, head, ctx->xb + first * C, logits, V, n, C, Vb, err);
    if (s == HL_OK && V > Vb)
        hl_matmul_strided(ctx->pool, logits + Vb, V, ctx->xb + first * C, m->extra_out, n, C, V - Vb, 1.0f, 0);
    return s;
}

/* Makes rope_cs cover positions 0..n_pos-1. The table is recomputed from
 * position 0 at each growth (hl_rope_table computes every row on its own, so
 * the values do not depend on how it grew); growing by doubling keeps the
 * total work within twice the final table. */
static hl_status rope_reserve(hl_context *ctx, int64_t n_pos, hl_error *err) {
    if (n_pos <= ctx->rope_n) return HL_OK;
    const hl_model_config *c = &ctx->m->cfg;
    const int64_t D = hl_cfg_head_dim(c);
    int64_t n = ctx->rope_n * 2 > n_pos ? ctx->rope_n * 2 : n_pos;
    if (n < 64) n = 64;
    if (n > ctx->n_ctx) n = ctx->n_ctx;
    float *cs = hl_malloc_array((size_t)n * (size_t)D, sizeof(float));
    if (!cs) return hl_fail(err, HL_ERR_NOMEM, "out of memory for the RoPE table of %lld positions", (long long)n);
    hl_rope_table_scaled(cs, n, D, c->rope_theta, ctx->m->rope_freqs);
    hl_free(ctx->rope_cs);
    ctx->rope_cs = cs;
    ctx->rope_n = (int32_t)n;
    return HL_OK;
}

hl_status hl_context_eval(hl_context *ctx, const int32_t *tokens, int32_t n, int32_t pos, float *logits,
                          int all_logits, hl_error *err) {
    const hl_model_config *c = &ctx->m->cfg;
    if (n <= 0) return hl_fail(err, HL_ERR_INVALID_ARG, "eval: no tokens");
    if (pos < 0 || (int64_t)pos + n > ctx->n_ctx)
        return hl_fail(err, HL_ERR_LIMIT, "eval: positions %d..%d exceed the context of %d", pos, pos + n - 1,
                       ctx->n_ctx);
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] >= c->vocab_size || (tokens[i] < 0 && -(int64_t)tokens[i] > ctx->n_scene_vectors))
            return hl_fail(err, HL_ERR_INVALID_ARG, "eval: token id %d at index %d is outside the vocabulary (%d)%s",
                           tokens[i], i, c->vocab_size, tokens[i] < 0 ? " and the scene vectors" : "");
    hl_status rs = rope_reserve(ctx, (int64_t)pos + n, err);
    if (rs != HL_OK) return rs;
    for (int32_t done = 0; done < n; done += ctx->n_batch) {
        int32_t T = n - done < ctx->n_batch ? n - done : ctx->n_batch;
        int last = done + T == n;
        float *dst = NULL;
        if (logits && all_logits) dst = logits + (int64_t)done * c->vocab_size;
        else if (logits && last) dst = logits;
        hl_status s = forward_chunk(ctx, tokens + done, T, pos + done, dst, all_logits, err);
        if (s != HL_OK) return s;
    }
    return HL_OK;
}
