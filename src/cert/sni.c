/* SNI name table: host name -> slot (at most one certificate per key type). Built once per
 * listener and generation, then only read, so every worker looks up without a lock. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cert_internal.h"

/* The longest DNS name (RFC 1035); a longer SNI cannot name any certificate. */
#define MAX_NAME 255

/* Exact names and wildcards live in one table under distinct keys: "*.example.com" is
 * stored as "example.com" with wildcard set, so both lookups are one probe sequence each
 * and the wildcard one needs no string building. 16 bytes an entry: a table of tens of
 * thousands of names is probed at random, so its size in cache lines is its speed. */
struct tg_sni_entry_s {
    uint32_t key;  /* offset of the key in the arena after the entries */
    uint32_t tag;  /* the high half of the hash, compared before the key */
    uint32_t slot; /* while building: the name's number among the distinct ones */
    uint16_t len;  /* 0: empty (keys are never empty); lowercased, no trailing dot, no "*." */
    bool wildcard;
};

static char lower(char ch)
{
    return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

/* The wildcard flag changes the seed so "*.a.b" and "a.b" probe apart. */
static uint64_t hash_key(const char *s, size_t len, bool wildcard, uint64_t seed)
{
    return tg__name_hash(s, len, wildcard ? seed ^ 0x4f1bbcdcbfa53e0bull : seed);
}

/* The index of the entry for a key, or of the empty entry where it would go. The table is
 * at most half full, so the probe always ends. */
static size_t probe(const tg_sni_entry_t *entries, size_t cap, const char *key, size_t len,
                    bool wildcard, uint64_t h)
{
    const char *arena = (const char *)(entries + cap);
    size_t mask = cap - 1;
    uint32_t tag = (uint32_t)(h >> 32);
    for (size_t i = tg__name_home(h, cap);; i = (i + 1) & mask) {
        const tg_sni_entry_t *e = &entries[i];
        if (e->len == 0 || (e->tag == tag && e->wildcard == wildcard && e->len == len &&
                            memcmp(arena + e->key, key, len) == 0))
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

/* A certificate name as same_names compares it: one trailing dot dropped (case is the
 * set's business). */
static size_t bare_len(const char *name)
{
    size_t len = strlen(name);
    return len > 0 && name[len - 1] == '.' ? len - 1 : len;
}

/* Whether a and b carry the same names, ignoring ASCII case, one trailing dot, order and
 * repeats. A certificate may carry tens of thousands of names, and comparing every name of
 * one with every name of the other took seconds per reload, so: an RSA and an ECDSA
 * certificate made from one request list their names alike, which one pass settles; any
 * other order goes through sets, where every name of b in a, and as many distinct names in
 * b as in a, means the same names. Returns 1 or 0, or -1 on allocation failure. */
static int same_names(const tg_cert_t *a, const tg_cert_t *b)
{
    bool alike = a->nnames == b->nnames;
    for (size_t i = 0; i < a->nnames && alike; i++) {
        size_t len = bare_len(a->names[i]);
        alike = bare_len(b->names[i]) == len && tg__name_eq(a->names[i], b->names[i], len);
    }
    if (alike)
        return 1;

    tg__nameset_t in_a, in_b;
    if (tg__nameset_init(&in_a, a->nnames) != 0)
        return -1;
    if (tg__nameset_init(&in_b, b->nnames) != 0) {
        tg__nameset_free(&in_a);
        return -1;
    }
    for (size_t i = 0; i < a->nnames; i++)
        tg__nameset_add(&in_a, a->names[i], bare_len(a->names[i]));
    int same = 1;
    for (size_t i = 0; i < b->nnames && same; i++) {
        size_t len = bare_len(b->names[i]);
        if (tg__nameset_has(&in_a, b->names[i], len))
            tg__nameset_add(&in_b, b->names[i], len);
        else
            same = 0;
    }
    if (in_a.n != in_b.n)
        same = 0;
    tg__nameset_free(&in_a);
    tg__nameset_free(&in_b);
    return same;
}

/* Candidates arrive in config order, so the first of each key type stays. */
static void offer(tg_sni_slot_t *slot, const tg_cert_t *c)
{
    if (c->key_type == TG_KEY_EC && slot->ec == NULL)
        slot->ec = c;
    else if (c->key_type == TG_KEY_RSA && slot->rsa == NULL)
        slot->rsa = c;
}

/* The default slot: the default certificate, plus the first certificate of another key type
 * whose names are the default's. Returns 0, or -1 on allocation failure. */
static int default_slot(tg_sni_slot_t *slot, const tg_cert_t *const *certs, size_t ncerts)
{
    offer(slot, certs[0]);
    for (size_t i = 1; i < ncerts; i++) {
        if (certs[i]->key_type == certs[0]->key_type || certs[i]->key_type == TG_KEY_OTHER)
            continue;
        int same = same_names(certs[0], certs[i]);
        if (same < 0)
            return -1;
        if (same) {
            offer(slot, certs[i]);
            break;
        }
    }
    return 0;
}

/* The certificates' addresses are ours, not a tenant's choice: no seed needed. */
static uint64_t pair_hash(const tg_sni_slot_t *p)
{
    return (uint64_t)(uintptr_t)p->ec * 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)p->rsa;
}

/* The slot of a pair, made when it is new, found through slot_of: cap positions holding
 * slot + 1, or 0 when empty. There is at most a slot per distinct name plus the default,
 * so at most cap / 2 + 1 positions are taken and a probe ends. A table, not a search of
 * the slots: a listener with thousands of single-name certificates has thousands. */
static uint32_t slot_for(tg_sni_slot_t *slots, size_t *nslots, uint32_t *slot_of, size_t cap,
                         const tg_sni_slot_t *p)
{
    size_t mask = cap - 1;
    for (size_t i = tg__name_home(pair_hash(p), cap);; i = (i + 1) & mask) {
        if (slot_of[i] == 0) {
            slots[*nslots] = *p;
            slot_of[i] = (uint32_t)(*nslots + 1);
            return (uint32_t)(*nslots)++;
        }
        const tg_sni_slot_t *s = &slots[slot_of[i] - 1];
        if (s->ec == p->ec && s->rsa == p->rsa)
            return slot_of[i] - 1;
    }
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
    /* Keys are found by 32-bit offsets; no listener's certificates come near 4 GiB. */
    if (bytes > UINT32_MAX)
        return -1;
    uint64_t seed = tg__name_seed();

    /* One block holds the entries and, after them, the key strings at their offsets. */
    tg_sni_slot_t *slots = calloc(nnames + 1, sizeof(*slots));
    tg_sni_entry_t *entries = cap ? calloc(1, cap * sizeof(*entries) + bytes) : NULL;
    /* By distinct name, in config order: the candidates of each name. */
    tg_sni_slot_t *pairs = cap ? calloc(nnames, sizeof(*pairs)) : NULL;
    uint32_t *slot_of = cap ? calloc(cap, sizeof(*slot_of)) : NULL;
    size_t *order = calloc(nnames + 1, sizeof(*order));
    if (slots == NULL || order == NULL ||
        (cap && (entries == NULL || pairs == NULL || slot_of == NULL)))
        goto fail;
    if (ncerts > 0 && default_slot(&slots[0], certs, ncerts) != 0)
        goto fail;

    char *arena = (char *)(entries + cap), *next = arena;
    size_t ndistinct = 0;
    for (size_t i = 0; i < ncerts; i++) {
        for (size_t j = 0; j < certs[i]->nnames; j++) {
            bool wildcard = false;
            size_t len = make_key(certs[i]->names[j], next, &wildcard);
            if (len == 0)
                continue;
            uint64_t h = hash_key(next, len, wildcard, seed);
            size_t at = probe(entries, cap, next, len, wildcard, h);
            tg_sni_entry_t *e = &entries[at];
            if (e->len == 0) {
                *e = (tg_sni_entry_t){.key = (uint32_t)(next - arena),
                                      .tag = (uint32_t)(h >> 32),
                                      .slot = (uint32_t)ndistinct,
                                      .len = (uint16_t)len,
                                      .wildcard = wildcard};
                next += len + 1;
                order[ndistinct++] = at;
            }
            offer(&pairs[e->slot], certs[i]);
        }
    }

    /* Names in config order, so slot numbers are stable across identical builds; a name
     * whose certificates are the default slot's resolves to the default slot itself. */
    size_t nslots = 0;
    if (cap > 0)
        slot_for(slots, &nslots, slot_of, cap, &slots[0]);
    else
        nslots = 1;
    for (size_t k = 0; k < ndistinct; k++)
        entries[order[k]].slot = slot_for(slots, &nslots, slot_of, cap, &pairs[k]);
    free(pairs);
    free(slot_of);
    free(order);

    sni->slots = slots;
    sni->nslots = nslots;
    sni->_entries = entries;
    sni->_cap = cap;
    sni->_seed = seed;
    return 0;

fail:
    free(slots);
    free(entries);
    free(pairs);
    free(slot_of);
    free(order);
    return -1;
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
                                                   hash_key(buf, host_len, false, sni->_seed))];
    if (e->len != 0)
        return e->slot;

    /* "*.example.com" stands for exactly one non-empty leftmost label. */
    const char *dot = memchr(buf, '.', host_len);
    if (dot == NULL || dot == buf || dot + 1 == buf + host_len)
        return 0;
    const char *rest = dot + 1;
    size_t rest_len = host_len - (size_t)(rest - buf);
    e = &sni->_entries[probe(sni->_entries, sni->_cap, rest, rest_len, true,
                             hash_key(rest, rest_len, true, sni->_seed))];
    return e->len != 0 ? e->slot : 0;
}

void tg_sni_free(tg_sni_t *sni)
{
    if (sni == NULL)
        return;
    free(sni->slots);
    free(sni->_entries);
    memset(sni, 0, sizeof(*sni));
}
