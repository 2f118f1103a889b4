/* tokens.c - POST /tokenize and POST /detokenize in llama-server's shapes:
 *   /tokenize   {"content", "add_special" = false, "parse_special" = true,
 *                "with_pieces" = false} -> {"tokens": [id...]} or, with
 *                pieces, {"tokens": [{"id", "piece"}...]} where a piece that
 *                is not valid UTF-8 is given as its list of bytes
 *   /detokenize {"tokens": [id...]} -> {"content"} */
#include <stdlib.h>

#include "server/prompt.h"
#include "server/request.h"
#include "server/strbuf.h"

static json_t *piece_value(const tok_vocab *v, int32_t id) {
    strbuf piece;
    strbuf_init(&piece);
    prompt_piece(v, id, &piece);
    json_t *out;
    if (srv_utf8_valid(piece.data ? piece.data : "", piece.len)) {
        out = json_stringn(piece.data ? piece.data : "", piece.len);
    } else {
        out = json_array();
        for (size_t i = 0; i < piece.len; i++) json_array_append_new(out, json_integer((unsigned char)piece.data[i]));
    }
    strbuf_free(&piece);
    return out;
}

int h_tokenize(srv_request *req, srv_reply *out, srv_error *err) {
    json_t *body = NULL;
    int32_t *ids = NULL;
    int n_ids = 0, rc = -1;
    bool add_special = false, parse_special = true, with_pieces = false;
    const char *content = NULL;
    if (srv_parse_body(req, &body, err)) goto done;
    int r = req_string(body, "content", &content, err);
    if (r < 0) goto done;
    if (r == 0) {
        srv_fail(err, SRV_ERR_INVALID, "content", "'content' is required");
        goto done;
    }
    if (req_bool(body, "add_special", &add_special, err) < 0 || req_bool(body, "parse_special", &parse_special, err) < 0 ||
        req_bool(body, "with_pieces", &with_pieces, err) < 0)
        goto done;
    if (prompt_tokenize(req->srv->vocab, content, json_string_length(json_object_get(body, "content")), add_special,
                        parse_special, &ids, &n_ids, err))
        goto done;
    json_t *tokens = json_array();
    for (int i = 0; i < n_ids; i++) {
        json_t *t = with_pieces ? json_pack("{s:i, s:o}", "id", ids[i], "piece", piece_value(req->srv->vocab, ids[i]))
                                : json_integer(ids[i]);
        json_array_append_new(tokens, t);
    }
    rc = srv_reply_json(out, json_pack("{s:o}", "tokens", tokens), err);
done:
    free(ids);
    json_decref(body);
    return rc;
}

int h_detokenize(srv_request *req, srv_reply *out, srv_error *err) {
    json_t *body = NULL;
    int32_t *ids = NULL;
    int rc = -1;
    if (srv_parse_body(req, &body, err)) goto done;
    json_t *tokens = json_object_get(body, "tokens");
    if (!json_is_array(tokens)) {
        srv_fail(err, SRV_ERR_INVALID, "tokens", "'tokens' must be a list of token ids");
        goto done;
    }
    size_t n = json_array_size(tokens);
    int n_vocab = tok_n_vocab(req->srv->vocab);
    ids = malloc(sizeof(int32_t) * (n ? n : 1));
    if (!ids) {
        srv_fail(err, SRV_ERR_INTERNAL, NULL, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(tokens, i);
        if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) >= n_vocab) {
            srv_fail(err, SRV_ERR_INVALID, "tokens", "tokens[%zu] is not a token id of this model (0..%d)", i,
                     n_vocab - 1);
            goto done;
        }
        ids[i] = (int32_t)json_integer_value(t);
    }
    strbuf text;
    strbuf_init(&text);
    prompt_detokenize(req->srv->vocab, ids, (int)n, &text);
    json_t *content = srv_json_text(text.data ? text.data : "", text.len);
    strbuf_free(&text);
    rc = srv_reply_json(out, json_pack("{s:o}", "content", content), err);
done:
    free(ids);
    json_decref(body);
    return rc;
}
