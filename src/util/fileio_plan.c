/* fileio_plan.c: the output rule of fileio.h over a whole command: the
 * files it reads and writes, checked once before any work starts.
 *
 * Each path is reduced to a key: the device and inode of the file (stat, so
 * symlinks are resolved and hard links share a key), or, for a path that does
 * not exist yet, the inode of its nearest existing directory plus the rest of
 * the path. Two entries are the same file when their keys are equal. This
 * file writes nothing and keeps no state between calls. */
#include "util/alloc.h"
#include "util/error.h"
#include "util/fileio.h"

#include <errno.h>
#include <libgen.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void hl_io_plan_init(hl_io_plan *p) { memset(p, 0, sizeof *p); }

void hl_io_plan_free(hl_io_plan *p) {
    for (int i = 0; i < p->n; i++) {
        hl_free(p->e[i].flag);
        hl_free(p->e[i].path);
        hl_free(p->e[i].prefix);
        hl_free(p->e[i].what);
    }
    hl_free(p->e);
    memset(p, 0, sizeof *p);
}

static hl_io_entry *add(hl_io_plan *p, hl_io_role role, const char *flag, const char *path) {
    if (!path || p->oom) return NULL;
    if (p->n == p->cap) {
        int nc = p->cap ? 2 * p->cap : 16;
        hl_io_entry *ne = hl_realloc(p->e, (size_t)nc * sizeof *ne);
        if (!ne) {
            p->oom = 1;
            return NULL;
        }
        p->e = ne;
        p->cap = nc;
    }
    hl_io_entry *e = &p->e[p->n];
    memset(e, 0, sizeof *e);
    e->role = role;
    e->flag = hl_strdup(flag ? flag : "a file");
    e->path = hl_strdup(path);
    if (!e->flag || !e->path) {
        hl_free(e->flag);
        hl_free(e->path);
        p->oom = 1;
        return NULL;
    }
    p->n++;
    return e;
}

void hl_io_plan_add(hl_io_plan *p, hl_io_role role, const char *flag, const char *path) { add(p, role, flag, path); }

void hl_io_plan_add_log(hl_io_plan *p, const char *flag, const char *path, const char *prefix, const char *what) {
    hl_io_entry *e = add(p, HL_IO_LOG, flag, path);
    if (!e) return;
    e->prefix = prefix ? hl_strdup(prefix) : NULL;
    e->what = what ? hl_strdup(what) : NULL;
    if ((prefix && !e->prefix) || (what && !e->what)) p->oom = 1;
}

typedef struct io_key {
    int known;  /* 0: the path could not be examined */
    int exists; /* the path itself exists (dev/ino are its own) */
    int is_dir; /* exists and is a directory */
    dev_t dev;
    ino_t ino;
    char *rest; /* !exists: the part below the nearest existing directory dev/ino */
    int err;    /* !known: the errno */
} io_key;

/* Resolves path to its key; depth bounds the walk up a long missing path. */
static int resolve(const char *path, io_key *k, int depth) {
    memset(k, 0, sizeof *k);
    struct stat st;
    if (stat(path, &st) == 0) {
        k->known = k->exists = 1;
        k->is_dir = S_ISDIR(st.st_mode);
        k->dev = st.st_dev;
        k->ino = st.st_ino;
        return 1;
    }
    k->err = errno;
    if (errno != ENOENT || depth > 64) return 0;
    char *d = hl_strdup(path), *b = hl_strdup(path);
    int ok = 0;
    if (d && b) {
        const char *dir = dirname(d), *base = basename(b);
        io_key pk = {0};
        if (strcmp(dir, path) != 0 && resolve(dir, &pk, depth + 1)) {
            size_t n = (pk.rest ? strlen(pk.rest) + 1 : 0) + strlen(base) + 1;
            if ((k->rest = hl_malloc(n))) {
                if (pk.rest) snprintf(k->rest, n, "%s/%s", pk.rest, base);
                else snprintf(k->rest, n, "%s", base);
                k->known = ok = 1;
                k->dev = pk.dev;
                k->ino = pk.ino;
            } else k->err = ENOMEM;
        } else if (pk.err) k->err = pk.err;
        hl_free(pk.rest);
    } else k->err = ENOMEM;
    hl_free(d);
    hl_free(b);
    return ok;
}

static int same_key(const io_key *a, const io_key *b) {
    if (!a->known || !b->known || a->dev != b->dev || a->ino != b->ino) return 0;
    if (!a->rest || !b->rest) return !a->rest && !b->rest;
    return strcmp(a->rest, b->rest) == 0;
}

static int is_output(hl_io_role r) { return r == HL_IO_OUTPUT || r == HL_IO_LOG; }

/* The directory an output lands in: it must exist (or be an output directory
 * of this plan) and be writable. */
static hl_status check_dir(const hl_io_plan *p, const io_key *keys, const hl_io_entry *e, hl_error *err) {
    char *d = hl_strdup(e->path);
    if (!d) return hl_fail(err, HL_ERR_NOMEM, "out of memory");
    const char *dir = dirname(d);
    hl_status s = HL_OK;
    io_key k;
    if (!resolve(dir, &k, 0)) {
        s = hl_fail(err, HL_ERR_IO, "%s %s: cannot use the directory %s: %s", e->flag, e->path, dir, strerror(k.err));
    } else if (!k.exists) {
        int planned = 0; /* a directory this command makes (--peft-out) */
        for (int j = 0; j < p->n && !planned; j++)
            planned = p->e[j].role == HL_IO_OUTPUT_DIR && same_key(&keys[j], &k);
        if (!planned) s = hl_fail(err, HL_ERR_INVALID_ARG, "%s %s: the directory %s does not exist", e->flag, e->path, dir);
    } else if (!k.is_dir) {
        s = hl_fail(err, HL_ERR_INVALID_ARG, "%s %s: %s is not a directory", e->flag, e->path, dir);
    } else if (access(dir, W_OK | X_OK) != 0) {
        s = hl_fail(err, HL_ERR_IO, "%s %s: cannot write in the directory %s: %s", e->flag, e->path, dir,
                    strerror(errno));
    }
    hl_free(k.rest);
    hl_free(d);
    return s;
}

static hl_status check_target(const hl_io_plan *p, const io_key *keys, int i, hl_error *err) {
    const hl_io_entry *e = &p->e[i];
    struct stat st;
    if (e->role == HL_IO_OUTPUT_DIR) {
        /* A link to a directory is fine here: files are made inside it, the link itself is not replaced. */
        if (stat(e->path, &st) == 0) {
            if (!S_ISDIR(st.st_mode))
                return hl_fail(err, HL_ERR_INVALID_ARG, "%s %s exists and is not a directory", e->flag, e->path);
            if (access(e->path, W_OK | X_OK) != 0)
                return hl_fail(err, HL_ERR_IO, "%s %s: cannot write in it: %s", e->flag, e->path, strerror(errno));
            return HL_OK;
        }
        if (errno != ENOENT && errno != ENOTDIR)
            return hl_fail(err, HL_ERR_IO, "%s %s: %s", e->flag, e->path, strerror(errno));
        if (lstat(e->path, &st) == 0) /* a dangling link */
            return hl_fail(err, HL_ERR_INVALID_ARG, "%s %s is a symbolic link to nothing", e->flag, e->path);
        return check_dir(p, keys, e, err);
    }
    hl_error sub = {0};
    if (hl_output_check(e->path, e->role == HL_IO_LOG ? e->prefix : NULL, e->what, &sub) != HL_OK)
        return hl_fail(err, sub.status, "%s %s", e->flag, sub.msg); /* sub.msg starts with the path */
    return check_dir(p, keys, e, err);
}

hl_status hl_io_plan_check(const hl_io_plan *p, hl_error *err) {
    if (p->oom) return hl_fail(err, HL_ERR_NOMEM, "out of memory");
    if (!p->n) return HL_OK;
    io_key *keys = hl_calloc((size_t)p->n, sizeof *keys);
    if (!keys) return hl_fail(err, HL_ERR_NOMEM, "out of memory");
    hl_status s = HL_OK;
    for (int i = 0; i < p->n; i++) resolve(p->e[i].path, &keys[i], 0);
    /* Directories first: "--peft-out FILE is not a directory" says more than what it does to the files in it. */
    for (int i = 0; s == HL_OK && i < p->n; i++)
        if (p->e[i].role == HL_IO_OUTPUT_DIR) s = check_target(p, keys, i, err);
    /* An input that cannot be examined is left to its loader, which names the problem. */
    for (int i = 0; s == HL_OK && i < p->n; i++)
        if (!keys[i].known && p->e[i].role != HL_IO_INPUT)
            s = hl_fail(err, keys[i].err == ENOMEM ? HL_ERR_NOMEM : HL_ERR_IO, "%s %s: %s", p->e[i].flag,
                        p->e[i].path, strerror(keys[i].err));
    /* Same file as an input or an earlier output: the most telling message, so first. */
    for (int i = 0; s == HL_OK && i < p->n; i++) {
        if (!is_output(p->e[i].role)) continue;
        for (int j = 0; s == HL_OK && j < p->n; j++) {
            if (j == i || p->e[j].role == HL_IO_OUTPUT_DIR || (is_output(p->e[j].role) && j > i)) continue;
            if (same_key(&keys[i], &keys[j]))
                s = hl_fail(err, HL_ERR_INVALID_ARG, "%s %s is the same file as %s %s", p->e[i].flag, p->e[i].path,
                            p->e[j].flag, p->e[j].path);
        }
    }
    for (int i = 0; s == HL_OK && i < p->n; i++)
        if (is_output(p->e[i].role)) s = check_target(p, keys, i, err);
    for (int i = 0; i < p->n; i++) hl_free(keys[i].rest);
    hl_free(keys);
    return s;
}
