/* Unit tests for the config editor: edits of the commented SPEC example compared as whole
 * texts, the layouts operators write (flow, block, empty values, no final newline, CRLF,
 * comments only), hostile input, and after every edit a check that the parsed result is the
 * old tree with exactly that change, computed here from libyaml alone. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "tollgate/cfgedit.h"
#include "tollgate/config.h"

/* ---- an independent tree: libyaml events, nothing from the editor ---------------------- */

typedef struct tnode_s tnode_t;
struct tnode_s {
    enum { T_SCALAR, T_MAP, T_SEQ } kind;
    char *text;
    size_t len;
    bool null;
    tnode_t **kids; /* map: key, value, ... */
    size_t n;
};

static tnode_t *tnew(int kind)
{
    tnode_t *n = calloc(1, sizeof(*n));
    assert_non_null(n);
    n->kind = kind;
    return n;
}

static void tadd(tnode_t *p, tnode_t *kid)
{
    p->kids = realloc(p->kids, (p->n + 1) * sizeof(*p->kids));
    assert_non_null(p->kids);
    p->kids[p->n++] = kid;
}

static void tfree(tnode_t *n)
{
    if (n == NULL)
        return;
    for (size_t i = 0; i < n->n; i++)
        tfree(n->kids[i]);
    free(n->kids);
    free(n->text);
    free(n);
}

static tnode_t *tscalar(const char *s)
{
    tnode_t *n = tnew(T_SCALAR);
    n->text = strdup(s);
    n->len = strlen(s);
    return n;
}

/* The document's tree, NULL when it has none; the text must parse. */
static tnode_t *tparse(const char *text, size_t len)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    yaml_parser_t p;
    yaml_event_t ev;
    tnode_t *stack[64], *root = NULL;
    size_t depth = 0;
    bool done = false;

    assert_true(yaml_parser_initialize(&p));
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    while (!done) {
        if (!yaml_parser_parse(&p, &ev))
            fail_msg("does not parse: %s\n%.*s", p.problem, (int)len, text);
        tnode_t *n = NULL;
        switch (ev.type) {
        case YAML_SCALAR_EVENT:
            n = tnew(T_SCALAR);
            n->len = ev.data.scalar.length;
            n->text = malloc(n->len + 1);
            memcpy(n->text, ev.data.scalar.value, n->len + 1);
            for (size_t i = 0; i < 5; i++) {
                if (ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                    strcmp(n->text, nulls[i]) == 0)
                    n->null = true;
            }
            break;
        case YAML_MAPPING_START_EVENT:
            n = tnew(T_MAP);
            break;
        case YAML_SEQUENCE_START_EVENT:
            n = tnew(T_SEQ);
            break;
        case YAML_MAPPING_END_EVENT:
        case YAML_SEQUENCE_END_EVENT:
            depth--;
            break;
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        default:
            break;
        }
        if (n != NULL) {
            if (depth == 0)
                root = n;
            else
                tadd(stack[depth - 1], n);
            if (n->kind != T_SCALAR)
                stack[depth++] = n;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    return root;
}

typedef struct sbuf_s {
    char *p;
    size_t len;
} sbuf_t;

static void sput(sbuf_t *b, const char *s, size_t n)
{
    b->p = realloc(b->p, b->len + n + 1);
    assert_non_null(b->p);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* One line that differs exactly when the trees differ; no document reads as {}. */
static void tcanon(sbuf_t *b, const tnode_t *n)
{
    if (n == NULL) {
        sput(b, "{}", 2);
        return;
    }
    if (n->kind == T_SCALAR) {
        if (n->null) {
            sput(b, "~", 1);
            return;
        }
        sput(b, "\"", 1);
        for (size_t i = 0; i < n->len; i++) {
            unsigned char c = (unsigned char)n->text[i];
            char esc[8];
            if (c < 0x20 || c == 0x7F || c == '"' || c == '\\') {
                snprintf(esc, sizeof(esc), "\\x%02x", c);
                sput(b, esc, 4);
            } else {
                sput(b, (const char *)&c, 1);
            }
        }
        sput(b, "\"", 1);
        return;
    }
    sput(b, n->kind == T_MAP ? "{" : "[", 1);
    for (size_t i = 0; i < n->n; i++) {
        tcanon(b, n->kids[i]);
        sput(b, n->kind == T_MAP && i % 2 == 0 ? ":" : ",", 1);
    }
    sput(b, n->kind == T_MAP ? "}" : "]", 1);
}

/* The slot of the value at path; with create, missing and null mappings are made. */
static tnode_t **tslot(tnode_t **root, const char *const *path, size_t depth, bool create)
{
    tnode_t **cur = root;
    for (size_t i = 0; i < depth; i++) {
        if (*cur == NULL || (*cur)->null) {
            if (!create)
                return NULL;
            tfree(*cur);
            *cur = tnew(T_MAP);
        }
        assert_int_equal((*cur)->kind, T_MAP);
        size_t k = 0;
        while (k < (*cur)->n && strcmp((*cur)->kids[k]->text, path[i]) != 0)
            k += 2;
        if (k == (*cur)->n) {
            if (!create)
                return NULL;
            tadd(*cur, tscalar(path[i]));
            tadd(*cur, NULL);
        }
        cur = &(*cur)->kids[k + 1];
    }
    return cur;
}

/* ---- edits, each checked against the tree it must give ------------------------------------ */

#define P(...)                                                                                     \
    ((const char *const[]){__VA_ARGS__}),                                                          \
        (sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

static tg_cfgedit_t *edit_new(const char *text)
{
    tg_errors_t errs;
    tg_errors_init(&errs);
    tg_cfgedit_t *e = tg_cfgedit_new(text, strlen(text), "t.yaml", &errs);
    if (e == NULL)
        tg_errors_print(&errs, stderr);
    assert_non_null(e);
    tg_errors_free(&errs);
    return e;
}

static void refused_new(const char *text, size_t len, const char *why)
{
    tg_errors_t errs;
    tg_errors_init(&errs);
    assert_null(tg_cfgedit_new(text, len, "t.yaml", &errs));
    assert_int_equal(errs.nerrors, 1);
    if (strstr(errs.items[0].msg, why) == NULL)
        fail_msg("\"%s\" does not say \"%s\"", errs.items[0].msg, why);
    tg_errors_free(&errs);
}

static tnode_t *tree_of(const tg_cfgedit_t *e)
{
    size_t len;
    const char *text = tg_cfgedit_text(e, &len);
    assert_int_equal(strlen(text), len);
    return tparse(text, len);
}

/* The property every edit must keep: the text parses to want (which is freed). */
static void expect_tree(const tg_cfgedit_t *e, tnode_t *want)
{
    tnode_t *got = tree_of(e);
    sbuf_t a = {0}, b = {0};
    tcanon(&a, want);
    tcanon(&b, got);
    assert_string_equal(b.p, a.p);
    free(a.p);
    free(b.p);
    tfree(want);
    tfree(got);
}

static void check_rc(int rc, tg_errors_t *errs)
{
    if (rc != 0)
        tg_errors_print(errs, stderr);
    assert_int_equal(rc, 0);
    assert_int_equal(errs->n, 0);
    tg_errors_free(errs);
}

static void do_set(tg_cfgedit_t *e, const char *const *path, size_t depth, const char *value)
{
    tg_errors_t errs;
    tnode_t *want = tree_of(e);
    tnode_t **slot = tslot(&want, path, depth, true);
    tfree(*slot);
    *slot = tscalar(value);
    tg_errors_init(&errs);
    check_rc(tg_cfgedit_set_scalar(e, path, depth, value, &errs), &errs);
    expect_tree(e, want);
}

static void do_seq(tg_cfgedit_t *e, const char *const *path, size_t depth, const char *const *items,
                   size_t n)
{
    tg_errors_t errs;
    tnode_t *want = tree_of(e);
    tnode_t **slot = tslot(&want, path, depth, true);
    tfree(*slot);
    *slot = tnew(T_SEQ);
    for (size_t i = 0; i < n; i++)
        tadd(*slot, tscalar(items[i]));
    tg_errors_init(&errs);
    check_rc(tg_cfgedit_set_seq(e, path, depth, items, n, &errs), &errs);
    expect_tree(e, want);
}

#define ITEMS(...)                                                                                 \
    ((const char *const[]){__VA_ARGS__}),                                                          \
        (sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))
#define NO_ITEMS ((const char *const *)NULL), 0

static void do_del(tg_cfgedit_t *e, const char *const *path, size_t depth)
{
    tg_errors_t errs;
    tnode_t *want = tree_of(e);
    tnode_t **parent = tslot(&want, path, depth - 1, false);
    if (parent != NULL && *parent != NULL && (*parent)->kind == T_MAP) {
        tnode_t *m = *parent;
        for (size_t k = 0; k < m->n; k += 2) {
            if (strcmp(m->kids[k]->text, path[depth - 1]) == 0) {
                tfree(m->kids[k]);
                tfree(m->kids[k + 1]);
                memmove(m->kids + k, m->kids + k + 2, (m->n - k - 2) * sizeof(*m->kids));
                m->n -= 2;
                break;
            }
        }
    }
    tg_errors_init(&errs);
    check_rc(tg_cfgedit_delete(e, path, depth, &errs), &errs);
    expect_tree(e, want);
}

typedef enum { R_SET, R_SEQ, R_DEL } refuse_op_t;

/* The edit fails with a message containing why, and the text is byte for byte the same. */
static void refused(tg_cfgedit_t *e, refuse_op_t op, const char *const *path, size_t depth,
                    const char *value, const char *why)
{
    tg_errors_t errs;
    size_t len;
    const char *items[] = {"ok", value};
    char *before = strdup(tg_cfgedit_text(e, &len));
    int rc;

    tg_errors_init(&errs);
    if (op == R_SET)
        rc = tg_cfgedit_set_scalar(e, path, depth, value, &errs);
    else if (op == R_SEQ)
        rc = tg_cfgedit_set_seq(e, path, depth, items, 2, &errs);
    else
        rc = tg_cfgedit_delete(e, path, depth, &errs);
    assert_int_equal(rc, -1);
    assert_int_equal(errs.nerrors, 1);
    if (strstr(errs.items[0].msg, why) == NULL)
        fail_msg("\"%s\" does not say \"%s\"", errs.items[0].msg, why);
    assert_string_equal(tg_cfgedit_text(e, NULL), before);
    assert_int_equal(strlen(before), len);
    free(before);
    tg_errors_free(&errs);
}

static void expect_text(const tg_cfgedit_t *e, const char *want)
{
    size_t len;
    const char *got = tg_cfgedit_text(e, &len);
    if (strcmp(got, want) != 0) {
        /* cmocka cuts long strings: show where they part. */
        size_t i = 0;
        while (got[i] == want[i])
            i++;
        size_t from = i > 60 ? i - 60 : 0;
        fail_msg("texts part at byte %zu:\n--- got\n%.200s\n--- want\n%.200s", i, got + from,
                 want + from);
    }
    assert_int_equal(len, strlen(want));
}

/* text with its one occurrence of old replaced by new (malloc'd). */
static char *replaced(const char *text, const char *old, const char *new)
{
    const char *at = strstr(text, old);
    if (at == NULL || strstr(at + 1, old) != NULL)
        fail_msg("\"%s\" is not in the text exactly once", old);
    size_t head = (size_t)(at - text), olen = strlen(old), nlen = strlen(new);
    char *out = malloc(strlen(text) - olen + nlen + 1);
    memcpy(out, text, head);
    memcpy(out + head, new, nlen);
    strcpy(out + head + nlen, at + olen);
    return out;
}

/* Chains replaced(): frees the text it is given. */
static char *swap(char *text, const char *old, const char *new)
{
    char *out = replaced(text, old, new);
    free(text);
    return out;
}

/* The editor's output is still a configuration tollgate loads. */
static void assert_loads(const tg_cfgedit_t *e)
{
    tg_errors_t errs;
    size_t len;
    const char *text = tg_cfgedit_text(e, &len);
    tg_errors_init(&errs);
    tg_config_t *cfg = tg_config_parse(text, len, "t.yaml", &errs);
    if (cfg == NULL)
        tg_errors_print(&errs, stderr);
    assert_non_null(cfg);
    tg_config_free(cfg);
    tg_errors_free(&errs);
}

/* ---- the SPEC §3 example, comments and all -------------------------------------------------- */

static const char spec[] =
    "version: 1\n"
    "\n"
    "global:\n"
    "  workers: auto                 # event-loop threads: integer >= 1, or auto (= online CPUs)\n"
    "  pid_file: run/tollgate.pid\n"
    "  certificate_dir: certs/store  # where certificates imported through the admin API are "
    "written\n"
    "  log_level: info               # error | warn | info | debug\n"
    "  access_log: stderr            # stderr | stdout | off | a file path; one JSON object a "
    "line\n"
    "  drain_timeout: 30s            # how long connections of a stopped or removed listener may "
    "finish\n"
    "  limits:\n"
    "    max_connections: 100000     # whole process; past it new connections are closed at once\n"
    "    handshake_timeout: 10s\n"
    "    header_timeout: 10s         # whole request head must arrive within this (slowloris)\n"
    "    idle_timeout: 60s           # keep-alive idle\n"
    "    max_header_bytes: 32768     # request head larger than this: 431\n"
    "    max_concurrent_streams: 128 # per HTTP/2 or HTTP/3 connection\n"
    "\n"
    "admin:                          # optional; absent = no admin API\n"
    "  listen: 127.0.0.1:9900        # or unix:run/admin.sock\n"
    "  token_file: conf/admin.token  # bearer token; required when listen is TCP\n"
    "  certificate: admin-cert       # a server certificate id: serve the admin API over TLS;\n"
    "                                # required when listen is TCP on an address other than "
    "loopback\n"
    "\n"
    "certificates:\n"
    "  www-ecdsa:\n"
    "    type: server\n"
    "    cert: certs/demo/www-ecdsa.crt   # PEM, leaf first, then intermediates\n"
    "    key: certs/demo/www-ecdsa.key    # PEM, unencrypted\n"
    "  www-rsa:\n"
    "    type: server\n"
    "    cert: certs/demo/www-rsa.crt\n"
    "    key: certs/demo/www-rsa.key\n"
    "  shop:\n"
    "    type: server\n"
    "    cert: certs/demo/shop.crt\n"
    "    key: certs/demo/shop.key\n"
    "  clients-ca:\n"
    "    type: ca\n"
    "    cert: certs/demo/clients-ca.crt  # one or more CA certificates\n"
    "    crl: certs/demo/clients-ca.crl   # optional revocation list\n"
    "  www-auto:\n"
    "    type: acme                       # issued and renewed by tollgate itself (see §9)\n"
    "    names: [www.example.com, example.com]\n"
    "    key_type: ecdsa-p256             # ecdsa-p256 (default) | rsa-2048\n"
    "\n"
    "acme:                            # optional; needed when a certificate has type acme (§9)\n"
    "  directory: https://acme.example.net/directory   # the CA's ACME directory URL\n"
    "  contact: [mailto:ops@example.com]\n"
    "  account_key: acme/account.key  # made (ECDSA P-256, 0600) when missing\n"
    "  ca_bundle: conf/acme-ca.pem    # optional: trust anchors for the directory's HTTPS\n"
    "  renew_before: 30d              # renew when fewer days than this are left\n"
    "\n"
    "backends:\n"
    "  app:\n"
    "    servers: [127.0.0.1:8080, \"[::1]:8081\"]\n"
    "    balance: round_robin         # round_robin | least_conn\n"
    "    connect_timeout: 3s\n"
    "    response_timeout: 60s\n"
    "    health_check: { path: /healthz, interval: 5s, timeout: 2s, rise: 2, fall: 3 }   # "
    "optional\n"
    "    max_fails: 1                 # failures within fail_timeout that take a server out (0 = "
    "never)\n"
    "    fail_timeout: 10s            # the window, and how long a server stays out\n"
    "  hello:\n"
    "    fixed_response: { status: 200, content_type: text/plain, body: \"hello from tollgate\\n\" "
    "}\n"
    "\n"
    "listeners:\n"
    "  https-main:\n"
    "    protocol: https\n"
    "    listen: \"0.0.0.0:8443\"       # host:port, \"[::]:8443\"\n"
    "    backend: app\n"
    "    security_policy: tls_cipher_policy_1_2_strict_with_1_3   # the default; see §4\n"
    "    certificates:\n"
    "      default: www-ecdsa\n"
    "      extended: [www-rsa, shop]\n"
    "    mutual_auth:                 # https only\n"
    "      enabled: true\n"
    "      ca_certificates: [clients-ca]\n"
    "      verify_depth: 3\n"
    "    http2: true                  # https only: offer h2 in ALPN (default true)\n"
    "  https-public:\n"
    "    protocol: https\n"
    "    listen: \"0.0.0.0:443\"\n"
    "    backend: app\n"
    "    certificates: { default: www-ecdsa }\n"
    "    alt_svc: quic-main           # optional: advertise this QUIC listener as h3 in Alt-Svc\n"
    "                                 # (never on a listener with mutual_auth: see Validation)\n"
    "  quic-main:\n"
    "    protocol: quic\n"
    "    listen: \"0.0.0.0:8443\"\n"
    "    backend: app\n"
    "    certificates: { default: www-ecdsa, extended: [shop] }\n";

/* ---- the SPEC example ------------------------------------------------------------------------ */

static void test_set_default(void **state)
{
    tg_cfgedit_t *e = edit_new(spec);
    do_set(e, P("listeners", "https-main", "certificates", "default"), "www-rsa");
    char *want = replaced(spec, "      default: www-ecdsa\n", "      default: www-rsa\n");
    expect_text(e, want);

    /* The comment after the value stays on its line, one column further. */
    do_set(e, P("global", "log_level"), "debug");
    want = swap(want, "  log_level: info               #", "  log_level: debug               #");
    expect_text(e, want);

    /* Setting what is already there changes nothing, not even quoting. */
    do_set(e, P("listeners", "https-public", "listen"), "0.0.0.0:443");
    do_set(e, P("version"), "1");
    expect_text(e, want);
    free(want);
    tg_cfgedit_free(e);
}

static void test_extended_flow(void **state)
{
    tg_cfgedit_t *e = edit_new(spec);
    char *want = strdup(spec);

    /* Added to a flow list inside a flow mapping, then removed down to []. */
    do_seq(e, P("listeners", "quic-main", "certificates", "extended"), ITEMS("shop", "www-rsa"));
    want = swap(want, "extended: [shop] }", "extended: [shop, www-rsa] }");
    expect_text(e, want);
    do_seq(e, P("listeners", "quic-main", "certificates", "extended"), ITEMS("www-rsa"));
    want = swap(want, "extended: [shop, www-rsa] }", "extended: [www-rsa] }");
    expect_text(e, want);
    do_seq(e, P("listeners", "quic-main", "certificates", "extended"), NO_ITEMS);
    want = swap(want, "extended: [www-rsa] }", "extended: [] }");
    expect_text(e, want);

    /* An absent list in a flow mapping: `{ default: a }` gets `extended`. */
    do_seq(e, P("listeners", "https-public", "certificates", "extended"), ITEMS("shop"));
    want = swap(want, "    certificates: { default: www-ecdsa }\n",
                "    certificates: { default: www-ecdsa, extended: [shop] }\n");
    expect_text(e, want);

    /* A flow list in block style: the last one removed leaves []. */
    do_seq(e, P("listeners", "https-main", "certificates", "extended"), ITEMS("shop"));
    want = swap(want, "      extended: [www-rsa, shop]\n", "      extended: [shop]\n");
    expect_text(e, want);
    do_seq(e, P("listeners", "https-main", "certificates", "extended"), NO_ITEMS);
    want = swap(want, "      extended: [shop]\n", "      extended: []\n");
    expect_text(e, want);
    free(want);
    tg_cfgedit_free(e);
}

static void test_extended_flow_middle(void **state)
{
    tg_cfgedit_t *e = edit_new("extended: [a, b, c, d]  # four\n");
    do_seq(e, P("extended"), ITEMS("a", "c"));
    expect_text(e, "extended: [a, c]  # four\n");
    do_seq(e, P("extended"), ITEMS("c", "e", "f"));
    expect_text(e, "extended: [c, e, f]  # four\n");
    /* Nothing kept: written whole. */
    do_seq(e, P("extended"), ITEMS("x"));
    expect_text(e, "extended: [x]  # four\n");
    tg_cfgedit_free(e);
}

static const char block_list[] = "listeners:\n"
                                 "  l1:\n"
                                 "    certificates:\n"
                                 "      default: www-ecdsa\n"
                                 "      extended:\n"
                                 "        - www-rsa    # RSA fallback for old clients\n"
                                 "        # shop moves to its own listener in May\n"
                                 "        - shop\n"
                                 "    backend: app\n";

static void test_extended_block(void **state)
{
    tg_cfgedit_t *e = edit_new(block_list);
    const char *const *path = (const char *const[]){"listeners", "l1", "certificates", "extended"};

    do_seq(e, path, 4, ITEMS("www-rsa", "shop", "new-one"));
    char *want = replaced(block_list, "        - shop\n", "        - shop\n        - new-one\n");
    expect_text(e, want);

    /* Removing one takes its line and its comment; the comment line between stays. */
    do_seq(e, path, 4, ITEMS("shop", "new-one"));
    want = swap(want, "        - www-rsa    # RSA fallback for old clients\n", "");
    expect_text(e, want);

    /* Nothing kept: the items are written again as a block in the same indentation. */
    do_seq(e, path, 4, ITEMS("x", "y: z"));
    want = swap(want, "        - shop\n        - new-one\n", "        - x\n        - \"y: z\"\n");
    expect_text(e, want);

    do_seq(e, path, 4, NO_ITEMS);
    want = swap(want, "      extended:\n", "      extended: []\n");
    want = swap(want, "        - x\n        - \"y: z\"\n", "");
    expect_text(e, want);
    free(want);
    tg_cfgedit_free(e);

    /* A sequence at its key's indentation keeps it. */
    e = edit_new("extended:\n- a\n- b\nnext: 1\n");
    do_seq(e, P("extended"), ITEMS("a", "b", "c"));
    expect_text(e, "extended:\n- a\n- b\n- c\nnext: 1\n");
    do_seq(e, P("extended"), ITEMS("d"));
    expect_text(e, "extended:\n- d\nnext: 1\n");
    /* A scalar replaced by a list, and a list by a scalar. */
    do_set(e, P("extended"), "one");
    expect_text(e, "extended: one\nnext: 1\n");
    do_seq(e, P("next"), ITEMS("1", "2"));
    expect_text(e, "extended: one\nnext: [1, 2]\n");
    tg_cfgedit_free(e);
}

static void test_extended_absent(void **state)
{
    static const char text[] = "listeners:\n"
                               "  l1:\n"
                               "    certificates:\n"
                               "      default: www-ecdsa   # the ECDSA one\n"
                               "    backend: app\n";
    tg_cfgedit_t *e = edit_new(text);
    do_seq(e, P("listeners", "l1", "certificates", "extended"), ITEMS("www-rsa", "shop"));
    expect_text(e, "listeners:\n"
                   "  l1:\n"
                   "    certificates:\n"
                   "      default: www-ecdsa   # the ECDSA one\n"
                   "      extended: [www-rsa, shop]\n"
                   "    backend: app\n");
    tg_cfgedit_free(e);
}

static void test_mutual_auth(void **state)
{
    tg_cfgedit_t *e = edit_new(spec);
    char *want = strdup(spec);

    do_set(e, P("listeners", "https-main", "mutual_auth", "enabled"), "false");
    want = swap(want, "      enabled: true\n", "      enabled: false\n");
    do_seq(e, P("listeners", "https-main", "mutual_auth", "ca_certificates"),
           ITEMS("clients-ca", "partners-ca"));
    want = swap(want, "[clients-ca]\n", "[clients-ca, partners-ca]\n");
    do_set(e, P("listeners", "https-main", "mutual_auth", "verify_depth"), "2");
    want = swap(want, "      verify_depth: 3\n", "      verify_depth: 2\n");
    expect_text(e, want);

    /* Created after the entry's last line and the comment lines indented under it. */
    do_set(e, P("listeners", "https-public", "mutual_auth", "enabled"), "true");
    do_seq(e, P("listeners", "https-public", "mutual_auth", "ca_certificates"),
           ITEMS("clients-ca"));
    want = swap(want, "see Validation)\n",
                "see Validation)\n"
                "    mutual_auth:\n"
                "      enabled: true\n"
                "      ca_certificates: [clients-ca]\n");
    expect_text(e, want);

    /* Deleted whole: its key line with the comment and its three lines. */
    do_del(e, P("listeners", "https-main", "mutual_auth"));
    want = swap(want,
                "    mutual_auth:                 # https only\n"
                "      enabled: false\n"
                "      ca_certificates: [clients-ca, partners-ca]\n"
                "      verify_depth: 2\n",
                "");
    expect_text(e, want);
    free(want);
    tg_cfgedit_free(e);

    /* Written as a flow mapping, it stays one. */
    e = edit_new("listeners:\n  l1:\n    mutual_auth: { enabled: false }  # for now\n");
    do_set(e, P("listeners", "l1", "mutual_auth", "enabled"), "true");
    do_seq(e, P("listeners", "l1", "mutual_auth", "ca_certificates"), ITEMS("clients-ca"));
    expect_text(e,
                "listeners:\n  l1:\n"
                "    mutual_auth: { enabled: true, ca_certificates: [clients-ca] }  # for now\n");
    do_del(e, P("listeners", "l1", "mutual_auth", "enabled"));
    expect_text(
        e, "listeners:\n  l1:\n    mutual_auth: { ca_certificates: [clients-ca] }  # for now\n");
    do_del(e, P("listeners", "l1", "mutual_auth", "ca_certificates"));
    expect_text(e, "listeners:\n  l1:\n    mutual_auth: {}  # for now\n");
    tg_cfgedit_free(e);

    /* A block mapping replaced by a flow list and a scalar (not meaningful to the loader,
     * but the editor must not care). */
    e = edit_new("m:\n  a: 1   # one\n  b: 2\nz: 0\n");
    do_seq(e, P("m"), ITEMS("x"));
    expect_text(e, "m: [x]\nz: 0\n");
    tg_cfgedit_free(e);
}

static void test_new_certificate(void **state)
{
    tg_cfgedit_t *e = edit_new(spec);
    do_set(e, P("certificates", "new-cert", "type"), "server");
    do_set(e, P("certificates", "new-cert", "cert"), "certs/store/new-cert.crt");
    do_set(e, P("certificates", "new-cert", "key"), "certs/store/new-cert.key");
    char *want = replaced(spec, "| rsa-2048\n",
                          "| rsa-2048\n"
                          "  new-cert:\n"
                          "    type: server\n"
                          "    cert: certs/store/new-cert.crt\n"
                          "    key: certs/store/new-cert.key\n");
    expect_text(e, want);

    /* And deleted again: the file is as it was. */
    do_del(e, P("certificates", "new-cert"));
    expect_text(e, spec);
    do_del(e, P("certificates", "shop"));
    free(want);
    want = replaced(spec,
                    "  shop:\n"
                    "    type: server\n"
                    "    cert: certs/demo/shop.crt\n"
                    "    key: certs/demo/shop.key\n",
                    "");
    expect_text(e, want);
    free(want);
    tg_cfgedit_free(e);
}

static void test_new_section(void **state)
{
    /* Nested by the file's own step (4 here), at the end of the root. */
    tg_cfgedit_t *e = edit_new("version: 1\nglobal:\n    workers: 2  # two\n\n# end\n");
    do_set(e, P("certificates", "c1", "type"), "server");
    expect_text(e, "version: 1\nglobal:\n    workers: 2  # two\n"
                   "certificates:\n    c1:\n        type: server\n\n# end\n");
    tg_cfgedit_free(e);
}

static const char certs_commented[] = "certificates:\n"
                                      "  # the main certificate\n"
                                      "  www-ecdsa:\n"
                                      "    type: server\n"
                                      "    # renewed every 60 days by the ops cron\n"
                                      "    cert: certs/www.crt   # leaf first\n"
                                      "    key: certs/www.key\n"
                                      "      # (the key never leaves this host)\n"
                                      "\n"
                                      "  shop:\n"
                                      "    type: server\n"
                                      "    cert: certs/shop.crt\n"
                                      "    key: certs/shop.key\n"
                                      "# end of certificates\n"
                                      "version: 1\n";

static void test_delete_certificate(void **state)
{
    tg_cfgedit_t *e = edit_new(certs_commented);

    /* Its lines and the comments inside go; the comment above the key stays. */
    do_del(e, P("certificates", "www-ecdsa"));
    char *want = replaced(certs_commented,
                          "  www-ecdsa:\n"
                          "    type: server\n"
                          "    # renewed every 60 days by the ops cron\n"
                          "    cert: certs/www.crt   # leaf first\n"
                          "    key: certs/www.key\n"
                          "      # (the key never leaves this host)\n",
                          "");
    expect_text(e, want);

    /* Missing keys, or paths through missing mappings, are nothing to do. */
    do_del(e, P("certificates", "www-ecdsa"));
    do_del(e, P("backends", "app", "servers"));
    expect_text(e, want);

    /* The last entry leaves an empty mapping, not a null. */
    do_del(e, P("certificates", "shop"));
    want = swap(want, "certificates:\n", "certificates: {}\n");
    want = swap(
        want, "  shop:\n    type: server\n    cert: certs/shop.crt\n    key: certs/shop.key\n", "");
    expect_text(e, want);
    do_set(e, P("certificates", "c", "type"), "ca");
    want = swap(want, "certificates: {}\n", "certificates: { c: { type: ca } }\n");
    expect_text(e, want);
    free(want);
    tg_cfgedit_free(e);

    /* Deleting every root key leaves a document without content. */
    e = edit_new("# only\na: 1\n");
    do_del(e, P("a"));
    expect_text(e, "# only\n");
    tg_cfgedit_free(e);
}

static void test_hostile_values(void **state)
{
    static const struct {
        const char *value, *written;
    } quoted[] = {
        {"x: y", "\"x: y\""},
        {"#c", "\"#c\""},
        {"a #c", "\"a #c\""},
        {"say \"hi\" \\o/", "\"say \\\"hi\\\" \\\\o/\""},
        {"null", "\"null\""},
        {"~", "\"~\""},
        {"", "\"\""},
        {" lead", "\" lead\""},
        {"trail ", "\"trail \""},
        {"[x]", "\"[x]\""},
        {"a, b}", "\"a, b}\""},
        {"&anchor", "\"&anchor\""},
        {"*alias", "\"*alias\""},
        {"!tag", "\"!tag\""},
        {"|", "\"|\""},
        {"- item", "\"- item\""},
        {"it's", "\"it's\""},
        {"@x", "\"@x\""},
        {"...", "\"...\""},
        {"%TAG", "\"%TAG\""},
        {"www-ecdsa", "www-ecdsa"},
        {"certs/store/x.crt", "certs/store/x.crt"},
        {"true", "true"},
        {"3", "3"},
        {"caf\xc3\xa9", "caf\xc3\xa9"},
    };
    for (size_t i = 0; i < sizeof(quoted) / sizeof(quoted[0]); i++) {
        /* In block and in flow context: the flow one is where `,` and `}` would bite. */
        tg_cfgedit_t *e = edit_new("a: old  # c\nb: { x: old }\n");
        do_set(e, P("a"), quoted[i].value);
        do_set(e, P("b", "x"), quoted[i].value);
        char want[256];
        snprintf(want, sizeof(want), "a: %s  # c\nb: { x: %s }\n", quoted[i].written,
                 quoted[i].written);
        expect_text(e, want);
        /* As a key too. */
        do_set(e, P("b", quoted[i].value), "v");
        tg_cfgedit_free(e);
    }

    static const char *const bad[] = {
        "a\nb",
        "a\rb",
        "a\tb",
        "nul\x01",
        "del\x7f",
        "nel\xc2\x85",
        "ls\xe2\x80\xa8",
        "bom\xef\xbb\xbf",
        "bad\xff",
        "short\xc3",
        "overlong\xc0\xaf",
        "surrogate\xed\xa0\x80",
    };
    tg_cfgedit_t *e = edit_new("a: old\n");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *why = strstr(bad[i], "\xc3") || strstr(bad[i], "\xff") ||
                                  strstr(bad[i], "\xc0") || strstr(bad[i], "\xed")
                              ? "UTF-8"
                              : "control character";
        refused(e, R_SET, P("a"), bad[i], why);
        refused(e, R_SEQ, P("a"), bad[i], why);
        refused(e, R_SET, P("b", bad[i]), "v", why);
        refused(e, R_DEL, P(bad[i]), NULL, why);
    }
    expect_text(e, "a: old\n");
    tg_cfgedit_free(e);
}

static void test_bad_paths(void **state)
{
    tg_cfgedit_t *e = edit_new(spec);

    refused(e, R_SET, P("version", "x"), "1", "version is a single value, not a mapping");
    refused(e, R_SET, P("listeners", "https-main", "backend", "x"), "1", "a single value");
    refused(e, R_SEQ, P("listeners", "https-main", "certificates", "extended", "x"), "1",
            "extended is a sequence, not a mapping");
    refused(e, R_DEL, P("listeners", "https-main", "listen", "x"), NULL, "not a mapping");
    refused(e, R_SET, (const char *const[]){"a"}, 0, "v", "an empty path");
    refused(e, R_SET, (const char *const[]){"a", NULL}, 2, "v", "missing");
    refused(e, R_SET, P("k"), NULL, "no value");
    tg_cfgedit_free(e);

    /* A document that is one scalar, and a key written twice. */
    e = edit_new("just text\n");
    refused(e, R_SET, P("a"), "v", "the document is a single value");
    tg_cfgedit_free(e);
    e = edit_new("a:\n  b: 1\na:\n  c: 2\n");
    refused(e, R_SET, P("a", "b"), "3", "a is written twice");
    tg_cfgedit_free(e);

    /* Everything but the path it must reach is the same, or nothing changes: a `|+` block
     * keeps its final blank line as content, which an entry appended below would take. */
    e = edit_new("a:\n  s: |+\n    text\n\nb: 1\n");
    refused(e, R_SET, P("a", "t"), "x", "would not read back as intended");
    do_set(e, P("b"), "2");
    expect_text(e, "a:\n  s: |+\n    text\n\nb: 2\n");
    tg_cfgedit_free(e);
}

static void test_empty_documents(void **state)
{
    tg_cfgedit_t *e = edit_new("# tollgate\n# nothing yet\n");
    do_set(e, P("version"), "1");
    do_set(e, P("certificates", "a", "type"), "server");
    expect_text(e,
                "# tollgate\n# nothing yet\nversion: 1\ncertificates:\n  a:\n    type: server\n");
    tg_cfgedit_free(e);

    e = edit_new("");
    do_seq(e, P("a", "b"), ITEMS("c"));
    expect_text(e, "a:\n  b: [c]\n");
    tg_cfgedit_free(e);

    e = edit_new("# no final newline");
    do_set(e, P("a"), "b");
    expect_text(e, "# no final newline\na: b\n");
    tg_cfgedit_free(e);

    e = edit_new("---\n");
    do_set(e, P("version"), "1");
    expect_text(e, "---\nversion: 1\n");
    tg_cfgedit_free(e);

    e = edit_new("{}\n");
    do_set(e, P("version"), "1");
    expect_text(e, "{ version: 1 }\n");
    tg_cfgedit_free(e);
}

static void test_empty_values(void **state)
{
    tg_cfgedit_t *e = edit_new("listeners:\n"
                               "  l1:\n"
                               "    extended:\n"
                               "    mutual_auth:   # later\n"
                               "    alt_svc: ~  # none\n"
                               "    a: {}\n"
                               "    b: []\n"
                               "    c: { }\n"
                               "    d: { k }\n"
                               "    backend: app\n");
    do_seq(e, P("listeners", "l1", "extended"), ITEMS("shop"));
    do_set(e, P("listeners", "l1", "mutual_auth", "enabled"), "true");
    do_set(e, P("listeners", "l1", "alt_svc", "x"), "y");
    do_set(e, P("listeners", "l1", "a", "k"), "v");
    do_seq(e, P("listeners", "l1", "b"), ITEMS("x", "y"));
    do_set(e, P("listeners", "l1", "c", "k", "j"), "v");
    do_set(e, P("listeners", "l1", "d", "k"), "v");
    do_set(e, P("listeners", "l1", "d", "m"), "w");
    expect_text(e, "listeners:\n"
                   "  l1:\n"
                   "    extended: [shop]\n"
                   "    mutual_auth:   # later\n"
                   "      enabled: true\n"
                   "    alt_svc:  # none\n"
                   "      x: y\n"
                   "    a: { k: v }\n"
                   "    b: [x, y]\n"
                   "    c: { k: { j: v } }\n"
                   "    d: { k: v, m: w }\n"
                   "    backend: app\n");
    do_set(e, P("listeners", "l1", "extended"), "");
    do_seq(e, P("listeners", "l1", "mutual_auth"), NO_ITEMS);
    expect_text(e, "listeners:\n"
                   "  l1:\n"
                   "    extended: \"\"\n"
                   "    mutual_auth: []   # later\n"
                   "    alt_svc:  # none\n"
                   "      x: y\n"
                   "    a: { k: v }\n"
                   "    b: [x, y]\n"
                   "    c: { k: { j: v } }\n"
                   "    d: { k: v, m: w }\n"
                   "    backend: app\n");
    tg_cfgedit_free(e);
}

static void test_no_final_newline(void **state)
{
    tg_cfgedit_t *e = edit_new("a: 1\nb:\n  c: 2");
    do_set(e, P("b", "d"), "3");
    expect_text(e, "a: 1\nb:\n  c: 2\n  d: 3\n");
    tg_cfgedit_free(e);

    e = edit_new("a: 1\nb: [x]");
    do_seq(e, P("b"), ITEMS("x", "y"));
    do_del(e, P("b"));
    expect_text(e, "a: 1\n");
    tg_cfgedit_free(e);

    e = edit_new("s:\n  - a\n  - b");
    do_seq(e, P("s"), ITEMS("b", "c"));
    expect_text(e, "s:\n  - b\n  - c\n");
    tg_cfgedit_free(e);
}

static void test_crlf(void **state)
{
    tg_cfgedit_t *e = edit_new("a: 1\r\nb:  # bee\r\n  c: 2\r\n  l:\r\n    - x\r\n");
    do_set(e, P("b", "d"), "3");
    do_seq(e, P("b", "l"), ITEMS("x", "y"));
    do_seq(e, P("e"), ITEMS("z"));
    do_set(e, P("a"), "one");
    expect_text(e, "a: one\r\nb:  # bee\r\n  c: 2\r\n  l:\r\n    - x\r\n    - y\r\n  d: 3\r\n"
                   "e: [z]\r\n");
    do_del(e, P("b", "l"));
    expect_text(e, "a: one\r\nb:  # bee\r\n  c: 2\r\n  d: 3\r\ne: [z]\r\n");
    tg_cfgedit_free(e);

    refused_new("a: 1\rb: 2\n", 10, "carriage return");
}

static void test_text_shapes(void **state)
{
    /* Characters before the edit that take more than one byte. */
    static const char utf8[] = "# caf\xc3\xa9 \xe2\x82\xac\nname: caf\xc3\xa9  # \xc3\xa9\n"
                               "listeners:\n  x: { default: a }  # \xf0\x9f\x94\x92\n";
    tg_cfgedit_t *e = edit_new(utf8);
    do_set(e, P("listeners", "x", "default"), "b");
    do_set(e, P("name"), "th\xc3\xa9");
    do_seq(e, P("listeners", "x", "extended"), ITEMS("\xc3\xa9t\xc3\xa9"));
    expect_text(e, "# caf\xc3\xa9 \xe2\x82\xac\nname: th\xc3\xa9  # \xc3\xa9\n"
                   "listeners:\n  x: { default: b, extended: [\xc3\xa9t\xc3\xa9] }  # "
                   "\xf0\x9f\x94\x92\n");
    tg_cfgedit_free(e);

    /* With a byte order mark. */
    e = edit_new("\xef\xbb\xbf"
                 "a: 1\n");
    do_set(e, P("a"), "2");
    do_set(e, P("b", "c"), "3");
    expect_text(e, "\xef\xbb\xbf"
                   "a: 2\nb:\n  c: 3\n");
    do_del(e, P("a"));
    expect_text(e, "\xef\xbb\xbf"
                   "b:\n  c: 3\n");
    tg_cfgedit_free(e);

    /* Block scalars, quoted scalars and values on the line below their key. */
    e = edit_new("note: |\n  line one\n  line two\n\nq: 'it''s'  # quoted\nlow:\n  on next line\n"
                 "m:\n  k: >\n    folded\n");
    do_set(e, P("note"), "short");
    do_set(e, P("q"), "plain");
    do_set(e, P("low"), "up");
    do_set(e, P("m", "j"), "1");
    expect_text(e, "note: short\n\nq: plain  # quoted\nlow: up\nm:\n  k: >\n    folded\n  j: 1\n");
    tg_cfgedit_free(e);
}

static void test_refused_documents(void **state)
{
    refused_new("a: &x 1\nb: *x\n", 14, "anchors");
    refused_new("a: !!str 1\n", 11, "tags");
    refused_new("a: 1\n---\nb: 2\n", 14, "only one YAML document");
    refused_new("a: [1, 2\n", 9, "invalid YAML");
    refused_new("a:\n\tb: 1\n", 9, "tab in indentation");
    refused_new("\xff\xfe"
                "a\0:\0",
                6, "UTF-16");
    refused_new("a: 1\n\0", 6, "NUL");
    refused_new("a: \xc2\x85\n", 6, "line breaks other than LF and CRLF");
    refused_new("? [a]\n: 1\n", 10, "mapping key must be a single value");

    char deep[200] = "";
    for (int i = 0; i < 33; i++)
        strcat(deep, "[");
    refused_new(deep, strlen(deep), "deeper than 32");

    size_t big = 4u * 1024 * 1024 + 1;
    char *huge = malloc(big);
    memset(huge, '#', big);
    refused_new(huge, big, "larger than 4 MiB");
    free(huge);
}

/* The loader agrees: the example without what this loader does not know yet (removed by the
 * editor itself) loads before and after every edit the admin API makes. */
static void test_loader_agrees(void **state)
{
    tg_cfgedit_t *e = edit_new(spec);
    do_del(e, P("admin", "certificate"));
    do_del(e, P("certificates", "www-auto"));
    do_del(e, P("acme"));
    do_del(e, P("listeners", "https-main", "http2"));
    char *want = replaced(spec,
                          "  certificate: admin-cert       # a server certificate id: serve the "
                          "admin API over TLS;\n"
                          "                                # required when listen is TCP on an "
                          "address other than loopback\n",
                          "");
    want = swap(want,
                "  www-auto:\n"
                "    type: acme                       # issued and renewed by tollgate itself "
                "(see \xc2\xa7"
                "9)\n"
                "    names: [www.example.com, example.com]\n"
                "    key_type: ecdsa-p256             # ecdsa-p256 (default) | rsa-2048\n",
                "");
    want = swap(want,
                "    http2: true                  # https only: offer h2 in ALPN (default true)\n",
                "");
    const char *acme = strstr(want, "acme:  ");
    assert_non_null(acme);
    const char *after = strstr(acme, "\n\nbackends:");
    assert_non_null(after);
    memmove((char *)acme, after + 1, strlen(after + 1) + 1);
    expect_text(e, want);
    free(want);
    assert_loads(e);

    do_set(e, P("certificates", "new-cert", "type"), "server");
    do_set(e, P("certificates", "new-cert", "cert"), "certs/store/new-cert.crt");
    do_set(e, P("certificates", "new-cert", "key"), "certs/store/new-cert.key");
    assert_loads(e);
    do_set(e, P("listeners", "https-public", "certificates", "default"), "new-cert");
    do_seq(e, P("listeners", "quic-main", "certificates", "extended"), ITEMS("shop", "new-cert"));
    do_seq(e, P("listeners", "https-main", "certificates", "extended"), ITEMS("shop"));
    do_set(e, P("listeners", "https-main", "mutual_auth", "enabled"), "false");
    do_set(e, P("listeners", "https-main", "mutual_auth", "verify_depth"), "2");
    assert_loads(e);
    do_del(e, P("listeners", "https-main", "mutual_auth"));
    do_seq(e, P("listeners", "quic-main", "certificates", "extended"), ITEMS("new-cert"));
    do_seq(e, P("listeners", "https-main", "certificates", "extended"), NO_ITEMS);
    do_del(e, P("certificates", "shop"));
    assert_loads(e);
    tg_cfgedit_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_default),
        cmocka_unit_test(test_extended_flow),
        cmocka_unit_test(test_extended_flow_middle),
        cmocka_unit_test(test_extended_block),
        cmocka_unit_test(test_extended_absent),
        cmocka_unit_test(test_mutual_auth),
        cmocka_unit_test(test_new_certificate),
        cmocka_unit_test(test_new_section),
        cmocka_unit_test(test_delete_certificate),
        cmocka_unit_test(test_hostile_values),
        cmocka_unit_test(test_bad_paths),
        cmocka_unit_test(test_empty_documents),
        cmocka_unit_test(test_empty_values),
        cmocka_unit_test(test_no_final_newline),
        cmocka_unit_test(test_crlf),
        cmocka_unit_test(test_text_shapes),
        cmocka_unit_test(test_refused_documents),
        cmocka_unit_test(test_loader_agrees),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
