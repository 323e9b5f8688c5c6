/* The backends section: server pools with balancing, timeouts and health checks, or a fixed
 * response answered by the proxy itself. */
#include <stdlib.h>
#include <string.h>

#include "node.h"

#define B(field) offsetof(tg_conf_backend_t, field)
#define H(field) offsetof(tg_conf_health_t, field)

static const char *const balance_words[] = {
    [TG_BALANCE_ROUND_ROBIN] = "round_robin", [TG_BALANCE_LEAST_CONN] = "least_conn", NULL};

static bool server_listed(const tg_conf_backend_t *b, const struct sockaddr_storage *ss)
{
    for (size_t i = 0; i < b->nservers; i++) {
        if (tg_addr_equal((const struct sockaddr *)&b->servers[i].addr,
                          (const struct sockaddr *)ss))
            return true;
    }
    return false;
}

static void add_server(tg__ctx_t *c, const tg__sect_t *s, const tg__node_t *key,
                       const tg__node_t *item)
{
    tg_conf_backend_t *b = s->obj;
    const char *text = tg__scalar(c, s, key, item);
    struct sockaddr_storage ss;
    socklen_t len;
    tg__quote_t q;

    if (text == NULL)
        return;
    if (tg_addr_parse(text, &ss, &len) != 0) {
        tg__err(c, item, "%s: invalid server address \"%s\" (expected host:port or [v6]:port)",
                s->label, tg__qnode(&q, item));
        return;
    }
    if (server_listed(b, &ss)) {
        tg__err(c, item, "%s: server \"%s\" is listed twice", s->label, tg__qnode(&q, item));
        return;
    }
    b->servers[b->nservers++] =
        (tg_conf_server_t){.text = tg_strdup(text), .addr = ss, .addr_len = len, .pos = item->pos};
}

static void set_servers(tg__ctx_t *c, const tg__sect_t *s, const tg__key_t *k,
                        const tg__node_t *key, const tg__node_t *val)
{
    tg_conf_backend_t *b = s->obj;

    if (!tg__seq(c, s, key, val))
        return;
    if (val->kind != TG__NODE_SEQ || val->nkids == 0) {
        tg__err(c, val, "%s: servers must not be empty", s->label);
        return;
    }
    b->servers = tg_calloc(val->nkids, sizeof(*b->servers));
    for (size_t i = 0; i < val->nkids; i++)
        add_server(c, s, key, val->kids[i]);
}

/* The path goes into a request line as is: no spaces or control characters may smuggle a
 * second line in. */
static void set_health_path(tg__ctx_t *c, const tg__sect_t *s, const tg__key_t *k,
                            const tg__node_t *key, const tg__node_t *val)
{
    tg_conf_health_t *h = s->obj;
    const char *text = tg__scalar(c, s, key, val);

    if (text == NULL)
        return;
    for (const char *p = text; *p; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
            tg__err(c, val, "%s: path must not contain spaces or control characters", s->label);
            return;
        }
    }
    if (text[0] != '/') {
        tg__err(c, val, "%s: path must start with /", s->label);
        return;
    }
    free(h->path);
    h->path = tg_strdup(text);
}

static const tg__key_t health_keys[] = {
    {.name = "path", .set = set_health_path, .required = true},
    {.name = "interval", .set = tg__set_duration, .off = H(interval_ms), .min = 1},
    {.name = "timeout", .set = tg__set_duration, .off = H(timeout_ms), .min = 1},
    {.name = "rise", .set = tg__set_unsigned, .off = H(rise), .min = 1, .max = 100},
    {.name = "fall", .set = tg__set_unsigned, .off = H(fall), .min = 1, .max = 100},
};

static void set_health(tg__ctx_t *c, const tg__sect_t *s, const tg__key_t *k, const tg__node_t *key,
                       const tg__node_t *val)
{
    tg_conf_backend_t *b = s->obj;
    char *label = tg_sprintf("%s health_check", s->label);
    const tg__sect_t sect = {.label = label, .at = key, .obj = &b->health};

    b->health.enabled = true;
    tg__map_apply(c, &sect, val, health_keys, TG_ARRAY_SIZE(health_keys));
    free(label);
}

/* The body may hold any bytes, NULs included: it is sent with its length. */
static void set_body(tg__ctx_t *c, const tg__sect_t *s, const tg__key_t *k, const tg__node_t *key,
                     const tg__node_t *val)
{
    tg_conf_backend_t *b = s->obj;

    if (val->kind != TG__NODE_SCALAR) {
        tg__err(c, val, "%s: body must be a single value", s->label);
        return;
    }
    free(b->fixed_body);
    b->fixed_body = tg__is_null(val) ? tg_strdup("") : tg_strndup(val->text, val->len);
    b->fixed_body_len = tg__is_null(val) ? 0 : val->len;
}

static const tg__key_t fixed_keys[] = {
    {.name = "status", .set = tg__set_unsigned, .off = B(fixed_status), .min = 100, .max = 599},
    {.name = "content_type", .set = tg__set_token, .off = B(fixed_content_type)},
    {.name = "body", .set = set_body},
};

static void set_fixed(tg__ctx_t *c, const tg__sect_t *s, const tg__key_t *k, const tg__node_t *key,
                      const tg__node_t *val)
{
    tg_conf_backend_t *b = s->obj;
    char *label = tg_sprintf("%s fixed_response", s->label);
    const tg__sect_t sect = {.label = label, .at = key, .obj = b};

    b->is_fixed = true;
    tg__map_apply(c, &sect, val, fixed_keys, TG_ARRAY_SIZE(fixed_keys));
    free(label);
}

enum {
    K_SERVERS,
    K_BALANCE,
    K_CONNECT,
    K_RESPONSE,
    K_MAX_FAILS,
    K_FAIL_TIMEOUT,
    K_HEALTH,
    K_FIXED
};

static const tg__key_t backend_keys[] = {
    [K_SERVERS] = {.name = "servers", .set = set_servers},
    [K_BALANCE] = {.name = "balance",
                   .set = tg__set_enum,
                   .off = B(balance),
                   .words = balance_words},
    [K_CONNECT] = {.name = "connect_timeout",
                   .set = tg__set_duration,
                   .off = B(connect_timeout_ms),
                   .min = 1},
    [K_RESPONSE] = {.name = "response_timeout",
                    .set = tg__set_duration,
                    .off = B(response_timeout_ms),
                    .min = 1},
    [K_MAX_FAILS] =
        {.name = "max_fails", .set = tg__set_unsigned, .off = B(max_fails), .min = 0, .max = 1000},
    [K_FAIL_TIMEOUT] = {.name = "fail_timeout",
                        .set = tg__set_duration,
                        .off = B(fail_timeout_ms),
                        .min = 1},
    [K_HEALTH] = {.name = "health_check", .set = set_health},
    [K_FIXED] = {.name = "fixed_response", .set = set_fixed},
};

#define SEEN(seen, k) (((seen) >> (k)) & 1)

/* A backend is one of two kinds; settings of the other kind would be silently ignored, so
 * they are refused instead. */
static void check_kind(tg__ctx_t *c, const char *label, const tg__node_t *key,
                       const tg__node_t *val, uint64_t seen)
{
    if (SEEN(seen, K_SERVERS) && SEEN(seen, K_FIXED)) {
        tg__err(c, tg__map_key(val, "fixed_response"),
                "%s: servers and fixed_response cannot be used together", label);
        return;
    }
    if (!SEEN(seen, K_SERVERS) && !SEEN(seen, K_FIXED)) {
        tg__err(c, key, "%s: needs either servers or fixed_response", label);
        return;
    }
    if (!SEEN(seen, K_FIXED))
        return;
    for (size_t k = K_BALANCE; k <= K_HEALTH; k++) {
        if (SEEN(seen, k))
            tg__err(c, tg__map_key(val, backend_keys[k].name),
                    "%s: %s only applies to servers, not to fixed_response", label,
                    backend_keys[k].name);
    }
}

static void set_defaults(tg_conf_backend_t *b)
{
    b->balance = TG_BALANCE_ROUND_ROBIN;
    b->connect_timeout_ms = 3 * 1000;
    b->response_timeout_ms = 60 * 1000;
    b->max_fails = 1;
    b->fail_timeout_ms = 10 * 1000;
    b->health.interval_ms = 5 * 1000;
    b->health.timeout_ms = 2 * 1000;
    b->health.rise = 2;
    b->health.fall = 3;
    b->fixed_status = 200;
}

static void load_backend(tg__ctx_t *c, const char *what, const tg__node_t *key,
                         const tg__node_t *val)
{
    tg_conf_backend_t *b = &c->cfg->backends[c->cfg->nbackends++];
    tg__quote_t q;
    char *label = tg_sprintf("backend \"%s\"", tg__qnode(&q, key));
    const tg__sect_t sect = {.label = label, .at = key, .obj = b};

    b->id = tg_strdup(key->text);
    b->pos = key->pos;
    set_defaults(b);
    uint64_t seen = tg__map_apply(c, &sect, val, backend_keys, TG_ARRAY_SIZE(backend_keys));
    check_kind(c, label, key, val, seen);
    if (b->is_fixed && b->fixed_content_type == NULL)
        b->fixed_content_type = tg_strdup("text/plain");
    if (b->is_fixed && b->fixed_body == NULL)
        b->fixed_body = tg_strdup("");
    free(label);
}

void tg__load_backends(tg__ctx_t *c, const tg__node_t *val)
{
    c->cfg->backends = tg_calloc(tg__map_count(val), sizeof(*c->cfg->backends));
    tg__map_ids(c, "backend", val, load_backend);
}

void tg__free_backend(tg_conf_backend_t *b)
{
    for (size_t i = 0; i < b->nservers; i++)
        free(b->servers[i].text);
    free(b->servers);
    free(b->health.path);
    free(b->fixed_content_type);
    free(b->fixed_body);
    free(b->id);
}
