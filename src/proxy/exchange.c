/* The exchange state machine: connect (or reuse), send the head and stream the body up,
 * read the response head, stream the body down with the frontend's backpressure, and
 * hand the connection back to the pool when both directions ended cleanly. */
#include <errno.h>
#include <string.h>

#include "tollgate/core.h"
#include "proxy_internal.h"

#define MAX_RESP_HEADERS 128
#define FLUSH_AT 4096 /* request body bytes sent at once rather than at the loop's next turn */

static void up_event(tg_upconn_t *uc, tg_up_event_t ev, int err, void *arg);

/* ---- endings ------------------------------------------------------------------------- */

static void release_upstream(tg_exchange_t *ex, bool reusable)
{
    if (ex->up != NULL) {
        tg_upconn_release(ex->up, reusable);
        ex->up = NULL;
    }
    if (ex->server != NULL) {
        tg_backend_done(ex->server);
        ex->server = NULL;
    }
}

/* The route: the connection's listener in the worker's newest generation, so that a
 * kept-alive connection's next request follows a reload's new backends (SPEC §7), or the
 * connection's own listener when the newest generation removed it. */
static void route(tg_exchange_t *ex, tg_proxy_conn_t *pc)
{
    tg_generation_t *cur = *pc->_set->current;
    const tg_listener_rt_t *l = cur == pc->gen ? NULL : tg_generation_listener(cur, pc->lst->conf);
    if (l != NULL) {
        ex->_route_gen = tg_generation_ref(cur);
        ex->route = l;
    } else {
        ex->route = pc->lst;
    }
    ex->backend = ex->route->backend;
}

/* Buffers go and the line is logged; the route goes last, after the access log has read
 * its listener's name. */
static void cleanup(tg_exchange_t *ex)
{
    tg_buf_release(ex->loop, &ex->out);
    tg_buf_release(ex->loop, &ex->head_copy);
    tg__accesslog_write(ex);
    tg_generation_unref(ex->_route_gen);
    ex->_route_gen = NULL;
}

/* The last thing every path does: the frontend may start its next exchange in the same
 * struct from inside finish. */
static void finish(tg_exchange_t *ex, bool ok)
{
    ex->state = TG_EX_DONE;
    cleanup(ex);
    ex->fe->finish(ex, ok);
}

static void send_text(tg_exchange_t *ex, int status, const char *body)
{
    static const tg_http_header_t ctype = {"Content-Type", 12, "text/plain", 10, TG_HDR_OTHER};
    size_t len = strlen(body);
    ex->status = status;
    ex->fe->send_head(ex, status, &ctype, 1, (int64_t)len);
    if (ex->state != TG_EX_DONE && !ex->head_request) {
        ex->fe->send_body(ex, body, len);
        ex->bytes_out += len;
    }
}

void tg_exchange_fail(tg_exchange_t *ex, int status)
{
    char body[64];
    release_upstream(ex, false);
    if (ex->resp_head_sent) {
        finish(ex, false);
        return;
    }
    snprintf(body, sizeof(body), "%d %s\n", status, tg_http_reason(status));
    send_text(ex, status, body);
    if (ex->state == TG_EX_DONE)
        return; /* aborted by the frontend in send_head */
    /* The rest of the request body, if any, has nowhere to go: the frontend closes. */
    finish(ex, true);
}

/* What every exchange starts from: nothing of the previous one in the same struct. */
static void begin(tg_exchange_t *ex, const tg_frontend_ops_t *fe, tg_proxy_conn_t *pc)
{
    memset(ex, 0, sizeof(*ex));
    ex->fe = fe;
    ex->loop = pc->_set->loop;
    ex->client = &pc->client;
    route(ex, pc);
}

void tg_exchange_reject(tg_exchange_t *ex, const tg_frontend_ops_t *fe, tg_proxy_conn_t *pc,
                        int status)
{
    begin(ex, fe, pc);
    ex->start_ms = tg_now_ms();
    ex->state = TG_EX_BODY;
    ex->server_text = "";
    tg_exchange_fail(ex, status);
}

void tg_exchange_abort(tg_exchange_t *ex)
{
    if (ex->state == TG_EX_DONE || ex->state == TG_EX_IDLE)
        return;
    release_upstream(ex, false);
    if (ex->status == 0)
        ex->status = 499; /* nginx's word for "the client closed first" */
    ex->state = TG_EX_DONE;
    cleanup(ex);
}

static void complete(tg_exchange_t *ex)
{
    bool reusable = ex->resp_keep_alive && ex->resp_body != TG_HTTP_BODY_UNTIL_CLOSE &&
                    ex->req_done && !ex->req_refused && tg_buf_len(&ex->out) == 0;
    release_upstream(ex, reusable);
    finish(ex, true);
}

/* ---- connecting and sending --------------------------------------------------------- */

static void connect_upstream(tg_exchange_t *ex);

static void refill_head(tg_exchange_t *ex)
{
    tg_buf_release(ex->loop, &ex->out);
    tg_buf_grow(ex->loop, &ex->out, ex->head_copy.cap);
    tg_buf_append(ex->loop, &ex->out, tg_buf_head(&ex->head_copy), tg_buf_len(&ex->head_copy));
}

/* Carry out a verdict that sends the request again. false: nowhere left to send it. */
static bool send_again(tg_exchange_t *ex, tg_up_verdict_t v)
{
    if (v == TG_UP_AGAIN) {
        tg_upconn_release(ex->up, false);
        ex->up = NULL;
    } else {
        release_upstream(ex, false);
        ex->server = tg_backend_pick(ex->backend, ex->attempt.tried);
        if (ex->server == NULL)
            return false;
        ex->server_text = ex->server->conf->text;
    }
    if (ex->attempt.sent)
        refill_head(ex); /* the verdict allows it only when the whole head was kept */
    connect_upstream(ex);
    return true;
}

/* A try at the server failed. Before the response head, upstream's verdict says whether
 * it counts against the server and whether the request may go again (SPEC §5); after it,
 * the client sees a truncated answer. */
static void upstream_failed(tg_exchange_t *ex, tg_up_failure_t what, int err, const char *why)
{
    tg_log_warn("backend \"%s\" server %s: %s", ex->backend->conf->id, ex->server_text, why);
    bool timeout = what == TG_UP_FAIL_SILENT || (what == TG_UP_FAIL_CONNECT && err == ETIMEDOUT);
    if (!ex->resp_head_sent) {
        /* Whole means delivered: a server that answers early and closes without reading
         * an upload (an early 413) failed nothing. */
        ex->attempt.req_done = ex->req_done && tg_buf_len(&ex->out) == 0;
        ex->attempt.resendable = ex->idempotent && ex->head_copy.data != NULL;
        tg_up_verdict_t v =
            tg_upstream_verdict(ex->backend, ex->server, ex->up, what, err, &ex->attempt);
        if (v != TG_UP_GIVE_UP && send_again(ex, v))
            return;
    }
    tg_exchange_fail(ex, timeout ? 504 : 502);
}

/* Whether we wait on the backend (it has request bytes to take, or the whole request and
 * a client ready for the answer), in every state: a head that came early must not leave
 * the rest of the exchange untimed, nor time a client's pause in its upload. */
static void wait_update(tg_exchange_t *ex)
{
    if (ex->up != NULL)
        tg_upconn_wait(ex->up, !ex->paused &&
                                   (tg_buf_len(&ex->out) > 0 || ex->req_done || ex->req_refused));
}

static void arm(tg_exchange_t *ex)
{
    short what = 0;
    if (!ex->paused)
        what |= EV_READ;
    if (tg_buf_len(&ex->out) > 0)
        what |= EV_WRITE;
    tg_upconn_want(ex->up, what);
}

static void process_response(tg_exchange_t *ex);

/* A 408 as the first thing a pooled connection says, to a request that may go again: the
 * server timed the idle connection out as we took it, and this is its goodbye to the
 * connection, not an answer to the request. It goes again on a fresh connection. */
static bool is_goodbye(const tg_exchange_t *ex, int status)
{
    return status == 408 && tg_upconn_reused(ex->up) && !ex->interim_seen && ex->idempotent &&
           ex->head_copy.data != NULL;
}

/* Drop the interim (1xx) heads at the front of `in`. Returns the status of the final head
 * there, or 0 when none is whole (or it does not parse, or is an upgrade). */
static int final_head_status(tg_exchange_t *ex)
{
    tg_buf_t *in = &ex->up->in;
    for (;;) {
        if (tg_buf_len(in) == 0)
            return 0; /* and no head of a released (NULL) buffer */
        size_t scanned = 0;
        size_t end = tg_http_head_end(tg_buf_head(in), tg_buf_len(in), &scanned);
        if (end == 0)
            return 0;
        tg_http_header_t hs[MAX_RESP_HEADERS];
        tg_http_response_t resp;
        if (tg_http_parse_response(tg_buf_head(in), end, &resp, hs, MAX_RESP_HEADERS,
                                   ex->head_request) < 0)
            return 0;
        if (resp.status >= 200)
            return resp.status;
        if (resp.status == 101)
            return 0; /* we did not ask for an upgrade */
        tg_buf_consume(ex->loop, in, end);
        ex->interim_seen = true;
    }
}

/* The backend answered and stopped taking the request: the rest of the body is dropped
 * (the frontend, if held back, is told to send it on), the connection is not reused, and
 * its end does not end a body framed by the close. Returns false when the frontend gave the
 * exchange up meanwhile (a body longer than announced). */
static bool refuse_rest(tg_exchange_t *ex)
{
    ex->req_refused = true;
    ex->up_reset = true; /* a failed send means a reset here: we never shut our side */
    tg_buf_release(ex->loop, &ex->out);
    wait_update(ex);
    arm(ex);
    if (ex->fe_blocked) {
        ex->fe_blocked = false;
        ex->fe->want_body(ex);
        if (ex->state == TG_EX_DONE)
            return false;
    }
    return true;
}

/* The backend stopped taking the request (EPIPE, ECONNRESET), but it may have answered
 * first, as a server refusing an upload does (an early 413). An answer under way goes on
 * being read; a final head already in the socket goes to the client instead of a 502.
 * Returns whether there was an answer. Not taken: one before any byte of ours, or a
 * pooled connection's goodbye (is_goodbye), which the verdict retries. */
static bool take_early_answer(tg_exchange_t *ex)
{
    if (!ex->attempt.sent)
        return false;
    if (ex->resp_head_sent) {
        refuse_rest(ex); /* the rest of the answer is in the socket or coming */
        return true;
    }
    while (tg_upconn_recv(ex->up) > 0)
        ;
    int status = final_head_status(ex);
    if (status == 0)
        return false;
    if (is_goodbye(ex, status)) {
        tg_upconn_drop_goodbye(ex->up);
        return false;
    }
    ex->state = TG_EX_WAIT_HEAD;
    if (refuse_rest(ex))
        process_response(ex); /* may end the exchange: nothing after it */
    return true;
}

static void flush_out(tg_exchange_t *ex)
{
    while (tg_buf_len(&ex->out) > 0) {
        ssize_t n = tg_upconn_send(ex->up, tg_buf_head(&ex->out), tg_buf_len(&ex->out));
        if (n < 0) {
            int err = errno;
            if ((err == EPIPE || err == ECONNRESET) && take_early_answer(ex))
                return;
            upstream_failed(ex, TG_UP_FAIL_BROKEN, err, strerror(err));
            return;
        }
        if (n == 0)
            break;
        tg_buf_consume(ex->loop, &ex->out, (size_t)n);
        ex->attempt.sent = true;
    }
    /* The response timeout measures the backend's silence (SPEC §5): while the request
     * goes up it runs from the last byte the backend took, and not at all while we wait
     * for the client's next bytes (the frontend times the client). */
    if (ex->state == TG_EX_SENDING && tg_buf_len(&ex->out) == 0 && ex->req_done)
        ex->state = TG_EX_WAIT_HEAD;
    wait_update(ex);
    arm(ex);
    if (ex->fe_blocked && tg_buf_len(&ex->out) < TG_BUF_SIZE / 2) {
        ex->fe_blocked = false;
        ex->fe->want_body(ex);
    }
}

static void connect_upstream(tg_exchange_t *ex)
{
    ex->attempt.sent = false;
    ex->interim_seen = false;
    ex->up = tg_upconn_get(ex->loop, ex->backend, ex->server, up_event, ex);
    if (ex->up == NULL) {
        int err = errno;
        char why[96];
        snprintf(why, sizeof(why), "connect failed: %s", strerror(err));
        upstream_failed(ex, TG_UP_FAIL_CONNECT, err, why);
        return;
    }
    if (tg_upconn_connected(ex->up)) {
        ex->state = TG_EX_SENDING;
        flush_out(ex);
        return;
    }
    ex->state = TG_EX_CONNECTING;
}

/* ---- receiving ----------------------------------------------------------------------- */

#define HEAD_ABORTED (-2)
#define HEAD_GOODBYE (-3) /* is_goodbye: no answer, the connection was going */

/* Returns the head length consumed, 0 when more is needed, -1 on a bad head,
 * HEAD_ABORTED when the frontend gave the exchange up while taking the head, HEAD_GOODBYE
 * for a pooled connection's goodbye. */
static int take_head(tg_exchange_t *ex)
{
    tg_buf_t *in = &ex->up->in;
    if (tg_buf_len(in) == 0)
        return 0; /* released after a 1xx: its data is NULL */
    size_t scanned = 0;
    size_t end = tg_http_head_end(tg_buf_head(in), tg_buf_len(in), &scanned);
    if (end == 0)
        /* A head bigger than a buffer (an empty buffer, released after a 1xx, is not). */
        return tg_buf_len(in) > 0 && tg_buf_len(in) >= in->cap ? -1 : 0;

    tg_http_header_t hs[MAX_RESP_HEADERS];
    tg_http_response_t resp;
    if (tg_http_parse_response(tg_buf_head(in), end, &resp, hs, MAX_RESP_HEADERS,
                               ex->head_request) < 0)
        return -1;
    if (resp.status < 200) {
        if (resp.status == 101)
            return -1;                     /* we did not ask for an upgrade */
        tg_buf_consume(ex->loop, in, end); /* 100 Continue and friends: ours to drop */
        ex->interim_seen = true;
        return (int)end;
    }
    if (is_goodbye(ex, resp.status))
        return HEAD_GOODBYE;

    /* Kept headers go to their own array: hs must stay whole for the Connection check. */
    tg_http_header_t kept[MAX_RESP_HEADERS];
    size_t n = 0;
    bool no_body = resp.body == TG_HTTP_BODY_NONE;
    for (size_t i = 0; i < resp.nheaders; i++) {
        if (tg_http_hop_by_hop(hs[i].id) || hs[i].id == TG_HDR_ALT_SVC)
            continue;
        if (hs[i].id == TG_HDR_CONTENT_LENGTH && !no_body)
            continue; /* the frontend frames the body itself */
        if (resp.connection_other && tg_http_named_by_connection(hs, resp.nheaders, &hs[i]))
            continue;
        kept[n++] = hs[i];
    }
    const char *alt_svc = ex->route->alt_svc;
    if (alt_svc != NULL && n < MAX_RESP_HEADERS)
        kept[n++] = (tg_http_header_t){"Alt-Svc", 7, alt_svc, strlen(alt_svc), TG_HDR_ALT_SVC};

    ex->status = resp.status;
    ex->resp_body = resp.body;
    ex->resp_remaining = resp.content_length;
    ex->resp_keep_alive = resp.keep_alive;
    tg_http_chunked_init(&ex->chunked);
    int64_t clen = no_body                            ? -2
                   : resp.body == TG_HTTP_BODY_LENGTH ? (int64_t)resp.content_length
                                                      : -1;
    ex->resp_head_sent = true;
    ex->state = TG_EX_BODY;
    ex->fe->send_head(ex, resp.status, kept, n, clen);
    /* A frontend that cannot answer (HTTP/3 refusing the HEADERS) aborts the exchange
     * from inside send_head: the upstream and its buffer are gone then. */
    if (ex->state == TG_EX_DONE)
        return HEAD_ABORTED;
    tg_buf_consume(ex->loop, in, end);
    /* The head is gone from the backend's side: no retry can resend it any more. */
    tg_buf_release(ex->loop, &ex->head_copy);
    return (int)end;
}

static bool deliver(tg_exchange_t *ex, const char *data, size_t len)
{
    ex->bytes_out += len;
    if (!ex->fe->send_body(ex, data, len)) {
        /* Waiting on the client now, which the frontend times: the backend's silence
         * meanwhile is ours, not its. */
        ex->paused = true;
        if (ex->up != NULL) {
            wait_update(ex);
            arm(ex); /* and stop reading it: its buffer is full, the event would spin */
        }
        return false;
    }
    return true;
}

/* Feed the frontend what the buffer holds. Returns 1 when the response is complete, 0 to
 * wait, -1 on a broken body. */
static int pump_body(tg_exchange_t *ex)
{
    tg_buf_t *in = &ex->up->in;
    while (!ex->paused) {
        size_t avail = tg_buf_len(in);
        switch (ex->resp_body) {
        case TG_HTTP_BODY_NONE:
            return 1;
        case TG_HTTP_BODY_LENGTH: {
            if (ex->resp_remaining == 0)
                return 1;
            if (avail == 0)
                return 0;
            size_t n = avail < ex->resp_remaining ? avail : (size_t)ex->resp_remaining;
            ex->resp_remaining -= n;
            const char *p = tg_buf_head(in);
            bool more = deliver(ex, p, n);
            tg_buf_consume(ex->loop, in, n);
            if (ex->resp_remaining == 0)
                return 1;
            if (!more)
                return 0;
            break;
        }
        case TG_HTTP_BODY_CHUNKED: {
            if (avail == 0)
                return 0;
            size_t used = 0;
            const char *data;
            size_t dlen;
            int rc =
                tg_http_chunked_decode(&ex->chunked, tg_buf_head(in), avail, &used, &data, &dlen);
            if (rc == TG_CHUNKED_ERROR)
                return -1;
            bool more = rc != TG_CHUNKED_DATA || deliver(ex, data, dlen);
            tg_buf_consume(ex->loop, in, used);
            if (rc == TG_CHUNKED_DONE)
                return 1;
            if (!more)
                return 0;
            break;
        }
        case TG_HTTP_BODY_UNTIL_CLOSE:
            if (avail == 0)
                return 0;
            deliver(ex, tg_buf_head(in), avail);
            tg_buf_consume(ex->loop, in, avail);
            break;
        }
    }
    return 0;
}

static void process_response(tg_exchange_t *ex)
{
    while (!ex->resp_head_sent) {
        int rc = take_head(ex);
        if (rc == HEAD_ABORTED)
            return;
        if (rc == HEAD_GOODBYE) {
            tg_upconn_drop_goodbye(ex->up);
            upstream_failed(ex, TG_UP_FAIL_BROKEN, 0, "408 from a pooled connection it closed");
            return;
        }
        if (rc < 0) {
            upstream_failed(ex, TG_UP_FAIL_UNUSABLE, 0,
                            "response head malformed, over 16 KiB or an upgrade");
            return;
        }
        if (rc == 0)
            return;
    }
    int rc = pump_body(ex);
    if (rc < 0) {
        upstream_failed(ex, TG_UP_FAIL_UNUSABLE, 0, "bad chunked body");
    } else if (rc == 1) {
        complete(ex);
    }
}

static void read_upstream(tg_exchange_t *ex)
{
    ssize_t n = tg_upconn_recv(ex->up);
    if (n == -1 && errno == EAGAIN)
        return;
    if (n == -1 || n == TG_UPCONN_EOF) {
        if (ex->resp_head_sent && ex->resp_body == TG_HTTP_BODY_UNTIL_CLOSE && n == TG_UPCONN_EOF &&
            !ex->up_reset) {
            ex->resp_keep_alive = false;
            complete(ex);
            return;
        }
        int err = n == -1 ? errno : ex->up_reset ? ECONNRESET : 0;
        upstream_failed(ex, TG_UP_FAIL_BROKEN, err,
                        err != 0 ? strerror(err) : "connection closed before the response ended");
        return;
    }
    process_response(ex); /* n == 0 too: `in` is full, the parser has to make room */
}

static void up_event(tg_upconn_t *uc, tg_up_event_t ev, int err, void *arg)
{
    tg_exchange_t *ex = arg;
    char why[96];
    (void)uc;
    switch (ev) {
    case TG_UP_READY:
        ex->state = TG_EX_SENDING;
        flush_out(ex);
        break;
    case TG_UP_CONNECT_FAILED:
        snprintf(why, sizeof(why), "connect failed: %s", strerror(err));
        upstream_failed(ex, TG_UP_FAIL_CONNECT, err, err == ETIMEDOUT ? "connect timed out" : why);
        break;
    case TG_UP_WRITABLE:
        flush_out(ex);
        break;
    case TG_UP_READABLE:
        read_upstream(ex);
        break;
    case TG_UP_SILENT:
        snprintf(why, sizeof(why), "no response within %llu ms",
                 (unsigned long long)ex->backend->conf->response_timeout_ms);
        upstream_failed(ex, TG_UP_FAIL_SILENT, 0, why);
        break;
    }
}

/* ---- the frontend's side -------------------------------------------------------------- */

static void answer_fixed(tg_exchange_t *ex)
{
    const tg_conf_backend_t *bc = ex->backend->conf;
    tg_http_header_t ct = {"Content-Type", 12, bc->fixed_content_type,
                           strlen(bc->fixed_content_type), TG_HDR_OTHER};
    tg_http_header_t hs[2] = {ct};
    size_t n = 1;
    const char *alt_svc = ex->route->alt_svc;
    if (alt_svc != NULL)
        hs[n++] = (tg_http_header_t){"Alt-Svc", 7, alt_svc, strlen(alt_svc), TG_HDR_ALT_SVC};
    ex->status = (int)bc->fixed_status;
    bool bodyless = ex->head_request || ex->status == 204 || ex->status == 304 || ex->status < 200;
    ex->fe->send_head(ex, ex->status, hs, n, bodyless ? -2 : (int64_t)bc->fixed_body_len);
    ex->resp_head_sent = true;
    if (ex->state == TG_EX_DONE)
        return; /* aborted by the frontend in send_head */
    if (!bodyless && bc->fixed_body_len > 0) {
        ex->fe->send_body(ex, bc->fixed_body, bc->fixed_body_len);
        ex->bytes_out += bc->fixed_body_len;
    }
}

void tg_exchange_start(tg_exchange_t *ex, const tg_frontend_ops_t *fe, tg_proxy_conn_t *pc,
                       const tg_http_request_t *req)
{
    begin(ex, fe, pc);
    tg_loop_t *loop = ex->loop;
    tg_backend_t *backend = ex->backend;
    ex->start_ms = tg_now_ms();
    ex->state = TG_EX_SENDING;
    ex->req_body = req->body;
    ex->req_remaining = req->body == TG_HTTP_BODY_LENGTH ? req->content_length : 0;
    ex->req_done = req->body == TG_HTTP_BODY_NONE ||
                   (req->body == TG_HTTP_BODY_LENGTH && req->content_length == 0);
    ex->head_request = req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0;
    ex->idempotent = tg_http_method_idempotent(req->method, req->method_len);
    size_t ml = req->method_len < sizeof(ex->method) - 1 ? req->method_len : sizeof(ex->method) - 1;
    memcpy(ex->method, req->method, ml);
    size_t pl = req->target_len < sizeof(ex->path) - 1 ? req->target_len : sizeof(ex->path) - 1;
    memcpy(ex->path, req->target, pl);

    if (backend->conf->is_fixed) {
        ex->state = TG_EX_BODY;
        answer_fixed(ex);
        if (ex->state != TG_EX_DONE && ex->req_done)
            finish(ex, true);
        return;
    }
    if (tg__proxy_write_head(ex, req) != 0) {
        tg_exchange_fail(ex, 431);
        return;
    }
    if (ex->req_done) {
        tg_buf_grow(loop, &ex->head_copy, ex->out.cap);
        tg_buf_append(loop, &ex->head_copy, tg_buf_head(&ex->out), tg_buf_len(&ex->out));
    }
    ex->server = tg_backend_pick(backend, 0);
    if (ex->server == NULL) {
        tg_exchange_fail(ex, 503);
        return;
    }
    ex->server_text = ex->server->conf->text;
    connect_upstream(ex);
}

size_t tg_exchange_write_body(tg_exchange_t *ex, const char *data, size_t len, bool last)
{
    if (ex->state != TG_EX_DONE &&
        ((ex->req_body == TG_HTTP_BODY_LENGTH &&
          (len > ex->req_remaining || (last && len != ex->req_remaining))) ||
         (ex->req_body == TG_HTTP_BODY_NONE && len > 0))) {
        /* More or fewer bytes than the head's Content-Length (an HTTP/3 stream whose DATA
         * disagrees with it, say): the backend must never get a body of another length
         * than it was told, which is request smuggling. Enforced here, for every
         * frontend, rather than trusted to each. */
        tg_exchange_fail(ex, 400);
        return len;
    }
    if (ex->state == TG_EX_DONE || ex->backend->conf->is_fixed || ex->req_refused) {
        /* Nobody wants these bytes any more (a fixed answer, or an early response):
         * take them so the connection can reach its next request. */
        ex->bytes_in += len;
        if (ex->req_body == TG_HTTP_BODY_LENGTH && ex->state != TG_EX_DONE)
            ex->req_remaining -= len; /* within it: checked above */
        if (last && ex->state != TG_EX_DONE) {
            ex->req_done = true;
            if (!ex->req_refused)
                finish(ex, true); /* the fixed answer waited for the whole request */
        }
        return len;
    }
    tg_buf_reserve(ex->loop, &ex->out);
    size_t room = ex->out.cap - tg_buf_len(&ex->out);
    size_t take = len;
    char line[24];
    if (ex->req_body == TG_HTTP_BODY_CHUNKED) {
        /* Room for a size line, the CRLF after the data and the last chunk. */
        room = room > 32 ? room - 32 : 0;
        if (take > room)
            take = room;
        if (take > 0) {
            int n = snprintf(line, sizeof(line), "%zx\r\n", take);
            tg_buf_append(ex->loop, &ex->out, line, (size_t)n);
            tg_buf_append(ex->loop, &ex->out, data, take);
            tg_buf_append(ex->loop, &ex->out, "\r\n", 2);
        }
        if (last && take == len)
            tg_buf_append(ex->loop, &ex->out, "0\r\n\r\n", 5);
    } else {
        if (take > room)
            take = room;
        tg_buf_append(ex->loop, &ex->out, data, take);
    }
    ex->bytes_in += take;
    if (ex->req_body == TG_HTTP_BODY_LENGTH)
        ex->req_remaining -= take;
    if (last && take == len)
        ex->req_done = true;
    if (take < len)
        ex->fe_blocked = true;
    if (ex->up != NULL && ex->state != TG_EX_CONNECTING) {
        /* A small piece that is not the last waits for the loop's next turn (the write
         * event), so a client feeding 1-byte chunks costs one send per burst, not one per
         * chunk; a full buffer or the end goes out at once. */
        if (ex->req_done || take < len || tg_buf_len(&ex->out) >= FLUSH_AT)
            flush_out(ex);
        else
            arm(ex);
    }
    return take;
}

void tg_exchange_resume_response(tg_exchange_t *ex)
{
    if (!ex->paused || ex->up == NULL)
        return;
    ex->paused = false;
    wait_update(ex);
    arm(ex);
    process_response(ex);
}
