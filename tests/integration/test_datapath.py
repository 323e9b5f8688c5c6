"""The data path under requests no client should be able to break it with (issue "A data
path no client can break"): each test reproduces one defect found at cc07d57 against the
running daemon with real peers, and must fail on that code."""

import os
import signal
import socket
import ssl
import threading
import time
import unittest
import urllib.request

import tg


class _RawServer:
    """A raw HTTP/1.1 backend on a port of its own, a thread a connection; subclasses say
    what one connection gets (serve)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve_closing, args=(c,), daemon=True).start()

    def _serve_closing(self, c):
        with c:
            try:
                self.serve(c)
            except OSError:
                pass

    def close(self):
        self.closed = True
        self.sock.close()


class _FixedServer(_RawServer):
    """Answers every request on a kept-alive connection with the same small response, as
    fast as it can."""

    def __init__(self, body=b"ok"):
        self.resp = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        super().__init__()

    def serve(self, c):
        buf = b""
        while True:
            data = c.recv(65536)
            if not data:
                return
            buf += data
            n = buf.count(b"\r\n\r\n")
            if n:
                buf = buf[buf.rfind(b"\r\n\r\n") + 4:]
                c.sendall(self.resp * n)


class _EchoPathServer(_RawServer):
    """Answers with the request's path in a header, as some backends do (a redirect's
    Location, say): a long path makes a response head too big for the proxy. It counts
    the requests it saw."""

    def __init__(self, name):
        self.name = name.encode()
        self.requests = 0
        super().__init__()

    def serve(self, c):
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                data = c.recv(65536)
                if not data:
                    return
                buf += data
            head, buf = buf.split(b"\r\n\r\n", 1)
            path = head.split(b" ")[1]
            self.requests += 1
            c.sendall(b"HTTP/1.1 200 OK\r\nX-Path: %s\r\nContent-Length: %d\r\n\r\n%s"
                      % (path, len(self.name), self.name))


class TestNoRequestTakesServersOut(tg.TestCase):
    """SPEC §5: a response the proxy cannot use is a 502 for that request and nothing
    more; it used to take the server out for 10 s, and a bodyless request was retried on
    every server until all were out (503 for everyone)."""

    def servers(self, n):
        out = []
        for i in range(n):
            s = _EchoPathServer("s%d" % i)
            self.addCleanup(s.close)
            out.append(s)
        return out

    def attack_then_serve(self, n):
        srvs = self.servers(n)
        port = self.simple(tg.pool_backend([s.addr for s in srvs]))
        c = self.conn(port)
        r = c.get("/" + "a" * 20000)  # echoed back: a response head over 16 KiB
        self.assertEqual(r.status, 502, r)
        self.assertEqual(sum(s.requests for s in srvs), 1, "the bad answer was retried")
        for i in range(4 * n):
            r = tg.get(port, "/ok?i=%d" % i)
            self.assertEqual(r.status, 200, "request %d after the attack: %r%s"
                             % (i, r, self.log_tail()))
        self.assertTrue(all(s.requests > 1 for s in srvs), [s.requests for s in srvs])

    def test_one_server(self):
        self.attack_then_serve(1)

    def test_two_servers(self):
        self.attack_then_serve(2)


class TestRetries(tg.TestCase):
    """SPEC §5: a request goes to a second server only when the first cannot have acted on
    it, or its method is idempotent; POST, PATCH and LOCK are never sent twice."""

    def two(self):
        a, b = self.backend("a"), self.backend("b")
        # max_fails 0: every reset counts as a failure, and ejection is not what is tested.
        return a, b, self.simple(tg.pool_backend([a, b], max_fails=0))

    def test_post_is_never_sent_twice(self):
        a, b, port = self.two()
        for method in ("POST", "PATCH", "LOCK"):
            with self.subTest(method=method):
                a.clear(), b.clear()
                c = self.conn(port)
                r = c.request(method, "/reset")  # read, then closed with a reset
                self.assertEqual(r.status, 502, r)
                seen = len(a.requests("/reset")) + len(b.requests("/reset"))
                self.assertEqual(seen, 1, "%s reached %d servers" % (method, seen))

    def test_idempotent_request_is_retried(self):
        a, b, port = self.two()
        c = self.conn(port)
        r = c.request("GET", "/reset")
        self.assertEqual(r.status, 502, r)
        self.assertEqual(len(a.requests("/reset")) + len(b.requests("/reset")), 2)

    def test_connect_failure_is_retried_for_any_method(self):
        good = self.backend("good")
        dead = tg.closed_port()
        port = self.simple(tg.pool_backend(["127.0.0.1:%d" % dead, good], max_fails=0))
        for i in range(4):
            r = self.conn(port).request("POST", "/echo", body=b"x" * 10)
            self.assertEqual(r.status, 200, r)
        self.assertEqual(len(good.requests("/echo")), 4)


class TestPassiveHealth(tg.TestCase):
    """SPEC §5: max_fails failures within fail_timeout take a server out for fail_timeout;
    a backend's only server never."""

    def test_max_fails_within_fail_timeout(self):
        a, b = self.backend("a"), self.backend("b")
        port = self.simple(tg.pool_backend([a, b], max_fails=2, fail_timeout="2s"))
        for _ in range(2):  # two resets of whichever server gets them
            self.conn(port).request("POST", "/reset")
        # At most one server has failed twice: requests still spread over both or go to
        # the other; none is refused.
        for i in range(6):
            self.assertEqual(tg.get(port, "/whoami").status, 200)

    def test_only_server_is_never_taken_out(self):
        a = self.backend("a")
        port = self.simple(tg.pool_backend([a], max_fails=1, fail_timeout="30s"))
        self.assertEqual(self.conn(port).request("POST", "/reset").status, 502)
        self.assertEqual(tg.get(port, "/whoami").status, 200)

    def test_failed_server_stays_out_for_fail_timeout(self):
        good = self.backend("good")
        dead = "127.0.0.1:%d" % tg.closed_port()
        port = self.simple(tg.pool_backend([dead, good], max_fails=1, fail_timeout="30s"))
        for i in range(4):
            self.assertEqual(tg.get(port, "/whoami").status, 200)
        self.assertEqual(self.daemon.stderr_text().count("connect failed"), 1,
                         self.log_tail())


class TestHealthAcrossReloads(tg.TestCase):
    """SPEC §5: health state survives reloads for servers that stay; a dead server got
    traffic again after every reload until its checks failed anew."""

    def test_down_server_stays_down(self):
        a, b = self.backend("a"), self.backend("b")
        b.healthy = False
        health = {"path": "/healthz", "interval": "1s", "timeout": "1s", "rise": 2, "fall": 2}
        port = tg.free_port()
        cfg = self.config()
        cfg["backends"]["app"] = tg.pool_backend([a, b], health=health)
        cfg["listeners"]["main"] = tg.https_listener(port, "app")
        d = self.start(cfg)
        self.wait_for(lambda: b.health_checks >= 2, 5, msg="two health checks on b")
        time.sleep(0.2)
        for i in range(3):
            cfg["backends"]["app"]["connect_timeout"] = "%ds" % (i + 2)
            d.sighup_reload(cfg)
            # Right after the reload, before any new check of b could run.
            names = [tg.get(port, "/whoami").body for _ in range(4)]
            self.assertEqual(names, [b"a"] * 4, "after reload %d%s" % (i + 1, self.log_tail()))


class _GiveUpServer(_RawServer):
    """A backend with a body read timeout of its own (Go's ReadTimeout, gunicorn's timeout):
    it answers what comes whole, and closes a connection whose body stalls for 0.5 s."""

    def serve(self, c):
        c.settimeout(0.5)
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = c.recv(65536)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                want = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        want = int(line.split(b":")[1])
                while len(buf) < want:
                    data = c.recv(65536)
                    if not data:
                        return
                    buf += data
                buf = buf[want:]
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        except socket.timeout:
            return  # gave up on a stalled body: closed


class TestSlowClientsTakeNothingOut(tg.TestCase):
    """A client that starts uploads and stalls makes each backend give up and close: that is
    no failure of the server (with max_fails 1 both were out, and everyone got 503)."""

    def test_stalled_uploads(self):
        srvs = [_GiveUpServer(), _GiveUpServer()]
        for s in srvs:
            self.addCleanup(s.close)
        port = self.simple(tg.pool_backend([s.addr for s in srvs], max_fails=1,
                                           fail_timeout="30s"))
        stalled = []
        for _ in range(4):
            c = self.conn(port, timeout=10)
            c.send(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n0123456789")
            stalled.append(c)
        time.sleep(1.5)
        for i in range(6):
            self.assertEqual(tg.get(port, "/after").status, 200, "request %d%s"
                             % (i, self.log_tail()))


class TestAllOutComeBack(tg.TestCase):
    """When passive detection has every server out, they come back rather than leave the
    backend answering 503 for fail_timeout (nginx does the same)."""

    def test_both_out_then_served(self):
        a, b = self.backend("a"), self.backend("b")
        port = self.simple(tg.pool_backend([a, b], max_fails=1, fail_timeout="30s"))
        for _ in range(2):  # a reset of a whole request counts: each server once
            self.assertEqual(self.conn(port).request("POST", "/reset", body=b"x").status, 502)
        self.assertEqual(self.daemon.stderr_text().count("out for 30000 ms"), 2, self.log_tail())
        self.assertEqual(tg.get(port, "/whoami").status, 200)


class TestResponseTimeout(tg.TestCase):
    """SPEC §5: the response timeout measures the backend's silence, not the upload: an
    upload that takes twice the timeout while making progress is answered."""

    def test_slow_upload_is_not_a_timeout(self):
        be = self.backend("app")
        port = self.simple(tg.pool_backend([be], response_timeout="1s"))
        c = self.conn(port, timeout=20)
        parts = 8
        c.send(b"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n"
               % (parts * 1000))
        for _ in range(parts):  # 2.8 s in all
            time.sleep(0.35)
            c.send(b"u" * 1000)
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["length"], parts * 1000)

    def test_silent_backend_still_times_out(self):
        be = self.backend("app")
        port = self.simple(tg.pool_backend([be], response_timeout="1s"))
        t = time.monotonic()
        r = self.conn(port).get("/slow?ms=3000")
        self.assertEqual(r.status, 504, r)
        self.assertLess(time.monotonic() - t, 2.9)


class TestHttp10(tg.TestCase):
    """An HTTP/1.0 client knows no chunked coding: a body of unknown length reaches it as
    the bytes themselves, ended by the close, even when it asked for keep-alive."""

    def test_keep_alive_request_to_a_chunked_backend(self):
        be = self.backend("app")
        port = self.simple(tg.pool_backend([be]))
        with tg.tls_connect(port) as s:
            s.sendall(b"GET /chunked?n=5000 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            data = b""
            s.settimeout(10)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        self.assertNotIn(b"transfer-encoding", head.lower(), head)
        self.assertEqual(len(body), 5000, head)
        self.assertEqual(body, b"".join(tg.pattern_chunks(5000)))


class TestAccessLogReopen(tg.TestCase):
    """logrotate's way (rename, then SIGUSR1) and reloads that move the access log: each
    line lands in the current file, and no descriptor is left behind (one FILE leaked per
    SIGUSR1 or per such reload before)."""

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.daemon.proc.pid))

    def test_rotation_and_moves_leak_nothing(self):
        log = os.path.join(self.dir, "access.log")
        port = tg.free_port()
        cfg = self.config(access_log=log)
        cfg["backends"]["app"] = tg.fixed_backend(body="hi\n")
        cfg["listeners"]["main"] = tg.https_listener(port, "app")
        d = self.start(cfg)
        self.assertEqual(tg.get(port, "/first").status, 200)
        base = self.fds()
        for i in range(12):
            os.rename(log, log + ".%d" % i)
            d.signal(signal.SIGUSR1)
            self.wait_for(lambda: d.stderr_text().count("access log reopened") > i,
                          msg="the reopen")
            self.assertEqual(tg.get(port, "/rotated-%d" % i).status, 200)
            self.assertEqual([e["path"] for e in d.wait_access_log(
                lambda e: e["path"] == "/rotated-%d" % i, path=log)], ["/rotated-%d" % i])
        for i in range(12):
            cfg["global"]["access_log"] = os.path.join(self.dir, "moved-%d.log" % i)
            d.sighup_reload(cfg)
            self.assertEqual(tg.get(port, "/moved-%d" % i).status, 200)
            self.assertTrue(d.wait_access_log(lambda e: e["path"] == "/moved-%d" % i,
                                              path=cfg["global"]["access_log"]))
        self.assertLessEqual(self.fds(), base + 1, "descriptors after 24 reopenings")


class TestScannerNoise(tg.TestCase):
    """A scanner's failed handshakes: every one counted in the metric, but not every one a
    log line (each was a warning line before)."""

    def test_failures_are_counted_and_summarised(self):
        admin = tg.free_port()
        token = os.path.join(self.dir, "admin.token")
        with open(token, "w") as f:
            f.write("0123456789abcdef-token\n")
        port = tg.free_port()
        cfg = self.config(access_log="off")
        cfg["admin"] = {"listen": "127.0.0.1:%d" % admin, "token_file": token}
        cfg["backends"]["app"] = tg.fixed_backend(body="hi\n")
        cfg["listeners"]["scanned"] = tg.https_listener(port, "app")
        d = self.start(cfg, ports=[port, admin])
        n = 150
        for _ in range(n):  # no suite in common: each handshake fails
            self.assertEqual(tg.raw_client_hello(port, [0x000A])[0], "alert")
        def counted():
            req = urllib.request.Request("http://127.0.0.1:%d/metrics" % admin, headers={
                "Authorization": "Bearer 0123456789abcdef-token"})
            with urllib.request.urlopen(req, timeout=5) as r:
                text = r.read().decode()
            return sum(float(l.split()[-1]) for l in text.splitlines()
                       if l.startswith('tollgate_handshake_failures_total{listener="scanned"'))
        self.wait_for(lambda: counted() == n, msg="%d failures counted" % n)
        lines = [l for l in d.stderr_text().splitlines()
                 if 'listener "scanned": TLS handshake with' in l]
        self.assertLessEqual(len(lines), 20, "%d lines for %d failures" % (len(lines), n))


class TestControlSocket(tg.TestCase):
    """`tollgate reload` reaches the instance through a unix socket next to its pid file:
    any path must work (sun_path holds 107 bytes), and a local client that connects and
    says nothing must not stop the main thread (it read synchronously for 5 s)."""

    def start_hello(self, run_dir):
        port = tg.free_port()
        cfg = self.config()
        cfg["global"]["pid_file"] = os.path.join(run_dir, "tollgate.pid")
        cfg["backends"]["app"] = tg.fixed_backend(body="hi\n")
        cfg["listeners"]["main"] = tg.https_listener(port, "app")
        return self.start(cfg), port

    def test_long_socket_path(self):
        deep = os.path.join(self.dir, *(["a-rather-long-directory-name"] * 5))
        os.makedirs(deep)
        d, port = self.start_hello(deep)
        self.assertGreater(len(os.path.join(deep, "tollgate.ctl")), 108)
        rc, out = tg.run_tollgate("reload", "-c", d.conf_path)
        self.assertEqual(rc, 0, out + self.log_tail())
        self.assertIn("generation 2", out)

    def test_stalled_client_does_not_block(self):
        d, port = self.start_hello(os.path.join(self.dir, "run"))
        # The main loop runs once this is logged; the listening ports come up before it.
        self.wait_for(lambda: " started: " in d.stderr_text(), msg="the start line")
        time.sleep(0.3)
        ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(ctl.close)
        ctl.connect(os.path.join(self.dir, "run", "tollgate.ctl"))
        ctl.send(b"rel")  # and nothing more
        time.sleep(0.2)
        t = time.monotonic()
        # (No SIGHUP here: a signal interrupts a blocking read and would hide the stall.)
        rc, out = tg.run_tollgate("reload", "-c", d.conf_path)
        self.assertEqual(rc, 0, out)
        self.assertLess(time.monotonic() - t, 3.0, "the main thread waited on the stalled client")
        self.assertEqual(tg.get(port, "/").status, 200)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class TestPipelineNeverRead(tg.TestCase):
    """A client that pipelines requests and never reads their answers: the proxy stops
    taking requests once a buffer of answers waits (it held every answer: 2 MB of requests
    for a 12 kB page took the process from 24 to 336 MB)."""

    def test_memory_stays_bounded(self):
        port = self.simple(tg.fixed_backend(body="p" * 12000), access_log="off")
        pid = self.daemon.proc.pid
        self.assertEqual(tg.get(port, "/").status, 200)
        before = rss_kib(pid)
        s = tg.tls_connect(port)
        self.addCleanup(s.close)
        s.setblocking(False)
        req = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n" * 1000
        sent, deadline = 0, time.monotonic() + 5
        while sent < 2 * 1000 * 1000 and time.monotonic() < deadline:
            try:
                sent += s.send(req)
            except (ssl.SSLWantWriteError, BlockingIOError):
                time.sleep(0.01)
        time.sleep(1.0)
        grown = rss_kib(pid) - before
        print("\n[pipeline] %d bytes of requests never read: RSS grew %d KiB" % (sent, grown))
        self.assertLess(grown, 40 * 1024, "RSS grew %d KiB after %d bytes of requests that were "
                        "never read" % (grown, sent))


class TestAnswersMadeAreDelivered(tg.TestCase):
    """A reload or a stop never throws away answers the proxy already made (and logged):
    a connection between requests may still be flushing them (512 of 1000 arrived)."""

    def answered_then(self, action):
        port = tg.free_port()
        log = os.path.join(self.dir, "access.log")
        cfg = self.config(access_log=log)
        cfg["backends"]["page"] = tg.fixed_backend(body="p" * 12000)
        cfg["listeners"]["h"] = tg.https_listener(port, "page")
        d = self.start(cfg, check_exit=False)
        s = tg.tls_connect(port)
        self.addCleanup(s.close)
        s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n" * 1000)
        time.sleep(1.0)
        action(d, cfg)
        s.settimeout(10)
        got = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        except (OSError, ssl.SSLError):
            pass
        made = len(d.wait_access_log(lambda e: e["status"] == 200, path=log))
        received = got.count(b"HTTP/1.1 200")
        self.assertGreaterEqual(made, 1)
        self.assertEqual(received, made, "answers made and logged, but not delivered")
        got = got.replace(b"Connection: close\r\n", b"")  # the last answer says so
        one = len(got) // received  # the answers are all alike: no byte more, none less
        self.assertEqual(one * received, len(got), "a truncated answer")
        self.assertEqual(got[:one].count(b"HTTP/1.1 200"), 1)

    def test_reload_that_changes_verification(self):
        def reload(d, cfg):
            cfg["listeners"]["h"]["mutual_auth"] = {"enabled": True,
                                                    "ca_certificates": ["clients-ca"]}
            d.sighup_reload(cfg)
        self.answered_then(reload)

    def test_graceful_stop(self):
        self.answered_then(lambda d, cfg: d.signal(signal.SIGTERM))


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
