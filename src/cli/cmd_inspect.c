/* cmd_inspect.c: `hyperlora inspect FILE`: metadata and a tensor table for
 * GGUF files (models and adapters), safetensors files (PEFT adapters, or
 * their directory) and llama2.c checkpoints. */
#include "cli/cli.h"
#include "io/gguf.h"
#include "io/llama2c.h"
#include "io/safetensors.h"
#include "lora/adapter_io.h"
#include "util/escape.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const char *CMD = "inspect";

/* A file-controlled string, quoted: escaped by util/escape.h (control bytes,
 * invalid UTF-8 as \xNN), with '"' as \x22 too, at most max bytes of it. */
static void print_str(hl_gguf_str s, size_t max) {
    size_t n = s.len < max ? (size_t)s.len : max;
    char buf[4 * 80 + 8];
    hl_escape(s.data, n, buf, sizeof buf);
    putchar('"');
    for (const char *c = buf; *c; c++)
        if (*c == '"') fputs("\\x22", stdout);
        else putchar(*c);
    putchar('"');
    if (n < s.len) printf("...(%llu bytes)", (unsigned long long)s.len);
}

static void print_scalar(hl_gguf_kv_type t, const void *p) {
    union { uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32; float f32;
            uint64_t u64; int64_t i64; double f64; } v;
    memcpy(&v, p, hl_gguf_kv_type_size(t));
    switch (t) {
    case HL_GGUF_UINT8: printf("%u", v.u8); break;
    case HL_GGUF_INT8: printf("%d", v.i8); break;
    case HL_GGUF_UINT16: printf("%u", v.u16); break;
    case HL_GGUF_INT16: printf("%d", v.i16); break;
    case HL_GGUF_UINT32: printf("%u", v.u32); break;
    case HL_GGUF_INT32: printf("%d", v.i32); break;
    case HL_GGUF_FLOAT32: printf("%g", v.f32); break;
    case HL_GGUF_BOOL: printf("%s", v.u8 ? "true" : "false"); break;
    case HL_GGUF_UINT64: printf("%llu", (unsigned long long)v.u64); break;
    case HL_GGUF_INT64: printf("%lld", (long long)v.i64); break;
    case HL_GGUF_FLOAT64: printf("%g", v.f64); break;
    default: printf("?");
    }
}

/* "[a, b, c]" into shape (96 bytes), cut short rather than overflowing. */
static void format_shape(char shape[96], const int64_t *dims, int n) {
    strcpy(shape, "[");
    for (int d = 0; d < n; d++) {
        char part[24];
        snprintf(part, sizeof part, "%s%lld", d ? ", " : "", (long long)dims[d]);
        strncat(shape, part, 96 - strlen(shape) - 2);
    }
    strcat(shape, "]");
}

static int inspect_gguf(const char *path) {
    hl_error err = {0};
    hl_gguf *g = NULL;
    if (hl_gguf_open(path, &g, &err) != HL_OK) return cli_fail(CMD, &err);
    printf("%s: GGUF v%u, %lld key/values, %lld tensors, alignment %u\n", path, hl_gguf_version(g),
           (long long)hl_gguf_n_kv(g), (long long)hl_gguf_n_tensors(g), hl_gguf_alignment(g));
    printf("\nmetadata:\n");
    for (int64_t i = 0; i < hl_gguf_n_kv(g); i++) {
        hl_gguf_str key = hl_gguf_key(g, i);
        hl_gguf_kv_type t = hl_gguf_kv_type_of(g, i);
        char shown[HL_ESCAPE_NAME];
        printf("  %-44s %-8s ", hl_escape(key.data, (size_t)key.len, shown, sizeof shown), hl_gguf_kv_type_name(t));
        if (t == HL_GGUF_STRING) {
            hl_gguf_str s;
            hl_gguf_kv_string(g, i, &s);
            print_str(s, 80);
        } else if (t == HL_GGUF_ARRAY) {
            hl_gguf_kv_type et;
            uint64_t n;
            hl_gguf_kv_arr(g, i, &et, &n);
            printf("[%s x %llu]", hl_gguf_kv_type_name(et), (unsigned long long)n);
            uint64_t show = n < 6 ? n : 6;
            printf(" = [");
            for (uint64_t j = 0; j < show; j++) {
                if (j) printf(", ");
                if (et == HL_GGUF_STRING) print_str(hl_gguf_arr_str(g, i, j), 24);
                else print_scalar(et, (const uint8_t *)hl_gguf_arr_data(g, i) + j * hl_gguf_kv_type_size(et));
            }
            printf("%s]", show < n ? ", ..." : "");
        } else {
            double d;
            int64_t iv;
            hl_gguf_kv_scalar(g, i, &d, &iv);
            if (t == HL_GGUF_FLOAT32 || t == HL_GGUF_FLOAT64) printf("%g", d);
            else if (t == HL_GGUF_BOOL) printf("%s", iv ? "true" : "false");
            else printf("%lld", (long long)iv);
        }
        printf("\n");
    }
    printf("\ntensors:\n  %-40s %-5s %-22s %12s %12s\n", "name", "type", "shape (ne)", "offset", "bytes");
    uint64_t total = 0, elems = 0, per_type[HL_TYPE_COUNT] = {0};
    for (int64_t i = 0; i < hl_gguf_n_tensors(g); i++) {
        const hl_gguf_tensor *t = hl_gguf_tensor_at(g, i);
        uint64_t n = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) n *= (uint64_t)t->ne[d]; /* the reader bounded the product */
        elems += n;
        if (t->type < HL_TYPE_COUNT) per_type[t->type]++;
        char shape[96];
        format_shape(shape, t->ne, (int)t->n_dims);
        char shown[HL_ESCAPE_NAME];
        printf("  %-40s %-5s %-22s %12llu %12llu\n", hl_escape(t->name.data, (size_t)t->name.len, shown, sizeof shown),
               hl_gguf_type_name(t->type), shape, (unsigned long long)t->offset, (unsigned long long)t->nbytes);
        total += t->nbytes;
    }
    printf("  total %llu bytes of tensor data", (unsigned long long)total);
    if (elems) printf(", %.2f bits per element", 8.0 * (double)total / (double)elems);
    printf("; types:");
    for (uint32_t ty = 0; ty < HL_TYPE_COUNT; ty++)
        if (per_type[ty]) printf(" %s x%llu", hl_gguf_type_name(ty), (unsigned long long)per_type[ty]);
    printf("\n");
    hl_gguf_str type;
    int is_adapter = hl_gguf_find_key(g, "general.type") >= 0 && hl_gguf_get_str(g, "general.type", &type, NULL) == HL_OK &&
                     type.len == 7 && !memcmp(type.data, "adapter", 7);
    hl_gguf_free(g);
    if (is_adapter) {
        hl_adapter *a = NULL;
        if (hl_adapter_load_gguf_standalone(path, &a, &err) != HL_OK) return cli_fail(CMD, &err);
        printf("\n");
        hl_adapter_print_summary(a, stdout);
        hl_adapter_free(a);
    }
    return 0;
}

/* A safetensors file (a PEFT adapter's weights): its metadata and tensors. */
static int inspect_safetensors(const char *path) {
    hl_error err = {0};
    hl_safetensors *st = NULL;
    if (hl_st_open(path, &st, &err) != HL_OK) return cli_fail(CMD, &err);
    printf("%s: safetensors, %lld metadata entries, %lld tensors\n", path, (long long)hl_st_n_metadata(st),
           (long long)hl_st_n_tensors(st));
    printf("\nmetadata:\n");
    for (int64_t i = 0; i < hl_st_n_metadata(st); i++) {
        const char *key = hl_st_metadata_key_at(st, i), *value = hl_st_metadata(st, key);
        char shown[HL_ESCAPE_NAME];
        printf("  %-44s ", hl_escape(key, strlen(key), shown, sizeof shown));
        print_str((hl_gguf_str){.len = strlen(value), .data = value}, 80);
        printf("\n");
    }
    printf("\ntensors:\n  %-64s %-5s %-14s %10s\n", "name", "type", "shape", "bytes");
    uint64_t total = 0;
    for (int64_t i = 0; i < hl_st_n_tensors(st); i++) {
        const hl_st_tensor *t = hl_st_tensor_at(st, i);
        char shape[96];
        format_shape(shape, t->shape, t->n_dims);
        char shown[HL_ESCAPE_NAME];
        printf("  %-64s %-5s %-14s %10llu\n", hl_escape(t->name, strlen(t->name), shown, sizeof shown),
               hl_st_dtype_name(t->dtype), shape, (unsigned long long)t->nbytes);
        total += t->nbytes;
    }
    printf("  total %llu bytes of tensor data\n", (unsigned long long)total);
    hl_st_free(st);
    return 0;
}

/* safetensors begins with its header's length (8 bytes) and then the JSON header's '{'. */
static int looks_like_safetensors(const char *path) {
    hl_error err = {0};
    FILE *f = hl_fopen_regular(path, &err);
    unsigned char head[9];
    int is = f && fread(head, 1, sizeof head, f) == sizeof head && head[8] == '{';
    if (f) fclose(f);
    return is;
}

static int inspect_llama2c(const char *path) {
    hl_error err = {0};
    hl_llama2c c;
    if (hl_llama2c_open(path, &c, &err) != HL_OK) return cli_fail(CMD, &err);
    const hl_model_config *m = &c.cfg;
    printf("%s: llama2.c checkpoint\n  dim %d, hidden_dim %d, layers %d, heads %d, kv heads %d, vocab %d, seq_len %d, "
           "%s classifier\n",
           path, m->dim, m->hidden_dim, m->n_layers, m->n_heads, m->n_kv_heads, m->vocab_size, m->seq_len,
           c.shared_classifier ? "shared" : "separate");
    hl_llama2c_close(&c);
    return 0;
}

int cmd_inspect(int argc, char **argv) {
    if (argc < 2 || cli_is_help(argv[1])) {
        printf("usage: hyperlora inspect FILE\n\nShows a GGUF model's or adapter's metadata and tensor table\n"
               "(and, for adapters, targets, ranks, scale and parameter count), a\n"
               "safetensors file's metadata and tensors (a PEFT adapter, or its directory),\n"
               "or a llama2.c checkpoint's header.\n");
        return argc < 2;
    }
    if (argc > 2) return cli_error(CMD, "takes one FILE (got %d arguments)", argc - 1);
    if (argv[1][0] == '-') return cli_error(CMD, "unknown option %s (see --help)", argv[1]);
    const char *path = argv[1];
    if (hl_file_starts_with(path, "GGUF", 4)) return inspect_gguf(path);
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) { /* a PEFT adapter directory: its weights */
        char weights[4096];
        snprintf(weights, sizeof weights, "%s/adapter_model.safetensors", path);
        return inspect_safetensors(weights);
    }
    if (looks_like_safetensors(path)) return inspect_safetensors(path);
    return inspect_llama2c(path);
}
