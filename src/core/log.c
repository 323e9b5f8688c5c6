/* The daemon's own log: one line per event on stderr, "time level message". */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "tollgate/core.h"

static _Atomic int log_level = TG_LOG_INFO;

void tg_log_set_level(tg_log_level_t level)
{
    atomic_store_explicit(&log_level, (int)level, memory_order_relaxed);
}

tg_log_level_t tg_log_get_level(void)
{
    return (tg_log_level_t)atomic_load_explicit(&log_level, memory_order_relaxed);
}

void tg_log(tg_log_level_t level, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    if ((int)level > atomic_load_explicit(&log_level, memory_order_relaxed))
        return;

    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);

    /* Format the whole line first so lines of concurrent workers never interleave. */
    char line[2048];
    int n = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(line + n, sizeof(line) - (size_t)n, ".%03ldZ %s ", ts.tv_nsec / 1000000L,
                  names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    n += m;
    if ((size_t)n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    fwrite(line, 1, (size_t)n, stderr);
}
