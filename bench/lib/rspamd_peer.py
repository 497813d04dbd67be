"""A private rspamd for benchmarks: one proxy worker in milter mode on a
loopback port (or a unix socket), scanning by itself (`self_scan = yes`, as rspamd's quick
start sets up a milter), no normal or controller worker, no redis.

Debian's rules, modules and scores (/etc/rspamd) are used as shipped; only
the top-level file and a private local configuration folder (LOCAL_CONFDIR)
are the benchmark's, in a folder of its own with the run, database and log
folders (RUNDIR, DBDIR, LOGDIR). The system's own rspamd instance and its
local.d/ are never touched nor read.

DNS: rspamd resolves with its own resolver and is given only the
benchmark's dnsmasq, which answers NXDOMAIN for everything outside the test
zones; so RBL, SURBL, SPF, DKIM and DMARC lookups are answered at once, and
remote maps (maps.rspamd.com) and fuzzy servers are never reached.
Mail relayed from 127.0.0.1 is scanned as mail from another host would be:
`local_addrs` is emptied, `check_local = true` (the modules that skip local
senders by default: SPF, DMARC, ASN, hfilter, once_received...) and the RBL
module's `default_exclude_local = false`.

Every message scanned gets X-Rspamd-Queue-Id and X-Spamd-Result headers
(milter_headers), which tells a benchmark it went through the scanner.
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time

from common import free_port, wait_for_port

RSPAMD_USER = "_rspamd"


def rspamd_binary():
    for path in ("/usr/bin/rspamd", shutil.which("rspamd") or ""):
        if path and os.access(path, os.X_OK):
            return path
    raise RuntimeError("rspamd not found: apt-get install rspamd")


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _is_rspamd(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().startswith(b"rspamd")
    except OSError:
        return False


class RspamdPeer:
    def __init__(self, directory, dns_server, unix_socket=False):
        """dns_server: "127.0.0.1:PORT", the only resolver rspamd uses.
        unix_socket: the milter listens on a unix socket in the folder
        instead of a loopback TCP port."""
        self.dir = os.path.abspath(directory)
        self.dns_server = dns_server
        self.port = None if unix_socket else free_port()
        self.socket_path = os.path.join(self.dir, "milter.sock") if unix_socket else None
        self.local_confdir = os.path.join(self.dir, "local")
        self.run_dir = os.path.join(self.dir, "run")
        self.db_dir = os.path.join(self.dir, "db")
        self.log_dir = os.path.join(self.dir, "log")
        self.log_path = os.path.join(self.log_dir, "rspamd.log")
        self.config = os.path.join(self.dir, "rspamd.conf")
        self.proc = None
        self._out = None

    @property
    def milter(self):
        """The value for Postfix's smtpd_milters."""
        if self.socket_path:
            return f"unix:{self.socket_path}"
        return f"inet:127.0.0.1:{self.port}"

    @property
    def _bind_socket(self):
        if self.socket_path:
            return f"{self.socket_path} mode=0666"
        return f"127.0.0.1:{self.port}"

    def write_config(self):
        local_d = os.path.join(self.local_confdir, "local.d")
        os.makedirs(local_d, exist_ok=True)
        with open(self.config, "w") as f:
            f.write(f"""\
# Debian's rspamd.conf, with one worker: the proxy in milter mode, scanning
# by itself.
.include "$CONFDIR/common.conf"

options {{
    pidfile = "$RUNDIR/rspamd.pid";
    .include "$CONFDIR/options.inc"
    .include(try=true; priority=1,duplicate=merge) "$LOCAL_CONFDIR/local.d/options.inc"
}}

logging {{
    type = "file";
    filename = "$LOGDIR/rspamd.log";
    .include "$CONFDIR/logging.inc"
}}

worker "rspamd_proxy" {{
    bind_socket = "{self._bind_socket}";
    milter = yes;
    timeout = 120s;
    upstream "local" {{
        default = yes;
        self_scan = yes;
    }}
    count = 1;
    max_retries = 5;
    discard_on_reject = false;
    quarantine_on_reject = false;
    spam_header = "X-Spam";
    reject_message = "Spam message rejected";
}}
""")
        with open(os.path.join(local_d, "options.inc"), "w") as f:
            f.write(f"""\
dns {{
    nameserver = ["{self.dns_server}"];
}}
local_addrs = [];
check_local = true;
""")
        with open(os.path.join(local_d, "milter_headers.conf"), "w") as f:
            f.write('use = ["x-spamd-result", "x-rspamd-queue-id"];\n'
                    'skip_local = false;\n')
        with open(os.path.join(local_d, "rbl.conf"), "w") as f:
            f.write("default_exclude_local = false;\n")

    def start(self, timeout=120, hyperscan_timeout=180):
        """Starts rspamd and waits until its proxy listens and, bounded by
        hyperscan_timeout, until it has loaded its compiled hyperscan
        database (scans before that use the slower PCRE fallback)."""
        user = pwd.getpwnam(RSPAMD_USER)
        for path in (self.dir, self.local_confdir):
            os.makedirs(path, exist_ok=True)
            os.chmod(path, 0o755)
        for path in (self.run_dir, self.db_dir, self.log_dir):
            os.makedirs(path, exist_ok=True)
            os.chown(path, user.pw_uid, user.pw_gid)
        self.write_config()
        self._out = open(os.path.join(self.dir, "rspamd.out"), "ab")
        self.proc = subprocess.Popen(
            [rspamd_binary(), "-f", "-c", self.config, "-u", RSPAMD_USER, "-g", RSPAMD_USER,
             f"--var=LOCAL_CONFDIR={self.local_confdir}", f"--var=RUNDIR={self.run_dir}",
             f"--var=DBDIR={self.db_dir}", f"--var=LOGDIR={self.log_dir}"],
            stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._out)
        if not self._wait_listening(timeout):
            code = self.proc.poll()
            self.stop()
            raise RuntimeError(f"rspamd did not listen on {self.milter} (exit {code}):\n"
                               f"{self.log_tail()}")
        deadline = time.monotonic() + hyperscan_timeout
        while time.monotonic() < deadline and not self.hyperscan_loaded():
            if self.proc.poll() is not None:
                raise RuntimeError(f"rspamd exited:\n{self.log_tail()}")
            time.sleep(0.2)
        return self.hyperscan_loaded()

    def _wait_listening(self, timeout):
        alive = lambda: self.proc.poll() is None  # noqa: E731
        if self.port:
            return wait_for_port(self.port, timeout, alive=alive)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and alive():
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                try:
                    s.connect(self.socket_path)
                    return True
                except OSError:
                    time.sleep(0.1)
        return False

    def hyperscan_loaded(self):
        return any("(rspamd_proxy)" in line and "hyperscan database" in line
                   and "has been loaded" in line for line in self.log_lines())

    def log_lines(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.readlines()
        except OSError:
            return []

    def scans(self):
        """The log lines rspamd writes for each message scanned (with its
        action and symbols)."""
        return [line for line in self.log_lines() if "rspamd_task_write_log" in line]

    def log_tail(self, n=20):
        return "".join(self.log_lines()[-n:])

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def _children(self):
        """PIDs of the main process's workers (proxy, hs_helper)."""
        found = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == self.proc.pid:
                found.append(int(name))
        return found

    def stop(self, timeout=15):
        """SIGTERM to the main process, which stops its workers; any worker
        still there afterwards is killed by its PID."""
        if self.proc is not None and self.proc.poll() is None:
            workers = self._children()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            deadline = time.monotonic() + 5
            for pid in workers:
                while time.monotonic() < deadline and _alive(pid):
                    time.sleep(0.05)
                if _alive(pid) and _is_rspamd(pid):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        if self._out is not None:
            self._out.close()
            self._out = None
