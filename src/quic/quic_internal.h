/* quic internals shared by the token, connection-id and key files; not part of the
 * contract in include/tollgate/quic.h. */
#ifndef TOLLGATE_QUIC_INTERNAL_H
#define TOLLGATE_QUIC_INTERNAL_H

#include <stdint.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "tollgate/quic.h"

#define TG__QUIC_TOKEN_KEY_LEN 16 /* AES-128-GCM */
#define TG__QUIC_TOKEN_SALT_LEN 4 /* leading bytes of every token nonce */
#define TG__QUIC_CID_KEY_LEN 16   /* AES-128, one block */
#define TG__QUIC_RESET_SECRET_LEN 32

/* Made once per process by tg_quic_init, then only read. */
typedef struct tg__quic_keys_s {
    uint8_t token_key[TG__QUIC_TOKEN_KEY_LEN];
    uint8_t token_salt[TG__QUIC_TOKEN_SALT_LEN];
    uint8_t cid_key[TG__QUIC_CID_KEY_LEN];
    uint8_t reset_secret[TG__QUIC_RESET_SECRET_LEN];
} tg__quic_keys_t;

/* The process keys, made on first use; NULL when the random generator failed. */
const tg__quic_keys_t *tg__quic_keys(void);

/* The next value of the token nonce counter, which starts at a random value per process.
 * Call only after tg__quic_keys succeeded. */
uint64_t tg__quic_token_counter_next(void);

/* This thread's cipher handles, keyed with the process keys. GnuTLS handles keep per-call
 * state (GCM counters, the CBC IV), so threads cannot share one; each thread makes its own
 * on first use and frees them when it exits. NULL on failure. */
gnutls_aead_cipher_hd_t tg__quic_token_aead(void);
gnutls_cipher_hd_t tg__quic_cid_cipher(void);

#endif
