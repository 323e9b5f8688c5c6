/* The certificates section: ids, types and file paths of the certificate store. The files
 * themselves are read by the cert module when a generation is built. */
#include <stdlib.h>

#include "node.h"

#define C(field) offsetof(tg_conf_cert_t, field)

static const char *const type_words[] = {[TG_CERT_SERVER] = "server", [TG_CERT_CA] = "ca", NULL};

enum { K_TYPE, K_CERT, K_KEY, K_CRL };

static const tg__key_t cert_keys[] = {
    [K_TYPE] = {.name = "type",
                .set = tg__set_enum,
                .off = C(type),
                .words = type_words,
                .required = true},
    [K_CERT] = {.name = "cert",
                .set = tg__set_path,
                .off = C(cert_path),
                .pos_off = TG__POS(tg_conf_cert_t, cert_pos),
                .required = true},
    [K_KEY] = {.name = "key",
               .set = tg__set_path,
               .off = C(key_path),
               .pos_off = TG__POS(tg_conf_cert_t, key_pos)},
    [K_CRL] = {.name = "crl",
               .set = tg__set_path,
               .off = C(crl_path),
               .pos_off = TG__POS(tg_conf_cert_t, crl_pos)},
};

#define SEEN(seen, k) (((seen) >> (k)) & 1)

/* A server certificate is useless without its key and a CA bundle must not carry one (it
 * would mean a private key sits in the trust store); CRLs only make sense for verifying. */
static void check_type(tg__ctx_t *c, const tg_conf_cert_t *cert, const char *label,
                       const tg__node_t *key, const tg__node_t *val, uint64_t seen)
{
    if (cert->type == TG_CERT_SERVER) {
        if (!SEEN(seen, K_KEY))
            tg__err(c, key, "%s: a server certificate needs a key", label);
        if (SEEN(seen, K_CRL))
            tg__err(c, tg__map_key(val, "crl"), "%s: crl is only allowed on ca certificates",
                    label);
    } else if (cert->type == TG_CERT_CA && SEEN(seen, K_KEY)) {
        tg__err(c, tg__map_key(val, "key"), "%s: a ca certificate must not have a key", label);
    }
}

static void load_cert(tg__ctx_t *c, const char *what, const tg__node_t *key, const tg__node_t *val)
{
    tg_conf_cert_t *cert = &c->cfg->certs[c->cfg->ncerts++];
    tg__quote_t q;
    char *label = tg_sprintf("certificate \"%s\"", tg__qnode(&q, key));
    const tg__sect_t sect = {.label = label, .at = key, .obj = cert};

    cert->id = tg_strdup(key->text);
    cert->pos = key->pos;
    cert->type = TG__CERT_UNSET;
    uint64_t seen = tg__map_apply(c, &sect, val, cert_keys, TG_ARRAY_SIZE(cert_keys));
    check_type(c, cert, label, key, val, seen);
    free(label);
}

void tg__load_certs(tg__ctx_t *c, const tg__node_t *val)
{
    c->cfg->certs = tg_calloc(tg__map_count(val), sizeof(*c->cfg->certs));
    tg__map_ids(c, "certificate", val, load_cert);
}

void tg__free_cert(tg_conf_cert_t *cert)
{
    free(cert->id);
    free(cert->cert_path);
    free(cert->key_path);
    free(cert->crl_path);
}
