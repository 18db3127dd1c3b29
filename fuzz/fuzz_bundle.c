/* fuzz_bundle.c: libFuzzer target for hl_bundle_parse (decoder bundle JSON)
 * on arbitrary bytes, then hl_bundle_lookup for every (form, register) pair.
 * The last input byte's low bit picks the directory relative paths resolve
 * against ("" or "/base"), so both path branches are reached.
 * A refused input must name the input in its message and use a data status;
 * an accepted one has 1..256 entries, and every lookup either finds 1..64
 * adapters with non-empty paths and finite scales, or is refused with
 * HL_ERR_INVALID_ARG. A second parse must give the same lookups. */
#include "hyperlora.h"
#include "hyperlexeme/bundle.h"
#include "hyperlexeme/lexicon.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#define ASSERT(c) do { if (!(c)) __builtin_trap(); } while (0)
#define NAME "fuzz.json"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *dir = size && (data[size - 1] & 1) ? "/base" : "";
    hl_bundle *b = (hl_bundle *)&size, *b2 = NULL;
    hl_error err;
    memset(&err, 0x55, sizeof err); /* a message must be written, and terminated */
    hl_status s = hl_bundle_parse((const char *)data, size, NAME, dir, &b, &err);
    if (s != HL_OK) {
        ASSERT(b == NULL);
        ASSERT(s == HL_ERR_FORMAT || s == HL_ERR_LIMIT);
        ASSERT(memchr(err.msg, 0, sizeof err.msg) && strncmp(err.msg, NAME, strlen(NAME)) == 0);
        return 0;
    }
    int32_t ne = hl_bundle_n_entries(b);
    ASSERT(ne >= 1 && ne <= HL_BUNDLE_MAX_ENTRIES);
    ASSERT(hl_bundle_parse((const char *)data, size, NAME, dir, &b2, &err) == HL_OK);
    for (int f = 0; f < HL_FORM_COUNT; f++)
        for (int r = 0; r < HL_REGISTER_COUNT; r++) {
            const char *const *paths = NULL, *const *paths2 = NULL;
            const float *scales = NULL, *scales2 = NULL;
            int32_t n = -1, n2 = -1;
            s = hl_bundle_lookup(b, f, r, &paths, &scales, &n, &err);
            hl_status s2 = hl_bundle_lookup(b2, f, r, &paths2, &scales2, &n2, &err);
            ASSERT(s == s2);
            if (s != HL_OK) {
                ASSERT(s == HL_ERR_INVALID_ARG && memchr(err.msg, 0, sizeof err.msg));
                continue;
            }
            ASSERT(n >= 1 && n <= HL_BUNDLE_MAX_ADAPTERS && n == n2);
            for (int32_t i = 0; i < n; i++) {
                size_t len = strlen(paths[i]);
                ASSERT(len >= 1 && strcmp(paths[i], paths2[i]) == 0);
                if (dir[0] && paths[i][0] != '/') __builtin_trap(); /* relative paths get the directory */
                ASSERT(isfinite(scales[i]) && memcmp(&scales[i], &scales2[i], sizeof(float)) == 0);
            }
        }
    hl_bundle_free(b);
    hl_bundle_free(b2);
    return 0;
}
