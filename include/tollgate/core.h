/* core: error lists with source positions, logging, and the small parsers for the
 * value types every module shares (durations, sizes, socket addresses). */
#ifndef TOLLGATE_CORE_H
#define TOLLGATE_CORE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#define TG_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define TG_STRUCT_FROM_MEMBER(type, member, ptr) ((type *)((char *)(ptr)-offsetof(type, member)))

/* ---- problems ----------------------------------------------------------------------- */

typedef enum { TG_SEV_ERROR = 0, TG_SEV_WARNING = 1 } tg_severity_t;

/* One problem; file is NULL and line/col are 0 when it did not come from a file. */
typedef struct tg_problem_s {
    tg_severity_t severity;
    char *file;
    int line; /* 1-based */
    int col;  /* 1-based */
    char *msg;
} tg_problem_t;

/* Every problem a load found, in order: `tollgate check` prints them all, not the first. */
typedef struct tg_errors_s {
    tg_problem_t *items;
    size_t n;
    size_t cap;
    size_t nerrors; /* items with TG_SEV_ERROR */
} tg_errors_t;

void tg_errors_init(tg_errors_t *errs);
void tg_errors_free(tg_errors_t *errs);
void tg_errors_add(tg_errors_t *errs, tg_severity_t sev, const char *file, int line, int col,
                   const char *fmt, ...) __attribute__((format(printf, 6, 7)));
void tg_errors_vadd(tg_errors_t *errs, tg_severity_t sev, const char *file, int line, int col,
                    const char *fmt, va_list ap);
/* "FILE:LINE:COL: message", "FILE:LINE:COL: warning: message", or just the message. */
void tg_errors_print(const tg_errors_t *errs, FILE *out);
/* One problem as tg_errors_print writes it, into buf. */
void tg_errors_format(const tg_problem_t *p, char *buf, size_t size);
/* The first error formatted as above into buf (for one-line answers); "" when none. */
void tg_errors_first(const tg_errors_t *errs, char *buf, size_t size);

/* ---- logging ------------------------------------------------------------------------ */

typedef enum { TG_LOG_ERROR = 0, TG_LOG_WARN, TG_LOG_INFO, TG_LOG_DEBUG } tg_log_level_t;

void tg_log_set_level(tg_log_level_t level);
tg_log_level_t tg_log_get_level(void);
void tg_log(tg_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define tg_log_error(...) tg_log(TG_LOG_ERROR, __VA_ARGS__)
#define tg_log_warn(...) tg_log(TG_LOG_WARN, __VA_ARGS__)
#define tg_log_info(...) tg_log(TG_LOG_INFO, __VA_ARGS__)
#define tg_log_debug(...)                                                                          \
    do {                                                                                           \
        if (tg_log_get_level() >= TG_LOG_DEBUG)                                                    \
            tg_log(TG_LOG_DEBUG, __VA_ARGS__);                                                     \
    } while (0)

/* ---- value parsers (config, admin API) ------------------------------------------------ */

/* "500ms", "10s", "5m", "1h" (a decimal integer and a unit, nothing else) -> milliseconds.
 * Returns 0, or -1 for anything else (empty, no unit, overflow, sign, spaces). */
int tg_duration_parse(const char *s, uint64_t *out_ms);

/* A decimal integer without sign in [min, max]. Returns 0 or -1. */
int tg_uint_parse(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* "host:port" with host an IPv4 literal, "[IPv6]:port", or "localhost:port" (-> 127.0.0.1);
 * port 1..65535. No DNS. Returns 0 or -1. */
int tg_addr_parse(const char *s, struct sockaddr_storage *out, socklen_t *out_len);
/* "127.0.0.1:8443" / "[::1]:8443" into buf; returns buf. */
char *tg_addr_format(const struct sockaddr *sa, char *buf, size_t size);
/* Port of an AF_INET/AF_INET6 address in host order. */
uint16_t tg_addr_port(const struct sockaddr *sa);
/* Same family, address and port. */
int tg_addr_equal(const struct sockaddr *a, const struct sockaddr *b);

/* ---- memory ------------------------------------------------------------------------- */

/* Allocation failure is not bad input: it breaks the process's invariants, so these abort. */
void *tg_malloc(size_t n);
void *tg_calloc(size_t n, size_t size);
void *tg_realloc(void *p, size_t n);
char *tg_strdup(const char *s);
char *tg_strndup(const char *s, size_t n);
char *tg_sprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- time --------------------------------------------------------------------------- */

uint64_t tg_now_ms(void); /* CLOCK_MONOTONIC */

#endif
