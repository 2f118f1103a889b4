/* auth.c - API key check in constant time (see auth.h). */
#include "server/auth.h"

#include <string.h>
#include <strings.h>

static bool equal_const_time(const char *given, const char *key) {
    size_t n = strlen(key), m = strlen(given);
    volatile unsigned char diff = (unsigned char)(n != m);
    for (size_t i = 0; i < n; i++) diff |= (unsigned char)key[i] ^ (unsigned char)(i < m ? given[i] : 0);
    return diff == 0;
}

bool auth_check(const char *authorization, const char *x_api_key, const char *key) {
    bool ok = false;
    if (authorization && !strncasecmp(authorization, "Bearer ", 7)) {
        const char *token = authorization + 7;
        while (*token == ' ') token++;
        ok |= equal_const_time(token, key);
    }
    if (x_api_key) ok |= equal_const_time(x_api_key, key);
    return ok;
}
