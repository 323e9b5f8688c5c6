/* The client connections of one worker, every frontend's in one list: accounting, and
 * what a stop or a reload does to them (drain, retire, reap, close-all), written once so
 * HTTP/1 and HTTP/3 connections end alike. */
#include <string.h>

#include "proxy_internal.h"

void tg_proxy_conn_add(tg_proxy_conns_t *set, tg_proxy_conn_t *pc, const tg_proxy_conn_ops_t *ops,
                       tg_generation_t *gen, const tg_listener_rt_t *lst)
{
    pc->gen = tg_generation_ref(gen);
    pc->lst = lst;
    pc->retire_at_ms = 0;
    pc->ops = ops;
    pc->_set = set;
    pc->_prev = NULL;
    pc->_next = set->_head;
    if (set->_head != NULL)
        set->_head->_prev = pc;
    set->_head = pc;
    set->n++;
}

void tg_proxy_conn_remove(tg_proxy_conn_t *pc)
{
    tg_proxy_conns_t *set = pc->_set;
    if (pc->_prev != NULL)
        pc->_prev->_next = pc->_next;
    else
        set->_head = pc->_next;
    if (pc->_next != NULL)
        pc->_next->_prev = pc->_prev;
    set->n--;
    if (pc->retire_at_ms != 0)
        set->nretiring--;
    atomic_fetch_sub_explicit(set->process_conns, 1, memory_order_relaxed);
    tg_generation_unref(pc->gen);
    pc->gen = NULL;
    pc->lst = NULL;
    pc->_set = NULL;
    if (set->draining && set->n == 0 && set->on_drained != NULL)
        set->on_drained(set->arg);
}

tg_proxy_conn_t *tg_proxy_conns_first(const tg_proxy_conns_t *set)
{
    return set->_head;
}

tg_proxy_conn_t *tg_proxy_conn_next(const tg_proxy_conn_t *pc)
{
    return pc->_next;
}

void tg_proxy_conns_drain(tg_proxy_conns_t *set)
{
    set->draining = true;
    for (tg_proxy_conn_t *pc = set->_head, *next; pc != NULL; pc = next) {
        next = pc->_next;
        pc->ops->wind_down(pc, false);
    }
    if (set->n == 0 && set->on_drained != NULL)
        set->on_drained(set->arg);
}

enum { KEPT, GONE, REVERIFY };

/* What becomes of pc's listener in gen: kept, removed, or verifying clients otherwise. A
 * connection let in without a certificate (or under CAs, CRLs or a depth since changed)
 * must not go on sending requests once the operator tightened the check. QUIC listeners
 * never verify clients: their verify_id is all zeros in every generation. */
static int listener_fate(const tg_proxy_conn_t *pc, const tg_generation_t *gen)
{
    const tg_listener_rt_t *l = tg_generation_listener(gen, pc->lst->conf);
    if (l == NULL)
        return GONE;
    return memcmp(l->tls.verify_id, pc->lst->tls.verify_id, sizeof(l->tls.verify_id)) == 0
               ? KEPT
               : REVERIFY;
}

size_t tg_proxy_conns_retire(tg_proxy_conns_t *set, const tg_generation_t *gen,
                             uint64_t deadline_ms)
{
    for (tg_proxy_conn_t *pc = set->_head, *next; pc != NULL; pc = next) {
        next = pc->_next;
        int fate = pc->retire_at_ms != 0 ? KEPT : listener_fate(pc, gen);
        if (fate == KEPT)
            continue;
        /* Marked first: wind_down may free it, and the count must go with it. */
        pc->retire_at_ms = deadline_ms;
        set->nretiring++;
        pc->ops->wind_down(pc, fate == REVERIFY);
    }
    return set->nretiring;
}

size_t tg_proxy_conns_reap(tg_proxy_conns_t *set, uint64_t now_ms)
{
    for (tg_proxy_conn_t *pc = set->_head, *next; pc != NULL && set->nretiring > 0; pc = next) {
        next = pc->_next;
        if (pc->retire_at_ms != 0 && pc->retire_at_ms <= now_ms)
            pc->ops->close_now(pc);
    }
    return set->nretiring;
}

void tg_proxy_conns_close_all(tg_proxy_conns_t *set)
{
    while (set->_head != NULL)
        set->_head->ops->close_now(set->_head);
}
