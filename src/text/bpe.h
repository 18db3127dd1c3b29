/* bpe.h: the byte-level BPE tokenizer (GGUF tokenizer.ggml.model = "gpt2",
 * as Llama-3, Qwen2/3 and SmolLM use it), the part of an hl_tokenizer that
 * the SentencePiece code does not have: merge ranks, the pre-tokenizer that
 * tokenizer.ggml.pre names, special-token splitting and the byte mapping.
 *
 * Pieces of such a vocabulary are held in their mapped form: every byte of
 * the text stands for one code point of the GPT-2 byte-to-unicode table
 * (printable Latin-1 bytes for themselves, the other 68 bytes for U+0100 ..
 * U+0143 in byte order), so " hello" is the piece "Ġhello".
 *
 * Encoding, as llama.cpp does it:
 *  1. special tokens are cut out of the text first: tokens of type CONTROL
 *     (and UNKNOWN) only with parse_special, USER_DEFINED ones (and the
 *     atomic pieces of hl_tokenizer_extend) always; longest token text
 *     first, each claiming every occurrence in what is left;
 *  2. each remaining run is split into words by the pre-tokenizer;
 *  3. each word's bytes are mapped, and adjacent symbols merged by lowest
 *     merge rank (leftmost on ties) until no ranked pair remains;
 *     "llama-bpe" first takes a whole word that is itself a piece.
 * Decoding maps the code points back to bytes, so the bytes of any text
 * come back exactly.
 *
 * The tokenizer.c front end owns an hl_bpe through its hl_tokenizer and
 * calls these functions; nothing else should.
 */
#ifndef HL_TEXT_BPE_H
#define HL_TEXT_BPE_H
#include <stddef.h>
#include <stdint.h>
#include "hyperlora.h"
#include "text/tokenizer.h"

/* Pre-tokenizers (the regex families of llama.cpp's pre types). */
typedef enum hl_bpe_pre {
    HL_BPE_PRE_DEFAULT, /* punctuation runs, then GPT-2's regex, digit runs, groups of 3 ASCII digits */
    HL_BPE_PRE_GPT2,    /* GPT-2's regex alone */
    HL_BPE_PRE_LLAMA3,  /* Llama-3's regex: digits in groups of up to 3, case-free contractions */
    HL_BPE_PRE_QWEN2,   /* as LLAMA3 but every digit alone */
    HL_BPE_PRE_SMOLLM,  /* every digit alone, then GPT-2's regex (also StarCoder) */
    HL_BPE_PRE_COUNT
} hl_bpe_pre;

typedef struct hl_bpe hl_bpe;

/* The pre-tokenizer for a tokenizer.ggml.pre value (len bytes), or -1 when
 * unsupported. */
int hl_bpe_pre_from_name(const char *name, size_t len);
/* The comma-separated list of supported tokenizer.ggml.pre names. */
const char *hl_bpe_pre_names(void);
const char *hl_bpe_pre_name(hl_bpe_pre pre); /* the canonical name written back to GGUF */

/* Builds the merge table of t's vocabulary (pieces in mapped form) from
 * merges[i] = "left right" (the first space after the first byte divides
 * them), lowest rank first. A merge whose parts or result are not pieces of
 * t can never apply to symbols that are pieces and is dropped. name prefixes
 * error messages (a file and key). *out is owned by the caller. */
hl_status hl_bpe_init(const hl_tokenizer *t, hl_bpe_pre pre, const char *const *merges, const size_t *merge_len,
                      size_t n_merges, const char *name, hl_bpe **out, hl_error *err);
/* A copy of b for tokenizer t, whose first pieces are those b was built on
 * (hl_tokenizer_extend); its special tokens are re-read from t. */
hl_status hl_bpe_clone(const hl_bpe *b, const hl_tokenizer *t, hl_bpe **out, hl_error *err);
void hl_bpe_free(hl_bpe *b);

hl_bpe_pre hl_bpe_pre_of(const hl_bpe *b);
size_t hl_bpe_n_merges(const hl_bpe *b);
/* Merge rank r as token ids (left, right). */
void hl_bpe_merge(const hl_bpe *b, size_t r, int32_t *left, int32_t *right);

/* Encodes len bytes of valid UTF-8 (the caller checked) and appends the ids
 * to out at *n; out has room for len more ids (every id covers >= 1 byte).
 * With reference, each word is merged by the plain O(m^2) rescan loop
 * instead of the heap (hl_tokenizer_encode_reference; tests hold both equal). */
hl_status hl_bpe_encode(const hl_bpe *b, const hl_tokenizer *t, const uint8_t *text, size_t len, int parse_special,
                        int reference, int32_t *out, size_t *n, hl_error *err);

/* The bytes of token id (CONTROL rendered only with special, UNUSED never,
 * USER_DEFINED as written); at most cap written, count returned. Never
 * longer than the piece. */
size_t hl_bpe_decode(const hl_bpe *b, const hl_tokenizer *t, int32_t id, int special, char *buf, size_t cap);

/* llama.cpp's clean_up_tokenization_spaces on decoded text, in place:
 * drops the space of " ?", " !", " .", " ,", turns " ' " into "'" and drops
 * the space before "'s", "'m", "'re", "'ve". Returns the new length. */
size_t hl_bpe_clean_spaces(char *s, size_t n);
/* Whether the pre-tokenizer's detokenizer cleans spaces so (llama.cpp:
 * every one but qwen2 and smollm). */
int hl_bpe_cleans_spaces(const hl_bpe *b);
#endif
