/* upstream: backends as the data path sees them (servers with their health, balancing),
 * per-worker keep-alive connection pools, and active health checks. */
#ifndef TOLLGATE_UPSTREAM_H
#define TOLLGATE_UPSTREAM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

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

/* A connection to one server, from this worker's keep-alive pool or freshly made. The
 * pool owns its socket, its events and its timers; the holder reads `in`, and hears of
 * everything else through its callback. */
typedef struct tg_upconn_s tg_upconn_t;

typedef enum {
    TG_UP_READY,          /* connected (a new connection): the request may go */
    TG_UP_CONNECT_FAILED, /* err: connect()'s errno, ETIMEDOUT after connect_timeout */
    TG_UP_READABLE,
    TG_UP_WRITABLE,
    TG_UP_SILENT, /* waited on for response_timeout with nothing sent or taken */
} tg_up_event_t;

typedef void (*tg_upconn_cb)(tg_upconn_t *uc, tg_up_event_t ev, int err, void *arg);

struct tg_upconn_s {
    tg_buf_t in; /* what the server sent, for the holder to parse and consume */
    /* the pool's */
    tg_loop_t *_loop;
    int _fd;
    struct event _rev;
    struct event _wev;
    struct event _timer;
    uint64_t _connect_timeout_ms;
    uint64_t _response_timeout_ms;
    bool _reused;    /* came from the pool */
    bool _answered;  /* the server sent bytes since the holder got it */
    bool _connected; /* the non-blocking connect finished */
    bool _waiting;   /* the holder waits on the server: its silence is timed */
    tg_upconn_cb _cb;
    void *_arg;
    struct tg_uppool_entry_s *_entry;
    tg_upconn_t *_next; /* idle list */
};

/* A connection to server s of backend b for the holder (cb, arg): an idle kept-alive one,
 * ready at once (tg_upconn_connected), or a new non-blocking connect that reports
 * TG_UP_READY or TG_UP_CONNECT_FAILED, timed by b's connect_timeout. NULL when not even a
 * socket could be made (errno set). */
tg_upconn_t *tg_upconn_get(tg_loop_t *loop, const tg_backend_t *b, const tg_upstream_server_t *s,
                           tg_upconn_cb cb, void *arg);
bool tg_upconn_connected(const tg_upconn_t *uc);
/* Whether a failure now may be the pool's race with a server that closed the connection
 * while it was idle (reused, and nothing read from it yet), rather than a server fault. */
bool tg_upconn_maybe_stale(const tg_upconn_t *uc);
/* What was read is the server's goodbye to the idle connection (a 408 as it timed it
 * out), not an answer: dropped, and the connection counts as maybe stale again. */
void tg_upconn_drop_goodbye(tg_upconn_t *uc);
bool tg_upconn_reused(const tg_upconn_t *uc); /* it came from the pool */
/* Arm reading and/or writing (EV_READ|EV_WRITE); 0 disarms. */
void tg_upconn_want(tg_upconn_t *uc, short what);
/* The holder waits on the server (to take the request, or to answer it): time its
 * silence with response_timeout, from now (unless it was waited on already) and again
 * from every byte it takes or sends (TG_UP_SILENT when it runs out). false: the holder
 * waits on its own client; no timer. */
void tg_upconn_wait(tg_upconn_t *uc, bool waiting);
/* Send from data: bytes taken (0: the socket is full), or -1 with errno. */
ssize_t tg_upconn_send(tg_upconn_t *uc, const void *data, size_t len);
/* Read into uc->in: bytes read (0 when `in` is full), or TG_UPCONN_EOF, or -1 with errno
 * (EAGAIN: nothing now). */
#define TG_UPCONN_EOF (-2)
ssize_t tg_upconn_recv(tg_upconn_t *uc);
/* Done with it: back to the pool when reusable (a whole response read, nothing left
 * over), closed otherwise. */
void tg_upconn_release(tg_upconn_t *uc, bool reusable);

/* The pool of one worker; created lazily by tg_upconn_get. */
void tg_uppool_destroy(tg_loop_t *loop);

/* ---- failures and retries (SPEC §5) ------------------------------------------------- */

typedef enum {
    TG_UP_FAIL_CONNECT,  /* err: connect's errno (ETIMEDOUT: connect_timeout) */
    TG_UP_FAIL_SILENT,   /* no response head within response_timeout */
    TG_UP_FAIL_BROKEN,   /* reset, closed or a send error before the response head */
    TG_UP_FAIL_UNUSABLE, /* an answer we cannot pass on (malformed, oversized, upgrade) */
} tg_up_failure_t;

typedef enum {
    TG_UP_GIVE_UP,   /* answer the client with an error */
    TG_UP_AGAIN,     /* a fresh connection to the same server */
    TG_UP_ELSEWHERE, /* another server: tg_backend_pick(b, attempt->tried) */
} tg_up_verdict_t;

/* One request's tries across a backend's servers, as the verdict needs to know them. */
typedef struct tg_up_attempt_s {
    uint64_t tried;         /* tg_backend_server_bit of each server tried */
    unsigned servers_tried; /* other servers after the first failed */
    unsigned again;         /* fresh connections after stale pooled ones */
    bool sent;              /* bytes of it reached the current connection */
    bool req_done;          /* the whole request reached the server's socket */
    bool resendable;        /* idempotent, and its whole head kept for another try */
} tg_up_attempt_t;

/* What a failure of server s of b (on connection uc, NULL when there was none) means:
 * whether it counts against the server (passive health: connect failures and timeouts,
 * resets before the head of a request the client sent whole, never our own shortages nor
 * answers a client can provoke), and where the request may go now: POST, PATCH and LOCK
 * are never sent twice. */
tg_up_verdict_t tg_upstream_verdict(tg_backend_t *b, tg_upstream_server_t *s, const tg_upconn_t *uc,
                                    tg_up_failure_t what, int err, tg_up_attempt_t *a);

/* ---- health checks (main thread) ----------------------------------------------------- */

typedef struct tg_health_s tg_health_t;
tg_health_t *tg_health_start(struct event_base *base, tg_backend_t *backends, size_t n);
void tg_health_stop(tg_health_t *h);

#endif
