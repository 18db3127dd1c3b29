/* fuzz_safetensors.c: libFuzzer target for the safetensors reader.
 * Any input must either be refused with a status and message, or open into
 * a handle whose tensors all read back, whose lookups agree with iteration,
 * and which (all tensors converted to F32) round-trips through the writer
 * to a file that reads back identically and re-writes byte-identically. */
#include "hyperlora.h"
#include "io/safetensors.h"
#include "util/alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define READ_CAP (64u << 20) /* total converted bytes per input, to stay clear of OOM reports */

#define ASSERT(c) do { if (!(c)) __builtin_trap(); } while (0)

static uint64_t elems(const hl_st_tensor *t) {
    uint64_t n = 1;
    for (int d = 0; d < t->n_dims; d++) n *= (uint64_t)t->shape[d]; /* validated by the reader */
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hl_error err;
    hl_safetensors *st = NULL;
    hl_status s = hl_st_open_memory(data, size, "fuzz", &st, &err);
    if (s != HL_OK) {
        ASSERT(st == NULL && err.status == s && strncmp(err.msg, "fuzz", 4) == 0);
        return 0;
    }
    int64_t n = hl_st_n_tensors(st);
    for (int64_t i = 0; i < hl_st_n_metadata(st); i++) {
        const char *k = hl_st_metadata_key_at(st, i);
        const char *v = hl_st_metadata(st, k);
        ASSERT(k && v);
        volatile size_t sink = strlen(v);
        (void)sink;
    }

    /* Read every tensor (within the cap); keep the values for the writer. */
    uint64_t total = 0;
    int all_read = 1;
    float **vals = calloc((size_t)n + 1, sizeof *vals);
    ASSERT(vals);
    for (int64_t i = 0; i < n; i++) {
        const hl_st_tensor *t = hl_st_tensor_at(st, i);
        ASSERT(t && t->name && hl_st_find(st, t->name) == t);
        if (i) ASSERT(strcmp(hl_st_tensor_at(st, i - 1)->name, t->name) < 0);
        uint64_t ne = elems(t);
        if (ne * 4 > READ_CAP - total) {
            all_read = 0;
            continue;
        }
        total += ne * 4;
        vals[i] = malloc((size_t)ne * 4 + 4);
        ASSERT(vals[i]);
        ASSERT(hl_st_read_f32(t, vals[i], ne, &err) == HL_OK);
        ASSERT(hl_st_read_f32(t, vals[i], ne + 1, &err) == HL_ERR_INVALID_ARG);
    }

    if (all_read) {
        hl_st_writer *w = hl_st_writer_init();
        ASSERT(w);
        for (int64_t i = 0; i < n; i++) {
            const hl_st_tensor *t = hl_st_tensor_at(st, i);
            ASSERT(hl_st_writer_add_f32(w, t->name, t->n_dims, t->shape, vals[i], &err) == HL_OK);
        }
        for (int64_t i = 0; i < hl_st_n_metadata(st); i++) {
            const char *k = hl_st_metadata_key_at(st, i);
            ASSERT(hl_st_writer_set_metadata(w, k, hl_st_metadata(st, k)) == HL_OK);
        }
        uint8_t *b1 = NULL, *b2 = NULL;
        size_t n1 = 0, n2 = 0;
        ASSERT(hl_st_writer_write_memory(w, &b1, &n1, &err) == HL_OK);
        hl_safetensors *st2 = NULL;
        ASSERT(hl_st_open_memory(b1, n1, "fuzz-rt", &st2, &err) == HL_OK);
        ASSERT(hl_st_n_tensors(st2) == n && hl_st_n_metadata(st2) == hl_st_n_metadata(st));
        hl_st_writer *w2 = hl_st_writer_init();
        ASSERT(w2);
        for (int64_t i = 0; i < n; i++) {
            const hl_st_tensor *a = hl_st_tensor_at(st, i), *b = hl_st_tensor_at(st2, i);
            ASSERT(strcmp(a->name, b->name) == 0 && a->n_dims == b->n_dims && b->dtype == HL_ST_F32);
            ASSERT(memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->n_dims) == 0);
            ASSERT(b->nbytes == 4 * elems(a));
            ASSERT(b->nbytes == 0 || memcmp(b->data, vals[i], (size_t)b->nbytes) == 0);
            ASSERT(hl_st_writer_add_f32(w2, b->name, b->n_dims, b->shape, vals[i], &err) == HL_OK);
        }
        for (int64_t i = 0; i < hl_st_n_metadata(st2); i++) {
            const char *k = hl_st_metadata_key_at(st2, i);
            ASSERT(strcmp(k, hl_st_metadata_key_at(st, i)) == 0);
            ASSERT(strcmp(hl_st_metadata(st2, k), hl_st_metadata(st, k)) == 0);
            ASSERT(hl_st_writer_set_metadata(w2, k, hl_st_metadata(st2, k)) == HL_OK);
        }
        ASSERT(hl_st_writer_write_memory(w2, &b2, &n2, &err) == HL_OK);
        ASSERT(n1 == n2 && memcmp(b1, b2, n1) == 0);
        hl_free(b1);
        hl_free(b2);
        hl_st_free(st2);
        hl_st_writer_free(w);
        hl_st_writer_free(w2);
    }
    for (int64_t i = 0; i < n; i++) free(vals[i]);
    free(vals);
    hl_st_free(st);
    return 0;
}
