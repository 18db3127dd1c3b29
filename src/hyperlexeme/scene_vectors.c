/* scene_vectors.c: reading a mute-scene file (`decode --scene-vector`): raw
 * little-endian f32, a whole number of vectors of the model dimension, each
 * element finite. It does not check what the vectors mean; the decoder feeds
 * them into the input embeddings as they are. */
#include "hyperlexeme/scene.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/le_bytes.h"

#include <math.h>
#include <string.h>

hl_status hl_scene_vectors_parse(const void *data, size_t size, const char *name, int64_t C, float **out,
                                 int32_t *n, hl_error *err) {
    *out = NULL;
    *n = 0;
    if (C <= 0 || C > (1 << 20)) return hl_fail(err, HL_ERR_INVALID_ARG, "%s: model dimension %lld", name, (long long)C);
    const size_t row = (size_t)C * sizeof(float);
    /* Too big is a limit (as hl_scene_vectors_load says from the file size), a partial vector a format error. */
    if (size > (size_t)HL_SCENE_MAX_VECTORS * row)
        return hl_fail(err, HL_ERR_LIMIT, "%s: %zu bytes is more than %d vectors of the model dimension %lld (f32)",
                       name, size, HL_SCENE_MAX_VECTORS, (long long)C);
    if (size == 0 || size % row != 0)
        return hl_fail(err, HL_ERR_FORMAT,
                       "%s: %zu bytes is not 1..%d vectors of the model dimension %lld (f32, %zu bytes each)", name,
                       size, HL_SCENE_MAX_VECTORS, (long long)C, row);
    float *v = hl_malloc(size);
    if (!v) return hl_fail(err, HL_ERR_NOMEM, "%s: out of memory", name);
    const unsigned char *p = data;
    for (size_t i = 0; i < size / 4; i++) {
        uint32_t bits = hl_le32(p + 4 * i);
        memcpy(&v[i], &bits, 4);
        if (!isfinite(v[i])) {
            hl_free(v);
            return hl_fail(err, HL_ERR_FORMAT, "%s: value %zu (vector %lld, element %lld) is not finite", name, i,
                           (long long)(i / (size_t)C), (long long)(i % (size_t)C));
        }
    }
    *out = v;
    *n = (int32_t)(size / row);
    return HL_OK;
}

hl_status hl_scene_vectors_load(const char *path, int64_t C, float **out, int32_t *n, hl_error *err) {
    *out = NULL;
    *n = 0;
    if (C <= 0 || C > (1 << 20)) return hl_fail(err, HL_ERR_INVALID_ARG, "%s: model dimension %lld", path, (long long)C);
    char *data = NULL;
    size_t size = 0;
    /* The cap is the largest valid file: a bigger one is refused before it is read. */
    hl_status s = hl_read_file(path, (size_t)HL_SCENE_MAX_VECTORS * (size_t)C * sizeof(float), &data, &size, err);
    if (s != HL_OK) return s;
    s = hl_scene_vectors_parse(data, size, path, C, out, n, err);
    hl_free(data);
    return s;
}
