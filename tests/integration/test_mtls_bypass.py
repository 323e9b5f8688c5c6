"""Every known way around mutual authentication, tried in one place (SPEC §3 Validation,
§4, §5 identity headers, §7 rule 3).

A backend behind a mutual-authentication listener must only ever see requests from
clients whose certificate the handshake verified, and must only ever see the identity
headers tollgate wrote. Each test here is an attack: a path to that backend without a
certificate, or a way to make the backend believe in an identity nobody proved.

Whoever adds a frontend (a protocol, a listener type, a header the backend trusts) adds
it to FRONTENDS below and to every attack that applies, and runs this file.

Frontends today: HTTP/1.1 over TLS (`https`), HTTP/3 over QUIC (`quic`, never verifies
clients: it may not be used as a way in). gtlsclient cannot send headers of its choice,
so header forgery over HTTP/3 is covered where its head is built (tests/unit/test_http.c,
test_fields_forwarded_aliases); over HTTP/1.1 it is covered here against real backends."""

import json
import os
import socket
import ssl
import subprocess
import threading
import time
import unittest
import wsgiref.simple_server

import tg
from test_mtls import MtlsCase, add_cas, identity_headers, mtls, mtls_pki

FRONTENDS = ("https", "quic")

# What a client sends to pass for someone else: our identity headers and the forwarded
# ones, in the spellings a backend may read as ours (CGI merges '_' and '-').
FORGED = [
    ("X-Forwarded-Clientcert-subjectdn", "CN=admin"),
    ("X_Forwarded_Clientcert_subjectdn", "CN=admin"),
    ("X-Forwarded-Clientcert_clientverify", "SUCCESS"),
    ("x_forwarded_clientcert_issuerdn", "CN=evil CA"),
    ("X_FORWARDED_CLIENTCERT_FINGERPRINT", "00" * 32),
    ("X-Forwarded_Clientcert-extra", "x"),
    ("X_Forwarded_Proto", "http"),
    ("X-Forwarded_Port", "1"),
    ("X_Forwarded_Client_Srcport", "1"),
    ("X.Forwarded.Clientcert.subjectdn", "CN=admin"),
    ("X~Forwarded~Clientcert~clientverify", "SUCCESS"),
]


def norm(name):
    """A header name as a CGI-style backend (or a bridge that maps all punctuation) sees it."""
    return "".join(ch if ch.isalnum() else "-" for ch in name.lower())


def forwarded_family(headers):
    return [(k, v) for k, v in headers if norm(k).startswith("x-forwarded-")]


class _WsgiBackend:
    """A real CGI-style backend (wsgiref): answers with the environment variables a WSGI
    application would trust for the client's identity."""

    KEYS = ("HTTP_X_FORWARDED_CLIENTCERT_SUBJECTDN", "HTTP_X_FORWARDED_CLIENTCERT_ISSUERDN",
            "HTTP_X_FORWARDED_CLIENTCERT_FINGERPRINT", "HTTP_X_FORWARDED_CLIENTCERT_CLIENTVERIFY",
            "HTTP_X_FORWARDED_CLIENTCERT_EXTRA", "HTTP_X_FORWARDED_PROTO",
            "HTTP_X_FORWARDED_PORT", "HTTP_X_FORWARDED_CLIENT_SRCPORT", "HTTP_X_FORWARDED_FOR")

    def __init__(self):
        def app(environ, start_response):
            body = json.dumps({k: environ.get(k) for k in self.KEYS}).encode()
            start_response("200 OK", [("Content-Type", "application/json"),
                                      ("Content-Length", str(len(body)))])
            return [body]

        class Quiet(wsgiref.simple_server.WSGIRequestHandler):
            def log_message(self, *a):
                pass

        class Server(wsgiref.simple_server.WSGIServer):
            allow_reuse_address = True

        self.srv = wsgiref.simple_server.make_server("127.0.0.1", 0, app, server_class=Server,
                                                     handler_class=Quiet)
        self.addr = "127.0.0.1:%d" % self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


class TestForgedHeaders(MtlsCase, tg.ClassDaemonCase):
    """Identity and forwarded headers a client writes never reach a backend, in any
    spelling, on a listener with mutual authentication on or off."""

    @classmethod
    def make_config(cls, pki, workdir):
        cls.m = mtls_pki()
        cls.echo = cls.class_backend("app")
        cls.wsgi = _WsgiBackend()
        cls.addClassCleanup(cls.wsgi.close)
        cfg = tg.base_config(pki, workdir)
        add_cas(cfg, cls.m)
        cfg["backends"]["echo"] = tg.pool_backend([cls.echo])
        cfg["backends"]["wsgi"] = tg.pool_backend([cls.wsgi.addr])
        cls.port, cls.off_port = tg.free_port(), tg.free_port()
        cls.wsgi_port, cls.wsgi_off_port = tg.free_port(), tg.free_port()
        L = cfg["listeners"]
        L["main"] = tg.https_listener(cls.port, "echo", mutual_auth=mtls(["mtls-root"]))
        L["off"] = tg.https_listener(cls.off_port, "echo")
        L["wsgi"] = tg.https_listener(cls.wsgi_port, "wsgi", mutual_auth=mtls(["mtls-root"]))
        L["wsgi-off"] = tg.https_listener(cls.wsgi_off_port, "wsgi")
        return cfg

    def test_echo_backend_sees_only_ours(self):
        r, err = self.request(self.port, "good", headers=FORGED)
        self.assertIsNone(err, self.log_tail())
        echo = r.json()
        self.assertIdentity(echo, "good")  # exactly ours, once each, spelled with '-'
        fam = forwarded_family(echo["headers"])
        self.assertEqual(sorted(k for k, _ in fam if "clientcert" not in k.lower()),
                         ["X-Forwarded-Client-Srcport", "X-Forwarded-For", "X-Forwarded-Port",
                          "X-Forwarded-Proto"], fam)
        self.assertTrue(all("_" not in k for k, _ in fam), fam)
        self.assertEqual(dict(fam)["X-Forwarded-Proto"], "https")
        self.assertEqual(dict(fam)["X-Forwarded-Port"], str(self.port))

    def test_echo_backend_no_identity_without_mutual_auth(self):
        for cert in (None, "good"):
            with self.subTest(cert=cert):
                r, err = self.request(self.off_port, cert, headers=FORGED)
                self.assertIsNone(err, self.log_tail())
                self.assertEqual(identity_headers(r.json()), [])
                self.assertEqual([k for k, _ in forwarded_family(r.json()["headers"])
                                  if "_" in k or "clientcert" in k.lower()], [])

    def test_cgi_backend_believes_nothing_forged(self):
        # wsgiref names X_Forwarded_Clientcert_subjectdn and X-Forwarded-Clientcert-subjectdn
        # alike: HTTP_X_FORWARDED_CLIENTCERT_SUBJECTDN.
        r, err = self.request(self.wsgi_off_port, None, headers=FORGED)
        self.assertIsNone(err, self.log_tail())
        env = r.json()
        for k in _WsgiBackend.KEYS:
            if "CLIENTCERT" in k:
                self.assertIsNone(env[k], (k, env))
        self.assertEqual(env["HTTP_X_FORWARDED_PROTO"], "https")
        self.assertEqual(env["HTTP_X_FORWARDED_PORT"], str(self.wsgi_off_port))

        r, err = self.request(self.wsgi_port, "good", headers=FORGED)
        self.assertIsNone(err, self.log_tail())
        env = r.json()
        self.assertEqual(env["HTTP_X_FORWARDED_CLIENTCERT_SUBJECTDN"],
                         "CN=good client,OU=clients,O=tollgate test")
        self.assertEqual(env["HTTP_X_FORWARDED_CLIENTCERT_CLIENTVERIFY"], "SUCCESS")
        self.assertEqual(env["HTTP_X_FORWARDED_CLIENTCERT_FINGERPRINT"],
                         self.m.fingerprint("good"))
        self.assertIsNone(env["HTTP_X_FORWARDED_CLIENTCERT_EXTRA"])

    def test_forwarded_for_keeps_the_real_client_last(self):
        r, err = self.request(self.port, "good",
                              headers=[("X_Forwarded_For", "10.9.8.7"),
                                       ("X-Forwarded-For", "10.1.1.1")])
        self.assertIsNone(err, self.log_tail())
        xff = [v for k, v in r.json()["headers"] if norm(k) == "x-forwarded-for"]
        self.assertEqual(len(xff), 1, xff)
        self.assertEqual(xff[0].split(", ")[-1], "127.0.0.1", xff)


class TestNoCertificate(MtlsCase, tg.ClassDaemonCase):
    """The handshake itself: no certificate, whatever SNI slot, session or protocol."""

    @classmethod
    def make_config(cls, pki, workdir):
        cls.m = mtls_pki()
        cls.be = cls.class_backend("app")
        cfg = tg.base_config(pki, workdir, workers=2)
        add_cas(cfg, cls.m)
        cfg["backends"]["app"] = tg.pool_backend([cls.be])
        cls.port, cls.off_port = tg.free_port(), tg.free_port()
        L = cfg["listeners"]
        L["main"] = tg.https_listener(cls.port, "app", extended=["shop", "wild"],
                                      mutual_auth=mtls(["mtls-root"]))
        L["off"] = tg.https_listener(cls.off_port, "app")
        return cfg

    def test_every_sni_slot_verifies(self):
        for sni in ("localhost", "shop.example.com", "a.example.org", "unknown.example"):
            for v in ("1.2", "1.3"):
                with self.subTest(sni=sni, version=v):
                    ctx = tg.client_context(verify=False, minv=v, maxv=v)
                    self.assertRefused(self.port, None, ("TLSV13_ALERT_CERTIFICATE_REQUIRED",
                                                         "SSLV3_ALERT_HANDSHAKE_FAILURE"),
                                       sni=sni, ctx=ctx)
        self.assertEqual(self.be.requests(), [])

    def test_session_from_another_listener_does_not_resume(self):
        for v in ("1.2", "1.3"):
            with self.subTest(version=v):
                ctx = self.ctx(None, v)
                r, err = self.request(self.off_port, ctx=ctx)
                self.assertIsNone(err, self.log_tail())
                self.assertRefused(self.port, None, ("TLSV13_ALERT_CERTIFICATE_REQUIRED",
                                                     "SSLV3_ALERT_HANDSHAKE_FAILURE"),
                                   ctx=ctx, session=self.last_session)

    def test_renegotiation_is_refused(self):
        # A TLS 1.2 client asks to renegotiate after the handshake (s_client's "R").
        # Refused with a no_renegotiation alert, and no second ServerHello ever comes: a
        # renegotiation could otherwise change the client's identity mid-connection.
        out = tg.s_client(self.port, "-tls1_2", "-msg", "-cert", self.m.cert("good")[0], "-key",
                          self.m.cert("good")[1], "-CAfile", self.pki.ca, stdin=b"R\n",
                          timeout=15)
        self.assertIn("RENEGOTIATING", out.out, out)
        self.assertIn("warning no_renegotiation", out.out, out)
        self.assertEqual(out.out.count("ServerHello,") + out.out.count("ServerHello\n"), 1, out)

    def test_no_quic_listener_answers_for_an_mtls_port(self):
        # The HTTPS listener's port over UDP: nothing is there, so HTTP/3 is no way in.
        if not tg.have_gtlsclient():
            self.skipTest("gtlsclient (Debian package ngtcp2-client) not installed")
        h = tg.h3_get(self.port, "/echo", timeout=10, idle_timeout="2s")
        self.assertEqual(h.status, {}, h.out[-2000:] if h.out else h)
        self.assertEqual(self.be.requests(), [])


class TestAltSvcIsNoWayIn(MtlsCase, tg.TestCase):
    """An HTTPS listener with mutual authentication cannot point clients at a QUIC
    listener (which never verifies them); a QUIC listener sharing its backend is said."""

    def setUp(self):
        super().setUp()
        if not tg.have_gtlsclient():
            self.skipTest("gtlsclient (Debian package ngtcp2-client) not installed")
        self.m = mtls_pki()

    def configs(self):
        be = self.backend("app")
        port = tg.free_port_both()
        cfg = self.config()
        add_cas(cfg, self.m)
        cfg["backends"]["app"] = tg.pool_backend([be])
        cfg["backends"]["public"] = tg.fixed_backend(body="public\n")
        cfg["listeners"]["web"] = tg.https_listener(port, "app", mutual_auth=mtls(["mtls-root"]),
                                                    alt_svc="q")
        cfg["listeners"]["q"] = tg.quic_listener(port, "app")
        return be, port, cfg

    def test_alt_svc_on_mtls_listener_is_refused(self):
        be, port, cfg = self.configs()
        path = tg.write_config(self.dir, cfg, "bad.yaml")
        rc, out = tg.run_tollgate("check", "-c", path)
        self.assertEqual(rc, 1, out)
        self.assertRegex(out,
                         r'bad\.yaml:\d+:\d+: listener "web": alt_svc is not allowed with mutual '
                         r'authentication \(QUIC listener "q" would let clients without a '
                         r'certificate in\)')
        # `run` refuses it as well: nothing listens, so neither way reaches the backend.
        d = tg.Daemon(self.dir, cfg)
        self.addCleanup(d.kill)
        d.start()
        self.assertEqual(d.proc.wait(10), 1, d.stderr_tail())
        self.assertIn("alt_svc is not allowed with mutual authentication", d.stderr_text())
        h = tg.h3_get(port, "/echo", timeout=10, idle_timeout="2s")
        self.assertEqual(h.status, {})
        self.assertEqual(be.requests(), [])

    def test_reload_to_alt_svc_is_refused(self):
        be, port, cfg = self.configs()
        del cfg["listeners"]["web"]["alt_svc"]
        cfg["listeners"]["q"]["backend"] = "public"
        d = self.start(cfg)
        text = tg.to_yaml(dict(cfg, listeners=dict(
            cfg["listeners"], web=dict(cfg["listeners"]["web"], alt_svc="q"),
            q=dict(cfg["listeners"]["q"], backend="app")))) + "\n"
        tg.write_config(self.dir, text)
        rc, out = tg.run_tollgate("reload", "-c", d.conf_path)
        self.assertEqual(rc, 1, out)
        self.assertIn("alt_svc is not allowed with mutual authentication", out)
        # The old generation serves on: no Alt-Svc, and QUIC still reaches only "public".
        resp, err = self.request(port, "good")
        self.assertIsNone(err, self.log_tail())
        self.assertEqual(resp.header_values("Alt-Svc"), [])
        h = tg.h3_get(port, "/echo")
        self.assertEqual(h.status.get("/echo"), 200, h.out[-2000:])
        self.assertEqual(h.bodies["/echo"], b"public\n")
        # The protected backend saw the verified client only.
        self.assertEqual([dict((k.lower(), v) for k, v in q["headers"]).get(
            "x-forwarded-clientcert-clientverify") for q in be.requests()], ["SUCCESS"])

    def test_quic_sharing_the_backend_is_warned_about(self):
        be, port, cfg = self.configs()
        del cfg["listeners"]["web"]["alt_svc"]
        path = tg.write_config(self.dir, cfg, "shared.yaml")
        want = ('listener "q": backend "app" is also behind listener "web", which requires '
                'client certificates; QUIC clients reach it without one')
        rc, out = tg.run_tollgate("check", "-c", path)
        self.assertEqual(rc, 0, out)
        self.assertIn(want, out)
        d = self.start(cfg)
        self.wait_for(lambda: want in d.stderr_text(), msg="the warning at start")


class TestReloadTightensOpenConnections(MtlsCase, tg.TestCase):
    """SPEC §7 rule 3: connections accepted under verification that a reload changed
    finish their in-flight request and are closed; they never send another."""

    def setUp(self):
        super().setUp()
        self.m = mtls_pki()
        self.be = self.backend("app")
        self.port = tg.free_port()
        cfg = self.config(drain_timeout="10s")
        add_cas(cfg, self.m)
        cfg["backends"]["app"] = tg.pool_backend([self.be])
        cfg["listeners"]["main"] = tg.https_listener(self.port, "app")
        self.cfg = cfg
        self.start(cfg)

    def reload_with(self, mutual_auth):
        cfg = json.loads(json.dumps(self.cfg))
        if mutual_auth is None:
            cfg["listeners"]["main"].pop("mutual_auth", None)
        else:
            cfg["listeners"]["main"]["mutual_auth"] = mutual_auth
        self.daemon.sighup_reload(cfg)
        self.cfg = cfg

    def test_idle_connection_closed_when_mutual_auth_turns_on(self):
        c = self.conn(self.port, ctx=self.ctx(None))
        self.assertEqual(c.get("/echo?before").status, 200)
        self.reload_with(mtls(["mtls-root"]))
        self.assertTrue(c.closed_by_peer(), "kept-alive connection still open" + self.log_tail())
        self.assertEqual([q["path"] for q in self.be.requests()], ["/echo?before"])
        # A new client without a certificate is refused; one with a certificate gets in.
        self.assertRefused(self.port, None, ("TLSV13_ALERT_CERTIFICATE_REQUIRED",
                                             "SSLV3_ALERT_HANDSHAKE_FAILURE"))
        r, err = self.request(self.port, "good")
        self.assertIsNone(err, self.log_tail())
        self.assertEqual(r.status, 200)

    def test_in_flight_request_finishes_then_closes(self):
        c = self.conn(self.port, ctx=self.ctx(None))
        self.assertEqual(c.get("/echo?first").status, 200)
        # A slow request in flight, and a pipelined one behind it, across the reload.
        c.send_request("GET", "/slow?ms=1500")
        c.send_request("GET", "/echo?pipelined")
        time.sleep(0.3)
        self.reload_with(mtls(["mtls-root"]))
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.header("Connection") or "").lower(), "close", r)
        self.assertTrue(c.closed_by_peer(), self.log_tail())
        paths = [q["path"] for q in self.be.requests()]
        self.assertEqual(paths, ["/echo?first", "/slow?ms=1500"])

    def test_half_sent_request_is_not_served_after_mutual_auth_on(self):
        # One byte of the next head in flight at the reload must not buy a request under
        # verification that no longer holds: only requests in flight then may finish.
        with tg.tls_connect(self.port, self.ctx(None)) as s:
            s.sendall(b"G")
            time.sleep(0.3)
            self.reload_with(mtls(["mtls-root"]))
            try:
                s.sendall(b"ET /after-mtls-on HTTP/1.1\r\nHost: localhost\r\n\r\n")
                s.settimeout(5)
                data = s.recv(4096)
            except (OSError, ssl.SSLError):
                data = b""
        self.assertEqual(data, b"", data)
        self.assertEqual(self.be.requests("/after-mtls-on"), [])

    def test_changed_verification_closes_verified_connections(self):
        self.reload_with(mtls(["mtls-root"]))
        for change in ({"enabled": True, "ca_certificates": ["mtls-root"], "verify_depth": 2},
                       {"enabled": True, "ca_certificates": ["mtls-root", "mtls-other"],
                        "verify_depth": 2},
                       None):
            with self.subTest(change=change):
                c = self.conn(self.port, ctx=self.ctx("good"))
                self.assertEqual(c.get("/echo").status, 200)
                self.reload_with(change)
                self.assertTrue(c.closed_by_peer(), self.log_tail())

    def test_unchanged_verification_keeps_connections(self):
        self.reload_with(mtls(["mtls-root"]))
        c = self.conn(self.port, ctx=self.ctx("good"))
        self.assertEqual(c.get("/echo?a").status, 200)
        cfg = json.loads(json.dumps(self.cfg))
        cfg["backends"]["app"]["connect_timeout"] = "2s"  # any change but verification
        self.daemon.sighup_reload(cfg)
        self.assertEqual(c.get("/echo?b").status, 200)


class TestAdminToken(tg.TestCase):
    """A blank or short admin token is refused at load, by `check` and by `run`."""

    def cfg_with_token(self, text, listen=None):
        token = os.path.join(self.dir, "admin.token")
        with open(token, "w") as f:
            f.write(text)
        os.chmod(token, 0o600)
        cfg = self.config()
        cfg["backends"]["hello"] = tg.fixed_backend(body="hi\n")
        cfg["listeners"]["main"] = tg.https_listener(tg.free_port(), "hello")
        cfg["admin"] = {"listen": listen or "127.0.0.1:%d" % tg.free_port(), "token_file": token}
        return cfg

    def test_blank_and_short_tokens_refused(self):
        for text, why in (("", "the token is blank"), ("  \n\t\n", "the token is blank"),
                          ("short-token\n", "shorter than 16 characters"),
                          ("two words of a long token\n", "one word of visible ASCII")):
            with self.subTest(token=text):
                cfg = self.cfg_with_token(text)
                path = tg.write_config(self.dir, cfg)
                rc, out = tg.run_tollgate("check", "-c", path)
                self.assertEqual(rc, 1, out)
                self.assertIn(why, out)
                d = tg.Daemon(self.dir, cfg)
                self.addCleanup(d.kill)
                d.start()
                self.assertEqual(d.proc.wait(10), 1, d.stderr_tail())
                self.assertIn(why, d.stderr_text())

    def test_bearer_with_white_space_only_is_refused(self):
        port = tg.free_port()
        cfg = self.cfg_with_token("  0123456789abcdef-token  \n", "127.0.0.1:%d" % port)
        self.start(cfg, ports=[port])
        for header in (b"Bearer ", b"Bearer  \t ", b"Bearer", b"bearer 0123456789abcdef-toke",
                       b"Basic 0123456789abcdef-token"):
            with self.subTest(header=header):
                self.assertEqual(self.admin_status(port, header), 401)
        self.assertEqual(self.admin_status(port, b"Bearer 0123456789abcdef-token"), 200)
        self.assertEqual(self.admin_status(port, b"bearer   0123456789abcdef-token "), 200)

    def admin_status(self, port, auth):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                      b"Authorization: " + auth + b"\r\n\r\n")
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        return int(data.split(b" ", 2)[1])

    def test_token_rotation_by_reload(self):
        port = tg.free_port()
        cfg = self.cfg_with_token("0123456789abcdef-token\n", "127.0.0.1:%d" % port)
        d = self.start(cfg, ports=[port])
        with open(cfg["admin"]["token_file"], "w") as f:
            f.write("fedcba9876543210-rotated\n")
        d.sighup_reload(cfg)
        self.assertEqual(self.admin_status(port, b"Bearer 0123456789abcdef-token"), 401)
        self.assertEqual(self.admin_status(port, b"Bearer fedcba9876543210-rotated"), 200)

    def test_trickling_clients_cannot_lock_the_operator_out(self):
        port = tg.free_port()
        cfg = self.cfg_with_token("0123456789abcdef-token\n", "127.0.0.1:%d" % port)
        self.start(cfg, ports=[port])
        slow = []
        self.addCleanup(lambda: [s.close() for s in slow])
        for _ in range(40):  # more than the cap, each sending a byte now and then
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"G")
            slow.append(s)
        for _ in range(3):
            t = time.monotonic()
            self.assertEqual(self.admin_status(port, b"Bearer 0123456789abcdef-token"), 200)
            self.assertLess(time.monotonic() - t, 2.0, "the operator waited behind them")
            for s in slow:
                try:
                    s.send(b"E")
                except OSError:
                    pass

    def test_admin_off_loopback_refused(self):
        cfg = self.cfg_with_token("0123456789abcdef-token\n", "0.0.0.0:%d" % tg.free_port())
        path = tg.write_config(self.dir, cfg)
        rc, out = tg.run_tollgate("check", "-c", path)
        self.assertEqual(rc, 1, out)
        self.assertIn("is not a loopback address", out)

    def test_admin_connections_are_capped(self):
        port = tg.free_port()
        cfg = self.cfg_with_token("0123456789abcdef-token\n", "127.0.0.1:%d" % port)
        self.start(cfg, ports=[port])
        fd_dir = "/proc/%d/fd" % self.daemon.proc.pid
        before = len(os.listdir(fd_dir))
        idle = []
        self.addCleanup(lambda: [s.close() for s in idle])
        for _ in range(80):  # the cap (32) and most of the listen backlog (64)
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        time.sleep(0.5)
        # Past the cap the listener stops accepting: the rest wait in the kernel's backlog
        # instead of holding descriptors of ours.
        self.assertLessEqual(len(os.listdir(fd_dir)) - before, 32,
                             "descriptors taken by 80 idle admin connections")
        for s in idle:
            s.close()
        idle.clear()
        self.wait_for(lambda: self.admin_status(port, b"Bearer 0123456789abcdef-token") == 200,
                      timeout=15, msg="the admin API answering again")


if __name__ == "__main__":
    unittest.main()
