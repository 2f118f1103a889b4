#include <stdio.h>
#include "cli/cli.h"

int cmd_tokenize(int argc, char **argv) {
    fprintf(stderr, "lamina: tokenize is not built yet\n");
    return 1;
}
