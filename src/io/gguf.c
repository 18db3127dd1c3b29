/* gguf.c: GGUF v2/v3 reader (zero-copy, every field validated) and writer.
 *
 * Reader policy: a count or length is first checked against the bytes the
 * file has left (HL_ERR_FORMAT: the file is corrupt or truncated), then
 * against the documented caps in gguf.h (HL_ERR_LIMIT). Both happen before
 * anything is allocated, so every allocation is bounded by a small multiple
 * of the file size. Name lookup and duplicate detection use sorted indexes
 * (O(n log n) worst case, no hash flooding). */
#include "io/gguf.h"
#include "util/alloc.h"
#include "util/checked.h"
#include "util/error.h"
#include "util/escape.h"
#include "util/fileio.h"
#include "util/hash.h"
#include "util/le_bytes.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Tensor data and fixed-size arrays are handed out as views of the file
 * bytes, which GGUF stores little-endian. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "hyperlora's zero-copy GGUF reader requires a little-endian host"
#endif

#define GGUF_HEADER_SIZE 24u
/* Smallest possible KV: u64 key length + 1-byte key (keys are non-empty)
 * + u32 type + 1-byte value. */
#define GGUF_MIN_KV_BYTES 14u
/* Smallest tensor info: u64 name length + u32 n_dims + one u64 ne + u32 type + u64 offset. */
#define GGUF_MIN_TENSOR_BYTES 32u
#define ALIGNMENT_KEY "general.alignment"

/* ------------------------------------------------------------ type tables */

size_t hl_gguf_kv_type_size(hl_gguf_kv_type t) {
    switch (t) {
    case HL_GGUF_UINT8: case HL_GGUF_INT8: case HL_GGUF_BOOL: return 1;
    case HL_GGUF_UINT16: case HL_GGUF_INT16: return 2;
    case HL_GGUF_UINT32: case HL_GGUF_INT32: case HL_GGUF_FLOAT32: return 4;
    case HL_GGUF_UINT64: case HL_GGUF_INT64: case HL_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

const char *hl_gguf_kv_type_name(hl_gguf_kv_type t) {
    static const char *names[HL_GGUF_KV_TYPE_COUNT] = {
        "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
        "bool", "string", "array", "uint64", "int64", "float64"};
    if ((unsigned)t >= HL_GGUF_KV_TYPE_COUNT) return "?";
    return names[t];
}

const char *hl_gguf_type_name(uint32_t tensor_type) {
    const hl_type_traits *tr = hl_type_traits_of(tensor_type);
    return tr ? tr->name : "?";
}

/* Byte size of a tensor of a supported type: ne[0] a whole number of blocks,
 * then rows × row bytes, each product checked. 0 and *why set when not. */
static int tensor_nbytes(uint32_t type, const int64_t *ne, uint32_t n_dims, uint64_t *out, const char **why) {
    const hl_type_traits *tr = hl_type_traits_of(type);
    uint64_t rows, row_bytes;
    *why = "overflows";
    if (!hl_mul_dims(ne + 1, (int)n_dims - 1, &rows)) return 0;
    if (ne[0] % tr->block_elems) {
        *why = "row length is not a multiple of the block size";
        return 0;
    }
    if (!hl_type_row_bytes(type, ne[0], &row_bytes) || !hl_mul_u64(rows, row_bytes, out) || *out > (uint64_t)INT64_MAX)
        return 0;
    return 1;
}

static int valid_alignment(uint64_t a) {
    return a != 0 && (a & (a - 1)) == 0 && a <= HL_GGUF_MAX_ALIGNMENT;
}

/* --------------------------------------------------------- little helpers */


static int cmp_bytes(const char *a, uint64_t na, const char *b, uint64_t nb) {
    uint64_t n = na < nb ? na : nb;
    int c = n ? memcmp(a, b, (size_t)n) : 0;
    if (c) return c;
    return na < nb ? -1 : na > nb;
}

/* Renders a file-provided name for a message through the one escaping
 * helper (util/escape.h): control bytes and invalid UTF-8 as \xNN, long
 * names cut, so a hostile name cannot flood or garble the log. */
static const char *show(char *buf, size_t cap, const char *p, uint64_t len) {
    return hl_escape(p, (size_t)len, buf, cap);
}

/* Sorted (name, index) pairs: duplicate detection and binary-search lookup. */
typedef struct sname { const char *p; uint64_t len; uint64_t idx; } sname;

static int cmp_sname(const void *a, const void *b) {
    const sname *x = a, *y = b;
    int c = cmp_bytes(x->p, x->len, y->p, y->len);
    if (c) return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx; /* qsort is unstable; keep it deterministic */
}

static int64_t sname_find(const sname *s, uint64_t n, const char *key, uint64_t len) {
    uint64_t lo = 0, hi = n;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        int c = cmp_bytes(s[mid].p, s[mid].len, key, len);
        if (c == 0) return (int64_t)s[mid].idx;
        if (c < 0) lo = mid + 1; else hi = mid;
    }
    return -1;
}

/* ------------------------------------------------------------------ reader */

typedef struct gkv {
    hl_gguf_str key;
    uint32_t type;
    uint32_t elem_type;   /* arrays */
    const uint8_t *val;   /* raw value bytes, as stored in the file */
    uint64_t val_len;
    const uint8_t *body;  /* strings: the bytes; arrays: the first element */
    uint64_t count;       /* strings: length; arrays: element count */
    uint64_t *str_off;    /* string arrays: offset of element j from body */
} gkv;

struct hl_gguf {
    hl_mapped_file map;
    int mapped;
    const uint8_t *data;
    size_t size;
    char *name;
    uint32_t version;
    uint32_t alignment;
    uint64_t n_kv, n_tensors;
    gkv *kv;
    hl_gguf_tensor *t;
    sname *kv_sorted, *t_sorted;
    uint64_t data_offset;
};

typedef struct parser {
    hl_gguf *g;
    size_t pos;
    hl_error *err;
} parser;

static hl_status perr(parser *ps, hl_status st, const char *fmt, ...) HL_PRINTF(3, 4);
static hl_status perr(parser *ps, hl_status st, const char *fmt, ...) {
    char buf[448];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return hl_fail(ps->err, st, "%s: %s", ps->g->name, buf);
}

static size_t left(const parser *ps) { return ps->g->size - ps->pos; }

static int take(parser *ps, size_t n, const uint8_t **p) {
    if (left(ps) < n) return 0;
    *p = ps->g->data + ps->pos;
    ps->pos += n;
    return 1;
}
static int rd_u32(parser *ps, uint32_t *v) {
    const uint8_t *p;
    if (!take(ps, 4, &p)) return 0;
    *v = hl_le32(p);
    return 1;
}
static int rd_u64(parser *ps, uint64_t *v) {
    const uint8_t *p;
    if (!take(ps, 8, &p)) return 0;
    *v = hl_le64(p);
    return 1;
}

/* Reads a GGUF string (u64 length + bytes); what names it in messages. */
static hl_status rd_str(parser *ps, hl_gguf_str *out, const char *what) {
    uint64_t len;
    size_t at = ps->pos;
    if (!rd_u64(ps, &len))
        return perr(ps, HL_ERR_FORMAT, "%s: truncated string length at offset %zu", what, at);
    if (len > left(ps))
        return perr(ps, HL_ERR_FORMAT, "%s: string length %llu runs past end of file (%zu bytes left)",
                    what, (unsigned long long)len, left(ps));
    if (len > HL_GGUF_MAX_STRING)
        return perr(ps, HL_ERR_LIMIT, "%s: string length %llu exceeds the limit of %u",
                    what, (unsigned long long)len, HL_GGUF_MAX_STRING);
    out->data = (const char *)ps->g->data + ps->pos;
    out->len = len;
    ps->pos += (size_t)len;
    return HL_OK;
}

static hl_status parse_array(parser *ps, gkv *kv, const char *label) {
    uint32_t et;
    uint64_t n;
    if (!rd_u32(ps, &et)) return perr(ps, HL_ERR_FORMAT, "%s: truncated array element type", label);
    if (et == HL_GGUF_ARRAY) return perr(ps, HL_ERR_FORMAT, "%s: nested arrays (array of arrays) are not supported", label);
    if (et >= HL_GGUF_KV_TYPE_COUNT) return perr(ps, HL_ERR_FORMAT, "%s: unknown array element type %u", label, et);
    if (!rd_u64(ps, &n)) return perr(ps, HL_ERR_FORMAT, "%s: truncated array length", label);
    kv->elem_type = et;
    kv->count = n;
    kv->body = ps->g->data + ps->pos;
    if (et == HL_GGUF_STRING) {
        /* each element holds at least its u64 length */
        if (n > left(ps) / 8)
            return perr(ps, HL_ERR_FORMAT, "%s: array length %llu cannot fit in the %zu bytes left",
                        label, (unsigned long long)n, left(ps));
        if (n > HL_GGUF_MAX_ARRAY)
            return perr(ps, HL_ERR_LIMIT, "%s: array length %llu exceeds the limit of %u",
                        label, (unsigned long long)n, HL_GGUF_MAX_ARRAY);
        kv->str_off = hl_malloc_array(n ? (size_t)n : 1, sizeof *kv->str_off);
        if (!kv->str_off) return perr(ps, HL_ERR_NOMEM, "%s: out of memory for a %llu-string index", label, (unsigned long long)n);
        size_t start = ps->pos;
        for (uint64_t j = 0; j < n; j++) {
            uint64_t len;
            kv->str_off[j] = ps->pos - start;
            if (!rd_u64(ps, &len))
                return perr(ps, HL_ERR_FORMAT, "%s: element %llu: truncated string length", label, (unsigned long long)j);
            if (len > left(ps))
                return perr(ps, HL_ERR_FORMAT, "%s: element %llu: string length %llu runs past end of file",
                            label, (unsigned long long)j, (unsigned long long)len);
            if (len > HL_GGUF_MAX_STRING)
                return perr(ps, HL_ERR_LIMIT, "%s: element %llu: string length %llu exceeds the limit of %u",
                            label, (unsigned long long)j, (unsigned long long)len, HL_GGUF_MAX_STRING);
            ps->pos += (size_t)len;
        }
        return HL_OK;
    }
    size_t es = hl_gguf_kv_type_size((hl_gguf_kv_type)et);
    uint64_t bytes;
    if (!hl_mul_u64(n, es, &bytes) || bytes > left(ps))
        return perr(ps, HL_ERR_FORMAT, "%s: array length %llu (%s) runs past end of file (%zu bytes left)",
                    label, (unsigned long long)n, hl_gguf_kv_type_name((hl_gguf_kv_type)et), left(ps));
    if (n > HL_GGUF_MAX_ARRAY)
        return perr(ps, HL_ERR_LIMIT, "%s: array length %llu exceeds the limit of %u",
                    label, (unsigned long long)n, HL_GGUF_MAX_ARRAY);
    if (et == HL_GGUF_BOOL) {
        for (uint64_t j = 0; j < n; j++)
            if (kv->body[j] > 1)
                return perr(ps, HL_ERR_FORMAT, "%s: element %llu: bool value %u is not 0 or 1",
                            label, (unsigned long long)j, kv->body[j]);
    }
    ps->pos += (size_t)bytes;
    return HL_OK;
}

static hl_status parse_kv(parser *ps, uint64_t i) {
    hl_gguf *g = ps->g;
    gkv *kv = &g->kv[i];
    char what[64], nb[100], label[200];
    hl_status s;
    snprintf(what, sizeof what, "KV %llu key", (unsigned long long)i);
    if ((s = rd_str(ps, &kv->key, what)) != HL_OK) return s;
    if (kv->key.len == 0) return perr(ps, HL_ERR_FORMAT, "KV %llu: empty key", (unsigned long long)i);
    snprintf(label, sizeof label, "KV %llu '%s'", (unsigned long long)i, show(nb, sizeof nb, kv->key.data, kv->key.len));
    if (!rd_u32(ps, &kv->type)) return perr(ps, HL_ERR_FORMAT, "%s: truncated value type", label);
    if (kv->type >= HL_GGUF_KV_TYPE_COUNT)
        return perr(ps, HL_ERR_FORMAT, "%s: unknown value type %u", label, kv->type);
    kv->val = g->data + ps->pos;
    if (kv->type == HL_GGUF_STRING) {
        hl_gguf_str v;
        if ((s = rd_str(ps, &v, label)) != HL_OK) return s;
        kv->body = (const uint8_t *)v.data;
        kv->count = v.len;
    } else if (kv->type == HL_GGUF_ARRAY) {
        if ((s = parse_array(ps, kv, label)) != HL_OK) return s;
    } else {
        size_t n = hl_gguf_kv_type_size((hl_gguf_kv_type)kv->type);
        const uint8_t *p;
        if (!take(ps, n, &p))
            return perr(ps, HL_ERR_FORMAT, "%s: truncated %s value", label, hl_gguf_kv_type_name((hl_gguf_kv_type)kv->type));
        if (kv->type == HL_GGUF_BOOL && *p > 1)
            return perr(ps, HL_ERR_FORMAT, "%s: bool value %u is not 0 or 1", label, *p);
        kv->body = p;
        kv->count = 1;
    }
    kv->val_len = (uint64_t)(g->data + ps->pos - kv->val);
    return HL_OK;
}

static hl_status parse_tensor_info(parser *ps, uint64_t i) {
    hl_gguf_tensor *t = &ps->g->t[i];
    char what[64], nb[100], label[200];
    hl_status s;
    snprintf(what, sizeof what, "tensor %llu name", (unsigned long long)i);
    if ((s = rd_str(ps, &t->name, what)) != HL_OK) return s;
    snprintf(label, sizeof label, "tensor %llu '%s'", (unsigned long long)i, show(nb, sizeof nb, t->name.data, t->name.len));
    if (!rd_u32(ps, &t->n_dims)) return perr(ps, HL_ERR_FORMAT, "%s: truncated n_dims", label);
    /* checked before reading ne[] so a large n_dims can never write past it */
    if (t->n_dims == 0 || t->n_dims > HL_GGUF_MAX_DIMS)
        return perr(ps, HL_ERR_FORMAT, "%s: n_dims %u is out of range (1..%d)", label, t->n_dims, HL_GGUF_MAX_DIMS);
    for (uint32_t d = 0; d < HL_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t v;
        if (!rd_u64(ps, &v)) return perr(ps, HL_ERR_FORMAT, "%s: truncated ne[%u]", label, d);
        int64_t sv;
        memcpy(&sv, &v, sizeof sv); /* ne is int64 in ggml */
        if (sv <= 0) return perr(ps, HL_ERR_FORMAT, "%s: ne[%u] = %lld is not positive", label, d, (long long)sv);
        t->ne[d] = sv;
    }
    if (!rd_u32(ps, &t->type)) return perr(ps, HL_ERR_FORMAT, "%s: truncated type", label);
    if (!rd_u64(ps, &t->offset)) return perr(ps, HL_ERR_FORMAT, "%s: truncated offset", label);
    const hl_type_traits *tr = hl_type_traits_of(t->type);
    if (!tr)
        return perr(ps, HL_ERR_UNSUPPORTED, "%s: unsupported tensor type %u (%s); accepted: f32, f16, bf16, q8_0, q4_0, "
                    "q4_1, q5_0, q5_1, q2_K, q3_K, q4_K, q5_K, q6_K", label, t->type, hl_ggml_type_name(t->type));
    uint64_t nel;
    if (!hl_mul_dims(t->ne, (int)t->n_dims, &nel) || nel > (uint64_t)INT64_MAX)
        return perr(ps, HL_ERR_FORMAT, "%s: element count (product of ne) overflows", label);
    if (t->ne[0] % tr->block_elems)
        return perr(ps, HL_ERR_FORMAT, "%s: row length ne[0] = %lld is not a multiple of the %s block size %d",
                    label, (long long)t->ne[0], tr->name, tr->block_elems);
    const char *why;
    if (!tensor_nbytes(t->type, t->ne, t->n_dims, &t->nbytes, &why))
        return perr(ps, HL_ERR_FORMAT, "%s: byte size (%llu elements of %s, %d-byte blocks of %d) %s", label,
                    (unsigned long long)nel, tr->name, tr->block_bytes, tr->block_elems, why);
    return HL_OK;
}

typedef struct srange { uint64_t off, end, idx; } srange;
static int cmp_srange(const void *a, const void *b) {
    const srange *x = a, *y = b;
    if (x->off != y->off) return x->off < y->off ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static hl_status build_index(parser *ps, sname **out, uint64_t n, int tensors) {
    hl_gguf *g = ps->g;
    sname *s = hl_malloc_array(n ? (size_t)n : 1, sizeof *s);
    if (!s) return perr(ps, HL_ERR_NOMEM, "out of memory for the %s index", tensors ? "tensor" : "key");
    for (uint64_t i = 0; i < n; i++) {
        hl_gguf_str nm = tensors ? g->t[i].name : g->kv[i].key;
        s[i].p = nm.data;
        s[i].len = nm.len;
        s[i].idx = i;
    }
    *out = s;
    if (n > 1) qsort(s, (size_t)n, sizeof *s, cmp_sname);
    for (uint64_t i = 1; i < n; i++) {
        if (cmp_bytes(s[i - 1].p, s[i - 1].len, s[i].p, s[i].len) == 0) {
            char nb[100];
            return perr(ps, HL_ERR_FORMAT, "duplicate %s '%s' (%s %llu and %llu)",
                        tensors ? "tensor name" : "key", show(nb, sizeof nb, s[i].p, s[i].len),
                        tensors ? "tensors" : "KVs", (unsigned long long)s[i - 1].idx, (unsigned long long)s[i].idx);
        }
    }
    return HL_OK;
}

static hl_status check_tensor_data(parser *ps) {
    hl_gguf *g = ps->g;
    char nb[100], nb2[100];
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        hl_gguf_tensor *t = &g->t[i];
        uint64_t start, end;
        if (t->offset % g->alignment)
            return perr(ps, HL_ERR_FORMAT, "tensor %llu '%s': offset %llu is not a multiple of the alignment %u",
                        (unsigned long long)i, show(nb, sizeof nb, t->name.data, t->name.len),
                        (unsigned long long)t->offset, g->alignment);
        if (!hl_add_u64(g->data_offset, t->offset, &start) || !hl_add_u64(start, t->nbytes, &end) || end > g->size)
            return perr(ps, HL_ERR_FORMAT, "tensor %llu '%s': data (offset %llu, %llu bytes) runs past end of file (%zu bytes, data section at %llu)",
                        (unsigned long long)i, show(nb, sizeof nb, t->name.data, t->name.len),
                        (unsigned long long)t->offset, (unsigned long long)t->nbytes, g->size,
                        (unsigned long long)g->data_offset);
        t->data = g->data + start;
    }
    if (g->n_tensors < 2) return HL_OK;
    srange *r = hl_malloc_array((size_t)g->n_tensors, sizeof *r);
    if (!r) return perr(ps, HL_ERR_NOMEM, "out of memory checking tensor ranges");
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        r[i].off = g->t[i].offset;
        r[i].end = g->t[i].offset + g->t[i].nbytes; /* bounded by the file size above */
        r[i].idx = i;
    }
    qsort(r, (size_t)g->n_tensors, sizeof *r, cmp_srange);
    hl_status s = HL_OK;
    for (uint64_t i = 1; i < g->n_tensors; i++) {
        if (r[i].off < r[i - 1].end) {
            const hl_gguf_tensor *a = &g->t[r[i - 1].idx], *b = &g->t[r[i].idx];
            s = perr(ps, HL_ERR_FORMAT, "tensor data overlaps: '%s' [%llu, %llu) and '%s' [%llu, %llu)",
                     show(nb, sizeof nb, a->name.data, a->name.len),
                     (unsigned long long)r[i - 1].off, (unsigned long long)r[i - 1].end,
                     show(nb2, sizeof nb2, b->name.data, b->name.len),
                     (unsigned long long)r[i].off, (unsigned long long)r[i].end);
            break;
        }
    }
    hl_free(r);
    return s;
}

static hl_status parse(parser *ps) {
    hl_gguf *g = ps->g;
    hl_status s;
    if (g->size < 4) return perr(ps, HL_ERR_FORMAT, "file too small (%zu bytes) to hold the GGUF magic", g->size);
    if (memcmp(g->data, "GGUF", 4) != 0)
        return perr(ps, HL_ERR_FORMAT, "bad magic %02x %02x %02x %02x (expected \"GGUF\")",
                    g->data[0], g->data[1], g->data[2], g->data[3]);
    ps->pos = 4;
    if (!rd_u32(ps, &g->version)) return perr(ps, HL_ERR_FORMAT, "truncated header: missing version");
    if (g->version == 0x02000000u || g->version == 0x03000000u)
        return perr(ps, HL_ERR_UNSUPPORTED, "big-endian GGUF files are not supported (version field %08x)", g->version);
    if (g->version == 1)
        return perr(ps, HL_ERR_UNSUPPORTED, "GGUF version 1 is not supported (only versions 2 and 3)");
    if (g->version != 2 && g->version != 3)
        return perr(ps, HL_ERR_UNSUPPORTED, "unsupported GGUF version %u (only versions 2 and 3)", g->version);
    if (!rd_u64(ps, &g->n_tensors)) return perr(ps, HL_ERR_FORMAT, "truncated header: missing n_tensors");
    if (!rd_u64(ps, &g->n_kv)) return perr(ps, HL_ERR_FORMAT, "truncated header: missing n_kv");

    /* bound both counts by the bytes left before allocating anything */
    if (g->n_kv > left(ps) / GGUF_MIN_KV_BYTES)
        return perr(ps, HL_ERR_FORMAT, "n_kv = %llu cannot fit in the %zu bytes left (each key/value takes at least %u)",
                    (unsigned long long)g->n_kv, left(ps), GGUF_MIN_KV_BYTES);
    if (g->n_tensors > left(ps) / GGUF_MIN_TENSOR_BYTES)
        return perr(ps, HL_ERR_FORMAT, "n_tensors = %llu cannot fit in the %zu bytes left (each tensor info takes at least %u)",
                    (unsigned long long)g->n_tensors, left(ps), GGUF_MIN_TENSOR_BYTES);
    if (g->n_kv * GGUF_MIN_KV_BYTES + g->n_tensors * GGUF_MIN_TENSOR_BYTES > left(ps)) /* each term <= left: no wrap */
        return perr(ps, HL_ERR_FORMAT, "n_kv = %llu and n_tensors = %llu cannot both fit in the %zu bytes left",
                    (unsigned long long)g->n_kv, (unsigned long long)g->n_tensors, left(ps));
    if (g->n_kv > HL_GGUF_MAX_KV)
        return perr(ps, HL_ERR_LIMIT, "n_kv = %llu exceeds the limit of %u", (unsigned long long)g->n_kv, HL_GGUF_MAX_KV);
    if (g->n_tensors > HL_GGUF_MAX_TENSORS)
        return perr(ps, HL_ERR_LIMIT, "n_tensors = %llu exceeds the limit of %u", (unsigned long long)g->n_tensors, HL_GGUF_MAX_TENSORS);

    g->kv = hl_calloc(g->n_kv ? (size_t)g->n_kv : 1, sizeof *g->kv);
    if (!g->kv) return perr(ps, HL_ERR_NOMEM, "out of memory for %llu key/values", (unsigned long long)g->n_kv);
    for (uint64_t i = 0; i < g->n_kv; i++)
        if ((s = parse_kv(ps, i)) != HL_OK) return s;
    if ((s = build_index(ps, &g->kv_sorted, g->n_kv, 0)) != HL_OK) return s;

    g->alignment = HL_GGUF_DEFAULT_ALIGNMENT;
    int64_t ai = sname_find(g->kv_sorted, g->n_kv, ALIGNMENT_KEY, strlen(ALIGNMENT_KEY));
    if (ai >= 0) {
        const gkv *kv = &g->kv[ai];
        if (kv->type != HL_GGUF_UINT32)
            return perr(ps, HL_ERR_FORMAT, "KV '%s' has type %s, expected uint32", ALIGNMENT_KEY,
                        hl_gguf_kv_type_name((hl_gguf_kv_type)kv->type));
        uint32_t a = hl_le32(kv->body);
        if (!valid_alignment(a))
            return perr(ps, HL_ERR_FORMAT, "KV '%s' = %u: must be a nonzero power of two at most %u",
                        ALIGNMENT_KEY, a, HL_GGUF_MAX_ALIGNMENT);
        g->alignment = a;
    }

    /* re-check against what is actually left after the KV section */
    if (g->n_tensors > left(ps) / GGUF_MIN_TENSOR_BYTES)
        return perr(ps, HL_ERR_FORMAT, "n_tensors = %llu cannot fit in the %zu bytes left after the key/values",
                    (unsigned long long)g->n_tensors, left(ps));
    g->t = hl_calloc(g->n_tensors ? (size_t)g->n_tensors : 1, sizeof *g->t);
    if (!g->t) return perr(ps, HL_ERR_NOMEM, "out of memory for %llu tensor infos", (unsigned long long)g->n_tensors);
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if ((s = parse_tensor_info(ps, i)) != HL_OK) return s;
    if ((s = build_index(ps, &g->t_sorted, g->n_tensors, 1)) != HL_OK) return s;

    if (!hl_align_up(ps->pos, g->alignment, &g->data_offset))
        return perr(ps, HL_ERR_FORMAT, "data section offset overflows");
    /* a file without tensors may end right after its metadata, unpadded */
    if (g->n_tensors > 0 && g->data_offset > g->size)
        return perr(ps, HL_ERR_FORMAT, "data section (at %llu) starts past end of file (%zu bytes)",
                    (unsigned long long)g->data_offset, g->size);
    return check_tensor_data(ps);
}

static hl_status open_common(hl_gguf *g, hl_gguf **out, hl_error *err) {
    parser ps = {g, 0, err};
    hl_status s = parse(&ps);
    if (s != HL_OK) {
        hl_gguf_free(g);
        return s;
    }
    *out = g;
    return HL_OK;
}

hl_status hl_gguf_open_memory(const void *data, size_t size, const char *name, hl_gguf **out, hl_error *err) {
    if (!out) return hl_fail(err, HL_ERR_INVALID_ARG, "hl_gguf_open_memory: out is NULL");
    *out = NULL;
    if (!name) name = "<memory>";
    if (!data && size) return hl_fail(err, HL_ERR_INVALID_ARG, "%s: NULL buffer", name);
    hl_gguf *g = hl_calloc(1, sizeof *g);
    char *nm = hl_strdup(name);
    if (!g || !nm) {
        hl_free(g);
        hl_free(nm);
        return hl_fail(err, HL_ERR_NOMEM, "%s: out of memory", name);
    }
    g->name = nm;
    g->data = data ? data : (const uint8_t *)"";
    g->size = size;
    return open_common(g, out, err);
}

hl_status hl_gguf_open(const char *path, hl_gguf **out, hl_error *err) {
    if (!out || !path) return hl_fail(err, HL_ERR_INVALID_ARG, "hl_gguf_open: NULL argument");
    *out = NULL;
    hl_gguf *g = hl_calloc(1, sizeof *g);
    char *nm = hl_strdup(path);
    if (!g || !nm) {
        hl_free(g);
        hl_free(nm);
        return hl_fail(err, HL_ERR_NOMEM, "%s: out of memory", path);
    }
    g->name = nm;
    hl_status s = hl_map_file(path, &g->map, err);
    if (s != HL_OK) {
        hl_gguf_free(g);
        return s;
    }
    g->mapped = 1;
    g->data = g->map.data;
    g->size = g->map.size;
    return open_common(g, out, err);
}

void hl_gguf_free(hl_gguf *g) {
    if (!g) return;
    if (g->kv)
        for (uint64_t i = 0; i < g->n_kv; i++) hl_free(g->kv[i].str_off);
    hl_free(g->kv);
    hl_free(g->t);
    hl_free(g->kv_sorted);
    hl_free(g->t_sorted);
    if (g->mapped) hl_unmap_file(&g->map);
    hl_free(g->name);
    hl_free(g);
}

uint32_t hl_gguf_version(const hl_gguf *g) { return g->version; }
uint32_t hl_gguf_alignment(const hl_gguf *g) { return g->alignment; }
const char *hl_gguf_path(const hl_gguf *g) { return g->name; }

void hl_gguf_mapping(const hl_gguf *g, const uint8_t **data, size_t *size) {
    *data = g->mapped ? g->data : NULL;
    *size = g->mapped ? g->size : 0;
}

hl_status hl_gguf_check_mapping(const hl_gguf *g, hl_error *err) {
    return g->mapped ? hl_mapped_file_check(&g->map, g->name, err) : HL_OK;
}
int64_t hl_gguf_n_kv(const hl_gguf *g) { return (int64_t)g->n_kv; }
int64_t hl_gguf_n_tensors(const hl_gguf *g) { return (int64_t)g->n_tensors; }

static const gkv *kv_at(const hl_gguf *g, int64_t i) {
    return (g && i >= 0 && (uint64_t)i < g->n_kv) ? &g->kv[i] : NULL;
}

int64_t hl_gguf_find_key(const hl_gguf *g, const char *key) {
    if (!g || !key) return -1;
    return sname_find(g->kv_sorted, g->n_kv, key, strlen(key));
}

hl_gguf_str hl_gguf_key(const hl_gguf *g, int64_t i) {
    const gkv *kv = kv_at(g, i);
    hl_gguf_str none = {NULL, 0};
    return kv ? kv->key : none;
}

hl_gguf_kv_type hl_gguf_kv_type_of(const hl_gguf *g, int64_t i) {
    const gkv *kv = kv_at(g, i);
    return kv ? (hl_gguf_kv_type)kv->type : HL_GGUF_KV_TYPE_COUNT;
}

/* Decodes a scalar KV (bool counts as 0/1). Returns 0 for strings/arrays.
 * UINT64 also comes back exactly in *uv (with *is_unsigned set), since it
 * may not fit in *iv. */
static int decode_scalar(const gkv *kv, double *d, int64_t *iv, uint64_t *uv, int *is_unsigned) {
    const uint8_t *p = kv->body;
    *is_unsigned = 0;
    *uv = 0;
    switch (kv->type) {
    case HL_GGUF_UINT8: case HL_GGUF_BOOL: *iv = p[0]; break;
    case HL_GGUF_INT8: *iv = (int8_t)p[0]; break;
    case HL_GGUF_UINT16: *iv = hl_le16(p); break;
    case HL_GGUF_INT16: *iv = (int16_t)hl_le16(p); break;
    case HL_GGUF_UINT32: *iv = hl_le32(p); break;
    case HL_GGUF_INT32: *iv = (int32_t)hl_le32(p); break;
    case HL_GGUF_UINT64: {
        uint64_t u = hl_le64(p);
        *uv = u;
        *is_unsigned = 1;
        memcpy(iv, &u, sizeof u); /* bit pattern; callers with the type can recover it */
        *d = (double)u;
        return 1;
    }
    case HL_GGUF_INT64: *iv = (int64_t)hl_le64(p); break;
    case HL_GGUF_FLOAT32: {
        float f;
        memcpy(&f, p, 4);
        *d = f;
        *iv = (f >= -9.2e18f && f <= 9.2e18f) ? (int64_t)f : 0; /* NaN and out-of-range give 0 */
        return 1;
    }
    case HL_GGUF_FLOAT64: {
        double x;
        memcpy(&x, p, 8);
        *d = x;
        *iv = (x >= -9.2e18 && x <= 9.2e18) ? (int64_t)x : 0;
        return 1;
    }
    default: return 0;
    }
    *d = (double)*iv;
    return 1;
}

int hl_gguf_kv_scalar(const hl_gguf *g, int64_t i, double *as_double, int64_t *as_int) {
    const gkv *kv = kv_at(g, i);
    double d = 0;
    int64_t iv = 0;
    uint64_t uv;
    int isu;
    if (!kv || !decode_scalar(kv, &d, &iv, &uv, &isu)) return 0;
    if (as_double) *as_double = d;
    if (as_int) *as_int = iv;
    return 1;
}

hl_status hl_gguf_kv_string(const hl_gguf *g, int64_t i, hl_gguf_str *out) {
    const gkv *kv = kv_at(g, i);
    if (!kv || !out) return HL_ERR_INVALID_ARG;
    if (kv->type != HL_GGUF_STRING) return HL_ERR_FORMAT;
    out->data = (const char *)kv->body;
    out->len = kv->count;
    return HL_OK;
}

static const gkv *lookup(const hl_gguf *g, const char *key, hl_error *err, hl_status *st) {
    int64_t i = hl_gguf_find_key(g, key);
    if (i < 0) {
        *st = hl_fail(err, HL_ERR_FORMAT, "%s: key '%s' not found", g ? g->name : "?", key ? key : "(null)");
        return NULL;
    }
    return &g->kv[i];
}

static hl_status type_mismatch(const hl_gguf *g, const char *key, const gkv *kv, const char *want, hl_error *err) {
    return hl_fail(err, HL_ERR_FORMAT, "%s: key '%s' has type %s, expected %s", g->name, key,
                   hl_gguf_kv_type_name((hl_gguf_kv_type)kv->type), want);
}

hl_status hl_gguf_get_u32(const hl_gguf *g, const char *key, uint32_t *out, hl_error *err) {
    hl_status st = HL_ERR_FORMAT;
    const gkv *kv = lookup(g, key, err, &st);
    if (!kv) return st;
    double d;
    int64_t iv;
    uint64_t uv;
    int isu;
    if (kv->type == HL_GGUF_BOOL || kv->type == HL_GGUF_FLOAT32 || kv->type == HL_GGUF_FLOAT64 ||
        !decode_scalar(kv, &d, &iv, &uv, &isu))
        return type_mismatch(g, key, kv, "an integer", err);
    if (isu ? uv > UINT32_MAX : (iv < 0 || iv > (int64_t)UINT32_MAX)) {
        if (isu) return hl_fail(err, HL_ERR_FORMAT, "%s: key '%s' = %llu does not fit in uint32", g->name, key, (unsigned long long)uv);
        return hl_fail(err, HL_ERR_FORMAT, "%s: key '%s' = %lld does not fit in uint32", g->name, key, (long long)iv);
    }
    *out = isu ? (uint32_t)uv : (uint32_t)iv;
    return HL_OK;
}

hl_status hl_gguf_get_f32(const hl_gguf *g, const char *key, float *out, hl_error *err) {
    hl_status st = HL_ERR_FORMAT;
    const gkv *kv = lookup(g, key, err, &st);
    if (!kv) return st;
    if (kv->type == HL_GGUF_FLOAT32) {
        memcpy(out, kv->body, 4);
        return HL_OK;
    }
    if (kv->type == HL_GGUF_FLOAT64) {
        double x;
        memcpy(&x, kv->body, 8);
        /* converting an out-of-range finite double to float is undefined */
        if (isfinite(x) && fabs(x) > FLT_MAX)
            return hl_fail(err, HL_ERR_FORMAT, "%s: key '%s' = %g does not fit in float32", g->name, key, x);
        *out = (float)x;
        return HL_OK;
    }
    return type_mismatch(g, key, kv, "float32", err);
}

hl_status hl_gguf_get_str(const hl_gguf *g, const char *key, hl_gguf_str *out, hl_error *err) {
    hl_status st = HL_ERR_FORMAT;
    const gkv *kv = lookup(g, key, err, &st);
    if (!kv) return st;
    if (kv->type != HL_GGUF_STRING) return type_mismatch(g, key, kv, "string", err);
    out->data = (const char *)kv->body;
    out->len = kv->count;
    return HL_OK;
}

hl_status hl_gguf_get_bool(const hl_gguf *g, const char *key, int *out, hl_error *err) {
    hl_status st = HL_ERR_FORMAT;
    const gkv *kv = lookup(g, key, err, &st);
    if (!kv) return st;
    if (kv->type != HL_GGUF_BOOL) return type_mismatch(g, key, kv, "bool", err);
    *out = kv->body[0];
    return HL_OK;
}

hl_status hl_gguf_get_arr(const hl_gguf *g, const char *key, hl_gguf_kv_type *elem_type, uint64_t *len, hl_error *err) {
    hl_status st = HL_ERR_FORMAT;
    const gkv *kv = lookup(g, key, err, &st);
    if (!kv) return st;
    if (kv->type != HL_GGUF_ARRAY) return type_mismatch(g, key, kv, "array", err);
    if (elem_type) *elem_type = (hl_gguf_kv_type)kv->elem_type;
    if (len) *len = kv->count;
    return HL_OK;
}

hl_status hl_gguf_kv_arr(const hl_gguf *g, int64_t i, hl_gguf_kv_type *elem_type, uint64_t *len) {
    const gkv *kv = kv_at(g, i);
    if (!kv) return HL_ERR_INVALID_ARG;
    if (kv->type != HL_GGUF_ARRAY) return HL_ERR_FORMAT;
    if (elem_type) *elem_type = (hl_gguf_kv_type)kv->elem_type;
    if (len) *len = kv->count;
    return HL_OK;
}

const void *hl_gguf_arr_data(const hl_gguf *g, int64_t i) {
    const gkv *kv = kv_at(g, i);
    if (!kv || kv->type != HL_GGUF_ARRAY || kv->elem_type == HL_GGUF_STRING) return NULL;
    return kv->body;
}

hl_gguf_str hl_gguf_arr_str(const hl_gguf *g, int64_t i, uint64_t j) {
    const gkv *kv = kv_at(g, i);
    hl_gguf_str s = {NULL, 0};
    if (!kv || kv->type != HL_GGUF_ARRAY || kv->elem_type != HL_GGUF_STRING || j >= kv->count) return s;
    const uint8_t *p = kv->body + kv->str_off[j];
    s.len = hl_le64(p);
    s.data = (const char *)p + 8;
    return s;
}

int64_t hl_gguf_find_tensor(const hl_gguf *g, const char *name) {
    if (!g || !name) return -1;
    return sname_find(g->t_sorted, g->n_tensors, name, strlen(name));
}

const hl_gguf_tensor *hl_gguf_tensor_at(const hl_gguf *g, int64_t i) {
    return (g && i >= 0 && (uint64_t)i < g->n_tensors) ? &g->t[i] : NULL;
}

/* ------------------------------------------------------------------ writer */

typedef struct wkv {
    char *key;
    size_t key_len;
    uint32_t type;
    uint8_t *val; /* serialized value, exactly as written after the type */
    size_t val_len;
} wkv;

typedef struct wtensor {
    char *name;
    size_t name_len;
    uint32_t type, n_dims;
    int64_t ne[HL_GGUF_MAX_DIMS];
    uint64_t nbytes;
    const void *data;
} wtensor;

/* Open-addressing hash of names -> index (slot holds index + 1; 0 = empty). */
typedef struct whash { uint32_t *slot; size_t cap; } whash;

struct hl_gguf_writer {
    wkv *kv;
    size_t n_kv, cap_kv;
    wtensor *t;
    size_t n_t, cap_t;
    whash kv_hash, t_hash;
    uint32_t alignment;
};

static uint64_t hash_bytes(const char *p, size_t n) {
    uint64_t h = hl_fnv1a(HL_FNV1A_BASIS, p, n);
    return h ^ (h >> 29);
}

static void w_name(const hl_gguf_writer *w, int tensors, size_t i, const char **p, size_t *n) {
    if (tensors) { *p = w->t[i].name; *n = w->t[i].name_len; }
    else { *p = w->kv[i].key; *n = w->kv[i].key_len; }
}

static int64_t whash_find(const hl_gguf_writer *w, int tensors, const char *s, size_t n) {
    const whash *h = tensors ? &w->t_hash : &w->kv_hash;
    if (!h->cap) return -1;
    for (size_t k = hash_bytes(s, n) & (h->cap - 1);; k = (k + 1) & (h->cap - 1)) {
        if (!h->slot[k]) return -1;
        const char *p;
        size_t len;
        w_name(w, tensors, h->slot[k] - 1, &p, &len);
        if (len == n && memcmp(p, s, n) == 0) return (int64_t)h->slot[k] - 1;
    }
}

/* Fills a fresh zeroed table of cap slots with the current entries. */
static void whash_fill(hl_gguf_writer *w, int tensors, uint32_t *slot, size_t cap) {
    whash *h = tensors ? &w->t_hash : &w->kv_hash;
    size_t n = tensors ? w->n_t : w->n_kv;
    for (size_t i = 0; i < n; i++) {
        const char *p;
        size_t len;
        w_name(w, tensors, i, &p, &len);
        size_t k = hash_bytes(p, len) & (cap - 1);
        while (slot[k]) k = (k + 1) & (cap - 1);
        slot[k] = (uint32_t)(i + 1);
    }
    hl_free(h->slot);
    h->slot = slot;
    h->cap = cap;
}

/* Makes room in the hash for one more entry (called before appending). */
static int whash_reserve(hl_gguf_writer *w, int tensors) {
    whash *h = tensors ? &w->t_hash : &w->kv_hash;
    size_t n = tensors ? w->n_t : w->n_kv;
    if (2 * (n + 1) <= h->cap) return 1;
    size_t cap = 16;
    while (cap < 2 * (n + 1)) cap *= 2;
    uint32_t *slot = hl_calloc(cap, sizeof *slot);
    if (!slot) return 0;
    whash_fill(w, tensors, slot, cap);
    return 1;
}

static void whash_add(hl_gguf_writer *w, int tensors, size_t i) {
    whash *h = tensors ? &w->t_hash : &w->kv_hash;
    const char *p;
    size_t len;
    w_name(w, tensors, i, &p, &len);
    size_t k = hash_bytes(p, len) & (h->cap - 1);
    while (h->slot[k]) k = (k + 1) & (h->cap - 1);
    h->slot[k] = (uint32_t)(i + 1);
}

hl_gguf_writer *hl_gguf_writer_init(void) {
    hl_gguf_writer *w = hl_calloc(1, sizeof *w);
    if (w) w->alignment = HL_GGUF_DEFAULT_ALIGNMENT;
    return w;
}

void hl_gguf_writer_free(hl_gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        hl_free(w->kv[i].key);
        hl_free(w->kv[i].val);
    }
    for (size_t i = 0; i < w->n_t; i++) hl_free(w->t[i].name);
    hl_free(w->kv);
    hl_free(w->t);
    hl_free(w->kv_hash.slot);
    hl_free(w->t_hash.slot);
    hl_free(w);
}

static int is_alignment_key(const char *k, size_t n) {
    return n == strlen(ALIGNMENT_KEY) && memcmp(k, ALIGNMENT_KEY, n) == 0;
}

/* Sets key (k, kn) to an already-serialized value; takes ownership of val. */
static hl_status put_kv(hl_gguf_writer *w, const char *k, size_t kn, uint32_t type, uint8_t *val, size_t vlen) {
    if (is_alignment_key(k, kn)) {
        /* the reader would refuse anything else, so refuse it here too */
        if (type != HL_GGUF_UINT32 || !valid_alignment(hl_le32(val))) {
            hl_free(val);
            return HL_ERR_INVALID_ARG;
        }
    }
    int64_t i = whash_find(w, 0, k, kn);
    if (i >= 0) {
        hl_free(w->kv[i].val);
        w->kv[i].type = type;
        w->kv[i].val = val;
        w->kv[i].val_len = vlen;
    } else {
        if (w->n_kv >= HL_GGUF_MAX_KV) { hl_free(val); return HL_ERR_LIMIT; }
        if (w->n_kv == w->cap_kv) {
            size_t nc = w->cap_kv ? w->cap_kv * 2 : 16;
            wkv *nk = hl_realloc(w->kv, nc * sizeof *nk);
            if (!nk) { hl_free(val); return HL_ERR_NOMEM; }
            w->kv = nk;
            w->cap_kv = nc;
        }
        char *key = hl_strndup(k, kn);
        if (!key || !whash_reserve(w, 0)) { hl_free(key); hl_free(val); return HL_ERR_NOMEM; }
        w->kv[w->n_kv] = (wkv){key, kn, type, val, vlen};
        whash_add(w, 0, w->n_kv);
        w->n_kv++;
    }
    if (is_alignment_key(k, kn)) w->alignment = hl_le32(val);
    return HL_OK;
}

static hl_status check_key(const hl_gguf_writer *w, const char *key) {
    if (!w || !key || !key[0]) return HL_ERR_INVALID_ARG;
    if (strlen(key) > HL_GGUF_MAX_STRING) return HL_ERR_LIMIT;
    return HL_OK;
}

static hl_status set_scalar(hl_gguf_writer *w, const char *key, uint32_t type, const void *v, size_t n) {
    hl_status s = check_key(w, key);
    if (s != HL_OK) return s;
    uint8_t *val = hl_malloc(n);
    if (!val) return HL_ERR_NOMEM;
    memcpy(val, v, n); /* host is little-endian (see the #error above) */
    return put_kv(w, key, strlen(key), type, val, n);
}

hl_status hl_gguf_writer_set_u32(hl_gguf_writer *w, const char *key, uint32_t v) { return set_scalar(w, key, HL_GGUF_UINT32, &v, 4); }
hl_status hl_gguf_writer_set_i32(hl_gguf_writer *w, const char *key, int32_t v) { return set_scalar(w, key, HL_GGUF_INT32, &v, 4); }
hl_status hl_gguf_writer_set_u64(hl_gguf_writer *w, const char *key, uint64_t v) { return set_scalar(w, key, HL_GGUF_UINT64, &v, 8); }
hl_status hl_gguf_writer_set_f32(hl_gguf_writer *w, const char *key, float v) { return set_scalar(w, key, HL_GGUF_FLOAT32, &v, 4); }
hl_status hl_gguf_writer_set_bool(hl_gguf_writer *w, const char *key, int v) {
    uint8_t b = v != 0;
    return set_scalar(w, key, HL_GGUF_BOOL, &b, 1);
}

static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

hl_status hl_gguf_writer_set_str(hl_gguf_writer *w, const char *key, const char *v) {
    hl_status s = check_key(w, key);
    if (s != HL_OK) return s;
    if (!v) return HL_ERR_INVALID_ARG;
    size_t n = strlen(v);
    if (n > HL_GGUF_MAX_STRING) return HL_ERR_LIMIT;
    uint8_t *val = hl_malloc(8 + n);
    if (!val) return HL_ERR_NOMEM;
    put_u64(val, n);
    memcpy(val + 8, v, n);
    return put_kv(w, key, strlen(key), HL_GGUF_STRING, val, 8 + n);
}

hl_status hl_gguf_writer_set_arr(hl_gguf_writer *w, const char *key, hl_gguf_kv_type elem_type, const void *data, uint64_t n) {
    hl_status s = check_key(w, key);
    if (s != HL_OK) return s;
    size_t es = hl_gguf_kv_type_size(elem_type);
    if (!es || (!data && n)) return HL_ERR_INVALID_ARG;
    if (n > HL_GGUF_MAX_ARRAY) return HL_ERR_LIMIT;
    if (elem_type == HL_GGUF_BOOL)
        for (uint64_t j = 0; j < n; j++)
            if (((const uint8_t *)data)[j] > 1) return HL_ERR_INVALID_ARG;
    size_t bytes, total;
    if (!hl_mul_size((size_t)n, es, &bytes) || !hl_add_size(bytes, 12, &total)) return HL_ERR_LIMIT;
    uint8_t *val = hl_malloc(total);
    if (!val) return HL_ERR_NOMEM;
    put_u32(val, (uint32_t)elem_type);
    put_u64(val + 4, n);
    if (bytes) memcpy(val + 12, data, bytes);
    return put_kv(w, key, strlen(key), HL_GGUF_ARRAY, val, total);
}

hl_status hl_gguf_writer_set_arr_str(hl_gguf_writer *w, const char *key, const char *const *strs, uint64_t n) {
    hl_status s = check_key(w, key);
    if (s != HL_OK) return s;
    if (!strs && n) return HL_ERR_INVALID_ARG;
    if (n > HL_GGUF_MAX_ARRAY) return HL_ERR_LIMIT;
    size_t total = 12;
    for (uint64_t j = 0; j < n; j++) {
        if (!strs[j]) return HL_ERR_INVALID_ARG;
        size_t len = strlen(strs[j]);
        if (len > HL_GGUF_MAX_STRING) return HL_ERR_LIMIT;
        if (!hl_add_size(total, 8, &total) || !hl_add_size(total, len, &total)) return HL_ERR_LIMIT;
    }
    uint8_t *val = hl_malloc(total);
    if (!val) return HL_ERR_NOMEM;
    put_u32(val, HL_GGUF_STRING);
    put_u64(val + 4, n);
    size_t pos = 12;
    for (uint64_t j = 0; j < n; j++) {
        size_t len = strlen(strs[j]);
        put_u64(val + pos, len);
        memcpy(val + pos + 8, strs[j], len);
        pos += 8 + len;
    }
    return put_kv(w, key, strlen(key), HL_GGUF_ARRAY, val, total);
}

hl_status hl_gguf_writer_copy_kv(hl_gguf_writer *w, const hl_gguf *g, int64_t i) {
    const gkv *kv = kv_at(g, i);
    if (!w || !kv) return HL_ERR_INVALID_ARG;
    uint8_t *val = hl_malloc((size_t)kv->val_len);
    if (!val) return HL_ERR_NOMEM;
    memcpy(val, kv->val, (size_t)kv->val_len);
    return put_kv(w, kv->key.data, (size_t)kv->key.len, kv->type, val, (size_t)kv->val_len);
}

hl_status hl_gguf_writer_remove_key(hl_gguf_writer *w, const char *key) {
    if (!w || !key) return HL_ERR_INVALID_ARG;
    size_t kn = strlen(key);
    int64_t i = whash_find(w, 0, key, kn);
    if (i < 0) return HL_OK; /* idempotent: "make sure it is gone" */
    /* indexes shift, so the hash is rebuilt; allocate first so OOM changes nothing */
    uint32_t *slot = hl_calloc(w->kv_hash.cap, sizeof *slot);
    if (!slot) return HL_ERR_NOMEM;
    hl_free(w->kv[i].key);
    hl_free(w->kv[i].val);
    memmove(&w->kv[i], &w->kv[i + 1], (w->n_kv - (size_t)i - 1) * sizeof *w->kv);
    w->n_kv--;
    if (is_alignment_key(key, kn)) w->alignment = HL_GGUF_DEFAULT_ALIGNMENT;
    whash_fill(w, 0, slot, w->kv_hash.cap);
    return HL_OK;
}

hl_status hl_gguf_writer_set_alignment(hl_gguf_writer *w, uint32_t alignment) {
    if (!w || !valid_alignment(alignment)) return HL_ERR_INVALID_ARG;
    /* readers only know a non-default alignment through the KV */
    if (alignment != HL_GGUF_DEFAULT_ALIGNMENT || whash_find(w, 0, ALIGNMENT_KEY, strlen(ALIGNMENT_KEY)) >= 0)
        return hl_gguf_writer_set_u32(w, ALIGNMENT_KEY, alignment);
    w->alignment = alignment;
    return HL_OK;
}

hl_status hl_gguf_writer_add_tensor(hl_gguf_writer *w, const char *name, uint32_t type,
                                    uint32_t n_dims, const int64_t *ne, const void *data, hl_error *err) {
    if (!w || !name || !ne || !data)
        return hl_fail(err, HL_ERR_INVALID_ARG, "gguf writer: add_tensor '%s': NULL argument", name ? name : "(null)");
    char nb[100];
    size_t nn = strlen(name);
    const char *shown = show(nb, sizeof nb, name, nn);
    if (nn > HL_GGUF_MAX_STRING)
        return hl_fail(err, HL_ERR_LIMIT, "gguf writer: tensor name of %zu bytes exceeds the limit", nn);
    if (!hl_type_traits_of(type))
        return hl_fail(err, HL_ERR_UNSUPPORTED, "gguf writer: tensor '%s': unsupported tensor type %u (%s)", shown, type, hl_ggml_type_name(type));
    if (n_dims == 0 || n_dims > HL_GGUF_MAX_DIMS)
        return hl_fail(err, HL_ERR_INVALID_ARG, "gguf writer: tensor '%s': n_dims %u is out of range (1..%d)", shown, n_dims, HL_GGUF_MAX_DIMS);
    for (uint32_t d = 0; d < n_dims; d++)
        if (ne[d] <= 0)
            return hl_fail(err, HL_ERR_INVALID_ARG, "gguf writer: tensor '%s': ne[%u] = %lld is not positive", shown, d, (long long)ne[d]);
    uint64_t nel, nbytes;
    const char *why;
    if (!hl_mul_dims(ne, (int)n_dims, &nel) || !tensor_nbytes(type, ne, n_dims, &nbytes, &why) || nbytes > SIZE_MAX)
        return hl_fail(err, HL_ERR_INVALID_ARG, "gguf writer: tensor '%s': size overflows or the row is not whole blocks", shown);
    if (whash_find(w, 1, name, nn) >= 0)
        return hl_fail(err, HL_ERR_INVALID_ARG, "gguf writer: duplicate tensor name '%s'", shown);
    if (w->n_t >= HL_GGUF_MAX_TENSORS)
        return hl_fail(err, HL_ERR_LIMIT, "gguf writer: more than %u tensors", HL_GGUF_MAX_TENSORS);
    if (w->n_t == w->cap_t) {
        size_t nc = w->cap_t ? w->cap_t * 2 : 16;
        wtensor *nt = hl_realloc(w->t, nc * sizeof *nt);
        if (!nt) return hl_fail(err, HL_ERR_NOMEM, "gguf writer: out of memory");
        w->t = nt;
        w->cap_t = nc;
    }
    char *copy = hl_strndup(name, nn);
    if (!copy || !whash_reserve(w, 1)) {
        hl_free(copy);
        return hl_fail(err, HL_ERR_NOMEM, "gguf writer: out of memory");
    }
    wtensor *t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    t->name = copy;
    t->name_len = nn;
    t->type = type;
    t->n_dims = n_dims;
    for (uint32_t d = 0; d < HL_GGUF_MAX_DIMS; d++) t->ne[d] = d < n_dims ? ne[d] : 1;
    t->nbytes = nbytes;
    t->data = data;
    whash_add(w, 1, w->n_t);
    w->n_t++;
    return HL_OK;
}

/* Serialization goes to a sink: a memory buffer sized in advance, or an
 * atomic file. */
typedef struct sink {
    uint8_t *buf;
    size_t pos;
    hl_atomic_file *af;
    hl_error *err;
    hl_status st;
} sink;

static void emit(sink *s, const void *p, size_t n) {
    if (s->st != HL_OK || !n) return;
    if (s->buf) memcpy(s->buf + s->pos, p, n);
    else s->st = hl_atomic_file_write(s->af, p, n, s->err);
    s->pos += n;
}
static void emit_u32(sink *s, uint32_t v) { uint8_t b[4]; put_u32(b, v); emit(s, b, 4); }
static void emit_u64(sink *s, uint64_t v) { uint8_t b[8]; put_u64(b, v); emit(s, b, 8); }
static void emit_zeros(sink *s, size_t n) {
    static const uint8_t zeros[4096];
    while (n) {
        size_t k = n < sizeof zeros ? n : sizeof zeros;
        emit(s, zeros, k);
        n -= k;
    }
}

/* Computes the canonical layout: tensor offsets and the total file size. */
static hl_status layout(const hl_gguf_writer *w, uint64_t *offsets, uint64_t *data_start, uint64_t *total, hl_error *err) {
    uint64_t m = GGUF_HEADER_SIZE;
    int ok = 1;
    for (size_t i = 0; i < w->n_kv; i++) {
        ok &= hl_add_u64(m, 12 + (uint64_t)w->kv[i].key_len, &m);
        ok &= hl_add_u64(m, w->kv[i].val_len, &m);
    }
    for (size_t i = 0; i < w->n_t; i++)
        ok &= hl_add_u64(m, 8 + (uint64_t)w->t[i].name_len + 4 + 8ull * w->t[i].n_dims + 4 + 8, &m);
    uint64_t data_off = 0, off = 0;
    ok &= hl_align_up(m, w->alignment, &data_off);
    for (size_t i = 0; i < w->n_t && ok; i++) {
        offsets[i] = off;
        ok &= hl_add_u64(off, w->t[i].nbytes, &off);
        ok &= hl_align_up(off, w->alignment, &off);
    }
    ok &= hl_add_u64(data_off, off, total);
    if (!ok || *total > SIZE_MAX) return hl_fail(err, HL_ERR_LIMIT, "gguf writer: file size overflows");
    *data_start = data_off;
    return HL_OK;
}

static hl_status serialize(const hl_gguf_writer *w, sink *s, const uint64_t *offsets, uint64_t data_off, uint64_t total) {
    emit(s, "GGUF", 4);
    emit_u32(s, 3);
    emit_u64(s, w->n_t);
    emit_u64(s, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) {
        emit_u64(s, w->kv[i].key_len);
        emit(s, w->kv[i].key, w->kv[i].key_len);
        emit_u32(s, w->kv[i].type);
        emit(s, w->kv[i].val, w->kv[i].val_len);
    }
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        emit_u64(s, t->name_len);
        emit(s, t->name, t->name_len);
        emit_u32(s, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) emit_u64(s, (uint64_t)t->ne[d]);
        emit_u32(s, t->type);
        emit_u64(s, offsets[i]);
    }
    emit_zeros(s, (size_t)(data_off - s->pos)); /* layout() made data_off >= the metadata size */
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        emit(s, t->data, (size_t)t->nbytes);
        /* padding up to the next tensor, or to the end of the file */
        uint64_t next = i + 1 < w->n_t ? offsets[i + 1] : total - data_off;
        emit_zeros(s, (size_t)(next - offsets[i] - t->nbytes));
    }
    return s->st;
}

hl_status hl_gguf_writer_write_memory(hl_gguf_writer *w, uint8_t **out, size_t *out_size, hl_error *err) {
    if (!w || !out || !out_size) return hl_fail(err, HL_ERR_INVALID_ARG, "gguf writer: NULL argument");
    *out = NULL;
    *out_size = 0;
    uint64_t *offsets = hl_malloc_array(w->n_t ? w->n_t : 1, sizeof *offsets);
    if (!offsets) return hl_fail(err, HL_ERR_NOMEM, "gguf writer: out of memory");
    uint64_t data_start, total;
    hl_status st = layout(w, offsets, &data_start, &total, err);
    uint8_t *buf = NULL;
    if (st == HL_OK) {
        buf = hl_malloc((size_t)total);
        if (!buf) st = hl_fail(err, HL_ERR_NOMEM, "gguf writer: out of memory for %llu bytes", (unsigned long long)total);
    }
    if (st == HL_OK) {
        sink s = {buf, 0, NULL, err, HL_OK};
        st = serialize(w, &s, offsets, data_start, total);
    }
    hl_free(offsets);
    if (st != HL_OK) {
        hl_free(buf);
        return st;
    }
    *out = buf;
    *out_size = (size_t)total;
    return HL_OK;
}

hl_status hl_gguf_writer_write_file(hl_gguf_writer *w, const char *path, hl_error *err) {
    if (!w || !path) return hl_fail(err, HL_ERR_INVALID_ARG, "gguf writer: NULL argument");
    uint64_t *offsets = hl_malloc_array(w->n_t ? w->n_t : 1, sizeof *offsets);
    if (!offsets) return hl_fail(err, HL_ERR_NOMEM, "%s: out of memory", path);
    uint64_t data_start, total;
    hl_status st = layout(w, offsets, &data_start, &total, err);
    if (st != HL_OK) {
        hl_error_prefix(err, "%s", path);
        hl_free(offsets);
        return st;
    }
    hl_atomic_file af;
    st = hl_atomic_file_open(&af, path, err);
    if (st == HL_OK) {
        sink s = {NULL, 0, &af, err, HL_OK};
        st = serialize(w, &s, offsets, data_start, total);
        if (st == HL_OK) st = hl_atomic_file_commit(&af, err);
        else hl_atomic_file_abort(&af);
    }
    hl_free(offsets);
    return st;
}
