/* test_fileio.c: the output rule of util/fileio.h at the library level: the
 * atomic writer's temp files (private, unpredictable, never through a planted
 * link, removed on abort, umask mode on commit), the refusal of outputs that
 * are links or not regular files, hl_io_plan's collisions (existing files,
 * hard links, symlinks, paths that do not exist yet), out-of-memory in the
 * plan, and the truncation check of a mapping. The CLI-level cases, for every
 * command, are in test_outputs.sh. */
#include "hyperlora.h"
#include "util/alloc.h"
#include "util/fileio.h"
#include "test_util.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];

static const char *at(const char *name) {
    static char bufs[8][512];
    static int slot = 0;
    char *b = bufs[slot++ & 7];
    snprintf(b, 512, "%s/%s", dir, name);
    return b;
}

static void spit(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    REQUIRE(f);
    fputs(text, f);
    fclose(f);
}

static int n_temps(const char *path) {
    char pattern[600];
    snprintf(pattern, sizeof pattern, "%s.tmp.*", path);
    glob_t g;
    if (glob(pattern, 0, NULL, &g) != 0) return 0;
    int n = (int)g.gl_pathc;
    globfree(&g);
    return n;
}

static void test_atomic_file(void) {
    hl_error err = {0};
    const char *out = at("out.bin"), *victim = at("victim.txt");
    spit(victim, "victim");
    /* Links planted at predictable names are neither followed nor replaced. */
    char planted[600];
    snprintf(planted, sizeof planted, "%s.tmp.%ld", out, (long)getpid());
    REQUIRE(symlink(victim, planted) == 0);
    mode_t old = umask(027);
    hl_atomic_file af;
    CHECK_OK(hl_atomic_file_open(&af, out, &err), &err);
    struct stat st;
    const char *tmp = af.tmp_path;
    CHECK(tmp && strncmp(tmp, out, strlen(out)) == 0 && strlen(tmp) == strlen(out) + 5 + 12);
    CHECK(lstat(tmp, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0777) == 0600);
    CHECK_OK(hl_atomic_file_write(&af, "new", 3, &err), &err);
    CHECK_OK(hl_atomic_file_commit(&af, &err), &err);
    umask(old);
    CHECK(stat(out, &st) == 0 && (st.st_mode & 0777) == 0640);
    char *t = read_whole(out, NULL);
    CHECK(t && !memcmp(t, "new", 3));
    free(t);
    t = read_whole(victim, NULL);
    CHECK(t && !memcmp(t, "victim", 6));
    free(t);
    CHECK(lstat(planted, &st) == 0 && S_ISLNK(st.st_mode));
    unlink(planted);
    CHECK(n_temps(out) == 0);

    /* Two writers at once get different temp names; abort removes only its own. */
    hl_atomic_file a1, a2;
    CHECK_OK(hl_atomic_file_open(&a1, out, &err), &err);
    CHECK_OK(hl_atomic_file_open(&a2, out, &err), &err);
    CHECK(strcmp(a1.tmp_path, a2.tmp_path) != 0 && n_temps(out) == 2);
    hl_atomic_file_abort(&a1);
    CHECK(n_temps(out) == 1);
    hl_atomic_file_abort(&a2);
    CHECK(n_temps(out) == 0);

    /* A link as the output is refused, not replaced; so are FIFOs and directories. */
    const char *link = at("link.bin"), *fifo = at("fifo"), *sub = at("sub");
    REQUIRE(symlink(victim, link) == 0 && mkfifo(fifo, 0600) == 0 && mkdir(sub, 0700) == 0);
    CHECK(hl_atomic_file_open(&af, link, &err) == HL_ERR_INVALID_ARG && strstr(err.msg, "symbolic link"));
    CHECK(lstat(link, &st) == 0 && S_ISLNK(st.st_mode) && n_temps(link) == 0);
    CHECK(hl_atomic_file_open(&af, fifo, &err) == HL_ERR_INVALID_ARG && strstr(err.msg, "FIFO"));
    CHECK(lstat(fifo, &st) == 0 && S_ISFIFO(st.st_mode) && n_temps(fifo) == 0);
    CHECK(hl_atomic_file_open(&af, sub, &err) == HL_ERR_INVALID_ARG && strstr(err.msg, "directory"));
    /* Swapped for a FIFO while being written: the commit refuses and cleans up. */
    const char *late = at("late.bin");
    CHECK_OK(hl_atomic_file_open(&af, late, &err), &err);
    REQUIRE(mkfifo(late, 0600) == 0);
    CHECK(hl_atomic_file_commit(&af, &err) == HL_ERR_INVALID_ARG && strstr(err.msg, "FIFO"));
    CHECK(lstat(late, &st) == 0 && S_ISFIFO(st.st_mode) && n_temps(late) == 0);
    /* No directory: a clean error naming the path. */
    CHECK(hl_atomic_file_open(&af, at("missing/x.bin"), &err) == HL_ERR_IO && strstr(err.msg, "missing/x.bin"));
    unlink(late);
    unlink(link);
    unlink(fifo);
    rmdir(sub);
    unlink(out);
    unlink(victim);
}

static void test_output_check(void) {
    hl_error err = {0};
    const char *log = at("run.jsonl");
    CHECK_OK(hl_output_check(log, "{\"step\":", "a metrics log", &err), &err); /* missing: fine */
    spit(log, "");
    CHECK_OK(hl_output_check(log, "{\"step\":", "a metrics log", &err), &err); /* empty: fine */
    spit(log, "{\"step\":1}\n");
    CHECK_OK(hl_output_check(log, "{\"step\":", "a metrics log", &err), &err);
    spit(log, "GGUF");
    CHECK(hl_output_check(log, "{\"step\":", "a metrics log", &err) == HL_ERR_INVALID_ARG &&
          strstr(err.msg, "not a metrics log"));
    CHECK_OK(hl_output_check(log, NULL, NULL, &err), &err); /* any regular file may be replaced */
    unlink(log);
}

/* check_plan: the status of checking a plan of (role, flag, path) triples. */
static hl_status check_plan(hl_error *err, int n, const hl_io_role *roles, const char *const *flags,
                            const char *const *paths) {
    hl_io_plan p;
    hl_io_plan_init(&p);
    for (int i = 0; i < n; i++) hl_io_plan_add(&p, roles[i], flags[i], paths[i]);
    hl_status s = hl_io_plan_check(&p, err);
    hl_io_plan_free(&p);
    return s;
}

static void test_plan(void) {
    hl_error err = {0};
    char base[512], hard[512], sym[512]; /* kept: at()'s slots are reused */
    snprintf(base, sizeof base, "%s", at("base.gguf"));
    snprintf(hard, sizeof hard, "%s", at("hard.gguf"));
    snprintf(sym, sizeof sym, "%s", at("sym.gguf"));
    spit(base, "GGUF model");
    REQUIRE(link(base, hard) == 0 && symlink("base.gguf", sym) == 0 && mkdir(at("d"), 0700) == 0);
    const hl_io_role io[2] = {HL_IO_INPUT, HL_IO_OUTPUT}, oo[2] = {HL_IO_OUTPUT, HL_IO_OUTPUT};
    const char *f[2] = {"-m", "-o"}, *g[2] = {"-o", "--checkpoint"};
    const char *same[] = {base, hard, sym, at("d/../base.gguf")};
    for (int i = 0; i < 4; i++) {
        const char *p[2] = {base, same[i]};
        CHECK_MSG(check_plan(&err, 2, io, f, p) == HL_ERR_INVALID_ARG && strstr(err.msg, "-o ") &&
                      strstr(err.msg, "is the same file as -m "),
                  "%s: %s", same[i], err.msg);
    }
    /* Outputs that do not exist yet, in a directory that does not either (made by the command). */
    const char *p1[2] = {at("new/a.gguf"), at("d/../new/a.gguf")};
    const hl_io_role dirs[3] = {HL_IO_OUTPUT_DIR, HL_IO_OUTPUT, HL_IO_OUTPUT};
    const char *df[3] = {"--peft-out", "-o", "--checkpoint"}, *dp[3] = {at("new"), p1[0], p1[1]};
    CHECK(check_plan(&err, 3, dirs, df, dp) == HL_ERR_INVALID_ARG &&
          strstr(err.msg, "--checkpoint") && strstr(err.msg, "is the same file as -o"));
    const char *p2[2] = {at("x.gguf"), at("y.gguf")};
    CHECK_OK(check_plan(&err, 2, oo, g, p2), &err);
    /* ... but without the directory in the plan, its absence is an error. */
    const char *p3[2] = {at("nodir/x.gguf"), at("y.gguf")};
    CHECK(check_plan(&err, 2, oo, g, p3) == HL_ERR_INVALID_ARG && strstr(err.msg, "does not exist"));
    /* A log that holds something else. */
    hl_io_plan p;
    hl_io_plan_init(&p);
    hl_io_plan_add_log(&p, "--metrics", hard, "{\"step\":", "a metrics log");
    CHECK(hl_io_plan_check(&p, &err) == HL_ERR_INVALID_ARG && strstr(err.msg, "not a metrics log"));
    hl_io_plan_free(&p);
    /* Out of memory while adding: reported by the check, nothing leaks. */
    for (int k = 0; k < 12; k++) {
        hl_io_plan_init(&p);
        hl_alloc_fail_after(k);
        hl_io_plan_add(&p, HL_IO_INPUT, "-m", base);
        hl_io_plan_add_log(&p, "--metrics", at("m.jsonl"), "{\"step\":", "a metrics log");
        hl_io_plan_add(&p, HL_IO_OUTPUT, "-o", at("z.gguf"));
        hl_status s = hl_io_plan_check(&p, &err);
        hl_alloc_fail_after(-1);
        CHECK(s == HL_OK || s == HL_ERR_NOMEM);
        hl_io_plan_free(&p);
    }
    unlink(sym);
    unlink(hard);
    unlink(base);
    rmdir(at("d"));
}

static void test_mapping_check(void) {
    hl_error err = {0};
    const char *path = at("mapped.bin");
    char buf[8192];
    memset(buf, 'x', sizeof buf);
    FILE *f = fopen(path, "wb");
    REQUIRE(f && fwrite(buf, 1, sizeof buf, f) == sizeof buf);
    fclose(f);
    hl_mapped_file m;
    CHECK_OK(hl_map_file(path, &m, &err), &err);
    CHECK(m.size == sizeof buf && m.fd >= 0);
    CHECK_OK(hl_mapped_file_check(&m, path, &err), &err);
    REQUIRE(truncate(path, 100) == 0);
    CHECK(hl_mapped_file_check(&m, path, &err) == HL_ERR_IO && strstr(err.msg, "truncated by another process"));
    hl_unmap_file(&m);
    CHECK(m.fd == -1 && m.size == 0);
    unlink(path);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/hl_test_fileio_%ld", (long)getpid());
    REQUIRE(mkdir(dir, 0700) == 0);
    test_atomic_file();
    test_output_check();
    test_plan();
    test_mapping_check();
    rmdir(dir);
    return hl_test_finish("test_fileio");
}
