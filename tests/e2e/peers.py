"""Real peers for the queue and delivery tests, each private and on loopback.

- SmtpSink: Postfix's smtp-sink, a next hop that can dump every transaction to
  a file, or answer 4xx/5xx at a chosen stage.
- Dnsmasq: a DNS server with MX and address records under .test, answering
  NXDOMAIN for every other name under .test and nothing else.
- Dovecot: a standalone Dovecot speaking LMTP on a loopback port and a unix
  socket, delivering into HOME/Maildir of passwd-file users.
- Redis: a redis-server on a unix socket only, appendonly yes, appendfsync
  always (the settings README "Several nodes" asks for), to be killed and
  started again on the same data.
- HAProxy: a TCP balancer from a given configuration, on loopback.

Every peer runs as a child process in its own temporary folder, on a free high
loopback port, and is stopped by its process id (a PeerSet stops all of its
peers when the test ends). Every wait is bounded.

Also here: submitting through the daemon's submission ports, and reading the
queue's log lines ("queue: ID stored: ...", "queue: ID to=<...> delivered after
N attempts: ...", "queue: ID removed: finished", notifications).
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import ports
from smtpwire import SMTPWire


def _program(name: str) -> Path:
    """A server program, looked up on PATH plus the sbin folders where the
    packages install them."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/sbin"])
    found = shutil.which(name, path=search)
    return Path(found) if found else Path("/usr/sbin") / name


SMTP_SINK = _program("smtp-sink")
DNSMASQ = _program("dnsmasq")
DOVECOT = _program("dovecot")

PEER_START_TIMEOUT = 10.0
PEER_STOP_TIMEOUT = 5.0
# Peers drop privileges to this account (smtp-sink insists when run as root;
# Dovecot delivers as the passwd-file uid), so their folders live outside the
# per-test temporary directory, which only its owner may enter.
NOBODY_UID = 65534
NOBODY_GID = 65534


def require(binary: Path) -> None:
    if not binary.is_file() or not os.access(binary, os.X_OK):
        pytest.skip(f"{binary} is not installed")


def _free_port(udp_too: bool = False) -> int:
    """A free loopback TCP port (and, when asked, free for UDP too)."""
    return ports.free_port(udp_too)


def free_port() -> int:
    return _free_port()


def wait_until(predicate, timeout: float, interval: float = 0.05, what: str = "condition"):
    """Polls predicate() until it returns something truthy; returns that value.
    Raises AssertionError after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# --- peers ------------------------------------------------------------------------

class Peer:
    """A child process in its own folder, stopped by its pid."""

    name = "peer"

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.folder = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        self.output_path = self.folder / f"{self.name}.out"

    def _spawn(self, argv: list[str]) -> None:
        with open(self.output_path, "ab") as out:
            self.proc = subprocess.Popen(argv, cwd=self.folder, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        try:
            return self.output_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.output()}")

    def stop(self) -> None:
        """SIGTERM by pid, SIGKILL if it does not exit in time. Idempotent."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(PEER_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(PEER_STOP_TIMEOUT)
        self.proc = None

    def remove_folder(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


@dataclass
class SinkMessage:
    """One transaction as smtp-sink dumped it (lines end with LF in the dump)."""

    path: Path
    mail_args: str
    rcpt_args: list[str]
    helo: str
    proto: str
    data: bytes  # the message as received, LF line endings, without the dump's final empty line


def _parse_sink_dump(path: Path) -> SinkMessage:
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    info: dict[str, list[str]] = {}
    i = 0
    # smtp-sink's own X- records, then its three-line Received field.
    while i < len(lines) and lines[i].startswith(b"X-"):
        key, _, value = lines[i].decode("utf-8", "replace").partition(": ")
        info.setdefault(key, []).append(value)
        i += 1
    assert i < len(lines) and lines[i].startswith(b"Received: "), f"unexpected dump {path}: {raw[:400]!r}"
    i += 1
    while i < len(lines) and lines[i][:1] in (b"\t", b" "):
        i += 1
    data = b"\n".join(lines[i:])
    # The dump ends with an empty line after the message.
    if data.endswith(b"\n\n"):
        data = data[:-1]
    return SinkMessage(path=path,
                       mail_args=info.get("X-Mail-Args", [""])[0],
                       rcpt_args=info.get("X-Rcpt-Args", []),
                       helo=info.get("X-Helo-Args", [""])[0],
                       proto=info.get("X-Client-Proto", [""])[0],
                       data=data)


class SmtpSink(Peer):
    """Postfix's smtp-sink on 127.0.0.1:port, dumping each transaction to a file.

    hard / soft: commands answered with a 5xx / 4xx reply (smtp-sink -f / -r),
    e.g. ("RCPT",) or (".",) for the end of DATA; hard_reply / soft_reply
    replace the default reply texts (-B / -b). A sink started again with
    `dump_into=earlier.dumps` shares the earlier sink's dump folder."""

    name = "smtp-sink"

    def __init__(self, port: int | None = None, *, hard: tuple[str, ...] = (),
                 soft: tuple[str, ...] = (), hard_reply: str | None = None,
                 soft_reply: str | None = None, dump_into: Path | None = None) -> None:
        require(SMTP_SINK)
        super().__init__()
        self.port = port or free_port()
        self.dumps = dump_into or self.folder / "dumps"
        self.dumps.mkdir(exist_ok=True)
        for path in (self.folder, self.dumps):
            os.chmod(path, 0o777)  # written by the unprivileged sink
        argv = [str(SMTP_SINK), "-u", "nobody", "-d", f"{self.dumps}/%M."]
        if hard:
            argv += ["-f", ",".join(hard)]
        if soft:
            argv += ["-r", ",".join(soft)]
        if hard_reply:
            argv += ["-B", hard_reply]
        if soft_reply:
            argv += ["-b", soft_reply]
        argv += [f"127.0.0.1:{self.port}", "100"]
        self._spawn(argv)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + PEER_START_TIMEOUT
        while True:
            self._check_alive()
            try:
                with SMTPWire(self.port, timeout=2.0) as conn:
                    assert conn.greeting.code == 220, str(conn.greeting)
                    conn.command("QUIT")
                return
            except (OSError, AssertionError):
                if time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError(f"smtp-sink did not greet on port {self.port}:\n{self.output()}")
                time.sleep(0.05)

    @property
    def route(self) -> str:
        return f"smtp:[127.0.0.1]:{self.port}"

    def dump_files(self) -> list[Path]:
        if not self.dumps.is_dir():
            return []
        return sorted((p for p in self.dumps.iterdir() if p.is_file()), key=lambda p: p.stat().st_mtime_ns)

    def messages(self) -> list[SinkMessage]:
        return [_parse_sink_dump(p) for p in self.dump_files()]

    def wait_for_messages(self, count: int, timeout: float = 10.0) -> list[SinkMessage]:
        wait_until(lambda: len(self.dump_files()) >= count, timeout,
                   what=f"{count} message(s) at smtp-sink port {self.port}")
        time.sleep(0.1)  # the last dump is complete once the sink has answered the final dot
        return self.messages()

    def close(self) -> None:
        self.stop()
        self.remove_folder()


def _dns_query(name: str, qtype: int, port: int, timeout: float) -> bytes | None:
    """One UDP DNS query; returns the raw response or None."""
    header = struct.pack(">HHHHHH", 0x5151, 0x0100, 1, 0, 0, 0)
    question = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"
    packet = header + question + struct.pack(">HH", qtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(packet, ("127.0.0.1", port))
            response, _ = sock.recvfrom(4096)
        except OSError:
            return None
    return response


def dns_answer_count(name: str, qtype: int, port: int, timeout: float = 0.5) -> tuple[int, int] | None:
    """(rcode, answer count) of a query, or None when nothing answered."""
    response = _dns_query(name, qtype, port, timeout)
    if not response or len(response) < 12:
        return None
    _, flags, _, answers, _, _ = struct.unpack(">HHHHHH", response[:12])
    return flags & 0x000F, answers


DNS_MX = 15
DNS_A = 1


class Dnsmasq(Peer):
    """dnsmasq on 127.0.0.1:port: mx = [(domain, host, preference)],
    hosts = [(name, ipv4)], srv = [(service name, target, port[, priority])]
    (priority 0 unless given, weight 1); every other name under .test is NXDOMAIN; no upstream
    servers, no /etc/hosts, no resolv.conf."""

    name = "dnsmasq"

    def __init__(self, mx: list[tuple[str, str, int]], hosts: list[tuple[str, str]],
                 srv: list[tuple] = ()) -> None:
        require(DNSMASQ)
        super().__init__()
        self.port = _free_port(udp_too=True)
        argv = [str(DNSMASQ), "--no-daemon", "--no-resolv", "--no-hosts", "--no-poll",
                f"--port={self.port}", "--listen-address=127.0.0.1", "--bind-interfaces",
                "--local=/test/", "--log-queries", "--log-facility=-", "--conf-file=/dev/null"]
        argv += [f"--mx-host={domain},{host},{preference}" for domain, host, preference in mx]
        argv += [f"--host-record={name},{address}" for name, address in hosts]
        argv += [f"--srv-host={name},{target},{port},{priority[0] if priority else 0},1"
                 for name, target, port, *priority in srv]
        self.probe = mx[0][0] if mx else hosts[0][0]
        self._spawn(argv)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + PEER_START_TIMEOUT
        while True:
            self._check_alive()
            answer = dns_answer_count(self.probe, DNS_MX, self.port, 0.2)
            if answer is not None:
                return
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"dnsmasq did not answer on port {self.port}:\n{self.output()}")
            time.sleep(0.05)

    @property
    def servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self.stop()
        self.remove_folder()


def private_ca(folder: Path, names: list[str]) -> tuple[Path, dict[str, tuple[Path, Path]]]:
    """A private certificate authority in folder and, for each name, a
    certificate it signed (subjectAltName DNS:name) and its key. Returns
    (CA certificate file, {name: (certificate file, key file)})."""
    folder.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        result = subprocess.run(["openssl", *args], cwd=folder, capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0, f"openssl {' '.join(args)}:\n{result.stderr}"

    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=stokend test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    issued = {}
    for name in names:
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        (folder / f"{name}.ext").write_text(
            f"subjectAltName=DNS:{name}\nbasicConstraints=CA:FALSE\n"
            "extendedKeyUsage=serverAuth\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-out", f"{name}.pem",
                "-extfile", f"{name}.ext")
        issued[name] = (folder / f"{name}.pem", folder / f"{name}.key")
    return folder / "ca.pem", issued


class Dovecot(Peer):
    """A standalone Dovecot that speaks LMTP only, on a loopback TCP port and
    on a unix socket. users: login names (the part before @; the userdb
    strips the domain), each with HOME under this peer's folder."""

    name = "dovecot"

    def __init__(self, users: tuple[str, ...] = ("alice", "bob")) -> None:
        require(DOVECOT)
        if not any(Path(d, "lmtp").exists() for d in ("/usr/lib/dovecot", "/usr/libexec/dovecot")):
            pytest.skip("Dovecot's LMTP server (dovecot-lmtpd) is not installed")
        super().__init__()
        os.chmod(self.folder, 0o755)
        self.port = free_port()
        self.base_dir = self.folder / "run"
        state_dir = self.folder / "state"
        homes = self.folder / "home"
        for path in (self.base_dir, state_dir, homes):
            path.mkdir()
        os.chmod(homes, 0o755)
        self.homes: dict[str, Path] = {}
        passwd_lines = []
        for user in users:
            home = homes / user
            home.mkdir()
            os.chown(home, NOBODY_UID, NOBODY_GID)
            self.homes[user] = home
            passwd_lines.append(f"{user}:{{PLAIN}}unused-{user}:{NOBODY_UID}:{NOBODY_GID}::{home}::")
        passwd = self.folder / "passwd"
        passwd.write_text("\n".join(passwd_lines) + "\n")
        self.log_path = self.folder / "dovecot.log"
        self.config_path = self.folder / "dovecot.conf"
        self.config_path.write_text(f"""\
base_dir = {self.base_dir}
state_dir = {state_dir}
instance_name = dovecot-{self.folder.name}
log_path = {self.log_path}
protocols = lmtp
listen = 127.0.0.1
ssl = no
mail_location = maildir:~/Maildir
first_valid_uid = 1
first_valid_gid = 1
auth_username_format = %Ln
passdb {{
  driver = passwd-file
  args = {passwd}
}}
userdb {{
  driver = passwd-file
  args = {passwd}
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {self.port}
  }}
}}
""")
        self.start()

    def start(self) -> None:
        """Starts Dovecot (again, after stop(): same port, socket and homes)."""
        assert not self.running()
        self._spawn([str(DOVECOT), "-F", "-c", str(self.config_path)])
        self._wait_ready()

    @property
    def socket_path(self) -> Path:
        return self.base_dir / "lmtp"

    @property
    def tcp_route(self) -> str:
        return f"lmtp:[127.0.0.1]:{self.port}"

    @property
    def unix_route(self) -> str:
        return f"lmtp:unix:{self.socket_path}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + PEER_START_TIMEOUT
        while True:
            self._check_alive()
            try:
                if self.socket_path.exists():
                    with SMTPWire(self.port, timeout=2.0) as conn:
                        assert conn.greeting.code == 220, str(conn.greeting)
                        conn.command("QUIT")
                    return
            except (OSError, AssertionError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"Dovecot did not start:\n{self.output()}\n{self.log()}")
            time.sleep(0.05)

    def new_mail(self, user: str) -> list[Path]:
        new = self.homes[user] / "Maildir" / "new"
        return sorted(p for p in new.iterdir() if p.is_file()) if new.is_dir() else []

    def all_mail(self, user: str) -> list[Path]:
        maildir = self.homes[user] / "Maildir"
        return sorted(p for sub in ("new", "cur") if (maildir / sub).is_dir()
                      for p in (maildir / sub).iterdir() if p.is_file())

    def close(self) -> None:
        self.stop()
        self.remove_folder()


class PeerSet:
    """The peers of one test; all stopped (by pid) and removed at teardown."""

    def __init__(self) -> None:
        self.started: list[Peer] = []

    def sink(self, port: int | None = None, **options) -> SmtpSink:
        peer = SmtpSink(port, **options)
        self.started.append(peer)
        return peer

    def dnsmasq(self, mx: list[tuple[str, str, int]], hosts: list[tuple[str, str]],
                srv: list[tuple[str, str, int]] = ()) -> Dnsmasq:
        peer = Dnsmasq(mx, hosts, srv)
        self.started.append(peer)
        return peer

    def dovecot(self, users: tuple[str, ...] = ("alice", "bob")) -> Dovecot:
        peer = Dovecot(users)
        self.started.append(peer)
        return peer

    def close(self) -> None:
        for peer in reversed(self.started):
            try:
                peer.stop()
            finally:
                peer.remove_folder()
        self.started.clear()

    def __enter__(self) -> "PeerSet":
        return self

    def __exit__(self, *exc) -> None:
        self.close()




# --- the daemon -------------------------------------------------------------------

def queue_daemon(factory, **overrides):
    """Starts a daemon (factory: stokend_factory) whose log shows every queue
    event the tests wait for, debug lines included."""
    overrides.setdefault("log_level", "debug")
    return factory(**overrides)


# --- clients ----------------------------------------------------------------------

def submit(daemon, user: str, password: str, recipients: list[str], message: bytes,
           *, implicit_tls: bool = False, sender: str | None = None):
    """Authenticated submission: STARTTLS (or implicit TLS), AUTH PLAIN, one
    transaction. Returns the reply to the end of DATA."""
    port = daemon.submissions_port if implicit_tls else daemon.submission_port
    with SMTPWire(port, implicit_tls=implicit_tls) as conn:
        assert conn.greeting.code == 220, str(conn.greeting)
        assert conn.ehlo("client.example.test").code == 250
        if not implicit_tls:
            conn.starttls()
            assert conn.ehlo("client.example.test").code == 250
        reply = conn.auth_plain(user, password)
        assert reply.code == 235, f"AUTH PLAIN as {user}: {reply}"
        reply = conn.transaction(sender or user, recipients, message)
        conn.command("QUIT")
        return reply


def send_mx(daemon, sender: str, recipients: list[str], message: bytes):
    """One unauthenticated transaction on the MX port. Returns the reply to
    the end of DATA. sender "" sends MAIL FROM:<>."""
    with SMTPWire(daemon.mx_port) as conn:
        assert conn.greeting.code == 220, str(conn.greeting)
        assert conn.ehlo("client.remote.test").code == 250
        reply = conn.transaction(sender, recipients, message)
        conn.command("QUIT")
        return reply


QUEUED = re.compile(r"^250 2\.0\.0 Ok: queued as (\S+)$")


def queue_id(reply) -> str:
    """The queue id from the "250 2.0.0 Ok: queued as ID" reply to DATA."""
    match = QUEUED.match(str(reply))
    assert match, f"unexpected reply to DATA: {reply}"
    return match.group(1)


# --- the queue's log --------------------------------------------------------------

def stored_line(log: str, qid: str) -> re.Match | None:
    return re.search(rf"queue: {re.escape(qid)} stored: from=<([^>]*)> recipients=(\d+) size=(\d+)(.*)$",
                     log, re.M)


def outcomes(log: str, qid: str) -> list[tuple[str, str, int, str]]:
    """(recipient, outcome, attempts, reply) for each delivery attempt of qid;
    outcome is delivered, deferred, failed or expired."""
    return [(m.group(1), m.group(2), int(m.group(3)), m.group(4)) for m in re.finditer(
        rf"queue: {re.escape(qid)} to=<([^>]*)> (\w+) after (\d+) attempts: (.*)$", log, re.M)]


def notifications(log: str, qid: str) -> list[tuple[str, str, str]]:
    """(kind, notification id, recipient) for each notification qid caused;
    kind is failure or delay."""
    return [(m.group(1), m.group(2), m.group(3)) for m in re.finditer(
        rf"queue: {re.escape(qid)}: (\w+) notification (\S+) to <([^>]*)>$", log, re.M)]


def removed(log: str, qid: str) -> bool:
    return re.search(rf"queue: {re.escape(qid)} removed: finished$", log, re.M) is not None


def wait_for_log(daemon, pattern: str, timeout: float = 10.0) -> re.Match:
    """Waits until the daemon's log matches pattern (multi-line mode)."""
    regex = re.compile(pattern, re.M)
    try:
        return wait_until(lambda: regex.search(daemon.log()), timeout, what=f"log line /{pattern}/")
    except AssertionError as error:
        raise AssertionError(f"{error}\nlog tail:\n{daemon.log_tail(40)}") from None


def wallet(node, user: str) -> str:
    """`stokenctl token list wallet USER`: the user's tokens from other servers."""
    return node.ctl("token", "list", "wallet", user, check=False).stdout


def fast_lane_line(node, qid: str, recipient: str, timeout: float = 10.0) -> re.Match:
    """The fast-lane log line of one recipient: group 2 the Token Server and
    group 3 its reply when delivered, group 4 the reason when it fell back."""
    return wait_for_log(node, rf"fast-lane: {re.escape(qid)} to=<{re.escape(recipient)}> "
                              r"(delivered by (\S+): (\d{3} \d\.\d\.\d+) id=\S+|falls back to the queue: (.*))$",
                        timeout)


def wait_removed(daemon, qid: str, timeout: float = 10.0) -> str:
    """Waits until qid has left the queue; returns the log."""
    wait_for_log(daemon, rf"queue: {re.escape(qid)} removed: finished$", timeout)
    return daemon.log()


# --- delivery status notifications ------------------------------------------------

@dataclass
class Dsn:
    message: email.message.Message
    report: list[dict[str, str]]  # per-recipient fields of message/delivery-status
    per_message: dict[str, str]
    original_headers: str


def parse_dsn(raw: bytes) -> Dsn:
    """Parses a multipart/report; report-type=delivery-status message and
    checks its structure (RFC 3462, RFC 3464)."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert message.get_content_type() == "multipart/report", message.get("Content-Type")
    assert message.get_param("report-type") == "delivery-status", message.get("Content-Type")
    parts = message.get_payload()
    assert isinstance(parts, list) and len(parts) >= 2, f"report has {len(parts)} parts"
    assert parts[0].get_content_type() == "text/plain"
    status = parts[1]
    assert status.get_content_type() == "message/delivery-status", status.get_content_type()
    # compat32 parses message/delivery-status into a list of header blocks.
    blocks = status.get_payload()
    assert isinstance(blocks, list) and len(blocks) >= 2, f"delivery-status blocks: {blocks!r}"
    per_message = {k: v for k, v in blocks[0].items()}
    report = [{k: re.sub(r"\s+", " ", v) for k, v in block.items()} for block in blocks[1:]]
    original = ""
    if len(parts) >= 3:
        assert parts[2].get_content_type() in ("text/rfc822-headers", "message/rfc822"), (
            parts[2].get_content_type())
        payload = parts[2].get_payload()
        original = payload if isinstance(payload, str) else str(payload[0])
    return Dsn(message, report, per_message, original)


REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class Redis:
    """A private redis-server on a unix socket in `folder` (no TCP port),
    with the settings the README asks for."""

    def __init__(self, folder: Path):
        if not os.access(REDIS_SERVER, os.X_OK):
            pytest.skip("redis-server is not installed")
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.socket = folder / "redis.sock"
        self.proc: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"unix:{self.socket}"

    def start(self) -> None:
        if self.socket.exists():
            self.socket.unlink()
        log = open(self.folder / "redis.log", "ab")
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm",
             "700", "--dir", str(self.folder), "--appendonly", "yes", "--appendfsync", "always",
             "--save", "", "--daemonize", "no"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()

        def answers():
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                    probe.settimeout(0.5)
                    probe.connect(str(self.socket))
                    probe.sendall(b"PING\r\n")
                    return probe.recv(16).startswith(b"+PONG")
            except OSError:
                return False
        wait_until(answers, 10.0, what="redis-server to answer")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final save (the AOF has every write)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def close(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


class HAProxy:
    """A private haproxy -db with `config` (TCP mode, loopback frontends),
    checked with haproxy -c first; waits until every port in `ports` accepts."""

    def __init__(self, folder: Path, config: str, ports_to_wait_for: list[int]):
        if not Path(HAPROXY).exists():
            pytest.skip("haproxy is not installed (Debian package haproxy)")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "haproxy.cfg"
        path.write_text(config)
        check = subprocess.run([HAPROXY, "-c", "-f", str(path)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        self.log_path = folder / "haproxy.log"
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen([HAPROXY, "-db", "-f", str(path)], stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        for port in ports_to_wait_for:
            wait_until(lambda: _accepts(port), 10.0, what=f"haproxy on port {port}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


# --- chat messages between nodes ------------------------------------------------------

_chat_counter = 0


def send_chat(node, sender: str, password: str, recipient: str) -> tuple[str, str]:
    """Submits a chat message (Chat-Version) with a unique marker through the
    node's implicit-TLS submission port; returns (queue id, marker)."""
    global _chat_counter
    _chat_counter += 1
    marker = f"chat-{time.monotonic_ns()}-{_chat_counter}"
    data = (f"From: <{sender}>\r\nTo: <{recipient}>\r\nSubject: chat\r\n"
            f"Message-ID: <chat${marker}@test>\r\nChat-Version: 1.0\r\n"
            f"Date: Mon, 07 Dec 2026 12:00:00 +0000\r\n\r\nhello {marker}\r\n").encode()
    reply = submit(node, sender, password, [recipient], data, implicit_tls=True)
    return queue_id(reply), marker


def copies_in(nodes_to_search: list, address: str, marker: str) -> list[bytes]:
    """The stored messages (new/ and cur/) carrying marker, over several nodes."""
    found = []
    for node in nodes_to_search:
        folder = node.maildir(address)
        for path in [p for sub in ("new", "cur") for p in (folder / sub).glob("*")]:
            try:
                content = path.read_bytes()
            except FileNotFoundError:
                continue
            if marker.encode() in content:
                found.append(content)
    return found


def delivered_once(node, qid: str, recipient: str) -> str:
    """Waits until qid left the node's queue delivered to recipient at the
    first attempt; returns the reply."""
    result = outcomes(wait_removed(node, qid, 20.0), qid)
    assert [(r, o, a) for r, o, a, _ in result] == [(recipient, "delivered", 1)], result
    return result[0][3]


def started_group(make, prefix: str):
    """Yields make(base) for a module's tests, base a fresh temporary folder;
    then closes the group (close() returns the problems its daemons
    reported), removes the folder and fails the module on any problem."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        group = make(base)
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
    yield group
    problems = group.close()
    shutil.rmtree(base, ignore_errors=True)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
