/* libFuzzer target for the config editor. The input is a YAML text, a NUL, then a small
 * program of edits (kind, path, value) from words that reach into real configs and raw
 * hostile bytes. Every successful edit must leave text that parses again and reads back, with
 * the loader's own parser, as what was asked; every failed one must leave the text as it was.
 * An input starting with NUL edits a built-in commented config instead. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "tollgate/cfgedit.h"

#include "../../src/config/node.h"

static const char builtin[] = "version: 1\n"
                              "certificates:\n"
                              "  a:   # first\n"
                              "    type: server\n"
                              "    cert: a.crt\n"
                              "      # inside\n"
                              "  b: { type: ca, cert: b.crt }\n"
                              "listeners:\n"
                              "  l:\n"
                              "    certificates:\n"
                              "      default: a\n"
                              "      extended:\n"
                              "        - b   # bee\n"
                              "        - c\n"
                              "    mutual_auth:\n"
                              "    x: [a, b]\n"
                              "    y: {}\n"
                              "    z: ~\n"
                              "  q: { certificates: { default: a, extended: [b] } }";

static const char *const words[] = {
    "listeners", "l",        "q",           "certificates",
    "default",   "extended", "mutual_auth", "enabled",
    "x",         "y",        "z",           "a",
    "b",         "c",        "type",        "",
    "x: y",      "#",        "null",        "-",
    "{}",        "[]",       "\xc3\xa9",    "a\nb",
    "'",         "\"",       "true",        "version",
};

typedef struct prog_s {
    const uint8_t *p;
    size_t n;
    char strs[16][16]; /* raw strings of the current op */
    size_t nstrs;
} prog_t;

static int next(prog_t *g)
{
    if (g->n == 0)
        return -1;
    g->n--;
    return *g->p++;
}

/* A word, or up to 7 raw bytes (never a NUL: the API takes C strings). */
static const char *string(prog_t *g)
{
    int c = next(g);
    if (c < 0)
        return NULL;
    if (c & 0x80)
        return words[(size_t)c % (sizeof(words) / sizeof(words[0]))];
    if (g->nstrs == 16)
        return "a";
    char *s = g->strs[g->nstrs++];
    size_t len = (size_t)c % 8, i = 0;
    while (i < len && g->n > 0) {
        int b = next(g);
        s[i++] = b ? (char)b : '0';
    }
    s[i] = '\0';
    return s;
}

/* The loader's tree agrees with what the edit asked for. */
static void read_back(const char *text, size_t len, const char *const *path, size_t depth, int kind,
                      const char *value, const char *const *items, size_t n)
{
    tg__node_t *root = tg__yaml_parse(text, len, "fuzz.yaml", NULL);
    const tg__node_t *v = root;
    for (size_t i = 0; i < depth && v != NULL; i++)
        v = tg__map_val(v, path[i]);
    if (kind == 2) {
        CHECK(v == NULL);
    } else if (kind == 0) {
        CHECK(v != NULL && v->kind == TG__NODE_SCALAR && !tg__is_null(v));
        CHECK(v->len == strlen(value) && memcmp(v->text, value, v->len) == 0);
    } else {
        CHECK(v != NULL && v->kind == TG__NODE_SEQ && v->nkids == n);
        for (size_t i = 0; i < n; i++)
            CHECK(strcmp(v->kids[i]->text, items[i]) == 0 && !tg__is_null(v->kids[i]));
    }
    tg__node_free(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    const char *text = (const char *)data;
    size_t len = nul ? (size_t)(nul - data) : size;
    prog_t g = {.p = nul ? nul + 1 : data + size, .n = nul ? size - len - 1 : 0};
    tg_errors_t errs;

    if (nul == data) {
        text = builtin;
        len = sizeof(builtin) - 1;
    }
    tg_errors_init(&errs);
    tg_cfgedit_t *e = tg_cfgedit_new(text, len, "fuzz.yaml", &errs);
    CHECK((e != NULL) == (errs.nerrors == 0));
    tg_errors_free(&errs);
    if (e == NULL)
        return 0;

    for (int op = 0; op < 8; op++) {
        int b = next(&g);
        if (b < 0)
            break;
        int kind = b % 3;
        size_t depth = 1 + (size_t)(b >> 2) % 4, n = (size_t)(b >> 4) % 4;
        const char *path[4], *items[4], *value = NULL;
        g.nstrs = 0; /* at most 9 strings an op, so none is overwritten while in use */
        for (size_t i = 0; i < depth; i++) {
            const char *s = string(&g);
            path[i] = s ? s : "a";
        }
        if (kind == 0) {
            value = string(&g);
            if (value == NULL)
                value = "v";
        }
        for (size_t i = 0; kind == 1 && i < n; i++) {
            const char *s = string(&g);
            items[i] = s ? s : "i";
        }

        size_t before_len;
        char *before = strdup(tg_cfgedit_text(e, &before_len));
        int rc;
        tg_errors_init(&errs);
        if (kind == 0)
            rc = tg_cfgedit_set_scalar(e, path, depth, value, &errs);
        else if (kind == 1)
            rc = tg_cfgedit_set_seq(e, path, depth, items, n, &errs);
        else
            rc = tg_cfgedit_delete(e, path, depth, &errs);
        CHECK(rc == 0 || rc == -1);
        CHECK((rc == 0) == (errs.nerrors == 0));
        tg_errors_free(&errs);

        size_t after_len;
        const char *after = tg_cfgedit_text(e, &after_len);
        CHECK(strlen(after) == after_len);
        if (rc != 0) {
            CHECK(after_len == before_len && memcmp(after, before, before_len) == 0);
        } else {
            tg_errors_init(&errs);
            tg_cfgedit_t *again = tg_cfgedit_new(after, after_len, "fuzz.yaml", &errs);
            CHECK(again != NULL);
            tg_cfgedit_free(again);
            tg_errors_free(&errs);
            read_back(after, after_len, path, depth, kind, value, items, n);
        }
        free(before);
    }
    tg_cfgedit_free(e);
    return 0;
}
