/* auth.h - the API key check of --api-key / LAMINA_API_KEY. */
#ifndef LAMINA_SERVER_AUTH_H
#define LAMINA_SERVER_AUTH_H

#include <stdbool.h>

/* True when the request carries KEY, as "Authorization: Bearer KEY" (OpenAI)
 * or "x-api-key: KEY" (Anthropic); either header may be NULL. The compare
 * takes time that depends on the length of KEY only, never on where the
 * given key first differs. */
bool auth_check(const char *authorization, const char *x_api_key, const char *key);

#endif
