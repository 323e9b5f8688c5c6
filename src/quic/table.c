/* The connection-id table of one worker: every id a client may put in a DCID (the ones we
 * issued, and the client's own first DCID until the handshake is done) to its connection. */
#include <stdlib.h>
#include <string.h>

#include "quic_internal.h"

struct tg__cid_entry_s {
    tg__cid_entry_t *next;
    tg__qconn_t *conn;
    uint8_t len;
    uint8_t cid[NGTCP2_MAX_CIDLEN];
};

/* Our ids are AES output and a client's first DCID is at least 8 random bytes
 * (RFC 9000 §7.2), but a hostile client picks its own: FNV-1a keeps them apart. */
static size_t hash(const uint8_t *cid, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ cid[i]) * 1099511628211ull;
    return (size_t)(h ^ (h >> 32));
}

void tg__cid_table_init(tg__cid_table_t *t)
{
    t->nbuckets = 64;
    t->buckets = tg_calloc(t->nbuckets, sizeof(*t->buckets));
    t->n = 0;
}

void tg__cid_table_free(tg__cid_table_t *t)
{
    for (size_t i = 0; i < t->nbuckets; i++) {
        while (t->buckets[i] != NULL) {
            tg__cid_entry_t *e = t->buckets[i];
            t->buckets[i] = e->next;
            free(e);
        }
    }
    free(t->buckets);
    t->buckets = NULL;
    t->n = 0;
}

static tg__cid_entry_t **slot(const tg__cid_table_t *t, const uint8_t *cid, size_t len)
{
    tg__cid_entry_t **p = &t->buckets[hash(cid, len) & (t->nbuckets - 1)];
    while (*p != NULL && !((*p)->len == len && memcmp((*p)->cid, cid, len) == 0))
        p = &(*p)->next;
    return p;
}

tg__qconn_t *tg__cid_find(const tg__cid_table_t *t, const uint8_t *cid, size_t len)
{
    if (len > NGTCP2_MAX_CIDLEN)
        return NULL;
    tg__cid_entry_t *e = *slot(t, cid, len);
    return e != NULL ? e->conn : NULL;
}

static void grow(tg__cid_table_t *t)
{
    size_t n = t->nbuckets * 2;
    tg__cid_entry_t **b = tg_calloc(n, sizeof(*b));
    for (size_t i = 0; i < t->nbuckets; i++) {
        while (t->buckets[i] != NULL) {
            tg__cid_entry_t *e = t->buckets[i];
            t->buckets[i] = e->next;
            size_t k = hash(e->cid, e->len) & (n - 1);
            e->next = b[k];
            b[k] = e;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
}

void tg__cid_add(tg__cid_table_t *t, const uint8_t *cid, size_t len, tg__qconn_t *c)
{
    if (len > NGTCP2_MAX_CIDLEN)
        return;
    tg__cid_entry_t **p = slot(t, cid, len);
    if (*p != NULL) {
        (*p)->conn = c; /* a client reusing a first DCID: the newest connection owns it */
        return;
    }
    tg__cid_entry_t *e = tg_calloc(1, sizeof(*e));
    e->conn = c;
    e->len = (uint8_t)len;
    memcpy(e->cid, cid, len);
    *p = e;
    if (++t->n > t->nbuckets)
        grow(t);
}

void tg__cid_remove(tg__cid_table_t *t, const uint8_t *cid, size_t len, const tg__qconn_t *c)
{
    if (len > NGTCP2_MAX_CIDLEN)
        return;
    tg__cid_entry_t **p = slot(t, cid, len);
    if (*p == NULL || (*p)->conn != c)
        return;
    tg__cid_entry_t *e = *p;
    *p = e->next;
    free(e);
    t->n--;
}
