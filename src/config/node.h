/* config internals: the YAML node tree with positions, and the key tables the section
 * parsers are written in. Only src/config/ includes this. */
#ifndef TOLLGATE_CONFIG_NODE_H
#define TOLLGATE_CONFIG_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tollgate/config.h"

/* Bounds on what we hand to libyaml and what we build from it. */
#define TG__CONFIG_MAX_BYTES (4u * 1024 * 1024)
#define TG__CONFIG_MAX_DEPTH 32

/* ---- node tree (yaml.c) -------------------------------------------------------------- */

typedef enum { TG__NODE_SCALAR, TG__NODE_MAP, TG__NODE_SEQ } tg__node_kind_t;

typedef struct tg__node_s tg__node_t;
struct tg__node_s {
    tg__node_kind_t kind;
    tg_pos_t pos;
    bool plain; /* scalar written without quotes: only those can be null */
    char *text; /* scalar, NUL-terminated; may hold NULs from "\0" escapes */
    size_t len;
    tg__node_t **kids; /* seq: items; map: key, value, key, value, ... (keys are scalars) */
    size_t nkids;
    size_t cap;
};

/* Parses one YAML document into a tree. Returns NULL after adding an error, or with no
 * error for an empty document. Aliases, anchors, tags and deep nesting are refused. */
tg__node_t *tg__yaml_parse(const char *buf, size_t len, const char *file, tg_errors_t *errs);
void tg__node_free(tg__node_t *n);

/* ---- load context --------------------------------------------------------------------- */

typedef struct tg__ctx_s {
    tg_config_t *cfg;
    tg_errors_t *errs;
    const char *file;
    const tg__node_t **alt_svc; /* per listener: the alt_svc value, resolved at the end */
} tg__ctx_t;

/* While loading, an entry whose type or protocol was not understood keeps these values, so
 * that checks depending on it stay quiet instead of adding errors that follow from the first.
 * A config with errors is never returned, so callers never see them. */
#define TG__CERT_UNSET ((tg_cert_type_t)2)
#define TG__PROTO_UNSET ((tg_proto_t)2)

void tg__err(tg__ctx_t *c, const tg__node_t *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void tg__warn(tg__ctx_t *c, const tg__node_t *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void tg__warn_pos(tg__ctx_t *c, tg_pos_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void tg__err_pos(tg__ctx_t *c, tg_pos_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Text safe to put between quotes in a message: escaped and cut short. */
typedef struct tg__quote_s {
    char s[100];
} tg__quote_t;
const char *tg__quote(tg__quote_t *q, const char *text, size_t len);
const char *tg__qnode(tg__quote_t *q, const tg__node_t *n);

/* ---- key tables (keys.c) ------------------------------------------------------------- */

/* One mapping being read: messages say "<label>: ..." and "missing" errors point at `at`. */
typedef struct tg__sect_s {
    const char *label;
    const tg__node_t *at;
    void *obj;
} tg__sect_t;

typedef struct tg__key_s tg__key_t;
typedef void (*tg__set_fn)(tg__ctx_t *c, const tg__sect_t *s, const tg__key_t *k,
                           const tg__node_t *key, const tg__node_t *val);

/* A directive: its name, the setter and what the setter needs. */
struct tg__key_s {
    const char *name;
    tg__set_fn set;
    size_t off;               /* of the field in s->obj */
    size_t pos_off;           /* offset + 1 of a tg_pos_t for the value; 0 = none */
    uint64_t min, max;        /* numbers and durations */
    const char *const *words; /* enums: the value is the index; NULL-terminated */
    bool required;
};

#define TG__POS(type, field) (offsetof(type, field) + 1)

/* Applies the table to a mapping (null counts as empty). Reports unknown, duplicate and
 * missing required keys. Returns the set of keys seen, bit i for keys[i]. */
uint64_t tg__map_apply(tg__ctx_t *c, const tg__sect_t *s, const tg__node_t *map,
                       const tg__key_t *keys, size_t nkeys);
/* The key node of `name` in a mapping, or NULL; tg__map_val gives its value. */
const tg__node_t *tg__map_key(const tg__node_t *map, const char *name);
const tg__node_t *tg__map_val(const tg__node_t *map, const char *name);
/* Calls fn for each entry of an id-keyed mapping (certificates, backends, listeners) with a
 * unique key, after checking the id's syntax; tg__map_count bounds how many there will be. */
typedef void (*tg__entry_fn)(tg__ctx_t *c, const char *what, const tg__node_t *key,
                             const tg__node_t *val);
size_t tg__map_count(const tg__node_t *map);
void tg__map_ids(tg__ctx_t *c, const char *what, const tg__node_t *map, tg__entry_fn fn);
/* The items of a sequence (null counts as empty); false after an error. */
bool tg__seq(tg__ctx_t *c, const tg__sect_t *s, const tg__node_t *key, const tg__node_t *val);
bool tg__is_null(const tg__node_t *n);

/* Scalar text, or NULL after an error (not a scalar, null, holds a NUL). */
const char *tg__scalar(tg__ctx_t *c, const tg__sect_t *s, const tg__node_t *key,
                       const tg__node_t *val);
char *tg__resolve(const tg_config_t *cfg, const char *path);
void tg__set_pos(const tg__key_t *k, void *obj, const tg__node_t *val);

/* Generic setters for tables. */
#define TG__DURATION_MAX_MS (24ull * 3600 * 1000)
void tg__set_duration(tg__ctx_t *c, const tg__sect_t *s, const tg__key_t *k, const tg__node_t *key,
                      const tg__node_t *val);
void tg__set_u64(tg__ctx_t *c, const tg__sect_t *s, const tg__key_t *k, const tg__node_t *key,
                 const tg__node_t *val);
void tg__set_unsigned(tg__ctx_t *c, const tg__sect_t *s, const tg__key_t *k, const tg__node_t *key,
                      const tg__node_t *val);
void tg__set_bool(tg__ctx_t *c, const tg__sect_t *s, const tg__key_t *k, const tg__node_t *key,
                  const tg__node_t *val);
void tg__set_enum(tg__ctx_t *c, const tg__sect_t *s, const tg__key_t *k, const tg__node_t *key,
                  const tg__node_t *val);
void tg__set_path(tg__ctx_t *c, const tg__sect_t *s, const tg__key_t *k, const tg__node_t *key,
                  const tg__node_t *val);
/* Header-safe text (printable ASCII and spaces), for values that end up on the wire. */
void tg__set_token(tg__ctx_t *c, const tg__sect_t *s, const tg__key_t *k, const tg__node_t *key,
                   const tg__node_t *val);

/* ---- sections ------------------------------------------------------------------------ */

extern const char *const tg__policy_words[];
extern const char *const tg__log_level_words[];

void tg__load_global(tg__ctx_t *c, const tg__node_t *key, const tg__node_t *val);
void tg__load_admin(tg__ctx_t *c, const tg__node_t *key, const tg__node_t *val);
void tg__load_certs(tg__ctx_t *c, const tg__node_t *val);
void tg__load_backends(tg__ctx_t *c, const tg__node_t *val);
void tg__load_listeners(tg__ctx_t *c, const tg__node_t *val);

void tg__free_cert(tg_conf_cert_t *cert);
void tg__free_backend(tg_conf_backend_t *b);
void tg__free_listener(tg_conf_listener_t *l);

#endif
