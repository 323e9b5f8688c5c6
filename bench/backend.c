/* backend.c: the origin server of the benches: one thread, epoll, HTTP/1.1 keep-alive and
 * pipelining, every request answered 200 with the 13-byte body "hello world!\n". */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#define IN_CAP 16384  /* a request head must fit; longer ones get 431 */
#define OUT_CAP 32768 /* answers to pipelined requests wait here; parsing pauses when full */
#define MAX_EVENTS 256
#define TRACE_PATH "GET /trace-head" /* heads of such requests are printed to stderr */

static const char RESPONSE[] = "HTTP/1.1 200 OK\r\n"
                               "Server: bench-backend\r\n"
                               "Content-Type: text/plain\r\n"
                               "Content-Length: 13\r\n"
                               "\r\n"
                               "hello world!\n";
static const char RESPONSE_CLOSE[] = "HTTP/1.1 200 OK\r\n"
                                     "Server: bench-backend\r\n"
                                     "Content-Type: text/plain\r\n"
                                     "Content-Length: 13\r\n"
                                     "Connection: close\r\n"
                                     "\r\n"
                                     "hello world!\n";
static const char RESPONSE_431[] = "HTTP/1.1 431 Request Header Fields Too Large\r\n"
                                   "Content-Length: 0\r\nConnection: close\r\n\r\n";
static const char RESPONSE_501[] = "HTTP/1.1 501 Not Implemented\r\n"
                                   "Content-Length: 0\r\nConnection: close\r\n\r\n";

typedef struct conn {
    int fd;
    bool closing;     /* the last answer is queued: close once it is written */
    bool want_out;    /* EPOLLOUT is armed because the socket was full */
    size_t body_left; /* bytes of a request body still to skip */
    size_t in_len;
    size_t out_off, out_len;
    char in[IN_CAP];
    char out[OUT_CAP];
} conn_t;

static conn_t **conns; /* indexed by fd */
static size_t conns_cap;
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    stop = 1;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* Case-insensitive search for a header line "\r\nName:" inside the head; returns the value. */
static const char *header_value(const char *head, size_t len, const char *name, size_t *vlen)
{
    size_t nlen = strlen(name);
    for (const char *p = head; p + nlen + 3 <= head + len; p++) {
        p = memchr(p, '\n', (size_t)(head + len - p));
        if (!p || p + nlen + 2 > head + len)
            return NULL;
        if (strncasecmp(p + 1, name, nlen) == 0 && p[1 + nlen] == ':') {
            const char *v = p + 2 + nlen, *end = head + len;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            const char *e = v;
            while (e < end && *e != '\r' && *e != '\n')
                e++;
            *vlen = (size_t)(e - v);
            return v;
        }
    }
    return NULL;
}

static bool value_has(const char *v, size_t vlen, const char *token)
{
    size_t tlen = strlen(token);
    for (size_t i = 0; i + tlen <= vlen; i++)
        if (strncasecmp(v + i, token, tlen) == 0)
            return true;
    return false;
}

/* parse() checks first that the longest answer fits. */
static void queue(conn_t *c, const char *data, size_t len)
{
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
}

/* Answers every complete request in the input buffer while the output buffer has room. */
static void parse(conn_t *c)
{
    size_t pos = 0;
    while (!c->closing) {
        if (c->body_left) {
            size_t n = c->in_len - pos < c->body_left ? c->in_len - pos : c->body_left;
            pos += n;
            c->body_left -= n;
            if (c->body_left)
                break;
        }
        if (c->out_len + sizeof RESPONSE_CLOSE > OUT_CAP)
            break;
        const char *head = c->in + pos;
        size_t avail = c->in_len - pos;
        const char *end = memmem(head, avail, "\r\n\r\n", 4);
        if (!end) {
            if (avail == IN_CAP) { /* a head that can never complete */
                queue(c, RESPONSE_431, sizeof RESPONSE_431 - 1);
                c->closing = true;
                pos = c->in_len;
            }
            break;
        }
        size_t head_len = (size_t)(end - head) + 4, vlen;
        const char *v;
        bool close_after = false;
        if ((v = header_value(head, head_len, "Transfer-Encoding", &vlen)) &&
            value_has(v, vlen, "chunked")) {
            /* the benches never send chunked bodies */
            queue(c, RESPONSE_501, sizeof RESPONSE_501 - 1);
            c->closing = true;
            pos = c->in_len;
            break;
        }
        if ((v = header_value(head, head_len, "Content-Length", &vlen)))
            c->body_left = strtoull(v, NULL, 10);
        v = header_value(head, head_len, "Connection", &vlen);
        if (v && value_has(v, vlen, "close"))
            close_after = true;
        const char *eol = memchr(head, '\r', head_len);
        if (eol && eol - head >= 8 && memcmp(eol - 8, "HTTP/1.0", 8) == 0 &&
            !(v && value_has(v, vlen, "keep-alive")))
            close_after = true;
        if (head_len > sizeof TRACE_PATH && memcmp(head, TRACE_PATH, sizeof TRACE_PATH - 1) == 0) {
            fprintf(stderr, "---- request head ----\n%.*s", (int)head_len, head);
            fflush(stderr);
        }
        if (close_after) {
            queue(c, RESPONSE_CLOSE, sizeof RESPONSE_CLOSE - 1);
            c->closing = true;
        } else {
            queue(c, RESPONSE, sizeof RESPONSE - 1);
        }
        pos += head_len;
    }
    memmove(c->in, c->in + pos, c->in_len - pos);
    c->in_len -= pos;
}

static void conn_close(int ep, conn_t *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    conns[c->fd] = NULL;
    free(c);
}

static void set_events(int ep, conn_t *c, bool want_out)
{
    if (want_out == c->want_out)
        return;
    struct epoll_event ev = {.events = want_out ? EPOLLOUT : EPOLLIN, .data.fd = c->fd};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = want_out;
}

/* Writes what is queued; returns false when the connection was closed. */
static bool flush(int ep, conn_t *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            set_events(ep, c, true); /* stop reading until the peer takes our answers */
            return true;
        }
        if (n <= 0) {
            conn_close(ep, c);
            return false;
        }
        c->out_off += (size_t)n;
    }
    c->out_off = c->out_len = 0;
    if (c->closing) {
        conn_close(ep, c);
        return false;
    }
    set_events(ep, c, false);
    return true;
}

/* Answers and writes until the input holds no complete request or the socket is full. */
static void process(int ep, conn_t *c)
{
    for (;;) {
        size_t before = c->in_len;
        parse(c);
        if (!flush(ep, c))
            return;
        if (c->want_out || c->in_len == before || c->in_len == 0)
            return;
    }
}

static void on_readable(int ep, conn_t *c)
{
    ssize_t n = read(c->fd, c->in + c->in_len, IN_CAP - c->in_len);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        conn_close(ep, c);
        return;
    }
    c->in_len += (size_t)n;
    process(ep, c);
}

static void on_writable(int ep, conn_t *c)
{
    if (flush(ep, c) && !c->want_out && c->in_len)
        process(ep, c); /* requests that waited for room */
}

static void accept_all(int ep, int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                perror("accept4");
            return;
        }
        if ((size_t)fd >= conns_cap) {
            size_t cap = conns_cap * 2;
            while (cap <= (size_t)fd)
                cap *= 2;
            conn_t **grown = realloc(conns, cap * sizeof *conns);
            if (!grown)
                die("realloc");
            memset(grown + conns_cap, 0, (cap - conns_cap) * sizeof *conns);
            conns = grown;
            conns_cap = cap;
        }
        conn_t *c = malloc(sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->closing = c->want_out = false;
        c->body_left = c->in_len = c->out_off = c->out_len = 0;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            free(c);
            continue;
        }
        conns[fd] = c;
    }
}

int main(int argc, char **argv)
{
    if (argc != 2 || atoi(argv[1]) <= 0 || atoi(argv[1]) > 65535) {
        fprintf(stderr,
                "usage: %s PORT\n"
                "Listens on 127.0.0.1:PORT and answers every HTTP/1.1 request with 200 \"hello "
                "world!\\n\".\n"
                "Requests for /trace-head* have their head printed to stderr.\n",
                argv[0]);
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0)
        die("socket");
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&sin, sizeof sin) < 0)
        die("bind");
    if (listen(lfd, 4096) < 0)
        die("listen");

    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    struct epoll_event lev = {.events = EPOLLIN, .data.fd = lfd};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) < 0)
        die("epoll_ctl");
    conns_cap = 1024;
    conns = calloc(conns_cap, sizeof *conns);
    if (!conns)
        die("calloc");
    fprintf(stderr, "backend: listening on 127.0.0.1:%s\n", argv[1]);

    struct epoll_event evs[MAX_EVENTS];
    while (!stop) {
        int n = epoll_wait(ep, evs, MAX_EVENTS, 1000);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                accept_all(ep, lfd);
                continue;
            }
            conn_t *c = (size_t)fd < conns_cap ? conns[fd] : NULL;
            if (!c)
                continue;
            if (c->want_out)
                on_writable(ep, c);
            else
                on_readable(ep, c);
        }
    }
    return 0;
}
