/* One QUIC connection: the ngtcp2 state machine and its callbacks, the write loop that
 * turns stream data into datagrams, the expiry timer, and the ends of a connection
 * (closing period, draining, idle timeout). HTTP/3 sits on top, in h3.c. */
#include <stdlib.h>
#include <string.h>

#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include "quic_internal.h"

/* Flow-control windows we grant the client. The request direction rarely carries much, so
 * a stream starts at 256 KiB; ngtcp2 grows windows up to the max_* as the RTT allows. */
#define STREAM_WINDOW (256u * 1024)
#define CONN_WINDOW (1024u * 1024)
#define MAX_STREAM_WINDOW (6u * 1024 * 1024)
#define MAX_CONN_WINDOW (15u * 1024 * 1024)
#define CID_LIMIT 8
/* Packets written in one flush before yielding to other connections of the worker. */
#define MAX_PKTS_PER_FLUSH 64

static tg__qconn_t *from_user(void *user_data)
{
    return user_data;
}

static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref)
{
    return TG_STRUCT_FROM_MEMBER(tg__qconn_t, ref, ref)->qc;
}

/* ---- ngtcp2 callbacks ------------------------------------------------------------------- */

static void rand_cb(uint8_t *dest, size_t len, const ngtcp2_rand_ctx *ctx)
{
    (void)ctx;
    (void)gnutls_rnd(GNUTLS_RND_NONCE, dest, len);
}

static int get_new_cid_cb(ngtcp2_conn *qc, ngtcp2_cid *cid, uint8_t *token, size_t cidlen,
                          void *user_data)
{
    (void)qc;
    (void)cidlen; /* always the length of our first id: TG_QUIC_CID_LEN */
    tg__qconn_t *c = from_user(user_data);
    if (tg_quic_cid_new(cid->data, (int)c->srv->conf.worker) != 0 ||
        tg_quic_reset_token(token, cid->data, TG_QUIC_CID_LEN) != 0)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    cid->datalen = TG_QUIC_CID_LEN;
    tg__cid_add(&c->srv->cids, cid->data, cid->datalen, c);
    return 0;
}

static int remove_cid_cb(ngtcp2_conn *qc, const ngtcp2_cid *cid, void *user_data)
{
    (void)qc;
    tg__qconn_t *c = from_user(user_data);
    tg__cid_remove(&c->srv->cids, cid->data, cid->datalen, c);
    return 0;
}

static const char *cipher_name(gnutls_session_t tls)
{
    /* The names OpenSSL prints, so HTTPS and QUIC lines of the access log compare. */
    switch (gnutls_cipher_get(tls)) {
    case GNUTLS_CIPHER_AES_128_GCM:
        return "TLS_AES_128_GCM_SHA256";
    case GNUTLS_CIPHER_AES_256_GCM:
        return "TLS_AES_256_GCM_SHA384";
    case GNUTLS_CIPHER_CHACHA20_POLY1305:
        return "TLS_CHACHA20_POLY1305_SHA256";
    case GNUTLS_CIPHER_AES_128_CCM:
        return "TLS_AES_128_CCM_SHA256";
    default:
        return "";
    }
}

static void handshake_over(tg__qconn_t *c)
{
    if (c->counted_handshaking) {
        c->counted_handshaking = false;
        c->srv->nhandshaking--;
    }
}

static int handshake_completed_cb(ngtcp2_conn *qc, void *user_data)
{
    tg__qconn_t *c = from_user(user_data);
    c->handshake_done = true;
    handshake_over(c);
    atomic_fetch_add_explicit(&c->pc.lst->quic->stats->handshakes, 1, memory_order_relaxed);
    c->pc.client.cipher = cipher_name(c->tls);
    c->pc.client.resumed = gnutls_session_is_resumed(c->tls) != 0;
    /* A ticket for resumption, and a token so the next connection from this address skips
     * Retry (RFC 9000 §8.1.3). Neither is worth failing the connection over. */
    (void)gnutls_session_ticket_send(c->tls, 1, 0);
    uint8_t token[TG_QUIC_TOKEN_MAX_LEN];
    ssize_t n = tg_quic_token_make(token, sizeof token, TG_QUIC_TOKEN_NEW_TOKEN,
                                   (const struct sockaddr *)&c->remote, c->remote_len, NULL, 0,
                                   tg__quic_now());
    if (n > 0)
        (void)ngtcp2_conn_submit_new_token(qc, token, (size_t)n);
    return 0;
}

static int app_error(tg__qconn_t *c, int h3rv)
{
    ngtcp2_connection_close_error_set_application_error(
        &c->ccerr, nghttp3_err_infer_quic_app_error_code(h3rv), NULL, 0);
    return NGTCP2_ERR_CALLBACK_FAILURE;
}

static int recv_stream_data_cb(ngtcp2_conn *qc, uint32_t flags, int64_t stream_id, uint64_t offset,
                               const uint8_t *data, size_t datalen, void *user_data,
                               void *stream_user_data)
{
    (void)offset;
    (void)stream_user_data;
    tg__qconn_t *c = from_user(user_data);
    if (c->h3 == NULL)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    nghttp3_ssize n = nghttp3_conn_read_stream(c->h3, stream_id, data, datalen,
                                               (flags & NGTCP2_STREAM_DATA_FLAG_FIN) != 0);
    if (n < 0)
        return app_error(c, (int)n);
    /* Framing and headers are ours to credit now; body bytes are credited when the
     * exchange takes them (h3.c), which is what makes flow control the backpressure. */
    tg__qconn_credit(c, stream_id, (uint64_t)n);
    return 0;
}

static int acked_stream_data_offset_cb(ngtcp2_conn *qc, int64_t stream_id, uint64_t offset,
                                       uint64_t datalen, void *user_data, void *stream_user_data)
{
    (void)qc;
    (void)offset;
    (void)stream_user_data;
    tg__qconn_t *c = from_user(user_data);
    int rv = c->h3 ? nghttp3_conn_add_ack_offset(c->h3, stream_id, datalen) : 0;
    return rv != 0 ? app_error(c, rv) : 0;
}

static int stream_close_cb(ngtcp2_conn *qc, uint32_t flags, int64_t stream_id,
                           uint64_t app_error_code, void *user_data, void *stream_user_data)
{
    (void)stream_user_data;
    tg__qconn_t *c = from_user(user_data);
    if (!(flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET))
        app_error_code = NGHTTP3_H3_NO_ERROR;
    if (c->h3 == NULL)
        return 0;
    int rv = nghttp3_conn_close_stream(c->h3, stream_id, app_error_code);
    if (rv != 0 && rv != NGHTTP3_ERR_STREAM_NOT_FOUND)
        return app_error(c, rv);
    if (ngtcp2_is_bidi_stream(stream_id))
        ngtcp2_conn_extend_max_streams_bidi(qc, 1);
    return 0;
}

/* The client's RESET_STREAM: nghttp3 stops reading the stream, and h3.c ends a request that
 * cannot be whole any more. */
static int stream_reset_cb(ngtcp2_conn *qc, int64_t stream_id, uint64_t final_size,
                           uint64_t app_error_code, void *user_data, void *stream_user_data)
{
    (void)qc;
    (void)final_size;
    (void)app_error_code;
    tg__qconn_t *c = from_user(user_data);
    if (c->h3 == NULL)
        return 0;
    int rv = nghttp3_conn_shutdown_stream_read(c->h3, stream_id);
    if (rv != 0)
        return app_error(c, rv);
    tg__h3_stream_reset(c, stream_user_data);
    return 0;
}

/* ngtcp2 0.12 calls this when we stop reading a stream (not for the client's STOP_SENDING:
 * ngtcp2 answers that with a RESET_STREAM of its own, and the stream closes). */
static int stream_stop_sending_cb(ngtcp2_conn *qc, int64_t stream_id, uint64_t app_error_code,
                                  void *user_data, void *stream_user_data)
{
    (void)qc;
    (void)app_error_code;
    (void)stream_user_data;
    tg__qconn_t *c = from_user(user_data);
    int rv = c->h3 ? nghttp3_conn_shutdown_stream_read(c->h3, stream_id) : 0;
    return rv != 0 ? app_error(c, rv) : 0;
}

static int extend_max_remote_streams_bidi_cb(ngtcp2_conn *qc, uint64_t max_streams, void *user_data)
{
    (void)qc;
    tg__qconn_t *c = from_user(user_data);
    if (c->h3 != NULL)
        nghttp3_conn_set_max_client_streams_bidi(c->h3, max_streams);
    return 0;
}

static int extend_max_stream_data_cb(ngtcp2_conn *qc, int64_t stream_id, uint64_t max_data,
                                     void *user_data, void *stream_user_data)
{
    (void)qc;
    (void)max_data;
    (void)stream_user_data;
    tg__qconn_t *c = from_user(user_data);
    int rv = c->h3 ? nghttp3_conn_unblock_stream(c->h3, stream_id) : 0;
    return rv != 0 ? app_error(c, rv) : 0;
}

static int recv_tx_key_cb(ngtcp2_conn *qc, ngtcp2_crypto_level level, void *user_data)
{
    (void)qc;
    if (level != NGTCP2_CRYPTO_LEVEL_APPLICATION)
        return 0;
    return tg__h3_open(from_user(user_data)) == 0 ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
}

static const ngtcp2_callbacks callbacks = {
    .recv_client_initial = ngtcp2_crypto_recv_client_initial_cb,
    .recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb,
    .handshake_completed = handshake_completed_cb,
    .encrypt = ngtcp2_crypto_encrypt_cb,
    .decrypt = ngtcp2_crypto_decrypt_cb,
    .hp_mask = ngtcp2_crypto_hp_mask_cb,
    .recv_stream_data = recv_stream_data_cb,
    .acked_stream_data_offset = acked_stream_data_offset_cb,
    .stream_close = stream_close_cb,
    .rand = rand_cb,
    .get_new_connection_id = get_new_cid_cb,
    .remove_connection_id = remove_cid_cb,
    .update_key = ngtcp2_crypto_update_key_cb,
    .stream_reset = stream_reset_cb,
    .extend_max_remote_streams_bidi = extend_max_remote_streams_bidi_cb,
    .extend_max_stream_data = extend_max_stream_data_cb,
    .delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb,
    .delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb,
    .get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb,
    .stream_stop_sending = stream_stop_sending_cb,
    .version_negotiation = ngtcp2_crypto_version_negotiation_cb,
    .recv_tx_key = recv_tx_key_cb,
};

/* ---- lifetime ----------------------------------------------------------------------------- */

static void on_timer(evutil_socket_t fd, short what, void *arg);

static void fill_client(tg__qconn_t *c)
{
    tg_client_info_t *ci = &c->pc.client;
    ci->listener_port = tg_addr_port((const struct sockaddr *)&c->pc.lst->conf->addr);
    tg_client_info_set_peer(&c->pc.client, (const struct sockaddr *)&c->remote);
    ci->sni = c->sni;
    ci->tls_version = "TLSv1.3";
    ci->cipher = "";
    ci->quic = true;
    ci->conn_id = c->cid_hex;
}

tg__qconn_t *tg__qconn_accept(tg_quic_server_t *s, const tg__dgram_t *d, const ngtcp2_pkt_hd *hd,
                              const ngtcp2_cid *odcid, bool retried, bool validated)
{
    tg_generation_t *gen = *s->conf.conns->current;
    const tg_conf_limits_t *lim = &gen->cfg->global.limits;
    tg__qconn_t *c = tg_calloc(1, sizeof(*c));
    c->srv = s;
    c->fd = d->fd;
    memcpy(&c->local, &d->local, d->local_len);
    c->local_len = d->local_len;
    memcpy(&c->remote, &d->remote, d->remote_len);
    c->remote_len = d->remote_len;
    c->ref.get_conn = get_conn;
    c->ref.user_data = c;
    ngtcp2_connection_close_error_default(&c->ccerr);
    evtimer_assign(&c->timer, s->conf.loop->base, on_timer, c);

    ngtcp2_cid scid = {.datalen = TG_QUIC_CID_LEN};
    if (tg_quic_cid_new(scid.data, (int)s->conf.worker) != 0)
        goto fail;

    ngtcp2_settings settings;
    ngtcp2_settings_default(&settings);
    settings.initial_ts = tg__quic_now();
    settings.max_window = MAX_CONN_WINDOW;
    settings.max_stream_window = MAX_STREAM_WINDOW;
    settings.handshake_timeout = lim->handshake_timeout_ms * NGTCP2_MILLISECONDS;
    if (validated) /* a NEW_TOKEN of ours: the address is proven, no 3x limit */
        settings.token = hd->token;

    ngtcp2_transport_params params;
    ngtcp2_transport_params_default(&params);
    params.initial_max_stream_data_bidi_local = STREAM_WINDOW;
    params.initial_max_stream_data_bidi_remote = STREAM_WINDOW;
    params.initial_max_stream_data_uni = STREAM_WINDOW;
    params.initial_max_data = CONN_WINDOW;
    params.initial_max_streams_bidi = lim->max_concurrent_streams;
    params.initial_max_streams_uni = 3; /* control and the two QPACK streams */
    params.max_idle_timeout = lim->idle_timeout_ms * NGTCP2_MILLISECONDS;
    params.active_connection_id_limit = CID_LIMIT;
    params.stateless_reset_token_present = 1;
    if (tg_quic_reset_token(params.stateless_reset_token, scid.data, scid.datalen) != 0)
        goto fail;
    if (retried) {
        params.original_dcid = *odcid;
        params.retry_scid = hd->dcid;
        params.retry_scid_present = 1;
    } else {
        params.original_dcid = hd->dcid;
    }

    ngtcp2_path path = {
        .local = {.addr = (ngtcp2_sockaddr *)&c->local, .addrlen = c->local_len},
        .remote = {.addr = (ngtcp2_sockaddr *)&c->remote, .addrlen = c->remote_len},
    };
    if (ngtcp2_conn_server_new(&c->qc, &hd->scid, &scid, &path, hd->version, &callbacks, &settings,
                               &params, NULL, c) != 0)
        goto fail;
    c->tls = tg__quic_session_new(d->lst->quic, &c->ref);
    if (c->tls == NULL)
        goto fail;
    ngtcp2_conn_set_tls_native_handle(c->qc, c->tls);

    c->retried = retried;
    c->odcid_len = hd->dcid.datalen;
    memcpy(c->odcid, hd->dcid.data, c->odcid_len);
    for (size_t i = 0; i < scid.datalen; i++)
        snprintf(c->cid_hex + 2 * i, 3, "%02x", scid.data[i]);
    tg__cid_add(&s->cids, c->odcid, c->odcid_len, c);
    tg__cid_add(&s->cids, scid.data, scid.datalen, c);
    /* Admitted (endpoint.c checked the limit): counted, and uncounted by the set. */
    atomic_fetch_add_explicit(s->conf.conns->process_conns, 1, memory_order_relaxed);
    tg_proxy_conn_add(s->conf.conns, &c->pc, &tg__qconn_ops, gen, d->lst);
    fill_client(c);
    s->nconns++;
    s->nhandshaking++;
    c->counted_handshaking = true;
    return c;

fail:
    if (c->tls != NULL)
        gnutls_deinit(c->tls);
    if (c->qc != NULL)
        ngtcp2_conn_del(c->qc);
    free(c);
    return NULL;
}

void tg__qconn_free(tg__qconn_t *c)
{
    tg_quic_server_t *s = c->srv;
    while (c->streams != NULL)
        tg__h3_stream_free(c->streams);
    if (c->dirty) {
        for (tg__qconn_t **p = &s->dirty; *p != NULL; p = &(*p)->dirty_next) {
            if (*p == c) {
                *p = c->dirty_next;
                break;
            }
        }
    }
    handshake_over(c);
    if (!c->handshake_done && !c->failure_counted)
        atomic_fetch_add_explicit(&c->pc.lst->quic->stats->failures[TG_TLS_FAIL_OTHER], 1,
                                  memory_order_relaxed);
    /* Every id the connection still has: ngtcp2 tells us about retired ones only. */
    if (c->qc != NULL) {
        size_t n = ngtcp2_conn_get_num_scid(c->qc);
        ngtcp2_cid *ids = tg_calloc(n ? n : 1, sizeof(*ids));
        n = ngtcp2_conn_get_scid(c->qc, ids);
        for (size_t i = 0; i < n; i++)
            tg__cid_remove(&s->cids, ids[i].data, ids[i].datalen, c);
        free(ids);
    }
    tg__cid_remove(&s->cids, c->odcid, c->odcid_len, c);
    evtimer_del(&c->timer);
    if (c->h3 != NULL)
        nghttp3_conn_del(c->h3);
    if (c->qc != NULL)
        ngtcp2_conn_del(c->qc);
    if (c->tls != NULL)
        gnutls_deinit(c->tls);
    free(c->close_pkt);
    s->nconns--;
    tg_proxy_conn_remove(&c->pc); /* may call on_drained: last */
    free(c);
}

/* ---- sending ------------------------------------------------------------------------------ */

static void arm_timer(tg__qconn_t *c, ngtcp2_tstamp expiry)
{
    ngtcp2_tstamp now = tg__quic_now();
    uint64_t ns = expiry > now ? expiry - now : 0;
    struct timeval tv = {(time_t)(ns / 1000000000ull), (suseconds_t)(ns % 1000000000ull / 1000)};
    evtimer_add(&c->timer, &tv);
}

static void send_path(tg__qconn_t *c, const ngtcp2_path *path, const uint8_t *data, size_t len)
{
    tg__quic_send(c->fd, (const struct sockaddr *)path->local.addr, path->local.addrlen,
                  (const struct sockaddr *)path->remote.addr, path->remote.addrlen, data, len);
}

/* Enter the closing period with a CONNECTION_CLOSE carrying c->ccerr: the streams go now,
 * the connection stays 3 PTO to answer stragglers with the same packet (RFC 9000 §10.2.1). */
static void close_conn(tg__qconn_t *c)
{
    if (c->closing)
        return;
    c->closing = true;
    while (c->streams != NULL)
        tg__h3_stream_free(c->streams);
    if (ngtcp2_conn_is_in_closing_period(c->qc) || ngtcp2_conn_is_in_draining_period(c->qc)) {
        arm_timer(c, tg__quic_now() + 3 * ngtcp2_conn_get_pto(c->qc));
        return;
    }
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_pkt_info pi;
    uint8_t *buf = c->srv->txbuf;
    ngtcp2_ssize n = ngtcp2_conn_write_connection_close(c->qc, &ps.path, &pi, buf, 1500, &c->ccerr,
                                                        tg__quic_now());
    if (n > 0) {
        c->close_pkt = tg_malloc((size_t)n);
        memcpy(c->close_pkt, buf, (size_t)n);
        c->close_len = (size_t)n;
        send_path(c, &ps.path, buf, (size_t)n);
    }
    arm_timer(c, tg__quic_now() + 3 * ngtcp2_conn_get_pto(c->qc));
}

void tg__qconn_close_now(tg__qconn_t *c)
{
    if (!c->closing) {
        ngtcp2_connection_close_error_set_application_error(&c->ccerr, NGHTTP3_H3_NO_ERROR, NULL,
                                                            0);
        close_conn(c);
    }
    tg__qconn_free(c);
}

static void fail_liberr(tg__qconn_t *c, int rv)
{
    if (c->ccerr.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_TRANSPORT &&
        c->ccerr.error_code == NGTCP2_NO_ERROR)
        ngtcp2_connection_close_error_set_transport_error_liberr(&c->ccerr, rv, NULL, 0);
    close_conn(c);
}

void tg__qconn_flush(tg__qconn_t *c)
{
    if (c->closing)
        return;
    if (c->goaway_sent && tg__qconn_idle(c)) {
        close_conn(c); /* draining, and the last request is answered and acked */
        return;
    }
    tg_quic_server_t *s = c->srv;
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_pkt_info pi;
    ngtcp2_tstamp ts = tg__quic_now();
    size_t max = ngtcp2_conn_get_max_tx_udp_payload_size(c->qc);
    size_t npkts = 0;
    for (;;) {
        int64_t stream_id = -1;
        int fin = 0;
        nghttp3_vec vec[16];
        nghttp3_ssize nvec = 0;
        if (c->h3 != NULL && ngtcp2_conn_get_max_data_left(c->qc) > 0) {
            nvec = nghttp3_conn_writev_stream(c->h3, &stream_id, &fin, vec, 16);
            if (nvec < 0) {
                app_error(c, (int)nvec);
                close_conn(c);
                return;
            }
        }
        uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE | (fin ? NGTCP2_WRITE_STREAM_FLAG_FIN : 0);
        ngtcp2_ssize ndata = -1;
        ngtcp2_ssize n =
            ngtcp2_conn_writev_stream(c->qc, &ps.path, &pi, s->txbuf, max, &ndata, flags, stream_id,
                                      (const ngtcp2_vec *)vec, (size_t)nvec, ts);
        if (n < 0) {
            if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED) {
                nghttp3_conn_block_stream(c->h3, stream_id);
                continue;
            }
            if (n == NGTCP2_ERR_STREAM_SHUT_WR) {
                nghttp3_conn_shutdown_stream_write(c->h3, stream_id);
                tg__h3_stream_write_shut(c, stream_id);
                continue;
            }
            if (n == NGTCP2_ERR_WRITE_MORE) {
                if (nghttp3_conn_add_write_offset(c->h3, stream_id, (size_t)ndata) != 0) {
                    close_conn(c);
                    return;
                }
                continue;
            }
            fail_liberr(c, (int)n);
            return;
        }
        if (ndata >= 0 && nghttp3_conn_add_write_offset(c->h3, stream_id, (size_t)ndata) != 0) {
            close_conn(c);
            return;
        }
        if (n == 0)
            break;
        send_path(c, &ps.path, s->txbuf, (size_t)n);
        if (++npkts >= MAX_PKTS_PER_FLUSH) {
            tg__qconn_kick(c); /* the rest after the other connections had their turn */
            break;
        }
    }
    /* Pacing starts once the handshake is done: before it, ngtcp2 has no RTT sample and
     * would hold the server's first flight back. */
    if (ngtcp2_conn_get_handshake_completed(c->qc))
        ngtcp2_conn_update_pkt_tx_time(c->qc, ts);
    arm_timer(c, ngtcp2_conn_get_expiry(c->qc));
}

void tg__qconn_kick(tg__qconn_t *c)
{
    tg_quic_server_t *s = c->srv;
    if (c->dirty || c->closing)
        return;
    c->dirty = true;
    c->dirty_next = s->dirty;
    s->dirty = c;
    event_active(&s->flush_ev, EV_WRITE, 0);
}

/* ---- receiving ---------------------------------------------------------------------------- */

static bool same_path(const struct sockaddr_storage *la, const struct sockaddr_storage *ra,
                      const struct sockaddr_storage *lb, const struct sockaddr_storage *rb)
{
    return tg_addr_equal((const struct sockaddr *)la, (const struct sockaddr *)lb) &&
           tg_addr_equal((const struct sockaddr *)ra, (const struct sockaddr *)rb);
}

void tg__qconn_read(tg__qconn_t *c, const tg__dgram_t *d)
{
    if (c->closing) {
        /* Stragglers during the closing period get the same CONNECTION_CLOSE again
         * (RFC 9000 §10.2.1), but only on the connection's own path and ever more
         * rarely (the 1st, 2nd, 4th, 8th, ...): whoever knows a connection id must not
         * be able to point a stream of our packets at somebody else. */
        c->stragglers++;
        if (c->close_pkt != NULL && (c->stragglers & (c->stragglers - 1)) == 0 &&
            tg_addr_equal((const struct sockaddr *)&d->remote, (const struct sockaddr *)&c->remote))
            tg__quic_send(c->fd, (const struct sockaddr *)&d->local, d->local_len,
                          (const struct sockaddr *)&d->remote, d->remote_len, c->close_pkt,
                          c->close_len);
        return;
    }
    /* ngtcp2 0.12 aborts the process (conn_recv_non_probing_pkt_on_new_path asserts
     * !conn->pmtud) when, while it validates a path the client moved to, a packet comes
     * back on a path it left: one client with two source ports could kill every worker.
     * A client that moved on does not come back; the paths it left are dropped (unless
     * ngtcp2 fell back to one itself, the new path failing validation), and past
     * TG__QUIC_PATHS_LEFT moves it stays where it is. */
    /* Only a datagram off the current path can change it: the usual one costs a compare. */
    const ngtcp2_path *cur = ngtcp2_conn_get_path(c->qc);
    bool elsewhere =
        !same_path(&d->local, &d->remote, (const struct sockaddr_storage *)cur->local.addr,
                   (const struct sockaddr_storage *)cur->remote.addr);
    struct tg__qpath_s was;
    if (elsewhere) {
        if (c->nleft == TG__QUIC_PATHS_LEFT)
            return;
        for (unsigned i = 0; i < c->nleft; i++)
            if (same_path(&d->local, &d->remote, &c->left[i].local, &c->left[i].remote))
                return;
        memcpy(&was.local, cur->local.addr, cur->local.addrlen);
        memcpy(&was.remote, cur->remote.addr, cur->remote.addrlen);
    }
    ngtcp2_path path = {
        .local = {.addr = (ngtcp2_sockaddr *)&d->local, .addrlen = d->local_len},
        .remote = {.addr = (ngtcp2_sockaddr *)&d->remote, .addrlen = d->remote_len},
    };
    /* A request in this datagram is forwarded with the address it came from, even when
     * the datagram is the one that moves the connection to a new path. */
    bool moved =
        !tg_addr_equal((const struct sockaddr *)&d->remote, (const struct sockaddr *)&c->remote);
    if (moved)
        tg_client_info_set_peer(&c->pc.client, (const struct sockaddr *)&d->remote);
    int rv = ngtcp2_conn_read_pkt(c->qc, &path, NULL, d->data, d->len, tg__quic_now());
    if (rv == 0 && c->excessive) {
        ngtcp2_connection_close_error_set_application_error(&c->ccerr, NGHTTP3_H3_EXCESSIVE_LOAD,
                                                            NULL, 0);
        close_conn(c);
        return;
    }
    if (rv == 0) {
        /* The client moved (migration, NAT rebinding) once ngtcp2 switched paths: later
         * requests, their forwarded headers and the log name the new address. */
        cur = ngtcp2_conn_get_path(c->qc);
        if (elsewhere &&
            !same_path((const struct sockaddr_storage *)cur->local.addr,
                       (const struct sockaddr_storage *)cur->remote.addr, &was.local, &was.remote))
            c->left[c->nleft++] = was; /* room: checked before the read */
        if (moved) {
            memcpy(&c->remote, cur->remote.addr, cur->remote.addrlen);
            c->remote_len = cur->remote.addrlen;
            tg_client_info_set_peer(&c->pc.client, (const struct sockaddr *)&c->remote);
        }
        tg__qconn_kick(c);
        return;
    }
    switch (rv) {
    case NGTCP2_ERR_DRAINING: /* the client closed: stay silent for 3 PTO, then go */
        close_conn(c);
        return;
    case NGTCP2_ERR_RETRY: {
        /* The first Initial does not start the ClientHello (a reordered multi-packet
         * one): ngtcp2 wants the address proven first. */
        ngtcp2_pkt_hd hd;
        if (!c->retried && ngtcp2_accept(&hd, d->data, d->len) == 0)
            tg__quic_send_retry(c->srv, d, &hd);
        tg__qconn_free(c);
        return;
    }
    case NGTCP2_ERR_DROP_CONN:
        tg__qconn_free(c);
        return;
    case NGTCP2_ERR_CRYPTO:
        if (!c->handshake_done)
            atomic_fetch_add_explicit(&c->pc.lst->quic->stats->failures[TG_TLS_FAIL_PROTOCOL], 1,
                                      memory_order_relaxed);
        if (c->ccerr.error_code == NGTCP2_NO_ERROR)
            ngtcp2_connection_close_error_set_transport_error_tls_alert(
                &c->ccerr, ngtcp2_conn_get_tls_alert(c->qc), NULL, 0);
        tg_log_info("listener \"%s\": QUIC handshake with %s failed: TLS alert %u",
                    c->pc.lst->conf->id, c->pc.client.addr, ngtcp2_conn_get_tls_alert(c->qc));
        c->failure_counted = true;
        close_conn(c);
        return;
    default:
        fail_liberr(c, rv);
        return;
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    tg__qconn_t *c = arg;
    if (c->closing) {
        tg__qconn_free(c);
        return;
    }
    int rv = ngtcp2_conn_handle_expiry(c->qc, tg__quic_now());
    if (rv == NGTCP2_ERR_IDLE_CLOSE) {
        tg__qconn_free(c); /* idle timeout: closed silently on both ends (RFC 9000 §10.1) */
        return;
    }
    if (rv != 0) {
        fail_liberr(c, rv);
        return;
    }
    tg__qconn_flush(c);
}

/* ---- graceful end ---------------------------------------------------------------------- */

bool tg__qconn_idle(const tg__qconn_t *c)
{
    return c->nstreams == 0;
}

void tg__qconn_shutdown(tg__qconn_t *c)
{
    if (c->closing)
        return;
    if (!c->handshake_done || c->h3 == NULL) {
        close_conn(c);
        return;
    }
    if (!c->goaway_sent) {
        /* GOAWAY names the last stream we will serve: the ones already open finish. */
        c->goaway_sent = true;
        ngtcp2_connection_close_error_set_application_error(&c->ccerr, NGHTTP3_H3_NO_ERROR, NULL,
                                                            0);
        nghttp3_conn_submit_shutdown_notice(c->h3);
        nghttp3_conn_shutdown(c->h3);
    }
    if (tg__qconn_idle(c))
        close_conn(c);
    else
        tg__qconn_kick(c);
}

/* ---- the connection set's side ------------------------------------------------------------ */

static tg__qconn_t *from_pc(tg_proxy_conn_t *pc)
{
    return TG_STRUCT_FROM_MEMBER(tg__qconn_t, pc, pc);
}

/* GOAWAY, and CONNECTION_CLOSE once the open requests are answered. A request not read
 * whole yet still finishes: QUIC listeners never verify clients, so there is no tightened
 * check for drop_partial to honour. */
static bool wind_down(tg_proxy_conn_t *pc, bool drop_partial)
{
    (void)drop_partial;
    tg__qconn_shutdown(from_pc(pc));
    return false;
}

static void close_now(tg_proxy_conn_t *pc)
{
    tg__qconn_close_now(from_pc(pc));
}

const tg_proxy_conn_ops_t tg__qconn_ops = {
    .wind_down = wind_down,
    .close_now = close_now,
};
