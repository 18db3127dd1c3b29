/* tokenizer_load.c: building a tokenizer from a llama2.c tokenizer.bin (file
 * or memory) and from a GGUF file's tokenizer.ggml.* metadata ("llama"
 * SentencePiece or "gpt2" byte-level BPE), validating everything read. */
#include "text/tokenizer_internal.h"
#include "io/gguf.h"
#include "util/alloc.h"
#include "util/checked.h"
#include "util/error.h"
#include "util/escape.h"
#include "util/fileio.h"
#include "util/le_bytes.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------- llama2.c */

static float rd_f32le(const uint8_t *p) {
    uint32_t u = hl_le32(p);
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

hl_status hl_tokenizer_from_llama2c_memory(const void *data, size_t size, const char *name, int32_t n_vocab,
                                           hl_tokenizer **out, hl_error *err) {
    if (!name) name = "<memory>";
    if (!out) return hl_fail(err, HL_ERR_INVALID_ARG, "%s: out is NULL", name);
    *out = NULL;
    if (!data && size) return hl_fail(err, HL_ERR_INVALID_ARG, "%s: NULL data", name);
    if (n_vocab < 0 || n_vocab > HL_TOKENIZER_MAX_VOCAB)
        return hl_fail(err, HL_ERR_INVALID_ARG, "%s: requested n_vocab %ld is out of range", name, (long)n_vocab);
    const uint8_t *d = data;
    if (size < 4)
        return hl_fail(err, HL_ERR_FORMAT, "%s: truncated: %zu bytes, too short for max_token_length", name, size);
    int32_t max_tl = hl_le32_signed(d);
    if (max_tl <= 0 || max_tl > HL_TOKENIZER_MAX_PIECE)
        return hl_fail(err, HL_ERR_FORMAT, "%s: max_token_length %ld is out of range [1, %d]", name, (long)max_tl,
                       HL_TOKENIZER_MAX_PIECE);

    /* Pass 1: validate the layout and size the converted pieces. */
    size_t pos = 4, total = 0;
    int32_t count = 0;
    while (n_vocab > 0 ? count < n_vocab : pos < size) {
        size_t left = size - pos;
        if (left == 0)
            return hl_fail(err, HL_ERR_MISMATCH, "%s: has %ld tokens, expected n_vocab %ld", name, (long)count,
                           (long)n_vocab);
        if (left < 8)
            return hl_fail(err, HL_ERR_FORMAT,
                           "%s: token %ld: truncated at byte offset %zu (score and length need 8 bytes, %zu left)",
                           name, (long)count, pos, left);
        if (count == HL_TOKENIZER_MAX_VOCAB)
            return hl_fail(err, HL_ERR_LIMIT, "%s: more than %d tokens", name, HL_TOKENIZER_MAX_VOCAB);
        float score = rd_f32le(d + pos);
        int32_t len = hl_le32_signed(d + pos + 4);
        if (isnan(score)) return hl_fail(err, HL_ERR_FORMAT, "%s: token %ld: score is NaN", name, (long)count);
        if (len < 0)
            return hl_fail(err, HL_ERR_FORMAT, "%s: token %ld: negative piece length %ld", name, (long)count,
                           (long)len);
        if (len > max_tl)
            return hl_fail(err, HL_ERR_FORMAT, "%s: token %ld: piece length %ld exceeds max_token_length %ld", name,
                           (long)count, (long)len, (long)max_tl);
        if ((size_t)len > left - 8)
            return hl_fail(err, HL_ERR_FORMAT,
                           "%s: token %ld: piece length %ld runs past the end of the file (%zu bytes left)", name,
                           (long)count, (long)len, left - 8);
        size_t conv = (size_t)len; /* each ' ' grows to the 3-byte "▁" */
        for (int32_t k = 0; k < len; k++) conv += d[pos + 8 + (size_t)k] == ' ' ? 2 : 0;
        if (!hl_add_size(total, conv, &total)) return hl_fail(err, HL_ERR_LIMIT, "%s: pieces too large", name);
        pos += 8 + (size_t)len;
        count++;
    }
    if (n_vocab > 0 && pos < size)
        return hl_fail(err, HL_ERR_MISMATCH, "%s: has more than the expected n_vocab %ld tokens (%zu bytes follow)",
                       name, (long)n_vocab, size - pos);
    if (count == 0) return hl_fail(err, HL_ERR_FORMAT, "%s: no tokens", name);

    /* Pass 2: convert into GGUF form. */
    piece_ref *refs = hl_malloc_array((size_t)count, sizeof *refs);
    float *scores = hl_malloc_array((size_t)count, sizeof *scores);
    int32_t *types = hl_malloc_array((size_t)count, sizeof *types);
    char *blob = hl_malloc(total);
    hl_status s;
    if (!refs || !scores || !types || !blob) {
        s = hl_fail(err, HL_ERR_NOMEM, "%s: out of memory for %ld tokens", name, (long)count);
        goto done;
    }
    pos = 4;
    size_t bp = 0;
    for (int32_t i = 0; i < count; i++) {
        scores[i] = rd_f32le(d + pos);
        size_t len = (size_t)hl_le32_signed(d + pos + 4);
        const char *src = (const char *)d + pos + 8;
        pos += 8 + len;
        /* llama2.c stores bos/eos as "\n<s>\n" and "\n</s>\n"; GGUF as "<s>", "</s>". */
        if ((i == 1 || i == 2) && len >= 2 && src[0] == '\n' && src[len - 1] == '\n') {
            src++;
            len -= 2;
        }
        refs[i].p = blob + bp;
        for (size_t k = 0; k < len; k++) {
            if (src[k] == ' ') {
                memcpy(blob + bp, SPACE_PIECE, 3);
                bp += 3;
            } else {
                blob[bp++] = src[k];
            }
        }
        refs[i].n = (size_t)(blob + bp - refs[i].p);
        types[i] = i == 0 ? HL_TOKEN_UNKNOWN
                   : i <= 2 ? HL_TOKEN_CONTROL
                   : hl_byte_piece_value(refs[i].p, refs[i].n) >= 0 ? HL_TOKEN_BYTE : HL_TOKEN_NORMAL;
    }
    s = hl_tokenizer_build_pieces(count, refs, scores, types, 1, 2, 0, HL_ERR_FORMAT, name, 0, out, err);
done:
    hl_free(refs);
    hl_free(scores);
    hl_free(types);
    hl_free(blob);
    return s;
}

hl_status hl_tokenizer_from_llama2c(const char *path, int32_t n_vocab, hl_tokenizer **out, hl_error *err) {
    if (!path || !out) return hl_fail(err, HL_ERR_INVALID_ARG, "hl_tokenizer_from_llama2c: NULL argument");
    *out = NULL;
    hl_mapped_file f;
    hl_status s = hl_map_file(path, &f, err);
    if (s != HL_OK) return s;
    s = hl_tokenizer_from_llama2c_memory(f.data, f.size, path, n_vocab, out, err);
    hl_unmap_file(&f);
    return s;
}

/* --------------------------------------------------------------- GGUF */

/* Index of array key `key` whose elements are `want`, with its length; a
 * missing key gives -1 (and HL_OK) unless required. */
static hl_status find_arr(const hl_gguf *g, const char *name, const char *key, hl_gguf_kv_type want, int required,
                          int64_t *idx, uint64_t *n, hl_error *err) {
    *idx = hl_gguf_find_key(g, key);
    *n = 0;
    if (*idx < 0)
        return required ? hl_fail(err, HL_ERR_FORMAT, "%s: missing %s", name, key) : HL_OK;
    hl_gguf_kv_type ty = hl_gguf_kv_type_of(g, *idx), et;
    if (ty != HL_GGUF_ARRAY || hl_gguf_kv_arr(g, *idx, &et, n) != HL_OK)
        return hl_fail(err, HL_ERR_FORMAT, "%s: %s has type %s, expected an array of %s", name, key,
                       hl_gguf_kv_type_name(ty), hl_gguf_kv_type_name(want));
    if (et != want)
        return hl_fail(err, HL_ERR_FORMAT, "%s: %s is an array of %s, expected an array of %s", name, key,
                       hl_gguf_kv_type_name(et), hl_gguf_kv_type_name(want));
    return HL_OK;
}

/* Optional special-token id: default when absent, must be < n_vocab. */
static hl_status special_id(const hl_gguf *g, const char *name, const char *key, int32_t dflt, uint64_t n_vocab,
                            int32_t *out, hl_error *err) {
    *out = dflt;
    if (hl_gguf_find_key(g, key) < 0) return HL_OK;
    uint32_t v;
    hl_status s = hl_gguf_get_u32(g, key, &v, err);
    if (s != HL_OK) return s;
    if (v >= n_vocab)
        return hl_fail(err, HL_ERR_FORMAT, "%s: %s = %lu is out of range (n_vocab %llu)", name, key,
                       (unsigned long)v, (unsigned long long)n_vocab);
    *out = (int32_t)v;
    return HL_OK;
}

/* Texts llama.cpp treats as end-of-generation or fill-in-the-middle
 * markers: a gpt2-vocabulary token spelled so is made CONTROL at load even
 * when the file types it otherwise (Qwen's ordinary BPE token "</s>"), so
 * it is matched as a special token only with parse_special, as there. */
static const char *const CONTROL_LOOKING[] = {
    "</s>", "<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
    "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
};

/* An optional boolean key: *out keeps dflt when absent. */
static hl_status opt_bool(const hl_gguf *g, const char *key, int *out, hl_error *err) {
    if (hl_gguf_find_key(g, key) < 0) return HL_OK;
    return hl_gguf_get_bool(g, key, out, err);
}

hl_status hl_tokenizer_from_gguf(const hl_gguf *g, hl_tokenizer **out, hl_error *err) {
    if (!g || !out) return hl_fail(err, HL_ERR_INVALID_ARG, "hl_tokenizer_from_gguf: NULL argument");
    *out = NULL;
    const char *name = hl_gguf_path(g) ? hl_gguf_path(g) : "<gguf>";
    hl_gguf_str model;
    if (hl_gguf_find_key(g, "tokenizer.ggml.model") < 0)
        return hl_fail(err, HL_ERR_FORMAT, "%s: missing tokenizer.ggml.model", name);
    hl_status s = hl_gguf_get_str(g, "tokenizer.ggml.model", &model, err);
    if (s != HL_OK) return s;
    int byte_level = model.len == 4 && memcmp(model.data, "gpt2", 4) == 0;
    if (!byte_level && (model.len != 5 || memcmp(model.data, "llama", 5) != 0)) {
        char buf[96];
        hl_escape(model.data, (size_t)model.len, buf, sizeof buf);
        return hl_fail(err, HL_ERR_UNSUPPORTED,
                       "%s: tokenizer.ggml.model is \"%s\"; supported: \"llama\" (SentencePiece BPE), \"gpt2\" "
                       "(byte-level BPE)", name, buf);
    }
    int pre = HL_BPE_PRE_DEFAULT; /* llama.cpp's choice when tokenizer.ggml.pre is absent */
    if (byte_level && hl_gguf_find_key(g, "tokenizer.ggml.pre") >= 0) {
        hl_gguf_str pn;
        if ((s = hl_gguf_get_str(g, "tokenizer.ggml.pre", &pn, err)) != HL_OK) return s;
        pre = hl_bpe_pre_from_name(pn.data, (size_t)pn.len);
        if (pre < 0) {
            char buf[96];
            hl_escape(pn.data, (size_t)pn.len, buf, sizeof buf);
            return hl_fail(err, HL_ERR_UNSUPPORTED, "%s: tokenizer.ggml.pre is \"%s\"; supported: %s", name, buf,
                           hl_bpe_pre_names());
        }
    }
    int64_t ti, si, yi, mi = -1;
    uint64_t n, ns, ny, nm = 0;
    if ((s = find_arr(g, name, "tokenizer.ggml.tokens", HL_GGUF_STRING, 1, &ti, &n, err)) != HL_OK) return s;
    if ((s = find_arr(g, name, "tokenizer.ggml.scores", HL_GGUF_FLOAT32, !byte_level, &si, &ns, err)) != HL_OK)
        return s;
    if ((s = find_arr(g, name, "tokenizer.ggml.token_type", HL_GGUF_INT32, 0, &yi, &ny, err)) != HL_OK) return s;
    if (byte_level && (s = find_arr(g, name, "tokenizer.ggml.merges", HL_GGUF_STRING, 1, &mi, &nm, err)) != HL_OK)
        return s;
    if (n == 0) return hl_fail(err, HL_ERR_FORMAT, "%s: tokenizer.ggml.tokens is empty", name);
    if (n > HL_TOKENIZER_MAX_VOCAB)
        return hl_fail(err, HL_ERR_LIMIT, "%s: tokenizer.ggml.tokens has %llu tokens, above the limit of %d", name,
                       (unsigned long long)n, HL_TOKENIZER_MAX_VOCAB);
    if (si >= 0 && ns != n)
        return hl_fail(err, HL_ERR_FORMAT, "%s: tokenizer.ggml.scores has %llu elements but tokenizer.ggml.tokens has %llu",
                       name, (unsigned long long)ns, (unsigned long long)n);
    if (yi >= 0 && ny != n)
        return hl_fail(err, HL_ERR_FORMAT,
                       "%s: tokenizer.ggml.token_type has %llu elements but tokenizer.ggml.tokens has %llu", name,
                       (unsigned long long)ny, (unsigned long long)n);
    if (nm > (uint64_t)HL_TOKENIZER_MAX_VOCAB * 4)
        return hl_fail(err, HL_ERR_LIMIT, "%s: tokenizer.ggml.merges has %llu merges, above the limit of %d", name,
                       (unsigned long long)nm, HL_TOKENIZER_MAX_VOCAB * 4);
    int32_t bos, eos, unk;
    if ((s = special_id(g, name, "tokenizer.ggml.bos_token_id", byte_level ? 0 : 1, n, &bos, err)) != HL_OK) return s;
    if ((s = special_id(g, name, "tokenizer.ggml.eos_token_id", byte_level ? 0 : 2, n, &eos, err)) != HL_OK) return s;
    if ((s = special_id(g, name, "tokenizer.ggml.unknown_token_id", 0, n, &unk, err)) != HL_OK) return s;
    /* BOS: SentencePiece and Llama-3 add it unless the file says otherwise; other byte-level ones do not. */
    int add_bos = !byte_level || pre == HL_BPE_PRE_LLAMA3, add_eos = 0;
    if ((s = opt_bool(g, "tokenizer.ggml.add_bos_token", &add_bos, err)) != HL_OK) return s;
    if ((s = opt_bool(g, "tokenizer.ggml.add_eos_token", &add_eos, err)) != HL_OK) return s;

    const void *sd = si >= 0 ? hl_gguf_arr_data(g, si) : NULL, *yd = yi >= 0 ? hl_gguf_arr_data(g, yi) : NULL;
    if ((si >= 0 && !sd) || (yi >= 0 && !yd)) return hl_fail(err, HL_ERR_FORMAT, "%s: tokenizer arrays have no data", name);
    piece_ref *refs = hl_malloc_array((size_t)n, sizeof *refs);
    float *scores = si >= 0 ? hl_malloc_array((size_t)n, sizeof *scores) : NULL;
    int32_t *types = yi >= 0 || byte_level ? hl_malloc_array((size_t)n, sizeof *types) : NULL;
    const char **mp = byte_level ? hl_malloc_array(nm ? (size_t)nm : 1, sizeof *mp) : NULL;
    size_t *ml = byte_level ? hl_malloc_array(nm ? (size_t)nm : 1, sizeof *ml) : NULL;
    if (!refs || (si >= 0 && !scores) || ((yi >= 0 || byte_level) && !types) || (byte_level && (!mp || !ml))) {
        s = hl_fail(err, HL_ERR_NOMEM, "%s: out of memory for %llu tokens", name, (unsigned long long)n);
        goto done;
    }
    if (scores) memcpy(scores, sd, (size_t)n * sizeof *scores); /* the data may be unaligned */
    if (yd) memcpy(types, yd, (size_t)n * sizeof *types);
    else if (types) for (uint64_t i = 0; i < n; i++) types[i] = HL_TOKEN_NORMAL;
    for (uint64_t i = 0; i < n; i++) {
        hl_gguf_str p = hl_gguf_arr_str(g, ti, i);
        if (p.len > HL_TOKENIZER_MAX_PIECE) {
            s = hl_fail(err, HL_ERR_LIMIT, "%s: tokenizer.ggml.tokens[%llu]: piece of %llu bytes exceeds the %d-byte limit",
                        name, (unsigned long long)i, (unsigned long long)p.len, HL_TOKENIZER_MAX_PIECE);
            goto done;
        }
        if (!p.data && p.len) {
            s = hl_fail(err, HL_ERR_FORMAT, "%s: tokenizer.ggml.tokens[%llu] has no data", name, (unsigned long long)i);
            goto done;
        }
        refs[i] = (piece_ref){p.data ? p.data : "", (size_t)p.len};
        if (byte_level && types[i] != HL_TOKEN_CONTROL)
            for (size_t k = 0; k < sizeof CONTROL_LOOKING / sizeof CONTROL_LOOKING[0]; k++)
                if (hl_piece_is(&refs[i], CONTROL_LOOKING[k])) types[i] = HL_TOKEN_CONTROL;
    }
    for (uint64_t i = 0; i < nm; i++) {
        hl_gguf_str p = hl_gguf_arr_str(g, mi, i);
        if ((!p.data && p.len) || p.len > 2 * HL_TOKENIZER_MAX_PIECE + 1) {
            s = hl_fail(err, HL_ERR_FORMAT, "%s: tokenizer.ggml.merges[%llu] is longer than two pieces can be", name,
                        (unsigned long long)i);
            goto done;
        }
        mp[i] = p.data ? p.data : "";
        ml[i] = (size_t)p.len;
    }
    char what[320];
    snprintf(what, sizeof what, "%s: tokenizer.ggml", name);
    s = hl_tokenizer_build_pieces((int32_t)n, refs, scores, types, bos, eos, unk, HL_ERR_FORMAT, what, byte_level, out, err);
    if (s == HL_OK) {
        (*out)->add_bos = add_bos;
        (*out)->add_eos = add_eos;
    }
    if (s == HL_OK && byte_level) {
        hl_tokenizer_find_eog(*out);
        snprintf(what, sizeof what, "%s: tokenizer.ggml.merges", name);
        s = hl_bpe_init(*out, (hl_bpe_pre)pre, mp, ml, (size_t)nm, what, &(*out)->bpe, err);
        if (s != HL_OK) {
            hl_tokenizer_free(*out);
            *out = NULL;
        }
    }
done:
    hl_free(refs);
    hl_free(scores);
    hl_free(types);
    hl_free(mp);
    hl_free(ml);
    return s;
}
