/* Server connection ids that name their worker under a process key, so any worker (or a
 * socket steering program later) can route a datagram by its DCID alone; and the stateless
 * reset token derived from a connection id. */
#include <string.h>

#include "quic_internal.h"

/* Layout of the 18 bytes:
 *
 *   prefix (2, random, in clear) | AES-128(worker (2, big endian) | prefix (2) | "tg" | nonce (10))
 *
 * One AES block hides the worker and makes ids of one worker unlinkable (96 random bits
 * per id). Decrypting a block that was not made with our key gives random bytes, so the
 * copy of the prefix and the "tg" mark are a 32-bit check: a client-chosen DCID, a forged
 * id or one with any byte changed is refused except with probability 2^-32. */
#define PREFIX_LEN 2
#define BLOCK_LEN 16
#define MARK0 't'
#define MARK1 'g'

_Static_assert(PREFIX_LEN + BLOCK_LEN == TG_QUIC_CID_LEN, "connection id layout");
_Static_assert(TG_QUIC_MAX_WORKERS <= 65536, "the worker is stored in two bytes");

/* One block through CBC with a zero IV is the raw block cipher; the IV is reset every time
 * because CBC carries the last block over to the next call. */
static int crypt_block(const uint8_t in[BLOCK_LEN], uint8_t out[BLOCK_LEN], int encrypt)
{
    gnutls_cipher_hd_t h = tg__quic_cid_cipher();
    if (!h)
        return -1;
    uint8_t iv[BLOCK_LEN] = {0};
    gnutls_cipher_set_iv(h, iv, sizeof iv);
    return encrypt ? gnutls_cipher_encrypt2(h, in, BLOCK_LEN, out, BLOCK_LEN)
                   : gnutls_cipher_decrypt2(h, in, BLOCK_LEN, out, BLOCK_LEN);
}

int tg_quic_cid_new(uint8_t cid[TG_QUIC_CID_LEN], int worker)
{
    if (!cid || worker < 0 || worker >= TG_QUIC_MAX_WORKERS)
        return -1;
    uint8_t rnd[PREFIX_LEN + 10];
    if (gnutls_rnd(GNUTLS_RND_NONCE, rnd, sizeof rnd) != 0)
        return -1;
    uint8_t block[BLOCK_LEN];
    block[0] = (uint8_t)(worker >> 8);
    block[1] = (uint8_t)worker;
    memcpy(block + 2, rnd, PREFIX_LEN);
    block[4] = MARK0;
    block[5] = MARK1;
    memcpy(block + 6, rnd + PREFIX_LEN, 10);
    memcpy(cid, rnd, PREFIX_LEN);
    return crypt_block(block, cid + PREFIX_LEN, 1) == 0 ? 0 : -1;
}

int tg_quic_cid_worker(const uint8_t *cid, size_t len)
{
    if (!cid || len != TG_QUIC_CID_LEN)
        return -1;
    uint8_t block[BLOCK_LEN];
    if (crypt_block(cid + PREFIX_LEN, block, 0) != 0)
        return -1;
    if (memcmp(block + 2, cid, PREFIX_LEN) != 0 || block[4] != MARK0 || block[5] != MARK1)
        return -1;
    int worker = block[0] << 8 | block[1];
    return worker < TG_QUIC_MAX_WORKERS ? worker : -1;
}

int tg_quic_reset_token(uint8_t token[TG_QUIC_RESET_TOKEN_LEN], const uint8_t *cid, size_t cidlen)
{
    const tg__quic_keys_t *k = tg__quic_keys();
    if (!token || !k || cidlen > TG_QUIC_MAX_CIDLEN || (cidlen && !cid))
        return -1;
    uint8_t mac[32];
    if (gnutls_hmac_fast(GNUTLS_MAC_SHA256, k->reset_secret, sizeof k->reset_secret,
                         cidlen ? (const void *)cid : (const void *)"", cidlen, mac) != 0)
        return -1;
    memcpy(token, mac, TG_QUIC_RESET_TOKEN_LEN);
    return 0;
}
