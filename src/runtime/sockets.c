/* The listening socket inventory. */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime_internal.h"

#define LISTEN_BACKLOG 4096

ssize_t tg__inventory_find(const tg_inventory_t *inv, const tg_conf_listener_t *lc)
{
    for (size_t i = 0; i < inv->n; i++)
        if (inv->socks[i].protocol == lc->protocol &&
            tg_addr_equal((const struct sockaddr *)&inv->socks[i].addr,
                          (const struct sockaddr *)&lc->addr))
            return (ssize_t)i;
    return -1;
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

int tg__inventory_bind(tg_inventory_t *inv, const tg_config_t *cfg, tg_errors_t *errs)
{
    size_t before = errs->nerrors;
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const tg_conf_listener_t *lc = &cfg->listeners[i];
        if (lc->protocol != TG_PROTO_HTTPS || tg__inventory_find(inv, lc) >= 0)
            continue;
        tg_socket_t s = {.protocol = lc->protocol, .addr_len = lc->addr_len};
        memcpy(&s.addr, &lc->addr, lc->addr_len);
        s.fds = tg_calloc(inv->nworkers, sizeof(int));
        int err = 0;
        unsigned k;
        for (k = 0; k < inv->nworkers; k++)
            if ((s.fds[k] = open_one(lc, &err)) < 0)
                break;
        if (k < inv->nworkers) {
            while (k-- > 0)
                close(s.fds[k]);
            free(s.fds);
            tg_errors_add(errs, TG_SEV_ERROR, cfg->path, lc->listen_pos.line, lc->listen_pos.col,
                          "listener \"%s\": cannot listen on %s: %s", lc->id, lc->listen_text,
                          strerror(err));
            continue;
        }
        inv->socks = tg_realloc(inv->socks, (inv->n + 1) * sizeof(*inv->socks));
        inv->socks[inv->n++] = s;
    }
    return errs->nerrors == before ? 0 : -1;
}

void tg__inventory_close(tg_inventory_t *inv)
{
    for (size_t i = 0; i < inv->n; i++) {
        for (unsigned k = 0; k < inv->nworkers; k++)
            if (inv->socks[i].fds[k] >= 0)
                close(inv->socks[i].fds[k]);
        free(inv->socks[i].fds);
    }
    free(inv->socks);
    inv->socks = NULL;
    inv->n = 0;
}
