/* tls: OpenSSL server contexts built from a generation (security policies, SNI slots,
 * session tickets shared by every worker) and the non-blocking I/O on one connection. */
#ifndef TOLLGATE_TLS_H
#define TOLLGATE_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include "tollgate/cert.h"
#include "tollgate/config.h"
#include "tollgate/core.h"

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

/* The TLS side of one HTTPS listener in one generation: a context per SNI slot (slot 0 is
 * the default and the one every handshake starts on). */
typedef struct tg_tls_listener_s {
    tg_sni_t sni;
    SSL_CTX **ctx; /* sni.nslots contexts */
} tg_tls_listener_t;

/* Build the contexts of a listener from loaded certificates (certs[] of the config, by
 * index). Returns 0, or -1 with a problem in errs positioned at the listener. */
int tg_tls_listener_build(tg_tls_listener_t *tl, const tg_config_t *cfg,
                          const tg_conf_listener_t *lc, tg_cert_t *const *certs,
                          tg_errors_t *errs);
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

/* Why the last handshake failed, as a short token for logs ("protocol", "other", ...). */
const char *tg_tls_error_reason(SSL *ssl);

#endif
