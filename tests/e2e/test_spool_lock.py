"""One daemon per spool: a second start on the same spool changes nothing.

A daemon runs with a message deferred in its queue (the next hop is down).
A second stokend started with the same config must exit 1 with one line
naming the running daemon's PID, before it reads or changes the spool: every
segment file keeps its name, size and contents, and no recovery runs. The
running daemon then still accepts mail, and after a restart both messages
are recovered from the spool and delivered once the next hop is up, each
exactly once.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import time

import pytest

from peers import PeerSet, free_port, queue_daemon, queue_id, submit, wait_for_log, wait_removed
from stokend_daemon import STOKEND, USERS

ALICE = "alice@example.test"
ALICE_PW = USERS[ALICE]
FAST_RETRY = {"first_retry": "1s", "max_retry_interval": "2s"}


@pytest.fixture
def peers():
    with PeerSet() as peer_set:
        yield peer_set


def message(marker: str) -> bytes:
    return (f"From: Alice <{ALICE}>\r\n"
            f"To: <friend@later.test>\r\n"
            f"Subject: spool lock {marker}\r\n"
            f"Message-ID: <{marker}@example.test>\r\n"
            f"\r\n"
            f"Marker {marker}.\r\n").encode()


def spool_snapshot(spool) -> dict[str, str]:
    """Every file in the spool's segments/ and quarantine/, with a digest."""
    snapshot = {}
    for folder in ("segments", "quarantine"):
        for path in sorted((spool / folder).iterdir()):
            snapshot[f"{folder}/{path.name}"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return snapshot


def wait_until_stopped(pid: int, timeout: float = 5.0) -> None:
    """Waits until every thread of the process is in the stopped state (T)."""
    deadline = time.monotonic() + timeout
    while True:
        states = []
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/stat") as stat:
                    states.append(stat.read().rsplit(")", 1)[1].split()[0])
            except FileNotFoundError:
                continue  # a thread that just ended
        if states and all(state in ("T", "t") for state in states):
            return
        assert time.monotonic() < deadline, f"process {pid} not stopped: {states}"
        time.sleep(0.01)


def test_second_start_is_refused_and_touches_nothing(stokend_factory, peers):
    port = free_port()
    overrides = {"routes": {"later.test": f"smtp:[127.0.0.1]:{port}"}, "queue": FAST_RETRY}
    first = queue_daemon(stokend_factory, **overrides)
    before = queue_id(submit(first, ALICE, ALICE_PW, ["friend@later.test"], message("before")))
    wait_for_log(first, rf"queue: {before} to=<friend@later\.test> deferred after 1 attempts",
                 timeout=5)
    lock_file = first.spool / "stokend.lock"
    assert lock_file.read_text() == f"{first.proc.pid}\n"
    # The first daemon is paused (it keeps its lock) so that its own retries
    # cannot change the spool while the second start is watched.
    os.kill(first.proc.pid, signal.SIGSTOP)
    try:
        # kill() returns before every thread has stopped: a writer thread in
        # the middle of a retry's state record may still append it.
        wait_until_stopped(first.proc.pid)
        snapshot = spool_snapshot(first.spool)
        assert any(name.startswith("segments/") for name in snapshot), snapshot
        second = subprocess.run([str(STOKEND), "--config", str(first.config_path)], cwd=first.dir,
                                stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                timeout=30)
        after = spool_snapshot(first.spool)
    finally:
        os.kill(first.proc.pid, signal.SIGCONT)
    assert second.returncode == 1, second.stderr
    # A critical line is "fatal:", as Postfix marks what stops a daemon.
    refusals = [line for line in second.stderr.splitlines() if "]: fatal: " in line]
    assert len(refusals) == 1, second.stderr
    assert re.search(rf"spool \S*var/spool is in use by another stokend \(PID {first.proc.pid}, "
                     rf"lock file \S*var/spool/stokend\.lock\)$", refusals[0]), refusals[0]
    # Stopped before the spool: no recovery, nothing else logged about it.
    assert "recovered" not in second.stderr and "spool:" not in second.stderr, second.stderr
    assert after == snapshot
    assert lock_file.read_text() == f"{first.proc.pid}\n"

    # The running daemon is unharmed: it accepts, and what it accepts is kept.
    assert first.running()
    after = queue_id(submit(first, ALICE, ALICE_PW, ["friend@later.test"], message("after")))
    wait_for_log(first, rf"queue: {after} to=<friend@later\.test> deferred after 1 attempts",
                 timeout=5)
    assert first.terminate() == 0, first.log_tail()

    restarted = queue_daemon(stokend_factory, users={}, directory=first.dir, **overrides)
    wait_for_log(restarted, r"spool \S+: 2 messages recovered", timeout=5)
    sink = peers.sink(port)
    for qid in (before, after):
        wait_removed(restarted, qid, timeout=15)
    time.sleep(0.3)
    for marker in ("before", "after"):
        copies = [m for m in sink.messages() if f"Marker {marker}.".encode() in m.data]
        assert len(copies) == 1, (marker, [m.data for m in sink.messages()])


def test_a_lock_left_by_a_killed_daemon_does_not_block_a_restart(stokend_factory):
    first = stokend_factory()
    pid = first.proc.pid
    first.proc.kill()
    first.proc.wait(5)
    first.proc = None
    # The file stays, naming the dead process; the lock went with it.
    assert (first.spool / "stokend.lock").read_text() == f"{pid}\n"
    restarted = stokend_factory(users={}, directory=first.dir)
    assert (restarted.spool / "stokend.lock").read_text() == f"{restarted.proc.pid}\n"
