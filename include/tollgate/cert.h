/* cert: certificates of the store as loaded objects (PEM -> X509/EVP_PKEY plus the facts
 * operators and the SNI table need), and the SNI name table shared by TLS and QUIC. */
#ifndef TOLLGATE_CERT_H
#define TOLLGATE_CERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "tollgate/config.h"
#include "tollgate/core.h"

typedef enum { TG_KEY_RSA = 0, TG_KEY_EC = 1, TG_KEY_OTHER = 2 } tg_key_type_t;

typedef struct tg_cert_s {
    char *id;
    tg_cert_type_t type;
    /* server: leaf, intermediates (may be empty, never NULL), key */
    X509 *leaf;
    STACK_OF(X509) * chain;
    EVP_PKEY *key;
    /* ca: every certificate of the bundle (leaf is the first), optional CRL */
    STACK_OF(X509) * cas;
    X509_CRL *crl;
    /* facts of the leaf (first CA for a ca entry) */
    char **names; /* lowercased DNS SANs, or the CN when there is no DNS SAN */
    size_t nnames;
    tg_key_type_t key_type;
    int key_bits;
    time_t not_before;
    time_t not_after;
    bool expired;
    unsigned char sha256[32]; /* of the leaf DER */
    char *subject;            /* RFC 2253 form */
    char *issuer;
    /* the exact bytes read, so other TLS stacks (GnuTLS for QUIC) see the same input */
    char *cert_pem;
    size_t cert_pem_len;
    char *key_pem;
    size_t key_pem_len;
} tg_cert_t;

/* Read and validate the files of one config entry. Problems go to errs with the position
 * of the offending key in `cfg_path` ("cert:" or "key:"), each naming the id: unreadable
 * file, malformed PEM, no certificate, key/cert mismatch, unsupported key type, not yet
 * valid (error); expired, key file readable or writable by group or others (warning, still
 * loaded). Returns NULL on error. */
tg_cert_t *tg_cert_load(const tg_conf_cert_t *cc, const char *cfg_path, tg_errors_t *errs);

/* The same from memory (admin import). err gets one message on failure. */
tg_cert_t *tg_cert_load_mem(const char *id, tg_cert_type_t type, const char *cert_pem,
                            size_t cert_len, const char *key_pem, size_t key_len, char *err,
                            size_t err_size);

void tg_cert_free(tg_cert_t *cert);

/* A distinguished name as `openssl x509 -nameopt RFC2253` prints it (RFC 4514 form), with
 * any control byte escaped as \XX so it is safe in a header or a log line; malloc'd. */
char *tg_cert_dn_format(const X509_NAME *name);

/* "rsa", "ec", "other" */
const char *tg_cert_key_type_name(tg_key_type_t t);
/* 64 lowercase hex digits and NUL into out[65]. */
void tg_cert_hex_sha256(const unsigned char sha[32], char out[65]);

/* ---- SNI ------------------------------------------------------------------------------ */

/* A slot is what one SNI answer resolves to: at most one certificate per key type, so a
 * client that supports ECDSA gets EC and one that does not gets RSA. */
typedef struct tg_sni_slot_s {
    const tg_cert_t *ec;
    const tg_cert_t *rsa;
} tg_sni_slot_t;

typedef struct tg_sni_entry_s tg_sni_entry_t; /* private */

typedef struct tg_sni_s {
    tg_sni_slot_t *slots; /* slots[0] is the default */
    size_t nslots;
    tg_sni_entry_t *_entries; /* open-addressing table: name -> slot */
    size_t _cap;
    uint64_t _seed; /* of the name hash, random per table */
} tg_sni_t;

/* Build the table of one listener: certs[0] is the default certificate, the rest the
 * extended ones in config order. For every name, the candidates are the certificates that
 * carry it; the first of each key type wins. The default slot holds the default
 * certificate plus a certificate of the other key type whose names equal the default's.
 * Returns 0, or -1 on allocation failure. */
int tg_sni_build(tg_sni_t *sni, const tg_cert_t *const *certs, size_t ncerts);
/* Exact name (case-insensitive) > wildcard "*.rest" matching exactly one leftmost label >
 * the default (0). host need not be NUL-terminated; a trailing dot is ignored. */
size_t tg_sni_lookup(const tg_sni_t *sni, const char *host, size_t host_len);
void tg_sni_free(tg_sni_t *sni);

#endif
