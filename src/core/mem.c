/* Allocation wrappers and the clock: out of memory is a broken invariant, not an error
 * to propagate through every parser. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tollgate/core.h"

static void *check(void *p)
{
    if (p == NULL) {
        fputs("tollgate: out of memory\n", stderr);
        abort();
    }
    return p;
}

void *tg_malloc(size_t n)
{
    return check(malloc(n ? n : 1));
}

void *tg_calloc(size_t n, size_t size)
{
    return check(calloc(n ? n : 1, size ? size : 1));
}

void *tg_realloc(void *p, size_t n)
{
    return check(realloc(p, n ? n : 1));
}

char *tg_strdup(const char *s)
{
    return check(strdup(s));
}

char *tg_strndup(const char *s, size_t n)
{
    char *d = tg_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *tg_sprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *out = NULL;
    int n = vasprintf(&out, fmt, ap);
    va_end(ap);
    if (n < 0)
        check(NULL);
    return out;
}

uint64_t tg_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
