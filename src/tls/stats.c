/* Handshake counters by listener id, for the whole life of the process: a reload makes
 * new contexts but the same listener keeps counting into the same place. */
#include <pthread.h>
#include <string.h>

#include "tollgate/tls.h"

/* Entries are added on the control path (generation builds) and never removed: there are
 * as many as listener ids ever configured, and a worker may still count into one whose
 * listener a reload just removed. */
static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;
static tg_tls_stats_t *stats_head;
static tg_tls_stats_t **stats_tail = &stats_head;

tg_tls_stats_t *tg_tls_stats_get(const char *listener)
{
    pthread_mutex_lock(&stats_lock);
    tg_tls_stats_t *s;
    for (s = stats_head; s != NULL; s = s->_next)
        if (strcmp(s->listener, listener) == 0)
            break;
    if (s == NULL) {
        s = tg_calloc(1, sizeof(*s));
        s->listener = tg_strdup(listener);
        atomic_init(&s->handshakes, 0);
        for (size_t i = 0; i < TG_TLS_FAIL_COUNT; i++)
            atomic_init(&s->failures[i], 0);
        *stats_tail = s;
        stats_tail = &s->_next;
    }
    pthread_mutex_unlock(&stats_lock);
    return s;
}

void tg_tls_stats_each(void (*fn)(const tg_tls_stats_t *stats, void *arg), void *arg)
{
    pthread_mutex_lock(&stats_lock);
    for (const tg_tls_stats_t *s = stats_head; s != NULL; s = s->_next)
        fn(s, arg);
    pthread_mutex_unlock(&stats_lock);
}
