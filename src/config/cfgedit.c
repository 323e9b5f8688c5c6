/* The config editor's operations. Each one plans a few splices of the current text from the
 * tree (replace these bytes, insert those lines), applies them to a copy, and keeps the copy
 * only when it re-parses to the old tree with exactly the intended change. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/cfgedit.h"

#include "cfgedit_tree.h"
#include "node.h"

struct tg_cfgedit_s {
    char *text; /* NUL-terminated */
    size_t len;
    char *name;
    tg__ed_t *root;
    size_t step;     /* indentation of a nested block mapping */
    const char *eol; /* what lines the editor adds end with */
};

typedef enum { OP_SCALAR, OP_SEQ, OP_DELETE } op_kind_t;

typedef struct op_s {
    op_kind_t kind;
    const char *const *path;
    size_t depth;
    const char *value;        /* OP_SCALAR */
    const char *const *items; /* OP_SEQ */
    size_t n;
} op_t;

typedef struct splice_s {
    size_t start, end;
    char *repl;
    size_t len;
    size_t order; /* ties in start and end keep the order they were planned in */
} splice_t;

typedef struct plan_s {
    splice_t *v;
    size_t n, cap;
} plan_t;

/* Where a path leads: maps[i] holds path[i] at key index kidx[i] for i < at; when at < depth,
 * cont is what stands where path[at] would be looked up (a mapping, a null, or no document). */
typedef struct where_s {
    size_t at;
    tg__ed_t *maps[TG__CONFIG_MAX_DEPTH];
    size_t kidx[TG__CONFIG_MAX_DEPTH];
    tg__ed_t *cont;
} where_t;

/* ---- messages ---------------------------------------------------------------------------- */

static int fail_at(const tg_cfgedit_t *e, tg_errors_t *errs, const tg__ed_t *at, const char *fmt,
                   ...) __attribute__((format(printf, 4, 5)));

static int fail_at(const tg_cfgedit_t *e, tg_errors_t *errs, const tg__ed_t *at, const char *fmt,
                   ...)
{
    va_list ap;
    va_start(ap, fmt);
    tg_errors_vadd(errs, TG_SEV_ERROR, e->name, at ? at->line : 0, at ? at->col : 0, fmt, ap);
    va_end(ap);
    return -1;
}

/* "a.b.c" for the first n keys, cut short; keys were checked to be printable. */
static const char *path_text(char *buf, size_t size, const op_t *op, size_t n)
{
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && len + 1 < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s%s", i ? "." : "", op->path[i]);
    return buf;
}

static int unsupported(const tg_cfgedit_t *e, tg_errors_t *errs, const tg__ed_t *at,
                       const char *why)
{
    return fail_at(e, errs, at, "cannot edit this layout in place: %s", why);
}

/* ---- plans ------------------------------------------------------------------------------- */

static void plan_add(plan_t *pl, size_t start, size_t end, tg__ed_buf_t *repl)
{
    if (pl->n == pl->cap) {
        pl->cap = pl->cap ? pl->cap * 2 : 8;
        pl->v = tg_realloc(pl->v, pl->cap * sizeof(*pl->v));
    }
    pl->v[pl->n] =
        (splice_t){.start = start, .end = end, .repl = repl->p, .len = repl->len, .order = pl->n};
    pl->n++;
    *repl = (tg__ed_buf_t){0};
}

static void plan_cut(plan_t *pl, size_t start, size_t end)
{
    tg__ed_buf_t none = {0};
    plan_add(pl, start, end, &none);
}

static void plan_free(plan_t *pl)
{
    for (size_t i = 0; i < pl->n; i++)
        free(pl->v[i].repl);
    free(pl->v);
}

static int splice_cmp(const void *a, const void *b)
{
    const splice_t *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return x->order < y->order ? -1 : 1;
}

/* ---- rendering new text ------------------------------------------------------------------ */

static void put_flow_seq(tg__ed_buf_t *b, const char *const *items, size_t n)
{
    tg__ed_puts(b, "[");
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            tg__ed_puts(b, ", ");
        tg__ed_put_scalar(b, items[i]);
    }
    tg__ed_puts(b, "]");
}

/* The new value as it goes after "key: ": a scalar or a flow sequence. */
static void put_leaf(tg__ed_buf_t *b, const op_t *op)
{
    if (op->kind == OP_SCALAR)
        tg__ed_put_scalar(b, op->value);
    else
        put_flow_seq(b, op->items, op->n);
}

/* keys[0]: { keys[1]: leaf }, for a path created inside a flow mapping. */
static void put_flow(tg__ed_buf_t *b, const char *const *keys, size_t n, const op_t *op)
{
    for (size_t i = 0; i < n; i++) {
        tg__ed_put_scalar(b, keys[i]);
        tg__ed_puts(b, i + 1 < n ? ": { " : ": ");
    }
    put_leaf(b, op);
    for (size_t i = 1; i < n; i++)
        tg__ed_puts(b, " }");
}

/* One line a key, each nested by the file's step, for a path created in block style. */
static void put_block(const tg_cfgedit_t *e, tg__ed_buf_t *b, const char *const *keys, size_t n,
                      const op_t *op, size_t col)
{
    for (size_t i = 0; i < n; i++) {
        tg__ed_spaces(b, col + i * e->step);
        tg__ed_put_scalar(b, keys[i]);
        tg__ed_puts(b, ":");
        if (i + 1 == n) {
            tg__ed_puts(b, " ");
            put_leaf(b, op);
        }
        tg__ed_puts(b, e->eol);
    }
}

/* Lines inserted at pos start on a line of their own even when the file has no final break. */
static void put_eol_if_needed(const tg_cfgedit_t *e, tg__ed_buf_t *b, size_t pos)
{
    if (pos == e->len && e->len > 0 && e->text[e->len - 1] != '\n')
        tg__ed_puts(b, e->eol);
}

static size_t column(const tg_cfgedit_t *e, size_t pos)
{
    return pos - tg__ed_line_start(e->text, pos);
}

/* Past the comment lines right after pos that are indented deeper than col: they sit inside
 * the entry above, visually, so nothing is inserted before them and a delete takes them. */
static size_t skip_inner_comments(const tg_cfgedit_t *e, size_t pos, size_t col)
{
    size_t indent;
    while (pos < e->len && tg__ed_comment_line(e->text, e->len, pos, &indent) && indent > col)
        pos = tg__ed_next_line(e->text, e->len, pos);
    return pos;
}

/* Puts text right after a ':'. The blanks before a comment stay (a '#' glued to a value
 * would become part of it); trailing blanks go; a closing bracket keeps its space. */
static void after_colon(const tg_cfgedit_t *e, plan_t *pl, size_t colon, const char *text)
{
    size_t p = colon + 1, q = p;
    tg__ed_buf_t b = {0};

    while (q < e->len && (e->text[q] == ' ' || e->text[q] == '\t'))
        q++;
    char next = q < e->len ? e->text[q] : '\0';
    tg__ed_puts(&b, " ");
    tg__ed_puts(&b, text);
    if ((next == '}' || next == ']') && q > p)
        tg__ed_puts(&b, " ");
    plan_add(pl, p, next == '#' ? p : q, &b);
}

/* ---- planning ----------------------------------------------------------------------------- */

/* Replaces the value of entry k of map m with inl (goes after "key: ") or with lines (whole
 * lines below the key). */
static int replace_value(const tg_cfgedit_t *e, plan_t *pl, const tg__ed_t *m, size_t k,
                         const char *inl, const char *lines, tg_errors_t *errs)
{
    const tg__ed_t *key = m->kids[k], *v = m->kids[k + 1];
    tg__ed_buf_t b = {0};

    if (v->start == v->end) { /* an empty value */
        if (inl != NULL && v->colon == TG__ED_NOPOS) {
            tg__ed_puts(&b, ": ");
            tg__ed_puts(&b, inl);
            plan_add(pl, key->end, key->end, &b);
        } else if (inl != NULL) {
            after_colon(e, pl, v->colon, inl);
        } else {
            size_t pos = tg__ed_next_line(e->text, e->len, v->start);
            put_eol_if_needed(e, &b, pos);
            tg__ed_puts(&b, lines);
            plan_add(pl, pos, pos, &b);
        }
        return 0;
    }
    if (v->colon == TG__ED_NOPOS)
        return unsupported(e, errs, key, "a key without ':'");
    bool same_line = !tg__ed_has_break(e->text, v->colon, v->start);
    if (same_line && inl != NULL) {
        tg__ed_puts(&b, inl);
        plan_add(pl, v->start, v->end, &b);
        return 0;
    }
    /* Whole lines change hands from here on: nothing but a comment may share them. */
    if (!tg__ed_rest_trivial(e->text, e->len, v->end))
        return unsupported(e, errs, v, "more after the value on its line");
    if (same_line) {
        size_t pos = tg__ed_next_line(e->text, e->len, v->end);
        plan_cut(pl, v->colon + 1, v->end);
        put_eol_if_needed(e, &b, pos);
        tg__ed_puts(&b, lines);
        plan_add(pl, pos, pos, &b);
        return 0;
    }
    if (!tg__ed_first_on_line(e->text, v->start))
        return unsupported(e, errs, v, "a value that does not start its line");
    size_t ls = tg__ed_line_start(e->text, v->start);
    size_t le = tg__ed_next_line(e->text, e->len, v->end);
    if (inl != NULL) {
        plan_cut(pl, ls, le);
        after_colon(e, pl, v->colon, inl);
    } else {
        tg__ed_puts(&b, lines);
        plan_add(pl, ls, le, &b);
    }
    return 0;
}

/* Adds keys[0..n) (nested) and the leaf at the end of mapping m, in m's style. */
static int insert_entry(const tg_cfgedit_t *e, plan_t *pl, const tg__ed_t *m,
                        const char *const *keys, size_t n, const op_t *op, tg_errors_t *errs)
{
    tg__ed_buf_t b = {0};

    if (m->flow) {
        if (m->nkids == 0) {
            tg__ed_puts(&b, "{ ");
            put_flow(&b, keys, n, op);
            tg__ed_puts(&b, " }");
            plan_add(pl, m->start, m->end, &b);
        } else {
            size_t pos = m->kids[m->nkids - 1]->end;
            tg__ed_puts(&b, ", ");
            put_flow(&b, keys, n, op);
            plan_add(pl, pos, pos, &b);
        }
        return 0;
    }
    const tg__ed_t *first = m->kids[0];
    if (!tg__ed_first_on_line(e->text, first->start))
        return unsupported(e, errs, first, "a mapping whose first key does not start its line");
    size_t col = column(e, first->start);
    size_t pos = skip_inner_comments(e, tg__ed_next_line(e->text, e->len, m->end), col);
    put_eol_if_needed(e, &b, pos);
    put_block(e, &b, keys, n, op, col);
    plan_add(pl, pos, pos, &b);
    return 0;
}

/* Creates keys[0..n) where a null (or no document at all) stands for an empty mapping. */
static int fill_hole(const tg_cfgedit_t *e, plan_t *pl, const where_t *w, const char *const *keys,
                     size_t n, const op_t *op, tg_errors_t *errs)
{
    tg__ed_buf_t b = {0};
    int rc;

    if (w->at == 0) {
        const tg__ed_t *r = w->cont;
        if (r != NULL && r->end > r->start)
            plan_cut(pl, r->start, r->end);
        put_eol_if_needed(e, &b, e->len);
        put_block(e, &b, keys, n, op, 0);
        plan_add(pl, e->len, e->len, &b);
        return 0;
    }
    const tg__ed_t *m = w->maps[w->at - 1];
    const tg__ed_t *key = m->kids[w->kidx[w->at - 1]];
    if (m->flow) {
        put_flow(&b, keys, n, op);
        tg__ed_buf_t braced = {0};
        tg__ed_puts(&braced, "{ ");
        tg__ed_puts(&braced, b.p);
        tg__ed_puts(&braced, " }");
        rc = replace_value(e, pl, m, w->kidx[w->at - 1], braced.p, NULL, errs);
        free(braced.p);
    } else {
        if (!tg__ed_first_on_line(e->text, key->start))
            return unsupported(e, errs, key, "a key that does not start its line");
        put_block(e, &b, keys, n, op, column(e, key->start) + e->step);
        rc = replace_value(e, pl, m, w->kidx[w->at - 1], NULL, b.p, errs);
    }
    free(b.p);
    return rc;
}

/* The '-' of a block sequence item, when it starts the item's line; else TG__ED_NOPOS. */
static size_t dash_of(const tg_cfgedit_t *e, const tg__ed_t *item)
{
    size_t p = item->start;
    while (p > 0 && e->text[p - 1] == ' ')
        p--;
    if (p == 0 || e->text[p - 1] != '-' || !tg__ed_first_on_line(e->text, p - 1))
        return TG__ED_NOPOS;
    return p - 1;
}

/* When the new list is the old one with items removed and others appended, plans only that,
 * so comments on kept items stay. 1 when planned, 0 when the whole value must be written. */
static int seq_diff(const tg_cfgedit_t *e, plan_t *pl, const tg__ed_t *v, const op_t *op)
{
    size_t nold = v->nkids, i, j = 0, nkeep = 0;
    tg__ed_buf_t b = {0};

    for (size_t k = 0; k < nold; k++) {
        const tg__ed_t *it = v->kids[k];
        if (it->kind != TG__ED_SCALAR || it->start == it->end || tg__ed_is_null(it))
            return 0;
        if (!v->flow &&
            (dash_of(e, it) == TG__ED_NOPOS || !tg__ed_rest_trivial(e->text, e->len, it->end)))
            return 0;
    }
    bool *keep = tg_calloc(nold ? nold : 1, sizeof(*keep));
    for (i = 0; i < op->n; i++) {
        size_t k = j;
        while (k < nold && !tg__ed_key_is(v->kids[k], op->items[i]))
            k++;
        if (k == nold)
            break;
        keep[k] = true;
        nkeep++;
        j = k + 1;
    }
    if (nkeep == 0) {
        free(keep);
        return 0;
    }
    const tg__ed_t *last = v->kids[nold - 1];
    if (!v->flow) {
        size_t dash = dash_of(e, v->kids[0]);
        for (size_t k = 0; k < nold; k++) {
            if (!keep[k])
                plan_cut(pl, tg__ed_line_start(e->text, v->kids[k]->start),
                         tg__ed_next_line(e->text, e->len, v->kids[k]->end));
        }
        size_t pos = tg__ed_next_line(e->text, e->len, last->end);
        put_eol_if_needed(e, &b, pos);
        for (size_t k = i; k < op->n; k++) {
            tg__ed_spaces(&b, column(e, dash));
            tg__ed_puts(&b, "-");
            tg__ed_spaces(&b, v->kids[0]->start - dash - 1);
            tg__ed_put_scalar(&b, op->items[k]);
            tg__ed_puts(&b, e->eol);
        }
        if (i < op->n)
            plan_add(pl, pos, pos, &b);
    } else {
        /* An item goes with the comma after it; the removed tail with the comma before it. */
        size_t tail = nold;
        while (!keep[tail - 1])
            tail--;
        for (size_t k = 0; k < tail; k++) {
            if (!keep[k])
                plan_cut(pl, v->kids[k]->start, v->kids[k + 1]->start);
        }
        if (tail < nold)
            plan_cut(pl, v->kids[tail - 1]->end, last->end);
        for (size_t k = i; k < op->n; k++) {
            tg__ed_puts(&b, ", ");
            tg__ed_put_scalar(&b, op->items[k]);
        }
        if (i < op->n)
            plan_add(pl, last->end, last->end, &b);
    }
    free(b.p);
    free(keep);
    return 1;
}

static int set_seq_found(const tg_cfgedit_t *e, plan_t *pl, const tg__ed_t *m, size_t k,
                         const op_t *op, tg_errors_t *errs)
{
    const tg__ed_t *v = m->kids[k + 1];
    tg__ed_buf_t b = {0};
    int rc;

    if (v->kind == TG__ED_SEQ && seq_diff(e, pl, v, op))
        return 0;
    if (v->kind == TG__ED_SEQ && !v->flow && op->n > 0) {
        size_t dash = dash_of(e, v->kids[0]);
        if (dash == TG__ED_NOPOS)
            return unsupported(e, errs, v, "a sequence item that does not start its line");
        for (size_t i = 0; i < op->n; i++) {
            tg__ed_spaces(&b, column(e, dash));
            tg__ed_puts(&b, "- ");
            tg__ed_put_scalar(&b, op->items[i]);
            tg__ed_puts(&b, e->eol);
        }
        rc = replace_value(e, pl, m, k, NULL, b.p, errs);
    } else {
        put_flow_seq(&b, op->items, op->n);
        rc = replace_value(e, pl, m, k, b.p, NULL, errs);
    }
    free(b.p);
    return rc;
}

static int delete_entry(const tg_cfgedit_t *e, plan_t *pl, const where_t *w, const op_t *op,
                        tg_errors_t *errs)
{
    const tg__ed_t *m = w->maps[op->depth - 1];
    size_t k = w->kidx[op->depth - 1];
    const tg__ed_t *key = m->kids[k], *v = m->kids[k + 1];

    if (m->flow) {
        tg__ed_buf_t b = {0};
        if (m->nkids == 2) {
            tg__ed_puts(&b, "{}");
            plan_add(pl, m->start, m->end, &b);
        } else if (k + 2 < m->nkids) {
            plan_cut(pl, key->start, m->kids[k + 2]->start);
        } else {
            plan_cut(pl, m->kids[k - 1]->end, v->end);
        }
        return 0;
    }
    if (!tg__ed_first_on_line(e->text, key->start))
        return unsupported(e, errs, key, "a key that does not start its line");
    if (!tg__ed_rest_trivial(e->text, e->len, v->end))
        return unsupported(e, errs, v, "more after the value on its line");
    size_t le = tg__ed_next_line(e->text, e->len, v->end);
    plan_cut(pl, tg__ed_line_start(e->text, key->start),
             skip_inner_comments(e, le, column(e, key->start)));
    if (m->nkids == 2 && op->depth > 1) {
        /* A bare "key:" would read as null; {} keeps it a mapping, as the loader expects. */
        if (m->colon == TG__ED_NOPOS)
            return unsupported(e, errs, m, "a key without ':'");
        after_colon(e, pl, m->colon, "{}");
    }
    return 0;
}

/* ---- checks -------------------------------------------------------------------------------- */

static int check_input(const tg_cfgedit_t *e, const op_t *op, tg_errors_t *errs)
{
    const char *why;

    if (op->depth == 0 || op->path == NULL)
        return fail_at(e, errs, NULL, "an empty path");
    if (op->depth > TG__CONFIG_MAX_DEPTH - 1)
        return fail_at(e, errs, NULL, "a path deeper than %d keys", TG__CONFIG_MAX_DEPTH - 1);
    for (size_t i = 0; i < op->depth; i++) {
        if (op->path[i] == NULL)
            return fail_at(e, errs, NULL, "key %zu of the path is missing", i + 1);
        if ((why = tg__ed_bad_text(op->path[i])) != NULL)
            return fail_at(e, errs, NULL, "key %zu of the path %s", i + 1, why);
        if (strlen(op->path[i]) > TG__ED_MAX_KEY_BYTES)
            return fail_at(e, errs, NULL, "key %zu of the path is longer than %d bytes", i + 1,
                           TG__ED_MAX_KEY_BYTES);
    }
    if (op->kind == OP_SCALAR) {
        if (op->value == NULL)
            return fail_at(e, errs, NULL, "no value");
        if ((why = tg__ed_bad_text(op->value)) != NULL)
            return fail_at(e, errs, NULL, "the value %s", why);
    }
    if (op->kind == OP_SEQ) {
        if (op->items == NULL && op->n > 0)
            return fail_at(e, errs, NULL, "no items");
        for (size_t i = 0; i < op->n; i++) {
            if (op->items[i] == NULL)
                return fail_at(e, errs, NULL, "item %zu is missing", i + 1);
            if ((why = tg__ed_bad_text(op->items[i])) != NULL)
                return fail_at(e, errs, NULL, "item %zu %s", i + 1, why);
        }
    }
    return 0;
}

static int walk(const tg_cfgedit_t *e, const op_t *op, where_t *w, tg_errors_t *errs)
{
    tg__ed_t *node = e->root;
    char buf[256];

    for (size_t i = 0; i < op->depth; i++) {
        if (node == NULL || tg__ed_is_null(node)) {
            w->at = i;
            w->cont = node;
            return 0;
        }
        if (node->kind != TG__ED_MAP)
            return fail_at(e, errs, node, "%s is %s, not a mapping",
                           i ? path_text(buf, sizeof(buf), op, i) : "the document",
                           node->kind == TG__ED_SEQ ? "a sequence" : "a single value");
        size_t found = TG__ED_NOPOS, count = 0;
        for (size_t k = 0; k + 1 < node->nkids; k += 2) {
            if (tg__ed_key_is(node->kids[k], op->path[i])) {
                found = count++ ? found : k;
            }
        }
        if (count > 1)
            return fail_at(e, errs, node->kids[found], "%s is written twice",
                           path_text(buf, sizeof(buf), op, i + 1));
        w->maps[i] = node;
        if (count == 0) {
            w->at = i;
            w->cont = node;
            return 0;
        }
        w->kidx[i] = found;
        node = node->kids[found + 1];
    }
    w->at = op->depth;
    w->cont = NULL;
    return 0;
}

static bool leaf_ok(const tg__ed_t *n, const op_t *op)
{
    if (op->kind == OP_SCALAR)
        return n->kind == TG__ED_SCALAR && !tg__ed_is_null(n) && tg__ed_key_is(n, op->value);
    if (n->kind != TG__ED_SEQ || n->nkids != op->n)
        return false;
    for (size_t i = 0; i < op->n; i++) {
        if (tg__ed_is_null(n->kids[i]) || !tg__ed_key_is(n->kids[i], op->items[i]))
            return false;
    }
    return true;
}

/* The new tree n equals the old tree o but for the op at path[i..]: every other entry on the
 * way is the same, in the same order. A null or no document counts as an empty mapping. */
static bool check_at(const tg__ed_t *o, const tg__ed_t *n, const op_t *op, size_t i)
{
    if (i == op->depth)
        return n != NULL && leaf_ok(n, op);
    if ((o != NULL && o->kind != TG__ED_MAP && !tg__ed_is_null(o)) ||
        (n != NULL && n->kind != TG__ED_MAP && !tg__ed_is_null(n)))
        return false;
    size_t no = o && o->kind == TG__ED_MAP ? o->nkids : 0;
    size_t nn = n && n->kind == TG__ED_MAP ? n->nkids : 0;
    size_t a = 0, b = 0, count = 0, opos = 0, npos = 0;
    const tg__ed_t *ov = NULL, *nv = NULL;
    for (;;) {
        while (a < no && tg__ed_key_is(o->kids[a], op->path[i])) {
            ov = o->kids[a + 1];
            opos = a;
            a += 2;
        }
        while (b < nn && tg__ed_key_is(n->kids[b], op->path[i])) {
            nv = n->kids[b + 1];
            npos = b;
            count++;
            b += 2;
        }
        if (a >= no || b >= nn)
            break;
        if (!tg__ed_same(o->kids[a], n->kids[b]) || !tg__ed_same(o->kids[a + 1], n->kids[b + 1]))
            return false;
        a += 2;
        b += 2;
    }
    if (a < no || b < nn)
        return false;
    if (op->kind == OP_DELETE && i + 1 == op->depth)
        return count == 0;
    /* An entry that was there keeps its place; a new one comes last. */
    if (count != 1 || npos != (ov != NULL ? opos : nn - 2))
        return false;
    return check_at(ov, nv, op, i + 1);
}

/* Applies the plan to a copy and keeps it only if it reads back as intended. */
static int commit(tg_cfgedit_t *e, plan_t *pl, const op_t *op, tg_errors_t *errs)
{
    tg__ed_buf_t out = {0};
    tg_errors_t scratch;
    tg__ed_t *root = NULL;
    size_t step, pos = 0;
    int rc = -1;
    char first[512];

    if (pl->n == 0)
        return 0;
    qsort(pl->v, pl->n, sizeof(*pl->v), splice_cmp);
    for (size_t i = 0; i < pl->n; i++) {
        const splice_t *s = &pl->v[i];
        if (s->start < pos || s->end < s->start || s->end > e->len)
            abort(); /* the planners never overlap their splices */
        tg__ed_put(&out, e->text + pos, s->start - pos);
        tg__ed_put(&out, s->repl ? s->repl : "", s->len);
        pos = s->end;
    }
    tg__ed_put(&out, e->text + pos, e->len - pos);

    tg_errors_init(&scratch);
    if (tg__ed_check_text(out.p, out.len, e->name, &scratch) != 0 ||
        tg__ed_parse(out.p, out.len, e->name, &scratch, &root, &step) != 0) {
        tg_errors_first(&scratch, first, sizeof(first));
        fail_at(e, errs, NULL, "the edit would not leave a valid file (%s); nothing changed",
                first);
    } else if (!check_at(e->root, root, op, 0)) {
        fail_at(e, errs, NULL, "the edit would not read back as intended; nothing changed");
    } else {
        free(e->text);
        tg__ed_free(e->root);
        e->text = out.p;
        e->len = out.len;
        e->root = root;
        e->step = step;
        out.p = NULL;
        root = NULL;
        rc = 0;
    }
    tg_errors_free(&scratch);
    tg__ed_free(root);
    free(out.p);
    return rc;
}

static int apply(tg_cfgedit_t *e, const op_t *op, tg_errors_t *errs)
{
    where_t w = {0}; /* gcc -O2 cannot see walk() fill it before use */
    plan_t pl = {0};
    int rc;

    if (check_input(e, op, errs) != 0 || walk(e, op, &w, errs) != 0)
        return -1;
    const tg__ed_t *m = w.at > 0 ? w.maps[w.at - 1] : NULL;
    size_t k = w.at > 0 ? w.kidx[w.at - 1] : 0;
    if (op->kind == OP_DELETE) {
        if (w.at < op->depth)
            return 0; /* nothing to delete */
        rc = delete_entry(e, &pl, &w, op, errs);
    } else if (w.at == op->depth && op->kind == OP_SCALAR) {
        const tg__ed_t *v = m->kids[k + 1];
        if (v->kind == TG__ED_SCALAR && !tg__ed_is_null(v) && tg__ed_key_is(v, op->value))
            return 0; /* already so: keep the operator's quoting */
        tg__ed_buf_t b = {0};
        put_leaf(&b, op);
        rc = replace_value(e, &pl, m, k, b.p, NULL, errs);
        free(b.p);
    } else if (w.at == op->depth) {
        rc = set_seq_found(e, &pl, m, k, op, errs);
    } else if (w.cont != NULL && w.cont->kind == TG__ED_MAP) {
        rc = insert_entry(e, &pl, w.cont, op->path + w.at, op->depth - w.at, op, errs);
    } else {
        rc = fill_hole(e, &pl, &w, op->path + w.at, op->depth - w.at, op, errs);
    }
    if (rc == 0)
        rc = commit(e, &pl, op, errs);
    plan_free(&pl);
    return rc;
}

/* ---- API ----------------------------------------------------------------------------------- */

tg_cfgedit_t *tg_cfgedit_new(const char *text, size_t len, const char *name, tg_errors_t *errs)
{
    tg__ed_t *root;
    size_t step;
    char *copy;

    if (text == NULL) {
        text = "";
        len = 0;
    }
    if (tg__ed_check_text(text, len, name, errs) != 0)
        return NULL;
    /* The tree is built on the copy: the scans past a node may rely on its final NUL. */
    copy = tg_malloc(len + 1);
    memcpy(copy, text, len);
    copy[len] = '\0';
    if (tg__ed_parse(copy, len, name, errs, &root, &step) != 0) {
        free(copy);
        return NULL;
    }
    tg_cfgedit_t *e = tg_calloc(1, sizeof(*e));
    e->text = copy;
    e->len = len;
    e->name = name ? tg_strdup(name) : NULL;
    e->root = root;
    e->step = step;
    const char *nl = memchr(text, '\n', len);
    e->eol = nl != NULL && nl > text && nl[-1] == '\r' ? "\r\n" : "\n";
    return e;
}

void tg_cfgedit_free(tg_cfgedit_t *e)
{
    if (e == NULL)
        return;
    tg__ed_free(e->root);
    free(e->text);
    free(e->name);
    free(e);
}

int tg_cfgedit_set_scalar(tg_cfgedit_t *e, const char *const *path, size_t depth, const char *value,
                          tg_errors_t *errs)
{
    const op_t op = {.kind = OP_SCALAR, .path = path, .depth = depth, .value = value};
    return apply(e, &op, errs);
}

int tg_cfgedit_set_seq(tg_cfgedit_t *e, const char *const *path, size_t depth,
                       const char *const *items, size_t n, tg_errors_t *errs)
{
    const op_t op = {.kind = OP_SEQ, .path = path, .depth = depth, .items = items, .n = n};
    return apply(e, &op, errs);
}

int tg_cfgedit_delete(tg_cfgedit_t *e, const char *const *path, size_t depth, tg_errors_t *errs)
{
    const op_t op = {.kind = OP_DELETE, .path = path, .depth = depth};
    return apply(e, &op, errs);
}

const char *tg_cfgedit_text(const tg_cfgedit_t *e, size_t *len)
{
    if (len != NULL)
        *len = e->len;
    return e->text;
}
