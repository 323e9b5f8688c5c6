"""The soak (bench/soak.sh runs it): tollgate under mixed HTTPS and HTTP/3 load for a while,
reloaded every 2 s, with slow readers, slow writers, clients that vanish mid-request,
malformed requests, handshake garbage and an HTTP/3 rapid-reset client (h3load --cancel),
all on loopback. At the end it says how many
answers were not what they had to be (want 0), how RSS and the open descriptors moved
(want flat), and whether the daemon stopped cleanly with a clean sanitizer log.

Environment: DURATION [1800] seconds; BUILD_DIR [build]; SAMPLE [10] seconds between
RSS/fd samples; KEEP_TMP [0]."""

import os
import random
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
BUILD = os.path.join(ROOT, os.environ.get("BUILD_DIR", "build"))
os.environ.setdefault("TOLLGATE_BIN", os.path.join(BUILD, "tollgate"))
os.environ.setdefault("TOLLGATE_SRC", ROOT)
import tg  # noqa: E402  (the test harness: PKI, daemon, clients)

DURATION = int(os.environ.get("DURATION", "1800"))
SAMPLE = int(os.environ.get("SAMPLE", "10"))


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}
        self.unexpected = {}

    def ok(self, what):
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    def bad(self, what, why):
        with self.lock:
            key = "%s: %s" % (what, why)
            self.unexpected[key] = self.unexpected.get(key, 0) + 1


def chaos(port, stop, tally, seed):
    """One client doing one hostile or ordinary thing after another until stop."""
    rnd = random.Random(seed)
    ctx = tg.client_context(verify=False)

    def conn():
        return tg.HTTPConn(port, ctx, timeout=10)

    while not stop.is_set():
        kind = rnd.choice(["get", "get", "slow_reader", "slow_writer", "vanish_head",
                           "vanish_body", "malformed", "garbage"])
        try:
            if kind == "get":
                with conn() as c:
                    r = c.get("/echo?soak=1")
                    (tally.ok if r.status == 200 else lambda k: tally.bad(k, r.status))(kind)
            elif kind == "slow_reader":
                with conn() as c:
                    c.send_request("GET", "/bytes?n=4000000")
                    for _ in range(10):
                        c.sock.recv(16384)
                        time.sleep(0.05)
                tally.ok(kind)  # then gone: the rest is never read
            elif kind == "slow_writer":
                with conn() as c:
                    n = 200000
                    c.send(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % n)
                    for _ in range(10):
                        c.send(b"s" * (n // 10))
                        time.sleep(0.1)
                    r = c.read_response()
                    if r.status == 200 and r.json()["length"] == n:
                        tally.ok(kind)
                    else:
                        tally.bad(kind, r.status)
            elif kind == "vanish_head":
                with conn() as c:
                    c.send(b"GET /echo HTTP/1.1\r\nHost: a\r\nX-Half: ")
                tally.ok(kind)
            elif kind == "vanish_body":
                with conn() as c:
                    c.send(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n")
                    c.send(b"v" * 40000)
                tally.ok(kind)
            elif kind == "malformed":
                with conn() as c:
                    c.send(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
                           b"Transfer-Encoding: chunked\r\n\r\n")
                    r = c.read_response()
                    (tally.ok if r.status == 400 else lambda k: tally.bad(k, r.status))(kind)
            elif kind == "garbage":
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    s.sendall(bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 600))))
                    try:
                        s.recv(100)
                    except OSError:
                        pass
                tally.ok(kind)
        except (OSError, ssl.SSLError, tg.ConnectionClosed) as e:
            tally.bad(kind, type(e).__name__)


def main():
    work = tg.make_tmpdir("tg-soak-")
    pki = tg.PKI(os.path.join(work, "pki"))
    fast_port, chaos_port = tg.free_port_both(), tg.free_port()
    backend_port = tg.free_port()
    fast = subprocess.Popen([os.path.join(BUILD, "bench", "backend"), str(backend_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rich = tg.Backend("rich")
    cfg = tg.base_config(pki, work, workers=2, access_log="off", drain_timeout="10s")
    cfg["backends"]["fast"] = tg.pool_backend(["127.0.0.1:%d" % backend_port])
    cfg["backends"]["rich"] = tg.pool_backend([rich], response_timeout="10s")
    cfg["listeners"]["https"] = tg.https_listener(fast_port, "fast", alt_svc="h3")
    cfg["listeners"]["h3"] = tg.quic_listener(fast_port, "fast")
    cfg["listeners"]["chaos"] = tg.https_listener(chaos_port, "rich")
    d = tg.Daemon(work, cfg).start(ports=(fast_port, chaos_port))
    pid = d.proc.pid
    print("soak: %d s, daemon %d, HTTPS+HTTP/3 on %d, chaos on %d, dir %s"
          % (DURATION, pid, fast_port, chaos_port, work), flush=True)

    stop = threading.Event()
    tally = Tally()
    threads = [threading.Thread(target=chaos, args=(chaos_port, stop, tally, i), daemon=True)
               for i in range(6)]
    for t in threads:
        t.start()
    wrk = subprocess.Popen(["wrk", "-t1", "-c32", "-d%ds" % DURATION, "--timeout", "10s",
                            "https://127.0.0.1:%d/" % fast_port],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    h3 = subprocess.Popen([os.path.join(BUILD, "bench", "h3load"), "-c8", "-m4",
                           "-D", str(DURATION), "--insecure", "127.0.0.1:%d" % fast_port, "/"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # Rapid reset: each of its connections must be closed with H3_EXCESSIVE_LOAD (0x107).
    rr = subprocess.Popen([os.path.join(BUILD, "bench", "h3load"), "--cancel", "-c1", "-m16",
                           "-D", str(DURATION), "--insecure", "127.0.0.1:%d" % fast_port, "/"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    samples, reloads, reload_fail = [], 0, 0
    start = time.monotonic()
    next_sample = start
    toggle = False
    while time.monotonic() - start < DURATION:
        toggle = not toggle
        cfg["backends"]["fast"]["connect_timeout"] = "2s" if toggle else "3s"
        try:
            d.sighup_reload(cfg, timeout=10)
            reloads += 1
        except AssertionError:
            reload_fail += 1
        if time.monotonic() >= next_sample:
            with open("/proc/%d/status" % pid) as f:
                rss = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
            fds = len(os.listdir("/proc/%d/fd" % pid))
            samples.append((int(time.monotonic() - start), rss, fds))
            next_sample += SAMPLE
        time.sleep(2)
    stop.set()
    wrk_out = wrk.communicate(timeout=60)[0]
    h3_out = h3.communicate(timeout=60)[0]
    rr_out = rr.communicate(timeout=60)[0]
    for t in threads:
        t.join(30)
    time.sleep(3)  # connections of the chaos clients close
    with open("/proc/%d/status" % pid) as f:
        rss_end = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
    fds_end = len(os.listdir("/proc/%d/fd" % pid))
    rc = d.stop(60)
    fast.terminate()
    rich.close()

    m = re.search(r"(\d+) requests in", wrk_out)
    wrk_reqs = int(m.group(1)) if m else 0
    wrk_non2xx = int((re.search(r"Non-2xx or 3xx responses: (\d+)", wrk_out) or [0, 0])[1])
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                     wrk_out)
    wrk_errs = sum(int(x) for x in sock.groups()) if sock else 0
    h3res = re.search(r"result: .*", h3_out)
    h3err = re.search(r"errors: connection (\d+) \(.*\), non-2xx (\d+), reset streams (\d+)",
                      h3_out)
    h3_bad = sum(int(x) for x in h3err.groups()) if h3err else -1
    rr_res = re.search(r"cancelled=(\d+) closed=(\d+)", rr_out)
    rr_cancelled, rr_closed = (int(x) for x in rr_res.groups()) if rr_res else (0, 0)
    rr_first = re.search(r"first connection error: (.*)", rr_out)
    rr_bad = int(rr_cancelled == 0 or rr_closed == 0 or
                 not (rr_first and "application error 0x107" in rr_first.group(1)))
    log = d.stderr_text()
    sanitizer = len(re.findall(r"AddressSanitizer|runtime error|LeakSanitizer", log))

    warm = [s for s in samples if s[0] >= 60] or samples
    print("wrk (HTTPS keep-alive): %d requests, non-2xx %d, socket errors %d"
          % (wrk_reqs, wrk_non2xx, wrk_errs))
    print("h3load (HTTP/3): %s; errors %d" % (h3res.group(0) if h3res else h3_out[-300:], h3_bad))
    print("rapid reset (h3load --cancel): %d requests cancelled, %d connections closed; "
          "first close: %s" % (rr_cancelled, rr_closed, rr_first.group(1) if rr_first else "none"))
    print("chaos: %s" % ", ".join("%s %d" % kv for kv in sorted(tally.counts.items())))
    print("chaos unexpected: %s" % (tally.unexpected or "none"))
    print("reloads: %d ok, %d failed" % (reloads, reload_fail))
    if warm:
        print("RSS KiB after warm-up: first %d, max %d, last %d; at the end (idle) %d"
              % (warm[0][1], max(s[1] for s in warm), warm[-1][1], rss_end))
        print("fds after warm-up: first %d, max %d, last %d; at the end (idle) %d"
              % (warm[0][2], max(s[2] for s in warm), warm[-1][2], fds_end))
    print("daemon exit %s; sanitizer reports %d" % (rc, sanitizer))
    with open(os.path.join(work, "samples.csv"), "w") as f:
        f.write("second,rss_kib,fds\n" + "".join("%d,%d,%d\n" % s for s in samples))
    bad = (wrk_non2xx + wrk_errs + max(h3_bad, 0) + sum(tally.unexpected.values()) +
           reload_fail + sanitizer + rr_bad + (rc != 0))
    print("soak: %s (%d unexpected)" % ("PASS" if bad == 0 and h3_bad >= 0 else "FAIL", bad))
    if os.environ.get("KEEP_TMP") != "1":
        tg.remove_tmpdir(work)
    return 0 if bad == 0 and h3_bad >= 0 else 1


if __name__ == "__main__":
    sys.exit(main())
