/* The HTTP/3 frontend: nghttp3 on a QUIC connection, each request stream turned into an
 * exchange of the proxy (the same one HTTP/1 requests become), responses fed back to
 * nghttp3 from a chunk queue that lives until the client acknowledges the bytes. */
#include <stdlib.h>
#include <string.h>

#include "quic_internal.h"

#define MAX_REQ_HEADERS 128
#define MAX_RESP_FIELDS 130 /* the proxy's 128 and Alt-Svc, with room to spare */
/* Response bytes a stream queues before the exchange is asked to stop reading the
 * backend; it resumes once acknowledgements bring the queue under the low mark. */
#define OUT_HIGH (512u * 1024)
#define OUT_LOW (128u * 1024)
/* The same over all streams of a connection: a client that opens its 100 streams and
 * withholds ACKs or credit would otherwise pin 100 x OUT_HIGH of response data. */
#define CONN_OUT_HIGH (2u * 1024 * 1024)
#define CONN_OUT_LOW (1u * 1024 * 1024)
#define CHUNK_MIN (16u * 1024)

struct tg__qchunk_s {
    tg__qchunk_t *next;
    size_t len;
    size_t cap;
    uint8_t data[];
};

static tg__h3stream_t *from_ex(tg_exchange_t *ex)
{
    return TG_STRUCT_FROM_MEMBER(tg__h3stream_t, ex, ex);
}

/* The QUIC stream is credited for request body bytes the exchange took (or we dropped). */
static void consumed(tg__h3stream_t *st, size_t n)
{
    if (n == 0)
        return;
    tg__qconn_credit(st->conn, st->id, n);
}

/* ---- streams -------------------------------------------------------------------------------- */

/* A stream that waits on its client is timed like an HTTP/1 connection would be: the
 * request head within header_timeout (408 after), then request body bytes, and the client's
 * room for the response, each within idle_timeout. QUIC's own idle timeout does not cover
 * this: a client that answers PINGs keeps the connection, and its streams, alive. */
static void on_stream_timer(evutil_socket_t fd, short what, void *arg);

static void stream_arm(tg__h3stream_t *st)
{
    const tg_conf_limits_t *lim = &st->conn->pc.gen->cfg->global.limits;
    uint64_t ms = 0;
    if (st->timer_off)
        ms = 0;
    else if (!st->headers_done)
        ms = lim->header_timeout_ms;
    else if ((!st->fin && !st->body_over) || st->unacked > 0)
        ms = lim->idle_timeout_ms; /* request bytes to come, or response bytes to be acked */
    if (ms == 0)
        evtimer_del(&st->timer);
    else
        evtimer_add(&st->timer, tg_loop_timeout(st->conn->srv->conf.loop, ms));
}

/* Request body we hold but nobody will take any more: the connection's flow-control
 * credit for it is given back (ngtcp2 returns credit on a reset only for bytes it has not
 * delivered yet, and these were delivered), and the bytes dropped. */
static void drop_pending(tg__h3stream_t *st)
{
    size_t n = tg_buf_len(&st->pending);
    if (n > 0 && st->conn->qc != NULL)
        ngtcp2_conn_extend_max_offset(st->conn->qc, n);
    tg_buf_release(st->conn->srv->conf.loop, &st->pending);
}

/* Nothing more of the request body is wanted (the answer is out, or the stream is being
 * reset): what is held goes, and the client is asked to stop sending (RFC 9114 §4.1). */
static void stop_request_body(tg__h3stream_t *st, uint64_t app_error)
{
    tg__qconn_t *c = st->conn;
    if (st->body_over)
        return;
    st->body_over = true;
    drop_pending(st);
    if (!st->fin) {
        nghttp3_conn_shutdown_stream_read(c->h3, st->id);
        ngtcp2_conn_shutdown_stream_read(c->qc, st->id, app_error);
    }
}

/* The request ends here, unanswered: the exchange stops (its backend connection is not held
 * any longer), nothing more of the request is read and the stream is reset both ways. */
static void stream_abandon(tg__h3stream_t *st, uint64_t app_error)
{
    tg__qconn_t *c = st->conn;
    st->timer_off = true;
    evtimer_del(&st->timer);
    if (st->ex_active && !st->ex_done)
        tg_exchange_abort(&st->ex);
    st->ex_active = false;
    stop_request_body(st, app_error);
    ngtcp2_conn_shutdown_stream(c->qc, st->id, app_error);
}

static tg__h3stream_t *stream_new(tg__qconn_t *c, int64_t id)
{
    tg__h3stream_t *st = tg_calloc(1, sizeof(*st));
    st->conn = c;
    st->id = id;
    tg_http_fields_init(&st->fields, c->pc.gen->cfg->global.limits.max_header_bytes,
                        MAX_REQ_HEADERS);
    evtimer_assign(&st->timer, c->srv->conf.loop->base, on_stream_timer, st);
    st->next = c->streams;
    if (c->streams != NULL)
        c->streams->prev = st;
    c->streams = st;
    c->nstreams++;
    return st;
}

void tg__h3_stream_free(tg__h3stream_t *st)
{
    tg__qconn_t *c = st->conn;
    evtimer_del(&st->timer);
    if (st->ex_active && !st->ex_done)
        tg_exchange_abort(&st->ex);
    c->out_buffered -= st->unacked;
    while (st->head != NULL) {
        tg__qchunk_t *k = st->head;
        st->head = k->next;
        free(k);
    }
    drop_pending(st);
    tg_http_fields_free(&st->fields);
    if (c->h3 != NULL)
        nghttp3_conn_set_stream_user_data(c->h3, st->id, NULL);
    if (c->qc != NULL) /* NGTCP2_ERR_STREAM_NOT_FOUND once ngtcp2 closed it: as good */
        (void)ngtcp2_conn_set_stream_user_data(c->qc, st->id, NULL);
    if (st->prev != NULL)
        st->prev->next = st->next;
    else
        c->streams = st->next;
    if (st->next != NULL)
        st->next->prev = st->prev;
    c->nstreams--;
    free(st);
    if (c->goaway_sent && c->nstreams == 0)
        tg__qconn_kick(c); /* draining: the flush closes the connection */
}

/* ---- response: the proxy's callbacks ------------------------------------------------------ */

static nghttp3_ssize read_data(nghttp3_conn *h3, int64_t stream_id, nghttp3_vec *vec, size_t veccnt,
                               uint32_t *pflags, void *conn_user_data, void *stream_user_data)
{
    (void)h3;
    (void)stream_id;
    (void)conn_user_data;
    tg__h3stream_t *st = stream_user_data;
    size_t n = 0;
    if (st == NULL)
        return NGHTTP3_ERR_CALLBACK_FAILURE;
    while (st->rd != NULL && n < veccnt) {
        if (st->rd_off < st->rd->len) {
            vec[n].base = st->rd->data + st->rd_off;
            vec[n].len = st->rd->len - st->rd_off;
            n++;
            st->rd_off = st->rd->len;
        }
        if (st->rd->next == NULL)
            break;
        st->rd = st->rd->next;
        st->rd_off = 0;
    }
    bool all_offered = st->rd == NULL || (st->rd->next == NULL && st->rd_off == st->rd->len);
    if (st->resp_eof && all_offered)
        *pflags |= NGHTTP3_DATA_FLAG_EOF;
    else if (n == 0)
        return NGHTTP3_ERR_WOULDBLOCK;
    return (nghttp3_ssize)n;
}

static void queue_bytes(tg__h3stream_t *st, const char *data, size_t len)
{
    while (len > 0) {
        tg__qchunk_t *t = st->tail;
        if (t == NULL || t->len == t->cap) {
            size_t cap = len > CHUNK_MIN ? len : CHUNK_MIN;
            tg__qchunk_t *k = tg_malloc(sizeof(*k) + cap);
            k->next = NULL;
            k->len = 0;
            k->cap = cap;
            if (t != NULL)
                t->next = k;
            else
                st->head = k;
            if (st->rd == NULL) {
                st->rd = k;
                st->rd_off = 0;
            }
            st->tail = t = k;
        }
        size_t take = t->cap - t->len < len ? t->cap - t->len : len;
        memcpy(t->data + t->len, data, take);
        t->len += take;
        data += take;
        len -= take;
        st->unacked += take;
        st->conn->out_buffered += take;
    }
}

/* Streams stopped by the connection's bound start again once it has drained enough; a
 * resumed exchange may finish and free only its own stream, so `next` is taken first. */
static void resume_blocked(tg__qconn_t *c)
{
    tg__h3stream_t *next;
    for (tg__h3stream_t *st = c->streams; st != NULL && c->out_buffered < CONN_OUT_LOW; st = next) {
        next = st->next;
        if (st->out_blocked && st->unacked < OUT_LOW) {
            st->out_blocked = false;
            tg_exchange_resume_response(&st->ex);
        }
    }
}

static int acked_data(nghttp3_conn *h3, int64_t stream_id, uint64_t datalen, void *conn_user_data,
                      void *stream_user_data)
{
    (void)h3;
    (void)stream_id;
    (void)conn_user_data;
    tg__h3stream_t *st = stream_user_data;
    if (st == NULL)
        return 0;
    size_t gone = datalen < st->unacked ? (size_t)datalen : st->unacked;
    st->unacked -= gone;
    st->conn->out_buffered -= gone;
    while (datalen > 0 && st->head != NULL) {
        tg__qchunk_t *k = st->head;
        size_t left = k->len - st->head_acked;
        size_t take = datalen < left ? (size_t)datalen : left;
        st->head_acked += take;
        datalen -= take;
        if (st->head_acked < k->len)
            break;
        if (k == st->rd) {
            /* Everything written was acked: keep the chunk for the next bytes. */
            if (st->rd_off == k->len && k->next == NULL) {
                k->len = 0;
                st->rd_off = 0;
                st->head_acked = 0;
            }
            break;
        }
        st->head = k->next;
        st->head_acked = 0;
        if (st->tail == k)
            st->tail = NULL;
        free(k);
    }
    tg__qconn_t *c = st->conn;
    if (st->out_blocked && st->unacked < OUT_LOW && c->out_buffered < CONN_OUT_LOW) {
        st->out_blocked = false;
        tg_exchange_resume_response(&st->ex);
    }
    stream_arm(st);
    resume_blocked(c);
    return 0;
}

static void fe_send_head(tg_exchange_t *ex, int status, const tg_http_header_t *hs, size_t n,
                         int64_t content_length)
{
    tg__h3stream_t *st = from_ex(ex);
    tg__qconn_t *c = st->conn;
    nghttp3_nv nva[MAX_RESP_FIELDS + 2];
    char lower[8192]; /* names lowercased here; most need no copy */
    size_t lower_used = 0;
    char status_text[4], clen_text[24];
    size_t k = 0;
    snprintf(status_text, sizeof status_text, "%03d", status);
    nva[k++] = (nghttp3_nv){(uint8_t *)":status", (uint8_t *)status_text, 7, 3, 0};
    if (content_length >= 0) {
        int m = snprintf(clen_text, sizeof clen_text, "%lld", (long long)content_length);
        nva[k++] =
            (nghttp3_nv){(uint8_t *)"content-length", (uint8_t *)clen_text, 14, (size_t)m, 0};
    }
    /* The proxy has dropped hop-by-hop fields already, and Content-Length unless the
     * answer has no body (a HEAD answer keeps the backend's). */
    for (size_t i = 0; i < n && k < TG_ARRAY_SIZE(nva); i++) {
        /* HTTP/3 field names are lowercase (RFC 9114 §4.2); HTTP/1 backends send any case.
         * A mixed-case name that no longer fits the copy is dropped, never sent as is: the
         * client would fail the whole response for it. */
        const char *name = hs[i].name;
        bool upper = false;
        for (size_t j = 0; j < hs[i].name_len && !upper; j++)
            upper = name[j] >= 'A' && name[j] <= 'Z';
        if (upper) {
            if (hs[i].name_len > sizeof lower - lower_used)
                continue;
            char *l = lower + lower_used;
            for (size_t j = 0; j < hs[i].name_len; j++)
                l[j] = name[j] >= 'A' && name[j] <= 'Z' ? (char)(name[j] + 32) : name[j];
            lower_used += hs[i].name_len;
            name = l;
        }
        nva[k++] = (nghttp3_nv){(uint8_t *)name, (uint8_t *)hs[i].value, hs[i].name_len,
                                hs[i].value_len, 0};
    }
    static const nghttp3_data_reader reader = {read_data};
    /* -2: no body at all (HEAD, 204, 304): the HEADERS frame ends the stream. */
    int rv =
        nghttp3_conn_submit_response(c->h3, st->id, nva, k, content_length == -2 ? NULL : &reader);
    if (rv != 0) {
        stream_abandon(st, NGHTTP3_H3_INTERNAL_ERROR); /* the backend is not read for nobody */
    }
    tg__qconn_kick(c);
}

static bool fe_send_body(tg_exchange_t *ex, const char *data, size_t len)
{
    tg__h3stream_t *st = from_ex(ex);
    tg__qconn_t *c = st->conn;
    if (len == 0)
        return true;
    queue_bytes(st, data, len);
    nghttp3_conn_resume_stream(c->h3, st->id);
    tg__qconn_kick(c);
    if (st->unacked >= OUT_HIGH || c->out_buffered >= CONN_OUT_HIGH) {
        st->out_blocked = true;
        stream_arm(st);
        return false;
    }
    return true;
}

static void fe_finish(tg_exchange_t *ex, bool ok)
{
    tg__h3stream_t *st = from_ex(ex);
    tg__qconn_t *c = st->conn;
    st->ex_done = true;
    st->out_blocked = false;
    if (ok) {
        st->resp_eof = true;
        nghttp3_conn_resume_stream(c->h3, st->id);
        /* An answer before the whole request (an early 413, an error of ours): the rest
         * of the body is not wanted. */
        stop_request_body(st, NGHTTP3_H3_NO_ERROR);
    } else {
        /* A truncated answer must look truncated: reset the stream, never end it. */
        stop_request_body(st, NGHTTP3_H3_INTERNAL_ERROR);
        ngtcp2_conn_shutdown_stream(c->qc, st->id, NGHTTP3_H3_INTERNAL_ERROR);
    }
    stream_arm(st);
    tg__qconn_kick(c);
}

static void push_body(tg__h3stream_t *st);

static void fe_want_body(tg_exchange_t *ex)
{
    tg__h3stream_t *st = from_ex(ex);
    push_body(st);
    tg__qconn_kick(st->conn);
}

static const tg_frontend_ops_t h3_ops = {
    .send_head = fe_send_head,
    .send_body = fe_send_body,
    .finish = fe_finish,
    .want_body = fe_want_body,
};

/* ---- request --------------------------------------------------------------------------------- */

/* Request body waiting in `pending` (the exchange refused it earlier) goes first; the end
 * of the stream is passed on once nothing is left. The exchange may ask for more body
 * from inside tg_exchange_write_body (its backend socket drained at once): that request
 * is noted and served by the loop here, never by a nested call that would hand the same
 * pending bytes over twice. */
static void push_body(tg__h3stream_t *st)
{
    if (!st->started || st->rejected || st->ex_done || st->body_over)
        return;
    if (st->pushing) {
        st->push_again = true;
        return;
    }
    tg_loop_t *loop = st->conn->srv->conf.loop;
    st->pushing = true;
    do {
        st->push_again = false;
        size_t len = tg_buf_len(&st->pending);
        if (len > 0) {
            size_t took = tg_exchange_write_body(&st->ex, tg_buf_head(&st->pending), len, st->fin);
            if (st->body_over)
                break; /* the exchange ended inside: stop_request_body credited it all */
            tg_buf_consume(loop, &st->pending, took);
            consumed(st, took);
            if (took == len)
                st->body_over = st->fin;
        } else if (st->fin) {
            st->body_over = true;
            tg_exchange_write_body(&st->ex, "", 0, true);
        }
    } while (st->push_again && !st->body_over && !st->ex_done);
    st->pushing = false;
}

static void take_body(tg__h3stream_t *st, const uint8_t *data, size_t len)
{
    tg_loop_t *loop = st->conn->srv->conf.loop;
    if (st->rejected || st->ex_done || st->body_over) {
        consumed(st, len); /* nobody wants it: credit and forget */
        return;
    }
    size_t took = 0;
    if (tg_buf_len(&st->pending) == 0) {
        st->pushing = true;
        took = tg_exchange_write_body(&st->ex, (const char *)data, len, false);
        st->pushing = false;
        if (st->body_over) {
            consumed(st, len); /* the exchange ended inside: the rest is nobody's */
            return;
        }
    }
    consumed(st, took);
    if (took < len) {
        /* Bounded by the stream window: we credit only what the exchange takes. */
        size_t need = tg_buf_len(&st->pending) + (len - took);
        if (st->pending.data == NULL || need > st->pending.cap) {
            /* Doubling, not the exact need: growing by one DATA frame at a time re-copied
             * the whole pending body for every frame. */
            size_t cap = st->pending.cap * 2;
            cap = cap > need ? cap : need;
            tg_buf_grow(loop, &st->pending, cap > TG_BUF_SIZE ? cap : TG_BUF_SIZE);
        }
        tg_buf_append(loop, &st->pending, data + took, len - took);
    }
    if (st->push_again)
        push_body(st); /* the exchange drained while taking these bytes */
}

static int begin_headers(nghttp3_conn *h3, int64_t stream_id, void *conn_user_data,
                         void *stream_user_data)
{
    (void)stream_user_data;
    tg__qconn_t *c = conn_user_data;
    tg__h3stream_t *st = stream_new(c, stream_id);
    nghttp3_conn_set_stream_user_data(h3, stream_id, st);
    ngtcp2_conn_set_stream_user_data(c->qc, stream_id, st); /* for the client's resets */
    stream_arm(st);
    return 0;
}

static int recv_header(nghttp3_conn *h3, int64_t stream_id, int32_t token, nghttp3_rcbuf *name,
                       nghttp3_rcbuf *value, uint8_t flags, void *conn_user_data,
                       void *stream_user_data)
{
    (void)h3;
    (void)stream_id;
    (void)token;
    (void)flags;
    (void)conn_user_data;
    tg__h3stream_t *st = stream_user_data;
    if (st == NULL || st->headers_done)
        return 0;
    nghttp3_vec nv = nghttp3_rcbuf_get_buf(name), vv = nghttp3_rcbuf_get_buf(value);
    tg_http_fields_add(&st->fields, (const char *)nv.base, nv.len, (const char *)vv.base, vv.len);
    return 0;
}

/* Turn the stored fields into a request head and start the exchange. body: how the request
 * body is framed upstream. */
static void start_exchange(tg__h3stream_t *st, tg_http_body_t body)
{
    tg__qconn_t *c = st->conn;
    st->started = true;
    st->ex_active = true;
    if (st->rejected) {
        tg_exchange_reject(&st->ex, &h3_ops, &c->pc, st->reject_status);
        return;
    }
    st->req.body = body;
    tg_exchange_start(&st->ex, &h3_ops, &c->pc, &st->req);
}

/* The head is complete: checked, turned into a request, and started when its framing is
 * known. */
static void take_head(tg__h3stream_t *st)
{
    int status = tg_http_fields_finish(&st->fields, &st->req);
    if (status != 0) {
        st->rejected = true;
        st->reject_status = status;
        start_exchange(st, TG_HTTP_BODY_NONE);
        return;
    }
    bool has_length = false;
    for (size_t i = 0; i < st->req.nheaders && !has_length; i++)
        has_length = st->req.headers[i].id == TG_HDR_CONTENT_LENGTH;
    if (st->fin)
        start_exchange(st, TG_HTTP_BODY_NONE);
    else if (has_length)
        start_exchange(st, st->req.body);
    /* else: wait for DATA (chunked upstream) or the end of the stream (no body). */
}

static int end_headers(nghttp3_conn *h3, int64_t stream_id, int fin, void *conn_user_data,
                       void *stream_user_data)
{
    (void)h3;
    (void)stream_id;
    (void)conn_user_data;
    tg__h3stream_t *st = stream_user_data;
    if (st == NULL || st->headers_done)
        return 0; /* a 408 went out already */
    st->headers_done = true;
    st->fin = fin != 0;
    take_head(st);
    stream_arm(st);
    return 0;
}

static int recv_data(nghttp3_conn *h3, int64_t stream_id, const uint8_t *data, size_t datalen,
                     void *conn_user_data, void *stream_user_data)
{
    (void)h3;
    (void)stream_id;
    (void)conn_user_data;
    tg__h3stream_t *st = stream_user_data;
    if (st == NULL)
        return 0;
    if (!st->started)
        start_exchange(st, TG_HTTP_BODY_CHUNKED);
    take_body(st, data, datalen);
    stream_arm(st);
    return 0;
}

static int deferred_consume(nghttp3_conn *h3, int64_t stream_id, size_t n, void *conn_user_data,
                            void *stream_user_data)
{
    (void)h3;
    tg__qconn_t *c = conn_user_data;
    (void)stream_user_data;
    tg__qconn_credit(c, stream_id, n);
    return 0;
}

static int end_stream(nghttp3_conn *h3, int64_t stream_id, void *conn_user_data,
                      void *stream_user_data)
{
    (void)h3;
    (void)stream_id;
    (void)conn_user_data;
    tg__h3stream_t *st = stream_user_data;
    if (st == NULL)
        return 0;
    st->fin = true;
    if (!st->started)
        start_exchange(st, TG_HTTP_BODY_NONE);
    else if (!st->rejected)
        push_body(st);
    stream_arm(st);
    return 0;
}

static void on_stream_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    tg__h3stream_t *st = arg;
    tg__qconn_t *c = st->conn;
    st->timer_off = true;
    if (!st->headers_done) {
        /* slowloris over HTTP/3: a head that does not finish in time gets a 408, and
         * nothing more of the request is read. */
        st->headers_done = true;
        st->rejected = true;
        st->reject_status = 408;
        stop_request_body(st, NGHTTP3_H3_REQUEST_INCOMPLETE);
        start_exchange(st, TG_HTTP_BODY_NONE);
    } else {
        /* The client stopped sending its request, or stopped taking the response. */
        stream_abandon(st, NGHTTP3_H3_REQUEST_INCOMPLETE);
    }
    tg__qconn_kick(c);
}

/* Rapid reset (CVE-2023-44487 in HTTP/2 terms): a request costs the client one frame to
 * open and one to cancel, and us a backend request; the stream limit does not bound that,
 * as a cancelled stream frees its slot at once. So costly cancels are rate-limited by a
 * token bucket, by time alone (completions earn nothing: an attacker could pay with cheap
 * requests): a burst of twice the stream limit (a browser leaving a page cancels at most
 * all its streams at once), refilled at a quarter of the limit a second (32/s for 128,
 * nghttp2's rate). Run dry, the connection is closed. */
#define CANCEL_UNIT 4000 /* one cancel; a stream limit of S refills S units a millisecond */

static void count_cancel(tg__qconn_t *c)
{
    uint64_t s = c->pc.gen->cfg->global.limits.max_concurrent_streams;
    uint64_t burst = 2 * s * CANCEL_UNIT, now = tg_now_ms();
    if (!c->cancel_started) {
        c->cancel_started = true;
        c->cancel_tokens = burst;
    } else if (now > c->cancel_ms) {
        uint64_t add = (now - c->cancel_ms) * s;
        c->cancel_tokens = add >= burst - c->cancel_tokens ? burst : c->cancel_tokens + add;
    }
    c->cancel_ms = now;
    if (c->cancel_tokens < CANCEL_UNIT)
        c->excessive = true;
    else
        c->cancel_tokens -= CANCEL_UNIT;
}

/* A cancel that costs: the exchange is at a backend (connecting, sending, or waiting on
 * the head) and nothing of its answer has come back. One after the answer started (a page
 * left while a download streams) is a client's right, and its backend work ends at once. */
static bool cancel_is_costly(const tg__h3stream_t *st)
{
    return st->ex_active && !st->ex_done && !st->rejected && st->ex.state >= TG_EX_CONNECTING &&
           st->ex.state <= TG_EX_WAIT_HEAD;
}

void tg__h3_stream_reset(tg__qconn_t *c, tg__h3stream_t *st)
{
    /* Before its HEADERS; or the request is whole, or answered already (our STOP_SENDING
     * after an early answer makes the client reset): the answer still goes out. */
    if (st == NULL || st->conn != c || st->fin || st->ex_done)
        return;
    bool costly = cancel_is_costly(st);
    stream_abandon(st, NGHTTP3_H3_REQUEST_CANCELLED);
    tg__qconn_kick(c);
    if (costly)
        count_cancel(c);
}

void tg__h3_stream_write_shut(tg__qconn_t *c, int64_t stream_id)
{
    tg__h3stream_t *st = c->streams;
    while (st != NULL && st->id != stream_id)
        st = st->next;
    /* Still running: nobody can read its answer, so its backend work ends here. Never a
     * costly cancel: only an answer under way has anything to write. */
    if (st != NULL && st->ex_active && !st->ex_done)
        stream_abandon(st, NGHTTP3_H3_REQUEST_CANCELLED);
}

static int stream_close(nghttp3_conn *h3, int64_t stream_id, uint64_t app_error_code,
                        void *conn_user_data, void *stream_user_data)
{
    (void)h3;
    (void)stream_id;
    (void)app_error_code;
    (void)conn_user_data;
    tg__h3stream_t *st = stream_user_data;
    if (st == NULL)
        return 0;
    /* Closed both ways while the exchange runs: only the client's STOP_SENDING (or reset)
     * does that, as our own resets end the exchange first. */
    if (cancel_is_costly(st))
        count_cancel(st->conn);
    tg__h3_stream_free(st);
    return 0;
}

static int stop_sending(nghttp3_conn *h3, int64_t stream_id, uint64_t app_error_code,
                        void *conn_user_data, void *stream_user_data)
{
    (void)h3;
    (void)stream_user_data;
    tg__qconn_t *c = conn_user_data;
    ngtcp2_conn_shutdown_stream_read(c->qc, stream_id, app_error_code);
    return 0;
}

static int reset_stream(nghttp3_conn *h3, int64_t stream_id, uint64_t app_error_code,
                        void *conn_user_data, void *stream_user_data)
{
    (void)h3;
    (void)stream_user_data;
    tg__qconn_t *c = conn_user_data;
    ngtcp2_conn_shutdown_stream_write(c->qc, stream_id, app_error_code);
    return 0;
}

const nghttp3_callbacks tg__h3_callbacks = {
    .acked_stream_data = acked_data,
    .stream_close = stream_close,
    .recv_data = recv_data,
    .deferred_consume = deferred_consume,
    .begin_headers = begin_headers,
    .recv_header = recv_header,
    .end_headers = end_headers,
    .stop_sending = stop_sending,
    .end_stream = end_stream,
    .reset_stream = reset_stream,
};

int tg__h3_open(tg__qconn_t *c)
{
    if (c->h3 != NULL)
        return 0;
    nghttp3_settings settings;
    nghttp3_settings_default(&settings);
    settings.qpack_max_dtable_capacity = 4096;
    /* nghttp3 0.8 keeps a QPACK-blocked stream the client resets (and our stream with it)
     * until the encoder unblocks it or the connection ends; this bounds how many. */
    settings.qpack_blocked_streams = 16;
    settings.max_field_section_size = c->pc.gen->cfg->global.limits.max_header_bytes;
    if (nghttp3_conn_server_new(&c->h3, &tg__h3_callbacks, &settings, nghttp3_mem_default(), c) !=
        0)
        return -1;
    nghttp3_conn_set_max_client_streams_bidi(c->h3,
                                             c->pc.gen->cfg->global.limits.max_concurrent_streams);
    int64_t ctrl, qenc, qdec;
    if (ngtcp2_conn_open_uni_stream(c->qc, &ctrl, NULL) != 0 ||
        nghttp3_conn_bind_control_stream(c->h3, ctrl) != 0 ||
        ngtcp2_conn_open_uni_stream(c->qc, &qenc, NULL) != 0 ||
        ngtcp2_conn_open_uni_stream(c->qc, &qdec, NULL) != 0 ||
        nghttp3_conn_bind_qpack_streams(c->h3, qenc, qdec) != 0)
        return -1;
    return 0;
}
