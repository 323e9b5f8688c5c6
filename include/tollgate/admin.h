/* admin: the admin HTTP endpoint on admin.listen (off the data path, on the main
 * thread): Prometheus metrics and the instance's status. */
#ifndef TOLLGATE_ADMIN_H
#define TOLLGATE_ADMIN_H

#include <stdint.h>

#include <event2/event.h>

#include "tollgate/core.h"
#include "tollgate/generation-t.h"

typedef struct tg_admin_stats_s {
    uint64_t generation;
    uint64_t reloads_ok;
    uint64_t reloads_failed;
    uint64_t connections; /* open client connections, all listeners */
    unsigned workers;
    uint64_t uptime_s;
} tg_admin_stats_t;

/* What the admin endpoint asks of the runtime, which it does not know otherwise. */
typedef struct tg_admin_ops_s {
    tg_generation_t *(*acquire)(void *arg); /* the published generation, with a reference */
    void (*stats)(void *arg, tg_admin_stats_t *out);
    /* Reload the config file as SIGHUP does: the new generation's number, or 0 with the
     * problems in errs (warnings there either way). */
    uint64_t (*reload)(void *arg, tg_errors_t *errs);
} tg_admin_ops_t;

typedef struct tg_admin_s tg_admin_t;

/* Listen on cfg->admin.listen. NULL with a problem in errs when it cannot; NULL without
 * one when the config has no admin section. */
tg_admin_t *tg_admin_start(struct event_base *base, const tg_config_t *cfg,
                           const tg_admin_ops_t *ops, void *arg, tg_errors_t *errs);
void tg_admin_stop(tg_admin_t *admin);
/* A reload: the token file is read again, so rotating a token is a reload (listen stays
 * until a restart). Main thread. */
void tg_admin_reload(tg_admin_t *admin, const tg_config_t *cfg);

/* The bearer token of a TCP admin listener from admin.token_file (malloc'd), or NULL with
 * the problem in errs: unreadable, blank, shorter than 16 or longer than 512 characters,
 * or not one word of visible ASCII. `tollgate check` reads it too. */
char *tg_admin_token_read(const tg_config_t *cfg, tg_errors_t *errs);

/* The Prometheus text of a generation and the stats, into a malloc'd string. */
char *tg_admin_metrics(const tg_generation_t *g, const tg_admin_stats_t *st, size_t *len);

#endif
