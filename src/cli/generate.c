#include <stdio.h>
#include "cli/cli.h"

int cmd_generate(int argc, char **argv) {
    fprintf(stderr, "lamina: generate is not built yet\n");
    return 1;
}
