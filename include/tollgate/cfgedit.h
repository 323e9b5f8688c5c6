/* cfgedit: edits of the YAML config text by source position, for the admin API. A change
 * (one value, one list, one entry) rewrites only the bytes it must, so every comment, key
 * order and layout the change does not touch stays as the operator wrote it. Pure text in,
 * text out: no I/O. */
#ifndef TOLLGATE_CFGEDIT_H
#define TOLLGATE_CFGEDIT_H

#include <stddef.h>

#include "tollgate/core.h"

typedef struct tg_cfgedit_s tg_cfgedit_t;

/* Takes a copy of the text. NULL, with a problem in errs, when it is not one YAML document
 * of block/flow mappings, sequences and scalars (anchors, aliases, tags refused), is larger
 * than 4 MiB or deeper than 32 levels like the loader allows, is not UTF-8, has line
 * breaks other than LF and CRLF, or indents with tabs. A CRLF file stays CRLF: lines the
 * editor adds end like the file's first line. `name` (may be NULL) prefixes messages, as the
 * config's path does for the loader. */
tg_cfgedit_t *tg_cfgedit_new(const char *text, size_t len, const char *name, tg_errors_t *errs);
void tg_cfgedit_free(tg_cfgedit_t *e);

/* Paths are mapping keys from the root, e.g. {"listeners", "https-main", "certificates",
 * "default"}. Keys and values may not hold control characters (newline, tab, NUL, C1,
 * U+2028/2029, BOM) nor invalid UTF-8: they come from API input and are refused, never
 * written. Values are written plain when that reads back as the same text (ids, paths,
 * `true`, `3`: the loader reads those by their text) and double-quoted otherwise (empty,
 * null words, indicators, `:`, `#`, quotes, edge spaces).
 *
 * Every edit returns 0, or -1 with a problem in errs and the text unchanged: the result is
 * re-parsed and must equal the old tree with exactly this change, or it is not kept. */

/* Sets the scalar at path, creating missing mappings on the way: appended at the end of
 * their parent in the parent's style (block, indented like the siblings; or inside `{ }`).
 * Replacing a value keeps everything around it, including a comment on the same line. */
int tg_cfgedit_set_scalar(tg_cfgedit_t *e, const char *const *path, size_t depth, const char *value,
                          tg_errors_t *errs);

/* Sets the value at path to a sequence of scalars, creating missing mappings. When the old
 * value is a sequence of scalars and the new one keeps some of its items in order and adds
 * others at the end, only removed items are cut and new ones appended, so comments on kept
 * items stay. Otherwise the whole value is written: as a block sequence in the old one's
 * indentation when it was one, else as a flow sequence `[a, b]`. An empty list is `[]`. */
int tg_cfgedit_set_seq(tg_cfgedit_t *e, const char *const *path, size_t depth,
                       const char *const *items, size_t n, tg_errors_t *errs);

/* Deletes the mapping entry at path: in block style the lines of its key and value, comment
 * lines inside the value and the more indented comment lines right after it (comments above
 * the key stay); in flow style the entry and one adjacent comma. The last entry of a nested
 * block mapping leaves `key: {}` so the parent stays a mapping. A missing key is 0. */
int tg_cfgedit_delete(tg_cfgedit_t *e, const char *const *path, size_t depth, tg_errors_t *errs);

/* The current text, NUL-terminated (owned by e; valid until the next edit or free). */
const char *tg_cfgedit_text(const tg_cfgedit_t *e, size_t *len);

#endif
