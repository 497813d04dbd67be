"""A damaged spool loses only what is damaged.

Five messages are queued for a next hop that is down; the daemon is stopped
(SIGTERM, exit status 0) and 8 bytes in the middle of one message's data are
flipped in its spool segment. Started again on the same spool, the daemon
recovers the four intact messages (and delivers each exactly once when the
next hop comes up), never delivers the damaged one, names it in an error line
of its log (queue id, sender and recipient), keeps the damaged segment byte
for byte in the spool's quarantine/ folder, and `stokenctl queue damaged`
lists it as lost with its sender and recipient. A second restart finds
nothing new to quarantine.
"""

import re
from pathlib import Path

import pytest

from peers import (PeerSet, free_port, outcomes, queue_daemon, queue_id, submit, wait_for_log,
                   wait_removed)
from stokend_daemon import USERS

ALICE = "alice@example.test"
ALICE_PW = USERS[ALICE]
FAST_RETRY = {"first_retry": "1s", "max_retry_interval": "2s"}
COUNT = 5
VICTIM = 2


@pytest.fixture
def peers():
    """Private smtp-sink instances, stopped after the test."""
    with PeerSet() as peer_set:
        yield peer_set


def message(marker: str) -> bytes:
    body = "".join(f"{marker} line {i} of a message kept in the spool\r\n" for i in range(20))
    return (f"From: Alice <{ALICE}>\r\n"
            f"To: <friend{marker}@later.test>\r\n"
            f"Subject: damage {marker}\r\n"
            f"\r\n").encode() + body.encode()


def segment_holding(spool: Path, marker: bytes) -> tuple[Path, int]:
    for segment in sorted((spool / "segments").iterdir()):
        offset = segment.read_bytes().find(marker)
        if offset >= 0:
            return segment, offset
    raise AssertionError(f"no segment holds {marker!r}")


def recovered_since(daemon, offset: int) -> int:
    """How many messages the start logged after offset recovered (it logs that
    before it listens, so a started daemon has logged it)."""
    found = re.findall(r"spool \S+: (\d+) messages recovered", daemon.log()[offset:])
    assert len(found) == 1, daemon.log_tail()
    return int(found[0])


def test_damaged_message_is_lost_alone_and_reported(stokend_factory, peers):
    port = free_port()
    overrides = {"routes": {"later.test": f"smtp:[127.0.0.1]:{port}"}, "queue": FAST_RETRY}
    first = queue_daemon(stokend_factory, **overrides)
    markers = [f"m{i}x" for i in range(COUNT)]
    ids = [queue_id(submit(first, ALICE, ALICE_PW, [f"friend{m}@later.test"], message(m)))
           for m in markers]
    for qid, marker in zip(ids, markers):
        wait_for_log(first, rf"queue: {qid} to=<friend{marker}@later\.test> deferred after 1 attempts",
                     timeout=5)
    assert first.terminate() == 0, first.log_tail()

    # Flip 8 bytes in the middle of the victim's data.
    segment, start = segment_holding(first.spool, f"{markers[VICTIM]} line 10".encode())
    damaged = bytearray(segment.read_bytes())
    for i in range(start, start + 8):
        damaged[i] ^= 0xA5
    segment.write_bytes(bytes(damaged))
    offset = len(first.log())

    second = queue_daemon(stokend_factory, users={}, directory=first.dir, **overrides)
    assert recovered_since(second, offset) == COUNT - 1
    victim = ids[VICTIM]
    log = second.log()[offset:]
    lost = re.search(rf"^.*spool: lost message record of message {victim} .*$", log, re.M)
    assert lost, log
    assert f"from <{ALICE}>" in lost.group(0), lost.group(0)
    assert f"<friend{markers[VICTIM]}@later.test>" in lost.group(0), lost.group(0)
    assert f"of {segment.name}" in lost.group(0), lost.group(0)

    # The damaged bytes are kept for forensics, exactly as found.
    assert (second.spool / "quarantine" / segment.name).read_bytes() == bytes(damaged)
    listing = second.ctl("queue", "damaged")
    lines = [line for line in listing.stdout.splitlines() if victim in line]
    assert len(lines) == 1, listing.stdout
    assert lines[0].startswith(f"quarantine/{segment.name}: message record of message {victim} "
                               f"from <{ALICE}> to <friend{markers[VICTIM]}@later.test>"), lines[0]
    assert lines[0].endswith(": lost"), lines[0]
    for qid in ids:
        if qid != victim:
            assert qid not in listing.stdout, listing.stdout

    # Every other message is still queued, and delivered once the next hop is up.
    sink = peers.sink(port)
    for qid in ids:
        if qid != victim:
            wait_removed(second, qid, timeout=15)
    log = second.log()[offset:]
    for qid in ids:
        if qid != victim:
            assert outcomes(log, qid)[-1][1] == "delivered", outcomes(log, qid)
    assert not outcomes(log, victim), outcomes(log, victim)
    delivered = [m.data for m in sink.wait_for_messages(COUNT - 1)]
    for index, marker in enumerate(markers):
        copies = sum(1 for data in delivered if f"Subject: damage {marker}".encode() in data)
        assert copies == (0 if index == VICTIM else 1), (marker, copies)
    assert second.terminate() == 0, second.log_tail()

    # Nothing more to quarantine on the next start; the report is still listed.
    offset = len(second.log())
    third = queue_daemon(stokend_factory, users={}, directory=first.dir, **overrides)
    assert recovered_since(third, offset) == 0
    assert "spool: lost" not in third.log()[offset:]
    assert victim in third.ctl("queue", "damaged").stdout
