"""The command line and the process (SPEC §2, §3): `tollgate check` with good and bad
configurations (FILE:LINE:COL: messages), usage errors, graceful stop on SIGTERM, and
the access log."""

import json
import os
import re
import signal
import socket
import ssl
import tempfile
import threading
import time
import unittest

import tg

PROBLEM = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<msg>.+)$")


def config_text(pki, extra_cert="", listeners="", global_extra="", backends_extra=""):
    """A small YAML configuration written by hand, so that line numbers are known."""
    c = pki.crt
    k = pki.key
    return """version: 1
global:
  workers: 1
  log_level: info
  access_log: stderr
  drain_timeout: 5s
%(global_extra)scertificates:
  www-ecdsa:
    type: server
    cert: %(ecdsa_crt)s
    key: %(ecdsa_key)s
  shop:
    type: server
    cert: %(shop_crt)s
    key: %(shop_key)s
  clients-ca:
    type: ca
    cert: %(ca_crt)s
%(extra_cert)sbackends:
  app:
    servers: ["127.0.0.1:9"]
  hello:
    fixed_response: { status: 200, content_type: text/plain, body: "hi\\n" }
%(backends_extra)slisteners:
  https-main:
    protocol: https
    listen: "127.0.0.1:%(port)d"
    backend: hello
    certificates:
      default: www-ecdsa
      extended: [shop]
%(listeners)s""" % dict(ecdsa_crt=c("www-ecdsa"), ecdsa_key=k("www-ecdsa"), shop_crt=c("shop"),
                        shop_key=k("shop"), ca_crt=c("clients-ca"), extra_cert=extra_cert,
                        listeners=listeners, global_extra=global_extra,
                        backends_extra=backends_extra, port=tg.free_port())


def line_of(text, needle):
    """1-based number of the line holding NEEDLE (which must occur exactly once)."""
    hits = [i + 1 for i, l in enumerate(text.split("\n")) if needle in l]
    assert len(hits) == 1, (needle, hits)
    return hits[0]


class TestCheck(tg.TestCase):
    def check(self, text):
        path = tg.write_config(self.dir, text)
        rc, out = tg.run_tollgate("check", "-c", path)
        return path, rc, out

    def problems(self, path, out):
        found = []
        for l in out.splitlines():
            m = PROBLEM.match(l.strip())
            if m and m.group("file") in (path, os.path.realpath(path)):
                found.append((int(m.group("line")), int(m.group("col")), m.group("msg")))
        return found

    def assertProblem(self, path, out, lines, col=None, words=()):
        probs = self.problems(path, out)
        ok = [p for p in probs if p[0] in lines and (col is None or p[1] == col)
              and all(re.search(w, p[2], re.I) for w in words)]
        self.assertTrue(ok, "no FILE:LINE:COL: problem at line %s%s mentioning %s; output:\n%s"
                        % (lines, "" if col is None else " col %d" % col, words, out))

    def test_good_config(self):
        path, rc, out = self.check(config_text(self.pki))
        self.assertEqual(rc, 0, out)
        self.assertEqual(self.problems(path, out), [], out)

    def test_good_full_config(self):
        # everything of SPEC §3 that belongs to HTTPS and QUIC listeners
        token = os.path.join(self.dir, "admin.token")
        with open(token, "w") as f:
            f.write("s3cret-token-for-tests\n")
        os.chmod(token, 0o600)
        os.makedirs(os.path.join(self.dir, "store"), exist_ok=True)
        os.makedirs(os.path.join(self.dir, "run"), exist_ok=True)
        port = tg.free_port()
        extra_cert = """  www-rsa:
    type: server
    cert: %s
    key: %s
  wild:
    type: server
    cert: %s
    key: %s
""" % (self.pki.crt("www-rsa"), self.pki.key("www-rsa"), self.pki.crt("wild"), self.pki.key("wild"))
        listeners = """  https-full:
    protocol: https
    listen: "127.0.0.1:%(p)d"
    backend: pool
    security_policy: tls_cipher_policy_1_2_strict_with_1_3
    certificates:
      default: www-ecdsa
      extended: [www-rsa, shop, wild]
    mutual_auth:
      enabled: true
      ca_certificates: [clients-ca]
      verify_depth: 3
  https-public:
    protocol: https
    listen: "127.0.0.1:%(q)d"
    backend: public
    certificates: { default: www-ecdsa }
    alt_svc: quic-main
  quic-main:
    protocol: quic
    listen: "127.0.0.1:%(q)d"
    backend: public
    certificates: { default: www-ecdsa, extended: [shop] }
""" % {"p": port, "q": tg.free_port_both()}
        backends = """  pool:
    servers: [127.0.0.1:8080, "[::1]:8081"]
    balance: least_conn
    connect_timeout: 3s
    response_timeout: 60s
    health_check: { path: /healthz, interval: 5s, timeout: 2s, rise: 2, fall: 3 }
  public:
    fixed_response: { status: 200, body: "public\\n" }
"""
        global_extra = """  pid_file: run/tollgate.pid
  certificate_dir: store
  limits:
    max_connections: 1000
    handshake_timeout: 10s
    header_timeout: 500ms
    idle_timeout: 1m
    max_header_bytes: 32768
"""
        text = config_text(self.pki, extra_cert=extra_cert, listeners=listeners,
                           backends_extra=backends, global_extra=global_extra)
        text += "admin:\n  listen: 127.0.0.1:%d\n  token_file: %s\n" % (tg.free_port(), token)
        path, rc, out = self.check(text)
        self.assertEqual(rc, 0, out)
        self.assertEqual(self.problems(path, out), [], out)

    def test_unknown_key(self):
        text = config_text(self.pki, global_extra="  wrokers: 2\n")
        path, rc, out = self.check(text)
        self.assertEqual(rc, 1, out)
        self.assertProblem(path, out, [line_of(text, "wrokers")], col=3, words=["wrokers"])

    def test_unknown_key_in_listener(self):
        text = config_text(self.pki, listeners="    securty_policy: tls_cipher_policy_1_2\n")
        path, rc, out = self.check(text)
        self.assertEqual(rc, 1, out)
        self.assertProblem(path, out, [line_of(text, "securty_policy")], col=5, words=["securty_policy"])

    def test_every_problem_printed(self):
        text = config_text(self.pki, global_extra="  wrokers: 2\n",
                           listeners="    bakend: app\n")
        path, rc, out = self.check(text)
        self.assertEqual(rc, 1, out)
        self.assertProblem(path, out, [line_of(text, "wrokers")], words=["wrokers"])
        self.assertProblem(path, out, [line_of(text, "bakend")], words=["bakend"])

    def test_mutual_auth_on_quic(self):
        listeners = """  quic-main:
    protocol: quic
    listen: "127.0.0.1:%d"
    backend: hello
    certificates: { default: www-ecdsa }
    mutual_auth:
      enabled: true
      ca_certificates: [clients-ca]
""" % tg.free_port()
        text = config_text(self.pki, listeners=listeners)
        path, rc, out = self.check(text)
        self.assertEqual(rc, 1, out)
        m = line_of(text, "mutual_auth:")
        self.assertProblem(path, out, [m, m + 1], words=["quic-main", "quic(?!-main)"])

    def test_key_certificate_mismatch(self):
        extra = "  bad-pair:\n    type: server\n    cert: %s\n    key: %s\n" % (
            self.pki.crt("www-ecdsa"), self.pki.key("shop"))
        text = config_text(self.pki, extra_cert=extra)
        path, rc, out = self.check(text)
        self.assertEqual(rc, 1, out)
        first = line_of(text, "bad-pair:")
        self.assertProblem(path, out, [first, first + 1, first + 2, first + 3], words=["bad-pair", "key"])

    def test_unknown_reference(self):
        text = config_text(self.pki).replace("    backend: hello\n", "    backend: nope\n")
        path, rc, out = self.check(text)
        self.assertEqual(rc, 1, out)
        self.assertProblem(path, out, [line_of(text, "backend: nope")], words=["nope"])

    def test_run_refuses_bad_config(self):
        text = config_text(self.pki, global_extra="  wrokers: 2\n")
        port = int(re.search(r'listen: "127.0.0.1:(\d+)"', text).group(1))
        path = tg.write_config(self.dir, text)
        rc, out = tg.run_tollgate("run", "-c", path, timeout=15)
        self.assertEqual(rc, 1, out)
        self.assertProblem(path, out, [line_of(text, "wrokers")], words=["wrokers"])
        self.assertTrue(tg.port_refuses(port))


class TestUsage(unittest.TestCase):
    def test_usage_errors_exit_2(self):
        for args in ([], ["frobnicate"], ["check"], ["run", "--no-such-option"]):
            with self.subTest(args=args):
                rc, out = tg.run_tollgate(*args)
                self.assertEqual(rc, 2, out)

    def test_version(self):
        rc, out = tg.run_tollgate("version")
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"\d+\.\d+")


class TestGracefulStop(tg.TestCase):
    def test_sigterm_finishes_in_flight_request(self):
        be = self.backend("app")
        port = tg.free_port()
        cfg = self.config(drain_timeout="6s", workers=2)
        cfg["backends"]["app"] = tg.pool_backend([be])
        cfg["listeners"]["main"] = tg.https_listener(port, "app")
        d = self.start(cfg, check_exit=False)
        result = {}

        def slow():
            try:
                with tg.HTTPConn(port, timeout=15) as c:
                    result["r"] = c.get("/slow?ms=2500")
            except Exception as e:
                result["e"] = e
        t = threading.Thread(target=slow)
        t.start()
        self.addCleanup(t.join, 15)
        self.wait_for(lambda: be.active == 1, 5, msg="the slow request to reach the backend")
        t0 = time.monotonic()
        d.signal(signal.SIGTERM)

        # New connections are refused soon after SIGTERM, while the slow one still runs.
        def refused():
            try:
                with tg.tls_connect(port, tg.client_context(), timeout=2):
                    return False
            except (ConnectionRefusedError, ConnectionResetError, ssl.SSLError, tg.ConnectionClosed):
                return True
            except OSError as e:
                return not isinstance(e, socket.timeout)
        self.wait_for(refused, 1.5, interval=0.1, msg="new connections to be refused after SIGTERM")
        self.assertTrue(t.is_alive() and be.active == 1,
                        "the in-flight request ended before new connections were refused")
        t.join(15)
        self.assertNotIn("e", result, result.get("e"))
        self.assertEqual(result["r"].status, 200)
        self.assertEqual(result["r"].json()["slept_ms"], 2500)
        rc = d.proc.wait(8)
        elapsed = time.monotonic() - t0
        self.assertEqual(rc, 0, d.stderr_tail())
        self.assertLess(elapsed, 6.5, "exited after drain_timeout")

    def test_sigterm_closes_idle_connections_at_once(self):
        be = self.backend("app")
        port = tg.free_port()
        cfg = self.config(drain_timeout="20s")
        cfg["backends"]["app"] = tg.pool_backend([be])
        cfg["listeners"]["main"] = tg.https_listener(port, "app")
        d = self.start(cfg, check_exit=False)
        c = self.conn(port)
        self.assertEqual(c.get("/whoami").status, 200)  # now idle, kept alive
        t0 = time.monotonic()
        d.signal(signal.SIGTERM)
        self.assertTrue(c.closed_by_peer(5), "idle keep-alive connection not closed on SIGTERM")
        rc = d.proc.wait(10)
        self.assertEqual(rc, 0, d.stderr_tail())
        self.assertLess(time.monotonic() - t0, 5, "an idle connection held the stop for drain_timeout")

    def test_drain_timeout_bounds_the_stop(self):
        be = self.backend("app")
        port = tg.free_port()
        cfg = self.config(drain_timeout="1s")
        cfg["backends"]["app"] = tg.pool_backend([be])
        cfg["listeners"]["main"] = tg.https_listener(port, "app")
        d = self.start(cfg, check_exit=False)
        c = self.conn(port, timeout=15)
        c.send_request("GET", "/slow?ms=8000")
        self.wait_for(lambda: be.active == 1, 5, msg="the slow request to reach the backend")
        t0 = time.monotonic()
        d.signal(signal.SIGTERM)
        rc = d.proc.wait(8)
        self.assertLess(time.monotonic() - t0, 2.5, "the stop took longer than drain_timeout (1s)")
        self.assertEqual(rc, 0, d.stderr_tail())
        self.assertTrue(c.closed_by_peer(2), "the client connection was left open")

    def test_sigint_stops_too(self):
        port = tg.free_port()
        cfg = self.config()
        cfg["backends"]["hello"] = tg.fixed_backend(body="x")
        cfg["listeners"]["main"] = tg.https_listener(port, "hello")
        d = self.start(cfg, check_exit=False)
        d.signal(signal.SIGINT)
        self.assertEqual(d.proc.wait(8), 0, d.stderr_tail())
        self.assertTrue(tg.port_refuses(port))


class TestSignalsAtStart(tg.TestCase):
    """A signal that arrives once the listener accepts is the daemon's to handle: a
    supervisor that reloads or stops as soon as the port answers must not kill it."""

    def start_and_signal(self, sig):
        port = tg.free_port()
        cfg = self.config()
        cfg["backends"]["hello"] = tg.fixed_backend(body="x")
        cfg["listeners"]["main"] = tg.https_listener(port, "hello")
        d = tg.Daemon(tempfile.mkdtemp(dir=self.dir), cfg)
        self.addCleanup(d.kill)
        d.start()
        deadline = time.monotonic() + 10
        while True:  # no sleep: signal in the first instant the port accepts
            self.assertIsNone(d.proc.poll(), d.stderr_tail())
            self.assertLess(time.monotonic(), deadline, "the port never answered")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                continue
        d.signal(sig)
        return d

    def test_sighup_right_after_listening_reloads(self):
        for _ in range(15):
            d = self.start_and_signal(signal.SIGHUP)
            self.wait_for(lambda: "reloaded " in d.stderr_text() or d.proc.poll() is not None,
                          10, msg="a reload")
            self.assertIsNone(d.proc.poll(), "SIGHUP killed the daemon\n" + d.stderr_tail())
            d.stop_and_check()

    def test_sigterm_right_after_listening_stops_cleanly(self):
        for _ in range(15):
            d = self.start_and_signal(signal.SIGTERM)
            self.assertEqual(d.proc.wait(10), 0, d.stderr_tail())


class TestAccessLog(tg.TestCase):
    def check_entry(self, e, listener, sni, resumed, method, path, status, backend_server,
                    min_in, min_out):
        # bytes_in/bytes_out: whether they count the head too is not fixed by SPEC (nginx and
        # HAProxy do, Envoy counts bodies only), so only "at least the body" is checked.
        missing = [k for k in tg.ACCESS_LOG_KEYS if k not in e]
        self.assertEqual(missing, [], "access log line lacks keys: %r" % e)
        self.assertTrue(e["time"], e)
        self.assertEqual(e["listener"], listener)
        self.assertTrue(str(e["client"]).startswith("127.0.0.1"), e)
        self.assertEqual(e["sni"], sni)
        self.assertIn("1.3", str(e["tls_version"]), e)
        self.assertIsInstance(e["cipher"], str)
        self.assertTrue(e["cipher"], e)
        self.assertIs(e["resumed"], resumed, e)
        self.assertEqual(e["method"], method)
        self.assertTrue(str(e["path"]).startswith(path), e)
        self.assertEqual(e["status"], status)
        self.assertIsInstance(e["bytes_in"], int)
        self.assertIsInstance(e["bytes_out"], int)
        self.assertGreaterEqual(e["bytes_in"], min_in, e)
        self.assertGreaterEqual(e["bytes_out"], min_out, e)
        self.assertIsInstance(e["duration_ms"], (int, float))
        self.assertGreaterEqual(e["duration_ms"], 0)
        if backend_server is not None:
            self.assertEqual(e["backend_server"], backend_server, e)

    def test_access_log_file(self):
        be = self.backend("app")
        port = tg.free_port()
        log = os.path.join(self.dir, "access.log")
        cfg = self.config(access_log=log)
        cfg["backends"]["app"] = tg.pool_backend([be])
        cfg["listeners"]["main"] = tg.https_listener(port, "app")
        d = self.start(cfg)
        ctx = tg.client_context()
        with tg.HTTPConn(port, ctx, sni="www.example.com") as c:
            r = c.get("/slow?ms=200&first=1", host="www.example.com")
            self.assertEqual(r.status, 200)
            first_len = len(r.body)
            cipher = c.sock.cipher()[0]
            session = c.session()
        with tg.HTTPConn(port, ctx, sni="www.example.com", session=session) as c:
            r = c.request("POST", "/echo?second=1", body=b"u" * 3000, host="www.example.com")
            self.assertEqual(r.status, 200)
            second_len = len(r.body)
            self.assertTrue(c.sock.session_reused)
        d.stop_and_check()
        with open(log) as f:
            lines = [l for l in f.read().splitlines() if l.strip()]
        entries = [json.loads(l) for l in lines]  # every line is one JSON object
        self.assertTrue(all(isinstance(e, dict) for e in entries))
        first = [e for e in entries if "first=1" in str(e.get("path"))]
        second = [e for e in entries if "second=1" in str(e.get("path"))]
        self.assertEqual(len(first), 1, lines)
        self.assertEqual(len(second), 1, lines)
        self.check_entry(first[0], "main", "www.example.com", False, "GET", "/slow", 200, be.addr,
                         0, first_len)
        self.check_entry(second[0], "main", "www.example.com", True, "POST", "/echo", 200, be.addr,
                         3000, second_len)
        self.assertEqual(first[0]["cipher"], cipher)
        self.assertGreaterEqual(first[0]["duration_ms"], 150, first[0])

    def test_access_log_stderr_default(self):
        be = self.backend("app")
        port = tg.free_port()
        cfg = self.config()
        del cfg["global"]["access_log"]  # the default is stderr
        cfg["backends"]["app"] = tg.pool_backend(["127.0.0.1:%d" % tg.closed_port()])
        cfg["backends"]["ok"] = tg.pool_backend([be])
        port2 = tg.free_port()
        cfg["listeners"]["broken"] = tg.https_listener(port, "app")
        cfg["listeners"]["fine"] = tg.https_listener(port2, "ok")
        d = self.start(cfg)
        r = tg.get(port2, "/whoami?log=ok", sni="shop.example.com", ctx=tg.client_context(verify=False))
        self.assertEqual((r.status, r.body), (200, b"app"))
        self.assertEqual(tg.get(port, "/echo?log=502").status, 502)
        ok = d.wait_access_log(lambda e: "log=ok" in str(e.get("path")))
        bad = d.wait_access_log(lambda e: "log=502" in str(e.get("path")))
        self.assertEqual(len(ok), 1, d.stderr_tail())
        self.assertEqual(len(bad), 1, d.stderr_tail())
        self.check_entry(ok[0], "fine", "shop.example.com", False, "GET", "/whoami", 200, be.addr,
                         0, len(r.body))
        self.check_entry(bad[0], "broken", "localhost", False, "GET", "/echo", 502, None, 0, 1)


if __name__ == "__main__":
    unittest.main()
