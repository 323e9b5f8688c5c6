/* quic internals shared by the files of the module; not part of the contract in
 * include/tollgate/quic.h. */
#ifndef TOLLGATE_QUIC_INTERNAL_H
#define TOLLGATE_QUIC_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <nghttp3/nghttp3.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>

#include "tollgate/proxy.h"
#include "tollgate/quic.h"
#include "tollgate/tls.h"

#define TG__QUIC_TOKEN_KEY_LEN 16 /* AES-128-GCM */
#define TG__QUIC_TOKEN_SALT_LEN 4 /* leading bytes of every token nonce */
#define TG__QUIC_CID_KEY_LEN 16   /* AES-128, one block */
#define TG__QUIC_RESET_SECRET_LEN 32

/* Made once per process by tg_quic_init, then only read. */
typedef struct tg__quic_keys_s {
    uint8_t token_key[TG__QUIC_TOKEN_KEY_LEN];
    uint8_t token_salt[TG__QUIC_TOKEN_SALT_LEN];
    uint8_t cid_key[TG__QUIC_CID_KEY_LEN];
    uint8_t reset_secret[TG__QUIC_RESET_SECRET_LEN];
    uint8_t ticket_secret[TG__QUIC_RESET_SECRET_LEN]; /* session-ticket keys derive from it */
    uint64_t table_key[2];                            /* SipHash key of the connection-id tables */
} tg__quic_keys_t;

/* The process keys, made on first use; NULL when the random generator failed. */
const tg__quic_keys_t *tg__quic_keys(void);

/* The next value of the token nonce counter, which starts at a random value per process.
 * Call only after tg__quic_keys succeeded. */
uint64_t tg__quic_token_counter_next(void);

/* This thread's cipher handles, keyed with the process keys. GnuTLS handles keep per-call
 * state (GCM counters, the CBC IV), so threads cannot share one; each thread makes its own
 * on first use and frees them when it exits. NULL on failure. */
gnutls_aead_cipher_hd_t tg__quic_token_aead(void);
gnutls_cipher_hd_t tg__quic_cid_cipher(void);

/* ---- listener credentials (creds.c) --------------------------------------------------- */

struct tg_quic_listener_s {
    const tg_conf_listener_t *conf;
    tg_sni_t sni;
    gnutls_certificate_credentials_t *creds; /* one per SNI slot */
    gnutls_datum_t ticket_key; /* per listener address: no cross-listener resumption */
    uint8_t ticket_key_bytes[64];
    tg_tls_stats_t *stats;
};

/* A server TLS session for a new connection of ql: TLS 1.3 only, ALPN h3, credentials
 * chosen by SNI once the ClientHello is in, tickets under the listener's key. ref is what
 * gnutls_session_get_ptr gives back (ngtcp2's crypto helper needs it there). */
gnutls_session_t tg__quic_session_new(const tg_quic_listener_t *ql, ngtcp2_crypto_conn_ref *ref);

/* ---- connection-id table (table.c) ---------------------------------------------------- */

typedef struct tg__qconn_s tg__qconn_t;
typedef struct tg__cid_entry_s tg__cid_entry_t;

/* Every connection id of this worker's connections (ours and the client's first DCID),
 * to its connection. Chained, power-of-two buckets, grown at load 1, keyed hash. */
typedef struct tg__cid_table_s {
    uint64_t key[2]; /* hash key: the process key */
    tg__cid_entry_t **buckets;
    size_t nbuckets;
    size_t n;
} tg__cid_table_t;

void tg__cid_table_init(tg__cid_table_t *t);
void tg__cid_table_free(tg__cid_table_t *t);
tg__qconn_t *tg__cid_find(const tg__cid_table_t *t, const uint8_t *cid, size_t len);
void tg__cid_add(tg__cid_table_t *t, const uint8_t *cid, size_t len, tg__qconn_t *c);
/* Only while the id is c's: a newer connection may have taken a reused first DCID. */
void tg__cid_remove(tg__cid_table_t *t, const uint8_t *cid, size_t len, const tg__qconn_t *c);

/* ---- the server and its connections ------------------------------------------------------ */

/* The largest UDP payload there is. */
#define TG__QUIC_RX_MAX 65527

/* One datagram as read, or handed over from the worker it reached. */
typedef struct tg__dgram_s {
    struct tg__dgram_s *next;
    const tg_listener_rt_t *lst; /* of the receiving worker's generation: only for lookups */
    bool handed;                 /* from another worker: its fd is not ours to answer on */
    int fd;                      /* the socket it came in on (handoff: the receiver's) */
    struct sockaddr_storage local;
    socklen_t local_len;
    struct sockaddr_storage remote;
    socklen_t remote_len;
    size_t len;
    uint8_t data[];
} tg__dgram_t;

struct tg_quic_server_s {
    tg_quic_server_conf_t conf;
    tg__cid_table_t cids;
    size_t nconns;       /* of the connection set's, ours */
    size_t nhandshaking; /* handshakes in flight: Retry and admission decisions */
    /* handoff from other workers */
    pthread_mutex_t inbox_lock;
    tg__dgram_t *inbox;
    tg__dgram_t **inbox_tail;
    struct event inbox_ev;
    size_t ninbox;
    size_t inbox_bytes; /* datagram bytes in the inbox */
    /* connections with something to send, flushed once per loop turn */
    struct event flush_ev;
    tg__qconn_t *dirty;
    uint64_t reset_second; /* stateless resets sent in this second of the clock */
    unsigned resets;
    tg__dgram_t *rx; /* the datagram being read, TG__QUIC_RX_MAX bytes of room */
    uint8_t txbuf[1500];
};

/* Paths a connection may move away from in its life; a client past that stays put. */
#define TG__QUIC_PATHS_LEFT 4

/* What the HTTP/3 stream of one request holds (h3.c). */
typedef struct tg__qchunk_s tg__qchunk_t;

typedef struct tg__h3stream_s {
    tg__qconn_t *conn;
    struct event timer; /* while the stream waits on its client (h3.c) */
    struct tg__h3stream_s *prev, *next;
    int64_t id;
    tg_http_fields_t fields; /* the request head as its fields arrive */
    tg_http_request_t req;   /* ... and as the proxy takes it */
    bool rejected;           /* answered by the proxy itself (reject_status); body dropped */
    int reject_status;
    bool headers_done;
    bool started; /* the exchange runs */
    bool fin;     /* the client's stream is complete */
    /* request body the exchange did not take yet (bounded by the stream window) */
    tg_buf_t pending;
    /* response body for nghttp3: chunks from acked to written end */
    tg__qchunk_t *head, *tail; /* head is the oldest unacked chunk */
    size_t head_acked;         /* bytes of head already acked */
    tg__qchunk_t *rd;          /* next chunk to offer, rd_off into it */
    size_t rd_off;
    size_t unacked;   /* queued bytes not acked yet */
    bool resp_eof;    /* the exchange finished: EOF after the last byte */
    bool out_blocked; /* send_body said no: resume when acks drain */
    bool ex_active, ex_done;
    bool body_over;  /* no more request body goes to the exchange */
    bool timer_off;  /* the timer fired, or the stream was abandoned: never armed again */
    bool pushing;    /* inside tg_exchange_write_body: no nested feeding */
    bool push_again; /* the exchange asked for body meanwhile */
    tg_exchange_t ex;
} tg__h3stream_t;

struct tg__qconn_s {
    tg_proxy_conn_t pc; /* in the worker's set: generation, listener, client info */
    tg_quic_server_t *srv;
    tg__qconn_t *dirty_next;
    bool dirty;
    int fd;
    struct sockaddr_storage local;
    socklen_t local_len;
    struct sockaddr_storage remote;
    socklen_t remote_len;
    /* The paths the connection moved away from: never taken again, see tg__qconn_read. */
    struct tg__qpath_s {
        struct sockaddr_storage local;
        struct sockaddr_storage remote;
    } left[TG__QUIC_PATHS_LEFT];
    unsigned nleft;
    ngtcp2_crypto_conn_ref ref;
    ngtcp2_conn *qc;
    nghttp3_conn *h3;
    gnutls_session_t tls;
    ngtcp2_connection_close_error ccerr;
    struct event timer;
    uint8_t odcid[NGTCP2_MAX_CIDLEN]; /* the client's first DCID, also in the table */
    size_t odcid_len;
    bool handshake_done;
    bool counted_handshaking;
    bool failure_counted;
    bool goaway_sent;
    bool closing;        /* CONNECTION_CLOSE written: closing period */
    bool retried;        /* validated by a Retry token: no second Retry */
    unsigned stragglers; /* packets that came in during the closing period */
    uint8_t *close_pkt;  /* resent in answer to packets during the closing period */
    size_t close_len;
    tg__h3stream_t *streams;
    size_t nstreams;
    size_t out_buffered; /* response bytes queued over all streams, not acked yet */
    /* A token bucket of costly cancels (h3.c count_cancel), in quarter-milli-tokens, and
     * when it was last filled; run dry, the client is closed with H3_EXCESSIVE_LOAD
     * (excessive) once the datagram at hand is read. */
    uint64_t cancel_tokens;
    uint64_t cancel_ms;
    bool cancel_started;
    bool excessive;
    char sni[256];
    char cid_hex[2 * NGTCP2_MAX_CIDLEN + 1];
};

/* Give the client n more bytes of flow-control credit on stream_id and on the connection:
 * for framing at once, for body bytes once the exchange has taken them. */
static inline void tg__qconn_credit(tg__qconn_t *c, int64_t stream_id, uint64_t n)
{
    ngtcp2_conn_extend_max_stream_offset(c->qc, stream_id, n);
    ngtcp2_conn_extend_max_offset(c->qc, n);
}

/* conn.c */
tg__qconn_t *tg__qconn_accept(tg_quic_server_t *s, const tg__dgram_t *d, const ngtcp2_pkt_hd *hd,
                              const ngtcp2_cid *odcid, bool retried, bool validated);
/* Feed one datagram to its connection; it may be freed on return. */
void tg__qconn_read(tg__qconn_t *c, const tg__dgram_t *d);
/* Write what the connection has to send (called once per loop turn for dirty ones). */
void tg__qconn_flush(tg__qconn_t *c);
/* Ask for a flush at the end of this loop turn. */
void tg__qconn_kick(tg__qconn_t *c);
/* Close with CONNECTION_CLOSE (NO_ERROR) once requests are done: GOAWAY first. */
void tg__qconn_shutdown(tg__qconn_t *c);
void tg__qconn_free(tg__qconn_t *c);
/* Close now with CONNECTION_CLOSE, no closing period (drain timeout, retire deadline). */
void tg__qconn_close_now(tg__qconn_t *c);
/* How the worker's connection set ends a QUIC connection. */
extern const tg_proxy_conn_ops_t tg__qconn_ops;
bool tg__qconn_idle(const tg__qconn_t *c);

/* h3.c */
int tg__h3_open(tg__qconn_t *c); /* on the 1-RTT keys: the HTTP/3 layer and its streams */
extern const nghttp3_callbacks tg__h3_callbacks;
void tg__h3_stream_free(tg__h3stream_t *st);
/* The client reset its request stream (RESET_STREAM). st: ngtcp2's stream user data, NULL
 * before the HEADERS came. */
void tg__h3_stream_reset(tg__qconn_t *c, tg__h3stream_t *st);
/* Our side of stream_id can no longer be written: the client's STOP_SENDING, seen when the
 * answer is written (ngtcp2 0.12 reports it no other way). */
void tg__h3_stream_write_shut(tg__qconn_t *c, int64_t stream_id);

/* endpoint.c */
void tg__quic_send(int fd, const struct sockaddr *local, socklen_t local_len,
                   const struct sockaddr *remote, socklen_t remote_len, const uint8_t *data,
                   size_t len);
ngtcp2_tstamp tg__quic_now(void);
/* Ask the client of d (an Initial, hd) to prove its address with a Retry. */
void tg__quic_send_retry(tg_quic_server_t *s, const tg__dgram_t *d, const ngtcp2_pkt_hd *hd);

#endif
