"""A real stokend in a private directory, for the end-to-end tests.

Each daemon gets a fresh temporary directory (its working directory, so the
relative paths in its config resolve inside it), three free loopback ports
(MX with STARTTLS, submission with STARTTLS, submission with implicit TLS), a
config file written from defaults plus per-test overrides, and the users
alice@example.test and bob@example.test added with stokenctl before it starts.

Stopping sends SIGTERM and expects exit status 0 within 10 seconds (kill -9
after that); a sanitizer report in the daemon's log counts as a problem.

Binaries: STOKEND_BIN and STOKENCTL_BIN; when unset, an `e2e-build` directory
in the system's temporary directory, then `build/` in the repository.
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from ports import free_ports  # noqa: F401 (used by the test modules too)
from smtpwire import SMTPWire

REPO = Path(__file__).resolve().parents[2]

USERS = {
    "alice@example.test": "Alice-pw-4711",
    "bob@example.test": "Bob-pw-0815",
}

SANITIZER_MARKERS = ("AddressSanitizer", "runtime error:", "LeakSanitizer")
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
SETTLE_TIMEOUT = 5.0
# A loopback UDP port where no DNS server listens: lookups fail at once.
DNS_PORT_NOBODY = 9  # local deliveries finish within milliseconds of the 250


def _binary(env_name: str, name: str) -> Path:
    value = os.environ.get(env_name)
    if value:
        return Path(value)
    for build_dir in (Path(tempfile.gettempdir()) / "e2e-build", REPO / "build"):
        if (build_dir / name).exists():
            return build_dir / name
    return Path(tempfile.gettempdir()) / "e2e-build" / name


STOKEND = _binary("STOKEND_BIN", "stokend")
STOKENCTL = _binary("STOKENCTL_BIN", "stokenctl")


class MissingBinary(AssertionError):
    pass


def require_binaries() -> None:
    for binary in (STOKEND, STOKENCTL):
        if not binary.is_file() or not os.access(binary, os.X_OK):
            raise MissingBinary(f"{binary} is missing; build it or set STOKEND_BIN / STOKENCTL_BIN")


# --- config -------------------------------------------------------------------

def default_config(ports: list[int]) -> dict:
    mx, submission, submissions = ports
    return {
        "hostname": "mx.example.test",
        "local_domains": ["example.test"],
        "users_file": "var/users",
        "spool_directory": "var/spool",
        "maildir_root": "var/mail",
        "listeners": [
            {"role": "mx", "address": "127.0.0.1", "port": mx, "tls": "starttls"},
            {"role": "submission", "address": "127.0.0.1", "port": submission, "tls": "starttls"},
            {"role": "submission", "address": "127.0.0.1", "port": submissions, "tls": "implicit"},
        ],
        "tls": {"certificate": "", "private_key": "", "generated_directory": "var/tls"},
        "limits": {
            "max_message_size": "35M",
            "max_line_length": 1000,
            "max_recipients": 100,
            "max_connections": 2000,
            "max_connections_per_ip": 50,
            "error_limit": 10,
            "max_auth_failures": 3,
        },
        "timeouts": {
            "idle": "5m",
            "command": "5m",
            "data": "10m",
            "tls_handshake": "30s",
            "auth_failure_base_delay": "1s",
            "auth_failure_max_delay": "16s",
        },
        "normalise_bare_line_endings": False,
        "worker_threads": 4,
        "log_level": "info",
        # Tests run as root in CI, in throw-away folders; the privilege drop
        # has its own tests (test_service.py).
        "allow_root": True,
        # Nothing leaves loopback: DNS goes to a loopback port (a test that
        # needs records starts dnsmasq there); MX hosts are contacted on a
        # high port, never 25.
        "dns": {"servers": f"127.0.0.1:{DNS_PORT_NOBODY}", "timeout": "300ms"},
        "delivery": {"mx_port": 2625},
    }


def deep_merge(base: dict, overrides: dict) -> dict:
    result = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = deep_merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _yaml_scalar(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid YAML double-quoted scalar
    raise TypeError(f"cannot write {value!r} as YAML")


def _yaml_key(key: str) -> str:
    """A key as written: plain when it is a name, quoted otherwise ("*" would
    start a YAML alias)."""
    return key if re.fullmatch(r"[A-Za-z0-9_.\-]+", key) else json.dumps(key)


def _yaml_inline(value) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_yaml_key(k)}: {_yaml_inline(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_yaml_inline(v) for v in value) + "]"
    return _yaml_scalar(value)


def to_yaml(config: dict) -> str:
    """Block style for the top level and nested maps, flow style inside lists."""
    lines: list[str] = []

    def emit(mapping: dict, indent: int) -> None:
        for key, value in mapping.items():
            pad = " " * indent
            if isinstance(value, dict):
                lines.append(f"{pad}{_yaml_key(key)}:")
                emit(value, indent + 2)
            elif isinstance(value, list) and value and isinstance(value[0], dict):
                lines.append(f"{pad}{_yaml_key(key)}:")
                for item in value:
                    lines.append(f"{pad}  - {_yaml_inline(item)}")
            else:
                lines.append(f"{pad}{_yaml_key(key)}: {_yaml_inline(value)}")

    emit(config, 0)
    return "\n".join(lines) + "\n"


# --- the daemon -----------------------------------------------------------------

class Stokend:
    """One daemon in its own directory."""

    def __init__(self, directory: Path, overrides: dict | None = None,
                 users: dict[str, str] | None = None,
                 coi_filters: dict[str, str] | None = None):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ports = free_ports(3)
        self.mx_port, self.submission_port, self.submissions_port = self.ports
        overrides = dict(overrides or {})
        # Listeners added to the three every daemon has (whose ports the
        # helpers here use).
        extra_listeners = overrides.pop("extra_listeners", [])
        self.config = deep_merge(default_config(self.ports), overrides)
        self.config["listeners"] += extra_listeners
        self.config_path = self.dir / "stokend.yaml"
        self.config_path.write_text(to_yaml(self.config))
        self.users = dict(USERS if users is None else users)
        self.coi_filters = dict(coi_filters or {})
        self.log_path = self.dir / "stokend.log"
        self.out_path = self.dir / "stokend.out"
        self.proc: subprocess.Popen | None = None
        self.returncode: int | None = None

    # paths
    @property
    def maildir_root(self) -> Path:
        return self.dir / self.config["maildir_root"]

    @property
    def spool(self) -> Path:
        return self.dir / self.config["spool_directory"]

    def maildir(self, address: str, chats: bool = False) -> Path:
        local, domain = address.lower().split("@")
        path = self.maildir_root / domain / local
        return path / ".COI.Chats" if chats else path

    def settle(self, timeout: float = SETTLE_TIMEOUT) -> bool:
        """Waits until every message the queue stored has been removed from it
        (all recipients final), as the log tells. Delivery follows the 250
        asynchronously, so mail is read only once the queue has settled.
        Returns False when messages are still queued after timeout (e.g. a
        deferred delivery), which callers may expect, and at once when the
        daemon is not running: nothing will change then."""
        deadline = time.monotonic() + timeout
        while True:
            stopped = self.proc is None or self.proc.poll() is not None
            log = self.log()
            stored = set(re.findall(r"queue: (\S+) stored:", log))
            removed = set(re.findall(r"queue: (\S+) removed:", log))
            if stored <= removed:
                return True
            if stopped or time.monotonic() > deadline:
                return False
            time.sleep(0.02)

    def messages(self, address: str, chats: bool = False) -> list[bytes]:
        """The messages in the user's new/ folder (or the COI Chats folder), by name."""
        self.settle()
        new = self.maildir(address, chats) / "new"
        if not new.is_dir():
            return []
        return [p.read_bytes() for p in sorted(new.iterdir()) if p.is_file()]

    def tmp_files(self, address: str, chats: bool = False) -> list[Path]:
        self.settle()
        tmp = self.maildir(address, chats) / "tmp"
        return sorted(tmp.iterdir()) if tmp.is_dir() else []

    def all_mail_files(self) -> list[Path]:
        """Every file in any new/, cur/ or tmp/ folder under the Maildir root
        (not the folders' marker files such as maildirfolder)."""
        self.settle()
        root = self.maildir_root
        if not root.exists():
            return []
        return sorted(p for p in root.rglob("*")
                      if p.is_file() and p.parent.name in ("new", "cur", "tmp"))

    def files_containing(self, marker: bytes, include_spool: bool = True) -> list[Path]:
        """Every file under the daemon's directory (mail and, unless told
        otherwise, the spool, which keeps accepted messages) containing marker."""
        self.settle()
        hits = []
        for path in self.dir.rglob("*"):
            if not include_spool and self.spool in path.parents:
                continue
            if path.is_file() and path not in (self.log_path, self.out_path):
                try:
                    if marker in path.read_bytes():
                        hits.append(path)
                except OSError:
                    pass
        return hits

    def clear_mail(self) -> None:
        for path in self.all_mail_files():
            path.unlink()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    # stokenctl
    def ctl(self, *args: str, password: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(STOKENCTL), "--config", str(self.config_path), *args],
            cwd=self.dir, input=(password + "\n") if password is not None else "",
            capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(
                f"stokenctl {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
        return result

    def add_user(self, address: str, password: str) -> None:
        self.ctl("user", "add", address, password=password)

    # lifecycle
    def start(self) -> "Stokend":
        require_binaries()
        for address, password in self.users.items():
            self.add_user(address, password)
        for address, mode in self.coi_filters.items():
            self.ctl("user", "set", address, "coi-filter", mode)
        env = dict(os.environ)
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        with open(self.log_path, "ab") as err, open(self.out_path, "ab") as out:
            self.proc = subprocess.Popen(
                [str(STOKEND), "--config", str(self.config_path)],
                cwd=self.dir, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        waiting = list(self.ports)
        while waiting:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"stokend exited with {self.proc.returncode} during start-up:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(
                    f"stokend did not listen on ports {waiting} within {START_TIMEOUT}s:\n{self.log_tail()}")
            port = waiting[0]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                waiting.pop(0)
            except OSError:
                time.sleep(0.05)
        # The MX port must also greet.
        remaining = max(deadline - time.monotonic(), 1.0)
        with SMTPWire(self.mx_port, timeout=remaining) as conn:
            assert conn.greeting.code == 220, f"unexpected greeting {conn.greeting}"
            conn.command("QUIT")
        time.sleep(0.1)  # let the daemon retire the probe connections

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def sanitizer_report(self) -> str | None:
        log = self.log()
        for marker in SANITIZER_MARKERS:
            if marker in log:
                return marker
        return None

    def terminate(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, wait up to `timeout`; kill -9 after. Returns the exit code
        (None when it had to be killed)."""
        if self in RUNNING:
            RUNNING.remove(self)
        if self.proc is None:
            return self.returncode
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                self.returncode = None
                self.proc = None
                return None
        self.returncode = self.proc.returncode
        self.proc = None
        return self.returncode

    def stop(self) -> list[str]:
        """Stops the daemon; returns the problems seen (empty when clean)."""
        was_running = self.running()
        code = self.terminate()
        problems = []
        if code is None and was_running:
            problems.append(f"stokend did not exit within {STOP_TIMEOUT}s of SIGTERM (killed)")
        elif code not in (0, None):
            problems.append(f"stokend exited with status {code}")
        marker = self.sanitizer_report()
        if marker:
            problems.append(f"stokend log contains a sanitizer report ({marker!r})")
        if problems:
            problems.append("log tail:\n" + self.log_tail(60))
        return problems


# Daemons started and not yet stopped, for the per-test checks.
RUNNING: list[Stokend] = []


def configure_node(node: Stokend, domain: str, certificate, peer_mx_port: int, common: dict,
                   tokens: dict) -> None:
    """Makes an unstarted daemon the node of domain in a two-domain test: its
    own name and TLS certificate (certificate: (cert, key) files), the
    settings common to every node, the other domain's MX port, and tokens
    settings when given (a shared token store)."""
    cert, key = certificate
    node.config = deep_merge(node.config, {
        **common,
        "hostname": f"mx.{domain}",
        "local_domains": [domain],
        "tls": {"certificate": str(cert), "private_key": str(key)},
        "delivery": {"mx_port": peer_mx_port},
        **({"tokens": tokens} if tokens else {}),
    })
    node.config_path.write_text(to_yaml(node.config))
