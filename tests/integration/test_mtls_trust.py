"""Mutual authentication (SPEC §4): which CAs of `ca_certificates` are trust anchors, and
sessions that outlive their client certificate.

Trust anchors are the self-signed certificates of a listener's CAs and those whose issuer
is not among them; the others only help build chains. So an intermediate listed with its
root is checked against the root: the root's dates and its CRL apply to the intermediate's
clients. An intermediate listed alone is an anchor. A session whose client certificate has
expired since the handshake that made it does not resume: the full handshake that follows
refuses the certificate.

The PKI is made at run time with `openssl ca`, which dates certificates to the second, in
the past too (-startdate/-enddate), and keeps the database that revocation needs:

    root (key R): root.crt valid now; old-root.crt the same name and key, expired
      └── int ── via-int (a client), and per test a client valid for a few seconds
    root CRLs: root-empty.crl (revokes nothing), root-revoked.crl (revokes int)
"""

import atexit
import datetime
import os
import re
import ssl
import time
import unittest

import tg

CA_EXT = ("basicConstraints = critical, CA:true\n"
          "keyUsage = critical, keyCertSign, cRLSign\n"
          "subjectKeyIdentifier = hash\n")
CLIENT_EXT = ("basicConstraints = critical, CA:false\n"
              "keyUsage = critical, digitalSignature\n"
              "extendedKeyUsage = clientAuth\n"
              "authorityKeyIdentifier = keyid\n")

EXPIRED = "SSLV3_ALERT_CERTIFICATE_EXPIRED"
REVOKED = "SSLV3_ALERT_CERTIFICATE_REVOKED"
UNKNOWN_CA = "TLSV1_ALERT_UNKNOWN_CA"


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc)


def asn1_time(dt):
    return dt.strftime("%Y%m%d%H%M%SZ")


def gen_key(path):
    tg.run_cmd(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-pkeyopt", "ec_param_enc:named_curve", "-out", path])


def cat(out, *paths):
    with open(out, "w") as f:
        for p in paths:
            with open(p) as src:
                f.write(src.read())
    return out


class Authority:
    """One CA key with an `openssl ca` database: signs, revokes, writes CRLs. Its
    certificate is self-signed (a root) or issued by `parent`."""

    def __init__(self, directory, name, subject, parent=None):
        self.dirname = directory
        self.name = name
        self.subject = subject
        self.db = os.path.join(directory, name + ".db")
        os.makedirs(os.path.join(self.db, "new"))
        open(os.path.join(self.db, "index.txt"), "w").close()
        with open(os.path.join(self.db, "serial"), "w") as f:
            f.write("%016X\n" % int.from_bytes(os.urandom(7), "big"))
        with open(os.path.join(self.db, "crlnumber"), "w") as f:
            f.write("01\n")
        self.key = os.path.join(directory, name + ".key")
        self.crt = os.path.join(directory, name + ".crt")
        self.cnf = os.path.join(self.db, "ca.cnf")
        with open(self.cnf, "w") as f:
            f.write("[ ca ]\ndefault_ca = this\n[ this ]\n"
                    "database = %(d)s/index.txt\nnew_certs_dir = %(d)s/new\n"
                    "serial = %(d)s/serial\ncrlnumber = %(d)s/crlnumber\n"
                    "certificate = %(crt)s\nprivate_key = %(key)s\n"
                    "default_md = sha256\ndefault_days = 30\ndefault_crl_days = 30\n"
                    "policy = any\nunique_subject = no\nemail_in_dn = no\n"
                    "[ any ]\norganizationName = optional\ncommonName = supplied\n"
                    % {"d": self.db, "crt": self.crt, "key": self.key})
        gen_key(self.key)
        if parent is None:
            self.self_sign(self.crt, now_utc() - datetime.timedelta(hours=1),
                           now_utc() + datetime.timedelta(days=60))
        else:
            parent.sign(self.key, subject, CA_EXT + "authorityKeyIdentifier = keyid\n",
                        self.crt)

    def self_sign(self, out, start, end):
        """A self-signed certificate of this CA's name and key with the given dates."""
        csr = out + ".csr"
        tg.run_cmd(["openssl", "req", "-new", "-key", self.key, "-subj", self.subject,
                    "-out", csr])
        ext = out + ".ext"
        with open(ext, "w") as f:
            f.write(CA_EXT)
        tg.run_cmd(["openssl", "ca", "-batch", "-notext", "-selfsign", "-config", self.cnf,
                    "-keyfile", self.key, "-in", csr, "-out", out, "-extfile", ext,
                    "-startdate", asn1_time(start), "-enddate", asn1_time(end)])
        os.unlink(csr)
        os.unlink(ext)
        return out

    def sign(self, key, subject, ext_text, out, start=None, end=None):
        csr = out + ".csr"
        tg.run_cmd(["openssl", "req", "-new", "-key", key, "-subj", subject, "-out", csr])
        ext = out + ".ext"
        with open(ext, "w") as f:
            f.write(ext_text)
        start = start or now_utc() - datetime.timedelta(hours=1)
        end = end or now_utc() + datetime.timedelta(days=30)
        tg.run_cmd(["openssl", "ca", "-batch", "-notext", "-config", self.cnf, "-in", csr,
                    "-out", out, "-extfile", ext, "-startdate", asn1_time(start),
                    "-enddate", asn1_time(end)])
        os.unlink(csr)
        os.unlink(ext)
        return out

    def client(self, name, subject, end=None, directory=None):
        """(leaf, key, leaf + this CA's certificate) of a client certificate."""
        directory = directory or self.dirname
        key = os.path.join(directory, name + ".key")
        crt = os.path.join(directory, name + ".crt")
        gen_key(key)
        self.sign(key, subject, CLIENT_EXT, crt, end=end)
        chain = cat(os.path.join(directory, name + ".chain.crt"), crt, self.crt)
        return crt, key, chain

    def revoke(self, crt):
        tg.run_cmd(["openssl", "ca", "-config", self.cnf, "-revoke", crt])

    def gencrl(self, out):
        tg.run_cmd(["openssl", "ca", "-config", self.cnf, "-gencrl", "-out", out])
        return out


class TrustPKI:
    def __init__(self, d):
        self.dir = d
        self.root = Authority(d, "root", "/O=tollgate test/CN=trust test root")
        self.old_root = self.root.self_sign(os.path.join(d, "old-root.crt"),
                                            now_utc() - datetime.timedelta(days=30),
                                            now_utc() - datetime.timedelta(days=1))
        self.int = Authority(d, "int", "/O=tollgate test/CN=trust test intermediate", self.root)
        self.via_int = self.int.client("via-int", "/O=tollgate test/CN=client under int")
        self.crl_empty = self.root.gencrl(os.path.join(d, "root-empty.crl"))
        self.root.revoke(self.int.crt)
        self.crl_revoked = self.root.gencrl(os.path.join(d, "root-revoked.crl"))
        self.int_old_root_bundle = cat(os.path.join(d, "int-old-root.crt"), self.int.crt,
                                       self.old_root)


_pki = None


def trust_pki():
    global _pki
    if _pki is None:
        d = tg.make_tmpdir("tg-trust-pki-")
        atexit.register(tg.remove_tmpdir, d)
        _pki = TrustPKI(d)
    return _pki


def subject_of(crt):
    out = tg.run_cmd(["openssl", "x509", "-noout", "-subject", "-nameopt", "RFC2253",
                      "-in", crt]).stdout.decode()
    return out.splitlines()[0].split("=", 1)[1]


class TrustCase:
    """Helpers over tg.TestCase: handshakes with a client certificate, and what they did."""

    def ctx(self, cert, key, version):
        return tg.client_context(minv=version, maxv=version, cert=(cert, key))

    def admitted(self, port, ctx, session=None):
        """(resumed, None) when a request over a new connection is answered, else (resumed,
        what went wrong). Keeps the connection's session in self.last_session (a TLS 1.3
        ticket comes after the handshake: the response brings it)."""
        self.last_session = None
        try:
            with tg.HTTPConn(port, ctx, session=session) as c:
                resumed = c.sock.session_reused
                r = c.get("/whoami")
                self.last_session = c.session()
                return resumed, None if r.status == 200 else "status %d" % r.status
        except ssl.SSLError as e:
            return False, e.reason or str(e)
        except (tg.ConnectionClosed, OSError) as e:
            return False, "connection error: %r" % e

    def refused(self, port, ctx, session=None):
        """(resumed, the reason of the alert that ends the handshake). Nothing is sent
        after the handshake: under TLS 1.3 the client finishes its side before the server
        has looked at its certificate, and request bytes the server never reads would turn
        its close into a reset that can swallow the alert."""
        try:
            s = tg.tls_connect(port, ctx, session=session)
        except ssl.SSLError as e:
            return False, e.reason or str(e)
        with s:
            resumed = s.session_reused
            if resumed:
                return True, "resumed"
            s.settimeout(5)
            try:
                return False, "no alert (read %r)" % s.recv(1)
            except ssl.SSLError as e:
                return False, e.reason or str(e)
            except OSError as e:
                return False, "connection error without an alert: %r" % e

    def assertAdmitted(self, port, cert, key, msg=""):
        for v in ("1.2", "1.3"):
            with self.subTest(version=v, msg=msg):
                _, err = self.admitted(port, self.ctx(cert, key, v))
                self.assertIsNone(err, "TLS %s %s%s" % (v, msg, self.log_tail()))

    def assertRefused(self, port, cert, key, alert, msg=""):
        for v in ("1.2", "1.3"):
            with self.subTest(version=v, msg=msg):
                _, err = self.refused(port, self.ctx(cert, key, v))
                self.assertEqual(err, alert, "TLS %s %s%s" % (v, msg, self.log_tail()))

    def assertLogged(self, listener, reason, leaf, extra=""):
        pat = (r'warn listener "%s": TLS handshake with 127\.0\.0\.1 failed: reason=%s '
               r'subject="%s" .*%s' % (re.escape(listener), reason, re.escape(subject_of(leaf)),
                                       extra))
        self.wait_for(lambda: re.search(pat, self.daemon.stderr_text()),
                      msg="a log line matching %s" % pat)


def ca_entries(p):
    return {
        "t-root": {"type": "ca", "cert": p.root.crt},
        "t-root-crl-empty": {"type": "ca", "cert": p.root.crt, "crl": p.crl_empty},
        "t-root-crl-revoked": {"type": "ca", "cert": p.root.crt, "crl": p.crl_revoked},
        "t-old-root": {"type": "ca", "cert": p.old_root},
        "t-int": {"type": "ca", "cert": p.int.crt},
        "t-int-old-root": {"type": "ca", "cert": p.int_old_root_bundle},
    }


def mtls(*cas):
    return {"enabled": True, "ca_certificates": list(cas)}


class TestTrustAnchors(TrustCase, tg.ClassDaemonCase):
    LISTENERS = {
        "int-oldroot": ("t-int", "t-old-root"),
        "int-oldroot-bundle": ("t-int-old-root",),
        "int-root": ("t-int", "t-root"),
        "int-root-crl": ("t-int", "t-root-crl-empty"),
        "int-root-revoked": ("t-int", "t-root-crl-revoked"),
        "int-only": ("t-int",),
        "root-only": ("t-root",),
    }

    @classmethod
    def make_config(cls, pki, workdir):
        cls.p = trust_pki()
        cfg = tg.base_config(pki, workdir, workers=2)
        cfg["certificates"].update(ca_entries(cls.p))
        cfg["backends"]["hello"] = tg.fixed_backend(body="hi\n")
        cls.ports = {}
        for name, cas in cls.LISTENERS.items():
            cls.ports[name] = tg.free_port()
            cfg["listeners"][name] = tg.https_listener(cls.ports[name], "hello",
                                                       mutual_auth=mtls(*cas))
        return cfg

    def client(self, chain=False):
        crt, key, with_int = self.p.via_int
        return (with_int if chain else crt), key

    def test_expired_root_above_the_intermediate_refuses(self):
        # The root is the anchor, the intermediate only a link: the root's dates count,
        # whether the client sends the intermediate or not, and both as separate entries
        # and as one bundle.
        for listener in ("int-oldroot", "int-oldroot-bundle"):
            for chain in (False, True):
                self.assertRefused(self.ports[listener], *self.client(chain), EXPIRED,
                                   "%s, chain sent: %s" % (listener, chain))
            # the expired certificate is the root, two above the client's
            self.assertLogged(listener, "expired", self.p.via_int[0], r"at depth 2\)")

    def test_root_crl_that_revokes_nothing_admits(self):
        # With the root in the chain its CRL verifies (it did not while the intermediate
        # ended the chain: "CRL signature failure at depth 1").
        for chain in (False, True):
            self.assertAdmitted(self.ports["int-root-crl"], *self.client(chain),
                                "chain sent: %s" % chain)

    def test_root_crl_revoking_the_intermediate_refuses(self):
        for chain in (False, True):
            self.assertRefused(self.ports["int-root-revoked"], *self.client(chain), REVOKED,
                               "chain sent: %s" % chain)
        self.assertLogged("int-root-revoked", "revoked", self.p.via_int[0], r"at depth 1\)")

    def test_intermediate_with_its_root_admits(self):
        self.assertAdmitted(self.ports["int-root"], *self.client())

    def test_intermediate_alone_is_an_anchor(self):
        for chain in (False, True):
            self.assertAdmitted(self.ports["int-only"], *self.client(chain),
                                "chain sent: %s" % chain)

    def test_root_alone_admits_a_client_that_sends_the_intermediate(self):
        self.assertAdmitted(self.ports["root-only"], *self.client(chain=True))
        # without the intermediate there is no path to the root
        self.assertRefused(self.ports["root-only"], *self.client(chain=False), UNKNOWN_CA)


class TestExpiredCertificateResumption(TrustCase, tg.TestCase):
    """A ticket outlives the client certificate it carries: after the certificate expired
    the session must not resume, and the full handshake refuses the certificate."""

    LIFETIME_S = 5

    def test_session_of_an_expired_certificate_does_not_resume(self):
        p = trust_pki()
        port = tg.free_port()
        cfg = self.config(workers=2)
        cfg["certificates"].update(ca_entries(p))
        cfg["backends"]["hello"] = tg.fixed_backend(body="hi\n")
        cfg["listeners"]["main"] = tg.https_listener(port, "hello",
                                                     mutual_auth=mtls("t-int", "t-root"))
        self.start(cfg)

        end = now_utc().replace(microsecond=0) + datetime.timedelta(seconds=self.LIFETIME_S)
        crt, key, _ = p.int.client("brief", "/O=tollgate test/CN=brief client", end=end,
                                   directory=self.dir)
        sessions = {}
        ctxs = {}
        for v in ("1.2", "1.3"):
            ctxs[v] = self.ctx(crt, key, v)
            resumed, err = self.admitted(port, ctxs[v])
            self.assertIsNone(err, self.log_tail())
            self.assertFalse(resumed)
            # still valid: the session resumes
            resumed, err = self.admitted(port, ctxs[v], session=self.last_session)
            self.assertIsNone(err, self.log_tail())
            self.assertTrue(resumed, "TLS %s: a fresh session did not resume" % v)
            sessions[v] = self.last_session
        self.assertLess(now_utc(), end, "too slow: the certificate expired during the setup")

        time.sleep(max(0.0, (end - now_utc()).total_seconds()) + 1.5)
        for v in ("1.2", "1.3"):
            with self.subTest(version=v):
                resumed, err = self.refused(port, ctxs[v], session=sessions[v])
                self.assertFalse(resumed, "TLS %s: the session of an expired client "
                                 "certificate resumed%s" % (v, self.log_tail()))
                self.assertEqual(err, EXPIRED, self.log_tail())
        pat = (r'warn listener "main": TLS handshake with 127\.0\.0\.1 failed: reason=expired '
               r'subject="%s" .*at depth 0\)' % re.escape(subject_of(crt)))
        self.wait_for(lambda: len(re.findall(pat, self.daemon.stderr_text())) >= 2,
                      msg="two log lines matching %s" % pat)


if __name__ == "__main__":
    unittest.main()
