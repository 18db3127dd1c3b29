/* fuzz_model.c: libFuzzer target: GGUF model bytes, put in a memfd and loaded with
 * hl_model_load (config checks, tensor views, hl_tokenizer_from_gguf), then
 * run: a context of at most 8 positions, a prompt and two greedy steps.
 * The harness body is loaders_model in fuzz/loaders.h, which
 * tests/test_fuzz_loaders.c also runs on the seeds and regressions. */
#include "loaders.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    loaders_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    (void)loaders_model(data, size);
    return 0;
}
