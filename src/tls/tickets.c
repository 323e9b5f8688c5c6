/* Session ticket keys owned by the process, not by a context: every worker and every
 * generation encrypts and decrypts tickets with the same keys, so a ticket resumes
 * whichever worker takes the connection and after any reload. */
#include <string.h>

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

void tg__tls_tickets_attach(SSL_CTX *ctx)
{
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
}
