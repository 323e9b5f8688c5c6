/* Unit tests of the tls module's pure parts (failure reasons, DN formatting, the policy
 * table) and of mutual authentication over in-memory handshakes: listeners built from a
 * PKI made with the OpenSSL API at run time, client and server SSLs joined by a BIO pair. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "tollgate/cert.h"
#include "tollgate/config.h"
#include "tollgate/tls.h"

#define DAY (24L * 3600)

/* ---- failure reasons -------------------------------------------------------------------- */

static void test_fail_names(void **state)
{
    static const char *const want[TG_TLS_FAIL_COUNT] = {
        "no_client_cert", "unknown_ca", "expired",  "revoked",
        "depth",          "bad_cert",   "protocol", "other",
    };
    for (int i = 0; i < TG_TLS_FAIL_COUNT; i++)
        assert_string_equal(tg_tls_fail_name((tg_tls_fail_t)i), want[i]);
    assert_string_equal(tg_tls_fail_name(TG_TLS_FAIL_COUNT), "other");
    assert_string_equal(tg_tls_fail_name((tg_tls_fail_t)-1), "other");
}

static void test_fail_from_verify(void **state)
{
    static const struct {
        long err;
        tg_tls_fail_t want;
    } cases[] = {
        {X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, TG_TLS_FAIL_UNKNOWN_CA},
        {X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT, TG_TLS_FAIL_UNKNOWN_CA},
        {X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE, TG_TLS_FAIL_UNKNOWN_CA},
        {X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, TG_TLS_FAIL_UNKNOWN_CA},
        {X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN, TG_TLS_FAIL_UNKNOWN_CA},
        {X509_V_ERR_CERT_UNTRUSTED, TG_TLS_FAIL_UNKNOWN_CA},
        {X509_V_ERR_CERT_HAS_EXPIRED, TG_TLS_FAIL_EXPIRED},
        {X509_V_ERR_CERT_NOT_YET_VALID, TG_TLS_FAIL_EXPIRED},
        {X509_V_ERR_CERT_REVOKED, TG_TLS_FAIL_REVOKED},
        {X509_V_ERR_CERT_CHAIN_TOO_LONG, TG_TLS_FAIL_DEPTH},
        {X509_V_ERR_INVALID_PURPOSE, TG_TLS_FAIL_BAD_CERT},
        {X509_V_ERR_CERT_SIGNATURE_FAILURE, TG_TLS_FAIL_BAD_CERT},
        {X509_V_ERR_INVALID_CA, TG_TLS_FAIL_BAD_CERT},
        {X509_V_ERR_PATH_LENGTH_EXCEEDED, TG_TLS_FAIL_BAD_CERT},
        {X509_V_ERR_EE_KEY_TOO_SMALL, TG_TLS_FAIL_BAD_CERT},
        {X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD, TG_TLS_FAIL_BAD_CERT},
        /* our side: the CRL, the verifier */
        {X509_V_ERR_CRL_HAS_EXPIRED, TG_TLS_FAIL_OTHER},
        {X509_V_ERR_CRL_NOT_YET_VALID, TG_TLS_FAIL_OTHER},
        {X509_V_ERR_UNABLE_TO_GET_CRL, TG_TLS_FAIL_OTHER},
        {X509_V_ERR_CRL_SIGNATURE_FAILURE, TG_TLS_FAIL_OTHER},
        {X509_V_ERR_OUT_OF_MEM, TG_TLS_FAIL_OTHER},
        {X509_V_OK, TG_TLS_FAIL_OTHER},
        /* an error this build does not know yet: the certificate's fault */
        {100000, TG_TLS_FAIL_BAD_CERT},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (tg_tls_fail_from_verify(cases[i].err) != cases[i].want)
            fail_msg("X509 error %ld: got %s, want %s", cases[i].err,
                     tg_tls_fail_name(tg_tls_fail_from_verify(cases[i].err)),
                     tg_tls_fail_name(cases[i].want));
    }
}

/* tg_tls_handshake_failed on an SSL that never saw a handshake, with a made-up error
 * queue: what it counted. */
static tg_tls_fail_t failed_with(SSL_CTX *ctx, int lib, int reason, bool *counted)
{
    static int n;
    char id[32];
    snprintf(id, sizeof(id), "unit-classify-%d", n++);
    tg_tls_listener_t tl = {.stats = tg_tls_stats_get(id)};
    SSL *ssl = SSL_new(ctx);
    assert_non_null(ssl);
    ERR_clear_error();
    if (lib != 0)
        ERR_raise(lib, reason);
    tg_tls_handshake_failed(&tl, ssl, id, "192.0.2.1");
    assert_int_equal(ERR_peek_error(), 0); /* the queue is left empty */
    SSL_free(ssl);
    *counted = false;
    for (int i = 0; i < TG_TLS_FAIL_COUNT; i++) {
        unsigned long v = atomic_load(&tl.stats->failures[i]);
        if (v != 0) {
            assert_false(*counted);
            assert_int_equal(v, 1);
            *counted = true;
            reason = i;
        }
    }
    return *counted ? (tg_tls_fail_t)reason : TG_TLS_FAIL_COUNT;
}

static void test_fail_from_ssl_errors(void **state)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    assert_non_null(ctx);
    bool counted;
    assert_int_equal(
        failed_with(ctx, ERR_LIB_SSL, SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE, &counted),
        TG_TLS_FAIL_NO_CLIENT_CERT);
    assert_int_equal(failed_with(ctx, ERR_LIB_SSL, SSL_R_WRONG_VERSION_NUMBER, &counted),
                     TG_TLS_FAIL_PROTOCOL);
    assert_int_equal(failed_with(ctx, ERR_LIB_SSL, SSL_R_NO_SHARED_CIPHER, &counted),
                     TG_TLS_FAIL_PROTOCOL);
    assert_int_equal(failed_with(ctx, ERR_LIB_SSL, SSL_R_CERTIFICATE_VERIFY_FAILED, &counted),
                     TG_TLS_FAIL_BAD_CERT);
    assert_int_equal(failed_with(ctx, ERR_LIB_EVP, EVP_R_BAD_DECRYPT, &counted), TG_TLS_FAIL_OTHER);
    /* Nothing at all before a ClientHello: a port probe, neither logged as a warning nor
     * counted. */
    assert_int_equal(failed_with(ctx, 0, 0, &counted), TG_TLS_FAIL_COUNT);
    assert_false(counted);
    assert_int_equal(failed_with(ctx, ERR_LIB_SSL, SSL_R_UNEXPECTED_EOF_WHILE_READING, &counted),
                     TG_TLS_FAIL_COUNT);
    assert_false(counted);
    SSL_CTX_free(ctx);
}

/* ---- DN formatting -------------------------------------------------------------------- */

static void add(X509_NAME *n, const char *field, const char *value, int set)
{
    assert_int_equal(X509_NAME_add_entry_by_txt(n, field, MBSTRING_UTF8,
                                                (const unsigned char *)value, -1, -1, set),
                     1);
}

static void assert_dn(X509_NAME *n, const char *want)
{
    char *got = tg_cert_dn_format(n);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
    X509_NAME_free(n);
}

static void test_dn_rfc4514(void **state)
{
    /* Most specific RDN first, comma-separated, no spaces. */
    X509_NAME *n = X509_NAME_new();
    add(n, "C", "DE", 0);
    add(n, "O", "tollgate test", 0);
    add(n, "CN", "client", 0);
    assert_dn(n, "CN=client,O=tollgate test,C=DE");

    /* The special characters of RFC 4514 §2.4 and a leading "#" and space. */
    n = X509_NAME_new();
    add(n, "O", "Acme, Inc. + Partners", 0);
    add(n, "OU", "R+D \"lab\" <x>;y=z", 0);
    add(n, "OU", "#1 \\ ops", 0);
    add(n, "CN", " padded ", 0);
    assert_dn(n, "CN=\\ padded\\ ,OU=\\#1 \\\\ ops,OU=R\\+D \\\"lab\\\" \\<x\\>\\;y=z,"
                 "O=Acme\\, Inc. \\+ Partners");

    /* UTF-8 as escaped bytes, as `-nameopt RFC2253` prints it. */
    n = X509_NAME_new();
    add(n, "CN", "Zo\xc3\xab M\xc3\xbcller", 0);
    assert_dn(n, "CN=Zo\\C3\\AB M\\C3\\BCller");

    /* A multi-valued RDN joins its parts with "+" (in reverse, as all RDNs). */
    n = X509_NAME_new();
    add(n, "O", "org", 0);
    add(n, "CN", "a", 0);
    add(n, "UID", "42", -1);
    assert_dn(n, "UID=42+CN=a,O=org");

    /* An attribute type OpenSSL has no name for: dotted OID and #hex of the DER. */
    n = X509_NAME_new();
    add(n, "1.3.6.1.4.1.99999.1", "v", 0);
    assert_dn(n, "1.3.6.1.4.1.99999.1=#0C0176");

    assert_dn(X509_NAME_new(), "");
    assert_null(tg_cert_dn_format(NULL));
}

static void test_dn_never_carries_control_bytes(void **state)
{
    /* A CR LF in a name would split an HTTP header: it is always escaped. */
    X509_NAME *n = X509_NAME_new();
    add(n, "CN", "evil\r\nX-Injected: 1", 0);
    add(n, "O", "tab\there\x7f", 0);
    char *got = tg_cert_dn_format(n);
    assert_non_null(got);
    for (const char *p = got; *p; p++)
        assert_true((unsigned char)*p >= 0x20 && (unsigned char)*p != 0x7f);
    assert_string_equal(got, "O=tab\\09here\\7F,CN=evil\\0D\\0AX-Injected: 1");
    free(got);
    X509_NAME_free(n);
}

/* ---- the policy table ------------------------------------------------------------------- */

static void test_policies(void **state)
{
    static const struct {
        tg_policy_t p;
        const char *name;
        int min, max;
        bool tls13;
        bool legacy; /* static RSA and 3DES */
    } want[] = {
        {TG_POLICY_1_0, "tls_cipher_policy_1_0", TLS1_VERSION, TLS1_2_VERSION, false, true},
        {TG_POLICY_1_1, "tls_cipher_policy_1_1", TLS1_1_VERSION, TLS1_2_VERSION, false, true},
        {TG_POLICY_1_2, "tls_cipher_policy_1_2", TLS1_2_VERSION, TLS1_2_VERSION, false, true},
        {TG_POLICY_1_2_STRICT, "tls_cipher_policy_1_2_strict", TLS1_2_VERSION, TLS1_2_VERSION,
         false, false},
        {TG_POLICY_1_2_STRICT_WITH_1_3, "tls_cipher_policy_1_2_strict_with_1_3", TLS1_2_VERSION,
         TLS1_3_VERSION, true, false},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const tg_tls_policy_t *p = tg_tls_policy(want[i].p);
        assert_non_null(p);
        assert_string_equal(p->name, want[i].name);
        assert_int_equal(p->min_version, want[i].min);
        assert_int_equal(p->max_version, want[i].max);
        assert_int_equal(p->ciphersuites[0] != '\0', want[i].tls13);
        assert_int_equal(strstr(p->ciphers, "DES-CBC3-SHA") != NULL, want[i].legacy);
        assert_int_equal(strstr(p->ciphers, ":AES128-GCM-SHA256") != NULL, want[i].legacy);
        assert_non_null(strstr(p->ciphers, "ECDHE-ECDSA-AES128-GCM-SHA256"));
    }
    assert_null(tg_tls_policy(TG_POLICY_COUNT));
}

/* ---- mutual authentication over in-memory handshakes ------------------------------------ */

static EVP_PKEY *root_key, *other_key, *server_key, *client_key;
static X509 *root, *other, *server, *client, *stranger;

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(x, ext, -1), 1);
    X509_EXTENSION_free(ext);
}

/* Self-signed CA when issuer is NULL; eku NULL for a CA. */
static X509 *make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key,
                       const char *eku)
{
    static long serial = 1;
    X509 *x = X509_new();
    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), -DAY);
    X509_gmtime_adj(X509_getm_notAfter(x), 30 * DAY);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"unit", -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    X509_set_pubkey(x, key);
    X509 *signer = issuer ? issuer : x;
    if (eku == NULL) {
        add_ext(x, signer, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(x, signer, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_ext(x, signer, NID_basic_constraints, "critical,CA:FALSE");
        add_ext(x, signer, NID_ext_key_usage, eku);
        if (strcmp(eku, "serverAuth") == 0)
            add_ext(x, signer, NID_subject_alt_name, "DNS:localhost");
    }
    assert_true(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
    return x;
}

static char *pem_of_cert(X509 *x)
{
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, x);
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *out = tg_strndup(data, (size_t)n);
    BIO_free(b);
    return out;
}

static char *pem_of_key(EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *out = tg_strndup(data, (size_t)n);
    BIO_free(b);
    return out;
}

static int pki_setup(void **state)
{
    tg_log_set_level(TG_LOG_ERROR); /* the refusals' warnings are expected */
    assert_int_equal(tg_tls_tickets_init(), 0);
    root_key = EVP_EC_gen("P-256");
    other_key = EVP_EC_gen("P-256");
    server_key = EVP_EC_gen("P-256");
    client_key = EVP_EC_gen("P-256");
    root = make_cert("unit root", root_key, NULL, NULL, NULL);
    other = make_cert("unit other root", other_key, NULL, NULL, NULL);
    server = make_cert("localhost", server_key, root, root_key, "serverAuth");
    client = make_cert("unit client", client_key, root, root_key, "clientAuth");
    stranger = make_cert("unit stranger", client_key, other, other_key, "clientAuth");
    return 0;
}

static int pki_teardown(void **state)
{
    X509_free(root);
    X509_free(other);
    X509_free(server);
    X509_free(client);
    X509_free(stranger);
    EVP_PKEY_free(root_key);
    EVP_PKEY_free(other_key);
    EVP_PKEY_free(server_key);
    EVP_PKEY_free(client_key);
    return 0;
}

/* A generation's worth of one listener: certs[0] the server certificate, certs[1] the
 * root as a ca entry, certs[2] the other root. */
typedef struct fixture_s {
    tg_config_t cfg;
    tg_conf_listener_t lc;
    size_t cas[1];
    tg_cert_t *certs[3];
    tg_tls_listener_t tl;
} fixture_t;

static tg_cert_t *load(const char *id, tg_cert_type_t type, X509 *x, EVP_PKEY *k)
{
    char *cert = pem_of_cert(x);
    char *key = k ? pem_of_key(k) : NULL;
    char err[256];
    tg_cert_t *c = tg_cert_load_mem(id, type, cert, strlen(cert), key, key ? strlen(key) : 0, err,
                                    sizeof(err));
    if (c == NULL)
        fail_msg("%s: %s", id, err);
    free(cert);
    free(key);
    return c;
}

static fixture_t *fixture_new(const char *id, bool mtls, unsigned depth, size_t ca)
{
    fixture_t *f = tg_calloc(1, sizeof(*f));
    f->certs[0] = load("srv", TG_CERT_SERVER, server, server_key);
    f->certs[1] = load("root", TG_CERT_CA, root, NULL);
    f->certs[2] = load("other", TG_CERT_CA, other, NULL);
    f->cfg.path = "unit.yaml";
    f->lc.id = (char *)id;
    f->lc.policy = TG_POLICY_1_2_STRICT_WITH_1_3;
    f->lc.default_cert = 0;
    f->lc.mtls.enabled = mtls;
    f->lc.mtls.verify_depth = depth;
    f->cas[0] = ca;
    f->lc.mtls.cas = f->cas;
    f->lc.mtls.ncas = 1;
    tg_errors_t errs;
    tg_errors_init(&errs);
    int rc = tg_tls_listener_build(&f->tl, &f->cfg, &f->lc, f->certs, &errs);
    if (rc != 0) {
        char msg[512];
        tg_errors_first(&errs, msg, sizeof(msg));
        fail_msg("build: %s", msg);
    }
    tg_errors_free(&errs);
    return f;
}

static void fixture_free(fixture_t *f)
{
    tg_tls_listener_free(&f->tl);
    for (size_t i = 0; i < 3; i++)
        tg_cert_free(f->certs[i]);
    free(f);
}

static SSL_CTX *client_ctx(int version, X509 *cert)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(ctx);
    SSL_CTX_set_min_proto_version(ctx, version);
    SSL_CTX_set_max_proto_version(ctx, version);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT);
    if (cert != NULL) {
        assert_int_equal(SSL_CTX_use_certificate(ctx, cert), 1);
        assert_int_equal(SSL_CTX_use_PrivateKey(ctx, client_key), 1);
    }
    return ctx;
}

typedef struct result_s {
    bool ok;
    bool resumed;
    bool cert_requested;
    tg_tls_identity_t *id;
    SSL_SESSION *session; /* the client's, to resume with */
} result_t;

static int client_cert_cb(SSL *ssl, void *arg)
{
    *(bool *)arg = true;
    return 1;
}

/* One handshake of a client against the listener, driven to its end over a BIO pair,
 * with the frontend's calls on the server side. */
static result_t handshake(fixture_t *f, SSL_CTX *cctx, SSL_SESSION *resume)
{
    result_t r = {0};
    SSL *s = SSL_new(f->tl.ctx[0]);
    SSL *c = SSL_new(cctx);
    assert_non_null(s);
    assert_non_null(c);
    SSL_set_cert_cb(c, client_cert_cb, &r.cert_requested);
    BIO *sb, *cb;
    assert_int_equal(BIO_new_bio_pair(&sb, 0, &cb, 0), 1);
    SSL_set_bio(s, sb, sb);
    SSL_set_bio(c, cb, cb);
    SSL_set_accept_state(s);
    SSL_set_connect_state(c);
    SSL_set_tlsext_host_name(c, "localhost");
    if (resume != NULL)
        SSL_set_session(c, resume);
    ERR_clear_error();
    int sdone = 0, cdone = 0;
    bool sfailed = false, cfailed = false;
    for (int i = 0; i < 50 && !(sdone && cdone) && !sfailed && !cfailed; i++) {
        if (!cdone) {
            int rc = SSL_do_handshake(c);
            if (rc == 1)
                cdone = 1;
            else if (SSL_get_error(c, rc) != SSL_ERROR_WANT_READ)
                cfailed = true;
        }
        if (!sdone && !cfailed) {
            int rc = SSL_do_handshake(s);
            if (rc == 1)
                sdone = 1;
            else if (SSL_get_error(s, rc) != SSL_ERROR_WANT_READ)
                sfailed = true; /* its errors are on the queue: the client adds none now */
        }
        /* TLS 1.3 tickets arrive after the client's side finished: read them. */
        if (cdone && sdone) {
            char buf[16];
            SSL_read(c, buf, sizeof(buf));
        }
    }
    if (sdone && cdone) {
        ERR_clear_error();
        r.ok = true;
        r.resumed = SSL_session_reused(s);
        r.id = tg_tls_handshake_done(&f->tl, s);
        r.session = SSL_get1_session(c);
        /* A client that frees its SSL without close_notify marks the session not
         * resumable. */
        SSL_shutdown(c);
    } else {
        assert_true(sfailed); /* the server refused, not the client */
        tg_tls_handshake_failed(&f->tl, s, f->lc.id, "192.0.2.7");
    }
    SSL_free(s);
    SSL_free(c);
    return r;
}

static unsigned long failures(fixture_t *f, tg_tls_fail_t why)
{
    return atomic_load(&f->tl.stats->failures[why]);
}

static void assert_client_identity(const tg_tls_identity_t *id, X509 *cert)
{
    assert_non_null(id);
    assert_string_equal(id->subject, "CN=unit client,O=unit");
    assert_int_equal(id->subject_len, strlen(id->subject));
    assert_string_equal(id->issuer, "CN=unit root,O=unit");
    assert_int_equal(id->issuer_len, strlen(id->issuer));
    unsigned char md[32];
    unsigned int len = 0;
    assert_int_equal(X509_digest(cert, EVP_sha256(), md, &len), 1);
    char hex[65];
    tg_cert_hex_sha256(md, hex);
    assert_string_equal(id->fingerprint, hex);
}

static void test_mtls_handshakes(void **state)
{
    static const int versions[] = {TLS1_2_VERSION, TLS1_3_VERSION};
    for (size_t v = 0; v < 2; v++) {
        fixture_t *f = fixture_new(v ? "unit-mtls-13" : "unit-mtls-12", true, 3, 1);
        unsigned long before = atomic_load(&f->tl.stats->handshakes);

        SSL_CTX *good = client_ctx(versions[v], client);
        result_t r = handshake(f, good, NULL);
        assert_true(r.ok);
        assert_true(r.cert_requested);
        assert_false(r.resumed);
        assert_client_identity(r.id, client);
        tg_tls_identity_free(r.id);
        assert_int_equal(atomic_load(&f->tl.stats->handshakes), before + 1);

        /* resumed: the identity of the original handshake */
        assert_non_null(r.session);
        result_t again = handshake(f, good, r.session);
        assert_true(again.ok);
        assert_true(again.resumed);
        assert_client_identity(again.id, client);
        tg_tls_identity_free(again.id);
        SSL_SESSION_free(again.session);
        SSL_SESSION_free(r.session);

        SSL_CTX *none = client_ctx(versions[v], NULL);
        r = handshake(f, none, NULL);
        assert_false(r.ok);
        assert_int_equal(failures(f, TG_TLS_FAIL_NO_CLIENT_CERT), 1);

        SSL_CTX *foreign = client_ctx(versions[v], stranger);
        r = handshake(f, foreign, NULL);
        assert_false(r.ok);
        assert_int_equal(failures(f, TG_TLS_FAIL_UNKNOWN_CA), 1);

        SSL_CTX_free(good);
        SSL_CTX_free(none);
        SSL_CTX_free(foreign);
        fixture_free(f);
    }
}

static void test_mtls_off_requests_nothing(void **state)
{
    fixture_t *f = fixture_new("unit-off", false, 3, 1);
    SSL_CTX *cctx = client_ctx(TLS1_3_VERSION, client);
    result_t r = handshake(f, cctx, NULL);
    assert_true(r.ok);
    assert_false(r.cert_requested);
    assert_null(r.id);
    SSL_SESSION_free(r.session);
    SSL_CTX_free(cctx);
    fixture_free(f);
}

/* The session id context carries the verification policy: a session never resumes across
 * a change of it, even on the same listener id (a reload). */
static void test_sessions_stay_within_one_policy(void **state)
{
    static const int versions[] = {TLS1_2_VERSION, TLS1_3_VERSION};
    for (size_t v = 0; v < 2; v++) {
        fixture_t *off = fixture_new("unit-sid", false, 3, 1);
        fixture_t *on = fixture_new("unit-sid", true, 3, 1);
        fixture_t *on_deeper = fixture_new("unit-sid", true, 4, 1);
        fixture_t *on_other_ca = fixture_new("unit-sid", true, 3, 2);
        fixture_t *on_again = fixture_new("unit-sid", true, 3, 1);
        SSL_CTX *cctx = client_ctx(versions[v], client);

        result_t from_off = handshake(off, cctx, NULL);
        assert_true(from_off.ok);
        result_t r = handshake(on, cctx, from_off.session);
        assert_true(r.ok);
        assert_false(r.resumed);
        assert_client_identity(r.id, client);
        tg_tls_identity_free(r.id);
        SSL_SESSION_free(r.session);

        result_t from_on = handshake(on, cctx, NULL);
        assert_true(from_on.ok);
        tg_tls_identity_free(from_on.id);
        fixture_t *others[] = {off, on_deeper, on_other_ca};
        for (size_t i = 0; i < 3; i++) {
            result_t x = handshake(others[i], cctx, from_on.session);
            assert_false(x.ok && x.resumed);
            tg_tls_identity_free(x.id);
            SSL_SESSION_free(x.session);
        }
        /* the same policy built again (an unrelated reload) resumes */
        r = handshake(on_again, cctx, from_on.session);
        assert_true(r.ok);
        assert_true(r.resumed);
        tg_tls_identity_free(r.id);
        SSL_SESSION_free(r.session);

        SSL_SESSION_free(from_off.session);
        SSL_SESSION_free(from_on.session);
        SSL_CTX_free(cctx);
        fixture_free(off);
        fixture_free(on);
        fixture_free(on_deeper);
        fixture_free(on_other_ca);
        fixture_free(on_again);
    }
}

static void test_stats_by_listener_id(void **state)
{
    tg_tls_stats_t *a = tg_tls_stats_get("unit-stats-a");
    tg_tls_stats_t *b = tg_tls_stats_get("unit-stats-b");
    assert_ptr_not_equal(a, b);
    assert_ptr_equal(tg_tls_stats_get("unit-stats-a"), a); /* a reload counts on */
    assert_string_equal(a->listener, "unit-stats-a");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fail_names),
        cmocka_unit_test(test_fail_from_verify),
        cmocka_unit_test(test_fail_from_ssl_errors),
        cmocka_unit_test(test_dn_rfc4514),
        cmocka_unit_test(test_dn_never_carries_control_bytes),
        cmocka_unit_test(test_policies),
        cmocka_unit_test(test_mtls_handshakes),
        cmocka_unit_test(test_mtls_off_requests_nothing),
        cmocka_unit_test(test_sessions_stay_within_one_policy),
        cmocka_unit_test(test_stats_by_listener_id),
    };
    return cmocka_run_group_tests(tests, pki_setup, pki_teardown);
}
