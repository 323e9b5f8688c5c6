/* The HTTP/1.1-over-TLS frontend: a TLS handshake, then requests read one after another
 * (pipelined ones wait their turn), each handed to the proxy as an exchange, responses
 * written back with Content-Length or chunked framing and the client's backpressure. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/ssl.h>

#include "tollgate/core.h"
#include "tollgate/frontend.h"
#include "tollgate/proxy.h"

#define MAX_REQ_HEADERS 128
#define LINGER_MS 2000
#define MAX_ROUNDS 64 /* of drive()'s loop per event */

enum { ST_HANDSHAKE, ST_HEAD, ST_EXCHANGE, ST_CLOSING, ST_LINGER };
enum { TM_NONE, TM_HANDSHAKE, TM_IDLE, TM_HEADER, TM_CLIENT, TM_LINGER };

typedef struct tg_h1conn_s {
    tg_proxy_conn_t pc; /* in the worker's set: generation, listener, client info */
    tg_proxy_conns_t *set;
    tg_loop_t *loop;
    int fd;
    SSL *ssl;
    struct event rev;
    struct event wev;
    struct event timer;
    int timer_kind;
    int state;
    tg_buf_t in;
    tg_buf_t out;
    int io_want;      /* what the last blocked TLS call waits for (TG_WANT_*) */
    bool in_drive;    /* drive() is on the stack: callbacks only set flags */
    bool broken;      /* a write failed: close at the next chance */
    bool peer_closed; /* the client sent its last byte (EOF or close_notify) */
    /* the request being served */
    size_t head_scanned;
    bool keep_alive;  /* the client wants it and we are not draining */
    bool close_after; /* close once the response is out */
    bool ex_active;   /* ex holds a started exchange */
    bool ex_done;     /* its finish() came */
    bool chunked_out; /* we frame the response body as chunked */
    bool http10;      /* the request was HTTP/1.0: no chunked coding towards it */
    bool out_blocked; /* send_body returned false: resume the exchange on drain */
    tg_http_body_t req_body;
    uint64_t req_remaining;
    tg_http_chunked_t req_chunked;
    size_t body_pending; /* decoded chunk bytes at the head of `in` still to hand over */
    bool req_done;
    bool body_blocked; /* the exchange refused body bytes: wait for want_body */
    tg_exchange_t ex;
} tg_h1conn_t;

static void drive(tg_h1conn_t *c, bool readable);

/* ---- lifetime ------------------------------------------------------------------------ */

static void conn_free(tg_h1conn_t *c)
{
    if (c->ex_active && !c->ex_done)
        tg_exchange_abort(&c->ex);
    event_del(&c->rev);
    event_del(&c->wev);
    evtimer_del(&c->timer);
    SSL_free(c->ssl);
    tg_tls_identity_free(c->pc.client.cert);
    close(c->fd);
    tg_buf_release(c->loop, &c->in);
    tg_buf_release(c->loop, &c->out);
    tg_proxy_conn_remove(&c->pc); /* may call on_drained: last */
    free(c);
}

static void set_timer(tg_h1conn_t *c, int kind)
{
    if (kind == c->timer_kind && kind != TM_CLIENT)
        return;
    c->timer_kind = kind;
    const tg_conf_limits_t *lim = &c->pc.gen->cfg->global.limits;
    uint64_t ms;
    switch (kind) {
    case TM_HANDSHAKE:
        ms = lim->handshake_timeout_ms;
        break;
    case TM_IDLE:
    case TM_CLIENT:
        ms = lim->idle_timeout_ms;
        break;
    case TM_HEADER:
        ms = lim->header_timeout_ms;
        break;
    case TM_LINGER:
        ms = LINGER_MS;
        break;
    default:
        evtimer_del(&c->timer);
        return;
    }
    evtimer_add(&c->timer, tg_loop_timeout(c->loop, ms));
}

/* Run drive() soon from the event loop instead of from inside a callback. It comes as a
 * write event, so drive() does not take it for a sign that there is something to read. */
static void kick(tg_h1conn_t *c)
{
    if (!c->in_drive)
        event_active(&c->wev, EV_WRITE, 1);
}

/* ---- writing ------------------------------------------------------------------------- */

/* Push `out` into TLS. Returns false when the connection is broken. */
static bool flush(tg_h1conn_t *c)
{
    if (tg_buf_len(&c->out) == 0 || c->broken)
        return !c->broken;
    int want = 0;
    ssize_t n = tg_tls_write(c->ssl, tg_buf_head(&c->out), tg_buf_len(&c->out), &want);
    if (n > 0) {
        tg_buf_consume(c->loop, &c->out, (size_t)n);
        c->io_want &= ~TG_WANT_WRITE;
        return true;
    }
    if (n == TG_IO_AGAIN) {
        /* The same bytes (and maybe more) are offered again on the next try, which is
         * what OpenSSL asks of a retried write. */
        c->io_want = want;
        return true;
    }
    c->broken = true;
    return false;
}

static void out_append(tg_h1conn_t *c, const void *data, size_t len)
{
    tg_loop_t *loop = c->loop;
    tg_buf_reserve(loop, &c->out);
    if (c->out.cap - tg_buf_len(&c->out) < len)
        tg_buf_grow(loop, &c->out, tg_buf_len(&c->out) + len + 64);
    tg_buf_append(loop, &c->out, data, len);
}

#define OUT_LIT(c, s) out_append(c, "" s, sizeof(s) - 1)

/* ---- the proxy's callbacks ---------------------------------------------------------- */

static tg_h1conn_t *from_ex(tg_exchange_t *ex)
{
    return TG_STRUCT_FROM_MEMBER(tg_h1conn_t, ex, ex);
}

static void fe_send_head(tg_exchange_t *ex, int status, const tg_http_header_t *hs, size_t n,
                         int64_t content_length)
{
    tg_h1conn_t *c = from_ex(ex);
    char line[64];
    int len = snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", status, tg_http_reason(status));
    out_append(c, line, (size_t)len);
    for (size_t i = 0; i < n; i++) {
        out_append(c, hs[i].name, hs[i].name_len);
        OUT_LIT(c, ": ");
        out_append(c, hs[i].value, hs[i].value_len);
        OUT_LIT(c, "\r\n");
    }
    c->chunked_out = false;
    if (content_length >= 0) {
        len = snprintf(line, sizeof(line), "Content-Length: %lld\r\n", (long long)content_length);
        out_append(c, line, (size_t)len);
    } else if (content_length == -1) {
        if (c->ex.head_request) {
            /* nothing: a HEAD answer has no body to frame */
        } else if (c->keep_alive && !c->http10) {
            OUT_LIT(c, "Transfer-Encoding: chunked\r\n");
            c->chunked_out = true;
        } else {
            /* HTTP/1.0 has no chunked coding, keep-alive or not: the close ends the body. */
            c->keep_alive = false;
            c->close_after = true;
        }
    }
    if (status >= 400 && !c->req_done)
        c->keep_alive = false; /* an unread request body is not worth waiting for */
    if (!c->keep_alive) {
        c->close_after = true;
        OUT_LIT(c, "Connection: close\r\n");
    }
    OUT_LIT(c, "\r\n");
}

static bool fe_send_body(tg_exchange_t *ex, const char *data, size_t len)
{
    tg_h1conn_t *c = from_ex(ex);
    if (c->broken)
        return false;
    if (len == 0)
        return true;
    if (c->chunked_out) {
        char line[24];
        int n = snprintf(line, sizeof(line), "%zx\r\n", len);
        out_append(c, line, (size_t)n);
        out_append(c, data, len);
        OUT_LIT(c, "\r\n");
    } else if (tg_buf_len(&c->out) == 0) {
        /* Straight from the backend's buffer into TLS; only what TLS cannot take now is
         * copied. */
        int want = 0;
        ssize_t n = tg_tls_write(c->ssl, data, len, &want);
        if (n > 0)
            goto sent;
        if (n != TG_IO_AGAIN) {
            c->broken = true;
            kick(c);
            return false;
        }
        c->io_want = want;
        out_append(c, data, len);
    } else {
        out_append(c, data, len);
    }
    if (!flush(c)) {
        kick(c);
        return false;
    }
sent:
    if (tg_buf_len(&c->out) >= TG_BUF_SIZE) {
        c->out_blocked = true;
        kick(c); /* arms the write event and the client timer */
        return false;
    }
    return true;
}

static void fe_finish(tg_exchange_t *ex, bool ok)
{
    tg_h1conn_t *c = from_ex(ex);
    c->ex_done = true;
    c->out_blocked = false;
    if (!ok)
        c->close_after = true; /* the client must see a truncated response */
    else if (c->chunked_out)
        OUT_LIT(c, "0\r\n\r\n");
    kick(c);
}

static void fe_want_body(tg_exchange_t *ex)
{
    tg_h1conn_t *c = from_ex(ex);
    c->body_blocked = false;
    kick(c);
}

static const tg_frontend_ops_t h1_ops = {
    .send_head = fe_send_head,
    .send_body = fe_send_body,
    .finish = fe_finish,
    .want_body = fe_want_body,
};

/* ---- reading ------------------------------------------------------------------------- */

static bool in_full(const tg_h1conn_t *c)
{
    return c->in.data != NULL && c->in.start == 0 && c->in.end == c->in.cap;
}

/* Reading goes on during an exchange too, into the buffer's free room: that is how a
 * client's close is seen early and pipelined requests are read ahead. A full buffer is
 * the backpressure. */
/* Responses waiting for the client to read them: at a buffer's worth, no further
 * pipelined request is started (nor read), or a client that pipelines requests and never
 * reads would make us hold every answer (150x its own bytes, for small pages). */
static bool out_full(const tg_h1conn_t *c)
{
    return tg_buf_len(&c->out) >= TG_BUF_SIZE;
}

static bool want_read(const tg_h1conn_t *c)
{
    switch (c->state) {
    case ST_HEAD:
        return !out_full(c);
    case ST_LINGER:
        return true;
    case ST_EXCHANGE:
        return !c->peer_closed && !in_full(c);
    default:
        return false;
    }
}

/* Read what TLS has. Returns bytes read, 0 on EOF, TG_IO_AGAIN or TG_IO_ERROR. */
static ssize_t read_some(tg_h1conn_t *c)
{
    tg_loop_t *loop = c->loop;
    size_t room = tg_buf_reserve(loop, &c->in);
    if (room == 0)
        return TG_IO_AGAIN; /* full: the parser has to make progress first */
    int want = 0;
    ssize_t n = tg_tls_read(c->ssl, c->in.data + c->in.end, room, &want);
    if (n > 0) {
        c->in.end += (size_t)n;
        c->io_want &= ~TG_WANT_READ;
    } else if (n == TG_IO_AGAIN) {
        c->io_want |= want;
        if (tg_buf_len(&c->in) == 0)
            tg_buf_release(loop, &c->in); /* idle: hold no buffer */
    }
    return n;
}

static void reject(tg_h1conn_t *c, int status)
{
    c->keep_alive = false;
    c->req_done = true;
    c->ex_active = true;
    c->ex_done = false;
    c->state = ST_EXCHANGE;
    tg_exchange_reject(&c->ex, &h1_ops, &c->pc, status);
}

/* Hand buffered body bytes to the exchange. */
static void feed_body(tg_h1conn_t *c)
{
    tg_loop_t *loop = c->loop;
    while (!c->req_done && !c->body_blocked && !c->ex_done && tg_buf_len(&c->in) > 0) {
        const char *p = tg_buf_head(&c->in);
        size_t avail = tg_buf_len(&c->in);
        if (c->req_body == TG_HTTP_BODY_LENGTH || c->body_pending > 0) {
            uint64_t left = c->req_body == TG_HTTP_BODY_LENGTH ? c->req_remaining : c->body_pending;
            size_t n = avail < left ? avail : (size_t)left;
            bool last = c->req_body == TG_HTTP_BODY_LENGTH && n == left;
            size_t took = tg_exchange_write_body(&c->ex, p, n, last);
            tg_buf_consume(loop, &c->in, took);
            if (c->req_body == TG_HTTP_BODY_LENGTH)
                c->req_remaining -= took;
            else
                c->body_pending -= took;
            if (last && took == n)
                c->req_done = true;
            /* The exchange's own flag, not took < n: it may have drained and asked for more
             * (want_body) before returning. */
            c->body_blocked = c->ex.fe_blocked;
            continue;
        }
        size_t used = 0, dlen = 0;
        const char *data = NULL;
        int rc = tg_http_chunked_decode(&c->req_chunked, p, avail, &used, &data, &dlen);
        if (rc == TG_CHUNKED_ERROR) {
            /* Bad chunking after the head went upstream: nothing sane to forward. */
            c->keep_alive = false;
            if (!c->ex_done)
                tg_exchange_fail(&c->ex, 400);
            c->req_done = true;
            return;
        }
        if (rc == TG_CHUNKED_DATA) {
            /* Everything up to the data is framing; the data itself is handed over (or
             * kept as pending) from the head of the buffer. */
            tg_buf_consume(loop, &c->in, used - dlen);
            c->body_pending = dlen;
            continue;
        }
        tg_buf_consume(loop, &c->in, used);
        if (rc == TG_CHUNKED_DONE) {
            tg_exchange_write_body(&c->ex, NULL, 0, true);
            c->req_done = true;
        }
    }
}

/* A whole head is in the buffer: parse it and start its exchange. */
static void start_request(tg_h1conn_t *c, size_t head_len)
{
    tg_http_header_t hs[MAX_REQ_HEADERS];
    tg_http_request_t req;
    int status = 400;
    if (tg_http_parse_request(tg_buf_head(&c->in), head_len, &req, hs, MAX_REQ_HEADERS, &status) <
        0) {
        tg_buf_consume(c->loop, &c->in, tg_buf_len(&c->in));
        reject(c, status);
        return;
    }
    c->state = ST_EXCHANGE;
    c->keep_alive = req.keep_alive && !c->set->draining && c->pc.retire_at_ms == 0;
    c->http10 = req.minor_version == 0;
    c->close_after = false;
    c->chunked_out = false;
    c->out_blocked = false;
    c->req_body = req.body;
    c->req_remaining = req.content_length;
    c->req_done = req.body == TG_HTTP_BODY_NONE ||
                  (req.body == TG_HTTP_BODY_LENGTH && req.content_length == 0);
    c->body_pending = 0;
    c->body_blocked = false;
    tg_http_chunked_init(&c->req_chunked);
    if (req.expect_continue && !c->req_done && tg_buf_len(&c->in) == head_len)
        OUT_LIT(c, "HTTP/1.1 100 Continue\r\n\r\n");
    c->ex_active = true;
    c->ex_done = false;
    tg_exchange_start(&c->ex, &h1_ops, &c->pc, &req);
    /* The exchange has copied what it needs from the head. */
    tg_buf_consume(c->loop, &c->in, head_len);
    c->head_scanned = 0;
}

static bool has_bare_lf(const char *buf, size_t from, size_t len)
{
    for (const char *p = buf + from; (p = memchr(p, '\n', len - (size_t)(p - buf))) != NULL; p++)
        if (p == buf || p[-1] != '\r')
            return true;
    return false;
}

static void parse_heads(tg_h1conn_t *c)
{
    uint64_t max = c->pc.gen->cfg->global.limits.max_header_bytes;
    size_t len = tg_buf_len(&c->in);
    if (len == 0)
        return;
    size_t from = c->head_scanned;
    size_t end = tg_http_head_end(tg_buf_head(&c->in), len, &c->head_scanned);
    if (end == 0) {
        if (has_bare_lf(tg_buf_head(&c->in), from, len)) {
            /* The parser would refuse it anyway; without this a bare-LF head is never
             * found and would wait for the 408 instead of getting its 400 now. */
            reject(c, 400);
            return;
        }
        if (len >= max) {
            reject(c, 431);
            return;
        }
        if (c->in.cap - c->in.start <= len)
            tg_buf_grow(c->loop, &c->in, (size_t)max + 1);
        set_timer(c, TM_HEADER);
        return;
    }
    if (end > max) {
        reject(c, 431);
        return;
    }
    start_request(c, end);
}

/* ---- the state machine -------------------------------------------------------------- */

static void fill_client_info(tg_h1conn_t *c)
{
    tg_client_info_t *ci = &c->pc.client;
    const char *sni = SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);
    ci->sni = sni ? sni : "";
    ci->tls_version = SSL_get_version(c->ssl);
    ci->cipher = SSL_get_cipher_name(c->ssl);
    ci->resumed = SSL_session_reused(c->ssl);
    /* Once per connection: every request reuses it (mutual authentication only). */
    ci->cert = tg_tls_handshake_done(&c->pc.lst->tls, c->ssl);
}

static void begin_close(tg_h1conn_t *c)
{
    /* close_notify, then stop writing; keep reading a little so that a client still
     * sending (pipelined requests) does not get a reset that eats our last answer. */
    SSL_shutdown(c->ssl);
    shutdown(c->fd, SHUT_WR);
    c->state = ST_LINGER;
    set_timer(c, TM_LINGER);
}

/* The end of an exchange: next request, or closing. */
static void after_exchange(tg_h1conn_t *c)
{
    c->ex_active = false;
    c->ex_done = false;
    if (c->close_after || !c->keep_alive || !c->req_done || c->set->draining) {
        c->state = ST_CLOSING; /* once the response is out */
        return;
    }
    c->state = ST_HEAD;
    set_timer(c, tg_buf_len(&c->in) > 0 ? TM_HEADER : TM_IDLE);
}

static void arm(tg_h1conn_t *c)
{
    bool r = want_read(c) || (c->io_want & TG_WANT_READ);
    bool w = tg_buf_len(&c->out) > 0 && (c->io_want & TG_WANT_WRITE);
    if (c->state == ST_HANDSHAKE) {
        r = c->io_want & TG_WANT_READ;
        w = c->io_want & TG_WANT_WRITE;
    }
    if (r)
        event_add(&c->rev, NULL);
    else
        event_del(&c->rev);
    if (w)
        event_add(&c->wev, NULL);
    else
        event_del(&c->wev);
}

static void drive(tg_h1conn_t *c, bool readable)
{
    int rounds = 0;
    c->in_drive = true;
    if (c->state == ST_HANDSHAKE) {
        int want = 0;
        int rc = tg_tls_handshake(c->ssl, &want);
        if (rc == TG_IO_ERROR) {
            tg_tls_handshake_failed(&c->pc.lst->tls, c->ssl, c->pc.lst->conf->id,
                                    c->pc.client.addr);
            goto close;
        }
        if (rc == TG_IO_AGAIN) {
            c->io_want = want;
            goto out;
        }
        c->io_want = 0;
        fill_client_info(c);
        c->state = ST_HEAD;
        set_timer(c, TM_HEADER);
        readable = true; /* the request often follows the Finished message at once */
    }

    /* Bounded, so one connection with a deep pipeline cannot hold the worker; what is
     * left is picked up again from the event loop (see below). */
    for (rounds = 0; rounds < MAX_ROUNDS; rounds++) {
        if (c->broken || !flush(c))
            goto close;
        if (c->out_blocked && tg_buf_len(&c->out) < TG_BUF_SIZE / 2 && c->ex_active &&
            !c->ex_done) {
            c->out_blocked = false;
            tg_exchange_resume_response(&c->ex);
            continue;
        }
        if (c->state == ST_EXCHANGE && c->ex_done) {
            after_exchange(c);
            continue;
        }
        if (c->state == ST_CLOSING) {
            if (tg_buf_len(&c->out) > 0)
                goto out; /* flush first */
            begin_close(c);
            continue;
        }
        if (c->state == ST_EXCHANGE && !c->req_done && !c->body_blocked && tg_buf_len(&c->in) > 0) {
            feed_body(c);
            continue;
        }
        if (c->state == ST_HEAD && tg_buf_len(&c->in) > 0 && !out_full(c)) {
            size_t before = tg_buf_len(&c->in);
            parse_heads(c);
            if (c->state == ST_HEAD && tg_buf_len(&c->in) == before && !want_read(c))
                break;
            if (c->state != ST_HEAD)
                continue;
        }
        /* One read per readiness event: epoll is level-triggered and OpenSSL's read-ahead
         * buffer is checked, so a second read would only earn EAGAIN. */
        if (!want_read(c) || !(readable || SSL_has_pending(c->ssl)))
            break;
        readable = false;
        ssize_t n = read_some(c);
        if (n == TG_IO_AGAIN)
            break;
        if (n <= 0) {
            /* The client is gone or half-closed: nothing more will come, and a read it
             * wanted earlier must not keep the event armed on a socket at its end. */
            c->io_want &= ~TG_WANT_READ;
            if (c->state != ST_EXCHANGE || !c->req_done)
                goto close;
            c->peer_closed = true; /* answer what it asked, then close */
            c->keep_alive = false;
            break;
        }
        if (c->state == ST_LINGER) {
            tg_buf_consume(c->loop, &c->in, tg_buf_len(&c->in));
            continue;
        }
        if (c->state == ST_EXCHANGE)
            set_timer(c, TM_CLIENT);
    }
out:
    if (c->state == ST_EXCHANGE || c->state == ST_CLOSING) {
        /* Only waiting on the client is timed here; the backend has its own timers. */
        bool on_client = (tg_buf_len(&c->out) > 0 && (c->io_want & TG_WANT_WRITE)) ||
                         (c->state == ST_EXCHANGE && !c->req_done && !c->body_blocked);
        set_timer(c, on_client ? TM_CLIENT : TM_NONE);
    } else if (c->state == ST_HEAD && out_full(c)) {
        /* Requests wait because the client does not read our answers: that is a wait on
         * the client (idle_timeout), not a slow head (408). */
        set_timer(c, TM_CLIENT);
    }
    arm(c);
    c->in_drive = false;
    /* Out of rounds with work left (pipelined requests, say): nothing else would wake us,
     * since the bytes are already read. Yield to the other connections and go on at the
     * loop's next turn (after arm, whose event_del would cancel it). */
    if (rounds == MAX_ROUNDS)
        event_active(&c->wev, EV_WRITE, 1);
    return;
close:
    c->in_drive = false;
    conn_free(c);
}

static void on_io(evutil_socket_t fd, short what, void *arg)
{
    drive(arg, (what & EV_READ) != 0);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    tg_h1conn_t *c = arg;
    int kind = c->timer_kind;
    c->timer_kind = TM_NONE;
    if (kind == TM_HEADER && c->state == ST_HEAD && tg_buf_len(&c->in) > 0) {
        /* slowloris: a head that does not finish in time gets a 408 and the door. */
        tg_buf_consume(c->loop, &c->in, tg_buf_len(&c->in));
        reject(c, 408);
        drive(c, false);
        return;
    }
    conn_free(c);
}

/* ---- the connection set's side -------------------------------------------------------- */

static tg_h1conn_t *from_pc(tg_proxy_conn_t *pc)
{
    return TG_STRUCT_FROM_MEMBER(tg_h1conn_t, pc, pc);
}

/* Asked to finish: stopping, its listener removed, or its client verification changed.
 * Answers already made are always delivered first (a connection between requests may
 * still be flushing them); a request already read in part is served, unless
 * drop_partial: under verification that no longer holds, only a request in flight at
 * that moment finishes (SPEC §7 rule 3). */
static bool wind_down(tg_proxy_conn_t *pc, bool drop_partial)
{
    tg_h1conn_t *c = from_pc(pc);
    c->keep_alive = false;
    if (c->state == ST_HANDSHAKE || (c->state == ST_HEAD && tg_buf_len(&c->out) == 0 &&
                                     (tg_buf_len(&c->in) == 0 || drop_partial))) {
        conn_free(c);
        return true;
    }
    if (c->state == ST_HEAD && (tg_buf_len(&c->in) == 0 || drop_partial)) {
        tg_buf_consume(c->loop, &c->in, tg_buf_len(&c->in));
        c->state = ST_CLOSING; /* once the answers are out */
        kick(c);
    }
    return false;
}

static void close_now(tg_proxy_conn_t *pc)
{
    conn_free(from_pc(pc));
}

static const tg_proxy_conn_ops_t h1_conn_ops = {
    .wind_down = wind_down,
    .close_now = close_now,
};

void tg_h1_accept(tg_proxy_conns_t *set, int fd, const struct sockaddr *peer, socklen_t peer_len,
                  tg_generation_t *gen, const tg_listener_rt_t *listener)
{
    SSL *ssl = SSL_new(listener->tls.ctx[0]);
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        close(fd);
        /* The acceptor counted it; nobody else will uncount it. */
        atomic_fetch_sub_explicit(set->process_conns, 1, memory_order_relaxed);
        return;
    }
    SSL_set_accept_state(ssl);
    tg_h1conn_t *c = tg_calloc(1, sizeof(*c));
    c->set = set;
    c->loop = set->loop;
    c->fd = fd;
    c->ssl = ssl;
    c->state = ST_HANDSHAKE;
    tg_proxy_conn_add(set, &c->pc, &h1_conn_ops, gen, listener);
    tg_client_info_t *ci = &c->pc.client;
    ci->listener_port = tg_addr_port((const struct sockaddr *)&listener->conf->addr);
    ci->sni = "";
    ci->tls_version = "";
    ci->cipher = "";
    tg_client_info_set_peer(ci, peer);
    event_assign(&c->rev, c->loop->base, fd, EV_READ | EV_PERSIST, on_io, c);
    event_assign(&c->wev, c->loop->base, fd, EV_WRITE | EV_PERSIST, on_io, c);
    evtimer_assign(&c->timer, c->loop->base, on_timer, c);
    set_timer(c, TM_HANDSHAKE);
    (void)peer_len;
    /* The ClientHello is usually there already: start without waiting for an event. */
    drive(c, true);
}
