/* What the files of the tls module share and nobody else may use. */
#ifndef TOLLGATE_TLS_INTERNAL_H
#define TOLLGATE_TLS_INTERNAL_H

#include <stdbool.h>
#include <time.h>

#include <openssl/sha.h>
#include <openssl/ssl.h>

#include "tollgate/cert.h"
#include "tollgate/config.h"
#include "tollgate/tls.h"

/* The process's ticket keys and the check of a decrypted ticket's session. 0 or -1. */
/* tickets.c: ticket keys rotate every TG_TICKET_ROTATE_S; the previous epoch's still
 * decrypt. The epoch now, the key of an epoch (0 or -1), and a clock for tests. */
#define TG_TICKET_ROTATE_S (12 * 3600)
uint64_t tg__tls_ticket_epoch(void);
int tg__tls_ticket_key(uint64_t epoch, unsigned char name[16], unsigned char aes[32],
                       unsigned char hmac[32]);
void tg__tls_tickets_clock(uint64_t (*now_s)(void));
int tg__tls_tickets_attach(SSL_CTX *ctx);
void tg__tls_drain_errors(char *buf, size_t size);

/* verify.c: mutual authentication */

/* Whether x, one of the certificates listed in a listener's ca_certificates, is a trust
 * anchor there: self-signed, or issued by none of the others in `listed` (which may hold x
 * itself). The others only help build chains up to an anchor. */
bool tg__tls_is_anchor(X509 *x, const STACK_OF(X509) * listed);
/* The listener's CAs (anchors marked as such) and CRLs with the flags that check them;
 * NULL on failure. */
X509_STORE *tg__tls_store_build(const tg_conf_listener_t *lc, tg_cert_t *const *certs);
/* Whether a client certificate is within its dates at `now`: what a session that carries
 * it must still be to resume. */
bool tg__tls_peer_valid_at(const X509 *peer, time_t now);
/* Client verification on one context: the store, the verify mode, depth and purpose, and
 * the CA names of the CertificateRequest. Returns 0 or -1. */
int tg__tls_verify_setup(SSL_CTX *ctx, const tg_conf_listener_t *lc, X509_STORE *store);
/* The session id context of the listener: its id and its whole client-verification
 * policy. Returns 0 or -1. */
int tg__tls_sid_ctx(const tg_conf_listener_t *lc, tg_cert_t *const *certs,
                    unsigned char out[SHA256_DIGEST_LENGTH]);

/* The first thing client verification refused in a handshake. */
typedef struct tg__tls_verify_fail_s {
    int error;  /* X509_V_ERR_* */
    int depth;  /* of the refused certificate: 0 is the client's own */
    X509 *leaf; /* the client's certificate (a reference), or NULL */
} tg__tls_verify_fail_t;

/* NULL when verification refused nothing (or never ran). */
const tg__tls_verify_fail_t *tg__tls_verify_failure(const SSL *ssl);

/* identity.c: the identity of a verified certificate; NULL on failure. */
tg_tls_identity_t *tg__tls_identity_new(X509 *cert);

/* outcome.c: why a handshake failed, from what OpenSSL left: the verification failure if
 * there was one, else the error queue (ERR_peek_error's value; 0 when it is empty). */
tg_tls_fail_t tg__tls_fail_classify(const tg__tls_verify_fail_t *vf, unsigned long err);

#endif
