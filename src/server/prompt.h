/* prompt.h - from an API request to prompt tokens: chat messages in each
 * API's shape normalized to [{role, content}] with text content, rendered
 * with the model's chat template (chat/template.h), and tokenized; plus the
 * token -> text pieces the responses need. */
#ifndef LAMINA_SERVER_PROMPT_H
#define LAMINA_SERVER_PROMPT_H

#include "server/srv.h"
#include "server/strbuf.h"

/* The chat template the server renders, checked at start-up by rendering a
 * small conversation (a template it cannot render fails here, naming the
 * construct). ORIGIN names where SOURCE came from, for messages. The
 * template keeps copies; the vocab is borrowed (BOS/EOS texts). */
srv_template *srv_template_create(const char *source, const char *origin, const tok_vocab *vocab, lm_error *err);
void srv_template_free(srv_template *t);

/* OpenAI "messages" -> [{role, content}] (new reference in *out): roles
 * system/developer (as system)/user/assistant, content a string or text
 * parts; image/audio parts and tool roles are a 400 naming the element. */
int prompt_openai_messages(json_t *messages, json_t **out, srv_error *err);
/* Anthropic "system" + "messages" -> the same shape; *prefill is set when
 * the last message is the assistant's (the reply continues it). */
int prompt_anthropic_messages(json_t *body, json_t **out, bool *prefill, srv_error *err);

/* Renders MESSAGES with the template (KWARGS: extra template variables, may
 * be NULL) and tokenizes the text, into *ids (malloc'd, *n_ids tokens).
 * CONTINUE_FINAL: the text ends right after the last (assistant) message's
 * content instead of opening a new assistant turn. A BOS the template writes
 * is not doubled by the tokenizer's own. */
int prompt_chat_tokens(const srv_server *srv, json_t *messages, bool continue_final, json_t *kwargs, int32_t **ids,
                       int *n_ids, srv_error *err);

/* Tokenizes LEN bytes of TEXT into *ids (malloc'd). */
int prompt_tokenize(const tok_vocab *v, const char *text, size_t len, bool add_bos, bool parse_special,
                    int32_t **ids, int *n_ids, srv_error *err);
/* appends the bytes of token ID (control tokens as their text) */
void prompt_piece(const tok_vocab *v, int32_t id, strbuf *out);
/* appends the text of N token ids */
void prompt_detokenize(const tok_vocab *v, const int32_t *ids, int n, strbuf *out);

#endif
