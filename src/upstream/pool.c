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
    event_del(&uc->rev);
    event_del(&uc->wev);
    close(uc->fd);
    tg_buf_release(uc->loop, &uc->in);
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

static void on_event(evutil_socket_t fd, short what, void *arg)
{
    tg_upconn_t *uc = arg;
    if (uc->_cb != NULL) {
        if (what == EV_TIMEOUT)
            return; /* the idle timeout of its time in the pool */
        uc->_cb(uc, what, uc->_arg);
        return;
    }
    /* Idle in the pool (or a stale idle timeout reaching an owner, which ignores it):
     * readable means the server closed it (or sent garbage), and a
     * timeout means it was idle too long. Either way it is of no more use. */
    unlink_idle(uc);
    upconn_close(uc);
}

static tg_upconn_t *connect_new(tg_loop_t *loop, tg_uppool_entry_t *e)
{
    int fd = socket(e->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&e->addr, e->addr_len) != 0 && errno != EINPROGRESS) {
        int saved = errno;
        close(fd);
        errno = saved;
        return NULL;
    }
    tg_upconn_t *uc = tg_calloc(1, sizeof(*uc));
    uc->loop = loop;
    uc->fd = fd;
    uc->_entry = e;
    event_assign(&uc->rev, loop->base, fd, EV_READ | EV_PERSIST, on_event, uc);
    event_assign(&uc->wev, loop->base, fd, EV_WRITE | EV_PERSIST, on_event, uc);
    return uc;
}

tg_upconn_t *tg_upconn_get(tg_loop_t *loop, const struct sockaddr *addr, socklen_t addr_len,
                           tg_upconn_cb cb, void *arg)
{
    tg_uppool_entry_t *e = entry_for(loop, addr, addr_len);
    tg_upconn_t *uc = e->idle;
    if (uc != NULL) {
        e->idle = uc->_next;
        e->nidle--;
        uc->_next = NULL;
        /* rev stays armed (with its idle timeout, which the owner ignores): no epoll_ctl
         * on the hot path. */
        uc->reused = true;
    } else {
        uc = connect_new(loop, e);
        if (uc == NULL)
            return NULL;
    }
    uc->_cb = cb;
    uc->_arg = arg;
    return uc;
}

void tg_upconn_want(tg_upconn_t *uc, short what)
{
    if (what & EV_READ)
        event_add(&uc->rev, NULL);
    else
        event_del(&uc->rev);
    if (what & EV_WRITE)
        event_add(&uc->wev, NULL);
    else
        event_del(&uc->wev);
}

void tg_upconn_release(tg_upconn_t *uc, bool reusable)
{
    tg_uppool_entry_t *e = uc->_entry;
    if (!reusable || !uc->connected || tg_buf_len(&uc->in) != 0 ||
        e->nidle >= IDLE_PER_SERVER_MAX) {
        upconn_close(uc);
        return;
    }
    tg_buf_release(uc->loop, &uc->in);
    event_del(&uc->wev);
    uc->_cb = NULL;
    uc->_arg = NULL;
    uc->_next = e->idle;
    e->idle = uc;
    e->nidle++;
    struct timeval tv = {IDLE_TIMEOUT_MS / 1000, 0};
    event_add(&uc->rev, &tv);
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
