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
    atomic_ulong *process_conns; /* all workers, for global.limits.max_connections */
    bool draining;
    void (*on_drained)(void *arg);
    void *arg;
} tg_h1_server_t;

/* Take an accepted socket. The connection takes its own reference on gen. */
void tg_h1_accept(tg_h1_server_t *srv, int fd, const struct sockaddr *peer, socklen_t peer_len,
                  tg_generation_t *gen, const tg_listener_rt_t *listener);
/* Graceful stop: close idle connections now and the others after their current
 * response; on_drained is called once none is left. */
void tg_h1_drain(tg_h1_server_t *srv);
/* Close every connection at once (drain timeout). */
void tg_h1_close_all(tg_h1_server_t *srv);

#endif
