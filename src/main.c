/* main.c - lamina command line: dispatch to the subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "lamina.h"

static void usage(FILE *out) {
    fprintf(out,
            "lamina %s - local LLM inference\n\n"
            "usage:\n"
            "  lamina generate [MODEL] -p PROMPT [-n N] [--temp T] [--top-k K] [--top-p P] [--min-p P]\n"
            "                  [--repeat-penalty R] [--presence-penalty P] [--frequency-penalty F]\n"
            "                  [--seed S] [--threads N] [--ctx-size N] [--ignore-eos]\n"
            "  lamina serve [MODEL] [--host ADDR] [--port N] [--api-key KEY] ... (lamina serve --help)\n"
            "  lamina chat [MODEL] [--system TEXT] [--temp T] [-n MAX_REPLY] [--chat-template FILE]\n"
            "  lamina bench [--url URL] [--concurrency 1,4,16] [--num-prompts N] ... (lamina bench --help)\n"
            "  lamina tokenize [MODEL] [--json] [--no-bos] TEXT\n"
            "  lamina info [MODEL] [--cpu] [--gpu] [--kv] [--tensors]\n"
            "  lamina perf [MODEL] [-p PROMPT_TOKENS] [-n GEN_TOKENS] [-r REPS] [-t THREADS]\n"
            "  lamina --version\n",
            lamina_version());
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "generate")) return cmd_generate(argc - 1, argv + 1);
    if (!strcmp(cmd, "tokenize")) return cmd_tokenize(argc - 1, argv + 1);
    if (!strcmp(cmd, "info")) return cmd_info(argc - 1, argv + 1);
    if (!strcmp(cmd, "perf")) return cmd_perf(argc - 1, argv + 1);
    if (!strcmp(cmd, "chat")) return cmd_chat(argc - 1, argv + 1);
    if (!strcmp(cmd, "serve")) return cmd_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench")) return cmd_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("lamina %s\n", lamina_version());
        return 0;
    }
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "lamina: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
