"""Proxying (SPEC §5): forwarded headers, hop-by-hop headers, client-certificate header
spoofing, keep-alive, pipelining, large bodies both ways, fixed responses, balancing and
health (passive and active)."""

import hashlib
import json
import os
import threading
import time
import unittest

import tg

MIB = 1 << 20


def joined(values):
    """Comma-separated header values, whether sent as one line or several."""
    out = []
    for v in values:
        out += [p.strip() for p in v.split(",") if p.strip()]
    return out


def hdr_values(echo, name):
    return [v for k, v in echo["headers"] if k.lower() == name.lower()]


class TestForwarding(tg.TestCase):
    def setUp(self):
        super().setUp()
        self.be = self.backend("app")
        self.port = self.simple(tg.pool_backend([self.be]))

    def test_forwarded_headers(self):
        c = self.conn(self.port)
        r = c.get("/echo?a=1&b=2", headers=[("X-Forwarded-For", "203.0.113.7")])
        self.assertEqual(r.status, 200, r)
        e = r.json()
        self.assertEqual(e["path"], "/echo?a=1&b=2")
        self.assertEqual(joined(hdr_values(e, "X-Forwarded-For")), ["203.0.113.7", "127.0.0.1"])
        self.assertEqual(hdr_values(e, "X-Forwarded-Proto"), ["https"])
        self.assertEqual(hdr_values(e, "X-Forwarded-Port"), [str(self.port)])
        self.assertEqual(hdr_values(e, "X-Forwarded-Client-Srcport"), [str(c.local_port)])

    def test_forwarded_for_without_client_header(self):
        c = self.conn(self.port)
        e = c.get("/echo").json()
        self.assertEqual(joined(hdr_values(e, "X-Forwarded-For")), ["127.0.0.1"])
        # a second connection has its own source port
        c2 = self.conn(self.port)
        e2 = c2.get("/echo").json()
        self.assertEqual(hdr_values(e2, "X-Forwarded-Client-Srcport"), [str(c2.local_port)])
        self.assertNotEqual(c.local_port, c2.local_port)

    def test_request_passes_through(self):
        c = self.conn(self.port)
        body = os.urandom(5000)
        r = c.request("POST", "/echo?x=%20y", headers=[("X-Custom", "kept"), ("Accept", "*/*")],
                      body=body, host="www.example.com")
        self.assertEqual(r.status, 200, r)
        e = r.json()
        self.assertEqual(e["method"], "POST")
        self.assertEqual(e["path"], "/echo?x=%20y")
        self.assertEqual(e["version"], "HTTP/1.1")
        self.assertEqual(hdr_values(e, "X-Custom"), ["kept"])
        self.assertEqual(hdr_values(e, "Host"), ["www.example.com"])
        self.assertEqual(e["body_length"], len(body))
        self.assertEqual(e["body_sha256"], hashlib.sha256(body).hexdigest())

    def test_response_status_and_headers_pass_through(self):
        c = self.conn(self.port)
        for code in (201, 404, 418, 500, 503):
            r = c.get("/status?code=%d" % code)
            self.assertEqual(r.status, code)
            self.assertEqual(r.body, b"status %d from app\n" % code)

    def test_hop_by_hop_headers_removed(self):
        c = self.conn(self.port)
        r = c.get("/echo", headers=[
            ("Connection", "keep-alive, X-Custom-Hop"),
            ("Keep-Alive", "timeout=55, max=999"),
            ("TE", "trailers, deflate"),
            ("Upgrade", "tg-test-proto/1"),
            ("Proxy-Connection", "keep-alive"),
            ("X-Custom-Hop", "must-not-pass"),
            ("X-End-To-End", "must-pass"),
        ])
        self.assertEqual(r.status, 200, r)
        e = r.json()
        names = {k.lower() for k, _ in e["headers"]}
        values = [v for _, v in e["headers"]]
        for gone in ("upgrade", "proxy-connection", "x-custom-hop", "te"):
            self.assertNotIn(gone, names, "hop-by-hop header %s reached the backend" % gone)
        for v in ("timeout=55, max=999", "trailers, deflate", "tg-test-proto/1", "must-not-pass"):
            self.assertNotIn(v, values)
        # The proxy may send its own Connection/Keep-Alive for its own hop, never the client's.
        for v in hdr_values(e, "Connection"):
            self.assertNotIn("x-custom-hop", v.lower())
        self.assertEqual(hdr_values(e, "X-End-To-End"), ["must-pass"])
        # the client connection stays usable (keep-alive was requested)
        self.assertEqual(c.get("/echo").status, 200)

    def test_client_cert_headers_stripped(self):
        c = self.conn(self.port)
        spoof = [
            ("X-Forwarded-Clientcert-subjectdn", "CN=mallory"),
            ("x-forwarded-clientcert-issuerdn", "CN=evil CA"),
            ("X-FORWARDED-CLIENTCERT-FINGERPRINT", "00" * 32),
            ("X-Forwarded-ClientCert-ClientVerify", "SUCCESS"),
        ]
        r = c.get("/echo", headers=spoof + [("X-Other", "ok")])
        self.assertEqual(r.status, 200, r)
        e = r.json()
        leaked = [(k, v) for k, v in e["headers"] if k.lower().startswith("x-forwarded-clientcert-")]
        self.assertEqual(leaked, [], "client-sent X-Forwarded-Clientcert-* headers reached the backend")
        self.assertEqual(hdr_values(e, "X-Other"), ["ok"])

    def test_keepalive_100_requests(self):
        c = self.conn(self.port)
        for i in range(100):
            r = c.get("/echo?i=%d" % i)
            self.assertEqual(r.status, 200, "request %d: %r" % (i, r))
            self.assertEqual(r.json()["path"], "/echo?i=%d" % i)
        self.assertEqual(len(self.be.requests("/echo?i=")), 100)
        # Backend connections are kept alive as well (SPEC §5): far fewer than requests.
        self.assertLessEqual(self.be.connections, 10,
                             "%d backend connections for 100 sequential requests" % self.be.connections)

    def test_pipelined_requests_answered_in_order(self):
        c = self.conn(self.port)
        paths = ["/slow?ms=300"] + ["/echo?i=%d" % i for i in range(1, 10)] + ["/whoami"]
        c.send(b"".join(b"GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % p.encode() for p in paths))
        for p in paths:
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            if p.startswith("/echo"):
                self.assertEqual(r.json()["path"], p)
            elif p == "/whoami":
                self.assertEqual(r.body, b"app")
            else:
                self.assertEqual(r.json()["slept_ms"], 300)

    def test_download_64mib_curl(self):
        n = 64 * MIB
        out = os.path.join(self.dir, "download.bin")
        rc, _, err = tg.curl("--cacert", self.pki.ca, "-o", out, "--http1.1",
                             "https://localhost:%d/bytes?n=%d" % (self.port, n), timeout=180)
        self.assertEqual(rc, 0, err)
        self.assertEqual(os.path.getsize(out), n)
        h = hashlib.sha256()
        with open(out, "rb") as f:
            for block in iter(lambda: f.read(MIB), b""):
                h.update(block)
        self.assertEqual(h.hexdigest(), tg.pattern_sha256(n))

    def test_download_chunked(self):
        n = 16 * MIB + 12345
        c = self.conn(self.port, timeout=60)
        h = hashlib.sha256()
        size = [0]

        def sink(d):
            h.update(d)
            size[0] += len(d)
        r = c.request("GET", "/chunked?n=%d" % n, sink=sink)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(size[0], n)
        self.assertEqual(h.hexdigest(), tg.pattern_sha256(n))
        # the connection is still usable after a chunked body
        self.assertEqual(c.get("/whoami").body, b"app")

    def test_upload_32mib_chunked(self):
        n = 32 * MIB
        c = self.conn(self.port, timeout=120)
        c.send(b"POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n"
               b"Content-Type: application/octet-stream\r\n\r\n")
        sizes = [1, 4096, 65536, 1000003]  # uneven chunk sizes
        k = 0
        for block in tg.pattern_chunks(n):
            i = 0
            while i < len(block):
                part = block[i:i + sizes[k % len(sizes)]]
                k += 1
                c.send(b"%x\r\n%s\r\n" % (len(part), part))
                i += len(part)
        c.send(b"0\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        got = r.json()
        self.assertEqual(got["length"], n)
        self.assertEqual(got["sha256"], tg.pattern_sha256(n))

    def test_upload_content_length_curl(self):
        n = 16 * MIB
        src = os.path.join(self.dir, "upload.bin")
        with open(src, "wb") as f:
            for block in tg.pattern_chunks(n):
                f.write(block)
        rc, out, err = tg.curl("--cacert", self.pki.ca, "--http1.1", "--data-binary", "@" + src,
                               "-H", "Content-Type: application/octet-stream",
                               "https://localhost:%d/upload" % self.port, timeout=120)
        self.assertEqual(rc, 0, err)
        got = json.loads(out)
        self.assertEqual(got["length"], n)
        self.assertFalse(got["chunked"])
        self.assertEqual(got["sha256"], tg.pattern_sha256(n))


class TestFixedResponse(tg.TestCase):
    def test_fixed_response(self):
        port = tg.free_port()
        port2 = tg.free_port()
        cfg = self.config()
        cfg["backends"]["hello"] = tg.fixed_backend(body="hello from tollgate\n")
        cfg["backends"]["gone"] = tg.fixed_backend(status=404, content_type="application/json",
                                                   body='{"error": "gone"}')
        cfg["listeners"]["hello"] = tg.https_listener(port, "hello")
        cfg["listeners"]["gone"] = tg.https_listener(port2, "gone")
        self.start(cfg)
        c = self.conn(port)
        for path in ("/", "/any/path?q=1"):
            r = c.get(path)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, b"hello from tollgate\n")
            self.assertTrue(r.header("Content-Type", "").startswith("text/plain"), r)
        r = c.request("POST", "/", body=b"ignored body")
        self.assertEqual((r.status, r.body), (200, b"hello from tollgate\n"))
        r = tg.get(port2, "/")
        self.assertEqual(r.status, 404)
        self.assertEqual(r.body, b'{"error": "gone"}')
        self.assertEqual(r.header("Content-Type"), "application/json")


HEALTH = {"path": "/healthz", "interval": "200ms", "timeout": "500ms", "rise": 1, "fall": 1}


class TestBalancing(tg.TestCase):
    def whoami(self, port, n):
        names = []
        for _ in range(n):
            r = tg.get(port, "/whoami")
            names.append(r.body.decode() if r.status == 200 else r.status)
        return names

    def test_round_robin_spreads(self):
        a, b = self.backend("a"), self.backend("b")
        port = self.simple(tg.pool_backend([a, b], balance="round_robin"))
        names = self.whoami(port, 20)
        self.assertEqual(sorted(set(names)), ["a", "b"], names)
        self.assertLessEqual(abs(names.count("a") - names.count("b")), 2, names)
        # and on one keep-alive connection too
        c = self.conn(port)
        names = [c.get("/whoami").body.decode() for _ in range(10)]
        self.assertLessEqual(abs(names.count("a") - names.count("b")), 2, names)

    def test_least_conn_avoids_busy_server(self):
        a, b = self.backend("a"), self.backend("b")
        port = self.simple(tg.pool_backend([a, b], balance="least_conn"))
        result = {}

        def slow():
            try:
                result["r"] = tg.get(port, "/slow?ms=2500")
            except Exception as e:  # reported below
                result["e"] = e
        t = threading.Thread(target=slow)
        t.start()
        self.addCleanup(t.join, 10)
        busy = self.wait_for(lambda: (a.active and "a") or (b.active and "b"), 5,
                             msg="the slow request to reach a backend")
        idle = "b" if busy == "a" else "a"
        names = self.whoami(port, 8)
        self.assertEqual(names, [idle] * 8, "least_conn sent requests to the busy server")
        t.join(10)
        self.assertNotIn("e", result)
        self.assertEqual(result["r"].status, 200)
        self.assertEqual(result["r"].json()["server"], busy)

    def test_passive_failure_takes_server_out(self):
        good = self.backend("good")
        bad = self.closing_server()  # accepts and closes: every request to it fails
        port = self.simple(tg.pool_backend([good, bad], balance="round_robin"))
        statuses = [tg.get(port, "/whoami").status for _ in range(20)]
        self.assertLessEqual(sum(1 for s in statuses if s != 200), 2, statuses)
        self.assertEqual(statuses[-10:], [200] * 10, statuses)
        self.assertLessEqual(bad.accepts, 3, "the failing server kept getting requests "
                             "(%d connections)" % bad.accepts)

    def test_passive_failure_refused_port(self):
        good = self.backend("good")
        port = self.simple(tg.pool_backend([good, "127.0.0.1:%d" % tg.closed_port()]))
        statuses = [tg.get(port, "/whoami").status for _ in range(20)]
        self.assertLessEqual(sum(1 for s in statuses if s != 200), 2, statuses)
        self.assertEqual(statuses[-10:], [200] * 10, statuses)

    def test_health_check_takes_out_and_brings_back(self):
        a, b = self.backend("a"), self.backend("b")
        b.healthy = False
        port = self.simple(tg.pool_backend([a, b], health=HEALTH))
        self.wait_for(lambda: b.health_checks >= 2, 5, msg="health checks on b")
        time.sleep(0.5)
        names = self.whoami(port, 10)
        self.assertEqual(names, ["a"] * 10, "requests went to a server failing its health check")
        b.healthy = True
        self.wait_for(lambda: "b" in self.whoami(port, 4), 5, interval=0.2,
                      msg="b to come back after passing its health check")
        names = self.whoami(port, 10)
        self.assertLessEqual(abs(names.count("a") - names.count("b")), 2, names)
        self.assertTrue(all(e["path"] == "/healthz" for e in b.requests("/healthz")))


if __name__ == "__main__":
    unittest.main()
