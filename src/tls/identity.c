/* The client's identity as the backend and the access log see it: distinguished names in
 * RFC 4514 form and the certificate's SHA-256, formatted once per connection. */
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>

#include "tollgate/tls.h"
#include "tls_internal.h"

tg_tls_identity_t *tg__tls_identity_new(X509 *cert)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (X509_digest(cert, EVP_sha256(), md, &mdlen) != 1 || mdlen != 32)
        return NULL;
    char *subject = tg_cert_dn_format(X509_get_subject_name(cert));
    char *issuer = tg_cert_dn_format(X509_get_issuer_name(cert));
    tg_tls_identity_t *id = NULL;
    if (subject != NULL && issuer != NULL) {
        /* One block: the struct, then both strings; idle connections pay one pointer. */
        size_t slen = strlen(subject), ilen = strlen(issuer);
        id = tg_malloc(sizeof(*id) + slen + 1 + ilen + 1);
        char *text = (char *)(id + 1);
        memcpy(text, subject, slen + 1);
        memcpy(text + slen + 1, issuer, ilen + 1);
        id->subject = text;
        id->subject_len = slen;
        id->issuer = text + slen + 1;
        id->issuer_len = ilen;
        tg_cert_hex_sha256(md, id->fingerprint);
    }
    free(subject);
    free(issuer);
    return id;
}

void tg_tls_identity_free(tg_tls_identity_t *id)
{
    free(id);
}
