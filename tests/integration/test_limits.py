"""Open-file limits (SPEC §3 global.limits, §7 reload): the daemon raises its soft
RLIMIT_NOFILE to the hard limit, lowers max_connections to what the descriptors can hold
(with one warning naming both numbers), and when accept runs out of descriptors anyway it
pauses accepting instead of spinning on a listening socket that stays readable."""

import os
import re
import resource
import socket
import subprocess
import threading
import time
import unittest

import tg

CLK_TCK = os.sysconf("SC_CLK_TCK")
LOWERED = re.compile(r"max_connections (\d+) does not fit .*?: at most (\d+) connections")


class LimitedDaemon(tg.Daemon):
    """tg.Daemon started with RLIMIT_NOFILE set to (soft, hard) before exec."""

    def __init__(self, workdir, config, nofile):
        super().__init__(workdir, config)
        self.nofile = nofile

    def start(self, ports=(), timeout=10.0):
        os.makedirs(os.path.join(self.workdir, "run"), exist_ok=True)
        self._err = open(self.stderr_path, "ab")
        self._out = open(self.stdout_path, "ab")
        limits = self.nofile
        self.proc = subprocess.Popen(
            [tg.BIN, "run", "-c", self.conf_path], stdin=subprocess.DEVNULL, stdout=self._out,
            stderr=self._err, cwd=self.workdir,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, limits))
        for p in ports:
            if not tg.wait_port(p, timeout, self.proc):
                rc = self.proc.poll()
                self.kill()
                raise AssertionError("tollgate (exit %s) did not listen on %d\n%s"
                                     % (rc, p, self.stderr_tail()))
        return self


def cpu_seconds(pid):
    """User + system CPU time the process has used so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def open_files_limit(pid):
    """(soft, hard) RLIMIT_NOFILE of a process, from /proc/PID/limits."""
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise AssertionError("no open files line in /proc/%d/limits" % pid)


def accept_lines(text):
    return [l for l in text.splitlines() if "accept" in l and not l.startswith("{")]


class Flood:
    """N idle TCP connections (no TLS ClientHello): each costs the daemon a descriptor."""

    def __init__(self, port, n):
        self.socks = []
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.setblocking(False)
            self.socks.append(s)

    def closed_by_peer(self):
        """How many of them the daemon has closed."""
        n = 0
        for s in self.socks:
            try:
                n += s.recv(1) == b""
            except BlockingIOError:
                pass
            except OSError:
                n += 1
        return n

    def close(self):
        for s in self.socks:
            s.close()
        self.socks = []


class TestOpenFiles(tg.TestCase):
    def start_limited(self, config, nofile):
        port = int(next(iter(config["listeners"].values()))["listen"].rsplit(":", 1)[1])
        d = LimitedDaemon(self.dir, config, nofile)
        self.addCleanup(d.kill)
        self.addCleanup(d.stop_and_check)
        d.start([port])
        self.daemon = d
        return d, port

    def proxy_config(self, workers=1, limits=None):
        backend = self.backend()
        cfg = self.config(workers=workers, limits=limits, access_log="off")
        cfg["backends"]["app"] = tg.pool_backend([backend])
        cfg["listeners"]["main"] = tg.https_listener(tg.free_port(), "app")
        return cfg

    def flood(self, port, n):
        f = Flood(port, n)
        self.addCleanup(f.close)
        return f

    def wait_served(self, port, timeout=10.0):
        def ok():
            try:
                with tg.HTTPConn(port, timeout=2) as c:
                    return c.get("/whoami").status == 200
            except (OSError, tg.ConnectionClosed):
                return False
        self.wait_for(ok, timeout=timeout, msg="an HTTPS request to succeed")

    def test_soft_limit_raised_to_hard(self):
        d, port = self.start_limited(self.proxy_config(), (256, 4096))
        self.assertEqual(open_files_limit(d.proc.pid), (4096, 4096), d.stderr_tail())
        self.wait_served(port)

    def test_flood_beyond_open_files(self):
        """128 descriptors, 2 workers, the default max_connections (100000): a flood of
        idle connections must neither spin nor starve a reload of descriptors."""
        cfg = self.proxy_config(workers=2)
        d, port = self.start_limited(cfg, (128, 128))
        pid = d.proc.pid
        self.wait_served(port)

        log0 = len(accept_lines(d.stderr_text()))
        cpu0 = cpu_seconds(pid)
        flood = self.flood(port, 200)
        time.sleep(2.0)
        cpu = cpu_seconds(pid) - cpu0
        grown = len(accept_lines(d.stderr_text())) - log0
        closed = flood.closed_by_peer()
        # The reserve keeps fds free for the config and certificate files.
        try:
            d.sighup_reload(cfg, timeout=5.0)
            reloaded = "ok"
        except AssertionError:
            reloaded = "failed"
        summary = ("cpu %.2fs, %d accept log lines, %d of 200 closed at once, reload %s"
                   % (cpu, grown, closed, reloaded))
        print("\n[limits] flood of 200 idle connections at 128 descriptors: " + summary)
        self.assertLess(cpu, 0.5, summary + "\n" + d.stderr_tail())
        self.assertLess(grown, 50, summary + "\n" + d.stderr_tail())
        self.assertEqual(reloaded, "ok", summary + "\n" + d.stderr_tail())
        self.assertTrue(d.running())

        flood.close()
        self.wait_served(port)

        m = LOWERED.search(d.stderr_text())
        self.assertIsNotNone(m, "no warning about lowering max_connections\n" + d.stderr_tail())
        self.assertEqual(int(m.group(1)), 100000, m.group(0))
        effective = int(m.group(2))
        self.assertTrue(1 <= effective < 64, m.group(0))
        # Past the effective limit connections are accepted and closed at once.
        self.assertGreaterEqual(closed, 200 - effective, summary)

    def test_reload_recomputes_the_limit(self):
        cfg = self.proxy_config(limits={"max_connections": 10})
        d, port = self.start_limited(cfg, (128, 128))
        self.wait_served(port)
        self.assertIsNone(LOWERED.search(d.stderr_text()), d.stderr_tail())
        cfg["global"]["limits"]["max_connections"] = 100000
        d.sighup_reload(cfg)
        m = self.wait_for(lambda: LOWERED.search(d.stderr_text()), msg="the lowering warning")
        self.assertEqual(int(m.group(1)), 100000, m.group(0))
        self.wait_served(port)

    def test_accept_pauses_when_descriptors_run_out(self):
        """Descriptors taken away under the running daemon (the effective limit cannot
        see that): accept fails with EMFILE, and the worker pauses instead of spinning."""
        d, port = self.start_limited(self.proxy_config(), (1024, 1024))
        pid = d.proc.pid
        self.wait_served(port)
        nfds = len(os.listdir("/proc/%d/fd" % pid))
        try:
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (nfds + 8, 1024))
        except (PermissionError, AttributeError) as e:
            self.skipTest("cannot lower the daemon's open-files limit: %s" % e)
        log0 = len(accept_lines(d.stderr_text()))
        cpu0 = cpu_seconds(pid)
        flood = self.flood(port, 60)
        time.sleep(2.0)
        cpu = cpu_seconds(pid) - cpu0
        lines = accept_lines(d.stderr_text())[log0:]
        summary = "cpu %.2fs, %d accept log lines" % (cpu, len(lines))
        print("\n[limits] flood of 60 idle connections at %d descriptors: %s"
              % (nfds + 8, summary))
        self.assertLess(cpu, 0.5, summary + "\n" + d.stderr_tail())
        self.assertLess(len(lines), 50, summary + "\n" + d.stderr_tail())
        self.assertTrue(any("pausing accepts" in l for l in lines), "\n".join(lines[:20]))

        resource.prlimit(pid, resource.RLIMIT_NOFILE, (1024, 1024))
        flood.close()
        self.wait_served(port)

    def test_own_fd_shortage_takes_no_server_out(self):
        """Out of descriptors, connecting to a backend fails here, not there: that is a 502
        for the request and no failure of any server (every server tried was out for
        fail_timeout, and stayed out after the descriptors came back)."""
        a, b = self.backend("a"), self.backend("b")
        port = tg.free_port()
        cfg = self.config(access_log="off")
        cfg["backends"]["app"] = tg.pool_backend([a, b], max_fails=1, fail_timeout="30s")
        cfg["listeners"]["main"] = tg.https_listener(port, "app")
        d, port = self.start_limited(cfg, (1024, 1024))
        pid = d.proc.pid
        conns = [self.conn(port) for _ in range(6)]
        self.assertEqual(conns[0].get("/whoami").status, 200)  # the rest: handshakes only
        for c in conns[1:]:
            c.sock.getpeercert()
        nfds = len(os.listdir("/proc/%d/fd" % pid))
        try:
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (nfds, 1024))
        except (PermissionError, AttributeError) as e:
            self.skipTest("cannot lower the daemon's open-files limit: %s" % e)
        # Six at once: the pool has one idle connection at most, new ones cannot be made.
        statuses = []
        threads = [threading.Thread(target=lambda c=c: statuses.append(
            c.get("/slow?ms=300").status)) for c in conns]
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (1024, 1024))
        self.assertIn(502, statuses, "no connect ever failed: the test proves nothing")
        self.assertNotIn("out for 30000 ms", d.stderr_text(), statuses)
        for i in range(4):
            self.assertEqual(tg.get(port, "/whoami").status, 200, self.log_tail())

    def test_admin_listener_pauses_too(self):
        """The admin listener runs on the main thread: spinning there would stop signals,
        reloads and health checks as well."""
        admin = tg.free_port()
        token = os.path.join(self.dir, "admin.token")
        with open(token, "w") as f:
            f.write("0123456789abcdef-token\n")
        cfg = self.proxy_config()
        cfg["admin"] = {"listen": "127.0.0.1:%d" % admin, "token_file": token}
        d, port = self.start_limited(cfg, (1024, 1024))
        pid = d.proc.pid
        tg.wait_port(admin)
        nfds = len(os.listdir("/proc/%d/fd" % pid))
        try:
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (nfds + 4, 1024))
        except (PermissionError, AttributeError) as e:
            self.skipTest("cannot lower the daemon's open-files limit: %s" % e)
        cpu0 = cpu_seconds(pid)
        self.flood(admin, 20)
        time.sleep(2.0)
        cpu = cpu_seconds(pid) - cpu0
        lines = [l for l in d.stderr_text().splitlines() if "admin: accept" in l]
        summary = "cpu %.2fs, %d admin accept log lines" % (cpu, len(lines))
        self.assertLess(cpu, 0.5, summary + "\n" + d.stderr_tail())
        self.assertLess(len(lines), 10, summary)
        self.assertTrue(lines, "no log line about the pause\n" + d.stderr_tail())
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (1024, 1024))
        d.sighup_reload(cfg)  # the main thread still serves signals


if __name__ == "__main__":
    unittest.main()
