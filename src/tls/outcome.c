/* What a handshake leaves behind: on success a count and the client's identity, on
 * failure a reason, a count by reason and one log line an operator can act on. */
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509_vfy.h>

#include "tollgate/tls.h"
#include "tls_internal.h"

static const char *const fail_names[TG_TLS_FAIL_COUNT] = {
    [TG_TLS_FAIL_NO_CLIENT_CERT] = "no_client_cert",
    [TG_TLS_FAIL_UNKNOWN_CA] = "unknown_ca",
    [TG_TLS_FAIL_EXPIRED] = "expired",
    [TG_TLS_FAIL_REVOKED] = "revoked",
    [TG_TLS_FAIL_DEPTH] = "depth",
    [TG_TLS_FAIL_BAD_CERT] = "bad_cert",
    [TG_TLS_FAIL_PROTOCOL] = "protocol",
    [TG_TLS_FAIL_OTHER] = "other",
};

const char *tg_tls_fail_name(tg_tls_fail_t reason)
{
    if ((unsigned)reason >= TG_TLS_FAIL_COUNT)
        return "other";
    return fail_names[reason];
}

tg_tls_fail_t tg_tls_fail_from_verify(long verify_error)
{
    switch (verify_error) {
    /* no path to one of the listener's CAs */
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_UNTRUSTED:
    case X509_V_ERR_CERT_REJECTED:
        return TG_TLS_FAIL_UNKNOWN_CA;
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return TG_TLS_FAIL_EXPIRED;
    case X509_V_ERR_CERT_REVOKED:
        return TG_TLS_FAIL_REVOKED;
    case X509_V_ERR_CERT_CHAIN_TOO_LONG:
        return TG_TLS_FAIL_DEPTH;
    /* Our side: a CRL that is stale, unusable or missing where one was given, or the
     * verifier itself failing. The client's certificate may be fine. */
    case X509_V_OK:
    case X509_V_ERR_UNABLE_TO_GET_CRL:
    case X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER:
    case X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE:
    case X509_V_ERR_CRL_SIGNATURE_FAILURE:
    case X509_V_ERR_CRL_NOT_YET_VALID:
    case X509_V_ERR_CRL_HAS_EXPIRED:
    case X509_V_ERR_ERROR_IN_CRL_LAST_UPDATE_FIELD:
    case X509_V_ERR_ERROR_IN_CRL_NEXT_UPDATE_FIELD:
    case X509_V_ERR_KEYUSAGE_NO_CRL_SIGN:
    case X509_V_ERR_DIFFERENT_CRL_SCOPE:
    case X509_V_ERR_CRL_PATH_VALIDATION_ERROR:
    case X509_V_ERR_UNHANDLED_CRITICAL_CRL_EXTENSION:
    case X509_V_ERR_OUT_OF_MEM:
    case X509_V_ERR_UNSPECIFIED:
    case X509_V_ERR_STORE_LOOKUP:
    case X509_V_ERR_APPLICATION_VERIFICATION:
        return TG_TLS_FAIL_OTHER;
    /* wrong purpose, bad signature, weak key, broken fields, constraints, ... */
    default:
        return TG_TLS_FAIL_BAD_CERT;
    }
}

tg_tls_fail_t tg__tls_fail_classify(const tg__tls_verify_fail_t *vf, unsigned long err)
{
    if (vf != NULL)
        return tg_tls_fail_from_verify(vf->error);
    if (err == 0)
        return TG_TLS_FAIL_OTHER; /* the connection broke: EOF or reset */
    if (ERR_GET_LIB(err) != ERR_LIB_SSL)
        return TG_TLS_FAIL_OTHER;
    switch (ERR_GET_REASON(err)) {
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
        return TG_TLS_FAIL_NO_CLIENT_CERT;
    case SSL_R_UNEXPECTED_EOF_WHILE_READING:
        return TG_TLS_FAIL_OTHER;
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
        /* refused without our callback seeing it: nothing more precise to say */
        return TG_TLS_FAIL_BAD_CERT;
    default:
        return TG_TLS_FAIL_PROTOCOL;
    }
}

tg_tls_identity_t *tg_tls_handshake_done(const tg_tls_listener_t *tl, SSL *ssl)
{
    if (tl->stats != NULL)
        atomic_fetch_add_explicit(&tl->stats->handshakes, 1, memory_order_relaxed);
    /* A resumed session carries the certificate and the verify result of the handshake
     * that made it (both are in the ticket), the session id context lets it resume only
     * under the same verification, and a ticket whose certificate is out of its dates does
     * not resume (tickets.c); so this holds for resumptions too. */
    if (!(SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) || SSL_get_verify_result(ssl) != X509_V_OK)
        return NULL;
    X509 *peer = SSL_get0_peer_certificate(ssl);
    if (peer == NULL)
        return NULL;
    return tg__tls_identity_new(peer);
}

/* The error that says most about the failure: the first one of the SSL library (the
 * others are usually the causes it wraps), else the first one. The queue is emptied and
 * its text kept for the log. */
static unsigned long take_errors(char *text, size_t size)
{
    unsigned long e, first = 0, first_ssl = 0;
    size_t off = 0;
    text[0] = '\0';
    while ((e = ERR_get_error()) != 0) {
        if (first == 0)
            first = e;
        if (first_ssl == 0 && ERR_GET_LIB(e) == ERR_LIB_SSL)
            first_ssl = e;
        if (off + 2 < size) {
            const char *r = ERR_reason_error_string(e);
            int n = snprintf(text + off, size - off, "%s%s", off ? "; " : "", r ? r : "unknown");
            off += n > 0 ? (size_t)n : 0;
        }
    }
    return first_ssl != 0 ? first_ssl : first;
}

/* Per listener and window, the first LOG_BURST failures get their own line; the rest
 * are counted and summed up in one line when the next window opens. A scanner or a
 * misconfigured client fleet makes thousands a second: the log stays readable, and the
 * metric counts every one of them exactly. */
#define LOG_WINDOW_MS 10000
#define LOG_BURST 20

static bool may_log(tg_tls_stats_t *st, const char *listener)
{
    if (st == NULL)
        return true;
    uint64_t now = tg_now_ms();
    uint64_t start = atomic_load_explicit(&st->_log_window_ms, memory_order_relaxed);
    if (now - start >= LOG_WINDOW_MS &&
        atomic_compare_exchange_strong(&st->_log_window_ms, &start, now)) {
        unsigned quiet = atomic_exchange(&st->_quiet, 0);
        atomic_store(&st->_logged, 0);
        if (quiet > 0)
            tg_log_warn("listener \"%s\": %u more TLS handshake failures were not logged "
                        "one by one (at most %d lines each %d s; "
                        "tollgate_handshake_failures_total counts them all)",
                        listener, quiet, LOG_BURST, LOG_WINDOW_MS / 1000);
    }
    if (atomic_fetch_add_explicit(&st->_logged, 1, memory_order_relaxed) < LOG_BURST)
        return true;
    atomic_fetch_add_explicit(&st->_quiet, 1, memory_order_relaxed);
    return false;
}

void tg_tls_handshake_failed(const tg_tls_listener_t *tl, SSL *ssl, const char *listener,
                             const char *client_addr)
{
    char errors[256];
    unsigned long err = take_errors(errors, sizeof(errors));
    const tg__tls_verify_fail_t *vf = tg__tls_verify_failure(ssl);
    bool eof = err == 0 || (ERR_GET_LIB(err) == ERR_LIB_SSL &&
                            ERR_GET_REASON(err) == SSL_R_UNEXPECTED_EOF_WHILE_READING);
    if (vf == NULL && eof && SSL_get_state(ssl) == TLS_ST_BEFORE) {
        /* Not a TLS client at all, or a TCP health check: no handshake began. */
        tg_log_debug("listener \"%s\": %s closed before its ClientHello", listener, client_addr);
        return;
    }
    tg_tls_fail_t reason = tg__tls_fail_classify(vf, err);
    if (tl->stats != NULL)
        atomic_fetch_add_explicit(&tl->stats->failures[reason], 1, memory_order_relaxed);
    if (!may_log(tl->stats, listener))
        return;

    if (vf == NULL) {
        tg_log_warn("listener \"%s\": TLS handshake with %s failed: reason=%s (%s)", listener,
                    client_addr, tg_tls_fail_name(reason),
                    errors[0] ? errors : "connection closed");
        return;
    }
    char *subject = vf->leaf ? tg_cert_dn_format(X509_get_subject_name(vf->leaf)) : NULL;
    char *issuer = vf->leaf ? tg_cert_dn_format(X509_get_issuer_name(vf->leaf)) : NULL;
    tg_log_warn("listener \"%s\": TLS handshake with %s failed: reason=%s subject=\"%s\" "
                "issuer=\"%s\" (%s, at depth %d)",
                listener, client_addr, tg_tls_fail_name(reason), subject ? subject : "",
                issuer ? issuer : "", X509_verify_cert_error_string(vf->error), vf->depth);
    free(subject);
    free(issuer);
}
