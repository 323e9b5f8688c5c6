/* The TLS side of a QUIC listener: GnuTLS credentials per SNI slot, made from the same PEM
 * bytes the OpenSSL contexts were made from, chosen per connection once the ClientHello is
 * in; and the server session every QUIC connection starts with. */
#include <stdlib.h>
#include <string.h>

#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include "quic_internal.h"

/* QUIC is TLS 1.3 only (RFC 9001 §4.2); the middlebox compatibility mode must be off
 * (RFC 9001 §8.4). Suites and groups are those of the _with_1_3 policy. No
 * %SERVER_PRECEDENCE: GnuTLS would then also pick the group by our order and answer a
 * client whose one key share is P-256 with a HelloRetryRequest, a round trip for nothing;
 * every suite here is strong, so the client's order costs nothing. */
#define PRIORITY                                                                                   \
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:"      \
    "+AES-128-CCM:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1:+GROUP-SECP521R1:"    \
    "%DISABLE_TLS13_COMPAT_MODE"

static gnutls_priority_t priority;
static pthread_once_t priority_once = PTHREAD_ONCE_INIT;

static void make_priority(void)
{
    if (gnutls_priority_init(&priority, PRIORITY, NULL) != 0)
        priority = NULL;
}

static int add_pair(gnutls_certificate_credentials_t cr, const tg_cert_t *cert, char *err,
                    size_t errlen)
{
    gnutls_datum_t crt = {(unsigned char *)cert->cert_pem, (unsigned)cert->cert_pem_len};
    gnutls_datum_t key = {(unsigned char *)cert->key_pem, (unsigned)cert->key_pem_len};
    int rv = gnutls_certificate_set_x509_key_mem2(cr, &crt, &key, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (rv < 0) {
        snprintf(err, errlen, "certificate \"%s\": GnuTLS cannot use it: %s", cert->id,
                 gnutls_strerror(rv));
        return -1;
    }
    return 0;
}

/* Tickets of one listener address only open on that address (SPEC §4), in every
 * generation and on every worker: the key is derived from the process secret and the
 * address, never stored. */
static int derive_ticket_key(tg_quic_listener_t *ql)
{
    const tg__quic_keys_t *k = tg__quic_keys();
    if (k == NULL)
        return -1;
    uint8_t label[8 + sizeof(struct sockaddr_storage)] = "tgticket";
    memcpy(label + 8, &ql->conf->addr, ql->conf->addr_len);
    if (gnutls_hmac_fast(GNUTLS_MAC_SHA512, k->ticket_secret, sizeof k->ticket_secret, label,
                         8 + ql->conf->addr_len, ql->ticket_key_bytes) != 0)
        return -1;
    ql->ticket_key.data = ql->ticket_key_bytes;
    ql->ticket_key.size = sizeof ql->ticket_key_bytes;
    return 0;
}

tg_quic_listener_t *tg_quic_listener_new(const tg_config_t *cfg, const tg_conf_listener_t *lc,
                                         tg_cert_t *const *certs, tg_errors_t *errs)
{
    pthread_once(&priority_once, make_priority);
    tg_quic_listener_t *ql = tg_calloc(1, sizeof(*ql));
    ql->conf = lc;
    char err[512] = "";

    size_t ncerts = 1 + lc->nextended;
    const tg_cert_t **list = tg_calloc(ncerts, sizeof(*list));
    list[0] = certs[lc->default_cert];
    for (size_t i = 0; i < lc->nextended; i++)
        list[1 + i] = certs[lc->extended[i]];
    int rv = tg_sni_build(&ql->sni, list, ncerts);
    free(list);
    if (rv != 0 || priority == NULL || derive_ticket_key(ql) != 0) {
        snprintf(err, sizeof err, "cannot set up TLS for QUIC");
        goto fail;
    }
    ql->creds = tg_calloc(ql->sni.nslots, sizeof(*ql->creds));
    for (size_t i = 0; i < ql->sni.nslots; i++) {
        const tg_sni_slot_t *slot = &ql->sni.slots[i];
        if (gnutls_certificate_allocate_credentials(&ql->creds[i]) != 0) {
            snprintf(err, sizeof err, "cannot set up TLS for QUIC");
            goto fail;
        }
        /* Both key types in one credentials object: GnuTLS serves ECDSA to a client that
         * signs with it and RSA to one that does not, as the OpenSSL side does. */
        if ((slot->ec != NULL && add_pair(ql->creds[i], slot->ec, err, sizeof err) != 0) ||
            (slot->rsa != NULL && add_pair(ql->creds[i], slot->rsa, err, sizeof err) != 0))
            goto fail;
    }
    ql->stats = tg_tls_stats_get(lc->id);
    return ql;

fail:
    tg_errors_add(errs, TG_SEV_ERROR, cfg->path, lc->pos.line, lc->pos.col, "listener \"%s\": %s",
                  lc->id, err);
    tg_quic_listener_free(ql);
    return NULL;
}

void tg_quic_listener_free(tg_quic_listener_t *ql)
{
    if (ql == NULL)
        return;
    for (size_t i = 0; ql->creds != NULL && i < ql->sni.nslots; i++)
        if (ql->creds[i] != NULL)
            gnutls_certificate_free_credentials(ql->creds[i]);
    free(ql->creds);
    tg_sni_free(&ql->sni);
    gnutls_memset(ql->ticket_key_bytes, 0, sizeof ql->ticket_key_bytes);
    free(ql);
}

/* ---- the session of one connection ------------------------------------------------------ */

/* After the ClientHello is parsed and before the server answers: the only point where the
 * SNI is known and the certificate can still be chosen. */
static int on_client_hello(gnutls_session_t session)
{
    ngtcp2_crypto_conn_ref *ref = gnutls_session_get_ptr(session);
    tg__qconn_t *c = TG_STRUCT_FROM_MEMBER(tg__qconn_t, ref, ref);
    const tg_quic_listener_t *ql = c->pc.lst->quic;
    char name[256];
    size_t len = sizeof(name) - 1;
    unsigned type = 0;
    size_t slot = 0;
    if (gnutls_server_name_get(session, name, &len, &type, 0) == 0 && type == GNUTLS_NAME_DNS) {
        name[len] = '\0';
        slot = tg_sni_lookup(&ql->sni, name, len);
        memcpy(c->sni, name, len + 1);
    }
    if (gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, ql->creds[slot]) != 0)
        return GNUTLS_E_CERTIFICATE_ERROR;
    return 0;
}

gnutls_session_t tg__quic_session_new(const tg_quic_listener_t *ql, ngtcp2_crypto_conn_ref *ref)
{
    static const gnutls_datum_t h3 = {(unsigned char *)"h3", 2};
    gnutls_session_t s;
    /* Tickets go out when the handshake completes, from handshake_completed, not with the
     * server's first flight; QUIC has its own end of early data. No 0-RTT: replayable
     * requests would need an anti-replay store shared by every worker. */
    if (gnutls_init(&s, GNUTLS_SERVER | GNUTLS_NO_AUTO_SEND_TICKET | GNUTLS_NO_END_OF_EARLY_DATA) !=
        0)
        return NULL;
    if (gnutls_priority_set(s, priority) != 0 ||
        ngtcp2_crypto_gnutls_configure_server_session(s) != 0 ||
        gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, ql->creds[0]) != 0 ||
        gnutls_session_ticket_enable_server(s, &ql->ticket_key) != 0 ||
        gnutls_alpn_set_protocols(s, &h3, 1,
                                  GNUTLS_ALPN_MANDATORY | GNUTLS_ALPN_SERVER_PRECEDENCE) != 0) {
        gnutls_deinit(s);
        return NULL;
    }
    gnutls_handshake_set_post_client_hello_function(s, on_client_hello);
    gnutls_certificate_server_set_request(s, GNUTLS_CERT_IGNORE); /* one-way by contract */
    gnutls_session_set_ptr(s, ref);
    return s;
}
