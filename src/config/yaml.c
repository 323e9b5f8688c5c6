/* YAML to node tree: libyaml's event stream folded into maps, sequences and scalars that
 * remember where they were written. Anything that could make the tree grow beyond the
 * text (aliases) or mean something other than it says (tags, anchors) is refused. */
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "node.h"

typedef struct builder_s {
    tg__node_t *root;
    tg__node_t *stack[TG__CONFIG_MAX_DEPTH];
    size_t depth;
    int ndocs;
    const char *file;
    tg_errors_t *errs;
} builder_t;

void tg__node_free(tg__node_t *n)
{
    if (n == NULL)
        return;
    for (size_t i = 0; i < n->nkids; i++)
        tg__node_free(n->kids[i]);
    free(n->kids);
    free(n->text);
    free(n);
}

static tg_pos_t mark_pos(yaml_mark_t m)
{
    tg_pos_t p = {.line = (int)m.line + 1, .col = (int)m.column + 1};
    return p;
}

static int fail(builder_t *b, yaml_mark_t m, const char *msg)
{
    tg_pos_t p = mark_pos(m);
    tg_errors_add(b->errs, TG_SEV_ERROR, b->file, p.line, p.col, "%s", msg);
    return -1;
}

static tg__node_t *node_new(tg__node_kind_t kind, yaml_mark_t m)
{
    tg__node_t *n = tg_calloc(1, sizeof(*n));
    n->kind = kind;
    n->pos = mark_pos(m);
    return n;
}

static void append(tg__node_t *parent, tg__node_t *kid)
{
    if (parent->nkids == parent->cap) {
        parent->cap = parent->cap ? parent->cap * 2 : 4;
        parent->kids = tg_realloc(parent->kids, parent->cap * sizeof(*parent->kids));
    }
    parent->kids[parent->nkids++] = kid;
}

/* Hangs a new node under the open collection; keys must be plain text so that every key
 * lookup later is a string comparison. */
static int attach(builder_t *b, tg__node_t *n, yaml_mark_t m)
{
    if (b->depth == 0) {
        b->root = n;
        return 0;
    }
    tg__node_t *parent = b->stack[b->depth - 1];
    if (parent->kind == TG__NODE_MAP && parent->nkids % 2 == 0) {
        const char *problem = NULL;
        if (n->kind != TG__NODE_SCALAR)
            problem = "a mapping key must be a single value, not a mapping or sequence";
        else if (strlen(n->text) != n->len)
            problem = "a mapping key must not contain a NUL character";
        if (problem != NULL) {
            tg__node_free(n);
            return fail(b, m, problem);
        }
    }
    append(parent, n);
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

static int on_scalar(builder_t *b, const yaml_event_t *ev)
{
    if (check_props(b, ev->data.scalar.anchor, ev->data.scalar.tag, ev->start_mark) != 0)
        return -1;
    tg__node_t *n = node_new(TG__NODE_SCALAR, ev->start_mark);
    n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    n->len = ev->data.scalar.length;
    n->text = tg_strndup((const char *)ev->data.scalar.value, n->len);
    return attach(b, n, ev->start_mark);
}

static int on_open(builder_t *b, const yaml_event_t *ev, tg__node_kind_t kind,
                   const yaml_char_t *anchor, const yaml_char_t *tag)
{
    if (check_props(b, anchor, tag, ev->start_mark) != 0)
        return -1;
    if (b->depth == TG__CONFIG_MAX_DEPTH)
        return fail(b, ev->start_mark, "nesting deeper than 32 levels");
    tg__node_t *n = node_new(kind, ev->start_mark);
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
    case YAML_SCALAR_EVENT:
        return on_scalar(b, ev);
    case YAML_SEQUENCE_START_EVENT:
        return on_open(b, ev, TG__NODE_SEQ, ev->data.sequence_start.anchor,
                       ev->data.sequence_start.tag);
    case YAML_MAPPING_START_EVENT:
        return on_open(b, ev, TG__NODE_MAP, ev->data.mapping_start.anchor,
                       ev->data.mapping_start.tag);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        if (b->depth > 0)
            b->depth--;
        return 0;
    default:
        return 0;
    }
}

static void syntax_error(builder_t *b, const yaml_parser_t *p)
{
    tg_pos_t pos = mark_pos(p->problem_mark);
    const char *problem = p->problem ? p->problem : "unreadable input";

    if (p->context != NULL)
        tg_errors_add(b->errs, TG_SEV_ERROR, b->file, pos.line, pos.col, "invalid YAML: %s %s",
                      p->context, problem);
    else
        tg_errors_add(b->errs, TG_SEV_ERROR, b->file, pos.line, pos.col, "invalid YAML: %s",
                      problem);
}

tg__node_t *tg__yaml_parse(const char *buf, size_t len, const char *file, tg_errors_t *errs)
{
    builder_t b = {.file = file, .errs = errs};
    yaml_parser_t parser;
    yaml_event_t ev;
    int rc = 0;
    bool done = false;

    if (len > TG__CONFIG_MAX_BYTES) {
        tg_errors_add(errs, TG_SEV_ERROR, file, 0, 0, "file larger than 4 MiB");
        return NULL;
    }
    if (!yaml_parser_initialize(&parser))
        abort(); /* only fails when out of memory */
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
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
        tg__node_free(b.root);
        return NULL;
    }
    return b.root;
}
