"""HTTPS listeners: one-way handshake, certificate choice by SNI, RSA/ECDSA dual
certificates, ALPN and session resumption across workers (SPEC §4)."""

import json
import os
import unittest

import tg


class TestTLS(tg.ClassDaemonCase):
    @classmethod
    def make_config(cls, pki, workdir):
        # Extra certificates only this file needs: an exact name under the wildcard's
        # domain, and a certificate without subjectAltName (CN only).
        cls.exact_org = pki.make_leaf("exact-org", ["DNS:api.example.org"], directory=workdir)
        cls.legacy = pki.make_leaf("legacy", None, cn="legacy.example.com", directory=workdir)
        cls.backend = cls.class_backend("app")
        cfg = tg.base_config(pki, workdir, workers=2)
        cfg["certificates"]["exact-org"] = {"type": "server", "cert": cls.exact_org[0],
                                            "key": cls.exact_org[1]}
        cfg["certificates"]["legacy"] = {"type": "server", "cert": cls.legacy[0], "key": cls.legacy[1]}
        cfg["backends"]["app"] = tg.pool_backend([cls.backend])
        cls.port = tg.free_port()
        cls.dual_port = tg.free_port()
        cls.dual_rsa_port = tg.free_port()
        cls.other_port = tg.free_port()
        cfg["listeners"]["main"] = tg.https_listener(
            cls.port, "app", default="www-ecdsa", extended=["shop", "wild", "exact-org", "legacy"])
        cfg["listeners"]["dual"] = tg.https_listener(cls.dual_port, "app", default="www-ecdsa",
                                                     extended=["www-rsa"])
        cfg["listeners"]["dual-rsa-first"] = tg.https_listener(cls.dual_rsa_port, "app",
                                                               default="www-rsa",
                                                               extended=["www-ecdsa"])
        cfg["listeners"]["other"] = tg.https_listener(cls.other_port, "app", default="www-ecdsa")
        return cfg

    # -- helpers
    def served(self, port, sni, ctx=None):
        """SHA-256 of the certificate the server presents for SNI (None: no SNI)."""
        ctx = ctx or tg.client_context(verify=False)
        with tg.tls_connect(port, ctx, sni=sni) as s:
            return tg.peer_sha256(s)

    def fp(self, name):
        return self.pki.fingerprint(name)

    # -- one-way handshake
    def test_one_way_handshake_python(self):
        ctx = tg.client_context()  # verifies the chain against the test CA and the host name
        with tg.tls_connect(self.port, ctx, sni="localhost") as s:
            self.assertEqual(s.version(), "TLSv1.3")  # the default policy has 1.3
            self.assertEqual(tg.peer_sha256(s), self.fp("www-ecdsa"))
            rf = s.makefile("rb")
            s.sendall(b"GET /echo HTTP/1.1\r\nHost: localhost\r\n\r\n")
            r = tg.read_response(rf)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["path"], "/echo")

    def test_no_client_certificate_requested(self):
        # Mutual authentication is off: the server must not send a CertificateRequest.
        for args in (["-tls1_2"], ["-tls1_3"]):
            with self.subTest(version=args[0]):
                r = tg.s_client(self.port, "-msg", *args)
                self.assertTrue(r.ok, r)
                self.assertFalse(r.cert_requested, r)

    def test_curl_get(self):
        rc, out, err = tg.curl("--cacert", self.pki.ca, "--resolve",
                               "www.example.com:%d:127.0.0.1" % self.port,
                               "https://www.example.com:%d/echo?via=curl" % self.port)
        self.assertEqual(rc, 0, err)
        body = json.loads(out)
        self.assertEqual(body["path"], "/echo?via=curl")

    # -- SNI
    def test_sni_exact_name(self):
        self.assertEqual(self.served(self.port, "shop.example.com"), self.fp("shop"))
        self.assertEqual(self.served(self.port, "www.example.com"), self.fp("www-ecdsa"))
        # verified end to end too
        with tg.tls_connect(self.port, tg.client_context(), sni="shop.example.com") as s:
            self.assertEqual(tg.peer_sha256(s), self.fp("shop"))

    def test_sni_is_case_insensitive(self):
        r = tg.s_client(self.port, sni="SHOP.Example.COM")
        self.assertTrue(r.ok, r)
        self.assertEqual(r.cert_sha256, self.fp("shop"))

    def test_sni_wildcard_matches_one_label(self):
        self.assertEqual(self.served(self.port, "a.example.org"), self.fp("wild"))
        self.assertEqual(self.served(self.port, "other-name.example.org"), self.fp("wild"))
        # two labels, or the bare domain, do not match *.example.org: default certificate
        self.assertEqual(self.served(self.port, "a.b.example.org"), self.fp("www-ecdsa"))
        self.assertEqual(self.served(self.port, "example.org"), self.fp("www-ecdsa"))

    def test_sni_exact_beats_wildcard(self):
        self.assertEqual(self.served(self.port, "api.example.org"),
                         self.pki.fingerprint(self.exact_org[0]))
        self.assertEqual(self.served(self.port, "web.example.org"), self.fp("wild"))

    def test_sni_falls_back_to_cn_without_san(self):
        self.assertEqual(self.served(self.port, "legacy.example.com"),
                         self.pki.fingerprint(self.legacy[0]))

    def test_no_sni_gets_default(self):
        self.assertEqual(self.served(self.port, None), self.fp("www-ecdsa"))
        r = tg.s_client(self.port, sni=None)
        self.assertTrue(r.ok, r)
        self.assertEqual(r.cert_sha256, self.fp("www-ecdsa"))

    def test_unknown_sni_gets_default(self):
        self.assertEqual(self.served(self.port, "unknown.example.net"), self.fp("www-ecdsa"))
        r = tg.s_client(self.port, sni="nothing.invalid")
        self.assertTrue(r.ok, r)
        self.assertEqual(r.cert_sha256, self.fp("www-ecdsa"))

    # -- dual certificates (same names, RSA and ECDSA)
    def check_dual(self, port):
        rsa_only = tg.client_context(verify=False, maxv="1.2", ciphers="ECDHE-RSA-AES128-GCM-SHA256")
        ecdsa_tls12 = tg.client_context(verify=False, maxv="1.2",
                                        ciphers="ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256")
        with self.subTest("TLS 1.2, ECDHE-RSA suite only"):
            self.assertEqual(self.served(port, "www.example.com", rsa_only), self.fp("www-rsa"))
        with self.subTest("TLS 1.2, ECDSA and RSA suites"):
            self.assertEqual(self.served(port, "www.example.com", ecdsa_tls12), self.fp("www-ecdsa"))
        with self.subTest("default client (TLS 1.3, all sigalgs)"):
            self.assertEqual(self.served(port, "www.example.com"), self.fp("www-ecdsa"))
        with self.subTest("TLS 1.3, RSA signature algorithms only"):
            r = tg.s_client(port, "-tls1_3", "-sigalgs", "RSA-PSS+SHA256:RSA+SHA256",
                            sni="www.example.com")
            self.assertTrue(r.ok, r)
            self.assertEqual(r.cert_sha256, self.fp("www-rsa"), r)
        with self.subTest("TLS 1.2, RSA signature algorithms only"):
            r = tg.s_client(port, "-tls1_2", "-sigalgs", "RSA-PSS+SHA256:RSA+SHA256",
                            sni="www.example.com")
            self.assertTrue(r.ok, r)
            self.assertEqual(r.cert_sha256, self.fp("www-rsa"), r)
        with self.subTest("TLS 1.3, ECDSA signature algorithms"):
            r = tg.s_client(port, "-tls1_3", "-sigalgs", "ECDSA+SHA256:RSA-PSS+SHA256",
                            sni="www.example.com")
            self.assertTrue(r.ok, r)
            self.assertEqual(r.cert_sha256, self.fp("www-ecdsa"), r)

    def test_dual_certificate_ecdsa_default(self):
        self.check_dual(self.dual_port)

    def test_dual_certificate_rsa_default(self):
        self.check_dual(self.dual_rsa_port)

    # -- ALPN
    def test_alpn_http11(self):
        ctx = tg.client_context(alpn=["http/1.1"])
        with tg.tls_connect(self.port, ctx) as s:
            self.assertEqual(s.selected_alpn_protocol(), "http/1.1")
        r = tg.s_client(self.port, "-alpn", "http/1.1")
        self.assertTrue(r.ok, r)
        self.assertEqual(r.alpn, "http/1.1", r)

    def test_alpn_request_works(self):
        ctx = tg.client_context(alpn=["http/1.1"])
        c = self.conn(self.port, ctx=ctx)
        r = c.get("/echo?alpn=1")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["version"], "HTTP/1.1")

    # -- session resumption
    def resume_chain(self, ctx, port, n, sni="localhost"):
        """N connections, each offering the session of the one before; returns the
        session_reused flags of connections 2..N (every one must do a request)."""
        flags = []
        session = None
        for i in range(n):
            c = tg.HTTPConn(port, ctx, sni=sni, session=session)
            try:
                r = c.get("/echo?conn=%d" % i)
                self.assertEqual(r.status, 200, r)
                if i:
                    flags.append(c.sock.session_reused)
                session = c.session()
            finally:
                c.close()
        return flags

    def test_resumption_tls13_across_workers(self):
        ctx = tg.client_context(minv="1.3")
        flags = self.resume_chain(ctx, self.port, 16)
        self.assertEqual(flags, [True] * 15, "TLS 1.3 resumption failed on some connections "
                         "(workers: 2)" + self.log_tail())

    def test_resumption_tls12_across_workers(self):
        ctx = tg.client_context(maxv="1.2")
        flags = self.resume_chain(ctx, self.port, 16)
        self.assertEqual(flags, [True] * 15, "TLS 1.2 resumption failed on some connections "
                         "(workers: 2)" + self.log_tail())

    def test_resumption_same_session_many_times(self):
        # One session offered on many new connections (tickets are not single-use for
        # plain resumption) lands on both workers.
        ctx = tg.client_context(maxv="1.2")
        with tg.HTTPConn(self.port, ctx) as c:
            self.assertEqual(c.get("/echo").status, 200)
            session = c.session()
        reused = []
        for i in range(12):
            with tg.HTTPConn(self.port, ctx, session=session) as c:
                self.assertEqual(c.get("/echo?i=%d" % i).status, 200)
                reused.append(c.sock.session_reused)
        self.assertEqual(reused, [True] * 12)

    def test_tls12_session_ticket_issued(self):
        sess = os.path.join(self.dir, "sess.pem")
        r1 = tg.s_client(self.port, "-tls1_2", "-sess_out", sess)
        self.assertTrue(r1.ok, r1)
        self.assertIn("TLS session ticket:", r1.out, "no TLS 1.2 session ticket issued")
        r2 = tg.s_client(self.port, "-tls1_2", "-sess_in", sess)
        self.assertTrue(r2.ok, r2)
        self.assertTrue(r2.reused, r2)

    def test_session_does_not_resume_on_another_listener(self):
        for v in ("1.2", "1.3"):
            with self.subTest(version=v):
                ctx = tg.client_context(minv=v, maxv=v)
                with tg.HTTPConn(self.port, ctx) as c:
                    self.assertEqual(c.get("/echo").status, 200)
                    session = c.session()
                with tg.HTTPConn(self.other_port, ctx, session=session) as c:
                    self.assertEqual(c.get("/echo").status, 200)
                    self.assertFalse(c.sock.session_reused,
                                     "a session of listener main resumed on listener other")
                # and it still resumes where it came from
                with tg.HTTPConn(self.port, ctx, session=session) as c:
                    self.assertEqual(c.get("/echo").status, 200)
                    self.assertTrue(c.sock.session_reused)


if __name__ == "__main__":
    unittest.main()
