/* engine.h: a thread-safe serving core over the scheduler: one base model,
 * named adapters loaded and unloaded at run time, and jobs (text
 * completions and scene decodes) that any thread submits and reads while one
 * engine thread advances them all together (infer/scheduler.h).
 *
 * A job's tokens are the ones it gets alone (hyperlora generate / decode
 * with the same settings), whatever else runs beside it and at any thread
 * count.
 *
 * Adapters are named; a job holds a reference to each adapter it uses, so
 * unloading one removes its name at once but frees it only when the last
 * job using it ends. Each adapter has a global scale (0 when loaded), the
 * set a job uses when it names none (llama.cpp's /lora-adapters). A scene
 * job reads the lexicon carried by the first of its adapters that carries
 * one (with the engine's extra lexicon file added after it), else the
 * engine's own lexicon file; each is composed once and cached. With a
 * decoder bundle, a scene job that names no adapters takes the bundle's
 * entry for its (form, register), as `decode --bundle` does.
 *
 * Limits: adapters loaded (max_adapters; with evict, loading one more
 * unloads the least recently used idle one), running jobs (max_seqs), the
 * KV cache of all running jobs (kv_cap_bytes): past them submit fails with
 * HL_ERR_LIMIT and nothing changes. A prompt longer than the context, or
 * other bad input, fails with HL_ERR_INVALID_ARG; an unknown adapter name
 * with HL_ERR_NOT_FOUND. */
#ifndef HL_INFER_ENGINE_H
#define HL_INFER_ENGINE_H
#include <stddef.h>
#include "hyperlora.h"

typedef struct hl_engine hl_engine;
typedef struct hl_job hl_job;

#define HL_ENGINE_NAME_MAX 128

typedef struct hl_engine_params {
    const char *model_path, *tokenizer_path;
    const char *lexicon_path;  /* optional: scenes declared beside the adapters' lexicons */
    const char *compose;       /* with lexicon_path and no carrier: the composition rule (NULL: the file's) */
    const char *bundle_path;   /* optional decoder bundle (hyperlexeme/bundle.h): the adapters of scene jobs that
                                * name none, per (form, register); its adapters stay loaded, unnamed */
    int32_t n_threads;         /* scheduler workers */
    int32_t max_seqs;          /* running jobs at most */
    int32_t max_adapters;      /* loaded adapters at most */
    size_t kv_cap_bytes;       /* 0 = no cap */
    int force;                 /* adapters made for another base */
    int separate;              /* each job its own forward pass (no shared base products; for comparison) */
    int32_t max_prompt_rows;   /* prompt tokens one step takes at most (hl_sched_params); 0 = no bound */
    int no_word_rows;          /* keep the adapters' trained output rows for words that are parts only of
                                * lexicon_path's scenes (default: compose them, hyperlexeme/word_rows.h) */
    int evict;                 /* loading past max_adapters unloads the least recently used adapter that no
                                * job holds (HL_ERR_LIMIT still when every one is in use) */
} hl_engine_params;

hl_status hl_engine_init(const hl_engine_params *p, hl_engine **out, hl_error *err);
/* Stops the engine thread and frees everything; every job must have been released. */
void hl_engine_free(hl_engine *e);
const hl_model *hl_engine_base(const hl_engine *e);
const char *hl_engine_model_name(const hl_engine *e); /* the base file's name without directories */
/* The weight layout the engine's contexts run on ("packed" or "rows"): outputs are byte-identical
 * within one layout and build (README: weight layouts). */
const char *hl_engine_weight_layout(const hl_engine *e);

/* name: 1..HL_ENGINE_NAME_MAX-1 bytes of [A-Za-z0-9._-], unique among loaded adapters. */
hl_status hl_engine_adapter_load(hl_engine *e, const char *name, const char *path, hl_error *err);
hl_status hl_engine_adapter_unload(hl_engine *e, const char *name, hl_error *err);
/* Sets the global scale of the adapter with that id (HL_ERR_NOT_FOUND if none). */
hl_status hl_engine_adapter_set_scale(hl_engine *e, int32_t id, float scale, hl_error *err);

typedef struct hl_engine_adapter_info {
    int32_t id;                    /* stable while loaded */
    char name[HL_ENGINE_NAME_MAX];
    char path[1024];
    float scale;                   /* global scale */
    int has_lexicon;
    int32_t new_word_rows;         /* words of the engine's extra lexicon given composed output rows */
    int32_t jobs;                  /* jobs using it now */
    uint64_t last_used;            /* engine clock of its last job (0: none yet); evict takes the lowest */
} hl_engine_adapter_info;
/* Copies up to cap entries (in load order) into out; returns how many are loaded. */
int32_t hl_engine_adapters(hl_engine *e, hl_engine_adapter_info *out, int32_t cap);

/* Calls fn with the lexicon a scene job naming the adapter `adapter` would
 * read (NULL: the first loaded adapter that carries one, then the bundle's,
 * then the engine's own --lexicon), and the base model. fn runs under the
 * engine's lock: it must be quick and must not call the engine. */
typedef void (*hl_engine_lexicon_fn)(void *user, const hl_lexicon *lex, const hl_model *base);
hl_status hl_engine_with_lexicon(hl_engine *e, const char *adapter, hl_engine_lexicon_fn fn, void *user,
                                 hl_error *err);

typedef enum { HL_JOB_TEXT = 0, HL_JOB_SCENE, HL_JOB_KIND_COUNT } hl_job_kind;

typedef struct hl_job_adapter {
    const char *name; /* or NULL: by id */
    int32_t id;
    float scale;
} hl_job_adapter;

#define HL_JOB_MAX_STOP 4

typedef struct hl_job_desc {
    hl_job_kind kind;
    const char *prompt;               /* TEXT: UTF-8, BOS is added; or NULL with prompt_ids */
    const int32_t *prompt_ids;        /* TEXT: the prompt as token ids of the base (BOS included where
                                       * wanted; a chat template's output), copied */
    int32_t n_prompt_ids;
    const char *scene;                /* SCENE: lexemes separated by spaces; or NULL with vectors */
    const float *scene_vectors;       /* SCENE: (n_vectors, C) mute-scene inputs */
    int32_t n_vectors;
    int form, reg;                    /* SCENE: hyperlexeme/lexicon.h */
    const hl_job_adapter *adapters;   /* with use_adapters: exactly these; else the global scales (a SCENE
                                       * job: the bundle's entry when the engine has a bundle) */
    int32_t n_adapters;
    int use_adapters;
    int32_t n_predict;                /* tokens at most (cut where the context ends) */
    int stop_at_eos;                  /* stop at EOS and the tokenizer's other end-of-generation tokens */
    int32_t stop_ids[HL_JOB_MAX_STOP]; /* TEXT, with stop_at_eos: more tokens that end the job (a chat
                                       * template's end of turn); they print as nothing */
    int32_t n_stop_ids;
    hl_sampler_params sampler;
} hl_job_desc;

/* Queues a job; *out is the caller's handle (hl_job_release). */
hl_status hl_engine_submit(hl_engine *e, const hl_job_desc *d, hl_job **out, hl_error *err);

typedef enum { HL_JOB_PENDING = 0, HL_JOB_RUNNING, HL_JOB_DONE_EOS, HL_JOB_DONE_LENGTH, HL_JOB_FAILED,
               HL_JOB_STATE_COUNT } hl_job_state;

/* Waits until the job has more than `have` tokens or has ended, or
 * timeout_ms passes (< 0: no timeout); returns the token count. */
int32_t hl_job_wait(hl_job *j, int32_t have, int timeout_ms);
hl_job_state hl_job_get_state(hl_job *j);
/* The job's failure (HL_OK unless HL_JOB_FAILED): HL_ERR_LIMIT when the KV cap did not leave room. */
hl_status hl_job_status(hl_job *j, hl_error *err);
int32_t hl_job_prompt_tokens(const hl_job *j);
/* Token i (< the count hl_job_wait returned) decoded as its command prints it:
 * TEXT as `generate` (after the prompt; lone control bytes dropped), SCENE as
 * `decode` (EOS and BOS give nothing). Returns the length written (< cap). */
size_t hl_job_piece(const hl_job *j, int32_t i, char *buf, size_t cap);
/* Asks the engine to drop the job at its next step (a client went away). */
void hl_job_cancel(hl_job *j);
/* Gives up the caller's handle; an unfinished job is cancelled. */
void hl_job_release(hl_job *j);

typedef struct hl_engine_stats {
    uint64_t jobs_submitted, jobs_done, jobs_failed, jobs_cancelled, jobs_refused;
    uint64_t prompt_tokens, generated_tokens, steps;
    int32_t pending, running, adapters;
    size_t kv_bytes, kv_cap_bytes;
} hl_engine_stats;
void hl_engine_get_stats(hl_engine *e, hl_engine_stats *st);
#endif
