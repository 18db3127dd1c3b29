/* cmd_plot.c: `hyperlora plot`: a metrics JSONL -> an SVG of the loss curves. */
#include "cli/cli.h"
#include "cli/plot.h"

#include <stdio.h>
#include <string.h>

static const char *CMD = "plot";

int cmd_plot(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *title = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (cli_is_help(a)) {
            printf("usage: hyperlora plot METRICS.jsonl -o LOSS.svg [--title TEXT]\n\n"
                   "Draws the train loss (and the eval loss, where evaluated) of a training run's\n"
                   "metrics file against the step, as a standalone SVG.\n"
                   "  -o, --output FILE  the SVG to write (replaced atomically)\n"
                   "  --title TEXT       the plot title (default \"Training loss\")\n");
            return 0;
        }
        if (a[0] != '-' || !a[1]) { /* a lone "-" is a file name too */
            if (in) return cli_error(CMD, "one metrics file only (got \"%s\" and \"%s\")", in, a);
            in = a;
            continue;
        }
        if (!(v = cli_value(CMD, argc, argv, &i))) return 1;
        if (!strcmp(a, "-o") || !strcmp(a, "--output")) out = v;
        else if (!strcmp(a, "--title")) title = v;
        else return cli_error(CMD, "unknown option %s (see --help)", a);
    }
    if (!in || !out) return cli_error(CMD, "needs METRICS.jsonl and -o OUT.svg (see --help)");
    hl_io_plan plan;
    hl_io_plan_init(&plan);
    hl_io_plan_add(&plan, HL_IO_INPUT, "the metrics file", in);
    hl_io_plan_add(&plan, HL_IO_OUTPUT, "-o", out);
    if (cli_check_io(CMD, &plan)) return 1;
    hl_error err = {0};
    if (hl_plot_metrics_svg(in, out, title, &err) != HL_OK) return cli_fail(CMD, &err);
    fprintf(stderr, "hyperlora plot: wrote %s\n", out);
    return 0;
}
