/* The admin endpoint: a small HTTP/1.1 server on the main thread, off the data path, with
 * bearer-token auth on TCP. One request a connection, parsed by the same strict parser as
 * client requests, every byte bounded, and a cap on open connections. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>

#include "admin_internal.h"
#include "tollgate/http.h"

#define TOKEN_MAX 512
/* Shorter tokens can be guessed; 16 bytes is what `openssl rand -hex 8` gives. */
#define TOKEN_MIN 16
/* The admin endpoint is for an operator and a few scripts: at this many open connections
 * the oldest still waiting for its request makes room (make_room), so no client can pin
 * the main thread's descriptors or memory, nor keep the operator out. */
#define ADMIN_MAX_CONNS 32
#define ADMIN_MAX_HEAD 16384
#define ADMIN_MAX_BODY (1 << 20)
#define ADMIN_MAX_HEADERS 64
#define ADMIN_TIMEOUT_S 10

typedef struct admin_conn_s admin_conn_t;

struct tg_admin_s {
    struct event_base *base;
    struct evconnlistener *listener;
    struct event *resume; /* ends a pause of accepting after running out of fds */
    const tg_admin_ops_t *ops;
    void *arg;
    char *token; /* NULL on a unix socket: file permissions guard it */
    char *unix_path;
    admin_conn_t *conns;
    unsigned nconns;
};

/* One connection: it reads one request, answers it and closes. */
struct admin_conn_s {
    tg_admin_t *a;
    struct bufferevent *bev;
    struct event deadline;     /* the whole request must come within ADMIN_TIMEOUT_S */
    size_t scanned;            /* of the head, for tg_http_head_end */
    bool authed;               /* its head carried the token */
    bool answered;             /* the answer is queued: close once it is out */
    admin_conn_t *prev, *next; /* newest first */
};

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* ---- connections ----------------------------------------------------------------------- */

static void conn_free(admin_conn_t *c)
{
    tg_admin_t *a = c->a;
    evtimer_del(&c->deadline);
    bufferevent_free(c->bev);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        a->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    a->nconns--;
    free(c);
}

static void reply(admin_conn_t *c, int code, const char *ctype, const char *body, size_t len)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                        "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                        code, tg_http_reason(code), ctype, len);
    evbuffer_add(out, body, len);
    c->answered = true;
    bufferevent_disable(c->bev, EV_READ);
    bufferevent_enable(c->bev, EV_WRITE);
}

static void reply_error(admin_conn_t *c, int code, const char *msg)
{
    char body[256];
    int n = snprintf(body, sizeof(body), "{\"error\": \"%s\"}\n", msg);
    reply(c, code, "application/json", body, (size_t)n);
}

/* The first Authorization header; *dup when another one came too. */
static const tg_http_header_t *authorization(const tg_http_request_t *req, bool *dup)
{
    const tg_http_header_t *found = NULL;
    *dup = false;
    for (size_t i = 0; i < req->nheaders; i++) {
        const tg_http_header_t *h = &req->headers[i];
        if (!tg_http_name_eq(h->name, h->name_len, "authorization", 13))
            continue;
        *dup = found != NULL;
        found = found != NULL ? found : h;
    }
    return found;
}

/* Constant time, so the token cannot be guessed byte by byte from response times. The
 * token is at least TOKEN_MIN visible characters (tg_admin_token_read), so no run of
 * white space a client sends can ever equal it. */
static bool token_ok(const tg_admin_t *a, const tg_http_request_t *req)
{
    if (a->token == NULL)
        return true;
    bool dup;
    const tg_http_header_t *h = authorization(req, &dup);
    if (h == NULL || dup || h->value_len < 7 || strncasecmp(h->value, "Bearer ", 7) != 0)
        return false;
    const char *v = h->value + 7;
    size_t m = h->value_len - 7;
    while (m > 0 && is_space(*v))
        v++, m--;
    size_t n = strlen(a->token);
    unsigned char diff = (unsigned char)(n != m);
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(a->token[i] ^ (i < m ? v[i] : 0));
    return diff == 0;
}

static void reply_json(admin_conn_t *c, int code, json_t *j)
{
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (text == NULL) {
        reply_error(c, 500, "out of memory");
        return;
    }
    size_t len = strlen(text);
    text[len] = '\n'; /* json_dumps leaves the NUL's byte ours to use */
    reply(c, code, "application/json", text, len + 1);
    free(text);
}

static json_t *status_view(const tg_generation_t *g, const tg_admin_stats_t *st)
{
    json_t *ls = json_array();
    for (size_t i = 0; i < g->nlisteners; i++)
        json_array_append_new(ls, json_string(g->listeners[i].conf->id));
    json_t *o = json_object();
    json_object_set_new(o, "version", json_string(TG_VERSION));
    json_object_set_new(o, "generation", json_integer((json_int_t)st->generation));
    json_object_set_new(o, "uptime_s", json_integer((json_int_t)st->uptime_s));
    json_object_set_new(o, "workers", json_integer(st->workers));
    json_object_set_new(o, "listeners", ls);
    return o;
}

/* "/v1/<coll>" (*id NULL) or "/v1/<coll>/<id>"; false for any other shape. */
static bool collection_path(const char *path, size_t len, const char *coll, const char **id,
                            size_t *id_len)
{
    size_t cl = strlen(coll);
    if (len < 4 + cl || memcmp(path, "/v1/", 4) != 0 || memcmp(path + 4, coll, cl) != 0)
        return false;
    const char *rest = path + 4 + cl;
    size_t rl = len - 4 - cl;
    *id = NULL;
    *id_len = 0;
    if (rl == 0)
        return true;
    if (rest[0] != '/' || rl < 2 || memchr(rest + 1, '/', rl - 1) != NULL)
        return false;
    *id = rest + 1;
    *id_len = rl - 1;
    return true;
}

static bool id_is(const char *id, size_t len, const char *want)
{
    return strlen(want) == len && memcmp(id, want, len) == 0;
}

/* GET /v1/certificates[/{id}] and /v1/listeners[/{id}]. */
static void get_collection(admin_conn_t *c, const tg_generation_t *g, bool certs, const char *id,
                           size_t id_len)
{
    size_t n = certs ? g->cfg->ncerts : g->cfg->nlisteners;
    time_t now = time(NULL);
    json_t *all = id == NULL ? json_array() : NULL;
    for (size_t i = 0; i < n; i++) {
        const char *this_id = certs ? g->cfg->certs[i].id : g->cfg->listeners[i].id;
        if (id != NULL && !id_is(id, id_len, this_id))
            continue;
        json_t *v = certs ? tg__admin_cert_view(g, i, now) : tg__admin_listener_view(g, i);
        if (id != NULL) {
            reply_json(c, 200, v);
            return;
        }
        json_array_append_new(all, v);
    }
    if (id != NULL) {
        reply_error(c, 404, certs ? "no such certificate" : "no such listener");
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, certs ? "certificates" : "listeners", all);
    reply_json(c, 200, o);
}

/* POST /v1/reload: what SIGHUP does, with its outcome as the answer. */
static void post_reload(admin_conn_t *c)
{
    tg_admin_t *a = c->a;
    tg_errors_t errs;
    tg_errors_init(&errs);
    uint64_t gen = a->ops->reload(a->arg, &errs);
    json_t *o = json_object();
    if (gen != 0) {
        json_object_set_new(o, "generation", json_integer((json_int_t)gen));
        json_object_set_new(o, "warnings", tg__admin_problems(&errs, TG_SEV_WARNING));
    } else {
        char first[1400];
        tg_errors_first(&errs, first, sizeof(first));
        json_object_set_new(o, "error", json_string(first));
        json_object_set_new(o, "problems", tg__admin_problems(&errs, TG_SEV_ERROR));
    }
    tg_errors_free(&errs);
    reply_json(c, gen != 0 ? 200 : 422, o);
}

static void handle(admin_conn_t *c, const tg_http_request_t *req)
{
    tg_admin_t *a = c->a;
    const char *path = req->target;
    const char *q = memchr(path, '?', req->target_len);
    size_t path_len = q != NULL ? (size_t)(q - path) : req->target_len;
    bool get = req->method_len == 3 && memcmp(req->method, "GET", 3) == 0;
    const char *id;
    size_t id_len;
    bool certs = collection_path(path, path_len, "certificates", &id, &id_len);
    bool listeners = !certs && collection_path(path, path_len, "listeners", &id, &id_len);
    bool metrics = path_len == 8 && memcmp(path, "/metrics", 8) == 0;
    bool status = path_len == 10 && memcmp(path, "/v1/status", 10) == 0;
    bool reload = path_len == 10 && memcmp(path, "/v1/reload", 10) == 0;
    if (!certs && !listeners && !metrics && !status && !reload) {
        reply_error(c, 404, "no such call");
        return;
    }
    if (reload) {
        if (req->method_len == 4 && memcmp(req->method, "POST", 4) == 0)
            post_reload(c);
        else
            reply_error(c, 405, "method not allowed here");
        return;
    }
    if (!get) {
        reply_error(c, 405, "method not allowed here");
        return;
    }
    tg_admin_stats_t st;
    a->ops->stats(a->arg, &st);
    tg_generation_t *g = a->ops->acquire(a->arg);
    if (metrics) {
        size_t len;
        char *text = tg_admin_metrics(g, &st, &len);
        reply(c, 200, "text/plain; version=0.0.4", text, len);
        free(text);
    } else if (status) {
        reply_json(c, 200, status_view(g, &st));
    } else {
        get_collection(c, g, certs, id, id_len);
    }
    tg_generation_unref(g);
}

/* Waits until the head and its whole body are in, then answers. */
static void on_read(struct bufferevent *bev, void *arg)
{
    admin_conn_t *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len = evbuffer_get_length(in);
    size_t look = len < ADMIN_MAX_HEAD ? len : ADMIN_MAX_HEAD;
    const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)look);
    size_t end = tg_http_head_end(buf, look, &c->scanned);
    if (end == 0) {
        if (len >= ADMIN_MAX_HEAD)
            reply_error(c, 431, "request head too large");
        return;
    }
    tg_http_header_t hs[ADMIN_MAX_HEADERS];
    tg_http_request_t req;
    int status = 400;
    if (tg_http_parse_request(buf, end, &req, hs, ADMIN_MAX_HEADERS, &status) < 0) {
        reply_error(c, status, "malformed request");
        return;
    }
    /* The token is checked on the head, before any body is waited for: nobody without it
     * makes us hold a megabyte, or holds a connection longer than its head takes. */
    if (!c->authed && !token_ok(c->a, &req)) {
        reply_error(c, 401, "missing or wrong bearer token");
        return;
    }
    c->authed = true;
    if (req.body == TG_HTTP_BODY_CHUNKED) {
        reply_error(c, 411, "send a Content-Length");
        return;
    }
    uint64_t body = req.body == TG_HTTP_BODY_LENGTH ? req.content_length : 0;
    if (body > ADMIN_MAX_BODY) {
        reply_error(c, 413, "request body larger than 1 MiB");
        return;
    }
    if (len < end + body) {
        /* Wait for the body; the parsed slices would move with the next read. */
        bufferevent_setwatermark(bev, EV_READ, end + (size_t)body, end + (size_t)body);
        return;
    }
    buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)(end + body));
    if (tg_http_parse_request(buf, end, &req, hs, ADMIN_MAX_HEADERS, &status) < 0)
        return; /* parsed the same bytes a moment ago */
    handle(c, &req);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    admin_conn_t *c = arg;
    if (c->answered && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        conn_free(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    conn_free(arg); /* EOF, error or timeout: nothing more to say */
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    admin_conn_t *c = arg;
    if (!c->answered)
        conn_free(c); /* an answer being written has the write timeout */
}

/* At the cap, the oldest connection still waiting for its request makes room, one without
 * the token first: clients that trickle bytes to hold every slot can then never keep the
 * operator out, while the cap still bounds what they cost. */
static bool make_room(tg_admin_t *a)
{
    admin_conn_t *oldest = NULL, *oldest_anon = NULL;
    for (admin_conn_t *c = a->conns; c != NULL; c = c->next) {
        if (c->answered)
            continue;
        oldest = c;
        if (!c->authed)
            oldest_anon = c;
    }
    admin_conn_t *victim = oldest_anon != NULL ? oldest_anon : oldest;
    if (victim == NULL)
        return false;
    conn_free(victim);
    return true;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
    tg_admin_t *a = arg;
    struct bufferevent *bev = a->nconns < ADMIN_MAX_CONNS || make_room(a)
                                  ? bufferevent_socket_new(a->base, fd, BEV_OPT_CLOSE_ON_FREE)
                                  : NULL;
    if (bev == NULL) {
        evutil_closesocket(fd);
        return;
    }
    admin_conn_t *c = tg_calloc(1, sizeof(*c));
    c->a = a;
    c->bev = bev;
    c->next = a->conns;
    if (a->conns != NULL)
        a->conns->prev = c;
    a->conns = c;
    a->nconns++;
    struct timeval tv = {ADMIN_TIMEOUT_S, 0};
    evtimer_assign(&c->deadline, a->base, on_deadline, c);
    evtimer_add(&c->deadline, &tv);
    bufferevent_set_timeouts(bev, &tv, &tv);
    bufferevent_setwatermark(bev, EV_READ, 0, ADMIN_MAX_HEAD);
    bufferevent_setcb(bev, on_read, on_write, on_event, c);
    bufferevent_enable(bev, EV_READ);
}

/* ---- the token --------------------------------------------------------------------------- */

/* The token of a TCP admin listener: the file's one line, white space around it trimmed.
 * Refused unless it is TOKEN_MIN to TOKEN_MAX visible ASCII characters: a blank file
 * would otherwise make an empty token that "Bearer " plus white space matches. */
char *tg_admin_token_read(const tg_config_t *cfg, tg_errors_t *errs)
{
    const char *path = cfg->admin.token_file;
    const char *why = NULL;
    char buf[TOKEN_MAX + 64];
    FILE *f = fopen(path, "r");
    size_t n = f != NULL ? fread(buf, 1, sizeof(buf), f) : 0;
    if (f == NULL)
        why = strerror(errno);
    else if (ferror(f))
        why = "cannot read it";
    else if (n == sizeof(buf))
        why = "the file is longer than a token of 512 characters and its white space";
    if (f != NULL)
        fclose(f);
    size_t s = 0;
    while (why == NULL && s < n && is_space(buf[s]))
        s++;
    while (why == NULL && n > s && is_space(buf[n - 1]))
        n--;
    if (why == NULL && n - s < TOKEN_MIN)
        why = n == s ? "the token is blank" : "the token is shorter than 16 characters";
    else if (why == NULL && n - s > TOKEN_MAX)
        why = "the token is longer than 512 characters";
    for (size_t i = s; why == NULL && i < n; i++)
        if ((unsigned char)buf[i] <= 0x20 || (unsigned char)buf[i] >= 0x7f)
            why = "the token must be one word of visible ASCII characters";
    if (why != NULL) {
        tg_errors_add(errs, TG_SEV_ERROR, cfg->path, cfg->admin.pos.line, cfg->admin.pos.col,
                      "admin: token file %s: %s", path, why);
        return NULL;
    }
    return tg_strndup(buf + s, n - s);
}

/* ---- listening ------------------------------------------------------------------------- */

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    tg_admin_t *a = arg;
    evconnlistener_enable(a->listener);
}

/* accept() failed. Out of fds or memory, the connection stays in the backlog and the
 * listening socket readable: without a pause the main thread would spin on it (and with
 * it signals, reloads and health checks). One second off, one log line a pause. */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
    tg_admin_t *a = arg;
    int err = EVUTIL_SOCKET_ERROR();
    if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM)
        return;
    tg_log_warn("admin: accept: %s; pausing the admin listener for 1 s", strerror(err));
    evconnlistener_disable(l);
    struct timeval tv = {1, 0};
    evtimer_add(a->resume, &tv);
}

static int listen_on(tg_admin_t *a, const struct sockaddr *sa, socklen_t len, unsigned flags)
{
    a->listener = evconnlistener_new_bind(a->base, on_accept, a,
                                          LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | flags, 64,
                                          sa, (int)len);
    if (a->listener == NULL)
        return -1;
    evconnlistener_set_error_cb(a->listener, on_accept_error);
    return 0;
}

static int bind_unix(tg_admin_t *a, const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sun.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(sun.sun_path, path);
    unlink(path);
    mode_t old = umask(0077);
    int rc = listen_on(a, (struct sockaddr *)&sun, sizeof(sun), 0);
    umask(old);
    if (rc == 0)
        a->unix_path = tg_strdup(path);
    return rc;
}

tg_admin_t *tg_admin_start(struct event_base *base, const tg_config_t *cfg,
                           const tg_admin_ops_t *ops, void *arg, tg_errors_t *errs)
{
    if (!cfg->admin.enabled)
        return NULL;
    tg_admin_t *a = tg_calloc(1, sizeof(*a));
    a->base = base;
    a->resume = evtimer_new(base, on_resume, a);
    a->ops = ops;
    a->arg = arg;
    const char *listen = cfg->admin.listen;
    int rc;
    if (strncmp(listen, "unix:", 5) == 0) {
        rc = bind_unix(a, listen + 5);
    } else {
        a->token = tg_admin_token_read(cfg, errs);
        struct sockaddr_storage ss;
        socklen_t len;
        rc = a->token == NULL || tg_addr_parse(listen, &ss, &len) != 0
                 ? -1
                 : listen_on(a, (struct sockaddr *)&ss, len, LEV_OPT_REUSEABLE);
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
    if (a->listener != NULL)
        evconnlistener_free(a->listener);
    a->listener = NULL;
    event_free(a->resume);
    while (a->conns != NULL)
        conn_free(a->conns);
    if (a->unix_path != NULL)
        unlink(a->unix_path);
    free(a->unix_path);
    if (a->token != NULL)
        explicit_bzero(a->token, strlen(a->token));
    free(a->token);
    free(a);
}

void tg_admin_reload(tg_admin_t *a, const tg_config_t *cfg)
{
    if (a == NULL || a->token == NULL || !cfg->admin.enabled || cfg->admin.token_file == NULL)
        return;
    tg_errors_t errs;
    tg_errors_init(&errs);
    char *token = tg_admin_token_read(cfg, &errs); /* load() validated it a moment ago */
    tg_errors_free(&errs);
    if (token == NULL)
        return;
    explicit_bzero(a->token, strlen(a->token));
    free(a->token);
    a->token = token;
}
