/* Unit tests for the config module: the SPEC example and its defaults, the shipped conf/
 * files, and one small document per kind of error with the exact position it must report. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tollgate/config.h"

/* ---- helpers ------------------------------------------------------------------------- */

static tg_config_t *parse(const char *yaml, tg_errors_t *errs)
{
    return tg_config_parse(yaml, strlen(yaml), "t.yaml", errs);
}

static void dump(const tg_errors_t *errs)
{
    tg_errors_print(errs, stderr);
}

/* Relative paths resolve against the directory of "t.yaml": the working directory. */
static char *cwd_path(const char *rel)
{
    char cwd[PATH_MAX];
    char *real;

    assert_non_null(getcwd(cwd, sizeof(cwd)));
    real = realpath(cwd, NULL);
    assert_non_null(real);
    char *out = malloc(strlen(real) + strlen(rel) + 2);
    sprintf(out, "%s/%s", real, rel);
    free(real);
    return out;
}

static void assert_path(const char *got, const char *rel)
{
    char *want = cwd_path(rel);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(want);
}

static tg_config_t *parse_ok(const char *yaml, tg_errors_t *errs)
{
    tg_errors_init(errs);
    tg_config_t *cfg = parse(yaml, errs);
    if (cfg == NULL || errs->nerrors != 0) {
        dump(errs);
        fail_msg("valid config refused");
    }
    return cfg;
}

/* ---- the SPEC §3 example ------------------------------------------------------------- */

static const char spec_example[] =
    "version: 1\n"
    "\n"
    "global:\n"
    "  workers: auto\n"
    "  pid_file: run/tollgate.pid\n"
    "  certificate_dir: certs/store\n"
    "  log_level: info\n"
    "  access_log: stderr\n"
    "  drain_timeout: 30s\n"
    "  limits:\n"
    "    max_connections: 100000\n"
    "    handshake_timeout: 10s\n"
    "    header_timeout: 10s\n"
    "    idle_timeout: 60s\n"
    "    max_header_bytes: 32768\n"
    "    max_concurrent_streams: 128\n"
    "\n"
    "admin:\n"
    "  listen: 127.0.0.1:9900\n"
    "  token_file: conf/admin.token\n"
    "\n"
    "certificates:\n"
    "  www-ecdsa:\n"
    "    type: server\n"
    "    cert: certs/demo/www-ecdsa.crt\n"
    "    key: certs/demo/www-ecdsa.key\n"
    "  www-rsa:\n"
    "    type: server\n"
    "    cert: certs/demo/www-rsa.crt\n"
    "    key: certs/demo/www-rsa.key\n"
    "  shop:\n"
    "    type: server\n"
    "    cert: certs/demo/shop.crt\n"
    "    key: certs/demo/shop.key\n"
    "  clients-ca:\n"
    "    type: ca\n"
    "    cert: certs/demo/clients-ca.crt\n"
    "    crl: certs/demo/clients-ca.crl\n"
    "\n"
    "backends:\n"
    "  app:\n"
    "    servers: [127.0.0.1:8080, \"[::1]:8081\"]\n"
    "    balance: round_robin\n"
    "    connect_timeout: 3s\n"
    "    response_timeout: 60s\n"
    "    health_check: { path: /healthz, interval: 5s, timeout: 2s, rise: 2, fall: 3 }\n"
    "  hello:\n"
    "    fixed_response: { status: 200, content_type: text/plain, body: \"hello from "
    "tollgate\\n\" }\n"
    "\n"
    "listeners:\n"
    "  https-main:\n"
    "    protocol: https\n"
    "    listen: \"0.0.0.0:8443\"\n"
    "    backend: app\n"
    "    security_policy: tls_cipher_policy_1_2_strict_with_1_3\n"
    "    certificates:\n"
    "      default: www-ecdsa\n"
    "      extended: [www-rsa, shop]\n"
    "    mutual_auth:\n"
    "      enabled: true\n"
    "      ca_certificates: [clients-ca]\n"
    "      verify_depth: 3\n"
    "  quic-main:\n"
    "    protocol: quic\n"
    "    listen: \"0.0.0.0:8443\"\n"
    "    backend: app\n"
    "    certificates: { default: www-ecdsa, extended: [shop] }\n"
    "  https-public:\n"
    "    protocol: https\n"
    "    listen: \"0.0.0.0:443\"\n"
    "    backend: app\n"
    "    certificates: { default: www-ecdsa }\n"
    "    alt_svc: quic-main\n";

/* The global section as the defaults make it (the SPEC example spells them out). */
static void check_default_global(const tg_config_t *cfg)
{
    assert_int_equal(cfg->global.workers, 0);
    assert_path(cfg->global.pid_file, "run/tollgate.pid");
    assert_path(cfg->global.certificate_dir, "certs/store");
    assert_int_equal(cfg->global.log_level, TG_LOG_INFO);
    assert_string_equal(cfg->global.access_log, "stderr");
    assert_true(cfg->global.drain_timeout_ms == 30000);
    assert_true(cfg->global.limits.max_connections == 100000);
    assert_true(cfg->global.limits.handshake_timeout_ms == 10000);
    assert_true(cfg->global.limits.header_timeout_ms == 10000);
    assert_true(cfg->global.limits.idle_timeout_ms == 60000);
    assert_true(cfg->global.limits.max_header_bytes == 32768);
    assert_true(cfg->global.limits.max_concurrent_streams == 128);
}

static void check_spec_global(const tg_config_t *cfg)
{
    check_default_global(cfg);
    assert_true(cfg->admin.enabled);
    assert_string_equal(cfg->admin.listen, "127.0.0.1:9900");
    assert_path(cfg->admin.token_file, "conf/admin.token");
    assert_int_equal(cfg->admin.pos.line, 18);
    assert_int_equal(cfg->admin.pos.col, 1);
}

static void check_spec_certs(const tg_config_t *cfg)
{
    assert_int_equal(cfg->ncerts, 4);
    const tg_conf_cert_t *c = &cfg->certs[0];
    assert_string_equal(c->id, "www-ecdsa");
    assert_int_equal(c->type, TG_CERT_SERVER);
    assert_int_equal(c->pos.line, 23);
    assert_int_equal(c->pos.col, 3);
    assert_path(c->cert_path, "certs/demo/www-ecdsa.crt");
    assert_int_equal(c->cert_pos.line, 25);
    assert_int_equal(c->cert_pos.col, 11);
    assert_path(c->key_path, "certs/demo/www-ecdsa.key");
    assert_int_equal(c->key_pos.line, 26);
    assert_null(c->crl_path);
    c = &cfg->certs[3];
    assert_string_equal(c->id, "clients-ca");
    assert_int_equal(c->type, TG_CERT_CA);
    assert_null(c->key_path);
    assert_path(c->crl_path, "certs/demo/clients-ca.crl");
    assert_int_equal(c->crl_pos.line, 38);
}

static void check_spec_backends(const tg_config_t *cfg)
{
    char buf[64];

    assert_int_equal(cfg->nbackends, 2);
    const tg_conf_backend_t *b = &cfg->backends[0];
    assert_string_equal(b->id, "app");
    assert_false(b->is_fixed);
    assert_int_equal(b->nservers, 2);
    assert_string_equal(b->servers[0].text, "127.0.0.1:8080");
    assert_string_equal(b->servers[1].text, "[::1]:8081");
    assert_string_equal(tg_addr_format((struct sockaddr *)&b->servers[1].addr, buf, sizeof(buf)),
                        "[::1]:8081");
    assert_int_equal(b->servers[1].pos.line, 42);
    assert_int_equal(b->servers[1].pos.col, 31);
    assert_int_equal(b->balance, TG_BALANCE_ROUND_ROBIN);
    assert_true(b->connect_timeout_ms == 3000);
    assert_true(b->response_timeout_ms == 60000);
    assert_true(b->health.enabled);
    assert_string_equal(b->health.path, "/healthz");
    assert_true(b->health.interval_ms == 5000);
    assert_true(b->health.timeout_ms == 2000);
    assert_int_equal(b->health.rise, 2);
    assert_int_equal(b->health.fall, 3);
    b = &cfg->backends[1];
    assert_string_equal(b->id, "hello");
    assert_true(b->is_fixed);
    assert_int_equal(b->fixed_status, 200);
    assert_string_equal(b->fixed_content_type, "text/plain");
    assert_string_equal(b->fixed_body, "hello from tollgate\n");
    assert_int_equal(b->fixed_body_len, 20);
}

static void check_spec_listeners(const tg_config_t *cfg)
{
    assert_int_equal(cfg->nlisteners, 3);
    const tg_conf_listener_t *l = &cfg->listeners[0];
    assert_string_equal(l->id, "https-main");
    assert_int_equal(l->protocol, TG_PROTO_HTTPS);
    assert_string_equal(l->listen_text, "0.0.0.0:8443");
    assert_int_equal(tg_addr_port((struct sockaddr *)&l->addr), 8443);
    assert_int_equal(l->listen_pos.line, 53);
    assert_int_equal(l->listen_pos.col, 13);
    assert_int_equal(l->backend, 0);
    assert_int_equal(l->policy, TG_POLICY_1_2_STRICT_WITH_1_3);
    assert_int_equal(l->default_cert, 0);
    assert_int_equal(l->nextended, 2);
    assert_int_equal(l->extended[0], 1);
    assert_int_equal(l->extended[1], 2);
    assert_true(l->mtls.present);
    assert_true(l->mtls.enabled);
    assert_int_equal(l->mtls.pos.line, 59);
    assert_int_equal(l->mtls.ncas, 1);
    assert_int_equal(l->mtls.cas[0], 3);
    assert_int_equal(l->mtls.verify_depth, 3);
    assert_false(l->has_alt_svc);
    l = &cfg->listeners[2];
    assert_string_equal(l->id, "https-public");
    assert_true(l->has_alt_svc);
    assert_int_equal(l->alt_svc, 1);
    assert_false(l->mtls.present);
    l = &cfg->listeners[1];
    assert_string_equal(l->id, "quic-main");
    assert_int_equal(l->protocol, TG_PROTO_QUIC);
    assert_false(l->mtls.present);
    assert_false(l->has_alt_svc);
    assert_int_equal(l->nextended, 1);
    assert_int_equal(l->extended[0], 2);
}

static void test_spec_example(void **state)
{
    tg_errors_t errs;
    tg_config_t *cfg = parse_ok(spec_example, &errs);

    /* The example's QUIC listener shares app with the mutual-authentication listener. */
    assert_int_equal(errs.n, 1);
    assert_int_equal(errs.items[0].severity, TG_SEV_WARNING);
    assert_int_equal(errs.items[0].line, 66);
    assert_int_equal(errs.items[0].col, 14);
    assert_string_equal(errs.items[0].msg,
                        "listener \"quic-main\": backend \"app\" is also behind listener "
                        "\"https-main\", which requires client certificates; QUIC clients reach it "
                        "without one");
    assert_string_equal(cfg->path, "t.yaml");
    check_spec_global(cfg);
    check_spec_certs(cfg);
    check_spec_backends(cfg);
    check_spec_listeners(cfg);
    assert_int_equal(tg_config_find_cert(cfg, "shop"), 2);
    assert_int_equal(tg_config_find_cert(cfg, "nope"), -1);
    assert_int_equal(tg_config_find_backend(cfg, "hello"), 1);
    assert_int_equal(tg_config_find_backend(cfg, "nope"), -1);
    assert_int_equal(tg_config_find_listener(cfg, "quic-main"), 1);
    assert_int_equal(tg_config_find_listener(cfg, "nope"), -1);
    tg_config_free(cfg);
    tg_errors_free(&errs);
}

/* ---- defaults ------------------------------------------------------------------------ */

static void test_defaults(void **state)
{
    tg_errors_t errs;
    tg_config_t *cfg = parse_ok("version: 1\n"
                                "backends:\n"
                                "  pool: {servers: [127.0.0.1:80], health_check: {path: /}}\n"
                                "  fixed: {fixed_response: {}}\n"
                                "certificates:\n"
                                "  srv: {type: server, cert: /abs/a.crt, key: a.key}\n"
                                "listeners:\n"
                                "  l: {protocol: https, listen: 127.0.0.1:443, backend: fixed,\n"
                                "      certificates: {default: srv}}\n",
                                &errs);

    check_default_global(cfg);
    assert_false(cfg->admin.enabled);
    assert_null(cfg->admin.listen);

    const tg_conf_backend_t *b = &cfg->backends[0];
    assert_int_equal(b->balance, TG_BALANCE_ROUND_ROBIN);
    assert_true(b->connect_timeout_ms == 3000);
    assert_true(b->response_timeout_ms == 60000);
    assert_int_equal(b->max_fails, 1);
    assert_true(b->fail_timeout_ms == 10000);
    assert_true(b->health.enabled);
    assert_true(b->health.interval_ms == 5000);
    assert_true(b->health.timeout_ms == 2000);
    assert_int_equal(b->health.rise, 2);
    assert_int_equal(b->health.fall, 3);
    b = &cfg->backends[1];
    assert_true(b->is_fixed);
    assert_int_equal(b->fixed_status, 200);
    assert_string_equal(b->fixed_content_type, "text/plain");
    assert_string_equal(b->fixed_body, "");
    assert_int_equal(b->fixed_body_len, 0);

    assert_string_equal(cfg->certs[0].cert_path, "/abs/a.crt");
    assert_path(cfg->certs[0].key_path, "a.key");

    const tg_conf_listener_t *l = &cfg->listeners[0];
    assert_int_equal(l->backend, 1);
    assert_int_equal(l->policy, TG_POLICY_1_2_STRICT_WITH_1_3);
    assert_int_equal(l->nextended, 0);
    assert_false(l->mtls.present);
    assert_false(l->mtls.enabled);
    assert_int_equal(l->mtls.verify_depth, 3);
    assert_false(l->has_alt_svc);
    tg_config_free(cfg);
    tg_errors_free(&errs);
}

static void test_values(void **state)
{
    tg_errors_t errs;
    tg_config_t *cfg = parse_ok("version: 1\n"
                                "global:\n"
                                "  workers: 4\n"
                                "  log_level: debug\n"
                                "  access_log: logs/access.json\n"
                                "  drain_timeout: 0s\n"
                                "  limits: {max_connections: 10000000, idle_timeout: 5m,\n"
                                "           max_header_bytes: 1024, max_concurrent_streams: 1}\n"
                                "admin:\n"
                                "  listen: unix:run/admin.sock\n"
                                "backends:\n"
                                "  z: {fixed_response: {status: 404, body: \"a\\0b\", "
                                "content_type: application/json}}\n"
                                "  p: {servers: [localhost:1], balance: least_conn}\n"
                                "certificates:\n"
                                "  s: {type: server, cert: s.crt, key: s.key}\n"
                                "  ca: {type: ca, cert: ca.crt}\n"
                                "listeners:\n"
                                "  l:\n"
                                "    protocol: https\n"
                                "    listen: \"[::]:443\"\n"
                                "    backend: p\n"
                                "    security_policy: tls_cipher_policy_1_0\n"
                                "    certificates: {default: s}\n"
                                "    mutual_auth: {enabled: no, ca_certificates: [ca], "
                                "verify_depth: 16}\n"
                                "  m:\n"
                                "    protocol: https\n"
                                "    listen: \"[::]:444\"\n"
                                "    backend: p\n"
                                "    certificates: {default: s}\n"
                                "    mutual_auth: {enabled: yes, ca_certificates: [ca]}\n",
                                &errs);

    assert_int_equal(cfg->global.workers, 4);
    assert_int_equal(cfg->global.log_level, TG_LOG_DEBUG);
    assert_path(cfg->global.access_log, "logs/access.json");
    assert_true(cfg->global.drain_timeout_ms == 0);
    assert_true(cfg->global.limits.max_connections == 10000000);
    assert_true(cfg->global.limits.idle_timeout_ms == 300000);
    assert_true(cfg->global.limits.max_header_bytes == 1024);
    assert_true(cfg->global.limits.max_concurrent_streams == 1);
    char *sock = cwd_path("run/admin.sock");
    char *want = malloc(strlen(sock) + 6);
    sprintf(want, "unix:%s", sock);
    assert_string_equal(cfg->admin.listen, want);
    free(want);
    free(sock);
    assert_null(cfg->admin.token_file);
    assert_int_equal(cfg->backends[0].fixed_status, 404);
    assert_int_equal(cfg->backends[0].fixed_body_len, 3);
    assert_memory_equal(cfg->backends[0].fixed_body, "a\0b", 3);
    assert_string_equal(cfg->backends[0].fixed_content_type, "application/json");
    assert_int_equal(cfg->backends[1].balance, TG_BALANCE_LEAST_CONN);
    assert_int_equal(cfg->listeners[0].policy, TG_POLICY_1_0);
    assert_true(cfg->listeners[0].mtls.present);
    assert_false(cfg->listeners[0].mtls.enabled);
    assert_int_equal(cfg->listeners[0].mtls.verify_depth, 16);
    assert_true(cfg->listeners[1].mtls.enabled);
    tg_config_free(cfg);
    tg_errors_free(&errs);
}

static void test_null_sections(void **state)
{
    tg_errors_t errs;
    tg_config_t *cfg =
        parse_ok("version: 1\nglobal:\ncertificates:\nbackends: ~\nlisteners:\n", &errs);

    assert_int_equal(cfg->ncerts + cfg->nbackends + cfg->nlisteners, 0);
    assert_true(cfg->global.limits.max_connections == 100000);
    tg_config_free(cfg);
    tg_errors_free(&errs);
}

static void test_quic_policy_warns(void **state)
{
    tg_errors_t errs;
    tg_config_t *cfg = parse_ok("version: 1\n"
                                "certificates: {s: {type: server, cert: a, key: b}}\n"
                                "backends: {b: {fixed_response: {}}}\n"
                                "listeners:\n"
                                "  q:\n"
                                "    protocol: quic\n"
                                "    listen: 127.0.0.1:443\n"
                                "    backend: b\n"
                                "    security_policy: tls_cipher_policy_1_2\n"
                                "    certificates: {default: s}\n",
                                &errs);

    assert_int_equal(errs.n, 1);
    assert_int_equal(errs.items[0].severity, TG_SEV_WARNING);
    assert_int_equal(errs.items[0].line, 9);
    assert_int_equal(errs.items[0].col, 5);
    assert_non_null(strstr(errs.items[0].msg, "listener \"q\": security_policy is ignored"));
    tg_config_free(cfg);
    tg_errors_free(&errs);
}

static void test_policy_names(void **state)
{
    assert_string_equal(tg_config_policy_name(TG_POLICY_1_0), "tls_cipher_policy_1_0");
    assert_string_equal(tg_config_policy_name(TG_POLICY_1_1), "tls_cipher_policy_1_1");
    assert_string_equal(tg_config_policy_name(TG_POLICY_1_2), "tls_cipher_policy_1_2");
    assert_string_equal(tg_config_policy_name(TG_POLICY_1_2_STRICT),
                        "tls_cipher_policy_1_2_strict");
    assert_string_equal(tg_config_policy_name(TG_POLICY_1_2_STRICT_WITH_1_3),
                        "tls_cipher_policy_1_2_strict_with_1_3");
    assert_null(tg_config_policy_name(TG_POLICY_COUNT));
    assert_null(tg_config_policy_name((tg_policy_t)-1));
}

/* ---- several problems in one file ---------------------------------------------------- */

static void test_reports_all(void **state)
{
    tg_errors_t errs;
    tg_errors_init(&errs);
    const char *yaml = "version: 1\n"
                       "global:\n"
                       "  workers: many\n"
                       "  colour: blue\n"
                       "backends:\n"
                       "  b: {servers: [nowhere]}\n"
                       "listeners:\n"
                       "  l: {protocol: https, listen: 1.2.3.4:5, backend: c,\n"
                       "      certificates: {default: x}}\n";

    assert_null(parse(yaml, &errs));
    assert_int_equal(errs.nerrors, 5);
    static const int want[][2] = {{3, 12}, {4, 3}, {6, 17}, {8, 52}, {9, 31}};
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal(errs.items[i].file, "t.yaml");
        assert_int_equal(errs.items[i].line, want[i][0]);
        assert_int_equal(errs.items[i].col, want[i][1]);
    }
    char first[256];
    tg_errors_first(&errs, first, sizeof(first));
    assert_string_equal(first, "t.yaml:3:12: global: workers must be auto or an integer from 1 "
                               "to 1024, not \"many\"");
    tg_errors_free(&errs);

    /* A NULL error list is allowed: the caller only wants to know whether it is valid. */
    assert_null(parse(yaml, NULL));
}

/* ---- YAML hazards -------------------------------------------------------------------- */

static void expect_only_error(const char *buf, size_t len, int line, int col, const char *needle)
{
    tg_errors_t errs;
    tg_errors_init(&errs);
    tg_config_t *cfg = tg_config_parse(buf, len, "t.yaml", &errs);
    if (cfg != NULL || errs.nerrors != 1 || errs.items[0].line != line ||
        errs.items[0].col != col || strstr(errs.items[0].msg, needle) == NULL) {
        dump(&errs);
        tg_config_free(cfg);
        tg_errors_free(&errs);
        fail_msg("expected exactly t.yaml:%d:%d: ...%s...", line, col, needle);
    }
    tg_errors_free(&errs);
}

static void test_nesting_limit(void **state)
{
    char buf[256];
    int n;

    /* The root mapping is level 1: 31 sequences inside it are the deepest allowed. */
    n = snprintf(buf, sizeof(buf), "version: 1\nx: %.31s%.31s\n",
                 "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]");
    expect_only_error(buf, (size_t)n, 2, 1, "unknown key \"x\"");
    n = snprintf(buf, sizeof(buf), "version: 1\nx: %.32s%.32s\n",
                 "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]");
    expect_only_error(buf, (size_t)n, 2, 35, "nesting deeper than 32 levels");
}

static void test_size_limit(void **state)
{
    size_t len = 4 * 1024 * 1024 + 1;
    char *buf = malloc(len);

    memset(buf, '#', len);
    memcpy(buf, "version: 1\n", 11);
    expect_only_error(buf, len, 0, 0, "larger than 4 MiB");

    /* Exactly 4 MiB is still read: here a long comment after the version. */
    tg_errors_t errs;
    tg_config_t *cfg;
    tg_errors_init(&errs);
    buf[11] = '#';
    cfg = tg_config_parse(buf, len - 1, "t.yaml", &errs);
    if (cfg == NULL)
        dump(&errs);
    assert_non_null(cfg);
    tg_config_free(cfg);
    tg_errors_free(&errs);
    free(buf);
}

/* ---- files --------------------------------------------------------------------------- */

static char *conf_path(const char *name)
{
    const char *src = getenv("TOLLGATE_SRC");
    char *out;

    if (src != NULL) {
        out = malloc(strlen(src) + strlen(name) + 8);
        sprintf(out, "%s/conf/%s", src, name);
        return out;
    }
    const char *slash = strrchr(__FILE__, '/');
    int dirlen = slash ? (int)(slash - __FILE__) : 1;
    out = malloc((size_t)dirlen + strlen(name) + 16);
    sprintf(out, "%.*s/../../conf/%s", dirlen, slash ? __FILE__ : ".", name);
    return out;
}

static tg_config_t *load_conf(const char *name, tg_errors_t *errs)
{
    char *path = conf_path(name);
    tg_errors_init(errs);
    tg_config_t *cfg = tg_config_load(path, errs);
    if (cfg == NULL || errs->nerrors != 0) {
        dump(errs);
        fail_msg("%s refused", path);
    }
    assert_string_equal(cfg->path, path);
    free(path);
    return cfg;
}

static void assert_ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), m = strlen(tail);
    if (n < m || strcmp(s + n - m, tail) != 0)
        fail_msg("\"%s\" does not end with \"%s\"", s, tail);
}

static void test_conf_demo(void **state)
{
    tg_errors_t errs;
    tg_config_t *cfg = load_conf("tollgate.yaml", &errs);

    assert_int_equal(cfg->global.workers, 1);
    assert_string_equal(cfg->global.access_log, "stderr");
    assert_ends_with(cfg->global.pid_file, "/conf/../run/tollgate.pid");
    assert_ends_with(cfg->global.certificate_dir, "/conf/../run/store");
    ssize_t b = tg_config_find_backend(cfg, "hello");
    assert_true(b >= 0);
    assert_true(cfg->backends[b].is_fixed);
    assert_string_equal(cfg->backends[b].fixed_body, "hello from tollgate\n");
    assert_int_equal(cfg->nlisteners, 2);
    const tg_conf_listener_t *l = &cfg->listeners[0];
    const tg_conf_listener_t *q = &cfg->listeners[1];
    assert_int_equal(l->protocol, TG_PROTO_HTTPS);
    assert_int_equal(q->protocol, TG_PROTO_QUIC);
    assert_string_equal(q->listen_text, "127.0.0.1:8443");
    assert_true(l->has_alt_svc);
    assert_int_equal(l->alt_svc, 1);
    assert_int_equal(q->retry, TG_RETRY_AUTO);
    assert_string_equal(l->listen_text, "127.0.0.1:8443");
    assert_string_equal(cfg->certs[l->default_cert].id, "www-ecdsa");
    assert_ends_with(cfg->certs[l->default_cert].cert_path, "/conf/../certs/demo/www-ecdsa.crt");
    assert_int_equal(l->nextended, 2);
    assert_string_equal(cfg->certs[l->extended[0]].id, "www-rsa");
    assert_string_equal(cfg->certs[l->extended[1]].id, "shop");
    tg_config_free(cfg);
    tg_errors_free(&errs);
}

static void test_conf_proxy(void **state)
{
    tg_errors_t errs;
    tg_config_t *cfg = load_conf("proxy.yaml", &errs);

    ssize_t b = tg_config_find_backend(cfg, "app");
    assert_true(b >= 0);
    assert_false(cfg->backends[b].is_fixed);
    assert_int_equal(cfg->backends[b].nservers, 1);
    assert_string_equal(cfg->backends[b].servers[0].text, "127.0.0.1:8080");
    assert_int_equal(cfg->backends[b].balance, TG_BALANCE_ROUND_ROBIN);
    assert_true(cfg->backends[b].health.enabled);
    assert_string_equal(cfg->backends[b].health.path, "/");
    assert_int_equal(cfg->nlisteners, 2);
    assert_int_equal(cfg->listeners[0].backend, (size_t)b);
    assert_int_equal(cfg->listeners[1].protocol, TG_PROTO_QUIC);
    assert_int_equal(cfg->listeners[1].backend, (size_t)b);
    tg_config_free(cfg);
    tg_errors_free(&errs);
}

static void test_load_errors(void **state)
{
    tg_errors_t errs;
    tg_errors_init(&errs);

    assert_null(tg_config_load("/nonexistent/tollgate.yaml", &errs));
    assert_int_equal(errs.nerrors, 1);
    assert_string_equal(errs.items[0].file, "/nonexistent/tollgate.yaml");
    assert_non_null(strstr(errs.items[0].msg, "No such file"));
    assert_null(tg_config_load("/", &errs));
    assert_int_equal(errs.nerrors, 2);
    assert_non_null(strstr(errs.items[1].msg, "not a regular file"));
    tg_errors_free(&errs);
}

/* ---- one document per kind of error -------------------------------------------------- */

typedef struct error_case_s {
    const char *name;
    const char *yaml;
    int line, col;
    const char *needle; /* a substring of the message; "=..." is the whole message */
} error_case_t;

/* Two server certificates, a CA and a fixed backend: the eleven lines every listener case
 * starts with. */
#define BASE                                                                                       \
    "version: 1\n"                                      /* 1 */                                    \
    "certificates:\n"                                   /* 2 */                                    \
    "  srv:\n"                                          /* 3 */                                    \
    "    type: server\n"                                /* 4 */                                    \
    "    cert: a.crt\n"                                 /* 5 */                                    \
    "    key: a.key\n"                                  /* 6 */                                    \
    "  srv2: {type: server, cert: b.crt, key: b.key}\n" /* 7 */                                    \
    "  ca1: {type: ca, cert: ca.crt}\n"                 /* 8 */                                    \
    "backends:\n"                                       /* 9 */                                    \
    "  b: {fixed_response: {}}\n"                       /* 10 */                                   \
    "listeners:\n"                                      /* 11 */
/* Listener l1 on lines 12-15 and its certificates on line 16; cases add lines from 17 on. */
#define L1(proto)                                                                                  \
    "  l1:\n"                                         /* 12 */                                     \
    "    protocol: " proto "\n"                       /* 13 */                                     \
    "    listen: 127.0.0.1:8443\n"                    /* 14 */                                     \
    "    backend: b\n"                                /* 15 */
#define L1_CERTS "    certificates: {default: srv}\n" /* 16 */

static const error_case_t yaml_cases[] = {
    {"anchor", "version: 1\nglobal: &g {workers: 1}\n", 2, 9, "YAML anchors are not allowed"},
    {"alias", "version: 1\nglobal: *g\n", 2, 9, "YAML aliases are not allowed"},
    {"tag", "version: !!int 1\n", 1, 10, "YAML tags are not allowed"},
    {"two documents", "version: 1\n---\nversion: 1\n", 2, 1, "only one YAML document"},
    {"mapping key", "version: 1\n? [a]\n: 1\n", 2, 3, "a mapping key must be a single value"},
    {"syntax", "version: 1\nglobal: {workers: 1\n", 3, 1, "invalid YAML"},
    {"tab indent", "version: 1\nglobal:\n\tworkers: 1\n", 3, 1, "invalid YAML"},
    {"NUL in value", "version: 1\nglobal:\n  pid_file: \"a\\0b\"\n", 3, 13,
     "global: pid_file must not contain a NUL character"},
    {"NUL in key", "version: 1\n\"a\\0b\": 1\n", 2, 1, "must not contain a NUL"},
};

static const error_case_t top_cases[] = {
    {"empty", "", 1, 1, "missing required key \"version\""},
    {"comments only", "# nothing\n", 1, 1, "missing required key \"version\""},
    {"no version", "global: {}\n", 1, 1, "missing required key \"version\""},
    {"version 2", "version: 2\n", 1, 10, "unsupported version \"2\""},
    {"version text", "version: one\n", 1, 10, "unsupported version \"one\""},
    {"version map", "version: {a: 1}\n", 1, 10, "version must be a single value, not a mapping"},
    {"root sequence", "- a\n", 1, 1, "the configuration must be a mapping"},
    {"root scalar", "hello\n", 1, 1, "the configuration must be a mapping"},
    {"unknown", "version: 1\nfoo: 1\n", 2, 1, "unknown key \"foo\" in the top level"},
    {"duplicate", "version: 1\nversion: 1\n", 2, 1, "duplicate key \"version\" in the top level"},
};

#define G "version: 1\nglobal:\n"
static const error_case_t global_cases[] = {
    {"unknown", G "  wokers: 2\n", 3, 3, "unknown key \"wokers\" in global"},
    {"duplicate", G "  workers: 2\n  workers: 3\n", 4, 3, "duplicate key \"workers\" in global"},
    {"map for scalar", G "  workers: {a: 1}\n", 3, 12,
     "global: workers must be a single value, not a mapping"},
    {"seq for scalar", G "  pid_file: [a]\n", 3, 13,
     "global: pid_file must be a single value, not a sequence"},
    {"scalar for map", "version: 1\nglobal: 3\n", 2, 9, "global must be a mapping"},
    {"workers 0", G "  workers: 0\n", 3, 12,
     "global: workers must be auto or an integer from 1 to 1024, not \"0\""},
    {"workers 1025", G "  workers: 1025\n", 3, 12, "workers must be auto or an integer"},
    {"workers sign", G "  workers: -1\n", 3, 12, "workers must be auto or an integer"},
    {"workers null", G "  workers:\n", 3, 3, "global: workers needs a value"},
    {"log level", G "  log_level: verbose\n", 3, 14,
     "global: unknown log_level \"verbose\" (valid: error, warn, info, debug)"},
    {"access_log empty", G "  access_log: \"\"\n", 3, 15, "access_log must not be empty"},
    {"drain no unit", G "  drain_timeout: 30\n", 3, 18,
     "global: drain_timeout must be a duration such as 500ms, 10s, 5m or 1h, not \"30\""},
    {"limits scalar", G "  limits: 5\n", 3, 11, "global.limits must be a mapping"},
    {"limits unknown", G "  limits:\n    max_conns: 5\n", 4, 5,
     "unknown key \"max_conns\" in global.limits"},
    {"max_connections 0", G "  limits:\n    max_connections: 0\n", 4, 22,
     "global.limits: max_connections must be an integer from 1 to 10000000"},
    {"max_connections big", G "  limits:\n    max_connections: 10000001\n", 4, 22,
     "max_connections must be an integer from 1 to 10000000"},
    {"max_connections octal", G "  limits:\n    max_connections: 010\n", 4, 22,
     "max_connections must be an integer"},
    {"max_header_bytes small", G "  limits:\n    max_header_bytes: 1023\n", 4, 23,
     "max_header_bytes must be an integer from 1024 to 1048576"},
    {"max_header_bytes big", G "  limits:\n    max_header_bytes: 1048577\n", 4, 23,
     "max_header_bytes must be an integer from 1024 to 1048576"},
    {"max_header_bytes hex", G "  limits:\n    max_header_bytes: 0x1000\n", 4, 23,
     "max_header_bytes must be an integer"},
    {"no streams", G "  limits:\n    max_concurrent_streams: 0\n", 4, 29,
     "max_concurrent_streams must be an integer from 1 to 1000"},
    {"too many streams", G "  limits:\n    max_concurrent_streams: 1001\n", 4, 29,
     "max_concurrent_streams must be an integer from 1 to 1000"},
    {"handshake 0s", G "  limits:\n    handshake_timeout: 0s\n", 4, 24,
     "global.limits: handshake_timeout must be greater than 0"},
    {"header fraction", G "  limits:\n    header_timeout: 1.5s\n", 4, 21,
     "header_timeout must be a duration"},
    {"idle 0ms", G "  limits:\n    idle_timeout: 0ms\n", 4, 19,
     "idle_timeout must be greater than 0"},
};

#define A "version: 1\nadmin:\n"
static const error_case_t admin_cases[] = {
    {"no listen", A "  token_file: t\n", 2, 1, "admin: missing required key \"listen\""},
    {"tcp without token", A "  listen: 127.0.0.1:9900\n", 2, 1,
     "admin: token_file is required when listen is a TCP address"},
    {"bad listen", A "  listen: 9900\n  token_file: t\n", 3, 11,
     "admin: listen must be host:port, [v6]:port or unix:PATH, not \"9900\""},
    {"hostname", A "  listen: example.com:9900\n  token_file: t\n", 3, 11, "admin: listen must"},
    {"unix no path", A "  listen: \"unix:\"\n", 3, 11, "admin: listen needs a path"},
    {"admin on every address", A "  listen: 0.0.0.0:9900\n  token_file: t\n", 3, 11,
     "=admin: listen \"0.0.0.0:9900\" is not a loopback address; the admin API is served in "
     "clear text, so only on 127.0.0.0/8, [::1] or unix:PATH"},
    {"admin on v6 any", A "  listen: \"[::]:9900\"\n  token_file: t\n", 3, 11,
     "is not a loopback address"},
    {"admin on a v4-mapped public address",
     A "  listen: \"[::ffff:10.0.0.1]:9900\"\n  token_file: t\n", 3, 11,
     "is not a loopback address"},
    {"admin on a public address", A "  listen: 192.0.2.1:9900\n  token_file: t\n", 3, 11,
     "is not a loopback address"},
    {"unknown", A "  listen: unix:a.sock\n  port: 1\n", 4, 3, "unknown key \"port\" in admin"},
    {"null", "version: 1\nadmin:\n", 2, 1, "admin: missing required key \"listen\""},
};

#define C "version: 1\ncertificates:\n"
static const error_case_t cert_cases[] = {
    {"not a map", C "  - a\n", 3, 3, "certificates must be a mapping"},
    {"entry scalar", C "  c: 5\n", 3, 6, "certificate \"c\" must be a mapping"},
    {"bad id", C "  WWW: {type: server, cert: a, key: b}\n", 3, 3,
     "certificate \"WWW\": invalid id (ids match [a-z0-9][a-z0-9._-]{0,62})"},
    {"id dash first", C "  -a: {type: ca, cert: a}\n", 3, 3, "invalid id"},
    {"id too long",
     C "  a123456789012345678901234567890123456789012345678901234567890123: {type: ca, cert: a}\n",
     3, 3, "invalid id"},
    {"duplicate id", C "  a: {type: ca, cert: a}\n  a: {type: ca, cert: b}\n", 4, 3,
     "duplicate certificate \"a\""},
    {"type missing", C "  a:\n    cert: a.crt\n    key: a.key\n", 3, 3,
     "certificate \"a\": missing required key \"type\""},
    {"type bogus", C "  a:\n    type: leaf\n    cert: x\n    key: y\n", 4, 11,
     "certificate \"a\": unknown type \"leaf\" (valid: server, ca)"},
    {"cert missing", C "  a:\n    type: ca\n", 3, 3,
     "certificate \"a\": missing required key \"cert\""},
    {"cert empty", C "  a:\n    type: ca\n    cert: ''\n", 5, 11, "cert must not be empty"},
    {"server no key", C "  a:\n    type: server\n    cert: x\n", 3, 3,
     "certificate \"a\": a server certificate needs a key"},
    {"server crl", C "  a:\n    type: server\n    cert: x\n    key: y\n    crl: z\n", 7, 5,
     "certificate \"a\": crl is only allowed on ca certificates"},
    {"ca key", C "  a:\n    type: ca\n    cert: x\n    key: y\n", 6, 5,
     "certificate \"a\": a ca certificate must not have a key"},
    {"unknown key", C "  a:\n    type: ca\n    cert: x\n    chain: y\n", 6, 5,
     "unknown key \"chain\" in certificate \"a\""},
};

#define B "version: 1\nbackends:\n  b:\n"
static const error_case_t backend_cases[] = {
    {"neither", B "    balance: round_robin\n", 3, 3,
     "backend \"b\": needs either servers or fixed_response"},
    {"both", B "    servers: [127.0.0.1:80]\n    fixed_response: {}\n", 5, 5,
     "backend \"b\": servers and fixed_response cannot be used together"},
    {"bad id", "version: 1\nbackends:\n  B_: {fixed_response: {}}\n", 3, 3,
     "backend \"B_\": invalid id"},
    {"duplicate id",
     "version: 1\nbackends:\n  b: {fixed_response: {}}\n  b: {fixed_response: {}}\n", 4, 3,
     "duplicate backend \"b\""},
    {"servers empty", B "    servers: []\n", 4, 14, "backend \"b\": servers must not be empty"},
    {"servers scalar", B "    servers: 127.0.0.1:80\n", 4, 14,
     "backend \"b\": servers must be a sequence, not a single value"},
    {"server bad", B "    servers: [127.0.0.1:80, nope]\n", 4, 29,
     "backend \"b\": invalid server address \"nope\""},
    {"server port 0", B "    servers:\n      - 127.0.0.1:80\n      - '[::1]:0'\n", 6, 9,
     "invalid server address \"[::1]:0\""},
    {"server twice", B "    servers: [127.0.0.1:80, \"localhost:80\"]\n", 4, 29,
     "backend \"b\": server \"localhost:80\" is listed twice"},
    {"server map", B "    servers: [{a: 1}]\n", 4, 15, "servers must be a single value"},
    {"balance", B "    servers: [127.0.0.1:80]\n    balance: random\n", 5, 14,
     "backend \"b\": unknown balance \"random\" (valid: round_robin, least_conn)"},
    {"connect no unit", B "    servers: [127.0.0.1:80]\n    connect_timeout: 3\n", 5, 22,
     "backend \"b\": connect_timeout must be a duration"},
    {"response 0", B "    servers: [127.0.0.1:80]\n    response_timeout: 0ms\n", 5, 23,
     "response_timeout must be greater than 0"},
    {"max_fails -1", B "    servers: [127.0.0.1:80]\n    max_fails: -1\n", 5, 16,
     "backend \"b\": max_fails must be an integer from 0 to 1000, not \"-1\""},
    {"max_fails 1001", B "    servers: [127.0.0.1:80]\n    max_fails: 1001\n", 5, 16,
     "max_fails must be an integer from 0 to 1000"},
    {"fail_timeout 25h", B "    servers: [127.0.0.1:80]\n    fail_timeout: 25h\n", 5, 19,
     "=backend \"b\": fail_timeout must be at most 24h, not \"25h\""},
    {"response timeout huge", B "    servers: [127.0.0.1:80]\n    response_timeout: 99999999h\n", 5,
     23, "response_timeout must be at most 24h"},
    {"fail_timeout 0", B "    servers: [127.0.0.1:80]\n    fail_timeout: 0s\n", 5, 19,
     "backend \"b\": fail_timeout must be greater than 0"},
    {"max_fails on fixed", B "    fixed_response: {}\n    max_fails: 2\n", 5, 5,
     "backend \"b\": max_fails only applies to servers, not to fixed_response"},
    {"health no path", B "    servers: [127.0.0.1:80]\n    health_check: {interval: 5s}\n", 5, 5,
     "backend \"b\" health_check: missing required key \"path\""},
    {"health relative", B "    servers: [127.0.0.1:80]\n    health_check: {path: healthz}\n", 5, 26,
     "backend \"b\" health_check: path must start with /"},
    {"health space", B "    servers: [127.0.0.1:80]\n    health_check: {path: \"/a b\"}\n", 5, 26,
     "path must not contain spaces or control characters"},
    {"health rise 0", B "    servers: [127.0.0.1:80]\n    health_check: {path: /, rise: 0}\n", 5,
     35, "backend \"b\" health_check: rise must be an integer from 1 to 100"},
    {"health fall 101", B "    servers: [127.0.0.1:80]\n    health_check: {path: /, fall: 101}\n",
     5, 35, "fall must be an integer from 1 to 100"},
    {"health interval", B "    servers: [127.0.0.1:80]\n    health_check: {path: /, interval: 5}\n",
     5, 39, "interval must be a duration"},
    {"health unknown", B "    servers: [127.0.0.1:80]\n    health_check: {path: /, port: 1}\n", 5,
     29, "unknown key \"port\" in backend \"b\" health_check"},
    {"status 99", B "    fixed_response: {status: 99}\n", 4, 30,
     "backend \"b\" fixed_response: status must be an integer from 100 to 599"},
    {"status 600", B "    fixed_response: {status: 600}\n", 4, 30, "status must be an integer"},
    {"content_type newline", B "    fixed_response: {content_type: \"a\\nb\"}\n", 4, 36,
     "content_type must be printable ASCII"},
    {"fixed unknown", B "    fixed_response: {code: 200}\n", 4, 22,
     "unknown key \"code\" in backend \"b\" fixed_response"},
    {"fixed with balance", B "    fixed_response: {}\n    balance: least_conn\n", 5, 5,
     "backend \"b\": balance only applies to servers, not to fixed_response"},
    {"fixed with health", B "    fixed_response: {}\n    health_check: {path: /}\n", 5, 5,
     "backend \"b\": health_check only applies to servers"},
    {"unknown key", B "    servers: [127.0.0.1:80]\n    weight: 1\n", 5, 5,
     "unknown key \"weight\" in backend \"b\""},
};

static const error_case_t listener_cases[] = {
    {"not a map", BASE "  - l1\n", 12, 3, "listeners must be a mapping"},
    {"bad id",
     BASE "  L1: {protocol: https, listen: 127.0.0.1:1, backend: b,\n"
          "       certificates: {default: srv}}\n",
     12, 3, "listener \"L1\": invalid id"},
    {"duplicate id", BASE L1("https") L1_CERTS "  l1: {}\n", 17, 3, "duplicate listener \"l1\""},
    {"protocol missing", BASE "  l1:\n    listen: 127.0.0.1:8443\n    backend: b\n" L1_CERTS, 12, 3,
     "listener \"l1\": missing required key \"protocol\""},
    {"protocol bad", BASE L1("http") L1_CERTS, 13, 15,
     "listener \"l1\": unknown protocol \"http\" (valid: https, quic)"},
    {"listen missing", BASE "  l1:\n    protocol: https\n    backend: b\n" L1_CERTS, 12, 3,
     "listener \"l1\": missing required key \"listen\""},
    {"listen bad", BASE "  l1:\n    protocol: https\n    listen: 8443\n    backend: b\n" L1_CERTS,
     14, 13, "listener \"l1\": invalid listen address \"8443\""},
    {"listen port 0",
     BASE "  l1:\n    protocol: https\n    listen: \"0.0.0.0:0\"\n    backend: b\n" L1_CERTS, 14,
     13, "invalid listen address \"0.0.0.0:0\""},
    {"backend missing",
     BASE "  l1:\n    protocol: https\n    listen: 127.0.0.1:8443\n    x: 1\n" L1_CERTS, 12, 3,
     "listener \"l1\": missing required key \"backend\""},
    {"backend unknown",
     BASE "  l1:\n    protocol: https\n    listen: 127.0.0.1:8443\n    backend: nope\n" L1_CERTS,
     15, 14, "listener \"l1\": unknown backend \"nope\""},
    {"certificates missing", BASE L1("https"), 12, 3,
     "listener \"l1\": missing required key \"certificates\""},
    {"default missing", BASE L1("https") "    certificates: {extended: [srv2]}\n", 16, 5,
     "listener \"l1\" certificates: missing required key \"default\""},
    {"default unknown", BASE L1("https") "    certificates: {default: nope}\n", 16, 29,
     "unknown certificate \"nope\""},
    {"default is ca", BASE L1("https") "    certificates: {default: ca1}\n", 16, 29,
     "certificate \"ca1\" is a ca certificate, not a server certificate"},
    {"extended is ca", BASE L1("https") "    certificates: {default: srv, extended: [ca1]}\n", 16,
     45, "listener \"l1\" certificates: certificate \"ca1\" is a ca certificate, not a server"},
    {"extended unknown", BASE L1("https") "    certificates: {default: srv, extended: [nope]}\n",
     16, 45, "listener \"l1\" certificates: unknown certificate \"nope\""},
    {"extended twice",
     BASE L1("https") "    certificates: {default: srv, extended: [srv2, srv2]}\n", 16, 51,
     "certificate \"srv2\" is listed twice in extended"},
    {"extended is default", BASE L1("https") "    certificates: {default: srv, extended: [srv]}\n",
     16, 45, "certificate \"srv\" is already the default certificate"},
    {"extended before default",
     BASE L1("https") "    certificates: {extended: [srv], default: srv}\n", 16, 31,
     "certificate \"srv\" is already the default certificate"},
    {"certificates unknown key", BASE L1("https") "    certificates: {default: srv, sni: x}\n", 16,
     34, "unknown key \"sni\" in listener \"l1\" certificates"},
    {"policy unknown", BASE L1("https") L1_CERTS "    security_policy: tls_1_3\n", 17, 22,
     "listener \"l1\": unknown security_policy \"tls_1_3\" (valid: tls_cipher_policy_1_0, "
     "tls_cipher_policy_1_1, tls_cipher_policy_1_2, tls_cipher_policy_1_2_strict, "
     "tls_cipher_policy_1_2_strict_with_1_3)"},
    {"mutual_auth on quic", BASE L1("quic") L1_CERTS "    mutual_auth: {enabled: false}\n", 17, 5,
     "=listener \"l1\": mutual authentication is not supported on QUIC listeners"},
    {"mutual_auth on quic, protocol last",
     BASE "  l1:\n    mutual_auth:\n      enabled: true\n      ca_certificates: [ca1]\n"
          "    listen: 127.0.0.1:8443\n    backend: b\n" L1_CERTS "    protocol: quic\n",
     13, 5, "=listener \"l1\": mutual authentication is not supported on QUIC listeners"},
    {"mtls enabled empty",
     BASE L1("https") L1_CERTS "    mutual_auth: {enabled: true, ca_certificates: []}\n", 17, 5,
     "listener \"l1\": mutual authentication is enabled but ca_certificates is empty"},
    {"mtls enabled no cas", BASE L1("https") L1_CERTS "    mutual_auth: {enabled: yes}\n", 17, 5,
     "listener \"l1\": mutual authentication is enabled but ca_certificates is missing"},
    {"mtls server as ca",
     BASE L1("https") L1_CERTS "    mutual_auth: {enabled: true, ca_certificates: [srv]}\n", 17, 52,
     "certificate \"srv\" is a server certificate, not a ca certificate"},
    {"mtls unknown ca",
     BASE L1("https") L1_CERTS "    mutual_auth: {enabled: true, ca_certificates: [nope]}\n", 17,
     52, "listener \"l1\" mutual_auth: unknown certificate \"nope\""},
    {"mtls ca twice",
     BASE L1("https") L1_CERTS "    mutual_auth: {enabled: true, ca_certificates: [ca1, ca1]}\n",
     17, 57, "certificate \"ca1\" is listed twice in ca_certificates"},
    {"mtls depth 17",
     BASE L1("https") L1_CERTS "    mutual_auth: {enabled: false, verify_depth: 17}\n", 17, 49,
     "listener \"l1\" mutual_auth: verify_depth must be an integer from 1 to 16"},
    {"mtls depth 0",
     BASE L1("https") L1_CERTS "    mutual_auth: {enabled: false, verify_depth: 0}\n", 17, 49,
     "verify_depth must be an integer from 1 to 16"},
    {"mtls True", BASE L1("https") L1_CERTS "    mutual_auth: {enabled: True}\n", 17, 28,
     "enabled must be true, false, yes or no, not \"True\""},
    {"mtls on", BASE L1("https") L1_CERTS "    mutual_auth: {enabled: on}\n", 17, 28,
     "enabled must be true, false, yes or no"},
    {"mtls enabled missing", BASE L1("https") L1_CERTS "    mutual_auth: {verify_depth: 2}\n", 17,
     5, "listener \"l1\" mutual_auth: missing required key \"enabled\""},
    {"mtls unknown key", BASE L1("https") L1_CERTS "    mutual_auth: {enabled: false, depth: 2}\n",
     17, 35, "unknown key \"depth\" in listener \"l1\" mutual_auth"},
    {"alt_svc unknown", BASE L1("https") L1_CERTS "    alt_svc: q9\n", 17, 14,
     "listener \"l1\": unknown listener \"q9\""},
    {"alt_svc https",
     BASE L1("https") L1_CERTS "    alt_svc: l2\n"
                               "  l2:\n    protocol: https\n    listen: 127.0.0.1:9443\n"
                               "    backend: b\n    certificates: {default: srv}\n",
     17, 14, "listener \"l1\": alt_svc must name a quic listener, \"l2\" is not one"},
    {"alt_svc on quic", BASE L1("quic") L1_CERTS "    alt_svc: l1\n", 17, 5,
     "listener \"l1\": alt_svc is only allowed on https listeners"},
    {"alt_svc with mutual auth",
     BASE L1("https") L1_CERTS "    mutual_auth: {enabled: true, ca_certificates: [ca1]}\n"
                               "    alt_svc: l2\n"
                               "  l2:\n    protocol: quic\n    listen: 127.0.0.1:8443\n"
                               "    backend: b\n    certificates: {default: srv}\n",
     18, 14,
     "=listener \"l1\": alt_svc is not allowed with mutual authentication (QUIC listener \"l2\" "
     "would let clients without a certificate in)"},
    {"alt_svc with mutual auth, alt_svc first",
     BASE L1("https") L1_CERTS "    alt_svc: l2\n"
                               "    mutual_auth: {enabled: true, ca_certificates: [ca1]}\n"
                               "  l2:\n    protocol: quic\n    listen: 127.0.0.1:8443\n"
                               "    backend: b\n    certificates: {default: srv}\n",
     17, 14, "alt_svc is not allowed with mutual authentication"},
    {"retry on https", BASE L1("https") L1_CERTS "    retry: always\n", 17, 5,
     "listener \"l1\": retry is only allowed on quic listeners"},
    {"retry word", BASE L1("quic") L1_CERTS "    retry: sometimes\n", 17, 12,
     "listener \"l1\": unknown retry \"sometimes\" (valid: auto, always, never)"},
    {"same address",
     BASE L1("https") L1_CERTS "  l2:\n    protocol: https\n    listen: localhost:8443\n"
                               "    backend: b\n    certificates: {default: srv2}\n",
     19, 13, "listener \"l2\": address 127.0.0.1:8443 is already used by https listener \"l1\""},
    {"same address quic",
     BASE L1("quic") L1_CERTS "  l2:\n    protocol: quic\n    listen: \"127.0.0.1:8443\"\n"
                              "    backend: b\n    certificates: {default: srv2}\n",
     19, 13, "address 127.0.0.1:8443 is already used by quic listener \"l1\""},
    {"unknown key", BASE L1("https") L1_CERTS "    port: 1\n", 17, 5,
     "unknown key \"port\" in listener \"l1\""},
};

static void run_error_case(void **state)
{
    const error_case_t *tc = *state;
    tg_errors_t errs;
    tg_errors_init(&errs);
    tg_config_t *cfg = parse(tc->yaml, &errs);
    bool exact = tc->needle[0] == '=';
    const char *needle = tc->needle + exact;
    bool found = false;

    for (size_t i = 0; i < errs.n && !found; i++) {
        const tg_problem_t *p = &errs.items[i];
        found = p->severity == TG_SEV_ERROR && p->line == tc->line && p->col == tc->col &&
                p->file != NULL && strcmp(p->file, "t.yaml") == 0 &&
                (exact ? strcmp(p->msg, needle) == 0 : strstr(p->msg, needle) != NULL);
    }
    if (cfg != NULL || !found) {
        dump(&errs);
        tg_config_free(cfg);
        tg_errors_free(&errs);
        fail_msg("%s: expected t.yaml:%d:%d: %s", tc->name, tc->line, tc->col, tc->needle);
    }
    tg_errors_free(&errs);
}

/* Valid documents that lie near the error cases, so that the checks are not too eager. */
static const char *const valid_cases[] = {
    BASE L1("https") L1_CERTS,
    BASE L1("https") L1_CERTS "  l2:\n    protocol: quic\n    listen: 127.0.0.1:8443\n"
                              "    backend: b\n    certificates: {default: srv2}\n",
    BASE L1("https") L1_CERTS "    alt_svc: l2\n  l2:\n    protocol: quic\n    listen: "
                              "127.0.0.1:8443\n    backend: b\n    certificates: {default: srv}\n",
    BASE L1("https") L1_CERTS "  l2:\n    protocol: https\n    listen: 127.0.0.2:8443\n"
                              "    backend: b\n    certificates: {default: srv}\n",
    BASE L1("https") "    certificates: {default: srv, extended: [srv2]}\n",
    BASE L1("https") L1_CERTS "    mutual_auth: {enabled: false}\n",
    BASE L1("https") L1_CERTS "    mutual_auth: {enabled: false, ca_certificates: [ca1]}\n"
                              "    alt_svc: l2\n  l2:\n    protocol: quic\n    listen: "
                              "127.0.0.1:8443\n    backend: b\n    certificates: {default: srv}\n",
    BASE L1("https") L1_CERTS "    mutual_auth: {enabled: no, ca_certificates: []}\n",
    G "  workers: 1024\n  drain_timeout: 1h\n",
    G "  drain_timeout: 24h\n  limits: {idle_timeout: 86400s}\n",
    A "  listen: \"[::1]:9900\"\n  token_file: /etc/tollgate/token\n",
    A "  listen: 127.3.4.5:9900\n  token_file: t\n",
    A "  listen: \"[::ffff:127.0.0.1]:9900\"\n  token_file: t\n",
    C "  a.b_c-9: {type: ca, cert: a, crl: b}\n",
};

/* A QUIC listener in front of a mutual-authentication listener's backend is warned about,
 * naming both; with verification off, or another backend, nothing is said. */
static void test_quic_shared_backend_warns(void **state)
{
    static const char *const quiet[] = {
        "version: 1\n"
        "certificates: {srv: {type: server, cert: a, key: b}, ca1: {type: ca, cert: c}}\n"
        "backends: {b: {fixed_response: {}}, b2: {fixed_response: {}}}\n"
        "listeners:\n" L1("https") L1_CERTS
        "    mutual_auth: {enabled: true, ca_certificates: [ca1]}\n"
        "  q:\n    protocol: quic\n    listen: 127.0.0.1:8443\n    backend: b2\n"
        "    certificates: {default: srv}\n",
        BASE L1("https") L1_CERTS "    mutual_auth: {enabled: false, ca_certificates: [ca1]}\n"
                                  "  q:\n    protocol: quic\n    listen: 127.0.0.1:8443\n"
                                  "    backend: b\n    certificates: {default: srv}\n",
    };
    for (size_t i = 0; i < TG_ARRAY_SIZE(quiet); i++) {
        tg_errors_t errs;
        tg_config_t *cfg = parse_ok(quiet[i], &errs);
        assert_int_equal(errs.n, 0);
        tg_config_free(cfg);
        tg_errors_free(&errs);
    }

    tg_errors_t errs;
    tg_config_t *cfg =
        parse_ok(BASE "  q:\n    protocol: quic\n    listen: 127.0.0.1:8443\n    backend: b\n"
                      "    certificates: {default: srv}\n" L1("https") L1_CERTS
                 "    mutual_auth: {enabled: true, ca_certificates: [ca1]}\n",
                 &errs);
    assert_int_equal(errs.n, 1);
    assert_int_equal(errs.items[0].severity, TG_SEV_WARNING);
    assert_int_equal(errs.items[0].line, 15);
    assert_int_equal(errs.items[0].col, 14);
    assert_non_null(strstr(errs.items[0].msg, "listener \"q\": backend \"b\" is also behind "
                                              "listener \"l1\", which requires client"));
    tg_config_free(cfg);
    tg_errors_free(&errs);
}

static void test_valid_neighbours(void **state)
{
    for (size_t i = 0; i < TG_ARRAY_SIZE(valid_cases); i++) {
        tg_errors_t errs;
        tg_config_t *cfg = parse_ok(valid_cases[i], &errs);
        tg_config_free(cfg);
        tg_errors_free(&errs);
    }
}

/* ---- main ---------------------------------------------------------------------------- */

static int run_cases(const char *group, const error_case_t *cases, size_t n)
{
    struct CMUnitTest *tests = calloc(n, sizeof(*tests));

    for (size_t i = 0; i < n; i++) {
        tests[i].name = cases[i].name;
        tests[i].test_func = run_error_case;
        tests[i].initial_state = (void *)&cases[i];
    }
    int failed = _cmocka_run_group_tests(group, tests, n, NULL, NULL);
    free(tests);
    return failed;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_example),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_null_sections),
        cmocka_unit_test(test_quic_policy_warns),
        cmocka_unit_test(test_policy_names),
        cmocka_unit_test(test_reports_all),
        cmocka_unit_test(test_nesting_limit),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_conf_demo),
        cmocka_unit_test(test_conf_proxy),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_valid_neighbours),
        cmocka_unit_test(test_quic_shared_backend_warns),
    };
    int failed = cmocka_run_group_tests_name("config", tests, NULL, NULL);

    failed += run_cases("config errors: yaml", yaml_cases, TG_ARRAY_SIZE(yaml_cases));
    failed += run_cases("config errors: top level", top_cases, TG_ARRAY_SIZE(top_cases));
    failed += run_cases("config errors: global", global_cases, TG_ARRAY_SIZE(global_cases));
    failed += run_cases("config errors: admin", admin_cases, TG_ARRAY_SIZE(admin_cases));
    failed += run_cases("config errors: certificates", cert_cases, TG_ARRAY_SIZE(cert_cases));
    failed += run_cases("config errors: backends", backend_cases, TG_ARRAY_SIZE(backend_cases));
    failed += run_cases("config errors: listeners", listener_cases, TG_ARRAY_SIZE(listener_cases));
    return failed != 0;
}
