/* idleconns.c: opens N TLS connections, each with a full handshake and one keep-alive
 * request, then holds them idle so the server's memory per idle connection can be read. */
#include <getopt.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>

#include "benchtls.h"

#define MAX_EVENTS 512
#define SETUP_LIMIT_US (300 * 1000000ull) /* past this no new connection is started */

static const char REQUEST[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";

typedef enum { S_NEW, S_CONNECTING, S_HANDSHAKE, S_WRITE, S_READ, S_IDLE, S_DONE } state_t;

typedef struct conn {
    int fd;
    state_t state;
    uint32_t events; /* epoll interest now registered */
    SSL *ssl;
    uint64_t t_start;
    bench_resp_t *resp; /* only while the response is read */
} conn_t;

static struct {
    struct sockaddr_in addr;
    bench_tls_opts_t tls;
    int n, parallel;
    double hold_s, timeout_s;
} cfg = {.n = 1000, .parallel = 64, .hold_s = 60, .timeout_s = 10};

static struct {
    int open, in_setup, closed_by_server;
    int err_connect, err_handshake, err_response, err_timeout;
} st;

static SSL_CTX *ctx;
static int ep;
static volatile sig_atomic_t stop;
static bool error_shown;

static void on_signal(int sig)
{
    stop = 1;
}

static void show_first_error(const char *what)
{
    if (!error_shown) {
        char buf[256] = "";
        unsigned long e = ERR_peek_error();
        if (e)
            ERR_error_string_n(e, buf, sizeof buf);
        fprintf(stderr, "idleconns: first error: %s: %s %s\n", what, errno ? strerror(errno) : "",
                buf);
        error_shown = true;
    }
    ERR_clear_error();
}

static void set_events(conn_t *c, uint32_t events)
{
    if (c->events == events)
        return;
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->events = events;
}

static void conn_close(conn_t *c)
{
    if (c->state == S_IDLE)
        st.open--;
    else if (c->state != S_NEW && c->state != S_DONE)
        st.in_setup--;
    if (c->ssl)
        SSL_free(c->ssl);
    if (c->fd >= 0)
        close(c->fd);
    free(c->resp);
    c->ssl = NULL;
    c->resp = NULL;
    c->fd = -1;
    c->state = S_DONE;
}

static void fail(conn_t *c, int *counter, const char *what)
{
    (*counter)++;
    show_first_error(what);
    conn_close(c);
}

static void conn_start(conn_t *c)
{
    c->t_start = bench_now_us();
    st.in_setup++;
    c->state = S_CONNECTING;
    c->fd = bench_connect(&cfg.addr);
    if (c->fd < 0) {
        fail(c, &st.err_connect, "connect");
        return;
    }
    c->events = EPOLLOUT;
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

/* Waits for what OpenSSL asks; returns false when the error is not a wait. */
static bool wait_for(conn_t *c, int ret)
{
    int err = SSL_get_error(c->ssl, ret);
    if (err == SSL_ERROR_WANT_READ)
        set_events(c, EPOLLIN);
    else if (err == SSL_ERROR_WANT_WRITE)
        set_events(c, EPOLLOUT);
    else
        return false;
    return true;
}

static void drive(conn_t *c)
{
    char buf[4096];
    int ret, err = 0;
    socklen_t len = sizeof err;
    for (;;) {
        switch (c->state) {
        case S_NEW:
        case S_DONE:
            return;
        case S_CONNECTING:
            if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
                errno = err;
                fail(c, &st.err_connect, "connect");
                return;
            }
            c->ssl = SSL_new(ctx);
            c->resp = malloc(sizeof *c->resp);
            if (!c->ssl || !c->resp) {
                fail(c, &st.err_handshake, "out of memory");
                return;
            }
            bench_resp_init(c->resp);
            SSL_set_fd(c->ssl, c->fd);
            SSL_set_tlsext_host_name(c->ssl, cfg.tls.sni);
            SSL_set_connect_state(c->ssl);
            c->state = S_HANDSHAKE;
            break;
        case S_HANDSHAKE:
            ret = SSL_do_handshake(c->ssl);
            if (ret == 1)
                c->state = S_WRITE;
            else if (!wait_for(c, ret))
                fail(c, &st.err_handshake, "handshake");
            if (c->state != S_WRITE)
                return;
            break;
        case S_WRITE:
            ret = SSL_write(c->ssl, REQUEST, sizeof REQUEST - 1);
            if (ret > 0)
                c->state = S_READ;
            else if (!wait_for(c, ret))
                fail(c, &st.err_response, "request write");
            if (c->state != S_READ)
                return;
            break;
        case S_READ:
            ret = SSL_read(c->ssl, buf, sizeof buf);
            if (ret <= 0) {
                if (!wait_for(c, ret))
                    fail(c, &st.err_response, "response read");
                return;
            }
            bench_resp_feed(c->resp, buf, (size_t)ret);
            if (!bench_resp_complete(c->resp))
                break;
            if (c->resp->status != 200 ||
                c->resp->total != c->resp->head_len + (size_t)c->resp->content_length) {
                errno = 0;
                fail(c, &st.err_response, "response not 200, or more than one");
                return;
            }
            free(c->resp);
            c->resp = NULL;
            st.in_setup--;
            st.open++;
            c->state = S_IDLE;
            set_events(c, EPOLLIN);
            return;
        case S_IDLE: /* nothing is expected: data is dropped, an end is the server closing */
            ret = SSL_read(c->ssl, buf, sizeof buf);
            if (ret > 0)
                break;
            if (!wait_for(c, ret)) {
                st.closed_by_server++;
                ERR_clear_error();
                conn_close(c);
            }
            return;
        }
    }
}

/* Handles what is ready within wait_ms; conns past their setup timeout fail. */
static void poll_once(conn_t *conns, int wait_ms, uint64_t *last_sweep)
{
    struct epoll_event evs[MAX_EVENTS];
    int n = epoll_wait(ep, evs, MAX_EVENTS, wait_ms);
    for (int i = 0; i < n; i++)
        drive(evs[i].data.ptr);
    uint64_t now = bench_now_us();
    if (now - *last_sweep < 100000 || !st.in_setup)
        return;
    *last_sweep = now;
    for (int i = 0; i < cfg.n; i++) {
        conn_t *c = &conns[i];
        if (c->state != S_NEW && c->state != S_IDLE && c->state != S_DONE &&
            now - c->t_start > (uint64_t)(cfg.timeout_s * 1e6)) {
            errno = ETIMEDOUT;
            fail(c, &st.err_timeout, "setup timeout");
        }
    }
}

/* Every connection needs a descriptor: raise the soft limit, and the hard one when allowed. */
static int raise_nofile(int want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return want;
    if (rl.rlim_max < (rlim_t)want) {
        struct rlimit more = {(rlim_t)want, (rlim_t)want};
        if (setrlimit(RLIMIT_NOFILE, &more) == 0)
            return want;
    }
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    return rl.rlim_cur < (rlim_t)want ? (int)rl.rlim_cur : want;
}

static void usage(const char *prog, FILE *to)
{
    fprintf(to, "usage: %s [options] [HOST:]PORT\n", prog);
    fputs("Opens N TLS connections to HOST:PORT (HOST 127.0.0.1), each with a full handshake\n"
          "and one keep-alive GET /, and holds them idle. Prints \"ready: open=...\" once all\n"
          "are set up and \"end: open=...\" before closing them (after the hold time, or at\n"
          "SIGTERM/SIGINT).\n"
          "  -n, --conns N          connections (default 1000)\n"
          "  -p, --parallel N       connections being set up at once (default 64)\n"
          "  -H, --hold S           seconds to hold them (default 60)\n"
          "      --timeout S        setup time allowed per connection (default 10); no\n"
          "                         connection is started after 300 s\n",
          to);
    fputs(BENCH_TLS_USAGE, to);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"conns", required_argument, NULL, 'n'},
                                             {"parallel", required_argument, NULL, 'p'},
                                             {"hold", required_argument, NULL, 'H'},
                                             {"timeout", required_argument, NULL, 'T'},
                                             {"help", no_argument, NULL, 'h'},
                                             BENCH_TLS_LONGOPTS,
                                             {NULL, 0, NULL, 0}};
    cfg.tls.sni = "localhost";
    int opt;
    while ((opt = getopt_long(argc, argv, "n:p:H:C:K:h", longopts, NULL)) != -1) {
        if (bench_tls_option(&cfg.tls, opt, optarg))
            continue;
        switch (opt) {
        case 'n':
            cfg.n = atoi(optarg);
            break;
        case 'p':
            cfg.parallel = atoi(optarg);
            break;
        case 'H':
            cfg.hold_s = atof(optarg);
            break;
        case 'T':
            cfg.timeout_s = atof(optarg);
            break;
        case 'h':
            usage(argv[0], stdout);
            return 0;
        default:
            usage(argv[0], stderr);
            return 2;
        }
    }
    if (optind != argc - 1 || !bench_parse_addr(argv[optind], &cfg.addr) || cfg.n < 1 ||
        cfg.parallel < 1 || cfg.hold_s < 0 || cfg.hold_s > 86400 || cfg.timeout_s <= 0) {
        usage(argv[0], stderr);
        return 2;
    }
    int fds = raise_nofile(cfg.n + 64);
    if (fds < cfg.n + 64) {
        fprintf(stderr, "idleconns: open files limited to %d: opening %d connections, not %d\n",
                fds, fds - 64, cfg.n);
        cfg.n = fds - 64;
        if (cfg.n < 1)
            return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: epoll_wait returns at once */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    ctx = bench_client_ctx(&cfg.tls);
    ep = epoll_create1(EPOLL_CLOEXEC);
    conn_t *conns = calloc((size_t)cfg.n, sizeof *conns);
    if (!ctx || ep < 0 || !conns)
        return 1;
    for (int i = 0; i < cfg.n; i++)
        conns[i].fd = -1;

    uint64_t t0 = bench_now_us(), last_sweep = t0;
    int next = 0;
    while (!stop && (next < cfg.n || st.in_setup > 0)) {
        if (bench_now_us() - t0 > SETUP_LIMIT_US)
            next = cfg.n;
        while (next < cfg.n && st.in_setup < cfg.parallel)
            conn_start(&conns[next++]);
        poll_once(conns, 10, &last_sweep);
    }
    int failed = st.err_connect + st.err_handshake + st.err_response + st.err_timeout,
        not_started = 0;
    for (int i = 0; i < cfg.n; i++)
        not_started += conns[i].state == S_NEW;
    printf("ready: open=%d failed=%d (connect %d, handshake %d, response %d, timeout %d) "
           "closed_by_server=%d "
           "not_started=%d setup_s=%.2f\n",
           st.open, failed, st.err_connect, st.err_handshake, st.err_response, st.err_timeout,
           st.closed_by_server, not_started, (double)(bench_now_us() - t0) / 1e6);
    fflush(stdout);

    uint64_t hold_end = bench_now_us() + (uint64_t)(cfg.hold_s * 1e6);
    for (uint64_t now; !stop && (now = bench_now_us()) < hold_end;) {
        uint64_t left_ms = (hold_end - now) / 1000;
        poll_once(conns, left_ms < 1000 ? (int)left_ms : 1000, &last_sweep);
    }
    printf("end: open=%d closed_by_server=%d\n", st.open, st.closed_by_server);
    fflush(stdout);
    for (int i = 0; i < cfg.n; i++)
        conn_close(&conns[i]);
    return st.open > 0 || failed == 0 ? 0 : 1;
}
