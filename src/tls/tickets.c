/* Session ticket keys owned by the process, not by a context: every worker and every
 * generation encrypts and decrypts tickets with the same keys, so a ticket resumes
 * whichever worker takes the connection and after any reload. And the last word on a
 * decrypted ticket: whether its session may still resume at all. */
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "tollgate/tls.h"
#include "tls_internal.h"

typedef struct ticket_key_s {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
} ticket_key_t;

/* Written once before any worker starts, read-only afterwards. */
static ticket_key_t key;
static int key_ready;

int tg_tls_tickets_init(void)
{
    if (key_ready)
        return 0;
    if (RAND_bytes(key.name, sizeof(key.name)) != 1 || RAND_bytes(key.aes, sizeof(key.aes)) != 1 ||
        RAND_bytes(key.hmac, sizeof(key.hmac)) != 1)
        return -1;
    key_ready = 1;
    return 0;
}

static int set_hmac(EVP_MAC_CTX *hctx)
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key.hmac, sizeof(key.hmac)),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    return EVP_MAC_CTX_set_params(hctx, params);
}

static int ticket_cb(SSL *ssl, unsigned char key_name[16], unsigned char iv[EVP_MAX_IV_LENGTH],
                     EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
    if (enc) {
        memcpy(key_name, key.name, sizeof(key.name));
        if (RAND_bytes(iv, 16) != 1 ||
            EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, key.aes, iv) != 1 ||
            set_hmac(hctx) != 1)
            return -1;
        return 1;
    }
    if (memcmp(key_name, key.name, sizeof(key.name)) != 0)
        return 0; /* not ours (another process's): a full handshake follows */
    if (EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, key.aes, iv) != 1 || set_hmac(hctx) != 1)
        return -1;
    return 1;
}

/* OpenSSL's verdict on a ticket the client sent, TLS 1.2 and 1.3 alike. A session resumes
 * without the client's certificate being looked at again, and a ticket lives for hours:
 * a certificate that expired since (or, with a clock set back, is not valid yet) sends the
 * client through a full handshake, which checks it as any other (SPEC §4). */
static SSL_TICKET_RETURN ticket_decrypted(SSL *ssl, SSL_SESSION *sess, const unsigned char *name,
                                          size_t name_len, SSL_TICKET_STATUS status, void *arg)
{
    switch (status) {
    case SSL_TICKET_SUCCESS:
    case SSL_TICKET_SUCCESS_RENEW: {
        X509 *peer = SSL_SESSION_get0_peer(sess);
        if (peer != NULL && !tg__tls_peer_valid_at(peer, time(NULL)))
            return SSL_TICKET_RETURN_IGNORE_RENEW;
        return status == SSL_TICKET_SUCCESS ? SSL_TICKET_RETURN_USE : SSL_TICKET_RETURN_USE_RENEW;
    }
    default:
        /* an empty ticket, or one we cannot read: a full handshake and a new ticket, as
         * OpenSSL does without this callback */
        return SSL_TICKET_RETURN_IGNORE_RENEW;
    }
}

int tg__tls_tickets_attach(SSL_CTX *ctx)
{
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
    /* On every context, though OpenSSL asks only the one a handshake started on: that one
     * stays the session context when SNI switches to another slot. */
    return SSL_CTX_set_session_ticket_cb(ctx, NULL, ticket_decrypted, NULL) == 1 ? 0 : -1;
}
