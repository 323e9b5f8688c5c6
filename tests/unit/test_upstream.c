/* Unit tests for upstream: the failure verdicts of SPEC §5 (what counts against a server,
 * where a request may go again), and the pool's connections as a holder sees them
 * (connect, reuse, the stale-connection hint, the timers). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tollgate/config.h"
#include "tollgate/core.h"
#include "tollgate/upstream.h"
#include "unit.h"

typedef struct world_s {
    tg_config_t *cfg;
    tg_backend_t *backends;
    tg_backend_t *b;
} world_t;

/* A backend "app" with the servers given and max_fails 1, so one counted failure shows. */
static world_t *world_new(const char *servers, const char *extra)
{
    world_t *w = calloc(1, sizeof(*w));
    char yaml[1024];
    snprintf(yaml, sizeof(yaml),
             "version: 1\nbackends:\n  app:\n    servers: [%s]\n    max_fails: 1\n"
             "    fail_timeout: 30s\n%s",
             servers, extra);
    w->cfg = unit_config(yaml);
    w->backends = tg_backends_new(w->cfg);
    w->b = &w->backends[0];
    return w;
}

static void world_free(world_t *w)
{
    tg_backends_free(w->backends, w->cfg->nbackends);
    tg_config_free(w->cfg);
    free(w);
}

static bool out(const world_t *w, size_t i)
{
    return !tg_backend_server_usable(&w->b->servers[i], tg_now_ms());
}

#define TWO "\"127.0.0.1:1\", \"127.0.0.1:2\""

/* ---- verdicts ----------------------------------------------------------------------------- */

static void test_connect_refused_counts_and_goes_elsewhere(void **state)
{
    world_t *w = world_new(TWO, "");
    tg_up_attempt_t a = {0};
    tg_upstream_server_t *s = &w->b->servers[0];
    assert_int_equal(tg_upstream_verdict(w->b, s, NULL, TG_UP_FAIL_CONNECT, ECONNREFUSED, &a),
                     TG_UP_ELSEWHERE);
    assert_true(out(w, 0));
    assert_true(a.tried == tg_backend_server_bit(w->b, s));
    /* The second server fails too: nowhere left. Both are out now, and yet a new request
     * still gets one of them (no server passes its checks worse than a passive verdict). */
    assert_int_equal(
        tg_upstream_verdict(w->b, &w->b->servers[1], NULL, TG_UP_FAIL_CONNECT, ECONNREFUSED, &a),
        TG_UP_GIVE_UP);
    tg_upstream_server_t *picked = tg_backend_pick(w->b, 0);
    assert_non_null(picked);
    tg_backend_done(picked);
    world_free(w);
}

static void test_local_shortage_counts_nothing(void **state)
{
    static const int errs[] = {EMFILE, ENFILE, ENOBUFS, ENOMEM, EADDRNOTAVAIL};
    for (size_t i = 0; i < TG_ARRAY_SIZE(errs); i++) {
        world_t *w = world_new(TWO, "");
        tg_up_attempt_t a = {0};
        assert_int_equal(
            tg_upstream_verdict(w->b, &w->b->servers[0], NULL, TG_UP_FAIL_CONNECT, errs[i], &a),
            TG_UP_GIVE_UP);
        assert_false(out(w, 0));
        world_free(w);
    }
}

static void test_the_only_server_is_never_out(void **state)
{
    world_t *w = world_new("\"127.0.0.1:1\"", "");
    tg_up_attempt_t a = {0};
    assert_int_equal(
        tg_upstream_verdict(w->b, &w->b->servers[0], NULL, TG_UP_FAIL_CONNECT, ETIMEDOUT, &a),
        TG_UP_GIVE_UP);
    assert_false(out(w, 0));
    world_free(w);
}

static void test_silence_counts_and_is_not_resent(void **state)
{
    world_t *w = world_new(TWO, "");
    tg_up_attempt_t a = {.sent = true, .req_done = true, .resendable = true};
    assert_int_equal(tg_upstream_verdict(w->b, &w->b->servers[0], NULL, TG_UP_FAIL_SILENT, 0, &a),
                     TG_UP_GIVE_UP);
    assert_true(out(w, 0));
    world_free(w);
}

static void test_unusable_answer_counts_nothing(void **state)
{
    world_t *w = world_new(TWO, "");
    tg_up_attempt_t a = {.sent = true, .req_done = true, .resendable = true};
    assert_int_equal(tg_upstream_verdict(w->b, &w->b->servers[0], NULL, TG_UP_FAIL_UNUSABLE, 0, &a),
                     TG_UP_GIVE_UP);
    assert_false(out(w, 0));
    assert_int_equal(a.servers_tried, 0);
    world_free(w);
}

/* A reset after a POST reached the server: counted, never sent twice. */
static void test_broken_post_is_not_resent(void **state)
{
    world_t *w = world_new(TWO, "");
    tg_up_attempt_t a = {.sent = true, .req_done = true, .resendable = false};
    assert_int_equal(
        tg_upstream_verdict(w->b, &w->b->servers[0], NULL, TG_UP_FAIL_BROKEN, ECONNRESET, &a),
        TG_UP_GIVE_UP);
    assert_true(out(w, 0));
    world_free(w);
}

/* A GET kept whole may go to the other server; any request nothing of which was sent may. */
static void test_broken_resendable_goes_elsewhere(void **state)
{
    for (int unsent = 0; unsent < 2; unsent++) {
        world_t *w = world_new(TWO, "");
        tg_up_attempt_t a = {.sent = !unsent, .req_done = true, .resendable = !unsent};
        assert_int_equal(
            tg_upstream_verdict(w->b, &w->b->servers[0], NULL, TG_UP_FAIL_BROKEN, ECONNRESET, &a),
            TG_UP_ELSEWHERE);
        world_free(w);
    }
}

/* A backend that drops a request its client is slow to send: the client's doing. */
static void test_broken_while_client_sends_counts_nothing(void **state)
{
    world_t *w = world_new(TWO, "");
    tg_up_attempt_t a = {.sent = true, .req_done = false};
    assert_int_equal(
        tg_upstream_verdict(w->b, &w->b->servers[0], NULL, TG_UP_FAIL_BROKEN, ECONNRESET, &a),
        TG_UP_GIVE_UP);
    assert_false(out(w, 0));
    world_free(w);
}

/* ---- the pool ------------------------------------------------------------------------------ */

typedef struct holder_s {
    int events[8];
    int errs[8];
    size_t n;
} holder_t;

static void on_up(tg_upconn_t *uc, tg_up_event_t ev, int err, void *arg)
{
    holder_t *h = arg;
    (void)uc;
    if (h->n < TG_ARRAY_SIZE(h->events)) {
        h->events[h->n] = (int)ev;
        h->errs[h->n++] = err;
    }
}

static void spin(struct event_base *base, int rounds)
{
    for (int i = 0; i < rounds; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
}

/* A connection comes back from the pool marked as maybe stale (a failure before any
 * answer may be the server's idle close, not its death), and a server that never answers
 * a waiting holder is reported silent after response_timeout. */
static void test_pooled_connection_and_silence(void **state)
{
    uint16_t port;
    int lfd = unit_listen_any(&port);
    char servers[64];
    snprintf(servers, sizeof(servers), "\"127.0.0.1:%u\"", port);
    world_t *w = world_new(servers, "    response_timeout: 1ms\n");
    struct event_base *base = event_base_new();
    tg_loop_t loop;
    tg_loop_init(&loop, base, 0);
    holder_t h = {0};

    tg_upconn_t *uc = tg_upconn_get(&loop, w->b, &w->b->servers[0], on_up, &h);
    assert_non_null(uc);
    assert_false(tg_upconn_maybe_stale(uc));
    for (int i = 0; i < 100 && h.n == 0; i++)
        spin(base, 1);
    if (!tg_upconn_connected(uc)) { /* loopback connects may finish at once */
        assert_int_equal(h.n, 1);
        assert_int_equal(h.events[0], TG_UP_READY);
    }
    assert_true(tg_upconn_connected(uc));
    tg_upconn_release(uc, true);

    h.n = 0;
    tg_upconn_t *again = tg_upconn_get(&loop, w->b, &w->b->servers[0], on_up, &h);
    assert_ptr_equal(again, uc);
    assert_true(tg_upconn_connected(again));
    assert_true(tg_upconn_maybe_stale(again));

    tg_upconn_wait(again, true);
    for (int i = 0; i < 200 && h.n == 0; i++) {
        usleep(1000);
        spin(base, 1);
    }
    assert_int_equal(h.n, 1);
    assert_int_equal(h.events[0], TG_UP_SILENT);
    tg_upconn_release(again, false);

    tg_uppool_destroy(&loop);
    tg_loop_destroy(&loop);
    event_base_free(base);
    close(lfd);
    world_free(w);
}

/* A refused connect is reported as such, with its errno. */
static void test_connect_failure_is_reported(void **state)
{
    uint16_t port;
    int lfd = unit_listen_any(&port);
    close(lfd); /* nobody listens there now */
    char servers[64];
    snprintf(servers, sizeof(servers), "\"127.0.0.1:%u\"", port);
    world_t *w = world_new(servers, "");
    struct event_base *base = event_base_new();
    tg_loop_t loop;
    tg_loop_init(&loop, base, 0);
    holder_t h = {0};
    tg_upconn_t *uc = tg_upconn_get(&loop, w->b, &w->b->servers[0], on_up, &h);
    if (uc != NULL) {
        for (int i = 0; i < 100 && h.n == 0; i++)
            spin(base, 1);
        assert_int_equal(h.n, 1);
        assert_int_equal(h.events[0], TG_UP_CONNECT_FAILED);
        assert_int_equal(h.errs[0], ECONNREFUSED);
        tg_upconn_release(uc, true); /* never pooled: it never connected */
    } else {
        assert_int_equal(errno, ECONNREFUSED);
    }
    tg_uppool_destroy(&loop);
    tg_loop_destroy(&loop);
    event_base_free(base);
    world_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_refused_counts_and_goes_elsewhere),
        cmocka_unit_test(test_local_shortage_counts_nothing),
        cmocka_unit_test(test_the_only_server_is_never_out),
        cmocka_unit_test(test_silence_counts_and_is_not_resent),
        cmocka_unit_test(test_unusable_answer_counts_nothing),
        cmocka_unit_test(test_broken_post_is_not_resent),
        cmocka_unit_test(test_broken_resendable_goes_elsewhere),
        cmocka_unit_test(test_broken_while_client_sends_counts_nothing),
        cmocka_unit_test(test_pooled_connection_and_silence),
        cmocka_unit_test(test_connect_failure_is_reported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
