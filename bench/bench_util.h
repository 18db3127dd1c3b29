/* bench_util.h: small helpers shared by the bench_*.c programs: a monotonic
 * clock, medians, peak RSS, the load average, and a measure of how much CPU
 * *other* processes used during a timed region (the machine is shared). */
#ifndef HL_BENCH_UTIL_H
#define HL_BENCH_UTIL_H
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static inline double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of n values (the array is not modified). */
static inline double bench_median(const double *v, int n) {
    if (n <= 0) return 0.0;
    double tmp[256];
    double *s = n <= 256 ? tmp : malloc((size_t)n * sizeof *s);
    if (!s) return 0.0;
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, bench_cmp_double);
    double m = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
    if (s != tmp) free(s);
    return m;
}

static inline double bench_min(const double *v, int n) {
    double m = n ? v[0] : 0;
    for (int i = 1; i < n; i++) m = v[i] < m ? v[i] : m;
    return m;
}

static inline double bench_max(const double *v, int n) {
    double m = n ? v[0] : 0;
    for (int i = 1; i < n; i++) m = v[i] > m ? v[i] : m;
    return m;
}

/* Peak resident set size of this process in MiB (Linux reports KiB). */
static inline double bench_peak_rss_mib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

static inline double bench_loadavg1(void) {
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1) l = -1;
        fclose(f);
    }
    return l;
}

/* System-wide busy jiffies (user+nice+system+irq+softirq) from /proc/stat. */
static inline long long bench_busy_jiffies(void) {
    long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return -1;
    int n = fscanf(f, "cpu %lld %lld %lld %lld %lld %lld %lld %lld", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
                   &v[7]);
    fclose(f);
    if (n < 7) return -1;
    return v[0] + v[1] + v[2] + v[5] + v[6];
}

static inline double bench_self_cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
           1e-6 * (double)ru.ru_stime.tv_usec;
}

/* CPU used by other processes during a timed region, in cores. */
typedef struct bench_interference {
    long long j0;
    double c0, t0;
} bench_interference;

static inline void bench_interference_begin(bench_interference *b) {
    b->j0 = bench_busy_jiffies();
    b->c0 = bench_self_cpu_s();
    b->t0 = bench_now();
}

/* Shortest interval the jiffy clock (100 Hz on Linux) measures to within
 * a few percent of a core; shorter ones give NAN. */
#define BENCH_INTERFERENCE_MIN_S 0.5

/* Intervals added up: busy jiffies of the whole machine, this process's
 * CPU seconds, wall seconds (jiffies < 0: unreadable). */
typedef struct bench_interference_sum {
    long long jiffies;
    double self_s, wall_s;
} bench_interference_sum;

/* Cores used by other processes over the intervals in s, NAN when they
 * were too short to tell. */
static inline double bench_interference_cores(const bench_interference_sum *s) {
    if (s->jiffies < 0 || s->wall_s < BENCH_INTERFERENCE_MIN_S) return NAN;
    double other = ((double)s->jiffies / (double)sysconf(_SC_CLK_TCK) - s->self_s) / s->wall_s;
    return other < 0 ? 0 : other;
}

/* The cores other processes used since bench_interference_begin(b): NAN
 * when that was shorter than BENCH_INTERFERENCE_MIN_S (a 0.1 s step read
 * as anything from 0 to 0.2 cores). The interval is also added to *sum
 * when sum is given, so that short steps can be judged together. */
static inline double bench_interference_end(const bench_interference *b, bench_interference_sum *sum) {
    long long j1 = bench_busy_jiffies();
    double c1 = bench_self_cpu_s(), t1 = bench_now();
    bench_interference_sum one = {b->j0 < 0 || j1 < 0 ? -1 : j1 - b->j0, c1 - b->c0, t1 - b->t0};
    if (sum) {
        sum->jiffies = sum->jiffies < 0 || one.jiffies < 0 ? -1 : sum->jiffies + one.jiffies;
        sum->self_s += one.self_s;
        sum->wall_s += one.wall_s;
    }
    return bench_interference_cores(&one);
}

/* Sum of p[begin, end) with one sequential stream: the read-bandwidth
 * reference (bench_sgemm) and the same-moment reference beside each decode
 * run (bench_infer). Four independent 8-lane sums, so the loads, not the
 * adds' latency, set the pace: compiled for AVX2 even in a portable build
 * (which would otherwise sum one float at a time, about 6 GB/s on a machine
 * that streams 50) and used when the CPU has it. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
__attribute__((target("avx2"))) static inline float bench_sum_stream_avx2(const float *p, int64_t begin, int64_t end) {
    float s = 0;
    int64_t i = begin;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (; end - i >= 32; i += 32) {
        a0 = _mm256_add_ps(a0, _mm256_loadu_ps(p + i));
        a1 = _mm256_add_ps(a1, _mm256_loadu_ps(p + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_loadu_ps(p + i + 16));
        a3 = _mm256_add_ps(a3, _mm256_loadu_ps(p + i + 24));
    }
    float l[8];
    _mm256_storeu_ps(l, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (int k = 0; k < 8; k++) s += l[k];
    for (; i < end; i++) s += p[i];
    return s;
}
#define BENCH_HAVE_AVX2_SUM 1
#endif
static inline float bench_sum_stream(const float *p, int64_t begin, int64_t end) {
#ifdef BENCH_HAVE_AVX2_SUM
    if (__builtin_cpu_supports("avx2")) return bench_sum_stream_avx2(p, begin, end);
#endif
    float s[8] = {0};
    int64_t i = begin;
    for (; end - i >= 8; i += 8)
        for (int k = 0; k < 8; k++) s[k] += p[i + k];
    for (; i < end; i++) s[0] += p[i];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}
#endif
