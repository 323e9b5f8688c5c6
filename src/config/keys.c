/* The directive-table machinery every section parser uses: walking a mapping against a
 * table of keys, the generic value setters, and the messages they produce. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "node.h"

#define FIELD(s, k, type) ((type *)((char *)(s)->obj + (k)->off))

static void vreport(tg__ctx_t *c, tg_severity_t sev, const tg__node_t *at, const char *fmt,
                    va_list ap)
{
    int line = at ? at->pos.line : 0;
    int col = at ? at->pos.col : 0;
    tg_errors_vadd(c->errs, sev, c->file, line, col, fmt, ap);
}

void tg__err(tg__ctx_t *c, const tg__node_t *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(c, TG_SEV_ERROR, at, fmt, ap);
    va_end(ap);
}

void tg__warn(tg__ctx_t *c, const tg__node_t *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(c, TG_SEV_WARNING, at, fmt, ap);
    va_end(ap);
}

void tg__warn_pos(tg__ctx_t *c, tg_pos_t pos, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tg_errors_vadd(c->errs, TG_SEV_WARNING, c->file, pos.line, pos.col, fmt, ap);
    va_end(ap);
}

void tg__err_pos(tg__ctx_t *c, tg_pos_t pos, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tg_errors_vadd(c->errs, TG_SEV_ERROR, c->file, pos.line, pos.col, fmt, ap);
    va_end(ap);
}

/* Values go into messages that end up on terminals and in JSON answers: escape anything
 * that is not plain printable ASCII, and keep them short. */
const char *tg__quote(tg__quote_t *q, const char *text, size_t len)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (o >= 64) {
            memcpy(q->s + o, "...", 4);
            return q->s;
        }
        if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\')
            q->s[o++] = (char)ch;
        else
            o += (size_t)snprintf(q->s + o, sizeof(q->s) - o, "\\x%02x", ch);
    }
    q->s[o] = '\0';
    return q->s;
}

const char *tg__qnode(tg__quote_t *q, const tg__node_t *n)
{
    if (n->kind != TG__NODE_SCALAR)
        return n->kind == TG__NODE_MAP ? "{...}" : "[...]";
    return tg__quote(q, n->text, n->len);
}

bool tg__is_null(const tg__node_t *n)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};

    if (n->kind != TG__NODE_SCALAR || !n->plain)
        return false;
    for (size_t i = 0; i < TG_ARRAY_SIZE(nulls); i++) {
        if (strcmp(n->text, nulls[i]) == 0)
            return true;
    }
    return false;
}

static const char *kind_name(const tg__node_t *n)
{
    return n->kind == TG__NODE_MAP   ? "a mapping"
           : n->kind == TG__NODE_SEQ ? "a sequence"
                                     : "a single value";
}

/* A null stands for an empty mapping, so that a section with everything commented out
 * still reads as the defaults. */
static bool is_map(tg__ctx_t *c, const char *label, const tg__node_t *n)
{
    if (n->kind == TG__NODE_MAP || tg__is_null(n))
        return n->kind == TG__NODE_MAP;
    tg__err(c, n, "%s must be a mapping, not %s", label, kind_name(n));
    return false;
}

/* Index of the value of `name` in the mapping's kids, or 0 (never a value's index). */
static size_t find_pair(const tg__node_t *map, const char *name)
{
    if (map == NULL || map->kind != TG__NODE_MAP)
        return 0;
    for (size_t i = 0; i + 1 < map->nkids; i += 2) {
        if (strcmp(map->kids[i]->text, name) == 0)
            return i + 1;
    }
    return 0;
}

const tg__node_t *tg__map_key(const tg__node_t *map, const char *name)
{
    size_t i = find_pair(map, name);
    return i ? map->kids[i - 1] : NULL;
}

const tg__node_t *tg__map_val(const tg__node_t *map, const char *name)
{
    size_t i = find_pair(map, name);
    return i ? map->kids[i] : NULL;
}

static size_t find_key(const tg__key_t *keys, size_t nkeys, const char *name)
{
    for (size_t i = 0; i < nkeys; i++) {
        if (strcmp(keys[i].name, name) == 0)
            return i;
    }
    return nkeys;
}

uint64_t tg__map_apply(tg__ctx_t *c, const tg__sect_t *s, const tg__node_t *map,
                       const tg__key_t *keys, size_t nkeys)
{
    uint64_t seen = 0;
    tg__quote_t q;

    if (nkeys > 64)
        abort(); /* a table this long is a programming error: seen has 64 bits */
    if (is_map(c, s->label, map)) {
        for (size_t i = 0; i + 1 < map->nkids; i += 2) {
            const tg__node_t *key = map->kids[i];
            size_t k = find_key(keys, nkeys, key->text);
            if (k == nkeys) {
                tg__err(c, key, "unknown key \"%s\" in %s", tg__qnode(&q, key), s->label);
            } else if (seen & (UINT64_C(1) << k)) {
                tg__err(c, key, "duplicate key \"%s\" in %s", keys[k].name, s->label);
            } else {
                seen |= UINT64_C(1) << k;
                keys[k].set(c, s, &keys[k], key, map->kids[i + 1]);
            }
        }
    }
    for (size_t k = 0; k < nkeys; k++) {
        if (keys[k].required && !(seen & (UINT64_C(1) << k)))
            tg__err(c, s->at, "%s: missing required key \"%s\"", s->label, keys[k].name);
    }
    return seen;
}

size_t tg__map_count(const tg__node_t *map)
{
    return map != NULL && map->kind == TG__NODE_MAP ? map->nkids / 2 : 0;
}

/* ---- id-keyed mappings --------------------------------------------------------------- */

typedef struct id_ref_s {
    const char *text;
    size_t index;
} id_ref_t;

static int cmp_ref(const void *a, const void *b)
{
    const id_ref_t *x = a, *y = b;
    int r = strcmp(x->text, y->text);
    if (r != 0)
        return r;
    return x->index < y->index ? -1 : x->index > y->index;
}

static bool id_valid(const char *id)
{
    size_t n = strlen(id);

    if (n == 0 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = id[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
        if (!ok && (i == 0 || (ch != '.' && ch != '_' && ch != '-')))
            return false;
    }
    return true;
}

/* Sorting finds duplicates in n log n: a generated file with many entries stays fast. */
static bool *mark_duplicates(const tg__node_t *map, size_t n)
{
    id_ref_t *refs = tg_calloc(n, sizeof(*refs));
    bool *dup = tg_calloc(n, sizeof(*dup));

    for (size_t i = 0; i < n; i++)
        refs[i] = (id_ref_t){.text = map->kids[2 * i]->text, .index = i};
    qsort(refs, n, sizeof(*refs), cmp_ref);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(refs[i].text, refs[i - 1].text) == 0)
            dup[refs[i].index] = true;
    }
    free(refs);
    return dup;
}

void tg__map_ids(tg__ctx_t *c, const char *what, const tg__node_t *map, tg__entry_fn fn)
{
    char label[64];
    size_t n = tg__map_count(map);
    tg__quote_t q;

    snprintf(label, sizeof(label), "%ss", what);
    if (!is_map(c, label, map) || n == 0)
        return;
    bool *dup = mark_duplicates(map, n);
    for (size_t i = 0; i < n; i++) {
        const tg__node_t *key = map->kids[2 * i];
        if (dup[i]) {
            tg__err(c, key, "duplicate %s \"%s\"", what, tg__qnode(&q, key));
            continue;
        }
        if (!id_valid(key->text))
            tg__err(c, key, "%s \"%s\": invalid id (ids match [a-z0-9][a-z0-9._-]{0,62})", what,
                    tg__qnode(&q, key));
        fn(c, what, key, map->kids[2 * i + 1]);
    }
    free(dup);
}

/* ---- scalars ------------------------------------------------------------------------- */

bool tg__seq(tg__ctx_t *c, const tg__sect_t *s, const tg__node_t *key, const tg__node_t *val)
{
    if (val->kind == TG__NODE_SEQ || tg__is_null(val))
        return true;
    tg__err(c, val, "%s: %s must be a sequence, not %s", s->label, key->text, kind_name(val));
    return false;
}

const char *tg__scalar(tg__ctx_t *c, const tg__sect_t *s, const tg__node_t *key,
                       const tg__node_t *val)
{
    if (val->kind != TG__NODE_SCALAR) {
        tg__err(c, val, "%s: %s must be a single value, not %s", s->label, key->text,
                kind_name(val));
        return NULL;
    }
    if (tg__is_null(val)) {
        tg__err(c, key, "%s: %s needs a value", s->label, key->text);
        return NULL;
    }
    if (strlen(val->text) != val->len) {
        tg__err(c, val, "%s: %s must not contain a NUL character", s->label, key->text);
        return NULL;
    }
    return val->text;
}

char *tg__resolve(const tg_config_t *cfg, const char *path)
{
    if (path[0] == '/')
        return tg_strdup(path);
    if (strcmp(cfg->dir, "/") == 0)
        return tg_sprintf("/%s", path);
    return tg_sprintf("%s/%s", cfg->dir, path);
}

void tg__set_pos(const tg__key_t *k, void *obj, const tg__node_t *val)
{
    if (k->pos_off != 0)
        *(tg_pos_t *)((char *)obj + k->pos_off - 1) = val->pos;
}

/* ---- generic setters ----------------------------------------------------------------- */

void tg__set_duration(tg__ctx_t *c, const tg__sect_t *s, const tg__key_t *k, const tg__node_t *key,
                      const tg__node_t *val)
{
    const char *text = tg__scalar(c, s, key, val);
    uint64_t ms;
    tg__quote_t q;

    if (text == NULL)
        return;
    if (tg_duration_parse(text, &ms) != 0) {
        tg__err(c, val, "%s: %s must be a duration such as 500ms, 10s, 5m or 1h, not \"%s\"",
                s->label, k->name, tg__qnode(&q, val));
        return;
    }
    if (ms < k->min) {
        tg__err(c, val, "%s: %s must be greater than 0", s->label, k->name);
        return;
    }
    /* Timers and QUIC take durations in nanoseconds: a bound keeps every product far from
     * overflowing, and no timeout of a proxy needs to be longer. */
    if (ms > TG__DURATION_MAX_MS) {
        tg__err(c, val, "%s: %s must be at most 24h, not \"%s\"", s->label, k->name,
                tg__qnode(&q, val));
        return;
    }
    *FIELD(s, k, uint64_t) = ms;
    tg__set_pos(k, s->obj, val);
}

static bool get_uint(tg__ctx_t *c, const tg__sect_t *s, const tg__key_t *k, const tg__node_t *key,
                     const tg__node_t *val, uint64_t *out)
{
    const char *text = tg__scalar(c, s, key, val);
    tg__quote_t q;

    if (text == NULL)
        return false;
    if (tg_uint_parse(text, k->min, k->max, out) != 0) {
        tg__err(c, val, "%s: %s must be an integer from %" PRIu64 " to %" PRIu64 ", not \"%s\"",
                s->label, k->name, k->min, k->max, tg__qnode(&q, val));
        return false;
    }
    tg__set_pos(k, s->obj, val);
    return true;
}

void tg__set_u64(tg__ctx_t *c, const tg__sect_t *s, const tg__key_t *k, const tg__node_t *key,
                 const tg__node_t *val)
{
    uint64_t v;

    if (get_uint(c, s, k, key, val, &v))
        *FIELD(s, k, uint64_t) = v;
}

void tg__set_unsigned(tg__ctx_t *c, const tg__sect_t *s, const tg__key_t *k, const tg__node_t *key,
                      const tg__node_t *val)
{
    uint64_t v;

    if (get_uint(c, s, k, key, val, &v))
        *FIELD(s, k, unsigned) = (unsigned)v;
}

void tg__set_bool(tg__ctx_t *c, const tg__sect_t *s, const tg__key_t *k, const tg__node_t *key,
                  const tg__node_t *val)
{
    const char *text = tg__scalar(c, s, key, val);
    tg__quote_t q;

    if (text == NULL)
        return;
    if (strcmp(text, "true") == 0 || strcmp(text, "yes") == 0) {
        *FIELD(s, k, bool) = true;
    } else if (strcmp(text, "false") == 0 || strcmp(text, "no") == 0) {
        *FIELD(s, k, bool) = false;
    } else {
        tg__err(c, val, "%s: %s must be true, false, yes or no, not \"%s\"", s->label, k->name,
                tg__qnode(&q, val));
        return;
    }
    tg__set_pos(k, s->obj, val);
}

void tg__set_enum(tg__ctx_t *c, const tg__sect_t *s, const tg__key_t *k, const tg__node_t *key,
                  const tg__node_t *val)
{
    const char *text = tg__scalar(c, s, key, val);
    char valid[256] = "";
    tg__quote_t q;

    if (text == NULL)
        return;
    for (int i = 0; k->words[i] != NULL; i++) {
        if (strcmp(text, k->words[i]) == 0) {
            *FIELD(s, k, int) = i;
            tg__set_pos(k, s->obj, val);
            return;
        }
    }
    for (int i = 0; k->words[i] != NULL; i++) {
        size_t n = strlen(valid);
        snprintf(valid + n, sizeof(valid) - n, "%s%s", i ? ", " : "", k->words[i]);
    }
    tg__err(c, val, "%s: unknown %s \"%s\" (valid: %s)", s->label, k->name, tg__qnode(&q, val),
            valid);
}

/* The scalar text of val, or NULL (with the problem reported) when it is not a scalar or
 * is empty. */
static const char *nonempty_scalar(tg__ctx_t *c, const tg__sect_t *s, const tg__key_t *k,
                                   const tg__node_t *key, const tg__node_t *val)
{
    const char *text = tg__scalar(c, s, key, val);
    if (text != NULL && text[0] == '\0') {
        tg__err(c, val, "%s: %s must not be empty", s->label, k->name);
        return NULL;
    }
    return text;
}

void tg__set_path(tg__ctx_t *c, const tg__sect_t *s, const tg__key_t *k, const tg__node_t *key,
                  const tg__node_t *val)
{
    const char *text = nonempty_scalar(c, s, k, key, val);
    char **field = FIELD(s, k, char *);

    if (text == NULL)
        return;
    free(*field);
    *field = tg__resolve(c->cfg, text);
    tg__set_pos(k, s->obj, val);
}

void tg__set_token(tg__ctx_t *c, const tg__sect_t *s, const tg__key_t *k, const tg__node_t *key,
                   const tg__node_t *val)
{
    const char *text = nonempty_scalar(c, s, k, key, val);
    char **field = FIELD(s, k, char *);

    if (text == NULL)
        return;
    for (const char *p = text; *p; p++) {
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f) {
            tg__err(c, val, "%s: %s must be printable ASCII", s->label, k->name);
            return;
        }
    }
    free(*field);
    *field = tg_strdup(text);
    tg__set_pos(k, s->obj, val);
}
