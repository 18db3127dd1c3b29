/* scene_eval.c: how well a scene decoder reproduces reference outputs:
 * exact-match rate and character error rate (Levenshtein distance over
 * Unicode code points divided by the reference length). */
#include "hyperlexeme/scene.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/escape.h"
#include "util/fileio.h"
#include "util/hashset.h"

#include <cjson/cJSON.h>
#include <stdio.h>
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

static int in_part_set(void *user, const char *word) { return hl_hashset_find(user, word, strlen(word)) >= 0; }

/* Every part of every lexeme, lowercased as the metrics compare words. */
static int collect_parts(const hl_lexicon *lex, hl_hashset *set) {
    for (int32_t i = 0; i < hl_lexicon_n_entries(lex); i++)
        for (int32_t k = 0; k < hl_lexicon_n_parts(lex, i); k++) {
            char w[1024];
            hl_read_lower_word(hl_lexicon_part(lex, i, k), w, sizeof w);
            if (w[0] && hl_hashset_add(set, w, strlen(w), NULL) < 0) return 0;
        }
    return 1;
}

/* The parts and facet values of a scene's lexemes (pointers into the lexicon
 * and into fbuf), at most cap of each. */
static void scene_parts(const hl_lexicon *lex, const char *scene, const char **parts, int *np, const char **facets,
                        int *nf, int cap, char *fbuf, size_t fcap) {
    *np = *nf = 0;
    size_t fo = 0;
    for (const char *p = scene; *p;) {
        while (*p == ' ') p++;
        const char *q = p;
        while (*q && *q != ' ') q++;
        char word[HL_LEXEME_MAX_BYTES + 1];
        size_t n = (size_t)(q - p);
        if (n && n <= HL_LEXEME_MAX_BYTES) {
            memcpy(word, p, n);
            word[n] = 0;
            int32_t i = hl_lexicon_find(lex, word);
            for (int32_t k = 0; i >= 0 && k < hl_lexicon_n_parts(lex, i) && *np < cap; k++)
                parts[(*np)++] = hl_lexicon_part(lex, i, k);
            /* facets are "key=value" lines: keep the values */
            for (const char *f = i >= 0 ? hl_lexicon_facets(lex, i) : ""; *f && *nf < cap;) {
                const char *eol = strchr(f, '\n'), *eq = strchr(f, '=');
                if (!eol) eol = f + strlen(f);
                if (eq && eq < eol && fo + (size_t)(eol - eq) < fcap) {
                    size_t vl = (size_t)(eol - eq - 1);
                    memcpy(fbuf + fo, eq + 1, vl);
                    fbuf[fo + vl] = 0;
                    facets[(*nf)++] = fbuf + fo;
                    fo += vl + 1;
                }
                f = *eol ? eol + 1 : eol;
            }
        }
        p = q;
    }
}

static hl_read_stats *group(hl_scene_eval *res, const char *form, const char *reg, const cJSON *lang, const cJSON *split) {
    char key[sizeof res->groups[0].key];
    snprintf(key, sizeof key, "%s %s %.40s %.40s", form, reg, cJSON_IsString(lang) ? lang->valuestring : "-",
             cJSON_IsString(split) ? split->valuestring : "-");
    for (int32_t g = 0; g < res->n_groups; g++)
        if (!strcmp(res->groups[g].key, key)) return &res->groups[g].st;
    if (res->n_groups == HL_EVAL_MAX_GROUPS) return NULL;
    hl_eval_group *g = &res->groups[res->n_groups++];
    memcpy(g->key, key, sizeof key);
    return &g->st;
}

static void add_stats(hl_read_stats *to, const hl_read_stats *x) {
    to->n += x->n;
    to->exact += x->exact;
    to->edits += x->edits;
    to->ref_chars += x->ref_chars;
    to->parts_ref += x->parts_ref;
    to->parts_hit += x->parts_hit;
    to->named += x->named;
    to->named_right += x->named_right;
    to->order_n += x->order_n;
    to->order_ok += x->order_ok;
    to->facets_ref += x->facets_ref;
    to->facets_hit += x->facets_hit;
}

hl_status hl_scene_eval_file(hl_scene_decoder *d, const char *path, int only_form, int64_t limit,
                             hl_scene_eval *res, FILE *details, hl_error *err) {
    memset(res, 0, sizeof *res);
    char *text = NULL;
    size_t len = 0;
    hl_hashset all_parts;
    hl_hashset_init(&all_parts);
    if (!collect_parts(hl_scene_decoder_lexicon(d), &all_parts)) {
        hl_hashset_free(&all_parts);
        return hl_fail(err, HL_ERR_NOMEM, "out of memory");
    }
    hl_status s = hl_read_file(path, 1u << 30, &text, &len, err);
    if (s != HL_OK) {
        hl_hashset_free(&all_parts);
        return s;
    }
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
            hl_read_stats one = {.n = 1, .exact = exact, .edits = dist, .ref_chars = ref_len};
            const char *parts[64], *facets[64];
            char fbuf[4096];
            int np, nf;
            scene_parts(hl_scene_decoder_lexicon(d), sc->valuestring, parts, &np, facets, &nf, 64, fbuf, sizeof fbuf);
            hl_read_score(got, ou->valuestring, parts, np, facets, nf, form == HL_FORM_SYMBOLS || form == HL_FORM_FORMULA,
                          in_part_set, &all_parts, &one);
            add_stats(&res->all, &one);
            hl_read_stats *gs = group(res, fo->valuestring, re->valuestring,
                                      cJSON_GetObjectItemCaseSensitive(o, "lang"),
                                      cJSON_GetObjectItemCaseSensitive(o, "split"));
            if (gs) add_stats(gs, &one);
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
    hl_hashset_free(&all_parts);
    return s;
}
