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
} hl_model_config;

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

/* ---------------------------------------------------------------- context */

typedef struct hl_context hl_context; /* KV cache, scratch and worker threads */

typedef struct hl_context_params {
    int32_t n_ctx;      /* 0 = the model's seq_len */
    int32_t n_threads;  /* >= 1; results are bit-identical for any value */
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

#ifdef __cplusplus
}
#endif
#endif
