/* The client's identity as the backend and the access log see it: distinguished names in
 * RFC 4514 form and the certificate's SHA-256, formatted once per connection. */
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>

#include "tollgate/tls.h"
#include "tls_internal.h"

/* Bytes an HTTP header value or a log line must not carry raw. */
static bool unsafe(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

char *tg_tls_dn_format(const X509_NAME *name)
{
    if (name == NULL)
        return NULL;
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL)
        return NULL;
    char *out = NULL;
    /* XN_FLAG_RFC2253 is what `-nameopt RFC2253` selects: RFC 2253 escaping, most
     * specific RDN first, "+" inside a multi-valued RDN, unknown types as #hex, and every
     * control and non-ASCII byte as \XX. */
    if (X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253) >= 0) {
        char *data = NULL;
        long n = BIO_get_mem_data(b, &data);
        size_t len = n > 0 ? (size_t)n : 0, extra = 0;
        for (size_t i = 0; i < len; i++)
            extra += unsafe((unsigned char)data[i]) ? 2 : 0;
        out = tg_malloc(len + extra + 1);
        size_t o = 0;
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)data[i];
            if (unsafe(c)) {
                /* OpenSSL escapes these already; should that ever change, a header value
                 * still never carries a CR or LF. */
                static const char hex[] = "0123456789ABCDEF";
                out[o++] = '\\';
                out[o++] = hex[c >> 4];
                out[o++] = hex[c & 15];
            } else {
                out[o++] = (char)c;
            }
        }
        out[o] = '\0';
    }
    BIO_free(b);
    return out;
}

tg_tls_identity_t *tg__tls_identity_new(X509 *cert)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (X509_digest(cert, EVP_sha256(), md, &mdlen) != 1 || mdlen != 32)
        return NULL;
    char *subject = tg_tls_dn_format(X509_get_subject_name(cert));
    char *issuer = tg_tls_dn_format(X509_get_issuer_name(cert));
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
