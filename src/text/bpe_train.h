/* bpe_train.h: trains a SentencePiece-style BPE tokenizer from raw text,
 * producing an hl_tokenizer that text/tokenizer.h's encoder reproduces.
 *
 * Vocabulary layout: 0 "<unk>" (UNKNOWN), 1 "<s>", 2 "</s>" (CONTROL),
 * 3..258 the byte pieces "<0x00>".."<0xFF>" (BYTE), then the kept single
 * code points (NORMAL: "▁" first, then by falling frequency, ties by code
 * point), then the merged pieces in merge order. Merged piece k (0-based)
 * scores -k, so the encoder's "highest score first" is "earliest merge
 * first"; single characters score -1e6 (the encoder never merges into them).
 * No two pieces are equal: a pair whose concatenation already is a piece
 * (e.g. "<s" + ">") is never merged.
 *
 * Pre-tokenization mirrors the encoder: spaces become "▁", a document gets
 * the dummy-prefix "▁", and words are cut before every "▁", around "\n" and
 * "\r", and around characters left to byte fallback (uncovered ones, NUL and
 * a literal U+2581, which the encoder never treats as a space). Merges never
 * cross those cuts, so no piece holds "▁" past its first character or a line
 * break, and encoding with hl_tokenizer_encode gives exactly the
 * segmentation of the classic "apply the merges in order" BPE: each piece
 * has a single split into two pieces that can ever be adjacent (its merge),
 * so highest-score-first and lowest-rank-first pick the same pairs.
 *
 * Cost: counting is linear in the text; each merge rescans only the distinct
 * words holding the pair (pair -> word lists, counts updated incrementally,
 * a lazy max-heap), so very long space-free "words" (e.g. CJK lines) are
 * slow. */
#ifndef HL_TEXT_BPE_TRAIN_H
#define HL_TEXT_BPE_TRAIN_H
#include <stddef.h>
#include <stdint.h>
#include "hyperlora.h"
#include "text/tokenizer.h"

#define HL_BPE_FIRST_CHAR_ID 259 /* 3 special pieces + 256 byte pieces */

/* Called after every merge with the merges done and the most possible
 * (vocab_size minus the fixed pieces); a nonzero return stops training with
 * HL_ERR_INTERRUPTED. */
typedef int (*hl_bpe_progress_fn)(void *user, int32_t n_merges, int32_t max_merges);

typedef struct hl_bpe_train_params {
    int64_t min_frequency;     /* a pair must occur at least this often to be merged (default 2, >= 1) */
    int32_t max_piece_bytes;   /* longest merged piece in GGUF-form bytes ("▁" is 3) (default 16, <= 1024) */
    double character_coverage; /* (0, 1]: the most frequent characters covering this share of the text get
                                * single-character pieces, the rest byte fallback (default 0.9999) */
    int line_dummy_prefix;     /* 1 (default): every non-empty line counts as its own document with the
                                * dummy-prefix "▁" (as when lines or JSONL records are encoded one by one);
                                * 0: only the start of the text does (the whole text encoded in one call) */
    hl_bpe_progress_fn progress; /* optional */
    void *progress_user;
} hl_bpe_train_params;

void hl_bpe_train_params_default(hl_bpe_train_params *p);

/* Trains on len bytes of UTF-8 text (p NULL: defaults). The vocabulary has
 * at most vocab_size pieces; fewer when no pair occurs min_frequency times
 * any more. Refuses (HL_ERR_INVALID_ARG, with a message) empty text, invalid
 * UTF-8 (giving the byte offset), bad parameters, and a vocab_size below
 * 259 + the number of characters kept. */
hl_status hl_tokenizer_train_bpe(const char *text, size_t len, int32_t vocab_size, const hl_bpe_train_params *p,
                                 hl_tokenizer **out, hl_error *err);

/* The same, also returning the merge rules (hl_malloc'd, caller frees; NULL
 * when there are none; merges and n_merges may be NULL):
 * (*merges)[2k] and (*merges)[2k+1] are the ids of the left and right parts
 * of piece n_vocab - *n_merges + k. */
hl_status hl_tokenizer_train_bpe_merges(const char *text, size_t len, int32_t vocab_size,
                                        const hl_bpe_train_params *p, hl_tokenizer **out, int32_t **merges,
                                        int32_t *n_merges, hl_error *err);
#endif
