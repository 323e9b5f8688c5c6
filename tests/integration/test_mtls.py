"""Mutual authentication on HTTPS listeners (SPEC §3 `ca` certificates and `mutual_auth`,
§4, §5): client certificates checked against each listener's own CAs and CRLs, the TLS
alert and the log line of every refusal, the identity headers the backend gets, and
session resumption that keeps the identity but never skips the check.

The PKI is made at run time with `openssl ca`, which can date certificates in the past or
the future and keeps the database that revocation and CRLs need."""

import atexit
import datetime
import json
import os
import re
import ssl
import unittest

import tg

IDENTITY = ("X-Forwarded-Clientcert-subjectdn", "X-Forwarded-Clientcert-issuerdn",
            "X-Forwarded-Clientcert-fingerprint", "X-Forwarded-Clientcert-clientverify")

CA_EXT = ("basicConstraints = critical, CA:true\n"
          "keyUsage = critical, keyCertSign, cRLSign\n"
          "subjectKeyIdentifier = hash\n"
          "authorityKeyIdentifier = keyid\n")
EXTS = {
    "client": ("basicConstraints = critical, CA:false\n"
               "keyUsage = critical, digitalSignature\n"
               "extendedKeyUsage = clientAuth\n"
               "authorityKeyIdentifier = keyid\n"),
    "server": ("basicConstraints = critical, CA:false\n"
               "keyUsage = critical, digitalSignature\n"
               "extendedKeyUsage = serverAuth\n"
               "authorityKeyIdentifier = keyid\n"),
    "ca": CA_EXT,
}


def asn1_time(dt):
    return dt.strftime("%Y%m%d%H%M%SZ")


def openssl_name(crt, which):
    """What `openssl x509 -noout -WHICH -nameopt RFC2253` prints, without the label."""
    out = tg.run_cmd(["openssl", "x509", "-noout", "-" + which, "-nameopt", "RFC2253",
                      "-in", crt]).stdout.decode()
    line = out.splitlines()[0]
    prefix = which + "="
    assert line.startswith(prefix), line
    return line[len(prefix):]


class CA:
    """A CA with an `openssl ca` database: issues, revokes, and writes CRLs."""

    def __init__(self, directory, name, subject, parent=None):
        self.name = name
        self.dir = os.path.join(directory, name + ".db")
        os.makedirs(os.path.join(self.dir, "new"))
        open(os.path.join(self.dir, "index.txt"), "w").close()
        with open(os.path.join(self.dir, "serial"), "w") as f:
            f.write("%016X\n" % int.from_bytes(os.urandom(7), "big"))
        with open(os.path.join(self.dir, "crlnumber"), "w") as f:
            f.write("01\n")
        self.key = os.path.join(directory, name + ".key")
        self.crt = os.path.join(directory, name + ".crt")
        self.crl = os.path.join(directory, name + ".crl")
        self.cnf = os.path.join(self.dir, "ca.cnf")
        self.parent = parent
        with open(self.cnf, "w") as f:
            f.write("[ ca ]\ndefault_ca = this\n[ this ]\n"
                    "database = %(d)s/index.txt\nnew_certs_dir = %(d)s/new\n"
                    "serial = %(d)s/serial\ncrlnumber = %(d)s/crlnumber\n"
                    "certificate = %(crt)s\nprivate_key = %(key)s\n"
                    "default_md = sha256\ndefault_days = 30\ndefault_crl_days = 30\n"
                    "policy = any\nunique_subject = no\nemail_in_dn = no\n"
                    "[ any ]\ncountryName = optional\nstateOrProvinceName = optional\n"
                    "localityName = optional\norganizationName = optional\n"
                    "organizationalUnitName = optional\ncommonName = supplied\n"
                    % {"d": self.dir, "crt": self.crt, "key": self.key})
        if parent is None:
            gen_key(self.key)
            ext = os.path.join(self.dir, "root.ext")
            with open(ext, "w") as f:
                f.write("[ v3 ]\n" + CA_EXT.replace("authorityKeyIdentifier = keyid\n", ""))
            tg.run_cmd(["openssl", "req", "-new", "-x509", "-key", self.key, "-subj", subject,
                        "-days", "60", "-sha256", "-config", ext, "-extensions", "v3",
                        "-out", self.crt])
            self.chain = []  # intermediates a client must send with a leaf of this CA
        else:
            parent.issue(name, subject, "ca", key=self.key, crt=self.crt)
            self.chain = [self.crt] + parent.chain

    def issue(self, name, subject, kind="client", start=None, end=None, key=None, crt=None,
              directory=None):
        """A certificate for SUBJECT; returns (cert file with the chain a client sends,
        key file, the leaf alone)."""
        directory = directory or os.path.dirname(self.dir)
        key = key or os.path.join(directory, name + ".key")
        crt = crt or os.path.join(directory, name + ".crt")
        gen_key(key)
        csr = os.path.join(directory, name + ".csr")
        tg.run_cmd(["openssl", "req", "-new", "-utf8", "-key", key, "-subj", subject, "-out", csr])
        ext = os.path.join(directory, name + ".ext")
        with open(ext, "w") as f:
            f.write(EXTS[kind])
        now = datetime.datetime.now(datetime.timezone.utc)
        start = start or now - datetime.timedelta(hours=1)
        end = end or now + datetime.timedelta(days=30)
        tg.run_cmd(["openssl", "ca", "-batch", "-notext", "-utf8", "-preserveDN",
                    "-config", self.cnf, "-in", csr, "-out", crt, "-extfile", ext,
                    "-startdate", asn1_time(start), "-enddate", asn1_time(end)])
        os.unlink(csr)
        os.unlink(ext)
        chain = crt
        if self.parent is not None or kind != "ca":
            chain = os.path.join(directory, name + ".chain.crt")
            with open(chain, "w") as out:
                for p in [crt] + self.chain:
                    with open(p) as f:
                        out.write(f.read())
        return chain, key, crt

    def revoke(self, crt):
        tg.run_cmd(["openssl", "ca", "-config", self.cnf, "-revoke", crt])

    def gencrl(self):
        tg.run_cmd(["openssl", "ca", "-config", self.cnf, "-gencrl", "-out", self.crl])
        return self.crl


def gen_key(path):
    tg.run_cmd(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-pkeyopt", "ec_param_enc:named_curve", "-out", path])


class MtlsPKI:
    """Everything the mutual-authentication tests present, made once per test process.

    root (CRL: revokes `revoked` and the intermediate `int-bad`)
      ├── int ── via-int, deep-a ── deep-b ── deep
      ├── int-bad ── via-bad-int
      └── good, expired, future, revoked, server-eku, odd-names
    other (a second, unrelated root without a CRL) ── stranger
    """

    def __init__(self, directory):
        self.dir = directory
        self.root = CA(directory, "root", "/O=tollgate test/CN=mtls test root")
        self.int = CA(directory, "int", "/O=tollgate test/CN=mtls test intermediate", self.root)
        self.int_bad = CA(directory, "int-bad", "/O=tollgate test/CN=mtls revoked intermediate",
                          self.root)
        self.deep_a = CA(directory, "deep-a", "/O=tollgate test/CN=mtls deep A", self.int)
        self.other = CA(directory, "other", "/O=somebody else/CN=other root")
        now = datetime.datetime.now(datetime.timezone.utc)
        day = datetime.timedelta(days=1)
        c = {}
        c["good"] = self.root.issue("good", "/O=tollgate test/OU=clients/CN=good client")
        c["via-int"] = self.int.issue("via-int", "/O=tollgate test/CN=client via intermediate")
        c["deep"] = self.deep_a.issue("deep", "/O=tollgate test/CN=client two intermediates down")
        c["via-bad-int"] = self.int_bad.issue("via-bad-int", "/CN=client under a revoked intermediate")
        c["expired"] = self.root.issue("expired", "/CN=expired client", start=now - 30 * day,
                                       end=now - day)
        c["future"] = self.root.issue("future", "/CN=future client", start=now + 10 * day,
                                      end=now + 40 * day)
        c["revoked"] = self.root.issue("revoked", "/CN=revoked client")
        c["server-eku"] = self.root.issue("server-eku", "/CN=server eku client", kind="server")
        # RFC 4514 escaping and multi-byte text: ",", "+", '"', "\", "#", a leading space, UTF-8.
        c["odd-names"] = self.root.issue(
            "odd-names", '/C=DE/O=Acme, Inc. \\+ Partners/OU=R\\+D "lab"/OU=#1 \\\\ ops/CN=Zoë Müller')
        c["stranger"] = self.other.issue("stranger", "/O=somebody else/CN=stranger")
        self.root.revoke(c["revoked"][2])
        self.root.revoke(self.int_bad.crt)
        self.root.gencrl()
        self.certs = c

    def cert(self, name):
        """(certfile with chain, keyfile) for a client context."""
        return self.certs[name][:2]

    def leaf(self, name):
        return self.certs[name][2]

    def fingerprint(self, name):
        with open(self.leaf(name)) as f:
            return tg.sha256_hex(tg.pem_to_der_list(f.read())[0])


_mtls_pki = None


def mtls_pki():
    global _mtls_pki
    if _mtls_pki is None:
        d = tg.make_tmpdir("tg-mtls-pki-")
        atexit.register(tg.remove_tmpdir, d)
        _mtls_pki = MtlsPKI(d)
    return _mtls_pki


def mtls(cas, depth=None, enabled=True):
    m = {"enabled": enabled, "ca_certificates": list(cas)}
    if depth is not None:
        m["verify_depth"] = depth
    return m


def add_cas(cfg, m):
    cfg["certificates"]["mtls-root"] = {"type": "ca", "cert": m.root.crt, "crl": m.root.crl}
    cfg["certificates"]["mtls-other"] = {"type": "ca", "cert": m.other.crt}
    cfg["certificates"]["mtls-int"] = {"type": "ca", "cert": m.int.crt}


def hdrs(echo, name):
    return [v for k, v in echo["headers"] if k.lower() == name.lower()]


def identity_headers(echo):
    return [(k, v) for k, v in echo["headers"] if k.lower().startswith("x-forwarded-clientcert-")]


class MtlsCase:
    """Helpers shared by the test classes (a mixin over tg.TestCase)."""

    def ctx(self, cert=None, version=None):
        return tg.client_context(minv=version, maxv=version, cert=self.m.cert(cert) if cert else None)

    def request(self, port, cert=None, version=None, path="/echo", headers=(), sni="localhost",
                session=None, ctx=None):
        """A request over a new connection: (Response, None), or (None, the TLS alert's
        reason) when the handshake is refused. Keeps the connection's session and whether
        it resumed in self.last_session / self.last_reused."""
        ctx = ctx or self.ctx(cert, version)
        try:
            with tg.HTTPConn(port, ctx, sni=sni, session=session) as c:
                r = c.get(path, headers=headers)
                self.last_reused = c.sock.session_reused
                self.last_session = c.session()
                return r, None
        except ssl.SSLError as e:
            return None, e.reason or str(e)

    def refused(self, port, cert=None, version=None, sni="localhost", ctx=None, session=None):
        """The reason of the alert that ends a handshake with CERT (None: no certificate).
        Nothing is sent after the handshake: with TLS 1.3 the client's side finishes before
        the server has looked at the certificate, and request bytes the server never reads
        would turn its close into a reset that can swallow the alert."""
        ctx = ctx or self.ctx(cert, version)
        try:
            with tg.tls_connect(port, ctx, sni=sni, session=session) as s:
                s.settimeout(10)
                data = s.recv(1)
                return "no alert (read %r)" % data
        except ssl.SSLError as e:
            return e.reason or str(e)
        except OSError as e:
            return "connection error without an alert: %r" % e

    def assertRefused(self, port, cert, alerts, version=None, sni="localhost", ctx=None,
                      session=None):
        reason = self.refused(port, cert, version, sni, ctx, session)
        if isinstance(alerts, str):
            alerts = (alerts,)
        self.assertIn(reason, alerts, "client %s, TLS %s%s" % (cert, version, self.log_tail()))

    def assertLogged(self, listener, reason, cert=None):
        """The daemon logged the refusal: one warning with listener, reason and, when a
        certificate was sent, its subject and issuer."""
        if cert is None:
            pat = r'warn listener "%s": TLS handshake with 127\.0\.0\.1 failed: reason=%s' % (
                re.escape(listener), reason)
        else:
            pat = (r'warn listener "%s": TLS handshake with 127\.0\.0\.1 failed: reason=%s '
                   r'subject="%s" issuer="%s"' % (
                       re.escape(listener), reason, re.escape(openssl_name(self.m.leaf(cert), "subject")),
                       re.escape(openssl_name(self.m.leaf(cert), "issuer"))))
        self.wait_for(lambda: re.search(pat, self.daemon.stderr_text()),
                      msg="a log line matching %s" % pat)

    def assertIdentity(self, echo, cert):
        leaf = self.m.leaf(cert)
        want = [("X-Forwarded-Clientcert-subjectdn", openssl_name(leaf, "subject")),
                ("X-Forwarded-Clientcert-issuerdn", openssl_name(leaf, "issuer")),
                ("X-Forwarded-Clientcert-fingerprint", self.m.fingerprint(cert)),
                ("X-Forwarded-Clientcert-clientverify", "SUCCESS")]
        got = [(k, v) for k, v in identity_headers(echo)]
        self.assertEqual(sorted((k.lower(), v) for k, v in got),
                         sorted((k.lower(), v) for k, v in want))
        self.assertEqual(sorted(k for k, _ in got), sorted(IDENTITY), "header names as spelled")


class TestMutualAuth(MtlsCase, tg.ClassDaemonCase):
    @classmethod
    def make_config(cls, pki, workdir):
        cls.m = mtls_pki()
        cls.backend = cls.class_backend("app")
        cfg = tg.base_config(pki, workdir, workers=2)
        add_cas(cfg, cls.m)
        cfg["backends"]["app"] = tg.pool_backend([cls.backend])
        cls.port = tg.free_port()        # mTLS on, root CA with its CRL, SNI slots
        cls.shallow_port = tg.free_port()  # verify_depth 1
        cls.off_port = tg.free_port()    # mTLS off
        cls.other_port = tg.free_port()  # mTLS on, only the other CA
        cls.mixed_port = tg.free_port()  # both CAs: one with a CRL, one without
        cls.int_port = tg.free_port()    # only the intermediate as its CA
        L = cfg["listeners"]
        L["main"] = tg.https_listener(cls.port, "app", extended=["shop"],
                                      mutual_auth=mtls(["mtls-root"]))
        L["shallow"] = tg.https_listener(cls.shallow_port, "app",
                                         mutual_auth=mtls(["mtls-root"], depth=1))
        L["off"] = tg.https_listener(cls.off_port, "app",
                                     mutual_auth=mtls(["mtls-root"], enabled=False))
        L["other"] = tg.https_listener(cls.other_port, "app", mutual_auth=mtls(["mtls-other"]))
        L["mixed"] = tg.https_listener(cls.mixed_port, "app",
                                       mutual_auth=mtls(["mtls-root", "mtls-other"]))
        L["int-only"] = tg.https_listener(cls.int_port, "app", mutual_auth=mtls(["mtls-int"]))
        return cfg

    # -- admitted clients and what the backend learns
    def test_valid_client_direct(self):
        for v in ("1.2", "1.3"):
            with self.subTest(version=v):
                r, err = self.request(self.port, "good", v)
                self.assertIsNone(err, self.log_tail())
                self.assertEqual(r.status, 200, r)
                self.assertIdentity(r.json(), "good")

    def test_valid_client_via_intermediate(self):
        # The client sends the intermediate; only the root is configured.
        for v in ("1.2", "1.3"):
            with self.subTest(version=v):
                r, err = self.request(self.port, "via-int", v)
                self.assertIsNone(err, self.log_tail())
                self.assertEqual(r.status, 200, r)
                self.assertIdentity(r.json(), "via-int")

    def test_curl_with_client_certificate(self):
        crt, key = self.m.cert("good")
        rc, out, err = tg.curl("--cacert", self.pki.ca, "--cert", crt, "--key", key,
                               "https://localhost:%d/echo" % self.port)
        self.assertEqual(rc, 0, err + self.log_tail())
        self.assertIdentity(json.loads(out), "good")

    def test_identity_on_every_request_of_a_connection(self):
        c = tg.HTTPConn(self.port, self.ctx("good"))
        self.addCleanup(c.close)
        for i in range(5):
            r = c.get("/echo?i=%d" % i)
            self.assertEqual(r.status, 200, r)
            self.assertIdentity(r.json(), "good")

    def test_rfc4514_escaping_and_utf8(self):
        r, err = self.request(self.port, "odd-names")
        self.assertIsNone(err, self.log_tail())
        e = r.json()
        self.assertIdentity(e, "odd-names")
        subject = hdrs(e, "X-Forwarded-Clientcert-subjectdn")[0]
        # spot checks of the form, beyond "equal to the openssl CLI"
        self.assertTrue(subject.startswith("CN=Zo\\C3\\AB M\\C3\\BCller,"), subject)
        self.assertIn(r',OU=R\+D \"lab\",O=Acme\, Inc. \+ Partners,', subject)
        self.assertTrue(subject.endswith(",C=DE"), subject)

    def test_sni_slot_verifies_the_same(self):
        # The extended certificate's context (SNI shop.example.com) asks for and checks the
        # client certificate exactly like the default one.
        r, err = self.request(self.port, "good", sni="shop.example.com")
        self.assertIsNone(err, self.log_tail())
        self.assertIdentity(r.json(), "good")
        ctx = tg.client_context(verify=False, cert=self.m.cert("good"))
        with tg.tls_connect(self.port, ctx, sni="shop.example.com") as s:
            self.assertEqual(tg.peer_sha256(s), self.pki.fingerprint("shop"))
        self.assertRefused(self.port, None, "TLSV13_ALERT_CERTIFICATE_REQUIRED", "1.3",
                           sni="shop.example.com")
        self.assertRefused(self.port, "stranger", "TLSV1_ALERT_UNKNOWN_CA", "1.3",
                           sni="shop.example.com")
        self.assertRefused(self.port, "revoked", "SSLV3_ALERT_CERTIFICATE_REVOKED", "1.2",
                           sni="shop.example.com")

    def test_access_log_client_subject(self):
        r, err = self.request(self.port, "good", path="/echo?log=mtls")
        self.assertIsNone(err)
        r, err = self.request(self.off_port, None, path="/echo?log=off")
        self.assertIsNone(err)
        want = openssl_name(self.m.leaf("good"), "subject")
        on = self.daemon.wait_access_log(lambda e: e["path"] == "/echo?log=mtls")
        off = self.daemon.wait_access_log(lambda e: e["path"] == "/echo?log=off")
        self.assertEqual([e.get("client_subject") for e in on], [want])
        self.assertEqual([e.get("client_subject") for e in off], [""])

    # -- refused clients: the alert and the log line
    def test_no_certificate(self):
        self.assertRefused(self.port, None, "TLSV13_ALERT_CERTIFICATE_REQUIRED", "1.3")
        self.assertRefused(self.port, None, "SSLV3_ALERT_HANDSHAKE_FAILURE", "1.2")
        self.assertLogged("main", "no_client_cert")

    def test_no_certificate_s_client(self):
        r = tg.s_client(self.port, "-tls1_3", "-ign_eof")
        self.assertIn("alert certificate required", r.out, r)

    def test_certificate_of_another_ca(self):
        for v in ("1.2", "1.3"):
            with self.subTest(version=v):
                self.assertRefused(self.port, "stranger", "TLSV1_ALERT_UNKNOWN_CA", v)
        self.assertLogged("main", "unknown_ca", "stranger")

    def test_expired(self):
        for v in ("1.2", "1.3"):
            with self.subTest(version=v):
                self.assertRefused(self.port, "expired", "SSLV3_ALERT_CERTIFICATE_EXPIRED", v)
        self.assertLogged("main", "expired", "expired")

    def test_not_yet_valid(self):
        for v in ("1.2", "1.3"):
            with self.subTest(version=v):
                self.assertRefused(self.port, "future", "SSLV3_ALERT_CERTIFICATE_EXPIRED", v)
        self.assertLogged("main", "expired", "future")

    def test_revoked(self):
        for v in ("1.2", "1.3"):
            with self.subTest(version=v):
                self.assertRefused(self.port, "revoked", "SSLV3_ALERT_CERTIFICATE_REVOKED", v)
        self.assertLogged("main", "revoked", "revoked")

    def test_revoked_intermediate(self):
        # The CRL is checked for the whole chain, not only the client's certificate.
        self.assertRefused(self.port, "via-bad-int", "SSLV3_ALERT_CERTIFICATE_REVOKED", "1.3")
        self.assertLogged("main", "revoked", "via-bad-int")

    def test_issuer_without_crl_is_not_refused(self):
        # "int" has no CRL of its own while the root has one: its clients still get in
        # (test_valid_client_via_intermediate), and so do clients of a CA that has no
        # CRL at all on a listener where another CA has one.
        r, err = self.request(self.mixed_port, "stranger")
        self.assertIsNone(err, self.log_tail())
        self.assertIdentity(r.json(), "stranger")
        r, err = self.request(self.mixed_port, "via-int")
        self.assertIsNone(err, self.log_tail())
        self.assertRefused(self.mixed_port, "revoked", "SSLV3_ALERT_CERTIFICATE_REVOKED", "1.3")
        self.assertLogged("mixed", "revoked", "revoked")

    def test_chain_longer_than_verify_depth(self):
        # verify_depth 1: one intermediate between client and CA, not two.
        r, err = self.request(self.shallow_port, "via-int")
        self.assertIsNone(err, self.log_tail())
        self.assertIdentity(r.json(), "via-int")
        self.assertRefused(self.shallow_port, "deep", "TLSV1_ALERT_UNKNOWN_CA", "1.3")
        self.assertLogged("shallow", "depth", "deep")
        # the default depth (3) takes it
        r, err = self.request(self.port, "deep")
        self.assertIsNone(err, self.log_tail())
        self.assertIdentity(r.json(), "deep")

    def test_server_auth_only_eku(self):
        for v in ("1.2", "1.3"):
            with self.subTest(version=v):
                self.assertRefused(self.port, "server-eku", "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE", v)
        self.assertLogged("main", "bad_cert", "server-eku")

    # -- what is asked for
    def test_certificate_request_names_the_listener_cas(self):
        for v in ("-tls1_2", "-tls1_3"):
            with self.subTest(version=v):
                r = tg.s_client(self.port, v)
                self.assertIn("Acceptable client certificate CA names", r.out, r)
                names = r.out.split("Acceptable client certificate CA names", 1)[1]
                names = names.split("---", 1)[0] if "---" in names else names[:400]
                self.assertIn("mtls test root", names, r)
                self.assertNotIn("other root", names, r)
                r = tg.s_client(self.mixed_port, v)
                names = r.out.split("Acceptable client certificate CA names", 1)[1][:600]
                self.assertIn("mtls test root", names, r)
                self.assertIn("other root", names, r)

    def test_mtls_off_sends_no_certificate_request(self):
        for v in ("-tls1_2", "-tls1_3"):
            with self.subTest(version=v):
                r = tg.s_client(self.off_port, "-msg", v)
                self.assertTrue(r.ok, r)
                self.assertFalse(r.cert_requested, r)
                self.assertIn("No client certificate CA names sent", r.out, r)
                r = tg.s_client(self.port, "-msg", v)
                self.assertTrue(r.cert_requested, r)
        # a client certificate offered anyway is not asked for, so no identity
        r, err = self.request(self.off_port, "good")
        self.assertIsNone(err)
        self.assertEqual(identity_headers(r.json()), [])

    # -- listeners are independent
    def test_listeners_do_not_admit_each_others_clients(self):
        self.assertRefused(self.other_port, "good", "TLSV1_ALERT_UNKNOWN_CA", "1.3")
        self.assertLogged("other", "unknown_ca", "good")
        self.assertRefused(self.port, "stranger", "TLSV1_ALERT_UNKNOWN_CA", "1.3")
        r, err = self.request(self.other_port, "stranger")
        self.assertIsNone(err, self.log_tail())
        self.assertIdentity(r.json(), "stranger")

    def test_intermediate_as_the_only_ca(self):
        # Every CA of a listener is a trust anchor (clients chain to "one of the listener's
        # CA certificates"), so a bundle holding only an intermediate admits its clients,
        # sent with or without the intermediate, and nobody else the root signed.
        r, err = self.request(self.int_port, "via-int")
        self.assertIsNone(err, self.log_tail())
        self.assertIdentity(r.json(), "via-int")
        ctx = tg.client_context(cert=(self.m.leaf("via-int"), self.m.cert("via-int")[1]))
        r, err = self.request(self.int_port, ctx=ctx)
        self.assertIsNone(err, self.log_tail())
        self.assertIdentity(r.json(), "via-int")
        self.assertRefused(self.int_port, "good", "TLSV1_ALERT_UNKNOWN_CA", "1.3")
        self.assertLogged("int-only", "unknown_ca", "good")

    # -- forged identity headers
    def test_forged_identity_headers_never_reach_the_backend(self):
        forged = [("X-Forwarded-Clientcert-subjectdn", "CN=mallory"),
                  ("x-forwarded-clientcert-issuerdn", "CN=evil CA"),
                  ("X-FORWARDED-CLIENTCERT-FINGERPRINT", "00" * 32),
                  ("X-Forwarded-ClientCert-ClientVerify", "SUCCESS"),
                  ("X-Forwarded-Clientcert-extra", "x")]
        r, err = self.request(self.port, "good", headers=forged)
        self.assertIsNone(err)
        self.assertIdentity(r.json(), "good")  # exactly ours, once each
        r, err = self.request(self.off_port, None, headers=forged)
        self.assertIsNone(err)
        self.assertEqual(identity_headers(r.json()), [])
        r, err = self.request(self.off_port, "good", headers=forged)
        self.assertIsNone(err)
        self.assertEqual(identity_headers(r.json()), [])

    # -- resumption
    def test_resumption_keeps_the_identity(self):
        for v in ("1.2", "1.3"):
            with self.subTest(version=v):
                ctx = self.ctx("good", v)
                r, err = self.request(self.port, ctx=ctx)
                self.assertIsNone(err, self.log_tail())
                self.assertFalse(self.last_reused)
                self.assertIdentity(r.json(), "good")
                for i in range(3):
                    r, err = self.request(self.port, ctx=ctx, session=self.last_session,
                                          path="/echo?resumed=%d" % i)
                    self.assertIsNone(err, self.log_tail())
                    self.assertTrue(self.last_reused, "TLS %s: not resumed" % v)
                    self.assertIdentity(r.json(), "good")

    def test_session_of_mtls_off_listener_does_not_resume(self):
        for v in ("1.2", "1.3"):
            with self.subTest(version=v):
                # with a certificate: a full handshake that checks it
                ctx = self.ctx("good", v)
                r, err = self.request(self.off_port, ctx=ctx)
                self.assertIsNone(err)
                self.assertEqual(identity_headers(r.json()), [])
                r, err = self.request(self.port, ctx=ctx, session=self.last_session)
                self.assertIsNone(err, self.log_tail())
                self.assertFalse(self.last_reused, "an mTLS-off session resumed on an mTLS listener")
                self.assertIdentity(r.json(), "good")
                # without one: the session is no way around the certificate
                plain = self.ctx(None, v)
                r, err = self.request(self.off_port, ctx=plain)
                self.assertIsNone(err)
                self.assertRefused(self.port, None, ("TLSV13_ALERT_CERTIFICATE_REQUIRED",
                                                     "SSLV3_ALERT_HANDSHAKE_FAILURE"),
                                   ctx=plain, session=self.last_session)


class TestMutualAuthReload(MtlsCase, tg.TestCase):
    """Turning mutual authentication on by a reload applies to the next handshake, and a
    session made before it never resumes past the new check."""

    def test_reload_turns_mtls_on(self):
        self.m = mtls_pki()
        be = self.backend()
        port = tg.free_port()
        cfg = self.config()
        add_cas(cfg, self.m)
        cfg["backends"]["app"] = tg.pool_backend([be])
        cfg["listeners"]["main"] = tg.https_listener(port, "app")
        self.start(cfg)
        ctxs = {v: self.ctx("good", v) for v in ("1.2", "1.3")}
        sessions = {}
        for v, ctx in ctxs.items():
            r, err = self.request(port, ctx=ctx)
            self.assertIsNone(err)
            self.assertEqual(identity_headers(r.json()), [])
            sessions[v] = self.last_session
            r, err = self.request(port, ctx=ctx, session=sessions[v])
            self.assertTrue(self.last_reused, "resumes before the reload")

        cfg["listeners"]["main"]["mutual_auth"] = mtls(["mtls-root"])
        self.daemon.sighup_reload(cfg)
        for v, ctx in ctxs.items():
            with self.subTest(version=v):
                r, err = self.request(port, ctx=ctx, session=sessions[v])
                self.assertIsNone(err, self.log_tail())
                self.assertFalse(self.last_reused, "a session from before mTLS resumed")
                self.assertIdentity(r.json(), "good")
                self.assertRefused(port, None, ("TLSV13_ALERT_CERTIFICATE_REQUIRED",
                                                "SSLV3_ALERT_HANDSHAKE_FAILURE"), v)


class TestMutualAuthConfig(tg.TestCase):
    def test_quic_listener_refuses_mutual_auth(self):
        m = mtls_pki()
        cfg = self.config()
        add_cas(cfg, m)
        cfg["backends"]["hello"] = tg.fixed_backend(body="hi\n")
        cfg["listeners"]["q"] = {"protocol": "quic", "listen": "127.0.0.1:%d" % tg.free_port(),
                                 "backend": "hello", "certificates": {"default": "www-ecdsa"},
                                 "mutual_auth": mtls(["mtls-root"])}
        path = tg.write_config(self.dir, cfg)
        rc, out = tg.run_tollgate("check", "-c", path)
        self.assertEqual(rc, 1, out)
        self.assertIn("mutual authentication is not supported on QUIC listeners", out)


if __name__ == "__main__":
    unittest.main()
