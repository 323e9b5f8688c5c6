/* libFuzzer target for request heads that arrive as fields (HTTP/3): any sequence of
 * names and values. Whatever tg_http_fields_finish accepts must make an HTTP/1.1 head that
 * our own strict parser accepts again with the same method, target, Host and framing: the
 * backend must never see a head that could be read two ways.
 *
 * Input: fields one after another, each [name length: 1 byte][value length: 2 bytes, big
 * endian][name][value]; a truncated field ends the input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "tollgate/http.h"

#define MAX_FIELDS 16
#define MAX_BYTES 8192

static size_t put(char *out, size_t at, const char *s, size_t n)
{
    CHECK(at + n <= 3 * MAX_BYTES);
    memcpy(out + at, s, n);
    return at + n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tg_http_fields_t f;
    tg_http_fields_init(&f, MAX_BYTES, MAX_FIELDS);
    size_t i = 0;
    while (i + 3 <= size) {
        size_t nl = data[i], vl = (size_t)data[i + 1] << 8 | data[i + 2];
        i += 3;
        if (nl + vl > size - i)
            break;
        /* copies of exactly the field's size, so ASan sees any read past them */
        char *name = malloc(nl ? nl : 1), *value = malloc(vl ? vl : 1);
        memcpy(name, data + i, nl);
        memcpy(value, data + i + nl, vl);
        tg_http_fields_add(&f, name, nl, value, vl);
        free(name);
        free(value);
        i += nl + vl;
    }
    tg_http_request_t req;
    int status = tg_http_fields_finish(&f, &req);
    CHECK(status == 0 || status == 400 || status == 431);
    if (status != 0) {
        tg_http_fields_free(&f);
        return 0;
    }
    CHECK(req.host != NULL && req.host_len > 0);
    CHECK(req.nheaders <= MAX_FIELDS + 2);

    /* The head as it would go upstream (what the proxy adds is ours and plain). */
    static char head[3 * MAX_BYTES];
    size_t at = 0;
    at = put(head, at, req.method, req.method_len);
    at = put(head, at, " ", 1);
    at = put(head, at, req.target, req.target_len);
    at = put(head, at, " HTTP/1.1\r\n", 11);
    for (size_t k = 0; k < req.nheaders; k++) {
        const tg_http_header_t *h = &req.headers[k];
        CHECK(h->name_len > 0 && h->id == tg_http_header_id(h->name, h->name_len));
        at = put(head, at, h->name, h->name_len);
        at = put(head, at, ": ", 2);
        at = put(head, at, h->value, h->value_len);
        at = put(head, at, "\r\n", 2);
    }
    at = put(head, at, "\r\n", 2);

    tg_http_request_t again;
    tg_http_header_t hs[MAX_FIELDS + 2];
    int st = 0;
    int n = tg_http_parse_request(head, at, &again, hs, MAX_FIELDS + 2, &st);
    CHECK(n == (int)at);
    CHECK(again.method_len == req.method_len &&
          memcmp(again.method, req.method, req.method_len) == 0);
    CHECK(again.target_len == req.target_len &&
          memcmp(again.target, req.target, req.target_len) == 0);
    CHECK(again.host != NULL && again.host_len == req.host_len &&
          memcmp(again.host, req.host, req.host_len) == 0);
    CHECK(again.nheaders == req.nheaders);
    CHECK(again.body == req.body);
    CHECK(again.body != TG_HTTP_BODY_LENGTH || again.content_length == req.content_length);
    tg_http_fields_free(&f);
    return 0;
}
