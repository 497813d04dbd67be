"""Bounces: delivery status notifications from the queue.

Proves that a permanent rejection by the next hop (5xx at RCPT, or at the end
of DATA) makes the queue send the local sender a delivery status notification
in her Maildir: multipart/report; report-type=delivery-status, Action: failed,
the 5.x.x status and the next hop's reply, the failed recipient, and the
original's header section; the notification has the null envelope sender and
is itself marked as a bounce. A domain whose name does not exist (NXDOMAIN
from the private DNS server) bounces the same way with 5.1.2. A message that
stays deferred past the queue lifetime is returned with Action: failed and a
4.x.x status. A message with the null sender that fails permanently produces
no notification at all (RFC 5321 §4.5.5), and the log says so.
"""

import re
import time

import pytest

from peers import (PeerSet, free_port, notifications, outcomes, parse_dsn, queue_daemon, queue_id,
                   send_mx, stored_line, submit, wait_for_log, wait_removed)
from stokend_daemon import USERS

ALICE = "alice@example.test"
ALICE_PW = USERS[ALICE]


@pytest.fixture
def peers():
    """Private smtp-sink, dnsmasq and Dovecot instances, stopped after the test."""
    with PeerSet() as peer_set:
        yield peer_set


def message(marker: str, to: str) -> bytes:
    return (f"From: Alice <alice@example.test>\r\n"
            f"To: <{to}>\r\n"
            f"Subject: will bounce {marker}\r\n"
            f"Message-ID: <{marker}@example.test>\r\n"
            f"X-Original-Marker: {marker}\r\n"
            f"\r\n"
            f"The body of {marker} is not returned.\r\n").encode()


def the_dsn(mta, qid: str, recipient: str, status_class: str):
    """Waits for the failure notification for qid; checks the log lines around
    it; returns the parsed notification from the sender's Maildir."""
    log = wait_removed(mta, qid)
    sent = notifications(log, qid)
    assert len(sent) == 1, f"expected one notification for {qid}, got {sent}:\n{mta.log_tail()}"
    kind, dsn_id, to = sent[0]
    assert (kind, to) == ("failure", ALICE), sent
    log = wait_removed(mta, dsn_id)
    # The notification is queued with the null reverse-path and marked as a bounce.
    stored = stored_line(log, dsn_id)
    assert stored, f"notification {dsn_id} never stored:\n{mta.log_tail()}"
    assert stored.group(1) == "", f"notification envelope sender is <{stored.group(1)}>, not <>"
    assert stored.group(2) == "1"
    assert "bounce" in stored.group(4), stored.group(0)
    delivered = outcomes(log, dsn_id)
    assert [(r, o) for r, o, _, _ in delivered] == [(ALICE, "delivered")], delivered
    mail = mta.messages(ALICE)
    assert len(mail) == 1, f"alice has {len(mail)} messages, expected only the notification"
    dsn = parse_dsn(mail[0])
    assert len(dsn.report) == 1, dsn.report
    fields = dsn.report[0]
    assert fields.get("Final-Recipient") == f"rfc822; {recipient}", fields
    assert fields.get("Action") == "failed", fields
    assert re.fullmatch(rf"{status_class}\.\d{{1,3}}\.\d{{1,3}}", fields.get("Status", "")), fields
    assert dsn.per_message.get("Reporting-MTA") == "dns; mx.example.test", dsn.per_message
    assert dsn.message["To"] == f"<{ALICE}>"
    assert "MAILER-DAEMON@mx.example.test" in dsn.message["From"]
    assert dsn.message["Auto-Submitted"] == "auto-replied"
    return dsn, fields


@pytest.mark.parametrize("stage", ["RCPT", "."], ids=["at-rcpt", "at-end-of-data"])
def test_permanent_rejection_bounces_to_local_sender(stokend_factory, peers, stage):
    reject = "554 5.7.1 rejected by the test next hop" if stage == "." else "550 5.1.1 no such user here"
    sink = peers.sink(hard=(stage,), hard_reply=reject)
    mta = queue_daemon(stokend_factory, routes={"bounce.test": sink.route})
    marker = f"bounce-{'rcpt' if stage == 'RCPT' else 'data'}"
    original = message(marker, "someone@bounce.test")
    qid = queue_id(submit(mta, ALICE, ALICE_PW, ["someone@bounce.test"], original))
    dsn, fields = the_dsn(mta, qid, "someone@bounce.test", "5")
    result = outcomes(mta.log(), qid)
    assert [(r, o, n) for r, o, n, _ in result] == [("someone@bounce.test", "failed", 1)], result
    assert result[0][3] == reject, result
    assert fields["Status"] == reject.split()[1], fields
    assert fields.get("Diagnostic-Code") == f"smtp; {reject}", fields
    # The original's headers come back, its body does not.
    assert f"Message-ID: <{marker}@example.test>" in dsn.original_headers, dsn.original_headers
    assert f"X-Original-Marker: {marker}" in dsn.original_headers
    assert "Received: " in dsn.original_headers  # our own trace field is part of the original
    assert "is not returned" not in dsn.message.as_string()


def test_nonexistent_domain_bounces_with_5_1_2(stokend_factory, peers):
    dns = peers.dnsmasq(mx=[("remote.test", "mx.remote.test", 10)],
                        hosts=[("mx.remote.test", "127.0.0.1")])
    mta = queue_daemon(stokend_factory, dns={"servers": dns.servers})
    original = message("nxdomain", "someone@nowhere.test")
    qid = queue_id(submit(mta, ALICE, ALICE_PW, ["someone@nowhere.test"], original))
    _, fields = the_dsn(mta, qid, "someone@nowhere.test", "5")
    assert fields["Status"] == "5.1.2", fields
    assert "nowhere.test" in fields.get("Diagnostic-Code", ""), fields


def test_lifetime_expiry_returns_the_message(stokend_factory):
    # Nothing listens on this port: every attempt is refused, a temporary failure.
    dead = free_port()
    mta = queue_daemon(stokend_factory, routes={"expire.test": f"smtp:[127.0.0.1]:{dead}"},
                          queue={"lifetime": "3s", "first_retry": "1s", "max_retry_interval": "1s"})
    original = message("expiry", "someone@expire.test")
    started = time.monotonic()
    qid = queue_id(submit(mta, ALICE, ALICE_PW, ["someone@expire.test"], original))
    wait_for_log(mta, rf"queue: {qid} to=<someone@expire\.test> expired after", timeout=20)
    elapsed = time.monotonic() - started
    # Not before the lifetime; the upper bound only says "soon after", with
    # room for a loaded machine (retries every second).
    assert 2.5 <= elapsed <= 15, f"expired after {elapsed:.1f}s with a 3s lifetime"
    result = outcomes(mta.log(), qid)
    assert [o for _, o, _, _ in result][:-1] == ["deferred"] * (len(result) - 1), result
    assert result[-1][1] == "expired" and len(result) >= 2, result
    _, fields = the_dsn(mta, qid, "someone@expire.test", "4")


def test_null_sender_failure_sends_no_notification(stokend_factory, peers):
    sink = peers.sink(hard=("RCPT",), hard_reply="550 5.1.1 no such user here")
    users = dict(USERS)
    users["carol@relayed.test"] = "Carol-pw-1234"
    mta = queue_daemon(stokend_factory, users=users, local_domains=["example.test", "relayed.test"],
                          routes={"relayed.test": sink.route})
    original = (b"From: <>\r\n"
                b"To: <carol@relayed.test>\r\n"
                b"Subject: a notification from elsewhere\r\n"
                b"Message-ID: <null-sender-1@remote.test>\r\n"
                b"\r\n"
                b"Delivery failed somewhere.\r\n")
    qid = queue_id(send_mx(mta, "", ["carol@relayed.test"], original))
    log = wait_removed(mta, qid)
    assert stored_line(log, qid).group(1) == ""
    result = outcomes(log, qid)
    assert [(r, o) for r, o, _, _ in result] == [("carol@relayed.test", "failed")], result
    assert f"queue: {qid}: failed, but no notification is sent for a null sender" in log, mta.log_tail()
    time.sleep(0.5)  # a notification would be queued right after the failure
    log = mta.log()
    assert notifications(log, qid) == []
    stored_ids = set(re.findall(r"queue: (\S+) stored:", log))
    assert stored_ids == {qid}, f"something else was queued: {stored_ids}"
    assert mta.all_mail_files() == [], "no local mailbox may receive anything"
    assert not re.search(r"^\S+ \S+ queue: \S+ stored: .* bounce$", log, re.M)
