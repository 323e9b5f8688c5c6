/* The admin endpoint: a small HTTP/1.1 server (libevent's evhttp: off the data path, so
 * the convenience is worth more than control) with bearer-token auth on TCP. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "tollgate/admin.h"

#define TOKEN_MAX 512

struct tg_admin_s {
    struct evhttp *http;
    const tg_admin_ops_t *ops;
    void *arg;
    char *token; /* NULL on a unix socket: file permissions guard it */
    char *unix_path;
};

static void reply(struct evhttp_request *req, int code, const char *ctype, const char *body,
                  size_t len)
{
    struct evbuffer *buf = evbuffer_new();
    evbuffer_add(buf, body, len);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
    evhttp_send_reply(req, code, NULL, buf);
    evbuffer_free(buf);
}

static void reply_error(struct evhttp_request *req, int code, const char *msg)
{
    char body[256];
    int n = snprintf(body, sizeof(body), "{\"error\": \"%s\"}\n", msg);
    reply(req, code, "application/json", body, (size_t)n);
}

/* Constant time, so the token cannot be guessed byte by byte from response times. */
static bool token_ok(const tg_admin_t *a, struct evhttp_request *req)
{
    if (a->token == NULL)
        return true;
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (h == NULL || strncmp(h, "Bearer ", 7) != 0)
        return false;
    h += 7;
    size_t n = strlen(a->token), m = strlen(h);
    unsigned char diff = (unsigned char)(n != m);
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(a->token[i] ^ (i < m ? h[i] : 0));
    return diff == 0;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    tg_admin_t *a = arg;
    if (!token_ok(a, req)) {
        reply_error(req, 401, "missing or wrong bearer token");
        return;
    }
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET || path == NULL) {
        reply_error(req, 404, "no such call");
        return;
    }
    tg_admin_stats_t st;
    a->ops->stats(a->arg, &st);
    tg_generation_t *g = a->ops->acquire(a->arg);
    if (strcmp(path, "/metrics") == 0) {
        size_t len;
        char *text = tg_admin_metrics(g, &st, &len);
        reply(req, 200, "text/plain; version=0.0.4", text, len);
        free(text);
    } else if (strcmp(path, "/v1/status") == 0) {
        char *body = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&body, &len);
        fprintf(f,
                "{\"version\": \"%s\", \"generation\": %llu, \"uptime_s\": %llu, "
                "\"workers\": %u, \"listeners\": [",
                TG_VERSION, (unsigned long long)st.generation, (unsigned long long)st.uptime_s,
                st.workers);
        for (size_t i = 0; i < g->nlisteners; i++)
            fprintf(f, "%s\"%s\"", i ? ", " : "", g->listeners[i].conf->id);
        fputs("]}\n", f);
        fclose(f);
        reply(req, 200, "application/json", body, len);
        free(body);
    } else {
        reply_error(req, 404, "no such call");
    }
    tg_generation_unref(g);
}

static char *read_token(const char *path, tg_errors_t *errs, const char *cfg_path)
{
    FILE *f = fopen(path, "r");
    char buf[TOKEN_MAX + 2];
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f == NULL || n == 0 || n > TOKEN_MAX) {
        tg_errors_add(errs, TG_SEV_ERROR, cfg_path, 0, 0, "admin: token file %s: %s", path,
                      f == NULL ? strerror(errno)
                      : n == 0  ? "empty"
                                : "longer than 512 bytes");
        if (f)
            fclose(f);
        return NULL;
    }
    fclose(f);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        n--;
    return tg_strndup(buf, n);
}

static int bind_unix(tg_admin_t *a, struct event_base *base, const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sun.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(sun.sun_path, path);
    unlink(path);
    mode_t old = umask(0077);
    struct evconnlistener *l =
        evconnlistener_new_bind(base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 64,
                                (struct sockaddr *)&sun, sizeof(sun));
    umask(old);
    if (l == NULL || evhttp_bind_listener(a->http, l) == NULL)
        return -1;
    a->unix_path = tg_strdup(path);
    return 0;
}

tg_admin_t *tg_admin_start(struct event_base *base, const tg_config_t *cfg,
                           const tg_admin_ops_t *ops, void *arg, tg_errors_t *errs)
{
    if (!cfg->admin.enabled)
        return NULL;
    tg_admin_t *a = tg_calloc(1, sizeof(*a));
    a->ops = ops;
    a->arg = arg;
    a->http = evhttp_new(base);
    evhttp_set_gencb(a->http, on_request, a);
    evhttp_set_max_headers_size(a->http, 16384);
    evhttp_set_max_body_size(a->http, 1 << 20);
    evhttp_set_timeout(a->http, 10);
    const char *listen = cfg->admin.listen;
    int rc;
    if (strncmp(listen, "unix:", 5) == 0) {
        rc = bind_unix(a, base, listen + 5);
    } else {
        a->token = read_token(cfg->admin.token_file, errs, cfg->path);
        struct sockaddr_storage ss;
        socklen_t len;
        rc = a->token == NULL || tg_addr_parse(listen, &ss, &len) != 0 ? -1 : 0;
        if (rc == 0) {
            struct evconnlistener *l = evconnlistener_new_bind(
                base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE,
                64, (struct sockaddr *)&ss, (int)len);
            rc = l != NULL && evhttp_bind_listener(a->http, l) != NULL ? 0 : -1;
        }
    }
    if (rc != 0) {
        if (a->token != NULL || strncmp(listen, "unix:", 5) == 0)
            tg_errors_add(errs, TG_SEV_ERROR, cfg->path, cfg->admin.pos.line, cfg->admin.pos.col,
                          "admin: cannot listen on %s: %s", listen, strerror(errno));
        tg_admin_stop(a);
        return NULL;
    }
    return a;
}

void tg_admin_stop(tg_admin_t *a)
{
    if (a == NULL)
        return;
    evhttp_free(a->http);
    if (a->unix_path != NULL)
        unlink(a->unix_path);
    free(a->unix_path);
    free(a->token);
    free(a);
}
