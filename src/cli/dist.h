/* dist.h: `train` and `pretrain` as one data-parallel job of several
 * processes, started by mpirun or srun (docs/distributed.md). In a build
 * with -DHL_MPI=ON a process started by an MPI launcher joins the job and
 * hands hl_train_run an hl_train_comm over MPI_Allgatherv; without a
 * launcher, or in a build without MPI started as a job of one, it runs
 * alone. A build without MPI started as several processes refuses to run:
 * each would train the same run on its own and write the same files. */
#ifndef HL_CLI_DIST_H
#define HL_CLI_DIST_H
#include "hyperlora/train.h"
#include <stdio.h>

typedef struct cli_dist {
    int rank, size;       /* 0 of 1 when alone */
    int mpi;              /* MPI_Init was called: cli_dist_end must finalize */
    hl_train_comm comm;
    FILE *info;           /* where progress and notes go: stderr on rank 0, nowhere on the others */
} cli_dist;

/* Joins the job when there is one (before any worker thread starts).
 * Returns 0, or prints why not (naming cmd) and returns the exit code. */
int cli_dist_begin(cli_dist *d, const char *cmd);
/* The communicator for hl_train_config.comm: NULL when alone. */
const hl_train_comm *cli_dist_comm(const cli_dist *d);
/* Ends this process's part with exit code rc (returned). A failing rank
 * of a job ends the whole job, so no other rank waits on it. */
int cli_dist_end(cli_dist *d, int rc);
#endif
