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

typedef enum hl_combine_method {
    HL_COMBINE_CAT = 0,
    HL_COMBINE_LINEAR,
    HL_COMBINE_SVD,
    HL_COMBINE_METHOD_COUNT
} hl_combine_method;

const char *hl_combine_method_name(hl_combine_method method); /* "cat", "linear", "svd" */
/* Parses "cat" / "linear" / "svd"; anything else is HL_ERR_INVALID_ARG. */
hl_status hl_combine_method_parse(const char *name, hl_combine_method *out, hl_error *err);

typedef struct hl_combine_tensor_report {
    int32_t layer;     /* -1 for the output projection */
    int32_t target;    /* hl_target */
    int32_t rank_in;   /* R = Σ ranks of the inputs that adapt this tensor */
    int32_t rank_out;  /* rank written */
    int32_t clamped;   /* svd: --rank was above what this tensor can hold */
    int32_t sweeps;    /* svd: Jacobi sweeps until convergence */
    double norm;       /* ||ΔW||_F of the weighted sum */
    double error;      /* ||ΔW - B·A||_F: 0 for cat, cross terms for linear, √Σ_{j>k} σⱼ² for svd */
    double rel_error;  /* error / norm (0 when norm is 0) */
} hl_combine_tensor_report;

typedef struct hl_combine_report {
    hl_combine_method method;
    int32_t n_tensors;
    hl_combine_tensor_report *tensors; /* [n_tensors], in the result's weight order */
    int32_t n_clamped;                 /* svd tensors whose rank was clamped */
    double total_norm;                 /* √Σ norm² over tensors */
    double total_error;                /* √Σ error² over tensors */
    double total_rel_error;            /* total_error / total_norm */
} hl_combine_report;

/* Releases report->tensors (the struct itself is the caller's). */
void hl_combine_report_free(hl_combine_report *report);

/* Makes *out from n adapters (all fitted to m) with weights[n]. svd_rank is
 * the target rank k for HL_COMBINE_SVD (>= 1; clamped per tensor to the rank
 * the stack can hold) and ignored otherwise. name may be NULL ("combined").
 * The result keeps the inputs' arch and base fingerprint. report may be NULL;
 * when given it is filled on success and must be freed with
 * hl_combine_report_free. Deterministic: same inputs, same bytes. */
hl_status hl_adapter_combine(const hl_model *m, const hl_adapter *const *adapters, const float *weights, int32_t n,
                             hl_combine_method method, int32_t svd_rank, const char *name, hl_adapter **out,
                             hl_combine_report *report, hl_error *err);
#endif
