/* context.h: an inference context: KV cache, activation scratch and the
 * worker pool, bound to one model (read-only, shareable across contexts). */
#ifndef HL_MODEL_CONTEXT_H
#define HL_MODEL_CONTEXT_H
#include "model/model.h"
#include "util/threadpool.h"

struct hl_adapter_set; /* LoRA adapters plugged into the projections (lora/) */

struct hl_context {
    const hl_model *m;
    int32_t n_ctx;      /* KV cache positions */
    int32_t n_batch;    /* tokens per forward chunk */
    hl_pool *pool;
    const hl_packed_weights *packed; /* the model's packed projections, or NULL: row-major (hl_matmul) */
    float *kcache;      /* (L, n_ctx, Hkv·D) */
    float *vcache;      /* (L, n_ctx, Hkv·D) */
    /* activations for one chunk of up to n_batch tokens */
    float *x;           /* (n_batch, C) residual stream */
    float *xb;          /* (n_batch, C) normed input */
    float *q;           /* (n_batch, H·D) */
    float *att;         /* (n_batch, H·D) attention output */
    float *hb;          /* (n_batch, F) gate, then swiglu */
    float *hb2;         /* (n_batch, F) up */
    float *proj;        /* (n_batch, max(C, F)) projection output before the residual add */
    float *lora_tmp;    /* (n_batch, max rank) LoRA A·x */
    int32_t lora_tmp_cap;
    float *att_scratch; /* (n_threads, n_ctx) */
    float *qscratch;    /* (n_threads, HL_QTILE, max(C, F)) dequantized weight tiles; quantized models only */
    float *rope_cs;     /* (rope_n, head_dim): RoPE cos/sin per position (hl_rope_table), grown on use */
    int32_t rope_n;     /* positions rope_cs covers (<= n_ctx) */
    const struct hl_adapter_set *adapters; /* active adapters; NULL when none */
    void *adapter_storage;                 /* owned hl_adapter_set */
    const float *scene_vectors;            /* (n_scene_vectors, C) mute-scene inputs, borrowed; token id -k-1 */
    int32_t n_scene_vectors;
};
#endif
