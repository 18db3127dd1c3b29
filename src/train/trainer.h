/* trainer.h: exact gradients of the next-token loss with respect to a LoRA
 * adapter's A and B, the base frozen (no weight-gradient buffers: dX = dY·W).
 *
 * A batch is B rows of T+1 tokens: inputs row[0..T-1], targets row[1..T].
 * A row holds one sequence from position 0, or several packed documents:
 * then pos (B, T) gives each input token's position in its document (0 where
 * one starts, counting up by one after), attention stays inside a document
 * and RoPE uses these positions, so each document trains exactly as it would
 * alone in a row. The loss is the mean cross-entropy over
 * the targets whose mask is 1. The forward pass saves the residual stream,
 * q/k/v, attention probabilities, attention output and the FFN
 * pre-activations per layer; norms and SwiGLU are recomputed in the
 * backward pass. LoRA dropout (on the adapter's input, as PEFT) draws its
 * mask from a counter-based hash of (seed, step, layer, target, element), so
 * nothing is stored and a resumed run sees the same masks. */
#ifndef HL_TRAIN_TRAINER_H
#define HL_TRAIN_TRAINER_H
#include "lora/adapter.h"
#include "util/threadpool.h"

typedef struct hl_trainer_params {
    int full;           /* pretraining: every model weight trains (adapter must be NULL) */
    int32_t batch;      /* B */
    int32_t ctx;        /* T (<= 4096 and <= the model's context) */
    int32_t n_threads;
    float dropout;      /* LoRA dropout probability, 0 <= p < 1 */
    uint64_t seed;      /* dropout masks */
} hl_trainer_params;

typedef struct hl_trainer hl_trainer;

/* One trainable tensor with its gradient (views owned by adapter/model/trainer). */
typedef struct hl_param {
    float *value;
    float *grad;
    int64_t n;
    const char *name;   /* GGUF tensor name, e.g. "blk.0.attn_q.weight.lora_a" or "blk.0.ffn_up.weight" */
    int64_t ne0, ne1;   /* ggml order: ne0 contiguous */
    int decay;          /* weight decay applies (matrices yes, norms no) */
} hl_param;

/* The layout the base's projections are read in for training m (full: 1 for
 * full training): HL_WEIGHTS_PACKED or HL_WEIGHTS_ROWS (OpenBLAS tiles; also
 * for full training and for quantized bases, which are read from their
 * blocks). Fails only on a bad $HYPERLORA_ISA or $HYPERLORA_WEIGHTS. */
hl_status hl_train_weight_layout(const hl_model *m, int full, int32_t *layout, hl_error *err);
/* "LEVEL/LAYOUT" of that choice, e.g. "avx2/rows", "avx512/packed",
 * "avx2/blocks" (a quantized base): the layouts round differently, so
 * training records this among the settings a resume must match. */
hl_status hl_train_kernels_name(const hl_model *m, int full, char *buf, size_t cap, hl_error *err);

/* LoRA: adapter non-NULL, the model is only read. Full (p->full): adapter NULL
 * and the model's weights must be its own writable buffers (hl_model_init_random),
 * untied, F32; the trainer updates them in place through hl_trainer_param. */
hl_status hl_trainer_init(const hl_model *m, hl_adapter *adapter, const hl_trainer_params *p, hl_trainer **out,
                          hl_error *err);
void hl_trainer_free(hl_trainer *t);
void hl_trainer_zero_grad(hl_trainer *t);
/* Parameters: LoRA in adapter order A0, B0, A1, B1, ...; full in GGUF tensor order. */
int32_t hl_trainer_n_params(const hl_trainer *t);
hl_param hl_trainer_param(const hl_trainer *t, int32_t i);

/* Forward + backward on one batch. tokens (B, T+1), mask (B, T) or NULL for
 * all ones, pos (B, T) or NULL for one sequence per row. Gradients of (grad_scale · mean loss) are ADDED to the grads.
 * step seeds the dropout masks. *loss gets the mean loss, *n_counted the
 * number of counted targets (0: loss 0, no gradient). */
hl_status hl_trainer_forward_backward(hl_trainer *t, const int32_t *tokens, const uint8_t *mask, const int32_t *pos,
                                      float grad_scale, uint64_t step, double *loss, int64_t *n_counted, hl_error *err);
/* The same on rows that belong to a larger batch: dlogits_scale multiplies
 * each counted target's loss gradient (1/(accum·targets of the whole batch)
 * gives the mean), tok_offset is the index of tokens[0] in that batch (B·T
 * token slots, row-major), so dropout masks match a run of the whole batch
 * at once. *loss_sum gets the sum of the counted losses, in row order. */
hl_status hl_trainer_forward_backward_rows(hl_trainer *t, const int32_t *tokens, const uint8_t *mask,
                                           const int32_t *pos, double dlogits_scale, uint64_t step,
                                           int64_t tok_offset, double *loss_sum, int64_t *n_counted,
                                           hl_error *err);
/* Forward only (no dropout): sum of losses and count over the counted targets. */
hl_status hl_trainer_eval(hl_trainer *t, const int32_t *tokens, const uint8_t *mask, const int32_t *pos,
                          double *loss_sum, int64_t *n_counted, hl_error *err);
/* The global L2 norm of all gradients (summed in double, in parameter order). */
double hl_trainer_grad_norm(const hl_trainer *t);
void hl_trainer_scale_grads(hl_trainer *t, float factor);
#endif
