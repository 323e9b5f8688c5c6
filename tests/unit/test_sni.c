/* Unit tests of the SNI name table and of the name set under it; certificates are hand-made
 * tg_cert_t with names and a key type only, which is all the table reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tollgate/cert.h"
#include "../../src/cert/cert_internal.h"

#define CERT(var, type, ...)                                                                       \
    char *var##_names[] = {__VA_ARGS__};                                                           \
    tg_cert_t var = {.id = #var,                                                                   \
                     .key_type = (type),                                                           \
                     .names = var##_names,                                                         \
                     .nnames = TG_ARRAY_SIZE(var##_names)}

static size_t look(const tg_sni_t *sni, const char *host)
{
    return tg_sni_lookup(sni, host, strlen(host));
}

static const tg_sni_slot_t *slot_of(const tg_sni_t *sni, const char *host)
{
    size_t s = look(sni, host);
    assert_true(s < sni->nslots);
    return &sni->slots[s];
}

static void test_exact_beats_wildcard(void **state)
{
    CERT(def, TG_KEY_EC, "default.example");
    CERT(wild, TG_KEY_EC, "*.example.com");
    CERT(www, TG_KEY_EC, "www.example.com");
    const tg_cert_t *certs[] = {&def, &wild, &www};
    tg_sni_t sni;
    assert_int_equal(tg_sni_build(&sni, certs, 3), 0);
    assert_ptr_equal(slot_of(&sni, "www.example.com")->ec, &www);
    assert_ptr_equal(slot_of(&sni, "api.example.com")->ec, &wild);
    assert_ptr_equal(slot_of(&sni, "default.example")->ec, &def);
    assert_int_equal(look(&sni, "default.example"), 0);
    tg_sni_free(&sni);

    /* The order of the certificates does not matter for exact vs wildcard. */
    const tg_cert_t *reversed[] = {&def, &www, &wild};
    assert_int_equal(tg_sni_build(&sni, reversed, 3), 0);
    assert_ptr_equal(slot_of(&sni, "www.example.com")->ec, &www);
    assert_ptr_equal(slot_of(&sni, "api.example.com")->ec, &wild);
    tg_sni_free(&sni);
}

static void test_wildcard_one_label(void **state)
{
    CERT(def, TG_KEY_EC, "default.example");
    CERT(wild, TG_KEY_EC, "*.example.com");
    const tg_cert_t *certs[] = {&def, &wild};
    tg_sni_t sni;
    assert_int_equal(tg_sni_build(&sni, certs, 2), 0);
    assert_int_not_equal(look(&sni, "a.example.com"), 0);
    assert_int_equal(look(&sni, "a.b.example.com"), 0);
    assert_int_equal(look(&sni, "example.com"), 0);
    assert_int_equal(look(&sni, ".example.com"), 0);
    assert_int_equal(look(&sni, "*.example.com"), look(&sni, "a.example.com"));
    assert_int_equal(look(&sni, "a.example.com.evil"), 0);
    assert_int_equal(look(&sni, "aexample.com"), 0);
    assert_int_equal(look(&sni, "com"), 0);
    tg_sni_free(&sni);
}

static void test_no_match_is_default(void **state)
{
    CERT(def, TG_KEY_RSA, "default.example");
    CERT(shop, TG_KEY_RSA, "shop.example");
    const tg_cert_t *certs[] = {&def, &shop};
    tg_sni_t sni;
    assert_int_equal(tg_sni_build(&sni, certs, 2), 0);
    assert_int_equal(look(&sni, "unknown.example"), 0);
    assert_int_equal(look(&sni, ""), 0);
    assert_int_equal(tg_sni_lookup(&sni, NULL, 0), 0);
    assert_int_equal(look(&sni, "."), 0);
    assert_ptr_equal(sni.slots[0].rsa, &def);
    assert_null(sni.slots[0].ec);
    assert_ptr_equal(slot_of(&sni, "shop.example")->rsa, &shop);
    tg_sni_free(&sni);
}

static void test_case_insensitive(void **state)
{
    CERT(def, TG_KEY_EC, "default.example");
    CERT(mixed, TG_KEY_EC, "Shop.Example.COM", "*.Img.Example.com");
    const tg_cert_t *certs[] = {&def, &mixed};
    tg_sni_t sni;
    assert_int_equal(tg_sni_build(&sni, certs, 2), 0);
    size_t s = look(&sni, "shop.example.com");
    assert_int_not_equal(s, 0);
    assert_int_equal(look(&sni, "SHOP.EXAMPLE.COM"), s);
    assert_int_equal(look(&sni, "sHoP.eXaMpLe.CoM"), s);
    assert_int_equal(look(&sni, "CDN.IMG.EXAMPLE.COM"), s);
    tg_sni_free(&sni);
}

static void test_trailing_dot(void **state)
{
    CERT(def, TG_KEY_EC, "default.example");
    CERT(shop, TG_KEY_EC, "shop.example.com", "dotted.example.com.");
    const tg_cert_t *certs[] = {&def, &shop};
    tg_sni_t sni;
    assert_int_equal(tg_sni_build(&sni, certs, 2), 0);
    size_t s = look(&sni, "shop.example.com");
    assert_int_not_equal(s, 0);
    assert_int_equal(look(&sni, "shop.example.com."), s);
    assert_int_equal(look(&sni, "shop.example.com.."), 0); /* one dot only */
    assert_int_equal(look(&sni, "dotted.example.com"), s);
    assert_int_equal(look(&sni, "dotted.example.com."), s);
    tg_sni_free(&sni);
}

static void test_not_nul_terminated(void **state)
{
    CERT(def, TG_KEY_EC, "default.example");
    CERT(shop, TG_KEY_EC, "shop.example");
    const tg_cert_t *certs[] = {&def, &shop};
    tg_sni_t sni;
    assert_int_equal(tg_sni_build(&sni, certs, 2), 0);
    const char buf[] = "shop.exampleXYZ";
    assert_int_equal(tg_sni_lookup(&sni, buf, 12), look(&sni, "shop.example"));
    assert_int_not_equal(tg_sni_lookup(&sni, buf, 12), 0);
    assert_int_equal(tg_sni_lookup(&sni, buf, 11), 0);
    /* An embedded NUL never matches a name. */
    assert_int_equal(tg_sni_lookup(&sni, "shop\0example", 12), 0);
    tg_sni_free(&sni);
}

static void test_rsa_ec_pair(void **state)
{
    CERT(def, TG_KEY_EC, "default.example");
    CERT(shop_ec, TG_KEY_EC, "shop.example", "*.shop.example");
    CERT(shop_rsa, TG_KEY_RSA, "shop.example", "*.shop.example");
    const tg_cert_t *certs[] = {&def, &shop_ec, &shop_rsa};
    tg_sni_t sni;
    assert_int_equal(tg_sni_build(&sni, certs, 3), 0);
    size_t s = look(&sni, "shop.example");
    assert_int_not_equal(s, 0);
    assert_ptr_equal(sni.slots[s].ec, &shop_ec);
    assert_ptr_equal(sni.slots[s].rsa, &shop_rsa);
    assert_int_equal(look(&sni, "www.shop.example"), s);
    assert_int_equal(sni.nslots, 2);
    tg_sni_free(&sni);
}

static void test_first_of_each_type_wins(void **state)
{
    CERT(def, TG_KEY_EC, "default.example");
    CERT(a, TG_KEY_RSA, "x.example");
    CERT(b, TG_KEY_RSA, "x.example");
    CERT(c, TG_KEY_EC, "x.example");
    CERT(d, TG_KEY_EC, "x.example");
    const tg_cert_t *certs[] = {&def, &a, &b, &c, &d};
    tg_sni_t sni;
    assert_int_equal(tg_sni_build(&sni, certs, 5), 0);
    assert_ptr_equal(slot_of(&sni, "x.example")->rsa, &a);
    assert_ptr_equal(slot_of(&sni, "x.example")->ec, &c);
    tg_sni_free(&sni);

    /* The default takes part as a candidate too, and comes first. */
    CERT(def2, TG_KEY_EC, "x.example", "default2.example");
    const tg_cert_t *certs2[] = {&def2, &a, &c};
    assert_int_equal(tg_sni_build(&sni, certs2, 3), 0);
    assert_ptr_equal(slot_of(&sni, "x.example")->ec, &def2);
    assert_ptr_equal(slot_of(&sni, "x.example")->rsa, &a);
    tg_sni_free(&sni);
}

static void test_default_slot_pairing(void **state)
{
    /* Same names, other key type: paired into the default slot (order of names aside). */
    CERT(www_ec, TG_KEY_EC, "www.example.com", "example.com");
    CERT(shop, TG_KEY_RSA, "shop.example");
    CERT(www_rsa, TG_KEY_RSA, "EXAMPLE.COM", "www.example.com");
    CERT(www_rsa2, TG_KEY_RSA, "www.example.com", "example.com");
    const tg_cert_t *certs[] = {&www_ec, &shop, &www_rsa, &www_rsa2};
    tg_sni_t sni;
    assert_int_equal(tg_sni_build(&sni, certs, 4), 0);
    assert_ptr_equal(sni.slots[0].ec, &www_ec);
    assert_ptr_equal(sni.slots[0].rsa, &www_rsa);
    /* The default's names resolve to the default slot itself. */
    assert_int_equal(look(&sni, "www.example.com"), 0);
    assert_int_equal(look(&sni, "example.com"), 0);
    assert_int_equal(look(&sni, "unknown.example"), 0);
    assert_int_equal(sni.nslots, 2);
    tg_sni_free(&sni);

    /* Different names: no pairing, the default slot holds the default alone. */
    CERT(sub_rsa, TG_KEY_RSA, "www.example.com");
    const tg_cert_t *certs2[] = {&www_ec, &sub_rsa};
    assert_int_equal(tg_sni_build(&sni, certs2, 2), 0);
    assert_ptr_equal(sni.slots[0].ec, &www_ec);
    assert_null(sni.slots[0].rsa);
    size_t s = look(&sni, "www.example.com");
    assert_int_not_equal(s, 0);
    assert_ptr_equal(sni.slots[s].ec, &www_ec);
    assert_ptr_equal(sni.slots[s].rsa, &sub_rsa);
    assert_int_equal(look(&sni, "example.com"), 0);
    tg_sni_free(&sni);

    /* A certificate of the same key type never pairs with the default. */
    CERT(www_ec2, TG_KEY_EC, "www.example.com", "example.com");
    const tg_cert_t *certs3[] = {&www_ec, &www_ec2};
    assert_int_equal(tg_sni_build(&sni, certs3, 2), 0);
    assert_null(sni.slots[0].rsa);
    assert_int_equal(sni.nslots, 1);
    tg_sni_free(&sni);
}

static void test_slots_deduplicated(void **state)
{
    CERT(def, TG_KEY_EC, "default.example");
    CERT(multi, TG_KEY_EC, "a.example", "b.example", "*.c.example", "d.example");
    CERT(other, TG_KEY_RSA, "a.example", "b.example");
    const tg_cert_t *certs[] = {&def, &multi, &other};
    tg_sni_t sni;
    assert_int_equal(tg_sni_build(&sni, certs, 3), 0);
    size_t ab = look(&sni, "a.example");
    assert_int_equal(look(&sni, "b.example"), ab);
    size_t cd = look(&sni, "x.c.example");
    assert_int_equal(look(&sni, "d.example"), cd);
    assert_int_not_equal(ab, cd);
    assert_int_not_equal(ab, 0);
    assert_int_not_equal(cd, 0);
    /* default, (multi, other), (multi, -) */
    assert_int_equal(sni.nslots, 3);
    assert_ptr_equal(sni.slots[ab].rsa, &other);
    assert_null(sni.slots[cd].rsa);
    tg_sni_free(&sni);
}

static void test_long_host(void **state)
{
    char name[256];
    memset(name, 'a', sizeof(name));
    /* A 255-byte name in labels of 63. */
    for (int i = 63; i < 255; i += 64)
        name[i] = '.';
    name[255] = '\0';
    char *names[] = {name};
    CERT(def, TG_KEY_EC, "default.example");
    tg_cert_t longest = {.key_type = TG_KEY_RSA, .names = names, .nnames = 1};
    const tg_cert_t *certs[] = {&def, &longest};
    tg_sni_t sni;
    assert_int_equal(tg_sni_build(&sni, certs, 2), 0);
    assert_int_not_equal(look(&sni, name), 0);

    char host[300];
    memcpy(host, name, 255);
    host[255] = '.';
    host[256] = '\0';
    assert_int_not_equal(look(&sni, host), 0); /* 255 plus the trailing dot */

    char huge[4096];
    memset(huge, 'a', sizeof(huge) - 1);
    huge[sizeof(huge) - 1] = '\0';
    assert_int_equal(look(&sni, huge), 0);
    memcpy(huge, name, 255);
    huge[255] = 'b';
    huge[256] = '\0';
    assert_int_equal(look(&sni, huge), 0);
    tg_sni_free(&sni);
}

static void test_odd_names_ignored(void **state)
{
    /* Partial wildcards, lone stars and empty names never match anything. */
    CERT(def, TG_KEY_EC, "default.example");
    CERT(odd, TG_KEY_EC, "w*.example.com", "*", "*.", "", ".", "ok.example");
    const tg_cert_t *certs[] = {&def, &odd};
    tg_sni_t sni;
    assert_int_equal(tg_sni_build(&sni, certs, 2), 0);
    assert_int_equal(look(&sni, "w*.example.com"), 0);
    assert_int_equal(look(&sni, "www.example.com"), 0);
    assert_int_equal(look(&sni, "*"), 0);
    assert_int_equal(look(&sni, "x"), 0);
    assert_int_not_equal(look(&sni, "ok.example"), 0);
    tg_sni_free(&sni);
}

static void test_empty_tables(void **state)
{
    tg_sni_t sni;
    assert_int_equal(tg_sni_build(&sni, NULL, 0), 0);
    assert_int_equal(sni.nslots, 1);
    assert_null(sni.slots[0].ec);
    assert_int_equal(look(&sni, "anything"), 0);
    tg_sni_free(&sni);

    tg_cert_t bare = {.key_type = TG_KEY_EC};
    const tg_cert_t *certs[] = {&bare};
    assert_int_equal(tg_sni_build(&sni, certs, 1), 0);
    assert_ptr_equal(sni.slots[0].ec, &bare);
    assert_int_equal(look(&sni, "anything"), 0);
    tg_sni_free(&sni);
    tg_sni_free(&sni); /* idempotent */
}

static void test_many_names(void **state)
{
    /* Enough names to exercise collisions and probing. */
    enum { N = 2000 };
    static char bufs[N][32];
    static char *names[N];
    for (int i = 0; i < N; i++) {
        snprintf(bufs[i], sizeof(bufs[i]), i % 2 ? "host%d.example" : "*.w%d.example", i);
        names[i] = bufs[i];
    }
    CERT(def, TG_KEY_EC, "default.example");
    tg_cert_t big = {.key_type = TG_KEY_RSA, .names = names, .nnames = N};
    const tg_cert_t *certs[] = {&def, &big};
    tg_sni_t sni;
    assert_int_equal(tg_sni_build(&sni, certs, 2), 0);
    assert_int_equal(sni.nslots, 2);
    char host[64];
    for (int i = 0; i < N; i++) {
        if (i % 2)
            snprintf(host, sizeof(host), "HOST%d.example", i);
        else
            snprintf(host, sizeof(host), "x.w%d.example", i);
        assert_int_equal(look(&sni, host), 1);
        snprintf(host, sizeof(host), "nohost%d.example", i);
        assert_int_equal(look(&sni, host), 0);
    }
    tg_sni_free(&sni);
}

/* ---- the name set ---------------------------------------------------------------------- */

static int set_add(tg__nameset_t *set, const char *name)
{
    return tg__nameset_add(set, name, strlen(name));
}

static bool set_has(const tg__nameset_t *set, const char *name)
{
    return tg__nameset_has(set, name, strlen(name));
}

static void test_nameset_basics(void **state)
{
    tg__nameset_t set;
    assert_int_equal(tg__nameset_init(&set, 8), 0);
    assert_int_equal(set.n, 0);
    assert_false(set_has(&set, "a.example"));
    assert_int_equal(set_add(&set, "a.example"), 1);
    assert_int_equal(set_add(&set, "a.example"), 0);
    /* ASCII case does not matter, anything else does. */
    assert_int_equal(set_add(&set, "A.EXAMPLE"), 0);
    assert_true(set_has(&set, "A.Example"));
    assert_false(set_has(&set, "a.example."));
    assert_false(set_has(&set, "a.exampl"));
    assert_false(set_has(&set, "b.example"));
    assert_false(set_has(&set, "\xc3\x81.example")); /* not folded: only ASCII is */
    /* The length given is the name: a prefix of a longer buffer is a name of its own. */
    assert_int_equal(tg__nameset_add(&set, "a.example.", 9), 0);
    assert_int_equal(tg__nameset_add(&set, "a.exampleXYZ", 10), 1);
    assert_true(set_has(&set, "a.exampleX"));
    /* The empty name is a name like any other; NULL stands for it. */
    assert_int_equal(set_add(&set, ""), 1);
    assert_int_equal(tg__nameset_add(&set, NULL, 0), 0);
    assert_true(tg__nameset_has(&set, NULL, 0));
    /* Bytes after a NUL count: the set compares lengths, not C strings. */
    assert_int_equal(tg__nameset_add(&set, "x\0y", 3), 1);
    assert_int_equal(tg__nameset_add(&set, "x\0z", 3), 1);
    assert_int_equal(tg__nameset_add(&set, "x", 1), 1);
    assert_int_equal(set.n, 6);
    tg__nameset_free(&set);
    tg__nameset_free(&set); /* idempotent */
    assert_false(set_has(&set, "a.example"));
    assert_int_equal(set_add(&set, "a.example"), -1);
}

static void test_nameset_bounded(void **state)
{
    /* Never more names than it was made for: a repeat still answers, a new name is refused. */
    tg__nameset_t set;
    assert_int_equal(tg__nameset_init(&set, 3), 0);
    assert_int_equal(set_add(&set, "a"), 1);
    assert_int_equal(set_add(&set, "b"), 1);
    assert_int_equal(set_add(&set, "c"), 1);
    assert_int_equal(set_add(&set, "d"), -1);
    assert_int_equal(set_add(&set, "B"), 0);
    assert_false(set_has(&set, "d"));
    assert_int_equal(set.n, 3);
    tg__nameset_free(&set);

    assert_int_equal(tg__nameset_init(&set, 0), 0);
    assert_int_equal(set_add(&set, "a"), -1);
    assert_false(set_has(&set, "a"));
    tg__nameset_free(&set);

    /* A size that cannot be allocated is an error, not an overflow. */
    assert_int_equal(tg__nameset_init(&set, SIZE_MAX / 2), -1);
    assert_int_equal(tg__nameset_init(&set, SIZE_MAX), -1);
    tg__nameset_free(&set);
}

static void test_nameset_many(void **state)
{
    enum { N = 100000 };
    char *names = malloc((size_t)N * 24);
    assert_non_null(names);
    tg__nameset_t set;
    assert_int_equal(tg__nameset_init(&set, N), 0);
    for (int i = 0; i < N; i++) {
        snprintf(names + (size_t)i * 24, 24, "h%d.example.com", i);
        assert_int_equal(set_add(&set, names + (size_t)i * 24), 1);
    }
    assert_int_equal(set.n, N);
    char buf[32];
    for (int i = 0; i < N; i++) {
        snprintf(buf, sizeof(buf), "H%d.EXAMPLE.COM", i);
        assert_true(set_has(&set, buf));
        assert_int_equal(set_add(&set, buf), 0);
        snprintf(buf, sizeof(buf), "h%d.example.org", i);
        assert_false(set_has(&set, buf));
    }
    assert_int_equal(set.n, N);
    tg__nameset_free(&set);
    free(names);
}

/* ---- many names and repeats in the table ------------------------------------------------ */

enum { BIG = 30000 };

/* BIG names "hI.example.com" (every 100th a wildcard "*.wI.example.com"), in the order
 * perm(i), written into bufs; upper case when upper. */
static char **big_names(char (*bufs)[32], bool upper, size_t (*perm)(size_t))
{
    char **names = malloc(BIG * sizeof(*names));
    assert_non_null(names);
    for (size_t i = 0; i < BIG; i++) {
        size_t k = perm(i);
        if (k % 100 == 0)
            snprintf(bufs[i], sizeof(bufs[i]), upper ? "*.W%zu.EXAMPLE.COM" : "*.w%zu.example.com",
                     k);
        else
            snprintf(bufs[i], sizeof(bufs[i]), upper ? "H%zu.EXAMPLE.COM" : "h%zu.example.com", k);
        names[i] = bufs[i];
    }
    return names;
}

static size_t in_order(size_t i)
{
    return i;
}

static size_t reversed(size_t i)
{
    return BIG - 1 - i;
}

/* Names of the big certificates resolve to want, one just past them to outside. */
static void check_big_lookups(const tg_sni_t *sni, size_t want, size_t outside)
{
    char host[64];
    for (size_t k = 0; k < BIG; k += 7) {
        if (k % 100 == 0)
            snprintf(host, sizeof(host), "any.w%zu.example.com", k);
        else
            snprintf(host, sizeof(host), "h%zu.example.com", k);
        assert_int_equal(look(sni, host), want);
    }
    assert_int_equal(look(sni, "h30000.example.com"), outside);
    assert_int_equal(look(sni, "a.b.w100.example.com"), 0);
}

static void test_big_pair_as_default(void **state)
{
    /* An ECDSA and an RSA certificate with the same 30,000 names: the RSA one pairs into the
     * default slot whether it lists the names in the same order, reversed, in other case or
     * with a trailing dot, and with repeats. */
    static char ec_bufs[BIG][32], rsa_bufs[BIG][32];
    char **ec_names = big_names(ec_bufs, false, in_order);
    tg_cert_t ec = {.id = "ec", .key_type = TG_KEY_EC, .names = ec_names, .nnames = BIG};
    for (int variant = 0; variant < 4; variant++) {
        char **rsa_names = big_names(rsa_bufs, variant == 2, variant == 1 ? reversed : in_order);
        if (variant == 3) {
            /* a trailing dot on some, and the last ten repeating the first ten (the
             * count stays the same, so only the set comparison can tell) */
            strcat(rsa_bufs[1], ".");
            strcat(rsa_bufs[BIG / 2], ".");
            for (size_t i = 0; i < 10; i++)
                rsa_names[BIG - 1 - i] = rsa_names[i];
        }
        tg_cert_t rsa = {.id = "rsa", .key_type = TG_KEY_RSA, .names = rsa_names, .nnames = BIG};
        const tg_cert_t *certs[] = {&ec, &rsa};
        tg_sni_t sni;
        assert_int_equal(tg_sni_build(&sni, certs, 2), 0);
        if (variant == 3) {
            /* Ten names missing from the RSA certificate: no pairing. */
            assert_null(sni.slots[0].rsa);
            assert_int_equal(sni.nslots, 2);
        } else {
            assert_ptr_equal(sni.slots[0].ec, &ec);
            assert_ptr_equal(sni.slots[0].rsa, &rsa);
            assert_int_equal(sni.nslots, 1);
            check_big_lookups(&sni, 0, 0);
        }
        tg_sni_free(&sni);
        free(rsa_names);
    }
    free(ec_names);
}

static void test_same_names_repeats(void **state)
{
    /* Repeats and order never make different names the same, nor the same names
     * different. */
    static const struct {
        const char *a[3];
        const char *b[3];
        bool same;
    } cases[] = {
        {{"x.example", "x.example", "y.example"}, {"x.example", "y.example", "y.example"}, true},
        {{"x.example", "y.example", NULL}, {"x.example", "x.example", NULL}, false},
        {{"x.example", "x.example", NULL}, {"x.example", "y.example", NULL}, false},
        {{"x.example", "y.example", NULL}, {"Y.EXAMPLE.", "x.example", NULL}, true},
        {{"x.example", "y.example", "z.example"}, {"x.example", "y.example", NULL}, false},
        {{"x.example", NULL, NULL}, {"x.example", "x.example.", "X.Example"}, true},
        {{"*.x.example", NULL, NULL}, {"x.example", NULL, NULL}, false},
    };
    for (size_t i = 0; i < TG_ARRAY_SIZE(cases); i++) {
        char *an[3], *bn[3];
        size_t na = 0, nb = 0;
        for (size_t k = 0; k < 3; k++) {
            if (cases[i].a[k] != NULL)
                an[na++] = (char *)cases[i].a[k];
            if (cases[i].b[k] != NULL)
                bn[nb++] = (char *)cases[i].b[k];
        }
        tg_cert_t a = {.key_type = TG_KEY_EC, .names = an, .nnames = na};
        tg_cert_t b = {.key_type = TG_KEY_RSA, .names = bn, .nnames = nb};
        const tg_cert_t *certs[] = {&a, &b};
        tg_sni_t sni;
        assert_int_equal(tg_sni_build(&sni, certs, 2), 0);
        if (cases[i].same)
            assert_ptr_equal(sni.slots[0].rsa, &b);
        else if (sni.slots[0].rsa != NULL)
            fail_msg("case %zu: paired, but the names differ", i);
        tg_sni_free(&sni);
    }
}

static void test_big_extended(void **state)
{
    /* Behind a small default: the big pair shares one slot, exact names beat the
     * wildcards of another certificate, and a certificate per name gets a slot each. */
    static char ec_bufs[BIG][32], rsa_bufs[BIG][32];
    char **ec_names = big_names(ec_bufs, false, in_order);
    char **rsa_names = big_names(rsa_bufs, true, reversed);
    CERT(def, TG_KEY_EC, "default.example");
    CERT(wild, TG_KEY_EC, "*.example.com");
    tg_cert_t ec = {.id = "ec", .key_type = TG_KEY_EC, .names = ec_names, .nnames = BIG};
    tg_cert_t rsa = {.id = "rsa", .key_type = TG_KEY_RSA, .names = rsa_names, .nnames = BIG};

    enum { SINGLES = 3000 };
    static char single_bufs[SINGLES][32];
    static char *single_names[SINGLES];
    static tg_cert_t singles[SINGLES];
    const tg_cert_t **certs = malloc((4 + SINGLES) * sizeof(*certs));
    assert_non_null(certs);
    certs[0] = &def;
    certs[1] = &wild;
    certs[2] = &ec;
    certs[3] = &rsa;
    for (size_t i = 0; i < SINGLES; i++) {
        snprintf(single_bufs[i], sizeof(single_bufs[i]), "s%zu.example.org", i);
        single_names[i] = single_bufs[i];
        singles[i] = (tg_cert_t){
            .key_type = i % 2 ? TG_KEY_RSA : TG_KEY_EC, .names = &single_names[i], .nnames = 1};
        certs[4 + i] = &singles[i];
    }
    tg_sni_t sni;
    assert_int_equal(tg_sni_build(&sni, certs, 4 + SINGLES), 0);
    /* default, wild, (ec, rsa), one per single */
    assert_int_equal(sni.nslots, 3 + SINGLES);
    size_t s = look(&sni, "h29999.example.com");
    assert_int_not_equal(s, 0);
    assert_ptr_equal(sni.slots[s].ec, &ec);
    assert_ptr_equal(sni.slots[s].rsa, &rsa);
    size_t w = look(&sni, "other.example.com");
    assert_int_not_equal(w, 0);
    assert_int_not_equal(w, s);
    assert_ptr_equal(sni.slots[w].ec, &wild);
    check_big_lookups(&sni, s, w);
    char host[32];
    for (size_t i = 0; i < SINGLES; i++) {
        snprintf(host, sizeof(host), "S%zu.example.org", i);
        const tg_sni_slot_t *slot = slot_of(&sni, host);
        assert_ptr_equal(i % 2 ? slot->rsa : slot->ec, &singles[i]);
        assert_null(i % 2 ? slot->ec : slot->rsa);
    }
    /* The same build again gives the same slot numbers. */
    tg_sni_t again;
    assert_int_equal(tg_sni_build(&again, certs, 4 + SINGLES), 0);
    assert_int_equal(again.nslots, sni.nslots);
    assert_memory_equal(again.slots, sni.slots, sni.nslots * sizeof(*sni.slots));
    assert_int_equal(look(&again, "h5.example.com"), look(&sni, "h5.example.com"));
    tg_sni_free(&again);
    tg_sni_free(&sni);
    free(certs);
    free(ec_names);
    free(rsa_names);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_beats_wildcard),
        cmocka_unit_test(test_wildcard_one_label),
        cmocka_unit_test(test_no_match_is_default),
        cmocka_unit_test(test_case_insensitive),
        cmocka_unit_test(test_trailing_dot),
        cmocka_unit_test(test_not_nul_terminated),
        cmocka_unit_test(test_rsa_ec_pair),
        cmocka_unit_test(test_first_of_each_type_wins),
        cmocka_unit_test(test_default_slot_pairing),
        cmocka_unit_test(test_slots_deduplicated),
        cmocka_unit_test(test_long_host),
        cmocka_unit_test(test_odd_names_ignored),
        cmocka_unit_test(test_empty_tables),
        cmocka_unit_test(test_many_names),
        cmocka_unit_test(test_nameset_basics),
        cmocka_unit_test(test_nameset_bounded),
        cmocka_unit_test(test_nameset_many),
        cmocka_unit_test(test_big_pair_as_default),
        cmocka_unit_test(test_same_names_repeats),
        cmocka_unit_test(test_big_extended),
    };
    return cmocka_run_group_tests_name("sni", tests, NULL, NULL);
}
