/* quic: QUIC listeners serving HTTP/3 (ngtcp2 + nghttp3, TLS 1.3 on GnuTLS): per-listener
 * credentials built into a generation, the per-worker server that owns UDP traffic and
 * connections, and the pure helpers under them: address-validation tokens (Retry and
 * NEW_TOKEN), server connection ids that name their worker, stateless reset tokens. */
#ifndef TOLLGATE_QUIC_H
#define TOLLGATE_QUIC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "tollgate/generation-t.h"
#include "tollgate/loop.h"
#include "tollgate/proxy.h"

/* ---- process keys ------------------------------------------------------------------ */

/* Make the process keys (token AEAD key, connection-id key, stateless-reset secret) with
 * gnutls_rnd. They live as long as the process, so tokens and connection ids stay valid
 * across reloads. Idempotent and thread-safe; every function below calls it too, so an
 * explicit call at start only moves the cost (and a failure) out of the data path.
 * Returns 0, or -1 when the random generator failed. */
int tg_quic_init(void);

/* ---- address-validation tokens ----------------------------------------------------- */

typedef enum {
    TG_QUIC_TOKEN_NONE = 0,      /* not a token of ours */
    TG_QUIC_TOKEN_RETRY = 1,     /* sent in a Retry packet; binds address + port + ODCID */
    TG_QUIC_TOKEN_NEW_TOKEN = 2, /* sent in a NEW_TOKEN frame; binds the address only */
} tg_quic_token_kind_t;

/* Why a token was refused; 0 is success. Each failure has its own code so the listener
 * can count them apart (a flood of forged tokens looks different from clock trouble). */
typedef enum {
    TG_QUIC_TOKEN_OK = 0,
    TG_QUIC_TOKEN_EMALFORMED = -1, /* not one of ours: wrong length or first byte */
    TG_QUIC_TOKEN_ETAG = -2,       /* authentication failed: forged, tampered, old key */
    TG_QUIC_TOKEN_EKIND = -3,      /* genuine, but of the other kind */
    TG_QUIC_TOKEN_EEXPIRED = -4,   /* older than its lifetime, or issued in the future */
    TG_QUIC_TOKEN_EADDR = -5,      /* issued to another client address (or family) */
    TG_QUIC_TOKEN_EPORT = -6,      /* retry token issued to another client port */
    TG_QUIC_TOKEN_EARG = -7,       /* bad arguments: address family, lengths, buffer */
    TG_QUIC_TOKEN_EINTERNAL = -8,  /* the crypto library failed */
} tg_quic_token_err_t;

/* RFC 9000 §8.1.2 wants Retry tokens short-lived; NEW_TOKEN ones serve a later connection. */
#define TG_QUIC_RETRY_TOKEN_LIFETIME_NS (10ull * 1000000000ull)
#define TG_QUIC_NEW_TOKEN_LIFETIME_NS (3600ull * 1000000000ull)

/* The longest connection id QUIC v1 allows (RFC 9000 §17.2). */
#define TG_QUIC_MAX_CIDLEN 20
/* The longest token tg_quic_token_make writes (a Retry token with a 20-byte ODCID). */
#define TG_QUIC_TOKEN_MAX_LEN 77

/* The kind a token claims by its first byte, before any check (to pick the verify call,
 * as RFC 9000 §8.1.3 lets a server tell its token types apart); TG_QUIC_TOKEN_NONE when
 * it is not ours. */
tg_quic_token_kind_t tg_quic_token_kind(const uint8_t *token, size_t len);

/* Seal a token of `kind` for the client at `sa` (AF_INET or AF_INET6), issued at `now_ns`
 * (the clock the verifier will use: ngtcp2's timestamps, CLOCK_MONOTONIC in ns). A Retry
 * token carries the original destination connection id `odcid` (0..20 bytes); NEW_TOKEN
 * takes none (pass NULL, 0). Writes at most TG_QUIC_TOKEN_MAX_LEN bytes into out.
 * Returns the token length, or a negative tg_quic_token_err_t. */
ssize_t tg_quic_token_make(uint8_t *out, size_t out_size, tg_quic_token_kind_t kind,
                           const struct sockaddr *sa, socklen_t salen, const uint8_t *odcid,
                           size_t odcid_len, uint64_t now_ns);

/* Check a token a client sent: authenticity, that it is of `kind`, its age against that
 * kind's lifetime, and the client address (and port, for Retry). Any bytes are safe.
 * For a Retry token the original destination connection id is copied to odcid (room for
 * TG_QUIC_MAX_CIDLEN bytes) and its length to *odcid_len; both may be NULL.
 * Returns TG_QUIC_TOKEN_OK or the first failed check. */
int tg_quic_token_verify(const uint8_t *token, size_t len, tg_quic_token_kind_t kind,
                         const struct sockaddr *sa, socklen_t salen, uint64_t now_ns,
                         uint8_t *odcid, size_t *odcid_len);

/* A constant string naming a tg_quic_token_err_t. */
const char *tg_quic_token_strerror(int err);

/* ---- connection ids ----------------------------------------------------------------- */

/* Every connection id the server issues has this length (ngtcp2_pkt_decode_version_cid
 * needs one fixed length to find the DCID of short-header packets). */
#define TG_QUIC_CID_LEN 18
/* Workers a connection id can name: 0 .. TG_QUIC_MAX_WORKERS - 1. */
#define TG_QUIC_MAX_WORKERS 4096
#define TG_QUIC_RESET_TOKEN_LEN 16

/* A fresh random connection id that routes to `worker`, encrypted with the process key so
 * that a peer can neither read the worker nor link two ids of one connection.
 * Returns 0, or -1 when worker is out of range or the crypto library failed. */
int tg_quic_cid_new(uint8_t cid[TG_QUIC_CID_LEN], int worker);

/* The worker a connection id names, or -1 when it is not one of ours (wrong length, or not
 * made with this process key: a client-chosen Initial DCID, a forged or altered id). */
int tg_quic_cid_worker(const uint8_t *cid, size_t len);

/* The stateless reset token of a connection id (RFC 9000 §10.3.2): HMAC-SHA256 of the id
 * under the process secret, cut to 16 bytes, so every worker derives the same token
 * without shared state. Returns 0, or -1 when cidlen > TG_QUIC_MAX_CIDLEN or on failure. */
int tg_quic_reset_token(uint8_t token[TG_QUIC_RESET_TOKEN_LEN], const uint8_t *cid, size_t cidlen);

/* ---- listeners (control path) -------------------------------------------------------- */

/* The TLS side of one QUIC listener in one generation: GnuTLS credentials per SNI slot,
 * made from the same PEM bytes as the OpenSSL contexts, and the SNI table. Connections
 * hold the generation, which holds this, which GnuTLS sessions point into (the type is
 * in quic-t.h, for the generation to hold). */

/* Build the listener lc of cfg from the loaded certs (by config index). Problems go to
 * errs, naming the listener; returns NULL then. */
tg_quic_listener_t *tg_quic_listener_new(const tg_config_t *cfg, const tg_conf_listener_t *lc,
                                         tg_cert_t *const *certs, tg_errors_t *errs);
void tg_quic_listener_free(tg_quic_listener_t *ql);

/* ---- the server of one worker ------------------------------------------------------------ */

typedef struct tg_quic_server_s tg_quic_server_t;

typedef struct tg_quic_server_conf_s {
    tg_loop_t *loop;
    unsigned worker; /* this worker's id: named by every connection id */
    unsigned nworkers;
    tg_quic_server_t *_Atomic *peers; /* nworkers slots, filled as workers start: handoff */
    /* The worker's connection set: its generation, the process-wide count, drain, retire
     * and reap; a draining set admits no new connection. */
    tg_proxy_conns_t *conns;
    atomic_ulong *max_conns; /* global.limits.max_connections as the open-files limit fits it */
} tg_quic_server_conf_t;

/* A server for one worker's loop; it takes its slot in conf->peers. NULL on failure. */
tg_quic_server_t *tg_quic_server_new(const tg_quic_server_conf_t *conf);
void tg_quic_server_free(tg_quic_server_t *s);

/* Ready a fresh UDP socket before bind: ask for each datagram's local address (a wildcard
 * bind must answer from the address the client used). Returns 0 or -1 with errno. */
int tg_quic_socket_prepare(int fd, int family);

/* fd, this worker's socket bound to `bound`, is readable: read and serve its datagrams.
 * l is the listener of the worker's generation on it, or NULL when it was removed (the
 * socket then only serves the connections still on it). */
void tg_quic_on_readable(tg_quic_server_t *s, int fd, const struct sockaddr *bound,
                         socklen_t bound_len, const tg_listener_rt_t *l);
/* Connections that send through fd. */
size_t tg_quic_conns_on(const tg_quic_server_t *s, int fd);

/* Close this server's connections now (a test's or the worker's last step; stopping and
 * reloads end them through the connection set). */
void tg_quic_close_all(tg_quic_server_t *s);
size_t tg_quic_nconns(const tg_quic_server_t *s);

#endif
