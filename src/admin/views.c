/* What the admin API shows of a generation: certificates and listeners as JSON objects
 * (SPEC §6). Read-only views of an immutable generation; a private key never appears. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "admin_internal.h"

/* RFC 3339 in UTC: what scripts and the console parse without a locale. */
static json_t *time_json(time_t t)
{
    struct tm tm;
    char buf[32];
    if (gmtime_r(&t, &tm) == NULL || strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        return json_null();
    return json_string(buf);
}

/* Whole days left before not_after, rounded down; negative once expired. */
static json_int_t days_left(time_t not_after, time_t now)
{
    double s = difftime(not_after, now);
    json_int_t d = (json_int_t)(s / 86400.0);
    return s < 0 && (double)d * 86400.0 != s ? d - 1 : d;
}

static bool uses(const tg_conf_listener_t *l, size_t cert)
{
    if (l->default_cert == cert)
        return true;
    for (size_t i = 0; i < l->nextended; i++)
        if (l->extended[i] == cert)
            return true;
    for (size_t i = 0; l->mtls.present && i < l->mtls.ncas; i++)
        if (l->mtls.cas[i] == cert)
            return true;
    return false;
}

json_t *tg__admin_cert_view(const tg_generation_t *g, size_t i, time_t now)
{
    const tg_cert_t *c = g->certs[i];
    const tg_config_t *cfg = g->cfg;
    json_t *names = json_array();
    /* A CA's names are its CN, which no client asks for by SNI: not SANs. */
    for (size_t k = 0; c->type == TG_CERT_SERVER && k < c->nnames; k++)
        json_array_append_new(names, json_string(c->names[k]));
    json_t *used_by = json_array();
    for (size_t k = 0; k < cfg->nlisteners; k++)
        if (uses(&cfg->listeners[k], i))
            json_array_append_new(used_by, json_string(cfg->listeners[k].id));
    char sha[65];
    tg_cert_hex_sha256(c->sha256, sha);
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(c->id));
    json_object_set_new(o, "type", json_string(c->type == TG_CERT_CA ? "ca" : "server"));
    json_object_set_new(o, "subject", json_string(c->subject ? c->subject : ""));
    json_object_set_new(o, "issuer", json_string(c->issuer ? c->issuer : ""));
    json_object_set_new(o, "sans", names);
    json_object_set_new(o, "key_type", json_string(tg_cert_key_type_name(c->key_type)));
    json_object_set_new(o, "key_bits", json_integer(c->key_bits));
    json_object_set_new(o, "not_before", time_json(c->not_before));
    json_object_set_new(o, "not_after", time_json(c->not_after));
    json_object_set_new(o, "days_left", json_integer(days_left(c->not_after, now)));
    json_object_set_new(o, "expired", json_boolean(c->not_after < now));
    json_object_set_new(o, "sha256", json_string(sha));
    json_object_set_new(o, "used_by", used_by);
    if (c->type == TG_CERT_CA)
        json_object_set_new(o, "certificates", json_integer(sk_X509_num(c->cas)));
    return o;
}

json_t *tg__admin_problems(const tg_errors_t *errs, tg_severity_t sev)
{
    json_t *a = json_array();
    char buf[1400];
    for (size_t i = 0; i < errs->n; i++) {
        if (errs->items[i].severity != sev)
            continue;
        tg_errors_format(&errs->items[i], buf, sizeof(buf));
        json_array_append_new(a, json_string(buf));
    }
    return a;
}

json_t *tg__admin_listener_view(const tg_generation_t *g, size_t i)
{
    const tg_config_t *cfg = g->cfg;
    const tg_conf_listener_t *l = &cfg->listeners[i];
    json_t *ext = json_array();
    for (size_t k = 0; k < l->nextended; k++)
        json_array_append_new(ext, json_string(cfg->certs[l->extended[k]].id));
    json_t *certs = json_object();
    json_object_set_new(certs, "default", json_string(cfg->certs[l->default_cert].id));
    json_object_set_new(certs, "extended", ext);

    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(l->id));
    json_object_set_new(o, "protocol",
                        json_string(l->protocol == TG_PROTO_QUIC ? "quic" : "https"));
    json_object_set_new(o, "listen", json_string(l->listen_text));
    json_object_set_new(o, "backend", json_string(cfg->backends[l->backend].id));
    json_object_set_new(o, "certificates", certs);
    if (l->protocol == TG_PROTO_HTTPS) {
        json_t *cas = json_array();
        for (size_t k = 0; l->mtls.present && k < l->mtls.ncas; k++)
            json_array_append_new(cas, json_string(cfg->certs[l->mtls.cas[k]].id));
        json_t *m = json_object();
        json_object_set_new(m, "enabled", json_boolean(l->mtls.present && l->mtls.enabled));
        json_object_set_new(m, "ca_certificates", cas);
        json_object_set_new(m, "verify_depth", json_integer(l->mtls.verify_depth));
        json_object_set_new(o, "mutual_auth", m);
        json_object_set_new(o, "security_policy", json_string(tg_config_policy_name(l->policy)));
        json_object_set_new(o, "alt_svc",
                            l->has_alt_svc ? json_string(cfg->listeners[l->alt_svc].id)
                                           : json_null());
    }
    return o;
}
