/* libFuzzer target for the HTTP/1.1 frontend with its exchange: each input is what one
 * client sends over a real TLS session (a socketpair, OpenSSL on both ends) to a listener
 * in front of a fixed response or of a backend of this process, whose answer the input
 * picks among well-formed and broken ones. Pipelines, smuggling shapes, early closes and
 * bodies all reach the real state machines; ASan and the connection count judge. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "fuzz.h"
#include "fuzz_pki.h"
#include "tollgate/config.h"
#include "tollgate/core.h"
#include "tollgate/frontend.h"
#include "tollgate/generation.h"
#include "tollgate/proxy.h"
#include "tollgate/tls.h"

#define PUMP_ROUNDS 64

/* What the in-process backend answers, chosen by the input's first byte. */
static const char *const answers[] = {
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
    "HTTP/1.1 200 OK\r\n\r\nuntil close",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "this is no HTTP\r\n\r\n",
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
    "", /* closes without answering */
};

static struct {
    struct event_base *base;
    tg_loop_t loop;
    tg_generation_t *gen;
    tg_proxy_conns_t srv;
    atomic_ulong conns;
    SSL_CTX *client;
    int backend_fd;
    struct event *backend_ev;
    const char *answer;
    SSL_SESSION *session; /* resumed by the next input: a full handshake each is slow */
    int peers[64];        /* backend connections accepted for this input, and their events */
    struct event *peer_evs[64];
    size_t npeers;
} F;

static void on_backend_peer(evutil_socket_t fd, short what, void *arg)
{
    char buf[16384];
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN)) {
        event_del(*(struct event **)arg); /* at EOF it would be readable forever */
        return;
    }
    if (n > 0)
        buf[n] = '\0';
    if (n > 0 && strstr(buf, "\r\n\r\n") != NULL) {
        if (F.answer[0] == '\0')
            shutdown(fd, SHUT_RDWR);
        else
            send(fd, F.answer, strlen(F.answer), MSG_NOSIGNAL | MSG_DONTWAIT);
    }
}

static void on_backend(evutil_socket_t lfd, short what, void *arg)
{
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    if (F.npeers == sizeof(F.peers) / sizeof(F.peers[0])) {
        close(fd);
        return;
    }
    struct event **slot = &F.peer_evs[F.npeers];
    *slot = event_new(F.base, fd, EV_READ | EV_PERSIST, on_backend_peer, slot);
    event_add(*slot, NULL);
    F.peers[F.npeers++] = fd;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    tg_log_set_level(TG_LOG_ERROR);
    signal(SIGPIPE, SIG_IGN); /* as the daemon: a closed peer is an error return, not death */
    CHECK(tg_tls_tickets_init() == 0);
    char dir[] = "/tmp/tg-fuzz-h1-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char crt[64], key[64];
    make_cert(dir, crt, key);

    F.backend_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    CHECK(bind(F.backend_fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
    CHECK(listen(F.backend_fd, 64) == 0);
    CHECK(getsockname(F.backend_fd, (struct sockaddr *)&sin, &len) == 0);

    char yaml[2048];
    snprintf(yaml, sizeof(yaml),
             "version: 1\n"
             "global: {limits: {max_header_bytes: 4096}}\n"
             "certificates:\n  c: {type: server, cert: %s, key: %s}\n"
             "backends:\n"
             "  fixed: {fixed_response: {status: 200, body: \"fixed\\n\"}}\n"
             "  pool: {servers: [\"127.0.0.1:%u\"], response_timeout: 1s, max_fails: 0}\n"
             "listeners:\n"
             "  fx: {protocol: https, listen: 127.0.0.1:1, backend: fixed, "
             "certificates: {default: c}}\n"
             "  px: {protocol: https, listen: 127.0.0.1:2, backend: pool, "
             "certificates: {default: c}}\n",
             crt, key, ntohs(sin.sin_port));
    char path[96];
    snprintf(path, sizeof(path), "%s/t.yaml", dir);
    write_file(path, yaml, 0600);
    tg_errors_t errs;
    tg_errors_init(&errs);
    tg_config_t *cfg = tg_config_load(path, &errs);
    if (cfg != NULL)
        F.gen = tg_generation_build(cfg, &errs);
    if (F.gen == NULL)
        tg_errors_print(&errs, stderr);
    CHECK(F.gen != NULL);
    tg_errors_free(&errs);
    unlink(crt);
    unlink(key);
    unlink(path);
    rmdir(dir);

    F.base = event_base_new();
    tg_loop_init(&F.loop, F.base, 0);
    F.srv.loop = &F.loop;
    F.srv.process_conns = &F.conns;
    F.srv.current = &F.gen;
    F.backend_ev = event_new(F.base, F.backend_fd, EV_READ | EV_PERSIST, on_backend, NULL);
    event_add(F.backend_ev, NULL);
    tg_accesslog_open(NULL);

    F.client = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(F.client, SSL_VERIFY_NONE, NULL);
    return 0;
}

static void pump(int rounds)
{
    for (int i = 0; i < rounds; i++)
        event_base_loop(F.base, EVLOOP_NONBLOCK | EVLOOP_ONCE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t how = data[0];
    data++, size--;
    F.answer = answers[how & 7];
    const tg_listener_rt_t *l = &F.gen->listeners[(how >> 3) & 1];
    bool half_close = how & 0x10;
    bool split = how & 0x20;

    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    struct sockaddr_in peer = {
        .sin_family = AF_INET, .sin_port = htons(40000), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    atomic_fetch_add(&F.conns, 1);
    tg_h1_accept(&F.srv, sv[0], (struct sockaddr *)&peer, sizeof(peer), F.gen, l);

    SSL *ssl = SSL_new(F.client);
    SSL_set_fd(ssl, sv[1]);
    SSL_set_tlsext_host_name(ssl, "localhost");
    if (F.session != NULL)
        SSL_set_session(ssl, F.session);
    SSL_set_connect_state(ssl);
    bool up = false;
    for (int i = 0; i < PUMP_ROUNDS && !up; i++) {
        int rc = SSL_do_handshake(ssl);
        up = rc == 1;
        if (rc <= 0 && SSL_get_error(ssl, rc) != SSL_ERROR_WANT_READ &&
            SSL_get_error(ssl, rc) != SSL_ERROR_WANT_WRITE)
            break;
        pump(1);
    }
    char sink[16384];
    if (up) {
        /* The input in one write, or in two (a head split across records). */
        size_t first = split ? size / 2 : size;
        const uint8_t *parts[2] = {data, data + first};
        size_t lens[2] = {first, size - first};
        for (int p = 0; p < 2; p++) {
            size_t off = 0;
            for (int i = 0; off < lens[p] && i < PUMP_ROUNDS; i++) {
                int n = SSL_write(ssl, parts[p] + off, (int)(lens[p] - off));
                if (n > 0)
                    off += (size_t)n;
                pump(2);
                while (SSL_read(ssl, sink, sizeof(sink)) > 0)
                    ;
            }
        }
        if (F.session == NULL)
            F.session = SSL_get1_session(ssl); /* its ticket came with the first read */
        if (half_close)
            SSL_shutdown(ssl);
        for (int i = 0; i < PUMP_ROUNDS && F.srv.n > 0; i++) {
            pump(2);
            while (SSL_read(ssl, sink, sizeof(sink)) > 0)
                ;
        }
    }
    SSL_free(ssl);
    close(sv[1]);
    pump(4);
    tg_proxy_conns_close_all(&F.srv);
    for (size_t i = 0; i < F.npeers; i++) {
        event_free(F.peer_evs[i]);
        close(F.peers[i]);
    }
    F.npeers = 0;
    pump(2);
    /* Every connection gave its count back, whatever path it ended on. */
    CHECK(atomic_load(&F.conns) == 0);
    CHECK(F.srv.n == 0);
    return 0;
}
