/* Active health checks: one probe per server every interval, from the main thread, so
 * workers only read an atomic flag. A probe is a GET of the configured path; any 2xx or
 * 3xx within the timeout is a success. rise successes bring a server in, fall failures
 * take it out. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tollgate/core.h"
#include "tollgate/upstream.h"

typedef struct probe_s {
    tg_backend_t *backend;
    tg_upstream_server_t *server;
    struct event timer; /* the interval */
    struct event io;    /* the probe in flight */
    int fd;
    size_t sent;
    char reply[64];
    size_t got;
    uint64_t deadline_ms;
} probe_t;

struct tg_health_s {
    probe_t *probes;
    size_t n;
};

static void schedule(probe_t *p)
{
    uint64_t ms = p->backend->conf->health.interval_ms;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(&p->timer, &tv);
}

static void verdict(probe_t *p, bool ok, const char *why)
{
    if (p->fd >= 0) {
        event_del(&p->io);
        close(p->fd);
        p->fd = -1;
    }
    const tg_conf_health_t *hc = &p->backend->conf->health;
    tg_upstream_server_t *s = p->server;
    bool up = atomic_load(&s->health_up);
    if (ok) {
        s->_fail_streak = 0;
        if (!up && ++s->_ok_streak >= hc->rise) {
            atomic_store(&s->health_up, true);
            tg_log_info("backend \"%s\" server %s is up", p->backend->conf->id, s->conf->text);
        }
    } else {
        s->_ok_streak = 0;
        if (up && ++s->_fail_streak >= hc->fall) {
            atomic_store(&s->health_up, false);
            tg_log_warn("backend \"%s\" server %s is down: %s", p->backend->conf->id, s->conf->text,
                        why);
        }
    }
    schedule(p);
}

static void on_io(evutil_socket_t fd, short what, void *arg)
{
    probe_t *p = arg;
    if (what & EV_TIMEOUT) {
        verdict(p, false, "timeout");
        return;
    }
    const tg_conf_health_t *hc = &p->backend->conf->health;
    char req[512];
    int len = snprintf(req, sizeof(req),
                       "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n"
                       "User-Agent: tollgate-health\r\n\r\n",
                       hc->path, p->server->conf->text);
    if (p->sent < (size_t)len) {
        ssize_t n = send(fd, req + p->sent, (size_t)len - p->sent, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN) {
            verdict(p, false, strerror(errno));
            return;
        }
        if (n > 0)
            p->sent += (size_t)n;
        if (p->sent == (size_t)len) {
            /* Sent: from now on wait for the answer's status line. */
            event_del(&p->io);
            event_assign(&p->io, event_get_base(&p->timer), fd, EV_READ | EV_PERSIST, on_io, p);
            uint64_t left = p->deadline_ms > tg_now_ms() ? p->deadline_ms - tg_now_ms() : 1;
            struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
            event_add(&p->io, &tv);
        }
        return;
    }
    ssize_t n = recv(fd, p->reply + p->got, sizeof(p->reply) - 1 - p->got, 0);
    if (n < 0 && errno == EAGAIN)
        return;
    if (n <= 0) {
        verdict(p, false, n == 0 ? "closed without an answer" : strerror(errno));
        return;
    }
    p->got += (size_t)n;
    if (p->got < 12 && p->got < sizeof(p->reply) - 1)
        return;
    p->reply[p->got] = '\0';
    bool ok = strncmp(p->reply, "HTTP/1.", 7) == 0 && (p->reply[9] == '2' || p->reply[9] == '3');
    verdict(p, ok, "bad status");
}

static void on_timer(evutil_socket_t unused, short what, void *arg)
{
    probe_t *p = arg;
    const tg_upstream_server_t *s = p->server;
    p->fd = socket(s->conf->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p->fd < 0) {
        verdict(p, false, strerror(errno));
        return;
    }
    if (connect(p->fd, (const struct sockaddr *)&s->conf->addr, s->conf->addr_len) != 0 &&
        errno != EINPROGRESS) {
        verdict(p, false, strerror(errno));
        return;
    }
    p->sent = p->got = 0;
    uint64_t ms = p->backend->conf->health.timeout_ms;
    p->deadline_ms = tg_now_ms() + ms;
    event_assign(&p->io, event_get_base(&p->timer), p->fd, EV_WRITE | EV_PERSIST, on_io, p);
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    event_add(&p->io, &tv);
}

tg_health_t *tg_health_start(struct event_base *base, tg_backend_t *backends, size_t n)
{
    tg_health_t *h = tg_calloc(1, sizeof(*h));
    for (size_t i = 0; i < n; i++)
        if (backends[i].conf->health.enabled)
            h->n += backends[i].nservers;
    h->probes = tg_calloc(h->n, sizeof(probe_t));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!backends[i].conf->health.enabled)
            continue;
        for (size_t j = 0; j < backends[i].nservers; j++) {
            probe_t *p = &h->probes[k++];
            p->backend = &backends[i];
            p->server = &backends[i].servers[j];
            p->fd = -1;
            evtimer_assign(&p->timer, base, on_timer, p);
            /* The first probe goes out at once: a dead server is found within one
             * timeout of start, not one interval. */
            struct timeval tv = {0, 0};
            evtimer_add(&p->timer, &tv);
        }
    }
    return h;
}

void tg_health_stop(tg_health_t *h)
{
    if (h == NULL)
        return;
    for (size_t i = 0; i < h->n; i++) {
        probe_t *p = &h->probes[i];
        evtimer_del(&p->timer);
        if (p->fd >= 0) {
            event_del(&p->io);
            close(p->fd);
        }
    }
    free(h->probes);
    free(h);
}
