/* The editor's view of the text: libyaml events folded into a tree whose nodes know the
 * bytes they were written in, the line helpers splices are planned with, and the rules for
 * writing a value so that it reads back as itself. */
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "cfgedit_tree.h"
#include "node.h"

/* ---- checks before parsing ------------------------------------------------------------ */

static int refuse(tg_errors_t *errs, const char *name, const char *text, size_t pos,
                  const char *msg)
{
    int line = 1, col = 1;
    for (size_t i = 0; i < pos; i++) {
        if (text[i] == '\n') {
            line++;
            col = 1;
        } else if (((unsigned char)text[i] & 0xC0) != 0x80) {
            col++;
        }
    }
    tg_errors_add(errs, TG_SEV_ERROR, name, line, col, "%s", msg);
    return -1;
}

int tg__ed_check_text(const char *text, size_t len, const char *name, tg_errors_t *errs)
{
    const unsigned char *t = (const unsigned char *)text;
    bool indent = true; /* still in the line's leading whitespace */

    if (len > TG__CONFIG_MAX_BYTES) {
        tg_errors_add(errs, TG_SEV_ERROR, name, 0, 0, "file larger than 4 MiB");
        return -1;
    }
    if (len >= 2 && ((t[0] == 0xFE && t[1] == 0xFF) || (t[0] == 0xFF && t[1] == 0xFE)))
        return refuse(errs, name, text, 0, "only UTF-8 text can be edited, not UTF-16");
    for (size_t i = 0; i < len; i++) {
        /* Positions are found by '\n': libyaml's other breaks would shift every line. */
        if (t[i] == '\0')
            return refuse(errs, name, text, i, "a NUL byte");
        if (t[i] == '\r' && (i + 1 == len || t[i + 1] != '\n'))
            return refuse(errs, name, text, i, "a carriage return not followed by a newline");
        if ((t[i] == 0xC2 && i + 1 < len && t[i + 1] == 0x85) ||
            (t[i] == 0xE2 && i + 2 < len && t[i + 1] == 0x80 &&
             (t[i + 2] == 0xA8 || t[i + 2] == 0xA9)))
            return refuse(errs, name, text, i, "line breaks other than LF and CRLF");
        if (t[i] == '\t' && indent)
            return refuse(errs, name, text, i, "a tab in indentation (YAML indents with spaces)");
        if (t[i] == '\n')
            indent = true;
        else if (t[i] != ' ' && t[i] != '\r')
            indent = false;
    }
    return 0;
}

/* ---- tree ------------------------------------------------------------------------------ */

void tg__ed_free(tg__ed_t *n)
{
    if (n == NULL)
        return;
    for (size_t i = 0; i < n->nkids; i++)
        tg__ed_free(n->kids[i]);
    free(n->kids);
    free(n->text);
    free(n);
}

bool tg__ed_is_null(const tg__ed_t *n)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};

    if (n == NULL || n->kind != TG__ED_SCALAR || !n->plain)
        return false;
    for (size_t i = 0; i < TG_ARRAY_SIZE(nulls); i++) {
        if (strcmp(n->text, nulls[i]) == 0)
            return true;
    }
    return false;
}

bool tg__ed_key_is(const tg__ed_t *key, const char *name)
{
    return key->kind == TG__ED_SCALAR && key->len == strlen(name) &&
           memcmp(key->text, name, key->len) == 0;
}

/* Same content, whatever the style: what the loader would read is what must not change. */
bool tg__ed_same(const tg__ed_t *a, const tg__ed_t *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    if (a->kind != b->kind)
        return false;
    if (a->kind == TG__ED_SCALAR)
        return a->len == b->len && memcmp(a->text, b->text, a->len) == 0 &&
               tg__ed_is_null(a) == tg__ed_is_null(b);
    if (a->nkids != b->nkids)
        return false;
    for (size_t i = 0; i < a->nkids; i++) {
        if (!tg__ed_same(a->kids[i], b->kids[i]))
            return false;
    }
    return true;
}

/* libyaml 0.2.5 counts a mark's index in characters, not bytes: walk the UTF-8 to convert.
 * Marks come nearly in order, so a cursor that moves both ways stays linear overall. */
typedef struct cursor_s {
    const unsigned char *t;
    size_t len;
    size_t ci, bi;
} cursor_t;

static size_t to_byte(cursor_t *c, size_t ci)
{
    while (c->ci < ci && c->bi < c->len) {
        unsigned char b = c->t[c->bi];
        size_t w = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
        c->bi = c->bi + w > c->len ? c->len : c->bi + w;
        c->ci++;
    }
    while (c->ci > ci && c->bi > 0) {
        do
            c->bi--;
        while (c->bi > 0 && (c->t[c->bi] & 0xC0) == 0x80);
        c->ci--;
    }
    return c->bi;
}

typedef struct builder_s {
    tg__ed_t *root;
    tg__ed_t *stack[TG__CONFIG_MAX_DEPTH];
    size_t depth;
    int ndocs;
    cursor_t cur;
    const char *name;
    tg_errors_t *errs;
} builder_t;

static int fail(builder_t *b, yaml_mark_t m, const char *msg)
{
    tg_errors_add(b->errs, TG_SEV_ERROR, b->name, (int)m.line + 1, (int)m.column + 1, "%s", msg);
    return -1;
}

static tg__ed_t *node_new(builder_t *b, tg__ed_kind_t kind, const yaml_event_t *ev)
{
    tg__ed_t *n = tg_calloc(1, sizeof(*n));
    n->kind = kind;
    n->start = to_byte(&b->cur, ev->start_mark.index);
    n->end = to_byte(&b->cur, ev->end_mark.index);
    n->colon = TG__ED_NOPOS;
    n->line = (int)ev->start_mark.line + 1;
    n->col = (int)ev->start_mark.column + 1;
    return n;
}

static int attach(builder_t *b, tg__ed_t *n, yaml_mark_t m)
{
    if (b->depth == 0) {
        b->root = n;
        return 0;
    }
    tg__ed_t *parent = b->stack[b->depth - 1];
    if (parent->kind == TG__ED_MAP && parent->nkids % 2 == 0) {
        /* Keys are compared as C strings along paths: they must be plain text. */
        const char *problem = NULL;
        if (n->kind != TG__ED_SCALAR)
            problem = "a mapping key must be a single value, not a mapping or sequence";
        else if (strlen(n->text) != n->len)
            problem = "a mapping key must not contain a NUL character";
        if (problem != NULL) {
            tg__ed_free(n);
            return fail(b, m, problem);
        }
    }
    if (parent->nkids == parent->cap) {
        parent->cap = parent->cap ? parent->cap * 2 : 4;
        parent->kids = tg_realloc(parent->kids, parent->cap * sizeof(*parent->kids));
    }
    parent->kids[parent->nkids++] = n;
    return 0;
}

static int check_props(builder_t *b, const yaml_char_t *anchor, const yaml_char_t *tag,
                       yaml_mark_t m)
{
    if (anchor != NULL)
        return fail(b, m, "YAML anchors are not allowed");
    if (tag != NULL)
        return fail(b, m, "YAML tags are not allowed");
    return 0;
}

static int on_open(builder_t *b, const yaml_event_t *ev, tg__ed_kind_t kind, bool flow,
                   const yaml_char_t *anchor, const yaml_char_t *tag)
{
    if (check_props(b, anchor, tag, ev->start_mark) != 0)
        return -1;
    if (b->depth == TG__CONFIG_MAX_DEPTH)
        return fail(b, ev->start_mark, "nesting deeper than 32 levels");
    tg__ed_t *n = node_new(b, kind, ev);
    n->flow = flow;
    if (attach(b, n, ev->start_mark) != 0)
        return -1;
    b->stack[b->depth++] = n;
    return 0;
}

static int on_event(builder_t *b, const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++b->ndocs > 1)
            return fail(b, ev->start_mark, "only one YAML document is allowed");
        return 0;
    case YAML_ALIAS_EVENT:
        return fail(b, ev->start_mark, "YAML aliases are not allowed");
    case YAML_SCALAR_EVENT: {
        if (check_props(b, ev->data.scalar.anchor, ev->data.scalar.tag, ev->start_mark) != 0)
            return -1;
        tg__ed_t *n = node_new(b, TG__ED_SCALAR, ev);
        yaml_scalar_style_t st = ev->data.scalar.style;
        n->plain = st == YAML_PLAIN_SCALAR_STYLE;
        n->folded = st == YAML_LITERAL_SCALAR_STYLE || st == YAML_FOLDED_SCALAR_STYLE;
        n->len = ev->data.scalar.length;
        n->text = tg_strndup((const char *)ev->data.scalar.value, n->len);
        return attach(b, n, ev->start_mark);
    }
    case YAML_SEQUENCE_START_EVENT:
        return on_open(b, ev, TG__ED_SEQ, ev->data.sequence_start.style == YAML_FLOW_SEQUENCE_STYLE,
                       ev->data.sequence_start.anchor, ev->data.sequence_start.tag);
    case YAML_MAPPING_START_EVENT:
        return on_open(b, ev, TG__ED_MAP, ev->data.mapping_start.style == YAML_FLOW_MAPPING_STYLE,
                       ev->data.mapping_start.anchor, ev->data.mapping_start.tag);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        if (b->depth > 0) {
            tg__ed_t *n = b->stack[--b->depth];
            /* A block collection's end mark is wherever the next token is, past comments
             * and blank lines; finish() uses its last value's end instead. */
            if (n->flow)
                n->end = to_byte(&b->cur, ev->end_mark.index);
        }
        return 0;
    default:
        return 0;
    }
}

static bool blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Settles the spans the editor relies on, bottom up, and learns the nesting step. */
static void finish(tg__ed_t *n, const char *text, size_t *step)
{
    if (n->kind == TG__ED_SCALAR) {
        while (n->folded && n->end > n->start && blank(text[n->end - 1]))
            n->end--;
        return;
    }
    for (size_t i = 0; i < n->nkids; i++)
        finish(n->kids[i], text, step);
    if (n->kind == TG__ED_MAP) {
        for (size_t i = 0; i + 1 < n->nkids; i += 2) {
            tg__ed_t *key = n->kids[i], *val = n->kids[i + 1];
            size_t p = key->end;
            while (text[p] == ' ' || text[p] == '\t')
                p++;
            val->colon = text[p] == ':' ? p : TG__ED_NOPOS;
            /* An empty value's mark is wherever the next token was; pin it to its key. */
            if (val->kind == TG__ED_SCALAR && val->len == 0 && val->plain)
                val->start = val->end = val->colon != TG__ED_NOPOS ? val->colon + 1 : key->end;
            if (*step == 0 && !n->flow && val->kind == TG__ED_MAP && !val->flow &&
                tg__ed_first_on_line(text, val->start) &&
                val->start - tg__ed_line_start(text, val->start) >
                    key->start - tg__ed_line_start(text, key->start))
                *step = (val->start - tg__ed_line_start(text, val->start)) -
                        (key->start - tg__ed_line_start(text, key->start));
        }
    }
    if (!n->flow && n->nkids > 0)
        n->end = n->kids[n->nkids - 1]->end;
}

static void syntax_error(builder_t *b, const yaml_parser_t *p)
{
    const char *problem = p->problem ? p->problem : "unreadable input";
    int line = (int)p->problem_mark.line + 1, col = (int)p->problem_mark.column + 1;

    if (p->context != NULL)
        tg_errors_add(b->errs, TG_SEV_ERROR, b->name, line, col, "invalid YAML: %s %s", p->context,
                      problem);
    else
        tg_errors_add(b->errs, TG_SEV_ERROR, b->name, line, col, "invalid YAML: %s", problem);
}

int tg__ed_parse(const char *text, size_t len, const char *name, tg_errors_t *errs, tg__ed_t **root,
                 size_t *step)
{
    builder_t b = {.name = name, .errs = errs};
    yaml_parser_t parser;
    yaml_event_t ev;
    int rc = 0;
    bool done = false;

    b.cur.t = (const unsigned char *)text;
    b.cur.len = len;
    /* libyaml does not count a UTF-8 byte order mark in its marks. */
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        b.cur.bi = 3;
    if (!yaml_parser_initialize(&parser))
        abort(); /* only fails when out of memory */
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    while (rc == 0 && !done) {
        if (!yaml_parser_parse(&parser, &ev)) {
            syntax_error(&b, &parser);
            rc = -1;
            break;
        }
        done = ev.type == YAML_STREAM_END_EVENT;
        rc = on_event(&b, &ev);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    if (rc != 0) {
        tg__ed_free(b.root);
        return -1;
    }
    *step = 0;
    if (b.root != NULL)
        finish(b.root, text, step);
    if (*step == 0)
        *step = 2;
    *root = b.root;
    return 0;
}

/* ---- lines ------------------------------------------------------------------------------ */

size_t tg__ed_line_start(const char *text, size_t pos)
{
    while (pos > 0 && text[pos - 1] != '\n')
        pos--;
    /* A byte order mark is not indentation: the first line starts after it. */
    if (pos == 0 && strncmp(text, "\xEF\xBB\xBF", 3) == 0)
        return 3;
    return pos;
}

size_t tg__ed_next_line(const char *text, size_t len, size_t pos)
{
    while (pos < len && text[pos] != '\n')
        pos++;
    return pos < len ? pos + 1 : len;
}

bool tg__ed_first_on_line(const char *text, size_t pos)
{
    for (size_t p = tg__ed_line_start(text, pos); p < pos; p++) {
        if (text[p] != ' ')
            return false;
    }
    return true;
}

bool tg__ed_rest_trivial(const char *text, size_t len, size_t pos)
{
    while (pos < len && (text[pos] == ' ' || text[pos] == '\t' || text[pos] == '\r'))
        pos++;
    return pos == len || text[pos] == '\n' || text[pos] == '#';
}

bool tg__ed_comment_line(const char *text, size_t len, size_t ls, size_t *indent)
{
    size_t p = ls;
    while (p < len && text[p] == ' ')
        p++;
    if (p == len || text[p] != '#')
        return false;
    if (indent != NULL)
        *indent = p - ls;
    return true;
}

bool tg__ed_has_break(const char *text, size_t from, size_t to)
{
    return memchr(text + from, '\n', to - from) != NULL;
}

/* ---- writing ---------------------------------------------------------------------------- */

void tg__ed_put(tg__ed_buf_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = tg_realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void tg__ed_puts(tg__ed_buf_t *b, const char *s)
{
    tg__ed_put(b, s, strlen(s));
}

void tg__ed_spaces(tg__ed_buf_t *b, size_t n)
{
    while (n-- > 0)
        tg__ed_put(b, " ", 1);
}

/* Length of the UTF-8 sequence at s, or 0 when it is not one (overlong, surrogate, > U+10FFFF). */
static size_t utf8_len(const unsigned char *s, unsigned *cp)
{
    size_t n;
    unsigned v, min;

    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if (s[0] >= 0xC2 && s[0] <= 0xDF)
        n = 2, v = s[0] & 0x1F, min = 0x80;
    else if (s[0] >= 0xE0 && s[0] <= 0xEF)
        n = 3, v = s[0] & 0x0F, min = 0x800;
    else if (s[0] >= 0xF0 && s[0] <= 0xF4)
        n = 4, v = s[0] & 0x07, min = 0x10000;
    else
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return n;
}

const char *tg__ed_bad_text(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    unsigned cp;

    while (*p != '\0') {
        size_t n = utf8_len(p, &cp);
        if (n == 0)
            return "is not valid UTF-8";
        /* libyaml reads NEL, LS and PS as line breaks, and a BOM is not content. */
        if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029 || cp == 0xFEFF)
            return "holds a control character";
        p += n;
    }
    return NULL;
}

/* Plain only when nothing in it can start or end a YAML construct in block or flow context:
 * stricter than YAML needs, so that the rule is easy to trust. */
static bool plain_ok(const char *s)
{
    static const char *const nulls[] = {"~", "null", "Null", "NULL"};
    size_t n = strlen(s);

    if (n == 0 || s[0] == ' ' || s[n - 1] == ' ')
        return false;
    if (strchr("-?:,[]{}#&*!|>'\"%@`", s[0]) != NULL || strncmp(s, "...", 3) == 0)
        return false;
    if (strpbrk(s, ":#,[]{}&*!|>'\"%@`") != NULL)
        return false;
    for (size_t i = 0; i < TG_ARRAY_SIZE(nulls); i++) {
        if (strcmp(s, nulls[i]) == 0)
            return false;
    }
    return true;
}

void tg__ed_put_scalar(tg__ed_buf_t *b, const char *s)
{
    if (plain_ok(s)) {
        tg__ed_puts(b, s);
        return;
    }
    /* tg__ed_bad_text() refused control characters, so only these two need escapes. */
    tg__ed_put(b, "\"", 1);
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            tg__ed_put(b, "\\", 1);
        tg__ed_put(b, p, 1);
    }
    tg__ed_put(b, "\"", 1);
}
