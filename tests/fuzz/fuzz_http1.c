/* libFuzzer target for the HTTP/1 parsers: end-of-head search fed in pieces, request and
 * response heads, and the chunked decoder fed whole and in two pieces, with invariants. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "tollgate/http.h"

#define MAX_HEADERS 16

static bool within(const char *p, size_t n, const char *buf, size_t len)
{
    return p >= buf && n <= len && (size_t)(p - buf) <= len - n;
}

/* A copy of exactly n bytes, so that ASan reports any read past the input. */
static char *dup_exact(const char *p, size_t n)
{
    char *c = malloc(n ? n : 1);
    CHECK(c != NULL);
    if (n)
        memcpy(c, p, n);
    return c;
}

static bool no_ows_edges(const char *v, size_t n)
{
    return n == 0 || (v[0] != ' ' && v[0] != '\t' && v[n - 1] != ' ' && v[n - 1] != '\t');
}

static void check_headers(const tg_http_header_t *h, size_t n, const char *buf, size_t len)
{
    CHECK(n <= MAX_HEADERS);
    for (size_t i = 0; i < n; i++) {
        CHECK(h[i].name_len > 0 && within(h[i].name, h[i].name_len, buf, len));
        CHECK(within(h[i].value, h[i].value_len, buf, len));
        CHECK(no_ows_edges(h[i].value, h[i].value_len));
        CHECK(memchr(h[i].value, '\r', h[i].value_len) == NULL);
        CHECK(memchr(h[i].value, '\n', h[i].value_len) == NULL);
        CHECK(memchr(h[i].value, '\0', h[i].value_len) == NULL);
        CHECK(memchr(h[i].name, ':', h[i].name_len) == NULL);
    }
}

static int parse_request(const char *buf, size_t len, tg_http_request_t *req,
                         tg_http_header_t *headers, int *status)
{
    int r = tg_http_parse_request(buf, len, req, headers, MAX_HEADERS, status);
    if (r == TG_HTTP_ERROR) {
        CHECK(*status == 400 || *status == 431 || *status == 501 || *status == 505);
        return r;
    }
    CHECK(r > 0 && (size_t)r <= len);
    CHECK(memcmp(buf + r - 4, "\r\n\r\n", 4) == 0);
    CHECK(req->method_len > 0 && within(req->method, req->method_len, buf, (size_t)r));
    CHECK(req->target_len > 0 && within(req->target, req->target_len, buf, (size_t)r));
    CHECK(req->minor_version == 0 || req->minor_version == 1);
    check_headers(req->headers, req->nheaders, buf, (size_t)r);
    if (req->minor_version == 1)
        CHECK(req->host != NULL);
    if (req->host != NULL)
        CHECK(within(req->host, req->host_len, buf, (size_t)r));
    CHECK(req->body == TG_HTTP_BODY_NONE || req->body == TG_HTTP_BODY_LENGTH ||
          req->body == TG_HTTP_BODY_CHUNKED);
    if (req->body == TG_HTTP_BODY_CHUNKED)
        CHECK(req->minor_version == 1);
    CHECK(req->content_length <= (UINT64_C(1) << 62));
    if (req->body != TG_HTTP_BODY_LENGTH)
        CHECK(req->content_length == 0);
    return r;
}

static void fuzz_head(const char *in, size_t len, size_t split, bool head_request)
{
    /* The search must give one answer however the bytes arrive. */
    size_t scanned = 0, whole = tg_http_head_end(in, len, &scanned);
    CHECK(whole <= len);
    if (whole != 0) {
        CHECK(whole >= 4 && memcmp(in + whole - 4, "\r\n\r\n", 4) == 0);
        CHECK(memmem(in, whole - 1, "\r\n\r\n", 4) == NULL);
    } else {
        CHECK(memmem(in, len, "\r\n\r\n", 4) == NULL);
    }
    char *part = dup_exact(in, split);
    scanned = 0;
    size_t end = tg_http_head_end(part, split, &scanned);
    CHECK(scanned <= split);
    free(part);
    if (end == 0)
        end = tg_http_head_end(in, len, &scanned);
    CHECK(end == whole);
    /* Byte by byte, it is found exactly when its last byte arrives. */
    scanned = 0;
    end = 0;
    for (size_t n = 0; n <= len && end == 0; n++) {
        end = tg_http_head_end(in, n, &scanned);
        if (end != 0)
            CHECK(end == n);
    }
    CHECK(end == whole);

    tg_http_header_t headers[MAX_HEADERS];
    int status = 0;
    tg_http_request_t req;
    if (whole != 0) {
        char *head = dup_exact(in, whole);
        int r = parse_request(head, whole, &req, headers, &status);
        int status_all = 0;
        int r_all = parse_request(in, len, &req, headers, &status_all);
        /* Bytes after the head never change how the head parses. */
        CHECK(r == r_all && status == status_all);
        CHECK(r == TG_HTTP_ERROR || (size_t)r == whole);
        free(head);
    } else {
        CHECK(parse_request(in, len, &req, headers, &status) == TG_HTTP_ERROR);
    }

    tg_http_response_t resp;
    char *copy = dup_exact(in, len);
    int r = tg_http_parse_response(copy, len, &resp, headers, MAX_HEADERS, head_request);
    if (r != TG_HTTP_ERROR) {
        CHECK(whole != 0 && (size_t)r == whole);
        CHECK(resp.minor_version == 0 || resp.minor_version == 1);
        CHECK(resp.status >= 100 && resp.status <= 599);
        CHECK(within(resp.reason, resp.reason_len, copy, (size_t)r));
        check_headers(resp.headers, resp.nheaders, copy, (size_t)r);
        if (head_request || resp.status < 200 || resp.status == 204 || resp.status == 304)
            CHECK(resp.body == TG_HTTP_BODY_NONE);
        if (resp.body == TG_HTTP_BODY_UNTIL_CLOSE)
            CHECK(!resp.keep_alive);
        CHECK(resp.content_length <= (UINT64_C(1) << 62));
    }
    free(copy);
}

typedef struct {
    int result;
    size_t consumed;
    char *out;
    size_t out_len;
} decoded_t;

/* Decodes in[0..len) as the pieces [0, split) and [split, len), each in its own
 * exact-size buffer. */
static void decode(const char *in, size_t len, size_t split, decoded_t *d)
{
    tg_http_chunked_t c;
    tg_http_chunked_init(&c);
    d->result = TG_CHUNKED_MORE;
    d->consumed = 0;
    d->out = malloc(len ? len : 1);
    d->out_len = 0;
    CHECK(d->out != NULL);
    size_t bounds[2][2] = {{0, split}, {split, len}};
    for (int k = 0; k < 2; k++) {
        size_t plen = bounds[k][1] - bounds[k][0], off = 0;
        char *piece = dup_exact(in + bounds[k][0], plen);
        while (off < plen) {
            size_t used = SIZE_MAX, data_len = SIZE_MAX;
            const char *data = piece;
            int r = tg_http_chunked_decode(&c, piece + off, plen - off, &used, &data, &data_len);
            CHECK(used <= plen - off);
            if (r == TG_CHUNKED_DATA) {
                CHECK(data_len > 0 && data_len <= used);
                CHECK(data == piece + off + used - data_len);
                memcpy(d->out + d->out_len, data, data_len);
                d->out_len += data_len;
            } else {
                CHECK(data == NULL && data_len == 0);
            }
            if (r == TG_CHUNKED_MORE)
                CHECK(used == plen - off);
            else
                CHECK(r == TG_CHUNKED_DATA || r == TG_CHUNKED_DONE || r == TG_CHUNKED_ERROR);
            off += used;
            if (r == TG_CHUNKED_DONE || r == TG_CHUNKED_ERROR) {
                d->result = r;
                d->consumed = bounds[k][0] + off;
                free(piece);
                return;
            }
        }
        free(piece);
    }
    d->consumed = len;
}

static void fuzz_chunked(const char *in, size_t len, size_t split)
{
    decoded_t whole, parts;
    decode(in, len, len, &whole);
    decode(in, len, split, &parts);
    /* Where the input is cut changes nothing but how the data is handed out. */
    CHECK(whole.result == parts.result);
    CHECK(whole.out_len == parts.out_len);
    CHECK(whole.out_len <= len);
    CHECK(memcmp(whole.out, parts.out, whole.out_len) == 0);
    if (whole.result == TG_CHUNKED_DONE)
        CHECK(whole.consumed == parts.consumed && whole.consumed <= len);
    free(whole.out);
    free(parts.out);
}

/* Starting inputs with a valid first line, or with the name of a header that carries
 * framing, spends the run on the rules that matter instead of rediscovering
 * "Transfer-Encoding" a byte at a time (no dictionary needed). */
static const char *const prefixes[32] = {
    "",
    "GET / HTTP/1.1\r\nHost: a\r\n",
    "HTTP/1.1 200 OK\r\n",
    "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: ",
    "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ",
    "GET / HTTP/1.1\r\nHost: a\r\nConnection: ",
    "GET / HTTP/1.1\r\nHost: a\r\nExpect: ",
    "GET / HTTP/1.1\r\nHost: ",
    "HTTP/1.1 200 OK\r\nContent-Length: ",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: ",
    "HTTP/1.0 200 OK\r\nConnection: ",
    "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n",
    "GET / HTTP/1.0\r\n",
    "5\r\nhello\r\n",
    "0\r\nX: y\r\n",
    "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n",
    "CONNECT ",
    "OPTIONS ",
    "GET http://",
    "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked",
    "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 1",
    "GET / HTTP/1.1\r\nHost: a\r\nConnection: close, keep-alive, Upgrade\r\n",
    "GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n",
    "GET / HTTP/1.0\r\nConnection: keep-alive\r\n",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n",
    "HTTP/1.1 204 No Content\r\n",
    "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n",
    "HTTP/1.1 100 Continue\r\n",
    "HTTP/1.1 200 OK\r\nConnection: close\r\n",
    "1;ext=\"v\"\r\nx\r\n",
    "0\r\n\r\n",
    "",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    /* Byte 0: bit 0 says the request was HEAD, bits 1-5 pick a prefix; byte 1 places the
     * split point. */
    const char *prefix = prefixes[(data[0] >> 1) & 31];
    size_t plen = strlen(prefix), len = plen + size - 2;
    char *in = malloc(len ? len : 1);
    CHECK(in != NULL);
    memcpy(in, prefix, plen);
    memcpy(in + plen, data + 2, size - 2);
    size_t split = len * data[1] / 255;
    fuzz_head(in, len, split, data[0] & 1);
    fuzz_chunked(in, len, split);
    free(in);
    return 0;
}
