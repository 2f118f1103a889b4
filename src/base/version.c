#include "lamina.h"

const char *lamina_version(void) { return "0.1.0"; }
