/* benchtls.h: what the TLS load tools share: address parsing, the client SSL_CTX built from
 * the common command-line options, a clock, and a small HTTP/1.1 response reader. */
#ifndef TG_BENCH_BENCHTLS_H
#define TG_BENCH_BENCHTLS_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

/* Long options both tools accept; values above any short option character. */
enum {
    OPT_TLS12 = 256,
    OPT_TLS13,
    OPT_SIGALGS,
    OPT_CIPHER,
    OPT_CIPHERSUITES,
    OPT_GROUPS,
    OPT_SNI,
};

// clang-format off
#define BENCH_TLS_LONGOPTS                                 \
    {"tls12", no_argument, NULL, OPT_TLS12},               \
    {"tls13", no_argument, NULL, OPT_TLS13},               \
    {"sigalgs", required_argument, NULL, OPT_SIGALGS},     \
    {"cipher", required_argument, NULL, OPT_CIPHER},       \
    {"ciphersuites", required_argument, NULL, OPT_CIPHERSUITES},\
    {"groups", required_argument, NULL, OPT_GROUPS},       \
    {"sni", required_argument, NULL, OPT_SNI},             \
    {"cert", required_argument, NULL, 'C'},                \
    {"key", required_argument, NULL, 'K'}
// clang-format on

#define BENCH_TLS_USAGE                                                                            \
    "  --tls12 | --tls13      offer only this protocol version (default: 1.2 and 1.3)\n"           \
    "  --sigalgs LIST         signature algorithms offered, e.g. ECDSA+SHA256 or\n"                \
    "                         rsa_pss_rsae_sha256:RSA+SHA256 (selects the server's cert)\n"        \
    "  --cipher LIST          TLS 1.2 cipher list\n"                                               \
    "  --ciphersuites LIST    TLS 1.3 cipher suites\n"                                             \
    "  --groups LIST          key exchange groups, e.g. X25519 or P-256\n"                         \
    "  --sni NAME             server name sent (default localhost)\n"                              \
    "  -C, --cert FILE        client certificate chain (PEM) for mutual TLS\n"                     \
    "  -K, --key FILE         its private key (PEM)\n"

typedef struct bench_tls_opts {
    int version; /* 0: TLS 1.2 and 1.3 */
    const char *sigalgs, *cipher, *ciphersuites, *groups, *cert, *key;
    const char *sni;
} bench_tls_opts_t;

/* Takes one option of BENCH_TLS_LONGOPTS; returns false when opt is not one of them. */
static inline bool bench_tls_option(bench_tls_opts_t *o, int opt, const char *arg)
{
    switch (opt) {
    case OPT_TLS12:
        o->version = TLS1_2_VERSION;
        return true;
    case OPT_TLS13:
        o->version = TLS1_3_VERSION;
        return true;
    case OPT_SIGALGS:
        o->sigalgs = arg;
        return true;
    case OPT_CIPHER:
        o->cipher = arg;
        return true;
    case OPT_CIPHERSUITES:
        o->ciphersuites = arg;
        return true;
    case OPT_GROUPS:
        o->groups = arg;
        return true;
    case OPT_SNI:
        o->sni = arg;
        return true;
    case 'C':
        o->cert = arg;
        return true;
    case 'K':
        o->key = arg;
        return true;
    default:
        return false;
    }
}

static inline void bench_print_ssl_errors(const char *what)
{
    unsigned long e;
    char buf[256];
    fprintf(stderr, "%s\n", what);
    while ((e = ERR_get_error()) != 0) {
        ERR_error_string_n(e, buf, sizeof buf);
        fprintf(stderr, "  %s\n", buf);
    }
}

/* A client context that never resumes: no tickets asked for, no session cache, so every
 * connection made from it is a full handshake. The server certificate is not verified
 * (throwaway PKI); its CertificateVerify signature still is, as in any handshake. */
static inline SSL_CTX *bench_client_ctx(const bench_tls_opts_t *o)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        goto fail;
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    if (!SSL_CTX_set_min_proto_version(ctx, o->version ? o->version : TLS1_2_VERSION))
        goto fail;
    if (!SSL_CTX_set_max_proto_version(ctx, o->version ? o->version : TLS1_3_VERSION))
        goto fail;
    if (o->sigalgs && !SSL_CTX_set1_sigalgs_list(ctx, o->sigalgs))
        goto fail;
    if (o->cipher && !SSL_CTX_set_cipher_list(ctx, o->cipher))
        goto fail;
    if (o->ciphersuites && !SSL_CTX_set_ciphersuites(ctx, o->ciphersuites))
        goto fail;
    if (o->groups && !SSL_CTX_set1_groups_list(ctx, o->groups))
        goto fail;
    if (o->cert || o->key) {
        if (!o->cert || !o->key) {
            fprintf(stderr, "--cert and --key go together\n");
            SSL_CTX_free(ctx);
            return NULL;
        }
        if (SSL_CTX_use_certificate_chain_file(ctx, o->cert) != 1)
            goto fail;
        if (SSL_CTX_use_PrivateKey_file(ctx, o->key, SSL_FILETYPE_PEM) != 1)
            goto fail;
        if (SSL_CTX_check_private_key(ctx) != 1)
            goto fail;
    }
    return ctx;
fail:
    bench_print_ssl_errors("cannot set up the TLS client context:");
    SSL_CTX_free(ctx);
    return NULL;
}

/* One line about a finished handshake: version, suite, group, server key. */
static inline void bench_describe_session(SSL *ssl, char *out, size_t len)
{
    char group[64] = "?", key[96] = "?";
    int nid = SSL_get_negotiated_group(ssl);
    if (nid > 0 && !(nid & TLSEXT_nid_unknown) && OBJ_nid2sn(nid))
        snprintf(group, sizeof group, "%s", OBJ_nid2sn(nid));
    X509 *peer = SSL_get0_peer_certificate(ssl);
    EVP_PKEY *pkey = peer ? X509_get0_pubkey(peer) : NULL;
    if (pkey) {
        char curve[48] = "";
        if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_EC)
            EVP_PKEY_get_group_name(pkey, curve, sizeof curve, NULL);
        snprintf(key, sizeof key, "%s%s%s %d bits", EVP_PKEY_get0_type_name(pkey),
                 curve[0] ? " " : "", curve, EVP_PKEY_get_bits(pkey));
    }
    snprintf(out, len, "%s %s, group %s, server key %s", SSL_get_version(ssl),
             SSL_get_cipher_name(ssl), group, key);
}

/* "PORT", "HOST:PORT" with an IPv4 literal; HOST defaults to 127.0.0.1. */
static inline bool bench_parse_addr(const char *s, struct sockaddr_in *sin)
{
    char host[64] = "127.0.0.1";
    const char *colon = strrchr(s, ':'), *port = s;
    if (colon) {
        if ((size_t)(colon - s) >= sizeof host)
            return false;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
        port = colon + 1;
    }
    char *end;
    long p = strtol(port, &end, 10);
    memset(sin, 0, sizeof *sin);
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)p);
    return *port && !*end && p > 0 && p < 65536 && inet_pton(AF_INET, host, &sin->sin_addr) == 1;
}

/* Starts a non-blocking connect; returns the socket (connecting) or -1 with errno set. */
static inline int bench_connect(const struct sockaddr_in *sin)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (const struct sockaddr *)sin, sizeof *sin) < 0 && errno != EINPROGRESS) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

static inline uint64_t bench_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Reads an HTTP/1.1 response as it arrives: keeps the head, counts the body. */
typedef struct bench_resp {
    char head[2048];
    size_t fill;         /* bytes kept in head */
    size_t total;        /* bytes received */
    size_t head_len;     /* 0 until the head is complete */
    long content_length; /* -1: none */
    int status;
} bench_resp_t;

static inline void bench_resp_init(bench_resp_t *r)
{
    r->fill = r->total = r->head_len = 0;
    r->content_length = -1;
    r->status = 0;
}

static inline void bench_resp_feed(bench_resp_t *r, const char *data, size_t n)
{
    r->total += n;
    if (r->head_len)
        return;
    size_t keep = n < sizeof r->head - r->fill ? n : sizeof r->head - r->fill;
    memcpy(r->head + r->fill, data, keep);
    r->fill += keep;
    const char *end = memmem(r->head, r->fill, "\r\n\r\n", 4);
    if (!end)
        return;
    r->head_len = (size_t)(end - r->head) + 4;
    if (r->fill >= 12 && memcmp(r->head, "HTTP/1.", 7) == 0)
        r->status = atoi(r->head + 9);
    for (const char *p = memchr(r->head, '\n', (size_t)(end - r->head)); p && end - p > 16;
         p = memchr(p + 1, '\n', (size_t)(end - p - 1)))
        if (strncasecmp(p + 1, "Content-Length:", 15) == 0)
            r->content_length = strtol(p + 16, NULL, 10);
}

/* True once the head and Content-Length bytes of body are in. */
static inline bool bench_resp_complete(const bench_resp_t *r)
{
    return r->head_len && r->content_length >= 0 &&
           r->total >= r->head_len + (size_t)r->content_length;
}

#endif
