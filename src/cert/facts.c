/* cert facts: what operators and the SNI table read off a certificate (names, key, dates,
 * fingerprint, subject and issuer), and their small formatters. */
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include "cert_internal.h"

const char *tg_cert_key_type_name(tg_key_type_t t)
{
    switch (t) {
    case TG_KEY_RSA:
        return "rsa";
    case TG_KEY_EC:
        return "ec";
    default:
        return "other";
    }
}

void tg_cert_hex_sha256(const unsigned char sha[32], char out[65])
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < 32; i++) {
        out[2 * i] = hex[sha[i] >> 4];
        out[2 * i + 1] = hex[sha[i] & 0x0f];
    }
    out[64] = '\0';
}

tg_key_type_t tg__cert_key_type(const EVP_PKEY *pkey, int *bits)
{
    *bits = 0;
    if (pkey == NULL)
        return TG_KEY_OTHER;
    *bits = EVP_PKEY_get_bits(pkey);
    switch (EVP_PKEY_get_base_id(pkey)) {
    case EVP_PKEY_RSA:
        return TG_KEY_RSA;
    case EVP_PKEY_EC:
        return TG_KEY_EC;
    default:
        return TG_KEY_OTHER;
    }
}

int tg__cert_time(const ASN1_TIME *t, time_t *out)
{
    struct tm tm;
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return -1;
    *out = timegm(&tm);
    return 0;
}

void tg__cert_format_date(time_t t, char out[11])
{
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(out, 11, "%Y-%m-%d", &tm) == 0)
        strcpy(out, "?");
}

/* Bytes an HTTP header value or a log line must not carry raw. */
static bool unsafe(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

char *tg_cert_dn_format(const X509_NAME *name)
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

/* Only ASCII is folded: DNS names are ASCII (IDNs travel as punycode), and the locale of
 * the process must not change which certificate a client gets. */
static void ascii_lower(char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] >= 'A' && s[i] <= 'Z')
            s[i] = (char)(s[i] - 'A' + 'a');
    }
}

/* Duplicates go through a set: a certificate may list tens of thousands of names, and
 * comparing each with all before it made loading one such certificate take seconds. */
static void add_name(tg_cert_t *c, size_t *cap, tg__nameset_t *seen, const unsigned char *s,
                     int len)
{
    /* An embedded NUL is the classic trick to make "evil.com\0.good.com" look like a
     * name of good.com to C string code; such an entry names nothing. */
    if (s == NULL || len <= 0 || memchr(s, '\0', (size_t)len) != NULL)
        return;
    char *name = tg_strndup((const char *)s, (size_t)len);
    ascii_lower(name, (size_t)len);
    /* The set points into name, which c->names keeps from here on. */
    if (tg__nameset_add(seen, name, (size_t)len) != 1) {
        free(name);
        return;
    }
    if (c->nnames == *cap) {
        *cap = *cap ? *cap * 2 : 4;
        c->names = tg_realloc(c->names, *cap * sizeof(*c->names));
    }
    c->names[c->nnames++] = name;
}

static int read_names(tg_cert_t *c, X509 *x)
{
    size_t cap = 0;
    GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int nsans = sk_GENERAL_NAME_num(sans);
    /* Bounded by the certificate itself, which the loader bounds (1 MiB); plus the CN. */
    tg__nameset_t seen;
    if (tg__nameset_init(&seen, (nsans > 0 ? (size_t)nsans : 0) + 1) != 0) {
        GENERAL_NAMES_free(sans);
        return -1;
    }
    for (int i = 0; i < nsans; i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
        if (gn->type == GEN_DNS)
            add_name(c, &cap, &seen, ASN1_STRING_get0_data(gn->d.dNSName),
                     ASN1_STRING_length(gn->d.dNSName));
    }
    GENERAL_NAMES_free(sans);
    if (c->nnames > 0) {
        tg__nameset_free(&seen);
        return 0;
    }

    /* With several CNs the last one is the most specific (it is what Go and browsers
     * that still read the CN take). */
    const X509_NAME *subject = X509_get_subject_name(x);
    int last = -1;
    for (int i = -1; (i = X509_NAME_get_index_by_NID(subject, NID_commonName, i)) >= 0;)
        last = i;
    if (last >= 0) {
        const ASN1_STRING *cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, last));
        unsigned char *utf8 = NULL;
        int n = ASN1_STRING_to_UTF8(&utf8, cn);
        if (n > 0)
            add_name(c, &cap, &seen, utf8, n);
        OPENSSL_free(utf8);
    }
    tg__nameset_free(&seen);
    return 0;
}

int tg__cert_facts(tg_cert_t *c, X509 *x, time_t now, const char **why)
{
    if (read_names(c, x) != 0) {
        *why = "out of memory for the names of the certificate";
        return -1;
    }
    c->key_type = tg__cert_key_type(X509_get0_pubkey(x), &c->key_bits);
    if (tg__cert_time(X509_get0_notBefore(x), &c->not_before) != 0 ||
        tg__cert_time(X509_get0_notAfter(x), &c->not_after) != 0) {
        *why = "unreadable validity dates";
        return -1;
    }
    c->expired = c->not_after < now;

    unsigned int len = 0;
    if (X509_digest(x, EVP_sha256(), c->sha256, &len) != 1 || len != sizeof(c->sha256)) {
        *why = "cannot compute the SHA-256 fingerprint";
        return -1;
    }
    c->subject = tg_cert_dn_format(X509_get_subject_name(x));
    c->issuer = tg_cert_dn_format(X509_get_issuer_name(x));
    if (c->subject == NULL || c->issuer == NULL) {
        *why = "cannot format the subject or issuer";
        return -1;
    }
    /* Lookups above may leave entries (a missing extension is not an error here). */
    ERR_clear_error();
    return 0;
}
