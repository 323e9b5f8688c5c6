/* fuzz_quic_token: arbitrary bytes as QUIC address-validation tokens and connection ids
 * (never accepted, never a crash), and tokens and ids made from fuzzed fields (accepted
 * until too old; a token refused once any byte changes). The first input byte picks the mode. */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/quic.h"

#define NOW_NS (5000ull * 1000000000ull)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void hostile(const uint8_t *data, size_t size)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(4433)};
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(4433)};
    sin.sin_addr.s_addr = htonl(0x7f000001);
    sin6.sin6_addr.s6_addr[15] = 1;
    uint8_t odcid[TG_QUIC_MAX_CIDLEN];
    size_t odcid_len = 0;

    (void)tg_quic_token_kind(data, size);
    for (int kind = TG_QUIC_TOKEN_RETRY; kind <= TG_QUIC_TOKEN_NEW_TOKEN; kind++) {
        int rv = tg_quic_token_verify(data, size, (tg_quic_token_kind_t)kind,
                                      (const struct sockaddr *)&sin, sizeof sin, NOW_NS, odcid,
                                      &odcid_len);
        if (rv == TG_QUIC_TOKEN_OK || (rv != TG_QUIC_TOKEN_EMALFORMED && rv != TG_QUIC_TOKEN_ETAG))
            abort(); /* a forged token got past the tag */
        rv = tg_quic_token_verify(data, size, (tg_quic_token_kind_t)kind,
                                  (const struct sockaddr *)&sin6, sizeof sin6, NOW_NS, NULL, NULL);
        if (rv == TG_QUIC_TOKEN_OK)
            abort();
    }
    int w = tg_quic_cid_worker(data, size);
    if (w < -1 || w >= TG_QUIC_MAX_WORKERS)
        abort();
    uint8_t reset[TG_QUIC_RESET_TOKEN_LEN];
    if (tg_quic_reset_token(reset, data, size) != (size <= TG_QUIC_MAX_CIDLEN ? 0 : -1))
        abort();
}

/* Fields: kind, family, address (16), port (2), odcid length and bytes, age (4, in ms),
 * then which byte to flip. Missing bytes read as zero. */
static void round_trip(const uint8_t *data, size_t size)
{
    uint8_t f[64] = {0};
    memcpy(f, data, size < sizeof f ? size : sizeof f);
    tg_quic_token_kind_t kind = f[0] & 1 ? TG_QUIC_TOKEN_RETRY : TG_QUIC_TOKEN_NEW_TOKEN;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t salen;
    if (f[1] & 1) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        sin6->sin6_family = AF_INET6;
        memcpy(&sin6->sin6_addr, f + 2, 16);
        memcpy(&sin6->sin6_port, f + 18, 2);
        salen = sizeof *sin6;
    } else {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, f + 2, 4);
        memcpy(&sin->sin_port, f + 18, 2);
        salen = sizeof *sin;
    }
    size_t odcid_len = kind == TG_QUIC_TOKEN_RETRY ? f[20] % (TG_QUIC_MAX_CIDLEN + 1) : 0;
    const uint8_t *odcid = f + 21;
    uint64_t age_ns = (uint64_t)(f[41] | f[42] << 8 | f[43] << 16 | (uint32_t)f[44] << 24) % 20000 *
                      1000000ull; /* 0 .. 20 s */
    uint64_t life_ns = kind == TG_QUIC_TOKEN_RETRY ? TG_QUIC_RETRY_TOKEN_LIFETIME_NS
                                                   : TG_QUIC_NEW_TOKEN_LIFETIME_NS;

    uint8_t tok[TG_QUIC_TOKEN_MAX_LEN];
    ssize_t n = tg_quic_token_make(tok, sizeof tok, kind, (const struct sockaddr *)&ss, salen,
                                   odcid_len ? odcid : NULL, odcid_len, NOW_NS);
    if (n <= 0 || tg_quic_token_kind(tok, (size_t)n) != kind)
        abort();
    uint8_t got[TG_QUIC_MAX_CIDLEN];
    size_t got_len = 0;
    int rv = tg_quic_token_verify(tok, (size_t)n, kind, (const struct sockaddr *)&ss, salen,
                                  NOW_NS + age_ns, got, &got_len);
    int want = age_ns > life_ns ? TG_QUIC_TOKEN_EEXPIRED : TG_QUIC_TOKEN_OK;
    if (rv != want)
        abort();
    if (rv == TG_QUIC_TOKEN_OK && (got_len != odcid_len || memcmp(got, odcid, odcid_len) != 0))
        abort();

    size_t pos = f[45] % (size_t)n;
    tok[pos] ^= f[46] ? f[46] : 1;
    rv = tg_quic_token_verify(tok, (size_t)n, kind, (const struct sockaddr *)&ss, salen, NOW_NS,
                              NULL, NULL);
    if (rv == TG_QUIC_TOKEN_OK)
        abort();

    uint8_t cid[TG_QUIC_CID_LEN];
    int worker = (f[47] | f[48] << 8) % TG_QUIC_MAX_WORKERS;
    if (tg_quic_cid_new(cid, worker) != 0 || tg_quic_cid_worker(cid, sizeof cid) != worker)
        abort();
    /* An altered id is refused except with probability 2^-32: too often to abort on in
     * millions of runs, so this only exercises the path. */
    cid[f[49] % TG_QUIC_CID_LEN] ^= f[50] ? f[50] : 0x80;
    (void)tg_quic_cid_worker(cid, sizeof cid);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] & 1)
        round_trip(data + 1, size - 1);
    else
        hostile(data + 1, size - 1);
    return 0;
}
