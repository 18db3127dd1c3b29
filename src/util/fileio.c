/* fileio.c: mmap for reading, temp+fsync+rename for writing, and the
 * single-path form of the output rule (the plan is in fileio_plan.c). */
#include "util/fileio.h"
#include "util/alloc.h"
#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *file_kind(mode_t m) {
    return S_ISDIR(m) ? "a directory" : S_ISFIFO(m) ? "a FIFO" : S_ISCHR(m) ? "a character device"
         : S_ISBLK(m) ? "a block device" : S_ISSOCK(m) ? "a socket" : "not a regular file";
}

/* Opens path (flags | O_NONBLOCK | O_CLOEXEC) and checks that it is a regular
 * file: *fd and *st on success, a message naming the path and what it is
 * otherwise. O_NONBLOCK so that opening a FIFO does not wait for a writer
 * before it is refused; a regular file's reads ignore the flag. */
static hl_status open_regular(const char *path, int flags, int *fd, struct stat *st, hl_error *err) {
    *fd = open(path, flags | O_NONBLOCK | O_CLOEXEC);
    if (*fd < 0) return hl_fail(err, HL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(*fd, st) != 0) {
        int e = errno;
        close(*fd);
        return hl_fail(err, HL_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st->st_mode)) {
        close(*fd);
        return hl_fail(err, HL_ERR_IO, "%s: not a regular file (%s)", path, file_kind(st->st_mode));
    }
    return HL_OK;
}

int hl_file_starts_with(const char *path, const void *magic, size_t n) {
    int fd;
    struct stat st;
    hl_error ignored = {0};
    if (open_regular(path, O_RDONLY, &fd, &st, &ignored) != HL_OK) return 0;
    unsigned char head[64];
    int is = n <= sizeof head && read(fd, head, n) == (ssize_t)n && memcmp(head, magic, n) == 0;
    close(fd);
    return is;
}

FILE *hl_fopen_regular(const char *path, hl_error *err) {
    int fd;
    struct stat st;
    if (open_regular(path, O_RDONLY, &fd, &st, err) != HL_OK) return NULL;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        hl_fail(err, HL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        close(fd);
    }
    return f;
}

hl_status hl_map_file(const char *path, hl_mapped_file *out, hl_error *err) {
    out->data = NULL;
    out->size = 0;
    out->fd = -1;
    int fd;
    struct stat st;
    hl_status s = open_regular(path, O_RDONLY, &fd, &st, err);
    if (s != HL_OK) return s;
    if (st.st_size == 0) {
        close(fd);
        out->data = (const uint8_t *)"";
        return HL_OK;
    }
    /* PROT_READ + MAP_PRIVATE: nothing here can ever write to the file. */
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
        int e = errno;
        close(fd);
        return hl_fail(err, HL_ERR_IO, "%s: cannot mmap: %s", path, strerror(e));
    }
    out->data = p;
    out->size = (size_t)st.st_size;
    out->fd = fd; /* kept for hl_mapped_file_check */
    return HL_OK;
}

void hl_unmap_file(hl_mapped_file *f) {
    if (f->size) {
        munmap((void *)f->data, f->size);
        if (f->fd >= 0) close(f->fd);
    }
    f->data = NULL;
    f->size = 0;
    f->fd = -1;
}

hl_status hl_mapped_file_check(const hl_mapped_file *f, const char *path, hl_error *err) {
    if (!f->size || f->fd < 0) return HL_OK;
    struct stat st;
    if (fstat(f->fd, &st) != 0) return hl_fail(err, HL_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    if (st.st_size < 0 || (uint64_t)st.st_size < (uint64_t)f->size)
        return hl_fail(err, HL_ERR_IO,
                       "%s was truncated by another process while in use (%lld bytes left of %zu); stopping",
                       path, (long long)st.st_size, f->size);
    return HL_OK;
}


hl_status hl_output_check(const char *path, const char *prefix, const char *what, hl_error *err) {
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT) return HL_OK;
        return hl_fail(err, HL_ERR_IO, "%s: cannot examine the output: %s", path, strerror(errno));
    }
    if (S_ISLNK(st.st_mode))
        return hl_fail(err, HL_ERR_INVALID_ARG,
                       "%s is a symbolic link; outputs are not written through links (give the file it points to)",
                       path);
    if (!S_ISREG(st.st_mode))
        return hl_fail(err, HL_ERR_INVALID_ARG, "%s is %s; outputs are only written as regular files", path,
                       file_kind(st.st_mode));
    if (!prefix || st.st_size == 0) return HL_OK;
    /* O_NOFOLLOW | O_NONBLOCK: a file swapped for a link or a FIFO since the lstat is not read through. */
    size_t n = strlen(prefix);
    char head[64];
    if (n > sizeof head) n = sizeof head;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return hl_fail(err, HL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    ssize_t got = read(fd, head, n);
    close(fd);
    if (got != (ssize_t)n || memcmp(head, prefix, n) != 0)
        return hl_fail(err, HL_ERR_INVALID_ARG, "%s is not %s (it does not start with %s); refusing to replace it",
                       path, what ? what : "a file of this kind", prefix);
    return HL_OK;
}

/* n characters of [0-9A-Za-z] from the kernel's random source; from the clock,
 * the pid and a stack address should that be unavailable. */
static void random_name(char *buf, size_t n, unsigned attempt) {
    static const char set[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    unsigned char r[32];
    if (n > sizeof r) n = sizeof r;
    if (getrandom(r, n, GRND_NONBLOCK) != (ssize_t)n) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ ((uint64_t)getpid() << 16) ^
                     (uint64_t)(uintptr_t)&ts ^ ((uint64_t)attempt << 48);
        for (size_t i = 0; i < n; i++) { /* splitmix64 */
            x += 0x9e3779b97f4a7c15ULL;
            uint64_t z = x;
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
            r[i] = (unsigned char)(z ^ (z >> 31));
        }
    }
    for (size_t i = 0; i < n; i++) buf[i] = set[r[i] % (sizeof set - 1)];
    buf[n] = 0;
}

/* The process umask, without changing it (umask(2) can only read by writing,
 * which would race with other threads creating files). */
static mode_t current_umask(void) {
    FILE *f = fopen("/proc/self/status", "re");
    if (f) {
        char line[256];
        unsigned mask;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "Umask: %o", &mask) == 1) {
                fclose(f);
                return (mode_t)(mask & 0777);
            }
        fclose(f);
    }
    mode_t m = umask(022); /* no /proc: the classic read-and-restore */
    umask(m);
    return m;
}

#define TEMP_NAME_CHARS 12
#define TEMP_NAME_TRIES 100

hl_status hl_atomic_file_open(hl_atomic_file *af, const char *path, hl_error *err) {
    memset(af, 0, sizeof *af);
    hl_status s = hl_output_check(path, NULL, NULL, err);
    if (s != HL_OK) return s;
    size_t n = strlen(path) + TEMP_NAME_CHARS + 8;
    af->final_path = hl_strdup(path);
    af->tmp_path = hl_malloc(n);
    if (!af->final_path || !af->tmp_path) {
        hl_atomic_file_abort(af);
        return hl_fail(err, HL_ERR_NOMEM, "%s: out of memory", path);
    }
    /* O_EXCL | O_NOFOLLOW: a name someone else holds (a file, a planted
     * symlink) is never opened, let alone followed; another one is drawn. */
    int fd = -1, e = 0;
    for (unsigned attempt = 0; fd < 0 && attempt < TEMP_NAME_TRIES; attempt++) {
        char sfx[TEMP_NAME_CHARS + 1];
        random_name(sfx, TEMP_NAME_CHARS, attempt);
        snprintf(af->tmp_path, n, "%s.tmp.%s", path, sfx);
        fd = open(af->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        e = errno;
        if (fd < 0 && e != EEXIST) break;
    }
    if (fd >= 0 && !(af->fp = fdopen(fd, "wb"))) {
        e = errno;
        close(fd);
        unlink(af->tmp_path);
        fd = -1;
    }
    if (fd < 0) {
        s = hl_fail(err, HL_ERR_IO, "%s: cannot create a temp file beside it: %s", path, strerror(e));
        hl_free(af->tmp_path); /* not ours: never unlink it */
        af->tmp_path = NULL;
        hl_atomic_file_abort(af);
        return s;
    }
    return HL_OK;
}

hl_status hl_atomic_file_write(hl_atomic_file *af, const void *data, size_t n, hl_error *err) {
    if (n && fwrite(data, 1, n, af->fp) != n)
        return hl_fail(err, HL_ERR_IO, "%s: write failed: %s", af->tmp_path, strerror(errno));
    return HL_OK;
}

static void fsync_parent_dir(const char *path) {
    /* No heap here: after the rename an out-of-memory must not skip the fsync. */
    char copy[4096];
    if (strlen(path) >= sizeof copy) return; /* longer than PATH_MAX: it could not have been opened */
    memcpy(copy, path, strlen(path) + 1);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

hl_status hl_atomic_file_commit(hl_atomic_file *af, hl_error *err) {
    hl_status s = HL_OK;
    if (fflush(af->fp) != 0)
        s = hl_fail(err, HL_ERR_IO, "%s: write failed: %s", af->final_path, strerror(errno));
    /* 0600 while being written; the usual mode of a new file once complete. */
    if (s == HL_OK && fchmod(fileno(af->fp), 0666 & ~current_umask()) != 0)
        s = hl_fail(err, HL_ERR_IO, "%s: cannot set the mode: %s", af->tmp_path, strerror(errno));
    if (s == HL_OK && fsync(fileno(af->fp)) != 0)
        s = hl_fail(err, HL_ERR_IO, "%s: flush failed: %s", af->final_path, strerror(errno));
    if (fclose(af->fp) != 0 && s == HL_OK)
        s = hl_fail(err, HL_ERR_IO, "%s: close failed: %s", af->final_path, strerror(errno));
    af->fp = NULL;
    /* Checked again just before the rename: what took its place meanwhile is not replaced either. */
    if (s == HL_OK) s = hl_output_check(af->final_path, NULL, NULL, err);
    if (s == HL_OK && rename(af->tmp_path, af->final_path) != 0)
        s = hl_fail(err, HL_ERR_IO, "%s: rename failed: %s", af->final_path, strerror(errno));
    if (s == HL_OK) {
        fsync_parent_dir(af->final_path);
        hl_free(af->tmp_path);
        af->tmp_path = NULL;
    }
    hl_atomic_file_abort(af);
    return s;
}

void hl_atomic_file_abort(hl_atomic_file *af) {
    if (af->fp) fclose(af->fp);
    af->fp = NULL;
    if (af->tmp_path) unlink(af->tmp_path);
    hl_free(af->tmp_path);
    hl_free(af->final_path);
    af->tmp_path = af->final_path = NULL;
}

hl_status hl_read_file(const char *path, size_t max_size, char **out, size_t *out_size, hl_error *err) {
    /* Only regular files, and only up to max_size: the size comes from fstat
     * before anything is allocated, so /dev/zero, a FIFO or a huge file is
     * refused at once instead of being read until memory runs out. A file
     * that grows while it is read is cut off at max_size + 1 bytes and refused. */
    *out = NULL;
    if (out_size) *out_size = 0;
    int fd;
    struct stat st;
    hl_status rs = open_regular(path, O_RDONLY, &fd, &st, err);
    if (rs != HL_OK) return rs;
    if (st.st_size < 0 || (uint64_t)st.st_size > (uint64_t)max_size) {
        close(fd);
        return hl_fail(err, HL_ERR_LIMIT, "%s: %lld bytes, larger than the %zu-byte limit", path,
                       (long long)st.st_size, max_size);
    }
    size_t cap = (size_t)st.st_size + 1; /* + the NUL; a file that grew is noticed below */
    char *buf = hl_malloc(cap);
    if (!buf) {
        close(fd);
        return hl_fail(err, HL_ERR_NOMEM, "%s: out of memory for %zu bytes", path, cap);
    }
    size_t len = 0;
    for (;;) {
        if (len + 1 >= cap) {
            /* Full as fstat said: one more byte tells EOF from a file that grew meanwhile. */
            char extra;
            ssize_t more = read(fd, &extra, 1);
            if (more < 0 && errno == EINTR) continue;
            if (more <= 0) {
                if (more < 0) {
                    int e = errno;
                    hl_free(buf);
                    close(fd);
                    return hl_fail(err, HL_ERR_IO, "%s: read error: %s", path, strerror(e));
                }
                break;
            }
            /* It grew: allow up to max_size + 1 bytes (to see that it is too big), never more. */
            size_t want = cap > max_size / 2 ? max_size + 2 : cap * 2;
            if (len >= max_size + 1 || want <= cap) {
                len = max_size + 1;
                break;
            }
            char *nb = hl_realloc(buf, want);
            if (!nb) {
                hl_free(buf);
                close(fd);
                return hl_fail(err, HL_ERR_NOMEM, "%s: out of memory", path);
            }
            buf = nb;
            cap = want;
            buf[len++] = extra;
            continue;
        }
        ssize_t got = read(fd, buf + len, cap - 1 - len);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            int e = errno;
            hl_free(buf);
            close(fd);
            return hl_fail(err, HL_ERR_IO, "%s: read error: %s", path, strerror(e));
        }
        if (got == 0) break;
        len += (size_t)got;
    }
    close(fd);
    if (len > max_size) {
        hl_free(buf);
        return hl_fail(err, HL_ERR_LIMIT, "%s: larger than the %zu-byte limit", path, max_size);
    }
    buf[len] = 0;
    *out = buf;
    if (out_size) *out_size = len;
    return HL_OK;
}
