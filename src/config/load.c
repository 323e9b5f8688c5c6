/* The config's entry points: reading the file, the top level of the document, the defaults,
 * freeing, and the lookups by id. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "node.h"

typedef struct slot_s {
    const tg__node_t *key;
    const tg__node_t *val;
} slot_t;

/* The top-level sections, collected first so that they load in dependency order whatever
 * order the file lists them in: listeners refer to certificates and backends. */
typedef struct top_s {
    slot_t version;
    slot_t global;
    slot_t admin;
    slot_t certificates;
    slot_t backends;
    slot_t listeners;
} top_t;

static void set_slot(tg__ctx_t *c, const tg__sect_t *s, const tg__key_t *k, const tg__node_t *key,
                     const tg__node_t *val)
{
    slot_t *slot = (slot_t *)((char *)s->obj + k->off);
    slot->key = key;
    slot->val = val;
}

static const tg__key_t top_keys[] = {
    {.name = "version", .set = set_slot, .off = offsetof(top_t, version)},
    {.name = "global", .set = set_slot, .off = offsetof(top_t, global)},
    {.name = "admin", .set = set_slot, .off = offsetof(top_t, admin)},
    {.name = "certificates", .set = set_slot, .off = offsetof(top_t, certificates)},
    {.name = "backends", .set = set_slot, .off = offsetof(top_t, backends)},
    {.name = "listeners", .set = set_slot, .off = offsetof(top_t, listeners)},
};

static void check_version(tg__ctx_t *c, const tg__node_t *root, const slot_t *v)
{
    static const tg__sect_t sect = {.label = "the top level"};
    uint64_t n;
    tg__quote_t q;

    if (v->val == NULL) {
        tg__err(c, root, "missing required key \"version\"");
        return;
    }
    const char *text = tg__scalar(c, &sect, v->key, v->val);
    if (text != NULL && tg_uint_parse(text, 1, 1, &n) != 0)
        tg__err(c, v->val, "unsupported version \"%s\" (this tollgate reads version 1)",
                tg__qnode(&q, v->val));
}

static void load_root(tg__ctx_t *c, const tg__node_t *root)
{
    top_t top = {0};
    const tg__sect_t sect = {.label = "the top level", .at = root, .obj = &top};

    if (root == NULL || tg__is_null(root)) {
        tg_errors_add(c->errs, TG_SEV_ERROR, c->file, 1, 1, "missing required key \"version\"");
        return;
    }
    if (root->kind != TG__NODE_MAP) {
        tg__err(c, root, "the configuration must be a mapping of sections");
        return;
    }
    tg__map_apply(c, &sect, root, top_keys, TG_ARRAY_SIZE(top_keys));
    check_version(c, root, &top.version);
    if (top.global.val != NULL)
        tg__load_global(c, top.global.key, top.global.val);
    if (top.admin.val != NULL)
        tg__load_admin(c, top.admin.key, top.admin.val);
    if (top.certificates.val != NULL)
        tg__load_certs(c, top.certificates.val);
    if (top.backends.val != NULL)
        tg__load_backends(c, top.backends.val);
    if (top.listeners.val != NULL)
        tg__load_listeners(c, top.listeners.val);
}

/* Absolute when the directory exists, so that relative paths survive a later chdir (the
 * daemon moves to / when it detaches). */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir;

    if (slash == NULL)
        dir = tg_strdup(".");
    else if (slash == path)
        dir = tg_strdup("/");
    else
        dir = tg_strndup(path, (size_t)(slash - path));
    char *abs = realpath(dir, NULL);
    if (abs == NULL)
        return dir;
    free(dir);
    return abs;
}

static tg_config_t *config_new(const char *path)
{
    tg_config_t *cfg = tg_calloc(1, sizeof(*cfg));

    cfg->path = tg_strdup(path);
    cfg->dir = dir_of(path);
    cfg->global.workers = 0;
    cfg->global.pid_file = tg__resolve(cfg, "run/tollgate.pid");
    cfg->global.certificate_dir = tg__resolve(cfg, "certs/store");
    cfg->global.log_level = TG_LOG_INFO;
    cfg->global.access_log = tg_strdup("stderr");
    cfg->global.drain_timeout_ms = 30 * 1000;
    cfg->global.limits = (tg_conf_limits_t){
        .max_connections = 100000,
        .handshake_timeout_ms = 10 * 1000,
        .header_timeout_ms = 10 * 1000,
        .idle_timeout_ms = 60 * 1000,
        .max_header_bytes = 32768,
        .max_concurrent_streams = 128,
    };
    return cfg;
}

tg_config_t *tg_config_parse(const char *buf, size_t len, const char *path, tg_errors_t *errs)
{
    tg_errors_t local;
    tg_errors_t *e = errs;

    /* Without a list the caller only asks "valid or not?": count errors all the same. */
    if (e == NULL) {
        tg_errors_init(&local);
        e = &local;
    }
    if (path == NULL)
        path = "<config>";
    size_t before = e->nerrors;
    tg_config_t *cfg = config_new(path);
    tg__ctx_t c = {.cfg = cfg, .errs = e, .file = path};
    tg__node_t *root = tg__yaml_parse(buf != NULL ? buf : "", buf != NULL ? len : 0, path, e);
    if (e->nerrors == before)
        load_root(&c, root);
    tg__node_free(root);
    free(c.alt_svc);
    if (e->nerrors != before) {
        tg_config_free(cfg);
        cfg = NULL;
    }
    if (e == &local)
        tg_errors_free(&local);
    return cfg;
}

/* Reads at most TG__CONFIG_MAX_BYTES + 1 bytes: one more than allowed is enough to refuse,
 * and the file may grow between fstat and read. */
static char *read_bounded(int fd, size_t *out_len)
{
    size_t cap = 64 * 1024, len = 0;
    char *buf = tg_malloc(cap);

    for (;;) {
        if (len == cap) {
            if (cap > TG__CONFIG_MAX_BYTES)
                break;
            cap = cap * 2 > TG__CONFIG_MAX_BYTES ? TG__CONFIG_MAX_BYTES + 1 : cap * 2;
            buf = tg_realloc(buf, cap);
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            free(buf);
            return NULL;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    *out_len = len;
    return buf;
}

static char *read_file(const char *path, size_t *len, const char **why)
{
    struct stat st;
    char *buf = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        *why = strerror(errno);
        return NULL;
    }
    if (fstat(fd, &st) != 0)
        *why = strerror(errno);
    else if (!S_ISREG(st.st_mode))
        *why = "not a regular file";
    else if (st.st_size > (off_t)TG__CONFIG_MAX_BYTES)
        *why = "file larger than 4 MiB";
    else if ((buf = read_bounded(fd, len)) == NULL)
        *why = strerror(errno);
    close(fd);
    return buf;
}

tg_config_t *tg_config_load(const char *path, tg_errors_t *errs)
{
    const char *why = "";
    size_t len = 0;
    char *buf = read_file(path, &len, &why);

    if (buf == NULL) {
        tg_errors_add(errs, TG_SEV_ERROR, path, 0, 0, "cannot read the configuration: %s", why);
        return NULL;
    }
    tg_config_t *cfg = tg_config_parse(buf, len, path, errs);
    free(buf);
    return cfg;
}

void tg_config_free(tg_config_t *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->ncerts; i++)
        tg__free_cert(&cfg->certs[i]);
    for (size_t i = 0; i < cfg->nbackends; i++)
        tg__free_backend(&cfg->backends[i]);
    for (size_t i = 0; i < cfg->nlisteners; i++)
        tg__free_listener(&cfg->listeners[i]);
    free(cfg->certs);
    free(cfg->backends);
    free(cfg->listeners);
    free(cfg->global.pid_file);
    free(cfg->global.certificate_dir);
    free(cfg->global.access_log);
    free(cfg->admin.listen);
    free(cfg->admin.token_file);
    free(cfg->path);
    free(cfg->dir);
    free(cfg);
}

ssize_t tg_config_find_cert(const tg_config_t *cfg, const char *id)
{
    for (size_t i = 0; i < cfg->ncerts; i++) {
        if (strcmp(cfg->certs[i].id, id) == 0)
            return (ssize_t)i;
    }
    return -1;
}

ssize_t tg_config_find_backend(const tg_config_t *cfg, const char *id)
{
    for (size_t i = 0; i < cfg->nbackends; i++) {
        if (strcmp(cfg->backends[i].id, id) == 0)
            return (ssize_t)i;
    }
    return -1;
}

ssize_t tg_config_find_listener(const tg_config_t *cfg, const char *id)
{
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        if (strcmp(cfg->listeners[i].id, id) == 0)
            return (ssize_t)i;
    }
    return -1;
}
