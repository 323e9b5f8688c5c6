/* Unit tests for core's value parsers: durations, bounded integers and socket addresses. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "tollgate/core.h"

static void test_duration_valid(void **state)
{
    static const struct {
        const char *text;
        uint64_t ms;
    } cases[] = {
        {"0ms", 0},     {"500ms", 500},      {"1s", 1000},
        {"10s", 10000}, {"5m", 300000},      {"1h", 3600000},
        {"0s", 0},      {"250h", 900000000}, {"18446744073709551615ms", UINT64_MAX},
    };
    for (size_t i = 0; i < TG_ARRAY_SIZE(cases); i++) {
        uint64_t ms = 1;
        assert_int_equal(tg_duration_parse(cases[i].text, &ms), 0);
        assert_true(ms == cases[i].ms);
    }
}

static void test_duration_invalid(void **state)
{
    static const char *const bad[] = {
        "",
        "10",
        "s",
        "-1s",
        "+1s",
        "1.5s",
        " 1s",
        "1s ",
        "1 s",
        "1S",
        "1sec",
        "1d",
        "01s",
        "1ms1",
        "ms",
        "0x10s",
        "1e3ms",
        "18446744073709551616ms", /* one past UINT64_MAX */
        "18446744073709552s",     /* fits as a number, overflows as milliseconds */
        "5124095576030432h",
    };
    for (size_t i = 0; i < TG_ARRAY_SIZE(bad); i++) {
        uint64_t ms = 42;
        assert_int_equal(tg_duration_parse(bad[i], &ms), -1);
        assert_true(ms == 42);
    }
    uint64_t ms;
    assert_int_equal(tg_duration_parse(NULL, &ms), -1);
}

static void test_uint(void **state)
{
    uint64_t v = 0;

    assert_int_equal(tg_uint_parse("0", 0, 10, &v), 0);
    assert_true(v == 0);
    assert_int_equal(tg_uint_parse("10", 0, 10, &v), 0);
    assert_true(v == 10);
    assert_int_equal(tg_uint_parse("18446744073709551615", 0, UINT64_MAX, &v), 0);
    assert_true(v == UINT64_MAX);

    v = 7;
    static const char *const bad[] = {"",    "11",  "-1", "+1",  " 1", "1 ",
                                      "1.0", "0x1", "01", "abc", "1a", "18446744073709551616"};
    for (size_t i = 0; i < TG_ARRAY_SIZE(bad); i++)
        assert_int_equal(tg_uint_parse(bad[i], 0, 10, &v), -1);
    assert_int_equal(tg_uint_parse("18446744073709551616", 0, UINT64_MAX, &v), -1);
    assert_int_equal(tg_uint_parse("0", 1, 10, &v), -1);
    assert_true(v == 7);
}

static void test_addr_v4(void **state)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    char buf[64];

    assert_int_equal(tg_addr_parse("127.0.0.1:8443", &ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(len, sizeof(struct sockaddr_in));
    assert_int_equal(tg_addr_port((struct sockaddr *)&ss), 8443);
    assert_string_equal(tg_addr_format((struct sockaddr *)&ss, buf, sizeof(buf)), "127.0.0.1:8443");

    assert_int_equal(tg_addr_parse("0.0.0.0:1", &ss, &len), 0);
    assert_string_equal(tg_addr_format((struct sockaddr *)&ss, buf, sizeof(buf)), "0.0.0.0:1");
    assert_int_equal(tg_addr_parse("255.255.255.255:65535", &ss, NULL), 0);
    assert_int_equal(tg_addr_port((struct sockaddr *)&ss), 65535);

    assert_int_equal(tg_addr_parse("localhost:9900", &ss, &len), 0);
    assert_string_equal(tg_addr_format((struct sockaddr *)&ss, buf, sizeof(buf)), "127.0.0.1:9900");
}

static void test_addr_v6(void **state)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    char buf[64];

    assert_int_equal(tg_addr_parse("[::1]:8081", &ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(len, sizeof(struct sockaddr_in6));
    assert_int_equal(tg_addr_port((struct sockaddr *)&ss), 8081);
    assert_string_equal(tg_addr_format((struct sockaddr *)&ss, buf, sizeof(buf)), "[::1]:8081");

    assert_int_equal(tg_addr_parse("[::]:443", &ss, &len), 0);
    assert_string_equal(tg_addr_format((struct sockaddr *)&ss, buf, sizeof(buf)), "[::]:443");
    assert_int_equal(tg_addr_parse("[2001:db8:0:0:0:0:0:1]:80", &ss, &len), 0);
    assert_string_equal(tg_addr_format((struct sockaddr *)&ss, buf, sizeof(buf)),
                        "[2001:db8::1]:80");
}

static void test_addr_invalid(void **state)
{
    static const char *const bad[] = {
        "",
        "127.0.0.1",
        "127.0.0.1:",
        "127.0.0.1:0",
        "127.0.0.1:65536",
        "127.0.0.1:-1",
        "127.0.0.1:+80",
        "127.0.0.1:08",
        "127.0.0.1:80 ",
        " 127.0.0.1:80",
        "127.1:80",
        "256.0.0.1:80",
        "::1:80",
        "[::1]",
        "[::1]80",
        "[::1]:",
        "[::1]:0",
        "[]:80",
        "[1.2.3.4]:80",
        "[::1%lo]:80",
        "*:80",
        ":80",
        "example.com:80",
        "garbage",
        "1.2.3.4:80:90",
        "[::1]:80:90",
        "[::1:80",
        "localhostx:80",
    };
    struct sockaddr_storage ss;
    socklen_t len = 99;

    for (size_t i = 0; i < TG_ARRAY_SIZE(bad); i++) {
        if (tg_addr_parse(bad[i], &ss, &len) != -1)
            fail_msg("accepted \"%s\"", bad[i]);
    }
    assert_int_equal(len, 99);
    assert_int_equal(tg_addr_parse(NULL, &ss, &len), -1);
}

static void test_addr_equal(void **state)
{
    struct sockaddr_storage a, b;

    assert_int_equal(tg_addr_parse("127.0.0.1:80", &a, NULL), 0);
    assert_int_equal(tg_addr_parse("localhost:80", &b, NULL), 0);
    assert_true(tg_addr_equal((struct sockaddr *)&a, (struct sockaddr *)&b));
    assert_int_equal(tg_addr_parse("127.0.0.1:81", &b, NULL), 0);
    assert_false(tg_addr_equal((struct sockaddr *)&a, (struct sockaddr *)&b));
    assert_int_equal(tg_addr_parse("127.0.0.2:80", &b, NULL), 0);
    assert_false(tg_addr_equal((struct sockaddr *)&a, (struct sockaddr *)&b));
    assert_int_equal(tg_addr_parse("[::1]:80", &b, NULL), 0);
    assert_false(tg_addr_equal((struct sockaddr *)&a, (struct sockaddr *)&b));
    assert_int_equal(tg_addr_parse("[0::1]:80", &a, NULL), 0);
    assert_true(tg_addr_equal((struct sockaddr *)&a, (struct sockaddr *)&b));
}

static void test_addr_format_small_buffer(void **state)
{
    struct sockaddr_storage ss;
    char buf[8];

    assert_int_equal(tg_addr_parse("192.168.100.200:65535", &ss, NULL), 0);
    tg_addr_format((struct sockaddr *)&ss, buf, sizeof(buf));
    assert_int_equal(strlen(buf), sizeof(buf) - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration_valid), cmocka_unit_test(test_duration_invalid),
        cmocka_unit_test(test_uint),           cmocka_unit_test(test_addr_v4),
        cmocka_unit_test(test_addr_v6),        cmocka_unit_test(test_addr_invalid),
        cmocka_unit_test(test_addr_equal),     cmocka_unit_test(test_addr_format_small_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
