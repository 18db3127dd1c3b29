/* fuzz_metrics.c: libFuzzer target: a training metrics JSONL, read by the plot
 * (hl_plot_metrics_svg) and by the resume rewrite (hl_metrics_open, append).
 * The harness body is loaders_metrics in fuzz/loaders.h, which
 * tests/test_fuzz_loaders.c also runs on the seeds and regressions. */
#include "loaders.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    loaders_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    (void)loaders_metrics(data, size);
    return 0;
}
