"""The admin endpoint (SPEC §6, the parts that exist): /metrics and /v1/status behind the
bearer token, and the reload counters and generation they report."""

import hashlib
import json
import os
import re
import ssl
import subprocess
import tempfile
import unittest
import urllib.error
import urllib.request

import tg


def write_token(work):
    token = os.path.join(work, "admin.token")
    with open(token, "w") as f:
        f.write("t0ken-for-the-tests\n")
    os.chmod(token, 0o600)
    return token


class TestAdmin(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = tg.shared_pki()

    def setUp(self):
        self.work = tg.make_tmpdir()
        self.addCleanup(tg.remove_tmpdir, self.work)
        self.port = tg.free_port()
        self.admin_port = tg.free_port()
        token = write_token(self.work)
        cfg = tg.base_config(self.pki, self.work)
        cfg["admin"] = {"listen": "127.0.0.1:%d" % self.admin_port, "token_file": token}
        cfg["backends"]["hello"] = tg.fixed_backend(body="hi\n")
        cfg["listeners"]["main"] = tg.https_listener(self.port, "hello")
        self.cfg = cfg
        self.daemon = tg.Daemon(self.work, cfg).start(ports=(self.port, self.admin_port))
        self.addCleanup(self.daemon.stop_and_check)

    def fetch(self, path, token="t0ken-for-the-tests"):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.admin_port, path))
        if token is not None:
            req.add_header("Authorization", "Bearer " + token)
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metric(self, text, name):
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                if line.split(" ")[0] == name:
                    return float(line.split(" ")[1])
        raise AssertionError("metric %s not in\n%s" % (name, text))

    def test_token_required(self):
        self.assertEqual(self.fetch("/metrics", token=None)[0], 401)
        self.assertEqual(self.fetch("/metrics", token="wrong")[0], 401)
        self.assertEqual(self.fetch("/metrics")[0], 200)

    def test_status_lists_listeners(self):
        code, body = self.fetch("/v1/status")
        self.assertEqual(code, 200)
        st = json.loads(body)
        self.assertEqual((st["listeners"], st["generation"]), (["main"], 1))

    def fetch_json(self, path, want=200):
        code, body = self.fetch(path)
        self.assertEqual(code, want, body)
        return json.loads(body)

    def test_certificates_listed(self):
        certs = {c["id"]: c for c in self.fetch_json("/v1/certificates")["certificates"]}
        self.assertEqual(set(certs), set(self.cfg["certificates"]))
        c = certs["www-ecdsa"]
        with open(self.cfg["certificates"]["www-ecdsa"]["cert"]) as f:
            der = ssl.PEM_cert_to_DER_cert(f.read())
        self.assertEqual(c["sha256"], hashlib.sha256(der).hexdigest())
        self.assertEqual((c["type"], c["key_type"], c["used_by"]), ("server", "ec", ["main"]))
        self.assertIn("www.example.com", c["sans"])
        self.assertGreater(c["days_left"], 0)
        self.assertFalse(c["expired"])
        self.assertRegex(c["not_after"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual(certs["www-rsa"]["used_by"], [])
        self.assertEqual(self.fetch_json("/v1/certificates/www-rsa")["key_type"], "rsa")

    def test_no_private_key_in_any_answer(self):
        for path in ("/v1/certificates", "/v1/listeners", "/v1/certificates/www-ecdsa"):
            body = self.fetch(path)[1]
            self.assertNotIn("PRIVATE", body)
            self.assertNotIn("key_pem", body)

    def test_listener_shown(self):
        l = self.fetch_json("/v1/listeners/main")
        self.assertEqual((l["protocol"], l["backend"], l["listen"]),
                         ("https", "hello", "127.0.0.1:%d" % self.port))
        self.assertEqual(l["certificates"], {"default": "www-ecdsa", "extended": []})
        self.assertFalse(l["mutual_auth"]["enabled"])
        self.assertEqual([x["id"] for x in self.fetch_json("/v1/listeners")["listeners"]],
                         ["main"])

    def post(self, path, body=None):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.admin_port, path),
                                     data=body, method="POST",
                                     headers={"Authorization": "Bearer t0ken-for-the-tests"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read().decode())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read().decode())

    def test_reload_call(self):
        self.assertEqual(self.post("/v1/reload"), (200, {"generation": 2, "warnings": []}))
        # The file on disk now has a key that does not match its certificate: refused,
        # and generation 2 keeps serving.
        bad = json.loads(json.dumps(self.cfg))
        bad["certificates"]["www-ecdsa"]["key"] = self.pki.key("shop")
        tg.write_config(self.work, bad, name=os.path.basename(self.daemon.conf_path))
        code, answer = self.post("/v1/reload")
        self.assertEqual(code, 422, answer)
        self.assertRegex(answer["error"], r"tollgate\.yaml:\d+:\d+: .*www-ecdsa")
        self.assertEqual(answer["problems"][0], answer["error"])
        self.assertEqual(self.fetch_json("/v1/status")["generation"], 2)
        self.assertEqual(self.fetch("/v1/reload")[0], 405)

    def test_unknown_ids_and_calls(self):
        self.assertEqual(self.fetch_json("/v1/certificates/nope", 404),
                         {"error": "no such certificate"})
        self.assertEqual(self.fetch_json("/v1/listeners/nope", 404), {"error": "no such listener"})
        for path in ("/v1/certificates/a/b", "/v1/certificatesx", "/v1/", "/v2/status"):
            self.assertEqual(self.fetch(path)[0], 404, path)
        req = urllib.request.Request("http://127.0.0.1:%d/v1/status" % self.admin_port,
                                     method="PATCH",
                                     headers={"Authorization": "Bearer t0ken-for-the-tests"})
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=5)
        self.assertEqual(e.exception.code, 405)

    def test_reload_counters_and_generation(self):
        conf = self.daemon.conf_path
        ok = subprocess.run([tg.BIN, "reload", "-c", conf], capture_output=True, text=True,
                            timeout=30)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        self.assertEqual(ok.stdout.strip(), "generation 2")
        # A key that does not match its certificate: refused by the instance itself.
        bad = dict(self.cfg)
        bad["certificates"] = dict(self.cfg["certificates"])
        bad["certificates"]["www-ecdsa"] = dict(bad["certificates"]["www-ecdsa"],
                                                key=self.pki.key("shop"))
        bad_path = tg.write_config(self.work, bad, name="bad.yaml")
        r = subprocess.run([tg.BIN, "reload", "-c", bad_path], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"bad\.yaml:\d+:\d+: .*www-ecdsa")
        text = self.fetch("/metrics")[1]
        self.assertEqual(self.metric(text, "tollgate_config_generation"), 2)
        self.assertIn('tollgate_reloads_total{result="success"} 1', text)
        self.assertIn('tollgate_reloads_total{result="failed"} 1', text)
        self.assertIn('tollgate_certificate_not_after_seconds{certificate="www-ecdsa"}', text)

    def test_handshake_counters(self):
        tg.get(self.port, "/")
        # A TLS 1.0-only client against the default policy: a protocol failure.
        r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.port,
                            "-tls1", "-cipher", "DEFAULT:@SECLEVEL=0"],
                           input=b"", capture_output=True, timeout=10)
        self.assertNotEqual(r.returncode, 0)
        text = self.fetch("/metrics")[1]
        self.assertIn('tollgate_handshakes_total{listener="main",result="success"} 1', text)
        self.assertIn('tollgate_handshake_failures_total{listener="main",reason="protocol"} 1',
                      text)



class TestAdminCommands(unittest.TestCase):
    """`tollgate cert list|show` and `tollgate listener list|show` against a running
    instance, with the admin address and token read from its config file (SPEC §2, §6)."""

    @classmethod
    def setUpClass(cls):
        cls.pki = tg.shared_pki()

    def setUp(self):
        self.work = tg.make_tmpdir()
        self.addCleanup(tg.remove_tmpdir, self.work)
        self.port = tg.free_port()
        admin_port = tg.free_port()
        token = write_token(self.work)
        # A certificate 10 days from its end, to be marked.
        crt, key = self.pki.make_leaf("soon", sans=["DNS:soon.example.com"], days=10,
                                      directory=self.work)
        cfg = tg.base_config(self.pki, self.work)
        cfg["certificates"]["soon"] = {"type": "server", "cert": crt, "key": key}
        cfg["admin"] = {"listen": "127.0.0.1:%d" % admin_port, "token_file": token}
        cfg["backends"]["hello"] = tg.fixed_backend(body="hi\n")
        cfg["listeners"]["main"] = tg.https_listener(self.port, "hello", extended=["soon"])
        self.daemon = tg.Daemon(self.work, cfg).start(ports=(self.port, admin_port))
        self.addCleanup(self.daemon.stop_and_check)

    def cli(self, *args):
        r = subprocess.run([tg.BIN] + list(args) + ["-c", self.daemon.conf_path],
                           capture_output=True, text=True, timeout=30)
        return r.returncode, r.stdout, r.stderr

    def rows(self, out):
        """The table's rows as lists of cells (cells are two or more spaces apart)."""
        return [re.split(r"  +", l.strip()) for l in out.splitlines() if l.strip()]

    def test_cert_list_table(self):
        rc, out, err = self.cli("cert", "list")
        self.assertEqual(rc, 0, err)
        rows = self.rows(out)
        self.assertEqual(rows[0], ["ID", "TYPE", "SUBJECT CN", "SANS", "KEY", "NOT AFTER",
                                   "DAYS LEFT", "USED BY"])
        by_id = {r[0]: r for r in rows[1:] if len(r) == 8}
        self.assertEqual(by_id["www-ecdsa"][1:3], ["server", "www.example.com"])
        self.assertEqual(by_id["www-ecdsa"][4], "ec 256")
        self.assertEqual(by_id["www-ecdsa"][7], "main")
        self.assertEqual(by_id["www-rsa"][4], "rsa 2048")
        self.assertEqual(by_id["soon"][3], "soon.example.com")
        self.assertRegex(by_id["soon"][6], r"^(9|10) !$")  # marked: under 30 days
        self.assertNotIn("!", by_id["www-ecdsa"][6])
        self.assertIn("fewer than 30 days left", out)
        self.assertEqual(by_id["clients-ca"][1], "ca")

    def test_cert_list_json(self):
        rc, out, err = self.cli("cert", "list", "--json")
        self.assertEqual(rc, 0, err)
        ids = [c["id"] for c in json.loads(out)["certificates"]]
        self.assertIn("soon", ids)

    def test_cert_show(self):
        rc, out, err = self.cli("cert", "show", "www-ecdsa")
        self.assertEqual(rc, 0, err)
        fields = dict(re.split(r"  +", l, maxsplit=1) for l in out.splitlines())
        self.assertEqual(fields["sha256"], self.pki.fingerprint("www-ecdsa"))
        self.assertEqual(fields["used by"], "main")
        rc, out, err = self.cli("cert", "show", "nope")
        self.assertEqual((rc, out), (1, ""))
        self.assertIn("404: no such certificate", err)

    def test_listener_list_and_show(self):
        rc, out, err = self.cli("listener", "list")
        self.assertEqual(rc, 0, err)
        rows = self.rows(out)
        self.assertEqual(rows[1], ["main", "https", "127.0.0.1:%d" % self.port, "hello",
                                   "www-ecdsa", "soon", "off"])
        rc, out, err = self.cli("listener", "show", "main", "--json")
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out)["certificates"]["extended"], ["soon"])

    def test_over_a_unix_socket(self):
        # No token on a unix socket: its 0600 mode is the guard.
        port = tg.free_port()
        work = tempfile.mkdtemp(dir=self.work)  # its own pid file and control socket
        cfg = tg.base_config(self.pki, work)
        cfg["admin"] = {"listen": "unix:" + os.path.join(work, "admin.sock")}
        cfg["backends"]["hello"] = tg.fixed_backend(body="hi\n")
        cfg["listeners"]["other"] = tg.https_listener(port, "hello")
        d = tg.Daemon(work, cfg).start(ports=(port,))
        self.addCleanup(d.stop_and_check)
        r = subprocess.run([tg.BIN, "listener", "show", "other", "-c", d.conf_path],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"(?m)^listen +127\.0\.0\.1:%d$" % port)

    def test_usage_and_failures(self):
        for args in (["cert"], ["cert", "frob"], ["cert", "show"], ["listener", "list", "x"],
                     ["cert", "list", "--bogus"]):
            rc, _, err = self.cli(*args)
            self.assertEqual(rc, 2, args)
            self.assertIn("usage:", err)
        r = subprocess.run([tg.BIN, "cert", "list"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)  # no -c
        # A config without an admin section: nothing to talk to.
        cfg = tg.base_config(self.pki, self.work)
        cfg["backends"]["hello"] = tg.fixed_backend(body="hi\n")
        cfg["listeners"]["main"] = tg.https_listener(tg.free_port(), "hello")
        path = tg.write_config(self.work, cfg, name="noadmin.yaml")
        r = subprocess.run([tg.BIN, "cert", "list", "-c", path], capture_output=True,
                           text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no admin section", r.stderr)
        # The instance is gone: the call fails with the reason, exit 1.
        self.daemon.stop_and_check()
        rc, _, err = self.cli("cert", "list")
        self.assertEqual(rc, 1)
        self.assertIn("admin API at 127.0.0.1:", err)


if __name__ == "__main__":
    unittest.main()
