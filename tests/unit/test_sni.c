/* Unit tests of the SNI name table; certificates are hand-made tg_cert_t with names and a
 * key type only, which is all the table reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "tollgate/cert.h"

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
    };
    return cmocka_run_group_tests_name("sni", tests, NULL, NULL);
}
