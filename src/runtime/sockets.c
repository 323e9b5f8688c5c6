/* The listening socket inventory: sockets are keyed by (protocol, address), not by
 * generation, so a reload that keeps a listener keeps its sockets and their backlogs. */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime_internal.h"
#include "tollgate/quic.h"

#define LISTEN_BACKLOG 4096

static bool same_key(const tg_socket_t *s, const tg_conf_listener_t *lc)
{
    return s->protocol == lc->protocol &&
           tg_addr_equal((const struct sockaddr *)&s->addr, (const struct sockaddr *)&lc->addr);
}

static tg_socket_t *find_live(const tg_inventory_t *inv, const tg_conf_listener_t *lc)
{
    for (size_t i = 0; i < inv->n; i++)
        if (!inv->socks[i]->removed && same_key(inv->socks[i], lc))
            return inv->socks[i];
    return NULL;
}

static int open_one(const tg_conf_listener_t *lc, int *out_errno)
{
    int type = lc->protocol == TG_PROTO_HTTPS ? SOCK_STREAM : SOCK_DGRAM;
    int fd = socket(lc->addr.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* One socket per worker: the kernel spreads connections without a shared accept
     * lock or thundering herd. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
        goto fail;
    if (lc->addr.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (type == SOCK_DGRAM && tg_quic_socket_prepare(fd, lc->addr.ss_family) != 0)
        goto fail;
    if (bind(fd, (const struct sockaddr *)&lc->addr, lc->addr_len) != 0)
        goto fail;
    if (type == SOCK_STREAM && listen(fd, LISTEN_BACKLOG) != 0)
        goto fail;
    return fd;
fail:
    *out_errno = errno;
    if (fd >= 0)
        close(fd);
    return -1;
}

static void socket_free(tg_socket_t *s, unsigned nworkers)
{
    for (unsigned k = 0; k < nworkers; k++)
        if (s->fds[k] >= 0)
            close(s->fds[k]);
    free(s->fds);
    free(s);
}

static tg_socket_t *socket_open(const tg_conf_listener_t *lc, unsigned nworkers, int *err)
{
    tg_socket_t *s = tg_calloc(1, sizeof(*s));
    s->protocol = lc->protocol;
    s->addr_len = lc->addr_len;
    memcpy(&s->addr, &lc->addr, lc->addr_len);
    s->fds = tg_malloc(nworkers * sizeof(int));
    for (unsigned k = 0; k < nworkers; k++)
        s->fds[k] = -1;
    for (unsigned k = 0; k < nworkers; k++) {
        if ((s->fds[k] = open_one(lc, err)) < 0) {
            socket_free(s, nworkers);
            return NULL;
        }
    }
    atomic_init(&s->nopen, nworkers);
    return s;
}

int tg__inventory_bind(tg_inventory_t *inv, const tg_config_t *cfg, tg_errors_t *errs)
{
    tg_socket_t **fresh = tg_calloc(cfg->nlisteners, sizeof(*fresh));
    size_t nfresh = 0;
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const tg_conf_listener_t *lc = &cfg->listeners[i];
        if (find_live(inv, lc) != NULL)
            continue;
        int err = 0;
        tg_socket_t *s = socket_open(lc, inv->nworkers, &err);
        if (s == NULL) {
            tg_errors_add(errs, TG_SEV_ERROR, cfg->path, lc->listen_pos.line, lc->listen_pos.col,
                          "listener \"%s\": cannot listen on %s: %s", lc->id, lc->listen_text,
                          strerror(err));
            continue;
        }
        fresh[nfresh++] = s;
    }
    if (errs->nerrors > 0) {
        while (nfresh > 0)
            socket_free(fresh[--nfresh], inv->nworkers);
        free(fresh);
        return -1;
    }
    inv->socks = tg_realloc(inv->socks, (inv->n + nfresh) * sizeof(*inv->socks));
    memcpy(inv->socks + inv->n, fresh, nfresh * sizeof(*fresh));
    inv->n += nfresh;
    free(fresh);
    return 0;
}

void tg__inventory_retire(tg_inventory_t *inv, const tg_config_t *cfg)
{
    size_t kept = 0;
    for (size_t i = 0; i < inv->n; i++) {
        tg_socket_t *s = inv->socks[i];
        bool used = false;
        for (size_t j = 0; j < cfg->nlisteners && !used; j++)
            used = same_key(s, &cfg->listeners[j]);
        if (!used)
            s->removed = true;
        if (s->removed && atomic_load(&s->nopen) == 0) {
            socket_free(s, inv->nworkers);
            continue;
        }
        inv->socks[kept++] = s;
    }
    inv->n = kept;
}

void tg__inventory_close(tg_inventory_t *inv)
{
    for (size_t i = 0; i < inv->n; i++)
        socket_free(inv->socks[i], inv->nworkers);
    free(inv->socks);
    inv->socks = NULL;
    inv->n = 0;
}
