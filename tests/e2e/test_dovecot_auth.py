"""Logins and local users through a provider's Dovecot (auth: backend dovecot).

A real Dovecot, started privately by this module on loopback, holds the users
in a passwd-file (passdb and userdb) and listens on unix sockets in its own
folder: auth-client (the SASL protocol Postfix's smtpd_sasl_type = dovecot
speaks), auth-userdb (the userdb lookups `doveadm user` makes) and lmtp (where
stokend delivers the domain's mail). stokend's submission AUTH (PLAIN, LOGIN
and CRAM-MD5, which Dovecot lists and stokend only relays) goes to Dovecot and
its MX RCPT asks Dovecot's userdb. With Dovecot stopped, AUTH gets 454 4.7.0
and RCPT 451 4.3.0; once it is back, both work again without a restart. A
scripted server that answers garbage shows the same temporary failures.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from peers import DOVECOT, NOBODY_GID, NOBODY_UID, PEER_START_TIMEOUT, Peer, require, wait_until
from smtpwire import SMTPWire

ALICE = "alice@example.test"
BOB = "bob@example.test"
PASSWORDS = {ALICE: "alice-secret", BOB: "bob-secret"}
SWAKS = shutil.which("swaks")


class DovecotAuth(Peer):
    """A standalone Dovecot whose passdb and userdb are one passwd-file of
    full addresses, with its auth-client, auth-userdb and lmtp listeners as
    unix sockets in its folder."""

    name = "dovecot-auth"

    def __init__(self) -> None:
        require(DOVECOT)
        if not any(Path(d, "lmtp").exists() for d in ("/usr/lib/dovecot", "/usr/libexec/dovecot")):
            pytest.skip("Dovecot's LMTP server (dovecot-lmtpd) is not installed")
        super().__init__()
        os.chmod(self.folder, 0o755)
        self.base_dir = self.folder / "run"
        state_dir = self.folder / "state"
        homes = self.folder / "home"
        for path in (self.base_dir, state_dir, homes):
            path.mkdir()
        os.chmod(homes, 0o755)
        self.homes: dict[str, Path] = {}
        lines = []
        for address, password in PASSWORDS.items():
            home = homes / address.split("@")[0]
            home.mkdir()
            os.chown(home, NOBODY_UID, NOBODY_GID)
            self.homes[address] = home
            lines.append(f"{address}:{{PLAIN}}{password}:{NOBODY_UID}:{NOBODY_GID}::{home}::")
        passwd = self.folder / "passwd"
        passwd.write_text("\n".join(lines) + "\n")
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
auth_mechanisms = plain login cram-md5
# No 2 s pause before each FAIL: the tests' wrong passwords answer at once.
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = {passwd}
}}
userdb {{
  driver = passwd-file
  args = {passwd}
}}
service auth {{
  unix_listener auth-client {{
    mode = 0666
  }}
  unix_listener auth-userdb {{
    mode = 0666
  }}
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
}}
""")
        self.start()

    def start(self) -> None:
        assert not self.running()
        self._spawn([str(DOVECOT), "-F", "-c", str(self.config_path)])
        deadline = time.monotonic() + PEER_START_TIMEOUT
        while not all((self.base_dir / name).exists() for name in ("auth-client", "auth-userdb", "lmtp")):
            self._check_alive()
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"Dovecot did not start:\n{self.output()}\n{self.log()}")
            time.sleep(0.05)

    def _children(self) -> list[int]:
        if self.proc is None:
            return []
        children = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path("/proc", entry, "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                children.append(int(entry))
        return children

    def stop(self) -> None:
        """Stops the master and, by their pids, its children: Dovecot's auth
        process outlives its master while clients (stokend) are connected."""
        children = self._children()
        super().stop()
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_until(lambda: not any(Path("/proc", str(pid)).exists() for pid in children),
                   PEER_START_TIMEOUT, what="Dovecot's processes to end")
        # Dovecot leaves its sockets behind; a restart makes new ones.
        for name in ("auth-client", "auth-userdb", "lmtp"):
            (self.base_dir / name).unlink(missing_ok=True)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def new_mail(self, address: str) -> list[Path]:
        new = self.homes[address] / "Maildir" / "new"
        return sorted(p for p in new.iterdir() if p.is_file()) if new.is_dir() else []

    def auth_config(self, **extra) -> dict:
        return {"backend": "dovecot", "socket": f"unix:{self.base_dir / 'auth-client'}",
                "userdb_socket": f"unix:{self.base_dir / 'auth-userdb'}", **extra}

    @property
    def lmtp_route(self) -> str:
        return f"lmtp:unix:{self.base_dir / 'lmtp'}"


@pytest.fixture(scope="module")
def dovecot():
    peer = DovecotAuth()
    yield peer
    peer.stop()
    peer.remove_folder()


def daemon_for(factory, dovecot: DovecotAuth, **auth):
    return factory(users={}, auth=dovecot.auth_config(**auth),
                   routes={"example.test": dovecot.lmtp_route},
                   timeouts={"auth_failure_base_delay": "100ms", "auth_failure_max_delay": "200ms"})


@pytest.fixture(scope="module")
def mta(module_stokend_factory, dovecot):
    # No cache: every RCPT asks Dovecot (the cache has its unit tests), so
    # that the outage test sees Dovecot's absence at once.
    return daemon_for(module_stokend_factory, dovecot, cache_ttl="0s")


def tls_session(port: int) -> SMTPWire:
    conn = SMTPWire(port)
    conn.ehlo()
    conn.starttls()
    conn.ehlo()
    return conn


def auth_mechanisms(port: int) -> list[str]:
    with SMTPWire(port) as conn:
        conn.ehlo()
        conn.starttls()
        return conn.ehlo().keywords().get("AUTH", "").upper().split()


def test_ehlo_lists_dovecots_mechanisms(mta):
    # Before Dovecot's handshake stokend offers PLAIN LOGIN; after it, what
    # Dovecot lists, CRAM-MD5 included.
    wait_until(lambda: "CRAM-MD5" in auth_mechanisms(mta.submission_port), 10,
               what="CRAM-MD5 in EHLO")
    assert {"PLAIN", "LOGIN", "CRAM-MD5"} <= set(auth_mechanisms(mta.submission_port))


def test_auth_plain_good_and_bad_password(mta):
    with tls_session(mta.submission_port) as conn:
        reply = conn.auth_plain(ALICE, "wrong")
        assert (reply.code, reply.enhanced) == (535, "5.7.8"), str(reply)
        reply = conn.auth_plain(ALICE, PASSWORDS[ALICE])
        assert (reply.code, reply.enhanced) == (235, "2.7.0"), str(reply)
        # The login is Dovecot's: alice may send as herself, not as bob.
        assert conn.command(f"MAIL FROM:<{BOB}>").code == 553
        assert conn.command(f"MAIL FROM:<{ALICE}>").code == 250
    log = mta.log()
    assert f"authenticated as {ALICE}" in log
    assert "alice-secret" not in log


def test_auth_login_good_and_bad_password(mta):
    with tls_session(mta.submission_port) as conn:
        reply = conn.auth_login(BOB, "not-bobs")
        assert (reply.code, reply.enhanced) == (535, "5.7.8"), str(reply)
        reply = conn.auth_login(BOB, PASSWORDS[BOB])
        assert (reply.code, reply.enhanced) == (235, "2.7.0"), str(reply)
    with tls_session(mta.submission_port) as conn:
        reply = conn.auth_login("nobody@example.test", "whatever")
        assert (reply.code, reply.enhanced) == (535, "5.7.8"), str(reply)
    assert "bob-secret" not in mta.log()


def test_auth_cram_md5_is_relayed(mta):
    """A mechanism stokend does not implement itself: Dovecot's challenge
    goes out as the 334 line, the client's answer back to Dovecot."""
    wait_until(lambda: "CRAM-MD5" in auth_mechanisms(mta.submission_port), 10,
               what="CRAM-MD5 in EHLO")
    with tls_session(mta.submission_port) as conn:
        reply = conn.command("AUTH CRAM-MD5")
        assert reply.code == 334, str(reply)
        challenge = base64.b64decode(reply.text)
        digest = hmac.new(PASSWORDS[ALICE].encode(), challenge, hashlib.md5).hexdigest()
        reply = conn.command(base64.b64encode(f"{ALICE} {digest}".encode()).decode())
        assert (reply.code, reply.enhanced) == (235, "2.7.0"), str(reply)


def test_auth_cancelled_mid_exchange(mta):
    with tls_session(mta.submission_port) as conn:
        assert conn.command("AUTH LOGIN").code == 334
        reply = conn.command("*")
        assert (reply.code, reply.enhanced) == (501, "5.0.0"), str(reply)
        assert conn.auth_plain(ALICE, PASSWORDS[ALICE]).code == 235


def test_mx_rcpt_asks_dovecots_userdb_in_order(mta):
    """Pipelined RCPTs, answered in order although each waits for Dovecot."""
    unknown = f"nobody-{uuid.uuid4().hex[:8]}@example.test"
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo()
        conn.send(f"MAIL FROM:<sender@example.org>\r\nRCPT TO:<{ALICE}>\r\n"
                  f"RCPT TO:<{unknown}>\r\nRCPT TO:<{BOB.upper()}>\r\nRSET\r\n")
        replies = conn.read_replies(5)
    assert [r.code for r in replies] == [250, 250, 550, 250, 250], [str(r) for r in replies]
    assert replies[2].enhanced == "5.1.1" and "user unknown" in replies[2].text


@pytest.mark.once  # swaks' and Dovecot LMTP's verdict; the AUTH path is covered above
@pytest.mark.skipif(SWAKS is None, reason="swaks is not installed")
def test_swaks_submits_as_dovecot_user_into_dovecots_mailbox(mta, dovecot):
    marker = uuid.uuid4().hex
    result = subprocess.run(
        [SWAKS, "--server", f"127.0.0.1:{mta.submission_port}", "--tls", "--auth", "LOGIN",
         "--auth-user", ALICE, "--auth-password", PASSWORDS[ALICE], "--from", ALICE,
         "--to", BOB, "--timeout", "10", "--header", f"Subject: dovecot {marker}"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    wait_until(lambda: any(marker.encode() in p.read_bytes() for p in dovecot.new_mail(BOB)), 10,
               what="the message in bob's Dovecot Maildir")


class ScriptedAuthServer:
    """A unix socket server speaking just enough of Dovecot's handshake, then
    answering every request with a line that does not parse."""

    def __init__(self, path: Path, replies: dict[bytes, bytes]) -> None:
        self.path = path
        self.replies = replies  # command (AUTH, USER) → the answer to it
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        os.chmod(path, 0o666)
        self.server.listen(8)
        self.server.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping:
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        with conn:
            conn.sendall(b"VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nSPID\t1\nCUID\t1\nDONE\n"
                         b"VERSION\t1\t0\nSPID\t1\n")
            conn.settimeout(10)
            buffer = b""
            try:
                while not self.stopping:
                    data = conn.recv(4096)
                    if not data:
                        return
                    buffer += data
                    while b"\n" in buffer:
                        line, buffer = buffer.split(b"\n", 1)
                        reply = self.replies.get(line.split(b"\t", 1)[0])
                        if reply:
                            conn.sendall(reply)
            except OSError:
                return

    def close(self) -> None:
        self.stopping = True
        self.server.close()
        self.thread.join(2)


def test_reply_that_does_not_parse_is_a_temporary_failure(stokend_factory, tmp_path):
    auth_path = tmp_path / "auth"
    server = ScriptedAuthServer(auth_path, {b"AUTH": b"OK\tnot-an-id\tuser=mallory@example.test\n",
                                            b"USER": b"USER\t1\tuser name with spaces\n"})
    try:
        endpoint = f"unix:{auth_path}"
        daemon = stokend_factory(users={}, auth={"backend": "dovecot", "socket": endpoint,
                                                 "userdb_socket": endpoint},
                                 routes={"example.test": "lmtp:unix:/nonexistent/lmtp"})
        with tls_session(daemon.submission_port) as conn:
            reply = conn.auth_plain(ALICE, "anything")
            assert (reply.code, reply.enhanced) == (454, "4.7.0"), str(reply)
        with SMTPWire(daemon.mx_port) as conn:
            conn.ehlo()
            assert conn.command("MAIL FROM:<sender@example.org>").code == 250
            reply = conn.command(f"RCPT TO:<{ALICE}>")
            assert (reply.code, reply.enhanced) == (451, "4.3.0"), str(reply)
        log = daemon.log()
        assert "dovecot auth" in log and "does not parse" in log, daemon.log_tail()
        assert "dovecot userdb" in log and "does not parse" in log, daemon.log_tail()
        assert "anything" not in log
        assert daemon.running()
    finally:
        server.close()


def test_dovecot_stopped_then_back(mta, dovecot):
    """Last in the module: it stops the shared Dovecot, then starts it again."""
    daemon = mta

    def auth_reply():
        with tls_session(daemon.submission_port) as conn:
            return conn.auth_plain(ALICE, PASSWORDS[ALICE])

    def rcpt_reply():
        with SMTPWire(daemon.mx_port) as conn:
            conn.ehlo()
            assert conn.command("MAIL FROM:<sender@example.org>").code == 250
            return conn.command(f"RCPT TO:<{ALICE}>")

    wait_until(lambda: auth_reply().code == 235, 10, what="AUTH through Dovecot")
    assert rcpt_reply().code == 250
    dovecot.stop()
    try:
        reply = auth_reply()
        assert (reply.code, reply.enhanced) == (454, "4.7.0"), str(reply)
        assert reply.text.endswith("Temporary authentication failure")
        reply = rcpt_reply()
        assert (reply.code, reply.enhanced) == (451, "4.3.0"), str(reply)
        assert daemon.running()
    finally:
        dovecot.start()
    wait_until(lambda: auth_reply().code == 235, 15, what="AUTH once Dovecot is back")
    wait_until(lambda: rcpt_reply().code == 250, 15, what="RCPT once Dovecot is back")
    log = daemon.log()
    assert "the authentication service did not answer" in log and "connection lost" in log
