/* upstream: backends as the data path sees them (servers with their health, balancing),
 * per-worker keep-alive connection pools, and active health checks. */
#ifndef TOLLGATE_UPSTREAM_H
#define TOLLGATE_UPSTREAM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "tollgate/config.h"
#include "tollgate/loop.h"

typedef struct tg_upstream_server_s {
    const tg_conf_server_t *conf;
    atomic_bool health_up;         /* active checks' verdict; true until they say otherwise */
    _Atomic uint64_t out_until_ms; /* passive: out of rotation until then (tg_now_ms) */
    _Atomic uint64_t _window_ms;   /* passive: when the current fail_timeout window began */
    atomic_uint _fails;            /* passive: failures counted in that window */
    atomic_uint active;            /* exchanges using it now, all workers (least_conn) */
    /* health checker state, main thread only */
    unsigned _ok_streak;
    unsigned _fail_streak;
} tg_upstream_server_t;

typedef struct tg_backend_s {
    const tg_conf_backend_t *conf;
    tg_upstream_server_t *servers;
    size_t nservers;
    atomic_uint _rr; /* round-robin cursor */
} tg_backend_t;

/* Runtime state of every backend of a config (the generation owns it). */
tg_backend_t *tg_backends_new(const tg_config_t *cfg);
void tg_backends_free(tg_backend_t *backends, size_t n);
/* A reload: servers of nb that stay (same backend id, same address) take over what ob
 * knows of them (active checks' verdict and streaks, passive failures), so a dead server
 * gets no traffic again until its checks fail anew (SPEC §5). Main thread, before nb is
 * published. */
void tg_backends_inherit(tg_backend_t *nb, size_t nn, const tg_backend_t *ob, size_t on);

/* Pick a server for a new exchange, skipping the servers whose bits are set in skip
 * (those tried already). Servers out for passive failures are taken again when no other
 * is left; NULL when no server passes its active checks. Increments the server's
 * `active`. */
tg_upstream_server_t *tg_backend_pick(tg_backend_t *b, uint64_t skip);
/* s's bit for the skip set of tg_backend_pick (servers past the 64th have none). */
uint64_t tg_backend_server_bit(const tg_backend_t *b, const tg_upstream_server_t *s);
void tg_backend_done(tg_upstream_server_t *s);
/* Passive detection (SPEC §5): s, a server of b, failed to connect, reset before its
 * response head, or timed out. max_fails of them within fail_timeout take it out for
 * fail_timeout; never a backend's only server. Anything else (a response we could not
 * use) is no failure of the server: a client could provoke it at will. */
void tg_backend_server_failed(tg_backend_t *b, tg_upstream_server_t *s);
bool tg_backend_server_usable(const tg_upstream_server_t *s, uint64_t now_ms);

/* ---- connections -------------------------------------------------------------------- */

typedef struct tg_upconn_s tg_upconn_t;
typedef void (*tg_upconn_cb)(tg_upconn_t *uc, short what, void *arg);

struct tg_upconn_s {
    tg_loop_t *loop;
    int fd;
    struct event rev;
    struct event wev;
    tg_buf_t in;
    bool reused;      /* came from the pool: a failure before any answer may be stale */
    bool connected;   /* the non-blocking connect finished */
    tg_upconn_cb _cb; /* owner's callback while in use */
    void *_arg;
    struct tg_uppool_entry_s *_entry;
    tg_upconn_t *_next; /* idle list */
};

/* An idle kept-alive connection to addr, or a new non-blocking one (connected becomes
 * true once writable). cb gets EV_READ / EV_WRITE as armed with tg_upconn_want.
 * NULL when the socket could not even be created (errno set). */
tg_upconn_t *tg_upconn_get(tg_loop_t *loop, const struct sockaddr *addr, socklen_t addr_len,
                           tg_upconn_cb cb, void *arg);
/* Arm reading and/or writing (EV_READ|EV_WRITE); 0 disarms. */
void tg_upconn_want(tg_upconn_t *uc, short what);
/* Done with it: back to the pool when reusable (a whole response read, nothing left
 * over), closed otherwise. */
void tg_upconn_release(tg_upconn_t *uc, bool reusable);

/* The pool of one worker; created lazily by tg_upconn_get. */
void tg_uppool_destroy(tg_loop_t *loop);

/* ---- health checks (main thread) ----------------------------------------------------- */

typedef struct tg_health_s tg_health_t;
tg_health_t *tg_health_start(struct event_base *base, tg_backend_t *backends, size_t n);
void tg_health_stop(tg_health_t *h);

#endif
