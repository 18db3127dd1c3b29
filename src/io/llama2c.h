/* llama2.c checkpoint import (the .bin format of Karpathy's llama2.c run.c).
 *
 * Layout: int32[7] header (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
 * vocab_size, seq_len; vocab_size < 0 means an unshared classifier), then
 * f32 tensors in order: token_embedding (V, C), rms_att (L, C),
 * wq (L, H·D, C), wk (L, Hkv·D, C), wv (L, Hkv·D, C), wo (L, C, H·D),
 * rms_ffn (L, C), w1 (L, F, C), w2 (L, C, F), w3 (L, F, C), rms_final (C),
 * freq_cis_real (seq_len, D/2), freq_cis_imag (seq_len, D/2), [wcls (V, C)].
 * The header is validated (positive, capped, heads dividing dim, kv heads
 * dividing heads) and the file size must equal what it implies. */
#ifndef HL_IO_LLAMA2C_H
#define HL_IO_LLAMA2C_H
#include "hyperlora.h"
#include "util/fileio.h"

#define HL_LLAMA2C_MAX_DIM    (1 << 16)
#define HL_LLAMA2C_MAX_LAYERS 1024
#define HL_LLAMA2C_MAX_VOCAB  (1 << 22)
#define HL_LLAMA2C_MAX_SEQ    (1 << 20)

typedef struct hl_llama2c {
    hl_model_config cfg;
    int shared_classifier;
    /* Zero-copy views into the mapping; shapes as in the header comment. */
    const float *token_embd, *rms_att, *wq, *wk, *wv, *wo, *rms_ffn, *w1, *w2, *w3, *rms_final, *wcls;
    hl_mapped_file map;
    int owns_map;
} hl_llama2c;

hl_status hl_llama2c_open(const char *path, hl_llama2c *out, hl_error *err);
hl_status hl_llama2c_open_memory(const void *data, size_t size, const char *name, hl_llama2c *out, hl_error *err);
void hl_llama2c_close(hl_llama2c *c);
#endif
