/* Request heads that arrive as separate fields (HTTP/3): every name and value checked as
 * it comes, then one tg_http_request_t as the HTTP/1 parser would have made it. What goes
 * to the backend is an HTTP/1.1 head, so anything that could not stand in one (a space in
 * the path, a CR in a value, a Transfer-Encoding) is refused here, not passed on. */
#include <stdlib.h>

#include "tollgate/core.h"
#include "tollgate/http.h"

enum { P_METHOD, P_PATH, P_AUTHORITY, P_SCHEME };

void tg_http_fields_init(tg_http_fields_t *f, size_t max_bytes, size_t max_fields)
{
    memset(f, 0, sizeof(*f));
    f->_max_bytes = max_bytes;
    f->_max_fields = max_fields;
}

void tg_http_fields_free(tg_http_fields_t *f)
{
    free(f->_buf);
    free(f->_hs);
    memset(f, 0, sizeof(*f));
}

static void refuse(tg_http_fields_t *f, int status)
{
    if (f->_status == 0)
        f->_status = status;
}

static size_t store(tg_http_fields_t *f, const char *s, size_t n)
{
    if (f->_buf == NULL || f->_len + n > f->_cap) { /* never NULL after: offsets need a base */
        size_t cap = f->_cap ? f->_cap * 2 : 512;
        while (cap < f->_len + n)
            cap *= 2;
        f->_buf = tg_realloc(f->_buf, cap);
        f->_cap = cap;
    }
    size_t off = f->_len;
    memcpy(f->_buf + off, s, n);
    f->_len += n;
    return off;
}

static bool lower_token(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!tg_http_is_tchar(ch) || (ch >= 'A' && ch <= 'Z'))
            return false;
    }
    return true;
}

/* Visible ASCII only: what may stand in a request line or a Host header. */
static bool visible(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

static int pseudo_index(const char *name, size_t len)
{
    static const char *const names[] = {":method", ":path", ":authority", ":scheme"};
    for (int i = 0; i < 4; i++)
        if (strlen(names[i]) == len && memcmp(names[i], name, len) == 0)
            return i;
    return -1;
}

void tg_http_fields_add(tg_http_fields_t *f, const char *name, size_t name_len, const char *value,
                        size_t value_len)
{
    if (f->_status != 0)
        return;
    if (f->_len + name_len + value_len + 4 > f->_max_bytes) {
        refuse(f, 431);
        return;
    }
    /* Leading and trailing whitespace is not part of a value (RFC 9110 §5.5). */
    while (value_len > 0 && (value[0] == ' ' || value[0] == '\t'))
        value++, value_len--;
    while (value_len > 0 && (value[value_len - 1] == ' ' || value[value_len - 1] == '\t'))
        value_len--;
    /* NUL, CR and LF make an HTTP/3 field malformed (RFC 9114 §4.2); the other controls
     * are refused too, as the HTTP/1.1 parser refuses them: the backend reads HTTP/1.1. */
    if (!tg_http_value_valid(value, value_len)) {
        refuse(f, 400);
        return;
    }
    if (name_len > 0 && name[0] == ':') {
        int i = pseudo_index(name, name_len);
        if (i < 0 || f->_regular || (f->_seen & (1u << i))) {
            refuse(f, 400); /* unknown (:protocol too: no extended CONNECT), late, repeated */
            return;
        }
        f->_seen |= 1u << i;
        f->_pseudo[i][0] = store(f, value, value_len);
        f->_pseudo[i][1] = value_len;
        return;
    }
    f->_regular = true;
    if (!lower_token(name, name_len)) {
        refuse(f, 400);
        return;
    }
    if (f->_n == f->_max_fields) {
        refuse(f, 431);
        return;
    }
    tg_http_header_id_t id = tg_http_header_id(name, name_len);
    /* Connection-specific fields make an HTTP/3 message malformed (RFC 9114 §4.2). */
    if (id == TG_HDR_CONNECTION || id == TG_HDR_KEEP_ALIVE || id == TG_HDR_PROXY_CONNECTION ||
        id == TG_HDR_TRANSFER_ENCODING || id == TG_HDR_UPGRADE ||
        (id == TG_HDR_TE && !tg_http_name_eq(value, value_len, "trailers", 8))) {
        refuse(f, 400);
        return;
    }
    if (f->_n == f->_hs_cap) {
        f->_hs_cap = f->_hs_cap ? f->_hs_cap * 2 : 16;
        f->_hs = tg_realloc(f->_hs, (f->_hs_cap + 2) * sizeof(*f->_hs)); /* +2: Host, Cookie */
    }
    size_t noff = store(f, name, name_len);
    size_t voff = store(f, value, value_len);
    /* Offsets now, pointers at the end: the buffer may still move. */
    f->_hs[f->_n++] = (tg_http_header_t){(const char *)(uintptr_t)noff, name_len,
                                         (const char *)(uintptr_t)voff, value_len, id};
}

static bool parse_length(const char *s, size_t n, uint64_t *out)
{
    if (n == 0 || n > 18)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

static bool is_cookie(const tg_http_fields_t *f, const tg_http_header_t *h)
{
    return h->name_len == 6 && memcmp(f->_buf + (size_t)(uintptr_t)h->name, "cookie", 6) == 0;
}

int tg_http_fields_finish(tg_http_fields_t *f, tg_http_request_t *req)
{
    memset(req, 0, sizeof(*req));
    if (f->_status != 0)
        return f->_status;
    if (!(f->_seen & (1u << P_METHOD)) || !(f->_seen & (1u << P_PATH)))
        return 400; /* CONNECT has no :path: no tunnels here */
    size_t moff = f->_pseudo[P_METHOD][0], mlen = f->_pseudo[P_METHOD][1];
    size_t poff = f->_pseudo[P_PATH][0], plen = f->_pseudo[P_PATH][1];
    if (mlen == 0)
        return 400;
    for (size_t i = 0; i < mlen; i++)
        if (!tg_http_is_tchar((unsigned char)f->_buf[moff + i]))
            return 400;
    /* CONNECT never carries :path (RFC 9114 §4.4), and the HTTP/1 backend would read
     * "CONNECT /x" as no request at all: no tunnels here. */
    if (mlen == 7 && memcmp(f->_buf + moff, "CONNECT", 7) == 0)
        return 400;
    bool options = mlen == 7 && memcmp(f->_buf + moff, "OPTIONS", 7) == 0;
    const char *path = f->_buf + poff;
    if (plen == 0 || !visible(path, plen) ||
        !(path[0] == '/' || (options && plen == 1 && path[0] == '*')))
        return 400;

    /* Host: from :authority, or the one Host field; both must agree (RFC 9114 §4.3.1). */
    bool have_authority = f->_seen & (1u << P_AUTHORITY);
    size_t aoff = f->_pseudo[P_AUTHORITY][0], alen = f->_pseudo[P_AUTHORITY][1];
    if (have_authority && (alen == 0 || !tg_http_host_valid(f->_buf + aoff, alen)))
        return 400;
    const tg_http_header_t *host = NULL;
    uint64_t clen = 0;
    bool have_clen = false;
    size_t cookie_total = 0, ncookies = 0;
    for (size_t i = 0; i < f->_n; i++) {
        const tg_http_header_t *h = &f->_hs[i];
        const char *v = f->_buf + (size_t)(uintptr_t)h->value;
        if (h->id == TG_HDR_HOST) {
            if (host != NULL || h->value_len == 0 || !tg_http_host_valid(v, h->value_len))
                return 400;
            if (have_authority && !tg_http_name_eq(v, h->value_len, f->_buf + aoff, alen))
                return 400;
            host = h;
        } else if (h->id == TG_HDR_CONTENT_LENGTH) {
            uint64_t n;
            if (!parse_length(v, h->value_len, &n) || (have_clen && n != clen))
                return 400;
            clen = n;
            have_clen = true;
        } else if (is_cookie(f, h)) {
            cookie_total += h->value_len + (ncookies ? 2 : 0);
            ncookies++;
        }
    }
    if (!have_authority && host == NULL)
        return 400; /* https has a mandatory authority */

    /* Room first, so that no copy reads from a moved buffer; then offsets to pointers,
     * with the cookies joined into one field and Host from :authority. */
    if (f->_len + cookie_total > f->_cap) {
        f->_cap = f->_len + cookie_total;
        f->_buf = tg_realloc(f->_buf, f->_cap);
    }
    if (f->_hs == NULL)
        f->_hs = tg_calloc(2, sizeof(*f->_hs));
    size_t cookie_off = f->_len, kept = 0;
    for (size_t i = 0; i < f->_n; i++) {
        tg_http_header_t h = f->_hs[i];
        size_t voff = (size_t)(uintptr_t)h.value;
        if (ncookies > 1 && is_cookie(f, &h)) {
            if (f->_len > cookie_off) {
                memcpy(f->_buf + f->_len, "; ", 2);
                f->_len += 2;
            }
            memcpy(f->_buf + f->_len, f->_buf + voff, h.value_len);
            f->_len += h.value_len;
            continue;
        }
        if (h.id == TG_HDR_HOST && have_authority)
            continue; /* the same value again, below */
        h.name = f->_buf + (size_t)(uintptr_t)h.name;
        h.value = f->_buf + voff;
        f->_hs[kept++] = h;
    }
    if (ncookies > 1)
        f->_hs[kept++] = (tg_http_header_t){"cookie", 6, f->_buf + cookie_off, f->_len - cookie_off,
                                            TG_HDR_OTHER};
    if (have_authority)
        f->_hs[kept++] = (tg_http_header_t){"host", 4, f->_buf + aoff, alen, TG_HDR_HOST};
    f->_n = kept;
    f->_status = -1; /* finished: no more fields */

    req->method = f->_buf + moff;
    req->method_len = mlen;
    req->target = f->_buf + poff;
    req->target_len = plen;
    req->minor_version = 1;
    req->headers = f->_hs;
    req->nheaders = kept;
    req->body = have_clen && clen > 0 ? TG_HTTP_BODY_LENGTH : TG_HTTP_BODY_NONE;
    req->content_length = clen;
    req->keep_alive = true;
    for (size_t i = 0; i < kept; i++) {
        if (f->_hs[i].id == TG_HDR_HOST) {
            req->host = f->_hs[i].value;
            req->host_len = f->_hs[i].value_len;
        }
    }
    return 0;
}
