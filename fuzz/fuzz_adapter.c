/* fuzz_adapter.c: libFuzzer target for LoRA adapter files loaded against the
 * tiny random model of tiny_model.h. The loaders take paths, so each input is
 * written into a private temp directory made once per process.
 *
 * Input: byte 0 is the mode (bit 0: 0 = GGUF, 1 = PEFT; bit 1: force, i.e.
 * skip the base fingerprint check), the rest is the file:
 *   GGUF: the bytes become DIR/g/adapter.gguf, loaded with hl_adapter_load
 *         (which sends anything without the GGUF magic to the PEFT reader);
 *   PEFT: the bytes up to the first NUL become DIR/p/adapter_config.json and
 *         the bytes after it DIR/p/adapter_model.safetensors, loaded with
 *         hl_adapter_load_peft (JSON text never needs a NUL, safetensors do).
 * A refused input must come back with a status and a non-empty message. An
 * accepted adapter must fit the model (every weight's shape matches its base
 * projection, ranks 1..65536, one weight per slot, lookup consistent); its
 * summary is printed to /dev/null, its lexicon (if any) loaded, and it runs
 * one 3-token forward pass in a context. */
#include "hyperlora.h"
#include "lora/adapter.h"
#include "lora/adapter_io.h"
#include "model/model.h"
#include "hyperlexeme/lexicon.h"
#include "tiny_model.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ASSERT(c) do { if (!(c)) __builtin_trap(); } while (0)

static hl_model *model;
static hl_context *ctx;
static FILE *devnull;
static char dir[64], gguf_dir[96], gguf_path[128], peft_dir[96], cfg_path[160], st_path[160];

static void cleanup(void) {
    unlink(gguf_path);
    unlink(cfg_path);
    unlink(st_path);
    rmdir(gguf_dir);
    rmdir(peft_dir);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    model = tiny_model_build();
    hl_context_params cp = {.n_ctx = 8, .n_threads = 1};
    hl_error err;
    if (hl_context_init(model, &cp, &ctx, &err) != HL_OK) abort();
    devnull = fopen("/dev/null", "w");
    snprintf(dir, sizeof dir, "/tmp/hl_fuzz_adapter_XXXXXX");
    if (!devnull || !mkdtemp(dir)) abort();
    snprintf(gguf_dir, sizeof gguf_dir, "%s/g", dir);
    snprintf(gguf_path, sizeof gguf_path, "%s/adapter.gguf", gguf_dir);
    snprintf(peft_dir, sizeof peft_dir, "%s/p", dir);
    snprintf(cfg_path, sizeof cfg_path, "%s/adapter_config.json", peft_dir);
    snprintf(st_path, sizeof st_path, "%s/adapter_model.safetensors", peft_dir);
    if (mkdir(gguf_dir, 0700) || mkdir(peft_dir, 0700)) abort();
    atexit(cleanup);
    return 0;
}

static void write_file(const char *path, const uint8_t *d, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(d, 1, n, f) != n) || fclose(f) != 0) abort();
}

static void check_adapter(const hl_adapter *a) {
    ASSERT(a->n_layers == model->cfg.n_layers && a->n_weights >= 1 && a->lookup && a->name);
    for (int32_t i = 0; i < a->n_weights; i++) {
        const hl_lora_weight *w = &a->w[i];
        ASSERT(w->target >= 0 && w->target < HL_TARGET_COUNT && w->rank >= 1 && w->rank <= 65536);
        ASSERT(w->target == HL_TARGET_OUTPUT ? w->layer == -1 : (w->layer >= 0 && w->layer < a->n_layers));
        int64_t rows, cols;
        ASSERT(hl_model_weight(model, w->layer, w->target, &rows, &cols));
        ASSERT(w->n_in == cols && w->n_out == rows && w->A && w->B);
        ASSERT(hl_adapter_find(a, w->layer, w->target) == w);
        volatile float x = w->A[(int64_t)w->rank * w->n_in - 1] + w->B[w->n_out * w->rank - 1];
        (void)x;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int peft = data[0] & 1, force = (data[0] >> 1) & 1;
    const uint8_t *body = data + 1;
    size_t n = size - 1;
    hl_adapter *a = NULL;
    hl_error err;
    memset(&err, 0x55, sizeof err); /* a message must be written, and terminated */
    hl_status s;
    if (!peft) {
        write_file(gguf_path, body, n);
        s = hl_adapter_load(gguf_path, model, force, &a, &err);
    } else {
        const uint8_t *nul = memchr(body, 0, n);
        size_t nc = nul ? (size_t)(nul - body) : n;
        write_file(cfg_path, body, nc);
        write_file(st_path, nul ? nul + 1 : body, nul ? n - nc - 1 : 0);
        s = hl_adapter_load_peft(peft_dir, model, force, &a, &err);
    }
    if (s != HL_OK) {
        ASSERT(a == NULL && s > HL_OK && s < HL_STATUS_COUNT);
        ASSERT(memchr(err.msg, 0, sizeof err.msg) && err.msg[0] != 0);
        return 0;
    }
    check_adapter(a);
    hl_adapter_print_summary(a, devnull);
    hl_lexicon *lex = NULL;
    if (hl_lexicon_from_adapter(a, model, &lex, &err) == HL_OK) hl_lexicon_free(lex);
    /* One forward pass with the adapter active: the loader vouched for the shapes. */
    const hl_adapter *set[1] = {a};
    float scale = 0.5f;
    ASSERT(hl_context_set_adapters(ctx, set, &scale, 1, &err) == HL_OK);
    int32_t toks[3] = {1, 260, 70};
    ASSERT(hl_context_eval(ctx, toks, 3, 0, NULL, 0, &err) == HL_OK);
    ASSERT(hl_context_set_adapters(ctx, NULL, NULL, 0, &err) == HL_OK);
    hl_adapter_free(a);
    return 0;
}
