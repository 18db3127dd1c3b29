/* fuzz_tokenizer_bin.c: libFuzzer target for the llama2.c tokenizer.bin
 * reader. Any input is either refused with a status and a message naming
 * the input, or loads into a tokenizer whose lookups agree with its pieces
 * and whose fast and reference encoders agree on a fixed text. */
#include "hyperlora.h"
#include "text/tokenizer.h"
#include "util/alloc.h"

#include <stdint.h>
#include <string.h>

#define ASSERT(c) do { if (!(c)) __builtin_trap(); } while (0)

static const char text[] = "Once upon a time, a na\xC3\xAFve caf\xC3\xA9 \xE2\x80\x94 \xE6\x97\xA5\xE6\x9C\xAC "
                           "\xF0\x9F\x98\x80  \xE2\x96\x81 <s> <0x41>\n\tend";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hl_error err;
    hl_tokenizer *t = (hl_tokenizer *)&err;
    hl_status s = hl_tokenizer_from_llama2c_memory(data, size, "fuzz", 0, &t, &err);
    if (s != HL_OK) {
        ASSERT(t == NULL && err.status == s && strncmp(err.msg, "fuzz", 4) == 0);
        return 0;
    }
    int32_t n = hl_tokenizer_n_vocab(t);
    ASSERT(n >= 3 && n <= HL_TOKENIZER_MAX_VOCAB);
    for (int32_t i = 0; i < n; i++) {
        const char *p = hl_tokenizer_piece(t, i);
        size_t len = strlen(p);
        ASSERT(len <= HL_TOKENIZER_MAX_PIECE && !strchr(p, ' '));
        int32_t f = hl_tokenizer_find(t, p, len);
        ASSERT(f >= 0 && f <= i && strcmp(hl_tokenizer_piece(t, f), p) == 0); /* first id wins */
        int32_t ty = hl_tokenizer_type(t, i);
        ASSERT(ty >= HL_TOKEN_NORMAL && ty <= HL_TOKEN_BYTE);
        char buf[HL_TOKENIZER_MAX_PIECE];
        ASSERT(hl_tokenizer_decode(t, i, i, buf, sizeof buf) <= len);
    }
    /* Reading exactly the count found must agree. */
    hl_tokenizer *t2 = NULL;
    ASSERT(hl_tokenizer_from_llama2c_memory(data, size, "fuzz", n, &t2, &err) == HL_OK);
    hl_tokenizer_free(t2);

    int32_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    ASSERT(hl_tokenizer_encode(t, text, sizeof text - 1, 1, 1, &a, &na, &err) == HL_OK);
    ASSERT(hl_tokenizer_encode_reference(t, text, sizeof text - 1, 1, 1, &b, &nb, &err) == HL_OK);
    ASSERT(na == nb && memcmp(a, b, na * sizeof *a) == 0);
    ASSERT(na >= 3 && a[0] == hl_tokenizer_bos(t) && a[na - 1] == hl_tokenizer_eos(t));
    for (size_t i = 0; i < na; i++) ASSERT(a[i] >= 0 && a[i] < n);
    hl_free(a);
    hl_free(b);
    hl_tokenizer_free(t);
    return 0;
}
