/* SNI name table: host name -> slot (at most one certificate per key type). Built once per
 * listener and generation, then only read, so every worker looks up without a lock. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/cert.h"

/* The longest DNS name (RFC 1035); a longer SNI cannot name any certificate. */
#define MAX_NAME 255

/* Exact names and wildcards live in one table under distinct keys: "*.example.com" is
 * stored as "example.com" with wildcard set, so both lookups are one probe sequence each
 * and the wildcard one needs no string building. */
struct tg_sni_entry_s {
    const char *name; /* NULL: empty; lowercased, no trailing dot, no "*." */
    uint64_t hash;
    uint32_t len;
    uint32_t slot;
    bool wildcard;
};

static char lower(char ch)
{
    return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

/* FNV-1a; the wildcard flag changes the seed so "*.a.b" and "a.b" probe apart. */
static uint64_t hash_key(const char *s, size_t len, bool wildcard)
{
    uint64_t h = wildcard ? 0x84222325cbf29ce4ull : 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* The index of the entry for a key, or of the empty entry where it would go. The table is
 * at most half full, so the probe always ends. */
static size_t probe(const tg_sni_entry_t *entries, size_t cap, const char *key, size_t len,
                    bool wildcard, uint64_t h)
{
    size_t mask = cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        const tg_sni_entry_t *e = &entries[i];
        if (e->name == NULL || (e->hash == h && e->wildcard == wildcard && e->len == len &&
                                memcmp(e->name, key, len) == 0))
            return i;
    }
}

/* A certificate name as a table key, written to out (room for strlen(name) bytes). Returns
 * the key length, or 0 for a name that can never match: empty, too long, or with a '*'
 * anywhere but as the whole leftmost label (RFC 6125 §6.4.3 lets clients refuse partial
 * wildcards, so we do not serve them either). */
static size_t make_key(const char *name, char *out, bool *wildcard)
{
    size_t len = strlen(name);
    if (len > 0 && name[len - 1] == '.')
        len--;
    if (len == 0 || len > MAX_NAME)
        return 0;
    *wildcard = len > 2 && name[0] == '*' && name[1] == '.';
    const char *src = *wildcard ? name + 2 : name;
    size_t klen = *wildcard ? len - 2 : len;
    for (size_t i = 0; i < klen; i++) {
        if (src[i] == '*')
            return 0;
        out[i] = lower(src[i]);
    }
    return klen;
}

static bool name_eq(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 0 && a[la - 1] == '.')
        la--;
    if (lb > 0 && b[lb - 1] == '.')
        lb--;
    if (la != lb)
        return false;
    for (size_t i = 0; i < la; i++) {
        if (lower(a[i]) != lower(b[i]))
            return false;
    }
    return true;
}

static bool has_name(const tg_cert_t *c, const char *name)
{
    for (size_t i = 0; i < c->nnames; i++) {
        if (name_eq(c->names[i], name))
            return true;
    }
    return false;
}

static bool same_names(const tg_cert_t *a, const tg_cert_t *b)
{
    for (size_t i = 0; i < a->nnames; i++) {
        if (!has_name(b, a->names[i]))
            return false;
    }
    for (size_t i = 0; i < b->nnames; i++) {
        if (!has_name(a, b->names[i]))
            return false;
    }
    return true;
}

/* Candidates arrive in config order, so the first of each key type stays. */
static void offer(tg_sni_slot_t *slot, const tg_cert_t *c)
{
    if (c->key_type == TG_KEY_EC && slot->ec == NULL)
        slot->ec = c;
    else if (c->key_type == TG_KEY_RSA && slot->rsa == NULL)
        slot->rsa = c;
}

int tg_sni_build(tg_sni_t *sni, const tg_cert_t *const *certs, size_t ncerts)
{
    memset(sni, 0, sizeof(*sni));
    size_t nnames = 0, bytes = 0;
    for (size_t i = 0; i < ncerts; i++) {
        for (size_t j = 0; j < certs[i]->nnames; j++) {
            nnames++;
            bytes += strlen(certs[i]->names[j]) + 1;
        }
    }
    size_t cap = 0;
    if (nnames > 0) {
        cap = 8;
        while (cap < 2 * nnames)
            cap <<= 1;
    }

    /* One block holds the entries and, after them, the key strings they point into. */
    tg_sni_slot_t *slots = calloc(nnames + 1, sizeof(*slots));
    tg_sni_entry_t *entries = cap ? calloc(1, cap * sizeof(*entries) + bytes) : NULL;
    tg_sni_slot_t *pairs = cap ? calloc(cap, sizeof(*pairs)) : NULL;
    size_t *order = calloc(nnames + 1, sizeof(*order));
    if (slots == NULL || order == NULL || (cap && (entries == NULL || pairs == NULL))) {
        free(slots);
        free(entries);
        free(pairs);
        free(order);
        return -1;
    }

    char *arena = (char *)(entries + cap);
    size_t ndistinct = 0;
    for (size_t i = 0; i < ncerts; i++) {
        for (size_t j = 0; j < certs[i]->nnames; j++) {
            bool wildcard = false;
            size_t len = make_key(certs[i]->names[j], arena, &wildcard);
            if (len == 0)
                continue;
            uint64_t h = hash_key(arena, len, wildcard);
            size_t at = probe(entries, cap, arena, len, wildcard, h);
            tg_sni_entry_t *e = &entries[at];
            if (e->name == NULL) {
                *e = (tg_sni_entry_t){
                    .name = arena, .hash = h, .len = (uint32_t)len, .wildcard = wildcard};
                arena += len + 1;
                order[ndistinct++] = at;
            }
            offer(&pairs[at], certs[i]);
        }
    }

    size_t nslots = 1;
    if (ncerts > 0) {
        offer(&slots[0], certs[0]);
        for (size_t i = 1; i < ncerts; i++) {
            if (certs[i]->key_type != certs[0]->key_type && certs[i]->key_type != TG_KEY_OTHER &&
                same_names(certs[0], certs[i])) {
                offer(&slots[0], certs[i]);
                break;
            }
        }
    }
    /* Names in config order, so slot numbers are stable across identical builds. The
     * search is linear in the slots, which are few: at most one per distinct pair. */
    for (size_t k = 0; k < ndistinct; k++) {
        const tg_sni_slot_t *p = &pairs[order[k]];
        size_t s = 0;
        while (s < nslots && (slots[s].ec != p->ec || slots[s].rsa != p->rsa))
            s++;
        if (s == nslots)
            slots[nslots++] = *p;
        entries[order[k]].slot = (uint32_t)s;
    }
    free(pairs);
    free(order);

    sni->slots = slots;
    sni->nslots = nslots;
    sni->_entries = entries;
    sni->_cap = cap;
    return 0;
}

size_t tg_sni_lookup(const tg_sni_t *sni, const char *host, size_t host_len)
{
    if (host == NULL || sni->_cap == 0)
        return 0;
    if (host_len > 0 && host[host_len - 1] == '.')
        host_len--;
    if (host_len == 0 || host_len > MAX_NAME)
        return 0;

    char buf[MAX_NAME];
    for (size_t i = 0; i < host_len; i++)
        buf[i] = lower(host[i]);

    const tg_sni_entry_t *e = &sni->_entries[probe(sni->_entries, sni->_cap, buf, host_len, false,
                                                   hash_key(buf, host_len, false))];
    if (e->name != NULL)
        return e->slot;

    /* "*.example.com" stands for exactly one non-empty leftmost label. */
    const char *dot = memchr(buf, '.', host_len);
    if (dot == NULL || dot == buf || dot + 1 == buf + host_len)
        return 0;
    const char *rest = dot + 1;
    size_t rest_len = host_len - (size_t)(rest - buf);
    e = &sni->_entries[probe(sni->_entries, sni->_cap, rest, rest_len, true,
                             hash_key(rest, rest_len, true))];
    return e->name != NULL ? e->slot : 0;
}

void tg_sni_free(tg_sni_t *sni)
{
    if (sni == NULL)
        return;
    free(sni->slots);
    free(sni->_entries);
    memset(sni, 0, sizeof(*sni));
}
