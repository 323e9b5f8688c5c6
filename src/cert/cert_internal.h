/* cert internals shared by the loader (load.c) and the facts reader (facts.c); not part of
 * the contract in include/tollgate/cert.h. */
#ifndef TOLLGATE_CERT_INTERNAL_H
#define TOLLGATE_CERT_INTERNAL_H

#include <time.h>

#include <openssl/asn1.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "tollgate/cert.h"

/* Fill the facts of c (names, key type and bits, dates, expired, sha256, subject, issuer)
 * from x. Returns 0, or -1 with a short reason in *why. */
int tg__cert_facts(tg_cert_t *c, X509 *x, time_t now, const char **why);

/* Key type and size of a public or private key (NULL gives OTHER and 0 bits). */
tg_key_type_t tg__cert_key_type(const EVP_PKEY *pkey, int *bits);

/* An ASN1_TIME as seconds since the epoch (UTC). Returns 0 or -1. */
int tg__cert_time(const ASN1_TIME *t, time_t *out);

/* "YYYY-MM-DD" (UTC) into out[11]. */
void tg__cert_format_date(time_t t, char out[11]);

#endif
