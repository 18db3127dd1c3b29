/* test_train_ranks.c: data-parallel training without MPI. Ranks are
 * threads joined by an in-process allgather, each with its own adapter,
 * dataset and hl_train_run, so the N-invariance promise of
 * hyperlora/train.h is checked on any machine: 1..5 ranks (5 > the 4 rows
 * of a step: one rank idles), at 1 and 2 threads, give the adapter,
 * checkpoint and metrics bytes (but the wall-clock fields) of a run with no
 * communicator. Also: the row tree rebuilds the same sum from any split; a
 * checkpoint written by 3 ranks resumes under 2 with the same end; a rank
 * whose pre-step check fails fails every rank, naming it, and so does a
 * rank with other settings, before any step. (tests/
 * test_mpi.sh runs the same promise through mpirun.) Both exchanges are
 * checked: every rank receiving every rank's nodes (allgather), and the
 * reduction up the tree (send/recv). */
#include "hyperlora.h"
#include "hyperlora/train.h"
#include "lora/adapter.h"
#include "lora/create.h"
#include "train/dataset.h"
#include "train/row_tree.h"
#include "test_util.h"
#include "adapter_util.h"

#include <pthread.h>
#include <unistd.h>

#define STEPS 6
#define MAX_RANKS 8

/* ---- an allgather between threads ---- */
typedef struct mailbox { /* one message at a time from one rank to another */
    void *data;
    size_t bytes;
    int full;
} mailbox;

typedef struct fabric {
    int size;
    int point_to_point;          /* give the ranks send/recv (the tree reduction) */
    pthread_barrier_t barrier;
    const void *send[MAX_RANKS];
    pthread_mutex_t lock;
    pthread_cond_t changed;
    mailbox box[MAX_RANKS][MAX_RANKS]; /* [from][to] */
} fabric;

typedef struct rank_ctx {
    fabric *f;
    int rank;
    hl_train_comm comm;
    /* inputs */
    const hl_model *m;
    int threads;
    const char *ckpt, *log, *resume;
    int stop_at, fail_rank, odd_rank; /* odd_rank: this rank gets other settings */
    /* results */
    hl_adapter *ad;
    hl_status status;
    hl_error err;
} rank_ctx;

static hl_status thread_allgather(void *user, const void *send, void *recv, const size_t *counts, hl_error *err) {
    rank_ctx *c = user;
    fabric *f = c->f;
    (void)err;
    f->send[c->rank] = send;
    pthread_barrier_wait(&f->barrier);
    size_t off = 0;
    for (int q = 0; q < f->size; q++) {
        memcpy((char *)recv + off, f->send[q], counts[q]);
        off += counts[q];
    }
    pthread_barrier_wait(&f->barrier); /* every send buffer stays put until all have copied */
    return HL_OK;
}

static hl_status thread_send(void *user, int32_t to, const void *buf, size_t bytes, hl_error *err) {
    rank_ctx *c = user;
    fabric *f = c->f;
    void *copy = malloc(bytes ? bytes : 1);
    if (!copy) return hl_fail(err, HL_ERR_NOMEM, "send: out of memory");
    memcpy(copy, buf, bytes);
    pthread_mutex_lock(&f->lock);
    mailbox *b = &f->box[c->rank][to];
    while (b->full) pthread_cond_wait(&f->changed, &f->lock);
    *b = (mailbox){.data = copy, .bytes = bytes, .full = 1};
    pthread_cond_broadcast(&f->changed);
    pthread_mutex_unlock(&f->lock);
    return HL_OK;
}

static hl_status thread_recv(void *user, int32_t from, void *buf, size_t bytes, hl_error *err) {
    rank_ctx *c = user;
    fabric *f = c->f;
    pthread_mutex_lock(&f->lock);
    mailbox *b = &f->box[from][c->rank];
    while (!b->full) pthread_cond_wait(&f->changed, &f->lock);
    hl_status s = b->bytes == bytes ? HL_OK : hl_fail(err, HL_ERR_INVALID_ARG, "recv: %zu bytes, expected %zu", b->bytes, bytes);
    if (s == HL_OK) memcpy(buf, b->data, bytes);
    free(b->data);
    *b = (mailbox){0};
    pthread_cond_broadcast(&f->changed);
    pthread_mutex_unlock(&f->lock);
    return s;
}

static hl_adapter *new_adapter(const hl_model *m) {
    hl_error err = {0};
    uint32_t targets;
    CHECK_OK(hl_parse_targets("q,v,down", &targets, &err), &err);
    hl_adapter_spec spec = {.name = "ranks", .targets = targets, .rank = 4, .alpha = 8, .seed = 5};
    hl_adapter *ad = NULL;
    CHECK_OK(hl_adapter_create(m, &spec, &ad, &err), &err);
    REQUIRE(ad);
    return ad;
}

static hl_status fail_check(void *user, int64_t next_step, hl_error *err) {
    const rank_ctx *c = user;
    if (c->rank != c->fail_rank || next_step != 2) return HL_OK;
    return hl_fail(err, HL_ERR_IO, "this rank's base file went away");
}

static void *run_rank(void *arg) {
    rank_ctx *c = arg;
    hl_error err = {0};
    hl_dataset_params dp = {.ctx = 32, .pack = HL_PACK_DOCS, .val_fraction = 0.2f, .seed = 3};
    hl_dataset *ds = NULL;
    c->status = hl_dataset_load(HL_SOURCE_DIR "/examples/stories/train.jsonl", hl_model_get_tokenizer(c->m), &dp, &ds,
                                &err);
    c->ad = new_adapter(c->m);
    hl_train_config cfg = hl_train_default_config();
    cfg.batch = 2;
    cfg.ctx = 32;
    cfg.accum = 2;
    cfg.steps = STEPS;
    cfg.lr = 3e-3;
    cfg.dropout = 0.1;
    cfg.seed = 3;
    cfg.eval_every = 2;
    cfg.checkpoint_every = 2;
    cfg.n_threads = c->threads;
    cfg.settings = c->rank == c->odd_rank ? "rank test, other data" : "rank test";
    cfg.checkpoint_path = c->ckpt;
    cfg.metrics_path = c->log;
    cfg.stop_at = c->stop_at;
    cfg.before_step = fail_check;
    cfg.user = c;
    cfg.comm = c->f ? &c->comm : NULL;
    hl_train_run *run = NULL;
    if (c->status == HL_OK) c->status = hl_train_run_init(c->m, c->ad, ds, &cfg, &run, &err);
    if (c->status == HL_OK && c->resume) c->status = hl_train_run_resume(run, c->resume, &err);
    if (c->status == HL_OK) c->status = hl_train_run_to_end(run, NULL, &err);
    c->err = err;
    hl_train_run_free(run);
    hl_dataset_free(ds);
    return NULL;
}

/* fail_rank: that rank's pre-step check fails at step 2; ODD_RANK(q):
 * rank q is given other settings; -1: neither. */
#define ODD_RANK(q) (-2 - (q))

/* Runs n ranks (0: no communicator) and returns rank 0's adapter; *status
 * gets the first failing rank's status and err its message. */
static hl_adapter *run_ranks(const hl_model *m, int n, int threads, const char *ckpt, const char *log,
                             const char *resume, int stop_at, int fail_rank, int p2p, hl_status *status,
                             hl_error *err) {
    static fabric f; /* large: the mailboxes */
    memset(&f, 0, sizeof f);
    f.size = n ? n : 1;
    f.point_to_point = p2p;
    pthread_mutex_init(&f.lock, NULL);
    pthread_cond_init(&f.changed, NULL);
    rank_ctx ctx[MAX_RANKS];
    pthread_t th[MAX_RANKS];
    REQUIRE(f.size <= MAX_RANKS);
    pthread_barrier_init(&f.barrier, NULL, (unsigned)f.size);
    for (int r = 0; r < f.size; r++) {
        ctx[r] = (rank_ctx){.f = n ? &f : NULL, .rank = r, .m = m, .threads = threads, .ckpt = ckpt, .log = log,
                            .resume = resume, .stop_at = stop_at, .fail_rank = fail_rank >= 0 ? fail_rank : -1,
                            .odd_rank = fail_rank <= ODD_RANK(0) ? ODD_RANK(0) - fail_rank : -1};
        ctx[r].comm = (hl_train_comm){.rank = r, .size = f.size, .allgather = thread_allgather, .user = &ctx[r]};
        if (p2p) {
            ctx[r].comm.send = thread_send;
            ctx[r].comm.recv = thread_recv;
        }
        REQUIRE(pthread_create(&th[r], NULL, run_rank, &ctx[r]) == 0);
    }
    for (int r = 0; r < f.size; r++) pthread_join(th[r], NULL);
    pthread_barrier_destroy(&f.barrier);
    pthread_mutex_destroy(&f.lock);
    pthread_cond_destroy(&f.changed);
    *status = HL_OK;
    for (int r = 0; r < f.size; r++) {
        if (ctx[r].status != HL_OK && *status == HL_OK) {
            *status = ctx[r].status;
            *err = ctx[r].err;
        }
        CHECK_MSG(ctx[r].status == ctx[0].status, "rank %d ended with %s, rank 0 with %s", r,
                  hl_status_name(ctx[r].status), hl_status_name(ctx[0].status));
    }
    for (int r = 1; r < f.size; r++) hl_adapter_free(ctx[r].ad);
    return ctx[0].ad;
}

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    REQUIRE(buf);
    *n = fread(buf, 1, (size_t)len, f);
    buf[*n] = 0;
    fclose(f);
    return buf;
}

/* The metrics log with the two wall-clock fields blanked. */
static char *metrics_without_clock(const char *path) {
    size_t n = 0;
    char *s = slurp(path, &n);
    REQUIRE(s);
    static const char *const keys[] = {"\"tokens_per_s\":", "\"elapsed_s\":"};
    for (int k = 0; k < 2; k++)
        for (char *p = strstr(s, keys[k]); p; p = strstr(p + 1, keys[k])) {
            char *v = p + strlen(keys[k]), *e = v;
            while (*e && *e != ',' && *e != '}') e++;
            memmove(v, e, strlen(e) + 1); /* drop the value */
        }
    return s;
}

static int same_file(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    char *x = slurp(a, &na), *y = slurp(b, &nb);
    int same = x && y && na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

/* Sums of vectors whose float additions do not associate: any other order
 * than the tree's shows up in the bits. */
static hl_status leaf_value(void *user, int64_t row, float *dst, hl_error *err) {
    (void)user;
    (void)err;
    for (int i = 0; i < 5; i++) dst[i] = (float)((row * 7919 + i * 104729) % 1000003) * (row % 3 ? 1e-3f : 1e5f) + 0.1f;
    return HL_OK;
}
typedef struct known_set {
    hl_row_tree *t;
    int n_ranks;
    float vals[64][5];
    hl_tree_node nodes[64];
    int n;
} known_set;
static const float *known_value(void *user, int64_t lo, int64_t hi) {
    known_set *k = user;
    for (int i = 0; i < k->n; i++)
        if (k->nodes[i].lo == lo && k->nodes[i].hi == hi) return k->vals[i];
    return NULL;
}

static void test_row_tree(void) {
    hl_error err = {0};
    for (int64_t rows = 1; rows <= 13; rows++) {
        float direct[5];
        hl_row_tree *t1 = NULL;
        CHECK_OK(hl_row_tree_init(rows, 1, 5, &t1, &err), &err);
        CHECK_OK(hl_row_tree_sum(t1, 0, rows, leaf_value, NULL, NULL, direct, &err), &err);
        for (int ranks = 1; ranks <= 7; ranks++) {
            known_set k = {.n_ranks = ranks};
            CHECK_OK(hl_row_tree_init(rows, ranks, 5, &k.t, &err), &err);
            int64_t covered = 0;
            for (int r = 0; r < ranks; r++) {
                int32_t n;
                int64_t lo, hi;
                const hl_tree_node *cv = hl_row_tree_cover(k.t, r, &n);
                hl_row_tree_rows(k.t, r, &lo, &hi);
                for (int32_t i = 0; i < n; i++) {
                    CHECK(cv[i].lo >= lo && cv[i].hi <= hi && cv[i].lo < cv[i].hi);
                    covered += cv[i].hi - cv[i].lo;
                    REQUIRE(k.n < 64);
                    k.nodes[k.n] = cv[i];
                    CHECK_OK(hl_row_tree_sum(k.t, cv[i].lo, cv[i].hi, leaf_value, NULL, NULL, k.vals[k.n], &err), &err);
                    k.n++;
                }
            }
            CHECK(covered == rows); /* the covers tile the rows */
            float rebuilt[5];
            CHECK_OK(hl_row_tree_sum(k.t, 0, rows, NULL, known_value, &k, rebuilt, &err), &err);
            CHECK_MSG(!memcmp(rebuilt, direct, sizeof direct), "%lld rows over %d ranks: other bits", (long long)rows,
                      ranks);
            hl_row_tree_free(k.t);
        }
        if (rows >= 3) /* a range that is not a tree node is refused */
            CHECK(hl_row_tree_sum(t1, 0, rows - 1, leaf_value, NULL, NULL, direct, &err) == HL_ERR_INVALID_ARG);
        hl_row_tree_free(t1);
    }
}

int main(void) {
    hl_error err = {0};
    hl_status st;
    test_row_tree();

    hl_model *m = NULL;
    CHECK_OK(hl_model_load(shared_path("models/stories260K/stories260K-f32.gguf"), NULL, &m, &err), &err);
    REQUIRE(m);
    char ck0[64], log0[64], ck[64], log[64];
    int pid = (int)getpid();
    snprintf(ck0, sizeof ck0, "ranks_%d_ref.ckpt", pid);
    snprintf(log0, sizeof log0, "ranks_%d_ref.metrics.jsonl", pid);
    snprintf(ck, sizeof ck, "ranks_%d.ckpt", pid);
    snprintf(log, sizeof log, "ranks_%d.metrics.jsonl", pid);

    /* The reference: no communicator at all. */
    hl_adapter *ref = run_ranks(m, 0, 1, ck0, log0, NULL, 0, -1, 0, &st, &err);
    CHECK_OK(st, &err);
    char *ref_log = metrics_without_clock(log0);

    for (int p2p = 0; p2p <= 1; p2p++) /* every rank gets every node (allgather), or up the tree (send/recv) */
        for (int threads = 1; threads <= 2; threads++)
            for (int n = 1; n <= 5; n++) {
                if (threads == 2 && n != 1 && n != 3) continue; /* enough: threads are checked elsewhere too */
                hl_adapter *a = run_ranks(m, n, threads, ck, log, NULL, 0, -1, p2p, &st, &err);
                const char *how = p2p ? "tree" : "allgather";
                CHECK_OK(st, &err);
                CHECK_MSG(same_weights(a, ref), "%d ranks x %d threads, %s: the adapter differs from one process", n,
                          threads, how);
                CHECK_MSG(same_file(ck, ck0), "%d ranks x %d threads, %s: the checkpoint differs", n, threads, how);
                char *l = metrics_without_clock(log);
                CHECK_MSG(!strcmp(l, ref_log), "%d ranks x %d threads, %s: the metrics differ", n, threads, how);
                free(l);
                hl_adapter_free(a);
            }

    /* Paused at step 3 by 3 ranks, resumed by 2: the uninterrupted end. */
    hl_adapter *a = run_ranks(m, 3, 1, ck, log, NULL, 3, -1, 1, &st, &err);
    CHECK_OK(st, &err);
    hl_adapter_free(a);
    a = run_ranks(m, 2, 1, ck, log, ck, 0, -1, 0, &st, &err);
    CHECK_OK(st, &err);
    CHECK_MSG(same_weights(a, ref), "3 ranks paused, 2 resumed: the adapter differs");
    CHECK_MSG(same_file(ck, ck0), "3 ranks paused, 2 resumed: the checkpoint differs");
    char *l = metrics_without_clock(log);
    CHECK_MSG(!strcmp(l, ref_log), "3 ranks paused, 2 resumed: the metrics differ");
    free(l);
    hl_adapter_free(a);

    /* One rank's failure is every rank's, with its name. */
    a = run_ranks(m, 3, 1, ck, log, NULL, 0, 1, 1, &st, &err);
    CHECK(st == HL_ERR_IO);
    CHECK_MSG(strstr(err.msg, "rank 1 of 3") && strstr(err.msg, "went away"), "%s", err.msg);
    hl_adapter_free(a);

    /* A rank with other inputs: refused before any step, naming it. */
    a = run_ranks(m, 3, 1, ck, log, NULL, 0, ODD_RANK(2), 1, &st, &err);
    CHECK(st == HL_ERR_MISMATCH);
    CHECK_MSG(strstr(err.msg, "rank 2 of 3 has other inputs or settings"), "%s", err.msg);
    hl_adapter_free(a);

    free(ref_log);
    hl_adapter_free(ref);
    if (!getenv("KEEP")) {
        unlink(ck0);
        unlink(log0);
        unlink(ck);
        unlink(log);
    }
    hl_model_free(m);
    return hl_test_finish("test_train_ranks");
}
