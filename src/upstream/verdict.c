/* What a failed try at a server means (SPEC §5): whether it counts against the server,
 * and where the request may go next. One place decides it for every frontend, so a
 * client can never make a healthy server look dead, and a request that may have acted
 * is never sent twice. */
#include <errno.h>

#include "tollgate/upstream.h"

#define MAX_AGAIN 3 /* fresh connections after stale pooled ones, for one request */

/* This machine's own shortage (descriptors, memory, local ports), not the server's: it
 * would take out every server tried, and keep them out after the shortage passed. */
static bool local_error(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM ||
           err == EADDRNOTAVAIL;
}

/* Another server, when one is left: at most one try a server in all, so a request that
 * fails everywhere stops. */
static tg_up_verdict_t elsewhere(tg_backend_t *b, tg_upstream_server_t *s, tg_up_attempt_t *a)
{
    a->tried |= tg_backend_server_bit(b, s);
    if (++a->servers_tried >= b->nservers)
        return TG_UP_GIVE_UP;
    return TG_UP_ELSEWHERE;
}

tg_up_verdict_t tg_upstream_verdict(tg_backend_t *b, tg_upstream_server_t *s, const tg_upconn_t *uc,
                                    tg_up_failure_t what, int err, tg_up_attempt_t *a)
{
    /* Only a request the server cannot have acted on, or one that is idempotent and
     * still whole, may be sent again. */
    bool may_resend = !a->sent || a->resendable;
    switch (what) {
    case TG_UP_FAIL_CONNECT:
        /* A connect that never finished cannot have delivered anything. */
        if (local_error(err))
            return TG_UP_GIVE_UP;
        tg_backend_server_failed(b, s);
        return elsewhere(b, s, a);
    case TG_UP_FAIL_SILENT:
        tg_backend_server_failed(b, s);
        return TG_UP_GIVE_UP; /* it may still be working on it */
    case TG_UP_FAIL_BROKEN: {
        /* A pooled connection that breaks before any answer was most likely closed by the
         * server while idle (the pool drops those it sees close; this is the race left
         * over): no sign of a dead server, and a fresh connection may carry it. */
        bool stale = uc != NULL && tg_upconn_maybe_stale(uc);
        if (stale && may_resend && a->again < MAX_AGAIN) {
            a->again++;
            return TG_UP_AGAIN;
        }
        /* A backend that gives up on a request whose client is slow to send it (a read
         * timeout of its own) is the client's doing: that does not count either. */
        if (!stale && a->req_done)
            tg_backend_server_failed(b, s);
        return may_resend ? elsewhere(b, s, a) : TG_UP_GIVE_UP;
    }
    case TG_UP_FAIL_UNUSABLE:
        /* A client can provoke such answers at will (a long path a backend echoes): a 502
         * for this request, no failure of the server, and no other server tried. */
        return TG_UP_GIVE_UP;
    }
    return TG_UP_GIVE_UP;
}
