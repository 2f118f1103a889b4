/* lamina.h - public C API of liblamina.
 *
 * Embed the engine in another program: load a GGUF model, tokenize, and
 * generate. All functions are prefixed lamina_. */
#ifndef LAMINA_H
#define LAMINA_H

#ifdef __cplusplus
extern "C" {
#endif

/* "MAJOR.MINOR.PATCH" */
const char *lamina_version(void);

#ifdef __cplusplus
}
#endif

#endif
