/* Unit tests of cert loading and facts; the PKI is made at run time with the OpenSSL API in a
 * mkdtemp directory, so nothing secret or expiring is committed. */
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "tollgate/cert.h"

#define DAY (24L * 3600)
#define CFG "/etc/tollgate/tollgate.yaml"

static char dir[PATH_MAX];
static EVP_PKEY *ca_key, *ca2_key, *ec_key, *ec2_key, *rsa_key, *inter_key;
static X509 *ca, *ca2, *inter;
static long serial = 1;

/* ---- PKI helpers ---------------------------------------------------------------------- */

typedef struct certspec_s {
    const char *cn;
    const char *o;
    const char *sans; /* "DNS:a,DNS:b" or NULL */
    long from;        /* seconds from now */
    long to;
    int ca; /* -1: no basicConstraints, 0: CA:FALSE, 1: CA:TRUE */
} certspec_t;

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

/* Self-signed when issuer is NULL. */
static X509 *make_cert(EVP_PKEY *key, const certspec_t *s, X509 *issuer, EVP_PKEY *issuer_key)
{
    X509 *x = X509_new();
    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), s->from);
    X509_gmtime_adj(X509_getm_notAfter(x), s->to);
    X509_NAME *name = X509_get_subject_name(x);
    /* RFC 2253 prints the last RDN first, so O then CN reads "CN=...,O=...". */
    if (s->o)
        X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)s->o, -1, -1, 0);
    if (s->cn)
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)s->cn, -1, -1,
                                   0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    X509_set_pubkey(x, key);
    if (s->sans)
        add_ext(x, issuer ? issuer : x, NID_subject_alt_name, s->sans);
    if (s->ca == 1)
        add_ext(x, issuer ? issuer : x, NID_basic_constraints, "critical,CA:TRUE");
    else if (s->ca == 0)
        add_ext(x, issuer ? issuer : x, NID_basic_constraints, "CA:FALSE");
    assert_true(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
    return x;
}

static EVP_PKEY *ec(const char *curve)
{
    EVP_PKEY *k = EVP_EC_gen(curve);
    assert_non_null(k);
    return k;
}

static EVP_PKEY *rsa(unsigned bits)
{
    EVP_PKEY *k = EVP_RSA_gen(bits);
    assert_non_null(k);
    return k;
}

static char *path(const char *name)
{
    return tg_sprintf("%s/%s", dir, name);
}

static char *write_bio(const char *name, BIO *bio)
{
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    char *p = path(name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    if (n > 0)
        assert_int_equal(fwrite(data, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    BIO_free(bio);
    return p;
}

static char *write_text(const char *name, const char *text)
{
    BIO *bio = BIO_new(BIO_s_mem());
    BIO_write(bio, text, (int)strlen(text));
    return write_bio(name, bio);
}

/* Writes the certificates (NULL-terminated) as one PEM file and frees them. */
static char *write_certs(const char *name, X509 *first, ...)
{
    BIO *bio = BIO_new(BIO_s_mem());
    va_list ap;
    va_start(ap, first);
    for (X509 *x = first; x != NULL; x = va_arg(ap, X509 *)) {
        PEM_write_bio_X509(bio, x);
        X509_free(x);
    }
    va_end(ap);
    return write_bio(name, bio);
}

/* Mode 0600, as a key should be: other modes are what test_key_mode checks. */
static char *write_key(const char *name, EVP_PKEY *key)
{
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL), 1);
    char *p = write_bio(name, bio);
    assert_int_equal(chmod(p, 0600), 0);
    return p;
}

static char *read_all(const char *p, size_t *len)
{
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    char *buf = tg_malloc(2 * 1024 * 1024);
    *len = fread(buf, 1, 2 * 1024 * 1024, f);
    fclose(f);
    return buf;
}

static X509_CRL *make_crl(X509 *issuer, EVP_PKEY *signer, long next_update)
{
    X509_CRL *crl = X509_CRL_new();
    assert_non_null(crl);
    X509_CRL_set_version(crl, 1);
    X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer));
    ASN1_TIME *t = ASN1_TIME_adj(NULL, time(NULL), -1, 0);
    X509_CRL_set1_lastUpdate(crl, t);
    ASN1_TIME_adj(t, time(NULL), 0, next_update);
    X509_CRL_set1_nextUpdate(crl, t);
    ASN1_TIME_free(t);

    X509_REVOKED *r = X509_REVOKED_new();
    ASN1_INTEGER *sn = ASN1_INTEGER_new();
    ASN1_INTEGER_set(sn, 4242);
    X509_REVOKED_set_serialNumber(r, sn);
    ASN1_INTEGER_free(sn);
    t = ASN1_TIME_adj(NULL, time(NULL), -1, 0);
    X509_REVOKED_set_revocationDate(r, t);
    ASN1_TIME_free(t);
    X509_CRL_add0_revoked(crl, r);
    X509_CRL_sort(crl);
    assert_true(X509_CRL_sign(crl, signer, EVP_sha256()) > 0);
    return crl;
}

/* ---- fixtures ----------------------------------------------------------------------------- */

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(p);
}

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "%s/tg-cert-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(dir) == NULL)
        return -1;
    ca_key = ec("P-256");
    ca2_key = ec("P-384");
    ec_key = ec("P-256");
    ec2_key = ec("P-384");
    inter_key = ec("P-256");
    rsa_key = rsa(2048);
    certspec_t cas = {.cn = "Test CA", .o = "Example", .from = -DAY, .to = 365 * DAY, .ca = 1};
    ca = make_cert(ca_key, &cas, NULL, NULL);
    certspec_t cas2 = {.cn = "Other CA", .o = "Example", .from = -DAY, .to = 365 * DAY, .ca = 1};
    ca2 = make_cert(ca2_key, &cas2, NULL, NULL);
    certspec_t is = {.cn = "Intermediate", .o = "Example", .from = -DAY, .to = 365 * DAY, .ca = 1};
    inter = make_cert(inter_key, &is, ca, ca_key);
    return 0;
}

static int teardown(void **state)
{
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(ca2_key);
    EVP_PKEY_free(ec_key);
    EVP_PKEY_free(ec2_key);
    EVP_PKEY_free(rsa_key);
    EVP_PKEY_free(inter_key);
    X509_free(ca);
    X509_free(ca2);
    X509_free(inter);
    return 0;
}

static X509 *dup_cert(X509 *x)
{
    X509_up_ref(x);
    return x;
}

/* A config entry as the config module would hand it over, with recognisable positions. */
static tg_conf_cert_t entry(const char *id, tg_cert_type_t type, char *cert, char *key, char *crl)
{
    tg_conf_cert_t cc = {
        .id = (char *)id,
        .pos = {3, 3},
        .type = type,
        .cert_path = cert,
        .cert_pos = {4, 11},
        .key_path = key,
        .key_pos = {5, 10},
        .crl_path = crl,
        .crl_pos = {6, 10},
    };
    return cc;
}

static void entry_free(tg_conf_cert_t *cc)
{
    free(cc->cert_path);
    free(cc->key_path);
    free(cc->crl_path);
}

/* A server entry with a fresh leaf signed by the test CA. */
static tg_conf_cert_t server(const char *id, EVP_PKEY *key, const certspec_t *s)
{
    char cname[64], kname[64];
    snprintf(cname, sizeof(cname), "%s.crt", id);
    snprintf(kname, sizeof(kname), "%s.key", id);
    return entry(id, TG_CERT_SERVER, write_certs(cname, make_cert(key, s, ca, ca_key), NULL),
                 write_key(kname, key), NULL);
}

static const certspec_t www = {.cn = "www.example.com",
                               .o = "Example",
                               .sans = "DNS:WWW.Example.com,DNS:example.com,IP:127.0.0.1",
                               .from = -DAY,
                               .to = 90 * DAY,
                               .ca = 0};

static void assert_one_error(const tg_errors_t *errs, tg_pos_t pos, const char *needle)
{
    assert_int_equal(errs->nerrors, 1);
    const tg_problem_t *p = NULL;
    for (size_t i = 0; i < errs->n; i++) {
        if (errs->items[i].severity == TG_SEV_ERROR)
            p = &errs->items[i];
    }
    assert_non_null(p);
    assert_string_equal(p->file, CFG);
    assert_int_equal(p->line, pos.line);
    assert_int_equal(p->col, pos.col);
    if (strstr(p->msg, needle) == NULL)
        fail_msg("\"%s\" not in \"%s\"", needle, p->msg);
    /* Nothing may be left for the next user of this thread's error queue. */
    assert_int_equal(ERR_peek_error(), 0);
}

/* Loads an entry that must fail with exactly one error containing needle at pos. */
static void expect_error(tg_conf_cert_t *cc, tg_pos_t pos, const char *needle)
{
    tg_errors_t errs;
    tg_errors_init(&errs);
    tg_cert_t *c = tg_cert_load(cc, CFG, &errs);
    if (c != NULL)
        fail_msg("loaded, but expected an error with \"%s\"", needle);
    assert_one_error(&errs, pos, needle);
    tg_errors_free(&errs);
}

static tg_cert_t *expect_ok(tg_conf_cert_t *cc, tg_errors_t *errs)
{
    tg_errors_init(errs);
    tg_cert_t *c = tg_cert_load(cc, CFG, errs);
    if (c == NULL) {
        char buf[1400];
        tg_errors_first(errs, buf, sizeof(buf));
        fail_msg("load failed: %s", buf);
    }
    assert_int_equal(errs->nerrors, 0);
    assert_int_equal(ERR_peek_error(), 0);
    return c;
}

/* ---- server certificates ------------------------------------------------------------------ */

static void test_load_ec(void **state)
{
    tg_conf_cert_t cc = server("www", ec_key, &www);
    tg_errors_t errs;
    tg_cert_t *c = expect_ok(&cc, &errs);
    assert_int_equal(errs.n, 0);

    assert_string_equal(c->id, "www");
    assert_int_equal(c->type, TG_CERT_SERVER);
    assert_non_null(c->leaf);
    assert_non_null(c->key);
    assert_non_null(c->chain);
    assert_int_equal(sk_X509_num(c->chain), 0);
    assert_null(c->crl);
    assert_int_equal(c->key_type, TG_KEY_EC);
    assert_int_equal(c->key_bits, 256);
    assert_false(c->expired);
    /* SANs lowercased, in order, the IP SAN left out, the CN not added. */
    assert_int_equal(c->nnames, 2);
    assert_string_equal(c->names[0], "www.example.com");
    assert_string_equal(c->names[1], "example.com");
    assert_string_equal(c->subject, "CN=www.example.com,O=Example");
    assert_string_equal(c->issuer, "CN=Test CA,O=Example");
    time_t now = time(NULL);
    assert_true(c->not_before <= now - DAY + 60 && c->not_before >= now - DAY - 60);
    assert_true(c->not_after <= now + 90 * DAY + 60 && c->not_after >= now + 90 * DAY - 60);

    /* The exact bytes read are kept for the other TLS stack. */
    size_t len;
    char *bytes = read_all(cc.cert_path, &len);
    assert_int_equal(c->cert_pem_len, len);
    assert_memory_equal(c->cert_pem, bytes, len);
    free(bytes);
    bytes = read_all(cc.key_path, &len);
    assert_int_equal(c->key_pem_len, len);
    assert_memory_equal(c->key_pem, bytes, len);
    free(bytes);

    tg_cert_free(c);
    tg_errors_free(&errs);
    entry_free(&cc);
}

static void test_load_rsa_with_chain(void **state)
{
    certspec_t s = {.cn = "shop.example.com",
                    .o = "Example",
                    .sans = "DNS:shop.example.com",
                    .from = -DAY,
                    .to = 30 * DAY,
                    .ca = 0};
    X509 *leaf = make_cert(rsa_key, &s, inter, inter_key);
    tg_conf_cert_t cc =
        entry("shop", TG_CERT_SERVER, write_certs("shop.crt", leaf, dup_cert(inter), NULL),
              write_key("shop.key", rsa_key), NULL);
    tg_errors_t errs;
    tg_cert_t *c = expect_ok(&cc, &errs);
    assert_int_equal(c->key_type, TG_KEY_RSA);
    assert_int_equal(c->key_bits, 2048);
    assert_string_equal(tg_cert_key_type_name(c->key_type), "rsa");
    assert_int_equal(sk_X509_num(c->chain), 1);
    assert_int_equal(X509_cmp(sk_X509_value(c->chain, 0), inter), 0);
    assert_string_equal(c->issuer, "CN=Intermediate,O=Example");
    assert_int_equal(c->nnames, 1);
    assert_string_equal(c->names[0], "shop.example.com");
    tg_cert_free(c);
    tg_errors_free(&errs);
    entry_free(&cc);
}

static void test_names_from_cn(void **state)
{
    certspec_t s = {.cn = "Legacy.Example.COM",
                    .o = "Example",
                    .sans = "IP:10.0.0.1",
                    .from = -DAY,
                    .to = DAY,
                    .ca = -1};
    tg_conf_cert_t cc = server("legacy", ec_key, &s);
    tg_errors_t errs;
    tg_cert_t *c = expect_ok(&cc, &errs);
    assert_int_equal(c->nnames, 1);
    assert_string_equal(c->names[0], "legacy.example.com");
    tg_cert_free(c);
    tg_errors_free(&errs);
    entry_free(&cc);
}

static void test_duplicate_sans_once(void **state)
{
    certspec_t s = {.cn = "x",
                    .sans = "DNS:a.example,DNS:A.Example,DNS:*.a.example",
                    .from = -DAY,
                    .to = DAY,
                    .ca = 0};
    tg_conf_cert_t cc = server("dups", ec_key, &s);
    tg_errors_t errs;
    tg_cert_t *c = expect_ok(&cc, &errs);
    assert_int_equal(c->nnames, 2);
    assert_string_equal(c->names[0], "a.example");
    assert_string_equal(c->names[1], "*.a.example");
    tg_cert_free(c);
    tg_errors_free(&errs);
    entry_free(&cc);
}

/* SPEC §3: a key file group or others can read or write is warned about, naming the id,
 * the path and the mode, at the key's position; the certificate still loads. */
static void test_key_mode(void **state)
{
    static const struct {
        mode_t mode;
        const char *what; /* NULL: no warning */
    } cases[] = {
        {0600, NULL},
        {0400, NULL},
        {0700, NULL}, /* the owner's own bits are the owner's business */
        {0610, NULL}, /* execute alone lets nobody read the key */
        {0601, NULL},
        {0640, "readable"},
        {0604, "readable"},
        {0644, "readable"},
        {0620, "writable"},
        {0602, "writable"},
        {0660, "readable and writable"},
        {0666, "readable and writable"},
        {04644, "readable"},
    };
    for (size_t i = 0; i < TG_ARRAY_SIZE(cases); i++) {
        tg_conf_cert_t cc = server("perm", ec_key, &www);
        assert_int_equal(chmod(cc.key_path, cases[i].mode), 0);
        /* The certificate is public: its mode never matters. */
        assert_int_equal(chmod(cc.cert_path, 0666), 0);
        tg_errors_t errs;
        tg_cert_t *c = expect_ok(&cc, &errs);
        if (cases[i].what == NULL) {
            if (errs.n != 0)
                fail_msg("mode %04o: unexpected \"%s\"", (unsigned)cases[i].mode,
                         errs.items[0].msg);
        } else {
            assert_int_equal(errs.n, 1);
            assert_int_equal(errs.items[0].severity, TG_SEV_WARNING);
            assert_string_equal(errs.items[0].file, CFG);
            assert_int_equal(errs.items[0].line, cc.key_pos.line);
            assert_int_equal(errs.items[0].col, cc.key_pos.col);
            char *want = tg_sprintf("certificate \"perm\": key file %s is %s by group/others "
                                    "(mode %04o); chmod 600 it",
                                    cc.key_path, cases[i].what, (unsigned)cases[i].mode);
            assert_string_equal(errs.items[0].msg, want);
            free(want);
        }
        tg_cert_free(c);
        tg_errors_free(&errs);
        entry_free(&cc);
    }
}

/* The mode is that of the file the key was read from, through a symlink too. */
static void test_key_mode_symlink(void **state)
{
    tg_conf_cert_t cc = server("link", ec_key, &www);
    assert_int_equal(chmod(cc.key_path, 0644), 0);
    char *link = path("link-to.key");
    unlink(link);
    assert_int_equal(symlink(cc.key_path, link), 0);
    free(cc.key_path);
    cc.key_path = link;
    tg_errors_t errs;
    tg_cert_t *c = expect_ok(&cc, &errs);
    assert_int_equal(errs.n, 1);
    assert_non_null(strstr(errs.items[0].msg, "link-to.key is readable by group/others "
                                              "(mode 0644)"));
    tg_cert_free(c);
    tg_errors_free(&errs);
    entry_free(&cc);
}

/* A key that fails to load is still reported for its mode: the secret is exposed all the
 * same, and `tollgate check` prints every problem. */
static void test_key_mode_with_bad_key(void **state)
{
    tg_conf_cert_t cc = entry("bad", TG_CERT_SERVER,
                              write_certs("bad.crt", make_cert(ec_key, &www, ca, ca_key), NULL),
                              write_text("bad.key", "not a key\n"), NULL);
    assert_int_equal(chmod(cc.key_path, 0644), 0);
    tg_errors_t errs;
    tg_errors_init(&errs);
    assert_null(tg_cert_load(&cc, CFG, &errs));
    assert_int_equal(errs.nerrors, 1);
    assert_int_equal(errs.n, 2);
    assert_int_equal(errs.items[0].severity, TG_SEV_WARNING);
    assert_non_null(strstr(errs.items[0].msg, "(mode 0644); chmod 600 it"));
    tg_errors_free(&errs);
    entry_free(&cc);
}

/* Many SANs, with repeats: each name once, in the order of its first appearance (comparing
 * each name with all before it made a certificate of 30,000 names take seconds to load). */
static void test_many_sans(void **state)
{
    enum { N = 20000 };
    size_t cap = (size_t)N * 64;
    char *sans = tg_malloc(cap);
    size_t off = 0;
    for (int i = 0; i < N; i++) {
        off += (size_t)snprintf(sans + off, cap - off, "%sDNS:n%d.example.com", i ? "," : "", i);
        /* Every tenth name, an earlier one again in upper case; every 1000th, the name just
         * listed again as it was. */
        if (i % 10 == 9)
            off += (size_t)snprintf(sans + off, cap - off, ",DNS:N%d.EXAMPLE.COM", i / 2);
        if (i % 1000 == 999)
            off += (size_t)snprintf(sans + off, cap - off, ",DNS:n%d.example.com", i);
    }
    assert_true(off < cap);
    certspec_t s = {.cn = "many", .sans = sans, .from = -DAY, .to = DAY, .ca = 0};
    tg_conf_cert_t cc = server("many", ec_key, &s);
    free(sans);
    tg_errors_t errs;
    tg_cert_t *c = expect_ok(&cc, &errs);
    assert_int_equal(c->nnames, N);
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof(name), "n%d.example.com", i);
        assert_string_equal(c->names[i], name);
    }
    tg_cert_free(c);
    tg_errors_free(&errs);
    entry_free(&cc);
}

static void test_key_mismatch(void **state)
{
    tg_conf_cert_t cc = entry("www", TG_CERT_SERVER,
                              write_certs("mm.crt", make_cert(ec_key, &www, ca, ca_key), NULL),
                              write_key("mm.key", ec2_key), NULL);
    expect_error(&cc, cc.key_pos,
                 "certificate \"www\": private key does not match the certificate");
    entry_free(&cc);
    /* A key of the other type is a mismatch too, not a crash. */
    cc = entry("www", TG_CERT_SERVER,
               write_certs("mm2.crt", make_cert(ec_key, &www, ca, ca_key), NULL),
               write_key("mm2.key", rsa_key), NULL);
    expect_error(&cc, cc.key_pos, "does not match");
    entry_free(&cc);
}

static void test_missing_file(void **state)
{
    tg_conf_cert_t cc =
        entry("www", TG_CERT_SERVER, path("missing.crt"), write_key("mf.key", ec_key), NULL);
    tg_errors_t errs;
    tg_errors_init(&errs);
    assert_null(tg_cert_load(&cc, CFG, &errs));
    assert_int_equal(errs.n, 1);
    char *want =
        tg_sprintf("certificate \"www\": cannot read %s: No such file or directory", cc.cert_path);
    assert_string_equal(errs.items[0].msg, want);
    assert_int_equal(errs.items[0].line, 4);
    assert_int_equal(errs.items[0].col, 11);
    assert_string_equal(errs.items[0].file, CFG);
    char line[1400];
    tg_errors_first(&errs, line, sizeof(line));
    char *full = tg_sprintf(CFG ":4:11: %s", want);
    assert_string_equal(line, full);
    free(want);
    free(full);
    tg_errors_free(&errs);
    entry_free(&cc);
}

static void test_both_files_missing(void **state)
{
    /* `tollgate check` prints every problem, so both unreadable files are reported. */
    tg_conf_cert_t cc = entry("www", TG_CERT_SERVER, path("nope.crt"), path("nope.key"), NULL);
    tg_errors_t errs;
    tg_errors_init(&errs);
    assert_null(tg_cert_load(&cc, CFG, &errs));
    assert_int_equal(errs.nerrors, 2);
    assert_int_equal(errs.items[0].line, 4);
    assert_int_equal(errs.items[1].line, 5);
    assert_non_null(strstr(errs.items[1].msg, "nope.key: No such file or directory"));
    tg_errors_free(&errs);
    entry_free(&cc);
}

static void test_directory_and_too_large(void **state)
{
    tg_conf_cert_t cc =
        entry("www", TG_CERT_SERVER, tg_strdup(dir), write_key("dir.key", ec_key), NULL);
    expect_error(&cc, cc.cert_pos, "is a directory");
    entry_free(&cc);

    char *big = tg_malloc(1024 * 1024 + 2);
    memset(big, 'A', 1024 * 1024 + 1);
    big[1024 * 1024 + 1] = '\0';
    cc = entry("www", TG_CERT_SERVER, write_text("big.crt", big), write_key("big.key", ec_key),
               NULL);
    free(big);
    expect_error(&cc, cc.cert_pos, "larger than 1 MiB");
    entry_free(&cc);
}

static void test_malformed_pem(void **state)
{
    tg_conf_cert_t cc =
        entry("www", TG_CERT_SERVER,
              write_text("bad.crt", "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END "
                                    "CERTIFICATE-----\n"),
              write_key("bad.key", ec_key), NULL);
    expect_error(&cc, cc.cert_pos, "certificate \"www\": malformed PEM certificate #1 in");
    entry_free(&cc);

    cc = entry("www", TG_CERT_SERVER, write_text("text.crt", "hello\n"),
               write_key("text.key", ec_key), NULL);
    char *want = tg_sprintf("certificate \"www\": no PEM certificate found in %s", cc.cert_path);
    expect_error(&cc, cc.cert_pos, want);
    free(want);
    entry_free(&cc);

    cc = entry("www", TG_CERT_SERVER, write_text("empty.crt", ""), write_key("empty.key", ec_key),
               NULL);
    expect_error(&cc, cc.cert_pos, "no PEM certificate found");
    entry_free(&cc);

    /* A broken second certificate is not silently dropped from the chain. */
    BIO *bio = BIO_new(BIO_s_mem());
    X509 *leaf = make_cert(ec_key, &www, ca, ca_key);
    PEM_write_bio_X509(bio, leaf);
    X509_free(leaf);
    BIO_puts(bio, "-----BEGIN CERTIFICATE-----\nMIIB\n");
    cc = entry("www", TG_CERT_SERVER, write_bio("trunc.crt", bio), write_key("trunc.key", ec_key),
               NULL);
    expect_error(&cc, cc.cert_pos, "malformed PEM certificate #2");
    entry_free(&cc);

    /* A key file that is not PEM. */
    cc = entry("www", TG_CERT_SERVER,
               write_certs("nokey.crt", make_cert(ec_key, &www, ca, ca_key), NULL),
               write_text("nokey.key", "secret\n"), NULL);
    expect_error(&cc, cc.key_pos, "no PEM private key found in");
    entry_free(&cc);

    cc = entry("www", TG_CERT_SERVER,
               write_certs("badkey.crt", make_cert(ec_key, &www, ca, ca_key), NULL),
               /* Split so no committed file carries a private-key marker. */
               write_text("badkey.key", "-----BEGIN PRIVATE"
                                        " KEY-----\nAAAA\n-----END PRIVATE"
                                        " KEY-----\n"),
               NULL);
    expect_error(&cc, cc.key_pos, "malformed private key in");
    entry_free(&cc);
}

static void test_der_hint(void **state)
{
    X509 *x = make_cert(ec_key, &www, ca, ca_key);
    BIO *bio = BIO_new(BIO_s_mem());
    i2d_X509_bio(bio, x);
    X509_free(x);
    tg_conf_cert_t cc =
        entry("www", TG_CERT_SERVER, write_bio("der.crt", bio), write_key("der.key", ec_key), NULL);
    expect_error(&cc, cc.cert_pos, "looks like DER");
    entry_free(&cc);
}

static void test_encrypted_key_refused(void **state)
{
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey(bio, ec_key, EVP_aes_128_cbc(),
                                              (unsigned char *)"secret", 6, NULL, NULL),
                     1);
    tg_conf_cert_t cc = entry("www", TG_CERT_SERVER,
                              write_certs("enc.crt", make_cert(ec_key, &www, ca, ca_key), NULL),
                              write_bio("enc.key", bio), NULL);
    expect_error(&cc, cc.key_pos, "certificate \"www\": encrypted private keys are not supported");
    entry_free(&cc);

    /* The traditional form with "Proc-Type: 4,ENCRYPTED" headers. */
    bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey_traditional(bio, rsa_key, EVP_aes_128_cbc(),
                                                          (unsigned char *)"secret", 6, NULL, NULL),
                     1);
    cc = entry("www", TG_CERT_SERVER,
               write_certs("enc2.crt", make_cert(rsa_key, &www, ca, ca_key), NULL),
               write_bio("enc2.key", bio), NULL);
    expect_error(&cc, cc.key_pos, "encrypted private keys are not supported");
    entry_free(&cc);
}

static void test_unsupported_keys(void **state)
{
    EVP_PKEY *small = rsa(1024);
    tg_conf_cert_t cc = server("small", small, &www);
    expect_error(&cc, cc.key_pos, "RSA key of 1024 bits is too small");
    entry_free(&cc);
    EVP_PKEY_free(small);

    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_non_null(ed);
    X509 *x = X509_new();
    /* Ed25519 signs without a digest; the leaf is self-signed for simplicity. */
    X509_set_version(x, 2);
    X509_gmtime_adj(X509_getm_notBefore(x), -DAY);
    X509_gmtime_adj(X509_getm_notAfter(x), DAY);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"ed.example", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_set_pubkey(x, ed);
    assert_true(X509_sign(x, ed, NULL) > 0);
    cc = entry("ed", TG_CERT_SERVER, write_certs("ed.crt", x, NULL), write_key("ed.key", ed), NULL);
    expect_error(&cc, cc.key_pos, "certificate \"ed\": unsupported key type ED25519");
    entry_free(&cc);
    EVP_PKEY_free(ed);

    EVP_PKEY *k1 = ec("secp256k1");
    cc = server("k1", k1, &www);
    expect_error(&cc, cc.key_pos, "unsupported key type: EC curve secp256k1");
    entry_free(&cc);
    EVP_PKEY_free(k1);

    EVP_PKEY *p521 = ec("P-521");
    cc = server("p521", p521, &www);
    tg_errors_t errs;
    tg_cert_t *c = expect_ok(&cc, &errs);
    assert_int_equal(c->key_bits, 521);
    assert_string_equal(tg_cert_key_type_name(c->key_type), "ec");
    tg_cert_free(c);
    tg_errors_free(&errs);
    entry_free(&cc);
    EVP_PKEY_free(p521);
}

static void test_expired_is_warning(void **state)
{
    certspec_t s = www;
    s.from = -30 * DAY;
    s.to = -2 * DAY;
    tg_conf_cert_t cc = server("old", ec_key, &s);
    tg_errors_t errs;
    tg_cert_t *c = expect_ok(&cc, &errs);
    assert_true(c->expired);
    assert_int_equal(errs.n, 1);
    assert_int_equal(errs.items[0].severity, TG_SEV_WARNING);
    assert_int_equal(errs.items[0].line, 4);
    assert_int_equal(errs.items[0].col, 11);
    char date[16];
    struct tm tm;
    gmtime_r(&c->not_after, &tm);
    strftime(date, sizeof(date), "%Y-%m-%d", &tm);
    char *want = tg_sprintf("certificate \"old\" expired on %s", date);
    assert_string_equal(errs.items[0].msg, want);
    free(want);
    tg_cert_free(c);
    tg_errors_free(&errs);
    entry_free(&cc);
}

static void test_not_yet_valid(void **state)
{
    certspec_t s = www;
    s.from = 2 * DAY;
    s.to = 30 * DAY;
    tg_conf_cert_t cc = server("future", ec_key, &s);
    expect_error(&cc, cc.cert_pos, "certificate \"future\": the certificate is not yet valid");
    entry_free(&cc);
}

static void test_expired_intermediate_warns(void **state)
{
    certspec_t is = {.cn = "Old Intermediate", .from = -30 * DAY, .to = -DAY, .ca = 1};
    X509 *old = make_cert(inter_key, &is, ca, ca_key);
    X509 *leaf = make_cert(ec_key, &www, old, inter_key);
    tg_conf_cert_t cc = entry("www", TG_CERT_SERVER, write_certs("oi.crt", leaf, old, NULL),
                              write_key("oi.key", ec_key), NULL);
    tg_errors_t errs;
    tg_cert_t *c = expect_ok(&cc, &errs);
    assert_false(c->expired);
    assert_int_equal(errs.n, 1);
    assert_int_equal(errs.items[0].severity, TG_SEV_WARNING);
    assert_non_null(strstr(errs.items[0].msg, "chain certificate #2 (CN=Old Intermediate)"));
    tg_cert_free(c);
    tg_errors_free(&errs);
    entry_free(&cc);
}

static void test_fingerprint(void **state)
{
    tg_conf_cert_t cc = server("fp", ec_key, &www);
    tg_errors_t errs;
    tg_cert_t *c = expect_ok(&cc, &errs);
    unsigned char *der = NULL;
    int n = i2d_X509(c->leaf, &der);
    assert_true(n > 0);
    unsigned char md[32];
    unsigned int mdlen = 0;
    assert_int_equal(EVP_Digest(der, (size_t)n, md, &mdlen, EVP_sha256(), NULL), 1);
    OPENSSL_free(der);
    assert_memory_equal(c->sha256, md, 32);

    char hex[65], want[65];
    tg_cert_hex_sha256(c->sha256, hex);
    for (int i = 0; i < 32; i++)
        snprintf(want + 2 * i, 3, "%02x", md[i]);
    assert_string_equal(hex, want);
    tg_cert_free(c);
    tg_errors_free(&errs);
    entry_free(&cc);
}

static void test_hex_and_type_names(void **state)
{
    unsigned char sha[32];
    for (int i = 0; i < 32; i++)
        sha[i] = (unsigned char)(i * 8 + 7);
    char hex[65];
    tg_cert_hex_sha256(sha, hex);
    assert_string_equal(hex, "070f171f272f373f474f575f676f777f878f979fa7afb7bfc7cfd7dfe7eff7ff");
    assert_string_equal(tg_cert_key_type_name(TG_KEY_RSA), "rsa");
    assert_string_equal(tg_cert_key_type_name(TG_KEY_EC), "ec");
    assert_string_equal(tg_cert_key_type_name(TG_KEY_OTHER), "other");
}

static void test_rfc2253_escaping(void **state)
{
    /* Special characters are escaped the way `openssl x509 -nameopt RFC2253` does. */
    certspec_t s = {.cn = "a+b, \"c\"",
                    .o = "Ex;ample",
                    .sans = "DNS:esc.example",
                    .from = -DAY,
                    .to = DAY,
                    .ca = 0};
    tg_conf_cert_t cc = server("esc", ec_key, &s);
    tg_errors_t errs;
    tg_cert_t *c = expect_ok(&cc, &errs);
    assert_string_equal(c->subject, "CN=a\\+b\\, \\\"c\\\",O=Ex\\;ample");
    tg_cert_free(c);
    tg_errors_free(&errs);
    entry_free(&cc);
}

/* ---- CA entries --------------------------------------------------------------------------- */

static void test_ca_bundle(void **state)
{
    tg_conf_cert_t cc =
        entry("clients", TG_CERT_CA, write_certs("bundle.crt", dup_cert(ca), dup_cert(ca2), NULL),
              NULL, NULL);
    tg_errors_t errs;
    tg_cert_t *c = expect_ok(&cc, &errs);
    assert_int_equal(errs.n, 0);
    assert_int_equal(c->type, TG_CERT_CA);
    assert_int_equal(sk_X509_num(c->cas), 2);
    assert_int_equal(X509_cmp(c->leaf, ca), 0);
    assert_non_null(c->chain);
    assert_int_equal(sk_X509_num(c->chain), 0);
    assert_null(c->key);
    assert_null(c->key_pem);
    assert_null(c->crl);
    assert_string_equal(c->subject, "CN=Test CA,O=Example");
    assert_string_equal(c->issuer, "CN=Test CA,O=Example");
    assert_int_equal(c->nnames, 1);
    assert_string_equal(c->names[0], "test ca");
    assert_int_equal(c->key_type, TG_KEY_EC);
    tg_cert_free(c);
    tg_errors_free(&errs);
    entry_free(&cc);
}

static void test_ca_refuses_non_ca(void **state)
{
    X509 *leaf = make_cert(ec_key, &www, ca, ca_key);
    tg_conf_cert_t cc = entry("clients", TG_CERT_CA,
                              write_certs("nonca.crt", dup_cert(ca), leaf, NULL), NULL, NULL);
    expect_error(&cc, cc.cert_pos,
                 "certificate \"clients\": certificate #2 (CN=www.example.com,O=Example) is not "
                 "a CA certificate");
    entry_free(&cc);
}

static void test_ca_expired_warns(void **state)
{
    certspec_t s = {.cn = "Old CA", .from = -30 * DAY, .to = -DAY, .ca = 1};
    EVP_PKEY *k = ec("P-256");
    tg_conf_cert_t cc =
        entry("oldca", TG_CERT_CA, write_certs("oldca.crt", make_cert(k, &s, NULL, NULL), NULL),
              NULL, NULL);
    tg_errors_t errs;
    tg_cert_t *c = expect_ok(&cc, &errs);
    assert_true(c->expired);
    assert_int_equal(errs.n, 1);
    assert_int_equal(errs.items[0].severity, TG_SEV_WARNING);
    assert_non_null(strstr(errs.items[0].msg, "certificate \"oldca\" expired on "));
    tg_cert_free(c);
    tg_errors_free(&errs);
    entry_free(&cc);
    EVP_PKEY_free(k);
}

static char *write_crl(const char *name, X509_CRL *crl, int der)
{
    BIO *bio = BIO_new(BIO_s_mem());
    if (der)
        i2d_X509_CRL_bio(bio, crl);
    else
        PEM_write_bio_X509_CRL(bio, crl);
    X509_CRL_free(crl);
    return write_bio(name, bio);
}

static void test_crl_ok(void **state)
{
    for (int der = 0; der <= 1; der++) {
        tg_conf_cert_t cc = entry(
            "clients", TG_CERT_CA, write_certs("crlca.crt", dup_cert(ca2), dup_cert(ca), NULL),
            NULL, write_crl(der ? "ok.crl.der" : "ok.crl", make_crl(ca, ca_key, DAY), der));
        tg_errors_t errs;
        tg_cert_t *c = expect_ok(&cc, &errs);
        assert_int_equal(errs.n, 0);
        assert_non_null(c->crl);
        assert_int_equal(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(c->crl)), 1);
        tg_cert_free(c);
        tg_errors_free(&errs);
        entry_free(&cc);
    }
}

static void test_crl_wrong_signer(void **state)
{
    /* Issuer name of our CA, signature by another key: a forgery. */
    tg_conf_cert_t cc = entry("clients", TG_CERT_CA, write_certs("ws.crt", dup_cert(ca), NULL),
                              NULL, write_crl("ws.crl", make_crl(ca, ca2_key, DAY), 0));
    expect_error(&cc, cc.crl_pos, "does not verify with the key of CN=Test CA,O=Example");
    entry_free(&cc);

    /* A CRL of a CA that is not part of the entry. */
    cc = entry("clients", TG_CERT_CA, write_certs("ws2.crt", dup_cert(ca), NULL), NULL,
               write_crl("ws2.crl", make_crl(ca2, ca2_key, DAY), 0));
    expect_error(&cc, cc.crl_pos, "issued by CN=Other CA,O=Example, which is not a certificate");
    entry_free(&cc);
}

static void test_crl_problems(void **state)
{
    tg_conf_cert_t cc = entry("clients", TG_CERT_CA, write_certs("cp.crt", dup_cert(ca), NULL),
                              NULL, path("missing.crl"));
    expect_error(&cc, cc.crl_pos, "missing.crl: No such file or directory");
    entry_free(&cc);

    cc = entry("clients", TG_CERT_CA, write_certs("cp2.crt", dup_cert(ca), NULL), NULL,
               write_text("junk.crl", "junk"));
    expect_error(&cc, cc.crl_pos, "no CRL found in");
    entry_free(&cc);

    /* Only one CRL is kept, so a second one is refused rather than dropped. */
    BIO *bio = BIO_new(BIO_s_mem());
    for (int i = 0; i < 2; i++) {
        X509_CRL *crl = make_crl(ca, ca_key, DAY);
        PEM_write_bio_X509_CRL(bio, crl);
        X509_CRL_free(crl);
    }
    cc = entry("clients", TG_CERT_CA, write_certs("cp4.crt", dup_cert(ca), NULL), NULL,
               write_bio("two.crl", bio));
    expect_error(&cc, cc.crl_pos, "holds more than one CRL");
    entry_free(&cc);

    /* Past its next update: loads, but the operator hears about it. */
    cc = entry("clients", TG_CERT_CA, write_certs("cp3.crt", dup_cert(ca), NULL), NULL,
               write_crl("stale.crl", make_crl(ca, ca_key, -3600), 0));
    tg_errors_t errs;
    tg_cert_t *c = expect_ok(&cc, &errs);
    assert_int_equal(errs.n, 1);
    assert_int_equal(errs.items[0].severity, TG_SEV_WARNING);
    assert_int_equal(errs.items[0].line, 6);
    assert_non_null(strstr(errs.items[0].msg, "expired on"));
    tg_cert_free(c);
    tg_errors_free(&errs);
    entry_free(&cc);
}

/* ---- from memory -------------------------------------------------------------------------- */

static void test_load_mem(void **state)
{
    tg_conf_cert_t cc = server("mem", ec_key, &www);
    size_t clen, klen;
    char *cert = read_all(cc.cert_path, &clen);
    char *key = read_all(cc.key_path, &klen);
    char err[256] = "x";
    tg_cert_t *c = tg_cert_load_mem("mem", TG_CERT_SERVER, cert, clen, key, klen, err, sizeof(err));
    assert_non_null(c);
    assert_string_equal(err, "");
    assert_string_equal(c->id, "mem");
    assert_int_equal(c->cert_pem_len, clen);
    assert_memory_equal(c->cert_pem, cert, clen);
    assert_int_equal(c->nnames, 2);
    tg_cert_free(c);

    /* Wrong key. */
    tg_conf_cert_t other = server("mem2", ec2_key, &www);
    size_t k2len;
    char *key2 = read_all(other.key_path, &k2len);
    assert_null(tg_cert_load_mem("mem", TG_CERT_SERVER, cert, clen, key2, k2len, err, sizeof(err)));
    assert_string_equal(err, "certificate \"mem\": private key does not match the certificate");
    assert_int_equal(ERR_peek_error(), 0);

    assert_null(tg_cert_load_mem("mem", TG_CERT_SERVER, "junk", 4, key, klen, err, sizeof(err)));
    assert_string_equal(err,
                        "certificate \"mem\": no PEM certificate found in the certificate data");
    assert_null(tg_cert_load_mem("mem", TG_CERT_SERVER, cert, clen, NULL, 0, err, sizeof(err)));
    assert_non_null(strstr(err, "needs a private key"));
    /* A tiny buffer gets a truncated message, never an overflow. */
    char tiny[8];
    assert_null(tg_cert_load_mem("mem", TG_CERT_SERVER, cert, clen, NULL, 0, tiny, sizeof(tiny)));
    assert_int_equal(strlen(tiny), 7);
    assert_null(tg_cert_load_mem("mem", TG_CERT_SERVER, cert, clen, NULL, 0, NULL, 0));

    /* A CA from memory. */
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, ca);
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    c = tg_cert_load_mem("ca", TG_CERT_CA, data, (size_t)n, NULL, 0, err, sizeof(err));
    assert_non_null(c);
    assert_int_equal(sk_X509_num(c->cas), 1);
    tg_cert_free(c);
    BIO_free(bio);

    free(cert);
    free(key);
    free(key2);
    entry_free(&cc);
    entry_free(&other);
}

static void test_free_null(void **state)
{
    tg_cert_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_ec),
        cmocka_unit_test(test_load_rsa_with_chain),
        cmocka_unit_test(test_names_from_cn),
        cmocka_unit_test(test_duplicate_sans_once),
        cmocka_unit_test(test_key_mode),
        cmocka_unit_test(test_key_mode_symlink),
        cmocka_unit_test(test_key_mode_with_bad_key),
        cmocka_unit_test(test_many_sans),
        cmocka_unit_test(test_key_mismatch),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_both_files_missing),
        cmocka_unit_test(test_directory_and_too_large),
        cmocka_unit_test(test_malformed_pem),
        cmocka_unit_test(test_der_hint),
        cmocka_unit_test(test_encrypted_key_refused),
        cmocka_unit_test(test_unsupported_keys),
        cmocka_unit_test(test_expired_is_warning),
        cmocka_unit_test(test_not_yet_valid),
        cmocka_unit_test(test_expired_intermediate_warns),
        cmocka_unit_test(test_fingerprint),
        cmocka_unit_test(test_hex_and_type_names),
        cmocka_unit_test(test_rfc2253_escaping),
        cmocka_unit_test(test_ca_bundle),
        cmocka_unit_test(test_ca_refuses_non_ca),
        cmocka_unit_test(test_ca_expired_warns),
        cmocka_unit_test(test_crl_ok),
        cmocka_unit_test(test_crl_wrong_signer),
        cmocka_unit_test(test_crl_problems),
        cmocka_unit_test(test_load_mem),
        cmocka_unit_test(test_free_null),
    };
    return cmocka_run_group_tests_name("cert", tests, setup, teardown);
}
