/* frontend: client connections that turn bytes into exchanges. HTTP/1.1 over TLS (h1)
 * today; HTTP/2 or HTTP/3 would be more frontends over the same proxy. */
#ifndef TOLLGATE_FRONTEND_H
#define TOLLGATE_FRONTEND_H

#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "tollgate/generation.h"
#include "tollgate/loop.h"

typedef struct tg_h1conn_s tg_h1conn_t;

/* The HTTP/1 frontend of one worker: its connections, and how it tells the worker that
 * the last one is gone while draining. */
typedef struct tg_h1_server_s {
    tg_loop_t *loop;
    tg_h1conn_t *conns; /* doubly linked through the connections */
    size_t nconns;
    atomic_ulong *process_conns;     /* all workers, for global.limits.max_connections */
    tg_generation_t *const *current; /* the worker's generation: new requests route by it */
    size_t nretiring;                /* connections of removed listeners still open */
    bool draining;
    void (*on_drained)(void *arg);
    void *arg;
} tg_h1_server_t;

/* Take an accepted socket, already counted in *process_conns: the connection uncounts it
 * when it ends, and so does a failure to set it up. It takes its own reference on gen. */
void tg_h1_accept(tg_h1_server_t *srv, int fd, const struct sockaddr *peer, socklen_t peer_len,
                  tg_generation_t *gen, const tg_listener_rt_t *listener);
/* Graceful stop: close idle connections now and the others after their current
 * response; on_drained is called once none is left. */
void tg_h1_drain(tg_h1_server_t *srv);
/* After a reload: connections whose listener gen no longer has, or now verifies clients
 * otherwise (mutual authentication on or off, CAs, CRLs, depth), close when idle, after
 * their current response otherwise, and at deadline_ms at the latest (tg_h1_reap).
 * Returns how many are still open. */
size_t tg_h1_retire(tg_h1_server_t *srv, const tg_generation_t *gen, uint64_t deadline_ms);
/* Close retiring connections past their deadline; returns how many are left. */
size_t tg_h1_reap(tg_h1_server_t *srv, uint64_t now_ms);
/* Close every connection at once (drain timeout). */
void tg_h1_close_all(tg_h1_server_t *srv);

#endif
