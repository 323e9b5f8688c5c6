/* frontend: client connections over TLS that turn bytes into exchanges. HTTP/1.1 (h1)
 * today; HTTP/2 will be one more file set here. Their connections live in the worker's
 * connection set (proxy.h), beside HTTP/3's, which ends them on stop and reload. */
#ifndef TOLLGATE_FRONTEND_H
#define TOLLGATE_FRONTEND_H

#include <sys/socket.h>

#include "tollgate/generation-t.h"
#include "tollgate/proxy.h"

/* Take an accepted socket of listener (of gen), already counted in *set->process_conns:
 * the connection uncounts it when it ends, and so does a failure to set it up. It takes
 * its own reference on gen. */
void tg_h1_accept(tg_proxy_conns_t *set, int fd, const struct sockaddr *peer, socklen_t peer_len,
                  tg_generation_t *gen, const tg_listener_rt_t *listener);

#endif
