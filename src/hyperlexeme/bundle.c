/* bundle.c: parsing and lookup of decoder bundles (see bundle.h). */
#include "hyperlexeme/bundle.h"
#include "hyperlexeme/lexicon.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/escape.h"
#include "util/fileio.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define ANY -1

typedef struct {
    int form, reg; /* ANY for "*" */
    int32_t n;
    char **paths;
    float *scales;
} bundle_entry;

struct hl_bundle {
    int32_t n;
    bundle_entry *e;
};

void hl_bundle_free(hl_bundle *b) {
    if (!b) return;
    for (int32_t i = 0; i < b->n; i++) {
        for (int32_t k = 0; k < b->e[i].n; k++) hl_free(b->e[i].paths[k]);
        hl_free(b->e[i].paths);
        hl_free(b->e[i].scales);
    }
    hl_free(b->e);
    hl_free(b);
}

int32_t hl_bundle_n_entries(const hl_bundle *b) { return b->n; }

static hl_status parse_name(const cJSON *item, const char *where, const char *field, int is_form, int *out,
                            hl_error *err) {
    if (!cJSON_IsString(item)) return hl_fail(err, HL_ERR_FORMAT, "%s: field \"%s\": missing or not a string", where, field);
    if (!strcmp(item->valuestring, "*")) {
        *out = ANY;
        return HL_OK;
    }
    int v = is_form ? hl_form_from_name(item->valuestring) : hl_register_from_name(item->valuestring);
    char shown[64];
    if (v < 0)
        return hl_fail(err, HL_ERR_FORMAT, "%s: field \"%s\": unknown %s \"%s\" (%s or \"*\")", where, field, field,
                       hl_escape_str(item->valuestring, shown, sizeof shown),
                       is_form ? "text, symbols, formula, dialogue, report" : "poetic, logical, technical");
    *out = v;
    return HL_OK;
}

hl_status hl_bundle_parse(const char *json, size_t len, const char *name, const char *dir, hl_bundle **out,
                          hl_error *err) {
    *out = NULL;
    if (len > HL_BUNDLE_MAX_FILE) return hl_fail(err, HL_ERR_LIMIT, "%s: larger than %u bytes", name, HL_BUNDLE_MAX_FILE);
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) return hl_fail(err, HL_ERR_FORMAT, "%s: invalid JSON", name);
    hl_status s = HL_OK;
    hl_bundle *b = hl_calloc(1, sizeof *b);
    const cJSON *decs = cJSON_GetObjectItemCaseSensitive(root, "decoders");
    if (!b) s = hl_fail(err, HL_ERR_NOMEM, "out of memory");
    else if (!cJSON_IsObject(root)) s = hl_fail(err, HL_ERR_FORMAT, "%s: not a JSON object", name);
    else if (!cJSON_IsArray(decs)) s = hl_fail(err, HL_ERR_FORMAT, "%s: field \"decoders\": missing or not an array", name);
    else if (cJSON_GetArraySize(decs) == 0) s = hl_fail(err, HL_ERR_FORMAT, "%s: field \"decoders\": empty", name);
    else if (cJSON_GetArraySize(decs) > HL_BUNDLE_MAX_ENTRIES)
        s = hl_fail(err, HL_ERR_LIMIT, "%s: more than %d decoders", name, HL_BUNDLE_MAX_ENTRIES);
    else if (!(b->e = hl_calloc((size_t)cJSON_GetArraySize(decs), sizeof *b->e)))
        s = hl_fail(err, HL_ERR_NOMEM, "out of memory");
    int idx = 0;
    for (const cJSON *d = decs ? decs->child : NULL; s == HL_OK && d; d = d->next, idx++) {
        char where[512];
        snprintf(where, sizeof where, "%s: decoders[%d]", name, idx);
        bundle_entry *e = &b->e[b->n];
        const cJSON *ads = cJSON_GetObjectItemCaseSensitive(d, "adapters");
        if (!cJSON_IsObject(d)) {
            s = hl_fail(err, HL_ERR_FORMAT, "%s: not an object", where);
            break;
        }
        if ((s = parse_name(cJSON_GetObjectItemCaseSensitive(d, "form"), where, "form", 1, &e->form, err)) ||
            (s = parse_name(cJSON_GetObjectItemCaseSensitive(d, "register"), where, "register", 0, &e->reg, err)))
            break;
        for (int32_t j = 0; j < b->n; j++)
            if (b->e[j].form == e->form && b->e[j].reg == e->reg) {
                s = hl_fail(err, HL_ERR_FORMAT, "%s: duplicates decoders[%d] (same form and register)", where, j);
                break;
            }
        if (s) break;
        int na = cJSON_IsArray(ads) ? cJSON_GetArraySize(ads) : -1;
        if (na < 1 || na > HL_BUNDLE_MAX_ADAPTERS) {
            s = hl_fail(err, HL_ERR_FORMAT, "%s: field \"adapters\": must be an array of 1..%d adapters", where,
                        HL_BUNDLE_MAX_ADAPTERS);
            break;
        }
        e->paths = hl_calloc((size_t)na, sizeof *e->paths);
        e->scales = hl_calloc((size_t)na, sizeof *e->scales);
        b->n++;
        if (!e->paths || !e->scales) {
            s = hl_fail(err, HL_ERR_NOMEM, "out of memory");
            break;
        }
        int k = 0;
        for (const cJSON *a = ads->child; a; a = a->next, k++) {
            const cJSON *p = cJSON_GetObjectItemCaseSensitive(a, "path"), *sc = cJSON_GetObjectItemCaseSensitive(a, "scale");
            if (!cJSON_IsObject(a) || !cJSON_IsString(p) || !p->valuestring[0]) {
                s = hl_fail(err, HL_ERR_FORMAT, "%s.adapters[%d]: field \"path\": missing or not a non-empty string",
                            where, k);
                break;
            }
            if (sc && (!cJSON_IsNumber(sc) || !isfinite(sc->valuedouble) || fabs(sc->valuedouble) > 1e6)) {
                s = hl_fail(err, HL_ERR_FORMAT, "%s.adapters[%d]: field \"scale\": not a finite number", where, k);
                break;
            }
            size_t pl = strlen(p->valuestring), dl = dir ? strlen(dir) : 0;
            if (pl > 65536) {
                s = hl_fail(err, HL_ERR_LIMIT, "%s.adapters[%d]: path longer than 64 KiB", where, k);
                break;
            }
            int relative = p->valuestring[0] != '/' && dl > 0;
            char *full = hl_malloc(pl + dl + 2);
            if (!full) {
                s = hl_fail(err, HL_ERR_NOMEM, "out of memory");
                break;
            }
            if (relative) snprintf(full, pl + dl + 2, "%s/%s", dir, p->valuestring);
            else memcpy(full, p->valuestring, pl + 1);
            e->paths[e->n] = full;
            e->scales[e->n++] = sc ? (float)sc->valuedouble : 1.0f;
        }
    }
    cJSON_Delete(root);
    if (s != HL_OK) {
        hl_bundle_free(b);
        return s;
    }
    *out = b;
    return HL_OK;
}

hl_status hl_bundle_load(const char *path, hl_bundle **out, hl_error *err) {
    char *text = NULL;
    size_t len = 0;
    hl_status s = hl_read_file(path, HL_BUNDLE_MAX_FILE, &text, &len, err);
    if (s != HL_OK) return s;
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (slash) snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    else snprintf(dir, sizeof dir, ".");
    s = hl_bundle_parse(text, len, path, dir, out, err);
    hl_free(text);
    return s;
}

hl_status hl_bundle_lookup(const hl_bundle *b, int form, int reg, const char *const **paths, const float **scales,
                           int32_t *n, hl_error *err) {
    const int want[4][2] = {{form, reg}, {form, ANY}, {ANY, reg}, {ANY, ANY}};
    for (int k = 0; k < 4; k++)
        for (int32_t i = 0; i < b->n; i++)
            if (b->e[i].form == want[k][0] && b->e[i].reg == want[k][1]) {
                *paths = (const char *const *)b->e[i].paths;
                *scales = b->e[i].scales;
                *n = b->e[i].n;
                return HL_OK;
            }
    return hl_fail(err, HL_ERR_INVALID_ARG, "the bundle has no decoder for form %s, register %s", hl_form_name(form),
                   hl_register_name(reg));
}
