/* fuzz_sni: arbitrary host names looked up in fixed SNI tables, each answer checked against
 * a slow linear reference matcher. The first input byte picks the table; 0xff instead makes
 * two certificates of the names that follow, whose default-slot pairing (the name sets) and
 * lookups are checked the same way. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/cert.h"

#define CERT(var, type, ...)                                                                       \
    static char *var##_names[] = {__VA_ARGS__};                                                    \
    static tg_cert_t var = {.id = #var,                                                            \
                            .key_type = (type),                                                    \
                            .names = var##_names,                                                  \
                            .nnames = TG_ARRAY_SIZE(var##_names)}

CERT(www_ec, TG_KEY_EC, "www.example.com", "example.com");
CERT(www_rsa, TG_KEY_RSA, "example.com", "WWW.example.com");
CERT(wild_ec, TG_KEY_EC, "*.example.com", "*.a.example.com");
CERT(shop_rsa, TG_KEY_RSA, "shop.example.com", "*.Shop.Example.Com", "a.b", "*.b");
CERT(odd, TG_KEY_EC, "w*.example.com", "*", "*.", "", ".", "dot.example.", "x");
CERT(wild_rsa, TG_KEY_RSA, "*.example.com", "www.example.com");
CERT(bare, TG_KEY_RSA, "");

static const tg_cert_t *set0[] = {&www_ec, &www_rsa, &wild_ec, &shop_rsa};
static const tg_cert_t *set1[] = {&shop_rsa, &odd, &wild_ec, &wild_rsa, &www_ec};
static const tg_cert_t *set2[] = {&bare, &odd, &www_rsa};

static const struct {
    const tg_cert_t *const *certs;
    size_t n;
} sets[] = {{set0, 4}, {set1, 5}, {set2, 3}};

static tg_sni_t tables[3];

static char low(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* A certificate name normalised the way the table should see it; false when it can never
 * match (empty, too long, or a '*' other than a whole leftmost label). */
static bool norm(const char *name, char *out, size_t *len, bool *wild)
{
    size_t n = strlen(name);
    if (n > 0 && name[n - 1] == '.')
        n--;
    if (n == 0 || n > 255)
        return false;
    *wild = n > 2 && name[0] == '*' && name[1] == '.';
    size_t skip = *wild ? 2 : 0;
    for (size_t i = skip; i < n; i++) {
        if (name[i] == '*')
            return false;
        out[i - skip] = low(name[i]);
    }
    *len = n - skip;
    return true;
}

static bool carries(const tg_cert_t *c, const char *key, size_t len, bool wild)
{
    char buf[256];
    for (size_t i = 0; i < c->nnames; i++) {
        size_t n;
        bool w;
        if (norm(c->names[i], buf, &n, &w) && w == wild && n == len && memcmp(buf, key, n) == 0)
            return true;
    }
    return false;
}

/* Equal as the table compares certificate names: ASCII case and one trailing dot aside. */
static bool same_name(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 0 && a[la - 1] == '.')
        la--;
    if (lb > 0 && b[lb - 1] == '.')
        lb--;
    if (la != lb)
        return false;
    for (size_t i = 0; i < la; i++) {
        if (low(a[i]) != low(b[i]))
            return false;
    }
    return true;
}

static bool same_set(const tg_cert_t *a, const tg_cert_t *b)
{
    for (int pass = 0; pass < 2; pass++) {
        const tg_cert_t *p = pass ? b : a, *q = pass ? a : b;
        for (size_t i = 0; i < p->nnames; i++) {
            bool found = false;
            for (size_t k = 0; k < q->nnames && !found; k++)
                found = same_name(p->names[i], q->names[k]);
            if (!found)
                return false;
        }
    }
    return true;
}

static tg_sni_slot_t pick(const tg_cert_t *const *certs, size_t n, const char *key, size_t len,
                          bool wild, bool *found)
{
    tg_sni_slot_t s = {0};
    *found = false;
    for (size_t i = 0; i < n; i++) {
        if (!carries(certs[i], key, len, wild))
            continue;
        *found = true;
        if (certs[i]->key_type == TG_KEY_EC && s.ec == NULL)
            s.ec = certs[i];
        if (certs[i]->key_type == TG_KEY_RSA && s.rsa == NULL)
            s.rsa = certs[i];
    }
    return s;
}

static tg_sni_slot_t reference(const tg_cert_t *const *certs, size_t n, const uint8_t *host,
                               size_t len)
{
    tg_sni_slot_t def = {0};
    if (n > 0) {
        if (certs[0]->key_type == TG_KEY_EC)
            def.ec = certs[0];
        else if (certs[0]->key_type == TG_KEY_RSA)
            def.rsa = certs[0];
        for (size_t i = 1; i < n; i++) {
            if (certs[i]->key_type != certs[0]->key_type && certs[i]->key_type != TG_KEY_OTHER &&
                same_set(certs[0], certs[i])) {
                if (certs[i]->key_type == TG_KEY_EC)
                    def.ec = certs[i];
                else
                    def.rsa = certs[i];
                break;
            }
        }
    }
    if (len > 0 && host[len - 1] == '.')
        len--;
    if (len == 0 || len > 255)
        return def;
    char h[256];
    for (size_t i = 0; i < len; i++)
        h[i] = low((char)host[i]);
    bool found;
    tg_sni_slot_t s = pick(certs, n, h, len, false, &found);
    if (found)
        return s;
    size_t dot = 0;
    while (dot < len && h[dot] != '.')
        dot++;
    if (dot == 0 || dot + 1 >= len)
        return def;
    s = pick(certs, n, h + dot + 1, len - dot - 1, true, &found);
    return found ? s : def;
}

/* "a\nb\0c\nd": names of an ECDSA certificate (the default), then of an RSA one. */
static void pair_input(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    char **names = malloc((size + 2) * sizeof(*names));
    if (text == NULL || names == NULL)
        abort();
    memcpy(text, data, size);
    text[size] = '\0';
    const char *split = memchr(text, '\0', size);
    size_t first_len = split ? (size_t)(split - text) : size;
    size_t nnames = 0, na = 0;
    /* Every name ends at a '\n' or at the end of its list; the '\0' ends the first list. */
    for (size_t i = 0, start = 0; i <= size; i++) {
        if (i == size || text[i] == '\n' || i == first_len) {
            bool end_of_first = i == first_len;
            text[i] = '\0';
            names[nnames++] = text + start;
            start = i + 1;
            if (end_of_first)
                na = nnames;
        }
    }
    if (split == NULL)
        na = nnames;
    tg_cert_t a = {.key_type = TG_KEY_EC, .names = names, .nnames = na};
    tg_cert_t b = {.key_type = TG_KEY_RSA, .names = names + na, .nnames = nnames - na};
    const tg_cert_t *certs[] = {&a, &b};
    tg_sni_t t;
    if (tg_sni_build(&t, certs, 2) != 0)
        abort();
    if ((t.slots[0].rsa == &b) != same_set(&a, &b))
        abort();
    for (size_t i = 0; i < nnames; i++) {
        size_t len = strlen(names[i]);
        size_t got = tg_sni_lookup(&t, names[i], len);
        if (got >= t.nslots)
            abort();
        tg_sni_slot_t want = reference(certs, 2, (const uint8_t *)names[i], len);
        if (t.slots[got].ec != want.ec || t.slots[got].rsa != want.rsa)
            abort();
    }
    tg_sni_free(&t);
    free(names);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        for (size_t i = 0; i < TG_ARRAY_SIZE(sets); i++) {
            if (tg_sni_build(&tables[i], sets[i].certs, sets[i].n) != 0)
                abort();
        }
        ready = true;
    }
    if (size == 0)
        return 0;
    if (data[0] == 0xff) {
        pair_input(data + 1, size - 1);
        return 0;
    }
    size_t which = data[0] % TG_ARRAY_SIZE(sets);
    const uint8_t *host = data + 1;
    size_t len = size - 1;

    size_t got = tg_sni_lookup(&tables[which], (const char *)host, len);
    if (got >= tables[which].nslots)
        abort();
    tg_sni_slot_t want = reference(sets[which].certs, sets[which].n, host, len);
    const tg_sni_slot_t *s = &tables[which].slots[got];
    if (s->ec != want.ec || s->rsa != want.rsa)
        abort();
    return 0;
}
