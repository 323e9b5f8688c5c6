/* Address-validation tokens for Retry packets and NEW_TOKEN frames: AES-128-GCM under a
 * process key, carrying the kind, the issue time and the client address they were made for. */
#include <netinet/in.h>
#include <string.h>

#include "quic_internal.h"

/* Layout (every length fixed but the ODCID's, so lengths can be checked before any crypto):
 *
 *   magic (1, in clear, authenticated as AAD) | nonce (12, in clear)
 *   | sealed: issued_ns (8, big endian) family (1: 4 or 6) address (16) port (2)
 *             odcid_len (1) odcid (0..20) | GCM tag (16)
 *
 * The magic tells the kinds apart before decryption (RFC 9000 §8.1.3); NEW_TOKEN tokens
 * carry port 0 and no ODCID, since a later connection comes from a new port. */
#define MAGIC_RETRY 0xd2
#define MAGIC_NEW_TOKEN 0x4e
#define NONCE_LEN 12
#define TAG_LEN 16
#define HEAD_LEN (1 + NONCE_LEN)
#define BODY_FIXED_LEN (8 + 1 + 16 + 2 + 1)
#define TOKEN_MIN_LEN (HEAD_LEN + BODY_FIXED_LEN + TAG_LEN)
#define TOKEN_MAX_LEN (TOKEN_MIN_LEN + TG_QUIC_MAX_CIDLEN)

_Static_assert(TOKEN_MAX_LEN == TG_QUIC_TOKEN_MAX_LEN, "TG_QUIC_TOKEN_MAX_LEN is stale");

/* Workers stamp "now" once per loop turn, so a token one worker issued may look a little
 * younger than zero to another; more than this is a forgery or a clock bug. */
#define CLOCK_SKEW_NS 1000000000ull

typedef struct client_addr_s {
    uint8_t family; /* 4 or 6 */
    uint8_t addr[16];
    uint8_t port[2]; /* network order */
} client_addr_t;

static int read_addr(const struct sockaddr *sa, socklen_t salen, client_addr_t *out)
{
    memset(out, 0, sizeof *out);
    if (!sa || salen < (socklen_t)sizeof(sa_family_t))
        return -1;
    sa_family_t family;
    memcpy(&family, (const char *)sa + offsetof(struct sockaddr, sa_family), sizeof family);
    if (family == AF_INET && salen >= (socklen_t)sizeof(struct sockaddr_in)) {
        struct sockaddr_in sin;
        memcpy(&sin, sa, sizeof sin);
        out->family = 4;
        memcpy(out->addr, &sin.sin_addr, 4);
        memcpy(out->port, &sin.sin_port, 2);
        return 0;
    }
    if (family == AF_INET6 && salen >= (socklen_t)sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 sin6;
        memcpy(&sin6, sa, sizeof sin6);
        out->family = 6;
        memcpy(out->addr, &sin6.sin6_addr, 16);
        memcpy(out->port, &sin6.sin6_port, 2);
        return 0;
    }
    return -1;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* GCM nonces must never repeat under one key. A random nonce would be safe for only about
 * 2^32 tokens; the process salt and a counter are unique for the process lifetime. (The
 * counter shows a client how many tokens were issued between two of its own: harmless.) */
static void next_nonce(const tg__quic_keys_t *k, uint8_t nonce[NONCE_LEN])
{
    memcpy(nonce, k->token_salt, TG__QUIC_TOKEN_SALT_LEN);
    put_be64(nonce + TG__QUIC_TOKEN_SALT_LEN, tg__quic_token_counter_next());
}

static uint8_t magic_of(tg_quic_token_kind_t kind)
{
    return kind == TG_QUIC_TOKEN_RETRY ? MAGIC_RETRY : MAGIC_NEW_TOKEN;
}

tg_quic_token_kind_t tg_quic_token_kind(const uint8_t *token, size_t len)
{
    if (!token || len < TOKEN_MIN_LEN || len > TOKEN_MAX_LEN)
        return TG_QUIC_TOKEN_NONE;
    if (token[0] == MAGIC_RETRY)
        return TG_QUIC_TOKEN_RETRY;
    if (token[0] == MAGIC_NEW_TOKEN && len == TOKEN_MIN_LEN)
        return TG_QUIC_TOKEN_NEW_TOKEN;
    return TG_QUIC_TOKEN_NONE;
}

ssize_t tg_quic_token_make(uint8_t *out, size_t out_size, tg_quic_token_kind_t kind,
                           const struct sockaddr *sa, socklen_t salen, const uint8_t *odcid,
                           size_t odcid_len, uint64_t now_ns)
{
    client_addr_t ca;
    if (kind != TG_QUIC_TOKEN_RETRY && kind != TG_QUIC_TOKEN_NEW_TOKEN)
        return TG_QUIC_TOKEN_EARG;
    if (read_addr(sa, salen, &ca) != 0)
        return TG_QUIC_TOKEN_EARG;
    if (kind == TG_QUIC_TOKEN_NEW_TOKEN ? odcid_len != 0
                                        : odcid_len > TG_QUIC_MAX_CIDLEN || (odcid_len && !odcid))
        return TG_QUIC_TOKEN_EARG;
    size_t body_len = BODY_FIXED_LEN + odcid_len;
    size_t total = HEAD_LEN + body_len + TAG_LEN;
    if (!out || out_size < total)
        return TG_QUIC_TOKEN_EARG;

    const tg__quic_keys_t *k = tg__quic_keys();
    gnutls_aead_cipher_hd_t aead = tg__quic_token_aead();
    if (!k || !aead)
        return TG_QUIC_TOKEN_EINTERNAL;

    uint8_t body[BODY_FIXED_LEN + TG_QUIC_MAX_CIDLEN];
    uint8_t *p = body;
    put_be64(p, now_ns);
    p += 8;
    *p++ = ca.family;
    memcpy(p, ca.addr, 16);
    p += 16;
    if (kind == TG_QUIC_TOKEN_RETRY)
        memcpy(p, ca.port, 2);
    else
        memset(p, 0, 2);
    p += 2;
    *p++ = (uint8_t)odcid_len;
    if (odcid_len)
        memcpy(p, odcid, odcid_len);

    out[0] = magic_of(kind);
    next_nonce(k, out + 1);
    size_t sealed_len = body_len + TAG_LEN;
    if (gnutls_aead_cipher_encrypt(aead, out + 1, NONCE_LEN, out, 1, TAG_LEN, body, body_len,
                                   out + HEAD_LEN, &sealed_len) != 0 ||
        sealed_len != body_len + TAG_LEN)
        return TG_QUIC_TOKEN_EINTERNAL;
    return (ssize_t)total;
}

int tg_quic_token_verify(const uint8_t *token, size_t len, tg_quic_token_kind_t kind,
                         const struct sockaddr *sa, socklen_t salen, uint64_t now_ns,
                         uint8_t *odcid, size_t *odcid_len)
{
    client_addr_t ca;
    if (kind != TG_QUIC_TOKEN_RETRY && kind != TG_QUIC_TOKEN_NEW_TOKEN)
        return TG_QUIC_TOKEN_EARG;
    if (read_addr(sa, salen, &ca) != 0)
        return TG_QUIC_TOKEN_EARG;
    tg_quic_token_kind_t claimed = tg_quic_token_kind(token, len);
    if (claimed == TG_QUIC_TOKEN_NONE)
        return TG_QUIC_TOKEN_EMALFORMED;

    gnutls_aead_cipher_hd_t aead = tg__quic_token_aead();
    if (!aead)
        return TG_QUIC_TOKEN_EINTERNAL;
    uint8_t body[BODY_FIXED_LEN + TG_QUIC_MAX_CIDLEN];
    size_t body_len = sizeof body;
    /* The magic is the AAD: a token relabelled as the other kind fails here. */
    if (gnutls_aead_cipher_decrypt(aead, token + 1, NONCE_LEN, token, 1, TAG_LEN, token + HEAD_LEN,
                                   len - HEAD_LEN, body, &body_len) != 0)
        return TG_QUIC_TOKEN_ETAG;
    /* Authentic from here on: what follows cannot be attacker-chosen, but is still checked
     * so a bug elsewhere cannot turn into an out-of-bounds read. */
    if (body_len != len - HEAD_LEN - TAG_LEN ||
        (size_t)body[BODY_FIXED_LEN - 1] != body_len - BODY_FIXED_LEN)
        return TG_QUIC_TOKEN_EMALFORMED;
    if (claimed != kind)
        return TG_QUIC_TOKEN_EKIND;

    uint64_t issued_ns = get_be64(body);
    uint64_t lifetime_ns = kind == TG_QUIC_TOKEN_RETRY ? TG_QUIC_RETRY_TOKEN_LIFETIME_NS
                                                       : TG_QUIC_NEW_TOKEN_LIFETIME_NS;
    if (issued_ns > now_ns ? issued_ns - now_ns > CLOCK_SKEW_NS : now_ns - issued_ns > lifetime_ns)
        return TG_QUIC_TOKEN_EEXPIRED;

    if (body[8] != ca.family || memcmp(body + 9, ca.addr, 16) != 0)
        return TG_QUIC_TOKEN_EADDR;
    if (kind == TG_QUIC_TOKEN_RETRY && memcmp(body + 25, ca.port, 2) != 0)
        return TG_QUIC_TOKEN_EPORT;

    size_t n = body[BODY_FIXED_LEN - 1];
    if (odcid && n)
        memcpy(odcid, body + BODY_FIXED_LEN, n);
    if (odcid_len)
        *odcid_len = n;
    return TG_QUIC_TOKEN_OK;
}

const char *tg_quic_token_strerror(int err)
{
    switch (err) {
    case TG_QUIC_TOKEN_OK:
        return "ok";
    case TG_QUIC_TOKEN_EMALFORMED:
        return "malformed token";
    case TG_QUIC_TOKEN_ETAG:
        return "token failed authentication";
    case TG_QUIC_TOKEN_EKIND:
        return "token of the wrong kind";
    case TG_QUIC_TOKEN_EEXPIRED:
        return "token expired";
    case TG_QUIC_TOKEN_EADDR:
        return "token issued to another address";
    case TG_QUIC_TOKEN_EPORT:
        return "token issued to another port";
    case TG_QUIC_TOKEN_EARG:
        return "invalid argument";
    case TG_QUIC_TOKEN_EINTERNAL:
        return "crypto library failure";
    default:
        return "unknown token error";
    }
}
