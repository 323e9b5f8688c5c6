/* Pooled fixed-size buffers: a connection borrows a block only while it has bytes in
 * flight, which keeps idle keep-alive connections small. */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "tollgate/core.h"
#include "tollgate/loop.h"

#define FREE_BUFS_MAX 256

void tg_loop_init(tg_loop_t *loop, struct event_base *base, unsigned id)
{
    memset(loop, 0, sizeof(*loop));
    loop->base = base;
    loop->id = id;
}

void tg_loop_destroy(tg_loop_t *loop)
{
    for (size_t i = 0; i < loop->_nfree; i++)
        free(loop->_free_bufs[i]);
    free(loop->_free_bufs);
    loop->_free_bufs = NULL;
    loop->_nfree = loop->_free_cap = 0;
}

const struct timeval *tg_loop_timeout(tg_loop_t *loop, uint64_t ms)
{
    for (size_t i = 0; i < loop->_ntimeouts; i++)
        if (loop->_timeouts[i].ms == ms)
            return loop->_timeouts[i].tv;
    struct timeval plain = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    const struct timeval *tv = event_base_init_common_timeout(loop->base, &plain);
    if (tv == NULL || loop->_ntimeouts == TG_LOOP_TIMEOUTS_MAX) {
        /* Past a handful of distinct durations (a reload-happy config), fall back to a
         * plain heap timer: correct, only slower. */
        static _Thread_local struct timeval spare;
        spare = plain;
        return &spare;
    }
    loop->_timeouts[loop->_ntimeouts].ms = ms;
    loop->_timeouts[loop->_ntimeouts].tv = tv;
    loop->_ntimeouts++;
    return tv;
}

static char *block_get(tg_loop_t *loop)
{
    if (loop->_nfree > 0)
        return loop->_free_bufs[--loop->_nfree];
    return tg_malloc(TG_BUF_SIZE);
}

static void block_put(tg_loop_t *loop, char *block)
{
    if (loop->_nfree == FREE_BUFS_MAX) {
        free(block);
        return;
    }
    if (loop->_nfree == loop->_free_cap) {
        loop->_free_cap = loop->_free_cap ? loop->_free_cap * 2 : 16;
        loop->_free_bufs = tg_realloc(loop->_free_bufs, loop->_free_cap * sizeof(void *));
    }
    loop->_free_bufs[loop->_nfree++] = block;
}

static void compact(tg_buf_t *b)
{
    memmove(b->data, b->data + b->start, b->end - b->start);
    b->end -= b->start;
    b->start = 0;
}

size_t tg_buf_reserve(tg_loop_t *loop, tg_buf_t *b)
{
    if (b->data == NULL) {
        b->data = block_get(loop);
        b->start = b->end = 0;
        b->cap = TG_BUF_SIZE;
    } else if (b->end == b->cap && b->start > 0) {
        compact(b);
    }
    return b->cap - b->end;
}

void tg_buf_grow(tg_loop_t *loop, tg_buf_t *b, size_t cap)
{
    tg_buf_reserve(loop, b);
    if (cap <= b->cap)
        return;
    char *data = tg_malloc(cap);
    memcpy(data, b->data + b->start, b->end - b->start);
    b->end -= b->start;
    b->start = 0;
    if (b->cap == TG_BUF_SIZE)
        block_put(loop, b->data);
    else
        free(b->data);
    b->data = data;
    b->cap = cap;
}

size_t tg_buf_append(tg_loop_t *loop, tg_buf_t *b, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    size_t room = tg_buf_reserve(loop, b);
    if (room < len && b->start > 0) {
        compact(b);
        room = b->cap - b->end;
    }
    size_t n = len < room ? len : room;
    memcpy(b->data + b->end, data, n);
    b->end += n;
    return n;
}

void tg_buf_consume(tg_loop_t *loop, tg_buf_t *b, size_t n)
{
    b->start += n;
    if (b->start >= b->end)
        tg_buf_release(loop, b);
}

void tg_buf_release(tg_loop_t *loop, tg_buf_t *b)
{
    if (b->data != NULL) {
        if (b->cap == TG_BUF_SIZE)
            block_put(loop, b->data);
        else
            free(b->data);
    }
    b->data = NULL;
    b->start = b->end = b->cap = 0;
}
