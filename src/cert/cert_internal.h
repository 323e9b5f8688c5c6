/* cert internals shared by the loader (load.c), the facts reader (facts.c) and the SNI table
 * (sni.c); not part of the contract in include/tollgate/cert.h. */
#ifndef TOLLGATE_CERT_INTERNAL_H
#define TOLLGATE_CERT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "tollgate/cert.h"

/* Fill the facts of c (names, key type and bits, dates, expired, sha256, subject, issuer)
 * from x. Returns 0, or -1 with a short reason in *why. */
int tg__cert_facts(tg_cert_t *c, X509 *x, time_t now, const char **why);

/* Key type and size of a public or private key (NULL gives OTHER and 0 bits). */
tg_key_type_t tg__cert_key_type(const EVP_PKEY *pkey, int *bits);

/* An ASN1_TIME as seconds since the epoch (UTC). Returns 0 or -1. */
int tg__cert_time(const ASN1_TIME *t, time_t *out);

/* "YYYY-MM-DD" (UTC) into out[11]. */
void tg__cert_format_date(time_t t, char out[11]);

/* ---- name hashing (nameset.c) ------------------------------------------------------------ */

/* A random seed for one table. Names come from certificates, which a tenant may have chosen;
 * with a seed of its own per table, names made to collide under one seed do not pile up
 * in the next table, so building and probing stay linear in the names. */
uint64_t tg__name_seed(void);

/* FNV-1a of the ASCII-lowercased bytes, started from the seed. */
uint64_t tg__name_hash(const char *s, size_t len, uint64_t seed);

/* The first probe position of a hash in a table of cap entries (a power of two, at least
 * 2): the high bits of a Fibonacci multiply, which depend on every bit of the hash, where
 * FNV's low bits depend only on the low bits of each byte. */
static inline size_t tg__name_home(uint64_t h, size_t cap)
{
    return (size_t)((h * 0x9e3779b97f4a7c15ull) >> (64 - __builtin_ctzll((unsigned long long)cap)));
}

/* ASCII case-insensitive equality of len bytes. */
bool tg__name_eq(const char *a, const char *b, size_t len);

/* ---- name set (nameset.c) ---------------------------------------------------------------- */

/* A set of names compared without ASCII case: how the loader drops duplicate SANs and the
 * SNI table compares two certificates' names in time linear in the names, not quadratic.
 * Sized once for the most names it will hold, so it never grows; it keeps pointers to the
 * names, which must outlive it. */
typedef struct tg__nameset_entry_s tg__nameset_entry_t;

typedef struct tg__nameset_s {
    size_t n; /* distinct names held */
    tg__nameset_entry_t *_entries;
    size_t _cap; /* a power of two, at least twice _max, so a probe always finds a hole */
    size_t _max;
    uint64_t _seed;
} tg__nameset_t;

/* Room for max_names names (0 is allowed). Returns 0, or -1 when it cannot be allocated. */
int tg__nameset_init(tg__nameset_t *set, size_t max_names);
/* Returns 1 when the name was added, 0 when it was there already, -1 when the set already
 * holds max_names names. */
int tg__nameset_add(tg__nameset_t *set, const char *name, size_t len);
bool tg__nameset_has(const tg__nameset_t *set, const char *name, size_t len);
/* Idempotent; the set may be reused after another tg__nameset_init. */
void tg__nameset_free(tg__nameset_t *set);

#endif
