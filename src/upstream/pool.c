/* Keep-alive connections to backend servers, one pool per worker, keyed by address so
 * they outlive generations: a reload that keeps a server keeps its warm connections. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tollgate/core.h"
#include "tollgate/upstream.h"

#define IDLE_PER_SERVER_MAX 128
#define IDLE_TIMEOUT_MS 30000

typedef struct tg_uppool_entry_s {
    struct sockaddr_storage addr;
    socklen_t addr_len;
    tg_upconn_t *idle; /* most recently used first */
    unsigned nidle;
} tg_uppool_entry_t;

typedef struct tg_uppool_s {
    tg_uppool_entry_t **entries; /* each allocated once: connections point at them */
    size_t n;
} tg_uppool_t;

static tg_uppool_entry_t *entry_for(tg_loop_t *loop, const struct sockaddr *addr,
                                    socklen_t addr_len)
{
    if (loop->uppool == NULL)
        loop->uppool = tg_calloc(1, sizeof(tg_uppool_t));
    tg_uppool_t *pool = loop->uppool;
    for (size_t i = 0; i < pool->n; i++)
        if (tg_addr_equal((struct sockaddr *)&pool->entries[i]->addr, addr))
            return pool->entries[i];
    /* A worker talks to a handful of servers: a linear scan beats hashing here. */
    pool->entries = tg_realloc(pool->entries, (pool->n + 1) * sizeof(*pool->entries));
    tg_uppool_entry_t *e = tg_calloc(1, sizeof(*e));
    pool->entries[pool->n++] = e;
    memcpy(&e->addr, addr, addr_len);
    e->addr_len = addr_len;
    return e;
}

static void upconn_close(tg_upconn_t *uc)
{
    event_del(&uc->_rev);
    event_del(&uc->_wev);
    evtimer_del(&uc->_timer);
    close(uc->_fd);
    tg_buf_release(uc->_loop, &uc->in);
    free(uc);
}

static void unlink_idle(tg_upconn_t *uc)
{
    tg_uppool_entry_t *e = uc->_entry;
    for (tg_upconn_t **p = &e->idle; *p != NULL; p = &(*p)->_next) {
        if (*p == uc) {
            *p = uc->_next;
            e->nidle--;
            break;
        }
    }
    uc->_next = NULL;
}

static void timer_arm(tg_upconn_t *uc, uint64_t ms)
{
    evtimer_add(&uc->_timer, tg_loop_timeout(uc->_loop, ms));
}

/* The non-blocking connect finished, one way or the other. */
static void on_connect(tg_upconn_t *uc)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(uc->_fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    evtimer_del(&uc->_timer);
    event_del(&uc->_wev);
    if (err != 0) {
        uc->_cb(uc, TG_UP_CONNECT_FAILED, err, uc->_arg);
        return;
    }
    uc->_connected = true;
    uc->_cb(uc, TG_UP_READY, 0, uc->_arg);
}

static void on_event(evutil_socket_t fd, short what, void *arg)
{
    tg_upconn_t *uc = arg;
    if (uc->_cb == NULL) {
        /* Idle in the pool: readable means the server closed it (or sent garbage), and
         * a timeout means it was idle too long. Either way it is of no more use. */
        unlink_idle(uc);
        upconn_close(uc);
        return;
    }
    if (what == EV_TIMEOUT)
        return; /* the idle timeout of its time in the pool, which rev still carries */
    if (!uc->_connected) {
        on_connect(uc);
        return;
    }
    /* rev and wev are separate events: each call carries one direction. */
    uc->_cb(uc, (what & EV_WRITE) ? TG_UP_WRITABLE : TG_UP_READABLE, 0, uc->_arg);
}

/* connect_timeout until connected, response_timeout while the holder waits on the server. */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    tg_upconn_t *uc = arg;
    if (!uc->_connected) {
        event_del(&uc->_wev);
        uc->_cb(uc, TG_UP_CONNECT_FAILED, ETIMEDOUT, uc->_arg);
        return;
    }
    uc->_cb(uc, TG_UP_SILENT, 0, uc->_arg);
}

static tg_upconn_t *connect_new(tg_loop_t *loop, tg_uppool_entry_t *e)
{
    int fd = socket(e->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    bool done = connect(fd, (struct sockaddr *)&e->addr, e->addr_len) == 0;
    if (!done && errno != EINPROGRESS) {
        int saved = errno;
        close(fd);
        errno = saved;
        return NULL;
    }
    tg_upconn_t *uc = tg_calloc(1, sizeof(*uc));
    uc->_loop = loop;
    uc->_fd = fd;
    uc->_entry = e;
    uc->_connected = done;
    event_assign(&uc->_rev, loop->base, fd, EV_READ | EV_PERSIST, on_event, uc);
    event_assign(&uc->_wev, loop->base, fd, EV_WRITE | EV_PERSIST, on_event, uc);
    evtimer_assign(&uc->_timer, loop->base, on_timer, uc);
    return uc;
}

tg_upconn_t *tg_upconn_get(tg_loop_t *loop, const tg_backend_t *b, const tg_upstream_server_t *s,
                           tg_upconn_cb cb, void *arg)
{
    const tg_conf_server_t *sc = s->conf;
    tg_uppool_entry_t *e = entry_for(loop, (const struct sockaddr *)&sc->addr, sc->addr_len);
    tg_upconn_t *uc = e->idle;
    if (uc != NULL) {
        e->idle = uc->_next;
        e->nidle--;
        uc->_next = NULL;
        /* rev stays armed (with its idle timeout, which on_event ignores now): no
         * epoll_ctl on the hot path. */
        uc->_reused = true;
    } else {
        uc = connect_new(loop, e);
        if (uc == NULL)
            return NULL;
    }
    uc->_cb = cb;
    uc->_arg = arg;
    uc->_connect_timeout_ms = b->conf->connect_timeout_ms;
    uc->_response_timeout_ms = b->conf->response_timeout_ms;
    uc->_waiting = false;
    uc->_answered = false;
    if (!uc->_connected) {
        event_add(&uc->_wev, NULL);
        timer_arm(uc, uc->_connect_timeout_ms);
    }
    return uc;
}

bool tg_upconn_connected(const tg_upconn_t *uc)
{
    return uc->_connected;
}

bool tg_upconn_maybe_stale(const tg_upconn_t *uc)
{
    return uc->_reused && !uc->_answered;
}

bool tg_upconn_reused(const tg_upconn_t *uc)
{
    return uc->_reused;
}

void tg_upconn_drop_goodbye(tg_upconn_t *uc)
{
    tg_buf_release(uc->_loop, &uc->in);
    uc->_answered = false;
}

void tg_upconn_want(tg_upconn_t *uc, short what)
{
    if (!uc->_connected)
        return; /* the connect owns the write event until it reports */
    if (what & EV_READ)
        event_add(&uc->_rev, NULL);
    else
        event_del(&uc->_rev);
    if (what & EV_WRITE)
        event_add(&uc->_wev, NULL);
    else
        event_del(&uc->_wev);
}

void tg_upconn_wait(tg_upconn_t *uc, bool waiting)
{
    if (!uc->_connected || waiting == uc->_waiting)
        return; /* timed by connect_timeout until then; or no change */
    uc->_waiting = waiting;
    if (waiting)
        timer_arm(uc, uc->_response_timeout_ms);
    else
        evtimer_del(&uc->_timer);
}

ssize_t tg_upconn_send(tg_upconn_t *uc, const void *data, size_t len)
{
    ssize_t n = send(uc->_fd, data, len, MSG_NOSIGNAL);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    if (n > 0 && uc->_waiting)
        timer_arm(uc, uc->_response_timeout_ms); /* it took bytes: not silent */
    return n;
}

ssize_t tg_upconn_recv(tg_upconn_t *uc)
{
    size_t room = tg_buf_reserve(uc->_loop, &uc->in);
    if (room == 0)
        return 0;
    ssize_t n = recv(uc->_fd, uc->in.data + uc->in.end, room, 0);
    if (n < 0 && errno == EINTR)
        errno = EAGAIN;
    if (n <= 0) {
        if (tg_buf_len(&uc->in) == 0)
            tg_buf_release(uc->_loop, &uc->in);
        return n == 0 ? TG_UPCONN_EOF : -1;
    }
    uc->in.end += (size_t)n;
    uc->_answered = true;
    if (uc->_waiting) /* the response timeout bounds each wait, as proxy_read_timeout */
        timer_arm(uc, uc->_response_timeout_ms);
    return n;
}

void tg_upconn_release(tg_upconn_t *uc, bool reusable)
{
    tg_uppool_entry_t *e = uc->_entry;
    if (!reusable || !uc->_connected || tg_buf_len(&uc->in) != 0 ||
        e->nidle >= IDLE_PER_SERVER_MAX) {
        upconn_close(uc);
        return;
    }
    tg_buf_release(uc->_loop, &uc->in);
    event_del(&uc->_wev);
    evtimer_del(&uc->_timer);
    uc->_cb = NULL;
    uc->_arg = NULL;
    uc->_waiting = false;
    uc->_next = e->idle;
    e->idle = uc;
    e->nidle++;
    struct timeval tv = {IDLE_TIMEOUT_MS / 1000, 0};
    event_add(&uc->_rev, &tv);
}

void tg_uppool_destroy(tg_loop_t *loop)
{
    tg_uppool_t *pool = loop->uppool;
    if (pool == NULL)
        return;
    for (size_t i = 0; i < pool->n; i++) {
        while (pool->entries[i]->idle != NULL) {
            tg_upconn_t *uc = pool->entries[i]->idle;
            pool->entries[i]->idle = uc->_next;
            upconn_close(uc);
        }
        free(pool->entries[i]);
    }
    free(pool->entries);
    free(pool);
    loop->uppool = NULL;
}
