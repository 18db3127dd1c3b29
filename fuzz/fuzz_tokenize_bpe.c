/* fuzz_tokenize_bpe.c: libFuzzer target for byte-level BPE encode/decode on
 * arbitrary bytes, every pre-tokenizer, special tokens and hyperlexemes
 * (see bpe_harness.h for the input format and the checks). */
#include "bpe_harness.h"

static bpe_fixture fixture;
static int built;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!built) {
        bpe_fixture_build(&fixture);
        built = 1;
    }
    bpe_harness_one(&fixture, data, size);
    return 0;
}
