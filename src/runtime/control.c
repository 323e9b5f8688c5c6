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

#include <event2/event.h>
#include <event2/listener.h>

#include "tollgate/runtime.h"
#include "runtime_internal.h"

#define CONTROL_LINE_MAX 4200
#define CONTROL_IO_TIMEOUT_S 5
#define CONTROL_ANSWER_MAX (1024 * 1024)

char *tg__control_path(const tg_config_t *cfg)
{
    const char *pid = cfg->global.pid_file;
    size_t n = strlen(pid);
    if (n > 4 && strcmp(pid + n - 4, ".pid") == 0)
        n -= 4;
    return tg_sprintf("%.*s.ctl", (int)n, pid);
}

static int unix_addr(const char *path, struct sockaddr_un *sun)
{
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun->sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(sun->sun_path, path);
    return 0;
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

static void answer(int fd, tg_runtime_t *rt, const char *line)
{
    if (strncmp(line, "reload ", 7) != 0) {
        write_all(fd, "error\nunknown control command\n", 31);
        return;
    }
    tg_errors_t errs;
    tg_errors_init(&errs);
    uint64_t gen = tg__runtime_reload(rt, line + 7, &errs);
    char *out = NULL;
    size_t outlen = 0;
    FILE *mem = open_memstream(&out, &outlen);
    if (gen != 0)
        fprintf(mem, "ok %llu\n", (unsigned long long)gen);
    else
        fputs("error\n", mem);
    tg_errors_print(&errs, mem);
    fclose(mem);
    write_all(fd, out, outlen);
    free(out);
    tg_errors_free(&errs);
}

/* The main thread does the whole exchange at once: control requests are rare, small,
 * and from the machine's owner, and a reload runs on this thread anyway. */
static void on_control(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                       void *arg)
{
    tg_runtime_t *rt = arg;
    int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    set_timeouts(fd);
    char line[CONTROL_LINE_MAX];
    size_t got = 0;
    while (got < sizeof(line) - 1) {
        ssize_t n = read(fd, line + got, sizeof(line) - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        if (memchr(line, '\n', got) != NULL)
            break;
    }
    line[got] = '\0';
    char *nl = strchr(line, '\n');
    if (nl != NULL) {
        *nl = '\0';
        answer(fd, rt, line);
    }
    close(fd);
}

int tg__control_listen(tg_runtime_t *rt, const tg_config_t *cfg)
{
    rt->control_path = tg__control_path(cfg);
    struct sockaddr_un sun;
    if (unix_addr(rt->control_path, &sun) != 0)
        return -1;
    unlink(rt->control_path); /* a stale socket of an instance that died */
    mode_t old = umask(0077); /* the owner only: a reload is an admin action */
    rt->control = evconnlistener_new_bind(rt->base, on_control, rt,
                                          LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 16,
                                          (struct sockaddr *)&sun, sizeof(sun));
    umask(old);
    return rt->control != NULL ? 0 : -1;
}

void tg__control_close(tg_runtime_t *rt)
{
    if (rt->control != NULL) {
        evconnlistener_free(rt->control);
        unlink(rt->control_path);
    }
    free(rt->control_path);
    rt->control = NULL;
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
    struct sockaddr_un sun;
    int fd = -1, rc = 1;
    if (abs == NULL || unix_addr(path, &sun) != 0 ||
        (fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
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
