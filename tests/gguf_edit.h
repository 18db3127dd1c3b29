/* gguf_edit.h: test helper: a writer holding a copy of a GGUF's key/values
 * with one key replaced by a string (or dropped when value is NULL), and,
 * when asked, its tensors (borrowed from g, which must outlive the write).
 * For tests that feed the loaders one defect at a time. */
#ifndef HL_TEST_GGUF_EDIT_H
#define HL_TEST_GGUF_EDIT_H
#include "io/gguf.h"
#include "test_util.h"

static inline hl_gguf_writer *gguf_edited_copy(const hl_gguf *g, const char *key, const char *value, int tensors) {
    hl_error err = {0};
    hl_gguf_writer *w = hl_gguf_writer_init();
    REQUIRE(w);
    for (int64_t i = 0; i < hl_gguf_n_kv(g); i++) {
        hl_gguf_str k = hl_gguf_key(g, i);
        if (k.len == strlen(key) && memcmp(k.data, key, k.len) == 0) continue;
        REQUIRE(hl_gguf_writer_copy_kv(w, g, i) == HL_OK);
    }
    if (value) REQUIRE(hl_gguf_writer_set_str(w, key, value) == HL_OK);
    for (int64_t i = 0; tensors && i < hl_gguf_n_tensors(g); i++) {
        const hl_gguf_tensor *t = hl_gguf_tensor_at(g, i);
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.data);
        REQUIRE(hl_gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, t->data, &err) == HL_OK);
    }
    return w;
}
#endif
