/* `tollgate cert list|show` and `tollgate listener list|show`: the instance's certificates
 * and listeners as tables (or the API's JSON with --json). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_internal.h"
#include "tollgate/cli.h"

/* Days left under which `cert list` marks a certificate: when operators renew. */
#define EXPIRY_WARN_DAYS 30

static int usage(const char *what)
{
    if (strcmp(what, "cert") == 0)
        fputs("usage: tollgate cert list -c FILE [--json]\n"
              "       tollgate cert show ID -c FILE [--json]\n",
              stderr);
    else
        fputs("usage: tollgate listener list -c FILE [--json]\n"
              "       tollgate listener show ID -c FILE [--json]\n",
              stderr);
    return 2;
}

/* GET path; 0 with *answer, or the exit code of a failed call. */
static int get(const tg__cli_args_t *a, const char *path, json_t **answer)
{
    long status = 0;
    *answer = NULL;
    if (tg__cli_call(a->config, "GET", path, NULL, &status, answer) != 0)
        return 1;
    if (status != 200 || *answer == NULL) {
        int rc = tg__cli_failed(status, *answer);
        json_decref(*answer);
        *answer = NULL;
        return rc;
    }
    return 0;
}

/* The CN of an RFC 2253 subject ("CN=a,O=b"), into buf; "" when there is none. */
static const char *common_name(const char *dn, char *buf, size_t size)
{
    buf[0] = '\0';
    for (const char *p = dn; *p; p++) {
        if ((p == dn || p[-1] == ',') && strncmp(p, "CN=", 3) == 0) {
            size_t n = 0;
            for (p += 3; *p && *p != ',' && n + 1 < size; p++) {
                if (*p == '\\' && p[1] != '\0')
                    p++; /* an escaped character is itself */
                buf[n++] = *p;
            }
            buf[n] = '\0';
            break;
        }
    }
    return buf;
}

static void cert_row(tg__cli_table_t *t, json_t *c, bool *marked)
{
    char cn[256], key[32], days[32], until[16];
    json_int_t left = json_integer_value(json_object_get(c, "days_left"));
    bool warn = left < EXPIRY_WARN_DAYS;
    *marked |= warn;
    snprintf(key, sizeof(key), "%s %lld", tg__cli_str(c, "key_type"),
             (long long)json_integer_value(json_object_get(c, "key_bits")));
    snprintf(days, sizeof(days), "%lld%s", (long long)left, warn ? " !" : "");
    snprintf(until, sizeof(until), "%.10s", tg__cli_str(c, "not_after"));
    char *sans = tg__cli_join(c, "sans"), *used = tg__cli_join(c, "used_by");
    const char *cells[] = {tg__cli_str(c, "id"),
                           tg__cli_str(c, "type"),
                           common_name(tg__cli_str(c, "subject"), cn, sizeof(cn)),
                           sans,
                           key,
                           until,
                           days,
                           used};
    for (size_t i = 0; i < sizeof(cells) / sizeof(cells[0]); i++)
        tg__cli_table_add(t, cells[i]);
    free(sans);
    free(used);
}

static int cert_list(const tg__cli_args_t *a)
{
    json_t *ans;
    int rc = get(a, "/v1/certificates", &ans);
    if (rc != 0)
        return rc;
    if (a->json) {
        tg__cli_print_json(ans);
        json_decref(ans);
        return 0;
    }
    tg__cli_table_t t;
    tg__cli_table_init(&t, 8);
    const char *head[] = {"ID",  "TYPE",      "SUBJECT CN", "SANS",
                          "KEY", "NOT AFTER", "DAYS LEFT",  "USED BY"};
    for (size_t i = 0; i < 8; i++)
        tg__cli_table_add(&t, head[i]);
    bool marked = false;
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(ans, "certificates"), i, c) cert_row(&t, c, &marked);
    tg__cli_table_print(&t);
    if (marked)
        printf("! fewer than %d days left: renew or replace it\n", EXPIRY_WARN_DAYS);
    json_decref(ans);
    return 0;
}

/* GET /v1/<coll>/<id>. Returns -1 when the answer is for the caller to print (a table),
 * otherwise the exit code: the call failed, or --json printed the answer. */
static int get_one(const tg__cli_args_t *a, const char *coll, const char *what, const char *id,
                   json_t **answer)
{
    char path[128];
    *answer = NULL;
    if (snprintf(path, sizeof(path), "/v1/%s/%s", coll, id) >= (int)sizeof(path) ||
        strpbrk(id, "/?#% ") != NULL) {
        fprintf(stderr, "tollgate: no such %s: %s\n", what, id);
        return 1;
    }
    int rc = get(a, path, answer);
    if (rc == 0 && !a->json)
        return -1;
    if (rc == 0)
        tg__cli_print_json(*answer);
    json_decref(*answer);
    return rc;
}

static void field(const char *name, const char *value)
{
    printf("%-16s %s\n", name, value != NULL && *value ? value : "-");
}

static int cert_show(const tg__cli_args_t *a, const char *id)
{
    json_t *c;
    int rc = get_one(a, "certificates", "certificate", id, &c);
    if (rc >= 0)
        return rc;
    char key[32], days[32];
    snprintf(key, sizeof(key), "%s %lld", tg__cli_str(c, "key_type"),
             (long long)json_integer_value(json_object_get(c, "key_bits")));
    json_int_t left = json_integer_value(json_object_get(c, "days_left"));
    snprintf(days, sizeof(days), "%lld%s", (long long)left,
             left < EXPIRY_WARN_DAYS ? " (renew or replace it)" : "");
    char *sans = tg__cli_join(c, "sans"), *used = tg__cli_join(c, "used_by");
    field("id", tg__cli_str(c, "id"));
    field("type", tg__cli_str(c, "type"));
    field("subject", tg__cli_str(c, "subject"));
    field("issuer", tg__cli_str(c, "issuer"));
    field("sans", sans);
    field("key", key);
    field("not before", tg__cli_str(c, "not_before"));
    field("not after", tg__cli_str(c, "not_after"));
    field("days left", days);
    field("sha256", tg__cli_str(c, "sha256"));
    field("used by", used);
    free(sans);
    free(used);
    json_decref(c);
    return 0;
}

/* "on (ca-a, ca-b; depth 3)" or "off". */
static char *mtls_text(json_t *l)
{
    json_t *m = json_object_get(l, "mutual_auth");
    if (m == NULL)
        return strdup("n/a");
    if (!json_is_true(json_object_get(m, "enabled")))
        return strdup("off");
    char *cas = tg__cli_join(m, "ca_certificates"), *out = NULL;
    if (asprintf(&out, "on (%s; depth %lld)", cas,
                 (long long)json_integer_value(json_object_get(m, "verify_depth"))) < 0)
        out = NULL;
    free(cas);
    return out;
}

static int listener_list(const tg__cli_args_t *a)
{
    json_t *ans;
    int rc = get(a, "/v1/listeners", &ans);
    if (rc != 0 || a->json) {
        if (rc == 0)
            tg__cli_print_json(ans);
        json_decref(ans);
        return rc;
    }
    tg__cli_table_t t;
    tg__cli_table_init(&t, 7);
    const char *head[] = {"ID",      "PROTOCOL", "LISTEN",     "BACKEND",
                          "DEFAULT", "EXTENDED", "MUTUAL AUTH"};
    for (size_t i = 0; i < 7; i++)
        tg__cli_table_add(&t, head[i]);
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(ans, "listeners"), i, l)
    {
        json_t *certs = json_object_get(l, "certificates");
        char *ext = tg__cli_join(certs, "extended"), *mtls = mtls_text(l);
        const char *cells[] = {tg__cli_str(l, "id"),
                               tg__cli_str(l, "protocol"),
                               tg__cli_str(l, "listen"),
                               tg__cli_str(l, "backend"),
                               tg__cli_str(certs, "default"),
                               ext,
                               mtls};
        for (size_t k = 0; k < 7; k++)
            tg__cli_table_add(&t, cells[k]);
        free(ext);
        free(mtls);
    }
    tg__cli_table_print(&t);
    json_decref(ans);
    return 0;
}

static int listener_show(const tg__cli_args_t *a, const char *id)
{
    json_t *l;
    int rc = get_one(a, "listeners", "listener", id, &l);
    if (rc >= 0)
        return rc;
    json_t *certs = json_object_get(l, "certificates");
    char *ext = tg__cli_join(certs, "extended"), *mtls = mtls_text(l);
    field("id", tg__cli_str(l, "id"));
    field("protocol", tg__cli_str(l, "protocol"));
    field("listen", tg__cli_str(l, "listen"));
    field("backend", tg__cli_str(l, "backend"));
    field("default cert", tg__cli_str(certs, "default"));
    field("extended certs", ext);
    field("mutual auth", mtls);
    field("policy", tg__cli_str(l, "security_policy"));
    field("alt-svc", tg__cli_str(l, "alt_svc"));
    free(ext);
    free(mtls);
    json_decref(l);
    return 0;
}

int tg_cli_cert(int argc, char **argv)
{
    tg__cli_args_t a;
    if (argc < 2 || !tg__cli_args(argc - 1, argv + 1, &a))
        return usage("cert");
    const char *sub = argv[1];
    if (strcmp(sub, "list") == 0 && a.nrest == 0)
        return cert_list(&a);
    if (strcmp(sub, "show") == 0 && a.nrest == 1)
        return cert_show(&a, a.rest[0]);
    return usage("cert");
}

int tg_cli_listener(int argc, char **argv)
{
    tg__cli_args_t a;
    if (argc < 2 || !tg__cli_args(argc - 1, argv + 1, &a))
        return usage("listener");
    const char *sub = argv[1];
    if (strcmp(sub, "list") == 0 && a.nrest == 0)
        return listener_list(&a);
    if (strcmp(sub, "show") == 0 && a.nrest == 1)
        return listener_show(&a, a.rest[0]);
    return usage("listener");
}
