/* http: the strict HTTP/1.x parsers (request head, response head, chunked body) and the
 * header model. Zero-copy: every name and value is a slice of the caller's buffer, so
 * the buffer must stay put while the parsed head is used. */
#ifndef TOLLGATE_HTTP_H
#define TOLLGATE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#define TG_HTTP_INCOMPLETE (-2)
#define TG_HTTP_ERROR (-1)

/* Headers the proxy acts on, recognised once by the parser so nobody compares names
 * again on the hot path. */
typedef enum {
    TG_HDR_OTHER = 0,
    TG_HDR_HOST,
    TG_HDR_CONTENT_LENGTH,
    TG_HDR_TRANSFER_ENCODING,
    TG_HDR_CONNECTION,
    TG_HDR_KEEP_ALIVE,
    TG_HDR_PROXY_CONNECTION,
    TG_HDR_TE,
    TG_HDR_TRAILER,
    TG_HDR_UPGRADE,
    TG_HDR_EXPECT,
    TG_HDR_X_FORWARDED_FOR,
    TG_HDR_X_FORWARDED_PROTO,
    TG_HDR_X_FORWARDED_PORT,
    TG_HDR_X_FORWARDED_CLIENT_SRCPORT,
    TG_HDR_X_FORWARDED_CLIENTCERT, /* any name starting "x-forwarded-clientcert-" */
    /* The X-Forwarded-* ids above also stand for the same names spelled with '_' for '-'
     * (what CGI-style backends merge them with): tg_http_header_id folds them. */
    TG_HDR_ALT_SVC,
} tg_http_header_id_t;

typedef struct tg_http_header_s {
    const char *name;
    size_t name_len;
    const char *value; /* leading and trailing spaces/tabs trimmed */
    size_t value_len;
    tg_http_header_id_t id;
} tg_http_header_t;

typedef enum {
    TG_HTTP_BODY_NONE = 0,   /* no body follows the head */
    TG_HTTP_BODY_LENGTH,     /* content_length bytes follow */
    TG_HTTP_BODY_CHUNKED,    /* chunked coding follows */
    TG_HTTP_BODY_UNTIL_CLOSE /* responses only: read until the connection closes */
} tg_http_body_t;

typedef struct tg_http_request_s {
    const char *method;
    size_t method_len;
    const char *target;
    size_t target_len;
    int minor_version; /* HTTP/1.0 or HTTP/1.1 */
    tg_http_header_t *headers;
    size_t nheaders;
    tg_http_body_t body;
    uint64_t content_length;
    bool keep_alive;       /* 1.1 without "close", or 1.0 with "keep-alive" */
    bool expect_continue;  /* Expect: 100-continue */
    bool connection_other; /* Connection lists tokens besides close/keep-alive */
    const char *host;      /* NULL when absent */
    size_t host_len;
} tg_http_request_t;

typedef struct tg_http_response_s {
    int minor_version;
    int status; /* 100..599 */
    const char *reason;
    size_t reason_len;
    tg_http_header_t *headers;
    size_t nheaders;
    tg_http_body_t body;
    uint64_t content_length;
    bool keep_alive;
    bool connection_other;
} tg_http_response_t;

/* Where the head ends: offset just past "\r\n\r\n", or 0 when it is not in buf yet.
 * *scanned remembers how far a previous call got, so a head arriving byte by byte costs
 * O(n) in all (start it at 0 for a new head). */
size_t tg_http_head_end(const char *buf, size_t len, size_t *scanned);

/* Parse a complete request head (buf[0..len) ending with "\r\n\r\n", as found by
 * tg_http_head_end). headers is caller storage for max_headers entries. Returns the head
 * length, or TG_HTTP_ERROR with *status set: 400 malformed (including every
 * request-smuggling shape: CL with TE, repeated or malformed CL, TE other than a single
 * final "chunked", obs-fold, CTL/NUL in a value, bare LF, whitespace before the colon,
 * missing Host on 1.1), 431 more than max_headers headers, 501 a transfer coding we do not
 * know, 505 a version other than 1.0/1.1. */
int tg_http_parse_request(const char *buf, size_t len, tg_http_request_t *req,
                          tg_http_header_t *headers, size_t max_headers, int *status);

/* Parse a complete response head. head_request: the request was HEAD (no body).
 * Framing: 1xx/204/304/HEAD -> NONE; chunked; Content-Length; else UNTIL_CLOSE.
 * Returns the head length or TG_HTTP_ERROR (any malformation, CL with TE, bad CL). */
int tg_http_parse_response(const char *buf, size_t len, tg_http_response_t *resp,
                           tg_http_header_t *headers, size_t max_headers, bool head_request);

/* Chunked body decoder: incremental, one byte at a time or all at once. */
typedef struct tg_http_chunked_s {
    int _state;
    uint64_t _remaining;
    size_t _line_len;      /* bytes of the current size line / trailer line */
    size_t _trailer_bytes; /* all trailer bytes so far (bounded) */
    int _digits;
} tg_http_chunked_t;

enum {
    TG_CHUNKED_MORE = 0, /* all of the input was consumed; feed more */
    TG_CHUNKED_DATA = 1, /* *data, *data_len: body data inside the input */
    TG_CHUNKED_DONE = 2, /* the last chunk and the trailers are consumed */
    TG_CHUNKED_ERROR = -1
};

void tg_http_chunked_init(tg_http_chunked_t *c);
/* Consume from in[0..len). Returns one of the codes above and sets *consumed to the bytes
 * used; on TG_CHUNKED_DATA the span is in[*consumed - *data_len .. *consumed). Call again
 * with the rest. Errors: bad hex, size over 2^62, line or extension over 4 KiB, trailers over
 * 8 KiB, missing CRLF after data, bare LF. */
int tg_http_chunked_decode(tg_http_chunked_t *c, const char *in, size_t len, size_t *consumed,
                           const char **data, size_t *data_len);

/* Whether a method is idempotent (RFC 9110 §9.2.2): a request of it may be sent to a
 * second server after the first may have acted on it. */
bool tg_http_method_idempotent(const char *method, size_t len);
/* Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade: the
 * headers of one hop that a proxy never forwards (RFC 9110 §7.6.1). */
bool tg_http_hop_by_hop(tg_http_header_id_t id);
/* Whether a Connection header among hs[0..n) names h, which makes h hop-by-hop too
 * (RFC 9110 §7.6.1). */
bool tg_http_named_by_connection(const tg_http_header_t *hs, size_t n, const tg_http_header_t *h);
/* Case-insensitive search of a comma-separated token list ("close, Upgrade"). */
bool tg_http_token_list_has(const char *list, size_t list_len, const char *token, size_t token_len);
/* A token character (RFC 9110 §5.6.2). */
static inline bool tg_http_is_tchar(unsigned char ch)
{
    return (unsigned)((ch | 0x20) - 'a') < 26 || (unsigned)(ch - '0') < 10 ||
           (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* What our parser accepts in a Host value (reg-name, IP literal, port), and in any field
 * value (HTAB, SP, visible ASCII, obs-text): the rules other frontends must hold their
 * input to before it goes to a backend as HTTP/1.1. */
bool tg_http_host_valid(const char *v, size_t n);
bool tg_http_value_valid(const char *v, size_t n);

/* The id of a header name (case-insensitive), TG_HDR_OTHER for the ones the proxy does
 * not act on: for frontends that get names already split out (HTTP/3). */
tg_http_header_id_t tg_http_header_id(const char *name, size_t len);
/* Case-insensitive ASCII compare of n bytes. */
bool tg_http_name_eq(const char *a, size_t alen, const char *b, size_t blen);
/* The reason phrase tollgate uses for its own answers. */
const char *tg_http_reason(int status);

/* ---- request heads that arrive as fields (HTTP/3; HTTP/2 alike) ---------------------- */

/* The fields of one request head as they arrive, copied and checked one by one, then
 * turned into the same tg_http_request_t the HTTP/1 parser makes, so the proxy cannot
 * tell the two apart. Private members; use the functions below. */
typedef struct tg_http_fields_s {
    char *_buf; /* names and values */
    size_t _len, _cap;
    tg_http_header_t *_hs; /* offsets into _buf until finish */
    size_t _n, _hs_cap;
    size_t _max_bytes, _max_fields;
    size_t _pseudo[4][2]; /* offset and length of :method :path :authority :scheme */
    unsigned _seen;       /* bit i: _pseudo[i] was given */
    bool _regular;        /* a regular field came: pseudo-header fields must come first */
    int _status;          /* 0, or the answer to refuse the request with */
} tg_http_fields_t;

/* max_bytes: names + values in all (global.limits.max_header_bytes); max_fields: regular
 * fields. */
void tg_http_fields_init(tg_http_fields_t *f, size_t max_bytes, size_t max_fields);
/* One field as decoded (QPACK): any bytes. Refusals are kept for tg_http_fields_finish. */
void tg_http_fields_add(tg_http_fields_t *f, const char *name, size_t name_len, const char *value,
                        size_t value_len);
/* The head is complete. Returns 0 with req filled (its slices point into f and live until
 * tg_http_fields_free), or the status to answer with: 431 when over a limit, 400 for a
 * malformed head (RFC 9114 §4.1.2: a name that is not a lowercase token, NUL/CR/LF in a
 * value, unknown, repeated or late pseudo-headers, no :method or :path, a :path that could
 * not stand in an HTTP/1.1 request line, no authority, :authority and Host that differ,
 * connection-specific fields, TE other than "trailers", bad or conflicting
 * Content-Length). req->body is LENGTH when a Content-Length came, NONE otherwise (the
 * frontend knows better when the stream carries a body of unknown length). Cookie fields
 * are joined into one (RFC 9114 §4.2.1) and :authority becomes Host. */
int tg_http_fields_finish(tg_http_fields_t *f, tg_http_request_t *req);
void tg_http_fields_free(tg_http_fields_t *f);

#endif
