"""The DSN extension (RFC 3461), end to end.

Proves that DSN is announced on the MX and submission roles; that malformed
RET, ENVID, NOTIFY and ORCPT values get a specific 501 5.5.4, a log line, and
leave nothing on disk; that NOTIFY=SUCCESS brings a success report ("Action:
delivered", with Original-Envelope-Id and Original-Recipient) once the message
is in the local Maildir or in Dovecot (LMTP); that NOTIFY=NEVER keeps a failing recipient's bounce
away while NOTIFY=FAILURE brings it; that RET=HDRS bounces carry no body and
RET=FULL ones the whole message; that the delay report after
delay_warning_time names only the recipients that asked for it. Against a real Postfix next hop (delivering
b.test into its own Maildir, sending everything else back through stokend's
MX): the parameters cross (Postfix's own success report names the ORCPT and
ENVID given to stokend, Postfix's bounce for a recipient it fails honours
RET=HDRS and carries the ORCPT stokend added), stokend sends no success report
of its own for what Postfix took over (RFC 3461 §5.2.3), and NOTIFY=NEVER
crosses too (Postfix sends no bounce).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from peers import (NOBODY_GID, NOBODY_UID, PeerSet, free_port, parse_dsn, queue_daemon, queue_id,
                   wait_for_log, wait_removed, wait_until)
from smtpwire import SMTPWire
from stokend_daemon import USERS

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "lib"))
from postfix_peer import PostfixPeer  # noqa: E402

ALICE = "alice@example.test"
BOB = "bob@example.test"
ALICE_PW = USERS[ALICE]
DELIVERY_TIMEOUT = 20.0
POSTFIX_START_TIMEOUT = 30.0


def message(marker: str) -> bytes:
    return (f"From: Alice <{ALICE}>\r\n"
            f"To: someone\r\n"
            f"Subject: dsn {marker}\r\n"
            f"Message-ID: <{marker}@example.test>\r\n"
            f"\r\n"
            f"Body line {marker}.\r\n").encode()


def transaction(conn: SMTPWire, mail: str, rcpts: list[str], data: bytes):
    """MAIL and RCPT lines as given (each must be accepted), then DATA."""
    reply = conn.command(f"MAIL FROM:{mail}")
    assert reply.code == 250, f"MAIL FROM:{mail} -> {reply}"
    for rcpt in rcpts:
        reply = conn.command(f"RCPT TO:{rcpt}")
        assert reply.code == 250, f"RCPT TO:{rcpt} -> {reply}"
    return conn.data(data)


def submit_dsn(mta, mail: str, rcpts: list[str], data: bytes) -> str:
    """Authenticated submission as alice with the given MAIL/RCPT arguments;
    returns the queue id."""
    with SMTPWire(mta.submission_port) as conn:
        conn.ehlo("client.example.test")
        conn.starttls()
        assert "DSN" in conn.ehlo("client.example.test").keywords()
        assert conn.auth_plain(ALICE, ALICE_PW).code == 235
        reply = transaction(conn, mail, rcpts, data)
        conn.command("QUIT")
    return queue_id(reply)


def send_mx_dsn(mta, mail: str, rcpts: list[str], data: bytes) -> str:
    with SMTPWire(mta.mx_port) as conn:
        assert "DSN" in conn.ehlo("client.remote.test").keywords()
        reply = transaction(conn, mail, rcpts, data)
        conn.command("QUIT")
    return queue_id(reply)


def reports_for(mta, marker: str, count: int, timeout: float = DELIVERY_TIMEOUT) -> list:
    """The delivery reports in alice's Maildir about the message with marker."""
    def found():
        return [m for m in mta.messages(ALICE)
                if b"report-type=delivery-status" in m and marker.encode() in m]
    wait_until(lambda: len(found()) >= count, timeout, what=f"{count} report(s) about {marker}")
    return [parse_dsn(raw) for raw in found()]


@pytest.fixture
def peers():
    with PeerSet() as peer_set:
        yield peer_set


# --- the server side ---------------------------------------------------------------

def test_dsn_is_announced_on_mx_and_submission(mta):
    with SMTPWire(mta.mx_port) as conn:
        assert "DSN" in conn.ehlo().keywords()
    with SMTPWire(mta.submission_port) as conn:
        assert "DSN" in conn.ehlo().keywords()
        conn.starttls()
        assert "DSN" in conn.ehlo().keywords()


BAD_MAIL = [
    ("RET=BODY", "Syntax: RET=FULL or RET=HDRS"),
    ("ENVID=a+zz", "ENVID is not xtext"),
    ("ENVID=" + "e" * 101, "ENVID longer than 100 characters"),
]
BAD_RCPT = [
    ("NOTIFY=NEVER,SUCCESS", "Syntax: NOTIFY=NEVER or a list of SUCCESS, FAILURE, DELAY"),
    ("NOTIFY=SOMETIMES", "Syntax: NOTIFY=NEVER or a list"),
    ("ORCPT=bob@example.test", "Syntax: ORCPT=addr-type;xtext"),
    ("ORCPT=rfc822;bob+zz@example.test", "ORCPT address is not xtext"),
    ("ORCPT=utf-8;b\\x{D800}b@example.test", "ORCPT address is not utf-8-addr-xtext"),
]


@pytest.mark.parametrize("parameters,text", BAD_MAIL)
def test_malformed_mail_parameter_is_refused(mta, parameters, text):
    marker = uuid.uuid4().hex
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo()
        reply = conn.command(f"MAIL FROM:<sender@remote.test> {parameters}")
        assert (reply.code, reply.enhanced) == (501, "5.5.4"), str(reply)
        assert text in reply.text, str(reply)
        # Nothing of the refused MAIL is left: RCPT needs a new MAIL.
        assert conn.command(f"RCPT TO:<{BOB}>").code == 503
        # A second try with good parameters goes through, so the session is in step.
        transaction(conn, "<sender@remote.test> RET=HDRS", [f"<{BOB}>"], message(marker))
    wait_for_log(mta, re.escape(f"MAIL refused: {text}"))
    assert mta.settle()


@pytest.mark.parametrize("parameters,text", BAD_RCPT)
def test_malformed_rcpt_parameter_is_refused_and_nothing_queued(mta, parameters, text):
    marker = uuid.uuid4().hex
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo()
        assert conn.command("MAIL FROM:<sender@remote.test>").code == 250
        reply = conn.command(f"RCPT TO:<{BOB}> {parameters}")
        assert (reply.code, reply.enhanced) == (501, "5.5.4"), str(reply)
        assert text in reply.text, str(reply)
        reply = conn.command("DATA")
        assert reply.code == 554, f"DATA with no accepted recipient -> {reply}"
    wait_for_log(mta, re.escape(f"RCPT refused: {text}"))
    assert mta.files_containing(marker.encode()) == []
    assert mta.messages(BOB) == []


def test_repeated_dsn_parameter_is_refused(mta):
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo()
        reply = conn.command("MAIL FROM:<sender@remote.test> RET=FULL RET=HDRS")
        assert (reply.code, reply.enhanced) == (501, "5.5.4"), str(reply)
        assert "RET" in reply.text, str(reply)
        assert conn.command("MAIL FROM:<sender@remote.test> RET=FULL").code == 250
        reply = conn.command(f"RCPT TO:<{BOB}> NOTIFY=DELAY NOTIFY=DELAY")
        assert (reply.code, reply.enhanced) == (501, "5.5.4"), str(reply)
        assert "NOTIFY" in reply.text, str(reply)


def test_dsn_parameters_after_helo_are_unsupported(mta):
    with SMTPWire(mta.mx_port) as conn:
        assert conn.command("HELO client.remote.test").code == 250
        reply = conn.command("MAIL FROM:<sender@remote.test> RET=HDRS")
        assert (reply.code, reply.enhanced) == (555, "5.5.4"), str(reply)
        assert conn.command("MAIL FROM:<sender@remote.test>").code == 250
        reply = conn.command(f"RCPT TO:<{BOB}> NOTIFY=NEVER")
        assert (reply.code, reply.enhanced) == (555, "5.5.4"), str(reply)


# --- notifications of stokend's own ------------------------------------------------

def test_success_report_on_local_delivery(stokend_factory):
    mta = queue_daemon(stokend_factory)
    marker = uuid.uuid4().hex
    qid = send_mx_dsn(mta, f"<{ALICE}> RET=HDRS ENVID=trip+2B{marker}",
                      [f"<{BOB}> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Bob+2BTrips@example.test"],
                      message(marker))
    wait_removed(mta, qid)
    assert len(mta.messages(BOB)) == 1
    reports = reports_for(mta, marker, 1)
    assert len(reports) == 1
    dsn = reports[0]
    assert dsn.message["Subject"] == "Successful Mail Delivery Report"
    assert dsn.message["From"].startswith("Mail Delivery System <MAILER-DAEMON@")
    assert dsn.per_message["Original-Envelope-Id"] == f"trip+2B{marker}"
    assert dsn.report == [dict(dsn.report[0], **{
        "Original-Recipient": "rfc822; Bob+Trips@example.test",
        "Final-Recipient": f"rfc822; {BOB}", "Action": "delivered"})]
    assert dsn.report[0]["Status"].startswith("2.")
    assert f"dsn {marker}" in dsn.original_headers
    assert f"Body line {marker}" not in dsn.original_headers
    assert re.search(rf"queue: {qid}: success notification \S+ to <{ALICE}>$", mta.log(), re.M)


def test_success_report_on_delivery_into_dovecot(stokend_factory, peers):
    """LMTP into Dovecot is a local mailstore too: "Action: delivered"."""
    dovecot = peers.dovecot()
    mta = queue_daemon(stokend_factory, routes={"example.test": dovecot.tcp_route})
    marker = uuid.uuid4().hex
    qid = send_mx_dsn(mta, f"<{ALICE}> ENVID={marker}", [f"<{BOB}> NOTIFY=SUCCESS"],
                      message(marker))
    wait_removed(mta, qid)

    def report():
        for path in dovecot.new_mail("alice"):
            raw = path.read_bytes()
            if b"report-type=delivery-status" in raw and marker.encode() in raw:
                return raw
        return None
    dsn = parse_dsn(wait_until(report, DELIVERY_TIMEOUT, what="the report in Dovecot"))
    assert dsn.per_message["Original-Envelope-Id"] == marker
    assert dsn.report[0]["Final-Recipient"] == f"rfc822; {BOB}"
    assert dsn.report[0]["Action"] == "delivered"
    assert "Original-Recipient" not in dsn.report[0]
    assert len(dovecot.new_mail("bob")) == 1


def test_no_success_report_without_notify_success(stokend_factory):
    mta = queue_daemon(stokend_factory)
    marker = uuid.uuid4().hex
    qid = send_mx_dsn(mta, f"<{ALICE}>", [f"<{BOB}> NOTIFY=FAILURE,DELAY"], message(marker))
    wait_removed(mta, qid)
    assert len(mta.messages(BOB)) == 1
    assert not re.search(rf"queue: {qid}: \w+ notification", mta.log())
    assert [m for m in mta.messages(ALICE) if marker.encode() in m] == []


def test_notify_never_and_ret_against_a_failing_next_hop(stokend_factory, peers):
    """A next hop refuses every recipient (550 at RCPT): stokend's own
    bounce honours NOTIFY and RET."""
    sink = peers.sink(hard=("RCPT",))
    mta = queue_daemon(stokend_factory, routes={"fail.test": sink.route})
    never, headers, full = (uuid.uuid4().hex for _ in range(3))
    q_never = submit_dsn(mta, f"<{ALICE}> RET=FULL", ["<a@fail.test> NOTIFY=NEVER"], message(never))
    q_headers = submit_dsn(mta, f"<{ALICE}> RET=HDRS", ["<b@fail.test> NOTIFY=FAILURE"],
                           message(headers))
    q_full = submit_dsn(mta, f"<{ALICE}> RET=FULL", ["<c@fail.test>"], message(full))
    for qid in (q_never, q_headers, q_full):
        wait_removed(mta, qid)

    hdrs = reports_for(mta, headers, 1)[0]
    assert hdrs.report[0]["Action"] == "failed"
    assert hdrs.message.get_payload()[2].get_content_type() == "text/rfc822-headers"
    assert f"dsn {headers}" in hdrs.original_headers
    assert f"Body line {headers}" not in hdrs.original_headers

    whole = reports_for(mta, full, 1)[0]
    assert whole.message.get_payload()[2].get_content_type() == "message/rfc822"
    assert f"Body line {full}" in whole.original_headers

    assert re.search(rf"queue: {q_never}: failed, but no notification is sent for a recipient "
                     rf"whose NOTIFY leaves out FAILURE$", mta.log(), re.M)
    assert [m for m in mta.messages(ALICE) if never.encode() in m] == []


@pytest.mark.once  # waits on the clock; the sanitizers see this code in other tests
def test_delay_report_only_for_recipients_that_ask(stokend_factory, peers):
    """A next hop that answers 4xx: after delay_warning_time the sender hears
    of the recipient with NOTIFY=DELAY, not of the one with FAILURE only."""
    sink = peers.sink(soft=("RCPT",))
    mta = queue_daemon(stokend_factory, routes={"slow.test": sink.route},
                       queue={"first_retry": "1s", "max_retry_interval": "2s",
                              "delay_warning_time": "1s"})
    marker = uuid.uuid4().hex
    qid = submit_dsn(mta, f"<{ALICE}> ENVID={marker}",
                     ["<x@slow.test> NOTIFY=DELAY,FAILURE", "<y@slow.test> NOTIFY=FAILURE"],
                     message(marker))
    dsn = reports_for(mta, marker, 1)[0]
    assert dsn.message["Subject"] == "Delayed Mail (still being retried)"
    assert [r["Final-Recipient"] for r in dsn.report] == ["rfc822; x@slow.test"]
    assert dsn.report[0]["Action"] == "delayed"
    assert dsn.report[0]["Status"].startswith("4.")
    assert re.search(rf"queue: {qid}: delay notification \S+ to <{ALICE}>$", mta.log(), re.M)


# --- a real Postfix as the next hop ------------------------------------------------

@pytest.fixture
def postfix_chain(stokend_factory, tmp_path):
    """stokend relays b.test to a private Postfix, which delivers
    carol@b.test into its own Maildir, fails gone@b.test (error transport,
    after accepting it) and sends everything else, its reports included,
    back to stokend's MX."""
    port = free_port()
    mta = queue_daemon(stokend_factory, routes={"b.test": f"smtp:[127.0.0.1]:{port}"})
    # Outside the per-test folder, which only its owner may enter: Postfix's
    # daemons and its delivery agent run unprivileged.
    folder = Path(tempfile.mkdtemp(prefix="stokend-dsn-postfix-"))
    os.chmod(folder, 0o755)
    mail = folder / "mail"
    mail.mkdir()
    os.chown(mail, NOBODY_UID, NOBODY_GID)
    postfix = PostfixPeer(folder, port, mode="custom", extra_main={
        "virtual_mailbox_domains": "b.test",
        "virtual_mailbox_base": str(mail),
        "virtual_mailbox_maps": "inline:{ carol@b.test=b.test/carol/ }",
        "virtual_uid_maps": f"static:{NOBODY_UID}",
        "virtual_gid_maps": f"static:{NOBODY_GID}",
        "virtual_minimum_uid": "100",
        "smtpd_reject_unlisted_recipient": "no",
        "transport_maps": "inline:{ { gone@b.test = error:5.1.1 mailbox gone } }",
        "relayhost": f"[127.0.0.1]:{mta.mx_port}",
        "delay_warning_time": "0",
    })
    try:
        postfix.start(timeout=POSTFIX_START_TIMEOUT)
        yield mta, postfix, mail / "b.test" / "carol" / "new"
    finally:
        postfix.stop()
        shutil.rmtree(folder, ignore_errors=True)


def postfix_log(postfix: PostfixPeer) -> str:
    return "".join(postfix.log_lines(""))


def wait_with_postfix(postfix: PostfixPeer, mta, predicate, what: str):
    """wait_until, showing both logs when it times out."""
    try:
        return wait_until(predicate, DELIVERY_TIMEOUT, what=what)
    except AssertionError as timeout:
        raise AssertionError(f"{timeout}\nPostfix's log:\n{postfix_log(postfix)[-4000:]}\n"
                             f"stokend's log:\n{mta.log_tail(30)}") from None


def test_parameters_cross_to_postfix_which_reports_delivery(postfix_chain):
    mta, postfix, carol_new = postfix_chain
    marker = uuid.uuid4().hex
    qid = submit_dsn(mta, f"<{ALICE}> RET=HDRS ENVID=pf-{marker}",
                     ["<carol@b.test> NOTIFY=SUCCESS ORCPT=rfc822;Carol+2BDsn@b.test"],
                     message(marker))
    wait_removed(mta, qid, timeout=DELIVERY_TIMEOUT)
    wait_with_postfix(postfix, mta,
                      lambda: any(marker.encode() in p.read_bytes() for p in carol_new.glob("*")),
                      "Postfix's delivery to carol")
    # Postfix itself reports the delivery, so the parameters crossed.
    reports = reports_for(mta, marker, 1)
    dsn = reports[0]
    assert dsn.per_message["Reporting-MTA"].endswith("peer.example.test"), dsn.per_message
    assert dsn.per_message["Original-Envelope-Id"] == f"pf-{marker}"
    assert dsn.report[0]["Original-Recipient"].replace(" ", "") == "rfc822;Carol+Dsn@b.test"
    assert dsn.report[0]["Action"] == "delivered"
    # stokend handed the request over and sends no report of its own.
    log = mta.log()
    assert not re.search(rf"queue: {qid}: \w+ notification", log), log
    time.sleep(1.0)
    assert len(reports_for(mta, marker, 1)) == 1


def test_ret_and_added_orcpt_cross_to_postfix_which_bounces(postfix_chain):
    mta, postfix, _ = postfix_chain
    headers, never = uuid.uuid4().hex, uuid.uuid4().hex
    q_headers = submit_dsn(mta, f"<{ALICE}> RET=HDRS", ["<gone@b.test>"], message(headers))
    q_never = submit_dsn(mta, f"<{ALICE}>", ["<gone@b.test> NOTIFY=NEVER"], message(never))
    for qid in (q_headers, q_never):
        wait_removed(mta, qid, timeout=DELIVERY_TIMEOUT)
    bounce = reports_for(mta, headers, 1)[0]
    assert bounce.per_message["Reporting-MTA"].endswith("peer.example.test"), bounce.per_message
    assert bounce.report[0]["Action"] == "failed"
    # The ORCPT stokend added, as RFC 3461 §4.2 lets a relay do.
    assert bounce.report[0]["Original-Recipient"].replace(" ", "") == "rfc822;gone@b.test"
    # RET=HDRS crossed: Postfix, which returns the whole message by default,
    # sent the headers only.
    assert f"dsn {headers}" in bounce.original_headers
    assert all(f"Body line {headers}".encode() not in m
               for m in mta.messages(ALICE) if headers.encode() in m)
    # NOTIFY=NEVER crossed: Postfix failed the recipient and told nobody.
    wait_until(lambda: len(re.findall(r"to=<gone@b\.test>.*status=bounced",
                                      postfix_log(postfix))) >= 2,
               DELIVERY_TIMEOUT, what="Postfix failing both messages")
    time.sleep(1.0)
    assert mta.settle()
    assert [m for m in mta.messages(ALICE) if never.encode() in m] == []
