/* safetensors.c: safetensors reader (validating, zero-copy) and writer.
 *
 * Reader pipeline: length prefix -> raw-byte pre-scan of the header (UTF-8,
 * control characters, \u0000 escapes, nesting depth) -> cJSON -> per-entry
 * field checks -> name sort (duplicates) -> offset sort (contiguity).
 * Every number taken from the file goes through util/checked.h.
 *
 * Ownership: hl_st_open maps the file; hl_st_open_memory copies the caller's
 * bytes, so the caller may release its buffer right after the call. Either
 * way tensor data point into memory owned by the hl_safetensors.
 * hl_st_writer_write_memory returns a buffer to be released with hl_free.
 */
#include "io/safetensors.h"
#include "util/alloc.h"
#include "util/buffer.h"
#include "util/checked.h"
#include "util/error.h"
#include "util/escape.h"
#include "util/fileio.h"
#include "util/half.h"
#include "util/hash.h"
#include "util/le_bytes.h"
#include "util/utf8.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host (tensor data are copied as-is)"
#endif

/* Our files need depth 3 (root, entry, shape); 16 leaves room for unknown
 * extra fields while keeping cJSON's recursion shallow. */
#define ST_MAX_NESTING 16
/* Shapes and offsets are read through a double; above 2^53 they are inexact. */
#define ST_MAX_EXACT 9007199254740992.0 /* 2^53 */

static const char *const dtype_names[HL_ST_DTYPE_COUNT] = {"F32", "F16", "BF16", "F64"};
static const uint64_t dtype_sizes[HL_ST_DTYPE_COUNT] = {4, 2, 2, 8};

const char *hl_st_dtype_name(hl_st_dtype d) {
    if ((int)d < 0 || d >= HL_ST_DTYPE_COUNT) return "?";
    return dtype_names[d];
}

/* ------------------------------------------------------------------ reader */

typedef struct st_entry {
    hl_st_tensor t;     /* first member: hl_st_tensor_at returns &entry->t */
    uint64_t begin, end; /* data_offsets, relative to the data buffer */
} st_entry;

typedef struct st_meta {
    char *key, *value;
} st_meta;

struct hl_safetensors {
    hl_mapped_file map; /* set when opened from a file */
    uint8_t *copy;      /* set when opened from memory */
    st_entry *entries;  /* sorted by name */
    int64_t n;
    st_meta *meta;      /* sorted by key */
    int64_t n_meta;
};

/* A file-provided name for an error message, through the one escaping helper
 * (util/escape.h): truncated, control bytes and invalid UTF-8 as \xNN, so a
 * hostile name cannot garble the terminal or the 512-byte message. */
static const char *printable(const char *s, char *buf, size_t cap) { return hl_escape_str(s, buf, cap); }
#define PNAME_CAP 160

/* Checks the raw header bytes before cJSON sees them: cJSON accepts invalid
 * UTF-8, treats every byte <= 0x20 as whitespace, turns \u0000 into a NUL
 * that would silently truncate a name, and recurses once per nesting level. */
static hl_status prescan_header(const uint8_t *h, size_t n, const char *name, hl_error *err) {
    int in_str = 0, depth = 0;
    for (size_t i = 0; i < n;) {
        uint8_t c = h[i];
        if (c >= 0x80) {
            size_t l = hl_utf8_decode(h + i, n - i, NULL, NULL);
            if (!l) return hl_fail(err, HL_ERR_FORMAT, "%s: header is not valid UTF-8 (byte %zu)", name, i);
            i += l;
            continue;
        }
        if (in_str) {
            if (c < 0x20)
                return hl_fail(err, HL_ERR_FORMAT, "%s: header has a raw control character in a string (byte %zu)",
                               name, i);
            if (c == '"') in_str = 0;
            else if (c == '\\') {
                if (i + 1 < n && h[i + 1] == 'u' && i + 5 < n && memcmp(h + i + 2, "0000", 4) == 0)
                    return hl_fail(err, HL_ERR_FORMAT, "%s: header string contains \\u0000 (byte %zu)", name, i);
                i++; /* skip the escaped character (a '"' or '\\' must not end/escape) */
                if (i < n && h[i] >= 0x80) continue; /* let the UTF-8 check see it */
            }
        } else {
            if (c < 0x20 && c != ' ' && c != '\t' && c != '\n' && c != '\r')
                return hl_fail(err, HL_ERR_FORMAT, "%s: header has a control character (byte %zu)", name, i);
            if (c == '"') in_str = 1;
            else if (c == '{' || c == '[') {
                if (++depth > ST_MAX_NESTING)
                    return hl_fail(err, HL_ERR_FORMAT, "%s: header nesting too deep (more than %d levels)", name,
                                   ST_MAX_NESTING);
            } else if ((c == '}' || c == ']') && depth > 0)
                depth--;
        }
        i++;
    }
    return HL_OK;
}

/* A JSON number that is an exact integer in [0, 2^53). */
static int json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0.0) || d >= ST_MAX_EXACT || d != floor(d)) return 0;
    *out = (uint64_t)d;
    return 1;
}

static int parse_dtype(const char *s, hl_st_dtype *out) {
    for (int i = 0; i < HL_ST_DTYPE_COUNT; i++)
        if (strcmp(s, dtype_names[i]) == 0) {
            *out = (hl_st_dtype)i;
            return 1;
        }
    return 0;
}

/* Finds field `key` in a tensor entry; a repeated field is an error because
 * which copy wins would be the parser's choice, not the file's. */
static hl_status entry_field(const cJSON *obj, const char *key, const cJSON **out, const char *name,
                             const char *tname, hl_error *err) {
    *out = NULL;
    for (const cJSON *c = obj->child; c; c = c->next) {
        if (!c->string || strcmp(c->string, key) != 0) continue;
        if (*out) return hl_fail(err, HL_ERR_FORMAT, "%s: tensor '%s': duplicate \"%s\" field", name, tname, key);
        *out = c;
    }
    if (!*out) return hl_fail(err, HL_ERR_FORMAT, "%s: tensor '%s': missing \"%s\"", name, tname, key);
    return HL_OK;
}

static hl_status parse_entry(const cJSON *item, st_entry *e, const char *name, hl_error *err) {
    char pb[PNAME_CAP];
    const char *tname = printable(item->string, pb, sizeof pb);
    if (!cJSON_IsObject(item))
        return hl_fail(err, HL_ERR_FORMAT, "%s: tensor '%s': entry is not a JSON object", name, tname);
    const cJSON *dt, *shape, *offs;
    hl_status s;
    if ((s = entry_field(item, "dtype", &dt, name, tname, err)) != HL_OK) return s;
    if ((s = entry_field(item, "shape", &shape, name, tname, err)) != HL_OK) return s;
    if ((s = entry_field(item, "data_offsets", &offs, name, tname, err)) != HL_OK) return s;

    if (!cJSON_IsString(dt))
        return hl_fail(err, HL_ERR_FORMAT, "%s: tensor '%s': \"dtype\" is not a string", name, tname);
    if (!parse_dtype(dt->valuestring, &e->t.dtype)) {
        char db[40];
        return hl_fail(err, HL_ERR_UNSUPPORTED, "%s: tensor '%s': dtype %s not supported (supported: F32, F16, BF16, F64)",
                       name, tname, printable(dt->valuestring, db, sizeof db));
    }

    if (!cJSON_IsArray(shape))
        return hl_fail(err, HL_ERR_FORMAT, "%s: tensor '%s': \"shape\" is not an array", name, tname);
    int nd = cJSON_GetArraySize(shape);
    if (nd > HL_ST_MAX_DIMS)
        return hl_fail(err, HL_ERR_LIMIT, "%s: tensor '%s': shape has %d dims, more than the limit of %d", name,
                       tname, nd, HL_ST_MAX_DIMS);
    e->t.n_dims = nd;
    int d = 0;
    for (const cJSON *v = shape->child; v; v = v->next, d++) {
        uint64_t dim;
        if (!json_uint(v, &dim))
            return hl_fail(err, HL_ERR_FORMAT,
                           "%s: tensor '%s': shape[%d] is not an integer in [0, 2^53) (negative, fractional, too large "
                           "or not a number)",
                           name, tname, d);
        e->t.shape[d] = (int64_t)dim;
    }
    uint64_t count, nbytes;
    if (!hl_mul_dims(e->t.shape, nd, &count) || !hl_mul_u64(count, dtype_sizes[e->t.dtype], &nbytes))
        return hl_fail(err, HL_ERR_FORMAT, "%s: tensor '%s': element count x dtype size overflows", name, tname);
    e->t.nbytes = nbytes;

    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return hl_fail(err, HL_ERR_FORMAT, "%s: tensor '%s': \"data_offsets\" is not an array of two integers", name,
                       tname);
    if (!json_uint(offs->child, &e->begin) || !json_uint(offs->child->next, &e->end))
        return hl_fail(err, HL_ERR_FORMAT,
                       "%s: tensor '%s': data_offsets must be two integers in [0, 2^53) (negative, fractional, too "
                       "large or not a number)",
                       name, tname);
    if (e->begin > e->end)
        return hl_fail(err, HL_ERR_FORMAT, "%s: tensor '%s': data_offsets begin %llu > end %llu", name, tname,
                       (unsigned long long)e->begin, (unsigned long long)e->end);
    if (e->end - e->begin != nbytes)
        return hl_fail(err, HL_ERR_FORMAT,
                       "%s: tensor '%s': data_offsets span %llu bytes but shape x dtype size is %llu bytes", name,
                       tname, (unsigned long long)(e->end - e->begin), (unsigned long long)nbytes);
    return HL_OK;
}

static int cmp_entry_name(const void *a, const void *b) {
    return strcmp(((const st_entry *)a)->t.name, ((const st_entry *)b)->t.name);
}
static int cmp_entry_ptr_offset(const void *a, const void *b) {
    const st_entry *x = *(const st_entry *const *)a, *y = *(const st_entry *const *)b;
    /* Zero-size tensors sort before a tensor starting at the same byte. */
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}
static int cmp_meta(const void *a, const void *b) {
    return strcmp(((const st_meta *)a)->key, ((const st_meta *)b)->key);
}

static hl_status parse_metadata(hl_safetensors *st, const cJSON *m, const char *name, hl_error *err) {
    if (!cJSON_IsObject(m)) return hl_fail(err, HL_ERR_FORMAT, "%s: __metadata__ is not a JSON object", name);
    int n = cJSON_GetArraySize(m);
    if (n == 0) return HL_OK;
    st->meta = hl_calloc((size_t)n, sizeof *st->meta);
    if (!st->meta) return hl_fail(err, HL_ERR_NOMEM, "%s: out of memory for metadata", name);
    char pb[PNAME_CAP];
    for (const cJSON *c = m->child; c; c = c->next) {
        if (!cJSON_IsString(c))
            return hl_fail(err, HL_ERR_FORMAT, "%s: __metadata__ value for key '%s' is not a string", name,
                           printable(c->string, pb, sizeof pb));
        st_meta *mm = &st->meta[st->n_meta];
        mm->key = hl_strdup(c->string);
        mm->value = mm->key ? hl_strdup(c->valuestring) : NULL;
        if (!mm->value) {
            hl_free(mm->key);
            mm->key = NULL;
            return hl_fail(err, HL_ERR_NOMEM, "%s: out of memory for metadata", name);
        }
        st->n_meta++;
    }
    qsort(st->meta, (size_t)st->n_meta, sizeof *st->meta, cmp_meta);
    for (int64_t i = 1; i < st->n_meta; i++)
        if (strcmp(st->meta[i - 1].key, st->meta[i].key) == 0)
            return hl_fail(err, HL_ERR_FORMAT, "%s: duplicate __metadata__ key '%s'", name,
                           printable(st->meta[i].key, pb, sizeof pb));
    return HL_OK;
}

/* The offsets, sorted, must tile [0, data_size) exactly: no gap, no overlap. */
static hl_status check_layout(hl_safetensors *st, uint64_t data_size, const char *name, hl_error *err) {
    char pb[PNAME_CAP], pb2[PNAME_CAP];
    for (int64_t i = 0; i < st->n; i++) {
        const st_entry *e = &st->entries[i];
        if (e->end > data_size)
            return hl_fail(err, HL_ERR_FORMAT, "%s: tensor '%s': data_offsets end %llu beyond the data buffer (%llu bytes)",
                           name, printable(e->t.name, pb, sizeof pb), (unsigned long long)e->end,
                           (unsigned long long)data_size);
    }
    if (st->n == 0) {
        if (data_size != 0)
            return hl_fail(err, HL_ERR_FORMAT, "%s: no tensors but %llu bytes of data after the header", name,
                           (unsigned long long)data_size);
        return HL_OK;
    }
    const st_entry **order = hl_malloc_array((size_t)st->n, sizeof *order);
    if (!order) return hl_fail(err, HL_ERR_NOMEM, "%s: out of memory", name);
    for (int64_t i = 0; i < st->n; i++) order[i] = &st->entries[i];
    qsort(order, (size_t)st->n, sizeof *order, cmp_entry_ptr_offset);
    hl_status s = HL_OK;
    uint64_t pos = 0;
    for (int64_t i = 0; i < st->n && s == HL_OK; i++) {
        const st_entry *e = order[i];
        if (e->begin > pos)
            s = hl_fail(err, HL_ERR_FORMAT, "%s: tensor '%s': data starts at byte %llu, leaving a gap after byte %llu",
                        name, printable(e->t.name, pb, sizeof pb), (unsigned long long)e->begin,
                        (unsigned long long)pos);
        else if (e->begin < pos)
            s = hl_fail(err, HL_ERR_FORMAT, "%s: tensor '%s': data [%llu, %llu) overlaps tensor '%s'", name,
                        printable(e->t.name, pb, sizeof pb), (unsigned long long)e->begin,
                        (unsigned long long)e->end, printable(order[i - 1]->t.name, pb2, sizeof pb2));
        pos = e->end;
    }
    if (s == HL_OK && pos != data_size)
        s = hl_fail(err, HL_ERR_FORMAT, "%s: data buffer has %llu bytes not covered by any tensor (tensors end at %llu)",
                    name, (unsigned long long)(data_size - pos), (unsigned long long)pos);
    hl_free(order);
    return s;
}

static hl_status parse(hl_safetensors *st, const uint8_t *buf, size_t size, const char *name, hl_error *err) {
    if (size < 8)
        return hl_fail(err, HL_ERR_FORMAT, "%s: file is %zu bytes, too short for the 8-byte header length", name,
                       size);
    uint64_t hlen = hl_le64(buf);
    if (hlen > HL_ST_MAX_HEADER)
        return hl_fail(err, HL_ERR_LIMIT, "%s: header length %llu exceeds the limit of %u bytes", name,
                       (unsigned long long)hlen, HL_ST_MAX_HEADER);
    if (hlen > size - 8)
        return hl_fail(err, HL_ERR_FORMAT, "%s: header length %llu extends beyond the end of the file (%zu bytes)",
                       name, (unsigned long long)hlen, size);
    if (hlen == 0) return hl_fail(err, HL_ERR_FORMAT, "%s: header is empty (not a JSON object)", name);
    const char *hdr = (const char *)buf + 8;
    hl_status s = prescan_header((const uint8_t *)hdr, (size_t)hlen, name, err);
    if (s != HL_OK) return s;

    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)hlen, &end, 0);
    if (!root) {
        size_t at = end ? (size_t)(end - hdr) : 0;
        return hl_fail(err, HL_ERR_FORMAT, "%s: header is not valid JSON (error near byte %zu)", name, at);
    }
    /* Only padding (whitespace) may follow the JSON value. */
    for (size_t i = (size_t)(end - hdr); i < hlen; i++) {
        char c = hdr[i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            cJSON_Delete(root);
            return hl_fail(err, HL_ERR_FORMAT, "%s: header has trailing data after the JSON object (byte %zu)", name, i);
        }
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return hl_fail(err, HL_ERR_FORMAT, "%s: header is not a JSON object", name);
    }

    const cJSON *meta = NULL;
    uint64_t n = 0;
    for (const cJSON *c = root->child; c; c = c->next) {
        if (strcmp(c->string, "__metadata__") == 0) {
            if (meta) {
                cJSON_Delete(root);
                return hl_fail(err, HL_ERR_FORMAT, "%s: __metadata__ appears more than once", name);
            }
            meta = c;
        } else
            n++;
    }
    if (n > HL_ST_MAX_TENSORS) {
        cJSON_Delete(root);
        return hl_fail(err, HL_ERR_LIMIT, "%s: too many tensors (%llu, limit %u)", name, (unsigned long long)n,
                       HL_ST_MAX_TENSORS);
    }
    if (meta && (s = parse_metadata(st, meta, name, err)) != HL_OK) {
        cJSON_Delete(root);
        return s;
    }
    if (n) {
        st->entries = hl_calloc((size_t)n, sizeof *st->entries);
        if (!st->entries) {
            cJSON_Delete(root);
            return hl_fail(err, HL_ERR_NOMEM, "%s: out of memory for %llu tensors", name, (unsigned long long)n);
        }
    }
    for (const cJSON *c = root->child; c && s == HL_OK; c = c->next) {
        if (c == meta) continue;
        st_entry *e = &st->entries[st->n];
        s = parse_entry(c, e, name, err);
        if (s != HL_OK) break;
        e->t.name = hl_strdup(c->string);
        if (!e->t.name) {
            s = hl_fail(err, HL_ERR_NOMEM, "%s: out of memory", name);
            break;
        }
        st->n++;
    }
    cJSON_Delete(root);
    if (s != HL_OK) return s;

    if (st->n) qsort(st->entries, (size_t)st->n, sizeof *st->entries, cmp_entry_name);
    char pb[PNAME_CAP];
    for (int64_t i = 1; i < st->n; i++)
        if (strcmp(st->entries[i - 1].t.name, st->entries[i].t.name) == 0)
            return hl_fail(err, HL_ERR_FORMAT, "%s: duplicate tensor name '%s'", name,
                           printable(st->entries[i].t.name, pb, sizeof pb));

    const uint8_t *data = buf + 8 + hlen;
    uint64_t data_size = (uint64_t)(size - 8 - (size_t)hlen);
    if ((s = check_layout(st, data_size, name, err)) != HL_OK) return s;
    for (int64_t i = 0; i < st->n; i++) st->entries[i].t.data = data + st->entries[i].begin;
    return HL_OK;
}

void hl_st_free(hl_safetensors *st) {
    if (!st) return;
    for (int64_t i = 0; i < st->n; i++) hl_free((void *)st->entries[i].t.name);
    hl_free(st->entries);
    for (int64_t i = 0; i < st->n_meta; i++) {
        hl_free(st->meta[i].key);
        hl_free(st->meta[i].value);
    }
    hl_free(st->meta);
    if (st->map.data) hl_unmap_file(&st->map);
    hl_free(st->copy);
    hl_free(st);
}

hl_status hl_st_open(const char *path, hl_safetensors **out, hl_error *err) {
    if (!out) return hl_fail(err, HL_ERR_INVALID_ARG, "hl_st_open: out is NULL");
    *out = NULL;
    if (!path) return hl_fail(err, HL_ERR_INVALID_ARG, "hl_st_open: path is NULL");
    hl_safetensors *st = hl_calloc(1, sizeof *st);
    if (!st) return hl_fail(err, HL_ERR_NOMEM, "%s: out of memory", path);
    hl_status s = hl_map_file(path, &st->map, err);
    if (s == HL_OK) s = parse(st, st->map.data, st->map.size, path, err);
    if (s != HL_OK) {
        hl_st_free(st);
        return s;
    }
    *out = st;
    return HL_OK;
}

hl_status hl_st_open_memory(const void *data, size_t size, const char *name, hl_safetensors **out, hl_error *err) {
    if (!name) name = "<memory>";
    if (!out) return hl_fail(err, HL_ERR_INVALID_ARG, "%s: out is NULL", name);
    *out = NULL;
    if (!data && size) return hl_fail(err, HL_ERR_INVALID_ARG, "%s: data is NULL", name);
    hl_safetensors *st = hl_calloc(1, sizeof *st);
    if (!st) return hl_fail(err, HL_ERR_NOMEM, "%s: out of memory", name);
    st->copy = hl_malloc(size);
    if (!st->copy) {
        hl_st_free(st);
        return hl_fail(err, HL_ERR_NOMEM, "%s: out of memory for a %zu-byte copy", name, size);
    }
    if (size) memcpy(st->copy, data, size);
    hl_status s = parse(st, st->copy, size, name, err);
    if (s != HL_OK) {
        hl_st_free(st);
        return s;
    }
    *out = st;
    return HL_OK;
}

int64_t hl_st_n_tensors(const hl_safetensors *st) { return st ? st->n : 0; }

const hl_st_tensor *hl_st_tensor_at(const hl_safetensors *st, int64_t i) {
    if (!st || i < 0 || i >= st->n) return NULL;
    return &st->entries[i].t;
}

const hl_st_tensor *hl_st_find(const hl_safetensors *st, const char *name) {
    if (!st || !name) return NULL;
    int64_t lo = 0, hi = st->n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(st->entries[mid].t.name, name);
        if (c == 0) return &st->entries[mid].t;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

const char *hl_st_metadata(const hl_safetensors *st, const char *key) {
    if (!st || !key) return NULL;
    int64_t lo = 0, hi = st->n_meta;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(st->meta[mid].key, key);
        if (c == 0) return st->meta[mid].value;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

int64_t hl_st_n_metadata(const hl_safetensors *st) { return st ? st->n_meta : 0; }

const char *hl_st_metadata_key_at(const hl_safetensors *st, int64_t i) {
    if (!st || i < 0 || i >= st->n_meta) return NULL;
    return st->meta[i].key;
}

/* Round-to-nearest double -> float with overflow to +-inf made explicit
 * rather than relying on an out-of-range conversion. */
static float double_to_float(double d) {
    if (isnan(d)) return (float)d;
    /* Halfway between FLT_MAX and 2^128; ties-to-even rounds it up to inf. */
    if (d >= 0x1.ffffffp127) return INFINITY;
    if (d <= -0x1.ffffffp127) return -INFINITY;
    return (float)d;
}

hl_status hl_st_read_f32(const hl_st_tensor *t, float *out, uint64_t n, hl_error *err) {
    if (!t) return hl_fail(err, HL_ERR_INVALID_ARG, "hl_st_read_f32: tensor is NULL");
    char pb[PNAME_CAP];
    if ((int)t->dtype < 0 || t->dtype >= HL_ST_DTYPE_COUNT)
        return hl_fail(err, HL_ERR_INVALID_ARG, "tensor '%s': bad dtype",
                       t->name ? printable(t->name, pb, sizeof pb) : "?");
    uint64_t count = t->nbytes / dtype_sizes[t->dtype];
    if (n != count)
        return hl_fail(err, HL_ERR_INVALID_ARG, "tensor '%s': asked for %llu values but it has %llu",
                       t->name ? printable(t->name, pb, sizeof pb) : "?", (unsigned long long)n,
                       (unsigned long long)count);
    if (n == 0) return HL_OK;
    if (!out || !t->data) return hl_fail(err, HL_ERR_INVALID_ARG, "hl_st_read_f32: NULL buffer");
    const uint8_t *p = t->data;
    switch (t->dtype) {
    case HL_ST_F32:
        memcpy(out, p, (size_t)t->nbytes);
        break;
    case HL_ST_F16:
        for (uint64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2); /* data may be unaligned */
            out[i] = hl_f16_to_f32(h);
        }
        break;
    case HL_ST_BF16:
        for (uint64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            out[i] = hl_bf16_to_f32(h);
        }
        break;
    case HL_ST_F64:
        for (uint64_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, p + 8 * i, 8);
            out[i] = double_to_float(d);
        }
        break;
    default:
        break;
    }
    return HL_OK;
}

/* ------------------------------------------------------------------ writer */

typedef struct wt_tensor {
    char *name;
    int32_t n_dims;
    int64_t shape[HL_ST_MAX_DIMS];
    const float *data;
    uint64_t nbytes;
} wt_tensor;

struct hl_st_writer {
    wt_tensor *t;
    size_t n, cap;
    size_t *hash; /* open addressing over t: index + 1, 0 = empty; for duplicate names */
    size_t hcap;
    st_meta *meta;
    size_t n_meta, meta_cap;
};

hl_st_writer *hl_st_writer_init(void) { return hl_calloc(1, sizeof(hl_st_writer)); }

void hl_st_writer_free(hl_st_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) hl_free(w->t[i].name);
    hl_free(w->t);
    hl_free(w->hash);
    for (size_t i = 0; i < w->n_meta; i++) {
        hl_free(w->meta[i].key);
        hl_free(w->meta[i].value);
    }
    hl_free(w->meta);
    hl_free(w);
}

static size_t *hash_slot(size_t *tab, size_t cap, const wt_tensor *t, const char *name) {
    size_t i = (size_t)hl_fnv1a_str(HL_FNV1A_BASIS, name) & (cap - 1);
    while (tab[i] && strcmp(t[tab[i] - 1].name, name) != 0) i = (i + 1) & (cap - 1);
    return &tab[i];
}

/* Keeps the table at most half full so probes stay short. */
static int hash_reserve(hl_st_writer *w) {
    if ((w->n + 1) * 2 <= w->hcap) return 1;
    size_t ncap = w->hcap ? w->hcap * 2 : 64;
    size_t *tab = hl_calloc(ncap, sizeof *tab);
    if (!tab) return 0;
    for (size_t i = 0; i < w->n; i++) *hash_slot(tab, ncap, w->t, w->t[i].name) = i + 1;
    hl_free(w->hash);
    w->hash = tab;
    w->hcap = ncap;
    return 1;
}

hl_status hl_st_writer_add_f32(hl_st_writer *w, const char *name, int32_t n_dims, const int64_t *shape,
                               const float *data, hl_error *err) {
    if (!w || !name) return hl_fail(err, HL_ERR_INVALID_ARG, "safetensors writer: NULL writer or name");
    char pb[PNAME_CAP];
    const char *pn = printable(name, pb, sizeof pb);
    if (!hl_utf8_valid(name, strlen(name), NULL))
        return hl_fail(err, HL_ERR_INVALID_ARG, "safetensors writer: tensor name '%s' is not valid UTF-8", pn);
    if (strcmp(name, "__metadata__") == 0)
        return hl_fail(err, HL_ERR_INVALID_ARG, "safetensors writer: '__metadata__' is reserved, not a tensor name");
    if (n_dims < 0 || n_dims > HL_ST_MAX_DIMS || (n_dims > 0 && !shape))
        return hl_fail(err, HL_ERR_INVALID_ARG, "safetensors writer: tensor '%s': %d dims (must be 0..%d)", pn,
                       (int)n_dims, HL_ST_MAX_DIMS);
    for (int32_t i = 0; i < n_dims; i++)
        if (shape[i] < 0 || (double)shape[i] >= ST_MAX_EXACT)
            return hl_fail(err, HL_ERR_INVALID_ARG, "safetensors writer: tensor '%s': shape[%d] = %lld out of range",
                           pn, (int)i, (long long)shape[i]);
    uint64_t count, nbytes;
    if (!hl_mul_dims(shape, n_dims, &count) || !hl_mul_u64(count, 4, &nbytes) || nbytes > SIZE_MAX)
        return hl_fail(err, HL_ERR_INVALID_ARG, "safetensors writer: tensor '%s': size overflows", pn);
    if (nbytes && !data)
        return hl_fail(err, HL_ERR_INVALID_ARG, "safetensors writer: tensor '%s': data is NULL", pn);
    if (w->n >= HL_ST_MAX_TENSORS)
        return hl_fail(err, HL_ERR_LIMIT, "safetensors writer: more than %u tensors", HL_ST_MAX_TENSORS);
    if (w->hcap && *hash_slot(w->hash, w->hcap, w->t, name))
        return hl_fail(err, HL_ERR_INVALID_ARG, "safetensors writer: duplicate tensor name '%s'", pn);
    if (!hash_reserve(w)) return hl_fail(err, HL_ERR_NOMEM, "safetensors writer: out of memory");
    if (w->n == w->cap) {
        size_t ncap = w->cap ? w->cap * 2 : 16;
        wt_tensor *nt = hl_realloc(w->t, ncap * sizeof *nt);
        if (!nt) return hl_fail(err, HL_ERR_NOMEM, "safetensors writer: out of memory");
        w->t = nt;
        w->cap = ncap;
    }
    wt_tensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    t->name = hl_strdup(name);
    if (!t->name) return hl_fail(err, HL_ERR_NOMEM, "safetensors writer: out of memory");
    t->n_dims = n_dims;
    for (int32_t i = 0; i < n_dims; i++) t->shape[i] = shape[i];
    t->data = data;
    t->nbytes = nbytes;
    *hash_slot(w->hash, w->hcap, w->t, name) = w->n + 1;
    w->n++;
    return HL_OK;
}

hl_status hl_st_writer_set_metadata(hl_st_writer *w, const char *key, const char *value) {
    if (!w || !key || !value || !hl_utf8_valid(key, strlen(key), NULL) || !hl_utf8_valid(value, strlen(value), NULL))
        return HL_ERR_INVALID_ARG;
    for (size_t i = 0; i < w->n_meta; i++)
        if (strcmp(w->meta[i].key, key) == 0) {
            char *v = hl_strdup(value);
            if (!v) return HL_ERR_NOMEM;
            hl_free(w->meta[i].value);
            w->meta[i].value = v;
            return HL_OK;
        }
    if (w->n_meta == w->meta_cap) {
        size_t ncap = w->meta_cap ? w->meta_cap * 2 : 8;
        st_meta *nm = hl_realloc(w->meta, ncap * sizeof *nm);
        if (!nm) return HL_ERR_NOMEM;
        w->meta = nm;
        w->meta_cap = ncap;
    }
    char *k = hl_strdup(key), *v = hl_strdup(value);
    if (!k || !v) {
        hl_free(k);
        hl_free(v);
        return HL_ERR_NOMEM;
    }
    w->meta[w->n_meta].key = k;
    w->meta[w->n_meta].value = v;
    w->n_meta++;
    return HL_OK;
}

static int cmp_wt_ptr(const void *a, const void *b) {
    return strcmp((*(const wt_tensor *const *)a)->name, (*(const wt_tensor *const *)b)->name);
}

/* Builds the 8-byte prefix + padded header and the name-sorted tensor order. */
static hl_status build_header(hl_st_writer *w, hl_buf *hb, const wt_tensor ***order_out, uint64_t *data_size,
                              hl_error *err) {
    *order_out = NULL;
    const wt_tensor **order = NULL;
    if (w->n) {
        order = hl_malloc_array(w->n, sizeof *order);
        if (!order) return hl_fail(err, HL_ERR_NOMEM, "safetensors writer: out of memory");
        for (size_t i = 0; i < w->n; i++) order[i] = &w->t[i];
        qsort(order, w->n, sizeof *order, cmp_wt_ptr);
    }
    if (w->n_meta) qsort(w->meta, w->n_meta, sizeof *w->meta, cmp_meta);

    hl_buf_put(hb, "\0\0\0\0\0\0\0\0", 8); /* length, patched below */
    hl_buf_put(hb, "{", 1);
    int first = 1;
    if (w->n_meta) {
        hl_buf_str(hb, "\"__metadata__\":{");
        for (size_t i = 0; i < w->n_meta; i++) {
            if (i) hl_buf_put(hb, ",", 1);
            hl_buf_json_str(hb, w->meta[i].key, strlen(w->meta[i].key));
            hl_buf_put(hb, ":", 1);
            hl_buf_json_str(hb, w->meta[i].value, strlen(w->meta[i].value));
        }
        hl_buf_put(hb, "}", 1);
        first = 0;
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n; i++) {
        const wt_tensor *t = order[i];
        if (!first) hl_buf_put(hb, ",", 1);
        first = 0;
        hl_buf_json_str(hb, t->name, strlen(t->name));
        hl_buf_str(hb, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int32_t d = 0; d < t->n_dims; d++) {
            if (d) hl_buf_put(hb, ",", 1);
            hl_buf_u64(hb, (uint64_t)t->shape[d]);
        }
        hl_buf_str(hb, "],\"data_offsets\":[");
        hl_buf_u64(hb, off);
        hl_buf_put(hb, ",", 1);
        uint64_t end;
        if (!hl_add_u64(off, t->nbytes, &end)) {
            hl_free(order);
            return hl_fail(err, HL_ERR_LIMIT, "safetensors writer: total data size overflows");
        }
        hl_buf_u64(hb, end);
        hl_buf_str(hb, "]}");
        off = end;
    }
    hl_buf_put(hb, "}", 1);
    /* Pad with spaces so the data buffer starts 8-byte aligned. */
    while (!hb->oom && hb->len % 8) hl_buf_put(hb, " ", 1);
    if (hb->oom) {
        hl_free(order);
        return hl_fail(err, HL_ERR_NOMEM, "safetensors writer: out of memory for the header");
    }
    uint64_t hlen = hb->len - 8;
    if (hlen > HL_ST_MAX_HEADER) {
        hl_free(order);
        return hl_fail(err, HL_ERR_LIMIT, "safetensors writer: header of %llu bytes exceeds the %u-byte limit",
                       (unsigned long long)hlen, HL_ST_MAX_HEADER);
    }
    for (int i = 0; i < 8; i++) hb->p[i] = (char)(uint8_t)(hlen >> (8 * i));
    *order_out = order;
    *data_size = off;
    return HL_OK;
}

hl_status hl_st_writer_write_memory(hl_st_writer *w, uint8_t **out, size_t *out_size, hl_error *err) {
    if (!w || !out || !out_size) return hl_fail(err, HL_ERR_INVALID_ARG, "safetensors writer: NULL argument");
    *out = NULL;
    *out_size = 0;
    hl_buf hb = {0};
    const wt_tensor **order;
    uint64_t data_size;
    hl_status s = build_header(w, &hb, &order, &data_size, err);
    if (s != HL_OK) {
        hl_free(hb.p);
        return s;
    }
    size_t total;
    if (data_size > SIZE_MAX || !hl_add_size(hb.len, (size_t)data_size, &total)) {
        hl_free(hb.p);
        hl_free(order);
        return hl_fail(err, HL_ERR_LIMIT, "safetensors writer: output too large");
    }
    uint8_t *buf = hl_malloc(total);
    if (!buf) {
        hl_free(hb.p);
        hl_free(order);
        return hl_fail(err, HL_ERR_NOMEM, "safetensors writer: out of memory for %zu bytes", total);
    }
    memcpy(buf, hb.p, hb.len);
    size_t pos = hb.len;
    for (size_t i = 0; i < w->n; i++) {
        if (order[i]->nbytes) memcpy(buf + pos, order[i]->data, (size_t)order[i]->nbytes);
        pos += (size_t)order[i]->nbytes;
    }
    hl_free(hb.p);
    hl_free(order);
    *out = buf;
    *out_size = total;
    return HL_OK;
}

hl_status hl_st_writer_write_file(hl_st_writer *w, const char *path, hl_error *err) {
    if (!w || !path) return hl_fail(err, HL_ERR_INVALID_ARG, "safetensors writer: NULL argument");
    hl_buf hb = {0};
    const wt_tensor **order;
    uint64_t data_size;
    hl_status s = build_header(w, &hb, &order, &data_size, err);
    if (s != HL_OK) {
        hl_free(hb.p);
        hl_error_prefix(err, "%s", path);
        return s;
    }
    hl_atomic_file af;
    s = hl_atomic_file_open(&af, path, err); /* cleans up after itself on failure */
    if (s == HL_OK) {
        s = hl_atomic_file_write(&af, hb.p, hb.len, err);
        for (size_t i = 0; i < w->n && s == HL_OK; i++)
            s = hl_atomic_file_write(&af, order[i]->data, (size_t)order[i]->nbytes, err);
        if (s == HL_OK) s = hl_atomic_file_commit(&af, err); /* removes the temp file itself on failure */
        else hl_atomic_file_abort(&af);
    }
    hl_free(hb.p);
    hl_free(order);
    return s;
}
