"""Crash safety of the durable queue: kill -9 under load, restart, compare.

Several clients feed the MX role with 1 KB messages for a local user, each
carrying a unique marker; the daemon is killed with SIGKILL at a random moment
(0.2 to 1.5 s into the load), started again on the same directory, and once
the queue has delivered everything it recovered, every message that got the
"250 2.0.0 Ok: queued as ID" reply must be in the user's Maildir, complete and
byte for byte as sent. Messages whose 250 never arrived may or may not be
delivered. Copies of one message delivered twice (a crash between the
mailbox's commit and the queue recording it) are counted and reported; each
must be a message the restarted daemon recovered from its spool and delivered
again, and a round never has more of them than messages recovered. Files a
kill left in the Maildir's tmp/ (deliveries cut short) are gone once the
restarted daemon has settled: it removes its own at start.

Rounds: CRASH_ROUNDS (default 20, 100 for the long mode); CRASH_SEED makes the
kill moments reproducible.
"""

from __future__ import annotations

import os
import random
import re
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from smtpwire import SMTPWire
from stokend_daemon import RUNNING, Stokend

# Fewer rounds under the sanitizers: recovery's parsing is what they watch,
# and a few torn spools exercise it as well as twenty (the normal build runs
# all twenty for the no-loss guarantee).
ROUNDS = int(os.environ.get("CRASH_ROUNDS",
                            "6" if os.environ.get("STOKEND_SANITIZED") == "1" else "20"))
SEED = int(os.environ.get("CRASH_SEED", str(random.randrange(1 << 30))))
CLIENTS = 4
LOAD_MIN, LOAD_MAX = 0.2, 1.5
RECOVERY_TIMEOUT = 15.0
ALICE = "alice@example.test"

PADDING = ("The quick brown fox jumps over the lazy dog. " * 2).strip()


def message(marker: str) -> bytes:
    lines = ["From: Load <load@remote.test>",
             f"To: Alice <{ALICE}>",
             f"Subject: crash test {marker}",
             f"Message-ID: <{marker}@remote.test>",
             f"X-Crash-Marker: {marker}",
             ""]
    lines += [f"{i:02d} {marker} {PADDING}" for i in range(9)]
    return ("\r\n".join(lines) + "\r\n").encode()


MARKER = re.compile(rb"^X-Crash-Marker: (\S+)\r$", re.M)
QUEUED = re.compile(r"^250 2\.0\.0 Ok: queued as (\S+)$")


@dataclass
class Load:
    """What the clients of one round sent and which messages got a 250."""

    acked: dict[str, str] = field(default_factory=dict)  # marker -> queue id
    unanswered: set[str] = field(default_factory=set)  # end of data sent, no reply
    refused: list[str] = field(default_factory=list)  # non-250 replies
    lock: threading.Lock = field(default_factory=threading.Lock)


def client(port: int, round_no: int, number: int, stop: threading.Event, load: Load) -> None:
    count = 0
    try:
        with SMTPWire(port, timeout=5.0) as conn:
            conn.ehlo("load.remote.test")
            while not stop.is_set():
                marker = f"r{round_no}c{number}n{count}"
                count += 1
                if conn.command("MAIL FROM:<load@remote.test>").code != 250:
                    break
                if conn.command(f"RCPT TO:<{ALICE}>").code != 250:
                    break
                if conn.command("DATA").code != 354:
                    break
                with load.lock:
                    load.unanswered.add(marker)
                conn.send(message(marker) + b".\r\n")
                reply = conn.read_reply()
                match = QUEUED.match(str(reply))
                with load.lock:
                    if match:
                        load.unanswered.discard(marker)
                        load.acked[marker] = match.group(1)
                    else:
                        load.refused.append(f"{marker}: {reply}")
    except (OSError, AssertionError):
        pass  # the daemon died under us


def crash(daemon: Stokend) -> None:
    """kill -9, as a power cut would."""
    daemon.proc.send_signal(signal.SIGKILL)
    daemon.proc.wait(5)
    if daemon in RUNNING:
        RUNNING.remove(daemon)
    daemon.proc = None
    daemon.returncode = None


class Mailbox:
    """alice's Maildir new/ folder, read incrementally: marker -> copies."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.seen: set[str] = set()
        self.copies: dict[str, int] = {}
        self.broken: list[str] = []

    def scan(self) -> None:
        if not self.folder.is_dir():
            return
        for path in self.folder.iterdir():
            if path.name in self.seen:
                continue
            self.seen.add(path.name)
            data = path.read_bytes()
            found = MARKER.search(data)
            if not found:
                self.broken.append(f"{path.name}: no marker")
                continue
            marker = found.group(1).decode()
            if not data.endswith(message(marker)):
                self.broken.append(f"{path.name}: {marker} is not the message as sent")
            self.copies[marker] = self.copies.get(marker, 0) + 1


def wait_recovered(daemon: Stokend, offset: int) -> tuple[int, set[str]]:
    """Waits until the restarted daemon has finished every message it
    recovered from the spool (and any it stored since); returns how many it
    recovered and the ids of those it delivered."""
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    while True:
        log = daemon.log()[offset:]
        found = re.search(r"spool \S+: (\d+) messages recovered", log)
        if found:
            recovered = int(found.group(1))
            stored = set(re.findall(r"queue: (\S+) stored:", log))
            finished = set(re.findall(r"queue: (\S+) removed:", log))
            if stored <= finished and len(finished - stored) >= recovered:
                delivered = set(re.findall(r"queue: (\S+) to=<[^>]*> delivered ", log))
                return recovered, delivered - stored
        if time.monotonic() > deadline:
            raise AssertionError(f"the queue did not settle within {RECOVERY_TIMEOUT}s after a restart:\n"
                                 + "\n".join(log.splitlines()[-40:]))
        time.sleep(0.05)


def test_kill_9_under_load_loses_nothing_acknowledged(stokend_factory):
    rng = random.Random(SEED)
    # The queue logs storing and removing a message at debug level.
    overrides = {"log_level": "debug"}
    daemon = stokend_factory(**overrides)
    directory = daemon.dir
    mailbox = Mailbox(daemon.maildir(ALICE) / "new")
    acked: dict[str, str] = {}
    unanswered: set[str] = set()
    refused: list[str] = []
    recovered_total = 0
    duplicates_by_round: list[int] = []
    tmp_left_by_kills = 0
    started = time.monotonic()

    for round_no in range(ROUNDS):
        load = Load()
        stop = threading.Event()
        threads = [threading.Thread(target=client, args=(daemon.mx_port, round_no, n, stop, load),
                                    daemon=True) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        time.sleep(rng.uniform(LOAD_MIN, LOAD_MAX))
        crash(daemon)
        stop.set()
        for thread in threads:
            thread.join(10)
            assert not thread.is_alive(), "a load client hung after the crash"
        offset = len(daemon.log())
        tmp_folder = daemon.maildir(ALICE) / "tmp"
        tmp_left_by_kills += len(list(tmp_folder.glob("*")))

        daemon = stokend_factory(users={}, directory=directory, **overrides)
        recovered, redelivered = wait_recovered(daemon, offset)
        recovered_total += recovered
        # Nothing delivers now: whatever is in tmp/ would stay for 36 hours.
        assert not list(tmp_folder.glob("*")), (round_no, sorted(p.name for p in tmp_folder.glob("*")))

        before = dict(mailbox.copies)
        mailbox.scan()
        again = {m: c - max(before.get(m, 0), 1) for m, c in mailbox.copies.items()
                 if c > max(before.get(m, 0), 1)}
        duplicates_by_round.append(sum(again.values()))
        # A second copy can only come from delivering a recovered message again.
        assert sum(again.values()) <= recovered, (round_no, again, recovered)
        for marker in again:
            if marker in load.acked:
                assert load.acked[marker] in redelivered, (
                    f"round {round_no}: {marker} (queue id {load.acked[marker]}) delivered twice, "
                    f"but not by the recovery after the restart")
        acked.update(load.acked)
        unanswered |= load.unanswered
        refused += load.refused
        lost = sorted(m for m in load.acked if m not in mailbox.copies)
        assert not lost, (f"round {round_no} (seed {SEED}): {len(lost)} acknowledged messages lost, "
                          f"e.g. {[(m, load.acked[m]) for m in lost[:5]]}\n{daemon.log_tail(40)}")
        assert not mailbox.broken, mailbox.broken[:5]

    elapsed = time.monotonic() - started
    delivered = sum(1 for m in acked if m in mailbox.copies)
    unanswered_delivered = sum(1 for m in unanswered if m in mailbox.copies)
    duplicates = sum(max(c - 1, 0) for c in mailbox.copies.values())
    unknown = sorted(set(mailbox.copies) - set(acked) - unanswered)
    print(f"\ncrash test: seed={SEED} rounds={ROUNDS} elapsed={elapsed:.1f}s "
          f"acknowledged={len(acked)} delivered={delivered} lost={len(acked) - delivered} "
          f"duplicates={duplicates} (per round max {max(duplicates_by_round, default=0)}) "
          f"unanswered={len(unanswered)} (delivered {unanswered_delivered}) "
          f"recovered={recovered_total} refused={len(refused)} maildir_tmp_left_by_kills={tmp_left_by_kills}")
    assert len(acked) >= ROUNDS, "the load hardly got any message through"
    assert delivered == len(acked)
    assert not unknown, f"delivered messages nobody sent: {unknown[:5]}"
    assert not refused, refused[:5]
    assert duplicates == sum(duplicates_by_round)
