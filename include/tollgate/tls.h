/* tls: OpenSSL server contexts built from a generation (security policies, SNI slots,
 * session tickets shared by every worker, client verification), the non-blocking I/O on
 * one connection, and what a handshake's outcome leaves: identity, counters, a log line. */
#ifndef TOLLGATE_TLS_H
#define TOLLGATE_TLS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include "tollgate/cert.h"
#include "tollgate/config.h"
#include "tollgate/core.h"
#include "tollgate/tls-t.h"

/* One ALB security policy as OpenSSL settings. */
typedef struct tg_tls_policy_s {
    const char *name;
    int min_version; /* TLS1_VERSION ... */
    int max_version;
    const char *ciphers;      /* TLS 1.2 and older */
    const char *ciphersuites; /* TLS 1.3; "" when the policy has no 1.3 */
    int security_level;       /* per context: the system default must not leak in */
} tg_tls_policy_t;

const tg_tls_policy_t *tg_tls_policy(tg_policy_t p);

/* Why a handshake failed: the `reason` of the log line and of
 * tollgate_handshake_failures_total. */
typedef enum {
    TG_TLS_FAIL_NO_CLIENT_CERT = 0,
    TG_TLS_FAIL_UNKNOWN_CA,
    TG_TLS_FAIL_EXPIRED, /* or not yet valid */
    TG_TLS_FAIL_REVOKED,
    TG_TLS_FAIL_DEPTH,    /* more CA certificates than verify_depth */
    TG_TLS_FAIL_BAD_CERT, /* any other fault of the client's certificate */
    TG_TLS_FAIL_PROTOCOL, /* TLS itself: versions, suites, alerts from the client, ... */
    TG_TLS_FAIL_OTHER,    /* the connection broke, or our own side failed */
    TG_TLS_FAIL_COUNT
} tg_tls_fail_t;

/* "no_client_cert", "unknown_ca", "expired", "revoked", "depth", "bad_cert", "protocol",
 * "other". */
const char *tg_tls_fail_name(tg_tls_fail_t reason);
/* The reason for a failed client-certificate verification (an X509_V_ERR_* value). */
tg_tls_fail_t tg_tls_fail_from_verify(long verify_error);

/* Handshake counters of one listener id. They live as long as the process, so a reload
 * keeps counting and a metrics endpoint reads totals; workers add with relaxed atomics. */
typedef struct tg_tls_stats_s {
    char *listener;
    atomic_ulong handshakes; /* completed */
    atomic_ulong failures[TG_TLS_FAIL_COUNT];
    /* The log lines of failures, limited per window (a scanner makes thousands). */
    _Atomic uint64_t _log_window_ms;
    atomic_uint _logged; /* lines written in this window */
    atomic_uint _quiet;  /* failures not written in this window */
    struct tg_tls_stats_s *_next;
} tg_tls_stats_t;

/* The counters of a listener id, made at the first call (control path only). */
tg_tls_stats_t *tg_tls_stats_get(const char *listener);
/* Every listener's counters, in the order they were made (for /metrics). */
void tg_tls_stats_each(void (*fn)(const tg_tls_stats_t *stats, void *arg), void *arg);

/* The TLS side of one HTTPS listener in one generation: a context per SNI slot (slot 0 is
 * the default and the one every handshake starts on). With mutual authentication every
 * slot verifies clients alike against the listener's own trust store, so the client's
 * check never depends on which server certificate SNI picked. */
typedef struct tg_tls_listener_s {
    tg_sni_t sni;
    SSL_CTX **ctx; /* sni.nslots contexts */
    tg_tls_stats_t *stats;
    /* The listener's id and whole client-verification policy as one digest (the session
     * id context): two generations' listeners verify clients alike exactly when equal, so
     * a reload can tell which connections were let in under checks that no longer hold. */
    unsigned char verify_id[32];
    X509_STORE *_verify_store; /* mutual authentication: the listener's CAs and CRLs */
} tg_tls_listener_t;

/* Build the contexts of a listener from loaded certificates (certs[] of the config, by
 * index). Returns 0, or -1 with a problem in errs positioned at the listener. */
int tg_tls_listener_build(tg_tls_listener_t *tl, const tg_config_t *cfg,
                          const tg_conf_listener_t *lc, tg_cert_t *const *certs, tg_errors_t *errs);
void tg_tls_listener_free(tg_tls_listener_t *tl);

/* Process-wide session ticket keys: made once at start, so tickets resume on every worker
 * and across reloads. Call before building any context. */
int tg_tls_tickets_init(void);

/* ---- one connection ----------------------------------------------------------------- */

enum {
    TG_IO_AGAIN = -2, /* would block; the wanted direction is in *want */
    TG_IO_ERROR = -1, /* fatal or a clean close: drop the connection */
};
enum { TG_WANT_READ = 1, TG_WANT_WRITE = 2 };

/* 1 handshake done, TG_IO_AGAIN, TG_IO_ERROR. */
int tg_tls_handshake(SSL *ssl, int *want);
/* bytes read (>0), 0 clean close by the peer, TG_IO_AGAIN, TG_IO_ERROR. */
ssize_t tg_tls_read(SSL *ssl, void *buf, size_t len, int *want);
/* bytes written (>0), TG_IO_AGAIN, TG_IO_ERROR. */
ssize_t tg_tls_write(SSL *ssl, const void *buf, size_t len, int *want);

/* ---- a handshake's outcome (called by the frontend, once per connection) -------------- */

/* The handshake completed: counted, and with mutual authentication the verified client
 * certificate formatted for the connection's whole life (the identity headers and the
 * access log); NULL when the client presented none. Free with tg_tls_identity_free. */
tg_tls_identity_t *tg_tls_handshake_done(const tg_tls_listener_t *tl, SSL *ssl);
void tg_tls_identity_free(tg_tls_identity_t *id);

/* The handshake failed: classified, counted, and logged as one warning line with the
 * listener, the client address, the reason and the client certificate's names when one
 * was sent. A peer that closed before its ClientHello (a port probe) is only a debug
 * line. Empties the OpenSSL error queue. */
void tg_tls_handshake_failed(const tg_tls_listener_t *tl, SSL *ssl, const char *listener,
                             const char *client_addr);

#endif
