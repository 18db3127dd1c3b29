/* cli_io.c: the files each subcommand reads and writes, for the output rule
 * of util/fileio.h (checked before any work starts), and the check that a
 * model's mapped file was not truncated under a running command. What a
 * command reads is its business; this file only knows how adapters and PEFT
 * directories spread over several files. */
#include "cli/cli.h"
#include "model/model.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PEFT_WEIGHTS "adapter_model.safetensors"
#define PEFT_CONFIG "adapter_config.json"

int cli_check_io(const char *cmd, hl_io_plan *plan) {
    hl_error err = {0};
    hl_status s = hl_io_plan_check(plan, &err);
    hl_io_plan_free(plan);
    if (s == HL_OK) return 0;
    cli_error(cmd, "%s", err.msg);
    return 1;
}

static void add_joined(hl_io_plan *plan, hl_io_role role, const char *flag, const char *dir, size_t dir_len,
                       const char *name) {
    char path[4096];
    int n = snprintf(path, sizeof path, "%.*s%s%s", (int)dir_len, dir, dir_len ? "/" : "", name);
    if (n > 0 && (size_t)n < sizeof path) hl_io_plan_add(plan, role, flag, path);
}

void cli_plan_adapter(hl_io_plan *plan, const char *flag, const char *path) {
    hl_io_plan_add(plan, HL_IO_INPUT, flag, path);
    struct stat st;
    if (stat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) { /* a PEFT directory: its two files */
        add_joined(plan, HL_IO_INPUT, flag, path, strlen(path), PEFT_WEIGHTS);
        add_joined(plan, HL_IO_INPUT, flag, path, strlen(path), PEFT_CONFIG);
    } else if (!hl_file_starts_with(path, "GGUF", 4)) { /* a PEFT safetensors file: its config sits beside it */
        const char *slash = strrchr(path, '/');
        add_joined(plan, HL_IO_INPUT, flag, path, slash ? (size_t)(slash - path) : 0, PEFT_CONFIG);
    }
}

void cli_plan_peft_out(hl_io_plan *plan, const char *flag, const char *dir) {
    if (!dir) return;
    hl_io_plan_add(plan, HL_IO_OUTPUT_DIR, flag, dir);
    add_joined(plan, HL_IO_OUTPUT, flag, dir, strlen(dir), PEFT_WEIGHTS);
    add_joined(plan, HL_IO_OUTPUT, flag, dir, strlen(dir), PEFT_CONFIG);
}

hl_status cli_check_model_file(const hl_model *m, hl_error *err) {
    if (!m) return HL_OK;
    if (m->gguf) return hl_gguf_check_mapping(m->gguf, err);
    if (m->from_llama2c && m->l2c.owns_map) return hl_mapped_file_check(&m->l2c.map, m->path, err);
    return HL_OK;
}

void cli_report_word_rows(const char *cmd, const hl_scene_decoder *d) {
    int32_t n_new, n_fit, n_skipped;
    hl_scene_decoder_word_rows(d, &n_new, &n_fit, &n_skipped);
    if (n_new)
        fprintf(stderr, "hyperlora %s: %d new word%s read through output rows composed from %d trained words\n",
                cmd, n_new, n_new == 1 ? "" : "s", n_fit);
    if (n_skipped)
        fprintf(stderr, "hyperlora %s: note: %d token%s of new words spelled by several tokens kept their "
                "trained rows\n", cmd, n_skipped, n_skipped == 1 ? "" : "s");
}
