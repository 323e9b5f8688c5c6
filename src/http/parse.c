/* http parse: the strict, zero-copy HTTP/1.x request and response head parsers (RFC 9112,
 * RFC 9110) and the incremental search for the end of a head. */
#include <limits.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "tollgate/http.h"

enum {
    C_TCHAR = 1, /* token character (RFC 9110 §5.6.2) */
    C_VALUE = 2, /* may appear in a field value: HTAB, SP, VCHAR, obs-text */
    C_HOST = 4   /* may appear in a Host value: reg-name, IP-literal and port characters */
};

/* clang-format off */
static const unsigned char ctype[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, /* 00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 10 */
    2, 7, 2, 3, 7, 7, 7, 7, 6, 6, 7, 7, 6, 7, 7, 2, /* 20 */
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 2, 6, 2, 2, /* 30 */
    2, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, /* 40 */
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 2, 6, 3, 7, /* 50 */
    3, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, /* 60 */
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 2, 3, 2, 7, 0, /* 70 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 80 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 90 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* a0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* b0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* c0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* d0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* e0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* f0 */
};
/* clang-format on */

#define IS(c, cls) (ctype[(unsigned char)(c)] & (cls))

/* Content-Length and chunk sizes stop here: far above any real body, far below overflow. */
#define MAX_BODY_LENGTH (UINT64_C(1) << 62)

/* ---- word-at-a-time scanning --------------------------------------------------------- */

/* Field values and targets are the long parts of a head, so they are checked many bytes a
 * step: sixteen with SSE2 where the compiler has it, else eight in plain C (SWAR). */
#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)
/* Nonzero when some byte of v is below n (n <= 128). Borrows can flag extra bytes above a
 * real hit but never invent one, so it is exact as a yes/no answer, which is all we ask. */
#define HAS_LESS(v, n) (((v)-ONES * (n)) & ~(v)&HIGHS)
#define HAS_BYTE(v, b) HAS_LESS((v) ^ (ONES * (b)), 1)

static inline uint64_t load64(const char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* First byte at or after p that may not appear in a field value (or end). */
static const char *skip_value(const char *p, const char *end)
{
    for (;;) {
#ifdef __SSE2__
        /* x86-64 always has SSE2: sixteen bytes a step, a byte flagged when it is at most
         * 0x1f (min(v, 0x1f) == v, unsigned) or is DEL. */
        const __m128i ctl = _mm_set1_epi8(0x1f), del = _mm_set1_epi8(0x7f);
        while (end - p >= 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
            __m128i bad =
                _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(v, ctl), v), _mm_cmpeq_epi8(v, del));
            unsigned mask = (unsigned)_mm_movemask_epi8(bad);
            if (mask == 0) {
                p += 16;
                continue;
            }
            p += __builtin_ctz(mask);
            if (*p != '\t')
                return p;
            p++;
        }
#endif
        while (end - p >= 8) {
            uint64_t v = load64(p);
            if (HAS_LESS(v, 0x20) | HAS_BYTE(v, 0x7f))
                break;
            p += 8;
        }
        /* A flagged word may hold only a tab; settle it bytewise, then go back to words. */
        const char *stop = end - p >= 8 ? p + 8 : end;
        for (; p < stop; p++)
            if (!IS(*p, C_VALUE))
                return p;
        if (p == end)
            return p;
    }
}

/* First byte at or after p outside VCHAR 0x21-0x7E (or end): the request-target set. */
static const char *skip_vchar(const char *p, const char *end)
{
    while (end - p >= 8) {
        uint64_t v = load64(p);
        if (HAS_LESS(v, 0x21) | (v & HIGHS) | HAS_BYTE(v, 0x7f))
            break;
        p += 8;
    }
    while (p < end && (unsigned char)(*p - 0x21) < 0x5e)
        p++;
    return p;
}

static const char *skip_token(const char *p, const char *end)
{
    /* Unrolled so that the bound is checked once per four bytes. */
    for (; end - p >= 4; p += 4) {
        if (!IS(p[0], C_TCHAR))
            return p;
        if (!IS(p[1], C_TCHAR))
            return p + 1;
        if (!IS(p[2], C_TCHAR))
            return p + 2;
        if (!IS(p[3], C_TCHAR))
            return p + 3;
    }
    while (p < end && IS(*p, C_TCHAR))
        p++;
    return p;
}

static inline unsigned char lower(unsigned char c)
{
    return (unsigned)(c - 'A') < 26u ? (unsigned char)(c | 0x20) : c;
}

/* lit is lowercase. */
static bool eq_lower(const char *s, size_t n, const char *lit, size_t lit_len)
{
    if (n != lit_len)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)s[i]) != (unsigned char)lit[i])
            return false;
    return true;
}

#define EQ_LIT(s, n, lit) eq_lower((s), (n), lit, sizeof(lit) - 1)

/* ---- header semantics ---------------------------------------------------------------- */

/* What the header fields say about framing and the connection, gathered in one pass. */
typedef struct {
    const char *host;
    size_t host_len;
    unsigned nhost;
    bool host_bad;
    unsigned ncl;
    bool cl_bad;
    uint64_t cl;
    unsigned nte;
    int te_status; /* 0 for exactly "chunked", else the status the coding earns */
    bool conn_close;
    bool conn_keep_alive;
    bool conn_other;
    bool expect_continue;
} framing_t;

/* 1*DIGIT only: no sign, no spaces, no list. A list, even "5, 5", is refused rather than
 * collapsed, because a peer that reads it differently is how bodies get smuggled. */
static bool parse_content_length(const char *v, size_t n, uint64_t *out)
{
    uint64_t x = 0;
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned char)v[i] - '0';
        if (d > 9 || x > (MAX_BODY_LENGTH - d) / 10)
            return false;
        x = x * 10 + d;
    }
    *out = x;
    return true;
}

/* 0 for exactly "chunked". A well-formed list that ends in chunked names codings we would
 * have to decode and do not: 501. Anything else (chunked not last or twice, empty or
 * malformed elements) leaves the body length unknowable: 400 (RFC 9112 §6.3). */
static int transfer_coding_status(const char *v, size_t n)
{
    bool last_chunked = false, chunked_before = false;
    size_t i = 0;

    if (EQ_LIT(v, n, "chunked"))
        return 0;
    if (n == 0)
        return 400;
    for (;;) {
        while (i < n && (v[i] == ' ' || v[i] == '\t'))
            i++;
        const char *t = v + i;
        const char *te = skip_token(t, v + n);
        if (te == t)
            return 400;
        if (last_chunked)
            chunked_before = true;
        last_chunked = EQ_LIT(t, (size_t)(te - t), "chunked");
        i = (size_t)(te - v);
        while (i < n && (v[i] == ' ' || v[i] == '\t'))
            i++;
        if (i == n)
            break;
        if (v[i] != ',')
            return 400;
        i++;
    }
    if (!last_chunked || chunked_before)
        return 400;
    return 501;
}

static void connection_tokens(framing_t *f, const char *v, size_t n)
{
    size_t i = 0;
    while (i < n) {
        const char *comma = memchr(v + i, ',', n - i);
        size_t s = i, e = comma != NULL ? (size_t)(comma - v) : n;
        i = e + 1;
        while (s < e && (v[s] == ' ' || v[s] == '\t'))
            s++;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (s == e) /* empty list elements are legal and mean nothing */
            continue;
        if (EQ_LIT(v + s, e - s, "close"))
            f->conn_close = true;
        else if (EQ_LIT(v + s, e - s, "keep-alive"))
            f->conn_keep_alive = true;
        else
            f->conn_other = true;
    }
}

bool tg_http_host_valid(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!IS(v[i], C_HOST))
            return false;
    return true;
}

bool tg_http_value_valid(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!IS(v[i], C_VALUE))
            return false;
    return true;
}

static void note_header(framing_t *f, const tg_http_header_t *h)
{
    switch (h->id) {
    case TG_HDR_HOST:
        if (f->nhost++ == 0) {
            f->host = h->value;
            f->host_len = h->value_len;
            f->host_bad = !tg_http_host_valid(h->value, h->value_len);
        }
        break;
    case TG_HDR_CONTENT_LENGTH:
        if (f->ncl++ == 0)
            f->cl_bad = !parse_content_length(h->value, h->value_len, &f->cl);
        break;
    case TG_HDR_TRANSFER_ENCODING:
        if (f->nte++ == 0)
            f->te_status = transfer_coding_status(h->value, h->value_len);
        break;
    case TG_HDR_CONNECTION:
        connection_tokens(f, h->value, h->value_len);
        break;
    case TG_HDR_EXPECT:
        if (EQ_LIT(h->value, h->value_len, "100-continue"))
            f->expect_continue = true;
        break;
    default:
        break;
    }
}

/* ---- header fields ------------------------------------------------------------------- */

/* Parses field lines from p through the empty line. Returns the position after the
 * empty line, or NULL with *status (400, or 431 for more than max fields). */
static const char *parse_fields(const char *p, const char *end, tg_http_header_t *headers,
                                size_t max, size_t *nheaders, framing_t *f, int *status)
{
    size_t n = 0;

    *status = 400;
    for (;;) {
        if (p >= end)
            return NULL;
        if (*p == '\r') {
            if (end - p < 2 || p[1] != '\n')
                return NULL;
            *nheaders = n;
            return p + 2;
        }
        /* A line starting with whitespace is obs-fold (or whitespace before the first
         * field); a bare LF is a line end we refuse. The token scan rejects both. */
        const char *name = p;
        p = skip_token(p, end);
        if (p == name || p >= end || *p != ':')
            return NULL;
        size_t name_len = (size_t)(p - name);
        p++;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        const char *value = p;
        p = skip_value(p, end);
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
            return NULL;
        const char *vend = p;
        while (vend > value && (vend[-1] == ' ' || vend[-1] == '\t'))
            vend--;
        p += 2;
        if (n == max) {
            *status = 431;
            return NULL;
        }
        tg_http_header_t *h = &headers[n++];
        h->name = name;
        h->name_len = name_len;
        h->value = value;
        h->value_len = (size_t)(vend - value);
        h->id = tg_http_header_id(name, name_len);
        if (h->id != TG_HDR_OTHER)
            note_header(f, h);
    }
}

/* ---- request ------------------------------------------------------------------------- */

/* host ":" port, as CONNECT must use (RFC 9110 §9.3.6). */
static bool authority_valid(const char *t, size_t n)
{
    size_t colon = n;
    while (colon > 0 && t[colon - 1] != ':')
        colon--;
    if (colon < 2 || n - colon < 1 || n - colon > 5 || !tg_http_host_valid(t, colon - 1))
        return false;
    for (size_t i = colon; i < n; i++)
        if ((unsigned)(t[i] - '0') > 9)
            return false;
    return true;
}

/* The four request-target forms of RFC 9112 §3.2, each only with the methods that use it. */
static bool target_valid(const char *m, size_t mlen, const char *t, size_t n)
{
    bool connect = mlen == 7 && memcmp(m, "CONNECT", 7) == 0;
    if (connect)
        return authority_valid(t, n);
    if (t[0] == '/')
        return true;
    if (n == 1 && t[0] == '*')
        return mlen == 7 && memcmp(m, "OPTIONS", 7) == 0;
    if (n > 7 && eq_lower(t, 7, "http://", 7))
        return true;
    if (n > 8 && eq_lower(t, 8, "https://", 8))
        return true;
    return false;
}

int tg_http_parse_request(const char *buf, size_t len, tg_http_request_t *req,
                          tg_http_header_t *headers, size_t max_headers, int *status)
{
    const char *p = buf, *end = buf + (len > INT_MAX ? INT_MAX : len);
    framing_t f = {0};

    *status = 400;
    /* RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the
     * request-line (old clients send CRLF after a POST body). We ignore exactly one: two
     * would already look like the end of a head to tg_http_head_end, so a head with
     * more could never reach us whole. */
    if (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
        p += 2;

    const char *method = p;
    p = skip_token(p, end);
    if (p == method || p >= end || *p != ' ')
        return TG_HTTP_ERROR;
    req->method = method;
    req->method_len = (size_t)(p - method);
    p++;

    const char *target = p;
    p = skip_vchar(p, end);
    if (p == target || p >= end || *p != ' ')
        return TG_HTTP_ERROR;
    req->target = target;
    req->target_len = (size_t)(p - target);
    if (!target_valid(req->method, req->method_len, target, req->target_len))
        return TG_HTTP_ERROR;
    p++;

    /* "HTTP/" DIGIT "." DIGIT CRLF, the name case-sensitive. Any other well-formed
     * version, HTTP/1.2 included, is 505: we speak 1.1 to the backend and will not guess
     * what a newer minor version meant. */
    if (end - p < 10 || memcmp(p, "HTTP/", 5) != 0 || (unsigned)(p[5] - '0') > 9 || p[6] != '.' ||
        (unsigned)(p[7] - '0') > 9 || p[8] != '\r' || p[9] != '\n')
        return TG_HTTP_ERROR;
    if (p[5] != '1' || (p[7] != '0' && p[7] != '1')) {
        *status = 505;
        return TG_HTTP_ERROR;
    }
    req->minor_version = p[7] - '0';
    p += 10;

    size_t nheaders = 0;
    p = parse_fields(p, end, headers, max_headers, &nheaders, &f, status);
    if (p == NULL)
        return TG_HTTP_ERROR;
    req->headers = headers;
    req->nheaders = nheaders;

    *status = 400;
    if (f.nhost > 1 || f.host_bad || (f.nhost == 0 && req->minor_version == 1))
        return TG_HTTP_ERROR;
    if (f.ncl > 1 || f.cl_bad || f.nte > 1)
        return TG_HTTP_ERROR;
    if (f.nte == 1) {
        /* A 1.0 recipient may not know chunked at all: any framing it picks is a guess
         * (RFC 9112 §6.1), and CL beside TE is the classic smuggling shape. */
        if (f.ncl == 1 || req->minor_version == 0)
            return TG_HTTP_ERROR;
        if (f.te_status != 0) {
            *status = f.te_status;
            return TG_HTTP_ERROR;
        }
        req->body = TG_HTTP_BODY_CHUNKED;
        req->content_length = 0;
    } else if (f.ncl == 1) {
        req->body = TG_HTTP_BODY_LENGTH;
        req->content_length = f.cl;
    } else {
        req->body = TG_HTTP_BODY_NONE;
        req->content_length = 0;
    }
    req->host = f.host;
    req->host_len = f.host_len;
    req->keep_alive = !f.conn_close && (req->minor_version == 1 || f.conn_keep_alive);
    req->expect_continue = f.expect_continue;
    req->connection_other = f.conn_other;
    *status = 0;
    return (int)(p - buf);
}

/* ---- response ------------------------------------------------------------------------ */

int tg_http_parse_response(const char *buf, size_t len, tg_http_response_t *resp,
                           tg_http_header_t *headers, size_t max_headers, bool head_request)
{
    const char *p = buf, *end = buf + (len > INT_MAX ? INT_MAX : len);
    framing_t f = {0};
    int status;

    /* "HTTP/1.x" SP 3DIGIT, then SP reason or, from peers that drop the SP of an empty
     * reason, the CRLF at once. */
    if (end - p < 14 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') ||
        p[8] != ' ' || (unsigned)(p[9] - '0') > 9 || (unsigned)(p[10] - '0') > 9 ||
        (unsigned)(p[11] - '0') > 9)
        return TG_HTTP_ERROR;
    resp->minor_version = p[7] - '0';
    status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    if (status < 100 || status > 599)
        return TG_HTTP_ERROR;
    resp->status = status;
    p += 12;
    if (*p == ' ') {
        p++;
        resp->reason = p;
        p = skip_value(p, end);
        resp->reason_len = (size_t)(p - resp->reason);
    } else {
        resp->reason = p;
        resp->reason_len = 0;
    }
    if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
        return TG_HTTP_ERROR;
    p += 2;

    size_t nheaders = 0;
    int ignored;
    p = parse_fields(p, end, headers, max_headers, &nheaders, &f, &ignored);
    if (p == NULL)
        return TG_HTTP_ERROR;
    resp->headers = headers;
    resp->nheaders = nheaders;

    /* Stricter than RFC 9112 §6.3 allows a client to be: a repeated Content-Length, or any
     * coding but a lone "chunked", is an error rather than a guess, because we re-frame
     * the body for the client and must know exactly where it ends. */
    if (f.ncl > 1 || f.cl_bad || f.nte > 1 || (f.nte == 1 && f.ncl == 1))
        return TG_HTTP_ERROR;
    if (f.nte == 1 && (f.te_status != 0 || resp->minor_version == 0))
        return TG_HTTP_ERROR;
    resp->content_length = 0;
    if (head_request || status < 200 || status == 204 || status == 304) {
        resp->body = TG_HTTP_BODY_NONE;
    } else if (f.nte == 1) {
        resp->body = TG_HTTP_BODY_CHUNKED;
    } else if (f.ncl == 1) {
        resp->body = TG_HTTP_BODY_LENGTH;
        resp->content_length = f.cl;
    } else {
        resp->body = TG_HTTP_BODY_UNTIL_CLOSE;
    }
    /* A body that ends with the connection leaves nothing to keep alive. */
    resp->keep_alive = !f.conn_close && (resp->minor_version == 1 || f.conn_keep_alive) &&
                       resp->body != TG_HTTP_BODY_UNTIL_CLOSE;
    resp->connection_other = f.conn_other;
    return (int)(p - buf);
}

/* ---- end of head --------------------------------------------------------------------- */

size_t tg_http_head_end(const char *buf, size_t len, size_t *scanned)
{
    /* The last three bytes seen may begin the terminator, so step back over them. A
     * *scanned past len means the caller reused it for a new buffer: start afresh. */
    size_t i = *scanned > len ? 0 : *scanned >= 3 ? *scanned - 3 : 0;

    while (len - i >= 4) {
        const char *cr = memchr(buf + i, '\r', len - i - 3);
        if (cr == NULL)
            break;
        if (cr[1] == '\n' && cr[2] == '\r' && cr[3] == '\n') {
            /* Resuming from here finds the same end: asking twice is harmless. */
            i = (size_t)(cr - buf);
            *scanned = i + 3;
            return i + 4;
        }
        i = (size_t)(cr - buf) + 1;
    }
    *scanned = len;
    return 0;
}
