/* quantize_model.h: a GGUF model file re-written with its 2-D tensors in one
 * block type (`hyperlora quantize`), laid out as llama-quantize --pure lays
 * it out, so the same input gives the same bytes. */
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
#endif
