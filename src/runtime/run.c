/* The daemon's main thread: load, bind, publish, start workers, then wait for signals.
 * Workers get configuration only through the published generation. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <malloc.h>

#include <event2/listener.h>
#include <event2/thread.h>

#include "tollgate/admin.h"
#include "tollgate/proxy.h"
#include "tollgate/runtime.h"
#include "runtime_internal.h"

tg_generation_t *tg__runtime_acquire(tg_runtime_t *rt)
{
    pthread_mutex_lock(&rt->gen_lock);
    tg_generation_t *g = tg_generation_ref(rt->published);
    pthread_mutex_unlock(&rt->gen_lock);
    return g;
}

static void publish(tg_runtime_t *rt, tg_generation_t *g)
{
    g->number = ++rt->next_generation;
    pthread_mutex_lock(&rt->gen_lock);
    tg_generation_t *old = rt->published;
    rt->published = g;
    tg__inventory_retire(&rt->inv, g->cfg);
    pthread_mutex_unlock(&rt->gen_lock);
    tg_generation_unref(old);
    /* Freed generations leave their memory in malloc's arenas; give it back so a
     * process that reloads all day stays the size it started. */
    malloc_trim(0);
    for (unsigned i = 0; rt->workers != NULL && i < rt->nworkers; i++)
        if (rt->workers[i].base != NULL)
            tg__worker_command(&rt->workers[i], WORKER_CMD_GENERATION);
}

/* Load and build everything a generation needs, printing every problem. */
/* The whole configuration as `check`, `run` and a reload see it alike: the file, every
 * certificate and context, and the admin token a TCP admin listener would serve with. */
static tg_generation_t *load(const char *path, tg_errors_t *errs)
{
    tg_config_t *cfg = tg_config_load(path, errs);
    if (cfg == NULL)
        return NULL;
    if (cfg->admin.enabled && cfg->admin.token_file != NULL) {
        char *token = tg_admin_token_read(cfg, errs);
        if (token == NULL) {
            tg_config_free(cfg);
            return NULL;
        }
        explicit_bzero(token, strlen(token));
        free(token);
    }
    return tg_generation_build(cfg, errs);
}

static void open_access_log(const tg_config_t *cfg)
{
    const char *where = cfg->global.access_log;
    if (tg_accesslog_open(where) != 0)
        tg_log_error("cannot open access log %s: %s", where, strerror(errno));
}

/* ---- open-files limit ---------------------------------------------------------------- */

/* A proxied connection holds the client's fd and, while a request is in flight, one to
 * its backend (idle pooled backend connections are bounded by the in-flight ones). */
#define FDS_PER_CONN 2
/* fds kept free whatever the connections take, so that a reload can still open its
 * config file and every certificate, key, CA and CRL file (one at a time), the admin API
 * and the control socket can still take a client, and libc and OpenSSL can still open
 * what they need; 32 is generous for those. fit_limits adds what scales with the config:
 * a listening socket per worker and listener (a reload opens those of new listeners
 * while the old ones are open: counted as if every listener were new) and a socket per
 * health-checked server. */
#define FD_RESERVE 32

/* fds open in this process now. */
static size_t count_open_fds(void)
{
    size_t n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d != NULL) {
        for (struct dirent *e; (e = readdir(d)) != NULL;)
            n += e->d_name[0] != '.';
        closedir(d);
        return n > 0 ? n - 1 : 0; /* not the directory's own fd */
    }
    struct rlimit rl;
    rlim_t end = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 65536;
    for (rlim_t fd = 0; fd < end && fd <= INT32_MAX; fd++)
        n += fcntl((int)fd, F_GETFD) != -1;
    return n;
}

/* The listening sockets of the inventory still open (main thread only). */
static size_t inventory_fds(const tg_inventory_t *inv)
{
    size_t n = 0;
    for (size_t i = 0; i < inv->n; i++)
        n += atomic_load(&inv->socks[i]->nopen);
    return n;
}

/* A proxy is made of fds, and the soft limit is often 1024 where the hard one allows far
 * more: take all the hard limit allows, as nginx (worker_rlimit_nofile) and HAProxy do. */
static void raise_open_files_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
        return;
    unsigned long long was = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        tg_log_warn("cannot raise the open-files limit from %llu to %llu: %s", was,
                    (unsigned long long)rl.rlim_max, strerror(errno));
    else
        tg_log_debug("open-files limit raised from %llu to %llu", was,
                     (unsigned long long)rl.rlim_max);
}

/* Lower max_connections to what the open-files limit can hold. max_connections defaults
 * to 100000 while the limit is often a few thousand: past it accept fails with EMFILE,
 * and a daemon with every fd taken by clients cannot open a certificate to reload. So
 * connections past (limit - fds open - reserve) / FDS_PER_CONN are closed at once like
 * those past max_connections, and the reserve stays free. The config is left as written
 * (a generation is immutable): the number goes to rt->max_conns, which on_accept reads.
 * Warns once per change, naming both numbers. */
static void fit_limits(tg_runtime_t *rt, const tg_config_t *cfg)
{
    uint64_t configured = cfg->global.limits.max_connections;
    struct rlimit rl;
    uint64_t limit = UINT64_MAX;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        limit = rl.rlim_cur;
    uint64_t reserve = FD_RESERVE + (uint64_t)rt->nworkers * cfg->nlisteners;
    for (size_t i = 0; i < cfg->nbackends; i++)
        if (cfg->backends[i].health.enabled)
            reserve += cfg->backends[i].nservers;
    uint64_t open = rt->base_fds + inventory_fds(&rt->inv);
    uint64_t fit = limit > open + reserve ? (limit - open - reserve) / FDS_PER_CONN : 0;
    if (fit < 1)
        fit = 1;
    uint64_t effective = configured < fit ? configured : fit;
    uint64_t was = atomic_exchange(&rt->max_conns, (unsigned long)effective);
    if (effective < configured && (effective != was || configured != rt->max_conns_configured))
        tg_log_warn("global.limits.max_connections %llu does not fit in %llu open files: at "
                    "most %llu connections (%d fds each; %llu open, %llu kept free for "
                    "reloads, listeners and admin)",
                    (unsigned long long)configured, (unsigned long long)limit,
                    (unsigned long long)effective, FDS_PER_CONN, (unsigned long long)open,
                    (unsigned long long)reserve);
    rt->max_conns_configured = configured;
}

/* What a reload cannot change in a running process. */
static void check_unchangeable(const tg_config_t *old, const tg_config_t *cfg, tg_errors_t *errs)
{
    if (old->global.workers != cfg->global.workers)
        tg_errors_add(errs, TG_SEV_WARNING, cfg->path, 0, 0,
                      "global.workers changed: takes effect on restart only");
    if (strcmp(old->global.pid_file, cfg->global.pid_file) != 0)
        tg_errors_add(errs, TG_SEV_WARNING, cfg->path, 0, 0,
                      "global.pid_file changed: takes effect on restart only");
    if (old->admin.enabled != cfg->admin.enabled ||
        (cfg->admin.enabled && strcmp(old->admin.listen, cfg->admin.listen) != 0))
        tg_errors_add(errs, TG_SEV_WARNING, cfg->path, cfg->admin.pos.line, cfg->admin.pos.col,
                      "admin.listen changed: takes effect on restart only (the token file is "
                      "read again now)");
}

/* A reload's warnings (an expired certificate, a key file others can read) go to the log
 * too: the operator who sent SIGHUP has no other place to read them. */
static void log_warnings(const tg_errors_t *errs)
{
    for (size_t i = 0; i < errs->n; i++) {
        const tg_problem_t *p = &errs->items[i];
        if (p->severity != TG_SEV_WARNING)
            continue;
        if (p->file != NULL && p->line > 0)
            tg_log_warn("%s:%d:%d: %s", p->file, p->line, p->col, p->msg);
        else
            tg_log_warn("%s%s%s", p->file ? p->file : "", p->file ? ": " : "", p->msg);
    }
}

uint64_t tg__runtime_reload(tg_runtime_t *rt, const char *path, tg_errors_t *errs)
{
    tg_generation_t *g = load(path, errs);
    if (g != NULL) {
        pthread_mutex_lock(&rt->gen_lock);
        int rc = tg__inventory_bind(&rt->inv, g->cfg, errs);
        pthread_mutex_unlock(&rt->gen_lock);
        if (rc != 0) {
            tg_generation_unref(g);
            g = NULL;
        }
    }
    if (g == NULL) {
        atomic_fetch_add(&rt->reloads_failed, 1);
        char first[1400];
        tg_errors_first(errs, first, sizeof(first));
        tg_log_error("reload of %s failed, generation %llu keeps serving: %s", path,
                     (unsigned long long)rt->published->number, first);
        return 0;
    }
    check_unchangeable(rt->published->cfg, g->cfg, errs);
    tg_admin_reload(rt->admin, g->cfg);
    log_warnings(errs);
    tg_log_set_level(g->cfg->global.log_level);
    if (strcmp(rt->published->cfg->global.access_log, g->cfg->global.access_log) != 0) {
        open_access_log(g->cfg);
    }
    tg_backends_inherit(g->backends, g->cfg->nbackends, rt->published->backends,
                        rt->published->cfg->nbackends);
    tg_health_stop(rt->health);
    rt->health = tg_health_start(rt->base, g->backends, g->cfg->nbackends);
    fit_limits(rt, g->cfg);
    if (path != rt->config_path) {
        free(rt->config_path_owned);
        rt->config_path = rt->config_path_owned = tg_strdup(path);
    }
    publish(rt, g);
    atomic_fetch_add(&rt->reloads_ok, 1);
    tg_log_info("reloaded %s: generation %llu", path, (unsigned long long)g->number);
    return g->number;
}

int tg_runtime_check(const char *path)
{
    tg_errors_t errs;
    tg_errors_init(&errs);
    tg_generation_t *g = load(path, &errs);
    tg_errors_print(&errs, stderr);
    int rc = g != NULL && errs.nerrors == 0 ? 0 : 1;
    if (rc == 0)
        printf("%s: ok\n", path);
    tg_generation_unref(g);
    tg_errors_free(&errs);
    return rc;
}

/* ---- pid file ------------------------------------------------------------------------ */

static int write_pid_file(const char *path)
{
    char *dir = tg_strdup(path);
    char *slash = strrchr(dir, '/');
    if (slash != NULL && slash != dir) {
        *slash = '\0';
        mkdir(dir, 0755); /* run/ of a fresh checkout */
    }
    free(dir);
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    fprintf(f, "%ld\n", (long)getpid());
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        return -1;
    return 0;
}

static pid_t read_pid_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    long pid = -1;
    if (fscanf(f, "%ld", &pid) != 1 || pid <= 1)
        pid = -1;
    fclose(f);
    return (pid_t)pid;
}

int tg_runtime_stop(const char *path)
{
    tg_errors_t errs;
    tg_errors_init(&errs);
    tg_config_t *cfg = tg_config_load(path, &errs);
    if (cfg == NULL) {
        tg_errors_print(&errs, stderr);
        tg_errors_free(&errs);
        return 1;
    }
    tg_errors_free(&errs);
    pid_t pid = read_pid_file(cfg->global.pid_file);
    uint64_t wait_ms = cfg->global.drain_timeout_ms + 5000;
    int rc = 1;
    if (pid < 0) {
        fprintf(stderr, "tollgate: no running instance (cannot read %s)\n", cfg->global.pid_file);
    } else if (kill(pid, SIGTERM) != 0) {
        fprintf(stderr, "tollgate: cannot signal pid %ld: %s\n", (long)pid, strerror(errno));
    } else {
        uint64_t end = tg_now_ms() + wait_ms;
        while (kill(pid, 0) == 0 && tg_now_ms() < end)
            usleep(50 * 1000);
        rc = kill(pid, 0) == 0 ? 1 : 0;
        if (rc != 0)
            fprintf(stderr, "tollgate: pid %ld did not exit in time\n", (long)pid);
    }
    tg_config_free(cfg);
    return rc;
}

/* ---- signals ------------------------------------------------------------------------- */

static void on_worker_exit(evutil_socket_t fd, short what, void *arg)
{
    tg_runtime_t *rt = arg;
    if (atomic_load(&rt->running_workers) == 0)
        event_base_loopexit(rt->base, NULL);
}

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
    tg_runtime_t *rt = arg;
    static bool stopping;
    if (stopping)
        return;
    stopping = true;
    tg_log_info("%s: stopping: no new connections, finishing the ones in flight",
                strsignal((int)sig));
    tg_health_stop(rt->health);
    rt->health = NULL;
    for (unsigned i = 0; i < rt->nworkers; i++)
        tg__worker_command(&rt->workers[i], WORKER_CMD_STOP);
}

static tg_generation_t *admin_acquire(void *arg)
{
    return tg__runtime_acquire(arg);
}

static void admin_stats(void *arg, tg_admin_stats_t *st)
{
    tg_runtime_t *rt = arg;
    st->generation = rt->published->number;
    st->reloads_ok = atomic_load(&rt->reloads_ok);
    st->reloads_failed = atomic_load(&rt->reloads_failed);
    st->connections = atomic_load(&rt->conns);
    st->workers = rt->nworkers;
    st->uptime_s = (tg_now_ms() - rt->started_ms) / 1000;
}

static uint64_t admin_reload(void *arg, tg_errors_t *errs)
{
    tg_runtime_t *rt = arg;
    return tg__runtime_reload(rt, rt->config_path, errs);
}

static const tg_admin_ops_t admin_ops = {
    .acquire = admin_acquire,
    .stats = admin_stats,
    .reload = admin_reload,
};

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
    tg_runtime_t *rt = arg;
    tg_errors_t errs;
    tg_errors_init(&errs);
    tg__runtime_reload(rt, rt->config_path, &errs);
    tg_errors_free(&errs);
}

static void on_reopen(evutil_socket_t sig, short what, void *arg)
{
    tg_runtime_t *rt = arg;
    const char *where = rt->published->cfg->global.access_log;
    if (strcmp(where, "off") == 0 || strcmp(where, "stderr") == 0 || strcmp(where, "stdout") == 0)
        return;
    open_access_log(rt->published->cfg);
    tg_log_info("access log reopened");
}

typedef struct exit_watch_s {
    tg_runtime_t *rt;
    tg_worker_t *w;
    struct event *ev;
} exit_watch_t;

static void *worker_exit_watch(void *arg)
{
    exit_watch_t *ew = arg;
    pthread_join(ew->w->thread, NULL);
    atomic_fetch_sub(&ew->rt->running_workers, 1);
    event_active(ew->ev, EV_READ, 1);
    return NULL;
}

static int daemonize_now(void)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0)
        _exit(0);
    setsid();
    int fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        close(fd);
    }
    return 0;
}

/* The signals the main loop handles. From the moment the listeners are bound a supervisor
 * may take the daemon for started and reload or stop it, so they are held pending until
 * their handlers are in place rather than killing the process with the default action. */
static void hold_signals(bool hold)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(hold ? SIG_BLOCK : SIG_UNBLOCK, &set, NULL);
}

int tg_runtime_run(const char *path, bool daemonize)
{
    tg_errors_t errs;
    tg_errors_init(&errs);
    if (tg_tls_tickets_init() != 0 || evthread_use_pthreads() != 0) {
        fprintf(stderr, "tollgate: cannot initialise TLS tickets or libevent threads\n");
        return 1;
    }
    tg_generation_t *gen = load(path, &errs);
    tg_errors_print(&errs, stderr);
    if (gen == NULL) {
        tg_errors_free(&errs);
        return 1;
    }
    tg_errors_free(&errs);
    tg_config_t *cfg = gen->cfg;
    tg_log_set_level(cfg->global.log_level);
    signal(SIGPIPE, SIG_IGN);
    raise_open_files_limit();

    tg_runtime_t rt = {.config_path = path};
    pthread_mutex_init(&rt.gen_lock, NULL);
    /* Until fit_limits below can count what the running daemon holds. */
    atomic_init(&rt.max_conns, (unsigned long)cfg->global.limits.max_connections);
    rt.max_conns_configured = cfg->global.limits.max_connections;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    rt.nworkers = cfg->global.workers ? cfg->global.workers : (unsigned)(ncpu > 0 ? ncpu : 1);
    rt.inv.nworkers = rt.nworkers;
    tg_errors_init(&errs);
    hold_signals(true);
    if (tg__inventory_bind(&rt.inv, cfg, &errs) != 0) {
        hold_signals(false);
        tg_errors_print(&errs, stderr);
        tg_errors_free(&errs);
        tg__inventory_close(&rt.inv);
        tg_generation_unref(gen);
        return 1;
    }
    tg_errors_free(&errs);
    if (daemonize && daemonize_now() != 0) {
        fprintf(stderr, "tollgate: cannot daemonize: %s\n", strerror(errno));
        return 1;
    }
    if (write_pid_file(cfg->global.pid_file) != 0)
        tg_log_warn("cannot write pid file %s: %s", cfg->global.pid_file, strerror(errno));
    open_access_log(cfg);

    rt.base = event_base_new();
    publish(&rt, gen);
    rt.started_ms = tg_now_ms();
    tg_errors_init(&errs);
    rt.admin = tg_admin_start(rt.base, cfg, &admin_ops, &rt, &errs);
    tg_errors_print(&errs, stderr);
    tg_errors_free(&errs);
    if (tg__control_listen(&rt, cfg) != 0)
        tg_log_warn("no control socket at %s (tollgate reload will not reach us): %s",
                    rt.control_path, strerror(errno));
    struct event *sigs[4] = {
        evsignal_new(rt.base, SIGTERM, on_stop_signal, &rt),
        evsignal_new(rt.base, SIGINT, on_stop_signal, &rt),
        evsignal_new(rt.base, SIGUSR1, on_reopen, &rt),
        evsignal_new(rt.base, SIGHUP, on_hup, &rt),
    };
    for (size_t i = 0; i < TG_ARRAY_SIZE(sigs); i++)
        evsignal_add(sigs[i], NULL);
    struct event *exit_ev = event_new(rt.base, -1, 0, on_worker_exit, &rt);
    rt.health = tg_health_start(rt.base, gen->backends, cfg->nbackends);

    rt.workers = tg_calloc(rt.nworkers, sizeof(tg_worker_t));
    rt.quic_peers = tg_calloc(rt.nworkers, sizeof(*rt.quic_peers));
    exit_watch_t *watches = tg_calloc(rt.nworkers, sizeof(exit_watch_t));
    pthread_t *watchers = tg_calloc(rt.nworkers, sizeof(pthread_t));
    for (unsigned i = 0; i < rt.nworkers; i++) {
        tg_worker_t *w = &rt.workers[i];
        w->rt = &rt;
        w->id = i;
        if (tg__worker_start(w) != 0) {
            tg_log_error("cannot start worker %u", i);
            abort(); /* threads of a half-started daemon cannot be unwound safely */
        }
        atomic_fetch_add(&rt.running_workers, 1);
        watches[i] = (exit_watch_t){&rt, w, exit_ev};
        pthread_create(&watchers[i], NULL, worker_exit_watch, &watches[i]);
    }
    /* Everything a running daemon holds is open now (the first clients' connections at
     * most): what is not a listening socket is the base a reload counts from. */
    rt.base_fds = count_open_fds() - inventory_fds(&rt.inv);
    fit_limits(&rt, cfg);
    tg_log_info("tollgate %s started: %u workers, %zu listeners, generation %llu", TG_VERSION,
                rt.nworkers, cfg->nlisteners, (unsigned long long)gen->number);
    hold_signals(false); /* what arrived meanwhile is handled by the first loop turn */

    event_base_dispatch(rt.base);

    for (unsigned i = 0; i < rt.nworkers; i++)
        pthread_join(watchers[i], NULL);
    for (unsigned i = 0; i < rt.nworkers; i++)
        tg__worker_free(&rt.workers[i]);
    tg_health_stop(rt.health);
    tg__control_close(&rt);
    tg_admin_stop(rt.admin);
    free(rt.config_path_owned);
    unlink(rt.published->cfg->global.pid_file);
    tg_generation_unref(rt.published);
    tg__inventory_close(&rt.inv);
    for (size_t i = 0; i < TG_ARRAY_SIZE(sigs); i++)
        event_free(sigs[i]);
    event_free(exit_ev);
    event_base_free(rt.base);
    free(watches);
    free(watchers);
    free(rt.workers);
    free(rt.quic_peers);
    tg_accesslog_close();
    tg_log_info("stopped");
    return 0;
}
