/* fuzz_bpe_train.c: libFuzzer target: a pretraining corpus (raw text) given
 * to hl_tokenizer_train_bpe with settings drawn from a hash of the input,
 * then encoded with the trained tokenizer by the fast and the reference
 * encoder, which must agree. The harness body is loaders_bpe_train in
 * fuzz/loaders.h, which tests/test_fuzz_loaders.c also runs on the seeds. */
#include "loaders.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    (void)loaders_bpe_train(data, size);
    return 0;
}
