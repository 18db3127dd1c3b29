/* test_util.h: a minimal test harness shared by all test executables.
 * CHECK records a failure and continues; the process exits non-zero if any
 * check failed. Paths to reference material come from HL_SHARED_DIR. */
#ifndef HL_TEST_UTIL_H
#define HL_TEST_UTIL_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hl_test_failures = 0;
static int hl_test_checks = 0;

#define CHECK(cond) do { hl_test_checks++; if (!(cond)) { hl_test_failures++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define CHECK_MSG(cond, ...) do { hl_test_checks++; if (!(cond)) { hl_test_failures++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)
#define CHECK_OK(expr, errp) do { hl_status s_ = (expr); hl_test_checks++; if (s_ != HL_OK) { \
    hl_test_failures++; fprintf(stderr, "%s:%d: %s -> %s: %s\n", __FILE__, __LINE__, #expr, \
    hl_status_name(s_), (errp)->msg); } } while (0)
#define REQUIRE(cond) do { if (!(cond)) { fprintf(stderr, "%s:%d: REQUIRE failed: %s\n", \
    __FILE__, __LINE__, #cond); exit(1); } } while (0)

static inline int hl_test_finish(const char *name) {
    printf("%s: %d checks, %d failed\n", name, hl_test_checks, hl_test_failures);
    return hl_test_failures ? 1 : 0;
}

/* Joins HL_SHARED_DIR and a relative path into a static buffer slot. */
static inline const char *shared_path(const char *rel) {
    static char bufs[8][1024];
    static int slot = 0;
    char *b = bufs[slot++ & 7];
    snprintf(b, 1024, "%s/%s", HL_SHARED_DIR, rel);
    return b;
}

/* Reads a whole binary file into malloc'd memory (test use only). */
static inline void *read_whole(const char *path, size_t *size) {
    if (size) *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *p = malloc(n > 0 ? (size_t)n : 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) { free(p); p = NULL; }
    fclose(f);
    if (size) *size = (size_t)n;
    return p;
}
#endif
