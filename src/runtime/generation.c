/* Building and freeing generations: all certificates read afresh (never cached by path:
 * an operator may have replaced a file in place), all contexts built, or nothing. */
#include <stdlib.h>
#include <string.h>

#include "tollgate/generation.h"
#include "tollgate/quic.h"

static void generation_free(tg_generation_t *g)
{
    for (size_t i = 0; i < g->nlisteners; i++) {
        tg_tls_listener_free(&g->listeners[i].tls);
        tg_quic_listener_free(g->listeners[i].quic);
        free(g->listeners[i].alt_svc);
    }
    free(g->listeners);
    if (g->cfg != NULL) {
        tg_backends_free(g->backends, g->cfg->nbackends);
        for (size_t i = 0; g->certs != NULL && i < g->cfg->ncerts; i++)
            tg_cert_free(g->certs[i]);
    }
    free(g->certs);
    tg_config_free(g->cfg);
    free(g);
}

tg_generation_t *tg_generation_build(tg_config_t *cfg, tg_errors_t *errs)
{
    tg_generation_t *g = tg_calloc(1, sizeof(*g));
    atomic_init(&g->refs, 1);
    g->_free = generation_free;
    g->cfg = cfg;
    size_t before = errs->nerrors;

    g->certs = tg_calloc(cfg->ncerts, sizeof(*g->certs));
    for (size_t i = 0; i < cfg->ncerts; i++)
        g->certs[i] = tg_cert_load(&cfg->certs[i], cfg->path, errs);
    if (errs->nerrors != before)
        goto fail;

    g->backends = tg_backends_new(cfg);
    g->nlisteners = cfg->nlisteners;
    g->listeners = tg_calloc(cfg->nlisteners, sizeof(*g->listeners));
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const tg_conf_listener_t *lc = &cfg->listeners[i];
        tg_listener_rt_t *l = &g->listeners[i];
        l->conf = lc;
        l->backend = &g->backends[lc->backend];
        if (lc->has_alt_svc) {
            const tg_conf_listener_t *q = &cfg->listeners[lc->alt_svc];
            l->alt_svc = tg_sprintf("h3=\":%u\"; ma=86400",
                                    (unsigned)tg_addr_port((const struct sockaddr *)&q->addr));
        }
        if (lc->protocol == TG_PROTO_QUIC) {
            l->quic = tg_quic_listener_new(cfg, lc, g->certs, errs);
            if (l->quic == NULL)
                goto fail;
            continue;
        }
        if (tg_tls_listener_build(&l->tls, cfg, lc, g->certs, errs) != 0)
            goto fail;
    }
    return g;

fail:
    generation_free(g);
    return NULL;
}
