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
/* Calls fn(target, file name, bytes, size) for every file of base/target/
 * (hidden files skipped); returns how many. For replaying fuzz corpora. */
#include <dirent.h>
static inline int hl_test_replay_dir(const char *base, const char *target,
                                     void (*fn)(const char *, const char *, const void *, size_t)) {
    char dpath[1024];
    snprintf(dpath, sizeof dpath, "%s/%s", base, target);
    DIR *dir = opendir(dpath);
    if (!dir) return 0;
    int count = 0;
    struct dirent *de;
    while ((de = readdir(dir))) {
        if (de->d_name[0] == '.') continue;
        char fpath[2048];
        snprintf(fpath, sizeof fpath, "%s/%s", dpath, de->d_name);
        size_t n;
        void *d = read_whole(fpath, &n);
        if (!d) continue;
        fn(target, de->d_name, d, n);
        free(d);
        count++;
    }
    closedir(dir);
    return count;
}
#endif
