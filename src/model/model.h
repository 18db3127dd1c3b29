/* model.h: the Llama-family model as the forward pass sees it: a config and
 * read-only weight views. Weights point straight into the mmapped file when
 * it stores F32, or into owned f32 copies for F16/BF16 tensors. A projection,
 * the LM head or the token embedding stored in a block type (Q8_0, Q4_K, ...)
 * stays in the file: its float pointer is NULL and hl_model_qweight /
 * hl_model_embd_row read its blocks. Norms are always f32. */
#ifndef HL_MODEL_MODEL_H
#define HL_MODEL_MODEL_H
#include "hyperlora.h"
#include "util/threadpool.h"

#include <pthread.h>
#include "io/gguf.h"
#include "io/llama2c.h"
#include "text/tokenizer.h"

typedef struct hl_layer_weights {
    const float *attn_norm; /* (C) */
    const float *wq;        /* (H·D, C) */
    const float *wk;        /* (Hkv·D, C) */
    const float *wv;        /* (Hkv·D, C) */
    const float *wo;        /* (C, H·D) */
    const float *ffn_norm;  /* (C) */
    const float *w_gate;    /* (F, C) */
    const float *w_up;      /* (F, C) */
    const float *w_down;    /* (C, F) */
    /* Architecture extras, NULL where absent; frozen, never adapted. */
    const float *bq;        /* (H·D) qwen2 */
    const float *bk, *bv;   /* (Hkv·D) qwen2 */
    const float *q_norm;    /* (D) qwen3: RMSNorm weight of every q head */
    const float *k_norm;    /* (D) qwen3 */
} hl_layer_weights;

/* D: the per-head size (the file's key_length, else dim / n_heads). */
static inline int64_t hl_cfg_head_dim(const hl_model_config *c) {
    return c->head_dim > 0 ? c->head_dim : c->dim / c->n_heads;
}
/* RoPE on pairs (i, i + D/2) (qwen2/3, llama.cpp's NEOX) rather than (2i, 2i+1). */
static inline int hl_cfg_rope_neox(const hl_model_config *c) {
    return c->arch == HL_ARCH_QWEN2 || c->arch == HL_ARCH_QWEN3;
}

/* The projection weights in the packed layout (kernels/matmul_packed.c), for
 * inference. Made once, by the first context that asks, and shared by every
 * context and lexicon view of the model. */
typedef struct hl_packed_layer {
    const float *wq, *wk, *wv, *wo, *w_gate, *w_up, *w_down; /* panels of the (rows, cols) above */
} hl_packed_layer;

typedef struct hl_packed_weights {
    pthread_mutex_t lock;
    int ready;
    float *storage;          /* one allocation holding every panel */
    hl_packed_layer *layers; /* [L] */
    const float *output;     /* panels of output (Vb, C) */
} hl_packed_weights;

/* A field added here: decide in hl_model_view_init whether views share it. */
struct hl_model {
    hl_model_config cfg;
    const float *token_embd;  /* (V, C) */
    hl_layer_weights *layers; /* [L] */
    const float *output_norm; /* (C) */
    const float *output;      /* (Vb, C); == token_embd when cfg.tied_output */
    const float *rope_freqs;  /* (D/2) Llama-3 frequency factors (each pair's angle divided by it), or NULL */
    /* Hyperlexemes: cfg.vocab_size = n_vocab_base + n_extra; the extra rows are
     * composed and frozen (hyperlexeme/lexicon.c), never part of the base
     * file, and only a view (below) has them. */
    int32_t n_vocab_base;     /* Vb: rows of token_embd and output */
    int32_t n_extra;
    const float *extra_embd;  /* (n_extra, C) */
    const float *extra_out;   /* (n_extra, C) */
    /* A view (hl_model_view_init) shares its base's weights and owns only these: */
    int is_view;
    hl_layer_weights *view_layers; /* its layer table when it replaces weights, else NULL */
    hl_tokenizer *view_tok;        /* its own tokenizer, else NULL */
    hl_tokenizer *tok;
    char *name;               /* general.name, or the file's base name */
    char *path;
    uint64_t fingerprint;     /* FNV-1a over config + tensor shapes + a sample of weights */
    /* where the views come from */
    hl_gguf *gguf;
    hl_llama2c l2c;
    int from_llama2c;
    float **owned;            /* converted tensors */
    int n_owned, cap_owned;
    const uint8_t *map_begin, *map_end; /* the file mapping the weight views may point into */
    hl_packed_weights *packed; /* owned by the base model; lexicon views share it */
    /* Quantized weights, views of the mapped file (NULL / type F32 when f32). */
    int quantized;            /* any weight below is in use */
    hl_qweight *qw;           /* [(L+1)·HL_TARGET_COUNT] by (layer, target); layer L: the LM head */
    hl_qweight qembd;         /* token_embd (Vb, C) when quantized (data NULL otherwise) */
};

/* A view: a model that extends or patches a base without copying it. What
 * it changes is given here; everything else (config, weights, quantized
 * blocks, packed cache, tokenizer, file, name, fingerprint) is the base's,
 * shared read-only. The base and every borrowed pointer must outlive it. */
typedef struct hl_model_view_params {
    /* Extra vocabulary rows after the base's n_vocab_base (hyperlexemes),
     * (n_extra, C) each, borrowed. n_extra 0 keeps the base's. */
    int32_t n_extra;
    const float *extra_embd, *extra_out;
    /* The view's tokenizer, covering its whole vocabulary; the view owns it
     * once the call succeeds (the caller keeps it when the call fails).
     * NULL: the base's. */
    hl_tokenizer *tok;
    /* Replacement f32 weights, [(L+1)·HL_TARGET_COUNT] by layer·HL_TARGET_COUNT
     * + target, the LM head at L·HL_TARGET_COUNT + HL_TARGET_OUTPUT; NULL
     * entries (or a NULL array) keep the base's. Borrowed. A view with
     * replaced weights has no packed cache, and a quantized base's weights
     * cannot be replaced. */
    const float *const *weights;
} hl_model_view_params;

/* A view of base as p describes it, freed with hl_model_free (before base). */
hl_status hl_model_view_init(const hl_model *base, const hl_model_view_params *p, hl_model **out, hl_error *err);

/* The quantized view of (layer, target) (layer -1: the LM head), or NULL when
 * that weight is f32 (then hl_model_weight has it). */
const hl_qweight *hl_model_qweight(const hl_model *m, int layer, int target);
/* Token id's input embedding (id < Vb): a pointer into the f32 table, or the
 * row dequantized into buf (C floats). */
const float *hl_model_embd_row(const hl_model *m, int32_t id, float *buf);
/* Row id of the LM head (id < Vb), as hl_model_embd_row. */
const float *hl_model_output_row(const hl_model *m, int32_t id, float *buf);
/* Shape of (layer, target): 1 when the model has that weight (f32 or not). */
int hl_model_weight_shape(const hl_model *m, int layer, int target, int64_t *rows, int64_t *cols);

/* The packed weights of m, made on first use with pool's threads. */
hl_status hl_model_packed(const hl_model *m, hl_pool *pool, const hl_packed_weights **out, hl_error *err);
/* The packed panels of (layer, target) (layer -1: the LM head), or NULL. */
const float *hl_packed_weight(const hl_packed_weights *pw, int layer, int target);
/* hl_weight_layout AUTO → $HYPERLORA_WEIGHTS when set ("packed" or "rows",
 * anything else refused), else PACKED when prefer_packed, else ROWS. */
hl_status hl_weight_layout_resolve(int32_t asked, int prefer_packed, int32_t *out, hl_error *err);
/* The empty cache every model gets when it is created, and its release. */
hl_status hl_model_packed_init(hl_model *m, hl_error *err);
void hl_model_packed_free(hl_model *m);

/* Views of one projection's weight by target, for LoRA hooks; NULL for a
 * quantized weight (see hl_model_qweight) or none. */
const float *hl_model_weight(const hl_model *m, int layer, int target, int64_t *rows, int64_t *cols);
/* GGUF tensor name of (layer, target), e.g. "blk.3.attn_q.weight". */
void hl_model_tensor_name(int layer, int target, char *buf, size_t cap);
#endif
