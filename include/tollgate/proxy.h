/* proxy: the exchange, one request and its response between a frontend (HTTP/1 over TLS
 * today, HTTP/3 later) and a backend. Routing, forwarded headers, upstream connection
 * reuse, timeouts, error answers and the access log live here, written once for every
 * frontend; nothing here knows TLS, QUIC or the frontend's HTTP version. */
#ifndef TOLLGATE_PROXY_H
#define TOLLGATE_PROXY_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "tollgate/http.h"
#include "tollgate/loop.h"
#include "tollgate/tls-t.h"
#include "tollgate/upstream.h"

/* What the access log and the forwarded headers need to know about the client side of
 * a connection; filled once per connection by the frontend. */
typedef struct tg_client_info_s {
    const char *listener; /* listener id */
    uint16_t listener_port;
    char addr[64];           /* client address without port */
    uint16_t port;           /* client source port */
    const char *sni;         /* "" when none */
    const char *tls_version; /* "TLSv1.3" */
    const char *cipher;
    bool resumed;
    const char *alt_svc; /* an Alt-Svc value to add to responses, or NULL */
    bool quic;           /* HTTP/3: the access log says so, with the connection id */
    const char *conn_id; /* hex; QUIC only */
    /* The client certificate mutual authentication verified, or NULL: the identity
     * headers and the access log's client_subject. Owned by the frontend's connection. */
    tg_tls_identity_t *cert;
} tg_client_info_t;

/* Set addr and port from the client's socket address. */
void tg_client_info_set_peer(tg_client_info_t *ci, const struct sockaddr *peer);

typedef struct tg_exchange_s tg_exchange_t;

/* How the proxy answers the frontend. Every callback is synchronous: header slices are
 * valid only during the call. */
typedef struct tg_frontend_ops_s {
    /* The response head. content_length is -1 when the length is not known in advance
     * (the frontend then frames the body its own way: chunked, or its stream's end). */
    void (*send_head)(tg_exchange_t *ex, int status, const tg_http_header_t *headers,
                      size_t nheaders, int64_t content_length);
    /* Body bytes. Returns false when the frontend cannot take more now; the proxy then
     * stops reading the backend until tg_exchange_resume_response(). The bytes passed are
     * taken either way. */
    bool (*send_body)(tg_exchange_t *ex, const char *data, size_t len);
    /* The response is complete (ok), or broke after its head was sent (!ok: the frontend
     * must end the stream abnormally so the client sees a truncated answer). */
    void (*finish)(tg_exchange_t *ex, bool ok);
    /* The proxy can take request body again after refusing some. */
    void (*want_body)(tg_exchange_t *ex);
} tg_frontend_ops_t;

/* Access log sink: one JSON object a line, or nothing. */
/* Point the access log at "stderr", "stdout", a file path (appended to, made 0640), or
 * "off" (or NULL). Main thread only; workers' lines go to the new place from then on.
 * Returns 0, or -1 with errno (the log stays where it was). */
int tg_accesslog_open(const char *where);
void tg_accesslog_close(void); /* at exit */

enum { TG_EX_IDLE = 0, TG_EX_CONNECTING, TG_EX_SENDING, TG_EX_WAIT_HEAD, TG_EX_BODY, TG_EX_DONE };

struct tg_exchange_s {
    const tg_frontend_ops_t *fe;
    tg_loop_t *loop;
    tg_backend_t *backend;
    const tg_client_info_t *client;
    /* request as sent upstream */
    tg_buf_t out;            /* bytes for the backend: head, then body */
    tg_buf_t head_copy;      /* the head again, for one retry on a stale pooled connection */
    tg_http_body_t req_body; /* framing of the request body the frontend will feed */
    uint64_t req_remaining;  /* LENGTH: body bytes still owed; more or fewer is a 400 */
    bool req_done;           /* the whole request body has been taken */
    bool head_request;
    bool idempotent; /* RFC 9110 §9.2.2: may go to a second server after the first took it */
    bool sent;       /* bytes of it reached the current backend connection */
    bool fe_blocked; /* we refused body bytes; call fe->want_body when drained */
    /* upstream */
    tg_upstream_server_t *server; /* while counted in its `active` */
    const char *server_text;      /* the last server tried, for the log */
    tg_upconn_t *up;
    int state;
    int tries;         /* fresh connections after stale pooled ones */
    int servers_tried; /* other servers after the first failed */
    uint64_t tried;    /* tg_backend_server_bit of each server tried */
    struct event timer;
    bool timer_set;
    /* response */
    tg_http_body_t resp_body;
    uint64_t resp_remaining;
    tg_http_chunked_t chunked;
    bool resp_keep_alive;
    bool resp_head_sent;
    bool paused; /* the frontend is full: do not read the backend */
    /* log */
    int status;
    uint64_t start_ms;
    uint64_t bytes_in;  /* request body bytes from the client */
    uint64_t bytes_out; /* response body bytes to the client */
    char method[16];
    char path[256];
};

/* Start an exchange for a parsed request head (slices into the frontend's buffer, needed
 * only during the call). The frontend then feeds the body with tg_exchange_write_body
 * when req->body is not NONE. */
void tg_exchange_start(tg_exchange_t *ex, const tg_frontend_ops_t *fe, tg_loop_t *loop,
                       tg_backend_t *backend, const tg_client_info_t *client,
                       const tg_http_request_t *req);
/* Decoded request body bytes; last marks the end. Returns how many bytes were taken
 * (fewer than len: the backend is slow; wait for fe->want_body). */
size_t tg_exchange_write_body(tg_exchange_t *ex, const char *data, size_t len, bool last);
/* The frontend has room again after send_body returned false. */
void tg_exchange_resume_response(tg_exchange_t *ex);
/* Answer a request the frontend could not even parse (400, 408, 431, ...): logged and
 * answered like any other exchange, with no backend involved. method/path may be "". */
void tg_exchange_reject(tg_exchange_t *ex, const tg_frontend_ops_t *fe, tg_loop_t *loop,
                        const tg_client_info_t *client, int status);
/* Answer the request with an error of the proxy's own (before any response head). */
void tg_exchange_fail(tg_exchange_t *ex, int status);
/* The client went away: drop everything (no callbacks are made afterwards). */
void tg_exchange_abort(tg_exchange_t *ex);

#endif
