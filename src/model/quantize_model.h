/* quantize_model.h: a GGUF model file re-written with its 2-D tensors in
 * block types (`hyperlora quantize`): one type for all (llama-quantize
 * --pure), or llama-quantize's _S/_M/_L k-quant mixes, which pick a type per
 * tensor; laid out as llama-quantize lays it out, so the same input gives
 * the same bytes. */
#ifndef HL_MODEL_QUANTIZE_MODEL_H
#define HL_MODEL_QUANTIZE_MODEL_H
#include <stdint.h>
#include "hyperlora.h"

/* The block type named by s ("q8_0", "q4_K", case-insensitive) that
 * hl_model_quantize_file can write, or -1. */
int32_t hl_quantize_type_by_name(const char *s);
/* Reads the GGUF model in_path and writes out_path: every KV copied, then
 * general.file_type and general.quantization_version (2) re-set at the end;
 * tensors ordered by (layer, name) with non-layer tensors first; 2-D tensors
 * (F32, F16 or BF16, finite, rows whole blocks) quantized to type, the
 * others copied as they are. Already quantized inputs are refused. */
hl_status hl_model_quantize_file(const char *in_path, const char *out_path, uint32_t type, hl_error *err);

/* llama-quantize's k-quant mixes (no importance matrix), for dense
 * llama-family models. The base type is the name's (q3_K .. q5_K);
 * output.weight is q6_K; attn_v and ffn_down of some layers, and
 * attn_output for Q3_K_M/Q3_K_L, go one or two steps up (llama.cpp's rules,
 * written out in quantize_model.c: the _S mixes raise the fewest, Q3_K_S and
 * Q5_K_S only the output). A tensor whose rows are not whole 256-blocks
 * falls back as llama.cpp does (q4_K -> q5_0, q5_K -> q5_1, q6_K -> q8_0;
 * q3_K has no fallback we can write: refused). llama-quantize's plain "Q2_K"
 * is itself a mix, and it refuses Q2_K_S without an importance matrix; ours
 * offer neither: `--type q2_K` is pure. */
typedef enum hl_quant_mix {
    HL_QUANT_PURE = 0,
    HL_QUANT_Q3_K_M,
    HL_QUANT_Q4_K_M,
    HL_QUANT_Q5_K_M,
    HL_QUANT_Q3_K_S,
    HL_QUANT_Q3_K_L,
    HL_QUANT_Q4_K_S,
    HL_QUANT_Q5_K_S,
    HL_QUANT_MIX_COUNT
} hl_quant_mix;
/* "q4_K_M" -> HL_QUANT_Q4_K_M (case-insensitive); -1 for other names. */
int32_t hl_quantize_mix_by_name(const char *s);
/* "q4_K_M" for HL_QUANT_Q4_K_M; "pure" for HL_QUANT_PURE or out of range. */
const char *hl_quantize_mix_name(hl_quant_mix mix);
hl_status hl_model_quantize_file_mix(const char *in_path, const char *out_path, hl_quant_mix mix, hl_error *err);
#endif
