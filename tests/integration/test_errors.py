"""Errors the proxy answers itself (SPEC §5), each provoked for real: 400 malformed
request, 408 header timeout, 431 head too large, 502 backend refused/reset/bad response,
503 no healthy server, 504 backend timeout. Each comes with a short text body."""

import select
import ssl
import time
import unittest

import tg

HEALTH = {"path": "/healthz", "interval": "200ms", "timeout": "500ms", "rise": 1, "fall": 1}


class ErrorCase(tg.TestCase):
    def assertProxyError(self, r, status):
        self.assertIsNotNone(r, "no response at all")
        self.assertEqual(r.status, status, r)
        self.assertGreater(len(r.body), 0, "error answer without a body: %r" % r)
        self.assertLess(len(r.body), 1024, "error body is not short: %r" % r)
        self.assertNotIn(b"<html", r.body.lower(), "error body is not short text")

    def raw(self, port, data, timeout=5):
        c = self.conn(port, timeout=timeout)
        c.send(data)
        return c, c.read_response()


class TestClientErrors(ErrorCase):
    def setUp(self):
        super().setUp()
        self.be = self.backend("app")
        self.port = self.simple(tg.pool_backend([self.be]),
                                limits={"header_timeout": "1s", "max_header_bytes": 4096})

    def assert_not_forwarded(self, marker):
        time.sleep(0.2)
        self.assertEqual([e["path"] for e in self.be.requests() if marker in e["path"]], [],
                         "the malformed request reached the backend")

    def test_400_malformed_request_line(self):
        _, r = self.raw(self.port, b"THIS IS NOT HTTP\r\n\r\n")
        self.assertProxyError(r, 400)

    def test_400_bare_lf_line_ends(self):
        # Answered at once, not after the header timeout: a bare-LF head never has the
        # CRLFCRLF that ends a head.
        _, r = self.raw(self.port, b"GET /echo?m=barelf HTTP/1.1\nHost: localhost\n\n")
        self.assertProxyError(r, 400)
        self.assert_not_forwarded("m=barelf")

    def test_400_bad_header_line(self):
        _, r = self.raw(self.port, b"GET /echo?m=badline HTTP/1.1\r\nHost: localhost\r\n"
                                   b"no colon in this line\r\n\r\n")
        self.assertProxyError(r, 400)
        self.assert_not_forwarded("m=badline")

    def test_400_content_length_and_transfer_encoding(self):
        _, r = self.raw(self.port, b"POST /echo?m=clte HTTP/1.1\r\nHost: localhost\r\n"
                                   b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                                   b"0\r\n\r\n")
        self.assertProxyError(r, 400)
        self.assert_not_forwarded("m=clte")

    def test_400_conflicting_content_lengths(self):
        _, r = self.raw(self.port, b"POST /echo?m=clcl HTTP/1.1\r\nHost: localhost\r\n"
                                   b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!")
        self.assertProxyError(r, 400)
        self.assert_not_forwarded("m=clcl")

    def test_400_bad_chunking(self):
        _, r = self.raw(self.port, b"POST /upload?m=badchunk HTTP/1.1\r\nHost: localhost\r\n"
                                   b"Transfer-Encoding: chunked\r\n\r\nzz-not-hex\r\nabc\r\n0\r\n\r\n")
        self.assertProxyError(r, 400)

    def test_408_half_a_head(self):
        c = self.conn(self.port, timeout=6)
        t0 = time.monotonic()
        c.send(b"GET /echo?m=half HTTP/1.1\r\nHost: localhost\r\nX-Half: ")
        r = c.read_response()
        elapsed = time.monotonic() - t0
        self.assertProxyError(r, 408)
        self.assertGreaterEqual(elapsed, 0.8, "408 came before header_timeout (1s)")
        self.assertLess(elapsed, 3.5, "408 came long after header_timeout (1s)")
        self.assertTrue(c.closed_by_peer(3), "connection left open after 408")
        self.assert_not_forwarded("m=half")

    def test_408_slowloris_drip(self):
        # Bytes keep arriving, but the whole head does not arrive within header_timeout.
        c = self.conn(self.port, timeout=6)
        head = b"GET /echo?m=drip HTTP/1.1\r\nHost: localhost\r\nX-Drip: " + b"a" * 100
        t0 = time.monotonic()
        got = None
        for i in range(len(head)):
            try:
                c.send(head[i:i + 1])
            except (OSError, ssl.SSLError):
                break
            # stop dripping as soon as the proxy answers (or closes)
            readable, _, _ = select.select([c.sock], [], [], 0.1)
            if readable or time.monotonic() - t0 > 4:
                break
        c.sock.settimeout(3)
        try:
            got = c.read_response()
        except (tg.ConnectionClosed, OSError, ssl.SSLError):
            got = None
        elapsed = time.monotonic() - t0
        self.assertProxyError(got, 408)
        self.assertLess(elapsed, 4.5, "the dripping client was kept past header_timeout")

    def test_431_head_too_large(self):
        _, r = self.raw(self.port, b"GET /echo?m=big HTTP/1.1\r\nHost: localhost\r\nX-Big: "
                        + b"x" * 6000 + b"\r\n\r\n")
        self.assertProxyError(r, 431)
        self.assert_not_forwarded("m=big")
        # many small headers adding up count as well
        many = b"".join(b"X-H%d: %s\r\n" % (i, b"y" * 60) for i in range(100))
        _, r = self.raw(self.port, b"GET /echo?m=many HTTP/1.1\r\nHost: localhost\r\n" + many + b"\r\n")
        self.assertProxyError(r, 431)
        self.assert_not_forwarded("m=many")

    def test_head_under_limit_is_fine(self):
        c = self.conn(self.port)
        r = c.get("/echo", headers=[("X-Big", "x" * 3000)])
        self.assertEqual(r.status, 200, r)


class TestBackendErrors(ErrorCase):
    def test_502_backend_refuses(self):
        port = self.simple(tg.pool_backend(["127.0.0.1:%d" % tg.closed_port()]))
        r = tg.get(port, "/echo")
        self.assertProxyError(r, 502)

    def test_502_backend_resets(self):
        be = self.backend("app")
        port = self.simple(tg.pool_backend([be]))
        r = tg.get(port, "/reset")
        self.assertProxyError(r, 502)
        self.assertTrue(be.requests("/reset"), "the request never reached the backend")

    def test_502_backend_bad_response(self):
        be = self.backend("app")
        port = self.simple(tg.pool_backend([be]))
        r = tg.get(port, "/garbage")
        self.assertProxyError(r, 502)

    def test_502_backend_closes_at_once(self):
        bad = self.closing_server()
        port = self.simple(tg.pool_backend([bad]))
        r = tg.get(port, "/echo")
        self.assertProxyError(r, 502)

    def test_503_no_healthy_server(self):
        be = self.backend("app")
        be.healthy = False
        port = self.simple(tg.pool_backend([be], health=HEALTH))
        self.wait_for(lambda: be.health_checks >= 2, 5, msg="health checks")
        time.sleep(0.3)
        r = tg.get(port, "/echo?m=down")
        self.assertProxyError(r, 503)
        self.assertEqual(be.requests("/echo"), [], "a request went to a server failing its health check")
        # once healthy again, it serves
        be.healthy = True
        self.wait_for(lambda: tg.get(port, "/whoami").status == 200, 5, interval=0.2,
                      msg="the server to come back")

    def test_504_backend_slower_than_response_timeout(self):
        be = self.backend("app")
        port = self.simple(tg.pool_backend([be], response_timeout="1s"))
        c = self.conn(port, timeout=10)
        t0 = time.monotonic()
        r = c.get("/slow?ms=4000")
        elapsed = time.monotonic() - t0
        self.assertProxyError(r, 504)
        self.assertGreaterEqual(elapsed, 0.8)
        self.assertLess(elapsed, 3.0, "504 long after response_timeout (1s)")
        # a fast request afterwards is fine
        self.assertEqual(tg.get(port, "/whoami").status, 200)


if __name__ == "__main__":
    unittest.main()
