/* test_kernel_choice.c: the measured kernel-choice table and its fallbacks
 * (kernels/kernel_choice.c), cpuid's microarchitecture, `hyperlora info`'s
 * report of the choice, and $HYPERLORA_WEIGHTS pinning both product kinds.
 * That each layout is deterministic within itself is checked by the suites
 * that run once per layout (the _packed and _rows tests). */
#include "hyperlora.h"
#include "kernels/kernel_choice.h"
#include "model/model.h"
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void expect(const char *uarch, hl_isa level, int32_t infer, int32_t train, const char *basis_has) {
    hl_kernel_choice c = hl_kernel_choice_for(uarch, level);
    CHECK_MSG(c.infer == infer && c.train == train, "%s at %s: inference %s, training %s", uarch, hl_isa_name(level),
              hl_weight_layout_name(c.infer), hl_weight_layout_name(c.train));
    CHECK_MSG(c.basis && strstr(c.basis, basis_has), "%s at %s: basis \"%s\" should mention \"%s\"", uarch,
              hl_isa_name(level), c.basis ? c.basis : "(null)", basis_has);
}

static char *run(const char *cmd) {
    FILE *f = popen(cmd, "r");
    if (!f) return NULL;
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    pclose(f);
    return buf;
}

int main(void) {
    /* The measured rows. */
    expect("zen5", HL_ISA_AVX512, HL_WEIGHTS_PACKED, HL_WEIGHTS_PACKED, "zen5/avx512 table row");
    expect("zen4", HL_ISA_AVX512, HL_WEIGHTS_PACKED, HL_WEIGHTS_ROWS, "zen4/avx512 table row");
    expect("zen3", HL_ISA_AVX2, HL_WEIGHTS_PACKED, HL_WEIGHTS_ROWS, "zen3/avx2 table row");
    expect("intel-amx", HL_ISA_AVX512, HL_WEIGHTS_PACKED, HL_WEIGHTS_ROWS, "intel-amx/avx512 table row");
    expect("intel-amx", HL_ISA_AVX2, HL_WEIGHTS_PACKED, HL_WEIGHTS_ROWS, "level rule");
    /* A row applies at its own level only; elsewhere the rule by level. */
    expect("zen5", HL_ISA_AVX2, HL_WEIGHTS_PACKED, HL_WEIGHTS_ROWS, "level rule");
    expect("intel-avx512", HL_ISA_AVX512, HL_WEIGHTS_PACKED, HL_WEIGHTS_PACKED, "level rule");
    expect("other", HL_ISA_SCALAR, HL_WEIGHTS_ROWS, HL_WEIGHTS_ROWS, "level rule");
    expect(NULL, HL_ISA_AVX2, HL_WEIGHTS_PACKED, HL_WEIGHTS_ROWS, "level rule");

    /* Decoding's prefetch distance: measured on Zen 4; Zen 3 measured slower with it; the rest unmeasured. */
    CHECK(hl_kernel_choice_for("zen4", HL_ISA_AVX512).decode_ahead == 4096);
    CHECK(hl_kernel_choice_for("zen3", HL_ISA_AVX2).decode_ahead == 0);
    CHECK(hl_kernel_choice_for("zen5", HL_ISA_AVX512).decode_ahead == 0);
    CHECK(hl_kernel_choice_for("zen4", HL_ISA_AVX2).decode_ahead == 0);
    CHECK(hl_kernel_choice_for(NULL, HL_ISA_AVX512).decode_ahead == 0);
    CHECK_MSG(strstr(hl_kernel_choice_for("zen4", HL_ISA_AVX512).decode_basis, "tg64"), "the zen4 row says what was timed");
    CHECK_MSG(strstr(hl_kernel_choice_for("zen5", HL_ISA_AVX512).decode_basis, "tg64"),
              "the zen5 row says what was timed, though it asks nothing ahead");

    hl_cpu_id id;
    hl_cpu_identify(&id);
    CHECK_MSG(id.uarch && id.uarch[0], "a microarchitecture name for every CPU");
#if defined(__x86_64__)
    CHECK_MSG(id.vendor[0] && id.family > 0, "cpuid gives a vendor and a family on x86-64 (got \"%s\", %d)", id.vendor,
              id.family);
#endif
    hl_kernel_choice active = hl_kernel_choice_active();
    hl_kernel_choice same = hl_kernel_choice_for(id.uarch, hl_isa_active());
    CHECK_MSG(active.infer == same.infer && active.train == same.train && active.basis == same.basis,
              "the active choice is the table's for this CPU (%s) and level", id.uarch);

    /* Pinning: $HYPERLORA_WEIGHTS overrides either preference; a bad value is refused by name. */
    hl_error err = {0};
    int32_t got = -1;
    setenv("HYPERLORA_WEIGHTS", "rows", 1);
    CHECK(hl_weight_layout_resolve(HL_WEIGHTS_AUTO, 1, &got, &err) == HL_OK && got == HL_WEIGHTS_ROWS);
    setenv("HYPERLORA_WEIGHTS", "packed", 1);
    CHECK(hl_weight_layout_resolve(HL_WEIGHTS_AUTO, 0, &got, &err) == HL_OK && got == HL_WEIGHTS_PACKED);
    setenv("HYPERLORA_WEIGHTS", "tiles", 1);
    CHECK_MSG(hl_weight_layout_resolve(HL_WEIGHTS_AUTO, 0, &got, &err) != HL_OK && strstr(err.msg, "tiles"),
              "an unknown layout is refused, naming it: %s", err.msg);
    unsetenv("HYPERLORA_WEIGHTS");
    setenv("HYPERLORA_DECODE_AHEAD", "8192", 1);
    CHECK(hl_decode_ahead_check(&err) == HL_OK);
    setenv("HYPERLORA_DECODE_AHEAD", "-1", 1);
    CHECK_MSG(hl_decode_ahead_check(&err) != HL_OK && strstr(err.msg, "HYPERLORA_DECODE_AHEAD=-1"),
              "a negative distance is refused, naming it: %s", err.msg);
    setenv("HYPERLORA_DECODE_AHEAD", "2097152", 1);
    CHECK(hl_decode_ahead_check(&err) != HL_OK);
    unsetenv("HYPERLORA_DECODE_AHEAD");

    /* `hyperlora info` reports the same choice, and the pin. */
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s info --json", HL_CLI_PATH);
    char *out = run(cmd);
    char want[160];
    snprintf(want, sizeof want, "\"uarch\":\"%s\"", id.uarch);
    CHECK_MSG(out && strstr(out, want), "info --json names the microarchitecture: %s", out ? out : "(no output)");
    snprintf(want, sizeof want, "\"inference\":\"%s\",\"training\":\"%s\"", hl_weight_layout_name(active.infer),
             hl_weight_layout_name(active.train));
    CHECK_MSG(out && strstr(out, want), "info --json gives the table's layouts (%s): %s", want, out ? out : "");
    snprintf(want, sizeof want, "\"k_decode_ahead_bytes\":%d", active.decode_ahead);
    CHECK_MSG(out && strstr(out, want), "info --json gives decoding's prefetch distance (%s)", want);
    snprintf(cmd, sizeof cmd, "HYPERLORA_WEIGHTS=rows %s info", HL_CLI_PATH);
    out = run(cmd);
    CHECK_MSG(out && strstr(out, "inference rows, LoRA training rows") && strstr(out, "pinned by HYPERLORA_WEIGHTS"),
              "info shows the pin: %s", out ? out : "");
    return hl_test_finish("test_kernel_choice");
}
