/* h3load.c: HTTP/3 load generator on ngtcp2 + nghttp3 + GnuTLS (Debian's h2load has no
 * HTTP/3): requests/s over kept connections, or full handshakes/s with --new-conn. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <nghttp3/nghttp3.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#define MAX_EVENTS 256
#define MAX_STREAMS 1000     /* -m cap */
#define RETRY_NS 10000000ull /* pause of a connection slot after a failed connection */
#define LOOP_CAP_MS 50       /* longest sleep, so a stop or a deadline is seen in time */
#define READS_PER_WAKEUP 64  /* datagrams read from one socket before serving others */
#define TX_BUF 1452          /* NGTCP2_MAX_PMTUD_UDP_PAYLOAD_SIZE: the most ngtcp2 writes */
#define RX_BUF 65536

/* Latency histogram in microseconds: exact below 64 us, then 64 buckets per power of two
 * (about 1.6 % wide), up to 2^40 us. */
#define HIST_SUB 64
#define HIST_BUCKETS (HIST_SUB * 36)

static unsigned hist_index(uint64_t us)
{
    if (us < HIST_SUB)
        return (unsigned)us;
    if (us >= (1ull << 40))
        us = (1ull << 40) - 1;
    unsigned k = 63u - (unsigned)__builtin_clzll(us); /* >= 6 */
    return (k - 5) * HIST_SUB + (unsigned)(us >> (k - 6)) - HIST_SUB;
}

static uint64_t hist_value(unsigned i)
{
    if (i < HIST_SUB)
        return i;
    unsigned shift = i / HIST_SUB - 1;
    uint64_t mant = i % HIST_SUB + HIST_SUB;
    return (mant << shift) + ((1ull << shift) >> 1);
}

static uint64_t hist_quantile(const uint64_t *h, double q)
{
    uint64_t n = 0, seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        n += h[i];
    if (!n)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)(n - 1)) + 1;
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        if ((seen += h[i]) >= rank)
            return hist_value(i);
    return 0;
}

/* ---- configuration ------------------------------------------------------------------ */

static struct {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char host[256];      /* as in the URL, without brackets */
    char authority[300]; /* :authority, as in the URL */
    char path[2048];
    const char *sni, *cacert, *priority;
    bool insecure, new_conn, allow_remote, verbose;
    bool cancel; /* --cancel: every request reset as soon as its HEADERS are out */
    bool upload; /* --upload: POST requests with a body of upload_len bytes */
    uint64_t upload_len;
    int conns, streams, threads;
    uint64_t requests; /* -n; 0 when -D */
    double duration_s, max_time_s, timeout_s;
} cfg = {.conns = 1, .streams = 1, .threads = 1, .max_time_s = 120, .timeout_s = 10};

static gnutls_certificate_credentials_t cred;
static atomic_uint_fast64_t claimed; /* -n: requests handed out to connections */
static atomic_bool stop_now;         /* SIGINT */
static uint64_t t_begin_ns, t_end_ns;
static pthread_barrier_t start_barrier;
static atomic_flag described = ATOMIC_FLAG_INIT;
static atomic_flag error_shown = ATOMIC_FLAG_INIT;
static char session_line[256] = "(no handshake completed)";

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- state ------------------------------------------------------------------------- */

typedef struct stream {
    int64_t id; /* -1: slot free */
    uint64_t t_start_ns;
    int status;
    bool headers_out;   /* the HEADERS frame (and its FIN, or some body) went into a packet */
    uint64_t body_left; /* --upload: request body bytes not handed to nghttp3 yet */
    uint64_t sent;      /* stream bytes (frames) in packets */
} stream_t;

typedef enum { C_IDLE, C_WAIT, C_OPEN, C_DONE } conn_state_t;

/* Why a connection ended badly; counted apart. */
typedef enum { E_HANDSHAKE, E_TIMEOUT, E_CLOSED, E_PROTOCOL, E_KINDS } conn_err_t;
static const char *const err_names[E_KINDS] = {"handshake", "idle timeout", "closed by server",
                                               "protocol"};

typedef enum { OUT_OK, OUT_NON2XX, OUT_RESET, OUT_CONN, OUT_CANCELLED } outcome_t;

typedef struct stats {
    uint64_t ok, non2xx, reset, conn_failed, cancelled; /* requests, by outcome */
    uint64_t handshakes, conn_err[E_KINDS];
    uint64_t body_bytes, tx_bytes, rx_bytes, tx_pkts, rx_pkts, tx_dropped;
    uint64_t hist_req[HIST_BUCKETS], hist_hs[HIST_BUCKETS];
} stats_t;

struct worker;

typedef struct conn {
    struct worker *w;
    int fd;
    conn_state_t state;
    bool dirty, want_close, handshake_done;
    ngtcp2_crypto_conn_ref ref;
    ngtcp2_conn *qc;
    nghttp3_conn *h3;
    gnutls_session_t tls;
    struct sockaddr_storage local;
    socklen_t locallen;
    ngtcp2_connection_close_error ccerr;
    uint64_t t_connect_ns, retry_at_ns;
    ngtcp2_tstamp expiry_ns;
    int pending;  /* requests claimed for this connection, not yet on a stream */
    int inflight; /* requests on streams, not finished */
    stream_t *streams;
} conn_t;

typedef struct worker {
    pthread_t thread;
    int ep, tfd;
    int nconns;
    conn_t *conns;
    conn_t **dirty;
    int ndirty;
    int64_t outstanding; /* requests this thread claimed and has not finished */
    uint8_t rx[RX_BUF];
    stats_t st;
} worker_t;

static void show_first_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void show_first_error(const char *fmt, ...)
{
    if (atomic_flag_test_and_set(&error_shown))
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("h3load: first connection error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void mark_dirty(conn_t *c)
{
    if (!c->dirty) {
        c->dirty = true;
        c->w->dirty[c->w->ndirty++] = c;
    }
}

static bool deadline_passed(uint64_t now)
{
    return atomic_load(&stop_now) || now >= t_end_ns;
}

/* One more request for this thread, if the budget (-n) and the clock allow. */
static bool claim(worker_t *w)
{
    if (deadline_passed(now_ns()))
        return false;
    if (cfg.requests && atomic_fetch_add(&claimed, 1) >= cfg.requests)
        return false;
    w->outstanding++;
    return true;
}

static void finish_request(conn_t *c, stream_t *s, outcome_t how)
{
    worker_t *w = c->w;
    uint64_t now = now_ns();
    w->outstanding--;
    switch (how) {
    case OUT_OK:
        w->st.ok++;
        break;
    case OUT_NON2XX:
        w->st.non2xx++;
        break;
    case OUT_RESET:
        w->st.reset++;
        break;
    case OUT_CONN:
        w->st.conn_failed++;
        break;
    case OUT_CANCELLED:
        w->st.cancelled++;
        break;
    }
    if (s) {
        if (how == OUT_OK || how == OUT_NON2XX)
            w->st.hist_req[hist_index((now - s->t_start_ns) / 1000)]++;
        s->id = -1;
        c->inflight--;
    } else {
        c->pending--;
    }
    if (cfg.new_conn)
        c->want_close = true;
    mark_dirty(c);
}

static stream_t *stream_of(conn_t *c, int64_t id, void *user_data)
{
    stream_t *s = user_data;
    return s && s->id == id ? s : NULL;
}

/* ---- nghttp3 callbacks -------------------------------------------------------------- */

static void consume(conn_t *c, int64_t stream_id, size_t n)
{
    ngtcp2_conn_extend_max_stream_offset(c->qc, stream_id, n);
    ngtcp2_conn_extend_max_offset(c->qc, n);
}

static int h3_recv_data(nghttp3_conn *h3, int64_t stream_id, const uint8_t *data, size_t len,
                        void *conn_user_data, void *stream_user_data)
{
    conn_t *c = conn_user_data;
    c->w->st.body_bytes += len;
    consume(c, stream_id, len); /* the body is dropped at once, so its credit comes back */
    return 0;
}

static int h3_deferred_consume(nghttp3_conn *h3, int64_t stream_id, size_t consumed,
                               void *conn_user_data, void *stream_user_data)
{
    consume(conn_user_data, stream_id, consumed);
    return 0;
}

static int h3_recv_header(nghttp3_conn *h3, int64_t stream_id, int32_t token, nghttp3_rcbuf *name,
                          nghttp3_rcbuf *value, uint8_t flags, void *conn_user_data,
                          void *stream_user_data)
{
    stream_t *s = stream_of(conn_user_data, stream_id, stream_user_data);
    if (s && token == NGHTTP3_QPACK_TOKEN__STATUS) {
        nghttp3_vec v = nghttp3_rcbuf_get_buf(value);
        int status = 0;
        for (size_t i = 0; i < v.len && i < 3 && v.base[i] >= '0' && v.base[i] <= '9'; i++)
            status = status * 10 + (v.base[i] - '0');
        s->status = v.len == 3 ? status : 0;
    }
    return 0;
}

static int h3_end_stream(nghttp3_conn *h3, int64_t stream_id, void *conn_user_data,
                         void *stream_user_data)
{
    conn_t *c = conn_user_data;
    stream_t *s = stream_of(c, stream_id, stream_user_data);
    if (s) /* the whole response is in: the request is done, whatever the ACKs still do */
        finish_request(c, s,
                       s->status >= 200 && s->status < 300 ? OUT_OK
                       : s->status                         ? OUT_NON2XX
                                                           : OUT_RESET);
    return 0;
}

static int h3_stream_close(nghttp3_conn *h3, int64_t stream_id, uint64_t app_error_code,
                           void *conn_user_data, void *stream_user_data)
{
    conn_t *c = conn_user_data;
    stream_t *s = stream_of(c, stream_id, stream_user_data);
    if (s) /* closed before the response ended: reset by the server */
        finish_request(c, s, OUT_RESET);
    if (!ngtcp2_is_bidi_stream(stream_id))
        ngtcp2_conn_extend_max_streams_uni(c->qc, 1);
    return 0;
}

static int h3_stop_sending(nghttp3_conn *h3, int64_t stream_id, uint64_t app_error_code,
                           void *conn_user_data, void *stream_user_data)
{
    conn_t *c = conn_user_data;
    return ngtcp2_conn_shutdown_stream_read(c->qc, stream_id, app_error_code) == 0
               ? 0
               : NGHTTP3_ERR_CALLBACK_FAILURE;
}

static int h3_reset_stream(nghttp3_conn *h3, int64_t stream_id, uint64_t app_error_code,
                           void *conn_user_data, void *stream_user_data)
{
    conn_t *c = conn_user_data;
    return ngtcp2_conn_shutdown_stream_write(c->qc, stream_id, app_error_code) == 0
               ? 0
               : NGHTTP3_ERR_CALLBACK_FAILURE;
}

static const nghttp3_callbacks h3_callbacks = {
    .stream_close = h3_stream_close,
    .recv_data = h3_recv_data,
    .deferred_consume = h3_deferred_consume,
    .recv_header = h3_recv_header,
    .stop_sending = h3_stop_sending,
    .end_stream = h3_end_stream,
    .reset_stream = h3_reset_stream,
};

/* ---- ngtcp2 callbacks --------------------------------------------------------------- */

static void rand_cb(uint8_t *dest, size_t len, const ngtcp2_rand_ctx *rand_ctx)
{
    (void)gnutls_rnd(GNUTLS_RND_NONCE, dest, len);
}

static int get_new_connection_id_cb(ngtcp2_conn *qc, ngtcp2_cid *cid, uint8_t *token, size_t cidlen,
                                    void *user_data)
{
    if (gnutls_rnd(GNUTLS_RND_NONCE, cid->data, cidlen) != 0 ||
        gnutls_rnd(GNUTLS_RND_NONCE, token, NGTCP2_STATELESS_RESET_TOKENLEN) != 0)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    cid->datalen = cidlen;
    return 0;
}

static void describe_session(conn_t *c)
{
    if (atomic_flag_test_and_set(&described))
        return;
    gnutls_datum_t alpn = {0};
    gnutls_alpn_get_selected_protocol(c->tls, &alpn);
    const char *group = gnutls_group_get_name(gnutls_group_get(c->tls));
    snprintf(session_line, sizeof session_line, "%s %s, group %s, ALPN %.*s, server certificate %s",
             gnutls_protocol_get_name(gnutls_protocol_get_version(c->tls)),
             gnutls_cipher_get_name(gnutls_cipher_get(c->tls)), group ? group : "?", (int)alpn.size,
             alpn.data ? (const char *)alpn.data : "",
             cfg.insecure ? "not verified (--insecure)"
             : cfg.cacert ? "verified (--cacert)"
                          : "verified (system trust)");
}

static int handshake_completed_cb(ngtcp2_conn *qc, void *user_data)
{
    conn_t *c = user_data;
    c->handshake_done = true;
    c->w->st.handshakes++;
    c->w->st.hist_hs[hist_index((now_ns() - c->t_connect_ns) / 1000)]++;
    describe_session(c);
    return 0;
}

static int recv_stream_data_cb(ngtcp2_conn *qc, uint32_t flags, int64_t stream_id, uint64_t offset,
                               const uint8_t *data, size_t len, void *user_data,
                               void *stream_user_data)
{
    conn_t *c = user_data;
    if (!c->h3)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    nghttp3_ssize n =
        nghttp3_conn_read_stream(c->h3, stream_id, data, len, flags & NGTCP2_STREAM_DATA_FLAG_FIN);
    if (n < 0) {
        ngtcp2_connection_close_error_set_application_error(
            &c->ccerr, nghttp3_err_infer_quic_app_error_code((int)n), NULL, 0);
        return NGTCP2_ERR_CALLBACK_FAILURE;
    }
    consume(c, stream_id, (size_t)n);
    return 0;
}

static int acked_stream_data_offset_cb(ngtcp2_conn *qc, int64_t stream_id, uint64_t offset,
                                       uint64_t len, void *user_data, void *stream_user_data)
{
    conn_t *c = user_data;
    return c->h3 && nghttp3_conn_add_ack_offset(c->h3, stream_id, len) != 0
               ? NGTCP2_ERR_CALLBACK_FAILURE
               : 0;
}

static int stream_close_cb(ngtcp2_conn *qc, uint32_t flags, int64_t stream_id,
                           uint64_t app_error_code, void *user_data, void *stream_user_data)
{
    conn_t *c = user_data;
    if (!c->h3)
        return 0;
    if (!(flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET))
        app_error_code = NGHTTP3_H3_NO_ERROR;
    int rv = nghttp3_conn_close_stream(c->h3, stream_id, app_error_code);
    if (rv == NGHTTP3_ERR_STREAM_NOT_FOUND) {
        /* A stream nghttp3 never saw data on; a unidirectional one still frees a slot. */
        if (!ngtcp2_is_bidi_stream(stream_id))
            ngtcp2_conn_extend_max_streams_uni(qc, 1);
        return 0;
    }
    if (rv != 0) {
        ngtcp2_connection_close_error_set_application_error(
            &c->ccerr, nghttp3_err_infer_quic_app_error_code(rv), NULL, 0);
        return NGTCP2_ERR_CALLBACK_FAILURE;
    }
    return 0;
}

static int shutdown_read_cb(conn_t *c, int64_t stream_id)
{
    return c->h3 && nghttp3_conn_shutdown_stream_read(c->h3, stream_id) != 0
               ? NGTCP2_ERR_CALLBACK_FAILURE
               : 0;
}

static int stream_reset_cb(ngtcp2_conn *qc, int64_t stream_id, uint64_t final_size,
                           uint64_t app_error_code, void *user_data, void *stream_user_data)
{
    return shutdown_read_cb(user_data, stream_id);
}

static int stream_stop_sending_cb(ngtcp2_conn *qc, int64_t stream_id, uint64_t app_error_code,
                                  void *user_data, void *stream_user_data)
{
    return shutdown_read_cb(user_data, stream_id);
}

static int extend_max_stream_data_cb(ngtcp2_conn *qc, int64_t stream_id, uint64_t max_data,
                                     void *user_data, void *stream_user_data)
{
    conn_t *c = user_data;
    return c->h3 && nghttp3_conn_unblock_stream(c->h3, stream_id) != 0 ? NGTCP2_ERR_CALLBACK_FAILURE
                                                                       : 0;
}

/* HTTP/3 starts with the 1-RTT keys: our control and QPACK streams need them. */
static int recv_rx_key_cb(ngtcp2_conn *qc, ngtcp2_crypto_level level, void *user_data)
{
    conn_t *c = user_data;
    if (level != NGTCP2_CRYPTO_LEVEL_APPLICATION || c->h3)
        return 0;
    if (ngtcp2_conn_get_max_local_streams_uni(qc) < 3)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    nghttp3_settings settings;
    nghttp3_settings_default(&settings);
    if (nghttp3_conn_client_new(&c->h3, &h3_callbacks, &settings, nghttp3_mem_default(), c) != 0)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    int64_t ctrl, qenc, qdec;
    if (ngtcp2_conn_open_uni_stream(qc, &ctrl, NULL) != 0 ||
        nghttp3_conn_bind_control_stream(c->h3, ctrl) != 0 ||
        ngtcp2_conn_open_uni_stream(qc, &qenc, NULL) != 0 ||
        ngtcp2_conn_open_uni_stream(qc, &qdec, NULL) != 0 ||
        nghttp3_conn_bind_qpack_streams(c->h3, qenc, qdec) != 0)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    return 0;
}

static const ngtcp2_callbacks quic_callbacks = {
    /* the stock ones from the GnuTLS crypto helper */
    .client_initial = ngtcp2_crypto_client_initial_cb,
    .recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb,
    .encrypt = ngtcp2_crypto_encrypt_cb,
    .decrypt = ngtcp2_crypto_decrypt_cb,
    .hp_mask = ngtcp2_crypto_hp_mask_cb,
    .recv_retry = ngtcp2_crypto_recv_retry_cb,
    .update_key = ngtcp2_crypto_update_key_cb,
    .delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb,
    .delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb,
    .get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb,
    .version_negotiation = ngtcp2_crypto_version_negotiation_cb,
    /* ours */
    .rand = rand_cb,
    .get_new_connection_id = get_new_connection_id_cb,
    .handshake_completed = handshake_completed_cb,
    .recv_stream_data = recv_stream_data_cb,
    .acked_stream_data_offset = acked_stream_data_offset_cb,
    .stream_close = stream_close_cb,
    .stream_reset = stream_reset_cb,
    .stream_stop_sending = stream_stop_sending_cb,
    .extend_max_stream_data = extend_max_stream_data_cb,
    .recv_rx_key = recv_rx_key_cb,
};

/* ---- connections -------------------------------------------------------------------- */

static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref)
{
    return ((conn_t *)ref->user_data)->qc;
}

static void teardown(conn_t *c)
{
    if (c->h3)
        nghttp3_conn_del(c->h3);
    if (c->qc)
        ngtcp2_conn_del(c->qc);
    if (c->tls)
        gnutls_deinit(c->tls);
    if (c->fd >= 0)
        close(c->fd); /* also leaves the epoll set */
    c->h3 = NULL;
    c->qc = NULL;
    c->tls = NULL;
    c->fd = -1;
    for (int i = 0; i < cfg.streams; i++)
        c->streams[i].id = -1;
    c->inflight = c->pending = 0;
    c->want_close = c->handshake_done = false;
}

static void send_packet(conn_t *c, const uint8_t *buf, size_t len)
{
    ssize_t n;
    do
        n = send(c->fd, buf, len, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        c->w->st.tx_dropped++; /* a full socket buffer is loss to QUIC: it retransmits */
        return;
    }
    c->w->st.tx_pkts++;
    c->w->st.tx_bytes += (uint64_t)n;
}

/* Sends CONNECTION_CLOSE with e unless the connection is already closing or draining. */
static void send_close(conn_t *c, const ngtcp2_connection_close_error *e)
{
    if (!c->qc || ngtcp2_conn_is_in_closing_period(c->qc) ||
        ngtcp2_conn_is_in_draining_period(c->qc))
        return;
    uint8_t buf[TX_BUF];
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_pkt_info pi;
    ngtcp2_ssize n =
        ngtcp2_conn_write_connection_close(c->qc, &ps.path, &pi, buf, sizeof buf, e, now_ns());
    if (n > 0)
        send_packet(c, buf, (size_t)n);
}

/* Says goodbye (H3_NO_ERROR) and frees the connection; no need to wait out the closing
 * period, the server learns all it needs from the one packet. */
static void close_conn(conn_t *c)
{
    ngtcp2_connection_close_error e;
    ngtcp2_connection_close_error_set_application_error(&e, NGHTTP3_H3_NO_ERROR, NULL, 0);
    send_close(c, &e);
    teardown(c);
}

/* Ends a connection that went wrong: its requests fail, the error is counted (unless the
 * run is over or the connection was idle and merely closed), and the slot retries soon. */
static void fail_conn(conn_t *c, conn_err_t kind, const char *why, bool tell_server)
{
    worker_t *w = c->w;
    uint64_t now = now_ns();
    /* --cancel: the requests are over on our side, but a close is the server's answer. */
    bool busy = c->inflight || c->pending || !c->handshake_done || cfg.cancel;
    if (!deadline_passed(now) && busy) {
        if (!c->handshake_done)
            kind = E_HANDSHAKE;
        w->st.conn_err[kind]++;
        uint8_t alert = c->qc ? ngtcp2_conn_get_tls_alert(c->qc) : 0;
        show_first_error("%s: %s%s%s", err_names[kind], why, alert ? ", TLS alert " : "",
                         alert ? gnutls_alert_get_name((gnutls_alert_description_t)alert) : "");
        /* A connection that fails before carrying a request still uses one up (-n), so a
         * dead server ends the run instead of being retried until --max-time. */
        if (!c->inflight && !c->pending && claim(w))
            c->pending++;
    }
    for (int i = 0; i < cfg.streams; i++)
        if (c->streams[i].id >= 0)
            finish_request(c, &c->streams[i], OUT_CONN);
    while (c->pending)
        finish_request(c, NULL, OUT_CONN);
    if (tell_server)
        send_close(c, &c->ccerr);
    teardown(c);
    c->state = C_WAIT;
    c->retry_at_ns = now + RETRY_NS;
}

/* What a browser offers (Chrome, Firefox): AES-128-GCM, AES-256-GCM, ChaCha20 and X25519, P-256,
 * P-384, in that order, with one key share (X25519). GnuTLS's NORMAL would put AES-256-GCM and
 * P-256 first: a server that follows the client's order (GnuTLS without %SERVER_PRECEDENCE)
 * then negotiates other algorithms than one with its own order (Go), and the comparison is off;
 * and its two key shares (P-256 and X25519) cost the client a key generation per handshake. */
#define DEFAULT_PRIORITY                                                                           \
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:"      \
    "-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1:%DISABLE_TLS13_COMPAT_MODE"
static gnutls_priority_t priority; /* parsed once: not for every connection */

static int tls_init(conn_t *c)
{
    /* No tickets: every connection is a full handshake, and the server mints none. One key
     * share, for the first group; a server without it answers with a HelloRetryRequest. */
    if (gnutls_init(&c->tls, GNUTLS_CLIENT | GNUTLS_NO_END_OF_EARLY_DATA | GNUTLS_NO_TICKETS |
                                 GNUTLS_KEY_SHARE_TOP) != 0)
        return -1;
    if (gnutls_priority_set(c->tls, priority) != 0 ||
        ngtcp2_crypto_gnutls_configure_client_session(c->tls) != 0 ||
        gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, cred) != 0)
        return -1;
    gnutls_session_set_ptr(c->tls, &c->ref);
    gnutls_datum_t alpn = {.data = (unsigned char *)"h3", .size = 2};
    if (gnutls_alpn_set_protocols(c->tls, &alpn, 1, GNUTLS_ALPN_MANDATORY) != 0)
        return -1;
    if (gnutls_server_name_set(c->tls, GNUTLS_NAME_DNS, cfg.sni, strlen(cfg.sni)) != 0)
        return -1;
    if (!cfg.insecure)
        gnutls_session_set_verify_cert(c->tls, cfg.sni, 0);
    return 0;
}

static void log_printf(void *user_data, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    flockfile(stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    funlockfile(stderr);
    va_end(ap);
}

static int quic_init(conn_t *c, uint64_t now)
{
    ngtcp2_cid dcid = {.datalen = 18}, scid = {.datalen = 8};
    if (gnutls_rnd(GNUTLS_RND_NONCE, dcid.data, dcid.datalen) != 0 ||
        gnutls_rnd(GNUTLS_RND_NONCE, scid.data, scid.datalen) != 0)
        return -1;
    ngtcp2_settings settings;
    ngtcp2_settings_default(&settings);
    settings.initial_ts = now;
    settings.handshake_timeout = (ngtcp2_duration)(cfg.timeout_s * NGTCP2_SECONDS);
    settings.no_pmtud = 1; /* loopback: nothing to discover, and no probe packets to count */
    if (cfg.verbose)
        settings.log_printf = log_printf;
    ngtcp2_transport_params params;
    ngtcp2_transport_params_default(&params);
    params.initial_max_streams_uni = 3;
    params.initial_max_stream_data_bidi_local = 1 << 20;
    params.initial_max_stream_data_uni = 256 << 10;
    params.initial_max_data = 16 << 20;
    params.max_idle_timeout = (ngtcp2_duration)(cfg.timeout_s * NGTCP2_SECONDS);
    ngtcp2_path path = {
        .local = {.addr = (ngtcp2_sockaddr *)&c->local, .addrlen = c->locallen},
        .remote = {.addr = (ngtcp2_sockaddr *)&cfg.addr, .addrlen = cfg.addrlen},
    };
    if (ngtcp2_conn_client_new(&c->qc, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1, &quic_callbacks,
                               &settings, &params, NULL, c) != 0)
        return -1;
    ngtcp2_conn_set_tls_native_handle(c->qc, c->tls);
    return 0;
}

static void start_conn(conn_t *c)
{
    worker_t *w = c->w;
    uint64_t now = now_ns();
    if (deadline_passed(now)) {
        c->state = C_DONE;
        return;
    }
    if (cfg.new_conn) {
        if (!claim(w)) {
            c->state = C_DONE;
            return;
        }
        c->pending = 1;
    }
    c->t_connect_ns = now;
    ngtcp2_connection_close_error_default(&c->ccerr);
    c->fd = socket(cfg.addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    c->locallen = sizeof c->local;
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&cfg.addr, cfg.addrlen) != 0 ||
        getsockname(c->fd, (struct sockaddr *)&c->local, &c->locallen) != 0) {
        fail_conn(c, E_HANDSHAKE, strerror(errno), false);
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0 || tls_init(c) != 0 ||
        quic_init(c, now) != 0) {
        fail_conn(c, E_HANDSHAKE, "cannot set up the TLS session or the QUIC connection", false);
        return;
    }
    c->state = C_OPEN;
    c->expiry_ns = 0;
    mark_dirty(c);
}

/* --upload: the request body, zeros from one static block (nghttp3 keeps pointers into it
 * until the bytes are acked). */
static nghttp3_ssize read_body(nghttp3_conn *h3, int64_t stream_id, nghttp3_vec *vec, size_t veccnt,
                               uint32_t *pflags, void *conn_user_data, void *stream_user_data)
{
    static const uint8_t zeros[16384];
    stream_t *s = stream_of(conn_user_data, stream_id, stream_user_data);
    if (s == NULL || veccnt == 0) {
        *pflags |= NGHTTP3_DATA_FLAG_EOF;
        return 0;
    }
    size_t n = s->body_left < sizeof zeros ? (size_t)s->body_left : sizeof zeros;
    s->body_left -= n;
    if (s->body_left == 0)
        *pflags |= NGHTTP3_DATA_FLAG_EOF;
    if (n == 0)
        return 0;
    vec[0] = (nghttp3_vec){.base = (uint8_t *)zeros, .len = n};
    return 1;
}

/* Puts claimed requests on streams while -m, the server's stream limit and the budget allow.
 * Returns 0, or an nghttp3 error. */
static int submit_requests(conn_t *c)
{
    static const char scheme[] = "https", agent[] = "h3load";
    const char *method = cfg.upload ? "POST" : "GET";
    char clen[24];
    int clen_len = snprintf(clen, sizeof clen, "%llu", (unsigned long long)cfg.upload_len);
#define NV(n, v, vlen)                                                                             \
    {                                                                                              \
        .name = (uint8_t *)(n), .value = (uint8_t *)(v), .namelen = sizeof(n) - 1,                 \
        .valuelen = (vlen), .flags = NGHTTP3_NV_FLAG_NONE                                          \
    }
    const nghttp3_nv nva[] = {
        NV(":method", method, strlen(method)),
        NV(":scheme", scheme, sizeof scheme - 1),
        NV(":authority", cfg.authority, strlen(cfg.authority)),
        NV(":path", cfg.path, strlen(cfg.path)),
        NV("user-agent", agent, sizeof agent - 1),
        NV("content-length", clen, (size_t)clen_len), /* --upload only */
    };
    const size_t nnv = sizeof nva / sizeof nva[0] - (cfg.upload ? 0 : 1);
    const nghttp3_data_reader body = {.read_data = read_body};
#undef NV
    if (!c->h3 || !c->handshake_done || c->want_close)
        return 0;
    while (c->inflight < cfg.streams && ngtcp2_conn_get_streams_bidi_left(c->qc) > 0) {
        if (cfg.new_conn ? c->pending == 0 : !claim(c->w))
            return 0;
        if (cfg.new_conn)
            c->pending--;
        stream_t *s = NULL;
        for (int i = 0; i < cfg.streams && !s; i++)
            if (c->streams[i].id < 0)
                s = &c->streams[i];
        int64_t id;
        if (!s || ngtcp2_conn_open_bidi_stream(c->qc, &id, NULL) != 0) {
            c->pending++; /* cannot happen (both checked above); fails with the connection */
            return NGHTTP3_ERR_INVALID_STATE;
        }
        *s = (stream_t){.id = id, .t_start_ns = now_ns(), .body_left = cfg.upload_len};
        c->inflight++;
        int rv = nghttp3_conn_submit_request(c->h3, id, nva, nnv,
                                             cfg.upload && cfg.upload_len > 0 ? &body : NULL, s);
        if (rv != 0)
            return rv;
    }
    return 0;
}

/* --cancel: a request's stream is cancelled once its whole HEADERS frame, with the FIN, is
 * in a packet (ndata bytes of vec were); with --upload, once 4 KiB of it are (the HEADERS
 * frame and some body), while the rest of the body is still to come. */
static void note_written(conn_t *c, int64_t stream_id, int fin, const nghttp3_vec *vec,
                         nghttp3_ssize nvec, ngtcp2_ssize ndata)
{
    if (!cfg.cancel || ndata <= 0)
        return;
    for (int i = 0; i < cfg.streams; i++) {
        stream_t *s = &c->streams[i];
        if (s->id != stream_id)
            continue;
        s->sent += (uint64_t)ndata;
        if (cfg.upload ? s->sent >= 4096 || fin
                       : fin && (uint64_t)ndata == nghttp3_vec_len(vec, (size_t)nvec))
            s->headers_out = true;
    }
}

/* Hands ngtcp2 what nghttp3 has to send and writes the packets, within the send quantum.
 * Returns 0, or an ngtcp2 error (NGTCP2_ERR_CALLBACK_FAILURE for an nghttp3 one). */
static int write_packets(conn_t *c)
{
    uint8_t buf[TX_BUF];
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_pkt_info pi;
    ngtcp2_tstamp ts = now_ns();
    size_t max_payload = ngtcp2_conn_get_max_tx_udp_payload_size(c->qc);
    if (max_payload > sizeof buf)
        max_payload = sizeof buf;
    size_t max_pkts = ngtcp2_conn_get_send_quantum(c->qc) / max_payload, npkts = 0;
    if (max_pkts == 0)
        max_pkts = 1;
    for (;;) {
        int64_t stream_id = -1;
        int fin = 0;
        nghttp3_vec vec[16];
        nghttp3_ssize nvec = 0;
        if (c->h3 && ngtcp2_conn_get_max_data_left(c->qc)) {
            nvec = nghttp3_conn_writev_stream(c->h3, &stream_id, &fin, vec, 16);
            if (nvec < 0) {
                ngtcp2_connection_close_error_set_application_error(
                    &c->ccerr, nghttp3_err_infer_quic_app_error_code((int)nvec), NULL, 0);
                return NGTCP2_ERR_CALLBACK_FAILURE;
            }
        }
        uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE | (fin ? NGTCP2_WRITE_STREAM_FLAG_FIN : 0);
        ngtcp2_ssize ndata;
        ngtcp2_ssize n =
            ngtcp2_conn_writev_stream(c->qc, &ps.path, &pi, buf, max_payload, &ndata, flags,
                                      stream_id, (const ngtcp2_vec *)vec, (size_t)nvec, ts);
        if (n < 0) {
            switch (n) {
            case NGTCP2_ERR_STREAM_DATA_BLOCKED:
                nghttp3_conn_block_stream(c->h3, stream_id);
                continue;
            case NGTCP2_ERR_STREAM_SHUT_WR:
                nghttp3_conn_shutdown_stream_write(c->h3, stream_id);
                continue;
            case NGTCP2_ERR_WRITE_MORE:
                if (nghttp3_conn_add_write_offset(c->h3, stream_id, (size_t)ndata) != 0)
                    return NGTCP2_ERR_CALLBACK_FAILURE;
                note_written(c, stream_id, fin, vec, nvec, ndata);
                continue;
            default:
                ngtcp2_connection_close_error_set_transport_error_liberr(&c->ccerr, (int)n, NULL,
                                                                         0);
                return (int)n;
            }
        }
        if (ndata >= 0 && nghttp3_conn_add_write_offset(c->h3, stream_id, (size_t)ndata) != 0)
            return NGTCP2_ERR_CALLBACK_FAILURE;
        note_written(c, stream_id, fin, vec, nvec, ndata);
        if (n == 0) /* nothing more, or congestion limited: wait for ACKs or the timer */
            break;
        send_packet(c, buf, (size_t)n);
        if (++npkts >= max_pkts) /* pacing: the rest goes out when the expiry timer fires */
            break;
    }
    /* ngtcp2 0.12 paces with cwnd / smoothed_rtt, and before the first RTT sample that is the
     * 333 ms initial RTT: pacing the Initial would hold our Finished (and the first request)
     * back some 25 ms. Handshake flights are tiny, so pacing starts once it is complete. */
    if (ngtcp2_conn_get_handshake_completed(c->qc))
        ngtcp2_conn_update_pkt_tx_time(c->qc, ts);
    return 0;
}

/* --cancel: the requests whose HEADERS are out are reset both ways (RESET_STREAM and
 * STOP_SENDING with H3_REQUEST_CANCELLED), the pattern of a rapid-reset attack; each counts
 * as cancelled and frees its slot for the next. Returns whether any was. */
static bool cancel_requests(conn_t *c)
{
    bool any = false;
    for (int i = 0; cfg.cancel && i < cfg.streams; i++) {
        stream_t *s = &c->streams[i];
        if (s->id < 0 || !s->headers_out)
            continue;
        nghttp3_conn_shutdown_stream_read(c->h3, s->id);
        ngtcp2_conn_shutdown_stream(c->qc, s->id, NGHTTP3_H3_REQUEST_CANCELLED);
        finish_request(c, s, OUT_CANCELLED);
        any = true;
    }
    return any;
}

static void flush_conn(conn_t *c)
{
    if (c->state != C_OPEN)
        return;
    if (c->want_close) {
        close_conn(c);
        c->state = C_IDLE;
        start_conn(c); /* --new-conn: the next request gets a new connection at once */
        return;
    }
    int rv = submit_requests(c);
    if (rv != 0) {
        ngtcp2_connection_close_error_set_application_error(
            &c->ccerr, nghttp3_err_infer_quic_app_error_code(rv), NULL, 0);
        fail_conn(c, E_PROTOCOL, nghttp3_strerror(rv), true);
        return;
    }
    rv = write_packets(c);
    if (rv == 0 && cancel_requests(c))
        rv = write_packets(c); /* the resets go out with the HEADERS' flight */
    if (rv != 0) {
        fail_conn(c, E_PROTOCOL, ngtcp2_strerror(rv), true);
        return;
    }
    c->expiry_ns = ngtcp2_conn_get_expiry(c->qc);
}

static void read_conn(conn_t *c)
{
    worker_t *w = c->w;
    for (int i = 0; i < READS_PER_WAKEUP && c->state == C_OPEN; i++) {
        ssize_t n = recv(c->fd, w->rx, sizeof w->rx, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            fail_conn(c, E_CLOSED, strerror(errno), false); /* ECONNREFUSED: no server */
            return;
        }
        w->st.rx_pkts++;
        w->st.rx_bytes += (uint64_t)n;
        ngtcp2_path path = {
            .local = {.addr = (ngtcp2_sockaddr *)&c->local, .addrlen = c->locallen},
            .remote = {.addr = (ngtcp2_sockaddr *)&cfg.addr, .addrlen = cfg.addrlen},
        };
        ngtcp2_pkt_info pi = {0};
        int rv = ngtcp2_conn_read_pkt(c->qc, &path, &pi, w->rx, (size_t)n, now_ns());
        if (rv == NGTCP2_ERR_DRAINING) {
            ngtcp2_connection_close_error e;
            ngtcp2_conn_get_connection_close_error(c->qc, &e);
            char why[96];
            snprintf(why, sizeof why, "the server closed the connection (%s error 0x%llx)",
                     e.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION ? "application"
                                                                                   : "transport",
                     (unsigned long long)e.error_code);
            fail_conn(c, E_CLOSED, why, false);
            return;
        }
        if (rv != 0) {
            if (rv == NGTCP2_ERR_CRYPTO)
                ngtcp2_connection_close_error_set_transport_error_tls_alert(
                    &c->ccerr, ngtcp2_conn_get_tls_alert(c->qc), NULL, 0);
            else if (c->ccerr.error_code == 0)
                ngtcp2_connection_close_error_set_transport_error_liberr(&c->ccerr, rv, NULL, 0);
            fail_conn(c, E_PROTOCOL, ngtcp2_strerror(rv), true);
            return;
        }
    }
    mark_dirty(c);
}

static void expire_conn(conn_t *c, uint64_t now)
{
    int rv = ngtcp2_conn_handle_expiry(c->qc, now);
    if (rv == NGTCP2_ERR_IDLE_CLOSE || rv == NGTCP2_ERR_HANDSHAKE_TIMEOUT) {
        fail_conn(c, E_TIMEOUT, ngtcp2_strerror(rv), false);
        return;
    }
    if (rv != 0) {
        ngtcp2_connection_close_error_set_transport_error_liberr(&c->ccerr, rv, NULL, 0);
        fail_conn(c, E_PROTOCOL, ngtcp2_strerror(rv), true);
        return;
    }
    mark_dirty(c);
}

/* ---- the event loop ----------------------------------------------------------------- */

static bool worker_finished(worker_t *w, uint64_t now)
{
    if (deadline_passed(now))
        return true;
    return cfg.requests && atomic_load(&claimed) >= cfg.requests && w->outstanding == 0;
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    struct epoll_event evs[MAX_EVENTS];
    pthread_barrier_wait(&start_barrier);
    for (int i = 0; i < w->nconns; i++)
        start_conn(&w->conns[i]);
    uint64_t now = now_ns();
    while (!worker_finished(w, now)) {
        /* A stack: flushing may mark a connection again (a new one after --new-conn's
         * close), and the dirty flag keeps each at most once in it. */
        while (w->ndirty) {
            conn_t *c = w->dirty[--w->ndirty];
            c->dirty = false;
            flush_conn(c);
        }

        uint64_t next = t_end_ns;
        for (int i = 0; i < w->nconns; i++) {
            conn_t *c = &w->conns[i];
            if (c->state == C_OPEN && c->expiry_ns < next)
                next = c->expiry_ns;
            else if (c->state == C_WAIT && c->retry_at_ns < next)
                next = c->retry_at_ns;
        }
        now = now_ns();
        int timeout_ms = 0;
        if (next > now && !w->ndirty) {
            struct itimerspec its = {.it_value = {.tv_sec = (time_t)(next / 1000000000u),
                                                  .tv_nsec = (long)(next % 1000000000u)}};
            timerfd_settime(w->tfd, TFD_TIMER_ABSTIME, &its, NULL);
            timeout_ms = LOOP_CAP_MS;
        }
        int n = epoll_wait(w->ep, evs, MAX_EVENTS, timeout_ms);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == w) {
                uint64_t ticks;
                if (read(w->tfd, &ticks, sizeof ticks) < 0)
                    continue; /* spurious: the timer was re-armed meanwhile */
                continue;
            }
            conn_t *c = evs[i].data.ptr;
            if (c->state == C_OPEN)
                read_conn(c);
        }
        now = now_ns();
        for (int i = 0; i < w->nconns; i++) {
            conn_t *c = &w->conns[i];
            if (c->state == C_OPEN && c->expiry_ns <= now)
                expire_conn(c, now);
            else if (c->state == C_WAIT && c->retry_at_ns <= now)
                start_conn(c);
        }
    }
    for (int i = 0; i < w->nconns; i++) /* in flight at the end: not counted */
        if (w->conns[i].state == C_OPEN)
            close_conn(&w->conns[i]);
    return NULL;
}

/* ---- command line ------------------------------------------------------------------- */

static void usage(const char *prog, FILE *to)
{
    fprintf(to,
            "usage: %s [options] https://HOST[:PORT]/PATH\n       %s [options] HOST:PORT [PATH]\n",
            prog, prog);
    fputs("HTTP/3 (QUIC v1) GET requests; prints requests/s, full handshakes/s, latency, errors.\n"
          "  -c, --conns N        concurrent connections (default 1)\n"
          "  -m, --streams N      concurrent requests (streams) per connection (default 1)\n"
          "  -n, --requests N     total requests (default 1000 unless -D)\n"
          "  -D, --duration S     run for S seconds instead of a request count\n"
          "  -t, --threads N      threads, each an event loop with its share of -c (default 1)\n"
          "      --cancel         reset every request (RESET_STREAM and STOP_SENDING) as soon\n"
          "                       as its HEADERS are out, as a rapid-reset attack does\n"
          "      --upload N       POST requests with a body of N bytes; with --cancel, each\n"
          "                       is reset once its HEADERS and some of the body are out\n"
          "      --new-conn       one request per connection, then a new connection:\n"
          "                       measures full handshakes/s (no resumption, no tickets)\n"
          "      --sni NAME       server name sent and verified (default: the URL host, or\n"
          "                       localhost when it is an IP address)\n"
          "      --cacert FILE    verify the server against these CA certificates (PEM)\n"
          "                       (default: the system trust store)\n"
          "      --insecure       do not verify the server certificate\n"
          "      --priority STR   GnuTLS priority string (default: TLS 1.3 with AES-128-GCM,\n"
          "                       AES-256-GCM, ChaCha20; X25519, P-256, P-384; as browsers);\n"
          "                       one key share is sent, for the first group\n"
          "      --timeout S      handshake and idle timeout of a connection (default 10)\n"
          "      --max-time S     hard limit of a -n run (default 120)\n"
          "      --allow-remote   allow a target outside 127.0.0.0/8 and ::1\n"
          "  -v, --verbose        ngtcp2's log of every connection on stderr (use with -n 1)\n"
          "A request is done when its whole response is in; latency is from submitting it.\n"
          "Errors: connection errors by kind (a request on a failed connection fails too),\n"
          "non-2xx answers and streams reset by the server, each counted apart. With --cancel\n"
          "the run succeeds when requests were cancelled; how the server took it is in the\n"
          "first connection error (a close with its error code).\n",
          to);
}

static bool parse_target(const char *target, const char *path_arg)
{
    const char *p = target, *port = NULL;
    bool url = strncmp(p, "https://", 8) == 0;
    if (url)
        p += 8;
    const char *end = p + strcspn(p, "/");
    const char *host_end;
    size_t alen = (size_t)(end - p);
    if (alen == 0 || alen >= sizeof cfg.authority)
        return false;
    memcpy(cfg.authority, p, alen);
    cfg.authority[alen] = '\0';
    const char *host = p;
    if (*p == '[') {
        host = p + 1;
        host_end = memchr(p, ']', alen);
        if (!host_end)
            return false;
        if (host_end + 1 < end && host_end[1] == ':')
            port = host_end + 2;
        else if (host_end + 1 != end)
            return false;
    } else {
        const char *colon = memchr(p, ':', alen);
        host_end = colon ? colon : end;
        port = colon ? colon + 1 : NULL;
    }
    size_t hlen = (size_t)(host_end - host);
    if (hlen == 0 || hlen >= sizeof cfg.host)
        return false;
    memcpy(cfg.host, host, hlen);
    cfg.host[hlen] = '\0';
    char portbuf[8] = "443";
    if (port) {
        size_t plen = (size_t)(end - port);
        if (plen == 0 || plen >= sizeof portbuf)
            return false;
        memcpy(portbuf, port, plen);
        portbuf[plen] = '\0';
    } else if (!url) {
        return false;
    }
    const char *path = url ? (*end ? end : "/") : (path_arg ? path_arg : "/");
    if (path_arg && url)
        return false;
    if (path[0] != '/' || strlen(path) >= sizeof cfg.path)
        return false;
    strcpy(cfg.path, path);

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM}, *res;
    int rv = getaddrinfo(cfg.host, portbuf, &hints, &res);
    if (rv != 0) {
        fprintf(stderr, "h3load: %s: %s\n", cfg.host, gai_strerror(rv));
        return false;
    }
    memcpy(&cfg.addr, res->ai_addr, res->ai_addrlen);
    cfg.addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    return true;
}

static bool is_loopback(void)
{
    if (cfg.addr.ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&cfg.addr;
        return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
    }
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&cfg.addr;
    return IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
}

static bool is_ip_literal(const char *s)
{
    uint8_t buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static void on_sigint(int sig)
{
    atomic_store(&stop_now, true);
}

enum {
    OPT_NEW_CONN = 256,
    OPT_SNI,
    OPT_CACERT,
    OPT_INSECURE,
    OPT_TIMEOUT,
    OPT_MAX_TIME,
    OPT_ALLOW_REMOTE,
    OPT_PRIORITY,
    OPT_CANCEL,
    OPT_UPLOAD
};

static void sum_stats(stats_t *sum, const stats_t *st)
{
    sum->ok += st->ok;
    sum->non2xx += st->non2xx;
    sum->reset += st->reset;
    sum->conn_failed += st->conn_failed;
    sum->cancelled += st->cancelled;
    sum->handshakes += st->handshakes;
    for (int k = 0; k < E_KINDS; k++)
        sum->conn_err[k] += st->conn_err[k];
    sum->body_bytes += st->body_bytes;
    sum->tx_bytes += st->tx_bytes;
    sum->rx_bytes += st->rx_bytes;
    sum->tx_pkts += st->tx_pkts;
    sum->rx_pkts += st->rx_pkts;
    sum->tx_dropped += st->tx_dropped;
    for (int b = 0; b < HIST_BUCKETS; b++) {
        sum->hist_req[b] += st->hist_req[b];
        sum->hist_hs[b] += st->hist_hs[b];
    }
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"conns", required_argument, NULL, 'c'},
        {"streams", required_argument, NULL, 'm'},
        {"requests", required_argument, NULL, 'n'},
        {"duration", required_argument, NULL, 'D'},
        {"threads", required_argument, NULL, 't'},
        {"new-conn", no_argument, NULL, OPT_NEW_CONN},
        {"sni", required_argument, NULL, OPT_SNI},
        {"cacert", required_argument, NULL, OPT_CACERT},
        {"insecure", no_argument, NULL, OPT_INSECURE},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"max-time", required_argument, NULL, OPT_MAX_TIME},
        {"allow-remote", no_argument, NULL, OPT_ALLOW_REMOTE},
        {"priority", required_argument, NULL, OPT_PRIORITY},
        {"cancel", no_argument, NULL, OPT_CANCEL},
        {"upload", required_argument, NULL, OPT_UPLOAD},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "c:m:n:D:t:vh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            cfg.conns = atoi(optarg);
            break;
        case 'm':
            cfg.streams = atoi(optarg);
            break;
        case 'n':
            cfg.requests = strtoull(optarg, NULL, 10);
            if (!cfg.requests)
                cfg.requests = UINT64_MAX; /* refused below */
            break;
        case 'D':
            cfg.duration_s = atof(optarg);
            break;
        case 't':
            cfg.threads = atoi(optarg);
            break;
        case OPT_NEW_CONN:
            cfg.new_conn = true;
            break;
        case OPT_SNI:
            cfg.sni = optarg;
            break;
        case OPT_CACERT:
            cfg.cacert = optarg;
            break;
        case OPT_INSECURE:
            cfg.insecure = true;
            break;
        case OPT_TIMEOUT:
            cfg.timeout_s = atof(optarg);
            break;
        case OPT_MAX_TIME:
            cfg.max_time_s = atof(optarg);
            break;
        case OPT_ALLOW_REMOTE:
            cfg.allow_remote = true;
            break;
        case OPT_PRIORITY:
            cfg.priority = optarg;
            break;
        case OPT_CANCEL:
            cfg.cancel = true;
            break;
        case OPT_UPLOAD: {
            char *end;
            errno = 0;
            cfg.upload_len = strtoull(optarg, &end, 10);
            if (errno != 0 || end == optarg || *end != '\0' || optarg[0] == '-') {
                fprintf(stderr, "h3load: --upload wants a byte count, not \"%s\"\n", optarg);
                return 2;
            }
            cfg.upload = true;
            break;
        }
        case 'v':
            cfg.verbose = true;
            break;
        case 'h':
            usage(argv[0], stdout);
            return 0;
        default:
            usage(argv[0], stderr);
            return 2;
        }
    }
    int npos = argc - optind;
    if (npos < 1 || npos > 2 || !parse_target(argv[optind], npos == 2 ? argv[optind + 1] : NULL)) {
        usage(argv[0], stderr);
        return 2;
    }
    if (cfg.requests && cfg.duration_s > 0) {
        fprintf(stderr, "h3load: -n and -D exclude each other\n");
        return 2;
    }
    if (!cfg.requests && cfg.duration_s <= 0)
        cfg.requests = 1000;
    if (cfg.conns < 1 || cfg.streams < 1 || cfg.streams > MAX_STREAMS || cfg.threads < 1 ||
        cfg.threads > cfg.conns || cfg.requests == UINT64_MAX || cfg.duration_s > 3600 ||
        cfg.timeout_s <= 0 || cfg.max_time_s <= 0 || cfg.max_time_s > 3600 ||
        (cfg.cacert && cfg.insecure)) {
        usage(argv[0], stderr);
        return 2;
    }
    if (cfg.new_conn && cfg.streams > 1) {
        fprintf(stderr, "h3load: --new-conn sends one request per connection; drop -m\n");
        return 2;
    }
    if (!cfg.allow_remote && !is_loopback()) {
        fprintf(stderr, "h3load: %s is not a loopback address (use --allow-remote)\n", cfg.host);
        return 2;
    }
    if (!cfg.sni)
        cfg.sni = is_ip_literal(cfg.host) ? "localhost" : cfg.host;

    const char *bad = NULL;
    if (gnutls_priority_init(&priority, cfg.priority ? cfg.priority : DEFAULT_PRIORITY, &bad) !=
        0) {
        fprintf(stderr, "h3load: bad --priority at \"%s\"\n", bad ? bad : "?");
        return 2;
    }
    if (gnutls_certificate_allocate_credentials(&cred) != 0)
        return 1;
    if (cfg.cacert) {
        int rv = gnutls_certificate_set_x509_trust_file(cred, cfg.cacert, GNUTLS_X509_FMT_PEM);
        if (rv <= 0) {
            fprintf(stderr, "h3load: %s: %s\n", cfg.cacert,
                    rv < 0 ? gnutls_strerror(rv) : "no certificate");
            return 1;
        }
    } else if (!cfg.insecure && gnutls_certificate_set_x509_system_trust(cred) < 0) {
        fprintf(stderr, "h3load: cannot load the system trust store\n");
        return 1;
    }

    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_sigint);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    worker_t *workers = calloc((size_t)cfg.threads, sizeof *workers);
    if (!workers)
        return 1;
    for (int i = 0; i < cfg.threads; i++) {
        worker_t *w = &workers[i];
        w->nconns = cfg.conns / cfg.threads + (i < cfg.conns % cfg.threads);
        w->conns = calloc((size_t)w->nconns, sizeof *w->conns);
        w->dirty = calloc((size_t)w->nconns, sizeof *w->dirty);
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        w->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (!w->conns || !w->dirty || w->ep < 0 || w->tfd < 0)
            return 1;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = w};
        if (epoll_ctl(w->ep, EPOLL_CTL_ADD, w->tfd, &ev) != 0)
            return 1;
        for (int j = 0; j < w->nconns; j++) {
            conn_t *c = &w->conns[j];
            c->w = w;
            c->fd = -1;
            c->ref = (ngtcp2_crypto_conn_ref){.get_conn = get_conn, .user_data = c};
            c->streams = calloc((size_t)cfg.streams, sizeof *c->streams);
            if (!c->streams)
                return 1;
            for (int k = 0; k < cfg.streams; k++)
                c->streams[k].id = -1;
        }
    }
    pthread_barrier_init(&start_barrier, NULL, (unsigned)cfg.threads + 1);
    for (int i = 0; i < cfg.threads; i++)
        if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0)
            return 1;
    t_begin_ns = now_ns();
    double limit_s = cfg.requests ? cfg.max_time_s : cfg.duration_s;
    t_end_ns = t_begin_ns + (uint64_t)(limit_s * 1e9);
    pthread_barrier_wait(&start_barrier);

    stats_t *sum = calloc(1, sizeof *sum);
    if (!sum)
        return 1;
    for (int i = 0; i < cfg.threads; i++) {
        pthread_join(workers[i].thread, NULL);
        sum_stats(sum, &workers[i].st);
    }
    uint64_t t_stop = now_ns();
    if (t_stop > t_end_ns)
        t_stop = t_end_ns;
    double secs = (double)(t_stop - t_begin_ns) / 1e9;
    bool cut = cfg.requests && (atomic_load(&stop_now) || now_ns() >= t_end_ns);

    uint64_t done = sum->ok + sum->non2xx + sum->reset + sum->conn_failed + sum->cancelled;
    uint64_t conn_errors = 0;
    for (int k = 0; k < E_KINDS; k++)
        conn_errors += sum->conn_err[k];
    double rps = (double)(sum->ok + sum->non2xx) / secs, hps = (double)sum->handshakes / secs;
    double p50 = (double)hist_quantile(sum->hist_req, 0.50) / 1000,
           p99 = (double)hist_quantile(sum->hist_req, 0.99) / 1000,
           pmax = (double)hist_quantile(sum->hist_req, 1.0) / 1000;

    char addr[INET6_ADDRSTRLEN] = "?";
    uint16_t port;
    if (cfg.addr.ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&cfg.addr;
        inet_ntop(AF_INET, &sin->sin_addr, addr, sizeof addr);
        port = ntohs(sin->sin_port);
    } else {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&cfg.addr;
        inet_ntop(AF_INET6, &sin6->sin6_addr, addr, sizeof addr);
        port = ntohs(sin6->sin6_port);
    }
    printf("h3load: https://%s%s at %s port %u, %d connection(s) x %d stream(s), %d thread(s), "
           "%s%s\n",
           cfg.authority, cfg.path, addr, port, cfg.conns, cfg.streams, cfg.threads,
           cfg.new_conn ? "a new connection per request, " : "",
           cfg.requests ? "by count" : "by time");
    printf("session: %s\n", session_line);
    printf("requests: %llu done in %.2f s = %.1f req/s (2xx %llu, non-2xx %llu, reset %llu, failed "
           "with their connection %llu, cancelled %llu)%s\n",
           (unsigned long long)done, secs, rps, (unsigned long long)sum->ok,
           (unsigned long long)sum->non2xx, (unsigned long long)sum->reset,
           (unsigned long long)sum->conn_failed, (unsigned long long)sum->cancelled,
           cut ? "; cut short by --max-time or SIGINT" : "");
    printf("handshakes: %llu full = %.1f/s, handshake latency p50 %.3f ms, p99 %.3f ms\n",
           (unsigned long long)sum->handshakes, hps,
           (double)hist_quantile(sum->hist_hs, 0.50) / 1000,
           (double)hist_quantile(sum->hist_hs, 0.99) / 1000);
    printf("latency: p50 %.3f ms, p99 %.3f ms, max %.3f ms\n", p50, p99, pmax);
    printf("bytes: response bodies %llu; UDP sent %llu in %llu datagrams (%llu dropped), received "
           "%llu in %llu\n",
           (unsigned long long)sum->body_bytes, (unsigned long long)sum->tx_bytes,
           (unsigned long long)sum->tx_pkts, (unsigned long long)sum->tx_dropped,
           (unsigned long long)sum->rx_bytes, (unsigned long long)sum->rx_pkts);
    printf("errors: connection %llu (", (unsigned long long)conn_errors);
    for (int k = 0; k < E_KINDS; k++)
        printf("%s%s %llu", k ? ", " : "", err_names[k], (unsigned long long)sum->conn_err[k]);
    printf("), non-2xx %llu, reset streams %llu\n", (unsigned long long)sum->non2xx,
           (unsigned long long)sum->reset);
    printf("result: req_per_s=%.1f hs_per_s=%.1f p50_ms=%.3f p99_ms=%.3f conn_errors=%llu "
           "non2xx=%llu reset=%llu cancelled=%llu closed=%llu\n",
           rps, hps, p50, p99, (unsigned long long)conn_errors, (unsigned long long)sum->non2xx,
           (unsigned long long)sum->reset, (unsigned long long)sum->cancelled,
           (unsigned long long)sum->conn_err[E_CLOSED]);
    int rc = sum->ok || sum->cancelled ? 0 : 1;
    for (int i = 0; i < cfg.threads; i++) {
        for (int j = 0; j < workers[i].nconns; j++)
            free(workers[i].conns[j].streams);
        free(workers[i].conns);
        free(workers[i].dirty);
        close(workers[i].ep);
        close(workers[i].tfd);
    }
    free(workers);
    free(sum);
    gnutls_certificate_free_credentials(cred);
    gnutls_priority_deinit(priority);
    return rc;
}
