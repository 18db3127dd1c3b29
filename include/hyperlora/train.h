/* hyperlora/train.h: one training run as a library object.
 *
 * hl_train_run owns everything a run needs between its inputs and its
 * outputs: the trainer (gradients), the AdamW state, the learning-rate
 * schedule, the data cursor, the run's RNG, evaluation on the validation
 * split, the metrics log, checkpoints and resume. LoRA training (the base
 * frozen, an adapter trained) and full-model pretraining (every weight of a
 * model made by hl_model_init_random*) run through the same loop; the mode
 * field picks which.
 *
 * One optimizer step:
 *   1. zero the gradients; for k in 0..accum-1: draw the next batch from the
 *      cursor and add the gradients of loss/accum (dropout masks seeded by
 *      the micro-step step*accum + k);
 *   2. the global gradient norm; a non-finite one fails the step
 *      (HL_ERR_INVALID_ARG, a message starting HL_TRAIN_GRAD_NORM_MSG,
 *      nothing updated); above clip, scale to clip;
 *   3. step += 1; AdamW at the scheduled learning rate of that step;
 *   4. every eval_every steps and at the last step, the mean validation loss;
 *   5. a metrics record (to the log and the metrics callback), then the
 *      progress callback;
 *   6. every checkpoint_every steps and at the last step, a checkpoint.
 * The gradient in 1. is a sum over the step's rows (accum × batch of
 * them, micro-step k's after k-1's): each row's gradient of its counted
 * targets' losses / (accum · counted targets of its micro-batch), added
 * along a fixed binary tree over the rows (see hl_train_comm), so a step's
 * bits depend on neither the thread nor the process count. The step's
 * loss is the mean over its micro-batches of each one's mean loss.
 * A run resumed from a checkpoint replays exactly the batches, dropout
 * masks and updates of an uninterrupted one, so it ends with the same bytes.
 *
 * The library never installs signal handlers: a caller that wants Ctrl-C to
 * checkpoint and stop sets a flag in its own handler and returns it from
 * should_stop.
 *
 * Ownership: the run borrows the model, the adapter and the dataset (they
 * must outlive it) and writes only the trainable tensors (the adapter's A/B,
 * or the model's weights when pretraining). Strings in the config are
 * borrowed for the run's lifetime too. Thread-safety: one run is used by one
 * thread at a time; it starts its own worker threads (n_threads) inside each
 * call and joins them before returning. Separate runs on separate models,
 * adapters and datasets are independent.
 */
#ifndef HYPERLORA_TRAIN_H
#define HYPERLORA_TRAIN_H
#include "hyperlora.h" /* hl_status, hl_model, hl_adapter, hl_dataset (training data) */

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hl_train_run hl_train_run;
/* How the message of a step failed by a non-finite gradient norm starts, so
 * a front end can add its own advice (lower the learning rate, clip). */
#define HL_TRAIN_GRAD_NORM_MSG "gradient norm is "
typedef enum hl_train_mode {
    HL_TRAIN_LORA = 0,   /* a LoRA adapter trains on a frozen base */
    HL_TRAIN_FULL = 1    /* pretraining: every model weight trains (the adapter is NULL) */
} hl_train_mode;

/* The learning-rate decay after warmup (values as hl_schedule_kind). */
typedef enum hl_train_schedule {
    HL_TRAIN_SCHED_CONSTANT = 0,
    HL_TRAIN_SCHED_COSINE = 1,
    HL_TRAIN_SCHED_LINEAR = 2
} hl_train_schedule;

/* One metrics record: what the log gets and the callbacks see. */
typedef struct hl_train_record {
    int64_t step;          /* 1-based step just completed; 0: the eval before training */
    int64_t total_steps;
    double loss;           /* train loss of this step (NAN at step 0) */
    double eval_loss;      /* NAN when not evaluated at this step */
    double lr;
    double grad_norm;      /* before clipping */
    double tokens_per_s;   /* loss tokens processed per second, this step (wall clock) */
    double elapsed_s;      /* since hl_train_run_to_end (or the first step) started (wall clock) */
    int64_t tokens;        /* tokens processed so far */
    double fwd_bwd_s;      /* of this step: forward and backward passes, batches drawn (wall clock) */
    double optim_s;        /* of this step: norm, clipping and AdamW (wall clock) */
    double exchange_s;     /* of this step, within fwd_bwd_s: the gradient exchange between ranks,
                            * waiting for the slowest included (wall clock; 0 without comm) */
} hl_train_record;

/* Called with every record written to the metrics log (the step-0 eval too). */
typedef void (*hl_train_metrics_fn)(void *user, const hl_train_record *r);
/* Called after each optimizer step, once its record is logged. */
typedef void (*hl_train_progress_fn)(void *user, const hl_train_record *r);
/* Called before each optimizer step; a status other than HL_OK (with err
 * filled) fails the step, nothing changed. For checks such as "the base
 * file was truncated under us". */
typedef hl_status (*hl_train_check_fn)(void *user, int64_t next_step, hl_error *err);
/* A batch source in place of a dataset (data NULL): fills tokens (B, T+1),
 * mask (B, T; 1 = the target counts) and pos (B, T; each input's position
 * in its document, 0..T-1 for one sequence per row), all the run's buffers,
 * for micro-step step*accum + k. A source that depends only on the
 * micro-step resumes exactly; the checkpoint's data cursor stays unused. */
typedef hl_status (*hl_train_batch_fn)(void *user, uint64_t micro_step, int32_t *tokens, uint8_t *mask, int32_t *pos,
                                       hl_error *err);
/* Polled by hl_train_run_to_end before the first step and after each step;
 * nonzero: checkpoint (when a path is set) and stop. Async-signal-safe
 * flags are the intended source. */
typedef int (*hl_train_stop_fn)(void *user);

/* Data parallelism: the processes ("ranks") of one run, each holding its
 * own hl_train_run over the same model, adapter, data and config, and
 * joined by a communicator the caller supplies (the CLI's is MPI, under
 * -DHL_MPI=ON; docs/distributed.md). Each step's rows are cut into
 * contiguous slices, one per rank. Every rank draws every batch (so the
 * data cursors agree) and computes the gradients of its own rows; the row
 * gradients are summed along one fixed binary tree over the rows of the
 * step, whichever rank computed which subtree. So any number of ranks, and
 * a run with no communicator at all, give the same bits: the same trained
 * weights, checkpoints and metrics (but the wall-clock fields). Validation
 * rows are split the same way. Only rank 0 writes the metrics log and
 * checkpoints; every rank can resume from them. */
typedef struct hl_train_comm {
    int32_t rank;   /* this process, 0..size-1 */
    int32_t size;   /* processes in the run, >= 1 */
    /* Collective, called by every rank in the same order: counts[r] is the
     * number of bytes rank r sends (the same array on every rank); recv
     * (their sum) receives every rank's bytes in rank order, its own
     * included. A failure fails the step on this rank; the transport is
     * expected to end the job rather than leave the other ranks waiting. */
    hl_status (*allgather)(void *user, const void *send, void *recv, const size_t *counts, hl_error *err);
    /* Optional, both or neither: blocking point to point, bytes from this
     * rank to rank `to`, and into buf from rank `from` (the count is known
     * to both sides). With them the gradient goes up the tree itself: each
     * rank sends and receives at most one gradient per tree level, then
     * the sum comes back down a binomial tree, in place of every rank
     * receiving every rank's part through allgather. Same bits either way. */
    hl_status (*send)(void *user, int32_t to, const void *buf, size_t bytes, hl_error *err);
    hl_status (*recv)(void *user, int32_t from, void *buf, size_t bytes, hl_error *err);
    void *user;
} hl_train_comm;

typedef struct hl_train_config {
    hl_train_mode mode;          /* default HL_TRAIN_LORA */
    int32_t batch;               /* rows per batch; default 4 */
    int32_t ctx;                 /* tokens per row (the dataset's ctx); default 256 */
    int32_t accum;               /* batches per optimizer step; default 1 */
    int32_t n_threads;           /* worker threads, results identical for any count; default 1 */
    int64_t steps;               /* optimizer steps in the run; default 100 */
    double lr;                   /* peak learning rate; default 1e-3 */
    hl_train_schedule schedule;  /* default HL_TRAIN_SCHED_COSINE */
    int64_t warmup;              /* linear warmup steps; default 0 */
    double min_lr_ratio;         /* decay floor as a fraction of lr; default 0.1 */
    double weight_decay;         /* AdamW decoupled decay (matrices only); default 0 */
    double beta1, beta2, eps;    /* AdamW; default 0.9, 0.999, 1e-8 */
    double clip;                 /* global gradient-norm clip, 0 = off; default 1 */
    double dropout;              /* LoRA dropout, 0 <= p < 1 (LoRA only); default 0 */
    uint64_t seed;               /* dropout masks and the run's RNG; default 0 */
    /* The run's RNG (saved in checkpoints) starts from seed ^ rng_salt.
     * Default 0x5eed (train); pretrain's checkpoints use 0x9e37. */
    uint64_t rng_salt;
    int64_t eval_every;          /* evaluate every N steps, 0 = only at the last; default 50 */
    int eval_at_start;           /* a fresh run with validation rows logs a step-0 eval; default 1 */
    int64_t checkpoint_every;    /* 0 = only at the end, on stop and at stop_at; default 50 */
    const char *checkpoint_path; /* NULL: no checkpoints; default NULL */
    const char *metrics_path;    /* JSONL log, one record per step; NULL: none; default NULL */
    int64_t stop_at;             /* > 0: checkpoint and pause after this step; default 0 */
    /* The settings a resume must match, stored in every checkpoint and
     * compared byte for byte by hl_train_run_resume; default "" */
    const char *settings;
    uint64_t base_fingerprint;   /* stored in checkpoints (hl_model_fingerprint of the base); default 0 */
    hl_train_metrics_fn on_metrics; /* each may be NULL; default NULL */
    hl_train_progress_fn on_progress;
    hl_train_check_fn before_step;
    hl_train_stop_fn should_stop;
    hl_train_batch_fn next_batch;   /* used, and required, only when data is NULL */
    void *user;                  /* passed to every callback */
    /* The ranks of a data-parallel run (borrowed; see hl_train_comm);
     * NULL: this process alone; default NULL. */
    const hl_train_comm *comm;
} hl_train_config;

/* How hl_train_run_to_end ended. */
typedef enum hl_train_outcome {
    HL_TRAIN_FINISHED = 0,  /* all steps done */
    HL_TRAIN_PAUSED,        /* at stop_at, checkpointed */
    HL_TRAIN_STOPPED        /* should_stop asked, checkpointed */
} hl_train_outcome;

/* The documented defaults above. Pure: any thread, any time. */
HL_API hl_train_config hl_train_default_config(void);

/* Builds a run: validates cfg (an error names the field), then the trainer
 * and optimizer. LoRA: adapter non-NULL, model only read. Full: adapter
 * NULL and model's weights its own writable F32 buffers. data may be NULL
 * when cfg->next_batch supplies the batches (no validation split then:
 * evals give NAN). model, adapter,
 * data and cfg's strings are borrowed; *out is the caller's, freed with
 * hl_train_run_free. cfg is copied. Nothing is written to disk yet.
 * Threads: any thread; no other run may use the same adapter (or, in full
 * mode, model) at the same time. data is only read and may be shared by
 * runs that do not step at the same time (its batch cache, dataset.h). */
HL_API hl_status hl_train_run_init(const hl_model *model, hl_adapter *adapter, const hl_dataset *data,
                                   const hl_train_config *cfg, hl_train_run **out, hl_error *err);
/* Releases the run and all it owns (not the borrowed inputs); closes the
 * metrics log. NULL is fine. Threads: not while another call on it runs. */
HL_API void hl_train_run_free(hl_train_run *run);

/* Continues from the checkpoint at path (made by a run with the same
 * settings): loads the trainable tensors, AdamW moments, step, tokens, data
 * cursor and RNG. Call before the first step. Settings that differ give
 * HL_ERR_MISMATCH and hl_train_run_checkpoint_settings shows the saved
 * ones; after any failure the run's tensors may be partly loaded: free it.
 * Threads: one call on a run at a time (as for every call below). */
HL_API hl_status hl_train_run_resume(hl_train_run *run, const char *path, hl_error *err);

/* One optimizer step (steps 1-6 above); callbacks run on the calling
 * thread. Opens the metrics log on first use (appending after the resumed
 * step when resumed). Fails with HL_ERR_INVALID_ARG when the run is
 * already at its last step. After a failure the step is not counted, but
 * gradients, batch cursor and log may have moved: free the run (resume
 * from the last checkpoint to continue). */
HL_API hl_status hl_train_run_step(hl_train_run *run, hl_error *err);

/* The mean loss over every validation row, no dropout; NAN when there are
 * none. Changes no parameter; reuses the run's batch buffers (so not
 * concurrently with a step). */
HL_API hl_status hl_train_run_eval(hl_train_run *run, double *loss, hl_error *err);

/* Forward only on one caller-given batch (tokens (B, T+1); mask (B, T) or
 * NULL for all ones; pos (B, T) or NULL for one sequence per row): the sum
 * of the counted targets' losses and their count. Changes nothing. */
HL_API hl_status hl_train_run_eval_batch(hl_train_run *run, const int32_t *tokens, const uint8_t *mask,
                                         const int32_t *pos, double *loss_sum, int64_t *n_counted, hl_error *err);

/* Writes a checkpoint of the current state to path (crash-safe: temp file,
 * fsync, rename). The run is unchanged; not concurrently with a step. */
HL_API hl_status hl_train_run_save_checkpoint(const hl_train_run *run, const char *path, hl_error *err);

/* Runs to the last step: the step-0 eval (eval_at_start), then steps until
 * the end, stop_at or should_stop; checkpoints on pause and stop. *outcome
 * (may be NULL) says which. The trained weights are then in the adapter or
 * model; saving them is the caller's. Callbacks run on the calling thread. */
HL_API hl_status hl_train_run_to_end(hl_train_run *run, hl_train_outcome *outcome, hl_error *err);

/* State queries; never fail; safe between calls that change the run. */
HL_API int64_t hl_train_run_step_count(const hl_train_run *run);    /* optimizer steps done */
HL_API int64_t hl_train_run_tokens(const hl_train_run *run);        /* tokens processed so far */
HL_API double hl_train_run_last_eval(const hl_train_run *run);      /* latest eval loss, NAN if none */
HL_API int64_t hl_train_run_n_params(const hl_train_run *run);      /* trainable scalars */
/* The most bytes a rank receives in one step's gradient exchange (tree
 * nodes, per-row losses, headers); 0 without a communicator. */
HL_API int64_t hl_train_run_exchange_bytes(const hl_train_run *run);
/* The settings stored in the checkpoint hl_train_run_resume last read
 * (owned by the run), or NULL. */
HL_API const char *hl_train_run_checkpoint_settings(const hl_train_run *run);

#ifdef __cplusplus
}
#endif
#endif
