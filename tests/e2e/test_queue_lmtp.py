"""Delivery from the queue into Dovecot over LMTP.

Proves that a local domain routed `lmtp:[127.0.0.1]:PORT` or
`lmtp:unix:/path` to a private Dovecot gets its mail there instead of the
built-in Maildir: a message accepted on the MX port lands in the Dovecot
user's HOME/Maildir/new exactly once, as sent, with the daemon's Received
field; with two recipients in one transaction each gets one copy and the
queue records, per recipient, the delivery id Dovecot gave; and while Dovecot is down the message
stays queued and is delivered once it is up.
"""

import re

import pytest

from peers import PeerSet, outcomes, queue_daemon, queue_id, send_mx, wait_for_log, wait_removed
from storedmail import check_stored

ALICE = "alice@example.test"
BOB = "bob@example.test"


@pytest.fixture
def peers():
    """Private smtp-sink, dnsmasq and Dovecot instances, stopped after the test."""
    with PeerSet() as peer_set:
        yield peer_set


def message(marker: str, to: str = "Alice <alice@example.test>") -> bytes:
    return (f"From: Sender <sender@remote.test>\r\n"
            f"To: {to}\r\n"
            f"Subject: to the mailstore {marker}\r\n"
            f"Message-ID: <{marker}@remote.test>\r\n"
            f"\r\n"
            f"Marker {marker}.\r\n"
            f".leading dot\r\n").encode()


def check_in_dovecot(dovecot, user: str, original: bytes) -> None:
    files = dovecot.new_mail(user)
    assert len(files) == 1, f"{user} has {len(files)} messages in Maildir/new, expected 1"
    assert len(dovecot.all_mail(user)) == 1
    stored = files[0].read_bytes()
    # Dovecot stores LF line endings and adds its own trace fields
    # (Return-Path, Delivered-To, its Received) above ours.
    data = stored.replace(b"\r\n", b"\n")
    assert data.endswith(original.replace(b"\r\n", b"\n")), data[-300:]
    start = data.find(b"Received: from client.remote.test ")
    assert start >= 0, f"our Received field is missing: {data[:600]!r}"
    ours = data[start:].replace(b"\n", b"\r\n")
    received = check_stored(ours, original, "ESMTP")
    assert b"by mx.example.test (stokend)" in received, received


def test_lmtp_over_tcp_two_recipients(stokend_factory, peers):
    dovecot = peers.dovecot()
    mta = queue_daemon(stokend_factory, routes={"example.test": dovecot.tcp_route})
    original = message("lmtp-tcp", to="alice@example.test, bob@example.test")
    qid = queue_id(send_mx(mta, "sender@remote.test", [ALICE, BOB], original))
    log = wait_removed(mta, qid)
    result = sorted(outcomes(log, qid))
    assert [(r, o, n) for r, o, n, _ in result] == [(ALICE, "delivered", 1), (BOB, "delivered", 1)], result
    for _, _, _, reply in result:
        assert re.match(r"250 2\.0\.0 ", reply), reply
        delivery_id = reply.split()[-1]
        assert f"<{delivery_id}>" in dovecot.log(), (reply, dovecot.log())
    # One copy each, in Dovecot only.
    check_in_dovecot(dovecot, "alice", original)
    check_in_dovecot(dovecot, "bob", original)
    assert mta.all_mail_files() == [], "the built-in Maildir must not be used for a routed domain"
    assert re.search(r"lmtp\(alice\).*saved mail to INBOX", dovecot.log()), dovecot.log()


def test_lmtp_over_unix_socket(stokend_factory, peers):
    dovecot = peers.dovecot()
    mta = queue_daemon(stokend_factory, routes={"example.test": dovecot.unix_route})
    original = message("lmtp-unix")
    qid = queue_id(send_mx(mta, "sender@remote.test", [ALICE], original))
    log = wait_removed(mta, qid)
    result = outcomes(log, qid)
    assert [(r, o, n) for r, o, n, _ in result] == [(ALICE, "delivered", 1)], result
    check_in_dovecot(dovecot, "alice", original)
    assert dovecot.new_mail("bob") == []
    assert mta.all_mail_files() == []


def test_lmtp_down_then_up(stokend_factory, peers):
    dovecot = peers.dovecot()
    route = dovecot.tcp_route
    dovecot.stop()
    mta = queue_daemon(stokend_factory, routes={"example.test": route},
                          queue={"first_retry": "1s", "max_retry_interval": "2s"})
    original = message("lmtp-later")
    qid = queue_id(send_mx(mta, "sender@remote.test", [ALICE], original))
    wait_for_log(mta, rf"queue: {qid} to=<{ALICE}> deferred after 1 attempts: 4", timeout=5)
    assert mta.settle(0.2) is False, "a deferred message must stay queued"
    dovecot.start()
    log = wait_removed(mta, qid, timeout=15)
    result = outcomes(log, qid)
    assert result[-1][:2] == (ALICE, "delivered") and result[-1][2] >= 2, result
    check_in_dovecot(dovecot, "alice", original)
