/* Client verification for mutual authentication: the per-listener trust store, the verify
 * settings every SNI slot gets, the first failure of a handshake kept for its log line,
 * and the session id context that keeps sessions inside one listener's trust policy. */
#include <pthread.h>
#include <string.h>

#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "tollgate/tls.h"
#include "tls_internal.h"

/* ---- the trust store ------------------------------------------------------------------- */

X509_STORE *tg__tls_store_build(const tg_conf_listener_t *lc, tg_cert_t *const *certs)
{
    X509_STORE *store = X509_STORE_new();
    if (store == NULL)
        return NULL;
    bool any_crl = false;
    for (size_t i = 0; i < lc->mtls.ncas; i++) {
        const tg_cert_t *ca = certs[lc->mtls.cas[i]];
        /* A CA listed by two entries is added twice; OpenSSL keeps one. */
        for (int j = 0; j < sk_X509_num(ca->cas); j++)
            if (X509_STORE_add_cert(store, sk_X509_value(ca->cas, j)) != 1)
                goto fail;
        if (ca->crl != NULL) {
            if (X509_STORE_add_crl(store, ca->crl) != 1)
                goto fail;
            any_crl = true;
        }
    }
    /* Every CA of the listener is a trust anchor, root or not: SPEC §1 has clients chain
     * to "one of the listener's CA certificates", so a bundle of only an intermediate
     * works as an operator would expect. */
    unsigned long flags = X509_V_FLAG_PARTIAL_CHAIN;
    /* With a CRL anywhere, check every certificate of the chain, not only the client's:
     * a revoked intermediate must fail too. An issuer without a CRL would then fail every
     * client (unable to get CRL); verify_cb forgives exactly that case, so a CRL given for
     * one CA is enforced without demanding one for every CA. */
    if (any_crl)
        flags |= X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL;
    if (X509_STORE_set_flags(store, flags) != 1)
        goto fail;
    return store;

fail:
    X509_STORE_free(store);
    return NULL;
}

/* ---- the first failure of a handshake -------------------------------------------------- */

static int fail_idx = -1;
static pthread_once_t fail_once = PTHREAD_ONCE_INIT;

static void fail_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    tg__tls_verify_fail_t *f = ptr;
    if (f == NULL)
        return;
    X509_free(f->leaf);
    free(f);
}

static void fail_index_init(void)
{
    fail_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, fail_free);
}

const tg__tls_verify_fail_t *tg__tls_verify_failure(const SSL *ssl)
{
    /* The index may be made by a reload's build while workers already run: pthread_once
     * is what makes reading it here safe. */
    pthread_once(&fail_once, fail_index_init);
    if (fail_idx < 0)
        return NULL;
    return SSL_get_ex_data(ssl, fail_idx);
}

/* Kept on the SSL because OpenSSL stores the client's certificate only once it verified:
 * after a failure the log line would have no names to show. Allocated on failure only. */
static void record_failure(X509_STORE_CTX *xs, int err)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    if (ssl == NULL || fail_idx < 0 || SSL_get_ex_data(ssl, fail_idx) != NULL)
        return;
    tg__tls_verify_fail_t *f = tg_calloc(1, sizeof(*f));
    f->error = err;
    f->depth = X509_STORE_CTX_get_error_depth(xs);
    f->leaf = X509_STORE_CTX_get0_cert(xs);
    if (f->leaf != NULL)
        X509_up_ref(f->leaf);
    if (SSL_set_ex_data(ssl, fail_idx, f) != 1)
        fail_free(NULL, f, NULL, 0, 0, NULL);
}

/* Whether the store holds a CRL issued by `issuer`. */
static bool have_crl(X509_STORE_CTX *xs, const X509_NAME *issuer)
{
    STACK_OF(X509_CRL) *crls = X509_STORE_CTX_get1_crls(xs, issuer);
    bool have = sk_X509_CRL_num(crls) > 0;
    sk_X509_CRL_pop_free(crls, X509_CRL_free);
    return have;
}

static int verify_cb(int ok, X509_STORE_CTX *xs)
{
    if (ok)
        return 1;
    int err = X509_STORE_CTX_get_error(xs);
    X509 *cur = X509_STORE_CTX_get_current_cert(xs);
    if (err == X509_V_ERR_UNABLE_TO_GET_CRL && cur != NULL &&
        !have_crl(xs, X509_get_issuer_name(cur))) {
        /* The operator gave no CRL for this issuer: nothing to check it against, which is
         * not a reason to refuse. The error is cleared, or it would stay the verify result
         * of a handshake that succeeds. */
        X509_STORE_CTX_set_error(xs, X509_V_OK);
        return 1;
    }
    record_failure(xs, err);
    /* OpenSSL answers "not yet valid" with bad_certificate; RFC 8446 §6.2 has
     * certificate_expired for "expired or not currently valid". The recorded error keeps
     * the truth for the log line. */
    if (err == X509_V_ERR_CERT_NOT_YET_VALID)
        X509_STORE_CTX_set_error(xs, X509_V_ERR_CERT_HAS_EXPIRED);
    return 0;
}

/* ---- a context's settings -------------------------------------------------------------- */

int tg__tls_verify_setup(SSL_CTX *ctx, const tg_conf_listener_t *lc, X509_STORE *store)
{
    pthread_once(&fail_once, fail_index_init);
    if (fail_idx < 0 || SSL_CTX_set1_verify_cert_store(ctx, store) != 1)
        return -1;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_cb);
    /* OpenSSL's meaning, as nginx passes it on: how many CA certificates may stand between
     * the client's certificate and the trust anchor. */
    SSL_CTX_set_verify_depth(ctx, (int)lc->mtls.verify_depth);
    /* A certificate with an extended key usage must allow clientAuth. OpenSSL picks this
     * purpose for a server anyway; said here so it does not hang on a default. */
    if (SSL_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT) != 1)
        return -1;

    /* The CertificateRequest names the listener's CAs, so a client holding several
     * certificates can pick the right one. */
    STACK_OF(X509_NAME) *names = sk_X509_NAME_new_null();
    if (names == NULL)
        return -1;
    STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(store);
    for (int i = 0; i < sk_X509_OBJECT_num(objs); i++) {
        X509 *x = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));
        if (x == NULL)
            continue; /* a CRL */
        const X509_NAME *subj = X509_get_subject_name(x);
        bool dup = false;
        for (int j = 0; j < sk_X509_NAME_num(names) && !dup; j++)
            dup = X509_NAME_cmp(sk_X509_NAME_value(names, j), subj) == 0;
        X509_NAME *copy = dup ? NULL : X509_NAME_dup(subj);
        if (!dup && (copy == NULL || sk_X509_NAME_push(names, copy) == 0)) {
            X509_NAME_free(copy);
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            return -1;
        }
    }
    SSL_CTX_set_client_CA_list(ctx, names); /* takes the list */
    return 0;
}

/* ---- session id context ------------------------------------------------------------------ */

int tg__tls_sid_ctx(const tg_conf_listener_t *lc, tg_cert_t *const *certs,
                    unsigned char out[SHA256_DIGEST_LENGTH])
{
    /* A session resumes without the client's certificate being checked again, so it may
     * only resume where the same check would have let it in: the same listener with the
     * same verification (on/off, depth, every CA and CRL). A reload that turns mutual
     * authentication on, swaps a CA or brings a new CRL thus costs each client one full
     * handshake, and a ticket from a listener without it never skips the certificate. */
    EVP_MD_CTX *h = EVP_MD_CTX_new();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    int ok = h != NULL && EVP_DigestInit_ex(h, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(h, lc->id, strlen(lc->id) + 1) == 1;
    unsigned char on = lc->mtls.enabled ? 1 : 0;
    ok = ok && EVP_DigestUpdate(h, &on, 1) == 1;
    if (ok && on) {
        unsigned char depth[4] = {(unsigned char)(lc->mtls.verify_depth >> 24),
                                  (unsigned char)(lc->mtls.verify_depth >> 16),
                                  (unsigned char)(lc->mtls.verify_depth >> 8),
                                  (unsigned char)lc->mtls.verify_depth};
        ok = EVP_DigestUpdate(h, depth, sizeof(depth)) == 1;
        for (size_t i = 0; ok && i < lc->mtls.ncas; i++) {
            const tg_cert_t *ca = certs[lc->mtls.cas[i]];
            for (int j = 0; ok && j < sk_X509_num(ca->cas); j++)
                ok = X509_digest(sk_X509_value(ca->cas, j), EVP_sha256(), md, &len) == 1 &&
                     EVP_DigestUpdate(h, md, len) == 1;
            if (ok && ca->crl != NULL)
                ok = X509_CRL_digest(ca->crl, EVP_sha256(), md, &len) == 1 &&
                     EVP_DigestUpdate(h, md, len) == 1;
        }
    }
    ok = ok && EVP_DigestFinal_ex(h, out, &len) == 1 && len == SHA256_DIGEST_LENGTH;
    EVP_MD_CTX_free(h);
    return ok ? 0 : -1;
}
