/* main.c: the hyperlora command line: dispatches to one subcommand per file. */
#include "cli/cli.h"
#include "kernels/dispatch.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} command;

static const command commands[] = {
    {"generate", cmd_generate, "generate text from a prompt"},
    {"train", cmd_train, "train a LoRA adapter (or a scene decoder) on a frozen base"},
    {"pretrain", cmd_pretrain, "train a small model from scratch on a text corpus"},
    {"decode", cmd_decode, "decode a scene into a form and register"},
    {"serve", cmd_serve, "serve completions and scene decoding over HTTP, many adapters batched together"},
    {"scene", cmd_scene, "scene explain: parts, facets, neighbours and decodings of a lexeme"},
    {"inspect", cmd_inspect, "show a model's or adapter's metadata and tensors"},
    {"info", cmd_info, "show the CPU, kernel level, BLAS and the weight layouts chosen for it"},
    {"tokenize", cmd_tokenize, "print the token ids of a text under a model's tokenizer"},
    {"convert", cmd_convert, "convert a llama2.c checkpoint to GGUF"},
    {"perplexity", cmd_perplexity, "perplexity of a model on a text file (llama-perplexity's convention)"},
    {"quantize", cmd_quantize, "write a base model in ggml block types (q8_0 ... q6_K, q4_K_M, ...), as llama-quantize"},
    {"merge", cmd_merge, "merge adapters into a base model (new GGUF)"},
    {"plot", cmd_plot, "draw train/eval loss curves as SVG"},
    {"combine", cmd_combine, "make one adapter from weighted adapters (cat, linear, svd)"},
    {"init-model", cmd_init_model, "write a random-weight model of a given shape (benchmarks)"},
};

static void usage(FILE *f) {
    fprintf(f, "hyperlora %s: LoRA for frozen Llama-family models\n\nusage: hyperlora COMMAND [options]\n\n",
            HL_VERSION_STRING);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nRun 'hyperlora COMMAND --help' for a command's options.\n");
}

/* Models and adapters are read through read-only mappings (util/fileio.h).
 * When another process truncates one while it is in use, touching a lost page
 * raises SIGBUS; commands check the size at safe points, and this catches
 * what lands between two checks: a message and exit status 1, not a crash.
 * Only async-signal-safe calls here. */
static void on_sigbus(int sig) {
    (void)sig;
    static const char msg[] = "\nhyperlora: bus error: a memory-mapped input file (a model or an adapter) was "
                              "truncated by another process while in use; stopping\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
    _exit(1);
}

int main(int argc, char **argv) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigbus;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("hyperlora %s\n", HL_VERSION_STRING);
#ifdef HL_HAVE_MPI
        printf("data-parallel training: MPI (mpirun -np N hyperlora train ...)\n");
#else
        printf("data-parallel training: no (build with -DHL_MPI=ON)\n");
#endif
        printf("kernels: %s (%s)\n", hl_isa_name(hl_isa_active()),
               hl_isa_dispatching() ? "chosen at run time" : "compiled for this CPU, -march=native");
        return 0;
    }
    hl_error isa_err = {0};
    if (hl_isa_check(&isa_err) != HL_OK) { /* a $HYPERLORA_ISA the CPU or build cannot run */
        fprintf(stderr, "hyperlora: %s\n", isa_err.msg);
        return 1;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "hyperlora: unknown command \"%s\"\n\n", argv[1]);
    usage(stderr);
    return 1;
}
