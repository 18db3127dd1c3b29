/* fileio.c: mmap for reading, temp+fsync+rename for writing. */
#include "util/fileio.h"
#include "util/alloc.h"
#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

hl_status hl_map_file(const char *path, hl_mapped_file *out, hl_error *err) {
    out->data = NULL;
    out->size = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return hl_fail(err, HL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return hl_fail(err, HL_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return hl_fail(err, HL_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        out->data = (const uint8_t *)"";
        return HL_OK;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) return hl_fail(err, HL_ERR_IO, "%s: cannot mmap: %s", path, strerror(e));
    out->data = p;
    out->size = (size_t)st.st_size;
    return HL_OK;
}

void hl_unmap_file(hl_mapped_file *f) {
    if (f->size) munmap((void *)f->data, f->size);
    f->data = NULL;
    f->size = 0;
}

hl_status hl_atomic_file_open(hl_atomic_file *af, const char *path, hl_error *err) {
    memset(af, 0, sizeof *af);
    size_t n = strlen(path) + 32;
    af->final_path = hl_strdup(path);
    af->tmp_path = hl_malloc(n);
    if (!af->final_path || !af->tmp_path) {
        hl_atomic_file_abort(af);
        return hl_fail(err, HL_ERR_NOMEM, "%s: out of memory", path);
    }
    snprintf(af->tmp_path, n, "%s.tmp.%ld", path, (long)getpid());
    af->fp = fopen(af->tmp_path, "wb");
    if (!af->fp) {
        hl_status s = hl_fail(err, HL_ERR_IO, "%s: cannot create: %s", af->tmp_path, strerror(errno));
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
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

hl_status hl_atomic_file_commit(hl_atomic_file *af, hl_error *err) {
    hl_status s = HL_OK;
    if (fflush(af->fp) != 0 || fsync(fileno(af->fp)) != 0)
        s = hl_fail(err, HL_ERR_IO, "%s: flush failed: %s", af->tmp_path, strerror(errno));
    if (fclose(af->fp) != 0 && s == HL_OK)
        s = hl_fail(err, HL_ERR_IO, "%s: close failed: %s", af->tmp_path, strerror(errno));
    af->fp = NULL;
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
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) return hl_fail(err, HL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 4096, len = 0;
    char *buf = hl_malloc(cap);
    if (!buf) {
        fclose(fp);
        return hl_fail(err, HL_ERR_NOMEM, "%s: out of memory", path);
    }
    for (;;) {
        if (len + 1 >= cap) {
            if (cap > max_size) {
                hl_free(buf);
                fclose(fp);
                return hl_fail(err, HL_ERR_LIMIT, "%s: larger than the %zu-byte limit", path, max_size);
            }
            char *nb = hl_realloc(buf, cap * 2);
            if (!nb) {
                hl_free(buf);
                fclose(fp);
                return hl_fail(err, HL_ERR_NOMEM, "%s: out of memory", path);
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - 1 - len, fp);
        len += got;
        if (got == 0) break;
    }
    int bad = ferror(fp);
    fclose(fp);
    if (bad) {
        hl_free(buf);
        return hl_fail(err, HL_ERR_IO, "%s: read error", path);
    }
    if (len > max_size) {
        hl_free(buf);
        return hl_fail(err, HL_ERR_LIMIT, "%s: larger than the %zu-byte limit", path, max_size);
    }
    buf[len] = 0;
    *out = buf;
    if (out_size) *out_size = len;
    return HL_OK;
}
