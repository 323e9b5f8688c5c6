/* The exchange on its own: a fake frontend (the ops table records what the proxy tells
 * it) and a backend that is a listening socket of this process, driven step by step, so
 * each path from the request to the response and its failures can be forced. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <netinet/in.h>

#include "tollgate/config.h"
#include "tollgate/core.h"
#include "tollgate/http.h"
#include "tollgate/proxy.h"
#include "tollgate/upstream.h"
#include "unit.h"

/* ---- the fake frontend --------------------------------------------------------------- */

typedef struct fake_s {
    int status; /* of send_head; 0 before */
    char body[8192];
    size_t body_len;
    int finished;
    bool ok;
    bool abort_in_head; /* as HTTP/3 does when nghttp3 refuses the HEADERS */
} fake_t;

static fake_t fake;

static void f_send_head(tg_exchange_t *ex, int status, const tg_http_header_t *hs, size_t n,
                        int64_t content_length)
{
    fake.status = status;
    if (fake.abort_in_head)
        tg_exchange_abort(ex);
}

static bool f_send_body(tg_exchange_t *ex, const char *data, size_t len)
{
    if (fake.body_len + len <= sizeof(fake.body)) {
        memcpy(fake.body + fake.body_len, data, len);
        fake.body_len += len;
    }
    return true;
}

static void f_finish(tg_exchange_t *ex, bool ok)
{
    fake.finished++;
    fake.ok = ok;
}

static void f_want_body(tg_exchange_t *ex)
{
}

static const tg_frontend_ops_t fake_ops = {
    .send_head = f_send_head,
    .send_body = f_send_body,
    .finish = f_finish,
    .want_body = f_want_body,
};

/* ---- the world: a loop, a backend socket, a config ------------------------------------ */

typedef struct world_s {
    struct event_base *base;
    tg_loop_t loop;
    int lfd; /* the backend's listening socket */
    int bfd; /* the backend's side of the exchange's connection */
    tg_config_t *cfg;
    tg_backend_t *backends;
    /* a generation of one listener "l" on the backend "app", and a connection on it */
    tg_conf_listener_t lconf;
    tg_listener_rt_t lrt;
    tg_generation_t gen;
    tg_generation_t *current; /* the worker's newest generation: &gen unless a test says */
    tg_proxy_conns_t conns;
    atomic_ulong nconns;
    tg_proxy_conn_t pc;
    tg_exchange_t ex;
} world_t;

/* The world's generations live in the world: the last reference frees nothing. */
static void gen_free(tg_generation_t *g)
{
    (void)g;
}

static const tg_proxy_conn_ops_t no_conn_ops;

/* g: a generation holding one listener "l" (127.0.0.1:443) on backends[0]. */
static void gen_init(tg_generation_t *g, tg_listener_rt_t *l, tg_conf_listener_t *lc,
                     tg_config_t *cfg, tg_backend_t *backends)
{
    lc->id = "l";
    lc->protocol = TG_PROTO_HTTPS;
    struct sockaddr_in *sin = (struct sockaddr_in *)&lc->addr;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(443);
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    lc->addr_len = sizeof(*sin);
    l->conf = lc;
    l->backend = &backends[0];
    atomic_init(&g->refs, 1);
    g->cfg = cfg;
    g->backends = backends;
    g->listeners = l;
    g->nlisteners = 1;
    g->_free = gen_free;
}

/* A world whose backend "app" has the servers given (a %u in servers is the listening
 * socket's port) and the extra backend keys given. */
static world_t *world_new(const char *servers, const char *extra)
{
    world_t *w = calloc(1, sizeof(*w));
    uint16_t port;
    w->lfd = unit_listen_any(&port);
    w->bfd = -1;
    char srv[256];
    snprintf(srv, sizeof(srv), servers, port);
    char yaml[1024];
    snprintf(yaml, sizeof(yaml),
             "version: 1\nbackends:\n  app:\n    servers: [%s]\n    response_timeout: 1s\n%s", srv,
             extra);
    w->cfg = unit_config(yaml);
    w->backends = tg_backends_new(w->cfg);
    w->base = event_base_new();
    tg_loop_init(&w->loop, w->base, 0);
    gen_init(&w->gen, &w->lrt, &w->lconf, w->cfg, w->backends);
    w->current = &w->gen;
    w->conns.loop = &w->loop;
    w->conns.current = &w->current;
    w->conns.process_conns = &w->nconns;
    atomic_init(&w->nconns, 1); /* the connection below, as an acceptor counts it */
    tg_proxy_conn_add(&w->conns, &w->pc, &no_conn_ops, &w->gen, &w->lrt);
    tg_client_info_t *ci = &w->pc.client;
    ci->sni = ci->tls_version = ci->cipher = "";
    strcpy(ci->addr, "127.0.0.1");
    memset(&fake, 0, sizeof(fake));
    tg_accesslog_open(NULL);
    return w;
}

static void world_free(world_t *w)
{
    tg_exchange_abort(&w->ex); /* one a test left running: its upstream goes back */
    tg_proxy_conn_remove(&w->pc);
    assert_int_equal(atomic_load(&w->nconns), 0);
    assert_int_equal(atomic_load(&w->gen.refs), 1); /* nothing kept a reference */
    if (w->bfd >= 0)
        close(w->bfd);
    close(w->lfd);
    tg_uppool_destroy(&w->loop);
    tg_loop_destroy(&w->loop);
    event_base_free(w->base);
    tg_backends_free(w->backends, w->cfg->nbackends);
    tg_config_free(w->cfg);
    free(w);
}

static void spin(world_t *w, int rounds)
{
    for (int i = 0; i < rounds; i++)
        event_base_loop(w->base, EVLOOP_NONBLOCK);
}

/* Start an exchange for the request head text. */
static void start(world_t *w, const char *head)
{
    tg_http_header_t hs[32];
    tg_http_request_t req;
    int status;
    assert_true(tg_http_parse_request(head, strlen(head), &req, hs, 32, &status) > 0);
    w->lrt.backend = &w->backends[0]; /* a test may have replaced them */
    tg_exchange_start(&w->ex, &fake_ops, &w->pc, &req);
}

/* The backend accepts the exchange's connection and reads what came; returns its length. */
static size_t backend_read(world_t *w, char *buf, size_t cap)
{
    spin(w, 4);
    if (w->bfd < 0)
        w->bfd = accept(w->lfd, NULL, NULL);
    assert_true(w->bfd >= 0);
    spin(w, 4);
    ssize_t n = recv(w->bfd, buf, cap - 1, MSG_DONTWAIT);
    buf[n > 0 ? n : 0] = '\0';
    return n > 0 ? (size_t)n : 0;
}

static void backend_send(world_t *w, const char *text)
{
    assert_int_equal(send(w->bfd, text, strlen(text), 0), (ssize_t)strlen(text));
    spin(w, 8);
}

/* ---- tests ---------------------------------------------------------------------------- */

/* HTTP/3 may refuse the response HEADERS and abort the exchange inside send_head; the
 * exchange must not touch its upstream (freed by the abort) afterwards. ASan's test. */
static void test_abort_inside_send_head(void **state)
{
    world_t *w = world_new("\"127.0.0.1:%u\"", "");
    fake.abort_in_head = true;
    start(w, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    char buf[4096];
    assert_true(backend_read(w, buf, sizeof(buf)) > 0);
    backend_send(w, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    assert_int_equal(fake.status, 200);
    assert_int_equal(fake.finished, 0); /* aborted, not finished */
    assert_int_equal(fake.body_len, 0);
    assert_int_equal(w->ex.state, TG_EX_DONE);
    world_free(w);
}

/* The proxy's own answers (a fixed 502 here) go through send_head as well. */
static void test_abort_inside_send_head_of_an_error(void **state)
{
    world_t *w = world_new("\"127.0.0.1:%u\"", "");
    fake.abort_in_head = true;
    start(w, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    char buf[4096];
    assert_true(backend_read(w, buf, sizeof(buf)) > 0);
    backend_send(w, "garbage that is no HTTP\r\n\r\n");
    assert_int_equal(fake.status, 502);
    assert_int_equal(fake.finished, 0);
    world_free(w);
}

static void body_mismatch(size_t declared, const char *body, bool last)
{
    world_t *w = world_new("\"127.0.0.1:%u\"", "");
    char head[128];
    snprintf(head, sizeof(head), "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %zu\r\n\r\n",
             declared);
    start(w, head);
    size_t took = tg_exchange_write_body(&w->ex, body, strlen(body), last);
    assert_int_equal(took, strlen(body));
    assert_int_equal(fake.status, 400);
    assert_int_equal(fake.finished, 1);
    world_free(w);
}

/* The exchange enforces Content-Length itself, whatever the frontend feeds it. */
static void test_body_longer_than_content_length(void **state)
{
    body_mismatch(5, "0123456789", false);
}

static void test_body_shorter_than_content_length(void **state)
{
    body_mismatch(10, "01234", true);
}

static void test_body_of_the_right_length(void **state)
{
    world_t *w = world_new("\"127.0.0.1:%u\"", "");
    start(w, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n");
    assert_int_equal(tg_exchange_write_body(&w->ex, "01234", 5, false), 5);
    assert_int_equal(tg_exchange_write_body(&w->ex, "56789", 5, true), 5);
    char buf[4096];
    backend_read(w, buf, sizeof(buf));
    assert_non_null(strstr(buf, "Content-Length: 10\r\n\r\n0123456789"));
    backend_send(w, "HTTP/1.1 204 No Content\r\n\r\n");
    assert_int_equal(fake.status, 204);
    assert_int_equal(fake.finished, 1);
    assert_true(fake.ok);
    world_free(w);
}

/* Small pieces of body wait for the loop's next turn and go out together: a client
 * feeding 1-byte chunks must not cost a send() each. */
static void test_small_pieces_are_coalesced(void **state)
{
    world_t *w = world_new("\"127.0.0.1:%u\"", "");
    start(w, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    char buf[8192];
    backend_read(w, buf, sizeof(buf)); /* connected, the head is there */
    for (int i = 0; i < 50; i++)
        assert_int_equal(tg_exchange_write_body(&w->ex, "x", 1, false), 1);
    /* Nothing sent yet from inside write_body ... */
    assert_true(recv(w->bfd, buf, sizeof(buf), MSG_DONTWAIT) < 0);
    spin(w, 2);
    /* ... and all of it in the next turn. */
    ssize_t n = recv(w->bfd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
    assert_int_equal(n, 50 * 6); /* "1\r\nx\r\n" each */
    world_free(w);
}

/* A fixed answer takes the body in pieces too, counted against Content-Length. */
static void test_fixed_answer_takes_a_body_in_pieces(void **state)
{
    const char *yaml = "version: 1\nbackends:\n  app: {fixed_response: {body: ok}}\n";
    world_t *w = world_new("\"127.0.0.1:%u\"", "");
    tg_backends_free(w->backends, w->cfg->nbackends);
    tg_config_free(w->cfg);
    w->cfg = unit_config(yaml);
    w->backends = tg_backends_new(w->cfg);
    start(w, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\n");
    assert_int_equal(fake.status, 200);
    for (int i = 0; i < 3; i++)
        assert_int_equal(tg_exchange_write_body(&w->ex, "abc", 3, i == 2), 3);
    assert_int_equal(fake.status, 200);
    assert_int_equal(fake.finished, 1);
    assert_true(fake.ok);
    world_free(w);
}

/* A response the proxy cannot use is a 502 for this request and no failure of the
 * server: with max_fails 1 it would otherwise be out now. */
static void test_unusable_response_does_not_count(void **state)
{
    world_t *w = world_new("\"127.0.0.1:%u\", \"127.0.0.1:1\"", "    max_fails: 1\n");
    tg_backend_t *b = &w->backends[0];
    /* Round robin may start on either server; make it start on ours. */
    atomic_store(&b->_rr, 0);
    start(w, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    char buf[4096];
    assert_true(backend_read(w, buf, sizeof(buf)) > 0);
    char big[20000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    char resp[20100];
    snprintf(resp, sizeof(resp), "HTTP/1.1 200 OK\r\nX-Big: %s\r\n\r\n", big);
    backend_send(w, resp);
    assert_int_equal(fake.status, 502);
    assert_true(tg_backend_server_usable(&b->servers[0], tg_now_ms()));
    world_free(w);
}

/* A reset before the response head counts; with max_fails 1 and two servers the server
 * is out for fail_timeout, and a backend's only server never is. */
static void test_reset_counts(void **state)
{
    for (int only = 0; only < 2; only++) {
        world_t *w = world_new(only ? "\"127.0.0.1:%u\"" : "\"127.0.0.1:%u\", \"127.0.0.1:1\"",
                               "    max_fails: 1\n    fail_timeout: 30s\n");
        tg_backend_t *b = &w->backends[0];
        atomic_store(&b->_rr, 0);
        start(w, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
        char buf[4096];
        assert_true(backend_read(w, buf, sizeof(buf)) > 0);
        struct linger lg = {1, 0};
        setsockopt(w->bfd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        close(w->bfd);
        w->bfd = -1;
        spin(w, 8);
        assert_int_equal(fake.status, 502); /* a POST is never sent twice */
        assert_int_equal(tg_backend_server_usable(&b->servers[0], tg_now_ms()), only == 1);
        world_free(w);
    }
}

/* A request on a connection accepted under an older generation routes by the newest one
 * that still has its listener (a reload's new backends), holds that generation while it
 * runs, and lets it go when it ends; a rejected request is logged under it as well. */
static void test_routes_by_the_newest_generation(void **state)
{
    world_t *w = world_new("\"127.0.0.1:1\"", "");
    const char *yaml = "version: 1\nbackends:\n  app: {fixed_response: {body: new}}\n";
    tg_config_t *cfg2 = unit_config(yaml);
    tg_backend_t *b2 = tg_backends_new(cfg2);
    tg_generation_t gen2 = {0};
    tg_listener_rt_t l2 = {0};
    tg_conf_listener_t lc2 = {0};
    gen_init(&gen2, &l2, &lc2, cfg2, b2);
    w->current = &gen2;

    fake.abort_in_head = false;
    tg_http_header_t hs[8];
    tg_http_request_t req;
    int status;
    const char *head = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n";
    assert_true(tg_http_parse_request(head, strlen(head), &req, hs, 8, &status) > 0);
    tg_exchange_start(&w->ex, &fake_ops, &w->pc, &req);
    assert_ptr_equal(w->ex.route, &l2);
    assert_int_equal(atomic_load(&gen2.refs), 2); /* the exchange's own */
    assert_int_equal(fake.status, 200);
    assert_string_equal(fake.body, "new");
    tg_exchange_write_body(&w->ex, "ab", 2, true);
    assert_int_equal(fake.finished, 1);
    assert_int_equal(atomic_load(&gen2.refs), 1); /* let go at the end */

    tg_exchange_reject(&w->ex, &fake_ops, &w->pc, 400);
    assert_int_equal(fake.status, 400);
    assert_int_equal(atomic_load(&gen2.refs), 1);

    /* A generation without the listener: the connection's own route. */
    gen2.nlisteners = 0;
    start(w, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_ptr_equal(w->ex.route, &w->lrt);
    assert_int_equal(atomic_load(&gen2.refs), 1);
    world_free(w);
    tg_backends_free(b2, cfg2->nbackends);
    tg_config_free(cfg2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_abort_inside_send_head),
        cmocka_unit_test(test_abort_inside_send_head_of_an_error),
        cmocka_unit_test(test_body_longer_than_content_length),
        cmocka_unit_test(test_body_shorter_than_content_length),
        cmocka_unit_test(test_body_of_the_right_length),
        cmocka_unit_test(test_small_pieces_are_coalesced),
        cmocka_unit_test(test_fixed_answer_takes_a_body_in_pieces),
        cmocka_unit_test(test_unusable_response_does_not_count),
        cmocka_unit_test(test_reset_counts),
        cmocka_unit_test(test_routes_by_the_newest_generation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
