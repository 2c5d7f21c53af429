/*
 * src/cli/main.c — the `lookalike` executable: a table of sub-commands.
 *
 * Dispatch is a plain table so each module adds its command in its own file
 * (cmd_<name>.c, see pcli.h) with a one-line edit here.
 */
#include <stdio.h>
#include <string.h>

#include "pcli.h"

#ifndef LK_VERSION
#define LK_VERSION "unknown"
#endif

struct lk_cli_cmd {
    const char *name;
    const char *args;       /* argument synopsis for the usage text */
    const char *help;       /* one line */
    int (*run)(int argc, char **argv);
};

static const struct lk_cli_cmd commands[] = {
    {"describe", "[--min-side N | --full] IMAGE...",
     "decode images; print size, format, EXIF orientation, DCT scale, quality, colour embedding",
     lk__cmd_describe},
    {"index", "build|add|update|remove --data DIR ...",
     "import a catalog, embed its photos, build and commit a new index generation", lk__cmd_index},
    {"serve", "--data DIR [--bind ADDR] [--port N] [--config FILE]",
     "serve the HTTP API and the storefront (SIGHUP reloads, SIGTERM stops)", lk__cmd_serve},
    {"query", "--data DIR [--k N] [--category C] IMAGE",
     "one visual search from the terminal", lk__cmd_query},
    /* bench: added by its module */
};

static void usage(FILE *f)
{
    fprintf(f, "usage: lookalike COMMAND [ARGS...]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n  %-10s   %s\n", commands[i].name, commands[i].args, "", commands[i].help);
    fprintf(f, "\n  lookalike COMMAND --help   details of one command\n"
               "  lookalike --version\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return LK_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return LK_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("lookalike %s\n", LK_VERSION);
        return LK_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "lookalike: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return LK_EXIT_USAGE;
}
