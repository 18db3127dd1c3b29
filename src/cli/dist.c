/* dist.c: joining an MPI job for `train` and `pretrain` (dist.h). */
#include "cli/dist.h"
#include "cli/cli.h"
#include "util/alloc.h"
#include "util/error.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#ifdef HL_HAVE_MPI
#include <mpi.h>
#endif

/* The job size an MPI launcher announces to its processes (Open MPI,
 * MPICH/Hydra and Slurm's PMI, PMIx), or 0 when none started us. */
static long launcher_size(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) return strtol(v, NULL, 10);
    }
    return 0;
}
/* srun starts every task with these, MPI or not. */
static long slurm_tasks(void) {
    const char *v = getenv("SLURM_STEP_NUM_TASKS");
    return v && *v ? strtol(v, NULL, 10) : 0;
}

#ifdef HL_HAVE_MPI
/* Allgather of any size: MPI counts are ints, so large exchanges go in
 * rounds of at most `chunk` bytes per rank through a bounce buffer. */
static hl_status mpi_allgather(void *user, const void *send, void *recv, const size_t *counts, hl_error *err) {
    cli_dist *d = user;
    const int n = d->size;
    size_t longest = 0, chunk = ((size_t)INT_MAX / (size_t)n) & ~(size_t)63;
    if (chunk > ((size_t)64 << 20)) chunk = (size_t)64 << 20;
    for (int q = 0; q < n; q++)
        if (counts[q] > longest) longest = counts[q];
    int *cnt = hl_malloc_array((size_t)n, sizeof *cnt), *dsp = hl_malloc_array((size_t)n, sizeof *dsp);
    size_t *base = hl_malloc_array((size_t)n, sizeof *base);
    char *bounce = hl_malloc(chunk * (size_t)n);
    hl_status s = HL_OK;
    if (!cnt || !dsp || !base || !bounce) s = hl_fail(err, HL_ERR_NOMEM, "MPI exchange: out of memory");
    for (int q = 0; s == HL_OK && q < n; q++) base[q] = q ? base[q - 1] + counts[q - 1] : 0;
    for (size_t at = 0; s == HL_OK && at < longest; at += chunk) {
        int off = 0;
        for (int q = 0; q < n; q++) {
            size_t left = counts[q] > at ? counts[q] - at : 0;
            cnt[q] = (int)(left < chunk ? left : chunk);
            dsp[q] = off;
            off += cnt[q];
        }
        const char *mine = (const char *)send + at;
        int rc = MPI_Allgatherv(cnt[d->rank] ? mine : bounce, cnt[d->rank], MPI_BYTE, bounce, cnt, dsp, MPI_BYTE,
                                MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) {
            char msg[MPI_MAX_ERROR_STRING];
            int len = 0;
            MPI_Error_string(rc, msg, &len);
            s = hl_fail(err, HL_ERR_IO, "MPI_Allgatherv failed: %.*s", len, msg);
            break;
        }
        for (int q = 0; q < n; q++) memcpy((char *)recv + base[q] + at, bounce + dsp[q], (size_t)cnt[q]);
    }
    hl_free(cnt);
    hl_free(dsp);
    hl_free(base);
    hl_free(bounce);
    return s;
}

/* Blocking point to point in rounds of at most 1 GiB (MPI counts are ints). */
static hl_status mpi_send(void *user, int32_t to, const void *buf, size_t bytes, hl_error *err) {
    (void)user;
    size_t at = 0;
    do {
        size_t n = bytes - at < ((size_t)1 << 30) ? bytes - at : (size_t)1 << 30;
        if (MPI_Send((const char *)buf + at, (int)n, MPI_BYTE, to, 7, MPI_COMM_WORLD) != MPI_SUCCESS)
            return hl_fail(err, HL_ERR_IO, "MPI_Send of %zu bytes to rank %d failed", bytes, (int)to);
        at += n;
    } while (at < bytes);
    return HL_OK;
}
static hl_status mpi_recv(void *user, int32_t from, void *buf, size_t bytes, hl_error *err) {
    (void)user;
    size_t at = 0;
    do {
        size_t n = bytes - at < ((size_t)1 << 30) ? bytes - at : (size_t)1 << 30;
        if (MPI_Recv((char *)buf + at, (int)n, MPI_BYTE, from, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE) != MPI_SUCCESS)
            return hl_fail(err, HL_ERR_IO, "MPI_Recv of %zu bytes from rank %d failed", bytes, (int)from);
        at += n;
    } while (at < bytes);
    return HL_OK;
}
#endif

int cli_dist_begin(cli_dist *d, const char *cmd) {
    *d = (cli_dist){.rank = 0, .size = 1, .info = stderr};
    long launched = launcher_size(), srun = slurm_tasks();
#ifdef HL_HAVE_MPI
    if (launched <= 1 && srun <= 1) return 0; /* alone: no MPI at all */
    int provided = 0;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return cli_error(cmd, "could not join the MPI job (MPI_Init failed)");
    d->mpi = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->size);
    /* Errors come back as codes: a failed collective fails the step, then the job is aborted. */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    if (srun > 1 && d->size != srun) {
        cli_error(cmd, "srun started %ld tasks but MPI sees a job of %d: start it with srun --mpi=pmix (or pmi2)",
                  srun, d->size);
        return cli_dist_end(d, 1);
    }
    d->comm = (hl_train_comm){.rank = d->rank, .size = d->size, .allgather = mpi_allgather, .user = d};
    /* The gradient goes up the row tree (log2 N vectors a rank) unless
     * HYPERLORA_DP_EXCHANGE=allgather asks for every rank to receive every
     * rank's part. Both give the same bits. */
    const char *ex = getenv("HYPERLORA_DP_EXCHANGE");
    if (ex && *ex && strcmp(ex, "tree") && strcmp(ex, "allgather")) {
        cli_error(cmd, "HYPERLORA_DP_EXCHANGE must be tree or allgather, not \"%s\"", ex);
        return cli_dist_end(d, 1);
    }
    if (!ex || strcmp(ex, "allgather")) {
        d->comm.send = mpi_send;
        d->comm.recv = mpi_recv;
    }
    if (d->rank != 0 && !(d->info = fopen("/dev/null", "w"))) d->info = stderr;
    return 0;
#else
    long n = launched > 1 ? launched : srun;
    if (n > 1)
        return cli_error(cmd, "started as one of %ld processes, but this hyperlora was built without MPI: each would "
                              "train alone and write the same files. Rebuild with cmake -DHL_MPI=ON (docs/distributed.md)",
                         n);
    return 0;
#endif
}

const hl_train_comm *cli_dist_comm(const cli_dist *d) { return d->size > 1 ? &d->comm : NULL; }

int cli_dist_end(cli_dist *d, int rc) {
    if (d->info && d->info != stderr) fclose(d->info);
    d->info = stderr;
#ifdef HL_HAVE_MPI
    if (d->mpi) {
        d->mpi = 0;
        /* A failure (not a requested stop, 130) ends every rank now. */
        if (rc != 0 && rc != 130 && d->size > 1) {
            fflush(stderr);
            MPI_Abort(MPI_COMM_WORLD, rc);
        }
        MPI_Finalize();
    }
#endif
    return rc;
}
