/* tokenizer_open.c: a tokenizer from a file, for programs that build models
 * themselves (hl_model_init_random_tok): the tokenizer.ggml.* keys of a GGUF
 * file, or a llama2.c tokenizer.bin. The format is told by the GGUF magic. */
#include "hyperlora.h"
#include "io/gguf.h"
#include "text/tokenizer.h"
#include "util/error.h"
#include "util/fileio.h"

#include <stdio.h>
#include <string.h>

hl_status hl_tokenizer_load(const char *path, hl_tokenizer **out, hl_error *err) {
    *out = NULL;
    if (hl_file_starts_with(path, "GGUF", 4)) {
        hl_gguf *g = NULL;
        hl_status s = hl_gguf_open(path, &g, err);
        if (s) return s;
        s = hl_tokenizer_from_gguf(g, out, err);
        hl_gguf_free(g);
        return s;
    }
    return hl_tokenizer_from_llama2c(path, 0, out, err);
}
