"""QUIC listeners, HTTP/3 (SPEC §1, §3-§7), with gtlsclient (Debian's ngtcp2-client, the
GnuTLS build of ngtcp2's example client) as the real peer: requests through to a pool and
a fixed response, the forwarded headers, big bodies both ways, concurrent streams, the
certificate picked by SNI, Retry, packet loss, connection migration, reload and graceful
stop with transfers in flight, stray packets, Alt-Svc on the HTTPS side, the access log,
session resumption and the handshake metric.

How gtlsclient is driven, and how the served certificate is read from its output, is
written down above tg.h3_get. Its exit code means nothing (0 after a failed handshake
too): every check goes by the statuses, stream closes and files it reports.

The mutual_auth-on-QUIC refusal is tested in test_mtls and test_lifecycle, the other
listener-level config errors (alt_svc, retry, addresses) in tests/unit/test_config.c."""

import json
import os
import re
import signal
import socket
import struct
import time
import unittest
import urllib.request

import tg

MIB = 1 << 20
WWW_NAMES = ["DNS:localhost", "DNS:www.example.com", "IP:127.0.0.1"]

# The listener setting that makes the daemon answer every Initial without a valid token
# with a Retry (src/config/listeners.c: retry: auto | always | never).
RETRY_ALWAYS = {"retry": "always"}

# Per gtlsclient run: the hard limit of the process, and the QUIC idle timeout it asks for
# (a connection the server stops answering ends by itself after it).
RUN_TIMEOUT = 25
IDLE = "5s"


# ---------------------------------------------------------------------------------------
# a backend route that streams its body slowly: transfers that are in flight for a while

class _TrickleHandler(tg._Handler):
    """The harness backend plus GET /trickle?n=BYTES&ms=TOTAL[&parts=N]: N (default 20)
    pieces of the deterministic pattern (tg.pattern_chunks) with Content-Length, spread
    over TOTAL milliseconds."""

    def _route(self, path, q, entry):
        if path == "/early":
            # answers without reading the request body, as a backend refusing an upload
            # does: after half a second (the upload has filled every buffer on the way by
            # then), and it stays a second before closing, so its reset cannot race the
            # answer
            time.sleep(0.5)
            body = b"too large\n"
            self.send_response(413)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True
            time.sleep(1)
            return None
        if path != "/trickle":
            return super()._route(path, q, entry)
        self._read_body(lambda d: None)
        n = int(q.get("n", "0"))
        total = int(q.get("ms", "1000")) / 1000.0
        parts = max(1, int(q.get("parts", "20")))
        data = b"".join(tg.pattern_chunks(n))
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(n))
        self.end_headers()
        step = max(1, -(-n // parts))
        for i in range(0, n, step):
            self.wfile.write(data[i:i + step])
            self.wfile.flush()
            time.sleep(total / parts)
        return None


def pattern_file(directory, n, name="body.bin"):
    path = os.path.join(directory, name)
    with open(path, "wb") as f:
        for c in tg.pattern_chunks(n):
            f.write(c)
    return path


def hdr(headers, name):
    return [v for k, v in headers if k.lower() == name.lower()]


# ---------------------------------------------------------------------------------------
# the base class

class QuicCase(tg.TestCase):
    def setUp(self):
        if not tg.have_gtlsclient():
            self.skipTest("gtlsclient (Debian package ngtcp2-client) not installed")
        super().setUp()

    def start(self, config, ports=None, check_exit=True):
        """Start the daemon; wait for its HTTPS (TCP) and QUIC (UDP) listeners."""
        d = super().start(config, ports=tg.listener_ports(config, "https") if ports is None
                          else ports, check_exit=check_exit)
        for p in tg.listener_ports(config, "quic"):
            if not tg.wait_udp_port(p, 10, d.proc):
                rc = d.proc.poll()
                self.fail("tollgate %s UDP port %d (its QUIC listener)\n--- config\n%s"
                          "--- stderr\n%s" % ("exited (%s) before binding" % rc if rc is not None
                                              else "did not bind", p, d.config_text(),
                                              d.stderr_tail()))
        return d

    def trickle_backend(self, name="app"):
        be = self.backend(name)
        be.srv.RequestHandlerClass = _TrickleHandler
        return be

    def start_quic(self, backend_conf, listener_kw=None, **cfg_kw):
        """One QUIC listener ("q") on a free UDP port in front of BACKEND_CONF; its port."""
        port = tg.free_udp_port()
        cfg = self.config(**cfg_kw)
        cfg["backends"]["app"] = backend_conf
        cfg["listeners"]["q"] = tg.quic_listener(port, "app", **(listener_kw or {}))
        self.cfg = cfg
        self.start(cfg)
        return port

    def h3(self, port, paths, **kw):
        kw.setdefault("timeout", RUN_TIMEOUT)
        kw.setdefault("idle_timeout", IDLE)
        return tg.h3_get(port, paths, **kw)

    def why(self, res):
        return "\n%s%s" % (res.summary(), self.log_tail())

    def assertH3Ok(self, res, paths=None, status=200):
        """Every path (default all of the run) answered STATUS and closed with H3_NO_ERROR."""
        for p in (paths or res.paths):
            self.assertEqual(res.status.get(p), status, "status of %s%s" % (p, self.why(res)))
            self.assertEqual(res.closed.get(p), 256, "stream of %s did not close with "
                             "H3_NO_ERROR (256)%s" % (p, self.why(res)))
        self.assertFalse(res.timed_out, self.why(res))

    def assertPattern(self, res, path, n):
        body = res.bodies.get(path, b"")
        self.assertEqual(len(body), n, "length of the body of %s%s" % (path, self.why(res)))
        self.assertEqual(tg.sha256_hex(body), tg.pattern_sha256(n),
                         "the body of %s is corrupt%s" % (path, self.why(res)))


# ---------------------------------------------------------------------------------------
# requests through to the backends

class TestH3Proxy(QuicCase):
    def setUp(self):
        super().setUp()
        self.be = self.backend("app")
        self.port = self.start_quic(tg.pool_backend([self.be]))

    def test_get_with_forwarded_headers(self):
        r = self.h3(self.port, "/echo?a=1")
        self.assertH3Ok(r)
        self.assertEqual(r.alpn, "h3", self.why(r))
        e = json.loads(r.bodies["/echo?a=1"])
        self.assertEqual((e["method"], e["path"], e["version"]), ("GET", "/echo?a=1", "HTTP/1.1"))
        h = e["headers"]
        self.assertEqual(hdr(h, "X-Forwarded-Proto"), ["https"], h)
        self.assertEqual(hdr(h, "X-Forwarded-For"), ["127.0.0.1"], h)
        self.assertEqual(hdr(h, "X-Forwarded-Port"), [str(self.port)], h)
        self.assertEqual(len(r.local_ports), 1, self.why(r))
        self.assertEqual(hdr(h, "X-Forwarded-Client-Srcport"), [str(r.local_ports[0])], h)
        # HTTP/3 has :authority, HTTP/1.1 needs Host: made from it (RFC 9114 §4.3.1)
        self.assertEqual(hdr(h, "Host"), ["localhost:%d" % self.port], h)
        self.assertEqual(hdr(h, "User-Agent"), ["nghttp3/ngtcp2 client"], h)
        # and what the backend recorded itself
        seen = self.be.requests("/echo")
        self.assertEqual(len(seen), 1, seen)

    def test_backend_status_and_headers_pass_through(self):
        r = self.h3(self.port, ["/status?code=404", "/whoami"])
        self.assertH3Ok(r, ["/status?code=404"], status=404)
        self.assertH3Ok(r, ["/whoami"])
        self.assertEqual(r.bodies["/whoami"], b"app")
        self.assertEqual(r.bodies["/status?code=404"], b"status 404 from app\n")
        self.assertEqual(r.header("/whoami", "content-type"), "text/plain", self.why(r))
        self.assertEqual(r.header("/whoami", "content-length"), "3", self.why(r))
        # HTTP/3 forbids connection-specific header fields (RFC 9114 §4.2)
        for p in r.paths:
            for name in ("connection", "keep-alive", "transfer-encoding"):
                self.assertIsNone(r.header(p, name), "%s: %s in an HTTP/3 response%s"
                                  % (p, name, self.why(r)))

    def test_head_keeps_the_length(self):
        """A HEAD answer has no body but keeps the backend's Content-Length."""
        r = self.h3(self.port, "/whoami", method="HEAD")
        self.assertH3Ok(r)
        self.assertEqual(r.bodies.get("/whoami", b""), b"", self.why(r))
        self.assertEqual(r.header("/whoami", "content-length"), "3", self.why(r))

    def test_download_16mib_and_chunked(self):
        big, chunked = "/bytes?n=%d" % (16 * MIB), "/chunked?n=%d" % (3 * MIB + 17)
        r = self.h3(self.port, [big, chunked])
        self.assertH3Ok(r)
        self.assertPattern(r, big, 16 * MIB)
        self.assertPattern(r, chunked, 3 * MIB + 17)

    def test_upload_1mib(self):
        f = pattern_file(self.dir, MIB)
        r = self.h3(self.port, "/upload", data_file=f)
        self.assertH3Ok(r)
        got = json.loads(r.bodies["/upload"])
        self.assertEqual((got["length"], got["sha256"]), (MIB, tg.pattern_sha256(MIB)), got)
        seen = self.be.requests("/upload")
        self.assertEqual([e["method"] for e in seen], ["POST"])

    def test_concurrent_uploads(self):
        """Four 4 MiB uploads on one connection at once: each body reaches the backend
        whole and in order while QUIC flow control and the exchanges' backpressure stop
        and restart every stream many times."""
        n = 4 * MIB
        f = pattern_file(self.dir, n)
        paths = ["/upload?i=%d" % i for i in range(4)]
        r = self.h3(self.port, paths, data_file=f)
        self.assertH3Ok(r)
        for p in paths:
            got = json.loads(r.bodies[p])
            self.assertEqual((got["length"], got["sha256"]), (n, tg.pattern_sha256(n)),
                             "%s: %s" % (p, got))

    def test_upload_echo_put(self):
        f = pattern_file(self.dir, 300000)
        r = self.h3(self.port, "/echo", data_file=f, method="PUT")
        self.assertH3Ok(r)
        e = json.loads(r.bodies["/echo"])
        self.assertEqual((e["method"], e["body_length"], e["body_sha256"]),
                         ("PUT", 300000, tg.pattern_sha256(300000)), e)

    def test_concurrent_streams(self):
        # 4 slow answers (1 s each) and 4 downloads on 8 streams of one connection: all
        # complete, and the slow ones overlap (one after the other would take 4 s).
        slow = ["/slow?ms=1000&i=%d" % i for i in range(4)]
        fast = ["/bytes?n=%d&i=%d" % (200000 + i, i) for i in range(4)]
        r = self.h3(self.port, slow + fast)
        self.assertH3Ok(r)
        for i, p in enumerate(fast):
            self.assertPattern(r, p, 200000 + i)
        for p in slow:
            self.assertEqual(json.loads(r.bodies[p])["slept_ms"], 1000)
        self.assertLess(r.elapsed, 3.0, "8 concurrent streams took %.1fs: the slow requests "
                        "did not overlap%s" % (r.elapsed, self.why(r)))
        self.assertEqual(len(self.be.requests("/slow")), 4)
        self.assertEqual(len(r.local_ports), 1, "more than one connection?%s" % self.why(r))

    def test_access_log(self):
        r = self.h3(self.port, "/whoami?log=h3")
        self.assertH3Ok(r)
        entries = self.daemon.wait_access_log(lambda e: e.get("path") == "/whoami?log=h3")
        self.assertEqual(len(entries), 1, self.daemon.stderr_tail())
        e = entries[0]
        missing = [k for k in tg.ACCESS_LOG_KEYS if k not in e]
        self.assertEqual(missing, [], "access log line lacks keys: %r" % e)
        self.assertIs(e.get("quic"), True, e)
        self.assertIsInstance(e.get("cid"), str, e)
        self.assertRegex(e["cid"], r"^[0-9a-f]{2,40}$", e)
        self.assertEqual(e["tls_version"], "TLSv1.3", e)
        self.assertEqual(e["listener"], "q", e)
        self.assertEqual(e["client"], "127.0.0.1:%d" % r.local_ports[0], e)
        self.assertEqual(e["sni"], "localhost", e)
        self.assertTrue(e["cipher"], e)
        self.assertIs(e["resumed"], False, e)
        self.assertEqual((e["method"], e["status"]), ("GET", 200), e)
        self.assertGreaterEqual(e["bytes_out"], 3, e)
        self.assertEqual(e["backend_server"], self.be.addr, e)


class TestH3Backends(QuicCase):
    def test_fixed_response(self):
        port = self.start_quic(tg.fixed_backend(200, "text/plain", "hello from tollgate\n"))
        r = self.h3(port, ["/", "/any/path?x=1"])
        self.assertH3Ok(r)
        self.assertEqual(r.bodies["/"], b"hello from tollgate\n")
        self.assertEqual(r.bodies["/any/path?x=1"], b"hello from tollgate\n")
        self.assertEqual(r.header("/", "content-type"), "text/plain", self.why(r))

    def test_fixed_response_status(self):
        port = self.start_quic(tg.fixed_backend(503, "text/plain", "maintenance\n"))
        r = self.h3(port, "/x")
        self.assertH3Ok(r, status=503)
        self.assertEqual(r.bodies["/x"], b"maintenance\n")

    def test_early_answer_stops_the_upload(self):
        """A backend that answers before reading the body: the client gets the answer and
        is told to stop sending (STOP_SENDING, RFC 9114 §4.1), so its stream ends instead
        of waiting for flow-control credit until the idle timeout."""
        be = self.trickle_backend("app")
        port = self.start_quic(tg.pool_backend([be]))
        f = pattern_file(self.dir, 32 * 1024 * 1024)
        r = self.h3(port, "/early", data_file=f)
        self.assertEqual(r.status.get("/early"), 413, self.why(r))
        self.assertEqual(r.bodies.get("/early"), b"too large\n", self.why(r))
        self.assertIn("/early", r.closed, "the stream never closed%s" % self.why(r))
        self.assertFalse(r.timed_out, self.why(r))
        # the connection is still good for more
        r2 = self.h3(port, ["/early?again", "/whoami"], data_file=f)
        self.assertEqual(r2.status.get("/early?again"), 413, self.why(r2))

    def test_fixed_response_takes_an_upload(self):
        port = self.start_quic(tg.fixed_backend(200, "text/plain", "ok\n"))
        f = pattern_file(self.dir, 4 * MIB)
        r = self.h3(port, ["/a", "/b"], data_file=f)
        self.assertH3Ok(r)
        self.assertEqual(r.bodies["/a"], b"ok\n")

    def test_backend_refused_gives_502(self):
        # SPEC §5: HTTP/3 requests get the same error answers as HTTPS ones
        port = self.start_quic(tg.pool_backend(["127.0.0.1:%d" % tg.closed_port()]))
        r = self.h3(port, "/echo")
        self.assertH3Ok(r, status=502)
        self.assertTrue(r.bodies["/echo"], "502 without a body%s" % self.why(r))


# ---------------------------------------------------------------------------------------
# certificates

class TestH3Certificates(QuicCase):
    def setUp(self):
        super().setUp()
        self.port = self.start_quic(tg.fixed_backend(body="hi\n"),
                                    listener_kw={"default": "www-ecdsa", "extended": ["shop", "wild"]},
                                    workers=2)

    def served(self, sni):
        r = self.h3(self.port, "/", sni=sni, cert=True)
        self.assertH3Ok(r)
        self.assertEqual(r.bodies["/"], b"hi\n")
        self.assertIsNotNone(r.cert_sha256, "no Certificate message in the handshake%s" % self.why(r))
        return r.cert_sha256

    def test_sni_picks_certificate(self):
        cases = [("localhost", "www-ecdsa"), ("shop.example.com", "shop"),
                 ("a.example.org", "wild"), ("nothing.invalid", "www-ecdsa"),
                 ("www.example.com", "www-ecdsa")]
        for sni, want in cases:
            with self.subTest(sni=sni):
                self.assertEqual(self.served(sni), self.pki.fingerprint(want),
                                 "SNI %s should get %s" % (sni, want))

    def test_tls13_server_flight(self):
        r = self.h3(self.port, "/", cert=True)
        self.assertH3Ok(r)
        self.assertEqual(r.alpn, "h3", self.why(r))
        # TLS 1.3 server flight: EncryptedExtensions, Certificate, CertificateVerify, Finished
        self.assertEqual(r.handshake_types, [8, 11, 15, 20], self.why(r))


class TestH3Resumption(QuicCase):
    """SPEC §4: TLS 1.3 tickets work on QUIC listeners across workers; a session never
    resumes into another listener. 0-RTT is off (--disable-early-data): not in the SPEC."""

    def test_resumption_across_workers_not_across_listeners(self):
        port, other = tg.free_udp_port(), tg.free_udp_port()
        cfg = self.config(workers=2)
        cfg["backends"]["app"] = tg.fixed_backend(body="hi\n")
        cfg["listeners"]["q"] = tg.quic_listener(port, "app")
        cfg["listeners"]["q2"] = tg.quic_listener(other, "app")
        self.start(cfg)
        sess = os.path.join(self.dir, "session.pem")
        args = ["--session-file=%s" % sess, "--disable-early-data"]
        first = self.h3(port, "/?n=0", cert=True, extra_args=args)
        self.assertH3Ok(first)
        self.assertFalse(first.resumed, self.why(first))
        self.assertTrue(os.path.exists(sess), "no NewSessionTicket arrived (gtlsclient wrote no "
                        "session file)%s" % self.why(first))
        for i in range(1, 5):
            r = self.h3(port, "/?n=%d" % i, cert=True, extra_args=args)
            self.assertH3Ok(r)
            self.assertTrue(r.resumed, "connection %d did not resume (server flight %s)%s"
                            % (i, r.handshake_types, self.why(r)))
        entries = self.daemon.wait_access_log(lambda e: e.get("path") == "/?n=4")
        self.assertEqual([e.get("resumed") for e in entries], [True], self.daemon.stderr_tail())
        # the ticket of listener q at listener q2: a full handshake, and still served
        r = self.h3(other, "/?n=other", cert=True, extra_args=args)
        self.assertH3Ok(r)
        self.assertFalse(r.resumed, "a session of listener q resumed at listener q2%s" % self.why(r))


# ---------------------------------------------------------------------------------------
# the transport: Retry, loss, migration, stray packets

class TestQuicTransport(QuicCase):
    def test_retry(self):
        # ADJUST: RETRY_ALWAYS is the listener key that forces Retry.
        be = self.backend("app")
        port, plain = tg.free_udp_port(), tg.free_udp_port()
        cfg = self.config()
        cfg["backends"]["app"] = tg.pool_backend([be])
        cfg["listeners"]["q"] = tg.quic_listener(port, "app", **RETRY_ALWAYS)
        cfg["listeners"]["plain"] = tg.quic_listener(plain, "app")
        self.start(cfg)
        r = self.h3(port, "/whoami")
        self.assertH3Ok(r)
        self.assertEqual(r.bodies["/whoami"], b"app")
        self.assertTrue(r.rx_retry, "no Retry packet received%s" % self.why(r))
        self.assertTrue(r.retry_scid, "Retry received, but the server's transport parameters lack "
                        "retry_source_connection_id%s" % self.why(r))
        # the default (auto) does not retry a lone handshake
        r = self.h3(plain, "/whoami")
        self.assertH3Ok(r)
        self.assertFalse(r.rx_retry, "a Retry from a listener without retry: always%s" % self.why(r))

    def test_packet_loss(self):
        be = self.backend("app")
        port = self.start_quic(tg.pool_backend([be]))
        p = "/bytes?n=%d" % MIB
        r = self.h3(port, p, extra_args=["--tx-loss=0.1", "--rx-loss=0.1"], timeout=40)
        self.assertH3Ok(r)
        self.assertPattern(r, p, MIB)
        self.assertIn("** Simulated incoming packet loss **", r.out)  # the loss did happen
        self.assertLess(r.elapsed, 20, self.why(r))

    def migrate(self, nat_rebinding, runs=2):
        """1 MiB transfers over 1.2 s while the client moves to a new local port, a few times
        (with two workers, the new 4-tuple may well land on the socket of the other worker).

        Active migration (path validation by the client) happens 300 ms after the
        handshake, in the middle of the transfer. A NAT rebinding (new port, no path
        validation by the client: the server has to notice and validate) happens 200 ms
        after the handshake with the request held back until 500 ms (--delay-stream), so
        the whole transfer runs on the new path: gtlsclient 0.12.1 stalls when it rebinds
        in the middle of a transfer, against ngtcp2's own gtlsserver 0.12.1 as well."""
        be = self.trickle_backend("app")
        port = self.start_quic(tg.pool_backend([be]), workers=2)
        if nat_rebinding:
            args = ["--change-local-addr=200ms", "--nat-rebinding", "--delay-stream=500ms"]
        else:
            args = ["--change-local-addr=300ms"]
        for i in range(runs):
            with self.subTest(run=i):
                p = "/trickle?n=%d&ms=1200&i=%d" % (MIB, i)
                r = self.h3(port, p, extra_args=args)
                self.assertNotIn("disable_active_migration=1", r.out,
                                 "the server forbids migration%s" % self.why(r))
                self.assertNotIn("ngtcp2_conn_initiate_immediate_migration:", r.out, self.why(r))
                m = re.search(r"^Local address is now \S+:(\d+)$", r.out, re.M)
                self.assertIsNotNone(m, "the client did not move%s" % self.why(r))
                new = int(m.group(1))
                self.assertIn(new, r.local_ports, "no packet came to the client's new address "
                              "127.0.0.1:%d%s" % (new, self.why(r)))
                if not nat_rebinding:
                    self.assertIn("succeeded", r.path_validations, self.why(r))
                self.assertH3Ok(r)
                self.assertPattern(r, p, MIB)
                if nat_rebinding:
                    # the request went out from the new port, and the backend is told so
                    h = [e for e in be.requests("/trickle") if e["path"] == p][0]["headers"]
                    self.assertEqual(hdr(h, "X-Forwarded-Client-Srcport"), [str(new)], h)

    def test_migration(self):
        self.migrate(nat_rebinding=False)

    def test_nat_rebinding(self):
        self.migrate(nat_rebinding=True)

    def test_stray_packets(self):
        port = self.start_quic(tg.fixed_backend(body="hi\n"))
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(s.close)
        s.connect(("127.0.0.1", port))
        s.settimeout(1.0)

        def reply():
            try:
                return s.recv(65536)
            except socket.timeout:
                return None

        # an unknown version in a big enough long header: Version Negotiation (RFC 9000 §6.1)
        dcid, scid = os.urandom(8), os.urandom(8)
        pkt = bytes([0xC0]) + struct.pack("!I", 0x1A2A3A4A) + bytes([8]) + dcid + bytes([8]) + scid
        s.send(pkt + os.urandom(1200 - len(pkt)))
        vn = reply()
        self.assertIsNotNone(vn, "no Version Negotiation for version 0x1a2a3a4a" + self.log_tail())
        self.assertTrue(vn[0] & 0x80, vn[:16].hex())
        self.assertEqual(vn[1:5], b"\0\0\0\0", vn[:16].hex())
        self.assertEqual(vn[5:6] + vn[6:14], bytes([8]) + scid, "VN must echo our SCID as DCID")
        self.assertEqual(vn[14:15] + vn[15:23], bytes([8]) + dcid, "VN must echo our DCID as SCID")
        versions = [struct.unpack("!I", vn[i:i + 4])[0] for i in range(23, len(vn) - 3, 4)]
        self.assertIn(1, versions, vn.hex())

        # 1-RTT packets for no connection: a Stateless Reset, or nothing (RFC 9000 §10.3);
        # a reset looks like a short-header packet and is smaller than what caused it
        for size in (1200, 60):
            s.send(bytes([0x40 | (os.urandom(1)[0] & 0x3F)]) + os.urandom(size - 1))
            sr = reply()
            if sr is not None:
                self.assertEqual(sr[0] & 0xC0, 0x40, "not a short header: %s" % sr[:8].hex())
                self.assertGreaterEqual(len(sr), 21, sr.hex())
                self.assertLess(len(sr), size, "a Stateless Reset must be smaller than the "
                                "%d-byte packet that caused it" % size)

        # garbage: tiny datagrams, an Initial that does not decrypt, a truncated long header
        bad_initial = bytes([0xC3]) + struct.pack("!I", 1) + bytes([8]) + os.urandom(8) + bytes([0])
        bad_initial += b"\x00\x44\xc0" + os.urandom(1200 - len(bad_initial) - 3)
        for junk in (b"\x00", b"\xff" * 3, bad_initial, bytes([0xC0]) + struct.pack("!I", 1) + b"\x14",
                     os.urandom(1500)):
            s.send(junk)
        time.sleep(0.3)
        self.assertTrue(self.daemon.running(), "tollgate died of stray packets" + self.log_tail())
        r = self.h3(port, "/")
        self.assertH3Ok(r)
        self.assertEqual(r.bodies["/"], b"hi\n")


# ---------------------------------------------------------------------------------------
# reload and stop with transfers in flight

class TestH3Lifecycle(QuicCase):
    def test_reload_swaps_certificate_keeps_transfer(self):
        crt, key = self.pki.make_leaf("www-ecdsa-2", WWW_NAMES, directory=self.dir)
        A, B = self.pki.fingerprint("www-ecdsa"), self.pki.fingerprint(crt)
        be = self.trickle_backend("app")
        port = tg.free_udp_port()
        cfg = self.config(workers=2)
        cfg["certificates"]["www-ecdsa-2"] = {"type": "server", "cert": crt, "key": key}
        cfg["backends"]["app"] = tg.pool_backend([be])
        cfg["listeners"]["q"] = tg.quic_listener(port, "app")
        d = self.start(cfg)

        r = self.h3(port, "/whoami?before", cert=True)
        self.assertH3Ok(r)
        self.assertEqual(r.cert_sha256, A, self.why(r))
        # (no cert=True for the long one: it would hexdump the whole body, slowly)
        p = "/trickle?n=%d&ms=2500" % MIB
        bg = tg.H3Background(port, p, timeout=RUN_TIMEOUT, idle_timeout=IDLE)
        self.wait_for(lambda: be.requests("/trickle"), 10, msg="the long transfer to start")
        time.sleep(0.3)

        cfg["listeners"]["q"]["certificates"]["default"] = "www-ecdsa-2"
        d.sighup_reload(cfg)
        self.assertTrue(bg.thread.is_alive(), "the long transfer ended before the reload was done")

        for i in range(3):
            r = self.h3(port, "/whoami?after=%d" % i, cert=True)
            self.assertH3Ok(r)
            self.assertEqual(r.cert_sha256, B, "a new connection after the reload still gets the "
                             "old certificate (A=%s B=%s)%s" % (A[:12], B[:12], self.why(r)))

        old = bg.result(RUN_TIMEOUT + 5)
        self.assertH3Ok(old)
        self.assertPattern(old, p, MIB)

    def test_reload_removed_listener_drains(self):
        """A QUIC listener removed by a reload: the transfer on it finishes (its UDP socket
        stays open for the connection), then the socket goes; the kept listener never
        stops serving."""
        be = self.trickle_backend("app")
        gone, kept = tg.free_udp_port(), tg.free_udp_port()
        cfg = self.config(workers=2, drain_timeout="10s")
        cfg["backends"]["app"] = tg.pool_backend([be])
        cfg["listeners"]["gone"] = tg.quic_listener(gone, "app")
        cfg["listeners"]["kept"] = tg.quic_listener(kept, "app")
        d = self.start(cfg)

        p = "/trickle?n=%d&ms=2500" % MIB
        bg = tg.H3Background(gone, p, timeout=RUN_TIMEOUT, idle_timeout=IDLE)
        self.wait_for(lambda: be.requests("/trickle"), 10, msg="the long transfer to start")
        time.sleep(0.3)
        del cfg["listeners"]["gone"]
        d.sighup_reload(cfg)
        self.assertTrue(bg.thread.is_alive(), "the long transfer ended before the reload was done")

        r = self.h3(kept, "/whoami?kept")
        self.assertH3Ok(r)
        old = bg.result(RUN_TIMEOUT + 5)
        self.assertH3Ok(old)
        self.assertPattern(old, p, MIB)
        # once its last connection is gone, the socket is closed for good
        self.wait_for(lambda: not tg.udp_bound(gone, d.proc.pid), 10,
                      msg="the removed listener's UDP sockets to close")
        late = self.h3(gone, "/whoami?late", timeout=10, idle_timeout="2s",
                       extra_args=["--handshake-timeout=2s"])
        self.assertNotIn("/whoami?late", late.status, "the removed listener still serves"
                         + self.why(late))

    def test_reload_new_backend_for_next_request(self):
        """SPEC §7.3: an established connection keeps its session, and its next request
        goes to the backend of the new configuration."""
        a, b = self.backend("a"), self.backend("b")
        port = tg.free_udp_port()
        cfg = self.config()
        cfg["backends"]["app"] = tg.pool_backend([a])
        cfg["listeners"]["q"] = tg.quic_listener(port, "app")
        d = self.start(cfg)
        cfg["backends"]["app"] = tg.pool_backend([b])
        # one connection: a request, a pause during which the reload happens, a request
        bg = tg.H3Background(port, ["/whoami?first", "/whoami?second"],
                             extra_args=["--delay-stream=1500ms"], timeout=RUN_TIMEOUT,
                             idle_timeout=IDLE)
        time.sleep(0.5)
        d.sighup_reload(cfg)
        r = bg.result(RUN_TIMEOUT + 5)
        self.assertH3Ok(r)
        self.assertEqual(len(b.requests("/whoami")), 2, "the requests did not reach the new "
                         "backend%s" % self.why(r))
        self.assertEqual(a.requests("/whoami"), [])

    def test_graceful_stop_finishes_transfer(self):
        be = self.trickle_backend("app")
        port = tg.free_udp_port()
        cfg = self.config(drain_timeout="10s")
        cfg["backends"]["app"] = tg.pool_backend([be])
        cfg["listeners"]["q"] = tg.quic_listener(port, "app")
        d = self.start(cfg, check_exit=False)

        p = "/trickle?n=%d&ms=2000" % MIB
        bg = tg.H3Background(port, p, timeout=RUN_TIMEOUT, idle_timeout=IDLE)
        self.wait_for(lambda: be.requests("/trickle"), 10, msg="the long transfer to start")
        time.sleep(0.3)
        d.signal(signal.SIGTERM)
        time.sleep(0.2)
        # stopping: no new connection is taken on
        late = self.h3(port, "/whoami", timeout=10, idle_timeout="2s",
                       extra_args=["--handshake-timeout=2s"])
        self.assertNotIn("/whoami", late.status, "a new connection was served after SIGTERM"
                         + self.why(late))
        old = bg.result(RUN_TIMEOUT + 5)
        self.assertH3Ok(old)
        self.assertPattern(old, p, MIB)
        try:
            rc = d.proc.wait(15)
        except Exception:  # noqa: BLE001
            d.kill()
            self.fail("tollgate did not exit within 15s of SIGTERM" + self.log_tail())
        self.assertEqual(rc, 0, "tollgate exited %s after SIGTERM%s" % (rc, self.log_tail()))


# ---------------------------------------------------------------------------------------
# the HTTPS side: Alt-Svc

class TestAltSvc(QuicCase):
    def test_alt_svc_header(self):
        be = self.backend("app")
        port = tg.free_port_both()
        bare = tg.free_port()
        cfg = self.config()
        cfg["backends"]["app"] = tg.pool_backend([be])
        cfg["listeners"]["web"] = tg.https_listener(port, "app", alt_svc="q")
        cfg["listeners"]["q"] = tg.quic_listener(port, "app")
        cfg["listeners"]["bare"] = tg.https_listener(bare, "app")
        self.start(cfg)
        r = tg.get(port, "/whoami")
        self.assertEqual((r.status, r.body), (200, b"app"), r)
        self.assertEqual(r.header_values("Alt-Svc"), ['h3=":%d"; ma=86400' % port], r)
        # what it advertises is served
        h = self.h3(port, "/whoami")
        self.assertH3Ok(h)
        self.assertEqual(h.bodies["/whoami"], b"app")
        # no alt_svc, no header
        r = tg.get(bare, "/whoami")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header_values("Alt-Svc"), [], r)

    def test_alt_svc_other_port(self):
        be = self.backend("app")
        port, qport = tg.free_port(), tg.free_udp_port()
        cfg = self.config()
        cfg["backends"]["app"] = tg.pool_backend([be])
        cfg["listeners"]["web"] = tg.https_listener(port, "app", alt_svc="q")
        cfg["listeners"]["q"] = tg.quic_listener(qport, "app")
        self.start(cfg)
        r = tg.get(port, "/status?code=404")
        self.assertEqual(r.status, 404, r)
        self.assertEqual(r.header_values("Alt-Svc"), ['h3=":%d"; ma=86400' % qport], r)


# ---------------------------------------------------------------------------------------
# metrics

class TestH3Metrics(QuicCase):
    def test_handshakes_counted(self):
        admin = tg.free_port()
        token = os.path.join(self.dir, "admin.token")
        with open(token, "w") as f:
            f.write("t0ken-for-the-tests\n")
        port = tg.free_udp_port()
        cfg = self.config()
        cfg["admin"] = {"listen": "127.0.0.1:%d" % admin, "token_file": token}
        cfg["backends"]["app"] = tg.fixed_backend(body="hi\n")
        cfg["listeners"]["q"] = tg.quic_listener(port, "app")
        self.start(cfg, ports=[admin])
        for i in range(2):
            self.assertH3Ok(self.h3(port, "/?i=%d" % i))
        req = urllib.request.Request("http://127.0.0.1:%d/metrics" % admin,
                                     headers={"Authorization": "Bearer t0ken-for-the-tests"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            text = resp.read().decode()
        m = re.search(r'^tollgate_handshakes_total\{listener="q",result="success"\} (\d+)$', text, re.M)
        self.assertIsNotNone(m, "no handshake counter of the QUIC listener\n" + text)
        self.assertGreaterEqual(int(m.group(1)), 2, text)


# ---------------------------------------------------------------------------------------
# rapid reset

class TestH3RapidReset(QuicCase):
    """SPEC §5: a client that resets streams faster than it lets them finish is closed with
    H3_EXCESSIVE_LOAD. Each request it cancels has reached the proxy and started a backend
    request, and the stream limit does not bound them: a cancelled stream frees its slot."""

    STREAMS = 16

    def setUp(self):
        super().setUp()
        if not os.access(tg.H3LOAD, os.X_OK):
            self.fail("%s not built (it is built with the daemon)" % tg.H3LOAD)
        self.be = self.backend("app")
        self.port = tg.free_udp_port()
        cfg = self.config()
        cfg["global"]["limits"] = {"max_concurrent_streams": self.STREAMS}
        cfg["backends"]["app"] = tg.pool_backend([self.be])
        cfg["listeners"]["q"] = tg.quic_listener(self.port, "app")
        self.start(cfg)

    def test_rapid_reset_closes_the_connection(self):
        out, err = tg.h3load(self.port, "--cancel", "-c", "1", "-m", str(self.STREAMS),
                             "-n", "2000", "--timeout", "5", "--max-time", "60")
        res = tg.h3load_result(out)
        why = "\n%s%s%s" % (out, err, self.log_tail())
        self.assertGreater(res["cancelled"], 2 * self.STREAMS, why)
        self.assertGreaterEqual(res["closed"], 1, "never closed for its resets" + why)
        self.assertIn("application error 0x107", err, why)  # H3_EXCESSIVE_LOAD
        # Each connection got at most twice the limit (and the requests in flight) before
        # it was closed, so the backend saw a bounded share of what was cancelled.
        self.assertLess(len(self.be.requests()), res["cancelled"], why)
        self.assertH3Ok(self.h3(self.port, "/whoami"))

    def test_rapid_reset_of_uploads_closes_the_connection(self):
        # Each request reset while its body is still coming: the exchange is abandoned at
        # the client's RESET_STREAM, and counted as the whole requests' cancels are.
        out, err = tg.h3load(self.port, "--cancel", "--upload", str(1 << 20), "-c", "1",
                             "-m", str(self.STREAMS), "-n", "2000", "--timeout", "5",
                             "--max-time", "60")
        res = tg.h3load_result(out)
        why = "\n%s%s%s" % (out, err, self.log_tail())
        self.assertGreater(res["cancelled"], 2 * self.STREAMS, why)
        self.assertGreaterEqual(res["closed"], 1, "never closed for its resets" + why)
        self.assertIn("application error 0x107", err, why)  # H3_EXCESSIVE_LOAD
        self.assertLess(len(self.be.requests()), res["cancelled"], why)
        self.wait_for(lambda: self.be.active == 0, 10, msg="the backend requests to end")
        self.assertH3Ok(self.h3(self.port, "/whoami"))

    def test_cancels_within_the_burst_are_not_closed(self):
        # A browser leaving a page cancels its streams at once: under twice the limit.
        out, err = tg.h3load(self.port, "--cancel", "-c", "1", "-m", "4",
                             "-n", str(self.STREAMS + self.STREAMS // 2), "--timeout", "2",
                             "--max-time", "30")
        res = tg.h3load_result(out)
        why = "\n%s%s%s" % (out, err, self.log_tail())
        self.assertEqual(res["cancelled"], self.STREAMS + self.STREAMS // 2, why)
        self.assertEqual(res["closed"], 0, why)
        self.assertNotIn("0x107", err, why)

    def test_finishing_clients_are_not_closed(self):
        # The same number of streams, each let finish: nothing is owed.
        out, err = tg.h3load(self.port, "-c", "1", "-m", str(self.STREAMS), "-n", "1000",
                             "--timeout", "5", "--max-time", "60")
        res = tg.h3load_result(out)
        self.assertEqual((res["conn_errors"], res["reset"], res["non2xx"]), (0, 0, 0),
                         "\n%s%s%s" % (out, err, self.log_tail()))
        self.assertEqual(len(self.be.requests()), 1000)


if __name__ == "__main__":
    unittest.main()
