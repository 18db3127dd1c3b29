/* cli.h: shared helpers for the hyperlora subcommands: option parsing with
 * clear errors, and error reporting on stderr. Each subcommand lives in its
 * own cmd_*.c file and returns the process exit status. */
#ifndef HL_CLI_H
#define HL_CLI_H
#include <stdint.h>
#include "hyperlora.h"
#include "train/dataset.h"
#include "util/fileio.h"

int cmd_generate(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_init_model(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_combine(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_pretrain(int argc, char **argv);
int cmd_decode(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_scene(int argc, char **argv);
int cmd_scene_synth(int argc, char **argv); /* "scene synth", from cmd_scene */

/* Prints "hyperlora CMD: msg" on stderr and returns 1. */
int cli_error(const char *cmd, const char *fmt, ...);
/* Prints an hl_error and returns 1. */
int cli_fail(const char *cmd, const hl_error *err);
/* Says on stderr how many new words of an extra lexicon the decoder can now
 * name through composed output rows (README: new words), and how many tokens
 * of words spelled by several were left alone. */
void cli_report_word_rows(const char *cmd, const hl_scene_decoder *d);
/* Option value parsing; on failure print an error naming the option and return 0. */
int cli_int(const char *cmd, const char *opt, const char *val, long lo, long hi, long *out);
int cli_float(const char *cmd, const char *opt, const char *val, double lo, double hi, double *out);
int cli_u64(const char *cmd, const char *opt, const char *val, uint64_t *out);
/* For "--opt VALUE": returns argv[++*i] or prints an error and returns NULL. */
const char *cli_value(const char *cmd, int argc, char **argv, int *i);
int cli_is_help(const char *arg);
/* "--pack docs|none|stream" (dataset.h); prints an error and returns 0 on anything else. */
int cli_pack_mode(const char *cmd, const char *val, hl_pack_mode *out);
const char *cli_pack_mode_name(hl_pack_mode mode);

/* The adapters given on a command line: "--lora FILE" (scale 1) and
 * "--lora-scaled FILE:S" / "--lora-weighted FILE:W" (the last colon splits,
 * so paths with colons work). */
#define CLI_MAX_LORA 64
typedef struct cli_loras {
    int n;
    const char *paths[CLI_MAX_LORA];
    float scales[CLI_MAX_LORA];
    char *owned[CLI_MAX_LORA];
} cli_loras;
/* Adds one; with_scale says whether value is FILE:S. Returns 0 after printing an error. */
int cli_loras_add(cli_loras *l, const char *cmd, const char *opt, const char *value, int with_scale);
void cli_loras_free(cli_loras *l);

/* The output rule (util/fileio.h, cli_io.c): each command that writes lists
 * its inputs and outputs in an hl_io_plan and checks it before any work.
 * cli_check_io prints the refusal and frees the plan; 1 means stop. */
int cli_check_io(const char *cmd, hl_io_plan *plan);
/* An adapter read: a GGUF file, a PEFT directory (its two files) or a PEFT
 * safetensors file (and the adapter_config.json beside it). */
void cli_plan_adapter(hl_io_plan *plan, const char *flag, const char *path);
/* --peft-out DIR: the directory and the two files written in it (NULL: none). */
void cli_plan_peft_out(hl_io_plan *plan, const char *flag, const char *dir);
/* HL_ERR_IO when m's mapped file was truncated since it was loaded (another
 * process): called at safe points so the run stops before touching lost pages. */
struct hl_model;
hl_status cli_check_model_file(const struct hl_model *m, hl_error *err);

/* A note on stderr when lexicon parts are byte fallback only in this base
 * (their composed embeddings nearly coincide) and facets are not composed in. */
struct hl_lexicon;
void cli_note_byte_parts(const char *cmd, const struct hl_lexicon *lex);
#endif
