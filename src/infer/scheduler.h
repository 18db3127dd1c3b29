/* scheduler.h: continuous batching: many sequences over one base, each with
 * its own adapter set, sampler and KV cache, advanced together one token per
 * step.
 *
 * A step runs every active sequence's next forward pass (its prompt first,
 * one token after that) and samples its next token. With shared_base, the
 * sequences over the same weights go through one batched pass: each decoding
 * sequence brings its one token, each new one its prompt (in chunks of its
 * context's n_batch, the chunks hl_context_eval takes), and all those rows
 * go through each base product together (the weights read once per step,
 * whether the rows are prompt or decode). Each row adds its own sequence's
 * adapters; a sequence's rows get its own RoPE positions, write its own KV
 * cache and attend causally over it (infer/batch_decode.h). max_prompt_rows
 * bounds the prompt tokens one step takes, so a long prompt does not stall
 * the decoding sequences: prompts then advance in the order added, a chunk
 * at a time, and give their first token in the step that evaluates their
 * last chunk. A sequence that cannot share the pass (another architecture,
 * other weights; and, without shared_base, every sequence) runs on its own
 * context, spread over the worker threads; one running alone gets all the
 * threads. Every kernel gives each output row one summation order whatever
 * the other rows and the thread count (threadpool.h), and a prompt in chunks
 * gives the bits of one at once, so a sequence's tokens are exactly those
 * hl_generate gives it alone, at any thread count, prompt budget, and
 * whatever else shares the step.
 *
 * Memory: each sequence's KV cache holds n_prompt + n_predict positions
 * (2 · L · positions · Hkv·D floats); a sequence that would take the total
 * over kv_cap_bytes, or one past max_seqs, is refused with HL_ERR_LIMIT and
 * nothing changes.
 *
 * Ownership: the scheduler copies the prompt, the adapter list (not the
 * adapters) and the scene vectors; the model and the adapters a sequence
 * names must outlive it. A scheduler is driven by one thread at a time. */
#ifndef HL_INFER_SCHEDULER_H
#define HL_INFER_SCHEDULER_H
#include <stddef.h>
#include "hyperlora.h"

typedef struct hl_sched hl_sched;
typedef struct hl_seq hl_seq;

typedef struct hl_sched_params {
    int32_t n_threads;      /* workers the sequences are spread over (>= 1) */
    int32_t max_seqs;       /* active sequences at most (>= 1) */
    size_t kv_cap_bytes;    /* KV cache of all active sequences together; 0 = no cap */
    int32_t weights;        /* hl_weight_layout of every context; 0 = AUTO */
    int shared_base;        /* decoding sequences over the same weights share each base product (one pass
                             * over the weights per step: infer/batch_decode.h); 0 = each its own pass */
    int32_t max_prompt_rows; /* with shared_base: prompt tokens one step takes at most, over all the
                              * prompts (the decoding tokens come on top); 0 = no bound */
} hl_sched_params;

#define HL_SEQ_MAX_STOP 4

typedef struct hl_seq_desc {
    const hl_model *model;             /* the base, or a lexicon's view of it (hl_lexicon_model) */
    const hl_adapter *const *adapters; /* n_adapters, with user scales */
    const float *scales;
    int32_t n_adapters;
    const float *scene_vectors;        /* (n_scene_vectors, C) for prompt ids -1..-n, or NULL */
    int32_t n_scene_vectors;
    const int32_t *prompt;             /* n_prompt >= 1 ids, BOS included where wanted */
    int32_t n_prompt;
    int32_t n_predict;                 /* tokens to generate (>= 0) */
    int stop_at_eos;                   /* stop after EOS, BOS or another end-of-generation token of the
                                        * model's tokenizer, as hl_generate, or after one of stop_ids */
    int32_t stop_ids[HL_SEQ_MAX_STOP];  /* with stop_at_eos: more tokens that end the sequence (a chat
                                        * template's end of turn) */
    int32_t n_stop_ids;
    hl_sampler_params sampler;
} hl_seq_desc;

hl_status hl_sched_init(const hl_sched_params *p, hl_sched **out, hl_error *err);
/* Frees every sequence still held. */
void hl_sched_free(hl_sched *s);

/* Adds a sequence; it starts at the next step. HL_ERR_LIMIT when the KV cap
 * or max_seqs would be exceeded, HL_ERR_INVALID_ARG for a bad description. */
hl_status hl_sched_add(hl_sched *s, const hl_seq_desc *d, void *user, hl_seq **out, hl_error *err);
/* Advances every unfinished sequence by one token (one whose prompt waits
 * on max_prompt_rows may advance only through its prompt). A sequence that fails
 * stops with its own status (hl_seq_status); the step itself fails only
 * when it cannot run at all. */
hl_status hl_sched_step(hl_sched *s, hl_error *err);
/* Releases a sequence (finished or not) and its KV cache. */
void hl_sched_remove(hl_sched *s, hl_seq *q);

int32_t hl_sched_n_seqs(const hl_sched *s);       /* held sequences, finished or not */
int32_t hl_sched_n_running(const hl_sched *s);    /* unfinished ones */
size_t hl_sched_kv_bytes(const hl_sched *s);      /* KV cache bytes held */
hl_seq *hl_sched_seq(const hl_sched *s, int32_t i); /* i < hl_sched_n_seqs, in the order added */

/* Why a sequence stopped. */
typedef enum { HL_SEQ_RUNNING = 0, HL_SEQ_STOP_EOS, HL_SEQ_STOP_LENGTH, HL_SEQ_FAILED, HL_SEQ_STATE_COUNT } hl_seq_state;

void *hl_seq_user(const hl_seq *q);
hl_seq_state hl_seq_get_state(const hl_seq *q);
/* Generated tokens so far (the stopping EOS included, as hl_generate reports it). */
const int32_t *hl_seq_tokens(const hl_seq *q, int32_t *n);
/* The failure of a HL_SEQ_FAILED sequence (HL_OK otherwise). */
hl_status hl_seq_status(const hl_seq *q, hl_error *err);
/* KV cache bytes of a sequence of that many positions on model m, as its
 * context maps them (hl_huge_bytes: whole huge pages from 2 MiB a cache). */
size_t hl_sched_kv_bytes_for(const hl_model *m, int32_t positions);
#endif
