"""Milters: stokend asks a milter (here a scripted one, milter_peer.py) about
every message of its roles at the end of the data, and honours its verdict.

Proves that the milter is told the transaction as Postfix tells it (option
negotiation with version 6, the macros j, {daemon_name}, {client_addr},
{client_port}, i, {auth_authen}, {mail_addr}, {rcpt_addr}, CONNECT, HELO,
MAIL, RCPT, the headers, the body, EOB, QUIT); that each verdict and change
is honoured — accept, reject (5xx), tempfail (4xx), a custom reply, discard
(250, nothing delivered), quarantine (queued held, delivered once released),
add/insert/change/delete header, replace body, add/delete recipient, change
sender; that a milter that is down, hangs or speaks garbage follows its
default_action (tempfail, accept, reject) with one log line, and the daemon
keeps running; that a milter saying SMFIR_PROGRESS for ever is cut off after
one command_timeout per reply owed; that milters run in order, each seeing the
previous one's changes; that a milter only for mx leaves submission alone; and
that a reload that adds a milter applies it to new sessions.
"""

from __future__ import annotations

import re
import socket
import time

import pytest

from milter_peer import (
    ACCEPT, CLOSE, CONTINUE, DISCARD, GARBAGE, HANG, PROGRESS, PROGRESS_FOREVER, REJECT,
    TEMPFAIL,
    ScriptedMilter, add_header, add_recipient, change_header, change_sender,
    delete_recipient, insert_header, quarantine, replace_body, reply_code)
from smtpwire import SMTPWire
from stokend_daemon import USERS, to_yaml

ALICE = "alice@example.test"
BOB = "bob@example.test"
WAIT = 10.0


def message(subject: str, body: str = "Hello.\r\n") -> bytes:
    return (f"From: <sender@example.org>\r\nTo: <{BOB}>\r\nSubject: {subject}\r\n"
            f"\r\n{body}").encode()


def send_mx(mta, subject: str, recipients=(BOB,), body: str = "Hello.\r\n",
            sender: str = "sender@example.org"):
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo("client.example.org")
        reply = conn.transaction(sender, list(recipients), message(subject, body))
        conn.command("QUIT")
    return reply


def delivered(mta, address: str, marker: bytes, timeout: float = WAIT) -> list[bytes]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [m for m in mta.messages(address) if marker in m]
        if found:
            return found
        time.sleep(0.05)
    return []


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def milter():
    peer = ScriptedMilter()
    yield peer
    peer.stop()


@pytest.fixture(scope="module")
def mta(module_stokend_factory, milter):
    return module_stokend_factory(milters=[
        {"name": "scripted", "address": milter.address, "roles": ["mx", "submission"],
         "command_timeout": "2s", "default_action": "tempfail"}])


@pytest.fixture(autouse=True)
def fresh_script(milter):
    milter.reset()


def test_the_milter_hears_the_transaction_as_postfix_tells_it(mta, milter):
    reply = send_mx(mta, "told")
    assert reply.code == 250, reply
    assert delivered(mta, BOB, b"Subject: told")
    conversation = milter.conversations[-1]
    version, actions, steps = conversation.offered
    assert version == 6 and actions == 0x1FF
    assert conversation.commands[:5] == ["connect", "helo", "mail", "rcpt", "data"]
    assert conversation.commands[-3:] == ["eoh", "body", "eob"]
    assert conversation.quit
    assert conversation.connect[1] == "4" and conversation.connect[3] == "127.0.0.1"
    assert conversation.connect[2] > 0
    assert conversation.helo == "client.example.org"
    assert conversation.mail == ["<sender@example.org>"]
    assert conversation.rcpt == [f"<{BOB}>"]
    assert ("Subject", "told") in conversation.headers
    assert conversation.headers[0][0] == "Received"  # ours, as Postfix's cleanup shows it
    assert conversation.body == b"Hello.\r\n"
    macros = conversation.macros
    assert macros["j"] == "mx.example.test"
    assert macros["{client_addr}"] == "127.0.0.1"
    assert macros["{client_port}"] == str(conversation.connect[2])
    assert macros["{mail_addr}"] == "sender@example.org"
    assert macros["{rcpt_addr}"] == BOB
    assert re.fullmatch(r"[0-9A-Za-z]+", macros["i"]), macros["i"]
    assert macros["{daemon_name}"] == "stokend-mx"


def test_submission_tells_the_login_and_tls(mta, milter):
    with SMTPWire(mta.submission_port) as conn:
        conn.ehlo()
        conn.starttls()
        conn.ehlo()
        assert conn.auth_plain(ALICE, USERS[ALICE]).code == 235
        reply = conn.transaction(ALICE, [BOB], message("submitted"))
    assert reply.code == 250, reply
    macros = milter.conversations[-1].macros
    assert macros["{auth_authen}"] == ALICE
    assert macros["{auth_type}"] == "PLAIN"
    assert macros["{tls_version}"].startswith("TLSv1")
    assert macros["{daemon_name}"] == "stokend-submission"


@pytest.mark.parametrize("stage", ["connect", "mail", "rcpt", "eob"])
def test_reject_at_any_stage_refuses_the_message(mta, milter, stage):
    milter.reset({stage: [REJECT]})
    reply = send_mx(mta, f"reject-{stage}")
    assert reply.code == 550 and reply.enhanced == "5.7.1", reply
    assert not delivered(mta, BOB, f"reject-{stage}".encode(), timeout=0.5)


def test_tempfail_answers_451(mta, milter):
    milter.reset({"eob": [TEMPFAIL]})
    reply = send_mx(mta, "tempfail")
    assert reply.code == 451 and reply.enhanced == "4.7.1", reply


def test_a_custom_reply_reaches_the_client_whole(mta, milter):
    milter.reset({"eob": [reply_code("554-5.7.1 Spam message rejected\r\n554 5.7.1 see the log")]})
    reply = send_mx(mta, "custom")
    assert reply.code == 554, reply
    assert reply.lines == ["5.7.1 Spam message rejected", "5.7.1 see the log"]


def test_accept_early_skips_the_rest(mta, milter):
    milter.reset({"mail": [ACCEPT]})
    reply = send_mx(mta, "early-accept")
    assert reply.code == 250, reply
    assert delivered(mta, BOB, b"early-accept")
    assert "rcpt" not in milter.conversations[-1].commands


def test_discard_answers_250_and_delivers_nothing(mta, milter):
    milter.reset({"eob": [DISCARD]})
    reply = send_mx(mta, "discarded")
    assert reply.code == 250, reply
    assert not delivered(mta, BOB, b"discarded", timeout=1.0)
    assert re.search(r"discarded by milter scripted", mta.log())


def test_header_changes_are_applied_in_order(mta, milter):
    milter.reset({"eob": [[add_header("X-Scanned", "yes\n\tfolded"),
                           insert_header(0, "X-First", "top"),
                           change_header(1, "Subject", "changed"),
                           change_header(1, "To", ""),
                           PROGRESS, CONTINUE]]})
    reply = send_mx(mta, "headers")
    assert reply.code == 250, reply
    stored = delivered(mta, BOB, b"Subject: changed")
    assert stored, mta.log_tail()
    text = stored[0]
    assert text.startswith(b"X-First: top\r\n")
    head = text.split(b"\r\n\r\n")[0]
    assert b"X-Scanned: yes\r\n\tfolded" in head
    assert b"\r\nTo:" not in head and b"Subject: headers" not in head


def test_body_replacement(mta, milter):
    milter.reset({"eob": [[replace_body(b"New body.\r\n"), CONTINUE]]})
    assert send_mx(mta, "body", body="Old body.\r\n").code == 250
    stored = delivered(mta, BOB, b"Subject: body")
    assert stored and stored[0].endswith(b"\r\n\r\nNew body.\r\n")


def test_recipients_and_sender_change(mta, milter):
    milter.reset({"eob": [[add_recipient(ALICE), delete_recipient(BOB),
                           change_sender("bounces@example.test"), CONTINUE]]})
    assert send_mx(mta, "envelope").code == 250
    stored = delivered(mta, ALICE, b"Subject: envelope")
    assert stored, mta.log_tail()
    assert b"Return-Path: <bounces@example.test>" in stored[0] or \
        "from=<bounces@example.test>" in mta.log()
    assert not delivered(mta, BOB, b"Subject: envelope", timeout=0.5)


def test_quarantine_holds_the_message_until_released(mta, milter):
    milter.reset({"eob": [[quarantine("looks odd"), CONTINUE]]})
    reply = send_mx(mta, "quarantined")
    assert reply.code == 250, reply
    queue_id = re.search(r"queued as ([0-9a-f]+)", str(reply)).group(1)
    assert not delivered(mta, BOB, b"quarantined", timeout=1.0)
    listing = mta.ctl("queue", "list").stdout
    assert queue_id in listing and "!" in listing
    mta.ctl("queue", "release", queue_id)
    assert delivered(mta, BOB, b"quarantined")


def test_a_change_that_was_not_negotiated_is_garbage(mta, milter):
    milter.reset({"eob": [[add_header("X-Sneaky", "1"), CONTINUE]]}, actions=0)
    reply = send_mx(mta, "not-negotiated")
    assert reply.code == 451, reply
    assert "did not negotiate" in mta.log()


@pytest.mark.parametrize("failure,expected", [(HANG, "no reply to EOB within 2s"),
                                              (GARBAGE, "garbage"),
                                              (CLOSE, "connection closed by the milter")])
def test_a_failing_milter_follows_default_action_tempfail(mta, milter, failure, expected):
    milter.reset({"eob": [failure]})
    reply = send_mx(mta, "failing")
    assert reply.code == 451 and reply.enhanced == "4.7.1", reply
    lines = [line for line in mta.log().splitlines()
             if "milter scripted" in line and "unavailable" in line]
    assert lines and expected in lines[-1] and "default_action tempfail" in lines[-1]
    # The daemon goes on: the next message passes.
    milter.reset()
    assert send_mx(mta, "after-failure").code == 250


def test_steps_left_out_are_not_sent_and_progress_cannot_hold_for_ever(mta, milter):
    # SMFIP_NOCONNECT|NOHELO|NOMAIL|NORCPT|NOBODY|NOHDRS|NOEOH|NODATA: only
    # the end of the body is left, one reply owed, so one command_timeout
    # (2 s) bounds the whole conversation however often it says PROGRESS.
    milter.reset({"eob": [PROGRESS_FOREVER]}, steps=0x27F)
    reply = send_mx(mta, "progress")
    assert reply.code == 451, reply
    assert milter.conversations[-1].commands == ["eob"]
    lines = [line for line in mta.log().splitlines() if "milter scripted" in line]
    assert "no verdict within 2s" in lines[-1], lines[-1]


def test_milters_run_in_order_and_defaults_apply_when_down(stokend_factory, milter):
    down = unused_port()
    mta = stokend_factory(milters=[
        {"name": "gone", "address": f"inet:127.0.0.1:{down}", "default_action": "accept",
         "connect_timeout": "2s"},
        {"name": "first", "address": milter.address, "roles": ["mx"]},
        {"name": "second", "address": milter.address, "roles": ["mx"]},
    ])
    milter.reset({"eob": [[add_header("X-Pass", "one"), CONTINUE],
                          [add_header("X-Pass", "two"), CONTINUE]]})
    assert send_mx(mta, "chain").code == 250
    stored = delivered(mta, BOB, b"Subject: chain")
    assert stored
    head = stored[0].split(b"\r\n\r\n")[0]
    assert head.index(b"X-Pass: one") < head.index(b"X-Pass: two")
    # The second milter saw the first one's header.
    assert ("X-Pass", "one") in milter.conversations[-1].headers
    assert re.search(r"milter gone \(inet:127\.0\.0\.1:\d+\) unavailable: .*default_action accept",
                     mta.log())
    # Submission has no milter of its own here: not asked.
    count = len(milter.conversations)
    with SMTPWire(mta.submission_port) as conn:
        conn.ehlo()
        conn.starttls()
        conn.ehlo()
        assert conn.auth_plain(ALICE, USERS[ALICE]).code == 235
        assert conn.transaction(ALICE, [BOB], message("no-milter")).code == 250
    assert len(milter.conversations) == count


def test_a_down_milter_with_default_reject_refuses(stokend_factory):
    mta = stokend_factory(milters=[
        {"name": "gone", "address": f"inet:127.0.0.1:{unused_port()}",
         "default_action": "reject"}])
    reply = send_mx(mta, "refused")
    assert reply.code == 550 and reply.enhanced == "5.7.1", reply


def test_a_reload_adds_a_milter_for_new_sessions(stokend_factory, milter):
    mta = stokend_factory()
    assert send_mx(mta, "before-reload").code == 250
    assert milter.conversations == []
    mta.config["milters"] = [{"name": "added", "address": milter.address, "roles": ["mx"]}]
    mta.config_path.write_text(to_yaml(mta.config))
    result = mta.ctl("reload", check=False)
    assert result.returncode == 0 and result.stdout == "reloaded\n", result.stderr
    milter.reset({"eob": [REJECT]})
    reply = send_mx(mta, "after-reload")
    assert reply.code == 550, reply
    assert len(milter.conversations) == 1
