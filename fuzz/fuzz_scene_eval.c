/* fuzz_scene_eval.c: libFuzzer target: a decode --eval JSONL of scene examples, decoded
 * and scored by hl_scene_eval_file (at most 3 lines per input).
 * The harness body is loaders_scene_eval in fuzz/loaders.h, which
 * tests/test_fuzz_loaders.c also runs on the seeds and regressions. */
#include "loaders.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    loaders_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    (void)loaders_scene_eval(data, size);
    return 0;
}
