/* linalg.c: small dense linear algebra in double precision, for combining
 * LoRA adapters (lora/combine.c): thin Householder QR, one-sided Jacobi SVD,
 * and the small core of a low-rank product X·Ytᵀ (see linalg.h). Single
 * threaded, every loop in a fixed order: the same inputs give the same bits. */
#include "kernels/linalg.h"
#include "util/alloc.h"
#include "util/error.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* Householder reflections, one per column (see linalg.h). */
void hl_qr_thin(double *X, int64_t m, int64_t n, double *Rm, double *Q, double *Vh, double *d) {
    int64_t p = m < n ? m : n;
    for (int64_t j = 0; j < p; j++) {
        double *v = Vh + j * m;
        double norm2 = 0;
        for (int64_t i = 0; i < j; i++) v[i] = 0;
        for (int64_t i = j; i < m; i++) {
            v[i] = X[i * n + j];
            norm2 += v[i] * v[i];
        }
        if (norm2 == 0) { /* zero column: H = I, v stays 0 */
            for (int64_t i = j; i < m; i++) v[i] = 0;
            continue;
        }
        /* α = -sign(x₀)·||x|| so that x₀ - α never cancels. */
        double alpha = v[j] >= 0 ? -sqrt(norm2) : sqrt(norm2);
        v[j] -= alpha;
        double vn2 = 0;
        for (int64_t i = j; i < m; i++) vn2 += v[i] * v[i];
        double inv = 1.0 / sqrt(vn2);
        for (int64_t i = j; i < m; i++) v[i] *= inv;
        /* X[j:, j:] -= 2·v·(vᵀ·X[j:, j:]), row by row for locality. */
        for (int64_t c = j; c < n; c++) d[c] = 0;
        for (int64_t i = j; i < m; i++)
            for (int64_t c = j; c < n; c++) d[c] += v[i] * X[i * n + c];
        for (int64_t i = j; i < m; i++)
            for (int64_t c = j; c < n; c++) X[i * n + c] -= 2.0 * v[i] * d[c];
    }
    for (int64_t i = 0; i < p; i++)
        for (int64_t c = 0; c < n; c++) Rm[i * n + c] = c >= i ? X[i * n + c] : 0.0;
    if (!Q) return;
    /* Q = H₀·H₁·…·H_{p-1}·[I; 0], applied right to left. */
    memset(Q, 0, (size_t)(m * p) * sizeof *Q);
    for (int64_t i = 0; i < p; i++) Q[i * p + i] = 1.0;
    for (int64_t j = p - 1; j >= 0; j--) {
        const double *v = Vh + j * m;
        for (int64_t c = 0; c < p; c++) d[c] = 0;
        for (int64_t i = j; i < m; i++)
            for (int64_t c = 0; c < p; c++) d[c] += v[i] * Q[i * p + c];
        for (int64_t i = j; i < m; i++)
            for (int64_t c = 0; c < p; c++) Q[i * p + c] -= 2.0 * v[i] * d[c];
    }
}

/* Cyclic one-sided Jacobi rotations (see linalg.h). */
int hl_jacobi_svd(double *G, int64_t rows, int64_t cols, double *V) {
    memset(V, 0, (size_t)(cols * cols) * sizeof *V);
    for (int64_t i = 0; i < cols; i++) V[i * cols + i] = 1.0;
    const double tol = DBL_EPSILON * (double)rows;
    for (int sweep = 1; sweep <= HL_JACOBI_MAX_SWEEPS; sweep++) {
        int rotated = 0;
        for (int64_t i = 0; i + 1 < cols; i++)
            for (int64_t j = i + 1; j < cols; j++) {
                double a = 0, b = 0, g = 0;
                for (int64_t r = 0; r < rows; r++) {
                    double x = G[r * cols + i], y = G[r * cols + j];
                    a += x * x;
                    b += y * y;
                    g += x * y;
                }
                if (g == 0 || fabs(g) <= tol * sqrt(a) * sqrt(b)) continue;
                rotated = 1;
                /* The rotation that zeroes the off-diagonal of [[a, g], [g, b]];
                 * t is the smaller root of t² + 2ζt - 1 = 0 (|angle| <= π/4). */
                double zeta = (b - a) / (2.0 * g);
                double t = fabs(zeta) > 1e150 ? 0.5 / zeta
                                               : (zeta >= 0 ? 1.0 : -1.0) / (fabs(zeta) + sqrt(1.0 + zeta * zeta));
                double c = 1.0 / sqrt(1.0 + t * t), s = c * t;
                for (int64_t r = 0; r < rows; r++) {
                    double x = G[r * cols + i], y = G[r * cols + j];
                    G[r * cols + i] = c * x - s * y;
                    G[r * cols + j] = s * x + c * y;
                }
                for (int64_t r = 0; r < cols; r++) {
                    double x = V[r * cols + i], y = V[r * cols + j];
                    V[r * cols + i] = c * x - s * y;
                    V[r * cols + j] = s * x + c * y;
                }
            }
        if (!rotated) return sweep;
    }
    return -1;
}

void hl_lowrank_core_free(hl_lowrank_core *c) {
    hl_free(c->M);
    hl_free(c->Qx);
    hl_free(c->Qy);
    memset(c, 0, sizeof *c);
}

hl_status hl_lowrank_core_build(const double *X, int64_t m, const double *Yt, int64_t n, int64_t K, int want_q,
                               hl_lowrank_core *c, hl_error *err) {
    memset(c, 0, sizeof *c);
    int64_t p = m < K ? m : K, q = n < K ? n : K;
    c->p = p;
    c->q = q;
    double *xw = hl_malloc_array((size_t)(m * K), sizeof(double));
    double *yw = hl_malloc_array((size_t)(n * K), sizeof(double));
    double *Rx = hl_malloc_array((size_t)(p * K), sizeof(double));
    double *Ry = hl_malloc_array((size_t)(q * K), sizeof(double));
    double *Vx = hl_malloc_array((size_t)(p * m), sizeof(double));
    double *Vy = hl_malloc_array((size_t)(q * n), sizeof(double));
    double *d = hl_malloc_array((size_t)K, sizeof(double));
    c->M = hl_malloc_array((size_t)(p * q), sizeof(double));
    if (want_q) {
        c->Qx = hl_malloc_array((size_t)(m * p), sizeof(double));
        c->Qy = hl_malloc_array((size_t)(n * q), sizeof(double));
    }
    hl_status s = HL_OK;
    if (!xw || !yw || !Rx || !Ry || !Vx || !Vy || !d || !c->M || (want_q && (!c->Qx || !c->Qy))) {
        s = hl_fail(err, HL_ERR_NOMEM, "combine: out of memory for a rank-%lld factorisation", (long long)K);
        hl_lowrank_core_free(c);
    } else {
        memcpy(xw, X, (size_t)(m * K) * sizeof(double));
        memcpy(yw, Yt, (size_t)(n * K) * sizeof(double));
        hl_qr_thin(xw, m, K, Rx, c->Qx, Vx, d);
        hl_qr_thin(yw, n, K, Ry, c->Qy, Vy, d);
        for (int64_t i = 0; i < p; i++)
            for (int64_t j = 0; j < q; j++) {
                double acc = 0;
                for (int64_t t = 0; t < K; t++) acc += Rx[i * K + t] * Ry[j * K + t];
                c->M[i * q + j] = acc;
            }
    }
    hl_free(xw);
    hl_free(yw);
    hl_free(Rx);
    hl_free(Ry);
    hl_free(Vx);
    hl_free(Vy);
    hl_free(d);
    return s;
}

double hl_frobenius(const double *x, int64_t n) {
    double acc = 0;
    for (int64_t i = 0; i < n; i++) acc += x[i] * x[i];
    return sqrt(acc);
}

hl_status hl_lowrank_product_norm(const double *X, int64_t m, const double *Yt, int64_t n, int64_t K, double *norm,
                                 hl_error *err) {
    hl_lowrank_core c;
    hl_status s = hl_lowrank_core_build(X, m, Yt, n, K, 0, &c, err);
    if (s != HL_OK) return s;
    *norm = hl_frobenius(c.M, c.p * c.q);
    hl_lowrank_core_free(&c);
    return HL_OK;
}
