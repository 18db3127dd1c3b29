/* combine.h: a new adapter from weighted adapters (the `combine` command).
 *
 * Adapter i has a user weight wᵢ and its own scale sᵢ = alpha/r (or alpha/√r);
 * the target delta of one (layer, target) is
 *
 *   ΔW = Σᵢ wᵢ·sᵢ·Bᵢ·Aᵢ   (out, in)
 *
 * over the adapters that adapt it. Every (layer, target) present in any input
 * is present in the result, whose scale is exactly 1 (alpha = r, no rsLoRA).
 *
 *   cat    A = vstack Aᵢ (Σr, in), B = hstack wᵢ·sᵢ·Bᵢ (out, Σr): exact.
 *   linear A = Σ √wᵢ·sᵢ·Aᵢ, B = Σ √wᵢ·Bᵢ (PEFT's "linear"): same rank
 *          everywhere, wᵢ >= 0. Its product has cross terms √(wᵢwⱼ)·sᵢ·Bⱼ·Aᵢ,
 *          so it equals ΔW only when the adapters share A or B (e.g. a single
 *          adapter); the report gives the distance to ΔW.
 *   svd    the best rank-k approximation of ΔW (Eckart-Young), computed
 *          from the factors (QR of each stacked factor, Jacobi SVD of the small
 *          R × R core), never from the (out, in) matrix. */
#ifndef HL_LORA_COMBINE_H
#define HL_LORA_COMBINE_H
#include "lora/adapter.h"

/* The method enum, the report structs and hl_adapter_combine are public:
 * include/hyperlora.h. */
#endif
