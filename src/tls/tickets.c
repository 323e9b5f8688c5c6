/* Session ticket keys owned by the process, not by a context: every worker and every
 * generation encrypts and decrypts tickets with the same keys, so a ticket resumes
 * whichever worker takes the connection and after any reload; they rotate every 12 h. And the last
 * word on a decrypted ticket: whether its session may still resume at all. */
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "tollgate/tls.h"
#include "tls_internal.h"

typedef struct ticket_key_s {
    unsigned char name[16]; /* the process's 8-byte prefix, then the epoch, big-endian */
    unsigned char aes[32];
    unsigned char hmac[32];
} ticket_key_t;

/* Written once before any worker starts, read-only afterwards: the keys themselves are
 * derived from it, one a TG_TICKET_ROTATE_S epoch, so every worker and every generation
 * agrees on them without sharing anything mutable. A ticket from the previous epoch still
 * decrypts (and is renewed): the ticket lifetime (7,200 s) is far below an epoch, so no
 * valid ticket is ever refused for the rotation, and a stolen key stops working within two
 * epochs, as nginx's and HAProxy's rotated key files do. */
static unsigned char secret[32];
static unsigned char prefix[8];
static int secret_ready;
static uint64_t (*clock_s)(void); /* tests move time; NULL: time(NULL) */

int tg_tls_tickets_init(void)
{
    if (secret_ready)
        return 0;
    if (RAND_bytes(secret, sizeof(secret)) != 1 || RAND_bytes(prefix, sizeof(prefix)) != 1)
        return -1;
    secret_ready = 1;
    return 0;
}

void tg__tls_tickets_clock(uint64_t (*now_s)(void))
{
    clock_s = now_s;
}

uint64_t tg__tls_ticket_epoch(void)
{
    uint64_t now = clock_s != NULL ? clock_s() : (uint64_t)time(NULL);
    return now / TG_TICKET_ROTATE_S;
}

/* The key of an epoch: HMAC-SHA512(secret, label || epoch), cached per thread for the two
 * epochs in use so a handshake costs no derivation. */
int tg__tls_ticket_key(uint64_t epoch, unsigned char name[16], unsigned char aes[32],
                       unsigned char hmac[32])
{
    static _Thread_local struct {
        bool set;
        uint64_t epoch;
        ticket_key_t k;
    } cache[2];
    ticket_key_t *k = NULL;
    for (int i = 0; i < 2 && k == NULL; i++)
        if (cache[i].set && cache[i].epoch == epoch)
            k = &cache[i].k;
    if (k == NULL) {
        unsigned char msg[24] = "tollgate ticket key";
        for (int i = 0; i < 8; i++)
            msg[16 + i] = (unsigned char)(epoch >> (56 - 8 * i));
        unsigned char out[64];
        unsigned int len = 0;
        if (HMAC(EVP_sha512(), secret, sizeof(secret), msg, sizeof(msg), out, &len) == NULL ||
            len != sizeof(out))
            return -1;
        int slot = epoch & 1;
        cache[slot].set = true;
        cache[slot].epoch = epoch;
        k = &cache[slot].k;
        memcpy(k->name, prefix, sizeof(prefix));
        memcpy(k->name + 8, msg + 16, 8);
        memcpy(k->aes, out, 32);
        memcpy(k->hmac, out + 32, 32);
        OPENSSL_cleanse(out, sizeof(out));
    }
    memcpy(name, k->name, 16);
    memcpy(aes, k->aes, 32);
    memcpy(hmac, k->hmac, 32);
    return 0;
}

static int set_hmac(EVP_MAC_CTX *hctx, unsigned char hmac[32])
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, hmac, 32),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    return EVP_MAC_CTX_set_params(hctx, params);
}

static int ticket_cb(SSL *ssl, unsigned char key_name[16], unsigned char iv[EVP_MAX_IV_LENGTH],
                     EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
    unsigned char name[16], aes[32], hmac[32];
    uint64_t now = tg__tls_ticket_epoch();
    int rc;
    if (enc) {
        if (tg__tls_ticket_key(now, name, aes, hmac) != 0)
            return -1;
        memcpy(key_name, name, sizeof(name));
        rc = RAND_bytes(iv, 16) == 1 &&
                     EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, aes, iv) == 1 &&
                     set_hmac(hctx, hmac) == 1
                 ? 1
                 : -1;
    } else {
        if (memcmp(key_name, prefix, sizeof(prefix)) != 0)
            return 0; /* not ours (another process's): a full handshake follows */
        uint64_t epoch = 0;
        for (int i = 0; i < 8; i++)
            epoch = epoch << 8 | key_name[8 + i];
        if (epoch != now && epoch + 1 != now)
            return 0; /* rotated out (or from the future): a full handshake */
        if (tg__tls_ticket_key(epoch, name, aes, hmac) != 0)
            return -1;
        rc = EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, aes, iv) == 1 &&
                     set_hmac(hctx, hmac) == 1
                 ? (epoch == now ? 1 : 2) /* 2: resume, and issue a ticket under today's key */
                 : -1;
    }
    OPENSSL_cleanse(aes, sizeof(aes));
    OPENSSL_cleanse(hmac, sizeof(hmac));
    return rc;
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
