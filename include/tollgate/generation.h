/* generation: one immutable snapshot of the whole configuration with every certificate
 * loaded and every TLS context built. Connections hold a reference for their whole life,
 * so a reload never changes what an established connection sees. */
#ifndef TOLLGATE_GENERATION_H
#define TOLLGATE_GENERATION_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "tollgate/cert.h"
#include "tollgate/config.h"
#include "tollgate/tls.h"
#include "tollgate/upstream.h"

typedef struct tg_listener_rt_s {
    const tg_conf_listener_t *conf;
    tg_tls_listener_t tls;           /* https only */
    struct tg_quic_listener_s *quic; /* quic only */
    tg_backend_t *backend;
    char *alt_svc; /* value of the Alt-Svc header to add, or NULL */
} tg_listener_rt_t;

typedef struct tg_generation_s {
    atomic_uint refs;
    uint64_t number;
    tg_config_t *cfg;
    tg_cert_t **certs; /* by config index */
    tg_backend_t *backends;
    tg_listener_rt_t *listeners;
    size_t nlisteners;
} tg_generation_t;

/* Load every certificate and build every context of cfg (taking ownership of it).
 * Returns a generation holding one reference, or NULL with every problem in errs (cfg is
 * freed then). */
tg_generation_t *tg_generation_build(tg_config_t *cfg, tg_errors_t *errs);
static inline tg_generation_t *tg_generation_ref(tg_generation_t *g)
{
    atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
    return g;
}
/* The listener of g on the same protocol and address as `like` (a listener of any
 * generation), or NULL: how a connection finds its listener in a newer generation. */
const tg_listener_rt_t *tg_generation_listener(const tg_generation_t *g,
                                               const tg_conf_listener_t *like);
/* Drop a reference; the last one frees everything the generation owns. */
void tg_generation_unref(tg_generation_t *g);

#endif
