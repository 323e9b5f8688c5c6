/* OpenSSL server contexts of one listener: one per SNI slot, all set up alike from the
 * listener's policy and client verification, so switching context on SNI changes only the
 * certificates. */
#include <string.h>

#include <openssl/err.h>
#include <openssl/sha.h>

#include "tollgate/tls.h"
#include "tls_internal.h"

/* X25519 first, P-256 for clients without it; for TLS 1.2 ECDHE as well. */
#define TG_TLS_GROUPS "X25519:P-256"

static const unsigned char alpn_http11[] = "\x08http/1.1";

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    unsigned char *sel;
    if (SSL_select_next_proto(&sel, outlen, alpn_http11, sizeof(alpn_http11) - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL; /* no_application_protocol, as RFC 7301 asks */
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

static int servername(SSL *ssl, int *alert, void *arg)
{
    const tg_tls_listener_t *tl = arg;
    const char *host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (host == NULL)
        return SSL_TLSEXT_ERR_OK;
    size_t slot = tg_sni_lookup(&tl->sni, host, strlen(host));
    if (slot != 0 && SSL_set_SSL_CTX(ssl, tl->ctx[slot]) == NULL)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    return SSL_TLSEXT_ERR_OK;
}

static int use_cert(SSL_CTX *ctx, const tg_cert_t *cert)
{
    if (cert == NULL)
        return 0;
    if (SSL_CTX_use_certificate(ctx, cert->leaf) != 1 ||
        SSL_CTX_use_PrivateKey(ctx, cert->key) != 1 || SSL_CTX_set1_chain(ctx, cert->chain) != 1)
        return -1;
    return 0;
}

/* The openssl error queue as one short string, emptied so it never reaches another
 * connection's error check. */
void tg__tls_drain_errors(char *buf, size_t size)
{
    unsigned long e;
    size_t off = 0;
    buf[0] = '\0';
    while ((e = ERR_get_error()) != 0) {
        if (off + 2 < size) {
            const char *r = ERR_reason_error_string(e);
            int n = snprintf(buf + off, size - off, "%s%s", off ? "; " : "", r ? r : "unknown");
            off += n > 0 ? (size_t)n : 0;
        }
    }
}

static SSL_CTX *ctx_new(const tg_conf_listener_t *lc, const tg_sni_slot_t *slot,
                        const unsigned char sid[SHA256_DIGEST_LENGTH], X509_STORE *verify_store,
                        char *why, size_t why_size)
{
    const tg_tls_policy_t *pol = tg_tls_policy(lc->policy);
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        goto fail;

    /* Every knob the system openssl.cnf may have set is set again here. */
    if (SSL_CTX_set_min_proto_version(ctx, pol->min_version) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, pol->max_version) != 1)
        goto fail;
    SSL_CTX_set_security_level(ctx, pol->security_level);
    if (SSL_CTX_set_cipher_list(ctx, pol->ciphers) != 1 ||
        SSL_CTX_set_ciphersuites(ctx, pol->ciphersuites) != 1 ||
        SSL_CTX_set1_groups_list(ctx, TG_TLS_GROUPS) != 1)
        goto fail;

    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_COMPRESSION);
    /* Release record buffers while idle; our write buffer may move between retries. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* One read() per burst instead of one for the record header and one for its body;
     * the frontend checks SSL_has_pending before it waits for the socket again. */
    SSL_CTX_set_read_ahead(ctx, 1);
    /* Tickets only: a per-context session cache would be per worker and lost on reload, and
     * its sessions would skip the date check tg__tls_tickets_attach puts on tickets. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    /* One TLS 1.3 ticket, not OpenSSL's two: an HTTP/1.1 client resumes one connection at
     * a time, and OpenSSL 3.0 re-encodes and re-decodes the whole session (the client's
     * certificate too, under mutual authentication) for each ticket it makes. */
    SSL_CTX_set_num_tickets(ctx, 1);
    if (tg__tls_tickets_attach(ctx) != 0)
        goto fail;
    /* Sessions carry the listener's id and client verification (tg__tls_sid_ctx), so one
     * never resumes into another listener or past a certificate check it did not pass. */
    if (SSL_CTX_set_session_id_context(ctx, sid, SSL_MAX_SID_CTX_LENGTH) != 1)
        goto fail;
    /* Every slot, not only the default: the SSL keeps the verify mode of the context it
     * started on, but takes the trust store and CA names from the one SNI switches to. */
    if (verify_store != NULL && tg__tls_verify_setup(ctx, lc, verify_store) != 0)
        goto fail;
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);

    if (use_cert(ctx, slot->ec) != 0 || use_cert(ctx, slot->rsa) != 0)
        goto fail;
    return ctx;

fail:
    tg__tls_drain_errors(why, why_size);
    SSL_CTX_free(ctx);
    return NULL;
}

int tg_tls_listener_build(tg_tls_listener_t *tl, const tg_config_t *cfg,
                          const tg_conf_listener_t *lc, tg_cert_t *const *certs, tg_errors_t *errs)
{
    memset(tl, 0, sizeof(*tl));
    size_t ncerts = 1 + lc->nextended;
    const tg_cert_t **list = tg_calloc(ncerts, sizeof(*list));
    list[0] = certs[lc->default_cert];
    for (size_t i = 0; i < lc->nextended; i++)
        list[1 + i] = certs[lc->extended[i]];
    int rc = tg_sni_build(&tl->sni, list, ncerts);
    free(list);
    if (rc != 0) {
        tg_errors_add(errs, TG_SEV_ERROR, cfg->path, lc->pos.line, lc->pos.col,
                      "listener \"%s\": cannot build the SNI table", lc->id);
        return -1;
    }

    tl->stats = tg_tls_stats_get(lc->id);
    unsigned char sid[SHA256_DIGEST_LENGTH];
    if (tg__tls_sid_ctx(lc, certs, sid) != 0) {
        tg_errors_add(errs, TG_SEV_ERROR, cfg->path, lc->pos.line, lc->pos.col,
                      "listener \"%s\": cannot compute its session id context", lc->id);
        tg_tls_listener_free(tl);
        return -1;
    }
    memcpy(tl->verify_id, sid, sizeof(tl->verify_id));
    if (lc->mtls.enabled) {
        /* One store per listener and generation: its CAs trust nobody on other listeners,
         * and a reload's new CAs or CRL apply from the next handshake on. */
        tl->_verify_store = tg__tls_store_build(lc, certs);
        if (tl->_verify_store == NULL) {
            char why[256];
            tg__tls_drain_errors(why, sizeof(why));
            tg_errors_add(errs, TG_SEV_ERROR, cfg->path, lc->mtls.pos.line, lc->mtls.pos.col,
                          "listener \"%s\": cannot build the trust store of mutual_auth: %s",
                          lc->id, why);
            tg_tls_listener_free(tl);
            return -1;
        }
    }

    tl->ctx = tg_calloc(tl->sni.nslots, sizeof(SSL_CTX *));
    for (size_t i = 0; i < tl->sni.nslots; i++) {
        char why[256];
        tl->ctx[i] = ctx_new(lc, &tl->sni.slots[i], sid, tl->_verify_store, why, sizeof(why));
        if (tl->ctx[i] == NULL) {
            tg_errors_add(errs, TG_SEV_ERROR, cfg->path, lc->pos.line, lc->pos.col,
                          "listener \"%s\": cannot make its TLS context: %s", lc->id, why);
            tg_tls_listener_free(tl);
            return -1;
        }
    }
    /* Every handshake starts on the default context, which picks the slot by SNI. */
    SSL_CTX_set_tlsext_servername_callback(tl->ctx[0], servername);
    SSL_CTX_set_tlsext_servername_arg(tl->ctx[0], tl);
    return 0;
}

void tg_tls_listener_free(tg_tls_listener_t *tl)
{
    if (tl->ctx != NULL) {
        for (size_t i = 0; i < tl->sni.nslots; i++)
            SSL_CTX_free(tl->ctx[i]);
        free(tl->ctx);
    }
    X509_STORE_free(tl->_verify_store); /* contexts and live connections hold their own */
    tg_sni_free(&tl->sni);
    memset(tl, 0, sizeof(*tl));
}
