/* tokenizer_internal.h: what the tokenizer's files share: the tokenizer's
 * layout and the helpers that build it. tokenizer.c builds, encodes and
 * decodes; tokenizer_load.c reads llama2.c tokenizer.bin and GGUF
 * tokenizer.ggml.* metadata; tokenizer_gguf.c writes that metadata back.
 * Not part of the library's interface. */
#ifndef HL_TEXT_TOKENIZER_INTERNAL_H
#define HL_TEXT_TOKENIZER_INTERNAL_H
#include <stddef.h>
#include <stdint.h>
#include "text/bpe.h"
#include "text/tokenizer.h"

/* llama2.c starts its best score at -1e10, so pairs scoring at or below it never merge. */
#define SCORE_FLOOR (-1e10f)
#define SPACE_PIECE "\xe2\x96\x81" /* U+2581, SentencePiece's space */

struct hl_tokenizer {
    int32_t n_vocab, bos, eos, unk;
    char *blob;        /* every piece, NUL-terminated, back to back */
    size_t *off;       /* piece i starts at blob + off[i] */
    uint32_t *len;     /* piece lengths in bytes */
    uint64_t *hash;    /* FNV-1a state after each piece: a pair's hash continues from its left piece */
    float *scores;
    int32_t *types;
    int32_t *table;    /* open addressing over pieces, -1 = empty; first id wins on duplicates */
    size_t mask;
    size_t max_len;    /* longest piece: longer concatenations are not looked up */
    uint64_t *spans;   /* set of adjacent code-point pairs inside matchable pieces, 0 = empty */
    size_t span_mask;
    int32_t space_id;  /* matchable "▁" piece or -1 */
    int32_t byte_id[256];
    /* Atomic pieces (hyperlexemes): ids >= atomic_first are matched whole,
     * longest first, before BPE, and never produced by merges. */
    int32_t atomic_first;      /* n_vocab when there are none */
    size_t atomic_max_len;
    uint8_t atomic_lead[256];  /* first bytes of atomic pieces */
    int add_bos, add_eos;      /* what the file asks encoders to add */
    hl_bpe *bpe;               /* byte-level BPE (model "gpt2"), NULL for SentencePiece */
    int32_t eog[16];           /* end-of-generation ids besides eos (byte-level, see find_eog) */
    int n_eog;
};

/* A piece given by pointer and length (not NUL-terminated). */
typedef struct piece_ref { const char *p; size_t n; } piece_ref;

static inline const char *hl_tokenizer_piece_at(const hl_tokenizer *t, int32_t id) { return t->blob + t->off[id]; }

/* Validates and copies the arrays into a new tokenizer. types may be NULL
 * (then inferred from the pieces). Defects are reported with status bad,
 * prefixed by name. */
hl_status hl_tokenizer_build_pieces(int32_t n, const piece_ref *refs, const float *scores, const int32_t *types,
                                     int32_t bos, int32_t eos, int32_t unk, hl_status bad, const char *name,
                                     int byte_level, hl_tokenizer **out, hl_error *err);
/* Collects the end-of-generation ids besides eos (byte-level vocabularies). */
void hl_tokenizer_find_eog(hl_tokenizer *t);
/* "<0xNN>" -> NN, else -1. */
int hl_byte_piece_value(const char *p, size_t n);
/* 1 when the piece r is exactly the string s. */
int hl_piece_is(const piece_ref *r, const char *s);
#endif
