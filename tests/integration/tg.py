"""Shared harness of the black-box integration tests (Python standard library only).

It makes a PKI with certs/mkpki.sh, writes tollgate's YAML from a Python dict, starts the
daemon on free ports, runs a real HTTP/1.1 backend in threads, and offers TLS and HTTP
clients (Python ssl, raw sockets, curl and `openssl s_client`).

Environment: TOLLGATE_BIN (the daemon, default ../../build/tollgate from this file),
TOLLGATE_SRC (the repository root, default ../..), TG_KEEP=1 keeps the temporary
folders and prints where they are.
"""

import atexit
import hashlib
import http.server
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.environ.get("TOLLGATE_SRC") or os.path.join(HERE, "..", ".."))
BIN = os.path.abspath(os.environ.get("TOLLGATE_BIN") or os.path.join(HERE, "..", "..", "build", "tollgate"))
KEEP = os.environ.get("TG_KEEP") == "1"

ACCESS_LOG_KEYS = ("time", "listener", "client", "sni", "tls_version", "cipher", "resumed",
                   "method", "path", "status", "bytes_in", "bytes_out", "duration_ms",
                   "backend_server")

POLICIES = ("tls_cipher_policy_1_0", "tls_cipher_policy_1_1", "tls_cipher_policy_1_2",
            "tls_cipher_policy_1_2_strict", "tls_cipher_policy_1_2_strict_with_1_3")


# ---------------------------------------------------------------------------------------
# temporary folders

def make_tmpdir(prefix="tg-it-"):
    d = tempfile.mkdtemp(prefix=prefix)
    if KEEP:
        sys.stderr.write("[tg] keeping %s\n" % d)
    return d


def remove_tmpdir(d):
    if not KEEP:
        shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# PKI

def run_cmd(args, timeout=60, check=True, **kw):
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise RuntimeError("%s failed (%d):\n%s" % (" ".join(args), p.returncode,
                                                   p.stdout.decode(errors="replace")))
    return p


def pem_to_der_list(pem_text):
    return [ssl.PEM_cert_to_DER_cert(m.group(0)) for m in re.finditer(
        r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", pem_text, re.S)]


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


class PKI:
    """A folder made by certs/mkpki.sh: NAME.crt / NAME.key, ca.crt the root."""

    SERVER_CERTS = ("www-ecdsa", "www-rsa", "shop", "wild")

    def __init__(self, directory):
        self.dir = directory
        run_cmd(["sh", os.path.join(SRC, "certs", "mkpki.sh"), directory])
        self.ca = self.crt("ca")

    def crt(self, name):
        return os.path.join(self.dir, name + ".crt")

    def key(self, name):
        return os.path.join(self.dir, name + ".key")

    def fingerprint(self, name):
        """SHA-256 (hex) of the DER of the first certificate in NAME.crt (or a path)."""
        with open(name if os.sep in name else self.crt(name)) as f:
            return sha256_hex(pem_to_der_list(f.read())[0])

    def make_leaf(self, name, sans=None, key_type="ec", cn=None, issuer="ca", days=30,
                  start=None, directory=None):
        """Make NAME.crt/NAME.key signed by ISSUER (default the root) in DIRECTORY
        (default the PKI folder). sans: list like ["DNS:a.example.com"], or None for a
        certificate without subjectAltName (CN only)."""
        directory = directory or self.dir
        crt = os.path.join(directory, name + ".crt")
        key = os.path.join(directory, name + ".key")
        if key_type == "ec":
            run_cmd(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                     "-pkeyopt", "ec_param_enc:named_curve", "-out", key])
        else:
            run_cmd(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                     "-out", key])
        ext = os.path.join(directory, name + ".ext")
        with open(ext, "w") as f:
            f.write("basicConstraints = critical, CA:false\n")
            f.write("keyUsage = critical, digitalSignature%s\n"
                    % (", keyEncipherment" if key_type == "rsa" else ""))
            f.write("extendedKeyUsage = serverAuth\n")
            if sans:
                f.write("subjectAltName = %s\n" % ", ".join(sans))
        csr = os.path.join(directory, name + ".csr")
        run_cmd(["openssl", "req", "-new", "-key", key, "-subj",
                 "/O=tollgate test/CN=%s" % (cn or name), "-out", csr])
        args = ["openssl", "x509", "-req", "-in", csr, "-CA", self.crt(issuer), "-CAkey",
                self.key(issuer), "-set_serial", str(random.getrandbits(63)), "-extfile", ext,
                "-sha256", "-out", crt, "-days", str(days)]
        run_cmd(args)
        os.unlink(csr)
        os.unlink(ext)
        return crt, key

    def cert_entries(self):
        """The `certificates:` section for every certificate of the PKI."""
        out = {}
        for n in self.SERVER_CERTS:
            out[n] = {"type": "server", "cert": self.crt(n), "key": self.key(n)}
        out["clients-ca"] = {"type": "ca", "cert": self.crt("clients-ca")}
        return out


_shared_pki = None
_shared_pki_lock = threading.Lock()


def shared_pki():
    """One PKI per test process (key generation is the slow part); tests that need more
    certificates add them with make_leaf into their own folder."""
    global _shared_pki
    with _shared_pki_lock:
        if _shared_pki is None:
            d = make_tmpdir("tg-pki-")
            atexit.register(remove_tmpdir, d)
            _shared_pki = PKI(d)
        return _shared_pki


# ---------------------------------------------------------------------------------------
# YAML and configuration

_PLAIN = re.compile(r"[A-Za-z_./][A-Za-z0-9_./-]*|[0-9]+(ms|s|m|h)|[0-9][A-Za-z0-9_.-]*[A-Za-z_][A-Za-z0-9_.-]*")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def yaml_scalar(v):
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if isinstance(v, (int, float)):
        return str(v)
    s = str(v)
    if _PLAIN.fullmatch(s) and s.lower() not in _RESERVED:
        return s
    return json.dumps(s)  # a JSON string is a valid YAML double-quoted scalar


def to_yaml(obj, indent=0):
    """Block-style YAML for nested dicts and lists of scalars or dicts."""
    pad = " " * indent
    lines = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                lines.append("%s%s:" % (pad, yaml_scalar(k)))
                lines.append(to_yaml(v, indent + 2))
            elif isinstance(v, (dict, list)):
                lines.append("%s%s: %s" % (pad, yaml_scalar(k), "{}" if isinstance(v, dict) else "[]"))
            else:
                lines.append("%s%s: %s" % (pad, yaml_scalar(k), yaml_scalar(v)))
    elif isinstance(obj, list):
        for v in obj:
            if isinstance(v, dict) and v:
                sub = to_yaml(v, indent + 2).split("\n")
                lines.append("%s- %s" % (pad, sub[0].lstrip()))
                lines.extend(sub[1:])
            else:
                lines.append("%s- %s" % (pad, yaml_scalar(v)))
    else:
        return pad + yaml_scalar(obj)
    return "\n".join(lines)


def base_config(pki, workdir, workers=1, access_log="stderr", drain_timeout="5s",
                log_level="info", limits=None):
    g = {
        "workers": workers,
        "pid_file": os.path.join(workdir, "run", "tollgate.pid"),
        "certificate_dir": os.path.join(workdir, "store"),
        "log_level": log_level,
        "access_log": access_log,
        "drain_timeout": drain_timeout,
    }
    if limits:
        g["limits"] = dict(limits)
    return {"version": 1, "global": g, "certificates": pki.cert_entries(),
            "backends": {}, "listeners": {}}


def _listener(protocol, port, backend, default, extended, extra):
    lst = {"protocol": protocol, "listen": "127.0.0.1:%d" % port, "backend": backend}
    certs = {"default": default}
    if extended:
        certs["extended"] = list(extended)
    lst["certificates"] = certs
    lst.update(extra)
    return lst


def https_listener(port, backend, default="www-ecdsa", extended=None, policy=None, **extra):
    if policy:
        extra = dict(extra, security_policy=policy)
    return _listener("https", port, backend, default, extended, extra)


def pool_backend(servers, balance=None, health=None, **extra):
    b = {"servers": [s if isinstance(s, str) else s.addr for s in servers]}
    if balance:
        b["balance"] = balance
    if health:
        b["health_check"] = health
    b.update(extra)
    return b


def fixed_backend(status=200, content_type="text/plain", body=""):
    return {"fixed_response": {"status": status, "content_type": content_type, "body": body}}


def write_config(workdir, config, name="tollgate.yaml"):
    path = os.path.join(workdir, name)
    text = config if isinstance(config, str) else to_yaml(config) + "\n"
    with open(path, "w") as f:
        f.write(text)
    return path


# ---------------------------------------------------------------------------------------
# ports

_ports_given = set()


def free_port(kind=socket.SOCK_STREAM):
    """A port free on 127.0.0.1 now, and never handed out before in this process: the
    kernel may give a closed port again at once, and two listeners of one config on the
    same number are refused (a test failed so)."""
    for _ in range(1000):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        if p not in _ports_given:
            _ports_given.add(p)
            return p
    raise AssertionError("no fresh free port")


def closed_port():
    """A TCP port on 127.0.0.1 where nothing listens (connections are refused)."""
    return free_port()


def wait_port(port, timeout=10.0, proc=None, host="127.0.0.1"):
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def port_refuses(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


# ---------------------------------------------------------------------------------------
# the daemon

class Daemon:
    """`tollgate run -c FILE` in the foreground, stderr captured to a file."""

    def __init__(self, workdir, config):
        self.workdir = workdir
        self.config = config
        self.conf_path = write_config(workdir, config)
        self.stderr_path = os.path.join(workdir, "tollgate.stderr")
        self.stdout_path = os.path.join(workdir, "tollgate.stdout")
        self.proc = None

    def start(self, ports=(), timeout=10.0):
        if not os.access(BIN, os.X_OK):
            raise AssertionError("tollgate binary not found at %s (set TOLLGATE_BIN)" % BIN)
        os.makedirs(os.path.join(self.workdir, "run"), exist_ok=True)
        self._err = open(self.stderr_path, "ab")
        self._out = open(self.stdout_path, "ab")
        self.proc = subprocess.Popen([BIN, "run", "-c", self.conf_path], stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=self._err, cwd=self.workdir)
        for p in ports:
            if not wait_port(p, timeout, self.proc):
                rc = self.proc.poll()
                self.kill()
                raise AssertionError("tollgate %s port %d within %.0fs\n--- config\n%s--- stderr\n%s"
                                     % ("exited (%s) before listening on" % rc if rc is not None
                                        else "did not listen on", p, timeout,
                                        self.config_text(), self.stderr_tail()))
        return self

    def config_text(self):
        with open(self.conf_path) as f:
            return f.read()

    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stderr_tail(self, n=40):
        return "\n".join(self.stderr_text().splitlines()[-n:])

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def sighup_reload(self, config, timeout=10.0):
        """Write CONFIG (a dict or YAML text) over the config file, atomically, send
        SIGHUP and wait for the log line of a successful reload."""
        text = config if isinstance(config, str) else to_yaml(config) + "\n"
        with open(self.conf_path + ".tmp", "w") as f:
            f.write(text)
        os.replace(self.conf_path + ".tmp", self.conf_path)
        before = self.stderr_text().count("reloaded ")
        self.signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while self.stderr_text().count("reloaded ") <= before:
            if time.monotonic() > deadline:
                raise AssertionError("no reload within %ss of SIGHUP\n%s"
                                     % (timeout, self.stderr_tail()))
            time.sleep(0.02)

    def stop(self, timeout=15.0):
        """SIGTERM and wait; returns the exit code (kills and raises on timeout)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError("tollgate did not exit within %.0fs of SIGTERM\n%s"
                                     % (timeout, self.stderr_tail()))
        self._close_files()
        return self.proc.returncode

    def stop_and_check(self, timeout=15.0):
        rc = self.stop(timeout)
        if rc is not None and rc != 0:
            raise AssertionError("tollgate exited %s after SIGTERM (expected 0)\n%s"
                                 % (rc, self.stderr_tail()))

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._close_files()

    def _close_files(self):
        for f in (getattr(self, "_err", None), getattr(self, "_out", None)):
            if f is not None and not f.closed:
                f.close()

    def access_log(self, path=None):
        """Access-log entries: JSON objects with method and status, from PATH or stderr."""
        if path is None:
            text = self.stderr_text()
        else:
            try:
                with open(path, "rb") as f:
                    text = f.read().decode(errors="replace")
            except OSError:
                return []
        out = []
        for line in text.splitlines():
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict) and "status" in obj and "method" in obj:
                out.append(obj)
        return out

    def wait_access_log(self, pred, path=None, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            entries = [e for e in self.access_log(path) if pred(e)]
            if entries or time.monotonic() > deadline:
                return entries
            time.sleep(0.05)


def run_tollgate(*args, timeout=30, cwd=None):
    """Run `tollgate ARGS...`; returns (exit code, stdout + stderr text)."""
    if not os.access(BIN, os.X_OK):
        raise AssertionError("tollgate binary not found at %s (set TOLLGATE_BIN)" % BIN)
    p = subprocess.run([BIN] + list(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout, cwd=cwd)
    return p.returncode, p.stdout.decode(errors="replace")


# ---------------------------------------------------------------------------------------
# deterministic payloads

_BLOCK = 1 << 20


def pattern_chunks(n):
    """N deterministic pseudo-random bytes, in blocks of at most 1 MiB."""
    i = 0
    while n > 0:
        k = min(_BLOCK, n)
        yield random.Random(0x7011 + i).randbytes(_BLOCK)[:k]
        n -= k
        i += 1


def pattern_sha256(n):
    h = hashlib.sha256()
    for c in pattern_chunks(n):
        h.update(c)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------
# the backend: a real HTTP/1.1 server with keep-alive, in threads

class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tg-backend"

    def log_message(self, *a):
        pass

    def setup(self):
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    # -- body helpers
    def _read_body(self, sink):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        total = 0
        if "chunked" in te:
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    raise ConnectionError("EOF in chunk size")
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                left = size
                while left:
                    d = self.rfile.read(min(left, 1 << 16))
                    if not d:
                        raise ConnectionError("EOF in chunk")
                    sink(d)
                    left -= len(d)
                    total += len(d)
                self.rfile.readline(8)
        else:
            left = int(self.headers.get("Content-Length") or 0)
            while left:
                d = self.rfile.read(min(left, 1 << 16))
                if not d:
                    raise ConnectionError("EOF in body")
                sink(d)
                left -= len(d)
                total += len(d)
        return total

    def _send(self, code, body, ctype="application/json", extra=()):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj, code=200):
        self._send(code, json.dumps(obj))

    # -- dispatch
    def _dispatch(self):
        srv = self.server
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        entry = {"method": self.command, "path": self.path, "headers": list(self.headers.items()),
                 "time": time.monotonic()}
        with srv.lock:
            srv.requests.append(entry)
            srv.active += 1
        try:
            self._route(url.path, q, entry)
        finally:
            with srv.lock:
                srv.active -= 1

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = do_PATCH = do_LOCK = _dispatch

    def _route(self, path, q, entry):
        srv = self.server
        if path == "/upload":
            h = hashlib.sha256()
            n = self._read_body(h.update)
            self._json({"sha256": h.hexdigest(), "length": n, "server": srv.name,
                        "chunked": "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()})
            return
        h = hashlib.sha256()
        blen = self._read_body(h.update)
        if path == "/healthz":
            with srv.lock:
                srv.health_checks += 1
            if srv.healthy:
                self._send(200, "ok\n", "text/plain")
            else:
                self._send(503, "down\n", "text/plain")
        elif path == "/echo":
            self._json({"method": self.command, "path": self.path, "version": self.request_version,
                        "headers": entry["headers"], "body_length": blen, "body_sha256": h.hexdigest(),
                        "server": srv.name, "peer": list(self.client_address)})
        elif path == "/whoami":
            self._send(200, srv.name, "text/plain")
        elif path == "/slow":
            time.sleep(int(q.get("ms", "1000")) / 1000.0)
            self._json({"server": srv.name, "slept_ms": int(q.get("ms", "1000"))})
        elif path == "/status":
            code = int(q.get("code", "200"))
            self._send(code, "status %d from %s\n" % (code, srv.name), "text/plain")
        elif path == "/bytes" or path == "/chunked":
            n = int(q.get("n", "0"))
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            if path == "/bytes":
                self.send_header("Content-Length", str(n))
            else:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for c in pattern_chunks(n):
                if path == "/bytes":
                    self.wfile.write(c)
                else:
                    # uneven chunk sizes on purpose
                    for i in range(0, len(c), 300000):
                        part = c[i:i + 300000]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            if path == "/chunked":
                self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        elif path == "/reset":
            # Close without answering; SO_LINGER 0 turns the close into a TCP reset.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
        elif path == "/garbage":
            self.wfile.write(b"this is not HTTP at all\r\n\r\n")
            self.wfile.flush()
            self.close_connection = True
        else:
            self._send(404, "no such endpoint: %s\n" % path, "text/plain")


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        pass  # clients (the proxy) closing mid-answer are expected in some tests


class Backend:
    """A threaded HTTP/1.1 backend on 127.0.0.1 (see _Handler for its endpoints)."""

    def __init__(self, name="backend"):
        self.srv = _Server(("127.0.0.1", 0), _Handler)
        self.srv.name = name
        self.srv.lock = threading.Lock()
        self.srv.requests = []
        self.srv.connections = 0
        self.srv.active = 0
        self.srv.health_checks = 0
        self.srv.healthy = True
        self.name = name
        self.port = self.srv.server_address[1]
        self.addr = "127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.srv.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    @property
    def healthy(self):
        return self.srv.healthy

    @healthy.setter
    def healthy(self, v):
        self.srv.healthy = v

    @property
    def connections(self):
        return self.srv.connections

    @property
    def active(self):
        return self.srv.active

    @property
    def health_checks(self):
        return self.srv.health_checks

    def requests(self, path_prefix=None):
        with self.srv.lock:
            r = list(self.srv.requests)
        if path_prefix is not None:
            r = [e for e in r if e["path"].startswith(path_prefix)]
        return r

    def clear(self):
        with self.srv.lock:
            self.srv.requests.clear()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


class ClosingServer:
    """Accepts TCP connections and closes them at once, counting them: a broken server."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.addr = "127.0.0.1:%d" % self.port
        self.accepts = 0
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.sock.settimeout(0.1)
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepts += 1
            c.close()

    def close(self):
        self._stop = True
        self.thread.join(2)
        self.sock.close()


# ---------------------------------------------------------------------------------------
# TLS clients

TLS_VERSIONS = {"1.0": ssl.TLSVersion.TLSv1, "1.1": ssl.TLSVersion.TLSv1_1,
                "1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def client_context(ca=None, verify=True, minv=None, maxv=None, ciphers=None, alpn=None,
                   check_hostname=True, cert=None):
    """A client SSLContext trusting CA (a path), with versions as "1.2"-style strings."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        ctx.load_verify_locations(ca or shared_pki().ca)
        ctx.check_hostname = check_hostname
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if minv:
        if minv in ("1.0", "1.1"):
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = TLS_VERSIONS[minv]
    if maxv:
        ctx.maximum_version = TLS_VERSIONS[maxv]
    if ciphers:
        ctx.set_ciphers(ciphers)
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    if cert:
        ctx.load_cert_chain(*cert)
    return ctx


def tls_connect(port, ctx=None, sni="localhost", host="127.0.0.1", timeout=10, session=None):
    """A TLS connection; sni=None sends no server name (hostname checks off then)."""
    if ctx is None:
        ctx = client_context(check_hostname=sni is not None)
    if sni is None and ctx.check_hostname:
        ctx.check_hostname = False
    raw = socket.create_connection((host, port), timeout=timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname=sni, session=session)
    except BaseException:
        raw.close()
        raise


def peer_sha256(sock):
    return sha256_hex(sock.getpeercert(binary_form=True))


class Response:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body

    def header(self, name, default=None):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return default

    def header_values(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<Response %s %r %r>" % (self.status, self.headers, self.body[:200])


class ConnectionClosed(Exception):
    pass


def read_response(rf, method="GET", sink=None):
    """Read one HTTP/1.1 response from a binary file object; SINK gets the body if given."""
    line = rf.readline(65537)
    if not line:
        raise ConnectionClosed("connection closed before a response")
    m = re.match(rb"HTTP/1\.[01] (\d{3})(?: (.*))?\r?\n$", line)
    if not m:
        raise ValueError("bad status line %r" % line)
    status = int(m.group(1))
    reason = (m.group(2) or b"").decode("latin-1")
    headers = []
    while True:
        h = rf.readline(65537)
        if not h:
            raise ConnectionClosed("connection closed in the response head")
        if h in (b"\r\n", b"\n"):
            break
        k, _, v = h.decode("latin-1").partition(":")
        headers.append((k.strip(), v.strip()))
    resp = Response(status, reason, headers, b"")
    parts = []
    out = sink or parts.append
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return resp
    te = (resp.header("Transfer-Encoding") or "").lower()
    if "chunked" in te:
        while True:
            sl = rf.readline(1024)
            if not sl:
                raise ConnectionClosed("connection closed in a chunk size")
            size = int(sl.split(b";")[0].strip(), 16)
            if size == 0:
                while rf.readline(8192) not in (b"\r\n", b"\n", b""):
                    pass
                break
            left = size
            while left:
                d = rf.read(min(left, 1 << 16))
                if not d:
                    raise ConnectionClosed("connection closed in a chunk")
                out(d)
                left -= len(d)
            rf.readline(8)
    elif resp.header("Content-Length") is not None:
        left = int(resp.header("Content-Length"))
        while left:
            d = rf.read(min(left, 1 << 16))
            if not d:
                raise ConnectionClosed("connection closed in the body")
            out(d)
            left -= len(d)
    else:
        while True:
            d = rf.read(1 << 16)
            if not d:
                break
            out(d)
    if sink is None:
        resp.body = b"".join(parts)
    return resp


class HTTPConn:
    """An HTTP/1.1 client over one TLS connection, with raw access for odd requests."""

    def __init__(self, port, ctx=None, sni="localhost", timeout=10, session=None):
        self.port = port
        self.sock = tls_connect(port, ctx, sni=sni, timeout=timeout, session=session)
        self.rf = self.sock.makefile("rb")

    @property
    def local_port(self):
        return self.sock.getsockname()[1]

    def send(self, data):
        self.sock.sendall(data)

    def request(self, method, path, headers=(), body=None, host="localhost", sink=None):
        self.send_request(method, path, headers, body, host)
        return self.read_response(method, sink)

    def send_request(self, method, path, headers=(), body=None, host="localhost"):
        lines = ["%s %s HTTP/1.1" % (method, path), "Host: %s" % host]
        names = {k.lower() for k, _ in headers}
        for k, v in headers:
            lines.append("%s: %s" % (k, v))
        if body is not None and "content-length" not in names and "transfer-encoding" not in names:
            lines.append("Content-Length: %d" % len(body))
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))

    def read_response(self, method="GET", sink=None):
        return read_response(self.rf, method, sink)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def closed_by_peer(self, timeout=3.0):
        """True when the server closes the connection (EOF or reset) within TIMEOUT;
        whatever it sends before closing (an error answer) is read and dropped."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.sock.settimeout(left)
                if self.rf.read1(65536) == b"":
                    return True
        except (ConnectionError, ssl.SSLError, ValueError):
            return True
        except socket.timeout:
            return False

    def session(self):
        return self.sock.session

    def close(self):
        try:
            self.rf.close()
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def get(port, path, sni="localhost", ctx=None, **kw):
    with HTTPConn(port, ctx, sni=sni) as c:
        return c.get(path, **kw)


# ---------------------------------------------------------------------------------------
# openssl s_client, curl, and a hand-made ClientHello

class SClient:
    def __init__(self, rc, out):
        self.rc = rc
        self.out = out
        m = re.search(r"^(New|Reused), (\S+), Cipher is (\S+)", out, re.M)
        self.reused = bool(m and m.group(1) == "Reused")
        self.cipher = m.group(3) if m else None
        # The "New, X, Cipher is" line names the cipher's minimum version, not the
        # negotiated one: the session block's "Protocol  :" line has that.
        # TLS 1.3 suites exist only in 1.3, and the session block may be missing there
        # (it is printed when a ticket arrives).
        p = re.search(r"^\s*Protocol\s*:\s*(\S+)", out, re.M)
        if self.cipher in (None, "(NONE)"):
            self.protocol = None
        else:
            self.protocol = p.group(1) if p else m.group(2)
        ders = pem_to_der_list(out)
        self.cert_sha256 = sha256_hex(ders[0]) if ders else None
        m = re.search(r"^ALPN protocol: (\S+)", out, re.M)
        self.alpn = m.group(1) if m else None
        self.cert_requested = "CertificateRequest" in out

    @property
    def ok(self):
        """The handshake completed."""
        return self.rc == 0 and self.cipher not in (None, "(NONE)")

    def __repr__(self):
        return "<s_client rc=%s %s %s>\n%s" % (self.rc, self.protocol, self.cipher, self.out[-3000:])


def s_client(port, *args, sni="localhost", host="127.0.0.1", stdin=b"", timeout=15):
    """Run `openssl s_client` against 127.0.0.1:PORT with ARGS; returns an SClient."""
    cmd = ["openssl", "s_client", "-connect", "%s:%d" % (host, port)]
    cmd += ["-servername", sni] if sni else ["-noservername"]
    cmd += list(args)
    try:
        p = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return SClient(-1, (e.stdout or b"").decode(errors="replace") + "\n[timeout]")
    return SClient(p.returncode, p.stdout.decode(errors="replace"))


def curl(*args, timeout=120):
    p = subprocess.run(["curl", "-sS"] + list(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


SUITES = {
    "ECDHE-ECDSA-AES128-GCM-SHA256": 0xC02B,
    "ECDHE-RSA-AES128-GCM-SHA256": 0xC02F,
    "AES128-GCM-SHA256": 0x009C,
    "AES128-SHA256": 0x003C,
    "AES128-SHA": 0x002F,
    "DES-CBC3-SHA": 0x000A,
}


def raw_client_hello(port, suites, sni="localhost", version=0x0303, timeout=5):
    """Send a hand-made TLS 1.2-style ClientHello offering SUITES (names or numbers) and
    return ("hello", suite) for a ServerHello, ("alert", description) or ("closed", None).
    It needs no client-side support for the suites, so it can offer what the local
    OpenSSL build no longer has (3DES)."""
    codes = [SUITES[s] if isinstance(s, str) else s for s in suites]
    ext = b""
    if sni:
        name = sni.encode()
        sn = struct.pack("!BH", 0, len(name)) + name
        ext += struct.pack("!HH", 0x0000, len(sn) + 2) + struct.pack("!H", len(sn)) + sn
    groups = struct.pack("!HHH", 0x001D, 0x0017, 0x0018)
    ext += struct.pack("!HHH", 0x000A, len(groups) + 2, len(groups)) + groups
    ext += struct.pack("!HHBB", 0x000B, 2, 1, 0)
    sig = struct.pack("!HHHHHHH", 0x0804, 0x0401, 0x0403, 0x0501, 0x0805, 0x0201, 0x0203)
    ext += struct.pack("!HHH", 0x000D, len(sig) + 2, len(sig)) + sig
    ext += struct.pack("!HHB", 0xFF01, 1, 0)
    cs = b"".join(struct.pack("!H", c) for c in codes)
    body = struct.pack("!H", version) + os.urandom(32) + b"\x00"
    body += struct.pack("!H", len(cs)) + cs + b"\x01\x00"
    body += struct.pack("!H", len(ext)) + ext
    hs = b"\x01" + struct.pack("!I", len(body))[1:] + body
    rec = struct.pack("!BHH", 0x16, 0x0301, len(hs)) + hs
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(rec)
        buf = b""
        try:
            while len(buf) < 5:
                d = s.recv(4096)
                if not d:
                    return ("closed", None)
                buf += d
            ctype, _, length = struct.unpack("!BHH", buf[:5])
            while len(buf) < 5 + min(length, 64):
                d = s.recv(4096)
                if not d:
                    break
                buf += d
        except ConnectionError:
            return ("closed", None)
        payload = buf[5:]
        if ctype == 0x15 and len(payload) >= 2:
            return ("alert", payload[1])
        if ctype == 0x16 and payload[:1] == b"\x02":
            sid_len = payload[4 + 2 + 32]
            off = 4 + 2 + 32 + 1 + sid_len
            return ("hello", struct.unpack("!H", payload[off:off + 2])[0])
        return ("other", ctype)


# ---------------------------------------------------------------------------------------
# the test case base

class TestCase(unittest.TestCase):
    """Per-test temp folder, backends and daemons, all cleaned up even on failure."""

    maxDiff = 4000

    def setUp(self):
        self.pki = shared_pki()
        self.dir = make_tmpdir()
        self.addCleanup(remove_tmpdir, self.dir)

    def backend(self, name="backend"):
        b = Backend(name)
        self.addCleanup(b.close)
        return b

    def closing_server(self):
        s = ClosingServer()
        self.addCleanup(s.close)
        return s

    def config(self, **kw):
        return base_config(self.pki, self.dir, **kw)

    def start(self, config, ports=None, check_exit=True):
        """Start the daemon with CONFIG and wait for its listener ports. At cleanup it gets
        SIGTERM and must exit 0 (check_exit=False for tests that stop it themselves)."""
        if ports is None:
            ports = [int(l["listen"].rsplit(":", 1)[1]) for l in config["listeners"].values()
                     if l.get("protocol", "https") == "https"]
        d = Daemon(self.dir, config)
        self.addCleanup(d.kill)
        if check_exit:
            self.addCleanup(d.stop_and_check)
        d.start(ports)
        self.daemon = d
        return d

    def simple(self, backend_conf, listener_kw=None, **cfg_kw):
        """One HTTPS listener on a free port in front of BACKEND_CONF; returns its port."""
        port = free_port()
        cfg = self.config(**cfg_kw)
        cfg["backends"]["app"] = backend_conf
        cfg["listeners"]["main"] = https_listener(port, "app", **(listener_kw or {}))
        self.start(cfg)
        return port

    def conn(self, port, **kw):
        c = HTTPConn(port, **kw)
        self.addCleanup(c.close)
        return c

    def log_tail(self):
        d = getattr(self, "daemon", None)
        return "\n--- tollgate stderr (tail)\n" + d.stderr_tail() if d else ""

    def wait_for(self, pred, timeout=5.0, interval=0.05, msg="condition"):
        deadline = time.monotonic() + timeout
        while True:
            v = pred()
            if v:
                return v
            if time.monotonic() > deadline:
                self.fail("timed out after %.1fs waiting for %s%s" % (timeout, msg, self.log_tail()))
            time.sleep(interval)


class ClassDaemonCase(TestCase):
    """One daemon for the whole class (read-only tests, e.g. handshakes)."""

    @classmethod
    def make_config(cls, pki, workdir):
        raise NotImplementedError

    @classmethod
    def setUpClass(cls):
        cls.pki = shared_pki()
        cls.cdir = make_tmpdir()
        cls.addClassCleanup(remove_tmpdir, cls.cdir)
        cls.backends = []
        cfg = cls.make_config(cls.pki, cls.cdir)
        for b in cls.backends:
            cls.addClassCleanup(b.close)
        cls.cdaemon = Daemon(cls.cdir, cfg)
        cls.addClassCleanup(cls.cdaemon.kill)
        cls.addClassCleanup(cls.cdaemon.stop_and_check)
        ports = [int(l["listen"].rsplit(":", 1)[1]) for l in cfg["listeners"].values()
                 if l.get("protocol", "https") == "https"]
        cls.cdaemon.start(ports)

    @classmethod
    def class_backend(cls, name="backend"):
        b = Backend(name)
        cls.backends.append(b)
        return b

    def setUp(self):
        super().setUp()
        self.daemon = self.cdaemon


# ---------------------------------------------------------------------------------------
# QUIC / HTTP/3: listeners, UDP ports, and gtlsclient (ngtcp2's example client) as the peer
#
# gtlsclient is the GnuTLS build of ngtcp2's example HTTP/3 client (Debian 12 package
# ngtcp2-client, 0.12.1). What the helpers below rely on, from its source and tests:
#
# - `gtlsclient [OPTIONS] HOST PORT URI...` opens ONE connection and sends one request a
#   URI, all at once on concurrent bidirectional streams 0, 4, 8, ... in URI order.
#   --exit-on-all-streams-close makes it exit when the last of them closes; without it, it
#   waits for the idle timeout (--timeout, 30s by default).
# - Its exit code says nothing about the transfer: it is 0 after a failed handshake, an
#   idle timeout or a reset stream too (only bad options and socket set-up give 1). Success
#   is judged from its debug output (stderr): `http: stream 0x0 [:status: 200]` response
#   header lines, `HTTP stream 0 closed with error code 256` (H3_NO_ERROR), and the files
#   it writes.
# - --download=DIR writes each response body to DIR/<last path component of the URI, query
#   included> ("index.html" for "/"). Two URIs with the same last component clash: h3_get
#   refuses that (add a dummy query parameter, e.g. "/bytes?n=10&i=1").
# - -d/--data=FILE sends FILE as the body of EVERY request (with content-length);
#   -m/--http-method=METHOD sets the method (GET by default, also with --data).
# - SNI: --sni=NAME is parsed but IGNORED by the GnuTLS build of 0.12.1 (only the
#   OpenSSL/BoringSSL/wolfSSL sessions use it). The SNI is HOST when HOST is a DNS name and
#   "localhost" when HOST is an IP address; a ClientHello without SNI cannot be sent. So to
#   send SNI NAME, h3_get passes NAME as HOST and LD_PRELOADs a tiny getaddrinfo shim
#   (compiled once with cc, see _resolver_shim) that resolves every non-numeric name to
#   127.0.0.1. sni=None or "localhost" needs no shim (HOST 127.0.0.1).
# - It does not verify the server certificate (system trust is loaded, never checked) and
#   never prints it. Which certificate was served is read from its debug output: without
#   -q and --no-quic-dump it hexdumps every CRYPTO frame it receives, in order, under
#   `Ordered CRYPTO data in Handshake crypto level`; those bytes are the server's TLS 1.3
#   EncryptedExtensions, Certificate, CertificateVerify and Finished messages, and the
#   first certificate_list entry of Certificate is the leaf (H3Result.cert_der/cert_sha256).
#   A resumed (PSK) handshake has no Certificate message (H3Result.resumed). The same
#   switch hexdumps all STREAM data, so ask for the certificate (cert=True) only with small
#   bodies; big transfers run with --no-quic-dump or -q.
# - A Retry shows as an `rx ... type=Retry` packet line of the ngtcp2 log and, once the
#   handshake completes, as `retry_source_connection_id=` among the server's transport
#   parameters (H3Result.retried is both).
# - --tx-loss/--rx-loss=P drop outgoing/incoming packets with probability P;
#   --change-local-addr=DURATION moves to a new local port that long after the handshake
#   is confirmed (path validation, `Path validation against path {...} succeeded`), with
#   --nat-rebinding without path validation (a NAT rebinding as the server sees it);
#   --delay-stream=DURATION holds the requests back that long after the handshake.
# - --session-file=F reads/writes the TLS session (written when a NewSessionTicket
#   arrives); --tp-file=F the server's transport parameters (with both, the next run sends
#   0-RTT unless --disable-early-data).
# - Debug output is large: every packet is logged, and without --no-http-dump every body is
#   hexdumped. h3_get always passes --no-http-dump and writes the output to a file.

GTLSCLIENT = os.environ.get("TG_GTLSCLIENT") or shutil.which("gtlsclient") or "/usr/bin/gtlsclient"


# bench/h3load, built beside the daemon: the HTTP/3 client that can misbehave on purpose.
H3LOAD = os.path.join(os.path.dirname(BIN), "bench", "h3load")


def h3load(port, *args, path="/whoami", timeout=90):
    """Run h3load against 127.0.0.1:PORT with ARGS; its stdout and stderr."""
    r = subprocess.run([H3LOAD, "--insecure", "--sni", "localhost", *args,
                        "127.0.0.1:%d" % port, path], capture_output=True, text=True,
                       timeout=timeout)
    return r.stdout, r.stderr


def h3load_result(out):
    """The key=value pairs of h3load's "result:" line."""
    line = next(l for l in out.splitlines() if l.startswith("result:"))
    return {k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])}


def have_gtlsclient():
    return os.access(GTLSCLIENT, os.X_OK)


def free_udp_port():
    return free_port(socket.SOCK_DGRAM)


def free_port_both():
    """A port number free on 127.0.0.1 for both TCP and UDP (an https and a quic listener
    on the same number)."""
    for _ in range(100):
        p = free_port()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", p))
            return p
        except OSError:
            continue
    raise AssertionError("no port free for both TCP and UDP")


def quic_listener(port, backend, default="www-ecdsa", extended=None, **extra):
    return _listener("quic", port, backend, default, extended, extra)


def listener_ports(config, protocol):
    return [int(l["listen"].rsplit(":", 1)[1]) for l in config["listeners"].values()
            if l.get("protocol", "https") == protocol]


def _socket_inodes(pid):
    out = set()
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if link.startswith("socket:["):
                out.add(link[8:-1])
    except OSError:
        pass
    return out


def udp_bound(port, pid=None):
    """True when a UDP socket is bound to PORT (of process PID when given), from
    /proc/net/udp{,6}: UDP has no connect() to probe with."""
    inodes = _socket_inodes(pid) if pid is not None else None
    for name in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(name) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 10:
                continue
            if int(parts[1].rsplit(":", 1)[1], 16) != port:
                continue
            if inodes is None or parts[9] in inodes:
                return True
    return False


def wait_udp_port(port, timeout=10.0, proc=None):
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            return False
        if udp_bound(port, proc.pid if proc is not None else None):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


_shim_lock = threading.Lock()
_shim_path = None

_SHIM_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netdb.h>
#include <stddef.h>
#include <arpa/inet.h>
/* tollgate tests: resolve every non-numeric host name to 127.0.0.1, so that gtlsclient can
   be given any name as HOST (its SNI) and still reach the daemon on the loopback. */
int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res) {
    static int (*real)(const char *, const char *, const struct addrinfo *, struct addrinfo **);
    unsigned char buf[16];
    if (!real)
        real = (int (*)(const char *, const char *, const struct addrinfo *, struct addrinfo **))
            dlsym(RTLD_NEXT, "getaddrinfo");
    if (node && inet_pton(AF_INET, node, buf) != 1 && inet_pton(AF_INET6, node, buf) != 1)
        node = "127.0.0.1";
    return real(node, service, hints, res);
}
"""


def _resolver_shim():
    """Path of the LD_PRELOAD getaddrinfo shim (compiled once a process), or None when no
    C compiler is at hand."""
    global _shim_path
    with _shim_lock:
        if _shim_path is None:
            cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
            if not cc:
                _shim_path = ""
                return None
            d = make_tmpdir("tg-shim-")
            atexit.register(remove_tmpdir, d)
            src = os.path.join(d, "resolve_loopback.c")
            so = os.path.join(d, "resolve_loopback.so")
            with open(src, "w") as f:
                f.write(_SHIM_C)
            p = subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", so, src, "-ldl"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
            _shim_path = so if p.returncode == 0 else ""
        return _shim_path or None


def _parse_hexdumps(text, title):
    """The bytes of every hexdump (util::hexdump of ngtcp2's examples) that follows a line
    equal to TITLE, concatenated."""
    out = bytearray()
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i] != title:
            i += 1
            continue
        i += 1
        base = len(out)
        last = b""
        repeated = False
        while i < len(lines):
            line = lines[i]
            if line == "*":
                repeated = True
                i += 1
                continue
            m = re.match(r"^([0-9a-f]{8})(?:  (.*))?$", line)
            if not m:
                break
            off = int(m.group(1), 16)
            if repeated and last:
                while len(out) - base < off:
                    out += last
                repeated = False
            if m.group(2) is None:  # the closing line: the length alone
                i += 1
                break
            chunk = bytes.fromhex("".join(line[10:60].split()))
            out += chunk
            last = chunk
            i += 1
    return bytes(out)


def _tls_messages(data):
    """[(type, body)] of the TLS handshake messages in DATA (a CRYPTO stream)."""
    out = []
    p = 0
    while p + 4 <= len(data):
        t = data[p]
        n = int.from_bytes(data[p + 1:p + 4], "big")
        if p + 4 + n > len(data):
            break
        out.append((t, data[p + 4:p + 4 + n]))
        p += 4 + n
    return out


def _first_certificate(body):
    """The leaf DER of a TLS 1.3 Certificate message body."""
    ctx_len = body[0]
    p = 1 + ctx_len + 3  # certificate_request_context, certificate_list length
    n = int.from_bytes(body[p:p + 3], "big")
    return body[p + 3:p + 3 + n]


class H3Result:
    """What one gtlsclient run did. paths: the request paths in URI order; bodies: {path:
    bytes written to the download dir} (b"" when nothing arrived); status: {path: int};
    headers: {path: [(name, value)]} (response header lines, pseudo-headers included);
    closed: {path: application error code the stream closed with} (256 = H3_NO_ERROR).
    status, headers and closed stay empty with quiet=True."""

    def __init__(self, paths, rc, out, bodies, elapsed, timed_out, cmd):
        self.paths = list(paths)
        self.rc = rc
        self.out = out
        self.bodies = bodies
        self.elapsed = elapsed
        self.timed_out = timed_out
        self.cmd = cmd
        self.stream_path = {}
        for i, p in enumerate(self.paths):
            self.stream_path[4 * i] = p  # client bidi streams 0, 4, 8, ... in URI order
        cur = None
        for line in out.splitlines():  # the submitted requests, when not quiet
            m = re.match(r"^http: stream 0x([0-9a-f]+) submit request headers$", line)
            if m:
                cur = int(m.group(1), 16)
                continue
            if cur is not None:
                m = re.match(r"^\[:path: (.*)\]$", line)
                if m:
                    self.stream_path[cur] = m.group(1)
                    cur = None
                elif not line.startswith("["):
                    cur = None
        self.status = {}
        self.headers = {}
        self.closed = {}
        for m in re.finditer(r"^http: stream 0x([0-9a-f]+) \[(.*?): (.*)\]$", out, re.M):
            p = self.stream_path.get(int(m.group(1), 16))
            self.headers.setdefault(p, []).append((m.group(2), m.group(3)))
            if m.group(2) == ":status":
                self.status[p] = int(m.group(3))
        for m in re.finditer(r"^HTTP stream (\d+) closed with error code (\d+)$", out, re.M):
            self.closed[self.stream_path.get(int(m.group(1)))] = int(m.group(2))
        hs = _tls_messages(_parse_hexdumps(out, "Ordered CRYPTO data in Handshake crypto level"))
        self.handshake_types = [t for t, _ in hs]
        self.cert_der = None
        for t, body in hs:
            if t == 11:
                try:
                    self.cert_der = _first_certificate(body)
                except (IndexError, ValueError):
                    pass
        self.cert_sha256 = sha256_hex(self.cert_der) if self.cert_der else None
        # Handshake-level CRYPTO seen (EncryptedExtensions, Finished) but no Certificate
        self.resumed = bool(self.handshake_types) and 11 not in self.handshake_types
        self.rx_retry = re.search(r" pkt rx pkn=\S+ dcid=\S+ scid=\S+ version=\S+ type=Retry\b",
                                  out) is not None
        self.retry_scid = re.search(r"remote transport_parameters retry_source_connection_id=0x",
                                    out) is not None
        self.retried = self.rx_retry and self.retry_scid
        self.handshake_completed = "QUIC handshake has completed" in out
        m = re.search(r"^Negotiated ALPN is (\S+)", out, re.M)
        self.alpn = m.group(1) if m else None
        m = re.search(r"^Negotiated cipher suite is (\S+)", out, re.M)
        self.cipher = m.group(1) if m else None
        self.local_ports = []  # the client's local ports, in order of first use
        for m in re.finditer(r"^Received packet: local=\S+:(\d+) remote=", out, re.M):
            lp = int(m.group(1))
            if lp not in self.local_ports:
                self.local_ports.append(lp)
        self.path_validations = re.findall(r"^Path validation against path \{.*\} (\w+)$", out,
                                           re.M)

    def header(self, path, name, default=None):
        for k, v in self.headers.get(path, []):
            if k.lower() == name.lower():
                return v
        return default

    def ok(self, path):
        """PATH got a 200 and its stream closed cleanly (needs quiet=False)."""
        return self.status.get(path) == 200 and self.closed.get(path) == 256

    def summary(self, tail=60):
        """For assertion messages: the command, exit, and the interesting output lines."""
        keep = [l for l in self.out.splitlines()
                if not re.match(r"^(I\d{8} |[0-9a-f]{8}(  |$)|\*$|Received packet|Sent packet|"
                                r"Set timer|Timer has already expired|Ordered |\+ |"
                                r"http: stream 0x[0-9a-f]+ body )", l)]
        return ("--- gtlsclient %s\nexit %s%s after %.1fs; status %s; closed %s; handshake "
                "completed %s\n--- its output (packet log and dumps left out), tail\n%s"
                % (" ".join(self.cmd[1:]), self.rc, " (killed at the timeout)" if self.timed_out
                   else "", self.elapsed, self.status, self.closed, self.handshake_completed,
                   "\n".join(keep[-tail:])))

    def __repr__(self):
        return "<H3Result %s>" % self.summary(20)


def h3_get(port, paths, sni=None, data_file=None, method=None, extra_args=(), timeout=30,
           quiet=False, cert=False, idle_timeout="5s", host="127.0.0.1", download=True,
           keep_dir=None):
    """One gtlsclient connection to 127.0.0.1:PORT requesting every path of PATHS (a str or
    a list) on concurrent streams; returns an H3Result.

    sni: the SNI to send (None = "localhost", gtlsclient's choice for an IP address; any
    other name goes through the getaddrinfo shim, see above). data_file: body of every
    request (method then defaults to POST). cert=True keeps the CRYPTO/STREAM hexdumps so
    the served certificate can be read: small bodies only. quiet=True (-q): no debug output
    at all (big transfers): only bodies, no status. timeout: hard limit for the process;
    idle_timeout: QUIC idle timeout (a stuck connection ends by itself this long after the
    last packet). keep_dir: write the downloads there (default a temp folder, removed)."""
    if isinstance(paths, str):
        paths = [paths]
    if not have_gtlsclient():
        raise unittest.SkipTest("gtlsclient (Debian package ngtcp2-client) not installed")
    names = {}
    for p in paths:
        name = p[p.rfind("/") + 1:] or "index.html"
        if name in names:
            raise ValueError("paths %r and %r would be downloaded to the same file %r"
                             % (names[name], p, name))
        names[name] = p
    env = dict(os.environ)
    authority = "localhost"
    if sni not in (None, "localhost"):
        shim = _resolver_shim()
        if not shim:
            raise unittest.SkipTest("no C compiler for the getaddrinfo shim that sets gtlsclient's SNI")
        env["LD_PRELOAD"] = shim + (" " + env["LD_PRELOAD"] if env.get("LD_PRELOAD") else "")
        host = sni
        authority = sni
    work = make_tmpdir("tg-h3-")
    try:
        dl = keep_dir or os.path.join(work, "dl")
        os.makedirs(dl, exist_ok=True)
        cmd = [GTLSCLIENT, "--exit-on-all-streams-close", "--no-http-dump",
               "--timeout=%s" % idle_timeout]
        if download:
            cmd.append("--download=%s" % dl)
        if quiet:
            cmd.append("-q")
        elif not cert:
            cmd.append("--no-quic-dump")
        if data_file:
            cmd += ["--data=%s" % data_file, "--http-method=%s" % (method or "POST")]
        elif method:
            cmd.append("--http-method=%s" % method)
        cmd += list(extra_args)
        cmd += [host, str(port)]
        cmd += ["https://%s:%d%s" % (authority, port, p) for p in paths]
        outp = os.path.join(work, "out.txt")
        t0 = time.monotonic()
        timed_out = False
        with open(outp, "wb") as out:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, env=env)
            try:
                rc = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                proc.kill()
                rc = proc.wait(10)
        elapsed = time.monotonic() - t0
        with open(outp, "rb") as f:
            text = f.read().decode(errors="replace")
        bodies = {}
        for name, p in names.items():
            try:
                with open(os.path.join(dl, name), "rb") as f:
                    bodies[p] = f.read()
            except OSError:
                bodies[p] = b""
        return H3Result(paths, rc, text, bodies, elapsed, timed_out, cmd)
    finally:
        remove_tmpdir(work)


class H3Background:
    """h3_get in a thread, for transfers that must be in flight while the test does
    something else (a reload, a stop). result() joins and returns the H3Result."""

    def __init__(self, *args, **kw):
        self._res = None
        self._exc = None
        self.thread = threading.Thread(target=self._run, args=args, kwargs=kw, daemon=True)
        self.thread.start()

    def _run(self, *args, **kw):
        try:
            self._res = h3_get(*args, **kw)
        except BaseException as e:  # noqa: BLE001 - handed to result()
            self._exc = e

    def result(self, timeout=60):
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise AssertionError("the background gtlsclient did not finish within %ss" % timeout)
        if self._exc is not None:
            raise self._exc
        return self._res
