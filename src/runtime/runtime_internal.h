/* What the files of the runtime module share. */
#ifndef TOLLGATE_RUNTIME_INTERNAL_H
#define TOLLGATE_RUNTIME_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include <event2/event.h>

#include "tollgate/frontend.h"
#include "tollgate/generation.h"
#include "tollgate/loop.h"

/* Listening sockets live outside generations, keyed by (protocol, address), so that a
 * reload that keeps a listener keeps its sockets: one per worker (SO_REUSEPORT). */
typedef struct tg_socket_s {
    tg_proto_t protocol;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    int *fds; /* one per worker */
} tg_socket_t;

typedef struct tg_inventory_s {
    tg_socket_t *socks;
    size_t n;
    unsigned nworkers;
} tg_inventory_t;

/* Open (or keep) a socket for every listener of cfg. Problems go to errs. */
int tg__inventory_bind(tg_inventory_t *inv, const tg_config_t *cfg, tg_errors_t *errs);
/* Index of the socket of a listener, or -1. */
ssize_t tg__inventory_find(const tg_inventory_t *inv, const tg_conf_listener_t *lc);
void tg__inventory_close(tg_inventory_t *inv);

typedef struct tg_runtime_s tg_runtime_t;

typedef struct tg_worker_s {
    tg_runtime_t *rt;
    unsigned id;
    pthread_t thread;
    struct event_base *base;
    tg_loop_t loop;
    tg_h1_server_t h1;
    tg_generation_t *gen;   /* the worker's reference on the published generation */
    struct event *accepts;  /* one per inventory socket */
    void *accept_args;
    size_t naccepts;
    struct event *notify;   /* the main thread wakes us through this */
    struct event *drain_timer;
    atomic_int command;     /* WORKER_CMD_* for notify */
    bool stopping;
} tg_worker_t;

enum { WORKER_CMD_NONE = 0, WORKER_CMD_GENERATION = 1, WORKER_CMD_STOP = 2 };

struct tg_runtime_s {
    const char *config_path;
    struct event_base *base; /* the main thread's */
    tg_inventory_t inv;
    pthread_mutex_t gen_lock; /* guards `published` against a worker taking it */
    tg_generation_t *published;
    tg_worker_t *workers;
    unsigned nworkers;
    atomic_ulong conns;
    atomic_uint running_workers;
    tg_health_t *health;
    uint64_t next_generation;
};

int tg__worker_start(tg_worker_t *w);
void tg__worker_command(tg_worker_t *w, int cmd);
/* A worker's fresh reference on the published generation. */
tg_generation_t *tg__runtime_acquire(tg_runtime_t *rt);

#endif
