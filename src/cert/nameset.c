/* Name hashing and the name set of the cert module: duplicate SANs and "same names" checks
 * in time linear in the names, whatever a certificate lists. */
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/rand.h>

#include "cert_internal.h"

/* 16 bytes: a big set is probed at random, so its size in cache lines is its speed. */
struct tg__nameset_entry_s {
    const char *name; /* NULL: empty */
    uint32_t len;
    uint32_t tag; /* the high half of the hash, compared before the names */
};

static char lower(char ch)
{
    return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

uint64_t tg__name_seed(void)
{
    uint64_t seed;
    /* Without randomness the tables still work; only collisions become predictable. */
    if (RAND_bytes((unsigned char *)&seed, sizeof(seed)) != 1) {
        ERR_clear_error(); /* not to surface in the next load's or connection's messages */
        seed = 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)&seed;
    }
    return seed;
}

uint64_t tg__name_hash(const char *s, size_t len, uint64_t seed)
{
    uint64_t h = 0xcbf29ce484222325ull ^ seed;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)lower(s[i]);
        h *= 0x100000001b3ull;
    }
    return h;
}

bool tg__name_eq(const char *a, const char *b, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (lower(a[i]) != lower(b[i]))
            return false;
    }
    return true;
}

int tg__nameset_init(tg__nameset_t *set, size_t max_names)
{
    memset(set, 0, sizeof(*set));
    size_t cap = 8;
    while (cap < max_names || cap - max_names < max_names) {
        if (cap > SIZE_MAX / 2 / sizeof(tg__nameset_entry_t))
            return -1;
        cap <<= 1;
    }
    set->_entries = calloc(cap, sizeof(*set->_entries));
    if (set->_entries == NULL)
        return -1;
    set->_cap = cap;
    set->_max = max_names;
    set->_seed = tg__name_seed();
    return 0;
}

/* The entry holding the name, or the empty one where it would go. The set is at most half
 * full, so the probe ends. */
static tg__nameset_entry_t *probe(const tg__nameset_t *set, const char *name, size_t len,
                                  uint64_t h)
{
    size_t mask = set->_cap - 1;
    uint32_t tag = (uint32_t)(h >> 32);
    for (size_t i = tg__name_home(h, set->_cap);; i = (i + 1) & mask) {
        tg__nameset_entry_t *e = &set->_entries[i];
        if (e->name == NULL || (e->tag == tag && e->len == len && tg__name_eq(e->name, name, len)))
            return e;
    }
}

int tg__nameset_add(tg__nameset_t *set, const char *name, size_t len)
{
    if (set->_entries == NULL)
        return -1;
    if (name == NULL)
        name = ""; /* NULL marks an empty entry */
    if (len > UINT32_MAX)
        return -1; /* no DNS name, and no certificate we read, is that long */
    uint64_t h = tg__name_hash(name, len, set->_seed);
    tg__nameset_entry_t *e = probe(set, name, len, h);
    if (e->name != NULL)
        return 0;
    if (set->n == set->_max)
        return -1;
    *e = (tg__nameset_entry_t){.name = name, .len = (uint32_t)len, .tag = (uint32_t)(h >> 32)};
    set->n++;
    return 1;
}

bool tg__nameset_has(const tg__nameset_t *set, const char *name, size_t len)
{
    if (set->_entries == NULL)
        return false;
    if (name == NULL)
        name = "";
    if (len > UINT32_MAX)
        return false;
    return probe(set, name, len, tg__name_hash(name, len, set->_seed))->name != NULL;
}

void tg__nameset_free(tg__nameset_t *set)
{
    free(set->_entries);
    memset(set, 0, sizeof(*set));
}
