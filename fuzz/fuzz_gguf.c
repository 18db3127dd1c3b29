/* fuzz_gguf.c: libFuzzer target for the GGUF reader (and, on accepted
 * inputs, the writer). Any input must either be refused with a message or
 * parse into views that are safe to touch end to end; anything the reader
 * accepts must survive a write/re-read round trip that is byte-stable. */
#include "io/gguf.h"
#include "util/alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static volatile uint8_t sink; /* keeps the reads below from being optimized away */

static void touch(const void *p, uint64_t n) {
    if (!n) return;
    sink ^= ((const uint8_t *)p)[0];
    sink ^= ((const uint8_t *)p)[n - 1];
}

/* NUL-terminated copy of a view, or NULL if it holds a NUL (not addressable by name). */
static char *cstr(hl_gguf_str s) {
    if (memchr(s.data, 0, (size_t)s.len)) return NULL;
    return hl_strndup(s.data, (size_t)s.len);
}

static void touch_all(const hl_gguf *g) {
    hl_error err;
    (void)hl_gguf_version(g);
    (void)hl_gguf_alignment(g);
    (void)hl_gguf_path(g);
    for (int64_t i = 0; i < hl_gguf_n_kv(g); i++) {
        hl_gguf_str k = hl_gguf_key(g, i);
        touch(k.data, k.len);
        hl_gguf_kv_type t = hl_gguf_kv_type_of(g, i);
        (void)hl_gguf_kv_type_name(t);
        double d;
        int64_t iv;
        (void)hl_gguf_kv_scalar(g, i, &d, &iv);
        hl_gguf_str s;
        if (hl_gguf_kv_string(g, i, &s) == HL_OK) touch(s.data, s.len);
        hl_gguf_kv_type et;
        uint64_t len;
        if (hl_gguf_kv_arr(g, i, &et, &len) == HL_OK) {
            const void *p = hl_gguf_arr_data(g, i);
            if (et == HL_GGUF_STRING) {
                if (p) __builtin_trap();
                for (uint64_t j = 0; j < len; j++) {
                    hl_gguf_str e = hl_gguf_arr_str(g, i, j);
                    touch(e.data, e.len);
                }
            } else {
                if (!p) __builtin_trap();
                touch(p, len * hl_gguf_kv_type_size(et));
            }
        }
        char *key = cstr(k);
        if (key) {
            if (hl_gguf_find_key(g, key) != i) __builtin_trap();
            uint32_t u;
            float f;
            int b;
            (void)hl_gguf_get_u32(g, key, &u, &err);
            (void)hl_gguf_get_f32(g, key, &f, &err);
            (void)hl_gguf_get_str(g, key, &s, &err);
            (void)hl_gguf_get_bool(g, key, &b, &err);
            (void)hl_gguf_get_arr(g, key, &et, &len, &err);
            hl_free(key);
        }
    }
    for (int64_t i = 0; i < hl_gguf_n_tensors(g); i++) {
        const hl_gguf_tensor *t = hl_gguf_tensor_at(g, i);
        touch(t->name.data, t->name.len);
        touch(t->data, t->nbytes);
        (void)hl_gguf_type_name(t->type);
        char *name = cstr(t->name);
        if (name) {
            if (hl_gguf_find_tensor(g, name) != i) __builtin_trap();
            hl_free(name);
        }
    }
}

/* Copies g into a writer; returns NULL if a tensor name cannot be passed as a C string. */
static hl_gguf_writer *copy(const hl_gguf *g) {
    hl_gguf_writer *w = hl_gguf_writer_init();
    if (!w) return NULL;
    hl_error err;
    for (int64_t i = 0; i < hl_gguf_n_kv(g); i++)
        if (hl_gguf_writer_copy_kv(w, g, i) != HL_OK) __builtin_trap();
    for (int64_t i = 0; i < hl_gguf_n_tensors(g); i++) {
        const hl_gguf_tensor *t = hl_gguf_tensor_at(g, i);
        char *name = cstr(t->name);
        if (!name) {
            hl_gguf_writer_free(w);
            return NULL;
        }
        if (hl_gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, t->data, &err) != HL_OK) __builtin_trap();
        hl_free(name);
    }
    return w;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hl_gguf *g = NULL;
    hl_error err;
    if (hl_gguf_open_memory(data, size, "fuzz", &g, &err) != HL_OK) return 0;
    touch_all(g);

    /* accepted input -> canonical file -> accepted again, and stable */
    hl_gguf_writer *w = copy(g);
    if (w) {
        uint8_t *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        if (hl_gguf_writer_write_memory(w, &a, &na, &err) != HL_OK) __builtin_trap();
        hl_gguf *g2 = NULL;
        if (hl_gguf_open_memory(a, na, "fuzz-rewritten", &g2, &err) != HL_OK) __builtin_trap();
        if (hl_gguf_n_kv(g2) != hl_gguf_n_kv(g) || hl_gguf_n_tensors(g2) != hl_gguf_n_tensors(g)) __builtin_trap();
        hl_gguf_writer *w2 = copy(g2);
        if (!w2 || hl_gguf_writer_write_memory(w2, &b, &nb, &err) != HL_OK) __builtin_trap();
        if (na != nb || memcmp(a, b, na) != 0) __builtin_trap();
        hl_gguf_writer_free(w2);
        hl_gguf_free(g2);
        hl_free(a);
        hl_free(b);
        hl_gguf_writer_free(w);
    }
    hl_gguf_free(g);
    return 0;
}
