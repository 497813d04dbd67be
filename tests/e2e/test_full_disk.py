"""A full disk is a temporary failure, never a loss and never an outage.

Each test mounts a small tmpfs of its own where the daemon keeps its spool
(or, for the Maildir test, its mail) and fills it with a filler file; the
test is skipped when mounting is impossible (not root), and the tmpfs is
always unmounted at teardown. Proven here:

- MAIL is refused with 452 4.3.1 while the spool's file system has less than
  queue.min_free_space free, or less than that plus a declared SIZE=, and is
  accepted again by itself once space returns;
- a message whose spool write fails for space at the end of DATA gets 452
  4.3.1 (and the next one, once space returns, 250), with no restart;
- a daemon killed while its spool's file system is full starts again,
  recovers every queued message and delivers them all, exactly once; the
  sealed segment they leave empty is deleted, which frees enough space for
  new mail to be accepted again without anyone removing the filler;
- the built-in Maildir defers a delivery that fails for space, leaves no
  partial file anywhere in the Maildir, and delivers it on a retry once space
  returns.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from peers import (PeerSet, free_port, queue_daemon, queue_id, send_mx, submit, wait_for_log,
                   wait_removed, wait_until)
from smtpwire import SMTPWire
from stokend_daemon import RUNNING, USERS

ALICE = "alice@example.test"
ALICE_PW = USERS[ALICE]
FAST_RETRY = {"first_retry": "1s", "max_retry_interval": "2s"}
# The spool's free-space measurement is believed for 1 s.
SPACE_NOTICED = 5.0


class Tmpfs:
    """A tmpfs of `kilobytes` mounted at `path` (created), with a filler file."""

    def __init__(self, path: Path, kilobytes: int):
        self.path = path
        self.path.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={kilobytes}k,mode=0700", "tmpfs", str(path)],
            capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs (needs root): {result.stderr.strip()}")
        self.mounted = True

    @property
    def filler(self) -> Path:
        return self.path / "filler"

    def free(self) -> int:
        status = os.statvfs(self.path)
        return status.f_bavail * status.f_frsize

    def fill(self, leave: int = 0) -> None:
        """Writes the filler until at most `leave` bytes are free (0: until
        the file system refuses)."""
        with open(self.filler, "ab", buffering=0) as filler:
            for chunk in (64 * 1024, 4096):
                try:
                    while self.free() - chunk >= leave or leave == 0:
                        filler.write(b"f" * chunk)
                except OSError as error:
                    assert error.errno == errno.ENOSPC, error
        assert self.free() < leave + 4096, self.free()

    def make_room(self) -> None:
        self.filler.unlink(missing_ok=True)

    def resize(self, kilobytes: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={kilobytes}k", str(self.path)],
                       check=True, capture_output=True, timeout=30)

    def unmount(self) -> None:
        if self.mounted:
            # Lazy: a daemon still running keeps its files until it stops.
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True, timeout=30)
            self.mounted = False


def daemon_directory(tmp_path: Path) -> Path:
    return Path(tempfile.mkdtemp(prefix="stokend-", dir=tmp_path))


@pytest.fixture
def small_spool(tmp_path):
    """A daemon directory whose var/spool is a 4 MB tmpfs."""
    directory = daemon_directory(tmp_path)
    disk = Tmpfs(directory / "var" / "spool", 4096)
    try:
        yield directory, disk
    finally:
        # Daemons on it stop first (their factory would stop them later).
        for daemon in list(RUNNING):
            if daemon.dir == directory:
                daemon.terminate()
        disk.unmount()


@pytest.fixture
def peers():
    with PeerSet() as peer_set:
        yield peer_set


def message(marker: str, size: int = 0) -> bytes:
    head = (f"From: Alice <{ALICE}>\r\n"
            f"To: <friend@later.test>\r\n"
            f"Subject: full disk {marker}\r\n"
            f"Message-ID: <{marker}@example.test>\r\n"
            f"\r\n"
            f"Marker {marker}.\r\n")
    line = "x" * 76 + "\r\n"
    body = line * max(0, (size - len(head)) // len(line))
    return (head + body).encode()


def mail_reply(daemon, size: int | None = None):
    """The reply to MAIL on the MX port (then RSET and QUIT)."""
    with SMTPWire(daemon.mx_port) as conn:
        conn.ehlo("client.remote.test")
        parameter = f" SIZE={size}" if size is not None else ""
        reply = conn.command(f"MAIL FROM:<someone@remote.test>{parameter}")
        conn.command("QUIT")
        return reply


def wait_for_mail_reply(daemon, code: int, size: int | None = None):
    replies = []

    def answered():
        replies.append(mail_reply(daemon, size))
        return replies[-1].code == code

    try:
        wait_until(answered, SPACE_NOTICED, interval=0.2, what=f"MAIL answered {code}")
    except AssertionError as error:
        raise AssertionError(f"{error}; last reply {replies[-1]}\n{daemon.log_tail(20)}") from None
    return replies[-1]


def test_mail_refused_under_the_reserve_until_space_returns(small_spool, stokend_factory):
    directory, disk = small_spool
    mta = stokend_factory(directory=directory, queue={"min_free_space": "1M"},
                          limits={"max_message_size": "200K"})
    assert mail_reply(mta).code == 250

    disk.fill(leave=512 * 1024)
    reply = wait_for_mail_reply(mta, 452)
    assert str(reply) == "452 4.3.1 Insufficient system storage"
    assert re.search(r"MAIL refused: \d+ bytes free for the spool, reserve 1048576, size 0$",
                     mta.log(), re.M), mta.log_tail()
    assert re.search(r"under the reserve of 1048576: new mail is refused", mta.log()), mta.log_tail()

    # A little over the reserve: accepted, unless the declared size does not fit above it.
    disk.make_room()
    disk.fill(leave=1024 * 1024 + 100 * 1024)
    wait_for_mail_reply(mta, 250)
    assert str(mail_reply(mta, size=150 * 1024)) == "452 4.3.1 Insufficient system storage"
    assert mail_reply(mta, size=50 * 1024).code == 250

    # Space returns: accepted again, and the message is stored and delivered.
    disk.make_room()
    wait_for_mail_reply(mta, 250, size=150 * 1024)
    assert re.search(r"accepting mail again$", mta.log(), re.M), mta.log_tail()
    body = message("after-space-returned", 100 * 1024)
    queue_id(send_mx(mta, "someone@remote.test", [ALICE], body))
    assert [m for m in mta.messages(ALICE) if b"Marker after-space-returned." in m]


def test_spool_write_failing_for_space_at_end_of_data_is_452(small_spool, stokend_factory):
    directory, disk = small_spool
    # No reserve: MAIL is accepted on a full disk, and the write itself fails.
    mta = stokend_factory(directory=directory, queue={"min_free_space": "0"},
                          routes={"later.test": f"smtp:[127.0.0.1]:{free_port()}"})
    disk.fill()
    # Larger than the headroom the spool keeps allocated for state records.
    large = message("too-large-for-the-disk", 600 * 1024)
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo("client.remote.test")
        reply = conn.transaction("someone@remote.test", [ALICE], large)
        assert str(reply) == "452 4.3.1 Insufficient system storage", reply
        # The session goes on; the next transaction is judged afresh.
        assert conn.command("MAIL FROM:<someone@remote.test>").code == 250
        conn.command("QUIT")
    assert re.search(r"message \S+: cannot be queued: No space left on device$", mta.log(),
                     re.M), mta.log_tail()

    disk.make_room()
    qid = queue_id(send_mx(mta, "someone@remote.test", [ALICE], large))
    mail = mta.messages(ALICE)
    assert len(mail) == 1 and b"Marker too-large-for-the-disk." in mail[0], qid
    assert mta.running()


def test_start_on_a_full_spool_recovers_delivers_and_frees_space(small_spool, stokend_factory,
                                                                  peers):
    directory, disk = small_spool
    port = free_port()
    overrides = {"routes": {"later.test": f"smtp:[127.0.0.1]:{port}"}, "queue": {
        **FAST_RETRY, "segment_size": "1M", "min_free_space": "512K"},
        "limits": {"max_message_size": "300K"}}
    first = queue_daemon(stokend_factory, directory=directory, **overrides)
    # About 1.4 MB: more than one 1 MB segment.
    markers = [f"queued-{i}" for i in range(14)]
    ids = [queue_id(submit(first, ALICE, ALICE_PW, ["friend@later.test"], message(m, 100 * 1024)))
           for m in markers]
    for qid in ids:
        wait_for_log(first, rf"queue: {qid} to=<friend@later\.test> deferred after 1 attempts",
                     timeout=10)
    segments_before = sorted(p.name for p in (disk.path / "segments").iterdir())
    assert len(segments_before) >= 2, segments_before

    disk.fill()
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(5)
    RUNNING.remove(first)
    first.proc = None

    second = queue_daemon(stokend_factory, users={}, directory=directory, **overrides)
    wait_for_log(second, rf"spool \S+: {len(ids)} messages recovered", timeout=5)
    assert re.search(r"spool: no space for a new segment \(No space left on device\): appending "
                     r"to segment \S+\.seg$", second.log(), re.M), second.log_tail()
    assert str(mail_reply(second)) == "452 4.3.1 Insufficient system storage"

    sink = peers.sink(port)
    for qid in ids:
        wait_removed(second, qid, timeout=20)
    time.sleep(0.3)
    for marker in markers:
        copies = [m for m in sink.messages() if f"Marker {marker}.".encode() in m.data]
        assert len(copies) == 1, (marker, len(copies))

    # The delivered messages' sealed segment is gone: space came back by
    # itself (the filler is still there), and so does acceptance.
    wait_until(lambda: disk.free() > 512 * 1024, SPACE_NOTICED, what="space freed by delivery")
    assert disk.filler.exists()
    segments_after = sorted(p.name for p in (disk.path / "segments").iterdir())
    assert segments_before[0] not in segments_after, (segments_before, segments_after)
    wait_for_mail_reply(second, 250)
    qid = queue_id(send_mx(second, "someone@remote.test", [ALICE], message("after-recovery")))
    assert [m for m in second.messages(ALICE) if b"Marker after-recovery." in m], qid


def test_maildir_delivery_failing_for_space_is_deferred_and_never_half_written(
        tmp_path, stokend_factory):
    directory = daemon_directory(tmp_path)
    disk = Tmpfs(directory / "var" / "mail", 512)
    try:
        mta = queue_daemon(stokend_factory, directory=directory, queue=FAST_RETRY)
        small = message("small", 1024)
        queue_id(send_mx(mta, "someone@remote.test", [ALICE], small))
        assert len(mta.messages(ALICE)) == 1
        maildir = mta.maildir(ALICE)

        large = message("larger-than-the-mail-disk", 700 * 1024)
        qid = queue_id(send_mx(mta, "someone@remote.test", [ALICE], large))
        wait_for_log(mta, rf"queue: {qid} to=<{re.escape(ALICE)}> deferred after 1 attempts: "
                          rf".*No space left on device", timeout=10)
        # Nothing of it anywhere in the Maildir: not in new/ or cur/, and its
        # tmp/ file was removed.
        assert sorted(p.name for p in (maildir / "tmp").iterdir()) == []
        assert sorted(p.name for p in (maildir / "cur").iterdir()) == []
        assert len(list((maildir / "new").iterdir())) == 1

        disk.resize(4096)
        wait_removed(mta, qid, timeout=15)
        mail = sorted((maildir / "new").iterdir(), key=lambda p: p.stat().st_mtime_ns)
        assert len(mail) == 2
        assert b"Marker larger-than-the-mail-disk." in mail[1].read_bytes()
        assert len(mail[1].read_bytes()) >= len(large)
        assert sorted(p.name for p in (maildir / "tmp").iterdir()) == []
    finally:
        for daemon in list(RUNNING):
            if daemon.dir == directory:
                daemon.terminate()
        disk.unmount()
