/* libFuzzer target for the QUIC datagram path of a worker's server (endpoint.c, conn.c,
 * h3.c): each input is what clients send to QUIC listeners over real UDP sockets. The first
 * byte picks the mode. Raw: datagrams sent as they are. Client: a script for an in-process
 * ngtcp2 client (GnuTLS, ALPN h3) whose genuine packets the input shapes (HTTP/3 requests
 * and bodies, raw stream bytes, resets, key updates, migration, closes, restarts with a
 * NEW_TOKEN or a forged one) and mutates on their way (flipped, cut, duplicated, dropped,
 * reordered, sent from another address or to the other worker), with the server's answers
 * fed back so handshakes finish and requests reach a fixed answer or an in-process backend.
 * Reloads, retirement and a slow client's head timeout happen in between. ngtcp2, nghttp3
 * and GnuTLS are not instrumented, so the harness writes the structure (QPACK, frames,
 * handshakes) the fuzzer could never find blind. ASan/LSan and the connection counts judge. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "fuzz.h"
#include "fuzz_pki.h"
#include "tollgate/config.h"
#include "tollgate/core.h"
#include "tollgate/generation.h"
#include "tollgate/loop.h"
#include "tollgate/proxy.h"
#include "tollgate/quic.h"

#define NLISTENERS 4      /* "q": no Retry, "qr": Retry always, "qp" and "qs": backends */
#define NGENS 3           /* the first; the same rebuilt (a reload); one without them */
#define NWORKERS 2        /* worker 1 only receives what the input sends it: handoff */
#define MAX_DGRAMS 32     /* datagrams of one round, or of a raw input */
#define DGRAM_MAX 1500    /* what the client writes: the largest Ethernet payload */
#define RAW_MAX 32767     /* a raw datagram: 15 bits of length */
#define MAX_OPS 64        /* script steps of a client input */
#define MAX_STREAMS 24    /* client streams of one connection */
#define MAX_MUTS 8        /* mutations waiting for the next round */
#define FINAL_ROUNDS 8    /* after the script: a handshake, requests, their answers and ACKs */
#define PUMP_ROUNDS 8     /* loop turns after a delivery: flushes, exchanges, the backend */
#define MAX_QUEUED 256000 /* stream bytes one input may queue: an input stays fast */
#define MAX_BACKEND 64    /* backend connections one input may open */
#define BIG_BODY 600000   /* the large answer: past h3.c's 512 KiB mark for one stream */

static struct {
    struct event_base *base;
    tg_loop_t loop; /* both workers' (one thread: the fuzzer's) */
    tg_generation_t *gens[NGENS];
    tg_generation_t *gen; /* the workers' current one */
    tg_proxy_conns_t conns[NWORKERS];
    atomic_ulong nconns; /* process-wide */
    atomic_ulong max_conns;
    tg_quic_server_t *_Atomic peers[NWORKERS];
    tg_quic_server_t *srv[NWORKERS];
    struct {
        int fd; /* worker 0's socket of the listener */
        struct sockaddr_in addr;
    } lis[NLISTENERS];
    int w1fd; /* worker 1's socket, for whichever listener the input talks to */
    struct sockaddr_in w1addr;
    int cfd[2]; /* two client sockets: a second address for rebinding and migration */
    struct sockaddr_in caddr[2];
    gnutls_certificate_credentials_t ccred; /* empty: the client trusts anything */
    gnutls_priority_t prio[4];
    /* the backends of "qp" and "qs": they answer every request head with the input's
     * choice; the second one stops reading after a head until DRAIN, so request bodies
     * back up into h3.c */
    int backend_fd[2];
    struct event *backend_ev[2];
    const char *answer;
    size_t answer_len;
    bool drain; /* the slow backend reads again */
    struct bpeer_s {
        int fd;
        bool slow;
        bool paused;
        struct event *rd, *wr;
        size_t off; /* of the answer being written */
        bool sending;
    } bpeers[MAX_BACKEND];
    size_t nbpeers;
} F;

static char big_answer[BIG_BODY + 64];

/* What the backend answers, chosen by the input's first byte; NULL is big_answer. */
static const char *const answers[] = {
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
    "HTTP/1.1 200 OK\r\n\r\nuntil close", /* then the backend closes */
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "this is no HTTP\r\n\r\n",
    NULL,
    "", /* closes without answering */
};

/* ---- setup --------------------------------------------------------------------------------- */

/* Two TLS stacks and two QUIC connections allocate a few hundred KiB an input; with ASan's
 * 256 MiB quarantine every input touched fresh pages and half the time went to page faults.
 * 32 MiB still holds freed memory for dozens of inputs. ASAN_OPTIONS can still say otherwise. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "quarantine_size_mb=32";
}

/* Everything that knows the server's configuration structs (they change with the code):
 * the generations from the YAML files, the loop, each worker's connection set and QUIC
 * server (worker 1 of 2 shares worker 0's loop: the fuzzer has one thread). */
static void server_setup(char *const paths[NGENS])
{
    for (int g = 0; g < NGENS; g++) {
        tg_errors_t errs;
        tg_errors_init(&errs);
        tg_config_t *cfg = tg_config_load(paths[g], &errs);
        if (cfg != NULL)
            F.gens[g] = tg_generation_build(cfg, &errs);
        if (F.gens[g] == NULL)
            tg_errors_print(&errs, stderr);
        CHECK(F.gens[g] != NULL);
        tg_errors_free(&errs);
    }
    F.gen = F.gens[0];

    F.base = event_base_new();
    CHECK(F.base != NULL);
    tg_loop_init(&F.loop, F.base, 0);
    atomic_store(&F.max_conns, 1000); /* never the limit: admission is not under test */
    for (unsigned w = 0; w < NWORKERS; w++) {
        F.conns[w].loop = &F.loop;
        F.conns[w].current = &F.gen;
        F.conns[w].process_conns = &F.nconns;
        tg_quic_server_conf_t conf = {
            .loop = &F.loop,
            .worker = w,
            .nworkers = NWORKERS,
            .peers = F.peers,
            .conns = &F.conns[w],
            .max_conns = &F.max_conns,
        };
        F.srv[w] = tg_quic_server_new(&conf);
        CHECK(F.srv[w] != NULL);
    }
}

static int udp_socket(struct sockaddr_in *addr, bool server)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    if (server)
        CHECK(tg_quic_socket_prepare(fd, AF_INET) == 0);
    /* Room for a whole round of datagrams each way: a full buffer would drop some and
     * make an input's outcome depend on timing. */
    int size = 4 * 1024 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof *addr;
    CHECK(bind(fd, (struct sockaddr *)addr, sizeof *addr) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)addr, &len) == 0);
    return fd;
}

/* ---- the backend ---------------------------------------------------------------------------- */

/* The answer goes out as the socket takes it: a large one does not fit at once. */
static void backend_write(evutil_socket_t fd, short what, void *arg)
{
    struct bpeer_s *p = arg;
    while (p->sending && p->off < F.answer_len) {
        ssize_t n = send(fd, F.answer + p->off, F.answer_len - p->off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n <= 0)
            break;
        p->off += (size_t)n;
    }
    if (p->sending && p->off < F.answer_len && (what & EV_WRITE) == 0) {
        event_add(p->wr, NULL);
        return;
    }
    if (p->sending && p->off == F.answer_len) {
        p->sending = false;
        event_del(p->wr);
        if (F.answer == answers[3])
            shutdown(fd, SHUT_WR);
    }
}

static void backend_read(evutil_socket_t fd, short what, void *arg)
{
    struct bpeer_s *p = arg;
    char buf[16384];
    bool slow = p->slow && !F.drain;
    ssize_t n = recv(fd, buf, slow ? 64 : sizeof(buf), MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN)) {
        event_del(p->rd); /* at EOF it would be readable forever */
        return;
    }
    /* An answer for every head: right away, so it may come before the request body (an
     * early response) and while the client still sends. */
    if (n <= 0 || p->sending || memmem(buf, (size_t)n, "\r\n\r\n", 4) == NULL)
        return;
    if (slow) {
        /* Reading nothing more fills the socket buffers at once; reading a little would
         * let the kernel grow them past anything the client can send. */
        event_del(p->rd);
        p->paused = true;
    }
    if (F.answer_len == 0) {
        shutdown(fd, SHUT_RDWR);
        return;
    }
    p->sending = true;
    p->off = 0;
    backend_write(fd, 0, p);
}

static void on_backend(evutil_socket_t lfd, short what, void *arg)
{
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    if (F.nbpeers == MAX_BACKEND) {
        close(fd);
        return;
    }
    struct bpeer_s *p = &F.bpeers[F.nbpeers++];
    p->fd = fd;
    p->slow = arg != NULL;
    p->paused = false;
    p->sending = false;
    p->rd = event_new(F.base, fd, EV_READ | EV_PERSIST, backend_read, p);
    p->wr = event_new(F.base, fd, EV_WRITE | EV_PERSIST, backend_write, p);
    event_add(p->rd, NULL);
}

static int backend_listen(int i)
{
    F.backend_fd[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (i == 1) {
        /* A small window and segment size (accepted sockets inherit them, and the sender
         * sizes its buffer by the segment): ~20 KiB in flight instead of the megabytes of
         * loopback's 64 KiB segments, so the exchange refuses body bytes. */
        int size = 2048, mss = 88;
        setsockopt(F.backend_fd[i], SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
        setsockopt(F.backend_fd[i], IPPROTO_TCP, TCP_MAXSEG, &mss, sizeof mss);
    }
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    CHECK(bind(F.backend_fd[i], (struct sockaddr *)&sin, sizeof(sin)) == 0);
    CHECK(listen(F.backend_fd[i], 64) == 0);
    CHECK(getsockname(F.backend_fd[i], (struct sockaddr *)&sin, &len) == 0);
    return ntohs(sin.sin_port);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    tg_log_set_level(TG_LOG_ERROR); /* failed handshakes are the daily bread here */
    signal(SIGPIPE, SIG_IGN);
    char dir[] = "/tmp/tg-fuzz-quic-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char crt[64], key[64];
    make_cert(dir, crt, key);
    int ports[2] = {backend_listen(0), backend_listen(1)};
    int n = snprintf(big_answer, sizeof big_answer, "HTTP/1.1 200 OK\r\nContent-Length: %u\r\n\r\n",
                     BIG_BODY);
    memset(big_answer + n, 'b', BIG_BODY);

    /* The same listeners twice (a reload), then a generation that has none of them. A
     * 3 ms header timeout lets WAIT reach the 408 of a head that never ends. */
    static const char *const listeners[2] = {
        "  q: {protocol: quic, listen: \"127.0.0.1:1\", backend: fixed, retry: never, "
        "certificates: {default: c}}\n"
        "  qr: {protocol: quic, listen: \"127.0.0.1:2\", backend: fixed, retry: always, "
        "certificates: {default: c}}\n"
        "  qp: {protocol: quic, listen: \"127.0.0.1:3\", backend: pool, retry: never, "
        "certificates: {default: c}}\n"
        "  qs: {protocol: quic, listen: \"127.0.0.1:4\", backend: slow, retry: never, "
        "certificates: {default: c}}\n",
        "  gone: {protocol: quic, listen: \"127.0.0.1:9\", backend: fixed, "
        "certificates: {default: c}}\n",
    };
    char paths[NGENS][96];
    char *pathv[NGENS];
    for (int g = 0; g < NGENS; g++) {
        char yaml[2048];
        snprintf(yaml, sizeof(yaml),
                 "version: 1\n"
                 "global: {limits: {header_timeout: 3ms}}\n"
                 "certificates:\n  c: {type: server, cert: %s, key: %s}\n"
                 "backends:\n"
                 "  fixed: {fixed_response: {status: 200, content_type: text/plain, "
                 "body: \"fixed\\n\"}}\n"
                 "  pool: {servers: [\"127.0.0.1:%d\"], response_timeout: 1s, max_fails: 0}\n"
                 "  slow: {servers: [\"127.0.0.1:%d\"], response_timeout: 1s, max_fails: 0}\n"
                 "listeners:\n%s",
                 crt, key, ports[0], ports[1], listeners[g == NGENS - 1]);
        snprintf(paths[g], sizeof paths[g], "%s/t%d.yaml", dir, g);
        write_file(paths[g], yaml, 0600);
        pathv[g] = paths[g];
    }
    server_setup(pathv);
    for (int g = 0; g < NGENS; g++)
        unlink(paths[g]);
    unlink(crt);
    unlink(key);
    rmdir(dir);
    tg_accesslog_open(NULL);
    for (int i = 0; i < 2; i++) {
        F.backend_ev[i] = event_new(F.base, F.backend_fd[i], EV_READ | EV_PERSIST, on_backend,
                                    i == 1 ? &F.backend_fd[i] : NULL);
        event_add(F.backend_ev[i], NULL);
    }

    for (int i = 0; i < NLISTENERS; i++)
        F.lis[i].fd = udp_socket(&F.lis[i].addr, true);
    F.w1fd = udp_socket(&F.w1addr, true);
    for (int i = 0; i < 2; i++)
        F.cfd[i] = udp_socket(&F.caddr[i], false);

    CHECK(gnutls_certificate_allocate_credentials(&F.ccred) == 0);
    /* Client TLS offers: the usual one, then others that take the server's other branches
     * (each suite's name, other groups, a group the server lacks first: a HelloRetryRequest). */
    static const char *const prios[4] = {
        "NORMAL:-VERS-ALL:+VERS-TLS1.3:%DISABLE_TLS13_COMPAT_MODE",
        ("NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:-GROUP-ALL:+GROUP-SECP384R1:"
         "%DISABLE_TLS13_COMPAT_MODE"),
        "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+CHACHA20-POLY1305:%DISABLE_TLS13_COMPAT_MODE",
        ("NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-CCM:-GROUP-ALL:+GROUP-X448:"
         "+GROUP-SECP256R1:%DISABLE_TLS13_COMPAT_MODE"),
    };
    for (int i = 0; i < 4; i++)
        CHECK(gnutls_priority_init(&F.prio[i], prios[i], NULL) == 0);
    return 0;
}

/* ---- the server side of a round ------------------------------------------------------------- */

static void pump(void)
{
    for (int i = 0; i < PUMP_ROUNDS; i++)
        event_base_loop(F.base, EVLOOP_NONBLOCK | EVLOOP_ONCE);
}

static bool readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* The listener li in the current generation, or NULL once a reload removed it. */
static const tg_listener_rt_t *listener_rt(int li)
{
    static const char *const ids[NLISTENERS] = {"q", "qr", "qp", "qs"};
    for (size_t k = 0; k < F.gen->nlisteners; k++)
        if (strcmp(F.gen->listeners[k].conf->id, ids[li]) == 0)
            return &F.gen->listeners[k];
    return NULL;
}

/* Both workers read everything on their socket of listener li (as their read events
 * would have them), then the loop runs handoffs, flushes, exchanges and the backend. */
static void serve(int li)
{
    const tg_listener_rt_t *l = listener_rt(li);
    for (int i = 0; i < 8 && (readable(F.lis[li].fd) || readable(F.w1fd)); i++) {
        tg_quic_on_readable(F.srv[0], F.lis[li].fd, (const struct sockaddr *)&F.lis[li].addr,
                            sizeof F.lis[li].addr, l);
        tg_quic_on_readable(F.srv[1], F.w1fd, (const struct sockaddr *)&F.w1addr, sizeof F.w1addr,
                            l);
    }
    pump();
}

static void drain(int fd)
{
    uint8_t buf[2048];
    while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) >= 0) {
    }
}

/* ---- the input ------------------------------------------------------------------------------ */

typedef struct {
    const uint8_t *p, *end;
} in_t;

static uint8_t u8(in_t *in)
{
    return in->p < in->end ? *in->p++ : 0;
}

static const uint8_t *take(in_t *in, size_t *n)
{
    size_t left = (size_t)(in->end - in->p);
    if (*n > left)
        *n = left;
    const uint8_t *r = in->p;
    in->p += *n;
    return r;
}

/* ---- the client ------------------------------------------------------------------------------ */

/* Stream bytes the client queued. ngtcp2 keeps pointers into them to resend lost data, so
 * a segment never moves and lives until the input ends. */
typedef struct seg_s {
    struct seg_s *next; /* of its stream */
    struct seg_s *all;  /* of the input: what gets freed */
    size_t len;
    uint8_t data[];
} seg_t;

typedef struct {
    int64_t id; /* -1 until ngtcp2 lets the stream open (after the handshake) */
    bool uni;
    seg_t *last;
    seg_t *cur; /* the first byte not written yet: cur->data[off]; NULL when all are */
    size_t off;
    bool fin; /* end the stream after its bytes */
    bool fin_sent;
    bool blocked; /* by flow control, until the next round */
    bool gone;    /* reset, or refused by ngtcp2: nothing more is written */
} cstream_t;

typedef struct {
    uint8_t data[DGRAM_MAX];
    size_t len;
    int sock;
    bool w1; /* to worker 1's socket: the connection's owner gets it by handoff */
} cdgram_t;

static struct {
    ngtcp2_conn *qc;
    gnutls_session_t tls;
    ngtcp2_crypto_conn_ref ref;
    int lis;        /* the listener it talks to */
    int sock;       /* the client socket of its current path */
    uint64_t skew;  /* the client's clock runs ahead of the real one by this (TIMER) */
    bool dead;      /* closed, drained or failed: writes nothing more */
    bool confirmed; /* HANDSHAKE_DONE came: key updates are allowed */
    bool waited;    /* WAIT happened: once an input, it sleeps */
    /* options of the input */
    uint32_t version;
    size_t dcidlen;
    int alpn, sni, prio;
    bool small_windows, stingy;
    bool sloppy; /* takes every datagram as come on its current path: answers a PATH_CHALLENGE
                  * on another path than the one it came on, as a hostile client may */
    cstream_t st[MAX_STREAMS];
    size_t nst;
    size_t rr; /* the stream written first next time: streams interleave */
    seg_t *segs;
    size_t queued; /* stream bytes queued by this input */
    uint8_t token[256];
    size_t tokenlen;
    gnutls_datum_t ticket; /* session data for a resumption after RESTART */
    cdgram_t q[MAX_DGRAMS];
    size_t nq;
    struct {
        uint8_t kind, target, val;
        uint16_t off;
    } muts[MAX_MUTS];
    size_t nmuts;
} C;

static uint64_t real_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static ngtcp2_tstamp cnow(void)
{
    return real_now() + C.skew;
}

/* The client connection is open and neither closing nor draining. */
static bool client_up(void)
{
    return C.qc != NULL && !C.dead && !ngtcp2_conn_is_in_closing_period(C.qc) &&
           !ngtcp2_conn_is_in_draining_period(C.qc);
}

static ngtcp2_conn *client_get_conn(ngtcp2_crypto_conn_ref *ref)
{
    return C.qc;
}

static void c_rand(uint8_t *dest, size_t len, const ngtcp2_rand_ctx *ctx)
{
    (void)gnutls_rnd(GNUTLS_RND_NONCE, dest, len);
}

static int c_get_new_cid(ngtcp2_conn *qc, ngtcp2_cid *cid, uint8_t *token, size_t cidlen,
                         void *user_data)
{
    if (gnutls_rnd(GNUTLS_RND_NONCE, cid->data, cidlen) != 0 ||
        gnutls_rnd(GNUTLS_RND_NONCE, token, NGTCP2_STATELESS_RESET_TOKENLEN) != 0)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    cid->datalen = cidlen;
    return 0;
}

static int c_recv_stream_data(ngtcp2_conn *qc, uint32_t flags, int64_t stream_id, uint64_t offset,
                              const uint8_t *data, size_t datalen, void *user_data,
                              void *stream_user_data)
{
    /* A stingy client never gives credit back: the server's responses stall on flow
     * control. Otherwise every byte is taken at once. */
    if (!C.stingy) {
        ngtcp2_conn_extend_max_stream_offset(qc, stream_id, datalen);
        ngtcp2_conn_extend_max_offset(qc, datalen);
    }
    return 0;
}

static int c_recv_new_token(ngtcp2_conn *qc, const ngtcp2_vec *token, void *user_data)
{
    if (token->len <= sizeof C.token) {
        memcpy(C.token, token->base, token->len);
        C.tokenlen = token->len;
    }
    return 0;
}

static int c_handshake_confirmed(ngtcp2_conn *qc, void *user_data)
{
    C.confirmed = true;
    return 0;
}

static const ngtcp2_callbacks client_callbacks = {
    .client_initial = ngtcp2_crypto_client_initial_cb,
    .recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb,
    .encrypt = ngtcp2_crypto_encrypt_cb,
    .decrypt = ngtcp2_crypto_decrypt_cb,
    .hp_mask = ngtcp2_crypto_hp_mask_cb,
    .recv_stream_data = c_recv_stream_data,
    .recv_retry = ngtcp2_crypto_recv_retry_cb,
    .rand = c_rand,
    .get_new_connection_id = c_get_new_cid,
    .update_key = ngtcp2_crypto_update_key_cb,
    .handshake_confirmed = c_handshake_confirmed,
    .recv_new_token = c_recv_new_token,
    .delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb,
    .delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb,
    .get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb,
    .version_negotiation = ngtcp2_crypto_version_negotiation_cb,
};

static ngtcp2_path client_path(int sock)
{
    ngtcp2_path path = {
        .local = {.addr = (ngtcp2_sockaddr *)&F.caddr[sock], .addrlen = sizeof F.caddr[sock]},
        .remote = {.addr = (ngtcp2_sockaddr *)&F.lis[C.lis].addr,
                   .addrlen = sizeof F.lis[C.lis].addr},
    };
    return path;
}

static void client_stop(void)
{
    if (C.qc != NULL)
        ngtcp2_conn_del(C.qc);
    if (C.tls != NULL)
        gnutls_deinit(C.tls);
    C.qc = NULL;
    C.tls = NULL;
    C.nst = 0;
    C.rr = 0;
    C.nq = 0;
    C.dead = true;
}

/* A new client connection on socket sock; with the last NEW_TOKEN and session when asked. */
static void client_start(int sock, bool use_token, bool resume)
{
    static const gnutls_datum_t alpns[] = {{(unsigned char *)"h3", 2},
                                           {(unsigned char *)"h3", 2},
                                           {(unsigned char *)"hq-interop", 10}};
    ngtcp2_cid dcid = {.datalen = C.dcidlen}, scid = {.datalen = 8};
    (void)gnutls_rnd(GNUTLS_RND_NONCE, dcid.data, dcid.datalen);
    (void)gnutls_rnd(GNUTLS_RND_NONCE, scid.data, scid.datalen);
    C.sock = sock;
    C.dead = false;
    C.confirmed = false;
    ngtcp2_path path = client_path(sock);

    ngtcp2_settings settings;
    ngtcp2_settings_default(&settings);
    settings.initial_ts = cnow();
    if (use_token && C.tokenlen > 0) {
        settings.token.base = C.token;
        settings.token.len = C.tokenlen;
    }
    ngtcp2_transport_params params;
    ngtcp2_transport_params_default(&params);
    /* Small windows make the server's writes block on flow control and its streams wait
     * for credit; the usual ones let responses through at once. */
    uint64_t window = C.small_windows ? 8 : 256 * 1024;
    params.initial_max_stream_data_bidi_local = window;
    params.initial_max_stream_data_bidi_remote = window;
    params.initial_max_stream_data_uni = C.small_windows ? 16 : window;
    params.initial_max_data = C.small_windows ? 48 : 1024 * 1024;
    params.initial_max_streams_uni = 3;
    params.max_idle_timeout = 30 * NGTCP2_SECONDS;
    params.active_connection_id_limit = 8; /* spare server ids: migration needs one */
    if (ngtcp2_conn_client_new(&C.qc, &dcid, &scid, &path, C.version, &client_callbacks, &settings,
                               &params, NULL, NULL) != 0) {
        C.qc = NULL;
        C.dead = true;
        return;
    }
    CHECK(gnutls_init(&C.tls, GNUTLS_CLIENT) == 0);
    CHECK(gnutls_priority_set(C.tls, F.prio[C.prio]) == 0);
    CHECK(ngtcp2_crypto_gnutls_configure_client_session(C.tls) == 0);
    CHECK(gnutls_credentials_set(C.tls, GNUTLS_CRD_CERTIFICATE, F.ccred) == 0);
    if (C.alpn < 3)
        gnutls_alpn_set_protocols(C.tls, &alpns[C.alpn], 1, 0);
    if (C.sni == 0)
        gnutls_server_name_set(C.tls, GNUTLS_NAME_DNS, "localhost", 9);
    else if (C.sni == 1)
        gnutls_server_name_set(C.tls, GNUTLS_NAME_DNS, "other.example", 13);
    if (resume && C.ticket.size > 0)
        gnutls_session_set_data(C.tls, C.ticket.data, C.ticket.size);
    C.ref.get_conn = client_get_conn;
    C.ref.user_data = NULL;
    gnutls_session_set_ptr(C.tls, &C.ref);
    ngtcp2_conn_set_tls_native_handle(C.qc, C.tls);
}

static void queue_dgram(const uint8_t *data, size_t len, int sock)
{
    if (C.nq == MAX_DGRAMS || len > DGRAM_MAX)
        return; /* lost: QUIC resends what mattered */
    memcpy(C.q[C.nq].data, data, len);
    C.q[C.nq].len = len;
    C.q[C.nq].sock = sock;
    C.q[C.nq].w1 = false;
    C.nq++;
}

static int sock_of(const ngtcp2_path *path)
{
    const struct sockaddr_in *sin = (const struct sockaddr_in *)path->local.addr;
    return path->local.addrlen == sizeof *sin && sin->sin_port == F.caddr[1].sin_port;
}

/* The client failed on what the server sent: it says so with a CONNECTION_CLOSE, as a real
 * one would, unless the connection is already closing or draining. */
static void client_fail(int rv)
{
    if (C.dead)
        return;
    C.dead = true;
    if (rv == NGTCP2_ERR_DRAINING || rv == NGTCP2_ERR_CLOSING || rv == NGTCP2_ERR_DROP_CONN ||
        rv == NGTCP2_ERR_RECV_VERSION_NEGOTIATION || rv == NGTCP2_ERR_IDLE_CLOSE)
        return;
    ngtcp2_connection_close_error ccerr;
    if (rv == NGTCP2_ERR_CRYPTO)
        ngtcp2_connection_close_error_set_transport_error_tls_alert(
            &ccerr, ngtcp2_conn_get_tls_alert(C.qc), NULL, 0);
    else
        ngtcp2_connection_close_error_set_transport_error_liberr(&ccerr, rv, NULL, 0);
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_pkt_info pi;
    uint8_t buf[DGRAM_MAX];
    ngtcp2_ssize n =
        ngtcp2_conn_write_connection_close(C.qc, &ps.path, &pi, buf, sizeof buf, &ccerr, cnow());
    if (n > 0)
        queue_dgram(buf, (size_t)n, sock_of(&ps.path));
}

/* ---- client streams ----------------------------------------------------------------------------
 */

static cstream_t *stream_new(bool uni)
{
    if (C.nst == MAX_STREAMS)
        return NULL;
    cstream_t *st = &C.st[C.nst++];
    memset(st, 0, sizeof *st);
    st->id = -1;
    st->uni = uni;
    return st;
}

/* The stream an op names by index, or the newest bidirectional one (a new one if none). */
static cstream_t *stream_pick(unsigned idx, bool by_index)
{
    if (by_index && C.nst > 0)
        return &C.st[idx % C.nst];
    for (size_t i = C.nst; i-- > 0;)
        if (!C.st[i].uni)
            return &C.st[i];
    return stream_new(false);
}

static void stream_append(cstream_t *st, const uint8_t *data, size_t len)
{
    if (st == NULL || len == 0 || C.queued + len > MAX_QUEUED)
        return;
    seg_t *s = malloc(sizeof(*s) + len);
    CHECK(s != NULL);
    s->next = NULL;
    s->len = len;
    memcpy(s->data, data, len);
    s->all = C.segs;
    C.segs = s;
    C.queued += len;
    if (st->last != NULL)
        st->last->next = s;
    st->last = s;
    if (st->cur == NULL) {
        st->cur = s;
        st->off = 0;
    }
}

static void stream_advance(cstream_t *st, size_t n)
{
    while (st->cur != NULL) {
        size_t left = st->cur->len - st->off;
        if (n < left) {
            st->off += n;
            return;
        }
        n -= left;
        st->cur = st->cur->next;
        st->off = 0;
    }
}

static bool stream_pending(const cstream_t *st)
{
    return st->id >= 0 && !st->gone && !st->blocked &&
           (st->cur != NULL || (st->fin && !st->fin_sent));
}

/* Up to max vectors of st's unwritten bytes; *all when they are every one of them. */
static size_t stream_vec(const cstream_t *st, ngtcp2_vec *v, size_t max, size_t *total, bool *all)
{
    size_t n = 0;
    *total = 0;
    const seg_t *s = st->cur;
    size_t off = st->off;
    for (; s != NULL && n < max; s = s->next, off = 0) {
        v[n].base = (uint8_t *)s->data + off;
        v[n].len = s->len - off;
        *total += v[n].len;
        n++;
    }
    *all = s == NULL;
    return n;
}

/* ---- HTTP/3 encoding: what the harness knows so the fuzzer need not ---------------------------
 */

/* A QPACK/HPACK prefix integer (RFC 9204 §4.1.1) after the pattern bits in first. */
static size_t put_int(uint8_t *p, uint8_t first, int prefix_bits, uint64_t v)
{
    uint8_t max = (uint8_t)((1u << prefix_bits) - 1);
    size_t n = 0;
    if (v < max) {
        p[n++] = (uint8_t)(first | v);
        return n;
    }
    p[n++] = (uint8_t)(first | max);
    v -= max;
    while (v >= 128) {
        p[n++] = (uint8_t)(0x80 | (v & 0x7f));
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static size_t put_varint(uint8_t *p, uint64_t v)
{
    if (v < 64) {
        p[0] = (uint8_t)v;
        return 1;
    }
    if (v < 16384) {
        p[0] = (uint8_t)(0x40 | (v >> 8));
        p[1] = (uint8_t)v;
        return 2;
    }
    p[0] = (uint8_t)(0x80 | (v >> 24));
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return 4;
}

/* A field line of the static table, whole (RFC 9204 §4.5.2). */
static size_t put_indexed(uint8_t *p, unsigned idx)
{
    return put_int(p, 0xc0, 6, idx);
}

/* A static-table name with our value (§4.5.4), no Huffman. */
static size_t put_name_ref(uint8_t *p, unsigned idx, const uint8_t *v, size_t vl)
{
    size_t n = put_int(p, 0x50, 4, idx);
    n += put_int(p + n, 0x00, 7, vl);
    memcpy(p + n, v, vl);
    return n + vl;
}

/* Name and value both literal (§4.5.6). */
static size_t put_literal(uint8_t *p, const uint8_t *name, size_t nl, const uint8_t *v, size_t vl)
{
    size_t n = put_int(p, 0x20, 3, nl);
    memcpy(p + n, name, nl);
    n += nl;
    n += put_int(p + n, 0x00, 7, vl);
    memcpy(p + n, v, vl);
    return n + vl;
}

/* A frame of type t around payload, onto st. */
static void put_frame(cstream_t *st, uint64_t t, const uint8_t *payload, size_t len)
{
    uint8_t hd[16];
    size_t n = put_varint(hd, t);
    n += put_varint(hd + n, len);
    stream_append(st, hd, n);
    stream_append(st, payload, len);
}

/* REQUEST: a HEADERS frame on a new stream. f picks method, scheme, authority and path;
 * g the content-length, extra fields, and the shapes RFC 9114 §4.3 refuses (a regular field
 * before the pseudo ones, an uppercase name, a duplicated :path). */
static void op_request(in_t *in, unsigned arg)
{
    static const uint8_t methods[] = {17, 20, 18, 21, 19, 15, 16}; /* GET POST HEAD PUT ... */
    cstream_t *st = stream_new(false);
    if (st == NULL)
        return;
    uint8_t f = u8(in), g = u8(in);
    uint8_t block[1024];
    size_t n = 0;
    block[n++] = 0; /* Required Insert Count: no dynamic table */
    block[n++] = 0; /* Delta Base */
    if (g & 0x08)
        n += put_literal(block + n, (const uint8_t *)"x-early", 7, (const uint8_t *)"1", 1);
    size_t len = u8(in) & 15;
    const uint8_t *v = take(in, &len);
    if ((f & 7) < 7)
        n += put_indexed(block + n, methods[f & 7]);
    else
        n += put_name_ref(block + n, 15, v, len);
    switch ((f >> 3) & 3) {
    case 0:
        n += put_indexed(block + n, 23); /* https */
        break;
    case 1:
        n += put_indexed(block + n, 22); /* http */
        break;
    case 2:
        break;
    default:
        n += put_name_ref(block + n, 22, v, len);
        break;
    }
    if (!(f & 0x20))
        n += put_name_ref(block + n, 0, (const uint8_t *)"localhost", 9);
    switch (f >> 6) {
    case 0:
        n += put_indexed(block + n, 1); /* / */
        break;
    case 1:
        n += put_name_ref(block + n, 1, v, len);
        break;
    case 2:
        break;
    default:
        n += put_name_ref(block + n, 1, (const uint8_t *)"*", 1);
        break;
    }
    if (g & 0x01) {
        char cl[8];
        int m = snprintf(cl, sizeof cl, "%u", u8(in));
        n += put_name_ref(block + n, 4, (const uint8_t *)cl, (size_t)m);
    }
    for (unsigned i = 0; i < ((g >> 1) & 3u); i++) {
        size_t nl = u8(in) & 31, vl;
        const uint8_t *name = take(in, &nl);
        vl = u8(in) & 63;
        const uint8_t *val = take(in, &vl);
        n += put_literal(block + n, name, nl, val, vl);
    }
    if (g & 0x10)
        n += put_literal(block + n, (const uint8_t *)"X-Upper", 7, (const uint8_t *)"1", 1);
    if (g & 0x20)
        n += put_name_ref(block + n, 1, (const uint8_t *)"/again", 6);
    if (g & 0x40) /* a second HEADERS frame: trailers, or garbage after the head */
        put_frame(st, 0x01, block, n);
    put_frame(st, 0x01, block, n);
    st->fin = arg & 1;
}

/* DATA: a DATA frame of input bytes on a stream. */
static void op_data(in_t *in, unsigned arg)
{
    cstream_t *st = stream_pick(u8(in), arg & 2);
    size_t len = u8(in);
    const uint8_t *v = take(in, &len);
    if (st == NULL)
        return;
    put_frame(st, 0x00, v, len);
    if (arg & 1)
        st->fin = true;
}

/* BULK: a large DATA frame, over many packets and the stream's flow-control window. */
static void op_bulk(in_t *in, unsigned arg)
{
    static const uint8_t zeros[8192];
    cstream_t *st = stream_pick(u8(in), false);
    if (st == NULL)
        return;
    size_t chunks = 1 + ((arg >> 1) & 7u);
    uint8_t hd[16];
    size_t n = put_varint(hd, 0x00);
    n += put_varint(hd + n, chunks * sizeof zeros);
    stream_append(st, hd, n);
    for (size_t i = 0; i < chunks; i++)
        stream_append(st, zeros, sizeof zeros);
    if (arg & 1)
        st->fin = true;
}

/* RAW: input bytes as they are on the newest, a new bidirectional or uni, or a named stream. */
static void op_raw(in_t *in, unsigned arg)
{
    cstream_t *st;
    uint8_t which = u8(in);
    switch (arg & 3) {
    case 0:
        st = stream_pick(0, false);
        break;
    case 1:
        st = stream_new(false);
        break;
    case 2:
        st = stream_new(true);
        break;
    default:
        st = stream_pick(which, true);
        break;
    }
    size_t len = u8(in);
    const uint8_t *v = take(in, &len);
    if (st == NULL)
        return;
    stream_append(st, v, len);
    if (arg & 4)
        st->fin = true;
}

/* CONTROL: a unidirectional stream of a type (control with a SETTINGS frame, the QPACK
 * encoder or decoder, a reserved one) followed by input bytes. */
static void op_control(in_t *in, unsigned arg)
{
    static const uint8_t types[] = {0x00, 0x02, 0x03, 0x21};
    static const uint8_t ids[] = {0x01, 0x06, 0x07, 0x08, 0x33, 0x02, 0x21, 0x04};
    cstream_t *st = stream_new(true);
    uint8_t t = types[arg & 3];
    uint8_t settings[64];
    size_t n = 0;
    unsigned npairs = u8(in) & 7;
    for (unsigned i = 0; i < npairs; i++) {
        uint8_t which = u8(in);
        n += put_varint(settings + n, ids[which & 7]);
        n += put_varint(settings + n, (uint64_t)u8(in) << ((which >> 3) & 7));
    }
    size_t len = u8(in) & 63;
    const uint8_t *v = take(in, &len);
    if (st == NULL)
        return;
    stream_append(st, &t, 1);
    if (t == 0x00)
        put_frame(st, 0x04, settings, n);
    stream_append(st, v, len);
    if (arg & 4)
        st->fin = true; /* a critical stream closed: the connection fails */
}

/* SHUTDOWN: reset a stream, ask the server to stop sending, both, or end it now. */
static void op_shutdown(in_t *in, unsigned arg)
{
    uint8_t idx = u8(in), code = u8(in);
    if (C.nst == 0 || !client_up())
        return;
    cstream_t *st = &C.st[idx % C.nst];
    uint64_t app = 0x100 + (code & 0x1f); /* the H3 error codes, and a few unknown */
    if ((arg & 3) == 3) {
        st->fin = true;
        return;
    }
    if (st->id < 0)
        return;
    if ((arg & 3) == 0)
        ngtcp2_conn_shutdown_stream_write(C.qc, st->id, app);
    else if ((arg & 3) == 1)
        ngtcp2_conn_shutdown_stream_read(C.qc, st->id, app);
    else
        ngtcp2_conn_shutdown_stream(C.qc, st->id, app);
    if ((arg & 3) != 1)
        st->gone = true;
}

/* INJECT: a datagram of input bytes, with the server's connection id in a short header
 * when asked: it reaches the connection and fails there instead of at the first lookup. */
static void op_inject(in_t *in, unsigned arg)
{
    uint8_t buf[DGRAM_MAX];
    size_t n = 0;
    size_t len = u8(in);
    if (arg & 2)
        len *= 4;
    const uint8_t *v = take(in, &len);
    if ((arg & 1) && C.qc != NULL) {
        const ngtcp2_cid *dcid = ngtcp2_conn_get_dcid(C.qc);
        buf[n++] = (uint8_t)(0x40 | (len > 0 ? v[0] & 0x3f : 0));
        memcpy(buf + n, dcid->data, dcid->datalen);
        n += dcid->datalen;
    }
    if (len > sizeof buf - n)
        len = sizeof buf - n;
    memcpy(buf + n, v, len);
    queue_dgram(buf, n + len, (arg >> 2) & 1);
}

/* ---- rounds ------------------------------------------------------------------------------------
 */

static void client_open_streams(void)
{
    for (size_t i = 0; i < C.nst; i++) {
        cstream_t *st = &C.st[i];
        if (st->id >= 0 || st->gone)
            continue;
        int64_t id;
        int rv = st->uni ? ngtcp2_conn_open_uni_stream(C.qc, &id, NULL)
                         : ngtcp2_conn_open_bidi_stream(C.qc, &id, NULL);
        if (rv == 0)
            st->id = id;
    }
}

/* Everything the client has to send now, into the round's queue. */
static void client_write(void)
{
    if (!client_up())
        return;
    client_open_streams();
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_pkt_info pi;
    uint8_t buf[DGRAM_MAX];
    /* After NGTCP2_ERR_WRITE_MORE the packet must be finished before anything else is
     * asked of ngtcp2 (it asserts so): the bounds count finished packets only. */
    bool more = false;
    for (int i = 0; more || (i < 2 * MAX_DGRAMS && C.nq < MAX_DGRAMS); i++) {
        more = false;
        cstream_t *st = NULL;
        for (size_t k = 0; k < C.nst && st == NULL; k++) {
            cstream_t *c = &C.st[(C.rr + k) % C.nst];
            if (stream_pending(c))
                st = c;
        }
        C.rr++;
        ngtcp2_vec vec[16];
        size_t nvec = 0, total = 0;
        bool all = false;
        uint32_t flags = 0;
        if (st != NULL) {
            nvec = stream_vec(st, vec, 16, &total, &all);
            flags = NGTCP2_WRITE_STREAM_FLAG_MORE;
            if (st->fin && all)
                flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
        }
        ngtcp2_ssize ndata = -1;
        ngtcp2_ssize n =
            ngtcp2_conn_writev_stream(C.qc, &ps.path, &pi, buf, sizeof buf, &ndata, flags,
                                      st != NULL ? st->id : -1, vec, nvec, cnow());
        if (st != NULL && ndata >= 0) {
            stream_advance(st, (size_t)ndata);
            if ((flags & NGTCP2_WRITE_STREAM_FLAG_FIN) && (size_t)ndata == total)
                st->fin_sent = true;
        }
        if (n == NGTCP2_ERR_WRITE_MORE) {
            more = true;
            continue;
        }
        if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED) {
            st->blocked = true;
            continue;
        }
        if (n == NGTCP2_ERR_STREAM_SHUT_WR || n == NGTCP2_ERR_STREAM_NOT_FOUND) {
            st->gone = true;
            continue;
        }
        if (n < 0) {
            client_fail((int)n);
            break;
        }
        if (n == 0)
            break;
        queue_dgram(buf, (size_t)n, sock_of(&ps.path));
    }
    for (size_t k = 0; k < C.nst; k++)
        C.st[k].blocked = false;
}

static void apply_mutation(uint8_t kind, uint8_t target, uint16_t off, uint8_t val)
{
    if (C.nq == 0)
        return;
    cdgram_t *d = &C.q[target % C.nq];
    if (kind >= 8 && kind < 12) {
        /* To the other worker's socket (SO_REUSEPORT picked another worker for the new
         * path): it must hand the datagram to the worker its connection id names. */
        d->w1 = true;
        return;
    }
    switch (kind & 7) {
    case 0: /* a flipped bit or byte: header fields, token, protected payload */
        if (d->len > 0)
            d->data[off % d->len] ^= val != 0 ? val : 1;
        break;
    case 1:
        if (d->len > 0)
            d->data[off % d->len] = val;
        break;
    case 2: /* cut short, down to nothing */
        d->len = off % (d->len + 1);
        break;
    case 3:
        if (C.nq < MAX_DGRAMS)
            C.q[C.nq++] = *d;
        break;
    case 4:
        memmove(d, d + 1, (size_t)(C.q + C.nq - (d + 1)) * sizeof *d);
        C.nq--;
        break;
    case 5: { /* reordered: this one last */
        cdgram_t tmp = *d;
        memmove(d, d + 1, (size_t)(C.q + C.nq - (d + 1)) * sizeof *d);
        C.q[C.nq - 1] = tmp;
        break;
    }
    case 6: /* from the other address: a NAT rebinding the client does not know about */
        d->sock ^= 1;
        break;
    default: { /* bytes after the packets: a coalesced packet that is garbage */
        size_t add = off % 256;
        if (add > DGRAM_MAX - d->len)
            add = DGRAM_MAX - d->len;
        memset(d->data + d->len, val, add);
        d->len += add;
        break;
    }
    }
}

/* The round's datagrams to the server, mutated as the input asked, and served. */
static void deliver(void)
{
    for (size_t i = 0; i < C.nmuts; i++)
        apply_mutation(C.muts[i].kind, C.muts[i].target, C.muts[i].off, C.muts[i].val);
    C.nmuts = 0;
    for (size_t i = 0; i < C.nq; i++) {
        const struct sockaddr_in *to = C.q[i].w1 ? &F.w1addr : &F.lis[C.lis].addr;
        sendto(F.cfd[C.q[i].sock], C.q[i].data, C.q[i].len, 0, (const struct sockaddr *)to,
               sizeof *to);
    }
    C.nq = 0;
    serve(C.lis);
}

/* The server's answers to the client, on the path each came in on (a sloppy client: on
 * its current path, wherever they came from). */
static bool client_read(void)
{
    static uint8_t buf[65536];
    bool got = false;
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < 256; i++) {
            struct sockaddr_in from;
            socklen_t fromlen = sizeof from;
            ssize_t n = recvfrom(F.cfd[s], buf, sizeof buf, MSG_DONTWAIT, (struct sockaddr *)&from,
                                 &fromlen);
            if (n < 0)
                break;
            got = true;
            if (C.qc == NULL || C.dead)
                continue;
            ngtcp2_path path = client_path(C.sloppy ? C.sock : s);
            if (!C.sloppy) {
                path.remote.addr = (ngtcp2_sockaddr *)&from;
                path.remote.addrlen = fromlen;
            }
            int rv = ngtcp2_conn_read_pkt(C.qc, &path, NULL, buf, (size_t)n, cnow());
            if (rv != 0)
                client_fail(rv);
        }
    }
    return got;
}

/* One flight each way; false when neither side had anything to say. */
static bool round_trip(void)
{
    client_write();
    bool sent = C.nq > 0;
    deliver();
    bool got = client_read();
    return sent || got;
}

/* ---- the two modes --------------------------------------------------------------------------- */

/* Raw: [sock:1 len:15] bytes, repeated; every datagram to the listener (on worker 0, or
 * on worker 1 when w1) at once. */
static void run_raw(in_t *in, int li, bool w1)
{
    const struct sockaddr_in *to = w1 ? &F.w1addr : &F.lis[li].addr;
    for (int i = 0; i < MAX_DGRAMS && in->p < in->end; i++) {
        uint8_t hi = u8(in), lo = u8(in);
        size_t len = (size_t)(hi << 8 | lo) & RAW_MAX;
        const uint8_t *v = take(in, &len);
        sendto(F.cfd[hi >> 7], v, len, 0, (const struct sockaddr *)to, sizeof *to);
    }
    serve(li);
}

/* A new client connection, the old one abandoned without a word: with the old one's
 * NEW_TOKEN (intact, or with a byte changed: another server's, or a forged one) and its
 * session (a resumption). */
static void op_restart(in_t *in, unsigned arg)
{
    uint8_t at = u8(in), x = u8(in);
    if (C.tls != NULL && C.ticket.data == NULL && gnutls_session_get_data2(C.tls, &C.ticket) != 0)
        C.ticket.data = NULL;
    client_stop();
    if ((arg & 8) && C.tokenlen > 0)
        C.token[at % C.tokenlen] ^= x != 0 ? x : 1;
    client_start((arg >> 2) & 1, arg & 1, arg & 2);
}

/* MISC: WAIT (once an input: a head left unfinished meets its timeout), RELOAD (the
 * workers take another generation: requests route by it, new connections see its
 * listeners or none), RETIRE (connections whose listener is gone wind down with GOAWAY,
 * or are closed at their deadline at once), DRAIN (the slow backend reads again: the
 * request bodies held back flow). */
static void op_misc(in_t *in, unsigned arg)
{
    switch (arg & 3) {
    case 0:
        if (!C.waited) {
            C.waited = true;
            usleep(4000);
            serve(C.lis);
        }
        break;
    case 1:
        F.gen = F.gens[(arg >> 2) % NGENS];
        break;
    case 2:
        for (int w = 0; w < NWORKERS; w++) {
            tg_proxy_conns_retire(&F.conns[w], F.gens[NGENS - 1], tg_now_ms() + 60000);
            if (arg & 4)
                tg_proxy_conns_reap(&F.conns[w], UINT64_MAX);
        }
        break;
    default:
        F.drain = true;
        for (size_t i = 0; i < F.nbpeers; i++) {
            if (F.bpeers[i].paused) {
                F.bpeers[i].paused = false;
                event_add(F.bpeers[i].rd, NULL);
            }
        }
        break;
    }
}

static void run_client(in_t *in, int li)
{
    static const uint32_t versions[8] = {
        NGTCP2_PROTO_VER_V1,       NGTCP2_PROTO_VER_V1, NGTCP2_PROTO_VER_V1,
        NGTCP2_PROTO_VER_V1,       NGTCP2_PROTO_VER_V1, NGTCP2_PROTO_VER_DRAFT_MIN,
        NGTCP2_PROTO_VER_V2_DRAFT, 0x1a2a3a4au, /* reserved: Version Negotiation */
    };
    uint8_t o1 = u8(in), o2 = u8(in);
    C.lis = li;
    C.version = versions[o1 & 7];
    C.alpn = (o1 >> 3) & 3;
    C.sni = (o1 >> 5) & 3; /* 0 localhost, 1 another name, 2 and 3 none */
    C.sloppy = o1 & 0x80;
    C.small_windows = o2 & 0x40;
    C.stingy = o2 & 0x80;
    C.dcidlen = 8 + (o2 & 15) % 13;
    C.prio = (o2 >> 4) & 3;
    client_start(0, false, false);

    for (int i = 0; i < MAX_OPS && in->p < in->end; i++) {
        uint8_t op = u8(in);
        unsigned arg = op >> 4;
        switch (op & 15) {
        case 0:
        case 1:
            round_trip();
            break;
        case 2:
            if (C.nmuts < MAX_MUTS) {
                C.muts[C.nmuts].kind = (uint8_t)(arg < 12 ? arg : 0);
                C.muts[C.nmuts].target = u8(in);
                C.muts[C.nmuts].off = (uint16_t)(u8(in) << 8 | u8(in));
                C.muts[C.nmuts].val = u8(in);
                C.nmuts++;
            }
            break;
        case 3:
            op_request(in, arg);
            break;
        case 4:
            op_data(in, arg);
            break;
        case 5:
            op_raw(in, arg);
            break;
        case 6:
            op_shutdown(in, arg);
            break;
        case 7: /* ngtcp2 asserts a finished handshake: a real client checks first */
            if (client_up() && C.confirmed)
                ngtcp2_conn_initiate_key_update(C.qc, cnow());
            break;
        case 8: /* the client's timers fire: loss recovery, PTO probes, its idle timeout */
            if (client_up()) {
                ngtcp2_tstamp exp = ngtcp2_conn_get_expiry(C.qc), now = cnow();
                if (exp != UINT64_MAX && exp > now)
                    C.skew += exp - now;
                int rv = ngtcp2_conn_handle_expiry(C.qc, cnow());
                if (rv != 0)
                    client_fail(rv);
            }
            break;
        case 9: /* migration to the other socket, validated first or at once */
            if (client_up()) {
                ngtcp2_path path = client_path(C.sock ^ 1);
                int rv = arg & 1 ? ngtcp2_conn_initiate_immediate_migration(C.qc, &path, cnow())
                                 : ngtcp2_conn_initiate_migration(C.qc, &path, cnow());
                if (rv == 0)
                    C.sock ^= 1;
            }
            break;
        case 10: /* the client closes: the server drains */
            if (client_up()) {
                ngtcp2_connection_close_error ccerr;
                uint8_t code = u8(in);
                if (arg & 1)
                    ngtcp2_connection_close_error_set_application_error(&ccerr, 0x100 + code, NULL,
                                                                        0);
                else
                    ngtcp2_connection_close_error_set_transport_error(&ccerr, code & 0x1f, NULL, 0);
                ngtcp2_path_storage ps;
                ngtcp2_path_storage_zero(&ps);
                ngtcp2_pkt_info pi;
                uint8_t buf[DGRAM_MAX];
                ngtcp2_ssize n = ngtcp2_conn_write_connection_close(C.qc, &ps.path, &pi, buf,
                                                                    sizeof buf, &ccerr, cnow());
                if (n > 0)
                    queue_dgram(buf, (size_t)n, sock_of(&ps.path));
                C.dead = true;
            }
            break;
        case 11:
            op_restart(in, arg);
            break;
        case 12:
            op_control(in, arg);
            break;
        case 13:
            op_inject(in, arg);
            break;
        case 14:
            op_bulk(in, arg);
            break;
        default:
            op_misc(in, arg);
            break;
        }
    }
    /* Whatever the script left open runs on: handshakes finish, requests get answered and
     * the answers acknowledged, so the server's later paths run too. The backend's
     * answers take loop turns of their own, hence two quiet rounds before stopping. */
    for (int i = 0, quiet = 0; i < FINAL_ROUNDS && quiet < 2; i++)
        quiet = round_trip() ? 0 : quiet + 1;
}

static void end_input(void)
{
    client_stop();
    while (C.segs != NULL) {
        seg_t *s = C.segs;
        C.segs = s->all;
        free(s);
    }
    gnutls_free(C.ticket.data);
    C.ticket.data = NULL;
    for (int w = 0; w < NWORKERS; w++)
        tg_quic_close_all(F.srv[w]);
    for (size_t i = 0; i < F.nbpeers; i++) {
        event_free(F.bpeers[i].rd);
        event_free(F.bpeers[i].wr);
        close(F.bpeers[i].fd);
    }
    F.nbpeers = 0;
    F.drain = false;
    F.gen = F.gens[0];
    pump();
    for (int i = 0; i < 2; i++)
        drain(F.cfd[i]);
    for (int i = 0; i < NLISTENERS; i++)
        drain(F.lis[i].fd);
    drain(F.w1fd);
    /* Every connection is gone and gave its count back, whatever path it ended on. */
    for (int w = 0; w < NWORKERS; w++)
        CHECK(tg_quic_nconns(F.srv[w]) == 0);
    CHECK(atomic_load(&F.nconns) == 0);
}

/* The first byte: client mode (bit 0), the listener (bits 1-2), raw datagrams to worker 1
 * (bit 3), the backends' answer (bits 4-6). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    in_t in = {data + 1, data + size};
    int li = data[0] >> 1 & 3;
    const char *answer = answers[(data[0] >> 4) & 7];
    F.answer = answer != NULL ? answer : big_answer;
    F.answer_len = strlen(F.answer);
    memset(&C, 0, sizeof C);
    if (data[0] & 1)
        run_client(&in, li);
    else
        run_raw(&in, li, data[0] & 8);
    end_input();
    return 0;
}
