/* checkpoint.h: resumable training state in one file: every trainable
 * tensor (LoRA A/B, or all model weights when pretraining), the AdamW
 * moments and step, the data cursor, the run's RNG state and a description
 * of the run's settings.
 *
 * The file is a GGUF (general.type = "hyperlora.checkpoint") so it goes
 * through the same validated reader as every model; it carries a format
 * version and an FNV-1a-64 checksum over every tensor byte and state field,
 * checked on load. It is written crash-safe (temp file, fsync, rename,
 * directory fsync): a killed process leaves the previous checkpoint intact.
 *
 * Resuming rebuilds the trainer exactly as the run started it (same
 * settings, same seed), then loads every tensor by name into it. */
#ifndef HL_TRAIN_CHECKPOINT_H
#define HL_TRAIN_CHECKPOINT_H
#include "train/dataset.h"
#include "train/optim.h"
#include "train/trainer.h"
#include "util/rng.h"

#define HL_CHECKPOINT_VERSION 2

typedef struct hl_checkpoint_state {
    int64_t step;            /* optimizer steps completed */
    int64_t tokens;          /* tokens processed so far */
    hl_data_cursor cursor;   /* next batch */
    hl_rng rng;              /* the run's RNG */
    uint64_t base_fingerprint;
    const char *config;      /* settings that must match to resume (NUL-terminated) */
} hl_checkpoint_state;

hl_status hl_checkpoint_save(const char *path, const hl_trainer *tr, const hl_adamw *opt,
                             const hl_checkpoint_state *st, hl_error *err);
/* Fills tr's parameters and opt's moments (both already initialised for the
 * same settings) from path; st receives the state, *config_out the saved
 * settings (hl_malloc'd) for the caller to compare. */
hl_status hl_checkpoint_load(const char *path, hl_trainer *tr, hl_adamw *opt, hl_checkpoint_state *st,
                             char **config_out, hl_error *err);
#endif
