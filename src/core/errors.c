/* Problem lists: everything a config or certificate load found, with positions. */
#include <stdlib.h>
#include <string.h>

#include "tollgate/core.h"

void tg_errors_init(tg_errors_t *errs)
{
    memset(errs, 0, sizeof(*errs));
}

void tg_errors_free(tg_errors_t *errs)
{
    for (size_t i = 0; i < errs->n; i++) {
        free(errs->items[i].file);
        free(errs->items[i].msg);
    }
    free(errs->items);
    tg_errors_init(errs);
}

void tg_errors_vadd(tg_errors_t *errs, tg_severity_t sev, const char *file, int line, int col,
                    const char *fmt, va_list ap)
{
    if (errs == NULL)
        return;
    if (errs->n == errs->cap) {
        errs->cap = errs->cap ? errs->cap * 2 : 8;
        errs->items = tg_realloc(errs->items, errs->cap * sizeof(*errs->items));
    }
    tg_problem_t *p = &errs->items[errs->n++];
    p->severity = sev;
    p->file = file ? tg_strdup(file) : NULL;
    p->line = line;
    p->col = col;
    char buf[1024];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    p->msg = tg_strdup(buf);
    if (sev == TG_SEV_ERROR)
        errs->nerrors++;
}

void tg_errors_add(tg_errors_t *errs, tg_severity_t sev, const char *file, int line, int col,
                   const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tg_errors_vadd(errs, sev, file, line, col, fmt, ap);
    va_end(ap);
}

void tg_errors_format(const tg_problem_t *p, char *buf, size_t size)
{
    const char *sev = p->severity == TG_SEV_WARNING ? "warning: " : "";
    if (p->file != NULL && p->line > 0)
        snprintf(buf, size, "%s:%d:%d: %s%s", p->file, p->line, p->col, sev, p->msg);
    else if (p->file != NULL)
        snprintf(buf, size, "%s: %s%s", p->file, sev, p->msg);
    else
        snprintf(buf, size, "%s%s", sev, p->msg);
}

void tg_errors_print(const tg_errors_t *errs, FILE *out)
{
    char buf[1400];
    for (size_t i = 0; i < errs->n; i++) {
        tg_errors_format(&errs->items[i], buf, sizeof(buf));
        fprintf(out, "%s\n", buf);
    }
}

void tg_errors_first(const tg_errors_t *errs, char *buf, size_t size)
{
    if (size == 0)
        return;
    buf[0] = '\0';
    for (size_t i = 0; i < errs->n; i++) {
        if (errs->items[i].severity == TG_SEV_ERROR) {
            tg_errors_format(&errs->items[i], buf, size);
            return;
        }
    }
}
