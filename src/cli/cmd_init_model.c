/* cmd_init_model.c: `hyperlora init-model`: a random-weight model of the
 * llama2.c shapes (or any shape), for benchmarks. */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

static const char *CMD = "init-model";

/* The f32 bytes of a model of shape c over a vocabulary of V (untied head). */
static double model_bytes(const hl_model_config *c, double V) {
    const double C = c->dim, F = c->hidden_dim, D = c->n_heads ? C / c->n_heads : 0, kv = c->n_kv_heads * D;
    const double layer = C * C * 2 + C * kv * 2 + C * F * 3 + C * 2;
    return 4.0 * (2.0 * V * C + c->n_layers * layer + C);
}

/* The model is built in memory and then written: refuse one that fits in
 * neither before spending minutes on it. */
static int check_room(const char *out, double bytes) {
    const double gb = 1e9, mb = 1e6, mem = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    if (mem > 0 && bytes > mem)
        return cli_error(CMD,
                         "this shape makes a %.1f GB f32 model, more than this machine's %.1f GB of memory "
                         "(the model is built in memory before it is written)",
                         bytes / gb, mem / gb);
    char dir[4096];
    const char *slash = strrchr(out, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - out) + 1 : 1, slash ? out : ".");
    struct statvfs fs;
    if (statvfs(dir, &fs) == 0 && bytes > (double)fs.f_bavail * (double)fs.f_frsize)
        return cli_error(CMD, "this shape makes a %.1f MB f32 model; %s has %.1f MB free", bytes / mb, dir,
                         (double)fs.f_bavail * (double)fs.f_frsize / mb);
    return 0;
}

typedef struct { const char *name; hl_model_config c; } preset;
static const preset presets[] = {
    {"s260K", {.dim = 64, .hidden_dim = 172, .n_layers = 5, .n_heads = 8, .n_kv_heads = 4, .seq_len = 512}},
    {"s15M", {.dim = 288, .hidden_dim = 768, .n_layers = 6, .n_heads = 6, .n_kv_heads = 6, .seq_len = 256}},
    {"s42M", {.dim = 512, .hidden_dim = 1376, .n_layers = 8, .n_heads = 8, .n_kv_heads = 8, .seq_len = 1024}},
    {"s110M", {.dim = 768, .hidden_dim = 2048, .n_layers = 12, .n_heads = 12, .n_kv_heads = 12, .seq_len = 1024}},
};

int cmd_init_model(int argc, char **argv) {
    hl_model_config c = presets[1].c;
    const char *tok = NULL, *out = NULL;
    uint64_t seed = 0;
    long v_int;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (cli_is_help(a)) {
            printf("usage: hyperlora init-model [--preset NAME] [shape options] --tokenizer TOK.bin [--seed S] -o OUT.gguf\n\n"
                   "  --preset s260K|s15M|s42M|s110M   llama2.c shapes (default s15M)\n"
                   "  --dim N --ffn N --layers N --heads N --kv-heads N --ctx N   override the shape\n"
                   "  --tokenizer FILE   llama2.c tokenizer.bin; its size sets the vocabulary\n"
                   "  --seed S           weights ~ N(0, 0.02) from this seed (default 0)\n");
            return 0;
        }
        if (!(v = cli_value(CMD, argc, argv, &i))) return 1;
        if (!strcmp(a, "--preset")) {
            size_t k = 0;
            for (; k < sizeof presets / sizeof presets[0]; k++)
                if (!strcmp(presets[k].name, v)) break;
            if (k == sizeof presets / sizeof presets[0]) return cli_error(CMD, "unknown preset \"%s\"", v);
            c = presets[k].c;
        } else if (!strcmp(a, "--tokenizer")) tok = v;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) out = v;
        else if (!strcmp(a, "--seed")) {
            if (!cli_u64(CMD, a, v, &seed)) return 1;
        } else {
            int32_t *field = !strcmp(a, "--dim") ? &c.dim : !strcmp(a, "--ffn") ? &c.hidden_dim
                           : !strcmp(a, "--layers") ? &c.n_layers : !strcmp(a, "--heads") ? &c.n_heads
                           : !strcmp(a, "--kv-heads") ? &c.n_kv_heads : !strcmp(a, "--ctx") ? &c.seq_len : NULL;
            if (!field) return cli_error(CMD, "unknown option %s (see --help)", a);
            if (!cli_int(CMD, a, v, 1, 1 << 20, &v_int)) return 1;
            *field = (int32_t)v_int;
        }
    }
    if (!tok || !out) return cli_error(CMD, "needs --tokenizer TOK.bin and -o OUT.gguf (see --help)");
    hl_io_plan plan;
    hl_io_plan_init(&plan);
    hl_io_plan_add(&plan, HL_IO_INPUT, "--tokenizer", tok);
    hl_io_plan_add(&plan, HL_IO_OUTPUT, "-o", out);
    if (cli_check_io(CMD, &plan)) return 1;
    hl_error err = {0};
    hl_model *m = NULL;
    hl_tokenizer *t = NULL;
    if (hl_tokenizer_load(tok, &t, &err) != HL_OK) return cli_fail(CMD, &err);
    if (check_room(out, model_bytes(&c, hl_tokenizer_n_vocab(t)))) {
        hl_tokenizer_free(t);
        return 1;
    }
    if (hl_model_init_random_tok(&c, t, seed, &m, &err) != HL_OK) return cli_fail(CMD, &err); /* t is the model's now */
    hl_status s = hl_model_save_gguf(m, out, &err);
    hl_model_free(m);
    if (s != HL_OK) return cli_fail(CMD, &err);
    fprintf(stderr, "hyperlora init-model: wrote %s\n", out);
    return 0;
}
