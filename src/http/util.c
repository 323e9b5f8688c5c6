/* http util: header-name classification, case-insensitive names and token lists, and the
 * reason phrases tollgate sends with its own answers. */
#include <string.h>

#include "tollgate/http.h"

static inline unsigned char lower(unsigned char c)
{
    return (unsigned)(c - 'A') < 26u ? (unsigned char)(c | 0x20) : c;
}

/* lit holds only lowercase letters and '-', and s is a token: then setting bit 0x20 folds
 * exactly the letters (the only other byte it would turn into '-' is CR, never in a
 * token), and costs no branch. */
static bool eq_lower(const char *s, const char *lit, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] | 0x20) != (unsigned char)lit[i])
            return false;
    return true;
}

static bool is_alnum(unsigned char c)
{
    return (unsigned)((c | 0x20) - 'a') < 26u || (unsigned)(c - '0') < 10u;
}

/* As eq_lower, but any byte of s other than a letter or a digit matches '-' in lit. */
static bool eq_lower_dash(const char *s, const char *lit, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((is_alnum(c) ? (c | 0x20) : '-') != (unsigned char)lit[i])
            return false;
    }
    return true;
}

/* Whether a token has punctuation other than '-' (a name no standard header has). */
static bool odd_punct(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != '-' && !is_alnum((unsigned char)s[i]))
            return true;
    return false;
}

/* CGI-style backends (WSGI, Rack, PHP) turn '-' into '_' to name their variables, and some
 * bridges (lighttpd, Apache before 2.4) turn every other byte that is not a letter or a
 * digit into '_' too, so to them "X_Forwarded_Clientcert_subjectdn" and
 * "X.Forwarded.Clientcert.subjectdn" are our identity header (SPEC §5). A name of the
 * forwarded family spelled with any punctuation is therefore classified as the name
 * itself. Only this family folds: framing and hop-by-hop headers keep their exact
 * spelling, because a backend that parses HTTP reads "Transfer_Encoding" as just another
 * header. */
static tg_http_header_id_t forwarded_alias(const char *name, size_t len)
{
    static const struct {
        const char *lit;
        size_t len;
        tg_http_header_id_t id;
    } family[] = {
        {"x-forwarded-for", 15, TG_HDR_X_FORWARDED_FOR},
        {"x-forwarded-port", 16, TG_HDR_X_FORWARDED_PORT},
        {"x-forwarded-proto", 17, TG_HDR_X_FORWARDED_PROTO},
        {"x-forwarded-client-srcport", 26, TG_HDR_X_FORWARDED_CLIENT_SRCPORT},
    };
    for (size_t i = 0; i < sizeof(family) / sizeof(family[0]); i++)
        if (len == family[i].len && eq_lower_dash(name, family[i].lit, len))
            return family[i].id;
    if (len >= 23 && eq_lower_dash(name, "x-forwarded-clientcert-", 23))
        return TG_HDR_X_FORWARDED_CLIENTCERT;
    return TG_HDR_OTHER;
}

/* name must be a token, as the parser has checked. Names are classified once, at parse
 * time, so later stages switch on an enum instead of comparing strings. */
tg_http_header_id_t tg_http_header_id(const char *name, size_t len)
{
    /* The length alone rules out almost every name; the first letter splits the rest. */
    switch (len) {
    case 2:
        if (eq_lower(name, "te", 2))
            return TG_HDR_TE;
        break;
    case 4:
        if (eq_lower(name, "host", 4))
            return TG_HDR_HOST;
        break;
    case 6:
        if (eq_lower(name, "expect", 6))
            return TG_HDR_EXPECT;
        break;
    case 7:
        switch ((unsigned char)name[0] | 0x20) {
        case 'u':
            if (eq_lower(name, "upgrade", 7))
                return TG_HDR_UPGRADE;
            break;
        case 't':
            if (eq_lower(name, "trailer", 7))
                return TG_HDR_TRAILER;
            break;
        case 'a':
            if (eq_lower(name, "alt-svc", 7))
                return TG_HDR_ALT_SVC;
            break;
        }
        break;
    case 10:
        switch ((unsigned char)name[0] | 0x20) {
        case 'c':
            if (eq_lower(name, "connection", 10))
                return TG_HDR_CONNECTION;
            break;
        case 'k':
            if (eq_lower(name, "keep-alive", 10))
                return TG_HDR_KEEP_ALIVE;
            break;
        }
        break;
    case 14:
        if (eq_lower(name, "content-length", 14))
            return TG_HDR_CONTENT_LENGTH;
        break;
    case 15:
        if (eq_lower(name, "x-forwarded-for", 15))
            return TG_HDR_X_FORWARDED_FOR;
        break;
    case 16:
        switch ((unsigned char)name[0] | 0x20) {
        case 'p':
            if (eq_lower(name, "proxy-connection", 16))
                return TG_HDR_PROXY_CONNECTION;
            break;
        case 'x':
            if (eq_lower(name, "x-forwarded-port", 16))
                return TG_HDR_X_FORWARDED_PORT;
            break;
        }
        break;
    case 17:
        switch ((unsigned char)name[0] | 0x20) {
        case 't':
            if (eq_lower(name, "transfer-encoding", 17))
                return TG_HDR_TRANSFER_ENCODING;
            break;
        case 'x':
            if (eq_lower(name, "x-forwarded-proto", 17))
                return TG_HDR_X_FORWARDED_PROTO;
            break;
        }
        break;
    case 26:
        if (eq_lower(name, "x-forwarded-client-srcport", 26))
            return TG_HDR_X_FORWARDED_CLIENT_SRCPORT;
        break;
    }
    /* A family, not a name: every header the mutual-auth identity uses must be stripped
     * from clients, including ones a later version may add. */
    if (len >= 23 && eq_lower(name, "x-forwarded-clientcert-", 23))
        return TG_HDR_X_FORWARDED_CLIENTCERT;
    if (len >= 15 && odd_punct(name, len))
        return forwarded_alias(name, len);
    return TG_HDR_OTHER;
}

bool tg_http_name_eq(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
    return true;
}

bool tg_http_token_list_has(const char *list, size_t list_len, const char *token, size_t token_len)
{
    size_t i = 0;
    while (i < list_len) {
        const char *comma = memchr(list + i, ',', list_len - i);
        size_t s = i, e = comma != NULL ? (size_t)(comma - list) : list_len;
        i = e + 1;
        while (s < e && (list[s] == ' ' || list[s] == '\t'))
            s++;
        while (e > s && (list[e - 1] == ' ' || list[e - 1] == '\t'))
            e--;
        if (tg_http_name_eq(list + s, e - s, token, token_len))
            return true;
    }
    return false;
}

const char *tg_http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 417:
        return "Expectation Failed";
    case 422:
        return "Unprocessable Content";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    }
    /* A status line may carry any phrase (RFC 9112 §4); one per class keeps it readable. */
    if (status >= 100 && status < 200)
        return "Informational";
    if (status >= 200 && status < 300)
        return "Success";
    if (status >= 300 && status < 400)
        return "Redirection";
    if (status >= 400 && status < 500)
        return "Client Error";
    return "Server Error";
}

bool tg_http_method_idempotent(const char *m, size_t n)
{
    /* RFC 9110 §9.2.2. Methods are case-sensitive: "get" is some other method. */
    static const char *const methods[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (strlen(methods[i]) == n && memcmp(methods[i], m, n) == 0)
            return true;
    return false;
}

bool tg_http_hop_by_hop(tg_http_header_id_t id)
{
    switch (id) {
    case TG_HDR_CONNECTION:
    case TG_HDR_KEEP_ALIVE:
    case TG_HDR_PROXY_CONNECTION:
    case TG_HDR_TE:
    case TG_HDR_TRAILER:
    case TG_HDR_TRANSFER_ENCODING:
    case TG_HDR_UPGRADE:
        return true;
    default:
        return false;
    }
}

bool tg_http_named_by_connection(const tg_http_header_t *hs, size_t n, const tg_http_header_t *h)
{
    for (size_t i = 0; i < n; i++)
        if (hs[i].id == TG_HDR_CONNECTION &&
            tg_http_token_list_has(hs[i].value, hs[i].value_len, h->name, h->name_len))
            return true;
    return false;
}
