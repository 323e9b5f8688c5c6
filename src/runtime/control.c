/* The control socket: a unix socket next to the pid file through which `tollgate reload`
 * asks the running instance to reload and waits for the outcome. One request a
 * connection, one line in ("reload PATH"), the answer out ("ok N" or "error" and then
 * the problems, one a line). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "tollgate/runtime.h"
#include "runtime_internal.h"

#define CONTROL_LINE_MAX 4200
#define CONTROL_IO_TIMEOUT_S 5
#define CONTROL_ANSWER_MAX (1024 * 1024)
#define CONTROL_MAX_CONNS 16

char *tg__control_path(const tg_config_t *cfg)
{
    const char *pid = cfg->global.pid_file;
    size_t n = strlen(pid);
    if (n > 4 && strcmp(pid + n - 4, ".pid") == 0)
        n -= 4;
    return tg_sprintf("%.*s.ctl", (int)n, pid);
}

/* bind() or connect() fd to the unix socket at path. sun_path holds 107 bytes; a longer
 * path goes through its directory opened as /proc/self/fd/N, which the kernel resolves
 * like any path, so any pid_file location works. Returns 0 or -1 with errno. */
static int unix_op(int fd, const char *path, bool do_bind)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int dirfd = -1;
    if (strlen(path) < sizeof(sun.sun_path)) {
        strcpy(sun.sun_path, path);
    } else {
        const char *slash = strrchr(path, '/');
        char *dir = slash != NULL ? tg_strndup(path, (size_t)(slash - path)) : tg_strdup(".");
        dirfd = open(dir[0] != '\0' ? dir : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        free(dir);
        if (dirfd < 0)
            return -1;
        int n = snprintf(sun.sun_path, sizeof(sun.sun_path), "/proc/self/fd/%d/%s", dirfd,
                         slash != NULL ? slash + 1 : path);
        if (n < 0 || (size_t)n >= sizeof(sun.sun_path)) {
            close(dirfd);
            errno = ENAMETOOLONG;
            return -1;
        }
    }
    int rc = do_bind ? bind(fd, (struct sockaddr *)&sun, sizeof(sun))
                     : connect(fd, (struct sockaddr *)&sun, sizeof(sun));
    int err = errno;
    if (dirfd >= 0)
        close(dirfd);
    errno = err;
    return rc;
}

static void set_timeouts(int fd)
{
    struct timeval tv = {CONTROL_IO_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static void write_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

/* ---- the server side: on the main thread's loop, never blocking it ---------------------- */

/* The request line's answer into out. The reload itself runs here, on the main thread,
 * as SIGHUP's does. */
static void answer(struct evbuffer *out, tg_runtime_t *rt, const char *line)
{
    if (strncmp(line, "reload ", 7) != 0) {
        evbuffer_add_printf(out, "error\nunknown control command\n");
        return;
    }
    tg_errors_t errs;
    tg_errors_init(&errs);
    uint64_t gen = tg__runtime_reload(rt, line + 7, &errs);
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    if (gen != 0)
        fprintf(mem, "ok %llu\n", (unsigned long long)gen);
    else
        fputs("error\n", mem);
    tg_errors_print(&errs, mem);
    fclose(mem);
    evbuffer_add(out, text, len < CONTROL_ANSWER_MAX ? len : CONTROL_ANSWER_MAX);
    free(text);
    tg_errors_free(&errs);
}

static void control_gone(struct bufferevent *bev)
{
    tg_runtime_t *rt = NULL;
    bufferevent_getcb(bev, NULL, NULL, NULL, (void **)&rt);
    bufferevent_free(bev);
    if (rt->ncontrol-- == CONTROL_MAX_CONNS && rt->control != NULL)
        evconnlistener_enable(rt->control);
}

static void on_control_write(struct bufferevent *bev, void *arg)
{
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        control_gone(bev);
}

static void on_control_event(struct bufferevent *bev, short what, void *arg)
{
    control_gone(bev); /* EOF, error or the timeout: a stalled client costs nothing more */
}

/* One line in, its answer out, closed: the line may come in any number of pieces, and
 * waiting for them never blocks signals, health checks or the admin API. */
static void on_control_read(struct bufferevent *bev, void *arg)
{
    tg_runtime_t *rt = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t n = 0;
    char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF);
    if (line == NULL) {
        if (evbuffer_get_length(in) >= CONTROL_LINE_MAX)
            control_gone(bev);
        return;
    }
    bufferevent_disable(bev, EV_READ);
    answer(bufferevent_get_output(bev), rt, line);
    free(line);
    bufferevent_setcb(bev, NULL, on_control_write, on_control_event, rt);
    bufferevent_enable(bev, EV_WRITE);
}

static void on_control(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                       void *arg)
{
    tg_runtime_t *rt = arg;
    struct bufferevent *bev = bufferevent_socket_new(rt->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        close(fd);
        return;
    }
    if (++rt->ncontrol == CONTROL_MAX_CONNS)
        evconnlistener_disable(l);
    struct timeval tv = {CONTROL_IO_TIMEOUT_S, 0};
    bufferevent_set_timeouts(bev, &tv, &tv);
    bufferevent_setwatermark(bev, EV_READ, 0, CONTROL_LINE_MAX);
    bufferevent_setcb(bev, on_control_read, NULL, on_control_event, rt);
    bufferevent_enable(bev, EV_READ);
}

static void on_control_resume(evutil_socket_t fd, short what, void *arg)
{
    tg_runtime_t *rt = arg;
    if (rt->ncontrol < CONTROL_MAX_CONNS)
        evconnlistener_enable(rt->control);
}

/* Out of fds: the connection stays in the backlog and the socket readable, so pause for a
 * second rather than spin the main thread. */
static void on_control_error(struct evconnlistener *l, void *arg)
{
    tg_runtime_t *rt = arg;
    int err = EVUTIL_SOCKET_ERROR();
    if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM)
        return;
    tg_log_warn("control socket: accept: %s; pausing it for 1 s", strerror(err));
    evconnlistener_disable(l);
    struct timeval tv = {1, 0};
    evtimer_add(rt->control_resume, &tv);
}

int tg__control_listen(tg_runtime_t *rt, const tg_config_t *cfg)
{
    rt->control_path = tg__control_path(cfg);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    unlink(rt->control_path); /* a stale socket of an instance that died */
    mode_t old = umask(0077); /* the owner only: a reload is an admin action */
    int rc = unix_op(fd, rt->control_path, true);
    umask(old);
    if (rc != 0 || listen(fd, 16) != 0) {
        int err = errno;
        close(fd);
        errno = err;
        return -1;
    }
    rt->control = evconnlistener_new(rt->base, on_control, rt, LEV_OPT_CLOSE_ON_FREE, -1, fd);
    if (rt->control == NULL) {
        close(fd);
        return -1;
    }
    rt->control_resume = evtimer_new(rt->base, on_control_resume, rt);
    evconnlistener_set_error_cb(rt->control, on_control_error);
    return 0;
}

void tg__control_close(tg_runtime_t *rt)
{
    if (rt->control != NULL) {
        evconnlistener_free(rt->control);
        unlink(rt->control_path);
    }
    rt->control = NULL;
    if (rt->control_resume != NULL)
        event_free(rt->control_resume);
    rt->control_resume = NULL;
    free(rt->control_path);
    rt->control_path = NULL;
}

/* ---- the client side: `tollgate reload -c FILE` ----------------------------------------- */

int tg_runtime_reload_client(const char *config_path)
{
    tg_errors_t errs;
    tg_errors_init(&errs);
    tg_config_t *cfg = tg_config_load(config_path, &errs);
    if (cfg == NULL) {
        /* The instance would refuse it the same way; say so without asking it. */
        tg_errors_print(&errs, stderr);
        tg_errors_free(&errs);
        return 1;
    }
    tg_errors_free(&errs);
    char *path = tg__control_path(cfg);
    char *abs = realpath(config_path, NULL);
    tg_config_free(cfg);
    int fd = -1, rc = 1;
    if (abs == NULL || (fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        unix_op(fd, path, false) != 0) {
        fprintf(stderr, "tollgate: cannot reach the running instance at %s: %s\n", path,
                strerror(errno));
        goto out;
    }
    set_timeouts(fd);
    /* A reload may take long with many certificates: wait for it, not for the timeout. */
    struct timeval tv = {300, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char *req = tg_sprintf("reload %s\n", abs);
    write_all(fd, req, strlen(req));
    free(req);
    char *buf = tg_malloc(CONTROL_ANSWER_MAX + 1);
    size_t total = 0;
    ssize_t n;
    while (total < CONTROL_ANSWER_MAX &&
           (n = read(fd, buf + total, CONTROL_ANSWER_MAX - total)) > 0)
        total += (size_t)n;
    buf[total] = '\0';
    /* "ok N" then warnings, or "error" then the problems, one a line. */
    char *rest = strchr(buf, '\n');
    rest = rest != NULL ? rest + 1 : buf + total;
    bool ok = strncmp(buf, "ok ", 3) == 0;
    if (ok)
        printf("generation %llu\n", strtoull(buf + 3, NULL, 10));
    else if (total == 0)
        fprintf(stderr, "tollgate: the running instance gave no answer\n");
    fputs(rest, stderr);
    free(buf);
    rc = ok ? 0 : 1;
out:
    if (fd >= 0)
        close(fd);
    free(abs);
    free(path);
    return rc;
}
