/* encode.c - tok_encode: text -> token ids, in llama.cpp's order of work:
 * cut out special tokens, then run SentencePiece or byte-level BPE on each
 * raw fragment, with BOS/EOS when the caller asks for the special tokens. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

/* SentencePiece: a leading space after BOS/specials when add_space_prefix,
 * then every space escaped to U+2581 */
static int spm_fragment(const tok_vocab *v, const char *text, size_t len, bool prefix_space, tok_bytes *buf,
                        tok_ivec *out, lm_error *err) {
    static const char escaped_space[] = "\xe2\x96\x81";
    buf->n = 0;
    if (prefix_space && tok_bytes_append(buf, escaped_space, 3)) goto oom;
    for (size_t i = 0; i < len;) {
        const char *space = memchr(text + i, ' ', len - i);
        size_t run = space ? (size_t)(space - text) - i : len - i;
        if (tok_bytes_append(buf, text + i, run)) goto oom;
        i += run;
        if (space) {
            if (tok_bytes_append(buf, escaped_space, 3)) goto oom;
            i++;
        }
    }
    return tok_spm_encode(v, buf->data, buf->n, out, err);
oom:
    lm_error_set(err, "SentencePiece: out of memory");
    return -1;
}

static int encode_fragments(const tok_vocab *v, const char *text, const tok_fragments *frags, bool add_special,
                            tok_ivec *out, lm_error *err) {
    if (add_special && v->add_bos && v->bos >= 0 && tok_ivec_push(out, v->bos)) goto oom;
    tok_bytes buf = {0};
    bool prev_special = true; /* SentencePiece: the first fragment gets the space too */
    int rc = 0;
    for (size_t i = 0; i < frags->n && rc == 0; i++) {
        const tok_fragment *f = &frags->data[i];
        if (f->token >= 0) {
            rc = tok_ivec_push(out, f->token);
            if (rc) lm_error_set(err, "tokenizer: out of memory");
            prev_special = true;
        } else if (v->kind == TOK_MODEL_SPM) {
            rc = spm_fragment(v, text + f->off, f->len, v->add_space_prefix && prev_special, &buf, out, err);
            prev_special = false;
        } else {
            rc = tok_bpe_encode(v, text + f->off, f->len, out, err);
        }
    }
    free(buf.data);
    if (rc) return -1;
    if (add_special && v->add_eos && v->eos >= 0 && tok_ivec_push(out, v->eos)) goto oom;
    return 0;
oom:
    lm_error_set(err, "tokenizer: out of memory");
    return -1;
}

int64_t tok_encode(const tok_vocab *v, const char *text, size_t len, bool add_bos, bool parse_special, int32_t *out,
                   int64_t cap, lm_error *err) {
    if (len > (size_t)INT32_MAX / 8) {
        lm_error_set(err, "tokenizer: text of %zu bytes is too long", len);
        return -1;
    }
    tok_fragments frags = {0};
    tok_ivec ids = {0};
    int64_t rc = -1;
    if (tok_partition(v, text, len, parse_special, &frags)) {
        lm_error_set(err, "tokenizer: out of memory");
        goto done;
    }
    if (encode_fragments(v, text, &frags, add_bos, &ids, err)) goto done;
    if (out && cap > 0 && ids.n > 0)
        memcpy(out, ids.data, (size_t)(ids.n < (size_t)cap ? ids.n : (size_t)cap) * sizeof(int32_t));
    rc = (int64_t)ids.n;
done:
    free(frags.data);
    free(ids.data);
    return rc;
}
