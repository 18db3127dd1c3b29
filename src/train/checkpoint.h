/* checkpoint.h: resumable training state in one file: the adapter, the AdamW
 * moments, the step, the data cursor, the run's RNG state and a description
 * of the run's settings.
 *
 * The file is a GGUF (general.type = "hyperlora.checkpoint") so it goes
 * through the same validated reader as every model; it carries a format
 * version and an FNV-1a-64 checksum over every tensor byte and state field,
 * checked on load. It is written crash-safe (temp file, fsync, rename,
 * directory fsync): a killed process leaves the previous checkpoint intact. */
#ifndef HL_TRAIN_CHECKPOINT_H
#define HL_TRAIN_CHECKPOINT_H
#include "lora/adapter.h"
#include "train/optim.h"
#include "train/dataset.h"
#include "util/rng.h"

#define HL_CHECKPOINT_VERSION 1

typedef struct hl_checkpoint_state {
    int64_t step;            /* optimizer steps completed */
    int64_t tokens;          /* tokens processed so far */
    hl_data_cursor cursor;   /* next batch */
    hl_rng rng;              /* the run's RNG */
    const char *config;      /* settings that must match to resume (NUL-terminated) */
} hl_checkpoint_state;

hl_status hl_checkpoint_save(const char *path, const hl_adapter *a, const hl_adamw *opt,
                             const hl_checkpoint_state *st, hl_error *err);
/* Loads into a new adapter (shaped for m) and an initialised optimizer whose
 * moments are restored; *config_out is hl_malloc'd. The caller builds the
 * trainer on the adapter, then adopts the optimizer (same parameter order). */
hl_status hl_checkpoint_load(const char *path, const hl_model *m, hl_adapter **adapter, hl_adamw *opt,
                             hl_checkpoint_state *st, char **config_out, hl_error *err);
#endif
