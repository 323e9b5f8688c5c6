/* proxy: what every frontend (HTTP/1 over TLS, HTTP/3 over QUIC) stands on. The client
 * connection set of a worker (accounting, drain, retire, reap, close-all), and the
 * exchange: one request and its response between a frontend and a backend. Routing and
 * generation pinning, forwarded headers, length enforcement, timeouts, error answers and
 * the access log live here, written once; nothing here knows TLS, QUIC or the frontend's
 * HTTP version. */
#ifndef TOLLGATE_PROXY_H
#define TOLLGATE_PROXY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "tollgate/generation-t.h"
#include "tollgate/http.h"
#include "tollgate/loop.h"
#include "tollgate/tls-t.h"
#include "tollgate/upstream.h"

/* What the access log and the forwarded headers need to know about the client side of
 * a connection; filled once per connection by the frontend, and owned by the connection
 * (tg_proxy_conn_t), which every exchange on it is embedded in or aborted before. */
typedef struct tg_client_info_s {
    uint16_t listener_port;
    char addr[64];           /* client address without port */
    uint16_t port;           /* client source port */
    const char *sni;         /* "" when none */
    const char *tls_version; /* "TLSv1.3" */
    const char *cipher;
    bool resumed;
    bool quic;           /* HTTP/3: the access log says so, with the connection id */
    const char *conn_id; /* hex; QUIC only */
    /* The client certificate mutual authentication verified, or NULL: the identity
     * headers and the access log's client_subject. Owned by the frontend's connection. */
    tg_tls_identity_t *cert;
} tg_client_info_t;

/* Set addr and port from the client's socket address. */
void tg_client_info_set_peer(tg_client_info_t *ci, const struct sockaddr *peer);

/* ---- client connections ----------------------------------------------------------------- */

typedef struct tg_proxy_conn_s tg_proxy_conn_t;
typedef struct tg_proxy_conns_s tg_proxy_conns_t;

/* What the connection set asks of a frontend's connection. */
typedef struct tg_proxy_conn_ops_s {
    /* Stop taking requests and close once those in flight are answered; drop_partial:
     * a request not wholly read yet is dropped rather than served. Returns true when the
     * connection was freed at once. */
    bool (*wind_down)(tg_proxy_conn_t *pc, bool drop_partial);
    /* Close now, whatever it is doing (the drain timeout, a retire deadline). */
    void (*close_now)(tg_proxy_conn_t *pc);
} tg_proxy_conn_ops_t;

/* One client connection as the worker sees it, embedded in the frontend's own struct,
 * which the frontend frees after tg_proxy_conn_remove. The generation reference is the
 * connection's for its whole life: gen's contexts served its handshake, and lst (gen's
 * listener it came in on) names where its requests route. */
struct tg_proxy_conn_s {
    tg_generation_t *gen;
    const tg_listener_rt_t *lst;
    tg_client_info_t client;
    uint64_t retire_at_ms;          /* non-zero: closed by then at the latest */
    const tg_proxy_conn_ops_t *ops; /* which frontend's connection it is */
    tg_proxy_conns_t *_set;
    tg_proxy_conn_t *_prev, *_next;
};

/* The connections of one worker, every frontend's, in one intrusive list. */
struct tg_proxy_conns_s {
    tg_loop_t *loop;
    tg_generation_t *const *current; /* the worker's generation: new requests route by it */
    atomic_ulong *process_conns;     /* all workers, for global.limits.max_connections */
    void (*on_drained)(void *arg);   /* while draining: the last connection is gone */
    void *arg;
    bool draining;
    size_t n;
    size_t nretiring;
    tg_proxy_conn_t *_head;
};

/* Add pc, already counted in *set->process_conns by whoever admitted it: the set
 * uncounts it when it leaves. Takes a reference on gen. */
void tg_proxy_conn_add(tg_proxy_conns_t *set, tg_proxy_conn_t *pc, const tg_proxy_conn_ops_t *ops,
                       tg_generation_t *gen, const tg_listener_rt_t *lst);
/* Take pc out of its set: uncounted, its generation released, on_drained called when it
 * was the last while draining. The frontend frees its struct afterwards. */
void tg_proxy_conn_remove(tg_proxy_conn_t *pc);
/* Iterate: the first connection of a set, the one after pc; NULL at the end. */
tg_proxy_conn_t *tg_proxy_conns_first(const tg_proxy_conns_t *set);
tg_proxy_conn_t *tg_proxy_conn_next(const tg_proxy_conn_t *pc);

/* Graceful stop: every connection winds down; on_drained once none is left. */
void tg_proxy_conns_drain(tg_proxy_conns_t *set);
/* After a reload: connections whose listener gen no longer has, or now verifies clients
 * otherwise (mutual authentication on or off, CAs, CRLs, depth), wind down, and close at
 * deadline_ms at the latest (tg_proxy_conns_reap). Under changed verification, a
 * request not yet wholly read is dropped (SPEC §7 rule 3). Returns how many retiring
 * connections are still open. */
size_t tg_proxy_conns_retire(tg_proxy_conns_t *set, const tg_generation_t *gen,
                             uint64_t deadline_ms);
/* Close retiring connections past their deadline; returns how many are left. */
size_t tg_proxy_conns_reap(tg_proxy_conns_t *set, uint64_t now_ms);
/* Close every connection at once (drain timeout, exit). */
void tg_proxy_conns_close_all(tg_proxy_conns_t *set);

/* ---- exchanges ---------------------------------------------------------------------------- */

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
    /* The route, pinned for the exchange's life: the connection's listener in the
     * worker's newest generation that still has it (a kept-alive connection's next
     * request follows a reload's new backends, SPEC §7), or the connection's own.
     * _route_gen is a reference of the exchange's own when that is a newer generation
     * than the connection's; otherwise the connection's reference covers it (an exchange
     * is always finished or aborted before its connection goes). */
    const tg_listener_rt_t *route;
    tg_generation_t *_route_gen;
    tg_backend_t *backend;
    const tg_client_info_t *client; /* the connection's */
    /* request as sent upstream */
    tg_buf_t out;            /* bytes for the backend: head, then body */
    tg_buf_t head_copy;      /* the head again, for one retry on a stale pooled connection */
    tg_http_body_t req_body; /* framing of the request body the frontend will feed */
    uint64_t req_remaining;  /* LENGTH: body bytes still owed; more or fewer is a 400 */
    bool req_done;           /* the whole request body has been taken */
    bool head_request;
    bool idempotent; /* RFC 9110 §9.2.2: may go to a second server after the first took it */
    bool fe_blocked; /* we refused body bytes; call fe->want_body when drained */
    /* The backend stopped taking the request after answering it (an early 413): the rest
     * of the body is dropped and its connection is not reused. */
    bool req_refused;
    /* The early answer came on a reset connection: its end does not end a body framed by
     * the close, which the reset may have cut (nginx reports the same as truncated). */
    bool up_reset;
    bool interim_seen; /* this try had a 1xx head: what follows is an answer */
    /* upstream: its connection, and this request's tries for upstream's verdicts */
    tg_upstream_server_t *server; /* while counted in its `active` */
    const char *server_text;      /* the last server tried, for the log */
    tg_upconn_t *up;
    tg_up_attempt_t attempt;
    int state;
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

/* Start an exchange on connection pc for a parsed request head (slices into the
 * frontend's buffer, needed only during the call). The frontend then feeds the body with
 * tg_exchange_write_body when req->body is not NONE. */
void tg_exchange_start(tg_exchange_t *ex, const tg_frontend_ops_t *fe, tg_proxy_conn_t *pc,
                       const tg_http_request_t *req);
/* Decoded request body bytes; last marks the end. Returns how many bytes were taken
 * (fewer than len: the backend is slow; wait for fe->want_body). */
size_t tg_exchange_write_body(tg_exchange_t *ex, const char *data, size_t len, bool last);
/* The frontend has room again after send_body returned false. */
void tg_exchange_resume_response(tg_exchange_t *ex);
/* Answer a request the frontend could not even parse (400, 408, 431, ...): logged and
 * answered like any other exchange, with no backend involved. method/path may be "". */
void tg_exchange_reject(tg_exchange_t *ex, const tg_frontend_ops_t *fe, tg_proxy_conn_t *pc,
                        int status);
/* Answer the request with an error of the proxy's own (before any response head). */
void tg_exchange_fail(tg_exchange_t *ex, int status);
/* The client went away: drop everything (no callbacks are made afterwards). */
void tg_exchange_abort(tg_exchange_t *ex);

#endif
