"""Retries and restarts of the durable queue.

Proves that a temporary failure keeps a message queued (the log shows it
deferred) and that a later retry delivers it, exactly once, when the next hop
first answers 4xx at RCPT and when nothing listens at all (connection
refused); that a message still deferred after delay_warning_after gets its
sender exactly one "delayed" notification (Action: delayed, 4.x.x, with
Will-Retry-Until) and is still delivered later; and that messages deferred
while the destination is down survive a
clean daemon restart on the same spool (SIGTERM, exit status 0, started again)
and are delivered once the destination comes up, each exactly once. The retry
schedule is shortened to seconds through the queue settings.
"""

import re
import time

import pytest

from peers import (PeerSet, SmtpSink, free_port, notifications, outcomes, parse_dsn, queue_daemon,
                   queue_id, stored_line, submit, wait_for_log, wait_removed)
from stokend_daemon import USERS

ALICE = "alice@example.test"
ALICE_PW = USERS[ALICE]
FAST_RETRY = {"first_retry": "1s", "max_retry_interval": "2s"}


@pytest.fixture
def peers():
    """Private smtp-sink, dnsmasq and Dovecot instances, stopped after the test."""
    with PeerSet() as peer_set:
        yield peer_set


def message(marker: str) -> bytes:
    return (f"From: Alice <alice@example.test>\r\n"
            f"To: <friend@later.test>\r\n"
            f"Subject: retry {marker}\r\n"
            f"Message-ID: <{marker}@example.test>\r\n"
            f"\r\n"
            f"Marker {marker}.\r\n").encode()


def copies(sink: SmtpSink, marker: str) -> int:
    return sum(1 for m in sink.messages() if f"Marker {marker}.".encode() in m.data)


def test_soft_rejection_then_retry_delivers(stokend_factory, peers):
    grumpy = peers.sink(soft=("RCPT",), soft_reply="450 4.2.0 mailbox busy, try later")
    mta = queue_daemon(stokend_factory, routes={"later.test": grumpy.route}, queue=FAST_RETRY)
    qid = queue_id(submit(mta, ALICE, ALICE_PW, ["friend@later.test"], message("soft-1")))
    wait_for_log(mta, rf"queue: {qid} to=<friend@later\.test> deferred after 1 attempts: "
                      rf"450 4\.2\.0 mailbox busy, try later$", timeout=5)
    assert not re.search(rf"queue: {qid} removed", mta.log()), "a deferred message must stay queued"
    assert mta.settle(0.2) is False
    grumpy.stop()
    good = peers.sink(grumpy.port, dump_into=grumpy.dumps)
    log = wait_removed(mta, qid, timeout=15)
    result = outcomes(log, qid)
    assert result[-1][1] == "delivered" and result[-1][2] >= 2, result
    assert all(o == "deferred" for _, o, _, _ in result[:-1]), result
    time.sleep(0.3)
    assert copies(good, "soft-1") == 1, [m.data for m in good.messages()]
    assert mta.all_mail_files() == [], "no notification: delay warnings are hours away"


def test_connection_refused_then_retry_delivers(stokend_factory, peers):
    port = free_port()
    mta = queue_daemon(stokend_factory, routes={"later.test": f"smtp:[127.0.0.1]:{port}"},
                       queue=FAST_RETRY)
    qid = queue_id(submit(mta, ALICE, ALICE_PW, ["friend@later.test"], message("refused-1")))
    wait_for_log(mta, rf"queue: {qid} to=<friend@later\.test> deferred after 1 attempts: "
                      rf"4\d\d 4\.\d+\.\d+ .*", timeout=5)
    sink = peers.sink(port)
    log = wait_removed(mta, qid, timeout=15)
    result = outcomes(log, qid)
    assert result[-1][1] == "delivered" and result[-1][2] >= 2, result
    time.sleep(0.3)
    assert copies(sink, "refused-1") == 1


def test_deferred_messages_survive_a_restart(stokend_factory, peers):
    port = free_port()
    overrides = {"routes": {"later.test": f"smtp:[127.0.0.1]:{port}"}, "queue": FAST_RETRY}
    first = queue_daemon(stokend_factory, **overrides)
    markers = [f"restart-{i}" for i in range(3)]
    ids = [queue_id(submit(first, ALICE, ALICE_PW, ["friend@later.test"], message(m))) for m in markers]
    for qid in ids:
        wait_for_log(first, rf"queue: {qid} to=<friend@later\.test> deferred after 1 attempts", timeout=5)
    assert first.terminate() == 0, first.log_tail()
    offset = len(first.log())

    second = queue_daemon(stokend_factory, users={}, directory=first.dir, **overrides)
    wait_for_log(second, r"spool \S+: 3 messages recovered", timeout=5)
    time.sleep(1.5)  # at least one more deferral after the restart, while still down
    sink = peers.sink(port)
    for qid in ids:
        wait_removed(second, qid, timeout=15)
    log = second.log()
    for qid in ids:
        before, after = outcomes(log[:offset], qid), outcomes(log[offset:], qid)
        assert after and after[-1][1] == "delivered", (qid, after)
        # The attempt count was kept across the restart.
        assert after[0][2] == before[-1][2] + 1, (before, after)
    time.sleep(0.3)
    for marker in markers:
        assert copies(sink, marker) == 1, (marker, [m.data for m in sink.messages()])
    assert len(sink.messages()) == 3


def test_delay_warning_then_delivery(stokend_factory, peers):
    port = free_port()
    mta = queue_daemon(stokend_factory, routes={"later.test": f"smtp:[127.0.0.1]:{port}"},
                          queue={"first_retry": "1s", "max_retry_interval": "1s",
                                 "delay_warning_after": "2s", "lifetime": "1h"})
    qid = queue_id(submit(mta, ALICE, ALICE_PW, ["friend@later.test"], message("delayed-1")))
    found = wait_for_log(mta, rf"queue: {qid}: delay notification (\S+) to <{re.escape(ALICE)}>$", timeout=10)
    dsn_id = found.group(1)
    log = wait_removed(mta, dsn_id, timeout=5)
    stored = stored_line(log, dsn_id)
    assert stored.group(1) == "" and "bounce" in stored.group(4), stored.group(0)
    # Read the Maildir directly: messages() would wait for the queue to empty.
    mail = sorted((mta.maildir(ALICE) / "new").iterdir())
    assert len(mail) == 1, f"alice has {len(mail)} messages, expected the delay notification"
    dsn = parse_dsn(mail[0].read_bytes())
    assert dsn.message["Subject"].startswith("Delayed Mail"), dsn.message["Subject"]
    fields = dsn.report[0]
    assert fields.get("Final-Recipient") == "rfc822; friend@later.test", fields
    assert fields.get("Action") == "delayed", fields
    assert re.fullmatch(r"4\.\d{1,3}\.\d{1,3}", fields.get("Status", "")), fields
    assert "Will-Retry-Until" in fields, fields
    assert "Message-ID: <delayed-1@example.test>" in dsn.original_headers

    sink = peers.sink(port)
    log = wait_removed(mta, qid, timeout=10)
    assert outcomes(log, qid)[-1][1] == "delivered", outcomes(log, qid)
    # One warning only, however many attempts followed it.
    assert notifications(log, qid) == [("delay", dsn_id, ALICE)], notifications(log, qid)
    time.sleep(0.3)
    assert copies(sink, "delayed-1") == 1
    assert len(mta.messages(ALICE)) == 1
