/* cert loading: a config entry (files) or an admin import (memory) becomes a tg_cert_t,
 * checked the way SPEC §3 lists: readable, well-formed, matching, supported, valid. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "cert_internal.h"

/* Certificates, keys and CRLs are a few KiB; the bound keeps a wrong path (a log, a disk
 * image) from being read into memory whole. */
#define MAX_INPUT_BYTES (1024 * 1024)

/* clang-format cannot lay out STACK_OF() in a return type; a plain name it can. */
typedef STACK_OF(X509) x509_list_t;

typedef struct load_s {
    const char *id;
    tg_errors_t *errs;
    const char *file; /* the config file, for positions; NULL for imports */
    tg_pos_t id_pos, cert_pos, key_pos, crl_pos;
    const char *cert_src; /* how messages name the inputs: a path, or "the ... data" */
    const char *key_src;
    const char *crl_src;
    time_t now;
    size_t nerrors; /* ours: errs may be NULL */
} load_t;

static void *need(void *p)
{
    if (p == NULL) {
        fputs("tollgate: out of memory\n", stderr);
        abort();
    }
    return p;
}

/* Reports one problem of this entry, prefixed with its id. */
static void report(load_t *ld, tg_severity_t sev, tg_pos_t pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void report(load_t *ld, tg_severity_t sev, tg_pos_t pos, const char *fmt, ...)
{
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    tg_errors_add(ld->errs, sev, ld->file, pos.line, pos.col, "certificate \"%s\": %s", ld->id,
                  msg);
    if (sev == TG_SEV_ERROR)
        ld->nerrors++;
}

/* The first (innermost) reason on the OpenSSL error queue, then an empty queue: errors of
 * one load must never surface in another connection's or another load's messages. The
 * decoder's "unsupported" only says that no decoder took the input; the ASN.1 reason
 * under it, when there is one, says why. */
static const char *ossl_reason(char *buf, size_t size)
{
    unsigned long e, pick = 0;
    while ((e = ERR_get_error()) != 0) {
        if (pick == 0 && ERR_GET_LIB(e) != ERR_LIB_OSSL_DECODER)
            pick = e;
    }
    const char *r = pick ? ERR_reason_error_string(pick) : NULL;
    if (r != NULL)
        snprintf(buf, size, "%s", r);
    else if (pick != 0)
        ERR_error_string_n(pick, buf, size);
    else
        snprintf(buf, size, "unreadable data");
    ERR_clear_error();
    return buf;
}

static bool err_is_no_start_line(void)
{
    unsigned long e = ERR_peek_last_error();
    return ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
}

/* Never prompt: the daemon has no terminal, and SPEC §3 wants unencrypted keys. Being
 * asked at all is how we learn that the key is encrypted. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
    if (u != NULL)
        *(bool *)u = true;
    return -1;
}

static BIO *mem_bio(const char *data, size_t len)
{
    return need(BIO_new_mem_buf(data, (int)len));
}

/* Reads a whole regular file into a NUL-terminated buffer, and its mode into *mode when
 * mode is not NULL: from the open descriptor, so it is the mode of the bytes we read even
 * if the path is replaced meanwhile. On failure returns -1 and a reason in why. */
static int read_file(const char *path, char **out, size_t *out_len, mode_t *mode, char *why,
                     size_t why_size)
{
    char tmp[128];
    /* O_NONBLOCK: a FIFO given by mistake must not hang the load in open(). */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        snprintf(why, why_size, "%s", strerror_r(errno, tmp, sizeof(tmp)));
        return -1;
    }
    struct stat st;
    const char *bad = NULL;
    if (fstat(fd, &st) != 0)
        bad = strerror_r(errno, tmp, sizeof(tmp));
    else if (S_ISDIR(st.st_mode))
        bad = "is a directory";
    else if (!S_ISREG(st.st_mode))
        bad = "not a regular file";
    else if (st.st_size > MAX_INPUT_BYTES)
        bad = "larger than 1 MiB";
    if (bad != NULL) {
        snprintf(why, why_size, "%s", bad);
        close(fd);
        return -1;
    }
    if (mode != NULL)
        *mode = st.st_mode;

    /* Sized from fstat but read to EOF, since the file may change under us. */
    size_t cap = (size_t)st.st_size + 1, len = 0;
    char *buf = tg_malloc(cap + 1);
    for (;;) {
        if (len == cap) {
            cap *= 2;
            buf = tg_realloc(buf, cap + 1);
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(why, why_size, "%s", strerror_r(errno, tmp, sizeof(tmp)));
            break;
        }
        if (n == 0) {
            close(fd);
            buf[len] = '\0';
            *out = buf;
            *out_len = len;
            return 0;
        }
        len += (size_t)n;
        if (len > MAX_INPUT_BYTES) {
            snprintf(why, why_size, "larger than 1 MiB");
            break;
        }
    }
    close(fd);
    OPENSSL_clear_free(buf, cap + 1);
    return -1;
}

/* SPEC §3: a private key that other accounts can read is as good as published, and one
 * they can write can be swapped for theirs. A warning, not an error: the operator may be
 * fixing it, and refusing to start over a mode would turn a leak into an outage. Execute
 * bits alone expose nothing. */
static void check_key_mode(load_t *ld, const char *path, mode_t mode)
{
    mode_t open_to = mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH);
    if (open_to == 0)
        return;
    bool readable = (open_to & (S_IRGRP | S_IROTH)) != 0;
    bool writable = (open_to & (S_IWGRP | S_IWOTH)) != 0;
    const char *how = !writable ? "readable" : !readable ? "writable" : "readable and writable";
    report(ld, TG_SEV_WARNING, ld->key_pos,
           "key file %s is %s by group/others (mode %04o); chmod 600 it", path, how,
           (unsigned)(mode & 07777));
}

static char *copy_input(const char *data, size_t len)
{
    char *s = tg_malloc(len + 1);
    if (len > 0)
        memcpy(s, data, len);
    s[len] = '\0';
    return s;
}

/* Every certificate of a PEM buffer, in order (at least one); NULL after reporting. */
static x509_list_t *parse_certs(load_t *ld, const char *pem, size_t len)
{
    char reason[160];
    STACK_OF(X509) *certs = need(sk_X509_new_null());
    BIO *bio = mem_bio(pem, len);
    ERR_clear_error();
    for (;;) {
        X509 *x = PEM_read_bio_X509(bio, NULL, no_password, NULL);
        if (x != NULL) {
            if (sk_X509_push(certs, x) == 0)
                need(NULL);
            continue;
        }
        if (err_is_no_start_line()) {
            ERR_clear_error();
            break;
        }
        report(ld, TG_SEV_ERROR, ld->cert_pos, "malformed PEM certificate #%d in %s: %s",
               sk_X509_num(certs) + 1, ld->cert_src, ossl_reason(reason, sizeof(reason)));
        goto fail;
    }
    if (sk_X509_num(certs) == 0) {
        /* DER is the usual mistake; naming it saves a round trip to the docs. */
        bool der = len > 1 && (unsigned char)pem[0] == 0x30;
        report(ld, TG_SEV_ERROR, ld->cert_pos, "no PEM certificate found in %s%s", ld->cert_src,
               der ? " (it looks like DER; convert it with openssl x509 -outform PEM)" : "");
        goto fail;
    }
    BIO_free(bio);
    return certs;
fail:
    BIO_free(bio);
    sk_X509_pop_free(certs, X509_free);
    return NULL;
}

static bool supported_curve(const char *group)
{
    static const char *const ok[] = {"prime256v1", "secp384r1", "secp521r1",
                                     "P-256",      "P-384",     "P-521"};
    for (size_t i = 0; i < TG_ARRAY_SIZE(ok); i++) {
        if (strcmp(group, ok[i]) == 0)
            return true;
    }
    return false;
}

/* RSA of at least 2048 bits, or EC on a curve every TLS client offers. */
static int check_key_type(load_t *ld, const EVP_PKEY *key)
{
    int bits = 0;
    switch (tg__cert_key_type(key, &bits)) {
    case TG_KEY_RSA:
        if (bits < 2048) {
            report(ld, TG_SEV_ERROR, ld->key_pos, "RSA key of %d bits is too small (at least 2048)",
                   bits);
            return -1;
        }
        return 0;
    case TG_KEY_EC: {
        char group[64] = "";
        size_t glen = 0;
        if (EVP_PKEY_get_group_name(key, group, sizeof(group), &glen) != 1 ||
            !supported_curve(group)) {
            ERR_clear_error();
            report(ld, TG_SEV_ERROR, ld->key_pos,
                   "unsupported key type: EC curve %s (P-256, P-384 or P-521)",
                   group[0] ? group : "with explicit parameters");
            return -1;
        }
        return 0;
    }
    default: {
        const char *name = EVP_PKEY_get0_type_name(key);
        report(ld, TG_SEV_ERROR, ld->key_pos,
               "unsupported key type %s (RSA of 2048 bits or more, or EC P-256/P-384/P-521)",
               name ? name : "?");
        return -1;
    }
    }
}

static int parse_key(load_t *ld, const char *pem, size_t len, EVP_PKEY **out)
{
    char reason[160];
    bool asked = false;
    BIO *bio = mem_bio(pem, len);
    ERR_clear_error();
    EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, no_password, &asked);
    BIO_free(bio);
    if (key == NULL) {
        if (asked)
            report(ld, TG_SEV_ERROR, ld->key_pos,
                   "encrypted private keys are not supported (%s); store the key unencrypted "
                   "(openssl pkey -in KEY -out KEY.plain)",
                   ld->key_src);
        else if (memmem(pem, len, "PRIVATE KEY-----", 16) == NULL)
            report(ld, TG_SEV_ERROR, ld->key_pos, "no PEM private key found in %s", ld->key_src);
        else
            report(ld, TG_SEV_ERROR, ld->key_pos, "malformed private key in %s: %s", ld->key_src,
                   ossl_reason(reason, sizeof(reason)));
        ERR_clear_error();
        return -1;
    }
    ERR_clear_error();
    if (check_key_type(ld, key) != 0) {
        EVP_PKEY_free(key);
        return -1;
    }
    *out = key;
    return 0;
}

/* Dates of one certificate: not yet valid is an error (nothing could use it), expired a
 * warning (the operator may be replacing it; SPEC §3). `what` is NULL for the leaf. */
static void check_dates(load_t *ld, X509 *x, const char *what)
{
    time_t nb, na;
    char date[11];
    if (tg__cert_time(X509_get0_notBefore(x), &nb) != 0 ||
        tg__cert_time(X509_get0_notAfter(x), &na) != 0) {
        report(ld, TG_SEV_ERROR, ld->cert_pos, "%s has unreadable validity dates",
               what ? what : "the certificate");
        return;
    }
    if (nb > ld->now) {
        /* With the time of day: "from today" is the puzzling case. */
        char when[32];
        struct tm tm;
        gmtime_r(&nb, &tm);
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
        report(ld, TG_SEV_ERROR, ld->cert_pos, "%s is not yet valid (valid from %s)",
               what ? what : "the certificate", when);
    } else if (na < ld->now) {
        tg__cert_format_date(na, date);
        if (what == NULL)
            tg_errors_add(ld->errs, TG_SEV_WARNING, ld->file, ld->cert_pos.line, ld->cert_pos.col,
                          "certificate \"%s\" expired on %s", ld->id, date);
        else
            report(ld, TG_SEV_WARNING, ld->cert_pos, "%s expired on %s", what, date);
    }
}

/* "certificate #2 (CN=...)" for messages about one member of a bundle. */
static char *describe(X509 *x, int index, const char *kind)
{
    char *subject = tg_cert_dn_format(X509_get_subject_name(x));
    char *s = tg_sprintf("%s #%d (%s)", kind, index + 1, subject ? subject : "?");
    free(subject);
    return s;
}

static void check_server(load_t *ld, tg_cert_t *c, bool key_ok)
{
    check_dates(ld, c->leaf, NULL);
    for (int i = 0; i < sk_X509_num(c->chain); i++) {
        X509 *x = sk_X509_value(c->chain, i);
        char *what = describe(x, i + 1, "chain certificate");
        check_dates(ld, x, what);
        free(what);
    }
    if (key_ok && X509_check_private_key(c->leaf, c->key) != 1) {
        ERR_clear_error();
        report(ld, TG_SEV_ERROR, ld->key_pos, "private key does not match the certificate");
    }
}

static void check_cas(load_t *ld, tg_cert_t *c)
{
    for (int i = 0; i < sk_X509_num(c->cas); i++) {
        X509 *x = sk_X509_value(c->cas, i);
        char *what = describe(x, i, "certificate");
        /* X509_check_ca is the test OpenSSL's own chain verification applies, so what we
         * accept here is what will verify clients. */
        if (X509_check_ca(x) == 0) {
            report(ld, TG_SEV_ERROR, ld->cert_pos,
                   "%s is not a CA certificate (basicConstraints CA:TRUE missing)", what);
        }
        check_dates(ld, x, i == 0 ? NULL : what);
        free(what);
    }
}

/* A revocation list (PEM or DER) signed by one of the entry's CAs. */
static void load_crl(load_t *ld, tg_cert_t *c, const char *data, size_t len)
{
    char reason[160];
    BIO *bio = mem_bio(data, len);
    ERR_clear_error();
    X509_CRL *crl = PEM_read_bio_X509_CRL(bio, NULL, no_password, NULL);
    if (crl != NULL) {
        X509_CRL *more = PEM_read_bio_X509_CRL(bio, NULL, no_password, NULL);
        if (more == NULL && !err_is_no_start_line()) {
            report(ld, TG_SEV_ERROR, ld->crl_pos, "malformed PEM CRL #2 in %s: %s", ld->crl_src,
                   ossl_reason(reason, sizeof(reason)));
            goto fail;
        }
        if (more != NULL) {
            /* Dropping the rest silently would leave revoked clients in. */
            X509_CRL_free(more);
            X509_CRL_free(crl);
            crl = NULL;
            report(ld, TG_SEV_ERROR, ld->crl_pos,
                   "%s holds more than one CRL; one CRL per entry is supported", ld->crl_src);
            goto fail;
        }
    } else if (err_is_no_start_line()) {
        ERR_clear_error();
        const unsigned char *p = (const unsigned char *)data;
        crl = d2i_X509_CRL(NULL, &p, (long)len);
        if (crl == NULL || p != (const unsigned char *)data + len) {
            if (crl != NULL)
                report(ld, TG_SEV_ERROR, ld->crl_pos, "trailing data after the DER CRL in %s",
                       ld->crl_src);
            else
                report(ld, TG_SEV_ERROR, ld->crl_pos, "no CRL found in %s (PEM or DER)",
                       ld->crl_src);
            goto fail;
        }
    } else {
        report(ld, TG_SEV_ERROR, ld->crl_pos, "malformed PEM CRL in %s: %s", ld->crl_src,
               ossl_reason(reason, sizeof(reason)));
        goto fail;
    }

    const X509_NAME *issuer = X509_CRL_get_issuer(crl);
    bool named = false, signed_ok = false;
    for (int i = 0; i < sk_X509_num(c->cas) && !signed_ok; i++) {
        X509 *ca = sk_X509_value(c->cas, i);
        if (X509_NAME_cmp(issuer, X509_get_subject_name(ca)) != 0)
            continue;
        named = true;
        EVP_PKEY *pub = X509_get0_pubkey(ca);
        signed_ok = pub != NULL && X509_CRL_verify(crl, pub) == 1;
    }
    ERR_clear_error();
    if (!signed_ok) {
        char *name = tg_cert_dn_format(issuer);
        if (!named)
            report(ld, TG_SEV_ERROR, ld->crl_pos,
                   "the CRL in %s is issued by %s, which is not a certificate of this entry",
                   ld->crl_src, name ? name : "?");
        else
            report(ld, TG_SEV_ERROR, ld->crl_pos,
                   "the signature of the CRL in %s does not verify with the key of %s", ld->crl_src,
                   name ? name : "?");
        free(name);
        goto fail;
    }

    /* OpenSSL refuses every client while the CRL is past its next update, so say it. */
    time_t next;
    const ASN1_TIME *nu = X509_CRL_get0_nextUpdate(crl);
    if (nu != NULL && tg__cert_time(nu, &next) == 0 && next < ld->now) {
        char date[11];
        tg__cert_format_date(next, date);
        report(ld, TG_SEV_WARNING, ld->crl_pos, "the CRL in %s expired on %s (next update)",
               ld->crl_src, date);
    }
    BIO_free(bio);
    c->crl = crl;
    return;
fail:
    X509_CRL_free(crl);
    BIO_free(bio);
    ERR_clear_error();
}

static tg_cert_t *new_cert(const char *id, tg_cert_type_t type)
{
    tg_cert_t *c = tg_calloc(1, sizeof(*c));
    c->id = tg_strdup(id);
    c->type = type;
    /* Never NULL, so users iterate without checking the entry's type first. */
    c->chain = need(sk_X509_new_null());
    c->cas = need(sk_X509_new_null());
    return c;
}

/* Parses and checks what was read into c->cert_pem / c->key_pem (either may be NULL after
 * a read error, whose problem is already reported), and the CRL bytes if any. */
static void validate(load_t *ld, tg_cert_t *c, const char *crl, size_t crl_len)
{
    STACK_OF(X509) *certs = c->cert_pem ? parse_certs(ld, c->cert_pem, c->cert_pem_len) : NULL;
    bool certs_ok = certs != NULL;

    if (c->type == TG_CERT_SERVER) {
        bool key_ok = c->key_pem != NULL && parse_key(ld, c->key_pem, c->key_pem_len, &c->key) == 0;
        if (certs_ok) {
            c->leaf = sk_X509_shift(certs);
            sk_X509_free(c->chain);
            c->chain = certs;
            check_server(ld, c, key_ok);
        }
    } else if (certs_ok) {
        sk_X509_free(c->cas);
        c->cas = certs;
        c->leaf = sk_X509_value(certs, 0);
        X509_up_ref(c->leaf);
        check_cas(ld, c);
        if (crl != NULL)
            load_crl(ld, c, crl, crl_len);
    }

    if (certs_ok) {
        const char *why = NULL;
        if (tg__cert_facts(c, c->leaf, ld->now, &why) != 0)
            report(ld, TG_SEV_ERROR, ld->cert_pos, "%s", why);
    }
    ERR_clear_error();
}

tg_cert_t *tg_cert_load(const tg_conf_cert_t *cc, const char *cfg_path, tg_errors_t *errs)
{
    const char *id = cc->id ? cc->id : "";
    load_t ld = {
        .id = id,
        .errs = errs,
        .file = cfg_path,
        .id_pos = cc->pos,
        .cert_pos = cc->cert_pos,
        .key_pos = cc->key_pos,
        .crl_pos = cc->crl_pos,
        .cert_src = cc->cert_path,
        .key_src = cc->key_path,
        .crl_src = cc->crl_path,
        .now = time(NULL),
    };
    tg_cert_t *c = new_cert(id, cc->type);
    char why[160];

    if (cc->cert_path == NULL)
        report(&ld, TG_SEV_ERROR, ld.id_pos, "no cert: file given");
    else if (read_file(cc->cert_path, &c->cert_pem, &c->cert_pem_len, NULL, why, sizeof(why)) != 0)
        report(&ld, TG_SEV_ERROR, ld.cert_pos, "cannot read %s: %s", cc->cert_path, why);

    if (cc->type == TG_CERT_SERVER && cc->key_path == NULL) {
        report(&ld, TG_SEV_ERROR, ld.id_pos, "a server certificate needs a key: file");
    } else if (cc->type == TG_CERT_SERVER) {
        mode_t mode = 0;
        if (read_file(cc->key_path, &c->key_pem, &c->key_pem_len, &mode, why, sizeof(why)) != 0)
            report(&ld, TG_SEV_ERROR, ld.key_pos, "cannot read %s: %s", cc->key_path, why);
        else
            check_key_mode(&ld, cc->key_path, mode);
    }

    char *crl = NULL;
    size_t crl_len = 0;
    if (cc->type == TG_CERT_CA && cc->crl_path != NULL &&
        read_file(cc->crl_path, &crl, &crl_len, NULL, why, sizeof(why)) != 0)
        report(&ld, TG_SEV_ERROR, ld.crl_pos, "cannot read %s: %s", cc->crl_path, why);

    validate(&ld, c, crl, crl_len);
    free(crl);
    if (ld.nerrors > 0) {
        tg_cert_free(c);
        return NULL;
    }
    return c;
}

tg_cert_t *tg_cert_load_mem(const char *id, tg_cert_type_t type, const char *cert_pem,
                            size_t cert_len, const char *key_pem, size_t key_len, char *err,
                            size_t err_size)
{
    tg_errors_t errs;
    tg_errors_init(&errs);
    load_t ld = {
        .id = id ? id : "",
        .errs = &errs,
        .cert_src = "the certificate data",
        .key_src = "the key data",
        .crl_src = "the CRL data",
        .now = time(NULL),
    };
    tg_cert_t *c = new_cert(ld.id, type);

    if (cert_pem == NULL)
        cert_len = 0;
    if (cert_len > MAX_INPUT_BYTES)
        report(&ld, TG_SEV_ERROR, ld.cert_pos, "the certificate data is larger than 1 MiB");
    else {
        c->cert_pem = copy_input(cert_pem, cert_len);
        c->cert_pem_len = cert_len;
    }

    if (type == TG_CERT_SERVER) {
        if (key_pem == NULL)
            report(&ld, TG_SEV_ERROR, ld.key_pos, "a server certificate needs a private key");
        else if (key_len > MAX_INPUT_BYTES)
            report(&ld, TG_SEV_ERROR, ld.key_pos, "the key data is larger than 1 MiB");
        else {
            c->key_pem = copy_input(key_pem, key_len);
            c->key_pem_len = key_len;
        }
    } else if (key_pem != NULL && key_len > 0) {
        report(&ld, TG_SEV_ERROR, ld.key_pos, "a CA certificate takes no private key");
    }

    validate(&ld, c, NULL, 0);
    if (ld.nerrors > 0) {
        if (err != NULL && err_size > 0)
            tg_errors_first(&errs, err, err_size);
        tg_cert_free(c);
        c = NULL;
    } else if (err != NULL && err_size > 0) {
        err[0] = '\0';
    }
    tg_errors_free(&errs);
    return c;
}

void tg_cert_free(tg_cert_t *cert)
{
    if (cert == NULL)
        return;
    free(cert->id);
    X509_free(cert->leaf);
    sk_X509_pop_free(cert->chain, X509_free);
    EVP_PKEY_free(cert->key);
    sk_X509_pop_free(cert->cas, X509_free);
    X509_CRL_free(cert->crl);
    for (size_t i = 0; i < cert->nnames; i++)
        free(cert->names[i]);
    free(cert->names);
    free(cert->subject);
    free(cert->issuer);
    free(cert->cert_pem);
    /* The key bytes are a secret: do not leave them in freed heap memory. */
    if (cert->key_pem != NULL)
        OPENSSL_clear_free(cert->key_pem, cert->key_pem_len + 1);
    free(cert);
}
