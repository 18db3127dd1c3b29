/* hyperlora.h: the public C API of hyperlora (libhyperlora).
 *
 * Conventions: every object is an opaque handle created by an *_init or
 * *_load function and released by the matching *_free, which releases
 * everything the object owns; *_free(NULL) does nothing. Fallible functions
 * return an hl_status and fill an optional hl_error with a message that names
 * the file and field. There is no global state (apart from the test-only
 * allocation fault injector and the CPU-feature table the kernels fill once).
 *
 * Ownership: a handle passed as `const T *` is borrowed for the call only,
 * unless the comment says it must outlive something. Buffers the library
 * hands out (token ids, decoded text) are released with hl_free.
 *
 * Threads: different objects may be used from different threads at once.
 * A model (hl_model) and an adapter (hl_adapter) are read-only once loaded
 * and may be shared by any number of contexts and threads. A context, a
 * sampler, a scene decoder and a training run are single-threaded objects:
 * one thread at a time per object (each runs its own worker threads inside).
 *
 * Shape letters used throughout: T = tokens in a batch, C = model dim,
 * V = vocabulary, H = attention heads, Hkv = kv heads, D = head dim,
 * F = feed-forward hidden dim, L = layers, r = LoRA rank.
 */
#ifndef HYPERLORA_H
#define HYPERLORA_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Exported symbols: the library is built with hidden visibility, and only
 * what this header marks HL_API is visible to programs that link it. */
#if defined(__GNUC__) || defined(__clang__)
#define HL_API __attribute__((visibility("default")))
#else
#define HL_API
#endif

#define HL_VERSION_MAJOR 0
#define HL_VERSION_MINOR 3
#define HL_VERSION_PATCH 0
#define HL_VERSION_STRING "0.3.0"
/* The version of the library actually linked (the macros give the header's). */
HL_API const char *hl_version(void);

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

HL_API const char *hl_status_name(hl_status status);

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
HL_API const char *hl_arch_name(hl_arch a); /* "llama", "qwen2", "qwen3" */

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

HL_API const char *hl_target_name(hl_target t); /* "q", "k", ..., "output" */

typedef struct hl_model hl_model;
typedef struct hl_tokenizer hl_tokenizer;

/* Loads a GGUF (llama architecture, F32/F16/BF16) or a llama2.c checkpoint
 * (.bin; then tokenizer_path must name its tokenizer.bin). The file is
 * mmapped read-only and never written. */
HL_API hl_status hl_model_load(const char *path, const char *tokenizer_path, hl_model **out, hl_error *err);
HL_API void hl_model_free(hl_model *m);
HL_API const hl_model_config *hl_model_get_config(const hl_model *m);
HL_API const hl_tokenizer *hl_model_get_tokenizer(const hl_model *m);
/* Writes the model (weights + llama.* and tokenizer.ggml.* keys) as GGUF. */
HL_API hl_status hl_model_save_gguf(const hl_model *m, const char *path, hl_error *err);
/* A stable 64-bit fingerprint of the base (config, tensor shapes, weight samples). */
HL_API uint64_t hl_model_fingerprint(const hl_model *m);

/* Random-weight model of a given shape (benchmarks, pretraining start) with
 * the tokenizer in tokenizer_path (llama2.c format). Weights ~ N(0, 0.02)
 * (residual-stream outputs N(0, 0.02/sqrt(2L))) from a seeded RNG; norms 1. */
HL_API hl_status hl_model_init_random(const hl_model_config *cfg, const char *tokenizer_path, uint64_t seed,
                               hl_model **out, hl_error *err);
/* The same with a tokenizer object, which the model takes over (freed on failure too). */
HL_API hl_status hl_model_init_random_tok(const hl_model_config *cfg, hl_tokenizer *tok, uint64_t seed, hl_model **out,
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
 * scalar level. Quantized (block type) weights are read from their blocks
 * whatever the layout: with 8-bit activations and integer dot products by
 * default, as llama.cpp does, or dequantized to f32 when
 * $HYPERLORA_QPRODUCT=f32 (exact against the dequantized model); the
 * choice is read when the context is created. */
typedef enum { HL_WEIGHTS_AUTO = 0, HL_WEIGHTS_PACKED = 1, HL_WEIGHTS_ROWS = 2 } hl_weight_layout;

/* The default context: the model's seq_len, but at most this many positions
 * unless n_ctx asks for more (a header may claim millions). */
#define HL_CONTEXT_DEFAULT_MAX 4096

typedef struct hl_context_params {
    int32_t n_ctx;      /* 0 = min(the model's seq_len, HL_CONTEXT_DEFAULT_MAX); above seq_len is refused */
    int32_t n_threads;  /* >= 1; results are bit-identical for any value */
    int32_t weights;    /* hl_weight_layout; 0 = AUTO */
} hl_context_params;

HL_API hl_context_params hl_context_default_params(void);
HL_API hl_status hl_context_init(const hl_model *m, const hl_context_params *params, hl_context **out, hl_error *err);
HL_API void hl_context_free(hl_context *ctx);
/* Runs n tokens at positions pos..pos+n-1 (KV cache filled), a batch in one
 * pass. logits receives V floats for the last token, or n*V floats for all
 * tokens when all_logits is set; it may be NULL. */
HL_API hl_status hl_context_eval(hl_context *ctx, const int32_t *tokens, int32_t n, int32_t pos,
                          float *logits, int all_logits, hl_error *err);
HL_API int32_t hl_context_n_ctx(const hl_context *ctx);
/* The layout the context runs on (PACKED or ROWS; AUTO resolved). */
HL_API hl_weight_layout hl_context_weight_layout(const hl_context *ctx);

/* Mute scenes: raw input vectors (n, C), borrowed. A token id of -k-1 in
 * hl_context_eval feeds vector k straight into the input embeddings. */
HL_API hl_status hl_context_set_scene_vectors(hl_context *ctx, const float *vectors, int32_t n, hl_error *err);

/* ---------------------------------------------------------------- adapters */

typedef struct hl_adapter hl_adapter;

/* Loads a LoRA adapter (GGUF as llama.cpp writes it, or a PEFT directory /
 * adapter_model.safetensors with adapter_config.json) for model m. Shapes must
 * fit m; an adapter made for another base (fingerprint) is refused unless
 * force is set. */
HL_API hl_status hl_adapter_load(const char *path, const hl_model *m, int force, hl_adapter **out, hl_error *err);
HL_API void hl_adapter_free(hl_adapter *a);
/* Makes `adapters` (with user scales) the active set of ctx: y = Wx + Σ uᵢ·sᵢ·Bᵢ(Aᵢx).
 * The adapters must outlive their use in ctx. n = 0 removes all. */
HL_API hl_status hl_context_set_adapters(hl_context *ctx, const hl_adapter *const *adapters, const float *scales,
                                  int32_t n, hl_error *err);

/* ---------------------------------------------------------------- sampler */

typedef struct hl_sampler_params {
    float temperature;  /* 0 = greedy */
    int32_t top_k;      /* 0 = off */
    float top_p;        /* 1 = off */
    uint64_t seed;
} hl_sampler_params;

typedef struct hl_sampler hl_sampler;
HL_API hl_sampler_params hl_sampler_default_params(void);
HL_API hl_status hl_sampler_init(const hl_sampler_params *p, int32_t vocab_size, hl_sampler **out, hl_error *err);
HL_API void hl_sampler_free(hl_sampler *s);
HL_API int32_t hl_sampler_sample(hl_sampler *s, const float *logits);

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
HL_API hl_status hl_generate(hl_context *ctx, hl_sampler *sampler, const int32_t *prompt, int32_t n_prompt,
                      const hl_generate_params *params, hl_token_fn fn, void *user, int32_t *tokens,
                      int32_t *n_out, hl_error *err);

/* Tokenizers. A model owns its own (hl_model_get_tokenizer). hl_tokenizer_load
 * reads one on its own, for hl_model_init_random_tok: the tokenizer.ggml.*
 * keys of a GGUF file, or a llama2.c tokenizer.bin. Read-only once made:
 * any number of threads may encode with one tokenizer at once. */
HL_API hl_status hl_tokenizer_load(const char *path, hl_tokenizer **out, hl_error *err);
HL_API void hl_tokenizer_free(hl_tokenizer *t);
HL_API int32_t hl_tokenizer_n_vocab(const hl_tokenizer *t);
HL_API int32_t hl_tokenizer_bos(const hl_tokenizer *t);
HL_API int32_t hl_tokenizer_eos(const hl_tokenizer *t);
HL_API hl_status hl_tokenizer_encode(const hl_tokenizer *t, const char *text, size_t len, int add_bos, int add_eos,
                              int32_t **ids, size_t *n_ids, hl_error *err);
HL_API size_t hl_tokenizer_decode(const hl_tokenizer *t, int32_t prev, int32_t id, char *buf, size_t cap);
HL_API void hl_free(void *ptr); /* releases buffers the library hands out (e.g. encode's ids) */

/* ---------------------------------------------------- making adapters */

/* How a new adapter's A starts (B always starts at 0, so a fresh adapter
 * changes nothing): Kaiming-uniform U(-1/sqrt(in), 1/sqrt(in)) as PEFT does,
 * or Gaussian N(0, 1/r). */
typedef enum hl_lora_init { HL_INIT_KAIMING = 0, HL_INIT_GAUSSIAN, HL_INIT_COUNT } hl_lora_init;

/* The targets a new adapter gets when none are named. */
#define HL_DEFAULT_TARGETS "q,v,o,gate,up,down,output"

typedef struct hl_adapter_spec {
    const char *name;      /* stored as general.name; NULL = "adapter" */
    uint32_t targets;      /* bitmask of (1 << hl_target); hl_parse_targets makes one */
    const uint8_t *layers; /* L flags (1 = adapt that layer), or NULL for all; hl_parse_layers makes one */
    int32_t rank;          /* r >= 1 */
    float alpha;           /* scale s = alpha / r, or alpha / sqrt(r) with rslora */
    int rslora;
    hl_lora_init init;
    uint64_t seed;         /* the same seed gives the same bytes */
} hl_adapter_spec;

/* "q,v,o" -> bitmask over hl_target. Token embeddings and positions are
 * refused with the reason; an unknown name is refused listing the valid ones. */
HL_API hl_status hl_parse_targets(const char *spec, uint32_t *mask, hl_error *err);
/* "0-3,7" -> n_layers flags; NULL or "" = all layers. */
HL_API hl_status hl_parse_layers(const char *spec, int32_t n_layers, uint8_t *flags, hl_error *err);
/* A new adapter for m: A (r, in) and B (out, r) for every chosen projection. */
HL_API hl_status hl_adapter_create(const hl_model *m, const hl_adapter_spec *spec, hl_adapter **out,
                                   hl_error *err);
/* Starts dst from a trained adapter src (continued training, e.g. a reader
 * specialised after a mixed run): every weight of src is copied into the
 * same (layer, target) of dst, which must have it at the same rank and shape.
 * B is rescaled where the two scale differently, so dst computes what src
 * did. Weights dst has and src lacks keep their fresh start (B = 0); their
 * count goes to *n_fresh (may be NULL). A weight of src that dst lacks, a rank
 * or layer-count mismatch is refused and dst is left untouched. */
HL_API hl_status hl_adapter_start_from(hl_adapter *dst, const hl_adapter *src, int32_t *n_fresh, hl_error *err);

/* ---------------------------------------------------- saving adapters */

/* GGUF as llama.cpp reads it (`llama-cli --lora`): general.type = "adapter",
 * adapter.lora.alpha, blk.N.<proj>.weight.lora_a / .lora_b, plus the base
 * fingerprint and any carried lexicon. */
HL_API hl_status hl_adapter_save_gguf(const hl_adapter *a, const char *path, hl_error *err);
/* A Hugging Face PEFT directory: adapter_model.safetensors + adapter_config.json
 * (m gives the names and the row order PEFT expects). */
HL_API hl_status hl_adapter_save_peft(const hl_adapter *a, const hl_model *m, const char *dir, hl_error *err);

/* --------------------------------------------- merging and combining */

/* Writes W' = W + sum_i scales[i] * s_i * B_i * A_i as a new GGUF model at path.
 * For a GGUF base every key/value and untouched tensor is copied verbatim;
 * adapted tensors become F32. The base file is never modified. */
HL_API hl_status hl_merge_to_gguf(const hl_model *m, const hl_adapter *const *adapters, const float *scales,
                                  int32_t n, const char *path, hl_error *err);

/* A new adapter from n weighted adapters (all fitted to m), whose scale is 1:
 *   CAT    stacks the factors: exact, rank = sum of ranks;
 *   LINEAR A = sum sqrt(w_i) s_i A_i, B = sum sqrt(w_i) B_i (PEFT's "linear"):
 *          exact only when the adapters share A or B;
 *   SVD    the best rank-k approximation of the weighted sum, computed from
 *          the factors (never from the out x in matrix). */
typedef enum hl_combine_method {
    HL_COMBINE_CAT = 0,
    HL_COMBINE_LINEAR,
    HL_COMBINE_SVD,
    HL_COMBINE_METHOD_COUNT
} hl_combine_method;

HL_API const char *hl_combine_method_name(hl_combine_method method); /* "cat", "linear", "svd" */
/* Parses "cat" / "linear" / "svd"; anything else is HL_ERR_INVALID_ARG. */
HL_API hl_status hl_combine_method_parse(const char *name, hl_combine_method *out, hl_error *err);

typedef struct hl_combine_tensor_report {
    int32_t layer;     /* -1 for the output projection */
    int32_t target;    /* hl_target */
    int32_t rank_in;   /* R = sum of the ranks of the inputs that adapt this tensor */
    int32_t rank_out;  /* rank written */
    int32_t clamped;   /* svd: the rank asked for was above what this tensor can hold */
    int32_t sweeps;    /* svd: Jacobi sweeps until convergence */
    double norm;       /* ||dW||_F of the weighted sum */
    double error;      /* ||dW - B A||_F: 0 for cat, cross terms for linear, the dropped singular values for svd */
    double rel_error;  /* error / norm (0 when norm is 0) */
} hl_combine_tensor_report;

typedef struct hl_combine_report {
    hl_combine_method method;
    int32_t n_tensors;
    hl_combine_tensor_report *tensors; /* [n_tensors], in the result's weight order */
    int32_t n_clamped;                 /* svd tensors whose rank was clamped */
    double total_norm;                 /* sqrt(sum norm^2) over tensors */
    double total_error;                /* sqrt(sum error^2) over tensors */
    double total_rel_error;            /* total_error / total_norm */
} hl_combine_report;

/* Releases report->tensors (the struct itself is the caller's). */
HL_API void hl_combine_report_free(hl_combine_report *report);

/* Makes *out from n adapters with weights[n]. svd_rank is k for SVD (>= 1;
 * clamped per tensor) and ignored otherwise; name may be NULL ("combined").
 * report may be NULL; when given it is filled on success and released with
 * hl_combine_report_free. The same inputs give the same bytes. */
HL_API hl_status hl_adapter_combine(const hl_model *m, const hl_adapter *const *adapters, const float *weights,
                                    int32_t n, hl_combine_method method, int32_t svd_rank, const char *name,
                                    hl_adapter **out, hl_combine_report *report, hl_error *err);

/* ------------------------------------------------ hyperlexeme lexicons */

/* A lexicon declares hyperlexemes: whole scenes that are one atomic token
 * each, whose frozen embedding is composed from the base model's embeddings
 * of their parts (or given as a vector). It is JSONL, one entry per line:
 *   {"lexeme": "Δ21", "parts": ["тишина", "вход", "страх"],
 *    "weights": [1, 1, 2], "facets": {"tone": "...", ...}}
 * or "vector": [C floats] instead of "parts". An optional first line
 * {"compose": RULE} picks how parts combine: "parts" (the mean, default),
 * "parts+facets", "slots", "slots+facets", "ranked", "ranked+facets",
 * "decay", "decay+facets", "decay+facet-words" (README: Lexicon).
 * The base file is never changed: the lexicon makes a view of the model with
 * the extra rows, and base-token logits stay bitwise the same. */
typedef struct hl_lexicon hl_lexicon;

enum { HL_FORM_TEXT, HL_FORM_SYMBOLS, HL_FORM_FORMULA, HL_FORM_DIALOGUE, HL_FORM_REPORT, HL_FORM_COUNT };
enum { HL_REGISTER_POETIC, HL_REGISTER_LOGICAL, HL_REGISTER_TECHNICAL, HL_REGISTER_COUNT };

HL_API const char *hl_form_name(int form);         /* "text", "symbols", ... */
HL_API const char *hl_register_name(int reg);      /* "poetic", "logical", "technical" */
HL_API int hl_form_from_name(const char *name);     /* -1 if unknown */
HL_API int hl_register_from_name(const char *name); /* -1 if unknown */

/* Loads a lexicon file for base. compose overrides the file's rule (NULL:
 * the file's first line, else "parts"). base must outlive the lexicon. */
HL_API hl_status hl_lexicon_load_compose(const char *path, const hl_model *base, const char *compose,
                                         hl_lexicon **out, hl_error *err);
/* The same from memory; name is used in messages. */
HL_API hl_status hl_lexicon_load_memory(const char *text, size_t len, const char *name, const hl_model *base,
                                        hl_lexicon **out, hl_error *err);
/* The lexicon an adapter carries; *out = NULL (and HL_OK) when it carries none. */
HL_API hl_status hl_lexicon_from_adapter(const hl_adapter *a, const hl_model *base, hl_lexicon **out,
                                         hl_error *err);
/* The carried lexicon with the entries of extra_path added after it: scenes
 * declared after training, nothing retrained. The carried entries keep their
 * token ids; a lexeme defined in both is refused naming the file and line. */
HL_API hl_status hl_lexicon_from_adapter_extra(const hl_adapter *a, const hl_model *base, const char *extra_path,
                                               hl_lexicon **out, hl_error *err);
HL_API void hl_lexicon_free(hl_lexicon *lex);

/* The base model seen with the lexicon (vocabulary extended, extra rows
 * frozen) and its tokenizer, which never splits a lexeme. Owned by lex. */
HL_API const hl_model *hl_lexicon_model(const hl_lexicon *lex);
HL_API const hl_tokenizer *hl_lexicon_tokenizer(const hl_lexicon *lex);
/* Stores the lexicon in the adapter, so a saved adapter is a whole decoder. */
HL_API hl_status hl_lexicon_attach(const hl_lexicon *lex, hl_adapter *a, hl_error *err);

HL_API int32_t hl_lexicon_n_entries(const hl_lexicon *lex);
HL_API const char *hl_lexicon_lexeme(const hl_lexicon *lex, int32_t i);
HL_API int32_t hl_lexicon_token(const hl_lexicon *lex, int32_t i);
HL_API int32_t hl_lexicon_find(const hl_lexicon *lex, const char *lexeme); /* entry index or -1 */
/* Parts (0 / NULL for vector entries); facets as "key=value" lines (may be ""). */
HL_API int32_t hl_lexicon_n_parts(const hl_lexicon *lex, int32_t i);
HL_API const char *hl_lexicon_part(const hl_lexicon *lex, int32_t i, int32_t p);
HL_API const char *hl_lexicon_facets(const hl_lexicon *lex, int32_t i);
HL_API const float *hl_lexicon_embedding(const hl_lexicon *lex, int32_t i); /* (C) composed input row */
/* HL_OK when scene is one or more lexemes separated by spaces; otherwise
 * HL_ERR_INVALID_ARG naming the first word that is not one and the nearest lexemes. */
HL_API hl_status hl_lexicon_check_scene(const hl_lexicon *lex, const char *scene, hl_error *err);

/* ------------------------------------------------------ scene decoding */

/* A scene decoder: a base model, a lexicon and the adapters that turn a scene
 * into a form and register. The lexicon is the one the first adapter carries,
 * with lexicon_path's entries added after it when both are given, or
 * lexicon_path alone when no adapter carries one. Greedy by default; with a
 * temperature it samples from the seeded RNG, so the same scene, adapters and
 * seed always give the same bytes, at any thread count. */
typedef struct hl_scene_decoder hl_scene_decoder;

typedef struct hl_scene_decoder_params {
    const char *model_path, *tokenizer_path; /* tokenizer_path: llama2.c checkpoints only */
    const char *lexicon_path;                /* optional */
    const char *compose;                     /* with lexicon_path alone: its rule, NULL = the file's */
    const char *const *lora_paths;           /* applied for every (form, register) */
    const float *lora_scales;                /* n_lora user scales, NULL = all 1 */
    int32_t n_lora;
    const char *bundle_path;                 /* optional: adapters chosen per (form, register) */
    int32_t n_threads;                       /* >= 1 */
    int force;                               /* accept adapters made for another base */
    int allow_text;                          /* scenes may mix plain text with lexemes */
    int no_word_rows;                        /* keep the adapters' trained output rows for words that are
                                                parts only of scenes declared after training (default:
                                                compose their rows from their head rows; README) */
} hl_scene_decoder_params;

HL_API hl_status hl_scene_decoder_init(const hl_scene_decoder_params *p, hl_scene_decoder **out, hl_error *err);
HL_API void hl_scene_decoder_free(hl_scene_decoder *d);
HL_API const hl_lexicon *hl_scene_decoder_lexicon(const hl_scene_decoder *d); /* owned by d */
HL_API const hl_model *hl_scene_decoder_base(const hl_scene_decoder *d);      /* owned by d */
/* Words that got composed output-adapter rows (n_new), the trained words the
 * map was fitted on (n_fit) and the new words' tokens left alone because the
 * word is spelled by several tokens (n_skipped), summed over the adapters. */
HL_API void hl_scene_decoder_word_rows(const hl_scene_decoder *d, int32_t *n_new, int32_t *n_fit, int32_t *n_skipped);

/* Decodes a scene (lexemes separated by spaces) or, with scene == NULL,
 * n_vectors mute-scene vectors (n_vectors x C floats) into form (HL_FORM_*)
 * and register (HL_REGISTER_*). sp may be NULL (greedy). *text is released
 * with hl_free; it has no trailing EOS and no leading space. */
HL_API hl_status hl_scene_decode(hl_scene_decoder *d, const char *scene, const float *vectors,
                                 int32_t n_vectors, int form, int reg, const hl_sampler_params *sp,
                                 int32_t max_tokens, char **text, hl_error *err);
/* Mute-scene files: raw little-endian f32, 1..HL_SCENE_MAX_VECTORS vectors of
 * C floats, all finite. *out is released with hl_free. */
#define HL_SCENE_MAX_VECTORS 64
HL_API hl_status hl_scene_vectors_load(const char *path, int64_t C, float **out, int32_t *n, hl_error *err);

/* -------------------------------------------------------- training data */

/* Training data: JSONL, one example per line, any of
 *   {"text": "..."}                                   loss on every token
 *   {"prompt": "...", "completion": "..."}            loss on the completion only
 *   {"scene": "Δ21", "form": "text", "register": "poetic", "output": "..."}
 *        a scene-decoder example, formatted by hl_lexicon_scene_format
 * tokenized into rows of ctx+1 tokens with a loss mask, and split into
 * training and validation rows by a seeded fraction. A bad line fails the
 * load with "FILE:LINE: field: why". Training runs (include/hyperlora/train.h)
 * draw their batches from it. Read-only after load, except that drawing
 * batches caches an epoch's permutation: one run per dataset at a time. */
typedef struct hl_dataset hl_dataset;

/* Formats a scene example: *ids and *mask (n each, released with hl_free);
 * mask[i] = 1 when token i is a target that counts in the loss. */
typedef hl_status (*hl_scene_format_fn)(void *user, const char *scene, const char *form, const char *reg,
                                        const char *output, int32_t **ids, uint8_t **mask, size_t *n, hl_error *err);

typedef enum hl_pack_mode {
    HL_PACK_NONE = 0,   /* one example per row, padded or truncated */
    HL_PACK_STREAM = 1, /* examples concatenated and cut at fixed offsets (raw-text pretraining) */
    HL_PACK_DOCS = 2    /* whole examples packed into rows, each attending only to itself */
} hl_pack_mode;

typedef struct hl_dataset_params {
    int32_t ctx;                     /* T: tokens per row (targets) */
    hl_pack_mode pack;               /* HL_PACK_DOCS for fine-tuning */
    float val_fraction;              /* 0..0.5 of the examples held out for evaluation */
    uint64_t seed;                   /* split and shuffling */
    hl_scene_format_fn scene_format; /* NULL refuses scene lines; hl_lexicon_scene_format reads them */
    void *scene_user;                /* the hl_lexicon for hl_lexicon_scene_format */
} hl_dataset_params;

typedef struct hl_dataset_stats {
    int64_t n_examples, n_train_examples, n_val_examples;
    int64_t n_train_rows, n_val_rows;
    int64_t n_tokens, n_loss_tokens; /* over train rows: real (non-padding) targets, and those with mask 1 */
    int64_t n_truncated;             /* examples (train and val) cut to fit a row (none, docs) */
    int64_t max_example_tokens;      /* the longest example, in tokens (BOS and EOS included) */
} hl_dataset_stats;

/* Loads and tokenizes path with tok; for scene examples pass the lexicon's
 * tokenizer (hl_lexicon_tokenizer), which knows the hyperlexeme tokens. tok
 * is only used during the call. */
HL_API hl_status hl_dataset_load(const char *path, const hl_tokenizer *tok, const hl_dataset_params *params,
                                 hl_dataset **out, hl_error *err);
/* The same from memory; name is used in messages. */
HL_API hl_status hl_dataset_load_memory(const char *data, size_t size, const char *name, const hl_tokenizer *tok,
                                        const hl_dataset_params *params, hl_dataset **out, hl_error *err);
HL_API void hl_dataset_free(hl_dataset *ds);
HL_API const hl_dataset_stats *hl_dataset_get_stats(const hl_dataset *ds); /* owned by ds */
/* The scene formatter for hl_dataset_params (user: the hl_lexicon):
 * [BOS] <form> <register> scene <sep> output [EOS], loss on output and EOS. */
HL_API hl_status hl_lexicon_scene_format(void *user, const char *scene, const char *form, const char *reg,
                                         const char *output, int32_t **ids, uint8_t **mask, size_t *n,
                                         hl_error *err);

#ifdef __cplusplus
}
#endif
#endif
