/* context.h: an inference context: KV cache, activation scratch and the
 * worker pool, bound to one model (read-only, shareable across contexts). */
#ifndef HL_MODEL_CONTEXT_H
#define HL_MODEL_CONTEXT_H
#include "model/model.h"
#include "util/threadpool.h"

/* The projection hook: the one place where a layer above the model (LoRA
 * adapters, lora/apply.c) joins the forward pass. After every adaptable
 * projection out (T, O; row stride ldo) = x (T, K) · Wᵀ of (layer, target),
 * the LM head as (-1, HL_TARGET_OUTPUT), the pass calls apply(state, ...),
 * which may add its own terms to out; T is at most the context's n_batch.
 * Batched passes (infer/) call it once per context, on that context's
 * rows. The model knows nothing of what the state holds: once installed, the
 * context owns it and releases it with free_state (NULL: nothing to
 * release). apply NULL means the projections are the base's alone; the state
 * may stay installed while inactive, to be reused. */
typedef struct hl_projection_hook {
    hl_status (*apply)(void *state, const hl_context *ctx, int layer, int target, const float *x, float *out,
                       int64_t ldo, int64_t T, hl_error *err);
    void (*free_state)(void *state);
    void *state;
} hl_projection_hook;

struct hl_context {
    const hl_model *m;
    int32_t n_ctx;      /* KV cache positions */
    int32_t n_batch;    /* tokens per forward chunk */
    hl_pool *pool;
    const hl_packed_weights *packed; /* the model's packed projections, or NULL: row-major (hl_matmul) */
    float *kcache;                   /* (L, n_ctx, Hkv·D): hl_huge_calloc; the activations below: hl_aligned_calloc */
    float *vcache;      /* (L, n_ctx, Hkv·D) */
    size_t k_mapped, v_mapped; /* the caches' hl_huge_calloc sizes, for hl_huge_free */
    /* activations for one chunk of up to n_batch tokens */
    float *x;           /* (n_batch, C) residual stream */
    float *xb;          /* (n_batch, C) normed input */
    float *q;           /* (n_batch, H·D) */
    float *att;         /* (n_batch, H·D) attention output */
    float *hb;          /* (n_batch, F) gate, then swiglu */
    float *hb2;         /* (n_batch, F) up */
    float *proj;        /* (n_batch, max(C, F)) projection output before the residual add */
    float *att_scratch; /* (n_threads, n_ctx) */
    float *qscratch;    /* (n_threads, HL_QTILE, max(C, F)) dequantized weight tiles, or tokens quantized to
                         * 8 bits (hl_qmatmul_a8); quantized models only */
    int64_t qscratch_bytes;
    int32_t quant_a8;   /* 1: 8-bit activations where the weight's type has them (hl_quant_product_resolve) */
    float *rope_cs;     /* (rope_n, head_dim): RoPE cos/sin per position (hl_rope_table), grown on use */
    int32_t rope_n;     /* positions rope_cs covers (<= n_ctx) */
    hl_projection_hook hook;               /* see above; zeroed when none was installed */
    const float *scene_vectors;            /* (n_scene_vectors, C) mute-scene inputs, borrowed; token id -k-1 */
    int32_t n_scene_vectors;
};

/* Installs *hook on ctx (a copy of it). The state installed before is
 * released first unless it is the same state. */
void hl_context_set_projection_hook(hl_context *ctx, const hl_projection_hook *hook);
/* The input embedding of token id in ctx (C floats): a base token (a
 * quantized table's row is dequantized into buf, C floats), a hyperlexeme
 * row after the base vocabulary, or (id < 0) raw scene vector -id-1 of the
 * context. The one rule for every forward pass (model/forward.c). */
const float *hl_context_embedding_row(const hl_context *ctx, int32_t id, float *buf);
/* out (T, O; row stride ldo) = x (T, K) · Wᵀ over a quantized weight q, by
 * the context's quantized-product choice: the one rule for forward.c and
 * batch_decode.c. */
void hl_context_qmatmul(const hl_context *ctx, hl_pool *pool, float *out, int64_t ldo, const float *x,
                        const hl_qweight *q, int64_t T);
/* The hook installed on ctx (all fields NULL when none). */
static inline const hl_projection_hook *hl_context_projection_hook(const hl_context *ctx) { return &ctx->hook; }
#endif
