/* cli.c: option parsing helpers shared by the subcommands. */
#include "cli/cli.h"
#include "hyperlexeme/lexicon.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "hyperlora %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int cli_fail(const char *cmd, const hl_error *err) {
    return cli_error(cmd, "%s (%s)", err->msg, hl_status_name(err->status));
}

int cli_pack_mode(const char *cmd, const char *val, hl_pack_mode *out) {
    if (!strcmp(val, "docs")) *out = HL_PACK_DOCS;
    else if (!strcmp(val, "none")) *out = HL_PACK_NONE;
    else if (!strcmp(val, "stream")) *out = HL_PACK_STREAM;
    else {
        cli_error(cmd, "--pack must be docs, none or stream, got \"%s\"", val);
        return 0;
    }
    return 1;
}

const char *cli_pack_mode_name(hl_pack_mode mode) {
    return mode == HL_PACK_DOCS ? "docs" : mode == HL_PACK_STREAM ? "stream" : "none";
}

int cli_int(const char *cmd, const char *opt, const char *val, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(val, &end, 10);
    if (errno || end == val || *end || v < lo || v > hi) {
        cli_error(cmd, "%s expects an integer in [%ld, %ld], got \"%s\"", opt, lo, hi, val);
        return 0;
    }
    *out = v;
    return 1;
}

int cli_float(const char *cmd, const char *opt, const char *val, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(val, &end);
    if (errno || end == val || *end || !isfinite(v) || v < lo || v > hi) {
        cli_error(cmd, "%s expects a number in [%g, %g], got \"%s\"", opt, lo, hi, val);
        return 0;
    }
    /* Every such value ends up a float: it must stay finite, and not vanish to 0. */
    float f = (float)v;
    if (!isfinite(f) || (v != 0 && f == 0)) {
        cli_error(cmd, "%s: %s is outside the range of a 32-bit float", opt, val);
        return 0;
    }
    *out = v;
    return 1;
}

int cli_u64(const char *cmd, const char *opt, const char *val, uint64_t *out) {
    char *end;
    errno = 0;
    if (val[0] == '-') {
        cli_error(cmd, "%s expects a non-negative integer, got \"%s\"", opt, val);
        return 0;
    }
    unsigned long long v = strtoull(val, &end, 10);
    if (errno || end == val || *end) {
        cli_error(cmd, "%s expects a non-negative integer, got \"%s\"", opt, val);
        return 0;
    }
    *out = v;
    return 1;
}

const char *cli_value(const char *cmd, int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        cli_error(cmd, "%s needs a value, or is not an option of %s (see --help)", argv[*i], cmd);
        return NULL;
    }
    return argv[++*i];
}

int cli_is_help(const char *arg) { return !strcmp(arg, "-h") || !strcmp(arg, "--help"); }

int cli_loras_add(cli_loras *l, const char *cmd, const char *opt, const char *value, int with_scale) {
    if (l->n == CLI_MAX_LORA) {
        cli_error(cmd, "at most %d adapters", CLI_MAX_LORA);
        return 0;
    }
    float scale = 1.0f;
    if (with_scale) {
        const char *colon = strrchr(value, ':');
        double sv;
        if (!colon) {
            cli_error(cmd, "%s expects FILE:NUMBER, got \"%s\"", opt, value);
            return 0;
        }
        if (!cli_float(cmd, opt, colon + 1, -1e6, 1e6, &sv)) return 0;
        scale = (float)sv;
        char *path = strndup(value, (size_t)(colon - value));
        if (!path) {
            cli_error(cmd, "out of memory");
            return 0;
        }
        l->owned[l->n] = path;
        value = path;
    }
    l->paths[l->n] = value;
    l->scales[l->n++] = scale;
    return 1;
}

void cli_loras_free(cli_loras *l) {
    for (int i = 0; i < l->n; i++) free(l->owned[i]);
    l->n = 0;
}

void cli_note_byte_parts(const char *cmd, const hl_lexicon *lex) {
    int32_t total = 0, bytes = hl_lexicon_byte_only_parts(lex, &total);
    if (bytes == 0 || hl_lexicon_composes_facets(lex)) return;
    fprintf(stderr,
            "hyperlora %s: note: %d of %d lexicon parts have no token of their own in this base (byte fallback "
            "only), so their composed embeddings nearly coincide; --compose parts+facets (or a first lexicon line "
            "{\"compose\": \"parts+facets\"}) adds the facet words\n",
            cmd, bytes, total);
}
