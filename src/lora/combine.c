/* combine.c: cat / linear / svd combinations of weighted adapters.
 *
 * All arithmetic is in double and every output element is rounded to float
 * once. Nothing is threaded and every loop runs in a fixed order, so the
 * same inputs give the same bytes on every run.
 *
 * The svd method never forms ΔW (out, in). With the stacked factors
 *   Bc (out, R) = [w₁s₁B₁ | w₂s₂B₂ | ...],  Ac (R, in) = [A₁; A₂; ...]
 * ΔW = Bc·Ac. Thin QR of each side, Bc = Qb·Rb and Acᵀ = Qa·Ra, gives
 * ΔW = Qb·(Rb·Raᵀ)·Qaᵀ, so the SVD of the small core M = Rb·Raᵀ (R, R)
 * is the SVD of ΔW once its singular vectors are lifted by Qb and Qa. */
#include "lora/combine.h"
#include "kernels/linalg.h"
#include "util/alloc.h"
#include "util/error.h"

#include <math.h>
#include <string.h>

#define COMBINE_MAX_RANK 65536 /* hl_adapter_add's cap */

static const char *method_names[HL_COMBINE_METHOD_COUNT] = {"cat", "linear", "svd"};

const char *hl_combine_method_name(hl_combine_method method) {
    return (unsigned)method < HL_COMBINE_METHOD_COUNT ? method_names[method] : "unknown";
}

hl_status hl_combine_method_parse(const char *name, hl_combine_method *out, hl_error *err) {
    for (int i = 0; name && i < HL_COMBINE_METHOD_COUNT; i++)
        if (!strcmp(name, method_names[i])) {
            *out = (hl_combine_method)i;
            return HL_OK;
        }
    return hl_fail(err, HL_ERR_INVALID_ARG, "unknown combine method \"%s\" (want cat, linear or svd)",
                   name ? name : "(none)");
}

void hl_combine_report_free(hl_combine_report *report) {
    if (!report) return;
    hl_free(report->tensors);
    report->tensors = NULL;
    report->n_tensors = 0;
}

/* One input's contribution to one (layer, target). */
typedef struct part {
    const hl_adapter *a;
    const hl_lora_weight *w;
    double weight; /* wᵢ */
    double coef;   /* wᵢ·sᵢ */
} part;

typedef struct job {
    int layer, target;
    int64_t n_in, n_out;
    int64_t R; /* Σ ranks */
    int32_t np;
    part *parts;
    char name[64]; /* base tensor name, for messages */
} job;

/* ------------------------------------------------------------ dense kernels */

/* Writes Bc into columns [0, R) of X (out, ld) and Acᵀ into columns [0, R)
 * of Yt (in, ld), so that ΔW = X·Ytᵀ over those columns. */
static void stack_factors(const job *jb, int64_t ld, double *X, double *Yt) {
    int64_t off = 0;
    for (int32_t i = 0; i < jb->np; i++) {
        const hl_lora_weight *w = jb->parts[i].w;
        double c = jb->parts[i].coef;
        for (int64_t o = 0; o < jb->n_out; o++)
            for (int32_t r = 0; r < w->rank; r++) X[o * ld + off + r] = c * w->B[o * w->rank + r];
        for (int32_t r = 0; r < w->rank; r++)
            for (int64_t k = 0; k < jb->n_in; k++) Yt[k * ld + off + r] = w->A[(int64_t)r * jb->n_in + k];
        off += w->rank;
    }
}

/* --------------------------------------------------------------- methods */

/* Adds (A, B) at scale 1 (alpha = rank, standard scaling) to the result. */
static hl_status emit(hl_adapter *res, const hl_model *m, const job *jb, int64_t rank, const float *A, const float *B,
                      hl_error *err) {
    hl_status s = hl_adapter_add(res, m, jb->layer, jb->target, (int)rank, (float)rank, A, B, err);
    if (s != HL_OK) hl_error_prefix(err, "combine: %s", jb->name);
    return s;
}

/* cat: A = [A₁; A₂; …] (R, in), B = [w₁s₁B₁ | w₂s₂B₂ | …] (out, R). The
 * only rounding is of wᵢsᵢBᵢ, measured as ||E·Ac||_F with E the stacked
 * rounding errors. */
static hl_status combine_cat(hl_adapter *res, const hl_model *m, const job *jb, hl_combine_tensor_report *tr,
                             hl_error *err) {
    int64_t R = jb->R, in = jb->n_in, out = jb->n_out;
    float *A = hl_malloc_array((size_t)(R * in), sizeof(float));
    float *B = hl_malloc_array((size_t)(out * R), sizeof(float));
    double *X = hl_malloc_array((size_t)(out * R), sizeof(double));
    double *Yt = hl_malloc_array((size_t)(in * R), sizeof(double));
    hl_status s = HL_OK;
    if (!A || !B || !X || !Yt) {
        s = hl_fail(err, HL_ERR_NOMEM, "combine: out of memory for %s", jb->name);
        goto done;
    }
    stack_factors(jb, R, X, Yt);
    if ((s = hl_lowrank_product_norm(X, out, Yt, in, R, &tr->norm, err)) != HL_OK) goto done;
    int64_t off = 0;
    for (int32_t i = 0; i < jb->np; i++) {
        const hl_lora_weight *w = jb->parts[i].w;
        memcpy(A + off * in, w->A, (size_t)((int64_t)w->rank * in) * sizeof(float));
        off += w->rank;
    }
    for (int64_t e = 0; e < out * R; e++) {
        B[e] = (float)X[e];
        X[e] = (double)B[e] - X[e]; /* rounding error, for the report */
    }
    if ((s = hl_lowrank_product_norm(X, out, Yt, in, R, &tr->error, err)) != HL_OK) goto done;
    tr->rank_out = (int32_t)R;
    s = emit(res, m, jb, R, A, B, err);
done:
    hl_free(A);
    hl_free(B);
    hl_free(X);
    hl_free(Yt);
    return s;
}

/* linear (PEFT): A = Σ √wᵢ·sᵢ·Aᵢ, B = Σ √wᵢ·Bᵢ, all of one rank r. The
 * report measures ||ΔW - B·A||_F from the stack [Bc | -B] · [Ac; A]. */
static hl_status combine_linear(hl_adapter *res, const hl_model *m, const job *jb, hl_combine_tensor_report *tr,
                                hl_error *err) {
    int64_t in = jb->n_in, out = jb->n_out;
    int32_t r = jb->parts[0].w->rank;
    for (int32_t i = 1; i < jb->np; i++)
        if (jb->parts[i].w->rank != r)
            return hl_fail(err, HL_ERR_MISMATCH,
                           "combine linear: %s has rank %d in adapter %s but rank %d in adapter %s; linear needs "
                           "equal ranks (use --method cat or svd)",
                           jb->name, r, jb->parts[0].a->name, jb->parts[i].w->rank, jb->parts[i].a->name);
    int64_t K = jb->R + r;
    double *Ad = hl_calloc((size_t)(r * in), sizeof(double));
    double *Bd = hl_calloc((size_t)(out * r), sizeof(double));
    float *A = hl_malloc_array((size_t)(r * in), sizeof(float));
    float *B = hl_malloc_array((size_t)(out * r), sizeof(float));
    double *X = hl_malloc_array((size_t)(out * K), sizeof(double));
    double *Yt = hl_malloc_array((size_t)(in * K), sizeof(double));
    hl_status s = HL_OK;
    if (!Ad || !Bd || !A || !B || !X || !Yt) {
        s = hl_fail(err, HL_ERR_NOMEM, "combine: out of memory for %s", jb->name);
        goto done;
    }
    for (int32_t i = 0; i < jb->np; i++) {
        const hl_lora_weight *w = jb->parts[i].w;
        double sw = sqrt(jb->parts[i].weight), sa = sw * (double)hl_lora_weight_scale(jb->parts[i].a, w);
        for (int64_t e = 0; e < r * in; e++) Ad[e] += sa * w->A[e];
        for (int64_t e = 0; e < out * r; e++) Bd[e] += sw * w->B[e];
    }
    for (int64_t e = 0; e < r * in; e++) A[e] = (float)Ad[e];
    for (int64_t e = 0; e < out * r; e++) B[e] = (float)Bd[e];
    /* columns [0, R): the target ΔW; columns [R, R + r): minus what we store */
    stack_factors(jb, K, X, Yt);
    for (int64_t o = 0; o < out; o++)
        for (int32_t j = 0; j < r; j++) X[o * K + jb->R + j] = -(double)B[o * r + j];
    for (int64_t k = 0; k < in; k++)
        for (int32_t j = 0; j < r; j++) Yt[k * K + jb->R + j] = A[(int64_t)j * in + k];
    if ((s = hl_lowrank_product_norm(X, out, Yt, in, K, &tr->error, err)) != HL_OK) goto done;
    /* the target alone: the first R columns, read with leading dimension K */
    for (int64_t o = 0; o < out; o++)
        for (int32_t j = 0; j < r; j++) X[o * K + jb->R + j] = 0;
    if ((s = hl_lowrank_product_norm(X, out, Yt, in, K, &tr->norm, err)) != HL_OK) goto done;
    tr->rank_out = r;
    s = emit(res, m, jb, r, A, B, err);
done:
    hl_free(Ad);
    hl_free(Bd);
    hl_free(A);
    hl_free(B);
    hl_free(X);
    hl_free(Yt);
    return s;
}

/* svd: the best rank-k approximation of ΔW, B = U_k·√Σ_k, A = √Σ_k·V_kᵀ
 * (the balanced split keeps both factors at the same magnitude). */
static hl_status combine_svd(hl_adapter *res, const hl_model *m, const job *jb, int32_t want_rank,
                             hl_combine_tensor_report *tr, hl_error *err) {
    int64_t R = jb->R, in = jb->n_in, out = jb->n_out;
    double *X = hl_malloc_array((size_t)(out * R), sizeof(double));
    double *Yt = hl_malloc_array((size_t)(in * R), sizeof(double));
    double *G = NULL, *V = NULL, *sigma = NULL, *left = NULL, *right = NULL;
    int64_t *order = NULL;
    float *A = NULL, *B = NULL;
    hl_lowrank_core c = {0};
    hl_status s = HL_OK;
    if (!X || !Yt) {
        s = hl_fail(err, HL_ERR_NOMEM, "combine: out of memory for %s", jb->name);
        goto done;
    }
    stack_factors(jb, R, X, Yt);
    if ((s = hl_lowrank_core_build(X, out, Yt, in, R, 1, &c, err)) != HL_OK) goto done;
    tr->norm = hl_frobenius(c.M, c.p * c.q);
    if (!isfinite(tr->norm)) {
        s = hl_fail(err, HL_ERR_INVALID_ARG, "combine: %s: the weighted sum is not finite (inf or NaN in an input)",
                    jb->name);
        goto done;
    }
    /* Jacobi wants rows >= cols: work on M (p, q) or on Mᵀ. */
    int transposed = c.p < c.q;
    int64_t rows = transposed ? c.q : c.p, cols = transposed ? c.p : c.q;
    G = hl_malloc_array((size_t)(rows * cols), sizeof(double));
    V = hl_malloc_array((size_t)(cols * cols), sizeof(double));
    sigma = hl_malloc_array((size_t)cols, sizeof(double));
    order = hl_malloc_array((size_t)cols, sizeof(int64_t));
    left = hl_malloc_array((size_t)c.p, sizeof(double));
    right = hl_malloc_array((size_t)c.q, sizeof(double));
    if (!G || !V || !sigma || !order || !left || !right) {
        s = hl_fail(err, HL_ERR_NOMEM, "combine: out of memory for %s", jb->name);
        goto done;
    }
    for (int64_t i = 0; i < c.p; i++)
        for (int64_t j = 0; j < c.q; j++) {
            if (transposed) G[j * cols + i] = c.M[i * c.q + j];
            else G[i * cols + j] = c.M[i * c.q + j];
        }
    tr->sweeps = hl_jacobi_svd(G, rows, cols, V);
    if (tr->sweeps < 0) {
        s = hl_fail(err, HL_ERR_LIMIT, "combine: %s: the Jacobi SVD did not converge in %d sweeps", jb->name,
                    HL_JACOBI_MAX_SWEEPS);
        goto done;
    }
    for (int64_t j = 0; j < cols; j++) {
        double acc = 0;
        for (int64_t r = 0; r < rows; r++) acc += G[r * cols + j] * G[r * cols + j];
        sigma[j] = sqrt(acc);
        order[j] = j;
    }
    /* Descending σ; insertion sort is stable, so ties keep column order. */
    for (int64_t j = 1; j < cols; j++) {
        int64_t v = order[j], i = j;
        while (i > 0 && sigma[order[i - 1]] < sigma[v]) {
            order[i] = order[i - 1];
            i--;
        }
        order[i] = v;
    }
    int64_t k = want_rank < cols ? want_rank : cols;
    tr->clamped = want_rank > cols;
    double dropped = 0;
    for (int64_t j = k; j < cols; j++) dropped += sigma[order[j]] * sigma[order[j]];
    tr->error = sqrt(dropped);
    A = hl_calloc((size_t)(k * in), sizeof(float));
    B = hl_calloc((size_t)(out * k), sizeof(float));
    if (!A || !B) {
        s = hl_fail(err, HL_ERR_NOMEM, "combine: out of memory for %s", jb->name);
        goto done;
    }
    for (int64_t jj = 0; jj < k; jj++) {
        int64_t j = order[jj];
        double sg = sigma[j];
        if (sg == 0) continue; /* a zero direction: leave the component 0 */
        /* M = Σ σ·left·rightᵀ: without the transpose G's column is σ·left and
         * V's column is right; with it the roles swap. */
        for (int64_t i = 0; i < c.p; i++) left[i] = transposed ? V[i * cols + j] : G[i * cols + j] / sg;
        for (int64_t i = 0; i < c.q; i++) right[i] = transposed ? G[i * cols + j] / sg : V[i * cols + j];
        double rs = sqrt(sg);
        for (int64_t o = 0; o < out; o++) {
            double acc = 0;
            for (int64_t i = 0; i < c.p; i++) acc += c.Qx[o * c.p + i] * left[i];
            B[o * k + jj] = (float)(rs * acc);
        }
        for (int64_t x = 0; x < in; x++) {
            double acc = 0;
            for (int64_t i = 0; i < c.q; i++) acc += c.Qy[x * c.q + i] * right[i];
            A[jj * in + x] = (float)(rs * acc);
        }
    }
    tr->rank_out = (int32_t)k;
    s = emit(res, m, jb, k, A, B, err);
done:
    hl_lowrank_core_free(&c);
    hl_free(X);
    hl_free(Yt);
    hl_free(G);
    hl_free(V);
    hl_free(sigma);
    hl_free(order);
    hl_free(left);
    hl_free(right);
    hl_free(A);
    hl_free(B);
    return s;
}

/* ------------------------------------------------------------------ driver */

/* Every input must fit m: same layer count, every weight the base's shape. */
static hl_status check_input(const hl_model *m, const hl_adapter *a, int32_t i, hl_error *err) {
    const char *nm = a->name ? a->name : "(unnamed)";
    if (a->n_layers != m->cfg.n_layers)
        return hl_fail(err, HL_ERR_MISMATCH, "combine: adapter %d (%s) was made for %d layers, the model has %d", i,
                       nm, a->n_layers, m->cfg.n_layers);
    if (!a->lookup) return hl_fail(err, HL_ERR_INVALID_ARG, "combine: adapter %d (%s) is not indexed", i, nm);
    for (int32_t j = 0; j < a->n_weights; j++) {
        const hl_lora_weight *w = &a->w[j];
        int64_t rows, cols;
        char tn[64];
        if (w->target < 0 || w->target >= HL_TARGET_COUNT || !hl_model_weight_shape(m, w->layer, w->target, &rows, &cols))
            return hl_fail(err, HL_ERR_MISMATCH, "combine: adapter %d (%s) adapts a projection the base lacks", i, nm);
        hl_model_tensor_name(w->layer, w->target, tn, sizeof tn);
        if (w->n_in != cols || w->n_out != rows || w->rank <= 0 || !w->A || !w->B)
            return hl_fail(err, HL_ERR_MISMATCH,
                           "combine: adapter %d (%s): %s maps %lld -> %lld at rank %d, the base weight is "
                           "%lld -> %lld",
                           i, nm, tn, (long long)w->n_in, (long long)w->n_out, w->rank, (long long)cols,
                           (long long)rows);
    }
    return HL_OK;
}

hl_status hl_adapter_combine(const hl_model *m, const hl_adapter *const *adapters, const float *weights, int32_t n,
                             hl_combine_method method, int32_t svd_rank, const char *name, hl_adapter **out,
                             hl_combine_report *report, hl_error *err) {
    if (out) *out = NULL;
    if (report) memset(report, 0, sizeof *report);
    if (!m || !out) return hl_fail(err, HL_ERR_INVALID_ARG, "combine: no model or no output");
    if (n <= 0 || !adapters || !weights)
        return hl_fail(err, HL_ERR_INVALID_ARG, "combine: no adapters given (need at least one)");
    if ((unsigned)method >= HL_COMBINE_METHOD_COUNT)
        return hl_fail(err, HL_ERR_INVALID_ARG, "combine: unknown method %d (want cat, linear or svd)", (int)method);
    if (method == HL_COMBINE_SVD && (svd_rank < 1 || svd_rank > COMBINE_MAX_RANK))
        return hl_fail(err, HL_ERR_INVALID_ARG, "combine svd: needs a target rank in [1, %d] (--rank K), got %d",
                       COMBINE_MAX_RANK, svd_rank);
    const hl_adapter *fp_src = NULL, *lex_src = NULL;
    for (int32_t i = 0; i < n; i++) {
        const hl_adapter *a = adapters[i];
        if (!a) return hl_fail(err, HL_ERR_INVALID_ARG, "combine: adapter %d is missing", i);
        if (!isfinite(weights[i]))
            return hl_fail(err, HL_ERR_INVALID_ARG, "combine: the weight of adapter %d (%s) is not finite", i,
                           a->name ? a->name : "");
        if (method == HL_COMBINE_LINEAR && weights[i] < 0)
            return hl_fail(err, HL_ERR_INVALID_ARG,
                           "combine linear: adapter %d (%s) has weight %g, but linear takes √w and needs w >= 0; "
                           "use --method cat (exact) for negative weights",
                           i, a->name ? a->name : "", (double)weights[i]);
        hl_status s = check_input(m, a, i, err);
        if (s != HL_OK) return s;
        if (strcmp(a->arch ? a->arch : "llama", adapters[0]->arch ? adapters[0]->arch : "llama") != 0)
            return hl_fail(err, HL_ERR_MISMATCH, "combine: adapters %s and %s have different architectures",
                           adapters[0]->name, a->name);
        if (a->has_fingerprint) {
            if (fp_src && fp_src->base_fingerprint != a->base_fingerprint)
                return hl_fail(err, HL_ERR_MISMATCH,
                               "combine: adapters %s (base %016llx) and %s (base %016llx) were made for different "
                               "bases",
                               fp_src->name, (unsigned long long)fp_src->base_fingerprint, a->name,
                               (unsigned long long)a->base_fingerprint);
            if (!fp_src) fp_src = a;
        }
        /* A scene decoder's lexicon says which token each hyperlexeme is: the
         * result keeps it, and decoders that disagree on it cannot be mixed. */
        if (a->lexicon) {
            if (lex_src && strcmp(lex_src->lexicon, a->lexicon) != 0)
                return hl_fail(err, HL_ERR_MISMATCH,
                               "combine: adapters %s and %s were trained with different lexicons; a combined "
                               "decoder can keep only one",
                               lex_src->name, a->name);
            if (!lex_src) lex_src = a;
        }
    }

    hl_adapter *res = NULL;
    hl_status s = hl_adapter_new(m, name ? name : "combined", 0.0f, 0, &res, err);
    if (s != HL_OK) return s;
    /* Keep what the inputs say about their base, not what m is. */
    res->has_fingerprint = fp_src != NULL;
    res->base_fingerprint = fp_src ? fp_src->base_fingerprint : 0;
    if (lex_src && !(res->lexicon = hl_strdup(lex_src->lexicon))) {
        hl_adapter_free(res);
        return hl_fail(err, HL_ERR_NOMEM, "out of memory");
    }
    if (adapters[0]->arch && strcmp(res->arch, adapters[0]->arch) != 0) {
        char *arch = hl_strdup(adapters[0]->arch);
        if (!arch) {
            hl_adapter_free(res);
            return hl_fail(err, HL_ERR_NOMEM, "out of memory");
        }
        hl_free(res->arch);
        res->arch = arch;
    }

    int32_t L = m->cfg.n_layers, cap = (L + 1) * HL_TARGET_COUNT;
    part *parts = hl_malloc_array((size_t)n, sizeof *parts);
    hl_combine_tensor_report *trs = hl_calloc((size_t)cap, sizeof *trs);
    int32_t nt = 0;
    if (!parts || !trs) s = hl_fail(err, HL_ERR_NOMEM, "out of memory");
    /* Result order: layers 0..L-1 (q k v o gate up down), then output. */
    for (int32_t l = 0; s == HL_OK && l <= L; l++)
        for (int t = 0; s == HL_OK && t < HL_TARGET_COUNT; t++) {
            int layer = l == L ? -1 : l;
            if ((layer < 0) != (t == HL_TARGET_OUTPUT)) continue;
            job jb = {.layer = layer, .target = t, .parts = parts};
            for (int32_t i = 0; i < n; i++) {
                const hl_lora_weight *w = hl_adapter_find(adapters[i], layer, t);
                if (!w) continue;
                double sc = (double)hl_lora_weight_scale(adapters[i], w);
                parts[jb.np++] = (part){.a = adapters[i], .w = w, .weight = weights[i], .coef = weights[i] * sc};
                jb.R += w->rank;
                jb.n_in = w->n_in;
                jb.n_out = w->n_out;
            }
            if (jb.np == 0) continue;
            hl_model_tensor_name(layer, t, jb.name, sizeof jb.name);
            if (jb.R > COMBINE_MAX_RANK && method == HL_COMBINE_CAT) {
                s = hl_fail(err, HL_ERR_LIMIT, "combine cat: %s would have rank %lld, above %d", jb.name,
                            (long long)jb.R, COMBINE_MAX_RANK);
                break;
            }
            hl_combine_tensor_report *tr = &trs[nt++];
            tr->layer = layer;
            tr->target = t;
            tr->rank_in = (int32_t)(jb.R > INT32_MAX ? INT32_MAX : jb.R);
            if (method == HL_COMBINE_CAT) s = combine_cat(res, m, &jb, tr, err);
            else if (method == HL_COMBINE_LINEAR) s = combine_linear(res, m, &jb, tr, err);
            else s = combine_svd(res, m, &jb, svd_rank, tr, err);
            tr->rel_error = tr->norm > 0 ? tr->error / tr->norm : 0.0;
        }
    if (s == HL_OK && res->n_weights == 0) s = hl_fail(err, HL_ERR_INVALID_ARG, "combine: the inputs have no weights");
    if (s == HL_OK) s = hl_adapter_index(res, err);
    hl_free(parts);
    if (s != HL_OK) {
        hl_free(trs);
        hl_adapter_free(res);
        return s;
    }
    /* The default alpha: the most common rank (first one on ties), so that
     * the usual alpha/r = 1 holds for most tensors. */
    int32_t best = 0;
    for (int32_t i = 0; i < res->n_weights; i++) {
        int32_t cnt = 0;
        for (int32_t j = 0; j < res->n_weights; j++) cnt += res->w[j].rank == res->w[i].rank;
        if (cnt > best) {
            best = cnt;
            res->alpha = (float)res->w[i].rank;
        }
    }
    if (report) {
        double n2 = 0, e2 = 0;
        for (int32_t i = 0; i < nt; i++) {
            n2 += trs[i].norm * trs[i].norm;
            e2 += trs[i].error * trs[i].error;
            report->n_clamped += trs[i].clamped;
        }
        report->method = method;
        report->n_tensors = nt;
        report->tensors = trs;
        report->total_norm = sqrt(n2);
        report->total_error = sqrt(e2);
        report->total_rel_error = n2 > 0 ? report->total_error / report->total_norm : 0.0;
    } else hl_free(trs);
    *out = res;
    return HL_OK;
}
