/* fileio.h: read-only file mapping and crash-safe file writing.
 * hl_map_file mmaps a whole file read-only (base weights are never written).
 * hl_atomic_file writes to "<path>.tmp.<pid>", then fsync, rename over the
 * final name and fsync the directory, so a killed process never leaves a
 * truncated file under the final name. */
#ifndef HL_UTIL_FILEIO_H
#define HL_UTIL_FILEIO_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "hyperlora.h"

typedef struct hl_mapped_file {
    const uint8_t *data;
    size_t size;
} hl_mapped_file;

hl_status hl_map_file(const char *path, hl_mapped_file *out, hl_error *err);
void hl_unmap_file(hl_mapped_file *f);

typedef struct hl_atomic_file {
    FILE *fp;
    char *final_path;
    char *tmp_path;
} hl_atomic_file;

hl_status hl_atomic_file_open(hl_atomic_file *af, const char *path, hl_error *err);
/* Flushes, fsyncs, renames into place and fsyncs the directory. */
hl_status hl_atomic_file_commit(hl_atomic_file *af, hl_error *err);
/* Closes and removes the temp file (on any error path). Safe after commit. */
void hl_atomic_file_abort(hl_atomic_file *af);
/* Writes n bytes, returning HL_ERR_IO with the path in the message on failure. */
hl_status hl_atomic_file_write(hl_atomic_file *af, const void *data, size_t n, hl_error *err);

/* Reads a whole (small) file into a NUL-terminated heap buffer, capped at max_size. */
hl_status hl_read_file(const char *path, size_t max_size, char **out, size_t *out_size, hl_error *err);
#endif
