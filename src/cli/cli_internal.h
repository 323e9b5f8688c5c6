/* What the files of the cli module share. */
#ifndef TOLLGATE_CLI_INTERNAL_H
#define TOLLGATE_CLI_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* The options every admin command takes, and what is left once they are read. */
typedef struct tg__cli_args_s {
    const char *config; /* -c FILE */
    bool json;          /* --json */
    char *rest[8];      /* the operands, in order (no command takes more) */
    int nrest;
} tg__cli_args_t;

/* Reads -c and --json from argv[1..]; false (and a usage message) on an unknown option or
 * a missing -c. */
bool tg__cli_args(int argc, char **argv, tg__cli_args_t *a);

/* One admin API call on the instance of the config file: 0 with *status and the parsed
 * JSON answer (*answer, a new reference; NULL when the body was not JSON), or -1 after
 * printing why no answer came (unreadable config, no admin section, token, connection). */
int tg__cli_call(const char *config, const char *method, const char *path, const char *body,
                 long *status, json_t **answer);

/* The answer of a call that failed (status >= 300): prints its error; returns 1. */
int tg__cli_failed(long status, json_t *answer);

/* Prints a JSON value as the API sent it, indented; returns 0. */
int tg__cli_print_json(json_t *v);

/* A text table: columns padded to their widest cell, two spaces apart. */
typedef struct tg__cli_table_s {
    size_t ncols;
    char **cells; /* row-major; owned */
    size_t ncells;
    size_t cap;
} tg__cli_table_t;

void tg__cli_table_init(tg__cli_table_t *t, size_t ncols);
void tg__cli_table_add(tg__cli_table_t *t, const char *cell); /* copies; NULL as "-" */
void tg__cli_table_print(tg__cli_table_t *t);                 /* and frees */

/* The string member `key` of object o, or "" when there is none. */
const char *tg__cli_str(json_t *o, const char *key);
/* The strings of array member `key` joined with ", " (malloc'd; "-" when empty). */
char *tg__cli_join(json_t *o, const char *key);

#endif
