/* hsload.c: full TLS handshakes per second: each of N connections connects, does a full
 * handshake (no resumption), optionally sends one request, closes, and starts over.
 * With --keepalive, keep-alive requests per second instead: each connection does one full
 * handshake, then sends requests one after the other on it for the whole run (what wrk does,
 * but with a client certificate when asked for one). */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/resource.h>

#include "benchtls.h"

#define MAX_EVENTS 256
#define RETRY_US 10000 /* pause of a connection slot after a failed connect */

static const char REQUEST[] = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
static const char REQUEST_KA[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";

/* Latency histogram: exact below 64 us, then 32 buckets per power of two (~3% wide). */
#define HIST_BUCKETS 1248
static unsigned hist_index(uint64_t us)
{
    if (us < 64)
        return (unsigned)us;
    if (us >= (1ull << 40))
        us = (1ull << 40) - 1;
    unsigned k = 63u - (unsigned)__builtin_clzll(us);
    return (k - 5) * 32 + (unsigned)(us >> (k - 5));
}
static uint64_t hist_value(unsigned i)
{
    if (i < 64)
        return i;
    unsigned k = i / 32 + 4;
    uint64_t width = 1ull << (k - 5);
    return (uint64_t)(i % 32 + 32) * width + width / 2;
}
static uint64_t hist_quantile(const uint64_t *h, double q)
{
    uint64_t n = 0, seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        n += h[i];
    if (!n)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)(n - 1)) + 1;
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        if ((seen += h[i]) >= rank)
            return hist_value(i);
    return 0;
}

typedef enum { S_IDLE, S_CONNECTING, S_HANDSHAKE, S_WRITE, S_READ, S_CLOSING } state_t;

typedef struct slot {
    int fd;
    state_t state;
    uint32_t events; /* epoll interest now registered */
    SSL *ssl;
    uint64_t t_start, retry_at;
    uint64_t t_op; /* start of what the slot waits for now: its connection cycle or request */
    bench_resp_t resp;
} slot_t;

typedef struct stats {
    uint64_t handshakes, requests;
    uint64_t err_connect, err_handshake, err_request, err_timeout;
    uint64_t err_after; /* an alert (or other TLS error) instead of the server's close */
    uint64_t lingering; /* the server kept the connection open after our close_notify */
    uint64_t hist_hs[HIST_BUCKETS], hist_req[HIST_BUCKETS];
} stats_t;

typedef struct worker {
    pthread_t thread;
    int nconns, ep;
    SSL_CTX *ctx;
    slot_t *slots;
    stats_t st;
} worker_t;

static struct {
    struct sockaddr_in addr;
    bench_tls_opts_t tls;
    int conns, threads;
    double seconds;
    bool request, keepalive;
    double warmup; /* seconds at the start whose handshakes and requests are not counted */
    uint64_t timeout_us;
} cfg = {.conns = 32, .threads = 1, .seconds = 5, .timeout_us = 10000000};

static pthread_barrier_t start_barrier;
static uint64_t t_begin, t_measure, t_end; /* set by the main thread before the barrier */
static atomic_flag described = ATOMIC_FLAG_INIT;
static atomic_flag error_shown = ATOMIC_FLAG_INIT;
static char session_line[256] = "(no handshake completed)";

static void show_first_error(const char *what, int ssl_err)
{
    if (atomic_flag_test_and_set(&error_shown)) {
        ERR_clear_error();
        return;
    }
    char buf[256] = "";
    unsigned long e = ERR_peek_error();
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    fprintf(stderr, "hsload: first error: %s (ssl error %d%s%s) %s\n", what, ssl_err,
            errno ? ", " : "", errno ? strerror(errno) : "", buf);
    ERR_clear_error();
}

static void set_events(worker_t *w, slot_t *s, uint32_t events)
{
    if (s->events == events)
        return;
    struct epoll_event ev = {.events = events, .data.ptr = s};
    epoll_ctl(w->ep, EPOLL_CTL_MOD, s->fd, &ev);
    s->events = events;
}

static void slot_close(slot_t *s)
{
    if (s->ssl)
        SSL_free(s->ssl);
    if (s->fd >= 0)
        close(s->fd); /* also leaves the epoll set */
    s->ssl = NULL;
    s->fd = -1;
    s->state = S_IDLE;
}

static void slot_start(worker_t *w, slot_t *s, uint64_t now)
{
    s->t_start = s->t_op = now;
    s->fd = bench_connect(&cfg.addr);
    if (s->fd < 0) {
        w->st.err_connect++;
        show_first_error("connect", 0);
        s->retry_at = now + RETRY_US;
        s->state = S_IDLE;
        return;
    }
    s->events = EPOLLOUT;
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = s};
    epoll_ctl(w->ep, EPOLL_CTL_ADD, s->fd, &ev);
    s->state = S_CONNECTING;
}

/* Waits for what OpenSSL asks; returns false when the error is not a wait. */
static bool wait_for(worker_t *w, slot_t *s, int ret, int *err)
{
    *err = SSL_get_error(s->ssl, ret);
    if (*err == SSL_ERROR_WANT_READ)
        set_events(w, s, EPOLLIN);
    else if (*err == SSL_ERROR_WANT_WRITE)
        set_events(w, s, EPOLLOUT);
    else
        return false;
    return true;
}

/* Ends a connection cycle and, while time remains, starts the next one at once. */
static void finish(worker_t *w, slot_t *s, uint64_t now, bool ok)
{
    if (ok && !cfg.keepalive && now >= t_measure)
        w->st.hist_req[hist_index(now - s->t_start)]++;
    slot_close(s);
    if (now < t_end)
        slot_start(w, s, now);
}

/* Keep-alive: once the response is complete, counts it and sends the next request.
 * Returns false when the slot was closed (a bad response) or nothing more is to be done now. */
static bool keepalive_response(worker_t *w, slot_t *s, uint64_t now)
{
    const bench_resp_t *r = &s->resp;
    if (!r->head_len)
        return true; /* head not complete: read on */
    bool delimited = r->content_length >= 0;
    if (delimited && !bench_resp_complete(r))
        return true;
    /* One request at a time: nothing may follow the response's Content-Length bytes. */
    if (r->status != 200 || !delimited || r->total != r->head_len + (size_t)r->content_length) {
        w->st.err_request++;
        char what[96];
        snprintf(what, sizeof what, "keep-alive response status %d, Content-Length %ld, %zu bytes",
                 r->status, r->content_length, r->total);
        errno = 0;
        show_first_error(what, 0);
        finish(w, s, now, false);
        return false;
    }
    if (now >= t_measure) {
        w->st.requests++;
        w->st.hist_req[hist_index(now - s->t_op)]++;
    }
    if (now >= t_end)
        return false; /* the worker closes it */
    bench_resp_init(&s->resp);
    s->t_op = now;
    s->state = S_WRITE;
    return true;
}

static void drive(worker_t *w, slot_t *s)
{
    int ret, err;
    for (;;) {
        uint64_t now = bench_now_us();
        switch (s->state) {
        case S_IDLE:
            return;
        case S_CONNECTING: {
            socklen_t len = sizeof err;
            if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
                errno = err;
                w->st.err_connect++;
                show_first_error("connect", 0);
                slot_close(s);
                s->retry_at = now + RETRY_US;
                return;
            }
            s->ssl = SSL_new(w->ctx);
            if (!s->ssl) {
                w->st.err_handshake++;
                show_first_error("SSL_new", 0);
                finish(w, s, now, false);
                return;
            }
            SSL_set_fd(s->ssl, s->fd);
            SSL_set_tlsext_host_name(s->ssl, cfg.tls.sni);
            SSL_set_connect_state(s->ssl);
            s->state = S_HANDSHAKE;
            break;
        }
        case S_HANDSHAKE:
            ret = SSL_do_handshake(s->ssl);
            if (ret != 1) {
                if (wait_for(w, s, ret, &err))
                    return;
                w->st.err_handshake++;
                show_first_error("handshake", err);
                finish(w, s, now, false);
                return;
            }
            if (now >= t_measure) {
                w->st.handshakes++;
                w->st.hist_hs[hist_index(now - s->t_start)]++;
            }
            if (!atomic_flag_test_and_set(&described))
                bench_describe_session(s->ssl, session_line, sizeof session_line);
            if (cfg.request || cfg.keepalive) {
                bench_resp_init(&s->resp);
                if (cfg.keepalive) /* from now on each request has its own timeout */
                    s->t_op = now;
                s->state = S_WRITE;
            } else {
                /* Our close_notify follows the Finished, so the server's close proves it completed
                 * the handshake; it closing first also keeps TIME_WAIT off the client's ports. */
                SSL_shutdown(s->ssl);
                ERR_clear_error();
                s->state = S_CLOSING;
            }
            break;
        case S_WRITE:
            /* After a WANT_*, OpenSSL wants the same buffer again: it is. */
            ret = cfg.keepalive ? SSL_write(s->ssl, REQUEST_KA, sizeof REQUEST_KA - 1)
                                : SSL_write(s->ssl, REQUEST, sizeof REQUEST - 1);
            if (ret <= 0) {
                if (wait_for(w, s, ret, &err))
                    return;
                w->st.err_request++;
                show_first_error("request write", err);
                finish(w, s, now, false);
                return;
            }
            s->state = S_READ;
            break;
        case S_READ:
        case S_CLOSING: {
            char buf[4096];
            ret = SSL_read(s->ssl, buf, sizeof buf);
            if (ret > 0) {
                if (s->state == S_READ) {
                    bench_resp_feed(&s->resp, buf, (size_t)ret);
                    if (cfg.keepalive && !keepalive_response(w, s, now))
                        return;
                }
                continue;
            }
            if (wait_for(w, s, ret, &err))
                return;
            if (s->state == S_CLOSING) {
                /* The server's close (close_notify, EOF or reset) completes the cycle; an
                 * alert does not: in TLS 1.3 that is how a server refuses a client
                 * certificate after the client has finished its handshake. */
                bool ok = err != SSL_ERROR_SSL;
                if (!ok) {
                    w->st.err_after++;
                    show_first_error("alert after the handshake", err);
                }
                ERR_clear_error();
                finish(w, s, now, ok);
                return;
            }
            if (cfg.keepalive) { /* the server closed or failed a keep-alive connection */
                w->st.err_request++;
                char what[96];
                snprintf(what, sizeof what, "keep-alive connection ended, %zu response bytes in",
                         s->resp.total);
                show_first_error(what, err);
                finish(w, s, now, false);
                return;
            }
            /* Connection: close: the response ends with the connection. */
            bool ok =
                s->resp.status == 200 &&
                (s->resp.content_length < 0 ? s->resp.head_len > 0 : bench_resp_complete(&s->resp));
            if (ok) {
                if (now >= t_measure)
                    w->st.requests++;
                ERR_clear_error();
            } else {
                w->st.err_request++;
                char what[64];
                snprintf(what, sizeof what, "response status %d, %zu bytes", s->resp.status,
                         s->resp.total);
                errno = 0;
                show_first_error(what, err);
            }
            finish(w, s, now, ok);
            return;
        }
        }
    }
}

/* Connections past their timeout, and slots waiting to retry a connect. */
static void sweep(worker_t *w, uint64_t now)
{
    for (int i = 0; i < w->nconns; i++) {
        slot_t *s = &w->slots[i];
        if (s->state == S_IDLE) {
            if (now >= s->retry_at && now < t_end)
                slot_start(w, s, now);
        } else if (now - s->t_op > cfg.timeout_us) {
            if (s->state == S_CLOSING)
                w->st.lingering++;
            else
                w->st.err_timeout++;
            finish(w, s, now, false);
        }
    }
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    struct epoll_event evs[MAX_EVENTS];
    pthread_barrier_wait(&start_barrier);
    uint64_t now = bench_now_us(), last_sweep = now;
    for (int i = 0; i < w->nconns; i++)
        slot_start(w, &w->slots[i], now);
    while ((now = bench_now_us()) < t_end) {
        uint64_t left_ms = (t_end - now) / 1000;
        int n = epoll_wait(w->ep, evs, MAX_EVENTS, left_ms < 10 ? (int)left_ms : 10);
        for (int i = 0; i < n; i++) {
            slot_t *s = evs[i].data.ptr;
            if (s->fd >= 0)
                drive(w, s);
        }
        now = bench_now_us();
        if (now - last_sweep >= 10000) {
            sweep(w, now);
            last_sweep = now;
        }
    }
    for (int i = 0; i < w->nconns; i++)
        slot_close(&w->slots[i]); /* in flight at the end: not counted */
    return NULL;
}

static void usage(const char *prog, FILE *to)
{
    fprintf(to, "usage: %s [options] [HOST:]PORT\n", prog);
    fputs("Full TLS handshakes per second (no resumption) against HOST:PORT (HOST 127.0.0.1).\n"
          "  -c, --conns N          concurrent connections (default 32)\n"
          "  -d, --duration S       seconds to run (default 5)\n"
          "  -t, --threads N        threads, each with its share of the connections (default 1)\n"
          "  -r, --request          after the handshake send GET / (Connection: close) and\n"
          "                         read the response\n"
          "  -k, --keepalive        keep-alive requests/s: one handshake per connection, then\n"
          "                         GET / after GET / on it (200 with Content-Length expected)\n"
          "  -w, --warmup S         do not count the first S seconds of the run (default 0)\n"
          "      --timeout S        a connection cycle (with -k: a handshake, a request) longer\n"
          "                         than this is an error (default 10)\n",
          to);
    fputs(BENCH_TLS_USAGE, to);
    fputs("Without --request the client sends close_notify after the handshake and waits for\n"
          "the server to close (an alert instead counts as an error). Prints handshakes/s,\n"
          "errors and handshake latency (connect to handshake done); with --keepalive also\n"
          "requests/s and request latency (request written to response read).\n",
          to);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"conns", required_argument, NULL, 'c'},
                                             {"duration", required_argument, NULL, 'd'},
                                             {"threads", required_argument, NULL, 't'},
                                             {"request", no_argument, NULL, 'r'},
                                             {"keepalive", no_argument, NULL, 'k'},
                                             {"warmup", required_argument, NULL, 'w'},
                                             {"timeout", required_argument, NULL, 'T'},
                                             {"help", no_argument, NULL, 'h'},
                                             BENCH_TLS_LONGOPTS,
                                             {NULL, 0, NULL, 0}};
    cfg.tls.sni = "localhost";
    int opt;
    while ((opt = getopt_long(argc, argv, "c:d:t:rkw:C:K:h", longopts, NULL)) != -1) {
        if (bench_tls_option(&cfg.tls, opt, optarg))
            continue;
        switch (opt) {
        case 'c':
            cfg.conns = atoi(optarg);
            break;
        case 'd':
            cfg.seconds = atof(optarg);
            break;
        case 't':
            cfg.threads = atoi(optarg);
            break;
        case 'r':
            cfg.request = true;
            break;
        case 'k':
            cfg.keepalive = true;
            break;
        case 'w':
            cfg.warmup = atof(optarg);
            break;
        case 'T':
            cfg.timeout_us = (uint64_t)(atof(optarg) * 1e6);
            break;
        case 'h':
            usage(argv[0], stdout);
            return 0;
        default:
            usage(argv[0], stderr);
            return 2;
        }
    }
    if (optind != argc - 1 || !bench_parse_addr(argv[optind], &cfg.addr) || cfg.conns < 1 ||
        cfg.threads < 1 || cfg.threads > cfg.conns || cfg.seconds <= 0 || cfg.seconds > 3600 ||
        cfg.timeout_us == 0 || cfg.warmup < 0 || cfg.warmup >= cfg.seconds ||
        (cfg.request && cfg.keepalive)) {
        usage(argv[0], stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    worker_t *workers = calloc((size_t)cfg.threads, sizeof *workers);
    if (!workers)
        return 1;
    for (int i = 0; i < cfg.threads; i++) {
        worker_t *w = &workers[i];
        w->nconns = cfg.conns / cfg.threads + (i < cfg.conns % cfg.threads);
        w->ctx = bench_client_ctx(&cfg.tls); /* one each: no lock shared between threads */
        w->slots = calloc((size_t)w->nconns, sizeof *w->slots);
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        if (!w->ctx || !w->slots || w->ep < 0)
            return 1;
        for (int j = 0; j < w->nconns; j++)
            w->slots[j].fd = -1;
    }
    pthread_barrier_init(&start_barrier, NULL, (unsigned)cfg.threads + 1);
    for (int i = 0; i < cfg.threads; i++)
        if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0)
            return 1;
    t_begin = bench_now_us();
    t_measure = t_begin + (uint64_t)(cfg.warmup * 1e6);
    t_end = t_begin + (uint64_t)(cfg.seconds * 1e6);
    pthread_barrier_wait(&start_barrier);

    stats_t *sum = calloc(1, sizeof *sum);
    if (!sum)
        return 1;
    for (int i = 0; i < cfg.threads; i++) {
        pthread_join(workers[i].thread, NULL);
        stats_t *st = &workers[i].st;
        sum->handshakes += st->handshakes;
        sum->requests += st->requests;
        sum->err_connect += st->err_connect;
        sum->err_handshake += st->err_handshake;
        sum->err_request += st->err_request;
        sum->err_timeout += st->err_timeout;
        sum->err_after += st->err_after;
        sum->lingering += st->lingering;
        for (int b = 0; b < HIST_BUCKETS; b++) {
            sum->hist_hs[b] += st->hist_hs[b];
            sum->hist_req[b] += st->hist_req[b];
        }
    }
    double secs = (double)(bench_now_us() - t_measure) / 1e6; /* the counted part */
    uint64_t errors = sum->err_connect + sum->err_handshake + sum->err_request + sum->err_timeout +
                      sum->err_after;
    double p50 = (double)hist_quantile(sum->hist_hs, 0.50) / 1000,
           p99 = (double)hist_quantile(sum->hist_hs, 0.99) / 1000;
    double pmax = (double)hist_quantile(sum->hist_hs, 1.0) / 1000;

    char addr[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &cfg.addr.sin_addr, addr, sizeof addr);
    printf("hsload: %s:%d, %d connections, %d thread(s), %.1f s (first %.1f s not counted), %s%s\n",
           addr, ntohs(cfg.addr.sin_port), cfg.conns, cfg.threads, cfg.seconds, cfg.warmup,
           cfg.keepalive ? "keep-alive requests"
           : cfg.request ? "handshake + one request"
                         : "handshake only",
           cfg.tls.cert ? ", client certificate" : "");
    printf("session: %s\n", session_line);
    printf("handshakes: %llu in %.2f s = %.1f/s\n", (unsigned long long)sum->handshakes, secs,
           (double)sum->handshakes / secs);
    double rq50 = (double)hist_quantile(sum->hist_req, 0.5) / 1000,
           rq99 = (double)hist_quantile(sum->hist_req, 0.99) / 1000,
           rqmax = (double)hist_quantile(sum->hist_req, 1.0) / 1000;
    if (cfg.request || cfg.keepalive)
        printf("requests: %llu = %.1f/s, %s latency p50 %.3f ms, p99 %.3f ms, max %.3f ms\n",
               (unsigned long long)sum->requests, (double)sum->requests / secs,
               cfg.keepalive ? "request" : "cycle", rq50, rq99, rqmax);
    printf("errors: %llu (connect %llu, handshake %llu, alert after handshake %llu, request %llu, "
           "timeout %llu); server kept open after close_notify: %llu\n",
           (unsigned long long)errors, (unsigned long long)sum->err_connect,
           (unsigned long long)sum->err_handshake, (unsigned long long)sum->err_after,
           (unsigned long long)sum->err_request, (unsigned long long)sum->err_timeout,
           (unsigned long long)sum->lingering);
    printf("handshake latency: p50 %.3f ms, p99 %.3f ms, max %.3f ms\n", p50, p99, pmax);
    printf("result: hs_per_s=%.1f errors=%llu p50_ms=%.3f p99_ms=%.3f",
           (double)sum->handshakes / secs, (unsigned long long)errors, p50, p99);
    if (cfg.keepalive)
        printf(" req_per_s=%.1f req_p50_ms=%.3f req_p99_ms=%.3f", (double)sum->requests / secs,
               rq50, rq99);
    printf("\n");
    return (cfg.keepalive ? sum->requests : sum->handshakes) ? 0 : 1;
}
