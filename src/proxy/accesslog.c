/* The access log: one JSON object a line, written whole with one fwrite so lines of
 * different workers never mix. */
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

#define PUT_STR(key, val)                                                                       \
    do {                                                                                        \
        const char *v_ = (val) ? (val) : "";                                                    \
        n += (size_t)snprintf(line + n, sizeof(line) - n, ",\"" key "\":\"");                   \
        n += put_json(line + n, sizeof(line) - n - 64, v_, strlen(v_));                         \
        line[n++] = '"';                                                                        \
    } while (0)

void tg__accesslog_write(const tg_exchange_t *ex)
{
    if (log_out == NULL)
        return;
    const tg_client_info_t *c = ex->client;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(line, sizeof(line), "{\"time\":\"%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ\"", ts.tv_nsec / 1000000L);
    PUT_STR("listener", c->listener);
    n += (size_t)snprintf(line + n, sizeof(line) - n, ",\"client\":\"%s:%u\"", c->addr,
                          (unsigned)c->port);
    PUT_STR("sni", c->sni);
    PUT_STR("tls_version", c->tls_version);
    PUT_STR("cipher", c->cipher);
    n += (size_t)snprintf(line + n, sizeof(line) - n, ",\"resumed\":%s",
                          c->resumed ? "true" : "false");
    PUT_STR("method", ex->method);
    PUT_STR("path", ex->path);
    n += (size_t)snprintf(line + n, sizeof(line) - n,
                          ",\"status\":%d,\"bytes_in\":%llu,\"bytes_out\":%llu,"
                          "\"duration_ms\":%llu",
                          ex->status, (unsigned long long)ex->bytes_in,
                          (unsigned long long)ex->bytes_out,
                          (unsigned long long)(tg_now_ms() - ex->start_ms));
    PUT_STR("backend_server", ex->server_text);
    if (n > sizeof(line) - 3)
        n = sizeof(line) - 3;
    line[n++] = '}';
    line[n++] = '\n';
    fwrite(line, 1, n, log_out);
    fflush(log_out);
}
