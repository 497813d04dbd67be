"""SMTP smuggling: only CRLF.CRLF ends DATA.

Each case sends, inside one DATA, a body containing a "fake end of data" built
from bare CR or LF (the smuggling family: \\n.\\n, \\r.\\r, \\r\\n.\\n, ...)
followed by a smuggled transaction (MAIL, RCPT, DATA, a second message), then
the real CRLF.CRLF, all in one write.

Proves that by default the server answers exactly once, after the real end, with
550 5.5.2 (also when a NUL comes first), sends no reply for any smuggled
command, stores nothing and keeps the session usable; and that with
normalise_bare_line_endings (and nul_octets: strip) the same bytes are ONE
accepted message that contains the smuggled text as body, with CRLF line
endings only, and no second message. A command line with a bare CR or LF is
refused with 500 5.5.2 and has no effect.
"""

import pytest

from smtpwire import SMTPWire
from storedmail import has_bare_line_ending

ALICE = "alice@example.test"
BOB = "bob@example.test"
SENDER = "sender@example.org"

FAKE_ENDS = {
    "LF.LF": b"\n.\n",
    "LF.CRLF": b"\n.\r\n",
    "CR.LF": b"\r.\n",
    "CR.CR": b"\r.\r",
    "CR.CRLF": b"\r.\r\n",
    "CRLF.LF": b"\r\n.\n",
    "CRLF.CR": b"\r\n.\r",
    "CRLF-NUL.LF": b"\r\n\x00.\n",
    "LF-NUL.LF": b"\n\x00.\n",
}

SMUGGLED = (b"MAIL FROM:<evil@x>\r\n"
            b"RCPT TO:<bob@example.test>\r\n"
            b"DATA\r\n"
            b"From: evil@x\r\n"
            b"Subject: smuggled\r\n"
            b"\r\n"
            b"smuggled body\r\n")


def smuggling_payload(fake_end: bytes) -> bytes:
    return (b"From: sender@example.org\r\n"
            b"Subject: carrier\r\n"
            b"\r\n"
            b"carrier body" + fake_end + SMUGGLED + b".\r\n")


def open_data(conn):
    conn.ehlo()
    conn.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{ALICE}>\r\nDATA\r\n")
    got = [(r.code, r.enhanced) for r in conn.read_replies(3)]
    assert got == [(250, "2.1.0"), (250, "2.1.5"), (354, "")], got


@pytest.fixture(scope="module")
def normalising(module_stokend_factory):
    # The lenient settings: bare line endings become CRLF, NULs are dropped.
    return module_stokend_factory(normalise_bare_line_endings=True, nul_octets="strip")


@pytest.mark.parametrize("name", list(FAKE_ENDS))
def test_smuggling_is_refused(mta, name):
    with SMTPWire(mta.mx_port) as conn:
        open_data(conn)
        conn.send(smuggling_payload(FAKE_ENDS[name]))
        reply = conn.read_reply()
        assert (reply.code, reply.enhanced) == (550, "5.5.2"), f"{name}: {reply}"
        extra = conn.pending(0.5)
        assert extra == b"", f"{name}: replies to smuggled commands: {extra!r}"
        reply = conn.command("NOOP")
        assert (reply.code, reply.enhanced) == (250, "2.0.0"), f"{name}: session unusable: {reply}"
        # The refused transaction is gone: DATA now is out of sequence.
        reply = conn.command("DATA")
        assert (reply.code, reply.enhanced) == (503, "5.5.1"), f"{name}: {reply}"
    assert mta.all_mail_files() == [], f"{name}: something was stored"
    assert mta.files_containing(b"smuggled body") == []


@pytest.mark.parametrize("name", list(FAKE_ENDS))
def test_smuggling_normalised_is_one_message(normalising, name):
    mta = normalising
    with SMTPWire(mta.mx_port) as conn:
        open_data(conn)
        conn.send(smuggling_payload(FAKE_ENDS[name]))
        reply = conn.read_reply()
        assert (reply.code, reply.enhanced) == (250, "2.0.0"), f"{name}: {reply}"
        extra = conn.pending(0.5)
        assert extra == b"", f"{name}: replies to smuggled commands: {extra!r}"
        assert conn.command("NOOP").code == 250
    stored = mta.messages(ALICE)
    assert len(stored) == 1, f"{name}: alice has {len(stored)} messages"
    message = stored[0]
    assert b"carrier body" in message
    assert b"MAIL FROM:<evil@x>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n" in message
    assert message.endswith(b"smuggled body\r\n")
    assert not has_bare_line_ending(message), f"{name}: bare CR/LF stored: {message!r}"
    assert b"\0" not in message, f"{name}: NUL stored: {message!r}"
    assert mta.messages(BOB) == [], f"{name}: the smuggled message was delivered"
    assert len(mta.all_mail_files()) == 1
    assert mta.tmp_files(ALICE) == []


def test_nul_before_dot_does_not_end_data(mta):
    """CRLF NUL "." CRLF has no bare line ending: it is not an end of data. The
    server refuses the whole message once for its NUL (554 5.6.0) after the
    real end; it never sees a second transaction."""
    with SMTPWire(mta.mx_port) as conn:
        open_data(conn)
        conn.send(smuggling_payload(b"\r\n\x00.\r\n"))
        reply = conn.read_reply()
        assert (reply.code, reply.enhanced) == (554, "5.6.0"), str(reply)
        assert conn.pending(0.5) == b"", "replies to smuggled commands"
        assert conn.command("NOOP").code == 250
    assert mta.messages(BOB) == []
    assert mta.all_mail_files() == []


def test_bare_lf_in_headers_is_refused(mta):
    with SMTPWire(mta.mx_port) as conn:
        open_data(conn)
        conn.send(b"Subject: bare lf\nX-Other: y\r\n\r\nbody\r\n.\r\n")
        reply = conn.read_reply()
        assert (reply.code, reply.enhanced) == (550, "5.5.2"), str(reply)
        assert conn.pending(0.3) == b""
    assert mta.all_mail_files() == []


def test_bare_cr_at_end_of_data_line_is_refused(mta):
    with SMTPWire(mta.mx_port) as conn:
        open_data(conn)
        conn.send(b"Subject: bare cr\r\n\r\nbody\r\r\n.\r\n")
        reply = conn.read_reply()
        assert (reply.code, reply.enhanced) == (550, "5.5.2"), str(reply)
    assert mta.all_mail_files() == []


# A bare CR stays inside the line; a bare LF ends the (invalid) line, and what
# follows it is read as the next line (the session's documented framing).
BAD_COMMAND_LINES = [
    (b"NOOP\rRSET\r\n", [(500, "5.5.2")]),
    (b"NOOP\nRSET\r\n", [(500, "5.5.2"), (250, "2.0.0")]),
    (b"MAIL FROM:<a@example.org>\nRCPT TO:<alice@example.test>\r\n", [(500, "5.5.2"), (503, "5.5.1")]),
    (b"MAIL FROM:<a@example.org>\rRCPT TO:<alice@example.test>\r\n", [(500, "5.5.2")]),
]


@pytest.mark.parametrize("line,expected", BAD_COMMAND_LINES)
def test_bare_line_ending_in_command_is_refused(mta, line, expected):
    with SMTPWire(mta.mx_port) as conn:
        conn.ehlo()
        conn.send(line)
        got = [(r.code, r.enhanced) for r in conn.read_replies(len(expected))]
        assert got == expected
        assert conn.pending(0.5) == b"", "unexpected extra reply"
        reply = conn.command("NOOP")
        assert (reply.code, reply.enhanced) == (250, "2.0.0"), str(reply)
        # No MAIL took effect.
        reply = conn.command("RCPT TO:<alice@example.test>")
        assert (reply.code, reply.enhanced) == (503, "5.5.1"), str(reply)
