/* Aligned text tables for the admin commands, as `docker ps` or `kubectl get` print them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_internal.h"
#include "tollgate/core.h"

void tg__cli_table_init(tg__cli_table_t *t, size_t ncols)
{
    *t = (tg__cli_table_t){.ncols = ncols};
}

void tg__cli_table_add(tg__cli_table_t *t, const char *cell)
{
    if (t->ncells == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 32;
        t->cells = tg_realloc(t->cells, t->cap * sizeof(char *));
    }
    t->cells[t->ncells++] = tg_strdup(cell != NULL && *cell ? cell : "-");
}

void tg__cli_table_print(tg__cli_table_t *t)
{
    size_t *width = tg_calloc(t->ncols, sizeof(size_t));
    for (size_t i = 0; i < t->ncells; i++) {
        size_t w = strlen(t->cells[i]);
        if (w > width[i % t->ncols])
            width[i % t->ncols] = w;
    }
    for (size_t i = 0; i < t->ncells; i++) {
        size_t col = i % t->ncols;
        bool last = col == t->ncols - 1 || i == t->ncells - 1;
        if (last)
            printf("%s\n", t->cells[i]);
        else
            printf("%-*s  ", (int)width[col], t->cells[i]);
        free(t->cells[i]);
    }
    free(t->cells);
    free(width);
    *t = (tg__cli_table_t){0};
}
