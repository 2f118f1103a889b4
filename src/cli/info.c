#include <stdio.h>
#include "cli/cli.h"

int cmd_info(int argc, char **argv) {
    fprintf(stderr, "lamina: info is not built yet\n");
    return 1;
}
