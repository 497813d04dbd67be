"""The durable queue and outbound delivery, against real peers.

Proves that the MX role answers "250 2.0.0 Ok: queued as ID" only once the
queue has stored the message, and that delivery follows at once (stored,
delivered after 1 attempt, removed, in that order in the log); that an
authenticated submission (STARTTLS or implicit TLS, AUTH PLAIN) to a remote
domain leaves the queue over SMTP and reaches the next hop byte for byte, with
the daemon's Received field on top, exactly once: through a static route
`smtp:[127.0.0.1]:PORT` to Postfix's smtp-sink, and through the domain's MX
record served by a private dnsmasq (the MX host contacted on the configured
delivery port), with several recipients of one domain in one transaction.
"""

import re
import time

import pytest

from peers import (PeerSet, outcomes, queue_daemon, queue_id, removed, send_mx, stored_line, submit,
                   wait_removed)
from stokend_daemon import USERS
from storedmail import check_stored, header_fields

ALICE = "alice@example.test"
ALICE_PW = USERS[ALICE]


@pytest.fixture
def peers():
    """Private smtp-sink, dnsmasq and Dovecot instances, stopped after the test."""
    with PeerSet() as peer_set:
        yield peer_set


def message(subject: str, marker: str, to: str = "Friend <friend@relay.test>") -> bytes:
    return (f"From: Alice <alice@example.test>\r\n"
            f"To: {to}\r\n"
            f"Subject: {subject}\r\n"
            f"Message-ID: <{marker}@example.test>\r\n"
            f"\r\n"
            f"Body of {marker}.\r\n"
            f".a line that starts with a dot\r\n"
            f"..and one with two\r\n"
            f"\r\n"
            f"Last line.\r\n").encode()


def lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n")


def check_relayed(received: bytes, original: bytes) -> bytes:
    """The next hop got `original` exactly (as smtp-sink dumps it, with LF
    line ends), preceded by one Received field and nothing else. Returns that
    field, unfolded."""
    assert received.startswith(b"Received: "), f"no Received field on top: {received[:300]!r}"
    assert received.endswith(lf(original)), (
        f"the message was changed on the way:\nsent: {lf(original)[-300:]!r}\ngot:  {received[-300:]!r}")
    prefix = received[: len(received) - len(lf(original))].replace(b"\n", b"\r\n")
    fields = header_fields(prefix)
    assert len(fields) == 1, f"expected only our Received field before the message, got {fields!r}"
    return fields[0]


def test_mx_acknowledges_after_storing_and_delivers_at_once(stokend_factory):
    mta = queue_daemon(stokend_factory)
    original = message("queued then delivered", "mx-queue-1", to="Alice <alice@example.test>")
    started = time.monotonic()
    reply = send_mx(mta, "sender@remote.test", [ALICE], original)
    qid = queue_id(reply)
    # The log line "stored" is written before the 250 is sent.
    stored = stored_line(mta.log(), qid)
    assert stored, f"the 250 came before the queue logged {qid} as stored:\n{mta.log_tail()}"
    assert stored.group(1) == "sender@remote.test"
    assert stored.group(2) == "1"
    assert int(stored.group(3)) > len(original)  # our Received field is part of it
    log = wait_removed(mta, qid, timeout=5)
    assert time.monotonic() - started < 5
    result = outcomes(log, qid)
    assert [(r, o, n) for r, o, n, _ in result] == [(ALICE, "delivered", 1)], result
    assert result[0][3].startswith("250 "), result
    positions = [log.index(f"queue: {qid} stored:"), log.index(f"queue: {qid} to=<{ALICE}> delivered"),
                 log.index(f"queue: {qid} removed: finished")]
    assert positions == sorted(positions), f"log lines out of order:\n{mta.log_tail()}"
    stored_mail = mta.messages(ALICE)
    assert len(stored_mail) == 1
    check_stored(stored_mail[0], original, "ESMTP")


def test_submission_starttls_to_static_smtp_route(stokend_factory, peers):
    sink = peers.sink()
    mta = queue_daemon(stokend_factory, routes={"relay.test": sink.route})
    original = message("static route", "route-1")
    reply = submit(mta, ALICE, ALICE_PW, ["friend@relay.test"], original)
    qid = queue_id(reply)
    log = wait_removed(mta, qid)
    result = outcomes(log, qid)
    assert [(r, o, n) for r, o, n, _ in result] == [("friend@relay.test", "delivered", 1)], result
    assert result[0][3].startswith("250"), result
    sink.wait_for_messages(1)
    time.sleep(0.3)
    got = sink.messages()
    assert len(got) == 1, f"the next hop got {len(got)} copies"
    assert got[0].mail_args.split()[0] == "<alice@example.test>", got[0].mail_args
    # smtp-sink offers DSN: the ORCPT a relay adds goes with the recipient (RFC 3461 §4.2).
    assert got[0].rcpt_args == ["<friend@relay.test> ORCPT=rfc822;friend@relay.test"], got[0].rcpt_args
    received = check_relayed(got[0].data, original)
    assert b"by mx.example.test" in received, received
    assert re.search(rb"\bwith ESMTPSA\b", received), received
    assert mta.all_mail_files() == [], "nothing for a remote domain may land in a local mailbox"


def test_submission_implicit_tls_by_mx_record(stokend_factory, peers):
    sink = peers.sink()
    dns = peers.dnsmasq(mx=[("remote.test", "mx.remote.test", 10)],
                        hosts=[("mx.remote.test", "127.0.0.1")])
    mta = queue_daemon(stokend_factory, dns={"servers": dns.servers}, delivery={"mx_port": sink.port})
    original = message("by MX", "mx-record-1", to="Friends <friends@remote.test>")
    recipients = ["one@remote.test", "two@remote.test"]
    reply = submit(mta, ALICE, ALICE_PW, recipients, original, implicit_tls=True)
    qid = queue_id(reply)
    log = wait_removed(mta, qid)
    result = sorted((r, o, n) for r, o, n, _ in outcomes(log, qid))
    assert result == [("one@remote.test", "delivered", 1), ("two@remote.test", "delivered", 1)], (
        f"{result}\n{mta.log_tail()}")
    sink.wait_for_messages(1)
    time.sleep(0.3)
    got = sink.messages()
    # Both recipients of one domain go in one transaction.
    assert len(got) == 1, f"the MX host got {len(got)} transactions"
    assert sorted(got[0].rcpt_args) == ["<one@remote.test> ORCPT=rfc822;one@remote.test",
                                        "<two@remote.test> ORCPT=rfc822;two@remote.test"], got[0].rcpt_args
    received = check_relayed(got[0].data, original)
    assert re.search(rb"\bwith ESMTPSA\b", received), received
    queries = dns.output()
    assert re.search(r"query\[MX\] remote\.test from 127\.0\.0\.1", queries), queries
    assert re.search(r"query\[A\] mx\.remote\.test from 127\.0\.0\.1", queries), queries


def test_local_and_remote_recipients_of_one_message(stokend_factory, peers):
    sink = peers.sink()
    mta = queue_daemon(stokend_factory, routes={"relay.test": sink.route})
    original = message("split", "split-1", to="bob@example.test, friend@relay.test")
    reply = submit(mta, ALICE, ALICE_PW, ["bob@example.test", "friend@relay.test"], original)
    qid = queue_id(reply)
    log = wait_removed(mta, qid)
    result = sorted((r, o) for r, o, _, _ in outcomes(log, qid))
    assert result == [("bob@example.test", "delivered"), ("friend@relay.test", "delivered")], result
    assert stored_line(log, qid).group(2) == "2"
    bob = mta.messages("bob@example.test")
    assert len(bob) == 1
    check_stored(bob[0], original, "ESMTPSA")
    got = sink.wait_for_messages(1)
    assert len(got) == 1 and got[0].rcpt_args == ["<friend@relay.test> ORCPT=rfc822;friend@relay.test"], got
    check_relayed(got[0].data, original)
    assert removed(log, qid)


def test_shutdown_with_an_idle_pooled_connection_is_clean(stokend_factory, peers):
    """The connection to the next hop stays pooled after a delivery; SIGTERM
    must still end the daemon with exit 0, saying QUIT to the next hop, with
    nothing leaked (the sanitizer build's harness fails on a leak report)."""
    sink = peers.sink()
    mta = queue_daemon(stokend_factory, routes={"relay.test": sink.route})
    reply = submit(mta, ALICE, ALICE_PW, ["friend@relay.test"], message("pooled", "pool-1"))
    wait_removed(mta, queue_id(reply))
    sink.wait_for_messages(1)
    assert sink.running(), "the next hop must still be up while the daemon stops"
    assert mta.terminate() == 0, mta.log_tail()
    report = mta.sanitizer_report()
    assert report is None, report
