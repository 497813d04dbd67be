"""stokend as a system service (daemon/service_notify.h, daemon/privileges.h).

- Readiness for systemd's Type=notify: READY=1 on $NOTIFY_SOCKET only once
  every listener accepts connections, RELOADING=1 (with MONOTONIC_USEC=) and
  READY=1 around SIGHUP, STOPPING=1 at SIGTERM; a path socket and an
  abstract one; a socket nobody listens on changes nothing.
- Privileges, as root (skipped otherwise): started as root with `user:
  nobody`, the daemon runs with nobody's ids and no capability, yet still
  accepts and delivers; what it created belongs to nobody, and stokenctl run
  as root becomes nobody too. Root without `user:` is refused unless
  `allow_root: true`; a non-root start with another `user:` is refused.
- Maildir ownership: `maildir: {owner, group, file_mode, directory_mode}`
  on the folders and files the store and the COI/Contacts mirror create.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from peers import send_mx, wait_for_log
from stokend_daemon import RUNNING, STOKEND, Stokend, require_binaries

MESSAGE = b"From: someone@example.org\r\nTo: alice@example.test\r\nSubject: service\r\n\r\nbody\r\n"


# --- readiness notification ---------------------------------------------------

class NotifySocket:
    """A unix datagram socket standing in for systemd's notify socket."""

    def __init__(self, folder: Path, abstract: bool):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"stokend-test-{os.getpid()}-{time.monotonic_ns()}"
            self.sock.bind("\0" + name)
            self.variable = "@" + name
        else:
            path = folder / "notify.sock"
            self.sock.bind(str(path))
            self.variable = str(path)

    def receive(self, timeout: float = 10.0) -> str:
        self.sock.settimeout(timeout)
        return self.sock.recv(4096).decode()

    def nothing_pending(self) -> bool:
        self.sock.settimeout(0.3)
        try:
            self.sock.recv(4096)
            return False
        except socket.timeout:
            return True

    def close(self):
        self.sock.close()


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def start_without_waiting(daemon: Stokend, env: dict[str, str]) -> None:
    """Starts the daemon like the harness does, but returns at once instead
    of polling its ports, so the test sees when it says it is ready."""
    require_binaries()
    for address, password in daemon.users.items():
        daemon.add_user(address, password)
    with open(daemon.log_path, "ab") as err, open(daemon.out_path, "ab") as out:
        daemon.proc = subprocess.Popen(
            [str(STOKEND), "--config", str(daemon.config_path)], cwd=daemon.dir,
            stdin=subprocess.DEVNULL, stdout=out, stderr=err, env={**os.environ, **env})
    RUNNING.append(daemon)


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_notify_ready_reloading_stopping(tmp_path, abstract):
    notify = NotifySocket(tmp_path, abstract)
    daemon = Stokend(tmp_path / "d")
    try:
        start_without_waiting(daemon, {"NOTIFY_SOCKET": notify.variable})
        assert notify.receive() == "READY=1", daemon.log_tail()
        # Ready means ready: every listener accepts at the moment it is said.
        for port in daemon.ports:
            assert accepts(port), f"READY=1 came before port {port} accepted:\n{daemon.log_tail()}"
        assert "stokend ready" in daemon.log()

        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        os.kill(daemon.proc.pid, signal.SIGHUP)
        reloading = notify.receive()
        after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        fields = dict(line.split("=", 1) for line in reloading.split("\n"))
        assert fields.keys() == {"RELOADING", "MONOTONIC_USEC"}, reloading
        assert fields["RELOADING"] == "1"
        assert before <= int(fields["MONOTONIC_USEC"]) <= after, (before, reloading, after)
        assert notify.receive() == "READY=1"
        wait_for_log(daemon, r"SIGHUP: configuration reloaded from ")
        assert daemon.running()

        daemon.proc.send_signal(signal.SIGTERM)
        assert notify.receive() == "STOPPING=1"
        assert daemon.proc.wait(10) == 0, daemon.log_tail()
        assert notify.nothing_pending(), "a notification after STOPPING=1"
    finally:
        problems = daemon.stop()
        notify.close()
    assert not problems, problems


def test_notify_socket_nobody_reads_changes_nothing(stokend_factory, tmp_path, monkeypatch):
    # A socket file that nobody listens on: every send fails, the daemon runs.
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(str(tmp_path / "gone.sock"))
    dead.close()
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    mta = stokend_factory()
    assert send_mx(mta, "someone@example.org", ["alice@example.test"], MESSAGE).code == 250
    assert len(mta.messages("alice@example.test")) == 1
    os.kill(mta.proc.pid, signal.SIGHUP)
    wait_for_log(mta, r"SIGHUP: configuration reloaded from ")
    assert mta.terminate() == 0, mta.log_tail()


# --- privileges ---------------------------------------------------------------

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: tests a start as root")


def account(user: str, group: str) -> tuple[int, int]:
    try:
        return pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid
    except KeyError:
        pytest.skip(f"no {user}:{group} account on this system")


def status_ids(pid: int) -> dict[str, list[int]]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Uid", "Gid", "Groups"):
            fields[key] = [int(v) for v in value.split()]
        if key == "CapEff":
            fields[key] = [int(value.strip(), 16)]
    return fields


@pytest.fixture
def open_folder():
    """A folder whose every parent the service user can traverse, unlike
    pytest's per-test folders (0700, root's): SQLite resolves the token
    store's path component by component, as the user."""
    folder = Path(tempfile.mkdtemp(prefix="stokend-service-"))
    folder.chmod(0o711)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def unprivileged_layout(base: Path, uid: int, gid: int) -> tuple[Path, dict]:
    """A daemon folder as a package lays it out: the state folders exist and
    belong to the service user; the rest the daemon creates."""
    directory = Path(tempfile.mkdtemp(prefix="stokend-", dir=base))
    directory.chmod(0o711)  # the user resolves its relative paths from here
    for name in ("lib", "spool"):
        (directory / name).mkdir()
        os.chown(directory / name, uid, gid)
    return directory, {
        "users_file": "lib/users",
        "spool_directory": "spool",
        "maildir_root": "mail",
        "control_socket": "run/stokend.sock",
        "tls": {"generated_directory": "lib/tls"},
    }


@as_root
def test_root_start_drops_to_user_and_still_delivers(stokend_factory, open_folder):
    uid, gid = account("nobody", "nogroup")
    directory, paths = unprivileged_layout(open_folder, uid, gid)
    mta = stokend_factory(directory=directory, user="nobody", group="nogroup",
                          allow_root=False, **paths)
    ids = status_ids(mta.proc.pid)
    assert ids["Uid"] == [uid] * 4, ids
    assert ids["Gid"] == [gid] * 4, ids
    assert 0 not in ids["Groups"] and set(ids["Groups"]) <= {gid}, ids
    assert ids["CapEff"] == [0], ids
    assert re.search(rf"running as user nobody \(uid {uid}, gid {gid}\)$", mta.log(), re.M)

    assert send_mx(mta, "someone@example.org", ["alice@example.test"], MESSAGE).code == 250
    delivered = mta.messages("alice@example.test")
    assert len(delivered) == 1 and b"Subject: service" in delivered[0]
    # Everything the start and the delivery created is the user's, so a
    # restart (or the user's stokenctl) can read it.
    created = [p for p in (directory / "spool").rglob("*")] + \
              [p for p in (directory / "mail").rglob("*")] + [directory / "mail", directory / "run"]
    assert created, "nothing was created"
    wrong = [str(p) for p in created if p.lstat().st_uid != uid]
    assert not wrong, f"not owned by nobody: {wrong}"
    assert (directory / "run" / "stokend.sock").lstat().st_uid == uid
    # stokenctl as root becomes nobody and is let in by the control socket.
    listed = mta.ctl("queue", "list")
    assert listed.returncode == 0, listed.stderr
    assert (directory / "lib" / "users").stat().st_uid == uid


def refused_start(daemon: Stokend, **popen) -> subprocess.CompletedProcess:
    require_binaries()
    return subprocess.run([str(STOKEND), "--config", str(daemon.config_path)], cwd=daemon.dir,
                          capture_output=True, text=True, timeout=20, **popen)


@as_root
def test_root_without_user_is_refused_unless_allowed(tmp_path):
    daemon = Stokend(tmp_path / "d", {"allow_root": False}, users={})
    result = refused_start(daemon)
    assert result.returncode == 1, result.stderr
    assert "refusing to run as root: set `user:`" in result.stderr, result.stderr
    assert not any(accepts(port) for port in daemon.ports)
    assert not (daemon.dir / "var" / "spool").exists(), "a refused start created the spool"


@as_root
def test_non_root_start_with_another_user_is_refused(open_folder):
    uid, gid = account("nobody", "nogroup")
    account("daemon", "daemon")
    daemon = Stokend(open_folder / "d", {"user": "daemon"}, users={})
    (open_folder / "d").chmod(0o755)
    daemon.config_path.chmod(0o644)

    def become_nobody():
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)

    result = refused_start(daemon, preexec_fn=become_nobody)
    assert result.returncode == 1, result.stderr
    assert "user daemon: stokend was started as nobody and only root can change user" \
        in result.stderr, result.stderr


@as_root
def test_maildir_owner_group_and_modes(stokend_factory):
    uid, gid = account("nobody", "nogroup")
    mta = stokend_factory(
        coi_filters={"alice@example.test": "active"},
        maildir={"owner": "nobody", "group": "nogroup", "file_mode": "0640",
                 "directory_mode": "2750"})
    assert send_mx(mta, "someone@example.org", ["alice@example.test", "bob@example.test"],
                   MESSAGE).code == 250
    chat = MESSAGE.replace(b"\r\n\r\n", b"\r\nChat-Version: 1.0\r\n\r\n", 1)
    assert send_mx(mta, "someone@example.org", ["alice@example.test"], chat).code == 250
    assert mta.messages("alice@example.test") and mta.messages("bob@example.test")
    assert mta.messages("alice@example.test", chats=True)
    # A permanent token mirrored into alice's COI/Contacts folder, by stokenctl.
    mta.ctl("token", "new", "perm", "bob@remote.example", "alice@example.test")
    contacts = mta.maildir("alice@example.test") / ".COI.Contacts" / "cur"
    assert contacts.is_dir() and any(contacts.iterdir()), "no contact message written"
    root = mta.maildir_root
    folders = [p for p in root.rglob("*") if p.is_dir()]
    # The contacts folder's lock file only serialises writers; nobody reads it.
    files = [p for p in root.rglob("*") if p.is_file() and p.name != "stokend-contacts.lock"]
    assert len(folders) >= 15 and len(files) >= 6, (folders, files)  # incl. maildirfolder
    for folder in folders:
        st = folder.lstat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (uid, gid, 0o2750), folder
    for file in files:
        st = file.lstat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (uid, gid, 0o640), file


@as_root
def test_maildir_owner_that_the_user_cannot_give_to_is_refused(open_folder):
    uid, gid = account("nobody", "nogroup")
    account("daemon", "daemon")
    directory, paths = unprivileged_layout(open_folder, uid, gid)
    daemon = Stokend(directory, {"user": "nobody", "allow_root": False,
                                 "maildir": {"owner": "daemon"}, **paths}, users={})
    result = refused_start(daemon)
    assert result.returncode == 1, result.stderr
    assert "maildir.owner daemon: only root can give files to another user" in result.stderr


def test_service_settings_are_checked(tmp_path):
    daemon = Stokend(tmp_path / "d", {
        "user": "no-such-user-here",
        "maildir": {"group": "no-such-group-here", "file_mode": "0999",
                    "directory_mode": "0600"}}, users={})
    require_binaries()
    result = subprocess.run([str(STOKEND), "--check-config", str(daemon.config_path)],
                            capture_output=True, text=True, timeout=20)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    for expected in ("user: no user named 'no-such-user-here' on this system",
                     "maildir.group: no group named 'no-such-group-here' on this system",
                     "maildir.file_mode: expected an octal mode such as 0640, got '0999'",
                     "maildir.directory_mode: the owner must be able to enter (0700)"):
        assert expected in output, output
