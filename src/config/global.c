/* The process-wide sections: global (workers, files, logging, limits) and admin (where the
 * admin API listens and how it authenticates). */
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "node.h"

#define G(field) offsetof(tg_config_t, global.field)
#define L(field) offsetof(tg_conf_limits_t, field)

static void set_workers(tg__ctx_t *c, const tg__sect_t *s, const tg__key_t *k,
                        const tg__node_t *key, const tg__node_t *val)
{
    const char *text = tg__scalar(c, s, key, val);
    uint64_t n;
    tg__quote_t q;

    if (text == NULL)
        return;
    if (strcmp(text, "auto") == 0) {
        c->cfg->global.workers = 0;
    } else if (tg_uint_parse(text, 1, 1024, &n) == 0) {
        c->cfg->global.workers = (unsigned)n;
    } else {
        tg__err(c, val, "global: workers must be auto or an integer from 1 to 1024, not \"%s\"",
                tg__qnode(&q, val));
    }
}

static void set_access_log(tg__ctx_t *c, const tg__sect_t *s, const tg__key_t *k,
                           const tg__node_t *key, const tg__node_t *val)
{
    static const char *const streams[] = {"stderr", "stdout", "off"};
    const char *text = tg__scalar(c, s, key, val);

    if (text == NULL)
        return;
    for (size_t i = 0; i < TG_ARRAY_SIZE(streams); i++) {
        if (strcmp(text, streams[i]) == 0) {
            free(c->cfg->global.access_log);
            c->cfg->global.access_log = tg_strdup(text);
            return;
        }
    }
    tg__set_path(c, s, k, key, val);
}

static const tg__key_t limits_keys[] = {
    {.name = "max_connections",
     .set = tg__set_u64,
     .off = L(max_connections),
     .min = 1,
     .max = 10000000},
    {.name = "handshake_timeout",
     .set = tg__set_duration,
     .off = L(handshake_timeout_ms),
     .min = 1},
    {.name = "header_timeout", .set = tg__set_duration, .off = L(header_timeout_ms), .min = 1},
    {.name = "idle_timeout", .set = tg__set_duration, .off = L(idle_timeout_ms), .min = 1},
    {.name = "max_header_bytes",
     .set = tg__set_u64,
     .off = L(max_header_bytes),
     .min = 1024,
     .max = 1048576},
    {.name = "max_concurrent_streams",
     .set = tg__set_u64,
     .off = L(max_concurrent_streams),
     .min = 1,
     .max = 1000},
};

static void set_limits(tg__ctx_t *c, const tg__sect_t *s, const tg__key_t *k, const tg__node_t *key,
                       const tg__node_t *val)
{
    const tg__sect_t sect = {.label = "global.limits", .at = key, .obj = &c->cfg->global.limits};

    tg__map_apply(c, &sect, val, limits_keys, TG_ARRAY_SIZE(limits_keys));
}

static const tg__key_t global_keys[] = {
    {.name = "workers", .set = set_workers},
    {.name = "pid_file", .set = tg__set_path, .off = G(pid_file)},
    {.name = "certificate_dir", .set = tg__set_path, .off = G(certificate_dir)},
    {.name = "log_level", .set = tg__set_enum, .off = G(log_level), .words = tg__log_level_words},
    {.name = "access_log", .set = set_access_log, .off = G(access_log)},
    {.name = "drain_timeout", .set = tg__set_duration, .off = G(drain_timeout_ms)},
    {.name = "limits", .set = set_limits},
};

void tg__load_global(tg__ctx_t *c, const tg__node_t *key, const tg__node_t *val)
{
    const tg__sect_t sect = {.label = "global", .at = key, .obj = c->cfg};

    tg__map_apply(c, &sect, val, global_keys, TG_ARRAY_SIZE(global_keys));
}

/* ---- admin --------------------------------------------------------------------------- */

#define A(field) offsetof(tg_config_t, admin.field)

static bool is_unix(const char *listen)
{
    return strncmp(listen, "unix:", 5) == 0;
}

static bool is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
        return in6->sin6_addr.s6_addr[12] == 127;
    return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
}

static void set_admin_listen(tg__ctx_t *c, const tg__sect_t *s, const tg__key_t *k,
                             const tg__node_t *key, const tg__node_t *val)
{
    const char *text = tg__scalar(c, s, key, val);
    struct sockaddr_storage ss;
    tg__quote_t q;

    if (text == NULL)
        return;
    if (!is_unix(text)) {
        if (tg_addr_parse(text, &ss, NULL) != 0) {
            tg__err(c, val, "admin: listen must be host:port, [v6]:port or unix:PATH, not \"%s\"",
                    tg__qnode(&q, val));
            return;
        }
        /* Off loopback the bearer token would cross the network in clear text: that needs
         * admin.certificate (TLS), which this version does not serve yet. */
        if (!is_loopback(&ss)) {
            tg__err(c, val,
                    "admin: listen \"%s\" is not a loopback address; the admin API is served "
                    "in clear text, so only on 127.0.0.0/8, [::1] or unix:PATH",
                    tg__qnode(&q, val));
            return;
        }
        c->cfg->admin.listen = tg_strdup(text);
        return;
    }
    if (text[5] == '\0') {
        tg__err(c, val, "admin: listen needs a path after unix:");
        return;
    }
    char *path = tg__resolve(c->cfg, text + 5);
    if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
        tg__err(c, val, "admin: unix socket path longer than %zu bytes once resolved",
                sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
    else
        c->cfg->admin.listen = tg_sprintf("unix:%s", path);
    free(path);
}

static const tg__key_t admin_keys[] = {
    {.name = "listen", .set = set_admin_listen, .required = true},
    {.name = "token_file", .set = tg__set_path, .off = A(token_file)},
};

void tg__load_admin(tg__ctx_t *c, const tg__node_t *key, const tg__node_t *val)
{
    const tg__sect_t sect = {.label = "admin", .at = key, .obj = c->cfg};
    const char *listen;

    c->cfg->admin.enabled = true;
    c->cfg->admin.pos = key->pos;
    tg__map_apply(c, &sect, val, admin_keys, TG_ARRAY_SIZE(admin_keys));
    listen = c->cfg->admin.listen;
    /* Anyone who can reach a TCP port could reconfigure the proxy; a unix socket is guarded
     * by file permissions instead. */
    if (listen != NULL && !is_unix(listen) && c->cfg->admin.token_file == NULL)
        tg__err(c, key, "admin: token_file is required when listen is a TCP address");
}
