/* The QUIC server of one worker: datagrams in and out of its UDP sockets, each routed by
 * its destination connection id to a connection of this worker, to the worker the id
 * names (a client that moved: migration, NAT rebinding), or to a new connection after
 * address validation. Answers without state: Retry, Version Negotiation, stateless reset. */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ngtcp2/ngtcp2_crypto.h>

#include "quic_internal.h"

#define DGRAMS_PER_WAKEUP 64
/* Handshakes in flight on one worker before `retry: auto` asks new clients to prove their
 * address, and before new handshakes are refused outright (the client retransmits). */
#define RETRY_THRESHOLD 256
#define MAX_HANDSHAKES 4096
/* Stateless resets one worker sends per second: enough for every lost connection after a
 * restart, too few to be a reflector. */
#define RESETS_PER_SECOND 1000
/* Datagrams waiting for another worker: bounds in bytes (datagrams can be up to 64 KiB)
 * and in count, so a flood of ids that name a busy worker costs dropped datagrams, not
 * memory: at most INBOX_MAX_BYTES per worker. */
#define INBOX_MAX 4096
#define INBOX_MAX_BYTES (4u * 1024 * 1024)

ngtcp2_tstamp tg__quic_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int tg_quic_socket_prepare(int fd, int family)
{
    int one = 1;
    if (family == AF_INET6)
        return setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one);
    return setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
}

/* ---- sending ---------------------------------------------------------------------------- */

void tg__quic_send(int fd, const struct sockaddr *local, socklen_t local_len,
                   const struct sockaddr *remote, socklen_t remote_len, const uint8_t *data,
                   size_t len)
{
    (void)local_len;
    struct iovec iov = {(void *)data, len};
    union {
        char buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
        struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct msghdr msg = {
        .msg_name = (void *)remote,
        .msg_namelen = remote_len,
        .msg_iov = &iov,
        .msg_iovlen = 1,
    };
    /* Answer from the address the client wrote to: a wildcard socket would otherwise pick
     * one by route, and the client would drop the datagram. */
    if (local != NULL && local->sa_family == AF_INET) {
        msg.msg_control = ctl.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(struct in_pktinfo));
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = IPPROTO_IP;
        cm->cmsg_type = IP_PKTINFO;
        cm->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
        struct in_pktinfo pi = {0};
        pi.ipi_spec_dst = ((const struct sockaddr_in *)local)->sin_addr;
        memcpy(CMSG_DATA(cm), &pi, sizeof pi);
    } else if (local != NULL && local->sa_family == AF_INET6) {
        msg.msg_control = ctl.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(struct in6_pktinfo));
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = IPPROTO_IPV6;
        cm->cmsg_type = IPV6_PKTINFO;
        cm->cmsg_len = CMSG_LEN(sizeof(struct in6_pktinfo));
        struct in6_pktinfo pi = {0};
        pi.ipi6_addr = ((const struct sockaddr_in6 *)local)->sin6_addr;
        memcpy(CMSG_DATA(cm), &pi, sizeof pi);
    }
    while (sendmsg(fd, &msg, 0) < 0 && errno == EINTR) {
    }
    /* Any other failure (EAGAIN on a full socket buffer included) is a lost datagram:
     * QUIC's loss recovery resends what mattered. */
}

static void send_reply(const tg__dgram_t *d, const uint8_t *data, size_t len)
{
    tg__quic_send(d->fd, (const struct sockaddr *)&d->local, d->local_len,
                  (const struct sockaddr *)&d->remote, d->remote_len, data, len);
}

static void send_version_negotiation(const tg__dgram_t *d, const ngtcp2_version_cid *vc)
{
    static const uint32_t versions[] = {NGTCP2_PROTO_VER_V1};
    uint8_t buf[256];
    uint8_t rnd;
    (void)gnutls_rnd(GNUTLS_RND_NONCE, &rnd, 1);
    ngtcp2_ssize n = ngtcp2_pkt_write_version_negotiation(
        buf, sizeof buf, rnd, vc->scid, vc->scidlen, vc->dcid, vc->dcidlen, versions, 1);
    if (n > 0)
        send_reply(d, buf, (size_t)n);
}

static void send_stateless_reset(tg_quic_server_t *s, const tg__dgram_t *d, const uint8_t *dcid,
                                 size_t dcidlen)
{
    uint64_t sec = tg__quic_now() / 1000000000ull;
    if (sec != s->reset_second) {
        s->reset_second = sec;
        s->resets = 0;
    }
    if (++s->resets > RESETS_PER_SECOND)
        return;
    /* Shorter than what provoked it, so two endpoints can never loop (RFC 9000 §10.3.3);
     * too short to hide among real packets is not worth sending. */
    size_t randlen = d->len - 1 - NGTCP2_STATELESS_RESET_TOKENLEN;
    if (d->len <= 1 + NGTCP2_STATELESS_RESET_TOKENLEN + NGTCP2_MIN_STATELESS_RESET_RANDLEN)
        return;
    if (randlen > 40)
        randlen = 40;
    uint8_t token[TG_QUIC_RESET_TOKEN_LEN], rnd[40], buf[64];
    if (tg_quic_reset_token(token, dcid, dcidlen) != 0 ||
        gnutls_rnd(GNUTLS_RND_NONCE, rnd, randlen) != 0)
        return;
    ngtcp2_ssize n = ngtcp2_pkt_write_stateless_reset(buf, sizeof buf, token, rnd, randlen);
    if (n > 0)
        send_reply(d, buf, (size_t)n);
}

void tg__quic_send_retry(tg_quic_server_t *s, const tg__dgram_t *d, const ngtcp2_pkt_hd *hd)
{
    uint8_t token[TG_QUIC_TOKEN_MAX_LEN], buf[256];
    ngtcp2_cid scid = {.datalen = TG_QUIC_CID_LEN};
    if (tg_quic_cid_new(scid.data, (int)s->conf.worker) != 0)
        return;
    ssize_t tl = tg_quic_token_make(token, sizeof token, TG_QUIC_TOKEN_RETRY,
                                    (const struct sockaddr *)&d->remote, d->remote_len,
                                    hd->dcid.data, hd->dcid.datalen, tg__quic_now());
    if (tl <= 0)
        return;
    ngtcp2_ssize n = ngtcp2_crypto_write_retry(buf, sizeof buf, hd->version, &hd->scid, &scid,
                                               &hd->dcid, token, (size_t)tl);
    if (n > 0)
        send_reply(d, buf, (size_t)n);
}

/* ---- routing ----------------------------------------------------------------------------- */

static void handoff(tg_quic_server_t *s, unsigned worker, const tg__dgram_t *d)
{
    tg_quic_server_t *peer = atomic_load(&s->conf.peers[worker]);
    if (peer == NULL)
        return;
    tg__dgram_t *copy = tg_malloc(sizeof(*copy) + d->len);
    memcpy(copy, d, sizeof(*copy) + d->len);
    copy->next = NULL;
    copy->lst = NULL; /* our generation's listener means nothing to the peer */
    copy->handed = true;
    pthread_mutex_lock(&peer->inbox_lock);
    bool room = peer->ninbox < INBOX_MAX && peer->inbox_bytes + d->len <= INBOX_MAX_BYTES;
    size_t queued = 0;
    if (room) {
        *peer->inbox_tail = copy;
        peer->inbox_tail = &copy->next;
        peer->inbox_bytes += d->len;
        queued = ++peer->ninbox;
    }
    pthread_mutex_unlock(&peer->inbox_lock);
    if (!room) {
        free(copy); /* the owner is behind (or gone): a lost datagram, as on a full socket */
        return;
    }
    if (queued == 1)
        event_active(&peer->inbox_ev, EV_READ, 0);
}

/* A long-header packet no connection knows: a new connection, if the client may have one. */
static void accept_new(tg_quic_server_t *s, const tg__dgram_t *d)
{
    ngtcp2_pkt_hd hd;
    if (d->lst == NULL || d->lst->quic == NULL || s->conf.conns->draining ||
        ngtcp2_accept(&hd, d->data, d->len) != 0 || hd.type != NGTCP2_PKT_INITIAL)
        return; /* a 0-RTT packet ahead of its Initial, or a stopping worker: drop */
    /* The runtime's limit, not the config's: max_connections lowered to what the
     * open-files limit holds, as HTTPS accepts use (a QUIC connection's requests need
     * backend descriptors as much as a TCP one's). */
    unsigned long max = s->conf.max_conns != NULL
                            ? atomic_load_explicit(s->conf.max_conns, memory_order_relaxed)
                            : (*s->conf.conns->current)->cfg->global.limits.max_connections;
    if (s->nhandshaking >= MAX_HANDSHAKES ||
        atomic_load_explicit(s->conf.conns->process_conns, memory_order_relaxed) >= max)
        return;

    ngtcp2_cid odcid;
    bool retried = false, validated = false;
    if (hd.token.len > 0) {
        uint8_t od[TG_QUIC_MAX_CIDLEN];
        size_t odlen = 0;
        uint64_t now = tg__quic_now();
        const struct sockaddr *sa = (const struct sockaddr *)&d->remote;
        switch (tg_quic_token_kind(hd.token.base, hd.token.len)) {
        case TG_QUIC_TOKEN_RETRY:
            /* A Retry token that fails is an attack or a very late packet: never a new
             * connection (RFC 9000 §8.1.2 allows INVALID_TOKEN; silence costs less). */
            if (tg_quic_token_verify(hd.token.base, hd.token.len, TG_QUIC_TOKEN_RETRY, sa,
                                     d->remote_len, now, od, &odlen) != TG_QUIC_TOKEN_OK)
                return;
            ngtcp2_cid_init(&odcid, od, odlen);
            retried = validated = true;
            break;
        case TG_QUIC_TOKEN_NEW_TOKEN:
            validated =
                tg_quic_token_verify(hd.token.base, hd.token.len, TG_QUIC_TOKEN_NEW_TOKEN, sa,
                                     d->remote_len, now, NULL, NULL) == TG_QUIC_TOKEN_OK;
            break;
        default:
            break; /* another server's token: as good as none */
        }
    }
    tg_retry_t policy = d->lst->conf->retry;
    if (!validated && policy != TG_RETRY_NEVER &&
        (policy == TG_RETRY_ALWAYS || s->nhandshaking >= RETRY_THRESHOLD)) {
        tg__quic_send_retry(s, d, &hd);
        return;
    }
    tg__qconn_t *c = tg__qconn_accept(s, d, &hd, retried ? &odcid : NULL, retried, validated);
    if (c != NULL)
        tg__qconn_read(c, d);
}

static void dispatch(tg_quic_server_t *s, const tg__dgram_t *d)
{
    ngtcp2_version_cid vc;
    int rv = ngtcp2_pkt_decode_version_cid(&vc, d->data, d->len, TG_QUIC_CID_LEN);
    if (rv == NGTCP2_ERR_VERSION_NEGOTIATION) {
        if (d->lst != NULL && d->len >= NGTCP2_MAX_UDP_PAYLOAD_SIZE)
            send_version_negotiation(d, &vc);
        return;
    }
    if (rv != 0)
        return;
    tg__qconn_t *c = tg__cid_find(&s->cids, vc.dcid, vc.dcidlen);
    if (c != NULL) {
        tg__qconn_read(c, d);
        return;
    }
    int owner = tg_quic_cid_worker(vc.dcid, vc.dcidlen);
    if (owner >= 0 && (unsigned)owner != s->conf.worker && (unsigned)owner < s->conf.nworkers &&
        !d->handed) {
        handoff(s, (unsigned)owner, d);
        return;
    }
    if (d->handed)
        return; /* its connection is gone: the receiving worker's socket is not ours */
    if (!(d->data[0] & 0x80)) {
        /* A short-header packet for a connection nobody has (closed, or from before a
         * restart): tell the client at once instead of letting it time out. */
        if (d->lst != NULL || owner >= 0)
            send_stateless_reset(s, d, vc.dcid, vc.dcidlen);
        return;
    }
    accept_new(s, d);
}

static void on_inbox(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    tg_quic_server_t *s = arg;
    pthread_mutex_lock(&s->inbox_lock);
    tg__dgram_t *list = s->inbox;
    s->inbox = NULL;
    s->inbox_tail = &s->inbox;
    s->ninbox = 0;
    s->inbox_bytes = 0;
    pthread_mutex_unlock(&s->inbox_lock);
    while (list != NULL) {
        tg__dgram_t *d = list;
        list = d->next;
        dispatch(s, d);
        free(d);
    }
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    tg_quic_server_t *s = arg;
    tg__qconn_t *list = s->dirty;
    s->dirty = NULL;
    while (list != NULL) {
        tg__qconn_t *c = list;
        list = c->dirty_next;
        c->dirty = false;
        c->dirty_next = NULL;
        tg__qconn_flush(c);
    }
}

void tg_quic_on_readable(tg_quic_server_t *s, int fd, const struct sockaddr *bound,
                         socklen_t bound_len, const tg_listener_rt_t *l)
{
    union {
        char buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
        struct cmsghdr align;
    } ctl;
    for (int i = 0; i < DGRAMS_PER_WAKEUP; i++) {
        tg__dgram_t *d = s->rx;
        struct iovec iov = {d->data, TG__QUIC_RX_MAX};
        struct msghdr msg = {
            .msg_name = &d->remote,
            .msg_namelen = sizeof d->remote,
            .msg_iov = &iov,
            .msg_iovlen = 1,
            .msg_control = ctl.buf,
            .msg_controllen = sizeof ctl.buf,
        };
        ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return; /* EAGAIN, or an ICMP error queued on the socket: nothing to serve */
        }
        if (n == 0 || (msg.msg_flags & MSG_TRUNC))
            continue;
        d->len = (size_t)n;
        d->remote_len = msg.msg_namelen;
        d->fd = fd;
        d->lst = l;
        d->handed = false;
        /* The local address: the bound one, with the real destination from PKTINFO. */
        memcpy(&d->local, bound, bound_len);
        d->local_len = bound_len;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm != NULL; cm = CMSG_NXTHDR(&msg, cm)) {
            if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO) {
                struct in_pktinfo pi;
                memcpy(&pi, CMSG_DATA(cm), sizeof pi);
                ((struct sockaddr_in *)&d->local)->sin_addr = pi.ipi_addr;
            } else if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO) {
                struct in6_pktinfo pi;
                memcpy(&pi, CMSG_DATA(cm), sizeof pi);
                ((struct sockaddr_in6 *)&d->local)->sin6_addr = pi.ipi6_addr;
            }
        }
        dispatch(s, d);
    }
}

/* ---- the server's life ------------------------------------------------------------------------
 */

tg_quic_server_t *tg_quic_server_new(const tg_quic_server_conf_t *conf)
{
    if (tg_quic_init() != 0 || conf->worker >= TG_QUIC_MAX_WORKERS)
        return NULL;
    tg_quic_server_t *s = tg_calloc(1, sizeof(*s));
    s->conf = *conf;
    s->rx = tg_malloc(sizeof(tg__dgram_t) + TG__QUIC_RX_MAX);
    tg__cid_table_init(&s->cids);
    pthread_mutex_init(&s->inbox_lock, NULL);
    s->inbox_tail = &s->inbox;
    event_assign(&s->inbox_ev, conf->loop->base, -1, 0, on_inbox, s);
    event_assign(&s->flush_ev, conf->loop->base, -1, 0, on_flush, s);
    atomic_store(&conf->peers[conf->worker], s);
    return s;
}

void tg_quic_server_free(tg_quic_server_t *s)
{
    if (s == NULL)
        return;
    tg_quic_close_all(s);
    atomic_store(&s->conf.peers[s->conf.worker], NULL);
    event_del(&s->inbox_ev);
    event_del(&s->flush_ev);
    pthread_mutex_lock(&s->inbox_lock);
    while (s->inbox != NULL) {
        tg__dgram_t *d = s->inbox;
        s->inbox = d->next;
        free(d);
    }
    pthread_mutex_unlock(&s->inbox_lock);
    pthread_mutex_destroy(&s->inbox_lock);
    tg__cid_table_free(&s->cids);
    free(s->rx);
    free(s);
}

void tg_quic_close_all(tg_quic_server_t *s)
{
    for (tg_proxy_conn_t *pc = tg_proxy_conns_first(s->conf.conns), *next; pc != NULL; pc = next) {
        next = tg_proxy_conn_next(pc);
        if (pc->ops == &tg__qconn_ops && TG_STRUCT_FROM_MEMBER(tg__qconn_t, pc, pc)->srv == s)
            tg__qconn_close_now(TG_STRUCT_FROM_MEMBER(tg__qconn_t, pc, pc));
    }
}

size_t tg_quic_conns_on(const tg_quic_server_t *s, int fd)
{
    size_t n = 0;
    for (tg_proxy_conn_t *pc = tg_proxy_conns_first(s->conf.conns); pc != NULL;
         pc = tg_proxy_conn_next(pc)) {
        if (pc->ops != &tg__qconn_ops)
            continue;
        const tg__qconn_t *c = TG_STRUCT_FROM_MEMBER(tg__qconn_t, pc, pc);
        n += c->srv == s && c->fd == fd;
    }
    return n;
}

size_t tg_quic_nconns(const tg_quic_server_t *s)
{
    return s->nconns;
}
