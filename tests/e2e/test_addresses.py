"""Address rewriting: recipient_delimiter and the aliases map.

Proves, with one daemon (recipient_delimiter "+", an aliases file) and a
private smtp-sink as the remote domain's next hop, that alice+tag@ is
delivered to alice's Maildir with a Delivered-To field naming alice+tag@
(and that an extension of nobody is still 550 5.1.1); that a submission
user may send as their own extended address and not as another's; that an
alias reaches two local users, an alias to an extended address keeps the
extension, a domain's catch-all takes the addresses nobody has, and an
alias to a remote address is relayed through the queue with the envelope
sender unchanged; that an alias loop is named in the log at start and
answered 451 4.3.0 at RCPT without losing or accepting anything; that a
changed aliases file is in effect without a restart while a broken edit
keeps the map in force; that `stokend --check-config` names a bad line by
FILE:LINE; and, with a private Dovecot, that LMTP delivery gets the
extension in Delivered-To and the user's own address in RCPT.
"""

import os
import re
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from peers import (PeerSet, SmtpSink, outcomes, queue_daemon, queue_id, send_mx, submit,
                   wait_for_log, wait_removed, wait_until)
from smtpwire import SMTPWire
from stokend_daemon import STOKEND, USERS, require_binaries
from storedmail import check_stored

ALICE = "alice@example.test"
BOB = "bob@example.test"
SENDER = "sender@remote.test"

ALIASES = """\
# the daemon's aliases for these tests
team@example.test      alice@example.test, bob@example.test
news@example.test      alice+news@example.test
outside@example.test   carol@elsewhere.test,
    alice@example.test
loop-a@example.test    loop-b@example.test
loop-b@example.test    loop-a@example.test
@catchall.test         bob@example.test
"""


@pytest.fixture(scope="module")
def sink():
    peer = SmtpSink()
    yield peer
    peer.close()


@pytest.fixture(scope="module")
def aliases_file():
    folder = Path(tempfile.mkdtemp(prefix="aliases-"))
    path = folder / "aliases"
    path.write_text(ALIASES)
    yield path
    for child in folder.iterdir():
        child.unlink()
    folder.rmdir()


@pytest.fixture(scope="module")
def mta(module_stokend_factory, sink, aliases_file):
    return module_stokend_factory(
        local_domains=["example.test", "catchall.test"],
        recipient_delimiter="+",
        aliases=str(aliases_file),
        routes={"elsewhere.test": sink.route},
        log_level="debug")


def replace_file(path: Path, text: str) -> None:
    """As an editor saving with rename: the file is never half-written."""
    temporary = path.with_name(path.name + ".new")
    temporary.write_text(text)
    os.replace(temporary, path)


def message(marker: str) -> bytes:
    return (f"From: Sender <{SENDER}>\r\n"
            f"Subject: addresses {marker}\r\n"
            f"Message-ID: <{marker}@remote.test>\r\n"
            f"\r\n"
            f"Marker {marker}.\r\n").encode()


def rcpt_reply(mta, recipient: str):
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo("client.remote.test")
        assert conn.command(f"MAIL FROM:<{SENDER}>").code == 250
        reply = conn.command(f"RCPT TO:<{recipient}>")
        conn.command("QUIT")
        return reply


def with_marker(mta, address: str, marker: str) -> list[bytes]:
    return [m for m in mta.messages(address) if f"Marker {marker}.".encode() in m]


def test_extended_address_is_delivered_to_the_user_with_delivered_to(mta):
    marker = uuid.uuid4().hex
    original = message(marker)
    queue_id(send_mx(mta, SENDER, ["Alice+Tag@example.test"], original))
    stored = with_marker(mta, ALICE, marker)
    assert len(stored) == 1, f"alice has {len(stored)} copies"
    field = b"Delivered-To: alice+tag@example.test\r\n"
    assert stored[0].startswith(field), stored[0][:200]
    check_stored(stored[0][len(field):], original, "ESMTP")
    assert not (mta.maildir_root / "example.test" / "alice+tag").exists()


def test_extension_of_nobody_is_unknown(mta):
    reply = rcpt_reply(mta, "nobody+tag@example.test")
    assert (reply.code, reply.enhanced) == (550, "5.1.1"), str(reply)
    # The extension is not a way around the sender's own address either.
    reply = rcpt_reply(mta, "+tag@example.test")
    assert (reply.code, reply.enhanced) == (550, "5.1.1"), str(reply)


def test_submission_user_may_send_as_own_extended_address(mta):
    marker = uuid.uuid4().hex
    reply = submit(mta, ALICE, USERS[ALICE], [BOB], message(marker), sender="alice+lists@example.test")
    assert reply.code == 250, str(reply)
    assert len(with_marker(mta, BOB, marker)) == 1
    with SMTPWire(mta.submission_port) as conn:
        conn.ehlo("client.example.test")
        conn.starttls()
        conn.ehlo("client.example.test")
        assert conn.auth_plain(ALICE, USERS[ALICE]).code == 235
        reply = conn.command("MAIL FROM:<bob+lists@example.test>")
        assert (reply.code, reply.enhanced) == (553, "5.7.1"), str(reply)


def test_alias_reaches_two_local_users(mta):
    marker = uuid.uuid4().hex
    original = message(marker)
    qid = queue_id(send_mx(mta, SENDER, ["team@example.test"], original))
    for user in (ALICE, BOB):
        stored = with_marker(mta, user, marker)
        assert len(stored) == 1, f"{user} has {len(stored)} copies"
        # Their own addresses: nothing to say in a Delivered-To field.
        check_stored(stored[0], original, "ESMTP")
    delivered = {r for r, outcome, _, _ in outcomes(mta.log(), qid) if outcome == "delivered"}
    assert delivered == {ALICE, BOB}
    assert re.search(r"<team@example\.test> expanded by the aliases to 2 address\(es\)", mta.log())


def test_alias_to_an_extended_address_keeps_the_extension(mta):
    marker = uuid.uuid4().hex
    queue_id(send_mx(mta, SENDER, ["news@example.test"], message(marker)))
    stored = with_marker(mta, ALICE, marker)
    assert len(stored) == 1
    assert stored[0].startswith(b"Delivered-To: alice+news@example.test\r\n"), stored[0][:200]


def test_catch_all_takes_the_addresses_nobody_has(mta):
    marker = uuid.uuid4().hex
    queue_id(send_mx(mta, SENDER, ["anyone@catchall.test"], message(marker)))
    assert len(with_marker(mta, BOB, marker)) == 1
    # A catch-all is its domain's only: example.test has none.
    reply = rcpt_reply(mta, "anyone@example.test")
    assert (reply.code, reply.enhanced) == (550, "5.1.1"), str(reply)


def test_alias_to_a_remote_address_is_relayed_with_the_original_sender(mta, sink):
    marker = uuid.uuid4().hex
    before = len(sink.dump_files())
    qid = queue_id(send_mx(mta, SENDER, ["outside@example.test"], message(marker)))
    relayed = [m for m in sink.wait_for_messages(before + 1) if marker.encode() in m.data]
    assert len(relayed) == 1
    # Postfix-like: the envelope sender stays the original (no SRS).
    assert relayed[0].mail_args.split()[0] == f"<{SENDER}>", relayed[0].mail_args
    assert [a.split()[0] for a in relayed[0].rcpt_args] == ["<carol@elsewhere.test>"], relayed[0]
    # The local target of the same alias got its copy in the same transaction.
    assert len(with_marker(mta, ALICE, marker)) == 1
    log = wait_removed(mta, qid)
    assert {(r, o) for r, o, _, _ in outcomes(log, qid)} == {
        ("carol@elsewhere.test", "delivered"), (ALICE, "delivered")}


def test_alias_loop_is_named_at_start_and_deferred_at_rcpt(mta):
    assert re.search(r"aliases:6: alias loop: loop-a@example\.test -> loop-b@example\.test -> "
                     r"loop-a@example\.test", mta.log()), mta.log_tail()
    reply = rcpt_reply(mta, "loop-a@example.test")
    assert (reply.code, reply.enhanced) == (451, "4.3.0"), str(reply)
    assert "alias loop" in str(reply)
    # The reply names no address of the map; the log does.
    assert "loop-b" not in str(reply)
    wait_for_log(mta, r"<loop-a@example\.test> deferred: alias loop: loop-a@example\.test -> "
                      r"loop-b@example\.test -> loop-a@example\.test")
    # The session goes on: another recipient is still accepted.
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo("client.remote.test")
        assert conn.command(f"MAIL FROM:<{SENDER}>").code == 250
        assert conn.command("RCPT TO:<loop-b@example.test>").code == 451
        assert conn.command(f"RCPT TO:<{ALICE}>").code == 250
    assert mta.running()


def test_changed_aliases_file_is_used_without_restart(mta, aliases_file):
    assert rcpt_reply(mta, "fresh@example.test").code == 550
    try:
        replace_file(aliases_file, ALIASES + "fresh@example.test  bob@example.test\n")
        wait_until(lambda: rcpt_reply(mta, "fresh@example.test").code == 250, 5.0,
                   what="the new alias in effect")
        marker = uuid.uuid4().hex
        queue_id(send_mx(mta, SENDER, ["fresh@example.test"], message(marker)))
        assert len(with_marker(mta, BOB, marker)) == 1

        # A broken edit is refused with its line named, and the map in force stays.
        replace_file(aliases_file, ALIASES + "fresh@example.test\n")
        refused = re.compile(r"aliases not reloaded, the map in force stays: \S*aliases:9: "
                             r"fresh@example\.test has no target")
        # The file is looked at when a RCPT needs it, at most once a second.
        wait_until(lambda: rcpt_reply(mta, "team@example.test").code == 250
                   and refused.search(mta.log()), 5.0, what="the broken edit refused")
        assert rcpt_reply(mta, "fresh@example.test").code == 250
        assert rcpt_reply(mta, "team@example.test").code == 250
    finally:
        replace_file(aliases_file, ALIASES)
    wait_until(lambda: rcpt_reply(mta, "fresh@example.test").code == 550, 5.0,
               what="the alias removed again")


def test_check_config_names_a_bad_line(tmp_path):
    require_binaries()
    aliases = tmp_path / "aliases"
    aliases.write_text("team@example.test alice@example.test\nteam example.test\n")
    config = tmp_path / "stokend.yaml"
    config.write_text("local_domains: [example.test]\n"
                      "listeners: [{role: mx, address: 127.0.0.1, port: 2525}]\n"
                      "recipient_delimiter: \"+\"\n"
                      f"aliases: {aliases}\n")
    result = subprocess.run([str(STOKEND), "--check-config", str(config)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1, result
    assert f"aliases: {aliases}:2: key 'team' is not an address (local@domain)" in result.stderr, result.stderr
    aliases.write_text("team@example.test alice@example.test\n")
    result = subprocess.run([str(STOKEND), "--check-config", str(config)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    config.write_text("local_domains: [example.test]\n"
                      "listeners: [{role: mx, address: 127.0.0.1, port: 2525}]\n"
                      "recipient_delimiter: \"@\"\n")
    result = subprocess.run([str(STOKEND), "--check-config", str(config)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "recipient_delimiter" in result.stderr, result.stderr


def test_lmtp_delivery_names_the_extension_in_delivered_to(stokend_factory):
    with PeerSet() as peers:
        dovecot = peers.dovecot()
        mta = queue_daemon(stokend_factory, recipient_delimiter="+",
                           routes={"example.test": dovecot.tcp_route})
        marker = uuid.uuid4().hex
        qid = queue_id(send_mx(mta, SENDER, ["alice+tag@example.test", BOB], message(marker)))
        log = wait_removed(mta, qid)
        assert {(r, o) for r, o, _, _ in outcomes(log, qid)} == {
            ("alice+tag@example.test", "delivered"), (BOB, "delivered")}, log
        alice = dovecot.new_mail("alice")
        assert len(alice) == 1
        data = alice[0].read_bytes().replace(b"\r\n", b"\n")
        assert b"\nDelivered-To: alice+tag@example.test\n" in data or data.startswith(
            b"Delivered-To: alice+tag@example.test\n"), data[:600]
        bob = dovecot.new_mail("bob")
        assert len(bob) == 1
        assert b"alice+tag" not in bob[0].read_bytes()
