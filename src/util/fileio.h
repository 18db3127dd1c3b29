/* fileio.h: read-only file mapping, crash-safe file writing, and the one
 * output rule every writer follows.
 *
 * Mapping. hl_map_file mmaps a whole regular file PROT_READ and MAP_PRIVATE:
 * base weights are never written, not even through the mapping. The file is
 * kept open so that hl_mapped_file_check can see, at a safe point, that
 * another process truncated it. What a run does when another process changes
 * a file it has mapped:
 *   - replaced by rename (how hyperlora and most tools write files): nothing;
 *     the run keeps reading the old contents until it unmaps them;
 *   - truncated: the pages past the new end are gone, and touching one raises
 *     SIGBUS. train checks the size before each step and generate before
 *     each token, and stop with an error naming the file; a truncation that
 *     lands between two checks reaches the CLI's SIGBUS handler, which prints
 *     what happened and exits with status 1 instead of crashing;
 *   - rewritten in place at the same size: the run may see old and new bytes
 *     mixed. Nothing can detect that cheaply; replace files by rename.
 *
 * Writing. hl_atomic_file writes a new temp file in the target's directory,
 * "<path>.tmp.<12 random letters and digits>", created with
 * O_CREAT|O_EXCL|O_NOFOLLOW and mode 0600 (a name already taken, by a file or
 * a planted symlink, is never opened: another name is drawn), then flushes,
 * fchmods it to 0666 & ~umask, fsyncs, renames it over the final name and
 * fsyncs the directory. A killed process never leaves a truncated file under
 * the final name; every failure path removes the temp file.
 *
 * The output rule. Outputs are regular files replaced by rename, nothing else:
 *   - an output that exists and is not a regular file (a directory, FIFO,
 *     character or block device, socket) is refused: no command has a stream
 *     target, and "-" is an ordinary file name;
 *   - an output that is a symbolic link is refused rather than replaced by a
 *     regular file (which would silently cut the link); give the file it
 *     points to instead. Links in the directories above are followed;
 *   - each command lists the files it reads and writes in an hl_io_plan and
 *     checks it before any work starts: an output that is the same file as an
 *     input or as another output is refused, naming both flags ("-o base.gguf
 *     is the same file as -m base.gguf"). Files are compared by device and
 *     inode after resolving symlinks, so a hard link, a symlink or a relative
 *     path to an input is caught; outputs that do not exist yet are compared
 *     by the inode of their nearest existing directory and the rest of the
 *     path. The plan also refuses an output whose directory is missing or
 *     not writable (a read-only mount, say) before the run instead of after;
 *   - append-style files (the metrics log) are never truncated in place: an
 *     existing one must start as such a file does (a GGUF named by --metrics
 *     is refused), and it is rewritten through a temp file and rename. */
#ifndef HL_UTIL_FILEIO_H
#define HL_UTIL_FILEIO_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "hyperlora.h"

typedef struct hl_mapped_file {
    const uint8_t *data;
    size_t size;
    int fd; /* open while mapped (size > 0), for hl_mapped_file_check; -1 otherwise */
} hl_mapped_file;

hl_status hl_map_file(const char *path, hl_mapped_file *out, hl_error *err);
/* 1 when path is a regular file whose first n bytes are magic; 0 otherwise
 * (missing, unreadable, shorter, a FIFO or a device: never waits on one). */
int hl_file_starts_with(const char *path, const void *magic, size_t n);
/* fopen(path, "rb") for a regular file only: a FIFO, a device or a directory
 * is refused at once with a message naming path and what it is. */
FILE *hl_fopen_regular(const char *path, hl_error *err);
void hl_unmap_file(hl_mapped_file *f);
/* HL_ERR_IO naming path when the file is now shorter than its mapping
 * (another process truncated it: touching the lost pages would raise SIGBUS). */
hl_status hl_mapped_file_check(const hl_mapped_file *f, const char *path, hl_error *err);

typedef struct hl_atomic_file {
    FILE *fp;
    char *final_path;
    char *tmp_path;
} hl_atomic_file;

/* Refuses (HL_ERR_IO) a path that is a symlink or exists as something other than
 * a regular file, then creates the temp file beside it. */
hl_status hl_atomic_file_open(hl_atomic_file *af, const char *path, hl_error *err);
/* Flushes, fsyncs, renames into place and fsyncs the directory. */
hl_status hl_atomic_file_commit(hl_atomic_file *af, hl_error *err);
/* Closes and removes the temp file (on any error path). Safe after commit. */
void hl_atomic_file_abort(hl_atomic_file *af);
/* Writes n bytes, returning HL_ERR_IO with the path in the message on failure. */
hl_status hl_atomic_file_write(hl_atomic_file *af, const void *data, size_t n, hl_error *err);

/* Reads a whole (small) file into a NUL-terminated heap buffer, capped at max_size. */
hl_status hl_read_file(const char *path, size_t max_size, char **out, size_t *out_size, hl_error *err);

/* The output rule for one path, for writers outside a plan: refuses a symlink
 * or an existing file that is not regular; with prefix (an append-style file
 * such as the metrics log, described by `what`), also a non-empty file that
 * does not start with prefix. A missing path passes. */
hl_status hl_output_check(const char *path, const char *prefix, const char *what, hl_error *err);

/* The files of one command (fileio_plan.c). */
typedef enum hl_io_role {
    HL_IO_INPUT = 0,  /* read, never written */
    HL_IO_OUTPUT,     /* a regular file, replaced atomically */
    HL_IO_LOG,        /* kept or rewritten (a metrics log, a checkpoint): an existing one must start with its prefix */
    HL_IO_OUTPUT_DIR, /* a directory, made when missing; list the files written in it as HL_IO_OUTPUT too */
    HL_IO_ROLE_COUNT
} hl_io_role;

typedef struct hl_io_entry {
    hl_io_role role;
    char *flag;   /* how messages name it: "-o", "--data", "the default --metrics" */
    char *path;
    char *prefix; /* HL_IO_LOG: what an existing non-empty file starts with */
    char *what;   /* HL_IO_LOG: "a metrics log" */
} hl_io_entry;

typedef struct hl_io_plan {
    hl_io_entry *e;
    int n, cap;
    int oom; /* an add ran out of memory; the check reports it */
} hl_io_plan;

void hl_io_plan_init(hl_io_plan *p);
/* Copies flag and path; a NULL path adds nothing. */
void hl_io_plan_add(hl_io_plan *p, hl_io_role role, const char *flag, const char *path);
void hl_io_plan_add_log(hl_io_plan *p, const char *flag, const char *path, const char *prefix, const char *what);
/* The output rule over the whole plan (see the top of this file), before any
 * work: HL_ERR_INVALID_ARG for a collision or a refused target, naming the
 * flags and paths; HL_ERR_IO when a path cannot be examined. Writes nothing. */
hl_status hl_io_plan_check(const hl_io_plan *p, hl_error *err);
void hl_io_plan_free(hl_io_plan *p);
#endif
