/* tokenizer.h - text <-> token ids, exactly as llama.cpp does for the same
 * GGUF vocabulary.
 *
 * Two algorithms, chosen by tokenizer.ggml.model:
 *   "gpt2"  byte-level BPE; the pre-tokenizer split is chosen by
 *           tokenizer.ggml.pre (PCRE2 with Unicode properties); merges by rank.
 *   "llama" SentencePiece-style (scores, byte fallback, leading-space rule).
 * Special/control and user-defined tokens are matched in the text first when
 * parse_special is set (user-defined ones always, as llama.cpp does).
 *
 * Every pre-tokenizer of llama.cpp that is a plain list of regexes is
 * supported (default, gpt-2, llama3/llama-bpe, qwen2, qwen35, smollm,
 * starcoder, deepseek-llm/-coder/-v3, falcon, tekken, gpt-4o, chatglm, poro,
 * viking, chameleon, ...); a missing or unknown tokenizer.ggml.pre falls back
 * to the default patterns with a warning on stderr (llama.cpp refuses an
 * unknown one). The vocab is read-only after loading: encode and decode may
 * run from many threads at once. */
#ifndef LAMINA_TOKENIZER_H
#define LAMINA_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "gguf/gguf.h"

typedef struct tok_vocab tok_vocab;

/* Builds the vocabulary from a GGUF file's tokenizer.* metadata. Returns NULL
 * and fills err (naming the file and the key) when the metadata is missing or
 * inconsistent. The vocab copies what it needs: it may outlive F. */
tok_vocab *tok_vocab_load(const gguf_file *f, lm_error *err);
void tok_vocab_free(tok_vocab *v);

int32_t tok_n_vocab(const tok_vocab *v);
int32_t tok_bos(const tok_vocab *v); /* -1 if none */
int32_t tok_eos(const tok_vocab *v); /* -1 if none */
int32_t tok_eot(const tok_vocab *v); /* -1 if none */
bool tok_add_bos(const tok_vocab *v);   /* tokenizer.ggml.add_bos_token (or the model default) */
/* end of generation: eos, eot, or another end-of-generation token (e.g. <|im_end|>, <end_of_turn>) */
bool tok_is_eog(const tok_vocab *v, int32_t id);
bool tok_is_control(const tok_vocab *v, int32_t id);
/* the raw vocabulary string of a token (as stored in the GGUF), NUL-terminated;
 * NULL for an id out of range */
const char *tok_text(const tok_vocab *v, int32_t id);

/* Encodes LEN bytes of TEXT. Writes up to CAP ids to OUT and returns the total
 * number of ids (call again with a larger buffer if it exceeds CAP); returns
 * -1 with err filled on failure. add_bos: prepend BOS if the vocab has one
 * and tok_add_bos() says so, and append EOS if tokenizer.ggml.add_eos_token
 * (llama.cpp's add_special). parse_special: match control tokens written in
 * TEXT. Invalid UTF-8 is tolerated (byte-level BPE reads each bad byte as
 * U+FFFD, SentencePiece falls back to byte tokens), as in llama.cpp. */
int64_t tok_encode(const tok_vocab *v, const char *text, size_t len, bool add_bos, bool parse_special,
                   int32_t *out, int64_t cap, lm_error *err);

/* The bytes a token stands for (byte-level BPE unmapped, SentencePiece ▁ to
 * space, <0xNN> byte tokens to their byte), as llama.cpp's token_to_piece.
 * Control and unknown tokens give their text only if render_special, else
 * nothing; user-defined tokens always give their text. A piece may be part
 * of a UTF-8 character. Writes up to CAP bytes, returns the piece's length
 * (may exceed CAP: then call again) or -1 for a bad id. */
int tok_piece(const tok_vocab *v, int32_t id, bool render_special, char *buf, int cap);

/* Streaming detokenizer: feed ids one at a time, get only complete UTF-8
 * characters out (render_special off: control tokens give nothing). An
 * incomplete trailing sequence is held back until the next token completes
 * it; bytes that can never form a character (malformed or broken sequences)
 * come out as U+FFFD, so the output is always valid UTF-8. */
typedef struct tok_stream {
    char pending[8];          /* the held-back incomplete sequence (<= 3 bytes) */
    int n_pending;
    bool strip_leading_space; /* drop one leading space of the next non-empty piece
                                 (SentencePiece, detokenizing a sequence from its start) */
} tok_stream;

void tok_stream_init(tok_stream *s); /* nothing pending, no space stripping */
/* Appends the newly completed characters to OUT and returns their length in
 * bytes. If that exceeds CAP nothing is written or consumed (call again with
 * a larger buffer; 3 * (piece length + 3) always suffices). -1 for a bad id or
 * out of memory. */
int tok_stream_push(const tok_vocab *v, tok_stream *s, int32_t id, char *out, int cap);
/* End of the stream: a still incomplete sequence comes out as U+FFFD.
 * Returns the bytes written (0 or 3); if CAP < 3 nothing is written. */
int tok_stream_flush(tok_stream *s, char *out, int cap);

#endif
