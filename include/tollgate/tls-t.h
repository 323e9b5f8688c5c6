/* tls types that other modules hold without needing OpenSSL: the identity of a client
 * whose certificate the handshake verified (mutual authentication). */
#ifndef TOLLGATE_TLS_T_H
#define TOLLGATE_TLS_T_H

#include <stddef.h>

/* Formatted once per connection, right after the handshake, so requests only copy bytes.
 * One allocation holds the struct and its strings (tg_tls_identity_free). */
typedef struct tg_tls_identity_s {
    const char *subject; /* RFC 4514, as `openssl x509 -noout -subject -nameopt RFC2253` */
    const char *issuer;
    size_t subject_len;
    size_t issuer_len;
    char fingerprint[65]; /* SHA-256 of the certificate's DER, lowercase hex */
} tg_tls_identity_t;

#endif
