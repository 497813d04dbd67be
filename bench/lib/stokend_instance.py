"""A stokend started and stopped by a benchmark, in a folder of its own.

The folder gets a configuration (the keys of etc/stokend.yaml) with one MX
listener on 127.0.0.1 and all state under relative paths, a user
alice@example.test, and the daemon's log (stokend.log). The daemon runs with
that folder as its working directory.

Optional, for other set-ups: other local domains and users, routes
(`routes: {domain: "smtp:[127.0.0.1]:PORT"}`), the DNS servers, extra
top-level configuration lines, and a command prefix to run the daemon under
(a profiler, say); the listeners' address (another loopback address such as
127.0.0.10, so that two nodes can use the same port numbers), the host
name, STARTTLS on the MX listener, and a certificate and key of its own.
"""

import os
import resource
import subprocess
import time

from common import proc_status_kb, stop_process, wait_for_port

USER = "alice@example.test"
PASSWORD = "bench-password-1"


class StokendInstance:
    def __init__(self, bin_dir, directory, mx_port, max_connections=2000,
                 max_connections_per_ip=50, nofile=None, worker_threads=None,
                 log_level="warn", local_domains=None, users=None,
                 routes=None, dns_servers=None, extra_config=None,
                 command_prefix=None, submission_port=None, address="127.0.0.1",
                 hostname="mx.example.test", mx_tls="none", certificate=None,
                 private_key=None):
        self.bin_dir = os.path.abspath(bin_dir)
        self.dir = os.path.abspath(directory)
        self.mx_port = int(mx_port)
        self.max_connections = max_connections
        self.max_connections_per_ip = max_connections_per_ip
        self.nofile = nofile
        self.worker_threads = worker_threads
        self.log_level = log_level
        self.local_domains = list(local_domains or ["example.test"])
        self.users = list(users or [USER])
        self.routes = dict(routes or {})  # domain -> route text
        self.dns_servers = dns_servers  # "127.0.0.1:PORT", or None
        self.extra_config = list(extra_config or [])  # YAML lines
        self.command_prefix = list(command_prefix or [])
        # An implicit-TLS submission listener (the Token Server), if wanted.
        self.submission_port = submission_port
        self.address = address
        self.hostname = hostname
        self.mx_tls = mx_tls  # none, starttls or implicit
        self.certificate = certificate  # PEM files; None: self-signed
        self.private_key = private_key
        self.config = os.path.join(self.dir, "stokend.yaml")
        self.log_path = os.path.join(self.dir, "stokend.log")
        self.proc = None
        self._log = None

    @property
    def stokend(self):
        return os.path.join(self.bin_dir, "stokend")

    @property
    def stokenctl(self):
        return os.path.join(self.bin_dir, "stokenctl")

    @property
    def maildir_new(self):
        return os.path.join(self.dir, "var", "mail", "example.test", "alice",
                            "new")

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def write_config(self):
        lines = [
            f"hostname: {self.hostname}",
            "local_domains:",
            *(f"  - {domain}" for domain in self.local_domains),
            "users_file: var/users",
            "spool_directory: var/spool",
            "maildir_root: var/mail",
            "listeners:",
            f"  - {{role: mx, address: {self.address}, port: {self.mx_port}, "
            f"tls: {self.mx_tls}}}",
            *([f"  - {{role: submission, address: {self.address}, "
               f"port: {self.submission_port}, tls: implicit}}"]
              if self.submission_port else []),
            "tls:",
            f'  certificate: "{self.certificate or ""}"',
            f'  private_key: "{self.private_key or ""}"',
            "  generated_directory: var/tls",
            "limits:",
            f"  max_connections: {self.max_connections}",
            f"  max_connections_per_ip: {self.max_connections_per_ip}",
            f"log_level: {self.log_level}",
            'log_file: ""',
            # Benchmarks run as root in throw-away folders.
            "allow_root: true",
        ]
        if self.worker_threads:
            lines.append(f"worker_threads: {self.worker_threads}")
        if self.routes:
            lines.append("routes:")
            lines.extend(f'  {domain}: "{route}"'
                         for domain, route in self.routes.items())
        if self.dns_servers:
            lines.append("dns:")
            lines.append(f'  servers: "{self.dns_servers}"')
        lines.extend(self.extra_config)
        os.makedirs(os.path.join(self.dir, "var"), exist_ok=True)
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")

    def add_user(self, address=USER, password=PASSWORD):
        r = subprocess.run([self.stokenctl, "--config", self.config, "user",
                            "add", address], cwd=self.dir,
                           input=password + "\n", text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"stokenctl user add failed ({r.returncode}):"
                               f" {r.stdout.strip()}")

    def _preexec(self):
        if self.nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE,
                               (self.nofile, self.nofile))

    def start(self, timeout=30, add_users=True):
        """Writes the configuration, adds the users (add_users=False when
        starting again on a folder that has them) and starts the daemon."""
        for exe in (self.stokend, self.stokenctl):
            if not os.access(exe, os.X_OK):
                raise RuntimeError(f"{exe} not found; build it or pass "
                                   "--bin-dir")
        os.makedirs(self.dir, exist_ok=True)
        self.write_config()
        if add_users:
            for address in self.users:
                self.add_user(address)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([*self.command_prefix, self.stokend,
                                      "--config", self.config],
                                     cwd=self.dir, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=self._log,
                                     preexec_fn=self._preexec)
        if not wait_for_port(self.mx_port, timeout, host=self.address,
                             alive=lambda: self.proc.poll() is None):
            code = self.proc.poll()
            self.stop()
            raise RuntimeError(f"stokend did not listen on {self.mx_port} "
                               f"(exit {code}):\n{self.log_tail()}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def rss_kb(self):
        return proc_status_kb(self.pid, "VmRSS") if self.alive() else None

    def log_tail(self, n=20):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stop(self, timeout=15):
        stop_process(self.proc, timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self):
        """SIGKILL, as a power cut would end it; waits until it is gone."""
        if self.alive():
            self.proc.kill()
            self.proc.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def count_delivered(self):
        try:
            return len(os.listdir(self.maildir_new))
        except FileNotFoundError:
            return 0


def wait_until(predicate, timeout, interval=0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
