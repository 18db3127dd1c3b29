/* bench_bounds.c: the resource bounds that hostile input must not break,
 * measured and checked (part of bench/run.sh):
 *
 *   lexicon   a 100,000-entry lexicon (the cap) loaded against stories260K
 *             with hl_lexicon_load_compose: median of 3 loads, and the same file
 *             with its last line repeating an earlier lexeme, which must be
 *             refused as a duplicate. Budget: 1 s per load.
 *   ctx       stories260K rewritten so that llama.context_length = 2^24
 *             (nothing else changes), run as `hyperlora generate -n 2` in a
 *             child process; its peak RSS (getrusage of the child) and wall
 *             time, next to the unmodified file. Budget: 50 MB RSS.
 *
 * Prints one JSON line per measurement (bench "bounds") and a verdict;
 * exits 1 when a budget is exceeded (unless --no-check).
 *
 *   bench_bounds --cli BUILD/hyperlora --shared ../shared [--out DIR] [--no-check] */
#include "hyperlora.h"
#include "hyperlexeme/lexicon.h"
#include "bench_util.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define N_ENTRIES 100000
#define LEX_BUDGET_S 1.0
#define RSS_BUDGET_MB 50.0

static void die(const char *what, const hl_error *err) {
    fprintf(stderr, "bench_bounds: %s: %s\n", what, err ? err->msg : strerror(errno));
    exit(2);
}

/* A lexicon of n unique lexemes ("Δ0" .. ), each composed from two words of
 * the 512-token vocabulary; with dup, the last line repeats lexeme 17. */
static void write_lexicon(const char *path, int n, int dup) {
    static const char *words[] = {"rain", "door", "cat", "sun", "tree", "dog", "ball", "happy", "park", "girl"};
    FILE *f = fopen(path, "w");
    if (!f) die(path, NULL);
    for (int i = 0; i < n; i++) {
        int id = dup && i == n - 1 ? 17 : i;
        fprintf(f, "{\"lexeme\": \"\xCE\x94%d\", \"parts\": [\"%s\", \"%s\"], \"weights\": [1, %d]}\n", id,
                words[i % 10], words[(i / 10) % 10], 1 + i % 3);
    }
    if (fclose(f) != 0) die(path, NULL);
}

/* Copies src to dst with the uint32 value of llama.context_length replaced. */
static void write_ctx_model(const char *src, const char *dst, uint32_t ctx) {
    size_t n;
    FILE *f = fopen(src, "rb");
    if (!f) die(src, NULL);
    fseek(f, 0, SEEK_END);
    n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *d = malloc(n);
    if (!d || fread(d, 1, n, f) != n) die(src, NULL);
    fclose(f);
    const char *key = "llama.context_length";
    size_t kl = strlen(key), i;
    for (i = 0; i + kl + 8 <= n; i++)
        if (!memcmp(d + i, key, kl) && d[i + kl] == 4 && !d[i + kl + 1] && !d[i + kl + 2] && !d[i + kl + 3]) break;
    if (i + kl + 8 > n) {
        fprintf(stderr, "bench_bounds: %s has no uint32 llama.context_length\n", src);
        exit(2);
    }
    memcpy(d + i + kl + 4, &ctx, 4);
    f = fopen(dst, "wb");
    if (!f || fwrite(d, 1, n, f) != n || fclose(f) != 0) die(dst, NULL);
    free(d);
}

/* Runs `cli generate -m model -n 2 -p "Once"` with output to /dev/null; peak RSS (MiB) and wall seconds. */
static int run_generate(const char *cli, const char *model, double *rss_mib, double *wall_s) {
    double t0 = bench_now();
    pid_t pid = fork();
    if (pid < 0) die("fork", NULL);
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(cli, cli, "generate", "-m", model, "-n", "2", "-p", "Once", (char *)NULL);
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) != pid) die("wait4", NULL);
    *wall_s = bench_now() - t0;
    *rss_mib = (double)ru.ru_maxrss / 1024.0; /* Linux: KiB */
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int main(int argc, char **argv) {
    const char *cli = NULL, *shared = "../shared", *out = "/tmp";
    int check = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--cli") && i + 1 < argc) cli = argv[++i];
        else if (!strcmp(argv[i], "--shared") && i + 1 < argc) shared = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--no-check")) check = 0;
        else {
            fprintf(stderr, "usage: bench_bounds --cli HYPERLORA [--shared DIR] [--out DIR] [--no-check]\n");
            return 2;
        }
    }
    char model_path[1024], lex_path[1100], ctx_path[1100];
    snprintf(model_path, sizeof model_path, "%s/models/stories260K/stories260K-f32.gguf", shared);
    snprintf(lex_path, sizeof lex_path, "%s/bounds-lexicon-100k.jsonl", out);
    snprintf(ctx_path, sizeof ctx_path, "%s/bounds-ctx-2p24.gguf", out);
    int ok = 1;
    /* ---- context header: first, while this process is small (a child's peak
     * RSS counts what it inherited before exec). */
    double rss = 0, wall = 0;
    if (cli) {
        write_ctx_model(model_path, ctx_path, 1u << 24);
        double rss0, wall0;
        int rc0 = run_generate(cli, model_path, &rss0, &wall0);
        int rc = run_generate(cli, ctx_path, &rss, &wall);
        unlink(ctx_path);
        printf("{\"bench\": \"bounds\", \"what\": \"generate_ctx_2p24\", \"exit\": %d, \"peak_rss_mib\": %.1f, "
               "\"wall_s\": %.3f, \"plain_exit\": %d, \"plain_peak_rss_mib\": %.1f, \"plain_wall_s\": %.3f, "
               "\"budget_mb\": %.0f}\n",
               rc, rss, wall, rc0, rss0, wall0, RSS_BUDGET_MB);
        if (rc != 0 || rss * 1.048576 > RSS_BUDGET_MB) ok = 0;
    }

    hl_error err;
    hl_model *m = NULL;
    if (hl_model_load(model_path, NULL, &m, &err) != HL_OK) die(model_path, &err);

    /* ---- lexicon */
    write_lexicon(lex_path, N_ENTRIES, 0);
    double t[3];
    for (int r = 0; r < 3; r++) {
        hl_lexicon *lex = NULL;
        double t0 = bench_now();
        if (hl_lexicon_load_compose(lex_path, m, NULL, &lex, &err) != HL_OK) die(lex_path, &err);
        t[r] = bench_now() - t0;
        if (hl_lexicon_n_entries(lex) != N_ENTRIES || hl_lexicon_find(lex, "\xCE\x94" "99999") != N_ENTRIES - 1) {
            fprintf(stderr, "bench_bounds: the lexicon did not load whole\n");
            return 2;
        }
        hl_lexicon_free(lex);
    }
    double med = bench_median(t, 3);
    write_lexicon(lex_path, N_ENTRIES, 1);
    hl_lexicon *lex = NULL;
    double t0 = bench_now();
    hl_status s = hl_lexicon_load_compose(lex_path, m, NULL, &lex, &err);
    double t_dup = bench_now() - t0;
    int dup_found = s == HL_ERR_FORMAT && strstr(err.msg, "already defined (entry 18)") != NULL;
    hl_lexicon_free(lex);
    unlink(lex_path);
    printf("{\"bench\": \"bounds\", \"what\": \"lexicon_load\", \"entries\": %d, \"median_s\": %.4f, \"min_s\": %.4f, "
           "\"max_s\": %.4f, \"duplicate_refused\": %s, \"duplicate_s\": %.4f, \"budget_s\": %.1f}\n",
           N_ENTRIES, med, bench_min(t, 3), bench_max(t, 3), dup_found ? "true" : "false", t_dup, LEX_BUDGET_S);
    if (med > LEX_BUDGET_S || !dup_found) ok = 0;
    hl_model_free(m);

    printf("bench_bounds: %s (100k lexicon %.3f s of %.1f s; ", ok ? "within budget" : "OVER BUDGET", med, LEX_BUDGET_S);
    if (cli) printf("2^24-context generate -n 2: %.1f MiB peak RSS of %.0f MB)\n", rss, RSS_BUDGET_MB);
    else printf("no --cli, generate not measured)\n");
    return check && !ok ? 1 : 0;
}
