/* Unit tests for the http parsers: request and response heads, the end-of-head search,
 * the chunked decoder, request heads that arrive as fields (HTTP/3), and the small name and
 * token helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tollgate/http.h"

#define MAX_HEADERS 32

static int parse_req(const char *s, tg_http_request_t *req, tg_http_header_t *headers, int *status)
{
    return tg_http_parse_request(s, strlen(s), req, headers, MAX_HEADERS, status);
}

/* The status a malformed request earns, or 0 when it parses. */
static int req_status(const char *s)
{
    tg_http_request_t req;
    tg_http_header_t headers[MAX_HEADERS];
    int status = -1;
    int r = parse_req(s, &req, headers, &status);
    if (r == TG_HTTP_ERROR) {
        assert_true(status == 400 || status == 431 || status == 501 || status == 505);
        return status;
    }
    assert_int_equal(r, (int)strlen(s));
    return 0;
}

static bool span_eq(const char *p, size_t n, const char *s)
{
    return n == strlen(s) && memcmp(p, s, n) == 0;
}

#define assert_span(p, n, s) assert_true(span_eq((p), (n), (s)))

/* ---- requests ------------------------------------------------------------------------ */

static void test_get_with_headers(void **state)
{
    const char *s = "GET /a/b?c=d HTTP/1.1\r\n"
                    "Host: example.com:8443\r\n"
                    "User-Agent:   curl/8.0  \r\n"
                    "Accept:*/*\r\n"
                    "X-Empty:\r\n"
                    "X-Tab:\tx\ty\t\r\n"
                    "X-Obs: caf\xc3\xa9\r\n"
                    "\r\n";
    tg_http_request_t req;
    tg_http_header_t h[MAX_HEADERS];
    int status = -1;
    assert_int_equal(parse_req(s, &req, h, &status), (int)strlen(s));
    assert_int_equal(status, 0);
    assert_span(req.method, req.method_len, "GET");
    assert_span(req.target, req.target_len, "/a/b?c=d");
    assert_int_equal(req.minor_version, 1);
    assert_int_equal(req.nheaders, 6);
    assert_ptr_equal(req.headers, h);
    assert_span(h[0].name, h[0].name_len, "Host");
    assert_int_equal(h[0].id, TG_HDR_HOST);
    assert_span(h[0].value, h[0].value_len, "example.com:8443");
    assert_span(h[1].name, h[1].name_len, "User-Agent");
    assert_span(h[1].value, h[1].value_len, "curl/8.0");
    assert_int_equal(h[1].id, TG_HDR_OTHER);
    assert_span(h[2].value, h[2].value_len, "*/*");
    assert_span(h[3].name, h[3].name_len, "X-Empty");
    assert_int_equal(h[3].value_len, 0);
    assert_span(h[4].value, h[4].value_len, "x\ty");
    assert_span(h[5].value, h[5].value_len, "caf\xc3\xa9");
    assert_span(req.host, req.host_len, "example.com:8443");
    assert_int_equal(req.body, TG_HTTP_BODY_NONE);
    assert_int_equal(req.content_length, 0);
    assert_true(req.keep_alive);
    assert_false(req.expect_continue);
    assert_false(req.connection_other);
}

static void test_post_content_length(void **state)
{
    const char *s = "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 0012\r\n"
                    "Expect: 100-Continue\r\n\r\nhello world!";
    tg_http_request_t req;
    tg_http_header_t h[MAX_HEADERS];
    int status;
    int r = tg_http_parse_request(s, strlen(s), &req, h, MAX_HEADERS, &status);
    assert_int_equal(r, (int)(strlen(s) - 12));
    assert_int_equal(req.body, TG_HTTP_BODY_LENGTH);
    assert_int_equal(req.content_length, 12);
    assert_true(req.expect_continue);
    assert_int_equal(h[1].id, TG_HDR_CONTENT_LENGTH);
    assert_int_equal(h[2].id, TG_HDR_EXPECT);

    assert_int_equal(req_status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"), 0);
    assert_int_equal(
        req_status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4611686018427387904\r\n\r\n"), 0);
}

static void test_chunked_request(void **state)
{
    const char *s = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \t CHUNKED \r\n\r\n";
    tg_http_request_t req;
    tg_http_header_t h[MAX_HEADERS];
    int status;
    assert_int_equal(parse_req(s, &req, h, &status), (int)strlen(s));
    assert_int_equal(req.body, TG_HTTP_BODY_CHUNKED);
    assert_int_equal(h[1].id, TG_HDR_TRANSFER_ENCODING);
}

static void test_pipelined(void **state)
{
    const char *s = "GET /one HTTP/1.1\r\nHost: a\r\n\r\n"
                    "GET /two HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n";
    size_t len = strlen(s), scanned = 0;
    size_t first = tg_http_head_end(s, len, &scanned);
    assert_int_equal(first, strlen("GET /one HTTP/1.1\r\nHost: a\r\n\r\n"));

    tg_http_request_t req;
    tg_http_header_t h[MAX_HEADERS];
    int status;
    assert_int_equal(tg_http_parse_request(s, first, &req, h, MAX_HEADERS, &status), (int)first);
    assert_span(req.target, req.target_len, "/one");
    assert_true(req.keep_alive);
    /* Given everything at once, the parser still stops at the first head. */
    assert_int_equal(tg_http_parse_request(s, len, &req, h, MAX_HEADERS, &status), (int)first);

    scanned = 0;
    size_t second = tg_http_head_end(s + first, len - first, &scanned);
    assert_int_equal(second, len - first);
    assert_int_equal(tg_http_parse_request(s + first, second, &req, h, MAX_HEADERS, &status),
                     (int)second);
    assert_span(req.target, req.target_len, "/two");
    assert_span(req.host, req.host_len, "b");
    assert_false(req.keep_alive);
}

static const char *const valid_requests[] = {
    "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "GET /x HTTP/1.0\r\n\r\n",
    "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "POST /p?q HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\nX-A: \r\n\r\n",
    "PUT /r HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive, "
    "Upgrade\r\n\r\n",
    "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
    "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    "GET http://example.com/x HTTP/1.1\r\nHost: example.com\r\nCookie: a=b; c=\"d e\"\r\n\r\n",
    "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\nX-Long: "
    "0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ\tKLMNOPQRSTUVWXYZ\r\n\r\n",
    "DELETE /item/7 HTTP/1.1\r\nHost: [::1]:80\r\nExpect: 100-continue\r\n"
    "Content-Length: 18446\r\nX-Obs: \x80\xff\r\n\r\n",
};

/* Same parse of the same head held at two addresses: compare spans by offset. */
static void assert_same_request(const char *ba, const tg_http_request_t *a, const char *bb,
                                const tg_http_request_t *b)
{
    assert_int_equal(a->method - ba, b->method - bb);
    assert_int_equal(a->method_len, b->method_len);
    assert_int_equal(a->target - ba, b->target - bb);
    assert_int_equal(a->target_len, b->target_len);
    assert_int_equal(a->minor_version, b->minor_version);
    assert_int_equal(a->nheaders, b->nheaders);
    for (size_t i = 0; i < a->nheaders; i++) {
        assert_int_equal(a->headers[i].name - ba, b->headers[i].name - bb);
        assert_int_equal(a->headers[i].name_len, b->headers[i].name_len);
        assert_int_equal(a->headers[i].value - ba, b->headers[i].value - bb);
        assert_int_equal(a->headers[i].value_len, b->headers[i].value_len);
        assert_int_equal(a->headers[i].id, b->headers[i].id);
    }
    assert_int_equal(a->body, b->body);
    assert_int_equal(a->content_length, b->content_length);
    assert_int_equal(a->keep_alive, b->keep_alive);
    assert_int_equal(a->expect_continue, b->expect_continue);
    assert_int_equal(a->connection_other, b->connection_other);
    assert_int_equal(a->host == NULL, b->host == NULL);
    if (a->host != NULL)
        assert_int_equal(a->host - ba, b->host - bb);
    assert_int_equal(a->host_len, b->host_len);
}

/* Every valid request, arriving in two pieces split anywhere, or one byte at a time, is
 * found by tg_http_head_end exactly when it is complete and then parses as it does whole.
 * Buffers are allocated to the exact size so that ASan sees any read past the data. */
static void test_split_every_boundary(void **state)
{
    for (size_t t = 0; t < sizeof(valid_requests) / sizeof(valid_requests[0]); t++) {
        const char *s = valid_requests[t];
        size_t len = strlen(s);
        tg_http_request_t whole;
        tg_http_header_t hw[MAX_HEADERS];
        int status = -1;
        if (tg_http_parse_request(s, len, &whole, hw, MAX_HEADERS, &status) != (int)len)
            fail_msg("valid request %zu: status %d", t, status);

        for (size_t k = 0; k <= len; k++) {
            size_t scanned = 0;
            char *first = malloc(k ? k : 1);
            memcpy(first, s, k);
            assert_int_equal(tg_http_head_end(first, k, &scanned), k == len ? len : 0);
            assert_true(scanned <= k);
            free(first);

            /* The rest arrives with the start of a pipelined request behind it. */
            char *buf = malloc(len + 8);
            memcpy(buf, s, len);
            memcpy(buf + len, "GET / HT", 8);
            size_t end = tg_http_head_end(buf, len + 8, &scanned);
            assert_int_equal(end, len);
            tg_http_request_t part;
            tg_http_header_t hp[MAX_HEADERS];
            assert_int_equal(tg_http_parse_request(buf, end, &part, hp, MAX_HEADERS, &status),
                             (int)len);
            assert_same_request(s, &whole, buf, &part);
            free(buf);
        }

        size_t scanned = 0, found = 0, n;
        for (n = 0; n <= len && found == 0; n++) {
            char *buf = malloc(n ? n : 1);
            memcpy(buf, s, n);
            found = tg_http_head_end(buf, n, &scanned);
            if (found != 0) {
                tg_http_request_t part;
                tg_http_header_t hp[MAX_HEADERS];
                assert_int_equal(tg_http_parse_request(buf, found, &part, hp, MAX_HEADERS, &status),
                                 (int)len);
                assert_same_request(s, &whole, buf, &part);
            }
            free(buf);
        }
        assert_int_equal(found, len);
        assert_int_equal(n, len + 1);
    }
}

static void test_request_forms_and_versions(void **state)
{
    assert_int_equal(req_status("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
    assert_int_equal(req_status("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(req_status("OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(req_status("CONNECT a.b:443 HTTP/1.1\r\nHost: a.b:443\r\n\r\n"), 0);
    assert_int_equal(req_status("CONNECT [::1]:443 HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
    assert_int_equal(req_status("CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(req_status("CONNECT a.b HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(req_status("CONNECT a.b: HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(req_status("CONNECT :443 HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(req_status("CONNECT a/b:443 HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(req_status("GET a.b:443 HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(req_status("GET HTTPS://a/ HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
    assert_int_equal(req_status("GET http:// HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(req_status("GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(req_status("GET x HTTP/1.1\r\nHost: a\r\n\r\n"), 400);

    assert_int_equal(req_status("GET / HTTP/1.0\r\n\r\n"), 0);
    assert_int_equal(req_status("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
    assert_int_equal(req_status("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), 505);
    assert_int_equal(req_status("GET / HTTP/0.9\r\n\r\n"), 505);
    assert_int_equal(req_status("GET / HTTP/3.1\r\n\r\n"), 505);
    assert_int_equal(req_status("GET / HTTP/11.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(req_status("GET / HTTP/1.10\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(req_status("GET / http/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(req_status("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(req_status("GET / HTTP/1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(req_status("GET / \r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(req_status("GET /\r\nHost: a\r\n\r\n"), 400);

    /* request-line shape */
    assert_int_equal(req_status("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(req_status("GET /  HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(req_status("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(req_status(" GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(req_status("G@T / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(req_status("GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(req_status("GET /\xff HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(req_status("GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(req_status("GET /0123456789abcdef\x01 HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(req_status("GET /0123456789abcdef0123 HTTP/1.1\r\nHost: a\r\n\r\n"), 0);

    /* One leading empty line is ignored (RFC 9112 §2.2), two are not, nor a bare LF. */
    assert_int_equal(req_status("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
    assert_int_equal(req_status("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(req_status("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);

    /* not a complete head */
    assert_int_equal(req_status(""), 400);
    assert_int_equal(req_status("GET / HTTP/1.1\r\nHost: a\r\n"), 400);
    assert_int_equal(req_status("GET / HTTP/1.1\r\nHost: a\r\n\r"), 400);
}

/* Every shape that lets two parsers disagree about where a body ends, or that hides a
 * header from one of them, is refused. */
static void test_smuggling(void **state)
{
#define CASE(lit, st)                                                                              \
    {                                                                                              \
        lit, sizeof(lit) - 1, st                                                                   \
    }
    static const struct {
        const char *req;
        size_t len; /* some hold a NUL */
        int status;
    } cases[] = {
        CASE(
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            400),
        CASE(
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            400),
        CASE("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400),
        CASE("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
        CASE("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", 400),
        CASE("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,5\r\n\r\n", 400),
        CASE("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400),
        CASE("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n", 400),
        CASE("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:  5x\r\n\r\n", 400),
        CASE("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\n", 400),
        CASE("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", 400),
        CASE("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", 400),
        CASE("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4611686018427387905\r\n\r\n", 400),
        CASE("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n", 400),
        CASE("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400),
        CASE("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400),
        CASE("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
             "Transfer-Encoding: chunked\r\n\r\n",
             400),
        CASE("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
        CASE("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
        CASE("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", 400),
        CASE("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 400),
        CASE("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", 400),
        CASE("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked,\r\n\r\n", 400),
        CASE("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked\r\n\r\n", 400),
        CASE("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n", 400),
        CASE("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", 400),
        CASE("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        CASE("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip,deflate ,chunked\r\n\r\n", 501),
        CASE("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n", 400),
        CASE("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip,\r\n chunked\r\n\r\n", 400),
        CASE("POST / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n", 400),
        CASE("POST / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400),
        CASE("POST / HTTP/1.1\r\n Host: a\r\n\r\n", 400),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n", 400),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n", 400),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\r\n\r\n", 400),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x01\r\n\r\n", 400),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x7f\r\n\r\n", 400),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nX-A: bbbbbbbbbbbbbbbbbbb\x1b bbbbbb\r\n\r\n", 400),
        CASE("GET / HTTP/1.1\nHost: a\r\n\r\n", 400),
        CASE("GET / HTTP/1.1\r\nHost: a\n\r\n", 400),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\nX-B: c\r\n\r\n", 400),
        CASE("GET / HTTP/1.1\r\nHost: a\r\n\n\r\n", 400),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n", 400),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nX-A\t: b\r\n\r\n", 400),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", 400),
        CASE("GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", 400),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nX-A b\r\n\r\n", 400),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nX(A): b\r\n\r\n", 400),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nX-\xc3\xa9: b\r\n\r\n", 400),
        CASE("GET / HTTP/1.1\r\n\r\n", 400),
        CASE("GET / HTTP/1.1\r\nX-Host: a\r\n\r\n", 400),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400),
        CASE("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        CASE("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
        CASE("GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", 400),
        CASE("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
        CASE("GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", 400),
        CASE("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        CASE("GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505),
        CASE("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        CASE("POST / HTTP/1.0\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 400),
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *s = cases[i].req;
        size_t len = cases[i].len;
        tg_http_request_t req;
        tg_http_header_t h[MAX_HEADERS];
        int status = 0;
        int r = tg_http_parse_request(s, len, &req, h, MAX_HEADERS, &status);
        if (r != TG_HTTP_ERROR || status != cases[i].status)
            fail_msg("case %zu (%s): r=%d status=%d want %d", i, s, r, status, cases[i].status);
    }
#undef CASE
}

static void test_too_many_headers(void **state)
{
    char buf[4096];
    size_t n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 0; i < 9; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "X-%d: %d\r\n", i, i);
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\r\n");

    tg_http_request_t req;
    tg_http_header_t h[10];
    int status = 0;
    assert_int_equal(tg_http_parse_request(buf, n, &req, h, 10, &status), (int)n);
    assert_int_equal(req.nheaders, 10);
    assert_int_equal(tg_http_parse_request(buf, n, &req, h, 9, &status), TG_HTTP_ERROR);
    assert_int_equal(status, 431);
    assert_int_equal(tg_http_parse_request(buf, n, &req, NULL, 0, &status), TG_HTTP_ERROR);
    assert_int_equal(status, 431);
    assert_int_equal(tg_http_parse_request("GET / HTTP/1.0\r\n\r\n", 18, &req, NULL, 0, &status),
                     18);
    assert_int_equal(req.nheaders, 0);
}

static void test_connection_semantics(void **state)
{
    static const struct {
        const char *req;
        bool keep_alive, other, expect;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true, false, false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false, false, false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: CLOSE\r\n\r\n", false, false, false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n", false, false, false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n", true, true,
         false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: ,, keep-alive ,\r\n\r\n", true, false, false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: x-close\r\nConnection: close\r\n\r\n", false,
         true, false},
        {"GET / HTTP/1.0\r\n\r\n", false, false, false},
        {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true, false, false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false, false, false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive, foo\r\n\r\n", true, true, false},
        {"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n", true, false, true},
        {"PUT / HTTP/1.1\r\nHost: a\r\nExpect:  100-CONTINUE \r\n\r\n", true, false, true},
        {"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continuex\r\n\r\n", true, false, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tg_http_request_t req;
        tg_http_header_t h[MAX_HEADERS];
        int status;
        if (parse_req(cases[i].req, &req, h, &status) != (int)strlen(cases[i].req))
            fail_msg("case %zu: status %d", i, status);
        if (req.keep_alive != cases[i].keep_alive || req.connection_other != cases[i].other ||
            req.expect_continue != cases[i].expect)
            fail_msg("case %zu: keep_alive=%d other=%d expect=%d", i, req.keep_alive,
                     req.connection_other, req.expect_continue);
    }

    /* An empty Host is what RFC 9112 §3.2 asks for when the target has no authority. */
    tg_http_request_t req;
    tg_http_header_t h[MAX_HEADERS];
    int status;
    assert_true(parse_req("GET / HTTP/1.1\r\nHost:\r\n\r\n", &req, h, &status) > 0);
    assert_non_null(req.host);
    assert_int_equal(req.host_len, 0);
    assert_true(parse_req("GET / HTTP/1.0\r\n\r\n", &req, h, &status) > 0);
    assert_null(req.host);
}

static void test_header_ids(void **state)
{
    static const struct {
        const char *name;
        tg_http_header_id_t id;
    } cases[] = {
        {"Host", TG_HDR_HOST},
        {"HOST", TG_HDR_HOST},
        {"Hosts", TG_HDR_OTHER},
        {"Hos", TG_HDR_OTHER},
        {"content-length", TG_HDR_CONTENT_LENGTH},
        {"Content-Lengthy", TG_HDR_OTHER},
        {"Transfer-Encoding", TG_HDR_TRANSFER_ENCODING},
        {"Connection", TG_HDR_CONNECTION},
        {"Keep-Alive", TG_HDR_KEEP_ALIVE},
        {"Proxy-Connection", TG_HDR_PROXY_CONNECTION},
        {"TE", TG_HDR_TE},
        {"Trailer", TG_HDR_TRAILER},
        {"Trailers", TG_HDR_OTHER},
        {"Upgrade", TG_HDR_UPGRADE},
        {"Expect", TG_HDR_EXPECT},
        {"X-Forwarded-For", TG_HDR_X_FORWARDED_FOR},
        {"x-forwarded-proto", TG_HDR_X_FORWARDED_PROTO},
        {"X-FORWARDED-PORT", TG_HDR_X_FORWARDED_PORT},
        {"X-Forwarded-Client-Srcport", TG_HDR_X_FORWARDED_CLIENT_SRCPORT},
        {"X-Forwarded-Clientcert-subjectdn", TG_HDR_X_FORWARDED_CLIENTCERT},
        {"x-forwarded-clientcert-issuerdn", TG_HDR_X_FORWARDED_CLIENTCERT},
        {"X-Forwarded-Clientcert-fingerprint", TG_HDR_X_FORWARDED_CLIENTCERT},
        {"X-Forwarded-Clientcert-clientverify", TG_HDR_X_FORWARDED_CLIENTCERT},
        {"X-Forwarded-Clientcert-anything-new", TG_HDR_X_FORWARDED_CLIENTCERT},
        {"X-Forwarded-Clientcert-", TG_HDR_X_FORWARDED_CLIENTCERT},
        {"X-Forwarded-Clientcert", TG_HDR_OTHER},
        {"X-Forwarded-Host", TG_HDR_OTHER},
        {"Alt-Svc", TG_HDR_ALT_SVC},
        {"Alt_Svc", TG_HDR_OTHER},
        /* CGI-style backends read '_' as '-': the forwarded family folds, framing does not. */
        {"X_Forwarded_Clientcert_subjectdn", TG_HDR_X_FORWARDED_CLIENTCERT},
        {"X-Forwarded-Clientcert_clientverify", TG_HDR_X_FORWARDED_CLIENTCERT},
        {"x_forwarded_clientcert-issuerdn", TG_HDR_X_FORWARDED_CLIENTCERT},
        {"X_FORWARDED_CLIENTCERT_", TG_HDR_X_FORWARDED_CLIENTCERT},
        {"X_Forwarded_Clientcert", TG_HDR_OTHER},
        {"X_Forwarded_For", TG_HDR_X_FORWARDED_FOR},
        {"X-Forwarded_Proto", TG_HDR_X_FORWARDED_PROTO},
        {"x_forwarded_port", TG_HDR_X_FORWARDED_PORT},
        {"X_Forwarded_Client_Srcport", TG_HDR_X_FORWARDED_CLIENT_SRCPORT},
        {"X_Forwarded_Host", TG_HDR_OTHER},
        {"X__Forwarded_For", TG_HDR_OTHER},
        {"X.Forwarded.Clientcert.subjectdn", TG_HDR_X_FORWARDED_CLIENTCERT},
        {"X~Forwarded!Clientcert^clientverify", TG_HDR_X_FORWARDED_CLIENTCERT},
        {"x'forwarded`for", TG_HDR_X_FORWARDED_FOR},
        {"X|Forwarded*Proto", TG_HDR_X_FORWARDED_PROTO},
        {"Accept.Encoding-x", TG_HDR_OTHER},
        {"Transfer_Encoding", TG_HDR_OTHER},
        {"Content_Length", TG_HDR_OTHER},
        {"Proxy_Connection", TG_HDR_OTHER},
        {"Accept", TG_HDR_OTHER},
        {"T", TG_HDR_OTHER},
        {"Content-Type", TG_HDR_OTHER},
    };
    char buf[512];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        /* Host, CL, TE carry framing; give them values that parse. */
        const char *value = cases[i].id == TG_HDR_TRANSFER_ENCODING ? "chunked" : "1";
        int n = snprintf(buf, sizeof(buf), "POST / HTTP/1.1\r\n%s: %s\r\n%s\r\n", cases[i].name,
                         value, cases[i].id == TG_HDR_HOST ? "" : "Host: a\r\n");
        tg_http_request_t req;
        tg_http_header_t h[MAX_HEADERS];
        int status;
        if (tg_http_parse_request(buf, (size_t)n, &req, h, MAX_HEADERS, &status) != n)
            fail_msg("%s: status %d", cases[i].name, status);
        if (h[0].id != cases[i].id)
            fail_msg("%s: id %d want %d", cases[i].name, h[0].id, cases[i].id);
    }
}

/* ---- responses ----------------------------------------------------------------------- */

static int parse_resp(const char *s, tg_http_response_t *resp, bool head)
{
    static tg_http_header_t h[MAX_HEADERS];
    return tg_http_parse_response(s, strlen(s), resp, h, MAX_HEADERS, head);
}

static void test_response_framing(void **state)
{
    static const struct {
        const char *resp;
        bool head;
        tg_http_body_t body;
        uint64_t length;
        bool keep_alive;
    } cases[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", false, TG_HTTP_BODY_LENGTH, 12, true},
        {"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", true, TG_HTTP_BODY_NONE, 0, true},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, TG_HTTP_BODY_CHUNKED, 0,
         true},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true, TG_HTTP_BODY_NONE, 0, true},
        {"HTTP/1.1 200 OK\r\n\r\n", false, TG_HTTP_BODY_UNTIL_CLOSE, 0, false},
        {"HTTP/1.1 200 OK\r\n\r\n", true, TG_HTTP_BODY_NONE, 0, true},
        {"HTTP/1.1 204 No Content\r\n\r\n", false, TG_HTTP_BODY_NONE, 0, true},
        {"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", false, TG_HTTP_BODY_NONE, 0, true},
        {"HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n", false, TG_HTTP_BODY_NONE, 0,
         true},
        {"HTTP/1.1 100 Continue\r\n\r\n", false, TG_HTTP_BODY_NONE, 0, true},
        {"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
         false, TG_HTTP_BODY_NONE, 0, true},
        {"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", false,
         TG_HTTP_BODY_LENGTH, 0, false},
        {"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n", false, TG_HTTP_BODY_LENGTH, 3, false},
        {"HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n", false,
         TG_HTTP_BODY_LENGTH, 3, true},
        {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", false, TG_HTTP_BODY_UNTIL_CLOSE, 0,
         false},
        {"HTTP/1.1 200\r\nContent-Length: 1\r\n\r\n", false, TG_HTTP_BODY_LENGTH, 1, true},
        {"HTTP/1.1 200 \r\nContent-Length: 1\r\n\r\n", false, TG_HTTP_BODY_LENGTH, 1, true},
        {"HTTP/1.1 599 Whatever\tit is \xff\r\nContent-Length: 1\r\n\r\n", false,
         TG_HTTP_BODY_LENGTH, 1, true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tg_http_response_t resp;
        int r = parse_resp(cases[i].resp, &resp, cases[i].head);
        if (r != (int)strlen(cases[i].resp))
            fail_msg("case %zu: r=%d", i, r);
        if (resp.body != cases[i].body || resp.content_length != cases[i].length ||
            resp.keep_alive != cases[i].keep_alive)
            fail_msg("case %zu: body=%d length=%llu keep_alive=%d", i, resp.body,
                     (unsigned long long)resp.content_length, resp.keep_alive);
    }

    tg_http_response_t resp;
    const char *s = "HTTP/1.1 503 Service Unavailable\r\nServer:  x \r\nConnection: foo\r\n\r\n"
                    "body";
    assert_int_equal(
        tg_http_parse_response(s, strlen(s), &resp, (tg_http_header_t[4]){{0}}, 4, false),
        (int)strlen(s) - 4);
    assert_int_equal(resp.minor_version, 1);
    assert_int_equal(resp.status, 503);
    assert_span(resp.reason, resp.reason_len, "Service Unavailable");
    assert_int_equal(resp.nheaders, 2);
    assert_span(resp.headers[0].value, resp.headers[0].value_len, "x");
    assert_true(resp.connection_other);
    assert_int_equal(parse_resp("HTTP/1.1 200\r\n\r\n", &resp, false), 16);
    assert_int_equal(resp.reason_len, 0);
}

static void test_response_errors(void **state)
{
    static const char *const cases[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 204 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 304 OK\r\nContent-Length: x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-A : b\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-A: b\x01\r\n\r\n",
        "HTTP/1.1 200 OK\nContent-Length: 1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\n\r\n",
        "HTTP/1.1 200 O\rK\r\n\r\n",
        "HTTP/1.1 600 OK\r\n\r\n",
        "HTTP/1.1 099 OK\r\n\r\n",
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 200OK\r\n\r\n",
        "HTTP/1.1  200 OK\r\n\r\n",
        "HTTP/1.2 200 OK\r\n\r\n",
        "HTTP/2.0 200 OK\r\n\r\n",
        "HTTP/2 200 OK\r\n\r\n",
        "http/1.1 200 OK\r\n\r\n",
        "\r\nHTTP/1.1 200 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\n",
        "HTTP/1.1 200\r\n",
        "HTTP/1.1 200 OK\r\nX: y\r\n",
        "",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tg_http_response_t resp;
        if (parse_resp(cases[i], &resp, false) != TG_HTTP_ERROR)
            fail_msg("case %zu (%s) parsed", i, cases[i]);
    }
    tg_http_response_t resp;
    tg_http_header_t h[2];
    const char *s = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    assert_int_equal(tg_http_parse_response(s, strlen(s), &resp, h, 2, false), TG_HTTP_ERROR);
}

/* ---- end of head --------------------------------------------------------------------- */

static void test_head_end(void **state)
{
    size_t scanned = 0;
    assert_int_equal(tg_http_head_end("", 0, &scanned), 0);
    assert_int_equal(tg_http_head_end("\r\n\r", 3, &scanned), 0);
    assert_int_equal(tg_http_head_end("\r\n\r\n", 4, &scanned), 4);
    scanned = 0;
    assert_int_equal(tg_http_head_end("a\n\nb\r\r\n\n\r\n\r", 11, &scanned), 0);
    assert_int_equal(scanned, 11);
    assert_int_equal(tg_http_head_end("a\n\nb\r\r\n\n\r\n\r\n", 12, &scanned), 12);
    /* Asking again after a hit gives the same answer. */
    assert_int_equal(tg_http_head_end("a\n\nb\r\r\n\n\r\n\r\n", 12, &scanned), 12);

    /* A stale *scanned beyond the buffer restarts the search rather than reading past. */
    scanned = 100;
    assert_int_equal(tg_http_head_end("x\r\n\r\n", 5, &scanned), 5);

    /* Resuming never looks before the last three bytes: a head arriving in pieces costs
     * O(n), and the search still finds a terminator straddling the pieces. */
    const char *s = "GET / HTTP/1.1\r\nHost: a\r\n\r\nrest";
    for (size_t k = 0; k < 30; k++) {
        scanned = 0;
        assert_int_equal(tg_http_head_end(s, k, &scanned), k >= 27 ? 27 : 0);
        assert_int_equal(tg_http_head_end(s, strlen(s), &scanned), 27);
    }
}

/* ---- chunked ------------------------------------------------------------------------- */

typedef struct {
    int result;
    size_t consumed; /* bytes of the input the decoder took in all */
    char out[16384];
    size_t out_len;
} decoded_t;

/* Feeds in[0..len) in pieces: up to split first, then the rest step bytes at a time
 * (step 0: all at once). Checks every span the decoder reports against the input. */
static void decode(const char *in, size_t len, size_t split, size_t step, decoded_t *d)
{
    tg_http_chunked_t c;
    tg_http_chunked_init(&c);
    d->out_len = 0;
    d->consumed = 0;
    d->result = TG_CHUNKED_MORE;
    size_t pos = 0;
    while (pos < len) {
        size_t piece = pos < split ? split - pos : step == 0 ? len - pos : step;
        if (piece > len - pos)
            piece = len - pos;
        size_t off = 0;
        while (off < piece) {
            size_t used = 99999;
            const char *data = (const char *)1;
            size_t data_len = 99999;
            int r =
                tg_http_chunked_decode(&c, in + pos + off, piece - off, &used, &data, &data_len);
            assert_true(used <= piece - off);
            if (r == TG_CHUNKED_DATA) {
                assert_true(data_len > 0 && data_len <= used);
                assert_ptr_equal(data, in + pos + off + used - data_len);
                assert_true(d->out_len + data_len <= sizeof(d->out));
                memcpy(d->out + d->out_len, data, data_len);
                d->out_len += data_len;
            } else {
                assert_null(data);
                assert_int_equal(data_len, 0);
            }
            if (r == TG_CHUNKED_MORE)
                assert_int_equal(used, piece - off);
            off += used;
            if (r == TG_CHUNKED_DONE || r == TG_CHUNKED_ERROR) {
                d->result = r;
                d->consumed = pos + off;
                /* Both are final: a further call answers the same and takes nothing. */
                assert_int_equal(
                    tg_http_chunked_decode(&c, "0\r\n\r\n", 5, &used, &data, &data_len), r);
                assert_int_equal(used, 0);
                return;
            }
        }
        pos += piece;
    }
    d->consumed = pos;
}

static void assert_decodes(const char *in, size_t len, const char *want, size_t want_len,
                           size_t body_len)
{
    static decoded_t d;
    for (size_t step = 0; step <= 3; step++) {
        for (size_t split = 0; split <= len; split++) {
            decode(in, len, split, step, &d);
            if (d.result != TG_CHUNKED_DONE || d.consumed != body_len || d.out_len != want_len ||
                memcmp(d.out, want, want_len) != 0)
                fail_msg("split %zu step %zu: result %d consumed %zu out_len %zu", split, step,
                         d.result, d.consumed, d.out_len);
            if (step != 0 && split > 0)
                break; /* byte steps: the split scan above already covers two pieces */
        }
    }
}

static void test_chunked_valid(void **state)
{
    const char *s = "5\r\nhello\r\n1;ext=val;b\r\n \r\nA\r\n0123456789\r\n"
                    "00000000000000c ; x=\"quoted ; \\\" str\"\r\nabcdefghijkl\r\n0\r\n\r\n";
    const char *want = "hello 0123456789abcdefghijkl";
    assert_decodes(s, strlen(s), want, strlen(want), strlen(s));

    /* Trailers are consumed, and bytes after the body are left for the next message. */
    const char *t = "3\r\nabc\r\n0\r\nExpires: never\r\nX-Sum:\tabc \r\n\r\nGET / HTTP/1.1";
    assert_decodes(t, strlen(t), "abc", 3, strlen(t) - strlen("GET / HTTP/1.1"));

    const char *z = "0\r\n\r\n";
    assert_decodes(z, strlen(z), "", 0, 5);
    const char *u = "1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0;last\r\n\r\n";
    assert_decodes(u, strlen(u), "abcdefghijklmnopqrstuvwxyz", 26, strlen(u));

    /* Sizes up to 2^62 and 16 digits are accepted (the data never arrives here). */
    static decoded_t d;
    const char *big = "4000000000000000\r\nxyz";
    decode(big, strlen(big), 0, 0, &d);
    assert_int_equal(d.result, TG_CHUNKED_MORE);
    assert_int_equal(d.out_len, 3);

    /* A long line just under the bound is fine. */
    char line[8192];
    size_t n = (size_t)snprintf(line, sizeof(line), "1;");
    memset(line + n, 'e', 4093);
    n += 4093;
    n += (size_t)snprintf(line + n, sizeof(line) - n, "\r\nx\r\n0\r\n\r\n");
    decode(line, n, 0, 0, &d);
    assert_int_equal(d.result, TG_CHUNKED_DONE);
}

static void assert_chunked_error(const char *in, size_t len)
{
    static decoded_t d;
    for (size_t split = 0; split <= len; split++) {
        decode(in, len, split, 0, &d);
        if (d.result != TG_CHUNKED_ERROR)
            fail_msg("split %zu of \"%.40s\": result %d", split, in, d.result);
    }
    decode(in, len, 0, 1, &d);
    assert_int_equal(d.result, TG_CHUNKED_ERROR);
}

#define ERR(lit) assert_chunked_error(lit, sizeof(lit) - 1)

static void test_chunked_errors(void **state)
{
    ERR("x\r\nabc");                                /* bad hex */
    ERR("5g\r\nhello\r\n0\r\n\r\n");                /* bad hex after digits */
    ERR("\r\n");                                    /* no digits */
    ERR(";ext\r\n");                                /* no digits before extension */
    ERR(" 5\r\nhello\r\n");                         /* leading whitespace */
    ERR("-5\r\n");                                  /* sign */
    ERR("0x5\r\nhello\r\n");                        /* C prefix */
    ERR("4000000000000001\r\n");                    /* over 2^62 */
    ERR("ffffffffffffffff\r\n");                    /* over 2^62 */
    ERR("00000000000000005\r\nhello\r\n0\r\n\r\n"); /* 17 digits */
    ERR("5 \r\nhello\r\n0\r\n\r\n");                /* whitespace without an extension */
    ERR("5\nhello\r\n0\r\n\r\n");                   /* bare LF after the size */
    ERR("5;a=b\nhello\r\n0\r\n\r\n");               /* bare LF in an extension */
    ERR("5;a\rb\r\nhello\r\n0\r\n\r\n");            /* CR in an extension */
    ERR("5;a\0b\r\nhello\r\n0\r\n\r\n");            /* NUL in an extension */
    ERR("5\r\rhello\r\n0\r\n\r\n");                 /* CR without LF after the size */
    ERR("5\r\nhelloX\r\n0\r\n\r\n");                /* data longer than the size */
    ERR("5\r\nhello\n0\r\n\r\n");                   /* bare LF after data */
    ERR("5\r\nhello\r0\r\n\r\n");                   /* CR without LF after data */
    ERR("5\r\nhello0\r\n\r\n");                     /* no CRLF after data */
    ERR("0\r\n\n");                                 /* bare LF ending the body */
    ERR("0\r\n\r\r");                               /* CR without LF ending the body */
    ERR("0\r\nX: y\n\r\n");                         /* bare LF after a trailer */
    ERR("0\r\nX: y\r\n z\r\n\r\n");                 /* obs-fold in trailers */
    ERR("0\r\n X: y\r\n\r\n");                      /* whitespace before a trailer name */
    ERR("0\r\nX : y\r\n\r\n");                      /* whitespace before the colon */
    ERR("0\r\n: y\r\n\r\n");                        /* empty trailer name */
    ERR("0\r\nX\r\n\r\n");                          /* trailer without a colon */
    ERR("0\r\nX: a\x01b\r\n\r\n");                  /* control in a trailer value */
    ERR("0\r\nX: a\0b\r\n\r\n");                    /* NUL in a trailer value */

    /* a size line over 4 KiB */
    char buf[20000];
    size_t n = (size_t)snprintf(buf, sizeof(buf), "1;");
    memset(buf + n, 'e', 4200);
    n += 4200;
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\r\nx\r\n0\r\n\r\n");
    assert_chunked_error(buf, n);

    /* one trailer line over 4 KiB */
    n = (size_t)snprintf(buf, sizeof(buf), "0\r\nX: ");
    memset(buf + n, 'v', 4200);
    n += 4200;
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\r\n\r\n");
    assert_chunked_error(buf, n);

    /* trailers over 8 KiB in lines that are each short enough */
    n = (size_t)snprintf(buf, sizeof(buf), "0\r\n");
    for (int i = 0; i < 300; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "X-Trailer-%03d: %020d\r\n", i, i);
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\r\n");
    assert_chunked_error(buf, n);

    /* ... while a few of them pass */
    static decoded_t d;
    n = (size_t)snprintf(buf, sizeof(buf), "0\r\n");
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "X-Trailer-%03d: %020d\r\n", i, i);
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\r\n");
    decode(buf, n, 0, 0, &d);
    assert_int_equal(d.result, TG_CHUNKED_DONE);
    assert_int_equal(d.consumed, n);
}

static void test_chunked_empty_input(void **state)
{
    tg_http_chunked_t c;
    size_t used = 1;
    const char *data;
    size_t data_len;
    tg_http_chunked_init(&c);
    assert_int_equal(tg_http_chunked_decode(&c, "", 0, &used, &data, &data_len), TG_CHUNKED_MORE);
    assert_int_equal(used, 0);
    /* The data state returns as soon as it has bytes, even before the size line's bytes
     * that follow would fit in the same call. */
    assert_int_equal(tg_http_chunked_decode(&c, "3\r\nab", 5, &used, &data, &data_len),
                     TG_CHUNKED_DATA);
    assert_int_equal(used, 5);
    assert_int_equal(data_len, 2);
    assert_int_equal(
        tg_http_chunked_decode(&c, "c\r\n2\r\nde\r\n0\r\n\r\n", 16, &used, &data, &data_len),
        TG_CHUNKED_DATA);
    assert_int_equal(used, 1);
    assert_int_equal(
        tg_http_chunked_decode(&c, "\r\n2\r\nde\r\n0\r\n\r\n", 15, &used, &data, &data_len),
        TG_CHUNKED_DATA);
    assert_int_equal(used, 7);
    assert_memory_equal(data, "de", 2);
    assert_int_equal(tg_http_chunked_decode(&c, "\r\n0\r\n\r\n", 7, &used, &data, &data_len),
                     TG_CHUNKED_DONE);
    assert_int_equal(used, 7);
}

/* ---- helpers ------------------------------------------------------------------------- */

static void test_util(void **state)
{
    assert_true(tg_http_name_eq("Content-Type", 12, "content-TYPE", 12));
    assert_false(tg_http_name_eq("Content-Type", 12, "content-typ", 11));
    assert_false(tg_http_name_eq("a-b", 3, "a\rb", 3));
    assert_false(tg_http_name_eq("[", 1, "{", 1));
    assert_true(tg_http_name_eq("", 0, "", 0));

    const char *l = "keep-alive, Upgrade ,\tclose\t,,x";
    assert_true(tg_http_token_list_has(l, strlen(l), "upgrade", 7));
    assert_true(tg_http_token_list_has(l, strlen(l), "CLOSE", 5));
    assert_true(tg_http_token_list_has(l, strlen(l), "keep-alive", 10));
    assert_true(tg_http_token_list_has(l, strlen(l), "x", 1));
    assert_false(tg_http_token_list_has(l, strlen(l), "keep", 4));
    assert_false(tg_http_token_list_has(l, strlen(l), "clos", 4));
    assert_false(tg_http_token_list_has("", 0, "close", 5));
    assert_false(tg_http_token_list_has("closed", 6, "close", 5));

    assert_string_equal(tg_http_reason(200), "OK");
    assert_string_equal(tg_http_reason(400), "Bad Request");
    assert_string_equal(tg_http_reason(408), "Request Timeout");
    assert_string_equal(tg_http_reason(431), "Request Header Fields Too Large");
    assert_string_equal(tg_http_reason(501), "Not Implemented");
    assert_string_equal(tg_http_reason(502), "Bad Gateway");
    assert_string_equal(tg_http_reason(503), "Service Unavailable");
    assert_string_equal(tg_http_reason(504), "Gateway Timeout");
    assert_string_equal(tg_http_reason(505), "HTTP Version Not Supported");
    assert_non_null(tg_http_reason(299));
    assert_non_null(tg_http_reason(-1));
}

/* ---- request heads as fields (HTTP/3) --------------------------------------------------- */

/* "name: value" lines, split at the first ": "; finish's status (0: accepted). */
static int fields_status(const char *const *lines, size_t n, tg_http_fields_t *f,
                         tg_http_request_t *req)
{
    tg_http_fields_init(f, 4096, 8);
    for (size_t i = 0; i < n; i++) {
        const char *sep = strstr(lines[i] + 1, ": "); /* +1: a name may start with ':' */
        assert_non_null(sep);
        tg_http_fields_add(f, lines[i], (size_t)(sep - lines[i]), sep + 2, strlen(sep + 2));
    }
    return tg_http_fields_finish(f, req);
}

#define FIELDS(...)                                                                                \
    ((const char *const[]){__VA_ARGS__}),                                                          \
        (sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

static int fields_case(const char *const *lines, size_t n)
{
    tg_http_fields_t f;
    tg_http_request_t req;
    int status = fields_status(lines, n, &f, &req);
    tg_http_fields_free(&f);
    return status;
}

static const tg_http_header_t *find_header(const tg_http_request_t *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (tg_http_name_eq(req->headers[i].name, req->headers[i].name_len, name, strlen(name)))
            return &req->headers[i];
    return NULL;
}

/* CONNECT with a :path (and the tabs a peer may pad the method with, trimmed as field
 * whitespace) would reach an HTTP/1 backend as a request it reads otherwise: refused.
 * Found by fuzz_http_fields. */
static void test_fields_connect_refused(void **state)
{
    (void)state;
    assert_int_equal(
        fields_case(FIELDS(":method: CONNECT\t\t", ":path: /5557769", ":authority: 1amh")), 400);
    assert_int_equal(
        fields_case(FIELDS(":method: CONNECT", ":path: /", ":authority: a", ":scheme: https")),
        400);
}

static void test_fields_request(void **state)
{
    (void)state;
    tg_http_fields_t f;
    tg_http_request_t req;
    assert_int_equal(
        fields_status(FIELDS(":method: POST", ":scheme: https", ":authority: shop.example.com",
                             ":path: /cart?x=1", "cookie: a=1", "content-length:  12 ",
                             "x-thing: one", "cookie: b=2", "cookie: c=3"),
                      &f, &req),
        0);
    assert_int_equal(req.method_len, 4);
    assert_memory_equal(req.method, "POST", 4);
    assert_int_equal(req.target_len, 9);
    assert_memory_equal(req.target, "/cart?x=1", 9);
    assert_int_equal(req.minor_version, 1);
    assert_int_equal(req.body, TG_HTTP_BODY_LENGTH);
    assert_int_equal(req.content_length, 12);
    assert_int_equal(req.host_len, strlen("shop.example.com"));
    assert_memory_equal(req.host, "shop.example.com", req.host_len);
    const tg_http_header_t *h = find_header(&req, "cookie");
    assert_non_null(h); /* three cookie fields, one line for HTTP/1.1 */
    assert_int_equal(h->value_len, strlen("a=1; b=2; c=3"));
    assert_memory_equal(h->value, "a=1; b=2; c=3", h->value_len);
    h = find_header(&req, "content-length");
    assert_non_null(h);
    assert_int_equal(h->id, TG_HDR_CONTENT_LENGTH);
    assert_int_equal(h->value_len, 2); /* trimmed */
    h = find_header(&req, "host");
    assert_non_null(h);
    assert_int_equal(h->id, TG_HDR_HOST);
    assert_non_null(find_header(&req, "x-thing"));
    assert_int_equal(req.nheaders, 4); /* content-length, x-thing, cookie, host */
    tg_http_fields_free(&f);

    /* Host instead of :authority; no body; OPTIONS * */
    assert_int_equal(
        fields_status(FIELDS(":method: OPTIONS", ":path: *", "host: a.example"), &f, &req), 0);
    assert_int_equal(req.body, TG_HTTP_BODY_NONE);
    assert_memory_equal(req.host, "a.example", 9);
    tg_http_fields_free(&f);
    /* the same Host as :authority (case aside) is fine, and sent once */
    assert_int_equal(fields_status(FIELDS(":method: GET", ":path: /", ":authority: A.example",
                                          "host: a.EXAMPLE"),
                                   &f, &req),
                     0);
    assert_int_equal(req.nheaders, 1);
    tg_http_fields_free(&f);
}

/* HTTP/3 heads are classified like HTTP/1 ones: identity and forwarded names spelled
 * with '_' are ours to drop, whatever frontend they came through. */
static void test_fields_forwarded_aliases(void **state)
{
    (void)state;
    tg_http_fields_t f;
    tg_http_request_t req;
    assert_int_equal(fields_status(FIELDS(":method: GET", ":scheme: https", ":authority: a.example",
                                          ":path: /", "x_forwarded_clientcert_subjectdn: CN=admin",
                                          "x-forwarded-clientcert_clientverify: SUCCESS",
                                          "x_forwarded_for: 10.0.0.1", "x_forwarded_host: h"),
                                   &f, &req),
                     0);
    assert_int_equal(find_header(&req, "x_forwarded_clientcert_subjectdn")->id,
                     TG_HDR_X_FORWARDED_CLIENTCERT);
    assert_int_equal(find_header(&req, "x-forwarded-clientcert_clientverify")->id,
                     TG_HDR_X_FORWARDED_CLIENTCERT);
    assert_int_equal(find_header(&req, "x_forwarded_for")->id, TG_HDR_X_FORWARDED_FOR);
    assert_int_equal(find_header(&req, "x_forwarded_host")->id, TG_HDR_OTHER);
    tg_http_fields_free(&f);
}

static void test_method_idempotent(void **state)
{
    (void)state;
    static const char *const yes[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"};
    static const char *const no[] = {"POST", "PATCH", "LOCK", "CONNECT",
                                     "get",  "GETS",  "",     "PROPFIND"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        assert_true(tg_http_method_idempotent(yes[i], strlen(yes[i])));
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        assert_false(tg_http_method_idempotent(no[i], strlen(no[i])));
    assert_true(tg_http_method_idempotent("GETX", 3)); /* the length given decides */
}

static void test_fields_refused(void **state)
{
    (void)state;
#define GOOD ":method: GET", ":path: /", ":authority: a.example"
    assert_int_equal(fields_case(FIELDS(GOOD)), 0);
    /* pseudo-header fields: required, known, once, first */
    assert_int_equal(fields_case(FIELDS(":path: /", ":authority: a")), 400);
    assert_int_equal(fields_case(FIELDS(":method: GET", ":authority: a")), 400);
    assert_int_equal(fields_case(FIELDS(":method: CONNECT", ":authority: a:443")), 400);
    assert_int_equal(fields_case(FIELDS(GOOD, ":protocol: websocket")), 400);
    assert_int_equal(fields_case(FIELDS(GOOD, ":path: /again")), 400);
    assert_int_equal(fields_case(FIELDS(":method: GET", "x: 1", ":path: /", ":authority: a")), 400);
    assert_int_equal(fields_case(FIELDS(GOOD, ":status: 200")), 400);
    /* what could not stand in an HTTP/1.1 request line */
    assert_int_equal(fields_case(FIELDS(":method: GET", ":path: /a b", ":authority: a")), 400);
    assert_int_equal(fields_case(FIELDS(":method: GET", ":path: a", ":authority: a")), 400);
    assert_int_equal(fields_case(FIELDS(":method: GET", ":path: *", ":authority: a")), 400);
    assert_int_equal(fields_case(FIELDS(":method: GE T", ":path: /", ":authority: a")), 400);
    assert_int_equal(fields_case(FIELDS(":method: G\x7fT", ":path: /", ":authority: a")), 400);
    assert_int_equal(fields_case(FIELDS(":method: GET", ":path: /\x80", ":authority: a")), 400);
    /* the authority */
    assert_int_equal(fields_case(FIELDS(":method: GET", ":path: /")), 400);
    assert_int_equal(fields_case(FIELDS(":method: GET", ":path: /", ":authority: a b")), 400);
    assert_int_equal(fields_case(FIELDS(GOOD, "host: b.example")), 400);
    assert_int_equal(fields_case(FIELDS(":method: GET", ":path: /", "host: a", "host: a")), 400);
    /* names and values */
    assert_int_equal(fields_case(FIELDS(GOOD, "X-Upper: 1")), 400);
    assert_int_equal(fields_case(FIELDS(GOOD, "bad name: 1")), 400);
    assert_int_equal(fields_case(FIELDS(GOOD, "x: a\r\nevil: 1")), 400);
    assert_int_equal(fields_case(FIELDS(GOOD, "x: a\nb")), 400);
    assert_int_equal(fields_case(FIELDS(GOOD, "x: a\x01"
                                              "b")),
                     400); /* as HTTP/1.1 refuses */
    assert_int_equal(fields_case(FIELDS(GOOD, "x: a\tb")), 0);
    assert_int_equal(fields_case(FIELDS(":method: GET", ":path: /", ":authority: a>b")), 400);
    /* connection-specific fields (RFC 9114 §4.2) */
    assert_int_equal(fields_case(FIELDS(GOOD, "connection: close")), 400);
    assert_int_equal(fields_case(FIELDS(GOOD, "transfer-encoding: chunked")), 400);
    assert_int_equal(fields_case(FIELDS(GOOD, "keep-alive: 5")), 400);
    assert_int_equal(fields_case(FIELDS(GOOD, "upgrade: h2c")), 400);
    assert_int_equal(fields_case(FIELDS(GOOD, "proxy-connection: x")), 400);
    assert_int_equal(fields_case(FIELDS(GOOD, "te: gzip")), 400);
    assert_int_equal(fields_case(FIELDS(GOOD, "te: trailers")), 0);
    /* Content-Length */
    assert_int_equal(fields_case(FIELDS(GOOD, "content-length: 1x")), 400);
    assert_int_equal(fields_case(FIELDS(GOOD, "content-length: -1")), 400);
    assert_int_equal(fields_case(FIELDS(GOOD, "content-length: 1", "content-length: 2")), 400);
    assert_int_equal(fields_case(FIELDS(GOOD, "content-length: 2", "content-length: 2")), 0);
    assert_int_equal(fields_case(FIELDS(GOOD, "content-length: 1234567890123456789")), 400);
    /* limits: 8 regular fields, 4096 bytes */
    assert_int_equal(
        fields_case(FIELDS(GOOD, "a: 1", "b: 1", "c: 1", "d: 1", "e: 1", "f: 1", "g: 1", "h: 1")),
        0);
    assert_int_equal(fields_case(FIELDS(GOOD, "a: 1", "b: 1", "c: 1", "d: 1", "e: 1", "f: 1",
                                        "g: 1", "h: 1", "i: 1")),
                     431);
    char big[5000];
    memset(big, 'v', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    tg_http_fields_t f;
    tg_http_request_t req;
    tg_http_fields_init(&f, 4096, 8);
    tg_http_fields_add(&f, ":method", 7, "GET", 3);
    tg_http_fields_add(&f, "x-big", 5, big, strlen(big));
    assert_int_equal(tg_http_fields_finish(&f, &req), 431);
    tg_http_fields_free(&f);
    /* the first refusal stands */
    assert_int_equal(fields_case(FIELDS(GOOD, "X: 1", "a: 1", "b: 1", "c: 1", "d: 1", "e: 1",
                                        "f: 1", "g: 1", "h: 1", "i: 1")),
                     400);
#undef GOOD
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_with_headers),
        cmocka_unit_test(test_post_content_length),
        cmocka_unit_test(test_chunked_request),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_split_every_boundary),
        cmocka_unit_test(test_request_forms_and_versions),
        cmocka_unit_test(test_smuggling),
        cmocka_unit_test(test_too_many_headers),
        cmocka_unit_test(test_connection_semantics),
        cmocka_unit_test(test_header_ids),
        cmocka_unit_test(test_response_framing),
        cmocka_unit_test(test_response_errors),
        cmocka_unit_test(test_head_end),
        cmocka_unit_test(test_chunked_valid),
        cmocka_unit_test(test_chunked_errors),
        cmocka_unit_test(test_chunked_empty_input),
        cmocka_unit_test(test_util),
        cmocka_unit_test(test_fields_request),
        cmocka_unit_test(test_fields_connect_refused),
        cmocka_unit_test(test_fields_refused),
        cmocka_unit_test(test_fields_forwarded_aliases),
        cmocka_unit_test(test_method_idempotent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
