/* cfgedit internals: the YAML tree with byte spans the editor plans its splices on, the
 * line helpers, and how values are written. Only src/config/cfgedit*.c include this. */
#ifndef TOLLGATE_CONFIG_CFGEDIT_TREE_H
#define TOLLGATE_CONFIG_CFGEDIT_TREE_H

#include <stdbool.h>
#include <stddef.h>

#include "tollgate/core.h"

#define TG__ED_NOPOS ((size_t)-1)
/* libyaml finds an implicit key only within 1024 characters of its ':'. */
#define TG__ED_MAX_KEY_BYTES 1024

typedef enum { TG__ED_SCALAR, TG__ED_MAP, TG__ED_SEQ } tg__ed_kind_t;

typedef struct tg__ed_s tg__ed_t;
struct tg__ed_s {
    tg__ed_kind_t kind;
    bool flow;   /* collection written in [ ] or { } */
    bool plain;  /* scalar without quotes: only those can be null */
    bool folded; /* scalar written as a | or > block */
    /* Byte span of what was written: quotes and brackets included; a block collection ends
     * where its last value ends; a folded scalar ends at its last non-blank character; an
     * empty value sits right after its ':' (or its key when there is none). */
    size_t start, end;
    size_t colon;  /* map values: offset of the ':' before them, or TG__ED_NOPOS */
    int line, col; /* 1-based, for messages */
    char *text;    /* scalar, NUL-terminated; may hold NULs from "\0" escapes */
    size_t len;
    tg__ed_t **kids; /* seq: items; map: key, value, key, value, ... (keys are scalars) */
    size_t nkids;
    size_t cap;
};

/* Refuses what the editor cannot keep intact: too large, not UTF-8, line breaks other than
 * LF and CRLF, tabs in indentation. 0 or -1 with a problem. */
int tg__ed_check_text(const char *text, size_t len, const char *name, tg_errors_t *errs);
/* One document into *root (NULL when it has no content). *step is the indentation the file
 * nests block mappings by (2 when it shows none). 0, or -1 with a problem. */
int tg__ed_parse(const char *text, size_t len, const char *name, tg_errors_t *errs, tg__ed_t **root,
                 size_t *step);
void tg__ed_free(tg__ed_t *n);

bool tg__ed_is_null(const tg__ed_t *n);
bool tg__ed_same(const tg__ed_t *a, const tg__ed_t *b);
bool tg__ed_key_is(const tg__ed_t *key, const char *name);

/* ---- lines (byte offsets into text of len bytes) -------------------------------------- */

/* Where pos's line starts (after a byte order mark on the first line); text ends in NUL. */
size_t tg__ed_line_start(const char *text, size_t pos);
/* Just after the '\n' ending pos's line, or len. */
size_t tg__ed_next_line(const char *text, size_t len, size_t pos);
/* Only spaces between the line's start and pos. */
bool tg__ed_first_on_line(const char *text, size_t pos);
/* Only blanks and perhaps a comment from pos to the end of its line. */
bool tg__ed_rest_trivial(const char *text, size_t len, size_t pos);
/* The line at ls is a comment; *indent (may be NULL) gets its column. */
bool tg__ed_comment_line(const char *text, size_t len, size_t ls, size_t *indent);
bool tg__ed_has_break(const char *text, size_t from, size_t to);

/* ---- writing -------------------------------------------------------------------------- */

typedef struct tg__ed_buf_s {
    char *p;
    size_t len;
    size_t cap;
} tg__ed_buf_t;

void tg__ed_put(tg__ed_buf_t *b, const char *s, size_t n);
void tg__ed_puts(tg__ed_buf_t *b, const char *s);
void tg__ed_spaces(tg__ed_buf_t *b, size_t n);
/* NULL when s may be written, else why not (control character, bad UTF-8, ...). */
const char *tg__ed_bad_text(const char *s);
/* s as a plain scalar when that reads back as s (and not as null), else double-quoted. */
void tg__ed_put_scalar(tg__ed_buf_t *b, const char *s);

#endif
