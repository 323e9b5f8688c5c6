/* Backends at run time: which server an exchange goes to, and which servers are out. */
#include <stdlib.h>
#include <string.h>

#include "tollgate/core.h"
#include "tollgate/upstream.h"

tg_backend_t *tg_backends_new(const tg_config_t *cfg)
{
    tg_backend_t *backends = tg_calloc(cfg->nbackends, sizeof(*backends));
    for (size_t i = 0; i < cfg->nbackends; i++) {
        const tg_conf_backend_t *bc = &cfg->backends[i];
        tg_backend_t *b = &backends[i];
        b->conf = bc;
        b->nservers = bc->nservers;
        b->servers = tg_calloc(bc->nservers, sizeof(*b->servers));
        for (size_t j = 0; j < bc->nservers; j++) {
            b->servers[j].conf = &bc->servers[j];
            atomic_init(&b->servers[j].health_up, true);
        }
    }
    return backends;
}

void tg_backends_free(tg_backend_t *backends, size_t n)
{
    if (backends == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(backends[i].servers);
    free(backends);
}

bool tg_backend_server_usable(const tg_upstream_server_t *s, uint64_t now_ms)
{
    return atomic_load_explicit(&s->health_up, memory_order_relaxed) &&
           atomic_load_explicit(&s->out_until_ms, memory_order_relaxed) <= now_ms;
}

static bool skipped(const tg_backend_t *b, const tg_upstream_server_t *s, uint64_t skip)
{
    size_t i = (size_t)(s - b->servers);
    return i < 64 && ((skip >> i) & 1);
}

/* passive: whether a server out for passive failures counts as usable (the second pass). */
static bool usable(const tg_upstream_server_t *s, uint64_t now, bool passive)
{
    return passive ? atomic_load_explicit(&s->health_up, memory_order_relaxed)
                   : tg_backend_server_usable(s, now);
}

static tg_upstream_server_t *pick_round_robin(tg_backend_t *b, uint64_t skip, uint64_t now,
                                              bool passive)
{
    unsigned start = atomic_fetch_add_explicit(&b->_rr, 1, memory_order_relaxed);
    for (size_t i = 0; i < b->nservers; i++) {
        tg_upstream_server_t *s = &b->servers[(start + i) % b->nservers];
        if (!skipped(b, s, skip) && usable(s, now, passive))
            return s;
    }
    return NULL;
}

static tg_upstream_server_t *pick_least_conn(tg_backend_t *b, uint64_t skip, uint64_t now,
                                             bool passive)
{
    /* Ties go round robin, so an idle pool does not send everything to the first server. */
    unsigned start = atomic_fetch_add_explicit(&b->_rr, 1, memory_order_relaxed);
    tg_upstream_server_t *best = NULL;
    unsigned best_active = 0;
    for (size_t i = 0; i < b->nservers; i++) {
        tg_upstream_server_t *s = &b->servers[(start + i) % b->nservers];
        if (skipped(b, s, skip) || !usable(s, now, passive))
            continue;
        unsigned a = atomic_load_explicit(&s->active, memory_order_relaxed);
        if (best == NULL || a < best_active) {
            best = s;
            best_active = a;
        }
    }
    return best;
}

tg_upstream_server_t *tg_backend_pick(tg_backend_t *b, uint64_t skip)
{
    if (b->nservers == 0)
        return NULL;
    uint64_t now = tg_now_ms();
    tg_upstream_server_t *s = NULL;
    /* When passive detection has every healthy server out, they all come back rather than
     * answer 503 for fail_timeout (nginx does the same): whatever took them out, a
     * backend with no server left serves nobody, and that must not be for a client to
     * bring about. Active checks' verdict is kept. */
    for (int passive = 0; passive < 2 && s == NULL; passive++)
        s = b->conf->balance == TG_BALANCE_LEAST_CONN ? pick_least_conn(b, skip, now, passive)
                                                      : pick_round_robin(b, skip, now, passive);
    if (s != NULL)
        atomic_fetch_add_explicit(&s->active, 1, memory_order_relaxed);
    return s;
}

uint64_t tg_backend_server_bit(const tg_backend_t *b, const tg_upstream_server_t *s)
{
    size_t i = (size_t)(s - b->servers);
    return i < 64 ? (uint64_t)1 << i : 0;
}

void tg_backend_done(tg_upstream_server_t *s)
{
    atomic_fetch_sub_explicit(&s->active, 1, memory_order_relaxed);
}

void tg_backend_server_failed(tg_backend_t *b, tg_upstream_server_t *s)
{
    /* With one server there is nowhere else to go: taking it out would only turn one
     * failure into a 503 for everybody for fail_timeout. */
    unsigned max = b->conf->max_fails;
    if (max == 0 || b->nservers < 2)
        return;
    uint64_t now = tg_now_ms();
    uint64_t window = b->conf->fail_timeout_ms;
    /* Workers count into the same window with relaxed atomics: a race can at worst count
     * one failure in a window that just began, never take out a server that did not
     * fail max_fails times. */
    uint64_t start = atomic_load_explicit(&s->_window_ms, memory_order_relaxed);
    if (now - start >= window &&
        atomic_compare_exchange_strong_explicit(&s->_window_ms, &start, now, memory_order_relaxed,
                                                memory_order_relaxed))
        atomic_store_explicit(&s->_fails, 0, memory_order_relaxed);
    if (atomic_fetch_add_explicit(&s->_fails, 1, memory_order_relaxed) + 1 < max)
        return;
    atomic_store_explicit(&s->out_until_ms, now + window, memory_order_relaxed);
    atomic_store_explicit(&s->_fails, 0, memory_order_relaxed);
    tg_log_warn("backend \"%s\" server %s: %u failures within %llu ms, out for %llu ms",
                b->conf->id, s->conf->text, max, (unsigned long long)window,
                (unsigned long long)window);
}

/* The server of old backend ob at the same address as ns, or NULL. */
static const tg_upstream_server_t *same_server(const tg_backend_t *ob,
                                               const tg_upstream_server_t *ns)
{
    for (size_t j = 0; j < ob->nservers; j++)
        if (tg_addr_equal((const struct sockaddr *)&ob->servers[j].conf->addr,
                          (const struct sockaddr *)&ns->conf->addr))
            return &ob->servers[j];
    return NULL;
}

void tg_backends_inherit(tg_backend_t *nb, size_t nn, const tg_backend_t *ob, size_t on)
{
    for (size_t i = 0; i < nn; i++) {
        const tg_backend_t *old = NULL;
        for (size_t k = 0; k < on && old == NULL; k++)
            if (strcmp(ob[k].conf->id, nb[i].conf->id) == 0)
                old = &ob[k];
        if (old == NULL)
            continue;
        for (size_t j = 0; j < nb[i].nservers; j++) {
            tg_upstream_server_t *s = &nb[i].servers[j];
            const tg_upstream_server_t *o = same_server(old, s);
            if (o == NULL)
                continue;
            atomic_store(&s->out_until_ms, atomic_load(&o->out_until_ms));
            atomic_store(&s->_window_ms, atomic_load(&o->_window_ms));
            atomic_store(&s->_fails, atomic_load(&o->_fails));
            /* The active checks' verdict only where checks still run: a backend whose
             * checks were removed has nobody left to bring a down server back. */
            if (nb[i].conf->health.enabled && old->conf->health.enabled) {
                atomic_store(&s->health_up, atomic_load(&o->health_up));
                s->_ok_streak = o->_ok_streak;
                s->_fail_streak = o->_fail_streak;
            }
        }
    }
}
