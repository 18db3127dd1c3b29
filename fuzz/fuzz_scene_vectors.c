/* fuzz_scene_vectors.c: libFuzzer target: a decode --scene-vector file (raw f32), read by
 * hl_scene_vectors_parse and hl_scene_vectors_load, then decoded as a mute scene.
 * The harness body is loaders_scene_vectors in fuzz/loaders.h, which
 * tests/test_fuzz_loaders.c also runs on the seeds and regressions. */
#include "loaders.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    loaders_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    (void)loaders_scene_vectors(data, size);
    return 0;
}
