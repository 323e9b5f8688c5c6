/* The process keys of the QUIC helpers, and the per-thread GnuTLS cipher handles keyed
 * with them. */
#include <pthread.h>
#include <stdatomic.h>

#include "quic_internal.h"

typedef struct thread_ciphers_s {
    gnutls_aead_cipher_hd_t token_aead;
    gnutls_cipher_hd_t cid_cipher;
    int registered; /* with thread_key, so the handles are freed at thread exit */
} thread_ciphers_t;

static tg__quic_keys_t keys;
static int keys_ok;
static pthread_once_t keys_once = PTHREAD_ONCE_INIT;
static pthread_key_t thread_key;

static _Atomic uint64_t token_counter;
static _Thread_local thread_ciphers_t ciphers;

static void free_thread_ciphers(void *arg)
{
    thread_ciphers_t *c = arg;
    if (c->token_aead)
        gnutls_aead_cipher_deinit(c->token_aead);
    if (c->cid_cipher)
        gnutls_cipher_deinit(c->cid_cipher);
    c->token_aead = NULL;
    c->cid_cipher = NULL;
    c->registered = 0;
}

static void make_keys(void)
{
    if (pthread_key_create(&thread_key, free_thread_ciphers) != 0)
        return;
    /* GNUTLS_RND_KEY is the generator GnuTLS itself uses for long-term keys. */
    if (gnutls_rnd(GNUTLS_RND_KEY, keys.token_key, sizeof keys.token_key) != 0 ||
        gnutls_rnd(GNUTLS_RND_KEY, keys.token_salt, sizeof keys.token_salt) != 0 ||
        gnutls_rnd(GNUTLS_RND_KEY, keys.cid_key, sizeof keys.cid_key) != 0 ||
        gnutls_rnd(GNUTLS_RND_KEY, keys.reset_secret, sizeof keys.reset_secret) != 0 ||
        gnutls_rnd(GNUTLS_RND_KEY, keys.ticket_secret, sizeof keys.ticket_secret) != 0 ||
        gnutls_rnd(GNUTLS_RND_KEY, keys.table_key, sizeof keys.table_key) != 0)
        return;
    uint64_t start;
    if (gnutls_rnd(GNUTLS_RND_NONCE, &start, sizeof start) != 0)
        return;
    atomic_store(&token_counter, start);
    keys_ok = 1;
}

int tg_quic_init(void)
{
    return tg__quic_keys() ? 0 : -1;
}

const tg__quic_keys_t *tg__quic_keys(void)
{
    if (pthread_once(&keys_once, make_keys) != 0 || !keys_ok)
        return NULL;
    return &keys;
}

uint64_t tg__quic_token_counter_next(void)
{
    return atomic_fetch_add(&token_counter, 1);
}

static thread_ciphers_t *thread_ciphers(void)
{
    if (!tg__quic_keys())
        return NULL;
    if (!ciphers.registered) {
        if (pthread_setspecific(thread_key, &ciphers) != 0)
            return NULL;
        ciphers.registered = 1;
    }
    return &ciphers;
}

gnutls_aead_cipher_hd_t tg__quic_token_aead(void)
{
    thread_ciphers_t *c = thread_ciphers();
    if (!c)
        return NULL;
    if (!c->token_aead) {
        gnutls_datum_t key = {.data = keys.token_key, .size = sizeof keys.token_key};
        if (gnutls_aead_cipher_init(&c->token_aead, GNUTLS_CIPHER_AES_128_GCM, &key) != 0)
            c->token_aead = NULL;
    }
    return c->token_aead;
}

gnutls_cipher_hd_t tg__quic_cid_cipher(void)
{
    thread_ciphers_t *c = thread_ciphers();
    if (!c)
        return NULL;
    if (!c->cid_cipher) {
        /* GnuTLS 3.7 has no ECB mode: CBC over a single block with a zero IV is the raw
         * block cipher, which is all a 16-byte connection-id block needs. */
        uint8_t iv[16] = {0};
        gnutls_datum_t key = {.data = keys.cid_key, .size = sizeof keys.cid_key};
        gnutls_datum_t ivd = {.data = iv, .size = sizeof iv};
        if (gnutls_cipher_init(&c->cid_cipher, GNUTLS_CIPHER_AES_128_CBC, &key, &ivd) != 0)
            c->cid_cipher = NULL;
    }
    return c->cid_cipher;
}
