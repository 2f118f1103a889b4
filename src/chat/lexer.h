/* lexer.h - splits a chat template into tokens, as Jinja2's lexer does with
 * trim_blocks=True and lstrip_blocks=True (transformers' settings).
 *
 * Before lexing the source is normalized the way Jinja2 does it: \r\n and \r
 * become \n and one trailing newline is dropped. Whitespace control is fully
 * resolved here: TK_DATA tokens hold the text that is really output, after
 * {%- -%} stripping, trim_blocks (the newline after a block or comment tag)
 * and lstrip_blocks (spaces before a block or comment tag at line start).
 * Comments produce no tokens; {% raw %} bodies become one TK_DATA. */
#ifndef LAMINA_CHAT_LEXER_H
#define LAMINA_CHAT_LEXER_H

#include "base/error.h"
#include "chat/mem.h"
#include "chat/value.h"

typedef enum tok_kind {
    TK_EOF,
    TK_DATA,        /* s: literal text */
    TK_VAR_BEGIN,   /* {{ */
    TK_VAR_END,     /* }} */
    TK_BLOCK_BEGIN, /* {% */
    TK_BLOCK_END,   /* %} */
    TK_NAME,        /* s: identifier (also keywords and true/false/none) */
    TK_STRING,      /* s: decoded value */
    TK_INT,         /* i */
    TK_FLOAT,       /* f */
    TK_OP,          /* op */
} tok_kind;

typedef enum tok_op {
    OPT_ADD,
    OPT_SUB,
    OPT_DIV,
    OPT_FLOORDIV,
    OPT_MUL,
    OPT_MOD,
    OPT_POW,
    OPT_TILDE,
    OPT_LBRACKET,
    OPT_RBRACKET,
    OPT_LPAREN,
    OPT_RPAREN,
    OPT_LBRACE,
    OPT_RBRACE,
    OPT_EQ,
    OPT_NE,
    OPT_GT,
    OPT_GTEQ,
    OPT_LT,
    OPT_LTEQ,
    OPT_ASSIGN,
    OPT_DOT,
    OPT_COLON,
    OPT_PIPE,
    OPT_COMMA,
    OPT_SEMICOLON,
} tok_op;

typedef struct token {
    tok_kind kind;
    tok_op op;
    uint32_t line, col; /* 1-based; col counts characters */
    uint32_t pos, len;  /* span in the normalized source, bytes */
    jv_str s;
    int64_t i;
    double f;
} token;

typedef struct lexed {
    const char *src; /* normalized source, NUL-terminated, in the arena */
    size_t len;      /* bytes */
    token *toks;     /* ends with TK_EOF */
    size_t n;
} lexed;

/* Maximum nesting of ( [ { inside one tag. */
#define LEX_MAX_NESTING 256

/* Tokenizes SRC into A. On a syntax error returns -1 and fills err with
 * "chat template L:C: what". */
int lex_template(chat_arena *a, const char *src, size_t len, lexed *out, lm_error *err);

/* Text of an operator, for messages. */
const char *tok_op_text(tok_op op);

#endif
