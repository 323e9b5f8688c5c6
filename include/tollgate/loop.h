/* loop: what one worker thread owns and every data-path module may use: its event base,
 * its buffer pool and its upstream connection pool. Nothing in here is shared between
 * threads, so nothing in here is locked. */
#ifndef TOLLGATE_LOOP_H
#define TOLLGATE_LOOP_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct timeval;
struct tg_uppool_s;

#define TG_LOOP_TIMEOUTS_MAX 16

#define TG_BUF_SIZE 16384 /* one TLS record's worth of plaintext */

/* A byte buffer of one pool block. data is NULL while empty, so an idle connection holds
 * no buffer memory at all. */
typedef struct tg_buf_s {
    char *data;
    size_t start; /* first unread byte */
    size_t end;   /* one past the last byte */
    size_t cap;   /* TG_BUF_SIZE for a pool block; more after tg_buf_grow */
} tg_buf_t;

typedef struct tg_loop_s {
    struct event_base *base;
    unsigned id;
    struct tg_uppool_s *uppool;
    struct {
        uint64_t ms;
        const struct timeval *tv;
    } _timeouts[TG_LOOP_TIMEOUTS_MAX]; /* libevent common timeouts by duration */
    size_t _ntimeouts;
    void **_free_bufs; /* a stack of TG_BUF_SIZE blocks kept for reuse */
    size_t _nfree;
    size_t _free_cap;
} tg_loop_t;

void tg_loop_init(tg_loop_t *loop, struct event_base *base, unsigned id);
void tg_loop_destroy(tg_loop_t *loop);
/* The timeval to arm a timer of ms with. Timers of one duration share a libevent "common
 * timeout" queue, so re-arming one per request is O(1) instead of a heap update. */
const struct timeval *tg_loop_timeout(tg_loop_t *loop, uint64_t ms);

static inline size_t tg_buf_len(const tg_buf_t *b)
{
    return b->end - b->start;
}
static inline char *tg_buf_head(const tg_buf_t *b)
{
    return b->data + b->start;
}
/* Make room for writing: allocates the block if needed and moves unread bytes to the
 * front when the tail is full. Returns the free space after end. */
size_t tg_buf_reserve(tg_loop_t *loop, tg_buf_t *b);
/* Make the buffer able to hold cap bytes in all (a request head up to max_header_bytes);
 * such a block is freed, not pooled, on release. */
void tg_buf_grow(tg_loop_t *loop, tg_buf_t *b, size_t cap);
/* Append as much of data as fits; returns the bytes taken. */
size_t tg_buf_append(tg_loop_t *loop, tg_buf_t *b, const void *data, size_t len);
/* Drop n bytes from the front; an emptied buffer goes back to the pool. */
void tg_buf_consume(tg_loop_t *loop, tg_buf_t *b, size_t n);
/* Give the block back whatever it holds. */
void tg_buf_release(tg_loop_t *loop, tg_buf_t *b);

#endif
