/* adapter_io.h: adapter files: GGUF exactly as llama.cpp loads it, and
 * Hugging Face PEFT (adapter_model.safetensors + adapter_config.json).
 *
 * GGUF: general.type = "adapter", general.architecture = "llama",
 * adapter.type = "lora", adapter.lora.alpha (f32), tensors
 * "<base tensor>.lora_a" ne [in, r] and "<base tensor>.lora_b" ne [r, out].
 * llama.cpp scales by alpha / r with one alpha per file, so an rsLoRA or
 * per-tensor-alpha adapter is written with its scale ratio folded into B
 * (exact whenever the ratio is a power of two, as for r = 4 rsLoRA); our own
 * extras live under "hyperlora." keys, which llama.cpp ignores. */
#ifndef HL_LORA_ADAPTER_IO_H
#define HL_LORA_ADAPTER_IO_H
#include <stdio.h>
#include "lora/adapter.h"

/* Loads a GGUF adapter for model m (shapes checked; fingerprint checked unless force). */
hl_status hl_adapter_load_gguf(const char *path, const hl_model *m, int force, hl_adapter **out, hl_error *err);
/* Loads a GGUF adapter without a model (inspect): shapes taken from the tensors. */
hl_status hl_adapter_load_gguf_standalone(const char *path, hl_adapter **out, hl_error *err);
hl_status hl_adapter_save_gguf(const hl_adapter *a, const char *path, hl_error *err);

/* PEFT: dir holds adapter_model.safetensors + adapter_config.json. n_heads /
 * n_kv_heads from m drive the HF <-> GGUF rotary row permutation of q/k. */
hl_status hl_adapter_load_peft(const char *dir, const hl_model *m, int force, hl_adapter **out, hl_error *err);
hl_status hl_adapter_save_peft(const hl_adapter *a, const hl_model *m, const char *dir, hl_error *err);

void hl_adapter_print_summary(const hl_adapter *a, FILE *f);
/* Parses a GGUF base tensor name ("blk.3.attn_q.weight", "output.weight") into
 * (layer, target). Returns 0 if the name is not an adaptable projection. */
int hl_adapter_parse_base_name(const char *name, size_t len, int *layer, int *target);
#endif
