/* Unit tests of the tls module's pure parts (failure reasons, DN formatting, the policy
 * table) and of mutual authentication over in-memory handshakes: listeners built from a
 * PKI made with the OpenSSL API at run time, client and server SSLs joined by a BIO pair. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "tollgate/cert.h"
#include "tollgate/config.h"
#include "tollgate/tls.h"

#include "../../src/tls/tls_internal.h"

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

static EVP_PKEY *root_key, *other_key, *server_key, *client_key, *int_key;
static X509 *root, *other, *server, *client, *stranger;
/* root -> inter -> via_int; old_root is the root's name and key with past dates */
static X509 *inter, *via_int, *old_root;

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

/* Self-signed CA when issuer is NULL; eku NULL for a CA. Valid from `from_s` to `to_s`
 * seconds from now. */
static X509 *make_cert_dated(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key,
                             const char *eku, long from_s, long to_s)
{
    static long serial = 1;
    X509 *x = X509_new();
    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), from_s);
    X509_gmtime_adj(X509_getm_notAfter(x), to_s);
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

static X509 *make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key,
                       const char *eku)
{
    return make_cert_dated(cn, key, issuer, issuer_key, eku, -DAY, 30 * DAY);
}

/* A CRL of `issuer`, revoking `revoked` unless it is NULL. */
static X509_CRL *make_crl(X509 *issuer, EVP_PKEY *key, X509 *revoked)
{
    X509_CRL *crl = X509_CRL_new();
    assert_non_null(crl);
    X509_CRL_set_version(crl, 1);
    X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer));
    ASN1_TIME *t = X509_gmtime_adj(NULL, -3600);
    X509_CRL_set1_lastUpdate(crl, t);
    ASN1_TIME_free(t);
    t = X509_gmtime_adj(NULL, 30 * DAY);
    X509_CRL_set1_nextUpdate(crl, t);
    ASN1_TIME_free(t);
    if (revoked != NULL) {
        X509_REVOKED *r = X509_REVOKED_new();
        X509_REVOKED_set_serialNumber(r, X509_get_serialNumber(revoked));
        t = X509_gmtime_adj(NULL, -60);
        X509_REVOKED_set_revocationDate(r, t);
        ASN1_TIME_free(t);
        assert_int_equal(X509_CRL_add0_revoked(crl, r), 1);
    }
    X509_CRL_sort(crl);
    assert_true(X509_CRL_sign(crl, key, EVP_sha256()) > 0);
    return crl;
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
    int_key = EVP_EC_gen("P-256");
    inter = make_cert("unit intermediate", int_key, root, root_key, NULL);
    via_int = make_cert("unit client", client_key, inter, int_key, "clientAuth");
    old_root = make_cert_dated("unit root", root_key, NULL, NULL, NULL, -30 * DAY, -DAY);
    return 0;
}

static int pki_teardown(void **state)
{
    X509_free(root);
    X509_free(other);
    X509_free(server);
    X509_free(client);
    X509_free(stranger);
    X509_free(inter);
    X509_free(via_int);
    X509_free(old_root);
    EVP_PKEY_free(int_key);
    EVP_PKEY_free(root_key);
    EVP_PKEY_free(other_key);
    EVP_PKEY_free(server_key);
    EVP_PKEY_free(client_key);
    return 0;
}

/* A generation's worth of one listener: certs[0] the server certificate, the others ca
 * entries (fixture_new: certs[1] the root, certs[2] the other root). */
typedef struct fixture_s {
    tg_config_t cfg;
    tg_conf_listener_t lc;
    size_t cas[4];
    tg_cert_t *certs[5];
    size_t ncerts;
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

/* A ca entry of one or two certificates (a bundle) and an optional CRL (taken). */
static tg_cert_t *load_ca(const char *id, X509 *a, X509 *b, X509_CRL *crl)
{
    char *pa = pem_of_cert(a);
    char *pb = b ? pem_of_cert(b) : tg_strndup("", 0);
    char *pem = tg_sprintf("%s%s", pa, pb);
    char err[256];
    tg_cert_t *c = tg_cert_load_mem(id, TG_CERT_CA, pem, strlen(pem), NULL, 0, err, sizeof(err));
    if (c == NULL)
        fail_msg("%s: %s", id, err);
    c->crl = crl;
    free(pa);
    free(pb);
    free(pem);
    return c;
}

/* The listener over f->certs: every entry after the server certificate is one of its CAs. */
static fixture_t *fixture_build(fixture_t *f, const char *id, bool mtls, unsigned depth)
{
    f->cfg.path = "unit.yaml";
    f->lc.id = (char *)id;
    f->lc.policy = TG_POLICY_1_2_STRICT_WITH_1_3;
    f->lc.default_cert = 0;
    f->lc.mtls.enabled = mtls;
    f->lc.mtls.verify_depth = depth;
    f->lc.mtls.cas = f->cas;
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

static fixture_t *fixture_new(const char *id, bool mtls, unsigned depth, size_t ca)
{
    fixture_t *f = tg_calloc(1, sizeof(*f));
    f->certs[0] = load("srv", TG_CERT_SERVER, server, server_key);
    f->certs[1] = load("root", TG_CERT_CA, root, NULL);
    f->certs[2] = load("other", TG_CERT_CA, other, NULL);
    f->ncerts = 3;
    f->cas[0] = ca;
    f->lc.mtls.ncas = 1;
    return fixture_build(f, id, mtls, depth);
}

/* A listener with mutual authentication over the given ca entries (taken), in order. */
static fixture_t *fixture_cas(const char *id, tg_cert_t *a, tg_cert_t *b)
{
    fixture_t *f = tg_calloc(1, sizeof(*f));
    f->certs[0] = load("srv", TG_CERT_SERVER, server, server_key);
    f->ncerts = 1;
    tg_cert_t *cas[] = {a, b};
    for (size_t i = 0; i < 2 && cas[i] != NULL; i++) {
        f->cas[f->lc.mtls.ncas++] = f->ncerts;
        f->certs[f->ncerts++] = cas[i];
    }
    return fixture_build(f, id, true, 3);
}

static void fixture_free(fixture_t *f)
{
    tg_tls_listener_free(&f->tl);
    for (size_t i = 0; i < f->ncerts; i++)
        tg_cert_free(f->certs[i]);
    free(f);
}

static SSL_CTX *client_ctx(int version, X509 *cert);

/* A client sending `cert` and, unless NULL, the intermediate `chain` above it. */
static SSL_CTX *client_ctx_chain(int version, X509 *cert, X509 *chain)
{
    SSL_CTX *ctx = client_ctx(version, cert);
    if (chain != NULL)
        assert_int_equal(SSL_CTX_add1_chain_cert(ctx, chain), 1);
    return ctx;
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

/* ---- trust anchors ------------------------------------------------------------------------ */

static bool anchor_among(X509 *x, X509 *a, X509 *b, X509 *c)
{
    STACK_OF(X509) *listed = sk_X509_new_null();
    X509 *all[] = {a, b, c};
    for (size_t i = 0; i < 3; i++)
        if (all[i] != NULL)
            sk_X509_push(listed, all[i]);
    bool anchor = tg__tls_is_anchor(x, listed);
    sk_X509_free(listed);
    return anchor;
}

static void test_anchor_selection(void **state)
{
    /* a root is an anchor whatever else is listed */
    assert_true(anchor_among(root, root, NULL, NULL));
    assert_true(anchor_among(root, inter, root, NULL));
    assert_true(anchor_among(old_root, inter, old_root, NULL));
    /* an intermediate is one only while its issuer is not listed, however dated */
    assert_true(anchor_among(inter, inter, NULL, NULL));
    assert_true(anchor_among(inter, inter, other, NULL));
    assert_false(anchor_among(inter, inter, root, NULL));
    assert_false(anchor_among(inter, root, inter, NULL));
    assert_false(anchor_among(inter, inter, old_root, NULL));
    assert_false(anchor_among(inter, other, inter, root));
    /* the same certificate listed twice (two entries) is not its own issuer */
    X509 *copy = X509_dup(inter);
    assert_true(anchor_among(inter, inter, copy, NULL));
    X509_free(copy);
    /* a client certificate listed by mistake with its issuer is not an anchor */
    assert_false(anchor_among(via_int, via_int, inter, NULL));
}

/* Real handshakes against trust stores of an intermediate and its root. */
static void test_mtls_chain_trust(void **state)
{
    static const int versions[] = {TLS1_2_VERSION, TLS1_3_VERSION};
    for (size_t v = 0; v < 2; v++) {
        SSL_CTX *leaf_only = client_ctx(versions[v], via_int);
        SSL_CTX *with_int = client_ctx_chain(versions[v], via_int, inter);
        static const struct {
            const char *id;
            bool old_root, root, crl, revoke_int, ok;
            tg_tls_fail_t why;
        } cases[] = {
            /* the expired root above the intermediate fails its clients */
            {"unit-int-oldroot", true, false, false, false, false, TG_TLS_FAIL_EXPIRED},
            /* the root's CRL is checked on the intermediate, with the root's key */
            {"unit-int-root", false, true, false, false, true, 0},
            {"unit-int-root-crl", false, true, true, false, true, 0},
            {"unit-int-root-revoked", false, true, true, true, false, TG_TLS_FAIL_REVOKED},
            /* alone, the intermediate is the anchor */
            {"unit-int-only", false, false, false, false, true, 0},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            X509 *top = cases[i].old_root ? old_root : cases[i].root ? root : NULL;
            X509_CRL *crl =
                cases[i].crl ? make_crl(root, root_key, cases[i].revoke_int ? inter : NULL) : NULL;
            tg_cert_t *int_entry = load_ca("int", inter, NULL, NULL);
            tg_cert_t *top_entry = top ? load_ca("top", top, NULL, crl) : NULL;
            fixture_t *f = fixture_cas(cases[i].id, int_entry, top_entry);
            SSL_CTX *clients[] = {leaf_only, with_int};
            for (size_t c = 0; c < 2; c++) {
                unsigned long before = atomic_load(&f->tl.stats->failures[cases[i].why]);
                result_t r = handshake(f, clients[c], NULL);
                if (r.ok != cases[i].ok)
                    fail_msg("%s, TLS 1.%d, client %zu: handshake %s", cases[i].id, v ? 3 : 2, c,
                             r.ok ? "succeeded" : "failed");
                if (r.ok) {
                    assert_non_null(r.id);
                    assert_string_equal(r.id->issuer, "CN=unit intermediate,O=unit");
                } else
                    assert_int_equal(failures(f, cases[i].why), before + 1);
                tg_tls_identity_free(r.id);
                SSL_SESSION_free(r.session);
            }
            fixture_free(f);
        }
        /* one entry holding the bundle [intermediate, root] and the root's CRL */
        tg_cert_t *bundle = load_ca("bundle", inter, root, make_crl(root, root_key, inter));
        fixture_t *f = fixture_cas("unit-bundle-revoked", bundle, NULL);
        unsigned long before = failures(f, TG_TLS_FAIL_REVOKED);
        result_t r = handshake(f, leaf_only, NULL);
        assert_false(r.ok);
        assert_int_equal(failures(f, TG_TLS_FAIL_REVOKED), before + 1);
        fixture_free(f);
        /* the root alone: the client sends the intermediate */
        f = fixture_cas("unit-root-only", load_ca("root", root, NULL, NULL), NULL);
        r = handshake(f, with_int, NULL);
        assert_true(r.ok);
        tg_tls_identity_free(r.id);
        SSL_SESSION_free(r.session);
        before = failures(f, TG_TLS_FAIL_UNKNOWN_CA);
        r = handshake(f, leaf_only, NULL);
        assert_false(r.ok);
        assert_int_equal(failures(f, TG_TLS_FAIL_UNKNOWN_CA), before + 1);
        fixture_free(f);
        SSL_CTX_free(leaf_only);
        SSL_CTX_free(with_int);
    }
}

/* ---- resumption and the client certificate's dates ------------------------------------------ */

static void test_peer_valid_at(void **state)
{
    time_t now = time(NULL);
    assert_true(tg__tls_peer_valid_at(client, now));
    assert_false(tg__tls_peer_valid_at(client, now + 31 * DAY)); /* expired */
    assert_false(tg__tls_peer_valid_at(client, now - 2 * DAY));  /* not yet valid */
    assert_false(tg__tls_peer_valid_at(old_root, now));
}

/* A session whose client certificate expired since it was made does not resume: the full
 * handshake that follows checks the certificate and refuses it. */
static void test_expired_certificate_does_not_resume(void **state)
{
    static const int versions[] = {TLS1_2_VERSION, TLS1_3_VERSION};
    X509 *brief = make_cert_dated("unit client", client_key, root, root_key, "clientAuth", -DAY, 2);
    fixture_t *f[2];
    result_t first[2];
    SSL_CTX *cctx[2];
    for (size_t v = 0; v < 2; v++) {
        f[v] = fixture_new(v ? "unit-brief-13" : "unit-brief-12", true, 3, 1);
        cctx[v] = client_ctx(versions[v], brief);
        first[v] = handshake(f[v], cctx[v], NULL);
        assert_true(first[v].ok);
        tg_tls_identity_free(first[v].id);
        /* still valid: it resumes */
        result_t r = handshake(f[v], cctx[v], first[v].session);
        assert_true(r.ok);
        assert_true(r.resumed);
        tg_tls_identity_free(r.id);
        SSL_SESSION_free(r.session);
    }
    sleep(3);
    for (size_t v = 0; v < 2; v++) {
        result_t r = handshake(f[v], cctx[v], first[v].session);
        if (r.ok)
            fail_msg("TLS 1.%d: the session of an expired certificate %s", v ? 3 : 2,
                     r.resumed ? "resumed" : "passed a full handshake");
        assert_int_equal(failures(f[v], TG_TLS_FAIL_EXPIRED), 1);
        SSL_SESSION_free(first[v].session);
        SSL_CTX_free(cctx[v]);
        fixture_free(f[v]);
    }
    X509_free(brief);
}

static uint64_t fake_now_s;
static uint64_t fake_clock(void)
{
    return fake_now_s;
}

/* Ticket keys rotate every epoch: a ticket of the previous epoch still resumes (and gets
 * a new ticket), one two epochs old does not; keys differ per epoch and name it. */
static void test_ticket_keys_rotate(void **state)
{
    static const int versions[] = {TLS1_2_VERSION, TLS1_3_VERSION};
    unsigned char n1[16], a1[32], h1[32], n2[16], a2[32], h2[32];
    assert_int_equal(tg__tls_ticket_key(7, n1, a1, h1), 0);
    assert_int_equal(tg__tls_ticket_key(8, n2, a2, h2), 0);
    assert_memory_equal(n1, n2, 8); /* the process's prefix */
    assert_int_equal(n1[15], 7);
    assert_memory_not_equal(a1, a2, 32);
    assert_memory_not_equal(h1, h2, 32);
    assert_int_equal(tg__tls_ticket_key(7, n2, a2, h2), 0); /* deterministic */
    assert_memory_equal(a1, a2, 32);

    tg__tls_tickets_clock(fake_clock);
    for (size_t v = 0; v < 2; v++) {
        fixture_t *f = fixture_new(v ? "unit-rotate-13" : "unit-rotate-12", false, 3, 0);
        SSL_CTX *cctx = client_ctx(versions[v], NULL);
        fake_now_s = 1000ull * TG_TICKET_ROTATE_S + 60;
        result_t first = handshake(f, cctx, NULL);
        assert_true(first.ok);
        fake_now_s += TG_TICKET_ROTATE_S; /* the next epoch: still resumes */
        result_t r = handshake(f, cctx, first.session);
        assert_true(r.ok);
        if (!r.resumed)
            fail_msg("TLS 1.%d: a ticket of the previous epoch did not resume", v ? 3 : 2);
        SSL_SESSION_free(r.session);
        fake_now_s += TG_TICKET_ROTATE_S; /* two epochs on: rotated out */
        r = handshake(f, cctx, first.session);
        assert_true(r.ok);
        if (r.resumed)
            fail_msg("TLS 1.%d: a ticket two epochs old resumed", v ? 3 : 2);
        SSL_SESSION_free(r.session);
        SSL_SESSION_free(first.session);
        SSL_CTX_free(cctx);
        fixture_free(f);
    }
    tg__tls_tickets_clock(NULL);
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
        cmocka_unit_test(test_anchor_selection),
        cmocka_unit_test(test_mtls_chain_trust),
        cmocka_unit_test(test_peer_valid_at),
        cmocka_unit_test(test_expired_certificate_does_not_resume),
        cmocka_unit_test(test_ticket_keys_rotate),
        cmocka_unit_test(test_stats_by_listener_id),
    };
    return cmocka_run_group_tests(tests, pki_setup, pki_teardown);
}
