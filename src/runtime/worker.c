/* Worker threads: one event loop each, accepting on their own listening sockets and
 * serving connections with nothing shared on the request path but refcounts. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime_internal.h"

#define ACCEPTS_PER_WAKEUP 64

static void on_accept(evutil_socket_t lfd, short what, void *arg);

/* The listener of the worker's generation that serves inventory socket i, or NULL. */
static const tg_listener_rt_t *listener_for(tg_worker_t *w, size_t i)
{
    const tg_socket_t *s = &w->rt->inv.socks[i];
    for (size_t k = 0; k < w->gen->nlisteners; k++) {
        const tg_conf_listener_t *lc = w->gen->listeners[k].conf;
        if (lc->protocol == s->protocol &&
            tg_addr_equal((const struct sockaddr *)&lc->addr, (const struct sockaddr *)&s->addr))
            return &w->gen->listeners[k];
    }
    return NULL;
}

typedef struct accept_arg_s {
    tg_worker_t *w;
    size_t sock;
} accept_arg_t;

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    accept_arg_t *aa = arg;
    tg_worker_t *w = aa->w;
    tg_runtime_t *rt = w->rt;
    uint64_t max = w->gen->cfg->global.limits.max_connections;
    for (int i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof(peer);
        int fd = accept4(lfd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                tg_log_warn("accept: %s", strerror(errno));
            return;
        }
        const tg_listener_rt_t *l = listener_for(w, aa->sock);
        if (l == NULL || atomic_fetch_add_explicit(&rt->conns, 1, memory_order_relaxed) >= max) {
            if (l != NULL)
                atomic_fetch_sub_explicit(&rt->conns, 1, memory_order_relaxed);
            close(fd);
            continue;
        }
        tg_h1_accept(&w->h1, fd, (struct sockaddr *)&peer, len, w->gen, l);
    }
}

static void stop_accepting(tg_worker_t *w)
{
    for (size_t i = 0; i < w->naccepts; i++) {
        event_del(&w->accepts[i]);
        int *fd = &w->rt->inv.socks[i].fds[w->id];
        /* Closing (not just ignoring) the socket makes new connections refused once every
         * worker has done the same, instead of hanging in a backlog nobody reads. */
        if (*fd >= 0) {
            close(*fd);
            *fd = -1;
        }
    }
}

static void on_drained(void *arg)
{
    tg_worker_t *w = arg;
    event_base_loopexit(w->base, NULL);
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    tg_worker_t *w = arg;
    tg_log_warn("worker %u: drain timeout, closing %zu connections", w->id, w->h1.nconns);
    tg_h1_close_all(&w->h1);
    event_base_loopexit(w->base, NULL);
}

static void on_notify(evutil_socket_t fd, short what, void *arg)
{
    tg_worker_t *w = arg;
    int cmd = atomic_exchange(&w->command, WORKER_CMD_NONE);
    if ((cmd & WORKER_CMD_GENERATION) && !w->stopping) {
        tg_generation_t *old = w->gen;
        w->gen = tg__runtime_acquire(w->rt);
        tg_generation_unref(old);
    }
    if ((cmd & WORKER_CMD_STOP) && !w->stopping) {
        w->stopping = true;
        stop_accepting(w);
        uint64_t ms = w->gen->cfg->global.drain_timeout_ms;
        struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
        w->drain_timer = evtimer_new(w->base, on_drain_timeout, w);
        evtimer_add(w->drain_timer, &tv);
        tg_h1_drain(&w->h1);
    }
}

void tg__worker_command(tg_worker_t *w, int cmd)
{
    atomic_fetch_or(&w->command, cmd);
    event_active(w->notify, EV_READ, 1);
}

static void *worker_main(void *arg)
{
    tg_worker_t *w = arg;
    event_base_dispatch(w->base);
    /* Drained or timed out: release everything this thread owns. */
    for (size_t i = 0; i < w->naccepts; i++)
        event_del(&w->accepts[i]);
    tg_h1_close_all(&w->h1);
    tg_uppool_destroy(&w->loop);
    return NULL;
}

int tg__worker_start(tg_worker_t *w)
{
    tg_runtime_t *rt = w->rt;
    struct event_config *ec = event_config_new();
    /* Each base is used by its own thread only; cross-thread wakeups go through
     * event_active on `notify`, which needs the base's notification support. */
    w->base = event_base_new_with_config(ec);
    event_config_free(ec);
    if (w->base == NULL)
        return -1;
    tg_loop_init(&w->loop, w->base, w->id);
    w->h1.loop = &w->loop;
    w->h1.process_conns = &rt->conns;
    w->h1.on_drained = on_drained;
    w->h1.arg = w;
    w->gen = tg__runtime_acquire(rt);
    w->notify = event_new(w->base, -1, 0, on_notify, w);

    w->naccepts = rt->inv.n;
    w->accepts = tg_calloc(w->naccepts, sizeof(struct event));
    accept_arg_t *args = tg_calloc(w->naccepts, sizeof(*args));
    w->accept_args = args;
    for (size_t i = 0; i < w->naccepts; i++) {
        args[i] = (accept_arg_t){w, i};
        event_assign(&w->accepts[i], w->base, rt->inv.socks[i].fds[w->id], EV_READ | EV_PERSIST,
                     on_accept, &args[i]);
        event_add(&w->accepts[i], NULL);
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* signals are the main thread's business */
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc == 0 ? 0 : -1;
}
