/* The access log: one JSON object a line, written whole with one fwrite so lines of
 * different workers never mix. */
#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "tollgate/core.h"
#include "tollgate/proxy.h"
#include "proxy_internal.h"

static FILE *log_out;

void tg_accesslog_open(FILE *out)
{
    log_out = out;
}

FILE *tg_accesslog_file(void)
{
    return log_out;
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
    if (log_out == NULL)
        return;
    const tg_client_info_t *c = ex->client;
    line_t l;
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    l.n = strftime(l.buf, sizeof(l.buf), "{\"time\":\"%Y-%m-%dT%H:%M:%S", &tm);
    put_fmt(&l, ".%03ldZ\"", ts.tv_nsec / 1000000L);
    put_str(&l, "listener", c->listener, 128);
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
    fwrite(l.buf, 1, l.n, log_out);
    fflush(log_out);
}
