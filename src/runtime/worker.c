/* Worker threads: one event loop each, accepting on their own listening sockets and
 * serving connections with nothing shared on the request path but refcounts. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime_internal.h"

#define ACCEPTS_PER_WAKEUP 64
#define REAP_INTERVAL_MS 500
/* Pauses of accepting after running out of fds or memory: doubled while it keeps
 * happening, so a process at its limit wakes a few times a second rather than spins. */
#define ACCEPT_PAUSE_MIN_MS 100
#define ACCEPT_PAUSE_MAX_MS 1000
#define ACCEPT_REPORT_INTERVAL_MS 10000

/* This worker's side of one inventory socket. */
typedef struct tg_acceptor_s {
    struct event ev;
    tg_worker_t *w;
    tg_socket_t *sock;
    struct tg_acceptor_s *next;
} tg_acceptor_t;

/* The listener of the worker's generation on that socket, or NULL. */
static const tg_listener_rt_t *listener_for(tg_worker_t *w, const tg_socket_t *s)
{
    for (size_t k = 0; k < w->gen->nlisteners; k++) {
        const tg_conf_listener_t *lc = w->gen->listeners[k].conf;
        if (lc->protocol == s->protocol &&
            tg_addr_equal((const struct sockaddr *)&lc->addr, (const struct sockaddr *)&s->addr))
            return &w->gen->listeners[k];
    }
    return NULL;
}

static void on_datagram(evutil_socket_t fd, short what, void *arg)
{
    tg_acceptor_t *a = arg;
    tg_quic_on_readable(a->w->quic, fd, (const struct sockaddr *)&a->sock->addr, a->sock->addr_len,
                        listener_for(a->w, a->sock));
}

/* accept() failed for want of fds (EMFILE, ENFILE) or kernel memory (ENOBUFS, ENOMEM).
 * The connection stays in the backlog, so the level-triggered listening socket stays
 * readable and the loop would call on_accept again at once, forever: 100 % CPU and a log
 * line each time, until a reload cannot even open its certificates. Like nginx and HAProxy
 * we stop watching this worker's TCP sockets for a while instead (clients wait in the
 * backlog, nobody is refused), back off while it lasts, and log a summary now and then.
 * QUIC sockets stay: a datagram costs no fd. */
static void pause_accepts(tg_worker_t *w, int err)
{
    tg_runtime_t *rt = w->rt;
    uint64_t ms = w->accept_backoff_ms == 0 ? ACCEPT_PAUSE_MIN_MS : w->accept_backoff_ms * 2;
    if (ms > ACCEPT_PAUSE_MAX_MS)
        ms = ACCEPT_PAUSE_MAX_MS;
    w->accept_backoff_ms = ms;
    w->accepts_paused = true;
    for (tg_acceptor_t *a = w->acceptors; a != NULL; a = a->next)
        if (a->sock->protocol != TG_PROTO_QUIC)
            event_del(&a->ev);
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(w->accept_resume, &tv);

    atomic_fetch_add(&rt->accept_failures, 1);
    uint64_t now = tg_now_ms();
    uint64_t last = atomic_load(&rt->accept_report_ms);
    if (last != 0 && now - last < ACCEPT_REPORT_INTERVAL_MS)
        return;
    if (!atomic_compare_exchange_strong(&rt->accept_report_ms, &last, now))
        return; /* another worker reports this round */
    unsigned long failures = atomic_exchange(&rt->accept_failures, 0);
    tg_log_warn("accept: %s (%lu failures since the last report, all workers); pausing "
                "accepts for %llu ms on worker %u, up to %d ms while it lasts%s",
                strerror(err), failures, (unsigned long long)ms, w->id, ACCEPT_PAUSE_MAX_MS,
                err == EMFILE ? ": raise the open-files limit or lower "
                                "global.limits.max_connections"
                              : "");
}

static void on_accept_resume(evutil_socket_t fd, short what, void *arg)
{
    tg_worker_t *w = arg;
    w->accepts_paused = false;
    /* Acceptors closed meanwhile (stop, removed listener) are no longer in the list. */
    for (tg_acceptor_t *a = w->acceptors; a != NULL; a = a->next)
        if (a->sock->protocol != TG_PROTO_QUIC)
            event_add(&a->ev, NULL);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    tg_acceptor_t *a = arg;
    tg_worker_t *w = a->w;
    tg_runtime_t *rt = w->rt;
    /* Not the config's max_connections: the runtime's, lowered to what fds allow. */
    unsigned long max = atomic_load_explicit(&rt->max_conns, memory_order_relaxed);
    const tg_listener_rt_t *l = listener_for(w, a->sock);
    for (int i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof(peer);
        int fd = accept4(lfd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                pause_accepts(w, errno);
            else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                tg_log_warn("accept: %s", strerror(errno));
            return;
        }
        w->accept_backoff_ms = 0;
        if (l == NULL || atomic_fetch_add_explicit(&rt->conns, 1, memory_order_relaxed) >= max) {
            if (l != NULL)
                atomic_fetch_sub_explicit(&rt->conns, 1, memory_order_relaxed);
            close(fd);
            continue;
        }
        tg_h1_accept(&w->conns, fd, (struct sockaddr *)&peer, len, w->gen, l);
    }
}

static void acceptor_close(tg_acceptor_t *a)
{
    event_del(&a->ev);
    int *fd = &a->sock->fds[a->w->id];
    /* Closing (not just ignoring) the socket makes new connections refused once every
     * worker has done the same, instead of hanging in a backlog nobody reads. */
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
        atomic_fetch_sub(&a->sock->nopen, 1);
    }
    free(a);
}

/* Whether a socket of a removed listener (or of a stopping worker) can close now. A UDP
 * socket outlives its listener while QUIC connections still use it: their ACKs and the
 * rest of their requests come in there, and there is no accept queue to refuse. */
static bool acceptor_done(tg_worker_t *w, const tg_acceptor_t *a)
{
    if (!a->sock->removed && !w->stopping)
        return false;
    return a->sock->protocol != TG_PROTO_QUIC ||
           tg_quic_conns_on(w->quic, a->sock->fds[w->id]) == 0;
}

/* Listen on every live inventory socket, stop on removed ones. Called with gen_lock held,
 * the only time a worker looks at the inventory itself. Returns how many sockets of
 * removed listeners linger for their QUIC connections. */
static size_t sync_acceptors(tg_worker_t *w)
{
    tg_inventory_t *inv = &w->rt->inv;
    size_t lingering = 0;
    for (tg_acceptor_t **pa = &w->acceptors; *pa != NULL;) {
        tg_acceptor_t *a = *pa;
        if (acceptor_done(w, a)) {
            *pa = a->next;
            acceptor_close(a);
        } else {
            lingering += a->sock->removed;
            pa = &a->next;
        }
    }
    if (w->stopping)
        return lingering;
    for (size_t i = 0; i < inv->n; i++) {
        tg_socket_t *s = inv->socks[i];
        bool have = false;
        for (tg_acceptor_t *a = w->acceptors; a != NULL && !have; a = a->next)
            have = a->sock == s;
        /* Only sockets our generation has a listener for: a reload binds new sockets
         * before it publishes, and a connection accepted in between would find no
         * listener and be closed. */
        if (have || s->removed || listener_for(w, s) == NULL)
            continue;
        tg_acceptor_t *a = tg_calloc(1, sizeof(*a));
        a->w = w;
        a->sock = s;
        event_assign(&a->ev, w->base, s->fds[w->id], EV_READ | EV_PERSIST,
                     s->protocol == TG_PROTO_QUIC ? on_datagram : on_accept, a);
        if (s->protocol == TG_PROTO_QUIC || !w->accepts_paused)
            event_add(&a->ev, NULL); /* else on_accept_resume adds it */
        a->next = w->acceptors;
        w->acceptors = a;
    }
    return lingering;
}

/* The last client connection went while stopping: the worker ends. */
static void on_drained(void *arg)
{
    tg_worker_t *w = arg;
    if (w->stopping)
        event_base_loopexit(w->base, NULL);
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    tg_worker_t *w = arg;
    tg_log_warn("worker %u: drain timeout, closing %zu connections", w->id, w->conns.n);
    tg_proxy_conns_close_all(&w->conns);
    event_base_loopexit(w->base, NULL);
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    tg_worker_t *w = arg;
    uint64_t now = tg_now_ms();
    size_t left = tg_proxy_conns_reap(&w->conns, now);
    pthread_mutex_lock(&w->rt->gen_lock);
    left += sync_acceptors(w);
    pthread_mutex_unlock(&w->rt->gen_lock);
    if (left == 0)
        evtimer_del(w->reap_timer);
}

static void take_generation(tg_worker_t *w)
{
    tg_runtime_t *rt = w->rt;
    pthread_mutex_lock(&rt->gen_lock);
    tg_generation_t *old = w->gen;
    w->gen = tg_generation_ref(rt->published);
    size_t lingering = sync_acceptors(w);
    pthread_mutex_unlock(&rt->gen_lock);
    if (old == NULL)
        return;
    /* Connections of listeners that are gone finish their current request and close,
     * at the latest after drain_timeout. */
    uint64_t deadline = tg_now_ms() + w->gen->cfg->global.drain_timeout_ms;
    size_t retiring = lingering + tg_proxy_conns_retire(&w->conns, w->gen, deadline);
    if (retiring > 0) {
        struct timeval tv = {0, REAP_INTERVAL_MS * 1000};
        evtimer_add(w->reap_timer, &tv);
    }
    tg_generation_unref(old);
}

static void on_notify(evutil_socket_t fd, short what, void *arg)
{
    tg_worker_t *w = arg;
    int cmd = atomic_exchange(&w->command, WORKER_CMD_NONE);
    if ((cmd & WORKER_CMD_GENERATION) && !w->stopping)
        take_generation(w);
    if ((cmd & WORKER_CMD_STOP) && !w->stopping) {
        w->stopping = true;
        pthread_mutex_lock(&w->rt->gen_lock);
        sync_acceptors(w);
        pthread_mutex_unlock(&w->rt->gen_lock);
        uint64_t ms = w->gen->cfg->global.drain_timeout_ms;
        struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
        w->drain_timer = evtimer_new(w->base, on_drain_timeout, w);
        evtimer_add(w->drain_timer, &tv);
        tg_proxy_conns_drain(&w->conns);
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
    while (w->acceptors != NULL) {
        tg_acceptor_t *a = w->acceptors;
        w->acceptors = a->next;
        acceptor_close(a);
    }
    tg_proxy_conns_close_all(&w->conns);
    tg_uppool_destroy(&w->loop);
    return NULL;
}

int tg__worker_start(tg_worker_t *w)
{
    tg_runtime_t *rt = w->rt;
    w->base = event_base_new();
    if (w->base == NULL)
        return -1;
    tg_loop_init(&w->loop, w->base, w->id);
    w->conns.loop = &w->loop;
    w->conns.current = &w->gen;
    w->conns.process_conns = &rt->conns;
    w->conns.on_drained = on_drained;
    w->conns.arg = w;
    w->notify = event_new(w->base, -1, 0, on_notify, w);
    w->reap_timer = event_new(w->base, -1, EV_PERSIST, on_reap, w);
    w->accept_resume = evtimer_new(w->base, on_accept_resume, w);
    tg_quic_server_conf_t qconf = {
        .loop = &w->loop,
        .worker = w->id,
        .nworkers = rt->nworkers,
        .peers = rt->quic_peers,
        .conns = &w->conns,
        .max_conns = &rt->max_conns,
    };
    w->quic = tg_quic_server_new(&qconf);
    if (w->quic == NULL)
        return -1;
    take_generation(w);

    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* signals are the main thread's business */
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc == 0 ? 0 : -1;
}

void tg__worker_free(tg_worker_t *w)
{
    tg_quic_server_free(w->quic);
    event_free(w->notify);
    event_free(w->reap_timer);
    event_free(w->accept_resume);
    if (w->drain_timer != NULL)
        event_free(w->drain_timer);
    tg_generation_unref(w->gen);
    tg_loop_destroy(&w->loop);
    event_base_free(w->base);
}
