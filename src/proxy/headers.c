/* The request head as the backend sees it: hop-by-hop headers gone, client-sent identity
 * and X-Forwarded-* headers replaced by ours (with the verified client certificate's
 * identity under mutual authentication), framing made explicit. */
#include <string.h>

#include "tollgate/core.h"
#include "proxy_internal.h"

/* Headers that never cross the proxy as the client sent them. */
static bool dropped(const tg_http_header_t *h)
{
    if (tg_http_hop_by_hop(h->id))
        return true;
    switch (h->id) {
    case TG_HDR_CONTENT_LENGTH:  /* written again below from the parsed framing */
    case TG_HDR_EXPECT:          /* answered by the frontend itself */
    case TG_HDR_X_FORWARDED_FOR: /* merged into ours */
    case TG_HDR_X_FORWARDED_PROTO:
    case TG_HDR_X_FORWARDED_PORT:
    case TG_HDR_X_FORWARDED_CLIENT_SRCPORT:
    case TG_HDR_X_FORWARDED_CLIENTCERT:
        return true;
    default:
        return false;
    }
}

typedef struct writer_s {
    char *p;
    size_t left;
    bool overflow;
} writer_t;

static void put(writer_t *w, const char *s, size_t n)
{
    if (n > w->left) {
        w->overflow = true;
        return;
    }
    memcpy(w->p, s, n);
    w->p += n;
    w->left -= n;
}

#define PUT_LIT(w, s) put(w, "" s, sizeof(s) - 1)

static void put_str(writer_t *w, const char *s)
{
    put(w, s, strlen(s));
}

static void put_uint(writer_t *w, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    put(w, tmp + i, sizeof(tmp) - i);
}

/* absolute-form "http://host/path" becomes origin-form "/path" for the backend. */
static void put_target(writer_t *w, const tg_http_request_t *req)
{
    const char *t = req->target;
    size_t n = req->target_len;
    if (n > 0 && t[0] != '/' && t[0] != '*') {
        const char *scheme_end = memchr(t, ':', n);
        if (scheme_end != NULL && (size_t)(scheme_end - t) + 3 <= n && scheme_end[1] == '/' &&
            scheme_end[2] == '/') {
            const char *auth = scheme_end + 3;
            const char *path = memchr(auth, '/', n - (size_t)(auth - t));
            if (path == NULL) {
                PUT_LIT(w, "/");
                return;
            }
            put(w, path, n - (size_t)(path - t));
            return;
        }
    }
    put(w, t, n);
}

int tg__proxy_write_head(tg_exchange_t *ex, const tg_http_request_t *req)
{
    const tg_client_info_t *c = ex->client;
    size_t need = req->method_len + req->target_len + 512 + strlen(c->addr);
    if (c->cert != NULL)
        need += c->cert->subject_len + c->cert->issuer_len + 256;
    for (size_t i = 0; i < req->nheaders; i++)
        need += req->headers[i].name_len + req->headers[i].value_len + 4;
    tg_buf_grow(ex->loop, &ex->out, need);
    writer_t w = {ex->out.data + ex->out.end, ex->out.cap - ex->out.end, false};

    put(&w, req->method, req->method_len);
    PUT_LIT(&w, " ");
    put_target(&w, req);
    PUT_LIT(&w, " HTTP/1.1\r\n");

    bool xff_seen = false;
    for (size_t i = 0; i < req->nheaders; i++) {
        const tg_http_header_t *h = &req->headers[i];
        if (h->id == TG_HDR_X_FORWARDED_FOR) {
            /* Keep the chain: every value the client sent, then the client itself. */
            if (xff_seen)
                PUT_LIT(&w, ", ");
            else
                PUT_LIT(&w, "X-Forwarded-For: ");
            put(&w, h->value, h->value_len);
            xff_seen = true;
            continue;
        }
        if (dropped(h) ||
            (req->connection_other && tg_http_named_by_connection(req->headers, req->nheaders, h)))
            continue;
        put(&w, h->name, h->name_len);
        PUT_LIT(&w, ": ");
        put(&w, h->value, h->value_len);
        PUT_LIT(&w, "\r\n");
    }
    if (xff_seen) {
        PUT_LIT(&w, ", ");
    } else {
        PUT_LIT(&w, "X-Forwarded-For: ");
    }
    put_str(&w, c->addr);
    PUT_LIT(&w, "\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Port: ");
    put_uint(&w, c->listener_port);
    PUT_LIT(&w, "\r\nX-Forwarded-Client-Srcport: ");
    put_uint(&w, c->port);
    PUT_LIT(&w, "\r\n");
    if (c->cert != NULL) {
        /* Formatted at the handshake; a request only copies it. Whatever the client sent
         * under these names was dropped above. */
        PUT_LIT(&w, "X-Forwarded-Clientcert-subjectdn: ");
        put(&w, c->cert->subject, c->cert->subject_len);
        PUT_LIT(&w, "\r\nX-Forwarded-Clientcert-issuerdn: ");
        put(&w, c->cert->issuer, c->cert->issuer_len);
        PUT_LIT(&w, "\r\nX-Forwarded-Clientcert-fingerprint: ");
        put(&w, c->cert->fingerprint, sizeof(c->cert->fingerprint) - 1);
        PUT_LIT(&w, "\r\nX-Forwarded-Clientcert-clientverify: SUCCESS\r\n");
    }
    if (req->host == NULL) {
        /* HTTP/1.0 may omit Host; HTTP/1.1 backends require one. */
        PUT_LIT(&w, "Host: ");
        put_str(&w, c->sni && c->sni[0] ? c->sni : "localhost");
        PUT_LIT(&w, "\r\n");
    }
    if (req->body == TG_HTTP_BODY_CHUNKED) {
        PUT_LIT(&w, "Transfer-Encoding: chunked\r\n");
    } else if (req->body == TG_HTTP_BODY_LENGTH) {
        PUT_LIT(&w, "Content-Length: ");
        put_uint(&w, req->content_length);
        PUT_LIT(&w, "\r\n");
    }
    PUT_LIT(&w, "\r\n");
    if (w.overflow)
        return -1;
    ex->out.end = (size_t)(w.p - ex->out.data);
    return 0;
}

void tg_client_info_set_peer(tg_client_info_t *ci, const struct sockaddr *peer)
{
    char text[80];
    tg_addr_format(peer, text, sizeof(text));
    /* "[v6]:port" / "v4:port" -> address and port apart, as the headers want them. */
    char *colon = strrchr(text, ':');
    if (colon != NULL)
        *colon = '\0';
    const char *host = text[0] == '[' ? text + 1 : text;
    size_t hl = strlen(host);
    if (hl > 0 && host[hl - 1] == ']')
        hl--;
    if (hl >= sizeof(ci->addr))
        hl = sizeof(ci->addr) - 1;
    memcpy(ci->addr, host, hl);
    ci->addr[hl] = '\0';
    ci->port = tg_addr_port(peer);
}
