/* What the files of the runtime module share. */
#ifndef TOLLGATE_RUNTIME_INTERNAL_H
#define TOLLGATE_RUNTIME_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include <event2/event.h>

#include "tollgate/frontend.h"
#include "tollgate/generation.h"
#include "tollgate/loop.h"
#include "tollgate/quic.h"

/* Listening sockets live outside generations, keyed by (protocol, address), so that a
 * reload that keeps a listener keeps its sockets: one per worker (SO_REUSEPORT). */
typedef struct tg_socket_s {
    tg_proto_t protocol;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    int *fds;          /* one per worker; a worker closes its own and sets it to -1 */
    bool removed;      /* no listener of the published generation uses it any more */
    atomic_uint nopen; /* fds not closed yet: the entry is freed when none is left */
} tg_socket_t;

/* Entries are allocated one by one, so workers may keep pointers to them; the array is
 * changed by the main thread only, under the runtime's gen_lock. */
typedef struct tg_inventory_s {
    tg_socket_t **socks;
    size_t n;
    unsigned nworkers;
} tg_inventory_t;

/* Open a socket for every listener of cfg that has none yet (kept ones are left as they
 * are). All or nothing: on a problem (in errs) the sockets opened by this call are closed
 * again and -1 returned. */
int tg__inventory_bind(tg_inventory_t *inv, const tg_config_t *cfg, tg_errors_t *errs);
/* Mark the entries no listener of cfg uses as removed (workers then close their fds) and
 * free removed entries whose fds are all closed. */
void tg__inventory_retire(tg_inventory_t *inv, const tg_config_t *cfg);
void tg__inventory_close(tg_inventory_t *inv);

typedef struct tg_runtime_s tg_runtime_t;

typedef struct tg_worker_s {
    tg_runtime_t *rt;
    unsigned id;
    pthread_t thread;
    struct event_base *base;
    tg_loop_t loop;
    tg_proxy_conns_t conns; /* every frontend's client connections */
    tg_quic_server_t *quic;
    tg_generation_t *gen;            /* the worker's reference on the published generation */
    struct tg_acceptor_s *acceptors; /* one per inventory socket this worker listens on */
    struct event *reap_timer;        /* closes connections of removed listeners late */
    struct event *notify;            /* the main thread wakes us through this */
    struct event *drain_timer;
    struct event *accept_resume; /* ends a pause of accepting after running out of fds */
    uint64_t accept_backoff_ms;  /* the last pause; 0 after a successful accept */
    bool accepts_paused;         /* TCP acceptors are not in the loop until accept_resume */
    atomic_int command;          /* WORKER_CMD_* for notify */
    bool stopping;
} tg_worker_t;

enum { WORKER_CMD_NONE = 0, WORKER_CMD_GENERATION = 1, WORKER_CMD_STOP = 2 };

struct tg_runtime_s {
    const char *config_path; /* what SIGHUP reloads: the last path loaded */
    char *config_path_owned;
    struct event_base *base; /* the main thread's */
    tg_inventory_t inv;
    pthread_mutex_t gen_lock; /* guards `published` against a worker taking it */
    tg_generation_t *published;
    tg_worker_t *workers;
    unsigned nworkers;
    tg_quic_server_t *_Atomic *quic_peers; /* one slot per worker: QUIC handoff */
    atomic_ulong conns;
    /* global.limits.max_connections lowered to what the open-files limit can hold (see
     * fit_limits in run.c): the config stays as written, so the number lives here, and
     * is recomputed on every reload. */
    atomic_ulong max_conns;
    uint64_t max_conns_configured; /* what max_conns was last computed from */
    size_t base_fds;               /* fds open at start besides listening sockets */
    /* Failed accepts (out of fds or memory) since the last log line about them, and
     * when that line was written: all workers report together, at most every 10 s. */
    atomic_ulong accept_failures;
    _Atomic uint64_t accept_report_ms;
    atomic_uint running_workers;
    tg_health_t *health;
    uint64_t next_generation;
    _Atomic uint64_t reloads_ok;
    _Atomic uint64_t reloads_failed;
    struct evconnlistener *control; /* `tollgate reload` talks to us here */
    struct event *control_resume;   /* ends a pause after accept ran out of fds */
    unsigned ncontrol;              /* control connections open */
    struct tg_admin_s *admin;
    uint64_t started_ms;
    char *control_path;
};

/* Build, bind and publish the configuration at path; every problem goes to errs.
 * Returns the new generation's number, or 0 when nothing changed. */
uint64_t tg__runtime_reload(tg_runtime_t *rt, const char *path, tg_errors_t *errs);

/* The control socket of the instance a config describes: next to its pid file. */
char *tg__control_path(const tg_config_t *cfg);
int tg__control_listen(tg_runtime_t *rt, const tg_config_t *cfg);
void tg__control_close(tg_runtime_t *rt);

int tg__worker_start(tg_worker_t *w);
void tg__worker_free(tg_worker_t *w);
void tg__worker_command(tg_worker_t *w, int cmd);
/* A worker's fresh reference on the published generation. */
tg_generation_t *tg__runtime_acquire(tg_runtime_t *rt);

#endif
