/* cli.h - the subcommands of the lamina binary; each returns the exit code. */
#ifndef LAMINA_CLI_H
#define LAMINA_CLI_H

int cmd_info(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_perf(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* models/SmolLM2-135M-Instruct.Q4_1.gguf next to the binary's project, or
 * $LAMINA_MODEL; the path setup installs */
const char *cli_default_model(void);
/* memory read bandwidth with N_THREADS threads over 1 GiB, bytes/s, the best
 * of REPS passes after a warm-up; -1 if memory or threads are not to be had */
double cli_read_bandwidth(int n_threads, int reps);

#endif
