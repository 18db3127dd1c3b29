/* tokenizer.h: the SentencePiece-style "llama" tokenizer (BPE by score with
 * byte fallback), built from GGUF metadata (tokenizer.ggml.*) or from a
 * llama2.c tokenizer.bin.
 *
 * Pieces are held in GGUF form: a space is U+2581 ("▁"), bytes are "<0xNN>"
 * pieces of type BYTE. Encoding follows llama2.c run.c / SentencePiece:
 * add the dummy-prefix space to non-empty text, replace spaces by "▁",
 * look every UTF-8 code point up as a piece (byte fallback when absent),
 * then repeatedly merge the adjacent pair whose concatenation is a piece
 * with the highest score (leftmost on ties).
 *
 * Invalid UTF-8 in the input is refused with HL_ERR_INVALID_ARG and a
 * message giving the byte offset (no silent replacement).
 */
#ifndef HL_TEXT_TOKENIZER_H
#define HL_TEXT_TOKENIZER_H
#include <stddef.h>
#include <stdint.h>
#include "hyperlora.h"
#include "io/gguf.h"

/* Token types, numbered as GGUF's tokenizer.ggml.token_type. */
enum {
    HL_TOKEN_NORMAL = 1, HL_TOKEN_UNKNOWN = 2, HL_TOKEN_CONTROL = 3,
    HL_TOKEN_USER_DEFINED = 4, HL_TOKEN_UNUSED = 5, HL_TOKEN_BYTE = 6
};

typedef struct hl_tokenizer hl_tokenizer;

/* Resource caps: no tokenizer file or text can force more than these. */
#define HL_TOKENIZER_MAX_VOCAB (1 << 24)   /* tokens */
#define HL_TOKENIZER_MAX_PIECE 1024        /* bytes in one piece (GGUF form) */
#define HL_TOKENIZER_MAX_TEXT  (1u << 30)  /* bytes of text in one encode call (HL_ERR_LIMIT) */

/* From parallel arrays (pieces are NUL-terminated, in GGUF form; copied).
 * types may be NULL (then inferred: <unk> unknown, <s>/</s> control, <0xNN> byte). */
hl_status hl_tokenizer_init(int32_t n_vocab, const char *const *pieces, const float *scores,
                            const int32_t *types, int32_t bos_id, int32_t eos_id, int32_t unk_id,
                            hl_tokenizer **out, hl_error *err);
/* A byte-level BPE tokenizer from arrays: pieces in mapped form (bpe.h),
 * types as GGUF numbers (NULL: all NORMAL), merges "left right" by rank,
 * pre a tokenizer.ggml.pre name (NULL: "default"). BOS is added by encoders
 * only when add_bos. Everything is copied. */
hl_status hl_tokenizer_init_byte_level(int32_t n_vocab, const char *const *pieces, const int32_t *types,
                                       const char *const *merges, int32_t n_merges, const char *pre, int32_t bos_id,
                                       int32_t eos_id, int add_bos, hl_tokenizer **out, hl_error *err);
/* From tokenizer.ggml.{model,tokens,scores,token_type,bos_token_id,eos_token_id,unknown_token_id,
 * add_bos_token,add_eos_token}; for model "gpt2" (byte-level BPE, see bpe.h) also merges and pre.
 * Models other than "llama" and "gpt2", and pre-tokenizers bpe.h does not
 * list, are refused with the name found and the names supported. */
hl_status hl_tokenizer_from_gguf(const hl_gguf *g, hl_tokenizer **out, hl_error *err);
/* llama2.c tokenizer.bin: int32 max_token_length, then per token: f32 score,
 * int32 len, bytes. n_vocab > 0 reads exactly that many; 0 reads to EOF. */
hl_status hl_tokenizer_from_llama2c(const char *path, int32_t n_vocab, hl_tokenizer **out, hl_error *err);
hl_status hl_tokenizer_from_llama2c_memory(const void *data, size_t size, const char *name, int32_t n_vocab,
                                           hl_tokenizer **out, hl_error *err);
void hl_tokenizer_free(hl_tokenizer *t);

int32_t hl_tokenizer_n_vocab(const hl_tokenizer *t);
int32_t hl_tokenizer_bos(const hl_tokenizer *t);
int32_t hl_tokenizer_eos(const hl_tokenizer *t);
int32_t hl_tokenizer_unk(const hl_tokenizer *t);
const char *hl_tokenizer_piece(const hl_tokenizer *t, int32_t id); /* GGUF form; NULL if out of range */
float hl_tokenizer_score(const hl_tokenizer *t, int32_t id);
int32_t hl_tokenizer_type(const hl_tokenizer *t, int32_t id);
int32_t hl_tokenizer_find(const hl_tokenizer *t, const char *piece, size_t len); /* -1 if absent */

/* A new tokenizer: base's vocabulary followed by n atomic pieces (type
 * USER_DEFINED, ids base_n_vocab .. base_n_vocab+n-1) that the encoder
 * matches whole, longest first, wherever they occur, before BPE; they are
 * never produced by merges. Runs of text between them are BPE-encoded, and
 * only a run at the very start of the text gets the dummy-prefix space, so
 * text without atomic pieces encodes exactly as with base. A piece equal to
 * a base piece, or given twice, is refused. */
hl_status hl_tokenizer_extend(const hl_tokenizer *base, const char *const *atomic, int32_t n_atomic,
                              hl_tokenizer **out, hl_error *err);

/* Encodes len bytes of text. *ids is hl_malloc'd (caller frees with hl_free).
 * Byte-level BPE matches USER_DEFINED tokens in the text but not CONTROL ones. */
hl_status hl_tokenizer_encode(const hl_tokenizer *t, const char *text, size_t len, int add_bos, int add_eos,
                              int32_t **ids, size_t *n_ids, hl_error *err);
/* As hl_tokenizer_encode; with parse_special, byte-level BPE also matches
 * CONTROL tokens written in the text ("<|im_start|>"). SentencePiece
 * tokenizers ignore the flag. */
hl_status hl_tokenizer_encode_special(const hl_tokenizer *t, const char *text, size_t len, int add_bos, int add_eos,
                                      int parse_special, int32_t **ids, size_t *n_ids, hl_error *err);
/* Whether the file asks for BOS / EOS around encoded text
 * (tokenizer.ggml.add_bos_token, add_eos_token; without the keys BOS is
 * added for SentencePiece and Llama-3, EOS never). */
int hl_tokenizer_add_bos(const hl_tokenizer *t);
int hl_tokenizer_add_eos(const hl_tokenizer *t);
/* Whether t is byte-level BPE ("gpt2"), and its tokenizer.ggml.pre name (NULL if not). */
int hl_tokenizer_is_byte_level(const hl_tokenizer *t);
/* Whether generation ends at id: eos, and for byte-level vocabularies the
 * other end-of-generation tokens llama.cpp stops at (<|eot_id|>, <|im_end|>,
 * <|endoftext|>, ...). */
int hl_tokenizer_is_eog(const hl_tokenizer *t, int32_t id);
const char *hl_tokenizer_pre_name(const hl_tokenizer *t);
size_t hl_tokenizer_piece_len(const hl_tokenizer *t, int32_t id); /* bytes; 0 if out of range */

/* Decodes one token to bytes as llama2.c prints it: "▁" becomes ' ', a
 * leading space is dropped right after BOS (prev == bos), "<0xNN>" becomes
 * the byte, control tokens decode to "" (unknown ones to their piece,
 * "<unk>", as llama2.c prints it). Writes at most cap bytes to buf and
 * returns the number written (the decoded piece is never longer than the
 * piece itself, so cap = HL_TOKENIZER_MAX_PIECE always suffices). */
size_t hl_tokenizer_decode(const hl_tokenizer *t, int32_t prev, int32_t id, char *buf, size_t cap);
/* As hl_tokenizer_decode; with special, CONTROL tokens decode to their text.
 * Byte-level BPE tokens decode to the exact bytes they stand for (no space
 * is dropped after BOS), USER_DEFINED ones as written, UNUSED ones to "". */
size_t hl_tokenizer_decode_special(const hl_tokenizer *t, int32_t prev, int32_t id, int special, char *buf,
                                   size_t cap);

/* Test hook: the same encoding computed with the plain O(n^2) merge loop
 * (rescan all adjacent pairs after every merge, as llama2.c does; for
 * byte-level BPE, per word, lowest rank first). Same contract as
 * hl_tokenizer_encode; tests check that both always agree. */
hl_status hl_tokenizer_encode_reference(const hl_tokenizer *t, const char *text, size_t len, int add_bos,
                                        int add_eos, int32_t **ids, size_t *n_ids, hl_error *err);

/* Serializes the tokenizer into tokenizer.ggml.* keys (model "llama"). */
hl_status hl_tokenizer_to_gguf(const hl_tokenizer *t, hl_gguf_writer *w, hl_error *err);
#endif
