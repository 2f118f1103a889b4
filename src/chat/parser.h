/* parser.h - builds the syntax tree (ast.h) from the tokens (lexer.h),
 * following jinja2/parser.py: the same statements, the same operator
 * precedence (or < and < not < comparisons < + - < ~ < * / // % < ** < unary
 * < filters, tests and postfix), tests with one bare argument
 * (`x is divisibleby 3`), adjacent string literals joined. */
#ifndef LAMINA_CHAT_PARSER_H
#define LAMINA_CHAT_PARSER_H

#include "base/error.h"
#include "chat/ast.h"
#include "chat/lexer.h"

/* Maximum nesting of parenthesized/nested expressions and of statements:
 * bounds the parser's recursion on hostile input (the depth of the finished
 * tree, chains included, is bounded by template.c). */
#define PARSE_MAX_DEPTH 128

/* Parses the tokens of LX into BODY (nodes in A). On a syntax error returns
 * -1 and fills err with "chat template L:C: what". */
int parse_template(chat_arena *a, const lexed *lx, node_list *body, lm_error *err);

#endif
