/* bpe_harness.h: the body of the fuzz_tokenize_bpe target, shared with its
 * replayer tests/test_fuzz_bpe.c. Byte-level BPE encode/decode on arbitrary
 * bytes with small tokenizers built in-process (no files): the 256 byte
 * pieces, a few dozen merges (ties, chains, a merge whose result is no
 * piece), CONTROL "<|im_start|>" and "<|endoftext|>", USER_DEFINED
 * "<think>" and "<th", one per pre-tokenizer (default, gpt-2, llama-bpe,
 * qwen2, smollm), and the same extended with two hyperlexemes.
 *
 * Input: byte 0 picks the pre-tokenizer (low 3 bits mod 5), parse_special
 * (bit 3) and add_bos (bit 4); the rest is the text. Checks:
 *  - invalid UTF-8 is refused with HL_ERR_INVALID_ARG and a byte offset
 *    (judged by an independent validator);
 *  - valid text encodes; every id is in range; without parse_special no
 *    CONTROL id appears; BOS comes first exactly when asked;
 *  - decoding (control tokens rendered when they were parsed) gives the
 *    text's bytes back;
 *  - the heap merge gives the ids of the plain rescan loop
 *    (hl_tokenizer_encode_reference) on texts up to 1 KiB;
 *  - with the hyperlexemes, text holding neither gives the base's ids, and
 *    every text round-trips.
 * BPE_ASSERT may be defined before inclusion (tests count instead of trap). */
#ifndef HL_FUZZ_BPE_HARNESS_H
#define HL_FUZZ_BPE_HARNESS_H
#include "hyperlora.h"
#include "text/tokenizer.h"
#include "util/alloc.h"
#include "utf8_oracle.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef BPE_ASSERT
#define BPE_ASSERT(c) do { if (!(c)) __builtin_trap(); } while (0)
#endif

#define BPE_N_PRE 5
static const char *const bpe_pre_names_fz[BPE_N_PRE] = {"default", "gpt-2", "llama-bpe", "qwen2", "smollm"};

typedef struct bpe_fixture {
    hl_tokenizer *tok[BPE_N_PRE], *lex[BPE_N_PRE];
} bpe_fixture;

/* GPT-2's byte-to-unicode table, written out independently of bpe.c. */
static void bpe_fz_mapped(int b, char out[3]) {
    int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    unsigned cp = (unsigned)b;
    if (!printable) {
        unsigned k = 0;
        for (int c = 0; c < b; c++)
            if (!((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE)) k++;
        cp = 0x100 + k;
    }
    if (cp < 0x80) { out[0] = (char)cp; out[1] = 0; }
    else { out[0] = (char)(0xC0 | cp >> 6); out[1] = (char)(0x80 | (cp & 0x3F)); out[2] = 0; }
}

static void bpe_fixture_build(bpe_fixture *f) {
    /* merges in mapped form ("Ġ" is the space); the results are added as pieces */
    static const char *const merges[] = {
        "Ġ t", "h e", "Ġt he", "i n", "Ġ in", "a a", "aa a", "aa aa", "a b", "ab ab", "b a", "1 2", "12 3",
        "Ġ Ġ", "ĠĠ ĠĠ", "Ċ Ċ", "' s", "e r", "Ð ¸", "Ñ Ĥ", "t h", "th e", "x y", "< |", "| >", "ðŁ ĺ",
        "ð Ł", "ðŁĺ Ģ", "Ġ a", "Ġa b"};
    enum { NM = sizeof merges / sizeof merges[0] };
    static const char *const special[] = {"<|im_start|>", "<|endoftext|>", "<think>", "<th"};
    static const int special_type[] = {3, 3, 4, 4};
    enum { NS = sizeof special / sizeof special[0] };
    static char bytes[256][3];
    static char results[NM][64];
    const char *pieces[256 + NM + NS];
    int32_t types[256 + NM + NS];
    int n = 0;
    for (int b = 0; b < 256; b++) {
        bpe_fz_mapped(b, bytes[b]);
        pieces[n] = bytes[b];
        types[n++] = 1;
    }
    for (int i = 0; i < NM; i++) {
        /* "left right" -> "leftright"; "ðŁ ĺ" makes no piece on purpose (its result is skipped) */
        const char *sp = strchr(merges[i] + 1, ' ');
        snprintf(results[i], sizeof results[i], "%.*s%s", (int)(sp - merges[i]), merges[i], sp + 1);
        if (!strcmp(merges[i], "ðŁ ĺ")) continue;
        int dup = 0;
        for (int k = 0; k < n; k++) dup |= !strcmp(pieces[k], results[i]);
        if (dup) continue;
        pieces[n] = results[i];
        types[n++] = 1;
    }
    for (int i = 0; i < NS; i++) {
        pieces[n] = special[i];
        types[n++] = special_type[i];
    }
    hl_error err;
    int bos = n - NS + 1; /* <|endoftext|> */
    static const char *const lexemes[2] = {"\xCE\x94" "21", "zz"};
    for (int p = 0; p < BPE_N_PRE; p++) {
        if (hl_tokenizer_init_byte_level(n, pieces, types, merges, NM, bpe_pre_names_fz[p], bos, bos, 0, &f->tok[p],
                                         &err) != HL_OK) {
            fprintf(stderr, "bpe fixture: %s\n", err.msg);
            abort();
        }
        if (hl_tokenizer_extend(f->tok[p], lexemes, 2, &f->lex[p], &err) != HL_OK) {
            fprintf(stderr, "bpe fixture: %s\n", err.msg);
            abort();
        }
    }
}

static inline void bpe_fixture_free(bpe_fixture *f) {
    for (int p = 0; p < BPE_N_PRE; p++) {
        hl_tokenizer_free(f->tok[p]);
        hl_tokenizer_free(f->lex[p]);
    }
}

/* Decodes ids[from..n) into a fresh buffer; *len gets its length. */
static char *bpe_fz_decode(const hl_tokenizer *t, const int32_t *ids, size_t from, size_t n, int special, size_t *len) {
    size_t cap = (n + 1) * HL_TOKENIZER_MAX_PIECE, w = 0;
    char *out = malloc(cap);
    if (!out) abort();
    for (size_t i = from; i < n; i++) w += hl_tokenizer_decode_special(t, -1, ids[i], special, out + w, cap - w);
    *len = w;
    return out;
}

static void bpe_harness_one(const bpe_fixture *f, const uint8_t *data, size_t size) {
    if (size == 0) return;
    const int p = (data[0] & 7) % BPE_N_PRE, ps = (data[0] >> 3) & 1, bos = (data[0] >> 4) & 1;
    const uint8_t *text = data + 1;
    const size_t len = size - 1;
    const hl_tokenizer *t = f->tok[p];
    hl_error err;
    int32_t *ids = NULL;
    size_t n = 0;
    hl_status s = hl_tokenizer_encode_special(t, (const char *)text, len, bos, 0, ps, &ids, &n, &err);
    if (!fuzz_valid_utf8(text, len)) {
        BPE_ASSERT(s == HL_ERR_INVALID_ARG && ids == NULL && strstr(err.msg, "byte offset"));
        return;
    }
    BPE_ASSERT(s == HL_OK);
    if (s != HL_OK) return;
    BPE_ASSERT(!bos || (n >= 1 && ids[0] == hl_tokenizer_bos(t)));
    for (size_t i = bos ? 1 : 0; i < n; i++) {
        BPE_ASSERT(ids[i] >= 0 && ids[i] < hl_tokenizer_n_vocab(t));
        BPE_ASSERT(ps || hl_tokenizer_type(t, ids[i]) != 3);
    }
    if (len <= 1024) { /* the heap merge equals the plain rescan loop (parse-special off) */
        int32_t *f0 = NULL, *r0 = NULL;
        size_t nf0 = 0, nr0 = 0;
        BPE_ASSERT(hl_tokenizer_encode(t, (const char *)text, len, bos, 0, &f0, &nf0, &err) == HL_OK);
        BPE_ASSERT(hl_tokenizer_encode_reference(t, (const char *)text, len, bos, 0, &r0, &nr0, &err) == HL_OK);
        BPE_ASSERT(nf0 == nr0 && (nf0 == 0 || memcmp(f0, r0, nf0 * sizeof *f0) == 0));
        hl_free(f0);
        hl_free(r0);
    }
    size_t dl;
    char *back = bpe_fz_decode(t, ids, bos ? 1 : 0, n, ps, &dl);
    BPE_ASSERT(dl == len && memcmp(back, text, len) == 0);
    free(back);
    /* with hyperlexemes */
    int32_t *lx = NULL;
    size_t nl = 0;
    s = hl_tokenizer_encode_special(f->lex[p], (const char *)text, len, bos, 0, ps, &lx, &nl, &err);
    BPE_ASSERT(s == HL_OK);
    if (s == HL_OK) {
        back = bpe_fz_decode(f->lex[p], lx, bos ? 1 : 0, nl, ps, &dl);
        BPE_ASSERT(dl == len && memcmp(back, text, len) == 0);
        free(back);
        int has_lexeme = 0;
        for (size_t i = 0; i + 1 < len; i++)
            has_lexeme |= (text[i] == 'z' && text[i + 1] == 'z') || (text[i] == 0xCE && text[i + 1] == 0x94);
        if (!has_lexeme) BPE_ASSERT(nl == n && memcmp(lx, ids, n * sizeof *ids) == 0);
        hl_free(lx);
    }
    hl_free(ids);
}
#endif
