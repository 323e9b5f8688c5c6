/* Client verification for mutual authentication: the per-listener trust store and which
 * of its CAs are anchors, the verify settings every SNI slot gets, the first failure of a
 * handshake kept for its log line, and what keeps a session inside the check it passed:
 * the session id context of one listener's trust policy and the client certificate's
 * dates. */
#include <pthread.h>
#include <string.h>

#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "tollgate/tls.h"
#include "tls_internal.h"

/* ---- the trust store ------------------------------------------------------------------- */

bool tg__tls_is_anchor(X509 *x, const STACK_OF(X509) * listed)
{
    if (X509_self_signed(x, 0) == 1)
        return true;
    for (int i = 0; i < sk_X509_num(listed); i++) {
        X509 *other = sk_X509_value(listed, i);
        /* x itself, or the same certificate listed by another entry, is not its issuer */
        if (other == x || X509_cmp(other, x) == 0)
            continue;
        if (X509_check_issued(other, x) == X509_V_OK)
            return false;
    }
    return true;
}

/* A certificate whose issuer is not listed is trusted for client authentication by an
 * explicit mark, which OpenSSL accepts without climbing further (X509_check_trust with
 * the SSL_CLIENT purpose's trust). The mark goes on a copy: the same CA entry may be an
 * anchor on one listener and only a link on another, and generations share the entry. */
static int add_anchor(X509_STORE *store, X509 *x)
{
    X509 *dup = X509_dup(x);
    int ok = dup != NULL && X509_add1_trust_object(dup, OBJ_nid2obj(NID_client_auth)) == 1 &&
             X509_STORE_add_cert(store, dup) == 1;
    X509_free(dup); /* the store holds its own reference */
    return ok ? 0 : -1;
}

X509_STORE *tg__tls_store_build(const tg_conf_listener_t *lc, tg_cert_t *const *certs)
{
    X509_STORE *store = X509_STORE_new();
    STACK_OF(X509) *listed = sk_X509_new_null();
    if (store == NULL || listed == NULL)
        goto fail;
    bool any_crl = false;
    for (size_t i = 0; i < lc->mtls.ncas; i++) {
        const tg_cert_t *ca = certs[lc->mtls.cas[i]];
        for (int j = 0; j < sk_X509_num(ca->cas); j++)
            if (sk_X509_push(listed, sk_X509_value(ca->cas, j)) == 0)
                goto fail;
        if (ca->crl != NULL) {
            if (X509_STORE_add_crl(store, ca->crl) != 1)
                goto fail;
            any_crl = true;
        }
    }
    /* Trust anchors are the self-signed CAs and those whose issuer is not listed (SPEC
     * §4): a bundle of only an intermediate still admits its clients, while an intermediate
     * listed with its root is only a link, so the root's dates and CRL still apply to the
     * chain. Self-signed ones are anchors by OpenSSL's own rule and need no mark; the
     * others go in unmarked, which lets them build chains without ending one. A CA listed
     * by two entries is added twice; OpenSSL keeps one. */
    for (int i = 0; i < sk_X509_num(listed); i++) {
        X509 *x = sk_X509_value(listed, i);
        if (X509_self_signed(x, 0) != 1 && tg__tls_is_anchor(x, listed)) {
            if (add_anchor(store, x) != 0)
                goto fail;
        } else if (X509_STORE_add_cert(store, x) != 1) {
            goto fail;
        }
    }
    /* No X509_V_FLAG_PARTIAL_CHAIN: it would end every chain at the first listed CA and so
     * skip what stands above it. With a CRL anywhere, check every certificate of the
     * chain, not only the client's: a revoked intermediate must fail too. An issuer without
     * a CRL would then fail every client (unable to get CRL); verify_cb forgives exactly
     * that case, so a CRL given for one CA is enforced without demanding one for every CA. */
    if (any_crl &&
        X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL) != 1)
        goto fail;
    sk_X509_free(listed);
    return store;

fail:
    sk_X509_free(listed);
    X509_STORE_free(store);
    return NULL;
}

bool tg__tls_peer_valid_at(const X509 *peer, time_t now)
{
    /* X509_cmp_time: -1 at or before `now`, 1 after, 0 for an unreadable time (not valid
     * then); the same comparisons as the verifier's, so a session resumes exactly while a
     * full handshake would accept the certificate's dates. */
    return X509_cmp_time(X509_get0_notBefore(peer), &now) < 0 &&
           X509_cmp_time(X509_get0_notAfter(peer), &now) > 0;
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
