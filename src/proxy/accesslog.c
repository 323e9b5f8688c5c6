/* The access log: one JSON object a line, written whole with one write() so lines of
 * different workers never mix. */
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tollgate/core.h"
#include "tollgate/proxy.h"
#include "proxy_internal.h"

/* The log is one descriptor for the process's life (log_slot), which workers read
 * through log_fd (-1: off). Pointing it elsewhere (a reload, SIGUSR1 after rotation)
 * dup2()s the new file over that same descriptor: nothing is ever closed under a worker
 * writing a line, no number is reused for something else, and nothing leaks per reopen. */
static atomic_int log_fd = -1;
static int log_slot = -1; /* the main thread's */

int tg_accesslog_open(const char *where)
{
    int fd;
    if (where == NULL || strcmp(where, "off") == 0) {
        atomic_store(&log_fd, -1);
        return 0;
    }
    if (strcmp(where, "stderr") == 0)
        fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
    else if (strcmp(where, "stdout") == 0)
        fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
    else
        fd = open(where, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    if (log_slot < 0) {
        log_slot = fd;
    } else {
        /* dup2 keeps O_APPEND (a file status flag) but drops FD_CLOEXEC: set it again. */
        int rc = dup2(fd, log_slot);
        int err = errno;
        close(fd);
        if (rc < 0) {
            errno = err;
            return -1;
        }
        fcntl(log_slot, F_SETFD, FD_CLOEXEC);
    }
    atomic_store(&log_fd, log_slot);
    return 0;
}

void tg_accesslog_close(void)
{
    atomic_store(&log_fd, -1);
    if (log_slot >= 0)
        close(log_slot);
    log_slot = -1;
}

/* JSON string body of s: quotes, backslashes and control bytes escaped; bytes >= 0x80 are
 * escaped too, since a path is not promised to be UTF-8. */
static size_t put_json(char *out, size_t room, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < len && o + 7 < room; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            memcpy(out + o, "\\u00", 4);
            out[o + 4] = hex[c >> 4];
            out[o + 5] = hex[c & 15];
            o += 6;
        } else {
            out[o++] = (char)c;
        }
    }
    return o;
}

/* A line under construction. Every string field is cut to its own budget and the fixed
 * fields are small, so the whole object always fits and always closes: a long path, SNI
 * or client subject shortens its own value, never breaks the JSON. */
typedef struct line_s {
    char buf[4096];
    size_t n;
} line_t;

#define LINE_TAIL 256 /* status, byte counts, duration, backend_server and "}\n" */

static void put_fmt(line_t *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put_fmt(line_t *l, const char *fmt, ...)
{
    size_t room = sizeof(l->buf) - l->n;
    if (l->n >= sizeof(l->buf) - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(l->buf + l->n, room, fmt, ap);
    va_end(ap);
    if (m > 0)
        l->n += (size_t)m < room ? (size_t)m : room - 1;
}

/* ,"key":"value" with at most max bytes of escaped value. */
static void put_str(line_t *l, const char *key, const char *val, size_t max)
{
    if (val == NULL)
        val = "";
    put_fmt(l, ",\"%s\":\"", key);
    size_t room = sizeof(l->buf) - l->n;
    room = room > LINE_TAIL ? room - LINE_TAIL : 0; /* LINE_TAIL keeps room for the quote */
    if (room > max)
        room = max;
    l->n += put_json(l->buf + l->n, room, val, strlen(val));
    l->buf[l->n++] = '"';
}

void tg__accesslog_write(const tg_exchange_t *ex)
{
    int fd = atomic_load_explicit(&log_fd, memory_order_relaxed);
    if (fd < 0)
        return;
    const tg_client_info_t *c = ex->client;
    line_t l;
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    l.n = strftime(l.buf, sizeof(l.buf), "{\"time\":\"%Y-%m-%dT%H:%M:%S", &tm);
    put_fmt(&l, ".%03ldZ\"", ts.tv_nsec / 1000000L);
    put_str(&l, "listener", ex->route->conf->id, 128);
    put_fmt(&l, ",\"client\":\"%s:%u\"", c->addr, (unsigned)c->port);
    put_str(&l, "sni", c->sni, 512);
    put_str(&l, "tls_version", c->tls_version, 32);
    put_str(&l, "cipher", c->cipher, 64);
    put_fmt(&l, ",\"resumed\":%s", c->resumed ? "true" : "false");
    put_str(&l, "client_subject", c->cert != NULL ? c->cert->subject : "", 1024);
    if (c->quic) {
        put_fmt(&l, ",\"quic\":true");
        put_str(&l, "cid", c->conn_id, 64);
    }
    put_str(&l, "method", ex->method, 128);
    put_str(&l, "path", ex->path, 1536);
    put_fmt(&l,
            ",\"status\":%d,\"bytes_in\":%llu,\"bytes_out\":%llu,"
            "\"duration_ms\":%llu",
            ex->status, (unsigned long long)ex->bytes_in, (unsigned long long)ex->bytes_out,
            (unsigned long long)(tg_now_ms() - ex->start_ms));
    put_str(&l, "backend_server", ex->server_text, 128);
    if (l.n > sizeof(l.buf) - 3)
        l.n = sizeof(l.buf) - 3;
    l.buf[l.n++] = '}';
    l.buf[l.n++] = '\n';
    /* One write with O_APPEND: lines of different workers never mix. A full disk or a
     * closed pipe loses the line, never blocks or kills a worker. */
    ssize_t rc = write(fd, l.buf, l.n);
    (void)rc;
}
