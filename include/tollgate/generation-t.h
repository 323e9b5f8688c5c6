/* generation types: one immutable snapshot of the whole configuration with every
 * certificate loaded and every TLS context built, and what every holder of one needs
 * (a reference, and the listener it came in on in a newer one). Building and freeing a
 * generation is the runtime's business (generation.h); this header is all that the data
 * path (proxy, frontends, quic) includes, so none of them depends on the runtime. */
#ifndef TOLLGATE_GENERATION_T_H
#define TOLLGATE_GENERATION_T_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tollgate/cert.h"
#include "tollgate/config.h"
#include "tollgate/core.h"
#include "tollgate/quic-t.h"
#include "tollgate/tls.h"
#include "tollgate/upstream.h"

typedef struct tg_listener_rt_s {
    const tg_conf_listener_t *conf;
    tg_tls_listener_t tls;    /* https only */
    tg_quic_listener_t *quic; /* quic only */
    tg_backend_t *backend;
    char *alt_svc; /* value of the Alt-Svc header to add, or NULL */
} tg_listener_rt_t;

typedef struct tg_generation_s tg_generation_t;

struct tg_generation_s {
    atomic_uint refs;
    uint64_t number;
    tg_config_t *cfg;
    tg_cert_t **certs; /* by config index */
    tg_backend_t *backends;
    tg_listener_rt_t *listeners;
    size_t nlisteners;
    /* Frees everything the generation owns: set by whoever built it. */
    void (*_free)(tg_generation_t *g);
};

static inline tg_generation_t *tg_generation_ref(tg_generation_t *g)
{
    atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
    return g;
}

/* Drop a reference (g may be NULL); the last one frees the generation. */
static inline void tg_generation_unref(tg_generation_t *g)
{
    if (g != NULL && atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) == 1)
        g->_free(g);
}

/* The listener of g on the same protocol and address as `like` (a listener of any
 * generation), or NULL: how a connection finds its listener in a newer generation. */
static inline const tg_listener_rt_t *tg_generation_listener(const tg_generation_t *g,
                                                             const tg_conf_listener_t *like)
{
    for (size_t i = 0; i < g->nlisteners; i++) {
        const tg_conf_listener_t *lc = g->listeners[i].conf;
        if (lc->protocol == like->protocol &&
            tg_addr_equal((const struct sockaddr *)&lc->addr, (const struct sockaddr *)&like->addr))
            return &g->listeners[i];
    }
    return NULL;
}

#endif
