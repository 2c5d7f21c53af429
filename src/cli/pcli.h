/*
 * src/cli/pcli.h — sub-commands of the `lookalike` executable.
 *
 * To add a command: write src/cli/cmd_<name>.c defining
 * `int lk__cmd_<name>(int argc, char **argv)` (argv[0] is the command name,
 * return the process exit status), declare it here, add one row to the table
 * in main.c and the file to src/cli/meson.build.
 */
#ifndef LK_PCLI_H
#define LK_PCLI_H

/* Exit statuses shared by all commands. */
#define LK_EXIT_OK      0
#define LK_EXIT_FAILED  1   /* the command ran but some input failed */
#define LK_EXIT_USAGE   2   /* bad command line */

int lk__cmd_describe(int argc, char **argv);
int lk__cmd_index(int argc, char **argv);
int lk__cmd_serve(int argc, char **argv);
int lk__cmd_query(int argc, char **argv);

/* Model directory: the --models flag, else $LOOKALIKE_MODELS, else the
 * build's default (cmd_index.c). */
const char *lk__cli_model_dir(const char *flag);

#endif /* LK_PCLI_H */
