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

/* SipHash-1-3 under a process key: our ids are AES output, but a client picks its first
 * DCID itself, and with an unkeyed hash a flood of Initials could all land in one chain
 * that every later datagram walks. */
#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

static size_t hash(const uint64_t key[2], const uint8_t *in, size_t len)
{
    uint64_t v0 = 0x736f6d6570736575ull ^ key[0], v1 = 0x646f72616e646f6dull ^ key[1];
    uint64_t v2 = 0x6c7967656e657261ull ^ key[0], v3 = 0x7465646279746573ull ^ key[1];
    uint64_t b = (uint64_t)len << 56, m;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        memcpy(&m, in + i, 8);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    for (size_t k = 0; i + k < len; k++)
        b |= (uint64_t)in[i + k] << (8 * k);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return (size_t)(v0 ^ v1 ^ v2 ^ v3);
}

void tg__cid_table_init(tg__cid_table_t *t)
{
    const tg__quic_keys_t *k = tg__quic_keys();
    t->key[0] = k != NULL ? k->table_key[0] : 0;
    t->key[1] = k != NULL ? k->table_key[1] : 0;
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
    tg__cid_entry_t **p = &t->buckets[hash(t->key, cid, len) & (t->nbuckets - 1)];
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
            size_t k = hash(t->key, e->cid, e->len) & (n - 1);
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
