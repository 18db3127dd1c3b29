/* engine.c: the serving core (see engine.h): the adapter registry with
 * references, the job queue, and the engine thread that admits jobs into
 * the scheduler and advances them one token per step. One mutex guards the
 * registry, the queue and every job's shared fields; the scheduler itself is
 * touched only by the engine thread. */
#include "infer/engine.h"
#include "hyperlexeme/bundle.h"
#include "infer/scheduler.h"
#include "lora/adapter.h"
#include "model/model.h"
#include "hyperlexeme/lexicon.h"
#include "hyperlexeme/word_rows.h"
#include "text/tokenizer.h"
#include "util/alloc.h"
#include "util/error.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#define JOB_MAX_ADAPTERS 64

typedef struct entry {
    int32_t id;
    char name[HL_ENGINE_NAME_MAX];
    char *path;
    hl_adapter *a;
    hl_lexicon *lex;    /* the carried lexicon (plus the engine's extra file), built on first use */
    int32_t refs;       /* jobs holding it */
    int32_t new_word_rows; /* composed at load (prepare_entry) */
    int listed;         /* 0 once unloaded: freed when refs reaches 0 */
    float scale;        /* global scale */
    uint64_t last_used; /* e->clock at load or at its last job */
} entry;

_Static_assert(HL_JOB_MAX_STOP == HL_SEQ_MAX_STOP, "a job's stop ids travel to its sequence whole");

struct hl_job {
    hl_engine *e;
    hl_job_kind kind;
    const hl_model *model;     /* base, or the lexicon's view */
    const hl_tokenizer *tok;
    int32_t *prompt;
    int32_t n_prompt, prev0;   /* prev0: the token the first piece follows */
    float *vectors;
    int32_t n_vectors;
    entry *used[JOB_MAX_ADAPTERS];
    float scales[JOB_MAX_ADAPTERS];
    int32_t n_used;
    int32_t n_predict;
    int stop_at_eos;
    int32_t stop_ids[HL_JOB_MAX_STOP];
    int32_t n_stop_ids;
    hl_sampler_params sampler;
    int32_t bos, eos;
    /* shared, under e->mu */
    int32_t *tokens;           /* (n_predict) */
    int32_t n_tokens;
    hl_job_state state;
    hl_error err;
    int cancelled;
    int refs;                  /* the caller's handle and the engine's */
    hl_seq *seq;               /* engine thread only */
    hl_job *next;              /* pending queue */
};

struct hl_engine {
    hl_model *base;
    hl_lexicon *own_lex;       /* from lexicon_path when given */
    hl_bundle *bundle;         /* from bundle_path when given */
    entry **bundled;           /* (n_bundled) the bundle's adapters, one per path, held by the engine */
    int32_t n_bundled;
    char *lexicon_path;
    int no_word_rows;
    char model_name[256];
    hl_weight_layout layout;
    int32_t max_adapters;
    int evict;
    uint64_t clock;            /* ticks at every load and job: adapter recency */
    hl_sched *sched;
    pthread_mutex_t mu;
    pthread_cond_t work;       /* the engine thread waits here */
    pthread_cond_t changed;    /* callers wait here */
    pthread_t thread;
    int thread_started, stopping;
    entry **entries;           /* (max_adapters) listed, in load order */
    int32_t n_entries, next_id;
    hl_job *pending_head, *pending_tail;
    int32_t n_pending, n_running;
    hl_engine_stats st;
};

static void entry_free(entry *en) {
    if (!en) return;
    hl_lexicon_free(en->lex);
    hl_adapter_free(en->a);
    hl_free(en->path);
    hl_free(en);
}

static void entry_unref(entry *en) {
    if (--en->refs == 0 && !en->listed) entry_free(en);
}

static void job_free(hl_job *j) {
    hl_free(j->prompt);
    hl_free(j->vectors);
    hl_free(j->tokens);
    hl_free(j);
}

/* Drops one reference (under mu); the engine's drop also gives the adapters back. */
static void job_unref(hl_job *j, int engine_side) {
    if (engine_side) {
        for (int32_t i = 0; i < j->n_used; i++) entry_unref(j->used[i]);
        j->n_used = 0;
    }
    if (--j->refs == 0) job_free(j);
}

static int ended(hl_job_state s) { return s >= HL_JOB_DONE_EOS; }

/* The engine's side of a job that stops (under mu). */
static void job_finish(hl_engine *e, hl_job *j, hl_job_state state) {
    j->state = state;
    if (state == HL_JOB_FAILED) e->st.jobs_failed++;
    else if (j->cancelled) e->st.jobs_cancelled++;
    else e->st.jobs_done++;
    job_unref(j, 1);
}

/* Copies new tokens into their jobs and ends the jobs whose sequences stopped (under mu). */
static void harvest(hl_engine *e) {
    for (int32_t i = hl_sched_n_seqs(e->sched) - 1; i >= 0; i--) {
        hl_seq *q = hl_sched_seq(e->sched, i);
        hl_job *j = hl_seq_user(q);
        int32_t n = 0;
        const int32_t *t = hl_seq_tokens(q, &n);
        if (n > j->n_tokens) {
            memcpy(j->tokens + j->n_tokens, t + j->n_tokens, (size_t)(n - j->n_tokens) * sizeof *t);
            e->st.generated_tokens += (uint64_t)(n - j->n_tokens);
            j->n_tokens = n;
        }
        hl_seq_state qs = hl_seq_get_state(q);
        if (qs == HL_SEQ_RUNNING) continue;
        if (qs == HL_SEQ_FAILED) hl_seq_status(q, &j->err);
        hl_sched_remove(e->sched, q);
        e->n_running--;
        job_finish(e, j, qs == HL_SEQ_FAILED ? HL_JOB_FAILED : qs == HL_SEQ_STOP_EOS ? HL_JOB_DONE_EOS
                                                                                      : HL_JOB_DONE_LENGTH);
    }
}

static void *engine_main(void *arg) {
    hl_engine *e = arg;
    pthread_mutex_lock(&e->mu);
    while (!e->stopping) {
        /* Admit what is queued. */
        while (e->pending_head) {
            hl_job *j = e->pending_head;
            e->pending_head = j->next;
            if (!e->pending_head) e->pending_tail = NULL;
            e->n_pending--;
            if (j->cancelled) {
                job_finish(e, j, HL_JOB_DONE_LENGTH);
                continue;
            }
            const hl_adapter *set[JOB_MAX_ADAPTERS];
            for (int32_t i = 0; i < j->n_used; i++) set[i] = j->used[i]->a;
            hl_seq_desc d = {.model = j->model, .adapters = set, .scales = j->scales, .n_adapters = j->n_used,
                             .scene_vectors = j->vectors, .n_scene_vectors = j->n_vectors, .prompt = j->prompt,
                             .n_prompt = j->n_prompt, .n_predict = j->n_predict, .stop_at_eos = j->stop_at_eos,
                             .n_stop_ids = j->n_stop_ids, .sampler = j->sampler};
            memcpy(d.stop_ids, j->stop_ids, sizeof d.stop_ids);
            hl_error err = {0};
            pthread_mutex_unlock(&e->mu);
            hl_status s = hl_sched_add(e->sched, &d, j, &j->seq, &err);
            pthread_mutex_lock(&e->mu);
            if (s != HL_OK) {
                j->err = err;
                j->err.status = s;
                e->st.jobs_refused++;
                job_finish(e, j, HL_JOB_FAILED);
            } else {
                j->state = HL_JOB_RUNNING;
                e->n_running++;
            }
        }
        /* Drop the cancelled ones. */
        for (int32_t i = hl_sched_n_seqs(e->sched) - 1; i >= 0; i--) {
            hl_seq *q = hl_sched_seq(e->sched, i);
            hl_job *j = hl_seq_user(q);
            if (!j->cancelled) continue;
            hl_sched_remove(e->sched, q);
            e->n_running--;
            job_finish(e, j, HL_JOB_DONE_LENGTH);
        }
        harvest(e); /* sequences that ended without a step (nothing to generate) */
        e->st.kv_bytes = hl_sched_kv_bytes(e->sched);
        pthread_cond_broadcast(&e->changed);
        if (hl_sched_n_running(e->sched) == 0) {
            if (!e->pending_head && !e->stopping) pthread_cond_wait(&e->work, &e->mu);
            continue;
        }
        pthread_mutex_unlock(&e->mu);
        hl_sched_step(e->sched, NULL);
        pthread_mutex_lock(&e->mu);
        e->st.steps++;
        harvest(e);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

void hl_engine_free(hl_engine *e) {
    if (!e) return;
    if (e->thread_started) {
        pthread_mutex_lock(&e->mu);
        e->stopping = 1;
        pthread_cond_broadcast(&e->work);
        pthread_mutex_unlock(&e->mu);
        pthread_join(e->thread, NULL);
    }
    /* Jobs still held by the engine (their callers have released them). */
    for (int32_t i = 0; e->sched && i < hl_sched_n_seqs(e->sched); i++) job_free(hl_seq_user(hl_sched_seq(e->sched, i)));
    for (hl_job *j = e->pending_head, *nx; j; j = nx) {
        nx = j->next;
        job_free(j);
    }
    hl_sched_free(e->sched);
    for (int32_t i = 0; i < e->n_entries; i++) entry_free(e->entries[i]);
    hl_free(e->entries);
    for (int32_t i = 0; i < e->n_bundled; i++) entry_free(e->bundled[i]);
    hl_free(e->bundled);
    hl_bundle_free(e->bundle);
    hl_lexicon_free(e->own_lex);
    hl_free(e->lexicon_path);
    hl_model_free(e->base);
    if (e->thread_started) {
        pthread_mutex_destroy(&e->mu);
        pthread_cond_destroy(&e->work);
        pthread_cond_destroy(&e->changed);
    }
    hl_free(e);
}

static hl_status prepare_entry(hl_engine *e, entry *en, hl_error *err);

/* The bundle and every adapter it names, each path loaded once. */
static hl_status load_bundle(hl_engine *e, const char *path, int force, hl_error *err) {
    hl_status s = hl_bundle_load(path, &e->bundle, err);
    int32_t cap = HL_BUNDLE_MAX_ENTRIES * HL_BUNDLE_MAX_ADAPTERS;
    if (s == HL_OK && !(e->bundled = hl_calloc((size_t)cap, sizeof *e->bundled)))
        s = hl_fail(err, HL_ERR_NOMEM, "out of memory");
    for (int f = 0; s == HL_OK && f < HL_FORM_COUNT; f++)
        for (int r = 0; s == HL_OK && r < HL_REGISTER_COUNT; r++) {
            const char *const *paths;
            const float *scales;
            int32_t n;
            if (hl_bundle_lookup(e->bundle, f, r, &paths, &scales, &n, NULL) != HL_OK) continue;
            for (int32_t k = 0; s == HL_OK && k < n; k++) {
                int32_t i = 0;
                while (i < e->n_bundled && strcmp(e->bundled[i]->path, paths[k])) i++;
                if (i < e->n_bundled || e->n_bundled == cap) continue;
                entry *en = hl_calloc(1, sizeof *en);
                if (!en || !(en->path = hl_strdup(paths[k]))) {
                    entry_free(en);
                    s = hl_fail(err, HL_ERR_NOMEM, "out of memory");
                    break;
                }
                snprintf(en->name, sizeof en->name, "bundle");
                en->refs = 1; /* the engine's: never freed before the engine */
                en->id = -1;
                if ((s = hl_adapter_load(paths[k], e->base, force, &en->a, err)) != HL_OK ||
                    (s = prepare_entry(e, en, err)) != HL_OK) {
                    hl_error_prefix(err, "bundle %s", path);
                    entry_free(en);
                    break;
                }
                e->bundled[e->n_bundled++] = en;
            }
        }
    return s;
}

hl_status hl_engine_init(const hl_engine_params *p, hl_engine **out, hl_error *err) {
    *out = NULL;
    if (p->max_adapters < 0 || p->max_adapters > 4096)
        return hl_fail(err, HL_ERR_INVALID_ARG, "max adapters must be in 0..4096 (got %d)", p->max_adapters);
    hl_engine *e = hl_calloc(1, sizeof *e);
    if (!e) return hl_fail(err, HL_ERR_NOMEM, "out of memory");
    e->max_adapters = p->max_adapters;
    e->evict = p->evict;
    const char *slash = strrchr(p->model_path, '/');
    snprintf(e->model_name, sizeof e->model_name, "%s", slash ? slash + 1 : p->model_path);
    e->no_word_rows = p->no_word_rows;
    hl_status s = hl_model_load(p->model_path, p->tokenizer_path, &e->base, err);
    if (s == HL_OK && p->lexicon_path) {
        if (!(e->lexicon_path = hl_strdup(p->lexicon_path))) s = hl_fail(err, HL_ERR_NOMEM, "out of memory");
        else s = hl_lexicon_load_compose(p->lexicon_path, e->base, p->compose, &e->own_lex, err);
    }
    if (s == HL_OK && !(e->entries = hl_calloc((size_t)(p->max_adapters ? p->max_adapters : 1), sizeof *e->entries)))
        s = hl_fail(err, HL_ERR_NOMEM, "out of memory");
    if (s == HL_OK && p->bundle_path) s = load_bundle(e, p->bundle_path, p->force, err);
    if (s == HL_OK) {
        /* A first context resolves the layout (and packs the weights before any request waits on it). */
        hl_context_params cp = {.n_ctx = 1, .n_threads = p->n_threads};
        hl_context *ctx = NULL;
        s = hl_context_init(e->base, &cp, &ctx, err);
        if (s == HL_OK) e->layout = hl_context_weight_layout(ctx);
        hl_context_free(ctx);
    }
    hl_sched_params sp = {.n_threads = p->n_threads, .max_seqs = p->max_seqs, .kv_cap_bytes = p->kv_cap_bytes,
                          .shared_base = !p->separate, .max_prompt_rows = p->max_prompt_rows};
    if (s == HL_OK) s = hl_sched_init(&sp, &e->sched, err);
    if (s == HL_OK) {
        pthread_mutex_init(&e->mu, NULL);
        pthread_cond_init(&e->work, NULL);
        pthread_cond_init(&e->changed, NULL);
        e->st.kv_cap_bytes = p->kv_cap_bytes;
        if (pthread_create(&e->thread, NULL, engine_main, e) != 0) {
            pthread_mutex_destroy(&e->mu);
            pthread_cond_destroy(&e->work);
            pthread_cond_destroy(&e->changed);
            s = hl_fail(err, HL_ERR_NOMEM, "cannot start the engine thread");
        } else e->thread_started = 1;
    }
    if (s != HL_OK) {
        hl_engine_free(e);
        return s;
    }
    *out = e;
    return HL_OK;
}

const hl_model *hl_engine_base(const hl_engine *e) { return e->base; }
const char *hl_engine_model_name(const hl_engine *e) { return e->model_name; }
const char *hl_engine_weight_layout(const hl_engine *e) { return e->layout == HL_WEIGHTS_PACKED ? "packed" : "rows"; }

static int name_ok(const char *name) {
    size_t n = strlen(name);
    if (n == 0 || n >= HL_ENGINE_NAME_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return 0;
    }
    return 1;
}

static entry *find_name(hl_engine *e, const char *name) {
    for (int32_t i = 0; i < e->n_entries; i++)
        if (!strcmp(e->entries[i]->name, name)) return e->entries[i];
    return NULL;
}

static entry *find_id(hl_engine *e, int32_t id) {
    for (int32_t i = 0; i < e->n_entries; i++)
        if (e->entries[i]->id == id) return e->entries[i];
    return NULL;
}

/* Removes listed entry i (under mu); freed now or by its last job. */
static void unlist(hl_engine *e, int32_t i) {
    entry *en = e->entries[i];
    memmove(&e->entries[i], &e->entries[i + 1], (size_t)(e->n_entries - i - 1) * sizeof *e->entries);
    e->n_entries--;
    e->st.adapters = e->n_entries;
    en->listed = 0;
    if (en->refs == 0) entry_free(en);
}

/* Room for one more adapter (under mu): at the cap, with evict, the least
 * recently used adapter no job holds is unloaded. */
static hl_status make_room(hl_engine *e, hl_error *err) {
    if (e->n_entries < e->max_adapters) return HL_OK;
    int32_t victim = -1;
    for (int32_t i = 0; e->evict && i < e->n_entries; i++)
        if (e->entries[i]->refs == 0 && (victim < 0 || e->entries[i]->last_used < e->entries[victim]->last_used))
            victim = i;
    if (victim < 0)
        return hl_fail(err, HL_ERR_LIMIT, "%d adapters are loaded, the most allowed (unload one first%s)", e->n_entries,
                       e->evict ? "; every one is in use" : "");
    unlist(e, victim);
    return HL_OK;
}

hl_status hl_engine_adapter_load(hl_engine *e, const char *name, const char *path, hl_error *err) {
    if (!name_ok(name))
        return hl_fail(err, HL_ERR_INVALID_ARG, "adapter name must be 1..%d characters of A-Z a-z 0-9 . _ -",
                       HL_ENGINE_NAME_MAX - 1);
    if (!strcmp(name, e->model_name))
        return hl_fail(err, HL_ERR_INVALID_ARG, "adapter name \"%s\" is the base model's name", name);
    pthread_mutex_lock(&e->mu);
    hl_status s = HL_OK;
    if (find_name(e, name)) s = hl_fail(err, HL_ERR_INVALID_ARG, "an adapter named \"%s\" is already loaded", name);
    else if (e->n_entries >= e->max_adapters && !e->evict)
        s = hl_fail(err, HL_ERR_LIMIT, "%d adapters are loaded, the most allowed (unload one first)", e->n_entries);
    pthread_mutex_unlock(&e->mu);
    if (s != HL_OK) return s;
    entry *en = hl_calloc(1, sizeof *en);
    if (!en || !(en->path = hl_strdup(path))) {
        entry_free(en);
        return hl_fail(err, HL_ERR_NOMEM, "out of memory");
    }
    snprintf(en->name, sizeof en->name, "%s", name);
    en->listed = 1;
    if ((s = hl_adapter_load(path, e->base, 0, &en->a, err)) != HL_OK || (s = prepare_entry(e, en, err)) != HL_OK) {
        entry_free(en);
        return s;
    }
    pthread_mutex_lock(&e->mu);
    /* Checked again: another load may have raced this one. */
    if (find_name(e, name)) s = hl_fail(err, HL_ERR_INVALID_ARG, "an adapter named \"%s\" is already loaded", name);
    else if (e->max_adapters == 0) s = hl_fail(err, HL_ERR_LIMIT, "no adapters may be loaded (max adapters 0)");
    else s = make_room(e, err);
    if (s == HL_OK) {
        en->id = e->next_id++;
        en->last_used = ++e->clock;
        e->entries[e->n_entries++] = en;
        e->st.adapters = e->n_entries;
    }
    pthread_mutex_unlock(&e->mu);
    if (s != HL_OK) entry_free(en);
    return s;
}

hl_status hl_engine_adapter_unload(hl_engine *e, const char *name, hl_error *err) {
    pthread_mutex_lock(&e->mu);
    int32_t i = 0;
    while (i < e->n_entries && strcmp(e->entries[i]->name, name)) i++;
    if (i == e->n_entries) {
        pthread_mutex_unlock(&e->mu);
        return hl_fail(err, HL_ERR_NOT_FOUND, "no adapter named \"%s\" is loaded", name);
    }
    unlist(e, i); /* freed now, or by the last job using it */
    pthread_mutex_unlock(&e->mu);
    return HL_OK;
}

hl_status hl_engine_adapter_set_scale(hl_engine *e, int32_t id, float scale, hl_error *err) {
    if (!isfinite(scale)) return hl_fail(err, HL_ERR_INVALID_ARG, "adapter scale is not finite");
    pthread_mutex_lock(&e->mu);
    entry *en = find_id(e, id);
    if (en) en->scale = scale;
    pthread_mutex_unlock(&e->mu);
    return en ? HL_OK : hl_fail(err, HL_ERR_NOT_FOUND, "no adapter with id %d is loaded", id);
}

int32_t hl_engine_adapters(hl_engine *e, hl_engine_adapter_info *out, int32_t cap) {
    pthread_mutex_lock(&e->mu);
    int32_t n = e->n_entries;
    for (int32_t i = 0; i < n && i < cap; i++) {
        const entry *en = e->entries[i];
        hl_engine_adapter_info *o = &out[i];
        o->id = en->id;
        snprintf(o->name, sizeof o->name, "%s", en->name);
        snprintf(o->path, sizeof o->path, "%s", en->path);
        o->scale = en->scale;
        o->has_lexicon = en->a->lexicon != NULL;
        o->new_word_rows = en->new_word_rows;
        o->jobs = en->refs;
        o->last_used = en->last_used;
    }
    pthread_mutex_unlock(&e->mu);
    return n;
}

/* The lexicon a scene job reads (under mu): the first carrier's, else the engine's own. */
static hl_status entry_lexicon(hl_engine *e, entry *en, const hl_lexicon **out, hl_error *err);
static hl_status job_lexicon(hl_engine *e, hl_job *j, const hl_lexicon **out, hl_error *err) {
    for (int32_t i = 0; i < j->n_used; i++) {
        hl_status s = entry_lexicon(e, j->used[i], out, err);
        if (s != HL_OK || *out) return s;
    }
    if (e->own_lex) {
        *out = e->own_lex;
        return HL_OK;
    }
    return hl_fail(err, HL_ERR_INVALID_ARG,
                   "no lexicon: name a decoder adapter that carries one, or start the server with --lexicon");
}

/* Before an adapter that carries a lexicon is visible to jobs: with the
 * engine's extra lexicon, builds its combined lexicon now and composes the
 * output rows of the words that are parts only of the extra scenes
 * (hyperlexeme/word_rows.h), so no running job ever sees its rows change. A
 * lexicon that does not combine is left to entry_lexicon, which reports it
 * to the first scene job as before. */
static hl_status prepare_entry(hl_engine *e, entry *en, hl_error *err) {
    if (!e->lexicon_path || !en->a->lexicon || e->no_word_rows) return HL_OK;
    hl_error quiet = {0};
    if (hl_lexicon_from_adapter_extra(en->a, e->base, e->lexicon_path, &en->lex, &quiet) != HL_OK) {
        hl_lexicon_free(en->lex);
        en->lex = NULL;
        return HL_OK;
    }
    hl_word_rows_report rep;
    hl_status s = hl_word_rows_compose_carried(en->a, e->base, en->lex, &rep, err);
    if (s == HL_OK) en->new_word_rows = rep.n_new;
    else hl_error_prefix(err, "%s", en->path);
    return s;
}

/* The carried lexicon of en (under mu), built on first use; NULL when it carries none. */
static hl_status entry_lexicon(hl_engine *e, entry *en, const hl_lexicon **out, hl_error *err) {
    *out = NULL;
    if (!en->a->lexicon) return HL_OK;
    if (!en->lex) {
        hl_status s = e->lexicon_path ? hl_lexicon_from_adapter_extra(en->a, e->base, e->lexicon_path, &en->lex, err)
                                      : hl_lexicon_from_adapter(en->a, e->base, &en->lex, err);
        if (s != HL_OK) return s;
    }
    *out = en->lex;
    return HL_OK;
}

hl_status hl_engine_with_lexicon(hl_engine *e, const char *adapter, hl_engine_lexicon_fn fn, void *user,
                                 hl_error *err) {
    pthread_mutex_lock(&e->mu);
    const hl_lexicon *lex = NULL;
    hl_status s = HL_OK;
    if (adapter) {
        entry *en = find_name(e, adapter);
        if (!en) s = hl_fail(err, HL_ERR_NOT_FOUND, "no adapter named \"%.128s\" is loaded", adapter);
        else s = entry_lexicon(e, en, &lex, err);
    }
    for (int32_t i = 0; !adapter && s == HL_OK && !lex && i < e->n_entries; i++)
        s = entry_lexicon(e, e->entries[i], &lex, err);
    for (int32_t i = 0; !adapter && s == HL_OK && !lex && i < e->n_bundled; i++)
        s = entry_lexicon(e, e->bundled[i], &lex, err);
    if (s == HL_OK && !lex) lex = e->own_lex;
    if (s == HL_OK && !lex)
        s = hl_fail(err, HL_ERR_INVALID_ARG,
                    "no lexicon: load a decoder adapter that carries one, or start the server with --lexicon");
    if (s == HL_OK) fn(user, lex, e->base);
    pthread_mutex_unlock(&e->mu);
    return s;
}

/* The request's adapters (under mu), each with a reference taken. */
static hl_status job_adapters(hl_engine *e, hl_job *j, const hl_job_desc *d, hl_error *err) {
    if (d->use_adapters) {
        if (d->n_adapters < 0 || d->n_adapters > JOB_MAX_ADAPTERS)
            return hl_fail(err, HL_ERR_INVALID_ARG, "at most %d adapters per request (got %d)", JOB_MAX_ADAPTERS,
                           d->n_adapters);
        for (int32_t i = 0; i < d->n_adapters; i++) {
            const hl_job_adapter *ja = &d->adapters[i];
            entry *en = ja->name ? find_name(e, ja->name) : find_id(e, ja->id);
            if (!en) {
                if (ja->name) return hl_fail(err, HL_ERR_NOT_FOUND, "no adapter named \"%.128s\" is loaded", ja->name);
                return hl_fail(err, HL_ERR_NOT_FOUND, "no adapter with id %d is loaded", ja->id);
            }
            if (!isfinite(ja->scale)) return hl_fail(err, HL_ERR_INVALID_ARG, "adapter %s: scale is not finite", en->name);
            en->refs++;
            en->last_used = ++e->clock;
            j->used[j->n_used] = en;
            j->scales[j->n_used++] = ja->scale;
        }
        return HL_OK;
    }
    if (d->kind == HL_JOB_SCENE && e->bundle) {
        const char *const *paths;
        const float *scales;
        int32_t n;
        hl_status s = hl_bundle_lookup(e->bundle, d->form, d->reg, &paths, &scales, &n, err);
        if (s != HL_OK) return s;
        for (int32_t k = 0; k < n && j->n_used < JOB_MAX_ADAPTERS; k++)
            for (int32_t i = 0; i < e->n_bundled; i++)
                if (!strcmp(e->bundled[i]->path, paths[k])) {
                    e->bundled[i]->refs++;
                    j->used[j->n_used] = e->bundled[i];
                    j->scales[j->n_used++] = scales[k];
                    break;
                }
        return HL_OK;
    }
    for (int32_t i = 0; i < e->n_entries && j->n_used < JOB_MAX_ADAPTERS; i++) {
        entry *en = e->entries[i];
        if (en->scale == 0.0f) continue;
        en->refs++;
        en->last_used = ++e->clock;
        j->used[j->n_used] = en;
        j->scales[j->n_used++] = en->scale;
    }
    return HL_OK;
}

hl_status hl_engine_submit(hl_engine *e, const hl_job_desc *d, hl_job **out, hl_error *err) {
    *out = NULL;
    if (d->n_predict < 0) return hl_fail(err, HL_ERR_INVALID_ARG, "negative token count");
    if (d->kind != HL_JOB_TEXT && d->kind != HL_JOB_SCENE) return hl_fail(err, HL_ERR_INVALID_ARG, "unknown job kind");
    if (d->kind == HL_JOB_TEXT && !d->prompt == !(d->prompt_ids && d->n_prompt_ids > 0))
        return hl_fail(err, HL_ERR_INVALID_ARG, "a text job needs exactly one of a prompt or prompt ids");
    if (d->n_stop_ids < 0 || d->n_stop_ids > HL_JOB_MAX_STOP || (d->n_stop_ids && d->kind != HL_JOB_TEXT))
        return hl_fail(err, HL_ERR_INVALID_ARG, "at most %d stop tokens, for text jobs only", HL_JOB_MAX_STOP);
    if (d->kind == HL_JOB_SCENE && !d->scene == !(d->scene_vectors && d->n_vectors > 0))
        return hl_fail(err, HL_ERR_INVALID_ARG, "a scene job needs exactly one of a scene or scene vectors");
    if (d->kind == HL_JOB_SCENE &&
        (d->form < 0 || d->form >= HL_FORM_COUNT || d->reg < 0 || d->reg >= HL_REGISTER_COUNT))
        return hl_fail(err, HL_ERR_INVALID_ARG, "unknown form or register");
    hl_job *j = hl_calloc(1, sizeof *j);
    if (!j) return hl_fail(err, HL_ERR_NOMEM, "out of memory");
    j->e = e;
    j->kind = d->kind;
    j->stop_at_eos = d->stop_at_eos;
    j->n_stop_ids = d->n_stop_ids;
    memcpy(j->stop_ids, d->stop_ids, sizeof j->stop_ids);
    j->sampler = d->sampler;
    j->refs = 2;
    const hl_lexicon *lex = NULL;
    pthread_mutex_lock(&e->mu);
    hl_status s = job_adapters(e, j, d, err);
    if (s == HL_OK && d->kind == HL_JOB_SCENE) s = job_lexicon(e, j, &lex, err);
    pthread_mutex_unlock(&e->mu);
    /* The references taken keep the adapters and their lexicons alive from here on. */
    size_t np = 0;
    if (s == HL_OK && d->kind == HL_JOB_TEXT) {
        j->model = e->base;
        j->tok = hl_model_get_tokenizer(e->base);
        if (d->prompt) s = hl_tokenizer_encode(j->tok, d->prompt, strlen(d->prompt), 1, 0, &j->prompt, &np, err);
        else if (!(j->prompt = hl_malloc_array((size_t)d->n_prompt_ids, sizeof(int32_t))))
            s = hl_fail(err, HL_ERR_NOMEM, "out of memory");
        else {
            const int32_t V = hl_tokenizer_n_vocab(j->tok);
            np = (size_t)d->n_prompt_ids;
            for (size_t i = 0; i < np && s == HL_OK; i++) {
                if (d->prompt_ids[i] < 0 || d->prompt_ids[i] >= V)
                    s = hl_fail(err, HL_ERR_INVALID_ARG, "prompt id %d is not in the vocabulary", d->prompt_ids[i]);
                j->prompt[i] = d->prompt_ids[i];
            }
        }
        for (int32_t i = 0; s == HL_OK && i < d->n_stop_ids; i++)
            if (d->stop_ids[i] < 0 || d->stop_ids[i] >= hl_tokenizer_n_vocab(j->tok))
                s = hl_fail(err, HL_ERR_INVALID_ARG, "stop id %d is not in the vocabulary", d->stop_ids[i]);
        if (s == HL_OK) j->prev0 = j->prompt[np - 1];
    } else if (s == HL_OK) {
        j->model = hl_lexicon_model(lex);
        j->tok = hl_lexicon_tokenizer(lex);
        const int64_t C = hl_model_get_config(j->model)->dim;
        if (d->scene) s = hl_lexicon_check_scene(lex, d->scene, err);
        else if (d->n_vectors > HL_LEXICON_MAX_PARTS)
            s = hl_fail(err, HL_ERR_INVALID_ARG, "at most %d scene vectors (got %d)", HL_LEXICON_MAX_PARTS,
                        d->n_vectors);
        else if (!(j->vectors = hl_malloc_array((size_t)d->n_vectors * (size_t)C, sizeof(float))))
            s = hl_fail(err, HL_ERR_NOMEM, "out of memory");
        else {
            for (int64_t i = 0; i < (int64_t)d->n_vectors * C; i++) {
                if (!isfinite(d->scene_vectors[i])) {
                    s = hl_fail(err, HL_ERR_INVALID_ARG, "scene vector value %lld is not finite", (long long)i);
                    break;
                }
                j->vectors[i] = d->scene_vectors[i];
            }
            j->n_vectors = d->n_vectors;
        }
        if (s == HL_OK) s = hl_lexicon_scene_prompt(lex, d->scene, d->scene ? 0 : d->n_vectors, d->form, d->reg,
                                                    &j->prompt, &np, err);
        j->prev0 = hl_tokenizer_bos(j->tok);
    }
    if (s == HL_OK) {
        j->n_prompt = (int32_t)np;
        j->bos = hl_tokenizer_bos(j->tok);
        j->eos = hl_tokenizer_eos(j->tok);
        /* The context `generate` and `decode` make by default, and where each stops in it. */
        const int32_t seq_len = hl_model_get_config(j->model)->seq_len;
        const int32_t n_ctx = seq_len < HL_CONTEXT_DEFAULT_MAX ? seq_len : HL_CONTEXT_DEFAULT_MAX;
        int32_t room = d->kind == HL_JOB_TEXT ? n_ctx - j->n_prompt + 1 : n_ctx - j->n_prompt;
        if (j->n_prompt > n_ctx || room <= 0)
            s = hl_fail(err, HL_ERR_INVALID_ARG, "the prompt has %d tokens but the context holds %d", j->n_prompt,
                        n_ctx);
        j->n_predict = d->n_predict < room ? d->n_predict : room;
    }
    if (s == HL_OK && !(j->tokens = hl_malloc_array((size_t)(j->n_predict > 0 ? j->n_predict : 1), sizeof(int32_t))))
        s = hl_fail(err, HL_ERR_NOMEM, "out of memory");
    pthread_mutex_lock(&e->mu);
    if (s != HL_OK) {
        e->st.jobs_refused++;
        for (int32_t i = 0; i < j->n_used; i++) entry_unref(j->used[i]);
        pthread_mutex_unlock(&e->mu);
        job_free(j);
        return s;
    }
    e->st.jobs_submitted++;
    e->st.prompt_tokens += (uint64_t)j->n_prompt;
    if (e->pending_tail) e->pending_tail->next = j;
    else e->pending_head = j;
    e->pending_tail = j;
    e->n_pending++;
    pthread_cond_signal(&e->work);
    pthread_mutex_unlock(&e->mu);
    *out = j;
    return HL_OK;
}

int32_t hl_job_wait(hl_job *j, int32_t have, int timeout_ms) {
    hl_engine *e = j->e;
    struct timespec until;
    if (timeout_ms >= 0) {
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += timeout_ms / 1000;
        until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&e->mu);
    while (j->n_tokens <= have && !ended(j->state)) {
        if (timeout_ms < 0) pthread_cond_wait(&e->changed, &e->mu);
        else if (pthread_cond_timedwait(&e->changed, &e->mu, &until) == ETIMEDOUT) break;
    }
    int32_t n = j->n_tokens;
    pthread_mutex_unlock(&e->mu);
    return n;
}

hl_job_state hl_job_get_state(hl_job *j) {
    pthread_mutex_lock(&j->e->mu);
    hl_job_state s = j->state;
    pthread_mutex_unlock(&j->e->mu);
    return s;
}

hl_status hl_job_status(hl_job *j, hl_error *err) {
    pthread_mutex_lock(&j->e->mu);
    hl_status s = j->state == HL_JOB_FAILED ? j->err.status : HL_OK;
    if (s != HL_OK && err) *err = j->err;
    pthread_mutex_unlock(&j->e->mu);
    return s;
}

int32_t hl_job_prompt_tokens(const hl_job *j) { return j->n_prompt; }

size_t hl_job_piece(const hl_job *j, int32_t i, char *buf, size_t cap) {
    if (i < 0 || i >= j->n_predict || cap == 0) return 0;
    int32_t id = j->tokens[i], prev = i ? j->tokens[i - 1] : j->prev0;
    if (j->kind == HL_JOB_SCENE && (id == j->eos || id == j->bos)) return 0;
    for (int32_t k = 0; k < j->n_stop_ids; k++)
        if (id == j->stop_ids[k]) return 0; /* a chat's end of turn is not part of the reply */
    size_t n = hl_tokenizer_decode(j->tok, prev, id, buf, cap - 1);
    /* As `generate` prints: lone control bytes are dropped; UTF-8 passes. */
    if (j->kind == HL_JOB_TEXT && n == 1 && (unsigned char)buf[0] < 0x20 && !strchr("\n\t\r ", buf[0])) n = 0;
    buf[n] = 0;
    return n;
}

void hl_job_cancel(hl_job *j) {
    pthread_mutex_lock(&j->e->mu);
    if (!ended(j->state)) {
        j->cancelled = 1;
        pthread_cond_signal(&j->e->work);
    }
    pthread_mutex_unlock(&j->e->mu);
}

void hl_job_release(hl_job *j) {
    if (!j) return;
    hl_engine *e = j->e;
    pthread_mutex_lock(&e->mu);
    if (!ended(j->state)) {
        j->cancelled = 1;
        pthread_cond_signal(&e->work);
    }
    job_unref(j, 0);
    pthread_mutex_unlock(&e->mu);
}

void hl_engine_get_stats(hl_engine *e, hl_engine_stats *st) {
    pthread_mutex_lock(&e->mu);
    *st = e->st;
    st->pending = e->n_pending;
    st->running = e->n_running;
    st->adapters = e->n_entries;
    pthread_mutex_unlock(&e->mu);
}
