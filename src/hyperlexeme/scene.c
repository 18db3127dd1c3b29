/* scene.c: loading and running the scene decoder (see scene.h). */
#include "hyperlexeme/scene.h"
#include "hyperlexeme/word_rows.h"
#include "lora/adapter_io.h"
#include "model/model.h"
#include "text/tokenizer.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/escape.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_LOADED 128

struct hl_scene_decoder {
    hl_model *base;
    hl_lexicon *lex;
    hl_bundle *bundle;
    hl_context *ctx;
    int force, allow_text;
    /* adapters loaded so far, by path */
    int32_t n_loaded;
    char *paths[MAX_LOADED];
    hl_adapter *loaded[MAX_LOADED];
    /* the --lora list (indices into loaded) */
    int32_t n_fixed;
    int32_t fixed[MAX_LOADED];
    float fixed_scales[MAX_LOADED];
    hl_word_rows_report word_rows; /* summed over the adapters */
};

/* The same file or directory, by device and inode (a bundle's paths are
 * resolved against its own directory, so the strings may differ). */
static int same_file(const char *a, const char *b) {
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static hl_status load_adapter(hl_scene_decoder *d, const char *path, int32_t *index, hl_error *err) {
    for (int32_t i = 0; i < d->n_loaded; i++)
        if (!strcmp(d->paths[i], path)) {
            *index = i;
            return HL_OK;
        }
    if (d->n_loaded == MAX_LOADED) return hl_fail(err, HL_ERR_LIMIT, "more than %d distinct adapters", MAX_LOADED);
    hl_adapter *a = NULL;
    hl_status s = hl_adapter_load(path, d->base, d->force, &a, err);
    if (s != HL_OK) return s;
    if (!(d->paths[d->n_loaded] = hl_strdup(path))) {
        hl_adapter_free(a);
        return hl_fail(err, HL_ERR_NOMEM, "out of memory");
    }
    d->loaded[d->n_loaded] = a;
    *index = d->n_loaded++;
    return HL_OK;
}

void hl_scene_decoder_free(hl_scene_decoder *d) {
    if (!d) return;
    hl_context_free(d->ctx);
    for (int32_t i = 0; i < d->n_loaded; i++) {
        hl_adapter_free(d->loaded[i]);
        hl_free(d->paths[i]);
    }
    hl_bundle_free(d->bundle);
    hl_lexicon_free(d->lex);
    hl_model_free(d->base);
    hl_free(d);
}

const hl_lexicon *hl_scene_decoder_lexicon(const hl_scene_decoder *d) { return d->lex; }
const hl_model *hl_scene_decoder_base(const hl_scene_decoder *d) { return d->base; }
void hl_scene_decoder_word_rows(const hl_scene_decoder *d, int32_t *n_new, int32_t *n_fit, int32_t *n_skipped) {
    if (n_new) *n_new = d->word_rows.n_new;
    if (n_fit) *n_fit = d->word_rows.n_fit;
    if (n_skipped) *n_skipped = d->word_rows.n_skipped;
}
int hl_scene_decoder_has_adapters(const hl_scene_decoder *d) { return d->n_fixed > 0 || d->bundle != NULL; }

hl_status hl_scene_decoder_init(const hl_scene_decoder_params *p, hl_scene_decoder **out, hl_error *err) {
    *out = NULL;
    hl_scene_decoder *d = hl_calloc(1, sizeof *d);
    if (!d) return hl_fail(err, HL_ERR_NOMEM, "out of memory");
    d->force = p->force;
    d->allow_text = p->allow_text;
    hl_status s = hl_model_load(p->model_path, p->tokenizer_path, &d->base, err);
    if (s == HL_OK && p->n_lora > MAX_LOADED) s = hl_fail(err, HL_ERR_LIMIT, "too many adapters");
    for (int32_t i = 0; s == HL_OK && i < p->n_lora; i++) {
        s = load_adapter(d, p->lora_paths[i], &d->fixed[d->n_fixed], err);
        d->fixed_scales[d->n_fixed++] = p->lora_scales ? p->lora_scales[i] : 1.0f;
    }
    if (s == HL_OK && p->bundle_path) {
        s = hl_bundle_load(p->bundle_path, &d->bundle, err);
        /* Load every adapter the bundle names now, so a bad path fails early. */
        for (int f = 0; s == HL_OK && f < HL_FORM_COUNT; f++)
            for (int r = 0; s == HL_OK && r < HL_REGISTER_COUNT; r++) {
                const char *const *paths;
                const float *scales;
                int32_t n, idx;
                if (hl_bundle_lookup(d->bundle, f, r, &paths, &scales, &n, NULL) != HL_OK) continue;
                for (int32_t k = 0; s == HL_OK && k < n; k++) {
                    s = load_adapter(d, paths[k], &idx, err);
                    for (int32_t i = 0; s == HL_OK && i < p->n_lora; i++)
                        if (same_file(p->lora_paths[i], paths[k]))
                            s = hl_fail(err, HL_ERR_INVALID_ARG,
                                        "%s is given with --lora and named by the bundle %s (%s): it would apply "
                                        "twice; name it in one place (--lora-scaled FILE:2 to double it)",
                                        p->lora_paths[i], p->bundle_path, paths[k]);
                }
            }
    }
    const hl_adapter *carrier = NULL;
    if (s == HL_OK) {
        for (int32_t i = 0; !carrier && i < d->n_loaded; i++)
            if (d->loaded[i]->lexicon) carrier = d->loaded[i];
        if (carrier && p->lexicon_path && p->compose)
            s = hl_fail(err, HL_ERR_INVALID_ARG, "%s adds to the lexicon the adapter carries, which keeps its own "
                        "composition rule: drop --compose", p->lexicon_path);
        else if (carrier && p->lexicon_path)
            s = hl_lexicon_from_adapter_extra(carrier, d->base, p->lexicon_path, &d->lex, err);
        else if (carrier)
            s = hl_lexicon_from_adapter(carrier, d->base, &d->lex, err);
        else if (p->lexicon_path)
            s = hl_lexicon_load_compose(p->lexicon_path, d->base, p->compose, &d->lex, err);
        if (s == HL_OK && !d->lex)
            s = hl_fail(err, HL_ERR_INVALID_ARG,
                        "no lexicon: pass --lexicon FILE, or a decoder adapter trained with one (--lora)");
    }
    /* Words that are parts only of scenes an adapter did not train on get rows of its output adapter composed
     * from their head rows (word_rows.h), unless the caller keeps the trained rows alone. */
    for (int32_t i = 0; s == HL_OK && !p->no_word_rows && i < d->n_loaded; i++) {
        hl_adapter *a = d->loaded[i];
        if (!a->lexicon || (!p->lexicon_path && !strcmp(a->lexicon, carrier->lexicon))) continue; /* nothing new */
        hl_word_rows_report rep;
        if ((s = hl_word_rows_compose_carried(a, d->base, d->lex, &rep, err)) != HL_OK) {
            hl_error_prefix(err, "%s", d->paths[i]);
            break;
        }
        d->word_rows.n_fit += rep.n_fit;
        d->word_rows.n_new += rep.n_new;
        d->word_rows.n_skipped += rep.n_skipped;
    }
    if (s == HL_OK) {
        hl_context_params cp = {.n_ctx = 0, .n_threads = p->n_threads > 0 ? p->n_threads : 1};
        s = hl_context_init(hl_lexicon_model(d->lex), &cp, &d->ctx, err);
    }
    if (s != HL_OK) {
        hl_scene_decoder_free(d);
        return s;
    }
    *out = d;
    return HL_OK;
}

typedef struct {
    char *buf;
    size_t len, cap;
    const hl_tokenizer *tok;
    int32_t prev;
    int32_t eos, bos;
    int failed;
} collector;

static int collect(void *user, int32_t id) {
    collector *c = user;
    if (id == c->eos || id == c->bos || hl_tokenizer_is_eog(c->tok, id)) return 1;
    char piece[HL_LEXEME_MAX_BYTES * 2 + 64];
    size_t n = hl_tokenizer_decode(c->tok, c->prev, id, piece, sizeof piece);
    c->prev = id;
    if (c->len + n + 1 > c->cap) {
        size_t nc = (c->len + n + 1) * 2;
        char *nb = hl_realloc(c->buf, nc);
        if (!nb) {
            c->failed = 1;
            return 1;
        }
        c->buf = nb;
        c->cap = nc;
    }
    memcpy(c->buf + c->len, piece, n);
    c->len += n;
    c->buf[c->len] = 0;
    return 0;
}

hl_status hl_scene_decode(hl_scene_decoder *d, const char *scene, const float *vectors, int32_t n_vectors, int form,
                          int reg, const hl_sampler_params *sp, int32_t max_tokens, char **text, hl_error *err) {
    *text = NULL;
    if (scene && !d->allow_text) {
        hl_status cs = hl_lexicon_check_scene(d->lex, scene, err);
        if (cs != HL_OK && err) {
            size_t l = strlen(err->msg);
            snprintf(err->msg + l, sizeof err->msg - l,
                     " (plain text in a scene needs --scene-text; new scenes: --lexicon EXTRA.jsonl)");
        }
        if (cs != HL_OK) return cs;
    }
    const hl_adapter *set[MAX_LOADED * 2];
    float scales[MAX_LOADED * 2];
    int32_t n = 0;
    for (int32_t i = 0; i < d->n_fixed; i++) {
        set[n] = d->loaded[d->fixed[i]];
        scales[n++] = d->fixed_scales[i];
    }
    hl_status s = HL_OK;
    if (d->bundle) {
        const char *const *paths;
        const float *bscales;
        int32_t nb, idx;
        if ((s = hl_bundle_lookup(d->bundle, form, reg, &paths, &bscales, &nb, err))) return s;
        for (int32_t k = 0; k < nb && n < 64; k++) {
            if ((s = load_adapter(d, paths[k], &idx, err))) return s;
            set[n] = d->loaded[idx];
            scales[n++] = bscales[k];
        }
    }
    if ((s = hl_context_set_adapters(d->ctx, set, scales, n, err))) return s;
    if ((s = hl_context_set_scene_vectors(d->ctx, vectors, scene ? 0 : n_vectors, err))) return s;
    int32_t *ids = NULL;
    size_t np = 0;
    if ((s = hl_lexicon_scene_prompt(d->lex, scene, n_vectors, form, reg, &ids, &np, err))) return s;
    const hl_model *view = hl_lexicon_model(d->lex);
    hl_sampler *smp = NULL;
    hl_sampler_params greedy = hl_sampler_default_params();
    if ((s = hl_sampler_init(sp ? sp : &greedy, view->cfg.vocab_size, &smp, err))) {
        hl_free(ids);
        return s;
    }
    const hl_tokenizer *tok = hl_lexicon_tokenizer(d->lex);
    collector c = {.tok = tok, .bos = hl_tokenizer_bos(tok), .eos = hl_tokenizer_eos(tok)};
    /* The first output token is decoded as if after BOS, dropping its leading space. */
    c.prev = c.bos;
    int32_t room = hl_context_n_ctx(d->ctx) - (int32_t)np;
    hl_generate_params gp = {.n_predict = max_tokens < room ? max_tokens : room, .stop_at_eos = 1};
    int32_t produced = 0;
    if (gp.n_predict <= 0) s = hl_fail(err, HL_ERR_LIMIT, "the scene prompt fills the whole context");
    else s = hl_generate(d->ctx, smp, ids, (int32_t)np, &gp, collect, &c, NULL, &produced, err);
    hl_sampler_free(smp);
    hl_free(ids);
    hl_context_set_scene_vectors(d->ctx, NULL, 0, NULL);
    if (s == HL_OK && c.failed) s = hl_fail(err, HL_ERR_NOMEM, "out of memory");
    if (s == HL_OK && !c.buf) {
        c.buf = hl_strdup("");
        if (!c.buf) s = hl_fail(err, HL_ERR_NOMEM, "out of memory");
    }
    if (s != HL_OK) {
        hl_free(c.buf);
        return s;
    }
    *text = c.buf;
    return HL_OK;
}
