/* fuzz_checkpoint.c: libFuzzer target: a training checkpoint loaded with hl_checkpoint_load
 * into a LoRA trainer of the tiny model, then one resumed training step.
 * The harness body is loaders_checkpoint in fuzz/loaders.h, which
 * tests/test_fuzz_loaders.c also runs on the seeds and regressions. */
#include "loaders.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    loaders_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    (void)loaders_checkpoint(data, size);
    return 0;
}
