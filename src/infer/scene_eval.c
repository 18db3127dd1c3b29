/* scene_eval.c: how well a scene decoder reproduces reference outputs:
 * exact-match rate and character error rate (Levenshtein distance over
 * Unicode code points divided by the reference length). */
#include "infer/scene.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/escape.h"
#include "util/fileio.h"

#include <cjson/cJSON.h>
#include <string.h>

/* Decodes UTF-8 into code points (invalid bytes count as one unit each). */
static int64_t to_cps(const char *s, uint32_t *out) {
    const unsigned char *p = (const unsigned char *)s;
    int64_t n = 0;
    while (*p) {
        uint32_t c = *p;
        int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
        for (int k = 1; k < len; k++)
            if ((p[k] & 0xc0) != 0x80) len = 1;
        if (len > 1) {
            c &= 0x7f >> len;
            for (int k = 1; k < len; k++) c = (c << 6) | (p[k] & 0x3f);
        }
        if (out) out[n] = c;
        n++;
        p += len;
    }
    return n;
}

int64_t hl_utf8_edit_distance(const char *a, const char *b, int64_t *len_b) {
    int64_t na = to_cps(a, NULL), nb = to_cps(b, NULL);
    if (len_b) *len_b = nb;
    uint32_t *ca = hl_malloc_array((size_t)na + 1, sizeof *ca), *cb = hl_malloc_array((size_t)nb + 1, sizeof *cb);
    int64_t *row = hl_malloc_array((size_t)nb + 1, sizeof *row);
    if (!ca || !cb || !row) {
        hl_free(ca);
        hl_free(cb);
        hl_free(row);
        return na > nb ? na : nb; /* out of memory: the worst case, never an understatement */
    }
    to_cps(a, ca);
    to_cps(b, cb);
    for (int64_t j = 0; j <= nb; j++) row[j] = j;
    for (int64_t i = 1; i <= na; i++) {
        int64_t diag = row[0];
        row[0] = i;
        for (int64_t j = 1; j <= nb; j++) {
            int64_t up = row[j];
            int64_t best = diag + (ca[i - 1] != cb[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    int64_t d = row[nb];
    hl_free(ca);
    hl_free(cb);
    hl_free(row);
    return d;
}

hl_status hl_scene_eval_file(hl_scene_decoder *d, const char *path, int only_form, int64_t limit,
                             hl_scene_eval *res, FILE *details, hl_error *err) {
    memset(res, 0, sizeof *res);
    char *text = NULL;
    size_t len = 0;
    hl_status s = hl_read_file(path, 1u << 30, &text, &len, err);
    if (s != HL_OK) return s;
    hl_sampler_params sp = hl_sampler_default_params();
    int64_t line_no = 0;
    for (char *p = text; s == HL_OK && p < text + len && (limit <= 0 || res->n < limit);) {
        char *nl = memchr(p, '\n', (size_t)(text + len - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(text + len - p);
        line_no++;
        cJSON *o = n ? cJSON_ParseWithLength(p, n) : NULL;
        p += n + 1;
        if (!n) continue;
        const cJSON *sc = cJSON_GetObjectItemCaseSensitive(o, "scene"), *fo = cJSON_GetObjectItemCaseSensitive(o, "form");
        const cJSON *re = cJSON_GetObjectItemCaseSensitive(o, "register"), *ou = cJSON_GetObjectItemCaseSensitive(o, "output");
        if (!cJSON_IsString(sc) || !cJSON_IsString(fo) || !cJSON_IsString(re) || !cJSON_IsString(ou)) {
            s = hl_fail(err, HL_ERR_FORMAT, "%s:%lld: not a scene example (scene, form, register, output)", path,
                        (long long)line_no);
            cJSON_Delete(o);
            break;
        }
        int form = hl_form_from_name(fo->valuestring), reg = hl_register_from_name(re->valuestring);
        if (form < 0 || reg < 0) {
            s = hl_fail(err, HL_ERR_FORMAT, "%s:%lld: unknown form or register", path, (long long)line_no);
            cJSON_Delete(o);
            break;
        }
        if (only_form >= 0 && form != only_form) {
            cJSON_Delete(o);
            continue;
        }
        char *got = NULL;
        s = hl_scene_decode(d, sc->valuestring, NULL, 0, form, reg, &sp, 256, &got, err);
        if (s == HL_OK) {
            int64_t ref_len, dist = hl_utf8_edit_distance(got, ou->valuestring, &ref_len);
            int exact = strcmp(got, ou->valuestring) == 0;
            res->n++;
            res->exact += exact;
            res->edits += dist;
            res->ref_chars += ref_len;
            res->per_form_n[form]++;
            res->per_form_exact[form] += exact;
            if (details) { /* one TSV line: the file's strings and the output escaped (no raw tab, newline or escape) */
                char e_scene[1024], e_got[4096];
                fprintf(details, "%s\t%s\t%s\t%s\t%lld\t%s\n", exact ? "ok" : "MISS",
                        hl_escape_str(sc->valuestring, e_scene, sizeof e_scene), fo->valuestring, re->valuestring,
                        (long long)dist, hl_escape_str(got, e_got, sizeof e_got));
            }
        } else hl_error_prefix(err, "%s:%lld", path, (long long)line_no);
        hl_free(got);
        cJSON_Delete(o);
    }
    hl_free(text);
    return s;
}
