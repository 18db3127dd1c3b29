/* trainer.c: forward with saved activations and the backward pass for LoRA
 * training (see trainer.h). Each projection's forward and backward sit
 * together (proj_forward / proj_backward), as do the kernels' in kernels/.
 *
 * Shapes: N = B·T rows; C model dim, F ffn dim, KV = Hkv·D, V vocab, r rank. */
#include "train/trainer.h"
#include "kernels/kernel_choice.h"
#include "kernels/kernels.h"
#include "util/alloc.h"
#include "util/error.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Rows of logits alive at once, (chunk, V). Over f32 weights 256 rows keep
 * the LM head's GEMM near peak: 64 cost s110M 5% of its training speed and
 * s15M 12%, since the head's weight is packed once per chunk. With a
 * quantized head the (256, V) buffer, 31 MiB at V = 32,000, was an eighth of
 * the peak RSS, and 64 rows measured the same speed (s110M q4_K_M, 1 x 256:
 * 182-193 against 182-186 tok/s; peak 244 against 267 MiB). A row's logits
 * do not depend on the chunk, nor do gradients unless the LM head itself is
 * adapted. */
#define LOGIT_CHUNK 256
#define LOGIT_CHUNK_QUANTIZED 64
#define NAME_CAP 96

struct hl_trainer {
    const hl_model *m;
    hl_adapter *ad;
    hl_trainer_params p;
    hl_pool *pool;
    const hl_packed_weights *packed; /* the model's packed projections (LoRA on AVX-512), or NULL: OpenBLAS */
    int64_t N, C, F, KV, V, Vb, H, Hkv, D, QD, L, rmax, wide; /* V = Vb + hyperlexemes; QD = H·D */
    int neox;               /* RoPE on pairs (i, i + D/2) (qwen2/3) */
    float **gA, **gB;       /* [n_weights] gradients, shaped like A and B */
    int64_t *h_off;         /* [n_weights] offset of each weight's saved A·x in lora_h */
    float *lora_h;          /* Σ_i (N, r_i) */
    /* saved per layer */
    float *x;               /* (L+1, N, C) residual stream; x[l] is layer l's input */
    float *x_mid;           /* (L, N, C) after the attention residual */
    float *q, *k, *v;       /* (L, N, QD), (L, N, KV), (L, N, KV); q, k after RoPE */
    float *q_lin, *k_lin;   /* (L, N, QD), (L, N, KV): q, k before the qwen3 head norms (NULL otherwise) */
    float *att_scratch;     /* (2, n_threads, T, T): one head's probabilities per worker, and the backward's dS */
    float *rope_cs;         /* (T, D): RoPE cos/sin per position (hl_rope_table) */
    int32_t *pos;           /* (B, T): the current batch's positions in their documents */
    int64_t chunk;          /* LOGIT_CHUNK, or LOGIT_CHUNK_QUANTIZED when the LM head is quantized */
    float *head_split;      /* (HL_GEMM_SPLIT_K, chunk, C): the LM head's split dY·W */
    float *att;             /* (L, N, QD) */
    float *gate, *up;       /* (L, N, F) */
    /* scratch */
    float *n;               /* (N, C) a norm's output */
    float *nf;              /* (N, C) final norm output */
    float *hb;              /* (N, F) */
    float *tmp;             /* (N, max(C, F)) */
    float *tmp2;            /* (N, max(C, F)) dropout-masked inputs */
    float *logits;          /* (chunk, V) */
    float *dlog;            /* (chunk, max(Vb, V - Vb)) a contiguous slice of dlogits */
    float *dx, *dn, *datt, *dq, *dk, *dv, *dgate, *dup, *dhb; /* backward */
    float *lg, *lh;         /* (N, rmax) LoRA scratch */
    float *qscratch;        /* (n_threads, HL_QTILE, max(C, F)): dequantized weight tiles, quantized bases only */
    /* parameters (both modes) */
    int32_t n_params;
    hl_param *params;
    char *names;            /* n_params × NAME_CAP */
    /* full mode: weight gradients */
    float **gw;             /* [(L+1)·HL_TARGET_COUNT] projection grads, by slot */
    float *g_embd;          /* (V, C) */
    float **g_norm;         /* [2L+1]: attn_norm, ffn_norm per layer, then output_norm */
    uint64_t step;          /* dropout stream */
    int64_t tok_offset;     /* the batch's first token in the dropout index space (hl_trainer_forward_backward_rows) */
    int training;
};

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Dropout keep test for element idx of the input to (layer, target) at this step. */
static inline int keep(const hl_trainer *t, int layer, int target, uint64_t idx) {
    uint64_t h = mix64(t->p.seed ^ mix64(t->step * 0x9e3779b97f4a7c15ULL + (uint64_t)(layer + 2) * 131 + (uint64_t)target));
    h = mix64(h ^ (idx * 0xd1b54a32d192ed03ULL));
    return (double)(h >> 11) * (1.0 / 9007199254740992.0) >= t->p.dropout;
}

/* Copies x (rows, in) with dropout applied into out; row0 is the first row's global index. */
static void dropout_input(const hl_trainer *t, int layer, int target, const float *x, float *out, int64_t rows,
                          int64_t row0, int64_t in) {
    float inv_keep = 1.0f / (1.0f - t->p.dropout);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < in; c++) {
            uint64_t idx = (uint64_t)(t->tok_offset + row0 + r) * (uint64_t)in + (uint64_t)c;
            out[r * in + c] = keep(t, layer, target, idx) ? x[r * in + c] * inv_keep : 0.0f;
        }
}

static int weight_index(const hl_trainer *t, int layer, int target) {
    if (!t->ad) return -1;
    const hl_lora_weight *w = hl_adapter_find(t->ad, layer, target);
    return w ? (int)(w - t->ad->w) : -1;
}

static int64_t wslot(const hl_trainer *t, int layer, int target) {
    return (layer < 0 ? t->L : layer) * HL_TARGET_COUNT + target;
}

/* out (rows, O; row stride ldo) = x (rows, K)·Wᵀ + s·B(A·x); saves A·x (dropout applied to x when training). */
static void proj_forward_ld(hl_trainer *t, int layer, int target, const float *W, const float *x, float *out,
                            int64_t ldo, int64_t rows, int64_t row0, int64_t K, int64_t O) {
    const float *P = t->packed ? hl_packed_weight(t->packed, layer, target) : NULL;
    const hl_qweight *q = hl_model_qweight(t->m, layer, target);
    if (q) hl_qmatmul(t->pool, out, ldo, x, q, rows, t->qscratch);
    else if (P) hl_matmul_packed(t->pool, out, ldo, x, P, rows, K, O);
    else hl_gemm_nt(t->pool, out, ldo, x, W, rows, K, O, 1.0f, 0);
    int i = weight_index(t, layer, target);
    if (i < 0) return;
    const hl_lora_weight *w = &t->ad->w[i];
    const float *xin = x;
    if (t->training && t->p.dropout > 0) {
        dropout_input(t, layer, target, x, t->tmp2, rows, row0, K);
        xin = t->tmp2;
    }
    float *h = t->lora_h + t->h_off[i] + row0 * w->rank;
    hl_gemm_nt(t->pool, h, w->rank, xin, w->A, rows, K, w->rank, 1.0f, 0);
    hl_gemm_nt(t->pool, out, ldo, h, w->B, rows, w->rank, O, hl_lora_weight_scale(t->ad, w), 1);
}

static void proj_forward(hl_trainer *t, int layer, int target, const float *W, const float *x, float *out,
                         int64_t rows, int64_t row0, int64_t K, int64_t O) {
    proj_forward_ld(t, layer, target, W, x, out, O, rows, row0, K, O);
}

/* The LM head: base rows (with any output adapter) then the frozen hyperlexeme rows. */
static void head_forward(hl_trainer *t, int64_t r0, int64_t rows) {
    const hl_model *m = t->m;
    proj_forward_ld(t, -1, HL_TARGET_OUTPUT, m->output, t->nf + r0 * t->C, t->logits, t->V, rows, r0, t->C, t->Vb);
    if (t->V > t->Vb)
        hl_gemm_nt(t->pool, t->logits + t->Vb, t->V, t->nf + r0 * t->C, m->extra_out, rows, t->C, t->V - t->Vb,
                          1.0f, 0);
}

/* Given dy (rows, O) for out = x·Wᵀ + s·B(A·x): dx (rows, K) (+)= dy·W + s·(dy·B)·A (masked by
 * dropout), and the LoRA gradients dB += s·dyᵀ·h, dA += s·(dy·B)ᵀ·x. */
static void proj_backward(hl_trainer *t, int layer, int target, const float *W, const float *x, const float *dy,
                          float *dx, int64_t rows, int64_t row0, int64_t K, int64_t O, int accumulate) {
    const float *P = t->packed ? hl_packed_weight(t->packed, layer, target) : NULL;
    const hl_qweight *q = hl_model_qweight(t->m, layer, target);
    if (q) /* a quantized frozen base: dY·W straight from its blocks */
        hl_qmatmul_nn(t->pool, dx, dy, q, rows, accumulate, t->qscratch);
    else if (P)
        hl_matmul_packed_nn(t->pool, dx, dy, P, rows, O, K, accumulate);
    else if (layer < 0) /* the LM head: O is the vocabulary, far longer than the (rows, K) output */
        hl_gemm_nn_split(t->pool, dx, dy, W, rows, O, K, 1.0f, accumulate, t->head_split);
    else
        hl_gemm_nn(t->pool, dx, dy, W, rows, O, K, 1.0f, accumulate);
    if (t->p.full) { /* dW += dyᵀ·x; a tied head's W is the embedding table, so its gradient adds to g_embd */
        float *gw = layer < 0 && t->m->cfg.tied_output ? t->g_embd : t->gw[wslot(t, layer, target)];
        hl_gemm_tn_acc(t->pool, gw, dy, x, rows, O, K);
    }
    int i = weight_index(t, layer, target);
    if (i < 0) return;
    const hl_lora_weight *w = &t->ad->w[i];
    const int64_t r = w->rank;
    const float s = hl_lora_weight_scale(t->ad, w);
    const float *h = t->lora_h + t->h_off[i] + row0 * r;
    /* lh = s·h (rows, r);  dB (O, r) += dyᵀ·lh */
    for (int64_t e = 0; e < rows * r; e++) t->lh[e] = s * h[e];
    hl_gemm_tn_acc(t->pool, t->gB[i], dy, t->lh, rows, O, r);
    /* lg = s·(dy·B) (rows, r) */
    hl_gemm_nn(t->pool, t->lg, dy, w->B, rows, O, r, s, 0);
    const float *xin = x;
    if (t->p.dropout > 0) {
        dropout_input(t, layer, target, x, t->tmp2, rows, row0, K);
        xin = t->tmp2;
    }
    /* dA (r, K) += lgᵀ·x */
    hl_gemm_tn_acc(t->pool, t->gA[i], t->lg, xin, rows, r, K);
    /* dx += lg·A, through the dropout mask */
    if (t->p.dropout > 0) {
        hl_gemm_nn(t->pool, t->tmp2, t->lg, w->A, rows, r, K, 1.0f, 0);
        float inv_keep = 1.0f / (1.0f - t->p.dropout);
        for (int64_t rr = 0; rr < rows; rr++)
            for (int64_t c = 0; c < K; c++)
                if (keep(t, layer, target, (uint64_t)(t->tok_offset + row0 + rr) * (uint64_t)K + (uint64_t)c))
                    dx[rr * K + c] += t->tmp2[rr * K + c] * inv_keep;
    } else {
        hl_gemm_nn(t->pool, dx, t->lg, w->A, rows, r, K, 1.0f, 1);
    }
}

void hl_trainer_free(hl_trainer *t) {
    if (!t) return;
    if (t->gw)
        for (int64_t i = 0; i < (t->L + 1) * HL_TARGET_COUNT; i++) hl_free(t->gw[i]);
    hl_free(t->gw);
    if (t->g_norm)
        for (int64_t i = 0; i < 2 * t->L + 1; i++) hl_free(t->g_norm[i]);
    hl_free(t->g_norm);
    hl_free(t->g_embd);
    hl_free(t->params);
    hl_free(t->names);
    hl_aligned_free(t->qscratch);
    for (int32_t i = 0; t->ad && i < t->ad->n_weights; i++) { /* gA or gB may be missing after an OOM */
        if (t->gA) hl_aligned_free(t->gA[i]);
        if (t->gB) hl_aligned_free(t->gB[i]);
    }
    hl_free(t->gA);
    hl_free(t->gB);
    hl_free(t->h_off);
    float *bufs[] = {t->lora_h, t->x,   t->x_mid, t->q,     t->k,    t->v,   t->att,  t->gate,
                     t->up,     t->n,   t->nf,    t->hb,    t->tmp,  t->tmp2, t->logits, t->dlog, t->dx, t->dn,
                     t->datt,   t->dq,  t->dk,    t->dv,    t->dgate, t->dup, t->dhb,  t->lg,   t->lh, t->att_scratch, t->rope_cs, t->head_split,
                     t->q_lin, t->k_lin};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) hl_aligned_free(bufs[i]);
    hl_free(t->pos);
    hl_pool_free(t->pool);
    hl_free(t);
}

/* Zeroed and 64-byte aligned: the kernels read these rows with vector loads
 * (see HL_VECTOR_ALIGN). Free with hl_aligned_free. */
static float *alloc_f(int64_t a, int64_t b, int *ok) {
    float *p = hl_aligned_calloc((size_t)a, (size_t)b * sizeof(float));
    if (!p) *ok = 0;
    return p;
}

static void add_param(hl_trainer *t, const char *name, const float *value, float *grad, int64_t ne0, int64_t ne1,
                      int decay) {
    hl_param *p = &t->params[t->n_params];
    char *nm = t->names + (size_t)t->n_params * NAME_CAP;
    snprintf(nm, NAME_CAP, "%s", name);
    /* Full training writes the model's own buffers (checked at init). */
    *p = (hl_param){.value = (float *)value, .grad = grad, .n = ne0 * ne1, .name = nm, .ne0 = ne0, .ne1 = ne1,
                    .decay = decay};
    t->n_params++;
}

/* The trainable tensors: LoRA A/B pairs, or every model weight in GGUF order. */
static hl_status build_params(hl_trainer *t) {
    const hl_model *m = t->m;
    int32_t cap = t->ad ? 2 * t->ad->n_weights : (int32_t)(3 + 9 * t->L);
    t->params = hl_calloc((size_t)cap, sizeof *t->params);
    t->names = hl_calloc((size_t)cap, NAME_CAP);
    if (!t->params || !t->names) return HL_ERR_NOMEM;
    char base[80], name[NAME_CAP];
    if (t->ad) {
        for (int32_t i = 0; i < t->ad->n_weights; i++) {
            const hl_lora_weight *w = &t->ad->w[i];
            hl_model_tensor_name(w->layer, w->target, base, sizeof base);
            snprintf(name, sizeof name, "%s.lora_a", base);
            add_param(t, name, w->A, t->gA[i], w->n_in, w->rank, 1);
            snprintf(name, sizeof name, "%s.lora_b", base);
            add_param(t, name, w->B, t->gB[i], w->rank, w->n_out, 1);
        }
        return HL_OK;
    }
    const int64_t C = t->C, V = t->V, L = t->L;
    t->gw = hl_calloc((size_t)((L + 1) * HL_TARGET_COUNT), sizeof *t->gw);
    t->g_norm = hl_calloc((size_t)(2 * L + 1), sizeof *t->g_norm);
    t->g_embd = hl_calloc((size_t)(V * C), sizeof(float));
    if (!t->gw || !t->g_norm || !t->g_embd) return HL_ERR_NOMEM;
    for (int64_t i = 0; i < 2 * L + 1; i++)
        if (!(t->g_norm[i] = hl_calloc((size_t)C, sizeof(float)))) return HL_ERR_NOMEM;
    add_param(t, "token_embd.weight", m->token_embd, t->g_embd, C, V, 1);
    add_param(t, "output_norm.weight", m->output_norm, t->g_norm[2 * L], C, 1, 0);
    for (int l = -1; l < (int)L; l++)
        for (int tg = 0; tg < HL_TARGET_COUNT; tg++) {
            if ((l < 0) != (tg == HL_TARGET_OUTPUT)) continue;
            int64_t rows, cols;
            const float *W = hl_model_weight(m, l, tg, &rows, &cols);
            float **g = &t->gw[wslot(t, l, tg)];
            if (l < 0 && m->cfg.tied_output) continue; /* the head's gradient lands in g_embd (see output_grad) */
            if (!(*g = hl_calloc((size_t)(rows * cols), sizeof(float)))) return HL_ERR_NOMEM;
            if (l < 0) {
                add_param(t, "output.weight", W, *g, cols, rows, 1);
                continue;
            }
            hl_model_tensor_name(l, tg, name, sizeof name);
            add_param(t, name, W, *g, cols, rows, 1);
            if (tg == HL_TARGET_O) {
                snprintf(name, sizeof name, "blk.%d.attn_norm.weight", l);
                add_param(t, name, m->layers[l].attn_norm, t->g_norm[2 * l], C, 1, 0);
            }
            if (tg == HL_TARGET_DOWN) {
                snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", l);
                add_param(t, name, m->layers[l].ffn_norm, t->g_norm[2 * l + 1], C, 1, 0);
            }
        }
    return HL_OK;
}

/* Full mode: d(norm weight) += Σ_rows dy ⊙ x·inv for rows of (N, C). */
static void norm_weight_grad(float *gw, const float *x, const float *dy, int64_t rows, int64_t C, float eps) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * C, *dr = dy + r * C;
        double ss = 0;
        for (int64_t i = 0; i < C; i++) ss += (double)xr[i] * xr[i];
        float inv = (float)(1.0 / sqrt(ss / (double)C + eps));
        for (int64_t i = 0; i < C; i++) gw[i] += dr[i] * xr[i] * inv;
    }
}

hl_status hl_train_weight_layout(const hl_model *m, int full, int32_t *layout, hl_error *err) {
    *layout = HL_WEIGHTS_ROWS;
    /* Full training changes W every step and stays on OpenBLAS; a quantized
     * base is read from its blocks (hl_qmatmul), never packed. */
    if (full || m->quantized) return HL_OK;
    /* LoRA reads the frozen base through the model's packed copy where the
     * measured choice says its kernels beat OpenBLAS (kernels/kernel_choice.c);
     * $HYPERLORA_WEIGHTS=rows or packed overrides, as for inference. */
    hl_status is = hl_isa_check(err);
    if (is != HL_OK) return is;
    return hl_weight_layout_resolve(HL_WEIGHTS_AUTO, hl_kernel_choice_active().train == HL_WEIGHTS_PACKED, layout, err);
}

hl_status hl_train_kernels_name(const hl_model *m, int full, char *buf, size_t cap, hl_error *err) {
    int32_t layout;
    hl_status s = hl_train_weight_layout(m, full, &layout, err);
    if (s != HL_OK) return s;
    snprintf(buf, cap, "%s/%s", hl_isa_name(hl_isa_active()),
             m->quantized && !full ? "blocks" : hl_weight_layout_name(layout));
    return HL_OK;
}

hl_status hl_trainer_init(const hl_model *m, hl_adapter *ad, const hl_trainer_params *p, hl_trainer **out,
                          hl_error *err) {
    *out = NULL;
    hl_status is = hl_isa_check(err); /* a $HYPERLORA_ISA this CPU or build cannot run is refused, as contexts do */
    if (is != HL_OK) return is;
    const hl_model_config *c = &m->cfg;
    if (p->batch < 1 || p->ctx < 1 || p->ctx > 4096 || p->ctx > c->seq_len || (int64_t)p->batch * p->ctx > (1 << 22))
        return hl_fail(err, HL_ERR_INVALID_ARG, "train: batch %d x ctx %d is out of range (ctx <= min(4096, %d))",
                       p->batch, p->ctx, c->seq_len);
    if (!(p->dropout >= 0 && p->dropout < 1))
        return hl_fail(err, HL_ERR_INVALID_ARG, "train: dropout must be in [0, 1) (got %g)", p->dropout);
    if (p->full) {
        if (ad) return hl_fail(err, HL_ERR_INVALID_ARG, "train: full training takes no adapter");
        if ((c->tied_output && m->output != m->token_embd) || m->n_extra || m->from_llama2c || m->gguf)
            return hl_fail(err, HL_ERR_INVALID_ARG, "train: full training needs a model with its own weights "
                           "(made by init-model or pretrain)");
    } else if (!ad || ad->n_layers != c->n_layers || ad->n_weights == 0)
        return hl_fail(err, HL_ERR_MISMATCH, "train: adapter %s does not fit this model", ad ? ad->name : "(none)");
    hl_trainer *t = hl_calloc(1, sizeof *t);
    if (!t) return hl_fail(err, HL_ERR_NOMEM, "out of memory");
    t->m = m;
    t->ad = ad;
    t->p = *p;
    t->N = (int64_t)p->batch * p->ctx;
    t->C = c->dim;
    t->F = c->hidden_dim;
    t->H = c->n_heads;
    t->Hkv = c->n_kv_heads;
    t->D = hl_cfg_head_dim(c);
    t->QD = t->H * t->D;
    t->KV = t->Hkv * t->D;
    t->neox = hl_cfg_rope_neox(c);
    t->V = c->vocab_size;
    t->Vb = m->n_vocab_base;
    t->L = c->n_layers;
    t->wide = t->C > t->F ? t->C : t->F;
    t->chunk = hl_model_qweight(m, -1, HL_TARGET_OUTPUT) ? LOGIT_CHUNK_QUANTIZED : LOGIT_CHUNK;
    if (t->QD > t->wide) t->wide = t->QD;
    int ok = 1;
    t->pool = hl_pool_init(p->n_threads);
    ok = t->pool != NULL;
    if (ok && m->quantized)
        t->qscratch = alloc_f(hl_qmatmul_scratch_floats(p->n_threads, t->wide), 1, &ok);
    int32_t nw = ad ? ad->n_weights : 0;
    t->gA = hl_calloc((size_t)nw + 1, sizeof *t->gA);
    t->gB = hl_calloc((size_t)nw + 1, sizeof *t->gB);
    t->h_off = hl_calloc((size_t)nw + 1, sizeof *t->h_off);
    if (!t->gA || !t->gB || !t->h_off) ok = 0;
    int64_t hsum = 0;
    for (int32_t i = 0; ok && i < nw; i++) {
        const hl_lora_weight *w = &ad->w[i];
        t->gA[i] = alloc_f(w->rank, w->n_in, &ok);
        t->gB[i] = alloc_f(w->n_out, w->rank, &ok);
        t->h_off[i] = hsum;
        hsum += t->N * w->rank;
        if (w->rank > t->rmax) t->rmax = w->rank;
    }
    const int64_t N = t->N, C = t->C, F = t->F, KV = t->KV, QD = t->QD, L = t->L, T = p->ctx;
    const int qk_norm = m->layers[0].q_norm != NULL;
    if (ok) {
        t->lora_h = alloc_f(hsum ? hsum : 1, 1, &ok);
        t->x = alloc_f((L + 1) * N, C, &ok);
        t->x_mid = alloc_f(L * N, C, &ok);
        t->q = alloc_f(L * N, QD, &ok);
        if (qk_norm) {
            t->q_lin = alloc_f(L * N, QD, &ok);
            t->k_lin = alloc_f(L * N, KV, &ok);
        }
        t->k = alloc_f(L * N, KV, &ok);
        t->v = alloc_f(L * N, KV, &ok);
        t->att_scratch = alloc_f(2 * (int64_t)hl_pool_n_threads(t->pool), T * T, &ok);
        t->rope_cs = alloc_f(T, t->D, &ok);
        t->pos = hl_malloc_array((size_t)N, sizeof *t->pos);
        if (!t->pos) ok = 0;
        t->head_split = alloc_f(HL_GEMM_SPLIT_K * t->chunk, C, &ok);
        if (ok) hl_rope_table_scaled(t->rope_cs, T, t->D, c->rope_theta, m->rope_freqs);
        t->att = alloc_f(L * N, QD, &ok);
        t->gate = alloc_f(L * N, F, &ok);
        t->up = alloc_f(L * N, F, &ok);
        t->n = alloc_f(N, C, &ok);
        t->nf = alloc_f(N, C, &ok);
        t->hb = alloc_f(N, F, &ok);
        t->tmp = alloc_f(N, t->wide, &ok);
        t->tmp2 = alloc_f(N, t->wide, &ok);
        t->logits = alloc_f(t->chunk, t->V, &ok);
        if (t->V > t->Vb) t->dlog = alloc_f(t->chunk, t->Vb > t->V - t->Vb ? t->Vb : t->V - t->Vb, &ok);
        t->dx = alloc_f(N, C, &ok);
        t->dn = alloc_f(N, C, &ok);
        t->datt = alloc_f(N, QD, &ok);
        t->dq = alloc_f(N, QD, &ok);
        t->dk = alloc_f(N, KV, &ok);
        t->dv = alloc_f(N, KV, &ok);
        t->dgate = alloc_f(N, F, &ok);
        t->dup = alloc_f(N, F, &ok);
        t->dhb = alloc_f(N, F, &ok);
        t->lg = alloc_f(N, t->rmax ? t->rmax : 1, &ok);
        t->lh = alloc_f(N, t->rmax ? t->rmax : 1, &ok);
    }
    if (ok) ok = build_params(t) == HL_OK;
    if (!ok) {
        hl_trainer_free(t);
        return hl_fail(err, HL_ERR_NOMEM, "train: out of memory for batch %d x ctx %d", p->batch, p->ctx);
    }
    int32_t layout = HL_WEIGHTS_ROWS;
    hl_status s = hl_train_weight_layout(m, p->full, &layout, err);
    if (s == HL_OK && layout == HL_WEIGHTS_PACKED)
        s = hl_model_packed(m, t->pool, &t->packed, err);
    if (s != HL_OK) {
        hl_trainer_free(t);
        return s;
    }
    *out = t;
    return HL_OK;
}

int32_t hl_trainer_n_params(const hl_trainer *t) { return t->n_params; }
hl_param hl_trainer_param(const hl_trainer *t, int32_t i) { return t->params[i]; }

void hl_trainer_zero_grad(hl_trainer *t) {
    for (int32_t i = 0; i < hl_trainer_n_params(t); i++) {
        hl_param p = hl_trainer_param(t, i);
        memset(p.grad, 0, (size_t)p.n * sizeof(float));
    }
}

double hl_trainer_grad_norm(const hl_trainer *t) {
    double ss = 0;
    for (int32_t i = 0; i < hl_trainer_n_params(t); i++) {
        hl_param p = hl_trainer_param(t, i);
        for (int64_t e = 0; e < p.n; e++) ss += (double)p.grad[e] * p.grad[e];
    }
    return sqrt(ss);
}

void hl_trainer_scale_grads(hl_trainer *t, float factor) {
    for (int32_t i = 0; i < hl_trainer_n_params(t); i++) {
        hl_param p = hl_trainer_param(t, i);
        for (int64_t e = 0; e < p.n; e++) p.grad[e] *= factor;
    }
}

/* Per-row work (norms, RoPE, SwiGLU, residual adds) split over the pool.
 * Each row is computed the same way whichever thread takes it. */
typedef enum { OP_RMSNORM, OP_RMSNORM_BWD, OP_ROPE, OP_SWIGLU, OP_SWIGLU_BWD, OP_ADD, OP_BIAS, OP_HEAD_NORM,
               OP_HEAD_NORM_BWD } row_op;
typedef struct {
    const hl_trainer *t;
    row_op op;
    float *out, *out2;     /* (rows, width) */
    const float *a, *b, *c; /* inputs, (rows, width) or a norm weight */
    int64_t width, heads;   /* heads: RoPE and head norms */
    int flag;               /* RMSNORM_BWD: accumulate; ROPE: inverse */
} rows_job;

static void rows_worker(void *arg, int64_t begin, int64_t end, int worker) {
    (void)worker;
    const rows_job *j = arg;
    const hl_trainer *t = j->t;
    const int64_t W = j->width;
    const float eps = t->m->cfg.norm_eps;
    for (int64_t r = begin; r < end; r++) switch (j->op) {
        case OP_RMSNORM: hl_rmsnorm(j->out + r * W, j->a + r * W, j->b, W, eps); break;
        case OP_RMSNORM_BWD: /* out (+)= d rmsnorm(a; weight b) given dy c */
            hl_rmsnorm_backward(j->out + r * W, j->a + r * W, j->b, j->c + r * W, W, eps, j->flag);
            break;
        case OP_ROPE:
            if (t->neox) hl_rope_apply_neox(j->out + r * W, j->heads, t->D, t->rope_cs + (int64_t)t->pos[r] * t->D, j->flag);
            else hl_rope_apply(j->out + r * W, j->heads, t->D, t->rope_cs + (int64_t)t->pos[r] * t->D, j->flag);
            break;
        case OP_BIAS: /* out += b, one bias row */
            for (int64_t e = 0; e < W; e++) j->out[r * W + e] += j->b[e];
            break;
        case OP_HEAD_NORM: /* each head of a: rmsnorm with weight b (D) */
            for (int64_t h = 0; h < j->heads; h++)
                hl_rmsnorm(j->out + r * W + h * t->D, j->a + r * W + h * t->D, j->b, t->D, eps);
            break;
        case OP_HEAD_NORM_BWD: /* out (in place over dy) = d head-rmsnorm(a; b) */
            for (int64_t h = 0; h < j->heads; h++)
                hl_rmsnorm_backward(j->out + r * W + h * t->D, j->a + r * W + h * t->D, j->b, j->out + r * W + h * t->D,
                                    t->D, eps, 0);
            break;
        case OP_SWIGLU: hl_swiglu(j->out + r * W, j->a + r * W, j->b + r * W, W); break;
        case OP_SWIGLU_BWD:
            hl_swiglu_backward(j->out + r * W, j->out2 + r * W, j->a + r * W, j->b + r * W, j->c + r * W, W);
            break;
        case OP_ADD:
            for (int64_t e = 0; e < W; e++) j->out[r * W + e] = j->a[r * W + e] + j->b[r * W + e];
            break;
        }
}

static void par_rows(hl_trainer *t, rows_job j) {
    j.t = t;
    hl_pool_for(t->pool, t->N, 16, rows_worker, &j);
}
static void rmsnorm_rows(hl_trainer *t, float *out, const float *x, const float *w) {
    par_rows(t, (rows_job){.op = OP_RMSNORM, .out = out, .a = x, .b = w, .width = t->C});
}
static void rmsnorm_backward_rows(hl_trainer *t, float *dx, const float *x, const float *w, const float *dy, int acc) {
    par_rows(t, (rows_job){.op = OP_RMSNORM_BWD, .out = dx, .a = x, .b = w, .c = dy, .width = t->C, .flag = acc});
}
static void rope_rows(hl_trainer *t, float *v, int64_t heads, int inverse) {
    par_rows(t, (rows_job){.op = OP_ROPE, .out = v, .width = heads * t->D, .heads = heads, .flag = inverse});
}

/* The forward pass up to the final norm (t->nf), saving activations. */
static void forward(hl_trainer *t, const int32_t *tokens) {
    const hl_model *m = t->m;
    const int64_t B = t->p.batch, T = t->p.ctx, N = t->N, C = t->C, F = t->F, KV = t->KV, QD = t->QD;
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < T; i++) {
            int32_t id = tokens[b * (T + 1) + i];
            float *dst = t->x + (b * T + i) * C;
            const float *row = id >= t->Vb ? m->extra_embd + (int64_t)(id - t->Vb) * C : hl_model_embd_row(m, id, dst);
            if (row != dst) memcpy(dst, row, (size_t)C * sizeof(float));
        }
    for (int l = 0; l < t->L; l++) {
        const hl_layer_weights *w = &m->layers[l];
        float *x = t->x + l * N * C, *xm = t->x_mid + l * N * C, *xo = t->x + (l + 1) * N * C;
        float *q = t->q + l * N * QD, *k = t->k + l * N * KV, *v = t->v + l * N * KV;
        float *att = t->att + l * N * QD, *gate = t->gate + l * N * F, *up = t->up + l * N * F;
        /* qwen3 keeps q, k before the head norms (the norms' backward needs them) */
        float *ql = t->q_lin ? t->q_lin + l * N * QD : q, *kl = t->k_lin ? t->k_lin + l * N * KV : k;
        rmsnorm_rows(t, t->n, x, w->attn_norm);
        proj_forward(t, l, HL_TARGET_Q, w->wq, t->n, ql, N, 0, C, QD);
        proj_forward(t, l, HL_TARGET_K, w->wk, t->n, kl, N, 0, C, KV);
        proj_forward(t, l, HL_TARGET_V, w->wv, t->n, v, N, 0, C, KV);
        if (w->bq) { /* qwen2: frozen biases after the projections and their adapters */
            par_rows(t, (rows_job){.op = OP_BIAS, .out = ql, .b = w->bq, .width = QD});
            par_rows(t, (rows_job){.op = OP_BIAS, .out = kl, .b = w->bk, .width = KV});
            par_rows(t, (rows_job){.op = OP_BIAS, .out = v, .b = w->bv, .width = KV});
        }
        if (t->q_lin) {
            par_rows(t, (rows_job){.op = OP_HEAD_NORM, .out = q, .a = ql, .b = w->q_norm, .width = QD, .heads = t->H});
            par_rows(t, (rows_job){.op = OP_HEAD_NORM, .out = k, .a = kl, .b = w->k_norm, .width = KV, .heads = t->Hkv});
        }
        rope_rows(t, q, t->H, 0);
        rope_rows(t, k, t->Hkv, 0);
        hl_attention_train(t->pool, att, q, k, v, t->pos, B, T, t->H, t->Hkv, t->D, t->att_scratch);
        proj_forward(t, l, HL_TARGET_O, w->wo, att, t->tmp, N, 0, QD, C);
        par_rows(t, (rows_job){.op = OP_ADD, .out = xm, .a = x, .b = t->tmp, .width = C});
        rmsnorm_rows(t, t->n, xm, w->ffn_norm);
        proj_forward(t, l, HL_TARGET_GATE, w->w_gate, t->n, gate, N, 0, C, F);
        proj_forward(t, l, HL_TARGET_UP, w->w_up, t->n, up, N, 0, C, F);
        par_rows(t, (rows_job){.op = OP_SWIGLU, .out = t->hb, .a = gate, .b = up, .width = F});
        proj_forward(t, l, HL_TARGET_DOWN, w->w_down, t->hb, t->tmp, N, 0, F, C);
        par_rows(t, (rows_job){.op = OP_ADD, .out = xo, .a = xm, .b = t->tmp, .width = C});
    }
    const float *xf = t->x + t->L * N * C;
    rmsnorm_rows(t, t->nf, xf, m->output_norm);
}

/* Loss over the counted targets of rows [r0, r0+rows); with dlogits_scale != 0 the
 * logits are turned into dlogits·scale in place. Sums in double, in row order. */
typedef struct {
    hl_trainer *t;
    const int32_t *tokens;
    const uint8_t *mask;
    int64_t r0;
    double dlogits_scale;
    double *row_loss; /* [rows], NAN for rows that do not count */
} loss_job;

/* Cross-entropy of each row; with dlogits_scale != 0 the logits become
 * (softmax − onehot)·scale in place. exp is taken once per logit (vectorised,
 * summed in double; see exp_sum.c), so the backward pass reuses it. */
static void loss_rows(void *arg, int64_t begin, int64_t end, int worker) {
    (void)worker;
    const loss_job *j = arg;
    const hl_trainer *t = j->t;
    const int64_t T = t->p.ctx, V = t->V;
    for (int64_t rr = begin; rr < end; rr++) {
        int64_t r = j->r0 + rr, b = r / T, i = r % T;
        float *lg = t->logits + rr * V;
        if (j->mask && !j->mask[b * T + i]) {
            j->row_loss[rr] = NAN;
            if (j->dlogits_scale != 0) memset(lg, 0, (size_t)V * sizeof(float));
            continue;
        }
        int32_t target = j->tokens[b * (T + 1) + i + 1];
        float mx = lg[0];
        for (int64_t v = 1; v < V; v++) mx = lg[v] > mx ? lg[v] : mx;
        float target_logit = lg[target];
        double sum = hl_exp_sum(j->dlogits_scale != 0 ? lg : NULL, lg, V, mx);
        if (j->dlogits_scale != 0) {
            float f = (float)(j->dlogits_scale / sum);
            for (int64_t v = 0; v < V; v++) lg[v] *= f;
            lg[target] = (float)(lg[target] - j->dlogits_scale);
        }
        j->row_loss[rr] = (double)mx + log(sum) - (double)target_logit;
    }
}

/* Loss over the counted targets of rows [r0, r0+rows), summed in row order. */
static double chunk_loss(hl_trainer *t, const int32_t *tokens, const uint8_t *mask, int64_t r0, int64_t rows,
                         double dlogits_scale, int64_t *count) {
    double row_loss[LOGIT_CHUNK];
    loss_job j = {t, tokens, mask, r0, dlogits_scale, row_loss};
    hl_pool_for(t->pool, rows, 1, loss_rows, &j);
    double loss = 0;
    for (int64_t rr = 0; rr < rows; rr++)
        if (!isnan(row_loss[rr])) {
            loss += row_loss[rr];
            (*count)++;
        }
    return loss;
}

static int64_t count_targets(const hl_trainer *t, const uint8_t *mask) {
    if (!mask) return t->N;
    int64_t n = 0;
    for (int64_t i = 0; i < t->N; i++) n += mask[i] != 0;
    return n;
}

static hl_status check_tokens(const hl_trainer *t, const int32_t *tokens, hl_error *err) {
    int64_t n = (int64_t)t->p.batch * (t->p.ctx + 1);
    for (int64_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= t->V)
            return hl_fail(err, HL_ERR_INVALID_ARG, "train: token id %d at %lld is outside the vocabulary (%lld)",
                           tokens[i], (long long)i, (long long)t->V);
    return HL_OK;
}

/* Takes the batch's positions (NULL: 0..T-1 in every row), checking that
 * each row starts a document and each document counts up from 0. */
static hl_status set_positions(hl_trainer *t, const int32_t *pos, hl_error *err) {
    const int64_t B = t->p.batch, T = t->p.ctx;
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < T; i++) {
            int32_t p = pos ? pos[b * T + i] : (int32_t)i;
            if (p != 0 && (i == 0 || p != t->pos[b * T + i - 1] + 1))
                return hl_fail(err, HL_ERR_INVALID_ARG,
                               "train: position %ld at row %lld, token %lld must be 0 (a new document)%s",
                               (long)p, (long long)b, (long long)i, i ? " or one more than the token before" : "");
            t->pos[b * T + i] = p;
        }
    return HL_OK;
}

hl_status hl_trainer_eval(hl_trainer *t, const int32_t *tokens, const uint8_t *mask, const int32_t *pos,
                          double *loss_sum, int64_t *n_counted, hl_error *err) {
    hl_status s = check_tokens(t, tokens, err);
    if (s == HL_OK) s = set_positions(t, pos, err);
    if (s != HL_OK) return s;
    t->training = 0;
    forward(t, tokens);
    *loss_sum = 0;
    *n_counted = 0;
    for (int64_t r0 = 0; r0 < t->N; r0 += t->chunk) {
        int64_t rows = t->N - r0 < t->chunk ? t->N - r0 : t->chunk;
        head_forward(t, r0, rows);
        *loss_sum += chunk_loss(t, tokens, mask, r0, rows, 0, n_counted);
    }
    return HL_OK;
}

hl_status hl_trainer_forward_backward(hl_trainer *t, const int32_t *tokens, const uint8_t *mask, const int32_t *pos,
                                      float grad_scale, uint64_t step, double *loss, int64_t *n_counted, hl_error *err) {
    int64_t total = count_targets(t, mask);
    double loss_sum = 0;
    *loss = 0;
    hl_status s = hl_trainer_forward_backward_rows(t, tokens, mask, pos, total ? (double)grad_scale / (double)total : 0,
                                                   step, 0, &loss_sum, n_counted, err);
    if (s == HL_OK && total) *loss = loss_sum / (double)total;
    return s;
}

hl_status hl_trainer_forward_backward_rows(hl_trainer *t, const int32_t *tokens, const uint8_t *mask,
                                           const int32_t *pos, double dlogits_scale, uint64_t step,
                                           int64_t tok_offset, double *loss_sum_out, int64_t *n_counted,
                                           hl_error *err) {
    hl_status s = check_tokens(t, tokens, err);
    if (s == HL_OK) s = set_positions(t, pos, err);
    if (s != HL_OK) return s;
    const hl_model *m = t->m;
    const hl_model_config *c = &m->cfg;
    const int64_t B = t->p.batch, T = t->p.ctx, N = t->N, C = t->C, F = t->F, KV = t->KV, QD = t->QD, V = t->V;
    int64_t total = count_targets(t, mask);
    *loss_sum_out = 0;
    *n_counted = total;
    if (total == 0) return HL_OK;
    t->training = 1;
    t->step = step;
    t->tok_offset = tok_offset;
    forward(t, tokens);

    /* Loss and the LM head's backward, chunk by chunk: dnf (N, C) in t->dn. */
    double scale = dlogits_scale, loss_sum = 0;
    int64_t counted = 0;
    for (int64_t r0 = 0; r0 < N; r0 += t->chunk) {
        int64_t rows = N - r0 < t->chunk ? N - r0 : t->chunk;
        head_forward(t, r0, rows);
        loss_sum += chunk_loss(t, tokens, mask, r0, rows, scale, &counted);
        const float *dbase = t->logits;
        if (V > t->Vb) {
            /* Hyperlexeme rows first (frozen: input gradient only), then the base slice made contiguous. */
            int64_t ne = V - t->Vb;
            for (int64_t r = 0; r < rows; r++) memcpy(t->dlog + r * ne, t->logits + r * V + t->Vb, (size_t)ne * sizeof(float));
            hl_gemm_nn(t->pool, t->tmp, t->dlog, m->extra_out, rows, ne, C, 1.0f, 0);
            for (int64_t r = 0; r < rows; r++) memmove(t->logits + r * t->Vb, t->logits + r * V, (size_t)t->Vb * sizeof(float));
        }
        proj_backward(t, -1, HL_TARGET_OUTPUT, m->output, t->nf + r0 * C, dbase, t->dn + r0 * C, rows, r0, C, t->Vb, 0);
        if (V > t->Vb)
            for (int64_t e = 0; e < rows * C; e++) t->dn[r0 * C + e] += t->tmp[e];
    }
    *loss_sum_out = loss_sum;
    t->tok_offset = 0;
    const float *xf = t->x + t->L * N * C;
    rmsnorm_backward_rows(t, t->dx, xf, m->output_norm, t->dn, 0);
    if (t->p.full) norm_weight_grad(t->g_norm[2 * t->L], xf, t->dn, N, C, c->norm_eps);

    for (int l = (int)t->L - 1; l >= 0; l--) {
        const hl_layer_weights *w = &m->layers[l];
        const float *x = t->x + l * N * C, *xm = t->x_mid + l * N * C;
        const float *q = t->q + l * N * QD, *k = t->k + l * N * KV, *v = t->v + l * N * KV;
        const float *att = t->att + l * N * QD, *gate = t->gate + l * N * F, *up = t->up + l * N * F;
        /* FFN: x_out = x_mid + down(silu(gate(n2)) ⊙ up(n2)), n2 = rmsnorm(x_mid) */
        par_rows(t, (rows_job){.op = OP_SWIGLU, .out = t->hb, .a = gate, .b = up, .width = F});
        proj_backward(t, l, HL_TARGET_DOWN, w->w_down, t->hb, t->dx, t->dhb, N, 0, F, C, 0);
        par_rows(t, (rows_job){.op = OP_SWIGLU_BWD, .out = t->dgate, .out2 = t->dup, .a = gate, .b = up, .c = t->dhb,
                               .width = F});
        rmsnorm_rows(t, t->n, xm, w->ffn_norm);
        proj_backward(t, l, HL_TARGET_GATE, w->w_gate, t->n, t->dgate, t->dn, N, 0, C, F, 0);
        proj_backward(t, l, HL_TARGET_UP, w->w_up, t->n, t->dup, t->dn, N, 0, C, F, 1);
        rmsnorm_backward_rows(t, t->dx, xm, w->ffn_norm, t->dn, 1);
        if (t->p.full) norm_weight_grad(t->g_norm[2 * l + 1], xm, t->dn, N, C, c->norm_eps);
        /* Attention: x_mid = x + o(attn(rope(q(n1)), rope(k(n1)), v(n1))), n1 = rmsnorm(x) */
        proj_backward(t, l, HL_TARGET_O, w->wo, att, t->dx, t->datt, N, 0, QD, C, 0);
        hl_attention_train_backward(t->pool, t->dq, t->dk, t->dv, t->datt, q, k, v, t->pos, B, T, t->H, t->Hkv,
                                    t->D, t->att_scratch);
        rope_rows(t, t->dq, t->H, 1);
        rope_rows(t, t->dk, t->Hkv, 1);
        if (t->q_lin) { /* through the qwen3 head norms (the biases pass gradients unchanged) */
            par_rows(t, (rows_job){.op = OP_HEAD_NORM_BWD, .out = t->dq, .a = t->q_lin + l * N * QD, .b = w->q_norm,
                                   .width = QD, .heads = t->H});
            par_rows(t, (rows_job){.op = OP_HEAD_NORM_BWD, .out = t->dk, .a = t->k_lin + l * N * KV, .b = w->k_norm,
                                   .width = KV, .heads = t->Hkv});
        }
        rmsnorm_rows(t, t->n, x, w->attn_norm);
        proj_backward(t, l, HL_TARGET_Q, w->wq, t->n, t->dq, t->dn, N, 0, C, QD, 0);
        proj_backward(t, l, HL_TARGET_K, w->wk, t->n, t->dk, t->dn, N, 0, C, KV, 1);
        proj_backward(t, l, HL_TARGET_V, w->wv, t->n, t->dv, t->dn, N, 0, C, KV, 1);
        rmsnorm_backward_rows(t, t->dx, x, w->attn_norm, t->dn, 1);
        if (t->p.full) norm_weight_grad(t->g_norm[2 * l], x, t->dn, N, C, c->norm_eps);
    }
    /* t->dx now holds dLoss/d(embeddings): frozen under LoRA, scattered into rows when pretraining. */
    if (t->p.full)
        for (int64_t b = 0; b < B; b++)
            for (int64_t i = 0; i < T; i++) {
                float *g = t->g_embd + (int64_t)tokens[b * (T + 1) + i] * C;
                const float *d = t->dx + (b * T + i) * C;
                for (int64_t e = 0; e < C; e++) g[e] += d[e];
            }
    return HL_OK;
}
