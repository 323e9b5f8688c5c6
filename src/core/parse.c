/* The small value parsers shared by the config file and the admin API: durations, bounded
 * integers and numeric socket addresses. All are strict: what they accept is what they print. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include "tollgate/core.h"

/* Reads the digits at *s into *out and advances *s. Leading zeros are refused so that "010"
 * cannot mean ten here and eight to a YAML 1.1 reader. */
static int digits(const char **s, uint64_t *out)
{
    const char *p = *s;
    uint64_t v = 0;

    if (*p < '0' || *p > '9')
        return -1;
    if (p[0] == '0' && p[1] >= '0' && p[1] <= '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *s = p;
    *out = v;
    return 0;
}

int tg_duration_parse(const char *s, uint64_t *out_ms)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 60 * 60 * 1000}};
    uint64_t v;

    if (s == NULL || digits(&s, &v) != 0)
        return -1;
    for (size_t i = 0; i < TG_ARRAY_SIZE(units); i++) {
        if (strcmp(s, units[i].unit) != 0)
            continue;
        if (v > UINT64_MAX / units[i].ms)
            return -1;
        *out_ms = v * units[i].ms;
        return 0;
    }
    return -1;
}

int tg_uint_parse(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t v;

    if (s == NULL || digits(&s, &v) != 0 || *s != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_port(const char *s, uint16_t *port)
{
    uint64_t v;

    if (tg_uint_parse(s, 1, 65535, &v) != 0)
        return -1;
    *port = (uint16_t)v;
    return 0;
}

/* "[v6]:port": the brackets are required so that the port is never ambiguous. */
static int parse_v6(const char *s, struct sockaddr_storage *out, socklen_t *out_len)
{
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;
    char host[INET6_ADDRSTRLEN];
    const char *end = strchr(s, ']');
    size_t n;
    uint16_t port;

    if (end == NULL || end[1] != ':')
        return -1;
    n = (size_t)(end - (s + 1));
    if (n == 0 || n >= sizeof(host))
        return -1;
    memcpy(host, s + 1, n);
    host[n] = '\0';
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1 || parse_port(end + 2, &port) != 0)
        return -1;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    *out_len = sizeof(*sin6);
    return 0;
}

static int parse_v4(const char *s, struct sockaddr_storage *out, socklen_t *out_len)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)out;
    char host[INET_ADDRSTRLEN];
    const char *colon = strrchr(s, ':');
    size_t n;
    uint16_t port;

    if (colon == NULL)
        return -1;
    n = (size_t)(colon - s);
    if (n == strlen("localhost") && strncasecmp(s, "localhost", n) == 0) {
        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    } else {
        if (n == 0 || n >= sizeof(host))
            return -1;
        memcpy(host, s, n);
        host[n] = '\0';
        if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
            return -1;
    }
    if (parse_port(colon + 1, &port) != 0)
        return -1;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    *out_len = sizeof(*sin);
    return 0;
}

int tg_addr_parse(const char *s, struct sockaddr_storage *out, socklen_t *out_len)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    int rc;

    if (s == NULL)
        return -1;
    memset(&ss, 0, sizeof(ss));
    rc = s[0] == '[' ? parse_v6(s, &ss, &len) : parse_v4(s, &ss, &len);
    if (rc != 0)
        return -1;
    *out = ss;
    if (out_len != NULL)
        *out_len = len;
    return 0;
}

char *tg_addr_format(const struct sockaddr *sa, char *buf, size_t size)
{
    char host[INET6_ADDRSTRLEN];

    if (size == 0)
        return buf;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
        snprintf(buf, size, "%s:%u", host, (unsigned)ntohs(sin->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
        snprintf(buf, size, "[%s]:%u", host, (unsigned)ntohs(sin6->sin6_port));
    } else if (sa->sa_family == AF_UNIX) {
        const struct sockaddr_un *sun = (const struct sockaddr_un *)sa;
        snprintf(buf, size, "unix:%.*s", (int)sizeof(sun->sun_path), sun->sun_path);
    } else {
        snprintf(buf, size, "?");
    }
    return buf;
}

uint16_t tg_addr_port(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return 0;
}

int tg_addr_equal(const struct sockaddr *a, const struct sockaddr *b)
{
    if (a->sa_family != b->sa_family)
        return 0;
    if (a->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)a;
        const struct sockaddr_in *y = (const struct sockaddr_in *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->sa_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
        const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    if (a->sa_family == AF_UNIX) {
        const struct sockaddr_un *x = (const struct sockaddr_un *)a;
        const struct sockaddr_un *y = (const struct sockaddr_un *)b;
        return strncmp(x->sun_path, y->sun_path, sizeof(x->sun_path)) == 0;
    }
    return 0;
}
