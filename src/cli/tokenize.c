/* tokenize.c - `lamina tokenize [MODEL] [--json] [--no-bos] [--] TEXT`:
 * print the token ids of TEXT (special tokens in it are matched), one per
 * line with its piece, or as one JSON array. MODEL defaults to
 * cli_default_model() when the first argument is not an existing .gguf file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

static void usage(FILE *out) { fprintf(out, "usage: lamina tokenize [MODEL] [--json] [--no-bos] [--] TEXT\n"); }

static int is_gguf_file(const char *path) {
    struct stat st;
    size_t n = strlen(path);
    return n > 5 && strcmp(path + n - 5, ".gguf") == 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* length of the well-formed UTF-8 sequence at s (n bytes left), 0 if none */
static int utf8_seq(const unsigned char *s, int n) {
    int k = s[0] < 0x80                    ? 1
            : s[0] >= 0xc2 && s[0] <= 0xdf ? 2
            : s[0] >= 0xe0 && s[0] <= 0xef ? 3
            : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4
                                           : 0;
    if (k == 0 || k > n) return 0;
    unsigned char lo = s[0] == 0xe0 ? 0xa0 : s[0] == 0xf0 ? 0x90 : 0x80;
    unsigned char hi = s[0] == 0xed ? 0x9f : s[0] == 0xf4 ? 0x8f : 0xbf;
    if (k > 1 && (s[1] < lo || s[1] > hi)) return 0;
    for (int i = 2; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
    }
    return k;
}

/* prints PIECE quoted; control characters, quotes, backslashes and bytes
 * that are not UTF-8 (a token may hold part of a character) are escaped */
static void print_escaped(const char *piece, int n) {
    const unsigned char *p = (const unsigned char *)piece;
    putchar('\'');
    for (int i = 0; i < n;) {
        int k = utf8_seq(p + i, n - i);
        unsigned char c = p[i];
        if (k > 1) {
            fwrite(p + i, 1, (size_t)k, stdout);
            i += k;
            continue;
        }
        i++;
        switch (c) {
        case '\n': fputs("\\n", stdout); break;
        case '\r': fputs("\\r", stdout); break;
        case '\t': fputs("\\t", stdout); break;
        case '\\': fputs("\\\\", stdout); break;
        case '\'': fputs("\\'", stdout); break;
        default:
            if (k == 0 || c < 0x20 || c == 0x7f)
                printf("\\x%02x", c);
            else
                putchar(c);
        }
    }
    putchar('\'');
}

static int print_tokens(const tok_vocab *v, const int32_t *ids, int64_t n, int json) {
    if (json) {
        putchar('[');
        for (int64_t i = 0; i < n; i++) printf(i ? ", %d" : "%d", ids[i]);
        puts("]");
        return 0;
    }
    char small[256];
    for (int64_t i = 0; i < n; i++) {
        int len = tok_piece(v, ids[i], true, small, sizeof(small));
        char *piece = small;
        if (len > (int)sizeof(small)) {
            piece = malloc((size_t)len);
            if (!piece) return -1;
            tok_piece(v, ids[i], true, piece, len);
        }
        printf("%6d -> ", ids[i]);
        print_escaped(piece, len < 0 ? 0 : len);
        putchar('\n');
        if (piece != small) free(piece);
    }
    return 0;
}

int cmd_tokenize(int argc, char **argv) {
    int json = 0, add_bos = 1, n_pos = 0;
    const char *pos[2] = {NULL, NULL};
    int only_positional = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!only_positional && !strcmp(a, "--"))
            only_positional = 1;
        else if (!only_positional && !strcmp(a, "--json"))
            json = 1;
        else if (!only_positional && !strcmp(a, "--no-bos"))
            add_bos = 0;
        else if (!only_positional && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
            usage(stdout);
            return 0;
        } else if (!only_positional && a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "lamina tokenize: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        } else if (n_pos < 2) {
            pos[n_pos++] = a;
        } else {
            fprintf(stderr, "lamina tokenize: too many arguments\n");
            usage(stderr);
            return 2;
        }
    }
    const char *model = NULL, *text = NULL;
    if (n_pos == 2) {
        model = pos[0];
        text = pos[1];
    } else if (n_pos == 1 && !is_gguf_file(pos[0])) {
        model = cli_default_model();
        text = pos[0];
    } else {
        fprintf(stderr, "lamina tokenize: no TEXT given\n");
        usage(stderr);
        return 2;
    }

    lm_error err = {{0}};
    gguf_file *f = gguf_open(model, &err);
    if (!f) {
        fprintf(stderr, "lamina tokenize: cannot open model: %s\n", err.msg);
        return 1;
    }
    tok_vocab *v = tok_vocab_load(f, &err);
    gguf_close(f);
    if (!v) {
        fprintf(stderr, "lamina tokenize: cannot load the tokenizer: %s\n", err.msg);
        return 1;
    }
    int rc = 1;
    size_t len = strlen(text);
    int64_t n = tok_encode(v, text, len, add_bos, true, NULL, 0, &err);
    int32_t *ids = n >= 0 ? malloc((size_t)(n ? n : 1) * sizeof(int32_t)) : NULL;
    if (n < 0) {
        fprintf(stderr, "lamina tokenize: %s\n", err.msg);
    } else if (!ids || tok_encode(v, text, len, add_bos, true, ids, n, &err) != n || print_tokens(v, ids, n, json)) {
        fprintf(stderr, "lamina tokenize: out of memory\n");
    } else {
        rc = 0;
    }
    free(ids);
    tok_vocab_free(v);
    return rc;
}
