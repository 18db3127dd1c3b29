/* bench_sgemm.c: the machine's reference points for the other benches.
 *
 *   - OpenBLAS cblas_sgemm GFLOP/s (the "sgemm peak"), loaded at run time
 *     with dlopen so that the build needs no BLAS: --blas-lib PATH, else
 *     libopenblas.so.0 from the loader path; skipped when absent;
 *   - our hl_matmul (out = x·Wᵀ, the forward projection, row-major weights),
 *     hl_matmul_packed (the same on packed panels, inference's default on SIMD
 *     builds), hl_matmul_nn and hl_matmul_packed_nn (dX = dY·W, the input
 *     gradient; the packed one is training's on AVX-512) on the same shapes;
 *   - read bandwidth: an AVX2 sum over a 1 GiB buffer, per thread count, as one
 *     sequential stream per thread and as eight (the decode tile's access pattern),
 *     which bounds decode speed (each token streams all the weights once).
 *
 * Shapes are M×K×N with M the token rows: 2048×2048×2048, and the s110M
 * training shapes 1024×768×2048 (gate/up) and 1024×2048×768 (down). Every
 * number is the median of --runs runs after one warm-up. */
#define _GNU_SOURCE /* dladdr */
#include "kernels/kernels.h"
#include "util/threadpool.h"

#include "bench_util.h"

#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CblasRowMajor = 101, CblasNoTrans = 111, CblasTrans = 112 };
typedef void (*sgemm_fn)(int order, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                         const float *B, int ldb, float beta, float *C, int ldc);
typedef void (*set_threads_fn)(int);
typedef char *(*get_str_fn)(void);

#define MAX_RUNS 32

static double median_time(void (*fn)(void *), void *arg, int runs) {
    double t[MAX_RUNS];
    fn(arg); /* warm-up */
    for (int r = 0; r < runs; r++) {
        double t0 = bench_now();
        fn(arg);
        t[r] = bench_now() - t0;
    }
    return bench_median(t, runs);
}

typedef struct gemm_case {
    int64_t M, K, N;
    float *x, *w, *out;
    float *wp;  /* w (N, K) packed, for x·Wᵀ */
    float *wpn; /* w read as (K, N), packed, for dY·W */
    hl_pool *pool;
    sgemm_fn sgemm;
} gemm_case;

static void run_blas_nt(void *p) { /* out (M,N) = x (M,K) · w (N,K)ᵀ */
    gemm_case *g = p;
    g->sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)g->M, (int)g->N, (int)g->K, 1.0f, g->x, (int)g->K, g->w,
             (int)g->K, 0.0f, g->out, (int)g->N);
}

static void run_blas_nn(void *p) { /* out (M,N) = x (M,K) · w (K,N) */
    gemm_case *g = p;
    g->sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)g->M, (int)g->N, (int)g->K, 1.0f, g->x, (int)g->K, g->w,
             (int)g->N, 0.0f, g->out, (int)g->N);
}

static void run_hl_matmul(void *p) {
    gemm_case *g = p;
    hl_matmul(g->pool, g->out, g->x, g->w, g->M, g->K, g->N);
}

static void run_hl_matmul_packed(void *p) {
    gemm_case *g = p;
    hl_matmul_packed(g->pool, g->out, g->N, g->x, g->wp, g->M, g->K, g->N);
}

static void run_hl_matmul_packed_nn(void *p) { /* out (M, N) = dy (M, K) · W (K, N) */
    gemm_case *g = p;
    hl_matmul_packed_nn(g->pool, g->out, g->x, g->wpn, g->M, g->K, g->N, 0);
}

static void run_hl_matmul_nn(void *p) { /* out (M, N) = dy (M, K) · W (K, N) */
    gemm_case *g = p;
    hl_matmul_nn(g->pool, g->out, g->x, g->w, g->M, g->K, g->N, 1.0f, 0);
}

typedef struct bw_job {
    const float *buf;
    int64_t n;
    int streams; /* 1: one sequential stream per thread; 8: eight, as a decode tile reads 8 weight rows */
    float partial[64];
} bw_job;

/* Eight concurrent sequential streams over [begin, end): compiled for AVX2
 * even in a portable build and used when the CPU has it (as
 * bench_sum_stream), else eight scalar sums. */
#ifdef BENCH_HAVE_AVX2_SUM
__attribute__((target("avx2"))) static float sum_streams8_avx2(const float *p, int64_t begin, int64_t end) {
    const int64_t len = (end - begin) / 8;
    float s = 0;
    __m256 a[8];
    for (int k = 0; k < 8; k++) a[k] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= len; i += 8)
        for (int k = 0; k < 8; k++) a[k] = _mm256_add_ps(a[k], _mm256_loadu_ps(p + begin + k * len + i));
    float l[8];
    for (int k = 1; k < 8; k++) a[0] = _mm256_add_ps(a[0], a[k]);
    _mm256_storeu_ps(l, a[0]);
    for (int k = 0; k < 8; k++) s += l[k];
    for (int k = 0; k < 8; k++)
        for (int64_t r = i; r < len; r++) s += p[begin + k * len + r];
    for (int64_t r = begin + 8 * len; r < end; r++) s += p[r];
    return s;
}
#endif
static float sum_streams8(const float *p, int64_t begin, int64_t end) {
#ifdef BENCH_HAVE_AVX2_SUM
    if (__builtin_cpu_supports("avx2")) return sum_streams8_avx2(p, begin, end);
#endif
    const int64_t len = (end - begin) / 8;
    float s[8] = {0}, t = 0;
    for (int64_t i = 0; i < len; i++)
        for (int k = 0; k < 8; k++) s[k] += p[begin + k * len + i];
    for (int64_t i = begin + 8 * len; i < end; i++) t += p[i];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])) + t;
}

static void bw_chunk(void *arg, int64_t begin, int64_t end, int worker) {
    bw_job *j = arg;
    j->partial[worker] += j->streams == 8 ? sum_streams8(j->buf, begin, end) : bench_sum_stream(j->buf, begin, end);
}

typedef struct bw_case {
    hl_pool *pool;
    bw_job job;
} bw_case;

static void run_bw(void *p) {
    bw_case *b = p;
    hl_pool_for(b->pool, b->job.n, 4096, bw_chunk, &b->job);
}

static void fill(float *x, int64_t n, uint32_t seed) {
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)((int32_t)(seed >> 8) - (1 << 23)) / (float)(1 << 23) * 0.1f;
    }
}

/* The operands on 64-byte lines, as the library allocates its activations
 * and packed weights (HL_VECTOR_ALIGN): from plain malloc every 512-bit load
 * of a row would straddle two lines. */
static float *lines_alloc(size_t bytes) { return aligned_alloc(64, (bytes + 63) / 64 * 64); }

int main(int argc, char **argv) {
    int threads = 2, runs = 5, do_bw = 1;
    const char *blas_lib = NULL, *json = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--no-bandwidth")) {
            do_bw = 0;
            continue;
        }
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help") || i + 1 >= argc) {
            printf("usage: bench_sgemm [--threads 2] [--runs 5] [--blas-lib PATH] [--no-bandwidth] [--json FILE]\n");
            return !strcmp(argv[i], "-h") || !strcmp(argv[i], "--help") ? 0 : 2;
        }
        const char *a = argv[i], *v = argv[++i];
        if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--runs")) runs = atoi(v);
        else if (!strcmp(a, "--blas-lib")) blas_lib = v;
        else if (!strcmp(a, "--json")) json = v;
        else {
            fprintf(stderr, "bench_sgemm: unknown option %s\n", a);
            return 2;
        }
    }
    if (threads < 1 || runs < 1 || runs > MAX_RUNS) {
        fprintf(stderr, "bench_sgemm: threads >= 1, runs 1..%d\n", MAX_RUNS);
        return 2;
    }
    char tbuf[16];
    snprintf(tbuf, sizeof tbuf, "%d", threads);
    setenv("OPENBLAS_NUM_THREADS", tbuf, 1); /* read when the library initialises */
    setenv("OMP_NUM_THREADS", tbuf, 1);
    void *lib = dlopen(blas_lib ? blas_lib : "libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    sgemm_fn sgemm = lib ? (sgemm_fn)dlsym(lib, "cblas_sgemm") : NULL;
    char blas_desc[8192] = "not found";
    if (sgemm) {
        set_threads_fn set = (set_threads_fn)dlsym(lib, "openblas_set_num_threads");
        if (set) set(threads);
        get_str_fn cfg = (get_str_fn)dlsym(lib, "openblas_get_config");
        get_str_fn core = (get_str_fn)dlsym(lib, "openblas_get_corename");
        Dl_info info;
        const char *path = dladdr((void *)sgemm, &info) && info.dli_fname ? info.dli_fname : "?";
        char real[4096];
        if (realpath(path, real)) path = real; /* through the Debian alternatives links */
        snprintf(blas_desc, sizeof blas_desc, "%s [%s; core %s]", path, cfg ? cfg() : "?", core ? core() : "?");
    } else {
        fprintf(stderr, "bench_sgemm: no OpenBLAS (%s); install libopenblas0 to get the sgemm peak\n",
                lib ? "no cblas_sgemm" : dlerror());
    }
    hl_pool *pool = hl_pool_init(threads);
    if (!pool) return 1;
    FILE *js = json ? fopen(json, "a") : NULL;

    printf("\nsgemm reference, %d threads, median of %d runs\nOpenBLAS: %s\n", threads, runs, blas_desc);
    printf("%-22s %-34s %10s %10s\n", "M x K x N", "kernel", "ms", "GFLOP/s");
    static const int64_t shapes[][3] = {{2048, 2048, 2048}, {1024, 768, 2048}, {1024, 2048, 768}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t M = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
        gemm_case g = {M, K, N, lines_alloc((size_t)(M * K) * 4), lines_alloc((size_t)(N * K) * 4),
                       lines_alloc((size_t)(M * N) * 4), lines_alloc((size_t)hl_packed_floats(N, K) * 4),
                       lines_alloc((size_t)hl_packed_floats(K, N) * 4), pool, sgemm};
        if (!g.x || !g.w || !g.out || !g.wp || !g.wpn) return 1;
        fill(g.x, M * K, 1);
        fill(g.w, N * K, 2);
        hl_pack_weights(g.wp, g.w, N, K);
        hl_pack_weights(g.wpn, g.w, K, N);
        struct {
            const char *name;
            void (*fn)(void *);
            int blas;
        } ks[] = {{"openblas sgemm x*W^T (NT)", run_blas_nt, 1},
                  {"openblas sgemm dY*W (NN)", run_blas_nn, 1},
                  {"hl_matmul x*W^T", run_hl_matmul, 0},
                  {"hl_matmul_packed x*W^T", run_hl_matmul_packed, 0},
                  {"hl_matmul_nn dY*W", run_hl_matmul_nn, 0},
                  {"hl_matmul_packed_nn dY*W", run_hl_matmul_packed_nn, 0}};
        for (size_t k = 0; k < sizeof ks / sizeof ks[0]; k++) {
            if (ks[k].blas && !sgemm) continue;
            double t = median_time(ks[k].fn, &g, runs);
            double gf = 2.0 * (double)M * (double)K * (double)N / t / 1e9;
            char shape[64];
            snprintf(shape, sizeof shape, "%lldx%lldx%lld", (long long)M, (long long)K, (long long)N);
            printf("%-22s %-34s %10.2f %10.1f\n", shape, ks[k].name, 1e3 * t, gf);
            if (js)
                fprintf(js,
                        "{\"bench\":\"sgemm\",\"kernel\":\"%s\",\"M\":%lld,\"K\":%lld,\"N\":%lld,\"threads\":%d,"
                        "\"runs\":%d,\"median_s\":%.6f,\"gflops\":%.3f,\"blas\":\"%s\"}\n",
                        ks[k].name, (long long)M, (long long)K, (long long)N, threads, runs, t, gf,
                        ks[k].blas ? blas_desc : "");
        }
        free(g.x);
        free(g.w);
        free(g.wp);
        free(g.wpn);
        free(g.out);
    }

    if (do_bw) {
        const int64_t n = (int64_t)1 << 28; /* 1 GiB of floats */
        float *buf = malloc((size_t)n * sizeof *buf);
        if (!buf) return 1;
        fill(buf, n, 3);
        printf("\nread bandwidth (sum over a 1 GiB buffer, median of %d runs)\n", runs);
        for (int streams = 1; streams <= 8; streams += 7)
            for (int t = 1; t <= threads; t++) {
                hl_pool *p = hl_pool_init(t);
                bw_case b = {p, {buf, n, streams, {0}}};
                double tm = median_time(run_bw, &b, runs);
                double gbs = (double)n * 4 / tm / 1e9;
                printf("  %d thread%s, %d stream%s each: %.1f GB/s\n", t, t > 1 ? "s" : "", streams,
                       streams > 1 ? "s" : "", gbs);
                if (js)
                    fprintf(js, "{\"bench\":\"read_bandwidth\",\"threads\":%d,\"streams\":%d,\"bytes\":%lld,"
                                "\"runs\":%d,\"median_s\":%.6f,\"GBps\":%.3f}\n",
                            t, streams, (long long)n * 4, runs, tm, gbs);
                hl_pool_free(p);
            }
        free(buf);
    }
    if (js) fclose(js);
    hl_pool_free(pool);
    return 0;
}
