"""Certificates as operators meet them (SPEC §3 Validation, §4): a private key file that
group or others can read is warned about by `tollgate check`, at start and on reload, and a
certificate pair with tens of thousands of names loads, reloads and serves the right
certificate for a name deep in the list."""

import hashlib
import os
import re
import socket
import struct
import unittest

import tg

# TLS 1.2 suites, so the Certificate message travels in clear and the test can read it
# without a client that accepts a 800 KB certificate (OpenSSL clients stop at 100 KiB).
ECDSA_SUITE = 0xC02B  # ECDHE-ECDSA-AES128-GCM-SHA256
RSA_SUITE = 0xC02F  # ECDHE-RSA-AES128-GCM-SHA256

WARNING_RE = r"certificate \"%s\": key file %s is readable by group/others \(mode %s\); chmod 600 it"


def _client_hello(sni, suite):
    """A TLS 1.2 ClientHello offering one suite, with SNI."""
    name = sni.encode()
    sn = struct.pack("!BH", 0, len(name)) + name
    ext = struct.pack("!HHH", 0x0000, len(sn) + 2, len(sn)) + sn
    groups = struct.pack("!HH", 0x001D, 0x0017)
    ext += struct.pack("!HHH", 0x000A, len(groups) + 2, len(groups)) + groups
    ext += struct.pack("!HHBB", 0x000B, 2, 1, 0)
    sigalgs = struct.pack("!HHH", 0x0403, 0x0804, 0x0401)
    ext += struct.pack("!HHH", 0x000D, len(sigalgs) + 2, len(sigalgs)) + sigalgs
    ext += struct.pack("!HHB", 0xFF01, 1, 0)
    body = struct.pack("!H", 0x0303) + os.urandom(32) + b"\x00"
    body += struct.pack("!HH", 2, suite) + b"\x01\x00"
    body += struct.pack("!H", len(ext)) + ext
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return struct.pack("!BHH", 0x16, 0x0301, len(hs)) + hs


def _recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        d = s.recv(n - len(buf))
        if not d:
            raise ConnectionError("closed after %d of %d bytes" % (len(buf), n))
        buf += d
    return buf


def served_leaf(port, sni, suite, timeout=30):
    """SHA-256 (hex) of the leaf the server sends in a TLS 1.2 handshake offering SUITE with
    SNI; raises on an alert or a close before the Certificate message."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(_client_hello(sni, suite))
        hs = b""
        while True:
            ctype, _, length = struct.unpack("!BHH", _recv_exact(s, 5))
            payload = _recv_exact(s, length)
            if ctype == 0x15:
                raise AssertionError("alert %d for SNI %s" % (payload[1], sni))
            if ctype != 0x16:
                raise AssertionError("record type %d before the Certificate message" % ctype)
            hs += payload
            p = 0
            while p + 4 <= len(hs):
                mtype, n = hs[p], int.from_bytes(hs[p + 1:p + 4], "big")
                if p + 4 + n > len(hs):
                    break
                if mtype == 11:  # Certificate: list length, then length + DER of each
                    body = hs[p + 4:p + 4 + n]
                    leaf_len = int.from_bytes(body[3:6], "big")
                    return hashlib.sha256(body[6:6 + leaf_len]).hexdigest()
                p += 4 + n


def key_pos(conf_text, key_path):
    """(line, col) of the value of the `key:` entry naming KEY_PATH, 1-based."""
    for i, line in enumerate(conf_text.splitlines(), 1):
        m = re.match(r"(\s*key: *)", line)
        if m and line.endswith(key_path):
            return i, len(m.group(1)) + 1
    raise AssertionError("no key: %s in the config" % key_path)


class TestKeyFileMode(tg.TestCase):
    def cert_config(self, mode):
        """A config whose listener uses the new certificate "perm" with its key at MODE."""
        crt, key = self.pki.make_leaf("perm", ["DNS:perm.example.com"], directory=self.dir)
        os.chmod(key, mode)
        os.chmod(crt, 0o644)  # a certificate is public: never warned about
        self.key = key
        cfg = self.config()
        cfg["certificates"]["perm"] = {"type": "server", "cert": crt, "key": key}
        cfg["backends"]["hello"] = tg.fixed_backend(body="hi\n")
        self.port = tg.free_port()
        cfg["listeners"]["main"] = tg.https_listener(self.port, "hello", default="perm")
        return cfg

    def assert_one_warning(self, text, mode, conf_path, conf_text):
        pattern = WARNING_RE % ("perm", re.escape(self.key), mode)
        found = re.findall(pattern, text)
        self.assertEqual(len(found), 1, text)
        line, col = key_pos(conf_text, self.key)
        self.assertIn("%s:%d:%d: warning: " % (conf_path, line, col), text)

    def test_check_warns_0644(self):
        cfg = self.cert_config(0o644)
        conf = tg.write_config(self.dir, cfg)
        rc, out = tg.run_tollgate("check", "-c", conf)
        self.assertEqual(rc, 0, out)
        with open(conf) as f:
            self.assert_one_warning(out, "0644", conf, f.read())
        self.assertIn("%s: ok" % conf, out)

    def test_check_warns_group_readable(self):
        cfg = self.cert_config(0o640)
        conf = tg.write_config(self.dir, cfg)
        rc, out = tg.run_tollgate("check", "-c", conf)
        self.assertEqual(rc, 0, out)
        with open(conf) as f:
            self.assert_one_warning(out, "0640", conf, f.read())

    def test_check_quiet_0600(self):
        cfg = self.cert_config(0o600)
        conf = tg.write_config(self.dir, cfg)
        rc, out = tg.run_tollgate("check", "-c", conf)
        self.assertEqual(rc, 0, out)
        self.assertNotIn("key file", out)
        self.assertNotIn("warning", out)

    def test_daemon_warns_at_start_and_reload(self):
        cfg = self.cert_config(0o644)
        d = self.start(cfg)
        with open(d.conf_path) as f:
            conf_text = f.read()
        self.assert_one_warning(d.stderr_text(), "0644", d.conf_path, conf_text)
        # It serves meanwhile: a warning, not an error.
        self.assertEqual(tg.get(self.port, "/", sni="perm.example.com").status, 200)

        # SIGHUP: the reload's warning goes to the log.
        d.sighup_reload(cfg)
        pattern = WARNING_RE % ("perm", re.escape(self.key), "0644")
        self.assertEqual(len(re.findall(pattern, d.stderr_text())), 2, d.stderr_tail())
        self.assertRegex(d.stderr_text(), r"\bwarn %s:\d+:\d+: %s" % (re.escape(d.conf_path),
                                                                      pattern))
        # `tollgate reload` prints it too, and the log has it once more.
        rc, out = tg.run_tollgate("reload", "-c", d.conf_path)
        self.assertEqual(rc, 0, out)
        self.assertEqual(len(re.findall(pattern, out)), 1, out)
        self.wait_for(lambda: len(re.findall(pattern, d.stderr_text())) == 3, msg="third warning")

        # Fixed: the next reload is quiet.
        os.chmod(self.key, 0o600)
        d.sighup_reload(cfg)
        self.assertEqual(len(re.findall(pattern, d.stderr_text())), 3, d.stderr_tail())

    def test_daemon_quiet_0600(self):
        cfg = self.cert_config(0o600)
        d = self.start(cfg)
        self.assertEqual(tg.get(self.port, "/", sni="perm.example.com").status, 200)
        d.sighup_reload(cfg)
        self.assertNotIn("key file", d.stderr_text())


class TestManyNames(tg.TestCase):
    """An RSA and an ECDSA certificate with the same 30,000 names: loading them used to
    take seconds (every name compared with every other); no timing is asserted here, only
    that they load, reload and serve."""

    N = 30000
    # Generous: an ASan build is slow, and the old code took seconds per load.
    START_TIMEOUT = 300

    def make_big(self, name, key_type):
        d = self.dir
        crt, key = os.path.join(d, name + ".crt"), os.path.join(d, name + ".key")
        if key_type == "ec":
            tg.run_cmd(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-out", key])
        else:
            tg.run_cmd(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                        "rsa_keygen_bits:2048", "-out", key])
        os.chmod(key, 0o600)
        ext = os.path.join(d, name + ".ext")
        with open(ext, "w") as f:
            f.write("basicConstraints = critical, CA:false\n")
            f.write("extendedKeyUsage = serverAuth\n")
            f.write("subjectAltName = @alt\n[alt]\n")
            # Exact names, then one wildcard at the very end.
            for i in range(1, self.N):
                f.write("DNS.%d = h%d.example.com\n" % (i, i))
            f.write("DNS.%d = *.w.example.com\n" % self.N)
        csr = os.path.join(d, name + ".csr")
        tg.run_cmd(["openssl", "req", "-new", "-key", key, "-subj", "/CN=h1.example.com",
                    "-out", csr])
        tg.run_cmd(["openssl", "x509", "-req", "-in", csr, "-CA", self.pki.crt("ca"), "-CAkey",
                    self.pki.key("ca"), "-set_serial", str(int.from_bytes(os.urandom(7), "big")),
                    "-extfile", ext, "-sha256", "-days", "30", "-out", crt])
        return crt, key

    def test_big_pair_loads_and_serves(self):
        ec_crt, ec_key = self.make_big("big-ecdsa", "ec")
        rsa_crt, rsa_key = self.make_big("big-rsa", "rsa")
        cfg = self.config()
        cfg["certificates"]["big-ecdsa"] = {"type": "server", "cert": ec_crt, "key": ec_key}
        cfg["certificates"]["big-rsa"] = {"type": "server", "cert": rsa_crt, "key": rsa_key}
        cfg["backends"]["hello"] = tg.fixed_backend(body="hi\n")
        pair, behind = tg.free_port(), tg.free_port()
        # The pair as default and extended (the RSA one joins the default slot), and behind a
        # small default certificate (the pair has a slot of its own).
        cfg["listeners"]["pair"] = tg.https_listener(pair, "hello", default="big-ecdsa",
                                                     extended=["big-rsa"])
        cfg["listeners"]["behind"] = tg.https_listener(behind, "hello", default="www-ecdsa",
                                                       extended=["big-rsa", "big-ecdsa"])

        conf = tg.write_config(self.dir, cfg)
        rc, out = tg.run_tollgate("check", "-c", conf, timeout=self.START_TIMEOUT)
        self.assertEqual(rc, 0, out)
        self.assertNotIn("warning", out)

        d = tg.Daemon(self.dir, cfg)
        self.addCleanup(d.kill)
        self.addCleanup(d.stop_and_check)
        d.start([pair, behind], timeout=self.START_TIMEOUT)
        self.daemon = d

        ec_fp, rsa_fp = self.pki.fingerprint(ec_crt), self.pki.fingerprint(rsa_crt)
        www_fp = self.pki.fingerprint("www-ecdsa")

        def check_all():
            for sni in ("h29999.example.com", "H15000.Example.Com", "h1.example.com",
                        "deep.w.example.com"):
                for port in (pair, behind):
                    self.assertEqual(served_leaf(port, sni, ECDSA_SUITE), ec_fp, (port, sni))
                    self.assertEqual(served_leaf(port, sni, RSA_SUITE), rsa_fp, (port, sni))
            # No match: the default slot, which on "pair" holds both of the pair.
            for sni in ("h30000.example.com", "a.b.w.example.com"):
                self.assertEqual(served_leaf(pair, sni, ECDSA_SUITE), ec_fp, sni)
                self.assertEqual(served_leaf(pair, sni, RSA_SUITE), rsa_fp, sni)
                self.assertEqual(served_leaf(behind, sni, ECDSA_SUITE), www_fp, sni)

        check_all()
        d.sighup_reload(cfg, timeout=self.START_TIMEOUT)
        check_all()
        # A Python client of the right SNI gets through a handshake on the small default.
        self.assertEqual(tg.get(behind, "/", sni="localhost").status, 200)


if __name__ == "__main__":
    unittest.main()
