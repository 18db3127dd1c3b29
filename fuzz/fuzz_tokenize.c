/* fuzz_tokenize.c: libFuzzer target for encode/decode on arbitrary bytes,
 * with a small tokenizer built in-process (no files): unk/bos/eos, the 256
 * byte tokens and a handful of pieces with tied scores. Valid UTF-8 must
 * encode (fast == reference) and decode back to the input; anything else
 * must be refused with HL_ERR_INVALID_ARG, judged by an independent decoder. */
#include "hyperlora.h"
#include "text/tokenizer.h"
#include "util/alloc.h"
#include "utf8_oracle.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ASSERT(c) do { if (!(c)) __builtin_trap(); } while (0)

static hl_tokenizer *tok;

static void build(void) {
    static const char *extra[] = {
        "\xE2\x96\x81", "\xE2\x96\x81t", "h", "e", "t", "a", "he", "\xE2\x96\x81the", ("\xE2\x96\x81" "a"), "in",
        "ab", "ba", "aa", "aaa", "\xE2\x96\x81\xE2\x96\x81", "\xD1\x82", "\xD0\xB8", "\xD1\x88\xD0\xB8",
        "\xF0\x9F\x98\x80", "<", "s", ">", "<s", "x<", "\n"};
    enum { NE = sizeof extra / sizeof extra[0], N = 3 + 256 + NE };
    static char bytes[256][8];
    const char *pieces[N];
    float scores[N];
    pieces[0] = "<unk>";
    pieces[1] = "<s>";
    pieces[2] = "</s>";
    for (int i = 0; i < 256; i++) {
        snprintf(bytes[i], sizeof bytes[i], "<0x%02X>", i);
        pieces[3 + i] = bytes[i];
    }
    for (int i = 0; i < N; i++) scores[i] = 0.0f;
    for (int i = 0; i < NE; i++) {
        pieces[259 + i] = extra[i];
        scores[259 + i] = (float)-(i % 4); /* ties on purpose */
    }
    hl_error err;
    if (hl_tokenizer_init(N, pieces, scores, NULL, 1, 2, 0, &tok, &err) != HL_OK) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!tok) build();
    hl_error err;
    int32_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    hl_status s = hl_tokenizer_encode(tok, (const char *)data, size, 1, 0, &a, &na, &err);
    if (!fuzz_valid_utf8(data, size)) {
        ASSERT(s == HL_ERR_INVALID_ARG && a == NULL && strstr(err.msg, "byte offset"));
        return 0;
    }
    ASSERT(s == HL_OK && na >= 1 && a[0] == 1);
    if (size <= 1024) { /* the O(n^2) reference is slow on long inputs */
        ASSERT(hl_tokenizer_encode_reference(tok, (const char *)data, size, 1, 0, &b, &nb, &err) == HL_OK);
        ASSERT(na == nb && memcmp(a, b, na * sizeof *a) == 0);
        hl_free(b);
    }
    /* Round trip: every byte has a byte token and "▁" is a piece, so decoding gives the input back. */
    char *out = malloc(size + 1);
    size_t len = 0;
    for (size_t i = 1; i < na; i++) {
        ASSERT(a[i] > 2 && a[i] < hl_tokenizer_n_vocab(tok));
        len += hl_tokenizer_decode(tok, a[i - 1], a[i], out + len, size - len);
    }
    ASSERT(len == size && memcmp(out, data, size) == 0);
    char extra;
    for (size_t i = 1; i < na; i++) len += hl_tokenizer_decode(tok, a[i - 1], a[i], &extra, 0);
    ASSERT(len == size);
    free(out);
    hl_free(a);
    return 0;
}
