/* bundle.h: a decoder bundle: a JSON manifest mapping (form, register) to the
 * adapters (and user scales) that decode it, so a style adapter can stack on
 * a scene decoder without retraining it.
 *
 *   {"decoders": [
 *      {"form": "text", "register": "poetic",
 *       "adapters": [{"path": "scenes.gguf", "scale": 1.0}, {"path": "poetic.gguf", "scale": 0.5}]},
 *      {"form": "*", "register": "*", "adapters": [{"path": "scenes.gguf"}]}]}
 *
 * "scale" defaults to 1. Relative paths are relative to the bundle file's
 * directory. Lookup prefers an exact (form, register) entry, then
 * (form, "*"), then ("*", register), then ("*", "*"). Forms and registers
 * are checked against the known names; duplicates of one (form, register)
 * are refused. Caps: 256 entries, 64 adapters per entry, 64 KiB paths. */
#ifndef HL_HYPERLEXEME_BUNDLE_H
#define HL_HYPERLEXEME_BUNDLE_H
#include <stddef.h>
#include "hyperlora.h"

#define HL_BUNDLE_MAX_ENTRIES 256
#define HL_BUNDLE_MAX_ADAPTERS 64
#define HL_BUNDLE_MAX_FILE (1u << 20)

typedef struct hl_bundle hl_bundle;

hl_status hl_bundle_load(const char *path, hl_bundle **out, hl_error *err);
/* dir: directory that relative paths resolve against ("" = as given). */
hl_status hl_bundle_parse(const char *json, size_t len, const char *name, const char *dir, hl_bundle **out,
                          hl_error *err);
void hl_bundle_free(hl_bundle *b);
/* The adapters for (form, register): *n entries of paths (resolved) and scales; HL_ERR_INVALID_ARG
 * naming the pair when no entry matches. Pointers stay valid until hl_bundle_free. */
hl_status hl_bundle_lookup(const hl_bundle *b, int form, int reg, const char *const **paths, const float **scales,
                           int32_t *n, hl_error *err);
int32_t hl_bundle_n_entries(const hl_bundle *b);
#endif
