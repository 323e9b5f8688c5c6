/* The listeners section: protocol and address, backend, security policy, certificates and
 * mutual authentication, and the checks that span listeners (shared addresses, alt_svc). */
#include <stdlib.h>
#include <string.h>

#include "node.h"

#define LS(field) offsetof(tg_conf_listener_t, field)
#define M(field) offsetof(tg_conf_mtls_t, field)

static const char *const proto_words[] = {
    [TG_PROTO_HTTPS] = "https", [TG_PROTO_QUIC] = "quic", NULL};

static void set_listen(tg__ctx_t *c, const tg__sect_t *s, const tg__key_t *k, const tg__node_t *key,
                       const tg__node_t *val)
{
    tg_conf_listener_t *l = s->obj;
    const char *text = tg__scalar(c, s, key, val);
    tg__quote_t q;

    if (text == NULL)
        return;
    if (tg_addr_parse(text, &l->addr, &l->addr_len) != 0) {
        tg__err(c, val, "%s: invalid listen address \"%s\" (expected host:port or [v6]:port)",
                s->label, tg__qnode(&q, val));
        return;
    }
    l->listen_text = tg_strdup(text);
    l->listen_pos = val->pos;
}

static void set_backend(tg__ctx_t *c, const tg__sect_t *s, const tg__key_t *k,
                        const tg__node_t *key, const tg__node_t *val)
{
    tg_conf_listener_t *l = s->obj;
    const char *text = tg__scalar(c, s, key, val);
    tg__quote_t q;

    if (text == NULL)
        return;
    ssize_t i = tg_config_find_backend(c->cfg, text);
    if (i < 0) {
        tg__err(c, val, "%s: unknown backend \"%s\"", s->label, tg__qnode(&q, val));
    } else {
        l->backend = (size_t)i;
        l->backend_pos = val->pos;
    }
}

/* A reference to a certificate of the wanted type; false after an error. A certificate
 * whose own type was not understood already has an error, so it matches anything. */
static bool find_cert(tg__ctx_t *c, const tg__sect_t *s, const tg__node_t *key,
                      const tg__node_t *val, tg_cert_type_t want, size_t *out)
{
    static const char *const names[] = {[TG_CERT_SERVER] = "server", [TG_CERT_CA] = "ca"};
    const char *text = tg__scalar(c, s, key, val);
    tg__quote_t q;

    if (text == NULL)
        return false;
    ssize_t i = tg_config_find_cert(c->cfg, text);
    if (i < 0) {
        tg__err(c, val, "%s: unknown certificate \"%s\"", s->label, tg__qnode(&q, val));
        return false;
    }
    tg_cert_type_t type = c->cfg->certs[i].type;
    if (type != want && type != TG__CERT_UNSET) {
        tg__err(c, val, "%s: certificate \"%s\" is a %s certificate, not a %s certificate",
                s->label, tg__qnode(&q, val), names[type], names[want]);
        return false;
    }
    *out = (size_t)i;
    return true;
}

/* Appends the certificates an id list names, refusing repeats. */
static size_t *cert_list(tg__ctx_t *c, const tg__sect_t *s, const tg__node_t *key,
                         const tg__node_t *val, tg_cert_type_t want, size_t *n)
{
    size_t *list = NULL;

    *n = 0;
    if (!tg__seq(c, s, key, val) || val->kind != TG__NODE_SEQ)
        return NULL;
    list = tg_calloc(val->nkids, sizeof(*list));
    for (size_t i = 0; i < val->nkids; i++) {
        size_t idx;
        if (!find_cert(c, s, key, val->kids[i], want, &idx))
            continue;
        bool dup = false;
        for (size_t j = 0; j < *n; j++)
            dup = dup || list[j] == idx;
        if (dup)
            tg__err(c, val->kids[i], "%s: certificate \"%s\" is listed twice in %s", s->label,
                    c->cfg->certs[idx].id, key->text);
        else
            list[(*n)++] = idx;
    }
    return list;
}

/* ---- certificates: { default, extended } --------------------------------------------- */

static void set_default_cert(tg__ctx_t *c, const tg__sect_t *s, const tg__key_t *k,
                             const tg__node_t *key, const tg__node_t *val)
{
    tg_conf_listener_t *l = s->obj;

    if (find_cert(c, s, key, val, TG_CERT_SERVER, &l->default_cert))
        l->default_cert_pos = val->pos;
}

static void set_extended(tg__ctx_t *c, const tg__sect_t *s, const tg__key_t *k,
                         const tg__node_t *key, const tg__node_t *val)
{
    tg_conf_listener_t *l = s->obj;

    l->extended = cert_list(c, s, key, val, TG_CERT_SERVER, &l->nextended);
}

static const tg__key_t certs_keys[] = {
    {.name = "default", .set = set_default_cert, .required = true},
    {.name = "extended", .set = set_extended},
};

/* Checked once the whole mapping is read: default may be written after extended. */
static void check_extended(tg__ctx_t *c, const tg__sect_t *s, const tg__node_t *map)
{
    const tg_conf_listener_t *l = s->obj;
    const tg__node_t *ext = tg__map_val(map, "extended");

    if (l->default_cert_pos.line == 0 || ext == NULL || ext->kind != TG__NODE_SEQ)
        return;
    for (size_t i = 0; i < ext->nkids; i++) {
        const tg__node_t *item = ext->kids[i];
        if (item->kind == TG__NODE_SCALAR &&
            strcmp(item->text, c->cfg->certs[l->default_cert].id) == 0)
            tg__err(c, item, "%s: certificate \"%s\" is already the default certificate", s->label,
                    item->text);
    }
}

static void set_certs(tg__ctx_t *c, const tg__sect_t *s, const tg__key_t *k, const tg__node_t *key,
                      const tg__node_t *val)
{
    char *label = tg_sprintf("%s certificates", s->label);
    const tg__sect_t sect = {.label = label, .at = key, .obj = s->obj};

    tg__map_apply(c, &sect, val, certs_keys, TG_ARRAY_SIZE(certs_keys));
    check_extended(c, &sect, val);
    free(label);
}

/* ---- mutual_auth --------------------------------------------------------------------- */

static void set_cas(tg__ctx_t *c, const tg__sect_t *s, const tg__key_t *k, const tg__node_t *key,
                    const tg__node_t *val)
{
    tg_conf_mtls_t *m = s->obj;

    m->cas = cert_list(c, s, key, val, TG_CERT_CA, &m->ncas);
}

static const tg__key_t mtls_keys[] = {
    {.name = "enabled", .set = tg__set_bool, .off = M(enabled), .required = true},
    {.name = "ca_certificates", .set = set_cas},
    {.name = "verify_depth", .set = tg__set_unsigned, .off = M(verify_depth), .min = 1, .max = 16},
};

static void set_mtls(tg__ctx_t *c, const tg__sect_t *s, const tg__key_t *k, const tg__node_t *key,
                     const tg__node_t *val)
{
    tg_conf_listener_t *l = s->obj;
    char *label = tg_sprintf("%s mutual_auth", s->label);
    const tg__sect_t sect = {.label = label, .at = key, .obj = &l->mtls};

    l->mtls.present = true;
    l->mtls.pos = key->pos;
    tg__map_apply(c, &sect, val, mtls_keys, TG_ARRAY_SIZE(mtls_keys));
    /* Enabled with nothing to verify against would refuse every client. */
    if (l->mtls.enabled && l->mtls.ncas == 0 && tg__map_key(val, "ca_certificates") == NULL)
        tg__err(c, key, "%s: mutual authentication is enabled but ca_certificates is missing",
                s->label);
    else if (l->mtls.enabled && l->mtls.ncas == 0)
        tg__err(c, key, "%s: mutual authentication is enabled but ca_certificates is empty",
                s->label);
    free(label);
}

static void set_alt_svc(tg__ctx_t *c, const tg__sect_t *s, const tg__key_t *k,
                        const tg__node_t *key, const tg__node_t *val)
{
    const tg_conf_listener_t *l = s->obj;

    if (tg__scalar(c, s, key, val) != NULL)
        c->alt_svc[l - c->cfg->listeners] = val;
}

/* ---- one listener -------------------------------------------------------------------- */

enum { K_PROTOCOL, K_LISTEN, K_BACKEND, K_POLICY, K_CERTS, K_MTLS, K_ALT_SVC, K_RETRY };

static const char *const retry_words[] = {"auto", "always", "never", NULL};

static const tg__key_t listener_keys[] = {
    [K_PROTOCOL] = {.name = "protocol",
                    .set = tg__set_enum,
                    .off = LS(protocol),
                    .words = proto_words,
                    .required = true},
    [K_LISTEN] = {.name = "listen", .set = set_listen, .required = true},
    [K_BACKEND] = {.name = "backend", .set = set_backend, .required = true},
    [K_POLICY] = {.name = "security_policy",
                  .set = tg__set_enum,
                  .off = LS(policy),
                  .words = tg__policy_words},
    [K_CERTS] = {.name = "certificates", .set = set_certs, .required = true},
    [K_MTLS] = {.name = "mutual_auth", .set = set_mtls},
    [K_ALT_SVC] = {.name = "alt_svc", .set = set_alt_svc},
    [K_RETRY] = {.name = "retry", .set = tg__set_enum, .off = LS(retry), .words = retry_words},
};

#define SEEN(seen, k) (((seen) >> (k)) & 1)

/* QUIC listeners are one-way TLS by contract (SPEC §3): refusing mutual_auth loudly beats
 * a listener that silently lets every client in (caddy#7953). */
static void check_quic(tg__ctx_t *c, const tg_conf_listener_t *l, const char *label,
                       const tg__node_t *val, uint64_t seen)
{
    if (l->protocol != TG_PROTO_QUIC) {
        if (SEEN(seen, K_RETRY))
            tg__err(c, tg__map_key(val, "retry"), "%s: retry is only allowed on quic listeners",
                    label);
        return;
    }
    if (l->mtls.present)
        tg__err_pos(c, l->mtls.pos, "%s: mutual authentication is not supported on QUIC listeners",
                    label);
    if (SEEN(seen, K_POLICY))
        tg__warn(c, tg__map_key(val, "security_policy"),
                 "%s: security_policy is ignored on QUIC listeners (always TLS 1.3)", label);
    if (SEEN(seen, K_ALT_SVC))
        tg__err(c, tg__map_key(val, "alt_svc"), "%s: alt_svc is only allowed on https listeners",
                label);
}

static void load_listener(tg__ctx_t *c, const char *what, const tg__node_t *key,
                          const tg__node_t *val)
{
    tg_conf_listener_t *l = &c->cfg->listeners[c->cfg->nlisteners++];
    tg__quote_t q;
    char *label = tg_sprintf("listener \"%s\"", tg__qnode(&q, key));
    const tg__sect_t sect = {.label = label, .at = key, .obj = l};

    l->id = tg_strdup(key->text);
    l->pos = key->pos;
    l->protocol = TG__PROTO_UNSET;
    l->policy = TG_POLICY_1_2_STRICT_WITH_1_3;
    l->mtls.verify_depth = 3;
    uint64_t seen = tg__map_apply(c, &sect, val, listener_keys, TG_ARRAY_SIZE(listener_keys));
    check_quic(c, l, label, val, seen);
    free(label);
}

/* ---- across listeners ---------------------------------------------------------------- */

static void resolve_alt_svc(tg__ctx_t *c, tg_conf_listener_t *l, const tg__node_t *val)
{
    tg__quote_t q, qid;
    ssize_t i;

    if (l->protocol != TG_PROTO_HTTPS)
        return; /* a quic listener's alt_svc is already refused */
    i = tg_config_find_listener(c->cfg, val->text);
    if (i < 0) {
        tg__err(c, val, "listener \"%s\": unknown listener \"%s\"",
                tg__quote(&qid, l->id, strlen(l->id)), tg__qnode(&q, val));
        return;
    }
    if (c->cfg->listeners[i].protocol != TG_PROTO_QUIC) {
        tg__err(c, val, "listener \"%s\": alt_svc must name a quic listener, \"%s\" is not one",
                tg__quote(&qid, l->id, strlen(l->id)), tg__qnode(&q, val));
        return;
    }
    /* A client refused for want of a certificate would still be told where the backend
     * answers without one: QUIC listeners never verify clients (SPEC §3). */
    if (l->mtls.enabled) {
        tg__err(c, val,
                "listener \"%s\": alt_svc is not allowed with mutual authentication (QUIC "
                "listener \"%s\" would let clients without a certificate in)",
                tg__quote(&qid, l->id, strlen(l->id)), tg__qnode(&q, val));
        return;
    }
    l->has_alt_svc = true;
    l->alt_svc = (size_t)i;
}

/* A QUIC listener in front of a backend that an HTTPS listener guards with mutual
 * authentication is a way around it. Allowed, since the backend may serve both kinds of
 * client on purpose, but said loudly, naming both. */
static void check_shared_backend(tg__ctx_t *c, const tg_conf_listener_t *q)
{
    tg__quote_t qq, qh;

    if (q->protocol != TG_PROTO_QUIC || q->backend_pos.line == 0)
        return;
    for (size_t j = 0; j < c->cfg->nlisteners; j++) {
        const tg_conf_listener_t *h = &c->cfg->listeners[j];
        if (h->protocol != TG_PROTO_HTTPS || !h->mtls.enabled || h->backend_pos.line == 0 ||
            h->backend != q->backend)
            continue;
        tg__warn_pos(c, q->backend_pos,
                     "listener \"%s\": backend \"%s\" is also behind listener \"%s\", which "
                     "requires client certificates; QUIC clients reach it without one",
                     tg__quote(&qq, q->id, strlen(q->id)), c->cfg->backends[q->backend].id,
                     tg__quote(&qh, h->id, strlen(h->id)));
    }
}

/* Two sockets of one protocol cannot bind the same address; https and quic can (TCP and
 * UDP), which is how HTTP/3 shares port 443. */
static void check_addresses(tg__ctx_t *c, size_t i)
{
    const tg_conf_listener_t *l = &c->cfg->listeners[i];
    tg__quote_t q, qo;
    char addr[64];

    if (l->addr_len == 0 || l->protocol == TG__PROTO_UNSET)
        return;
    for (size_t j = 0; j < i; j++) {
        const tg_conf_listener_t *o = &c->cfg->listeners[j];
        if (o->addr_len == 0 || o->protocol != l->protocol ||
            !tg_addr_equal((const struct sockaddr *)&o->addr, (const struct sockaddr *)&l->addr))
            continue;
        tg__err_pos(c, l->listen_pos,
                    "listener \"%s\": address %s is already used by %s listener \"%s\"",
                    tg__quote(&q, l->id, strlen(l->id)),
                    tg_addr_format((const struct sockaddr *)&l->addr, addr, sizeof(addr)),
                    proto_words[l->protocol], tg__quote(&qo, o->id, strlen(o->id)));
        return;
    }
}

void tg__load_listeners(tg__ctx_t *c, const tg__node_t *val)
{
    size_t n = tg__map_count(val);

    c->cfg->listeners = tg_calloc(n, sizeof(*c->cfg->listeners));
    c->alt_svc = tg_calloc(n, sizeof(*c->alt_svc));
    tg__map_ids(c, "listener", val, load_listener);
    for (size_t i = 0; i < c->cfg->nlisteners; i++) {
        if (c->alt_svc[i] != NULL)
            resolve_alt_svc(c, &c->cfg->listeners[i], c->alt_svc[i]);
        check_addresses(c, i);
        check_shared_backend(c, &c->cfg->listeners[i]);
    }
}

void tg__free_listener(tg_conf_listener_t *l)
{
    free(l->id);
    free(l->listen_text);
    free(l->extended);
    free(l->mtls.cas);
}
