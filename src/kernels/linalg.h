/* linalg.h: small dense linear algebra in double precision, used to combine
 * LoRA adapters (lora/combine.c): thin Householder QR, one-sided Jacobi SVD,
 * and the core of a low-rank product X·Ytᵀ, from which its Frobenius norm
 * and its SVD follow without forming the product. Matrices are row-major.
 * Nothing is threaded and every loop runs in a fixed order, so the same
 * inputs give the same bits on every run. */
#ifndef HL_KERNELS_LINALG_H
#define HL_KERNELS_LINALG_H
#include <stdint.h>
#include "hyperlora.h"

#define HL_JACOBI_MAX_SWEEPS 80 /* quadratic convergence needs ~10; this only stops a runaway */

/* Thin Householder QR of X (m, n), row-major, overwritten as workspace.
 * Rm (p, n) receives R (upper trapezoidal) and, when Q is non-NULL, Q (m, p)
 * gets orthonormal columns with Q·R = X; p = min(m, n). Vh (p, m) and d (n)
 * are scratch. Householder rather than Gram-Schmidt because stacks are often
 * rank-deficient (a fresh adapter has B = 0; two inputs may share a factor)
 * and reflections stay orthogonal there without any special casing. */
void hl_qr_thin(double *X, int64_t m, int64_t n, double *Rm, double *Q, double *Vh, double *d);

/* One-sided (Hestenes) Jacobi SVD of G (rows, cols), rows >= cols, row-major,
 * in place: rotates column pairs until all are mutually orthogonal, so that
 * G_in = G_out·Vᵀ with V (cols, cols) orthogonal and column j of G_out equal
 * to σⱼ·uⱼ. Cyclic pair order keeps it deterministic; the pair is left alone
 * once |gᵢ·gⱼ| <= tol·||gᵢ||·||gⱼ||. Returns the sweeps used (the last one
 * rotates nothing), or -1 without convergence within HL_JACOBI_MAX_SWEEPS. */
int hl_jacobi_svd(double *G, int64_t rows, int64_t cols, double *V);

/* The core of X·Ytᵀ with X (m, K) and Yt (n, K): thin QRs X = Qx·Rx and
 * Yt = Qy·Ry, M (p, q) = Rx·Ryᵀ, p = min(m, K), q = min(n, K). Inputs are
 * left intact. Qx (m, p) and Qy (n, q) are returned only when wanted. */
typedef struct hl_lowrank_core {
    int64_t p, q;
    double *M, *Qx, *Qy;
} hl_lowrank_core;

void hl_lowrank_core_free(hl_lowrank_core *c);
/* Builds c; on failure (out of memory) c is empty and err says so. */
hl_status hl_lowrank_core_build(const double *X, int64_t m, const double *Yt, int64_t n, int64_t K, int want_q,
                               hl_lowrank_core *c, hl_error *err);
/* sqrt(Σ x[i]²) over n values. */
double hl_frobenius(const double *x, int64_t n);
/* ||X·Ytᵀ||_F without forming the (m, n) product: the norm of the core. */
hl_status hl_lowrank_product_norm(const double *X, int64_t m, const double *Yt, int64_t n, int64_t K, double *norm,
                                 hl_error *err);
#endif
