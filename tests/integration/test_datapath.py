"""The data path under requests no client should be able to break it with (issue "A data
path no client can break"): each test reproduces one defect found at cc07d57 against the
running daemon with real peers, and must fail on that code."""

import socket
import threading
import time
import unittest

import tg


class _FixedServer:
    """A raw HTTP/1.1 backend that answers every request on a kept-alive connection with
    the same small response, as fast as it can (no thread per request)."""

    def __init__(self, body=b"ok"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.resp = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        buf = b""
        with c:
            while True:
                try:
                    data = c.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                n = buf.count(b"\r\n\r\n")
                if n:
                    buf = buf[buf.rfind(b"\r\n\r\n") + 4:]
                    c.sendall(self.resp * n)

    def close(self):
        self.closed = True
        self.sock.close()


class TestPipelining(tg.TestCase):
    """100 pipelined requests on one connection all get their answers, in order, and the
    connection stays usable (it used to stop after 64 rounds of the state machine and
    hang with no timer armed)."""

    N = 100

    def pipeline(self, port):
        c = self.conn(port, timeout=10)
        c.send(b"".join(b"GET /p?i=%d HTTP/1.1\r\nHost: localhost\r\n\r\n" % i
                        for i in range(self.N)))
        got = []
        for i in range(self.N):
            try:
                r = c.read_response()
            except (socket.timeout, TimeoutError, tg.ConnectionClosed) as e:
                self.fail("answer %d of %d never came (%r)%s" % (i + 1, self.N, e, self.log_tail()))
            got.append(r.status)
        self.assertEqual(got, [200] * self.N)
        self.assertEqual(c.get("/after").status, 200)

    def test_fixed_response_backend(self):
        self.pipeline(self.simple(tg.fixed_backend(body="fixed\n")))

    def test_proxied_backend(self):
        srv = _FixedServer()
        self.addCleanup(srv.close)
        self.pipeline(self.simple(tg.pool_backend([srv.addr])))


class TestReloadsAndRejects(tg.TestCase):
    """A kept-alive connection across reloads whose next request is refused by the
    frontend itself: the access log must name the listener (it used to read the name out
    of a generation the connection no longer held)."""

    def test_rejected_request_after_reloads(self):
        be = self.backend("app")
        port = tg.free_port()
        cfg = self.config(access_log="stderr")
        cfg["backends"]["app"] = tg.pool_backend([be])
        cfg["listeners"]["main-listener"] = tg.https_listener(port, "app")
        d = self.start(cfg)
        c = self.conn(port)
        for i in range(3):
            # Each request routes by the newest generation, then lets it go.
            self.assertEqual(c.get("/echo?i=%d" % i).status, 200)
            cfg["backends"]["app"]["connect_timeout"] = "%ds" % (i + 2)
            d.sighup_reload(cfg)
        # A malformed request on the same connection: the frontend answers 400 itself.
        c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\nBad Header: x\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 400, r)
        entries = d.wait_access_log(lambda e: e.get("status") == 400)
        self.assertEqual([e.get("listener") for e in entries], ["main-listener"],
                         entries + [self.log_tail()])


if __name__ == "__main__":
    unittest.main()
