/* dataset.h: training data from JSONL, tokenized into fixed-length rows.
 *
 * One JSON object per line, any of:
 *   {"text": "..."}                                  loss on every token
 *   {"prompt": "...", "completion": "..."}           loss on the completion only
 *   {"scene": "...", "form": "...", "register": "...", "output": "..."}
 *        a scene-decoder example; formatted by a scene formatter callback
 *        (hyperlexemes, see hyperlexeme/lexicon.h), which returns the tokens and
 *        which of them count in the loss; without one such lines are refused.
 * Blank lines are skipped. A bad line (invalid JSON, missing/ill-typed field,
 * invalid UTF-8, empty text) fails the load with "FILE:LINE: field: why".
 *
 * Lines. Lines end in LF (a CR before it is dropped); a UTF-8 BOM at the
 * start of the file is skipped. The shape is chosen by its key ("text",
 * "prompt"/"completion", "scene"; case-sensitive); a line with two shapes, or
 * with a used key twice, is refused as ambiguous; other keys are ignored.
 * Used fields must be strings (an escaped NUL, \u0000, is refused: C strings
 * would silently cut it). "text" and "completion" must be non-empty; "prompt"
 * may be empty. Caps: HL_DATASET_MAX_LINE bytes per line, HL_DATASET_MAX_FILE
 * bytes per file (HL_ERR_LIMIT). Data errors are HL_ERR_FORMAT; bad params,
 * and scene lines without a formatter, HL_ERR_INVALID_ARG. A file without
 * examples (empty, or only blank lines) is refused.
 *
 * Each example becomes [BOS] tokens [EOS], with a loss flag per token:
 *   text:   [BOS] encode(text) [EOS]; every token after BOS counts (EOS too).
 *   prompt: [BOS] encode(prompt) completion [EOS]; only the completion tokens
 *           and EOS count. The prompt is encoded on its own, exactly as
 *           generation encodes the same prompt (dummy-prefix space included).
 *           The completion is encoded separately (no token spans the
 *           boundary) and its dummy-prefix space is removed where that is
 *           exact: if the completion starts with a space, that space is the
 *           prefix (encode(completion + 1)); otherwise, when the prefix comes
 *           out as a lone "\u2581" token, that token is dropped. Either way the
 *           completion tokens decode to exactly the completion text. Only when
 *           SentencePiece merged the prefix into the first piece ("answer" ->
 *           "\u2581answer") is it kept, so such a completion is learned with a
 *           leading space: start completions with a space (" answer"), or a
 *           newline, to get exact text. A completion of just " " is refused.
 *           Byte-level BPE (model "gpt2") has no dummy prefix: the
 *           completion is encoded exactly as written.
 *   BOS is added only when the tokenizer asks for it (hl_tokenizer_add_bos:
 *   Qwen does not); special-token text in text and prompts is parsed.
 *   scene:  what the formatter returns. Its ids must be below the vocabulary
 *           size of tok, so pass the tokenizer that knows its extra tokens
 *           (hl_lexicon_tokenizer); mask values are read as 0/1.
 * The first token of an example is never one of its own targets.
 *
 * Rows have ctx+1 tokens (inputs are row[0..ctx-1], targets row[1..ctx]), a
 * mask of ctx bytes saying which targets count, and ctx positions (pos[i]:
 * input i's position in its document). Padding is EOS with mask 0. Three
 * ways of cutting a split into rows (hl_pack_mode):
 *   docs (HL_PACK_DOCS, train's default): whole examples are packed into rows.
 *     The examples that have a loss target, in a seeded shuffled order (one
 *     stream per split), each truncated to ctx+1 tokens (counted in the
 *     stats), go first fit into rows of ctx+1 slots: an example of len tokens
 *     takes len slots, in the first row with that much room, after the
 *     examples already there. Its positions count from 0, and the trainer
 *     keeps attention inside each document (trainer.h), so an example trains
 *     exactly as it would alone in a row. A target that crosses into the next
 *     example is a first token (mask 0). The slots after a row's last example
 *     are padding, positioned as one more document.
 *   none (HL_PACK_NONE): each example is padded or truncated (counted) to one
 *     row; positions 0..ctx-1.
 *   stream (HL_PACK_STREAM, pretraining's default): the examples of a split,
 *     in file order, form one stream S of L tokens and row k is
 *     S[k*ctx .. k*ctx+ctx]: rows share one token, every target S[1..L-1] is
 *     in exactly one row, and rows attend across example boundaries
 *     (positions 0..ctx-1). For raw-text corpora, where continuing across
 *     documents is wanted.
 * A row with no mask bit set (e.g. a prompt cut off before its completion)
 * trains nothing and is dropped (docs: such an example is left out before
 * packing), so every row has at least one loss target; a load that leaves no
 * training row fails.
 *
 * A validation split takes a seeded, deterministic fraction of the examples
 * (at least 1 when the fraction > 0 and there are >= 2 examples):
 * n_val = max(1, floor(fraction * n)), the first n_val of a Fisher-Yates
 * permutation of the example indices seeded from seed. Both splits keep file
 * order and are cut into rows the same way.
 * Batches are drawn through a cursor (epoch, index) over a per-epoch seeded
 * permutation of the training rows, so a run can be stopped and resumed at
 * exactly the same batch. Epoch e's permutation is Fisher-Yates with an RNG
 * seeded by seed ^ (0x9E3779B97F4A7C15 * (e + 1)). The dataset caches the
 * current epoch's permutation, so calls of next_batch on one dataset must
 * not run concurrently; everything else is read-only after load.
 */
#ifndef HL_TRAIN_DATASET_H
#define HL_TRAIN_DATASET_H
#include <stdint.h>
#include "hyperlora.h"
#include "text/tokenizer.h"

#define HL_DATASET_MAX_LINE (1u << 20)  /* bytes in one JSONL line */
#define HL_DATASET_MAX_FILE (1u << 30)  /* bytes in one dataset file */
#define HL_DATASET_MAX_CTX  (1 << 24)   /* tokens per row */

/* hl_dataset, its params, stats and pack modes, and the scene formatter type
 * are public: include/hyperlora.h. */

typedef struct hl_data_cursor {
    uint64_t epoch;
    uint64_t index;         /* next row within the epoch's permutation */
} hl_data_cursor;

/* Fills B training rows from the cursor and advances it (wrapping into the next
 * epoch, which reshuffles). tokens: B×(ctx+1), mask: B×ctx, pos: B×ctx (pass
 * it to the trainer; NULL only when the rows are known not to be docs-packed). */
void hl_dataset_next_batch(const hl_dataset *ds, hl_data_cursor *cursor, int32_t B, int32_t *tokens,
                           uint8_t *mask, int32_t *pos);
/* Validation rows, by index (0..n_val_rows-1); an index out of range gives
 * a row of padding with mask 0. pos as for next_batch. */
int64_t hl_dataset_n_val_rows(const hl_dataset *ds);
void hl_dataset_val_row(const hl_dataset *ds, int64_t i, int32_t *tokens, uint8_t *mask, int32_t *pos);
int64_t hl_dataset_n_train_rows(const hl_dataset *ds);
/* T, the tokens per row it was loaded with (its rows are T+1 tokens). */
int32_t hl_dataset_ctx(const hl_dataset *ds);
#endif
