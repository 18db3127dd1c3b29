/* hyperlora.h: the public C API of hyperlora.
 *
 * Conventions: every object is an opaque handle created by an *_init or
 * *_load function and released by the matching *_free, which releases
 * everything the object owns. Fallible functions return an hl_status and
 * fill an optional hl_error with a message that names the file and field.
 * There is no global state (apart from the test-only allocation fault
 * injector in util/alloc.h).
 *
 * Shape letters used throughout: T = tokens in a batch, C = model dim,
 * V = vocabulary, H = attention heads, Hkv = kv heads, D = head dim,
 * F = feed-forward hidden dim, L = layers.
 */
#ifndef HYPERLORA_H
#define HYPERLORA_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HL_VERSION_STRING "0.1.0"

typedef enum hl_status {
    HL_OK = 0,
    HL_ERR_IO,
    HL_ERR_FORMAT,        /* malformed file or field */
    HL_ERR_NOMEM,
    HL_ERR_INVALID_ARG,
    HL_ERR_UNSUPPORTED,
    HL_ERR_MISMATCH,      /* e.g. adapter made for another base */
    HL_ERR_LIMIT,         /* a documented resource cap was exceeded */
    HL_ERR_INTERRUPTED,
    HL_ERR_NOT_FOUND,     /* a named thing (an adapter, a route) does not exist */
    HL_STATUS_COUNT
} hl_status;

typedef struct hl_error {
    hl_status status;
    char msg[512];
} hl_error;

const char *hl_status_name(hl_status status);

/* ------------------------------------------------------------------ model */

typedef struct hl_model_config {
    int32_t dim;          /* C */
    int32_t hidden_dim;   /* F */
    int32_t n_layers;     /* L */
    int32_t n_heads;      /* H */
    int32_t n_kv_heads;   /* Hkv */
    int32_t vocab_size;   /* V */
    int32_t seq_len;      /* context length */
    float norm_eps;       /* RMSNorm epsilon */
    float rope_theta;     /* RoPE base frequency */
    int32_t tied_output;  /* 1 when output.weight is absent and the LM head reuses token_embd */
    int32_t arch;         /* hl_arch (0: llama) */
    int32_t head_dim;     /* D, per-head q/k/v size; 0 means dim / n_heads */
} hl_model_config;

/* Architectures (GGUF general.architecture). */
typedef enum hl_arch {
    HL_ARCH_LLAMA = 0, /* "llama": Llama 1/2/3 (RoPE on adjacent pairs; optional Llama-3 rope_freqs) */
    HL_ARCH_QWEN2,     /* "qwen2": q/k/v biases, RoPE on pairs (i, i + D/2) */
    HL_ARCH_QWEN3,     /* "qwen3": per-head q/k RMSNorm before RoPE, RoPE as qwen2 */
    HL_ARCH_COUNT
} hl_arch;
const char *hl_arch_name(hl_arch a); /* "llama", "qwen2", "qwen3" */

/* The projections an adapter can plug into. Token embeddings are never adaptable. */
typedef enum hl_target {
    HL_TARGET_Q = 0,   /* blk.N.attn_q.weight */
    HL_TARGET_K,       /* blk.N.attn_k.weight */
    HL_TARGET_V,       /* blk.N.attn_v.weight */
    HL_TARGET_O,       /* blk.N.attn_output.weight */
    HL_TARGET_GATE,    /* blk.N.ffn_gate.weight */
    HL_TARGET_UP,      /* blk.N.ffn_up.weight */
    HL_TARGET_DOWN,    /* blk.N.ffn_down.weight */
    HL_TARGET_OUTPUT,  /* output.weight (the LM head; layer -1) */
    HL_TARGET_COUNT
} hl_target;

const char *hl_target_name(hl_target t); /* "q", "k", ..., "output" */

typedef struct hl_model hl_model;
typedef struct hl_tokenizer hl_tokenizer;

/* Loads a GGUF (llama architecture, F32/F16/BF16) or a llama2.c checkpoint
 * (.bin; then tokenizer_path must name its tokenizer.bin). The file is
 * mmapped read-only and never written. */
hl_status hl_model_load(const char *path, const char *tokenizer_path, hl_model **out, hl_error *err);
void hl_model_free(hl_model *m);
const hl_model_config *hl_model_get_config(const hl_model *m);
const hl_tokenizer *hl_model_get_tokenizer(const hl_model *m);
/* Writes the model (weights + llama.* and tokenizer.ggml.* keys) as GGUF. */
hl_status hl_model_save_gguf(const hl_model *m, const char *path, hl_error *err);
/* A stable 64-bit fingerprint of the base (config, tensor shapes, weight samples). */
uint64_t hl_model_fingerprint(const hl_model *m);

/* Random-weight model of a given shape (benchmarks, pretraining start) with
 * the tokenizer in tokenizer_path (llama2.c format). Weights ~ N(0, 0.02)
 * (residual-stream outputs N(0, 0.02/sqrt(2L))) from a seeded RNG; norms 1. */
hl_status hl_model_init_random(const hl_model_config *cfg, const char *tokenizer_path, uint64_t seed,
                               hl_model **out, hl_error *err);
/* The same with a tokenizer object, which the model takes over (freed on failure too). */
hl_status hl_model_init_random_tok(const hl_model_config *cfg, hl_tokenizer *tok, uint64_t seed, hl_model **out,
                                   hl_error *err);

/* ---------------------------------------------------------------- context */

typedef struct hl_context hl_context; /* KV cache, scratch and worker threads */

/* How a context reads the projection weights. PACKED: a copy in 16-row
 * panels (made once per model by the first context that asks; the file's
 * pages are then handed back to the page cache), each output a sequential
 * chain of fused multiply-adds. ROWS: the mmapped row-major weights, each
 * output a lane-tree dot product (hl_dot). The two differ in the last bits;
 * each is deterministic and the same batched or token by token, at any
 * thread count. AUTO: $HYPERLORA_WEIGHTS ("packed" or "rows") when set,
 * else PACKED where the kernels run at the AVX2 or AVX-512 level (the
 * faster one there; chosen at run time in a portable build), ROWS on the
 * scalar level. */
typedef enum { HL_WEIGHTS_AUTO = 0, HL_WEIGHTS_PACKED = 1, HL_WEIGHTS_ROWS = 2 } hl_weight_layout;

/* The default context: the model's seq_len, but at most this many positions
 * unless n_ctx asks for more (a header may claim millions). */
#define HL_CONTEXT_DEFAULT_MAX 4096

typedef struct hl_context_params {
    int32_t n_ctx;      /* 0 = min(the model's seq_len, HL_CONTEXT_DEFAULT_MAX); above seq_len is refused */
    int32_t n_threads;  /* >= 1; results are bit-identical for any value */
    int32_t weights;    /* hl_weight_layout; 0 = AUTO */
} hl_context_params;

hl_context_params hl_context_default_params(void);
hl_status hl_context_init(const hl_model *m, const hl_context_params *params, hl_context **out, hl_error *err);
void hl_context_free(hl_context *ctx);
/* Runs n tokens at positions pos..pos+n-1 (KV cache filled), a batch in one
 * pass. logits receives V floats for the last token, or n*V floats for all
 * tokens when all_logits is set; it may be NULL. */
hl_status hl_context_eval(hl_context *ctx, const int32_t *tokens, int32_t n, int32_t pos,
                          float *logits, int all_logits, hl_error *err);
int32_t hl_context_n_ctx(const hl_context *ctx);
/* The layout the context runs on (PACKED or ROWS; AUTO resolved). */
hl_weight_layout hl_context_weight_layout(const hl_context *ctx);

/* Mute scenes: raw input vectors (n, C), borrowed. A token id of -k-1 in
 * hl_context_eval feeds vector k straight into the input embeddings. */
hl_status hl_context_set_scene_vectors(hl_context *ctx, const float *vectors, int32_t n, hl_error *err);

/* ---------------------------------------------------------------- adapters */

typedef struct hl_adapter hl_adapter;

/* Loads a LoRA adapter (GGUF as llama.cpp writes it, or a PEFT directory /
 * adapter_model.safetensors with adapter_config.json) for model m. Shapes must
 * fit m; an adapter made for another base (fingerprint) is refused unless
 * force is set. */
hl_status hl_adapter_load(const char *path, const hl_model *m, int force, hl_adapter **out, hl_error *err);
void hl_adapter_free(hl_adapter *a);
/* Makes `adapters` (with user scales) the active set of ctx: y = Wx + Σ uᵢ·sᵢ·Bᵢ(Aᵢx).
 * The adapters must outlive their use in ctx. n = 0 removes all. */
hl_status hl_context_set_adapters(hl_context *ctx, const hl_adapter *const *adapters, const float *scales,
                                  int32_t n, hl_error *err);

/* ---------------------------------------------------------------- sampler */

typedef struct hl_sampler_params {
    float temperature;  /* 0 = greedy */
    int32_t top_k;      /* 0 = off */
    float top_p;        /* 1 = off */
    uint64_t seed;
} hl_sampler_params;

typedef struct hl_sampler hl_sampler;
hl_sampler_params hl_sampler_default_params(void);
hl_status hl_sampler_init(const hl_sampler_params *p, int32_t vocab_size, hl_sampler **out, hl_error *err);
void hl_sampler_free(hl_sampler *s);
int32_t hl_sampler_sample(hl_sampler *s, const float *logits);

/* ------------------------------------------------------------- generation */

/* Called for each generated token; return non-zero to stop early. */
typedef int (*hl_token_fn)(void *user, int32_t token);

typedef struct hl_generate_params {
    int32_t n_predict;   /* tokens to generate after the prompt */
    int32_t stop_at_eos; /* stop after EOS (or BOS, which llama2.c uses as a delimiter) */
} hl_generate_params;

/* Evaluates the prompt (starting at position 0, KV cache overwritten) in one
 * batch, then samples up to n_predict tokens, calling fn for each. *n_out
 * receives the number generated (tokens may be NULL). */
hl_status hl_generate(hl_context *ctx, hl_sampler *sampler, const int32_t *prompt, int32_t n_prompt,
                      const hl_generate_params *params, hl_token_fn fn, void *user, int32_t *tokens,
                      int32_t *n_out, hl_error *err);

/* Tokenizer access through the public API. */
int32_t hl_tokenizer_n_vocab(const hl_tokenizer *t);
int32_t hl_tokenizer_bos(const hl_tokenizer *t);
int32_t hl_tokenizer_eos(const hl_tokenizer *t);
hl_status hl_tokenizer_encode(const hl_tokenizer *t, const char *text, size_t len, int add_bos, int add_eos,
                              int32_t **ids, size_t *n_ids, hl_error *err);
size_t hl_tokenizer_decode(const hl_tokenizer *t, int32_t prev, int32_t id, char *buf, size_t cap);
void hl_free(void *ptr); /* releases buffers the library hands out (e.g. encode's ids) */

#ifdef __cplusplus
}
#endif
#endif
