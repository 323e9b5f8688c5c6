/* Unit tests of the QUIC helpers: address-validation tokens (round trips, expiry, address,
 * port, kind, tampering, truncation) and worker-routing connection ids with reset tokens. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tollgate/quic.h"
/* The worker's connection-id table is internal to the module but pure: tested here. */
#include "../../src/quic/quic_internal.h"

#define SEC 1000000000ull
#define T0 (1000 * SEC) /* any monotonic "now"; far from 0 so "before issue" is testable */

static struct sockaddr_in v4(const char *ip, uint16_t port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    assert_int_equal(inet_pton(AF_INET, ip, &sin.sin_addr), 1);
    return sin;
}

static struct sockaddr_in6 v6(const char *ip, uint16_t port)
{
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
    assert_int_equal(inet_pton(AF_INET6, ip, &sin6.sin6_addr), 1);
    return sin6;
}

#define SA(x) ((const struct sockaddr *)&(x)), (socklen_t)sizeof(x)

static const uint8_t ODCID[20] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10,
                                  11, 12, 13, 14, 15, 16, 17, 18, 19, 20};

static size_t make(uint8_t *tok, tg_quic_token_kind_t kind, const struct sockaddr *sa,
                   socklen_t salen, size_t odcid_len, uint64_t now_ns)
{
    ssize_t n = tg_quic_token_make(tok, TG_QUIC_TOKEN_MAX_LEN, kind, sa, salen,
                                   odcid_len ? ODCID : NULL, odcid_len, now_ns);
    assert_true(n > 0);
    assert_true(n <= TG_QUIC_TOKEN_MAX_LEN);
    return (size_t)n;
}

static void test_init(void **state)
{
    assert_int_equal(tg_quic_init(), 0);
    assert_int_equal(tg_quic_init(), 0);
}

static void test_retry_round_trip(void **state)
{
    struct sockaddr_in a4 = v4("192.0.2.7", 40000);
    struct sockaddr_in6 a6 = v6("2001:db8::1", 443);
    for (size_t odlen = 0; odlen <= TG_QUIC_MAX_CIDLEN; odlen++) {
        uint8_t tok[TG_QUIC_TOKEN_MAX_LEN], got[TG_QUIC_MAX_CIDLEN];
        size_t got_len = 99;
        size_t n = make(tok, TG_QUIC_TOKEN_RETRY, SA(a4), odlen, T0);
        assert_int_equal(tg_quic_token_kind(tok, n), TG_QUIC_TOKEN_RETRY);
        assert_int_equal(
            tg_quic_token_verify(tok, n, TG_QUIC_TOKEN_RETRY, SA(a4), T0 + SEC, got, &got_len),
            TG_QUIC_TOKEN_OK);
        assert_int_equal(got_len, odlen);
        assert_memory_equal(got, ODCID, odlen);

        n = make(tok, TG_QUIC_TOKEN_RETRY, SA(a6), odlen, T0);
        got_len = 99;
        assert_int_equal(
            tg_quic_token_verify(tok, n, TG_QUIC_TOKEN_RETRY, SA(a6), T0, got, &got_len),
            TG_QUIC_TOKEN_OK);
        assert_int_equal(got_len, odlen);
        assert_memory_equal(got, ODCID, odlen);
        /* The ODCID outputs are optional. */
        assert_int_equal(tg_quic_token_verify(tok, n, TG_QUIC_TOKEN_RETRY, SA(a6), T0, NULL, NULL),
                         TG_QUIC_TOKEN_OK);
    }
}

static void test_new_token_round_trip(void **state)
{
    struct sockaddr_in a4 = v4("198.51.100.3", 5000);
    struct sockaddr_in6 a6 = v6("::1", 5000);
    uint8_t tok[TG_QUIC_TOKEN_MAX_LEN];
    size_t got_len = 99;
    size_t n = make(tok, TG_QUIC_TOKEN_NEW_TOKEN, SA(a4), 0, T0);
    assert_int_equal(tg_quic_token_kind(tok, n), TG_QUIC_TOKEN_NEW_TOKEN);
    assert_int_equal(
        tg_quic_token_verify(tok, n, TG_QUIC_TOKEN_NEW_TOKEN, SA(a4), T0, NULL, &got_len),
        TG_QUIC_TOKEN_OK);
    assert_int_equal(got_len, 0);

    /* A later connection comes from a new port: NEW_TOKEN binds the address only. */
    struct sockaddr_in other_port = v4("198.51.100.3", 61000);
    assert_int_equal(tg_quic_token_verify(tok, n, TG_QUIC_TOKEN_NEW_TOKEN, SA(other_port),
                                          T0 + 30 * SEC, NULL, NULL),
                     TG_QUIC_TOKEN_OK);

    n = make(tok, TG_QUIC_TOKEN_NEW_TOKEN, SA(a6), 0, T0);
    assert_int_equal(
        tg_quic_token_verify(tok, n, TG_QUIC_TOKEN_NEW_TOKEN, SA(a6), T0 + 1, NULL, NULL),
        TG_QUIC_TOKEN_OK);
}

static void test_tokens_differ(void **state)
{
    /* Same inputs, fresh nonce: two tokens never look alike. */
    struct sockaddr_in a = v4("192.0.2.1", 1);
    uint8_t t1[TG_QUIC_TOKEN_MAX_LEN], t2[TG_QUIC_TOKEN_MAX_LEN];
    size_t n1 = make(t1, TG_QUIC_TOKEN_RETRY, SA(a), 8, T0);
    size_t n2 = make(t2, TG_QUIC_TOKEN_RETRY, SA(a), 8, T0);
    assert_int_equal(n1, n2);
    assert_memory_not_equal(t1 + 1, t2 + 1, n1 - 1);
}

static void test_expiry(void **state)
{
    struct sockaddr_in a = v4("192.0.2.1", 4433);
    uint8_t tok[TG_QUIC_TOKEN_MAX_LEN];
    size_t n = make(tok, TG_QUIC_TOKEN_RETRY, SA(a), 8, T0);
    uint64_t life = TG_QUIC_RETRY_TOKEN_LIFETIME_NS;
    assert_int_equal(life, 10 * SEC);
    assert_int_equal(
        tg_quic_token_verify(tok, n, TG_QUIC_TOKEN_RETRY, SA(a), T0 + life, NULL, NULL),
        TG_QUIC_TOKEN_OK);
    assert_int_equal(
        tg_quic_token_verify(tok, n, TG_QUIC_TOKEN_RETRY, SA(a), T0 + life + 1, NULL, NULL),
        TG_QUIC_TOKEN_EEXPIRED);
    assert_int_equal(
        tg_quic_token_verify(tok, n, TG_QUIC_TOKEN_RETRY, SA(a), T0 + 3600 * SEC, NULL, NULL),
        TG_QUIC_TOKEN_EEXPIRED);
    /* Issued a little "later" than now (another worker's clock sample): accepted; far in
     * the future: refused. */
    assert_int_equal(
        tg_quic_token_verify(tok, n, TG_QUIC_TOKEN_RETRY, SA(a), T0 - SEC / 2, NULL, NULL),
        TG_QUIC_TOKEN_OK);
    assert_int_equal(
        tg_quic_token_verify(tok, n, TG_QUIC_TOKEN_RETRY, SA(a), T0 - 5 * SEC, NULL, NULL),
        TG_QUIC_TOKEN_EEXPIRED);

    n = make(tok, TG_QUIC_TOKEN_NEW_TOKEN, SA(a), 0, T0);
    life = TG_QUIC_NEW_TOKEN_LIFETIME_NS;
    assert_int_equal(
        tg_quic_token_verify(tok, n, TG_QUIC_TOKEN_NEW_TOKEN, SA(a), T0 + 60 * SEC, NULL, NULL),
        TG_QUIC_TOKEN_OK);
    assert_int_equal(
        tg_quic_token_verify(tok, n, TG_QUIC_TOKEN_NEW_TOKEN, SA(a), T0 + life, NULL, NULL),
        TG_QUIC_TOKEN_OK);
    assert_int_equal(
        tg_quic_token_verify(tok, n, TG_QUIC_TOKEN_NEW_TOKEN, SA(a), T0 + life + 1, NULL, NULL),
        TG_QUIC_TOKEN_EEXPIRED);
}

static void test_wrong_address(void **state)
{
    struct sockaddr_in a = v4("192.0.2.1", 4433);
    struct sockaddr_in other_ip = v4("192.0.2.2", 4433);
    struct sockaddr_in other_port = v4("192.0.2.1", 4434);
    struct sockaddr_in6 a6 = v6("2001:db8::1", 4433);
    struct sockaddr_in6 a6_other = v6("2001:db8::2", 4433);
    struct sockaddr_in6 a6_other_port = v6("2001:db8::1", 1);
    /* ::ffff:192.0.2.1 is another family: a dual-stack socket shows one client one way. */
    struct sockaddr_in6 mapped = v6("::ffff:192.0.2.1", 4433);
    uint8_t tok[TG_QUIC_TOKEN_MAX_LEN];

    size_t n = make(tok, TG_QUIC_TOKEN_RETRY, SA(a), 8, T0);
    assert_int_equal(
        tg_quic_token_verify(tok, n, TG_QUIC_TOKEN_RETRY, SA(other_ip), T0, NULL, NULL),
        TG_QUIC_TOKEN_EADDR);
    assert_int_equal(
        tg_quic_token_verify(tok, n, TG_QUIC_TOKEN_RETRY, SA(other_port), T0, NULL, NULL),
        TG_QUIC_TOKEN_EPORT);
    assert_int_equal(tg_quic_token_verify(tok, n, TG_QUIC_TOKEN_RETRY, SA(mapped), T0, NULL, NULL),
                     TG_QUIC_TOKEN_EADDR);
    assert_int_equal(tg_quic_token_verify(tok, n, TG_QUIC_TOKEN_RETRY, SA(a6), T0, NULL, NULL),
                     TG_QUIC_TOKEN_EADDR);

    n = make(tok, TG_QUIC_TOKEN_RETRY, SA(a6), 20, T0);
    assert_int_equal(
        tg_quic_token_verify(tok, n, TG_QUIC_TOKEN_RETRY, SA(a6_other), T0, NULL, NULL),
        TG_QUIC_TOKEN_EADDR);
    assert_int_equal(
        tg_quic_token_verify(tok, n, TG_QUIC_TOKEN_RETRY, SA(a6_other_port), T0, NULL, NULL),
        TG_QUIC_TOKEN_EPORT);
    assert_int_equal(tg_quic_token_verify(tok, n, TG_QUIC_TOKEN_RETRY, SA(a), T0, NULL, NULL),
                     TG_QUIC_TOKEN_EADDR);

    n = make(tok, TG_QUIC_TOKEN_NEW_TOKEN, SA(a6), 0, T0);
    assert_int_equal(
        tg_quic_token_verify(tok, n, TG_QUIC_TOKEN_NEW_TOKEN, SA(a6_other), T0, NULL, NULL),
        TG_QUIC_TOKEN_EADDR);
    assert_int_equal(
        tg_quic_token_verify(tok, n, TG_QUIC_TOKEN_NEW_TOKEN, SA(a6_other_port), T0, NULL, NULL),
        TG_QUIC_TOKEN_OK);
}

static void test_wrong_kind(void **state)
{
    struct sockaddr_in a = v4("192.0.2.1", 4433);
    uint8_t tok[TG_QUIC_TOKEN_MAX_LEN];
    size_t n = make(tok, TG_QUIC_TOKEN_RETRY, SA(a), 0, T0);
    /* An empty-ODCID Retry token has the NEW_TOKEN length: only the kind tells them apart. */
    assert_int_equal(tg_quic_token_verify(tok, n, TG_QUIC_TOKEN_NEW_TOKEN, SA(a), T0, NULL, NULL),
                     TG_QUIC_TOKEN_EKIND);
    n = make(tok, TG_QUIC_TOKEN_NEW_TOKEN, SA(a), 0, T0);
    assert_int_equal(tg_quic_token_verify(tok, n, TG_QUIC_TOKEN_RETRY, SA(a), T0, NULL, NULL),
                     TG_QUIC_TOKEN_EKIND);
    /* Relabelling the clear kind byte is caught by the tag, not believed. */
    tok[0] ^= 0xd2 ^ 0x4e;
    assert_int_equal(tg_quic_token_kind(tok, n), TG_QUIC_TOKEN_RETRY);
    assert_int_equal(tg_quic_token_verify(tok, n, TG_QUIC_TOKEN_RETRY, SA(a), T0, NULL, NULL),
                     TG_QUIC_TOKEN_ETAG);
}

static void check_tamper(tg_quic_token_kind_t kind, const struct sockaddr *sa, socklen_t salen,
                         size_t odlen)
{
    static const uint8_t masks[] = {0x01, 0x02, 0x10, 0x80, 0xff};
    uint8_t tok[TG_QUIC_TOKEN_MAX_LEN], bad[TG_QUIC_TOKEN_MAX_LEN];
    size_t n = make(tok, kind, sa, salen, odlen, T0);
    for (size_t i = 0; i < n; i++) {
        for (size_t m = 0; m < sizeof masks; m++) {
            memcpy(bad, tok, n);
            bad[i] ^= masks[m];
            int rv = tg_quic_token_verify(bad, n, kind, sa, salen, T0, NULL, NULL);
            if (i == 0)
                assert_true(rv == TG_QUIC_TOKEN_EMALFORMED || rv == TG_QUIC_TOKEN_ETAG);
            else
                assert_int_equal(rv, TG_QUIC_TOKEN_ETAG);
        }
    }
    /* Every truncation, and one byte too many. */
    for (size_t len = 0; len < n; len++) {
        int rv = tg_quic_token_verify(tok, len, kind, sa, salen, T0, NULL, NULL);
        assert_true(rv == TG_QUIC_TOKEN_EMALFORMED || rv == TG_QUIC_TOKEN_ETAG);
    }
    memcpy(bad, tok, n);
    bad[n] = 0;
    int rv = tg_quic_token_verify(bad, n + 1, kind, sa, salen, T0, NULL, NULL);
    assert_true(rv == TG_QUIC_TOKEN_EMALFORMED || rv == TG_QUIC_TOKEN_ETAG);
    /* And the untouched token still verifies. */
    assert_int_equal(tg_quic_token_verify(tok, n, kind, sa, salen, T0, NULL, NULL),
                     TG_QUIC_TOKEN_OK);
}

static void test_tamper_every_byte(void **state)
{
    struct sockaddr_in a = v4("203.0.113.9", 50000);
    struct sockaddr_in6 a6 = v6("2001:db8:1::9", 50000);
    check_tamper(TG_QUIC_TOKEN_RETRY, SA(a), 8);
    check_tamper(TG_QUIC_TOKEN_RETRY, SA(a6), 19); /* bad[n] must fit: at most MAX_LEN - 1 */
    check_tamper(TG_QUIC_TOKEN_NEW_TOKEN, SA(a), 0);
    check_tamper(TG_QUIC_TOKEN_NEW_TOKEN, SA(a6), 0);
}

static void test_garbage(void **state)
{
    struct sockaddr_in a = v4("192.0.2.1", 4433);
    uint8_t junk[TG_QUIC_TOKEN_MAX_LEN + 8];
    for (int round = 0; round < 2000; round++) {
        size_t len = (size_t)(rand() % (int)sizeof junk);
        for (size_t i = 0; i < len; i++)
            junk[i] = (uint8_t)rand();
        if (round % 2 && len)
            junk[0] = 0xd2; /* the Retry magic: past the cheap checks, into the AEAD */
        int rv = tg_quic_token_verify(junk, len, TG_QUIC_TOKEN_RETRY, SA(a), T0, NULL, NULL);
        assert_true(rv == TG_QUIC_TOKEN_EMALFORMED || rv == TG_QUIC_TOKEN_ETAG);
    }
    assert_int_equal(tg_quic_token_verify(NULL, 0, TG_QUIC_TOKEN_RETRY, SA(a), T0, NULL, NULL),
                     TG_QUIC_TOKEN_EMALFORMED);
    assert_int_equal(tg_quic_token_kind(NULL, 0), TG_QUIC_TOKEN_NONE);
}

static void test_bad_arguments(void **state)
{
    struct sockaddr_in a = v4("192.0.2.1", 4433);
    struct sockaddr_un_like {
        sa_family_t family;
        char path[20];
    } unix_sa = {.family = AF_UNIX};
    uint8_t tok[TG_QUIC_TOKEN_MAX_LEN];

    assert_int_equal(
        tg_quic_token_make(tok, sizeof tok, TG_QUIC_TOKEN_RETRY, SA(unix_sa), NULL, 0, T0),
        TG_QUIC_TOKEN_EARG);
    assert_int_equal(tg_quic_token_make(tok, sizeof tok, TG_QUIC_TOKEN_RETRY,
                                        (const struct sockaddr *)&a, sizeof a - 1, NULL, 0, T0),
                     TG_QUIC_TOKEN_EARG);
    assert_int_equal(tg_quic_token_make(tok, sizeof tok, TG_QUIC_TOKEN_RETRY, NULL, 0, NULL, 0, T0),
                     TG_QUIC_TOKEN_EARG);
    assert_int_equal(tg_quic_token_make(tok, sizeof tok, TG_QUIC_TOKEN_RETRY, SA(a), ODCID, 21, T0),
                     TG_QUIC_TOKEN_EARG);
    assert_int_equal(tg_quic_token_make(tok, sizeof tok, TG_QUIC_TOKEN_RETRY, SA(a), NULL, 4, T0),
                     TG_QUIC_TOKEN_EARG);
    assert_int_equal(
        tg_quic_token_make(tok, sizeof tok, TG_QUIC_TOKEN_NEW_TOKEN, SA(a), ODCID, 4, T0),
        TG_QUIC_TOKEN_EARG);
    assert_int_equal(
        tg_quic_token_make(tok, sizeof tok, (tg_quic_token_kind_t)7, SA(a), NULL, 0, T0),
        TG_QUIC_TOKEN_EARG);
    /* Too small a buffer: nothing written past it. */
    assert_int_equal(tg_quic_token_make(tok, 56, TG_QUIC_TOKEN_NEW_TOKEN, SA(a), NULL, 0, T0),
                     TG_QUIC_TOKEN_EARG);
    assert_int_equal(tg_quic_token_make(tok, 57, TG_QUIC_TOKEN_NEW_TOKEN, SA(a), NULL, 0, T0), 57);
    assert_int_equal(tg_quic_token_make(tok, sizeof tok, TG_QUIC_TOKEN_RETRY, SA(a), ODCID, 20, T0),
                     TG_QUIC_TOKEN_MAX_LEN);

    size_t n = make(tok, TG_QUIC_TOKEN_RETRY, SA(a), 4, T0);
    assert_int_equal(tg_quic_token_verify(tok, n, TG_QUIC_TOKEN_RETRY, SA(unix_sa), T0, NULL, NULL),
                     TG_QUIC_TOKEN_EARG);
    assert_int_equal(tg_quic_token_verify(tok, n, TG_QUIC_TOKEN_NONE, SA(a), T0, NULL, NULL),
                     TG_QUIC_TOKEN_EARG);
    for (int e = 0; e >= -9; e--)
        assert_non_null(tg_quic_token_strerror(e));
}

/* Tokens made in one thread verify in another: the key is the process's, the cipher
 * handles are per thread. */
static void *token_thread(void *arg)
{
    struct sockaddr_in a = v4("192.0.2.44", 1234);
    uint8_t tok[TG_QUIC_TOKEN_MAX_LEN];
    uint8_t *shared = arg;
    for (int i = 0; i < 500; i++) {
        ssize_t n = tg_quic_token_make(tok, sizeof tok, TG_QUIC_TOKEN_RETRY, SA(a), ODCID, 8, T0);
        if (n <= 0 ||
            tg_quic_token_verify(tok, (size_t)n, TG_QUIC_TOKEN_RETRY, SA(a), T0, NULL, NULL) != 0 ||
            tg_quic_token_verify(shared, 57, TG_QUIC_TOKEN_NEW_TOKEN, SA(a), T0, NULL, NULL) != 0)
            return (void *)1;
        uint8_t cid[TG_QUIC_CID_LEN];
        if (tg_quic_cid_new(cid, i % 64) != 0 || tg_quic_cid_worker(cid, sizeof cid) != i % 64)
            return (void *)1;
    }
    return NULL;
}

static void test_threads(void **state)
{
    struct sockaddr_in a = v4("192.0.2.44", 9);
    uint8_t shared[TG_QUIC_TOKEN_MAX_LEN];
    assert_int_equal(make(shared, TG_QUIC_TOKEN_NEW_TOKEN, SA(a), 0, T0), 57);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, token_thread, shared), 0);
    for (int i = 0; i < 4; i++) {
        void *rv;
        assert_int_equal(pthread_join(t[i], &rv), 0);
        assert_null(rv);
    }
}

/* ---- connection ids ----------------------------------------------------------------- */

static void test_cid_routing(void **state)
{
    for (int w = 0; w < 64; w++) {
        for (int i = 0; i < 200; i++) {
            uint8_t cid[TG_QUIC_CID_LEN];
            assert_int_equal(tg_quic_cid_new(cid, w), 0);
            assert_int_equal(tg_quic_cid_worker(cid, sizeof cid), w);
        }
    }
    uint8_t cid[TG_QUIC_CID_LEN];
    assert_int_equal(tg_quic_cid_new(cid, TG_QUIC_MAX_WORKERS - 1), 0);
    assert_int_equal(tg_quic_cid_worker(cid, sizeof cid), TG_QUIC_MAX_WORKERS - 1);
    assert_int_equal(tg_quic_cid_new(cid, TG_QUIC_MAX_WORKERS), -1);
    assert_int_equal(tg_quic_cid_new(cid, -1), -1);
}

static void test_cid_hides_worker(void **state)
{
    /* Ids of one worker share no byte position: nothing in clear names the worker. */
    enum { N = 256 };
    static uint8_t cids[N][TG_QUIC_CID_LEN];
    for (int i = 0; i < N; i++)
        assert_int_equal(tg_quic_cid_new(cids[i], 5), 0);
    for (size_t pos = 0; pos < TG_QUIC_CID_LEN; pos++) {
        int same = 0;
        for (int i = 1; i < N; i++)
            same += cids[i][pos] == cids[0][pos];
        assert_true(same < N / 8);
    }
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            assert_memory_not_equal(cids[i], cids[j], TG_QUIC_CID_LEN);
}

static void test_cid_foreign(void **state)
{
    /* Random ids (client-chosen DCIDs, another process's ids) are not ours. */
    uint8_t cid[TG_QUIC_MAX_CIDLEN];
    int ours = 0;
    for (int i = 0; i < 20000; i++) {
        for (size_t b = 0; b < sizeof cid; b++)
            cid[b] = (uint8_t)rand();
        ours += tg_quic_cid_worker(cid, TG_QUIC_CID_LEN) != -1;
    }
    assert_int_equal(ours, 0);

    /* A valid id at the wrong length, or with any bit changed, is refused. */
    uint8_t good[TG_QUIC_CID_LEN + 2];
    assert_int_equal(tg_quic_cid_new(good, 17), 0);
    good[TG_QUIC_CID_LEN] = good[TG_QUIC_CID_LEN + 1] = 0;
    for (size_t len = 0; len <= TG_QUIC_CID_LEN + 2; len++)
        assert_int_equal(tg_quic_cid_worker(good, len), len == TG_QUIC_CID_LEN ? 17 : -1);
    for (size_t b = 0; b < TG_QUIC_CID_LEN; b++) {
        for (int bit = 0; bit < 8; bit++) {
            good[b] ^= (uint8_t)(1u << bit);
            assert_int_equal(tg_quic_cid_worker(good, TG_QUIC_CID_LEN), -1);
            good[b] ^= (uint8_t)(1u << bit);
        }
    }
    assert_int_equal(tg_quic_cid_worker(good, TG_QUIC_CID_LEN), 17);
    assert_int_equal(tg_quic_cid_worker(NULL, TG_QUIC_CID_LEN), -1);
}

static void test_reset_token(void **state)
{
    uint8_t c1[TG_QUIC_CID_LEN], c2[TG_QUIC_CID_LEN];
    uint8_t t1[TG_QUIC_RESET_TOKEN_LEN], t1b[TG_QUIC_RESET_TOKEN_LEN], t2[TG_QUIC_RESET_TOKEN_LEN];
    assert_int_equal(tg_quic_cid_new(c1, 3), 0);
    assert_int_equal(tg_quic_cid_new(c2, 3), 0);
    assert_int_equal(tg_quic_reset_token(t1, c1, sizeof c1), 0);
    assert_int_equal(tg_quic_reset_token(t1b, c1, sizeof c1), 0);
    assert_int_equal(tg_quic_reset_token(t2, c2, sizeof c2), 0);
    assert_memory_equal(t1, t1b, sizeof t1);    /* every worker derives the same token */
    assert_memory_not_equal(t1, t2, sizeof t1); /* and each id has its own */
    assert_int_equal(tg_quic_reset_token(t2, c1, sizeof c1 - 1), 0);
    assert_memory_not_equal(t1, t2, sizeof t1); /* the length counts */

    uint8_t any[TG_QUIC_MAX_CIDLEN + 1] = {0};
    assert_int_equal(tg_quic_reset_token(t2, any, 0), 0);
    assert_int_equal(tg_quic_reset_token(t2, NULL, 0), 0);
    assert_int_equal(tg_quic_reset_token(t2, any, TG_QUIC_MAX_CIDLEN), 0);
    assert_int_equal(tg_quic_reset_token(t2, any, TG_QUIC_MAX_CIDLEN + 1), -1);
    assert_int_equal(tg_quic_reset_token(t2, NULL, 4), -1);
}

/* The table a worker routes datagrams with: every id finds its connection through growth,
 * removal takes only the named connection's entry, and a reused first DCID goes to the
 * newest connection. */
static void test_cid_table(void **state)
{
    (void)state;
    enum { N = 3000 };
    static uint8_t ids[N][TG_QUIC_CID_LEN];
    tg__cid_table_t t;
    tg__cid_table_init(&t);
    tg__qconn_t *a = (tg__qconn_t *)(uintptr_t)0x1000, *b = (tg__qconn_t *)(uintptr_t)0x2000;
    for (int i = 0; i < N; i++) {
        assert_int_equal(tg_quic_cid_new(ids[i], 3), 0);
        tg__cid_add(&t, ids[i], TG_QUIC_CID_LEN, i % 2 ? a : b);
    }
    assert_int_equal(t.n, N);
    assert_true(t.nbuckets >= N); /* grown */
    for (int i = 0; i < N; i++) {
        assert_ptr_equal(tg__cid_find(&t, ids[i], TG_QUIC_CID_LEN), i % 2 ? a : b);
        assert_int_equal(tg_quic_cid_worker(ids[i], TG_QUIC_CID_LEN), 3);
        assert_null(tg__cid_find(&t, ids[i], TG_QUIC_CID_LEN - 1)); /* length is part of it */
    }
    for (int i = 0; i < N; i += 2) {
        tg__cid_remove(&t, ids[i], TG_QUIC_CID_LEN, a); /* b's: not a's to remove */
        assert_ptr_equal(tg__cid_find(&t, ids[i], TG_QUIC_CID_LEN), b);
        tg__cid_remove(&t, ids[i], TG_QUIC_CID_LEN, b);
        assert_null(tg__cid_find(&t, ids[i], TG_QUIC_CID_LEN));
    }
    assert_int_equal(t.n, N / 2);
    for (int i = 1; i < N; i += 2)
        assert_ptr_equal(tg__cid_find(&t, ids[i], TG_QUIC_CID_LEN), a);
    /* A client's own 8-byte first DCID, reused by a second connection. */
    const uint8_t dcid[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    tg__cid_add(&t, dcid, sizeof dcid, a);
    tg__cid_add(&t, dcid, sizeof dcid, b);
    assert_ptr_equal(tg__cid_find(&t, dcid, sizeof dcid), b);
    tg__cid_remove(&t, dcid, sizeof dcid, a); /* the first connection goes: b keeps it */
    assert_ptr_equal(tg__cid_find(&t, dcid, sizeof dcid), b);
    uint8_t big[NGTCP2_MAX_CIDLEN + 1] = {0};
    assert_null(tg__cid_find(&t, big, sizeof big)); /* over-long ids are nobody's */
    tg__cid_table_free(&t);
}

int main(void)
{
    srand(12345);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_retry_round_trip),
        cmocka_unit_test(test_new_token_round_trip),
        cmocka_unit_test(test_tokens_differ),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_wrong_address),
        cmocka_unit_test(test_wrong_kind),
        cmocka_unit_test(test_tamper_every_byte),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_cid_routing),
        cmocka_unit_test(test_cid_hides_worker),
        cmocka_unit_test(test_cid_foreign),
        cmocka_unit_test(test_reset_token),
        cmocka_unit_test(test_cid_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
