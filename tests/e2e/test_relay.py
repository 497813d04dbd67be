"""The MX role is never an open relay.

Proves that, without authentication, recipients outside the local domains and
every classic relay trick (percent hack, source routes, bang paths, a quoted
'@' in the local part) are refused with 550 5.7.1, that an unquoted second '@'
is a syntax error (501 5.1.3), that the refusals are per recipient (a local
recipient in the same transaction still works), and that nothing of a refused
recipient is delivered or queued anywhere.
"""

import uuid

import pytest

from smtpwire import SMTPWire

ALICE = "alice@example.test"
SENDER = "sender@example.org"

RELAY_ATTEMPTS = [
    "<remote@example.org>",
    "<user%remote@example.test>",
    "<alice%example.org@example.test>",
    "<@relay.example:user@example.org>",
    "<@a,@b:user@example.test>",
    "<@a,@b:alice@example.test>",
    "<remote!user@example.test>",
    "<example.org!alice@example.test>",
    '<"user@remote"@example.test>',
    '<"alice@example.org"@example.test>',
]


@pytest.mark.parametrize("recipient", RELAY_ATTEMPTS)
def test_relay_attempt_is_refused(mta, recipient):
    marker = uuid.uuid4().hex.encode()
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo()
        assert conn.command(f"MAIL FROM:<{SENDER}>").code == 250
        reply = conn.command(f"RCPT TO:{recipient}")
        assert reply.code == 550 and reply.enhanced == "5.7.1", f"RCPT TO:{recipient} -> {reply}"
        # With no accepted recipient there is no transaction to send.
        reply = conn.command("DATA")
        assert 500 <= reply.code < 600, f"DATA after the refusal -> {reply}"
        if reply.code == 354:  # defensive: finish the data so the check below is meaningful
            conn.send(b"Subject: relay " + marker + b"\r\n\r\n" + marker + b"\r\n.\r\n")
            conn.read_reply()
    assert mta.all_mail_files() == []
    assert mta.files_containing(marker) == []


def test_relay_refusal_after_starttls(mta):
    """TLS alone does not make a client a submitter."""
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo()
        conn.starttls()
        conn.ehlo()
        assert conn.command(f"MAIL FROM:<{SENDER}>").code == 250
        reply = conn.command("RCPT TO:<remote@example.org>")
        assert (reply.code, reply.enhanced) == (550, "5.7.1"), str(reply)


def test_unquoted_second_at_is_a_syntax_error(mta):
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo()
        assert conn.command(f"MAIL FROM:<{SENDER}>").code == 250
        reply = conn.command("RCPT TO:<user@remote@example.test>")
        assert (reply.code, reply.enhanced) == (501, "5.1.3"), str(reply)
        assert conn.command("NOOP").code == 250
    assert mta.all_mail_files() == []


def test_refusals_are_per_recipient(mta):
    """A mixed transaction delivers to the local user only; the remote and
    trick recipients get nothing, and nothing is queued for them."""
    marker = uuid.uuid4().hex.encode()
    message = b"Subject: mixed " + marker + b"\r\n\r\n" + marker + b"\r\n"
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo()
        assert conn.command(f"MAIL FROM:<{SENDER}>").code == 250
        for recipient in ("<remote@example.org>", "<bob%example.org@example.test>",
                          "<@relay.example:bob@example.org>"):
            reply = conn.command(f"RCPT TO:{recipient}")
            assert (reply.code, reply.enhanced) == (550, "5.7.1"), f"{recipient} -> {reply}"
        assert conn.command(f"RCPT TO:<{ALICE}>").code == 250
        reply = conn.data(message)
        assert (reply.code, reply.enhanced) == (250, "2.0.0"), str(reply)
    assert len(mta.messages(ALICE)) == 1
    files = mta.all_mail_files()
    assert len(files) == 1 and files[0].parent == mta.maildir(ALICE) / "new", files
    hits = mta.files_containing(marker, include_spool=False)
    assert len(hits) == 1 and hits[0].parent == mta.maildir(ALICE) / "new", hits


def test_submission_without_auth_cannot_relay(mta):
    with SMTPWire(mta.submission_port) as conn:
        conn.ehlo()
        conn.starttls()
        conn.ehlo()
        reply = conn.command(f"MAIL FROM:<{SENDER}>")
        assert (reply.code, reply.enhanced) == (530, "5.7.0"), str(reply)
        reply = conn.command("RCPT TO:<remote@example.org>")
        assert 500 <= reply.code < 600, str(reply)
