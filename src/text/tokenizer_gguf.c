/* tokenizer_gguf.c: writing a tokenizer back as GGUF tokenizer.ggml.*
 * metadata, the keys and layout llama.cpp's converter writes, so that the
 * files this project writes load in llama.cpp. */
#include "text/tokenizer_internal.h"
#include "io/gguf.h"
#include "util/alloc.h"
#include "util/error.h"

#include <string.h>

/* Writes a writer status as an hl_error naming the key. */
static hl_status wr(hl_status s, const char *key, hl_error *err) {
    return s == HL_OK ? s : hl_fail(err, s, "writing %s: %s", key, hl_status_name(s));
}

/* tokenizer.ggml.* of a byte-level BPE tokenizer, as llama.cpp's converter writes them. */
/* The BOS and EOS ids, which both vocabulary kinds write. */
static hl_status write_bos_eos(const hl_tokenizer *t, hl_gguf_writer *w, hl_error *err) {
    hl_status s = wr(hl_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)t->bos),
                     "tokenizer.ggml.bos_token_id", err);
    if (s == HL_OK)
        s = wr(hl_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)t->eos),
               "tokenizer.ggml.eos_token_id", err);
    return s;
}

static hl_status bpe_to_gguf(const hl_tokenizer *t, hl_gguf_writer *w, hl_error *err) {
    size_t nm = hl_bpe_n_merges(t->bpe), total = 0;
    const char **pieces = hl_malloc_array((size_t)t->n_vocab, sizeof *pieces);
    const char **merges = hl_malloc_array(nm ? nm : 1, sizeof *merges);
    char *blob = NULL;
    for (size_t r = 0; r < nm; r++) {
        int32_t l, rr;
        hl_bpe_merge(t->bpe, r, &l, &rr);
        total += t->len[l] + t->len[rr] + 2; /* each <= 2 * HL_TOKENIZER_MAX_PIECE + 2: no overflow below 2^40 merges */
    }
    blob = hl_malloc(total ? total : 1);
    if (!pieces || !merges || !blob) {
        hl_free(pieces);
        hl_free(merges);
        hl_free(blob);
        return hl_fail(err, HL_ERR_NOMEM, "hl_tokenizer_to_gguf: out of memory");
    }
    for (int32_t i = 0; i < t->n_vocab; i++) pieces[i] = hl_tokenizer_piece_at(t, i);
    size_t pos = 0;
    for (size_t r = 0; r < nm; r++) {
        int32_t l, rr;
        hl_bpe_merge(t->bpe, r, &l, &rr);
        merges[r] = blob + pos;
        memcpy(blob + pos, hl_tokenizer_piece_at(t, l), t->len[l]);
        pos += t->len[l];
        blob[pos++] = ' ';
        memcpy(blob + pos, hl_tokenizer_piece_at(t, rr), t->len[rr]);
        pos += t->len[rr];
        blob[pos++] = 0;
    }
    uint64_t n = (uint64_t)t->n_vocab;
    hl_status s = wr(hl_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2"), "tokenizer.ggml.model", err);
    if (s == HL_OK)
        s = wr(hl_gguf_writer_set_str(w, "tokenizer.ggml.pre", hl_bpe_pre_name(hl_bpe_pre_of(t->bpe))),
               "tokenizer.ggml.pre", err);
    if (s == HL_OK)
        s = wr(hl_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", pieces, n), "tokenizer.ggml.tokens", err);
    if (s == HL_OK)
        s = wr(hl_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", HL_GGUF_INT32, t->types, n),
               "tokenizer.ggml.token_type", err);
    if (s == HL_OK)
        s = wr(hl_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, (uint64_t)nm), "tokenizer.ggml.merges",
               err);
    if (s == HL_OK) s = write_bos_eos(t, w, err);
    if (s == HL_OK)
        s = wr(hl_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", t->add_bos), "tokenizer.ggml.add_bos_token",
               err);
    if (s == HL_OK)
        s = wr(hl_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", t->add_eos), "tokenizer.ggml.add_eos_token",
               err);
    hl_free(pieces);
    hl_free(merges);
    hl_free(blob);
    return s;
}

hl_status hl_tokenizer_to_gguf(const hl_tokenizer *t, hl_gguf_writer *w, hl_error *err) {
    if (!t || !w) return hl_fail(err, HL_ERR_INVALID_ARG, "hl_tokenizer_to_gguf: NULL argument");
    if (t->bpe) return bpe_to_gguf(t, w, err);
    const char **pieces = hl_malloc_array((size_t)t->n_vocab, sizeof *pieces);
    if (!pieces) return hl_fail(err, HL_ERR_NOMEM, "hl_tokenizer_to_gguf: out of memory");
    for (int32_t i = 0; i < t->n_vocab; i++) pieces[i] = hl_tokenizer_piece_at(t, i);
    uint64_t n = (uint64_t)t->n_vocab;
    /* The keys (and order) of llama.cpp's llama2c converter. */
    hl_status s = wr(hl_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", pieces, n), "tokenizer.ggml.tokens", err);
    hl_free(pieces);
    if (s == HL_OK)
        s = wr(hl_gguf_writer_set_arr(w, "tokenizer.ggml.scores", HL_GGUF_FLOAT32, t->scores, n),
               "tokenizer.ggml.scores", err);
    if (s == HL_OK)
        s = wr(hl_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", HL_GGUF_INT32, t->types, n),
               "tokenizer.ggml.token_type", err);
    if (s == HL_OK) s = wr(hl_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama"), "tokenizer.ggml.model", err);
    if (s == HL_OK)
        s = wr(hl_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)t->unk),
               "tokenizer.ggml.unknown_token_id", err);
    if (s == HL_OK) s = write_bos_eos(t, w, err);
    /* "none" (UINT32_MAX), spelled as llama.cpp spells the key */
    if (s == HL_OK)
        s = wr(hl_gguf_writer_set_u32(w, "tokenizer.ggml.seperator_token_id", UINT32_MAX),
               "tokenizer.ggml.seperator_token_id", err);
    if (s == HL_OK)
        s = wr(hl_gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", UINT32_MAX),
               "tokenizer.ggml.padding_token_id", err);
    return s;
}
