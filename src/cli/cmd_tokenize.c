/* cmd_tokenize.c: `hyperlora tokenize`: the token ids of a text under a
 * model's tokenizer (SentencePiece or byte-level BPE), printed one token a
 * line with its piece, or as a list (--ids) as llama.cpp's llama-tokenize
 * prints it. Only the tokenizer is read, so any GGUF with tokenizer keys
 * works, whatever its architecture. */
#include "cli/cli.h"
#include "io/gguf.h"
#include "text/tokenizer.h"
#include "util/alloc.h"
#include "util/escape.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *CMD = "tokenize";

static void help(void) {
    printf("usage: hyperlora tokenize -m MODEL (-p TEXT | -f FILE) [--ids] [--no-special] [--no-bos]\n\n"
           "  -m, --model FILE        GGUF model (only its tokenizer.ggml.* keys are read)\n"
           "  --tokenizer FILE        a llama2.c tokenizer.bin instead of -m\n"
           "  -p, --prompt TEXT       the text\n"
           "  -f, --file FILE         read the text from FILE (every byte, NUL included)\n"
           "  --ids                   print only the ids, as [1, 2, 3]\n"
           "  --no-special            do not match control tokens written in the text (\"<|im_start|>\");\n"
           "                          user-defined tokens are still matched, as in llama.cpp\n"
           "  --no-bos                add no BOS/EOS even where the tokenizer asks for them\n"
           "\nWithout --ids each token is printed on a line as ID -> 'PIECE' (its bytes, escaped when not\n"
           "printable). Invalid UTF-8 is refused with its byte offset.\n");
}

/* The whole of path, hl_malloc'd; NULL after printing an error. */
static char *read_text(const char *path, size_t *len) {
    hl_error err = {0};
    FILE *f = hl_fopen_regular(path, &err);
    if (!f) {
        cli_fail(CMD, &err);
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = hl_malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) break;
        if (cap >= HL_TOKENIZER_MAX_TEXT) {
            hl_free(buf);
            buf = NULL;
            fclose(f);
            cli_error(CMD, "%s: longer than %u bytes", path, HL_TOKENIZER_MAX_TEXT);
            return NULL;
        }
        char *nb = hl_realloc(buf, cap * 2);
        if (!nb) {
            hl_free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        hl_free(buf);
        cli_error(CMD, "%s: %s", path, bad ? "read error" : "out of memory");
        return NULL;
    }
    *len = n;
    return buf;
}

int cmd_tokenize(int argc, char **argv) {
    const char *model_path = NULL, *tok_path = NULL, *prompt = NULL, *file = NULL;
    int ids_only = 0, parse_special = 1, add_special = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (cli_is_help(a)) {
            help();
            return 0;
        }
        if (!strcmp(a, "--ids")) { ids_only = 1; continue; }
        if (!strcmp(a, "--no-special")) { parse_special = 0; continue; }
        if (!strcmp(a, "--no-bos")) { add_special = 0; continue; }
        if (!(v = cli_value(CMD, argc, argv, &i))) return 1;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) model_path = v;
        else if (!strcmp(a, "--tokenizer")) tok_path = v;
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) prompt = v;
        else if (!strcmp(a, "-f") || !strcmp(a, "--file")) file = v;
        else return cli_error(CMD, "unknown option \"%s\" (see --help)", a);
    }
    if (!model_path == !tok_path) return cli_error(CMD, "give exactly one of -m MODEL and --tokenizer FILE");
    if (!prompt == !file) return cli_error(CMD, "give exactly one of -p TEXT and -f FILE");

    hl_error err = {0};
    hl_gguf *g = NULL;
    hl_tokenizer *tok = NULL;
    hl_status s = model_path ? hl_gguf_open(model_path, &g, &err) : hl_tokenizer_from_llama2c(tok_path, 0, &tok, &err);
    if (s == HL_OK && g) s = hl_tokenizer_from_gguf(g, &tok, &err);
    hl_gguf_free(g);
    if (s != HL_OK) return cli_fail(CMD, &err);

    size_t len = 0;
    char *owned = NULL;
    const char *text = prompt;
    if (file) {
        if (!(owned = read_text(file, &len))) {
            hl_tokenizer_free(tok);
            return 1;
        }
        text = owned;
    } else {
        len = strlen(prompt);
    }
    int32_t *ids = NULL;
    size_t n = 0;
    s = hl_tokenizer_encode_special(tok, text, len, add_special && hl_tokenizer_add_bos(tok),
                                    add_special && hl_tokenizer_add_eos(tok), parse_special, &ids, &n, &err);
    hl_free(owned);
    if (s != HL_OK) {
        hl_tokenizer_free(tok);
        return cli_fail(CMD, &err);
    }
    if (ids_only) {
        putchar('[');
        for (size_t i = 0; i < n; i++) printf("%s%d", i ? ", " : "", ids[i]);
        printf("]\n");
    } else {
        char piece[HL_TOKENIZER_MAX_PIECE + 1], shown[4 * HL_TOKENIZER_MAX_PIECE + 8];
        for (size_t i = 0; i < n; i++) {
            size_t k = hl_tokenizer_decode_special(tok, i ? ids[i - 1] : -1, ids[i], 1, piece, sizeof piece - 1);
            printf("%6d -> '%s'\n", ids[i], hl_escape(piece, k, shown, sizeof shown));
        }
    }
    hl_free(ids);
    hl_tokenizer_free(tok);
    return 0;
}
